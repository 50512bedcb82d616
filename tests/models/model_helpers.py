"""Builders shared by the model tests: hand-made ONNX graphs and edge-value data."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h

GRID = np.array([-2.5, -1.0, 0.0, 0.5, 1.0, 3.0], np.float32)
EDGES = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, np.nextafter(np.float32(0.5), np.float32(1)),
                  np.nextafter(np.float32(0.5), np.float32(0))], np.float32)


def edge_data(rng, rows: int, n_features: int, nan: bool = True) -> np.ndarray:
    """Values on the thresholds' grid (exact hits), next to them, infinite, huge, and NaN."""
    pool = np.concatenate([GRID, EDGES if nan else EDGES[1:]])
    X = rng.choice(pool, size=(rows, n_features)).astype(np.float32)
    mixed = rng.random((rows, n_features)) < 0.3
    X[mixed] = rng.normal(0, 2, mixed.sum()).astype(np.float32)
    return X


def model(nodes, inputs, outputs, initializers=(), ml_opset=3, opset=17, metadata=None) -> bytes:
    g = h.make_graph(list(nodes), "g", list(inputs), list(outputs), initializer=list(initializers))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset), h.make_opsetid("ai.onnx.ml", ml_opset)])
    m.ir_version = 8
    for k, v in (metadata or {}).items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    return m.SerializeToString()


def random_ensemble(rng, *, n_trees, max_depth, n_features, n_targets, classifier, modes=("BRANCH_LEQ",),
                    tracks=False, post="NONE", aggregate="SUM", base=None, class_ids=None, labels=None,
                    multi_weights=False) -> bytes:
    """A TreeEnsemble{Classifier,Regressor} of random trees over GRID thresholds."""
    a = {k: [] for k in ("treeids", "nodeids", "featureids", "values", "modes", "true", "false", "tracks")}
    w = {k: [] for k in ("ids", "nodeids", "treeids", "weights")}
    targets = list(class_ids) if class_ids is not None else list(range(n_targets))
    for t in range(n_trees):
        counter = [0]

        def build(depth):
            nid = counter[0]
            counter[0] += 1
            idx = len(a["nodeids"])
            for k in a:
                a[k].append(0)
            a["treeids"][idx], a["nodeids"][idx] = t, nid
            if depth >= max_depth or (depth > 0 and rng.random() < 0.25):
                a["modes"][idx] = "LEAF"
                chosen = rng.choice(targets, size=min(len(targets), 1 + int(multi_weights and rng.random() < .5)),
                                    replace=False)
                for c in chosen:
                    w["ids"].append(int(c)); w["nodeids"].append(nid); w["treeids"].append(t)
                    w["weights"].append(float(rng.choice([-1.5, -0.25, 0.0, 0.3, 0.7, 2.0]) + rng.normal(0, .1)))
                return nid
            a["modes"][idx] = str(rng.choice(modes))
            a["featureids"][idx] = int(rng.integers(0, n_features))
            a["values"][idx] = float(rng.choice(GRID))
            a["tracks"][idx] = int(tracks and rng.random() < 0.5)
            a["true"][idx] = build(depth + 1)
            a["false"][idx] = build(depth + 1)
            return nid

        build(0)
    attrs = dict(nodes_treeids=a["treeids"], nodes_nodeids=a["nodeids"], nodes_featureids=a["featureids"],
                 nodes_values=[float(v) for v in a["values"]], nodes_modes=a["modes"], nodes_truenodeids=a["true"],
                 nodes_falsenodeids=a["false"], post_transform=post)
    if tracks:
        attrs["nodes_missing_value_tracks_true"] = a["tracks"]
    if base is not None:
        attrs["base_values"] = list(base)
    x = h.make_tensor_value_info("X", T.FLOAT, [None, n_features])
    if classifier:
        attrs.update(class_ids=w["ids"], class_nodeids=w["nodeids"], class_treeids=w["treeids"],
                     class_weights=w["weights"], classlabels_int64s=list(labels if labels is not None else range(n_targets)))
        node = h.make_node("TreeEnsembleClassifier", ["X"], ["label", "probabilities"], domain="ai.onnx.ml", **attrs)
        outs = [h.make_tensor_value_info("label", T.INT64, [None]),
                h.make_tensor_value_info("probabilities", T.FLOAT, [None, n_targets])]
    else:
        attrs.update(target_ids=w["ids"], target_nodeids=w["nodeids"], target_treeids=w["treeids"],
                     target_weights=w["weights"], n_targets=n_targets, aggregate_function=aggregate)
        node = h.make_node("TreeEnsembleRegressor", ["X"], ["variable"], domain="ai.onnx.ml", **attrs)
        outs = [h.make_tensor_value_info("variable", T.FLOAT, [None, n_targets])]
    return model([node], [x], outs)


def assert_same(compiled, X, atol=1e-5, rtol=1e-5):
    """Compiled outputs equal onnxruntime's: values within tolerance, integer outputs equal."""
    got = compiled.run(X)
    sess = compiled._session
    feeds = compiled._feeds(compiled.matrix(X))
    want = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    assert set(got) == set(want)
    for name, w in want.items():
        g = got[name]
        assert g.shape == w.shape, (name, g.shape, w.shape)
        assert g.dtype == w.dtype, (name, g.dtype, w.dtype)
        if w.dtype.kind in "iub":
            bad = np.flatnonzero((g != w).reshape(len(X), -1).any(axis=1))
            assert not len(bad), f"{name}: rows {bad[:5]} differ: {g[bad[:3]]} vs {w[bad[:3]]}; X={X[bad[:1]]}"
        else:
            close = np.isclose(g, w, atol=atol, rtol=rtol, equal_nan=True)
            bad = np.flatnonzero(~close.reshape(len(X), -1).all(axis=1))
            assert not len(bad), f"{name}: rows {bad[:5]} differ: {g[bad[:3]]} vs {w[bad[:3]]}; X={X[bad[:1]]}"
    return got


_ = onnx
