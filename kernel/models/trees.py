"""Tree ensembles (ai.onnx.ml TreeEnsembleClassifier / TreeEnsembleRegressor) → block layouts.

Two layouts, chosen per ensemble (docs/models.md explains them and their measured speed):

**Padded** (every tree no deeper than :data:`PADDED_MAX_DEPTH`, modes LEQ/LT/GTE/GT): each tree
becomes a complete binary tree of the ensemble's depth D, stored breadth-first (node k has
children 2k+1 and 2k+2); a leaf above depth D is repeated below it, so every descent takes
exactly D branch-free steps ``k = 2k + 1 + (x[f[k]] <= c[k])``. Every node is rewritten into
that one comparison, exactly:

- its true/false children are placed so that the *first* child is the one a missing value
  (NaN) takes — NaN compares false, so it always falls to the first child;
- ``x < t`` becomes ``x <= c`` with c the largest float32 below t (inputs are float32, as in
  onnxruntime); ``x >= t`` / ``x > t`` compare the negated feature ``-x`` (the block carries
  ``[x, -x]`` when any node needs it), so BRANCH_GTE/GT and missing-value tracks stay exact.

**General** (deeper trees, BRANCH_EQ/NEQ, NaN thresholds): flat node arrays with per-node
mode, missing-track flag and both children; a loop per row walks to the leaf.

Leaves hold one float32 per target/class (weights for the same target summed) and a bitmask
of the targets they carry (onnxruntime distinguishes "no score" from 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import kernels as K
from .errors import Unsupported
from .onnx_proto import attribute_value

PADDED_MAX_DEPTH = 10
MASKS_MAX_DEPTH = 6     # 2**6 leaves fit one int64 mask
_MODES = {"BRANCH_LEQ": K.MODE_LEQ, "BRANCH_LT": K.MODE_LT, "BRANCH_GTE": K.MODE_GTE,
          "BRANCH_GT": K.MODE_GT, "BRANCH_EQ": K.MODE_EQ, "BRANCH_NEQ": K.MODE_NEQ}
_POSTS = {"NONE": K.POST_NONE, "LOGISTIC": K.POST_LOGISTIC, "SOFTMAX": K.POST_SOFTMAX,
          "SOFTMAX_ZERO": K.POST_SOFTMAX_ZERO, "PROBIT": K.POST_PROBIT}
_AGGS = {"AVERAGE": K.AGG_AVERAGE, "SUM": K.AGG_SUM, "MIN": K.AGG_MIN, "MAX": K.AGG_MAX}
_F32_INF = np.float32(np.inf)


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def post_transform(attrs: dict) -> int:
    name = _text(attrs.get("post_transform", b"NONE"))
    if name not in _POSTS:
        raise Unsupported(f"unknown post_transform {name!r}")
    return _POSTS[name]


@dataclass
class Ensemble:
    """A parsed ensemble, ready to lower: the arrays the tree kernel reads plus its settings."""

    layout: int                 # kernels.LAYOUT_MASKS | LAYOUT_DESCENT | LAYOUT_GENERAL
    n_trees: int
    depth: int
    negated: bool               # the block needs [x, -x]
    n_targets: int
    aggregate: int
    post: int
    feat: np.ndarray            # int64
    thr: np.ndarray             # float32
    leaves: np.ndarray          # float32 [n_leaves * n_targets]
    leaf_has: np.ndarray        # int64 [n_leaves] bitmask of targets present
    need_has: bool
    leaves_per_tree: int        # padded: 2**depth; general: 0
    modes: np.ndarray           # general: per-node mode | 8 (missing track); masks: keep masks
    true_child: np.ndarray
    false_child: np.ndarray
    roots: np.ndarray
    base: np.ndarray            # float32
    classifier: bool
    labels: np.ndarray          # int64 class labels (classifier)
    binary_case: bool
    all_positive: bool
    const_mask: int = 0                       # the leaves' target mask when they all share it
    active: np.ndarray = None                 # targets stored in the leaves (SUM/AVERAGE)


def _pred32(v: np.float32) -> np.float32:
    """The largest float32 strictly below v; NaN (never <=) when there is none."""
    if v == -_F32_INF:
        return np.float32(np.nan)
    return np.nextafter(np.float32(v), np.float32(-np.inf), dtype=np.float32)


def _one_comparison(mode: int, track_true: bool, t: np.float32):
    """(negate feature, c, second child is the true branch) for ``x' <= c`` — see module doc."""
    neg_t = np.float32(-t)
    table = {
        (K.MODE_LEQ, False): (False, t, True), (K.MODE_LEQ, True): (True, _pred32(neg_t), False),
        (K.MODE_LT, False): (False, _pred32(t), True), (K.MODE_LT, True): (True, neg_t, False),
        (K.MODE_GTE, False): (True, neg_t, True), (K.MODE_GTE, True): (False, _pred32(t), False),
        (K.MODE_GT, False): (True, _pred32(neg_t), True), (K.MODE_GT, True): (False, t, False),
    }
    return table[(mode, track_true)]


def parse(attrs: dict, classifier: bool, n_features: int) -> Ensemble:
    for key in attrs:
        if key.endswith("_as_tensor"):
            raise Unsupported(f"{key}: double-precision tree attributes are not compiled")
    tree_ids = list(attrs.get("nodes_treeids", []))
    node_ids = list(attrs.get("nodes_nodeids", []))
    feature_ids = list(attrs.get("nodes_featureids", []))
    values = np.asarray(attrs.get("nodes_values", []), np.float32)
    modes = [_text(m) for m in attrs.get("nodes_modes", [])]
    true_ids = list(attrs.get("nodes_truenodeids", []))
    false_ids = list(attrs.get("nodes_falsenodeids", []))
    tracks = list(attrs.get("nodes_missing_value_tracks_true", []))
    n_nodes = len(tree_ids)
    if not n_nodes or any(len(x) != n_nodes for x in (node_ids, feature_ids, values, modes, true_ids, false_ids)):
        raise Unsupported("node attributes of unequal lengths")
    prefix = "class_" if classifier else "target_"
    t_ids = list(attrs.get(prefix + "ids", []))
    t_nodes = list(attrs.get(prefix + "nodeids", []))
    t_trees = list(attrs.get(prefix + "treeids", []))
    t_weights = np.asarray(attrs.get(prefix + "weights", []), np.float32)
    if classifier:
        if attrs.get("classlabels_strings"):
            raise Unsupported("string class labels")
        labels = np.asarray(attrs.get("classlabels_int64s", []), np.int64)
        n_targets = len(labels)
        if n_targets < 2:
            raise Unsupported("a classifier with fewer than two classes")
        aggregate = K.AGG_SUM
    else:
        labels = np.zeros(0, np.int64)
        n_targets = int(attrs.get("n_targets", 1))
        name = _text(attrs.get("aggregate_function", b"SUM"))
        if name not in _AGGS:
            raise Unsupported(f"unknown aggregate_function {name!r}")
        aggregate = _AGGS[name]
    if np.any(np.abs(labels) >= 2 ** 24):
        raise Unsupported("class labels beyond 2**24 (the block stores labels as float32)")
    if n_targets > 62:
        raise Unsupported(f"{n_targets} targets (the block keeps a 62-bit mask per row)")
    if any(c < 0 or c >= n_targets for c in t_ids):
        raise Unsupported("a class/target id outside the class list")
    if any(f < 0 or f >= n_features for m, f in zip(modes, feature_ids) if m != "LEAF"):
        raise Unsupported("a node reads a feature beyond the input's width")
    post = post_transform(attrs)
    base = np.asarray(attrs.get("base_values", []), np.float32)

    # trees in the order onnxruntime visits them: runs of equal tree id, in node order
    trees: list[int] = []
    for i, t in enumerate(tree_ids):
        if not trees or tree_ids[trees[-1]] != t:
            trees.append(i)
    if len({tree_ids[i] for i in trees}) != len(trees):
        raise Unsupported("a tree's nodes are not listed together")
    index = {(t, n): i for i, (t, n) in enumerate(zip(tree_ids, node_ids))}

    weights: dict[int, list] = {}
    order = sorted(range(len(t_ids)), key=lambda j: (t_trees[j], t_nodes[j], j))
    for j in order:
        i = index.get((t_trees[j], t_nodes[j]))
        if i is not None and modes[i] == "LEAF":
            weights.setdefault(i, []).append((t_ids[j], t_weights[j]))

    def leaf_payload(i):
        vals = np.zeros(n_targets, np.float32)
        mask = 0
        ws = weights.get(i, [])
        if not classifier and n_targets == 1:
            return np.array([ws[0][1] if ws else 0], np.float32), 1
        for c, w in ws:
            vals[c] = np.float32(vals[c] + w)
            mask |= 1 << c
        return vals, mask

    def child(i, which):
        target = (true_ids if which else false_ids)[i]
        j = index.get((tree_ids[i], target))
        if j is None or j == i:
            raise Unsupported("a node points to a missing node or to itself")
        return j

    def depth_of(root):
        depth, stack, seen = 0, [(root, 0)], 0
        while stack:
            i, d = stack.pop()
            seen += 1
            if seen > n_nodes or d > 64:
                raise Unsupported("a tree deeper than 64 levels or with a cycle")
            if modes[i] == "LEAF":
                depth = max(depth, d)
            else:
                stack.append((child(i, True), d + 1))
                stack.append((child(i, False), d + 1))
        return depth

    # (a padded ensemble of single leaves gets one level all the same: a node whose two
    # children carry the same payload, so every padded descent has a node to compare)
    depth = max(depth_of(r) for r in trees)
    simple_modes = all(m in ("LEAF", "BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT") for m in modes)
    for m in modes:
        if m != "LEAF" and m not in _MODES:
            raise Unsupported(f"unknown node mode {m!r}")
    finite = not np.any(np.isnan(values[[i for i, m in enumerate(modes) if m != "LEAF"]])) if n_nodes else True
    padded = depth <= PADDED_MAX_DEPTH and simple_modes and finite

    def track(i):
        return i < len(tracks) and tracks[i] == 1

    masks_seen = []
    if padded:
        depth = max(depth, 1)
        n_inner, n_leaf = (1 << depth) - 1, 1 << depth
        feat = np.zeros(len(trees) * n_inner, np.int64)
        thr = np.zeros(len(trees) * n_inner, np.float32)
        leaves = np.zeros(len(trees) * n_leaf * n_targets, np.float32)
        leaf_has = np.zeros(len(trees) * n_leaf, np.int64)
        negated = False
        for t, root in enumerate(trees):
            stack = [(root, 0, 0)]
            while stack:
                i, k, d = stack.pop()
                if modes[i] == "LEAF":
                    vals, mask = leaf_payload(i)
                    masks_seen.append(mask)
                    # the leaf's whole subtree of the complete tree carries its payload
                    first, count = k, 1
                    for _ in range(depth - d):
                        first, count = 2 * first + 1, count * 2
                    for leaf_k in range(first, first + count):
                        pos = t * n_leaf + leaf_k - n_inner
                        leaves[pos * n_targets:(pos + 1) * n_targets] = vals
                        leaf_has[pos] = mask
                    continue
                neg, c, second_true = _one_comparison(_MODES[modes[i]], track(i), values[i])
                negated |= neg
                feat[t * n_inner + k] = feature_ids[i] + (n_features if neg else 0)
                thr[t * n_inner + k] = c
                first_child, second_child = ((child(i, False), child(i, True)) if second_true
                                             else (child(i, True), child(i, False)))
                stack.append((first_child, 2 * k + 1, d + 1))
                stack.append((second_child, 2 * k + 2, d + 1))
        # padded inner nodes below a leaf keep feature 0, threshold 0: either way leads to
        # the same repeated payload
        empty = np.zeros(0, np.int64)
        layout = K.LAYOUT_MASKS if depth <= MASKS_MAX_DEPTH else K.LAYOUT_DESCENT
        keep = _keep_masks(depth) if layout == K.LAYOUT_MASKS else empty
        ens = Ensemble(layout, len(trees), depth, negated, n_targets, aggregate, post, feat, thr, leaves,
                       leaf_has, False, n_leaf, keep, empty, empty, empty, base, classifier, labels,
                       False, False)
    else:
        inner = [i for i in range(n_nodes) if modes[i] != "LEAF"]
        pos = {i: p for p, i in enumerate(inner)}
        leaf_list = [i for i in range(n_nodes) if modes[i] == "LEAF"]
        leaf_pos = {i: p for p, i in enumerate(leaf_list)}

        def ref(i):
            return pos[i] if i in pos else -leaf_pos[i] - 1

        feat = np.array([feature_ids[i] for i in inner], np.int64)
        thr = np.array([values[i] for i in inner], np.float32)
        mode_arr = np.array([_MODES[modes[i]] | (8 if track(i) else 0) for i in inner], np.int64)
        true_c = np.array([ref(child(i, True)) for i in inner], np.int64)
        false_c = np.array([ref(child(i, False)) for i in inner], np.int64)
        roots = np.array([ref(r) for r in trees], np.int64)
        leaves = np.zeros(len(leaf_list) * n_targets, np.float32)
        leaf_has = np.zeros(len(leaf_list), np.int64)
        for p, i in enumerate(leaf_list):
            vals, mask = leaf_payload(i)
            masks_seen.append(mask)
            leaves[p * n_targets:(p + 1) * n_targets] = vals
            leaf_has[p] = mask
        ens = Ensemble(K.LAYOUT_GENERAL, len(trees), depth, False, n_targets, aggregate, post, feat, thr, leaves,
                       leaf_has, False, 0, mode_arr, true_c, false_c, roots, base, classifier,
                       labels, False, False)
    ens.need_has = len(set(masks_seen)) > 1
    ens.const_mask = masks_seen[0] if masks_seen else 0
    ens.active = np.arange(n_targets, dtype=np.int64)
    union = 0
    for m in masks_seen:
        union |= m
    active = [c for c in range(n_targets) if union >> c & 1]
    if aggregate in (K.AGG_SUM, K.AGG_AVERAGE) and len(active) < n_targets:
        # store and add only the targets some leaf carries (binary boosting: one of two)
        ens.leaves = ens.leaves.reshape(-1, n_targets)[:, active].ravel().copy()
        ens.active = np.asarray(active, np.int64)
    if classifier:
        ens.binary_case = n_targets == 2 and len(set(t_ids)) == 1
        ens.all_positive = not bool(np.any(t_weights < 0))
        _check_classifier(ens, masks_seen)
    return ens


def pack_trees(feat, thr, leaves, n_trees: int, depth: int) -> np.ndarray:
    """The padded trees of one summed target as int64 records for one row's descent
    (``kernels._rows_descent_sum``): per tree, its top ``depth - 1`` levels breadth-first, one word
    per node (feature id in the high half, float32 threshold bits in the low half), padded to
    ``2**(depth-1)`` words, then per bottom node its word and the word of its two leaves' float32
    bits (first child low, second high): ``3 * 2**(depth-1)`` words per tree. From depth 4 a
    tree's block is a multiple of 64 bytes, so (the pool aligned) one descent touches its
    top's cache lines and one bottom line — two lines for the shipped depth-4 trees, where the
    separate int64 feature, float32 threshold and leaf arrays took five or six."""
    top = 1 << (depth - 1)
    words = 3 * top
    n_inner, n_leaf = (1 << depth) - 1, 1 << depth
    node = (np.asarray(feat, np.int64).reshape(n_trees, n_inner) << 32) | \
        np.asarray(thr, np.float32).view(np.uint32).astype(np.int64).reshape(n_trees, n_inner)
    pair = np.asarray(leaves, np.float32).view(np.uint32).astype(np.uint64).reshape(n_trees, n_leaf // 2, 2)
    pairs = ((pair[:, :, 1] << np.uint64(32)) | pair[:, :, 0]).view(np.int64)
    out = np.zeros((n_trees, words), np.int64)
    out[:, :top - 1] = node[:, :top - 1]
    out[:, top::2] = node[:, top - 1:]
    out[:, top + 1::2] = pairs
    return out.ravel()


def _keep_masks(depth: int) -> np.ndarray:
    """Per node k of a complete tree: the leaves kept when its comparison holds (the second
    child's side), then those kept when it does not (the first child's side), as int64 masks."""
    n_inner, n_leaf = (1 << depth) - 1, 1 << depth
    everything = (1 << n_leaf) - 1
    second, first = [], []
    for k in range(n_inner):
        level = (k + 1).bit_length() - 1
        lo = k
        for _ in range(depth - level):
            lo = 2 * lo + 1
        lo -= n_inner
        half = (1 << (depth - level)) // 2
        first_side = ((1 << half) - 1) << lo
        second_side = ((1 << half) - 1) << (lo + half)
        second.append(everything & ~first_side)
        first.append(everything & ~second_side)
    as_int64 = [v - (1 << 64) if v >= 1 << 63 else v for v in second + first]
    return np.array(as_int64, np.int64)


def _check_classifier(ens: Ensemble, masks: list) -> None:
    """Reject the few configurations whose onnxruntime output is undefined (not reproducible)."""
    nb = len(ens.base)
    if ens.n_targets > 2 and nb > ens.n_targets:
        raise Unsupported("more base_values than classes")
    if ens.n_targets == 2:
        class1_always = all(m & 2 for m in masks)
        single_column = not class1_always and nb != 2
        if single_column and ens.post == K.POST_PROBIT:
            raise Unsupported("PROBIT on a binary ensemble scoring one class (onnxruntime writes one column)")
        if single_column and not ens.binary_case and nb == 1:
            raise Unsupported("binary ensemble with one base value and leaves without class 1")


def node_attributes(node) -> dict:
    return {a.name: attribute_value(a) for a in node.attribute}
