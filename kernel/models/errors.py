"""Errors of the model compiler."""
from __future__ import annotations

from ..errors import PostloanError


class ModelError(PostloanError):
    """A model file cannot be used: unreadable, not ONNX, an unsupported opset, or features
    that are not in the data contract. The message names the file and the problem."""

    def __init__(self, source: str, problem: str):
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


class Unsupported(Exception):
    """A graph (or one node of it) the Numba backend does not compile; the model then runs
    on onnxruntime and the reason is logged."""
