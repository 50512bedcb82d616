"""Shapes of the generated code that only make Numba's compile cheaper: they must not change
what a node computes (the differential tests check the decisions), and must hold as written."""
from __future__ import annotations

import numpy as np
from numba import njit

from kernel.codegen.emit import _drop_if_true
from kernel.codegen.helpers import select


def test_if_true_blocks_are_dedented_and_an_if_true_with_else_is_kept():
    lines = ["a = 0", "if x:", "    if True:", "        b = 1", "        if True:", "            c = 2",
             "        d = 3", "    e = 4", "if True:", "    f = 5", "else:", "    g = 6", "# rule", "h = 7"]
    assert _drop_if_true(lines) == ["a = 0", "if x:", "    b = 1", "    c = 2", "    d = 3", "    e = 4",
                                    "if True:", "    f = 5", "else:", "    g = 6", "# rule", "h = 7"]


@njit
def _pick(c, a, b):
    return select(c, a, b)


@njit
def _mixed(c):
    return select(c, 1, 2.5), select(c, np.int64(3), 4), select(c, True, False)


def test_select_is_a_conditional_expression():
    for c in (True, False):
        assert _pick(c, 1.5, np.nan) == (1.5 if c else np.nan) or (not c and np.isnan(_pick(c, 1.5, np.nan)))
        assert _pick(c, np.int64(-2 ** 63), np.int64(7)) == (-2 ** 63 if c else 7)
        assert _mixed(c) == ((1.0, 3, True) if c else (2.5, 4, False))
    assert isinstance(_mixed(True)[0], float)                # int and float unify to float, as `a if c else b`
