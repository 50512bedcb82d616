"""A model of elementwise preprocessing and a linear model compiles into one straight-line block
(``kernel.models.straight``) instead of its interpreter: it must score bit for bit as the
interpreter of every op (which ``CompiledModel.score`` uses), and so as onnxruntime."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

import kernel
from kernel.models import straight
from model_helpers import GRID, edge_data, model, random_ensemble

ROOT = Path(__file__).resolve().parents[2]
ML = "ai.onnx.ml"


def _straight(cm) -> bool:
    return "straight-line block" in Path(__import__("sys").modules[cm.block.module].__file__).read_text()


def _block(cm, X: np.ndarray) -> np.ndarray:
    out = np.empty((len(X), len(cm.outputs)), np.float64)
    for start in range(0, len(X), 128):                 # as a model node calls it
        cm.block.fn(X[start:start + 128], cm.block.params, out[start:start + 128])
    return out


def _check(cm, X, atol=1e-5, rows=slice(None)):
    assert cm.backend == "numba", cm.fallback_reason
    assert _straight(cm)
    mine = _block(cm, X)
    assert np.array_equal(mine, cm.score(X), equal_nan=True)        # the interpreter of every op, exactly
    want = cm.run_matrix(X[rows])                                   # onnxruntime
    assert np.allclose(mine[rows], want, atol=atol, rtol=1e-5, equal_nan=True)


def test_the_shipped_pd_model_is_one_straight_block():
    cm = kernel.compile_model(str(ROOT / "models" / "pd_model.onnx"))
    rng = np.random.default_rng(5)
    X = np.empty((700, len(cm.inputs)), np.float32)
    for j, feature in enumerate(cm.inputs):
        if feature.kind == "category":
            X[:, j] = rng.integers(-1, len(feature.categories), len(X))
        else:
            X[:, j] = rng.normal(0, 1, len(X)) * 10.0 ** rng.uniform(-1, 4, len(X))
    X[rng.random(X.shape) < 0.1] = np.nan
    _check(cm, X)
    source = Path(__import__("sys").modules[cm.block.module].__file__).read_text()
    assert "_op_" not in source and "while" not in source       # no interpreter, no op functions


def test_the_shipped_rv_model_calls_its_trees_between_two_row_loops():
    cm = kernel.compile_model(str(ROOT / "models" / "rv_model.onnx"))
    source = Path(__import__("sys").modules[cm.block.module].__file__).read_text()
    assert source.count("_trees_sum1(S, prog[") == 1 and source.count("for r in range(rows):") == 2
    assert "_op_" not in source and "_finalize" not in source
    rng = np.random.default_rng(6)
    for rows in (300, 5):                  # leaf masks, then the descent of fewer than 8 rows
        X = rng.normal(0, 1, (rows, len(cm.inputs))).astype(np.float32) * 10.0 ** rng.uniform(-1, 4, (rows, 1)
                                                                                               ).astype(np.float32)
        X[rng.random(X.shape) < 0.1] = np.nan
        _check(cm, X)


@pytest.mark.parametrize("aggregate, post, base", [("SUM", "NONE", None), ("AVERAGE", "NONE", [0.5]),
                                                   ("SUM", "PROBIT", [0.25]), ("AVERAGE", "NONE", None)])
def test_regression_trees_with_preprocessing(aggregate, post, base):
    """Imputer → one-target ensemble → Add, Exp (as the RV model), every aggregate and base."""
    import onnx
    rng = np.random.default_rng(len(aggregate) + len(post))
    blob = random_ensemble(rng, n_trees=7, max_depth=3, n_features=3, n_targets=1, classifier=False,
                           aggregate=aggregate, post=post, base=base)
    trees = onnx.load_model_from_string(blob).graph.node[0]
    trees.input[0], trees.output[0] = "imp", "raw"
    nodes = [h.make_node("Imputer", ["X"], ["imp"], domain=ML, imputed_value_floats=[0.5, -1.0, 2.5],
                         replaced_value_float=float("nan")), trees,
             h.make_node("Add", ["raw", "shift"], ["moved"]), h.make_node("Exp", ["moved"], ["y"])]
    cm = kernel.compile_model(model(nodes, [h.make_tensor_value_info("X", T.FLOAT, [None, 3])],
                                    [h.make_tensor_value_info("y", T.FLOAT, [None, 1])],
                                    [numpy_helper.from_array(np.array([0.125], np.float32), "shift")]), name="m")
    for rows in (200, 3):
        _check(cm, edge_data(rng, rows, 3), atol=1e-4 if post == "PROBIT" else 1e-5)


def test_other_tree_ensembles_keep_their_interpreter():
    rng = np.random.default_rng(1)
    for kw in (dict(n_targets=3, classifier=True, post="SOFTMAX"), dict(n_targets=2, classifier=False),
               dict(n_targets=1, classifier=False, aggregate="MAX")):
        blob = random_ensemble(rng, n_trees=2, max_depth=2, n_features=2, **kw)
        cm = kernel.compile_model(blob, name="m")
        assert cm.backend == "numba" and not _straight(cm), kw


def test_a_model_too_wide_to_unroll_keeps_its_interpreter():
    width = straight.MAX_LINES + 10
    node = h.make_node("LinearRegressor", ["X"], ["y"], domain=ML, coefficients=[0.5] * width, intercepts=[1.0])
    blob = model([node], [h.make_tensor_value_info("X", T.FLOAT, [None, width])],
                 [h.make_tensor_value_info("y", T.FLOAT, [None, 1])])
    cm = kernel.compile_model(blob, name="m")
    assert cm.backend == "numba" and not _straight(cm)


@pytest.mark.parametrize("post", ("NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"))
@pytest.mark.parametrize("n_targets,labels", [(1, [0, 1]), (3, [7, 8, 9]), (2, [0, 1])])
def test_linear_classifiers(post, n_targets, labels):
    rng = np.random.default_rng(n_targets + len(labels))
    width = 2 if (n_targets == 1 and len(labels) == 2) else n_targets
    node = h.make_node("LinearClassifier", ["X"], ["label", "scores"], domain=ML,
                       coefficients=list(rng.normal(0, 0.3, n_targets * 3).astype(np.float32)),
                       intercepts=list(rng.normal(0, 0.1, n_targets).astype(np.float32)), classlabels_ints=labels,
                       post_transform=post)
    blob = model([node], [h.make_tensor_value_info("X", T.FLOAT, [None, 3])],
                 [h.make_tensor_value_info("label", T.INT64, [None]),
                  h.make_tensor_value_info("scores", T.FLOAT, [None, width])])
    cm = kernel.compile_model(blob, name="m")
    if cm.backend != "numba":                          # one-column PROBIT: onnxruntime's output is undefined
        return
    X = edge_data(rng, 300, 3)
    X[:3] = [[0, 0, 0], [1e3, 0, 0], [-1e3, 1, 1]]
    _check(cm, X, atol=1e-4 if post == "PROBIT" else 1e-5)


def _pipeline(replaced: float):
    """Every elementwise op the straight block unrolls: each column is an output, and the
    columns that stay finite also feed a three-target linear regressor."""
    init = [numpy_helper.from_array(np.array([0.5, -1.0, 2.0], np.float32), "c3"),
            numpy_helper.from_array(np.array([0, 2], np.int64), "cols")]
    nodes = [
        h.make_node("Imputer", ["X"], ["imp"], domain=ML, imputed_value_floats=[0.25, -1.0, 2.0],
                    replaced_value_float=replaced),
        h.make_node("Scaler", ["imp"], ["sc"], domain=ML, offset=[0.1, 0.2, -0.3], scale=[2.0, 0.5, 1.5]),
        h.make_node("Binarizer", ["sc"], ["bin"], domain=ML, threshold=0.5),
        h.make_node("Add", ["sc", "c3"], ["add"]), h.make_node("Sub", ["c3", "sc"], ["sub"]),
        h.make_node("Mul", ["add", "sub"], ["mul"]), h.make_node("Div", ["mul", "c3"], ["div"]),
        h.make_node("Sigmoid", ["div"], ["sig"]), h.make_node("Tanh", ["sc"], ["tanh"]),
        h.make_node("Relu", ["sub"], ["relu"]), h.make_node("Abs", ["sub"], ["abs"]),
        h.make_node("Neg", ["abs"], ["neg"]), h.make_node("Exp", ["neg"], ["exp"]),
        h.make_node("Log", ["relu"], ["log"]), h.make_node("Sqrt", ["sub"], ["sqrt"]),
        h.make_node("Cast", ["imp"], ["xi"], to=T.INT64), h.make_node("Cast", ["xi"], ["xf"], to=T.FLOAT),
        h.make_node("Cast", ["sub"], ["xb"], to=T.BOOL), h.make_node("Cast", ["xb"], ["bf"], to=T.FLOAT),
        h.make_node("Div", ["sc", "xf"], ["dz"]),                      # by zero: ±inf, NaN
        h.make_node("Gather", ["xi", "cols"], ["gi"], axis=1),
        h.make_node("OneHotEncoder", ["gi"], ["oh"], domain=ML, cats_int64s=[-1, 0, 1, 3], zeros=1),
        h.make_node("Flatten", ["oh"], ["ohf"], axis=1),
        h.make_node("Concat", ["bin", "sig", "tanh", "exp", "log", "sqrt", "xf", "bf", "dz", "ohf"], ["all"], axis=1),
        h.make_node("Concat", ["sig", "tanh", "exp", "bf", "ohf"], ["finite"], axis=1),
        h.make_node("LinearRegressor", ["finite"], ["y"], domain=ML, targets=3, post_transform="NONE",
                    coefficients=list(np.random.default_rng(3).normal(0, 1, 3 * 20).astype(np.float32)),
                    intercepts=[0.5, -0.25, 1.0]),
    ]
    return model(nodes, [h.make_tensor_value_info("X", T.FLOAT, [None, 3])],
                 [h.make_tensor_value_info("y", T.FLOAT, [None, 3]),
                  h.make_tensor_value_info("all", T.FLOAT, [None, 35])], init)


@pytest.fixture(scope="module")
def pipelines():
    return [kernel.compile_model(_pipeline(r), name="m") for r in (float("nan"), 0.5)]


def test_every_elementwise_op(pipelines):
    rng = np.random.default_rng(0)
    X = rng.normal(0, 2, (400, 3)).astype(np.float32)
    X[rng.random(X.shape) < 0.1] = np.nan
    X[:4] = [[0.1, 0.2, -0.3], [0.5, 0.5, 0.5], [0, 0, 0], [3, -1, 1]]   # Scaler to 0, Imputer hits, categories
    for cm, replaced in zip(pipelines, (np.nan, 0.5)):
        # a NaN the imputer keeps fails onnxruntime's Binarizer (and is cast to int64 -2**63 there,
        # NaN in the interpreter): those rows are compared with the interpreter only
        rows = slice(None) if np.isnan(replaced) else ~np.isnan(X).any(axis=1)
        _check(cm, X, atol=1e-4, rows=rows)
        assert np.isfinite(_block(cm, X)[rows, :3]).all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(X=st.lists(st.lists(st.one_of(st.sampled_from([float(v) for v in GRID] + [0.25, -1.0, 3.0, 1e30, -1e30]),
                                     st.floats(-1e6, 1e6, width=32), st.just(float("nan")),
                                     st.just(float("inf")), st.just(float("-inf"))),
                           min_size=3, max_size=3), min_size=1, max_size=30))
def test_generated_rows_score_as_the_interpreter(pipelines, X):
    X = np.array(X, np.float32)
    for cm in pipelines:
        assert np.array_equal(_block(cm, X), cm.score(X), equal_nan=True)
