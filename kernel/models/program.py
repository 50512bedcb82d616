"""The model IR's plain data: a lowered program and its slots.

Kept apart from :mod:`kernel.models.lower` (which imports onnx and the Numba kernels) so that a
compiled model remembered in the cache unpickles without importing either.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Slot", "Program"]


@dataclass
class Slot:
    col: int
    width: int
    kind: str                        # float | int | bool | category
    dims: tuple                      # trailing dims: () is [N], (w,) is [N, w]
    categories: tuple = field(default=())   # per column: a category list (category slots) or None


@dataclass
class Program:
    prog: np.ndarray
    ipool: np.ndarray
    fpool: np.ndarray
    values: dict                     # tensor name -> Slot (graph outputs among them)
