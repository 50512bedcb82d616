"""Bad model files, the onnxruntime fallback, and the shipped models."""
from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h

import kernel
from kernel.models import ModelError
from model_helpers import model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIPPED = os.path.join(ROOT, "models")


def _scaler(features=None, opset=17, ml_opset=3):
    node = h.make_node("Scaler", ["X"], ["y"], domain="ai.onnx.ml", offset=[1.0, 2.0], scale=[0.5, 0.25])
    meta = {"features": json.dumps(features)} if features is not None else None
    return model([node], [h.make_tensor_value_info("X", T.FLOAT, [None, 2])],
                 [h.make_tensor_value_info("y", T.FLOAT, [None, 2])], opset=opset, ml_opset=ml_opset, metadata=meta)


def test_truncated_file_names_the_file(tmp_path):
    path = tmp_path / "pd_model.onnx"
    with open(os.path.join(SHIPPED, "pd_model.onnx"), "rb") as fh:
        path.write_bytes(fh.read()[:5000])
    with pytest.raises(ModelError) as e:
        kernel.compile_model(path)
    assert str(path) in str(e.value) and "truncated" in str(e.value)


@pytest.mark.parametrize("content,problem", [(b"", "empty"), (b"ruleset: x\n", "not an ONNX model"),
                                             (b"\x00" * 64, "not an ONNX model")])
def test_not_onnx(tmp_path, content, problem):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=problem) as e:
        kernel.compile_model(str(path))
    assert isinstance(e.value, kernel.PostloanError) and "bad.onnx" in str(e.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ModelError, match="no such file"):
        kernel.compile_model(tmp_path / "nope.onnx")
    with pytest.raises(ModelError, match="is a directory"):
        kernel.compile_model(tmp_path)


def test_wrong_opset():
    with pytest.raises(ModelError, match="opset 99 of ai.onnx is newer"):
        kernel.compile_model(_scaler(opset=99), name="m")
    with pytest.raises(ModelError, match="opset 9 of ai.onnx.ml is newer"):
        kernel.compile_model(_scaler(ml_opset=9), name="m")
    with pytest.raises(ModelError, match="older than supported"):
        kernel.compile_model(_scaler(opset=5), name="m")


def test_features_missing_from_the_contract():
    with pytest.raises(ModelError, match=r"feature 'bureau_scor' \(#2\) is not a column of the data contract.*did you mean 'bureau_score'"):
        kernel.compile_model(_scaler([{"name": "dpd"}, {"name": "bureau_scor"}]), name="m")
    with pytest.raises(ModelError, match="lists 1 features but the graph's inputs have 2 columns"):
        kernel.compile_model(_scaler([{"name": "dpd"}]), name="m")
    with pytest.raises(ModelError, match="numeric but book column 'brand'"):
        kernel.compile_model(_scaler([{"name": "dpd"}, {"name": "brand"}]), name="m")
    with pytest.raises(ModelError, match="lists no categories"):
        kernel.compile_model(_scaler([{"name": "dpd"}, {"name": "brand", "kind": "category"}]), name="m")
    ok = kernel.compile_model(_scaler([{"name": "dpd"}, {"name": "vehicle_profile.age_years"}]), name="m")
    assert [i.name for i in ok.inputs] == ["dpd", "vehicle_profile.age_years"]


def test_bad_model_name():
    with pytest.raises(ModelError, match="must match"):
        kernel.compile_model(_scaler(), name="PD-Model")


def test_unsupported_graph_falls_back_with_a_logged_reason(caplog):
    nodes = [h.make_node("Sin", ["X"], ["s"]),
             h.make_node("LinearRegressor", ["s"], ["y"], domain="ai.onnx.ml", coefficients=[1.0, -2.0], intercepts=[0.5])]
    blob = model(nodes, [h.make_tensor_value_info("X", T.FLOAT, [None, 2])], [h.make_tensor_value_info("y", T.FLOAT, [None, 1])])
    with caplog.at_level(logging.WARNING, logger="kernel.models"):
        cm = kernel.compile_model(blob, name="sine")
    assert cm.backend == "onnxruntime" and cm.block is None
    assert "Sin" in cm.fallback_reason and "Sin" in caplog.text and "onnxruntime" in caplog.text
    X = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    got = cm.run(X)
    want = 0.5 + np.sin(X[:, 0]) - 2 * np.sin(X[:, 1])
    assert got["y"].shape == (50, 1) and np.allclose(got["y"][:, 0], want, atol=1e-5)
    assert np.allclose(cm.score(X)[:, 0], want, atol=1e-5)
    assert [o.qualified for o in cm.outputs] == ["sine.y"]


@pytest.fixture(scope="module")
def shipped():
    return {n: kernel.compile_model(os.path.join(SHIPPED, f"{n}.onnx")) for n in ("pd_model", "rv_model")}


def test_shipped_models_compile_to_numba_with_the_contract(shipped):
    from kernel import schema
    pd, rv = shipped["pd_model"], shipped["rv_model"]
    assert pd.backend == rv.backend == "numba"
    assert [o.qualified for o in pd.outputs] == ["pd_model.probability", "pd_model.label"]
    assert [(o.qualified, o.type) for o in rv.outputs] == [("rv_model.price", "float")]
    book = schema.columns("book")
    for m in shipped.values():
        assert all(i.name in book for i in m.inputs)
        assert all(i.categories for i in m.inputs if i.kind == "category")
        for key in ("features", "outputs", "version", "metrics", "training_date", "seed"):
            assert key in m.metadata, key
        assert os.path.getsize(os.path.join(SHIPPED, f"{m.name}.onnx")) < 3 * 2 ** 20
        assert os.path.exists(os.path.join(SHIPPED, f"{m.name}.md"))
    assert pd.metadata["metrics"]["gradient-boosted trees"]["auc"] > 0.8
    assert not {"dpd", "overdue_amount", "dpd_30d_ago", "max_dpd_12m"} & {i.name for i in pd.inputs}
    only_bundle_models = sorted(f for f in os.listdir(SHIPPED) if f.endswith(".onnx"))
    assert only_bundle_models == ["pd_model.onnx", "rv_model.onnx"]


def test_shipped_models_score_the_book_like_onnxruntime(shipped, small_book):
    from kernel.models.features import feature_matrix
    for m in shipped.values():
        X = feature_matrix(small_book, m.inputs, m.name)
        block, ref = m.score(X), m.run_matrix(X)
        # onnxruntime sums the trees of a big batch in another order (float32): allow that
        # rounding relative to the largest value, not only to each value
        scale = np.maximum(np.abs(ref), 1.0) + np.abs(ref).max() / 10
        assert np.all(np.abs(block - ref) <= 1e-5 * scale)
    pd = shipped["pd_model"].score(feature_matrix(small_book, shipped["pd_model"].inputs))[:, 0]
    dpd = small_book.column("dpd").to_numpy()
    assert pd[dpd > 30].mean() > 3 * pd[dpd == 0].mean()      # the score separates


def test_train_is_deterministic_and_writes_models_and_cards(tmp_path, monkeypatch):
    from kernel.cli import main
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1780000000")
    outs = []
    for run in ("a", "b"):
        out = tmp_path / run
        out.mkdir()
        assert main(["train", "--out", str(out), "--seed", "3", "--pd-rows", "4000", "--rv-rows", "1500"]) == 0
        outs.append(out)
    for name in ("pd_model.onnx", "rv_model.onnx", "pd_model.md", "rv_model.md"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    card = (outs[0] / "pd_model.md").read_text()
    assert "German credit" in card and "AUC" in card and "Calibration" in card
    assert "SIMULATED" in (outs[0] / "rv_model.md").read_text()
    m = kernel.compile_model(outs[0] / "pd_model.onnx")
    assert m.metadata["seed"] == "3" and m.metadata["training_date"] == "2026-05-28"
