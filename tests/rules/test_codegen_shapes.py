"""Shapes of the generated code that only make Numba's compile cheaper: they must not change
what a node computes (the differential tests check the decisions), and must hold as written."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from numba import njit

from kernel.codegen.emit import _drop_if_true, _Generator
from kernel.codegen.helpers import array_at, bit, new_array, p_f32, p_i64, select
from kernel.rules import ir


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


@njit
def _bits(word):
    out = np.zeros(64, np.uint8)
    for j in range(64):
        out[j] = bit(word, np.uint64(j))
    return out


def test_bit_reads_each_bit_of_a_word():
    rng = np.random.default_rng(3)
    words = [int(hi) << 32 | int(lo) for hi, lo in rng.integers(0, 2 ** 32, (20, 2))]
    for word in [0, 1, 2 ** 63, 2 ** 64 - 1, *words]:
        assert _bits(np.uint64(word)).tolist() == [(word >> j) & 1 for j in range(64)]


def test_float_literals_need_no_conversion_call():
    typed = _Generator._typed
    assert typed("3", ir.FLOAT) == "3.0" and typed("-12", ir.FLOAT) == "-12.0"
    for literal in ("0.05", "1e-05", "1.5e+20", "-2.5", "np.inf", "-np.inf", "0.0"):
        assert typed(literal, ir.FLOAT) == literal
    assert typed("t3", ir.FLOAT) == "np.float64(t3)" and typed("3", ir.INT) == "3"
    assert float(eval(typed("9007199254740993", ir.FLOAT))) == float(np.float64(9007199254740993))


def test_nodes_compile_through_the_lean_pipeline_without_wrappers(tmp_path):
    """A node compiles without Numba's SSA pass and the other passes generated code never needs,
    and without the CPython and C wrappers nobody calls (what makes it cheaper to compile)."""
    from kernel.bundle import Bundle
    from kernel.codegen import cache, emit
    from kernel.codegen.pipeline import LEAN_PASSES
    from kernel.runtime import build_plan
    bundle = Bundle.load(str(Path(__file__).parent / "golden" / "warnings" / "gaps.yaml"))
    node = emit.generate(build_plan(bundle)).nodes[0]
    # a file of its own (a comment naming this run): compiled here, never loaded from a cache
    path = tmp_path / "pl_lean_node.py"
    path.write_text(node.source + f"\n# {tmp_path}\n", encoding="utf-8")
    module = cache.import_source(path)
    module.node.compile(emit.node_signature())
    result = module.node.overloads[tuple(emit.node_signature())]
    passes = [name.split("_", 1)[1] for name in next(iter(result.metadata["pipeline_times"].values()))]
    assert len(passes) == len(LEAN_PASSES) and "reconstruct_ssa" not in passes and "lean_native_lowering" in passes
    defined = {f.name for f in result.library.get_defined_functions()}
    assert result.fndesc.llvm_func_name in defined
    assert result.fndesc.llvm_cpython_wrapper_name not in defined and result.fndesc.llvm_cfunc_wrapper_name not in defined


@njit
def _allocate(rows, cols):
    a = new_array((rows, cols), np.float32)
    b = new_array((rows,), np.int64)
    c = new_array((3, rows), np.float64)
    for r in range(rows):
        b[r] = 7 * r
        c[2, r] = r / 2
        for k in range(cols):
            a[r, k] = r * cols + k
    return a, b, c


@njit
def _allocate_numpy(rows, cols):
    return np.empty((rows, cols), np.float32), np.empty(rows, np.int64), np.empty((3, rows), np.float64)


def test_new_array_allocates_what_np_empty_allocates():
    """``new_array`` (what generated code and the tree kernels allocate with) gives the array
    ``np.empty`` gives: the same type (dtype, dimensions, C layout), shape and strides, its own
    writable memory, owned by the caller; a negative size is NumPy's error."""
    import numba
    import pytest
    mine, theirs = _allocate(5, 3), _allocate_numpy(5, 3)
    for a, b in zip(mine, theirs):
        assert numba.typeof(a) == numba.typeof(b)
        assert (a.shape, a.strides, a.dtype, a.flags.c_contiguous, a.flags.owndata) == \
            (b.shape, b.strides, b.dtype, b.flags.c_contiguous, b.flags.owndata)
    assert mine[0].tolist() == np.arange(15, dtype=np.float32).reshape(5, 3).tolist()
    assert mine[1].tolist() == [0, 7, 14, 21, 28] and mine[2][2].tolist() == [0, 0.5, 1, 1.5, 2]
    assert _allocate(0, 4)[0].shape == (0, 4)
    with pytest.raises(ValueError, match="negative"):
        _allocate(-1, 2)


@njit
def _view(address_i64, address_f32, n):
    u = array_at(p_i64(address_i64), n)
    v = array_at(p_f32(address_f32), n)
    u[0] += 1
    return u.sum(), v[n - 1], u


def test_array_at_is_a_view_of_the_memory_it_is_given():
    ints = np.array([5, 6, 7], np.int64)
    floats = np.array([0.5, 1.5, 2.5], np.float32)
    total, last, view = _view(ints.ctypes.data, floats.ctypes.data, 3)
    assert (total, last) == (19, 2.5) and ints.tolist() == [6, 6, 7]          # written through
    assert view.dtype == np.int64 and view.shape == (3,) and view.flags.c_contiguous
