"""Bad model files, the onnxruntime fallback, and the shipped models."""
from __future__ import annotations

import datetime as dt
import json
import logging
import os

import numpy as np
import pyarrow as pa
import pytest
from onnx import TensorProto as T
from onnx import helper as h

import kernel
from kernel.models import ModelError
from model_helpers import model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIPPED = os.path.join(ROOT, "models")
AS_OF = dt.date(2026, 11, 28)


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
    outputs = {f"{rs.name}.{o.name}" for rs in _shipped_rulesets() for o in rs.ir.outputs}
    for m in shipped.values():
        assert all(i.name in book or i.name in outputs for i in m.inputs)
        assert all(i.categories for i in m.inputs if i.kind == "category")
        for key in ("features", "outputs", "version", "metrics", "training_date", "seed"):
            assert key in m.metadata, key
        assert os.path.getsize(os.path.join(SHIPPED, f"{m.name}.onnx")) < 3 * 2 ** 20
        assert os.path.exists(os.path.join(SHIPPED, f"{m.name}.md"))
    oot = pd.metadata["metrics"]["gradient-boosted trees"]["out_of_time"]
    assert oot["auc"] > 0.85 and oot["brier"] < 0.05 and "gini" in oot and "ks" in oot
    # forward-looking: the behaviour so far is a feature; what collectors record and do is not
    assert not {"overdue_amount", "reported_overdue_reason", "repossessed", "calls_7d"} & {i.name for i in pd.inputs}
    assert "61+ DPD" in pd.metadata["label"] and "6 months" in pd.metadata["label"]
    only_bundle_models = sorted(f for f in os.listdir(SHIPPED) if f.endswith(".onnx"))
    assert only_bundle_models == ["pd_model.onnx", "rv_model.onnx"]


def _shipped_rulesets():
    return [kernel.compile_ruleset(p) for p in sorted(os.listdir(os.path.join(ROOT, "rulesets")))
            if p.endswith(".yaml") for p in [os.path.join(ROOT, "rulesets", p)]]


def _with_vehicle_profile(book, as_of):
    """The book plus the age the rv_model reads, recomputed as rulesets/vehicle_profile.yaml
    states it: year of the decision date − model year, at least 0."""
    age = np.maximum(as_of.year - book.column("model_year").to_numpy(), 0)
    return book.append_column("vehicle_profile.age_years", pa.array(age))


def test_shipped_models_score_the_book_like_onnxruntime(shipped, small_book):
    from kernel.models.features import feature_matrix
    small_book = _with_vehicle_profile(small_book, AS_OF)
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
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        out.mkdir()
    arguments = ["train", "--seed", "3", "--pd-rows", "4000", "--rv-rows", "1500", "--out"]
    # a model linked from elsewhere stays a link, its target gets the new model (issue 10, item 13)
    shared = tmp_path / "shared_pd_model.onnx"
    shared.write_bytes(b"old")
    (outs[0] / "pd_model.onnx").symlink_to(shared)
    assert main(arguments + [str(outs[0])]) == 0
    assert (outs[0] / "pd_model.onnx").is_symlink() and shared.read_bytes() != b"old"
    # and in another process, whose string hashing differs (set orders must not leak into files)
    import subprocess
    import sys
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": ROOT}
    subprocess.run([sys.executable, "-m", "kernel"] + arguments + [str(outs[1])], env=env, check=True,
                   capture_output=True, cwd=ROOT)
    for name in ("pd_model.onnx", "rv_model.onnx", "pd_model.md", "rv_model.md"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    card = (outs[0] / "pd_model.md").read_text()
    assert "German credit" in card and "AUC" in card and "Calibration" in card
    assert "SIMULATED" in (outs[0] / "rv_model.md").read_text()
    m = kernel.compile_model(outs[0] / "pd_model.onnx")
    assert m.metadata["seed"] == "3" and m.metadata["training_date"] == "2026-05-28"


# ---- the residual-value model -------------------------------------------------------------------
def test_rv_model_reads_the_bundles_age_and_ends_in_exp(shipped):
    from kernel.models import training
    rv = shipped["rv_model"]
    assert [i.name for i in rv.inputs][:3] == ["vehicle_profile.age_years", "mileage_km", "purchase_price"]
    assert "model_year" not in {i.name for i in rv.inputs}
    assert rv.metadata["version"] == "3.0.0"
    assert {i.name for i in rv.inputs} >= {"region", "brand"} and "currency" not in {i.name for i in rv.inputs}
    import onnx
    graph = onnx.load(os.path.join(SHIPPED, "rv_model.onnx")).graph
    assert [n.op_type for n in graph.node][-2:] == ["Add", "Exp"] and graph.output[0].name == "price"
    # the age the model was trained on is the one the ruleset computes on the sale date
    cars = training.simulate_auctions(400, seed=1)
    table = pa.table({"model_year": cars["model_year"], "mileage_km": cars["mileage_km"],
                      "contract_date": pa.array([dt.date(2024, 1, 1)] * 400), "principal": cars["purchase_price"],
                      "purchase_price": cars["purchase_price"], "installments_paid": [0] * 400,
                      "term_months": [36] * 400, "insurance_expiry_date": pa.array([None] * 400, pa.date32())})
    profile = kernel.compile_ruleset(os.path.join(ROOT, "rulesets", "vehicle_profile.yaml"))
    age = profile.evaluate(table, dt.date(2026, 6, 30), engine="reference").column("vehicle_profile.age_years").to_numpy()
    assert np.array_equal(age, cars["vehicle_profile.age_years"])


def test_rv_model_never_prices_a_car_below_zero(shipped):
    """The worst cars the model can be asked about (old, worn, grade E, the cheapest models,
    extreme and missing numbers) all get a positive, finite price."""
    from kernel.models import training
    rv = shipped["rv_model"]
    cats = training.rv_categories()
    rng = np.random.default_rng(4)
    n = 5000
    X = np.empty((n, len(rv.inputs)), np.float32)
    X[:, 0] = rng.choice([0, 10, 15, 30, 80, np.nan], n)                            # age in years
    X[:, 1] = rng.choice([0, 150_000, 400_000, 2_000_000, np.nan], n)                # mileage
    X[:, 2] = rng.choice([1, 30_000, 60_000, 3_000_000, np.nan], n)                  # purchase price
    for j, feature in enumerate(rv.inputs[3:], 3):
        X[:, j] = rng.integers(-1, len(cats[feature.name]), n)                       # -1: unknown
    for price in (rv.score(X)[:, 0], rv.run_matrix(X)[:, 0]):
        assert np.all(np.isfinite(price)) and price.min() > 0


def test_a_valuation_follows_the_decision_date(shipped, small_book):
    """The same cars decided three years later are valued as three years older: the bundle
    feeds the model vehicle_profile.age_years of the decision date."""
    from kernel.models.features import feature_matrix
    rv, bundle = shipped["rv_model"], kernel.Kernel.load()
    book = small_book.slice(0, 300)
    now = bundle.decide(book, AS_OF).column("rv_model.price").to_numpy()
    later_date = dt.date(AS_OF.year + 3, AS_OF.month, AS_OF.day)
    later = bundle.decide(book, later_date).column("rv_model.price").to_numpy()
    X = feature_matrix(_with_vehicle_profile(book, AS_OF), rv.inputs)
    # the age vehicle_profile.yaml defines, three years on: year of the date − model year, ≥ 0
    X[:, 0] = np.maximum(later_date.year - book.column("model_year").to_numpy(), 0)
    np.testing.assert_allclose(later, rv.run_matrix(X)[:, 0], rtol=1e-5)
    assert np.median(later / now) < 0.85               # and worth less


def test_onnxruntime_checks_every_model_once(tmp_path, monkeypatch):
    """A graph onnxruntime rejects is an error even when the block could compile it (here a
    Scaler whose offset and scale differ in length); an accepted model is remembered by its
    content hash, so a warm start does not load onnxruntime again."""
    monkeypatch.setenv("POSTLOAN_CACHE_DIR", str(tmp_path))
    bad = model([h.make_node("Scaler", ["X"], ["y"], domain="ai.onnx.ml", offset=[1.0, 2.0, 3.0], scale=[0.5, 0.25])],
                [h.make_tensor_value_info("X", T.FLOAT, [None, 2])], [h.make_tensor_value_info("y", T.FLOAT, [None, 2])])
    with pytest.raises(ModelError, match="onnxruntime cannot load it"):
        kernel.compile_model(bad, name="bad")
    assert not (tmp_path / "models").exists() or not list((tmp_path / "models").iterdir())
    good = kernel.compile_model(_scaler(), name="good")
    assert good.backend == "numba"
    assert len(list((tmp_path / "models").glob("ort-*.ok"))) == 1
    again = kernel.compile_model(_scaler(), name="good")          # checked before: no new marker, same answer
    x = np.array([[1.0, 2.0]], np.float32)
    assert len(list((tmp_path / "models").glob("ort-*.ok"))) == 1
    np.testing.assert_allclose(again.run(x)["y"], good._session.run(None, {"X": x})[0])
