"""Shapes of the generated code that only make Numba's compile cheaper: they must not change
what a node computes (the differential tests check the decisions), and must hold as written."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from numba import njit

from kernel.codegen.emit import _drop_if_true, _Generator
from kernel.codegen.helpers import bit, select
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
