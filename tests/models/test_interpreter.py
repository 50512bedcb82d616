"""The model interpreter a bundle compiles (``kernels.interpreter(prog)``) knows only the ops of
its model: it must score exactly as the interpreter of every op (which ``CompiledModel.run``
and ``score`` use) and as onnxruntime, on both of its tree paths (≥ 8 rows: leaf masks;
fewer: descent), and carry no code for the ops it never runs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kernel
from kernel.models import kernels
from model_helpers import edge_data, random_ensemble

ROOT = Path(__file__).resolve().parents[2]


def _features(cm, rng, rows: int) -> np.ndarray:
    """Rows of a model's features: numbers of every magnitude and sign, category indices
    (unknown -1 among them), and missing values."""
    X = np.empty((rows, len(cm.inputs)), np.float32)
    for j, feature in enumerate(cm.inputs):
        if feature.kind == "category":
            X[:, j] = rng.integers(-1, len(feature.categories), rows)
        else:
            X[:, j] = rng.normal(0, 1, rows) * 10.0 ** rng.uniform(-1, 4, rows)
    X[rng.random(X.shape) < 0.1] = np.nan
    return X


def _block_scores(cm, X: np.ndarray) -> np.ndarray:
    """``cm``'s bundle outputs computed by its own interpreter's ``block``, 128 rows at a time
    (as a model node calls it)."""
    out = np.empty((len(X), len(cm.outputs)), np.float64)
    for start in range(0, len(X), 128):
        cm.block.fn(X[start:start + 128], cm.block.params, out[start:start + 128])
    return out


def _ops(source: str) -> set:
    return {name for name in ("_op_gather", "_op_scaler", "_op_normalizer", "_op_imputer", "_op_binarizer",
                              "_op_onehot_num", "_op_onehot_idx", "_op_cast", "_op_binary", "_op_unary",
                              "_op_softmax", "_op_argmax", "_op_matmul", "_op_linear_classifier",
                              "_op_linear_regressor", "_trees_sum1", "_trees_general", "_finalize_classifier",
                              "_finalize_regressor")
            if f"{name}(S" in source}


@pytest.mark.parametrize("name, ops", [
    # the PD model is a logistic scorecard (docs/models.md), the RV model a tree ensemble
    ("pd_model", {"_op_imputer", "_op_cast", "_op_gather", "_op_onehot_num", "_op_scaler", "_op_linear_classifier"}),
    ("rv_model", {"_op_imputer", "_trees_sum1", "_finalize_regressor", "_op_binary", "_op_unary"}),
])
def test_shipped_models_compile_only_their_ops(name, ops):
    cm = kernel.compile_model(str(ROOT / "models" / f"{name}.onnx"))
    assert cm.backend == "numba"
    source = kernels.interpreter_source(cm.block.params[0])
    assert _ops(source) == ops
    assert _ops(kernels.interpreter_source()) >= ops | {"_trees_general", "_op_matmul"}
    rng = np.random.default_rng(7)
    for rows in (300, 5):                  # leaf masks, then the descent of fewer than 8 rows
        X = _features(cm, rng, rows)
        mine = _block_scores(cm, X)
        assert np.array_equal(mine, cm.score(X), equal_nan=True)        # the interpreter of every op
        want = cm.run_matrix(X)                                         # onnxruntime
        assert np.allclose(mine, want, atol=1e-5, rtol=1e-5, equal_nan=True), (rows, mine[:3], want[:3])


@pytest.mark.parametrize("n_targets, depth, variant", [(3, 4, "_trees_general"), (1, 7, "_trees_general"),
                                                       (1, 3, "_trees_sum1")])
def test_tree_variants_against_onnxruntime(n_targets, depth, variant):
    rng = np.random.default_rng(11 + n_targets + depth)
    classifier = n_targets > 1
    blob = random_ensemble(rng, n_trees=6, max_depth=depth, n_features=4, n_targets=n_targets, classifier=classifier,
                           post="SOFTMAX" if classifier else "NONE")
    cm = kernel.compile_model(blob, name="m")
    assert cm.backend == "numba", cm.fallback_reason
    source = kernels.interpreter_source(cm.block.params[0])
    assert _ops(source) == {variant, "_finalize_classifier" if classifier else "_finalize_regressor"}
    for rows in (200, 3):
        X = edge_data(rng, rows, 4)
        assert np.allclose(_block_scores(cm, X), cm.run_matrix(X), atol=1e-5, rtol=1e-5, equal_nan=True)


def test_two_tree_variants_and_both_kinds_dispatch_at_run_time():
    # a program of two ensembles: one of one summed target (regression), one general
    # (classifier): the interpreter tests each op's arguments (the same test, tree_variant)
    args = {}
    for name, variant, classifier in (("sum1", kernels.TREES_SUM1, 0), ("general", kernels.TREES_GENERAL, 1)):
        a = [0] * kernels.N_TREE_ARGS
        a[kernels.T_LAYOUT] = kernels.LAYOUT_MASKS if variant == kernels.TREES_SUM1 else kernels.LAYOUT_GENERAL
        a[kernels.T_DEPTH], a[kernels.T_KA], a[kernels.T_AGG] = 3, 1, kernels.AGG_SUM
        a[kernels.T_CLASSIFIER] = classifier
        assert kernels.tree_variant(a) == variant
        args[name] = a
    prog = [2, 9, 2] + [kernels.OP_TREES, len(args["sum1"])] + args["sum1"] + [kernels.OP_TREES, len(args["general"])] \
        + args["general"]
    source = kernels.interpreter_source(np.array(prog, np.int64))
    assert "if _tree_variant(a) == TREES_SUM1:" in source and "if a[T_CLASSIFIER]:" in source
    assert _ops(source) == {"_trees_sum1", "_trees_general", "_finalize_classifier", "_finalize_regressor"}
    compile(source, "interpreter", "exec")


def test_an_op_the_interpreter_does_not_know_is_an_error():
    with pytest.raises(ValueError, match="no op 99"):
        kernels.interpreter_source(np.array([1, 2, 1, 99, 0], np.int64))


@pytest.mark.parametrize("depth", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("n_trees", [1, 6, 9])
def test_one_row_descent_through_packed_records_is_the_leaf_masks_bit_for_bit(depth, n_trees):
    """Fewer than 8 rows descend the packed records (``trees.pack_trees``: feature and
    threshold in one word, two leaves in one word); a block of 8 or more runs the leaf masks
    over the separate arrays. Each row alone must score exactly as in the block — every mode
    (negated features among them), missing-value tracks, NaN and edge values, trees of a single
    leaf, a tree count that is not a multiple of the four descended at once."""
    rng = np.random.default_rng(100 * depth + n_trees)
    for tracks in (False, True):
        blob = random_ensemble(rng, n_trees=n_trees, max_depth=depth, n_features=5, n_targets=1, classifier=False,
                               modes=("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT"), tracks=tracks,
                               base=[0.25])
        cm = kernel.compile_model(blob, name="m")
        prog, pc = cm.block.params[0], 3
        while prog[pc] != kernels.OP_TREES:
            pc += 2 + prog[pc + 1]
        a = [int(v) for v in prog[pc + 2:pc + 2 + prog[pc + 1]]]
        assert kernels.tree_variant(a) == kernels.TREES_SUM1 and a[kernels.T_PACKED] % 8 == 0
        assert cm.block.params[1].ctypes.data % 64 == 0          # each packed tree on its cache lines
        X = edge_data(rng, 256, 5)
        together = _block_scores(cm, X)
        alone = np.concatenate([_block_scores(cm, X[r:r + 1]) for r in range(len(X))])
        assert np.array_equal(together.view(np.int64), alone.view(np.int64)), depth
        assert np.allclose(together, cm.run_matrix(X), atol=1e-5, rtol=1e-5, equal_nan=True)
