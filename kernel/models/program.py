"""The model IR's plain data: a lowered program and its slots.

Kept apart from :mod:`kernel.models.lower` (which imports onnx and the Numba kernels) so that a
compiled model remembered in the cache unpickles without importing either.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Slot", "Program", "POOL_ALIGN"]

#: the alignment in bytes of a model's int pool as its block reads it: the packed tree records
#: (``kernels.pack_trees``) start each tree on such a boundary of the pool, so on a cache line
POOL_ALIGN = 64


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
