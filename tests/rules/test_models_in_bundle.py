"""A model in the middle of a bundle: it reads a book column and two upstream ruleset outputs
(one numeric, one enum as a category) and a later ruleset reads its score; all fused."""
import json

import numpy as np
import onnx
import pyarrow as pa
from onnx import TensorProto as T
from onnx import helper as h

import kernel

from .conftest import AS_OF
from .test_bundle import ruleset, write

PROFILE = ruleset("profile", "{model_year: int, dpd: int}",
                  "{age: {type: int, default: 0}, band: {enum: [LOW, HIGH], default: LOW}}",
                  "- id: profile\n  when: true\n  then: {age: year(as_of) - model_year, band: \"HIGH if dpd > 30 else LOW\"}\n")
DECISION = ruleset("decision", "{price_model.price: float, profile.age: int}",
                   "{cheap: {type: bool, default: false}}",
                   "- id: cheap\n  when: price_model.price < 1000 and profile.age > 3\n  then: {cheap: true}\n")


def _price_model() -> bytes:
    """price = 5000 - 400 * age - 0.01 * mileage + 700 * (band index), as MatMul + Add."""
    weights = h.make_tensor("W", T.FLOAT, [3, 1], [-400.0, -0.01, 700.0])
    bias = h.make_tensor("B", T.FLOAT, [1], [5000.0])
    graph = h.make_graph([h.make_node("MatMul", ["X", "W"], ["XW"]), h.make_node("Add", ["XW", "B"], ["Y"])],
                         "price", [h.make_tensor_value_info("X", T.FLOAT, [None, 3])],
                         [h.make_tensor_value_info("Y", T.FLOAT, [None, 1])], initializer=[weights, bias])
    m = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    for key, value in {"features": json.dumps([{"name": "profile.age"}, {"name": "mileage_km"},
                                                {"name": "profile.band", "kind": "category",
                                                 "categories": ["LOW", "HIGH"]}]),
                       "outputs": json.dumps([{"name": "price", "source": "Y", "type": "float"}]),
                       "version": "0.1"}.items():
        p = m.metadata_props.add()
        p.key, p.value = key, value
    onnx.checker.check_model(m)
    return m.SerializeToString()


def test_a_model_between_rulesets(tmp_path):
    write(tmp_path, a_decision=DECISION, z_profile=PROFILE)
    (tmp_path / "price_model.onnx").write_bytes(_price_model())
    k = kernel.Kernel.load(tmp_path)
    assert k.nodes == ("profile", "price_model", "decision")
    assert k.version["price_model"] == "0.1"
    rng = np.random.default_rng(5)
    n = 5000
    book = pa.table({"model_year": pa.array(rng.integers(2010, 2027, n)),
                     "dpd": pa.array(rng.integers(0, 90, n), mask=rng.random(n) < 0.05),
                     "mileage_km": pa.array(rng.integers(0, 300_000, n).astype(float), mask=rng.random(n) < 0.05)})
    out = k.decide(book, AS_OF)
    age = AS_OF.year - book.column("model_year").to_numpy()
    # a null dpd makes the `if` take its else branch: LOW
    band = np.where(book.column("dpd").fill_null(0).to_numpy() > 30, 1.0, 0.0)
    expected = 5000 - 400 * age - 0.01 * book.column("mileage_km").to_numpy(zero_copy_only=False) + 700 * band
    got = np.array(out.column("price_model.price").to_pylist(), dtype=float)
    known = ~np.isnan(expected)
    assert np.allclose(got[known], expected[known], rtol=1e-5, atol=0.05)      # float32 arithmetic
    assert np.isnan(got[~known]).all()          # a null feature reaches the model as NaN → null
    reference = k._reference(book, AS_OF, model_outputs=out)
    assert out.column("decision.cheap").to_pylist() == reference.column("decision.cheap").to_pylist()
    assert any(out.column("decision.cheap").to_pylist())
    ort = k.decide(book.slice(0, 200), AS_OF, engine="reference")
    assert np.allclose(np.array(ort.column("price_model.price").to_pylist(), dtype=float)[known[:200]],
                       got[:200][known[:200]], rtol=1e-5, atol=0.05)
