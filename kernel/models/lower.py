"""ONNX graph → block program (the model IR), lowered into the arrays :mod:`kernels` runs.

Every tensor of the graph becomes a *slot*: a run of columns of the block's float32 scratch
(``[rows, width]``; trailing dimensions flattened). Shape-only nodes (Identity, Reshape,
Flatten, Squeeze, Unsqueeze, a float Cast) just rename a slot; the others append one op to
the program. A node this module does not know raises :class:`Unsupported`, and the model
runs on onnxruntime instead.
"""
from __future__ import annotations

import numpy as np

from . import kernels as K
from . import trees
from .errors import Unsupported
from .onnx_proto import TensorProto, to_array
from .program import POOL_ALIGN, Program, Slot  # noqa: F401  (the IR's data, importable without onnx)

FLOAT_TYPES = {TensorProto.FLOAT: "float"}
INT_TYPES = {TensorProto.INT64: "int", TensorProto.INT32: "int"}
TYPE_NAMES = {TensorProto.FLOAT: "float", TensorProto.INT64: "int", TensorProto.INT32: "int",
              TensorProto.STRING: "category", TensorProto.BOOL: "bool", TensorProto.DOUBLE: "double"}
NUMPY_OF = {TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64, TensorProto.INT64: np.int64,
            TensorProto.INT32: np.int32, TensorProto.BOOL: np.bool_, TensorProto.STRING: object}


class _Lowering:
    def __init__(self, n_features: int):
        self.width = n_features
        self.ops: list[int] = []
        self.n_ops = 0
        self.ip: list[np.ndarray] = []
        self.ip_len = 0
        self.fp: list[np.ndarray] = []
        self.fp_len = 0
        self.values: dict[str, Slot] = {}
        self.consts: dict[str, np.ndarray] = {}

    # -- pools and scratch ---------------------------------------------------------------
    def alloc(self, width: int) -> int:
        col = self.width
        self.width += width
        return col

    def ipush(self, values, align: int = 1) -> int:
        """Append ``values`` to the int pool at an offset that is a multiple of ``align`` words."""
        arr = np.asarray(values, np.int64).ravel()
        if self.ip_len % align:
            self.ip.append(np.zeros(align - self.ip_len % align, np.int64))
            self.ip_len += align - self.ip_len % align
        off = self.ip_len
        self.ip.append(arr)
        self.ip_len += arr.size
        return off

    def fpush(self, values) -> int:
        arr = np.asarray(values, np.float32).ravel()
        off = self.fp_len
        self.fp.append(arr)
        self.fp_len += arr.size
        return off

    def emit(self, opcode: int, args) -> None:
        args = [int(a) for a in args]
        self.ops.extend([opcode, len(args), *args])
        self.n_ops += 1

    def new_slot(self, width: int, kind: str, dims: tuple) -> Slot:
        return Slot(self.alloc(width), width, kind, dims, tuple([None] * width))

    # -- operands -----------------------------------------------------------------------
    def slot(self, name: str, *kinds: str) -> Slot:
        if name not in self.values:
            if name in self.consts:
                raise Unsupported(f"constant operand {name!r} where a tensor is expected")
            raise Unsupported(f"unknown tensor {name!r}")
        s = self.values[name]
        if kinds and s.kind not in kinds:
            raise Unsupported(f"tensor {name!r} of type {s.kind} where {'/'.join(kinds)} is expected")
        return s

    def const(self, name: str) -> np.ndarray:
        if name not in self.consts:
            raise Unsupported(f"{name!r} must be a constant (initializer)")
        return self.consts[name]


def _attrs(node) -> dict:
    return trees.node_attributes(node)


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def lower(graph, input_slots: list[tuple[str, Slot]], n_features: int) -> Program:
    """Lower ``graph`` whose inputs occupy the first ``n_features`` scratch columns."""
    lw = _Lowering(n_features)
    for name, slot in input_slots:
        lw.values[name] = slot
    for init in graph.initializer:
        lw.consts[init.name] = to_array(init)
    for node in graph.node:
        handler = _HANDLERS.get((node.domain or "ai.onnx", node.op_type))
        if handler is None:
            raise Unsupported(f"operator {node.domain + '.' if node.domain else ''}{node.op_type} "
                              f"(node {node.name or node.output[0]!r}) is not compiled")
        try:
            handler(lw, node, _attrs(node))
        except Unsupported as e:
            raise Unsupported(f"{node.op_type} node {node.name or node.output[0]!r}: {e}") from None
    for out in graph.output:
        lw.slot(out.name)
    prog = np.array([n_features, lw.width, lw.n_ops, *lw.ops], np.int64)
    ipool = np.concatenate(lw.ip) if lw.ip else np.zeros(0, np.int64)
    fpool = np.concatenate(lw.fp) if lw.fp else np.zeros(0, np.float32)
    # keep pools non-empty so offsets into them stay valid array views
    ipool = np.concatenate([ipool, np.zeros(1, np.int64)])
    fpool = np.concatenate([fpool, np.zeros(1, np.float32)])
    return Program(prog, ipool, fpool, lw.values)


# ---- shape-only -------------------------------------------------------------------------
def _alias(lw, node, slot: Slot, dims: tuple) -> None:
    lw.values[node.output[0]] = Slot(slot.col, slot.width, slot.kind, dims, slot.categories)


def _identity(lw, node, a):
    s = lw.slot(node.input[0])
    _alias(lw, node, s, s.dims)


def _reshape(lw, node, a):
    s = lw.slot(node.input[0])
    shape = [int(v) for v in lw.const(node.input[1]).ravel()]
    if not shape:
        raise Unsupported("reshape to a scalar")
    if len(shape) == 1:
        if shape[0] not in (-1, 0) and shape[0] != 1 or s.width != 1:
            raise Unsupported("reshape that mixes rows")
        _alias(lw, node, s, ())
        return
    if shape[0] not in (-1, 0):
        raise Unsupported("reshape that fixes the number of rows")
    rest = [s.dims[i - 1] if v == 0 and i - 1 < len(s.dims) else v for i, v in enumerate(shape) if i > 0]
    known = int(np.prod([v for v in rest if v != -1])) if rest else 1
    if rest.count(-1) > 1 or (shape[0] == -1 and -1 in rest):
        raise Unsupported("reshape with two unknown dimensions")
    if -1 in rest:
        if known == 0 or s.width % known:
            raise Unsupported("reshape that mixes rows")
        rest[rest.index(-1)] = s.width // known
    if int(np.prod(rest)) != s.width:
        raise Unsupported("reshape that mixes rows")
    _alias(lw, node, s, tuple(rest))


def _flatten(lw, node, a):
    s = lw.slot(node.input[0])
    if int(a.get("axis", 1)) != 1:
        raise Unsupported("Flatten with axis other than 1")
    _alias(lw, node, s, (s.width,))


def _axes(lw, node, a):
    if "axes" in a:
        return [int(v) for v in a["axes"]]
    if len(node.input) > 1 and node.input[1]:
        return [int(v) for v in lw.const(node.input[1]).ravel()]
    return None


def _squeeze(lw, node, a):
    s = lw.slot(node.input[0])
    axes = _axes(lw, node, a)
    if s.dims == (1,) and axes in (None, [1], [-1]):
        _alias(lw, node, s, ())
    else:
        raise Unsupported("Squeeze other than [N, 1] → [N]")


def _unsqueeze(lw, node, a):
    s = lw.slot(node.input[0])
    axes = _axes(lw, node, a)
    if s.dims == () and axes in ([1], [-1]):
        _alias(lw, node, s, (1,))
    else:
        raise Unsupported("Unsqueeze other than [N] → [N, 1]")


def _two_d(s: Slot, what: str) -> None:
    if len(s.dims) != 1:
        raise Unsupported(f"{what} expects a 2-D tensor [N, width]")


# ---- column selection ----------------------------------------------------------------------
def _gather_cols(lw, node, cols: list[int], srcs: list[Slot], kind: str, dims: tuple, cats: tuple) -> None:
    out = lw.new_slot(len(cols), kind, dims)
    out.categories = cats
    lw.emit(K.OP_GATHER, [out.col, len(cols), lw.ipush(cols)])
    lw.values[node.output[0]] = out


def _concat(lw, node, a):
    slots = [lw.slot(n) for n in node.input]
    axis = int(a.get("axis", 1))
    if any(len(s.dims) != 1 for s in slots) or axis not in (1, -1):
        raise Unsupported("Concat other than 2-D along axis 1")
    kinds = {s.kind for s in slots}
    if len(kinds) != 1:
        raise Unsupported("Concat of mixed element types")
    cols = [s.col + j for s in slots for j in range(s.width)]
    cats = tuple(c for s in slots for c in s.categories)
    _gather_cols(lw, node, cols, slots, kinds.pop(), (len(cols),), cats)


def _select(lw, node, s: Slot, idx: np.ndarray, scalar: bool):
    idx = [int(i) + (s.width if i < 0 else 0) for i in np.atleast_1d(idx).ravel()]
    if any(i < 0 or i >= s.width for i in idx):
        raise Unsupported("index out of range")
    cats = tuple(s.categories[i] for i in idx)
    _gather_cols(lw, node, [s.col + i for i in idx], [s], s.kind, () if scalar else (len(idx),), cats)


def _gather(lw, node, a):
    s = lw.slot(node.input[0])
    _two_d(s, "Gather")
    if int(a.get("axis", 0)) not in (1, -1):
        raise Unsupported("Gather along rows")
    idx = lw.const(node.input[1])
    _select(lw, node, s, idx, idx.ndim == 0)


def _array_feature_extractor(lw, node, a):
    s = lw.slot(node.input[0])
    _two_d(s, "ArrayFeatureExtractor")
    _select(lw, node, s, lw.const(node.input[1]), False)


# ---- ai.onnx.ml preprocessing -----------------------------------------------------------------
def _numeric(lw, name) -> Slot:
    s = lw.slot(name, "float", "int", "bool")
    _two_d(s, "this operator")
    return s


def _scaler(lw, node, a):
    s = _numeric(lw, node.input[0])
    off, scale = list(a.get("offset", [])), list(a.get("scale", []))
    for v in (off, scale):
        if len(v) not in (0, 1, s.width):
            raise Unsupported("offset/scale length differs from the input width")
    out = lw.new_slot(s.width, "float", s.dims)
    lw.emit(K.OP_SCALER, [s.col, out.col, s.width, lw.fpush(off or [0]), len(off), lw.fpush(scale or [1]), len(scale)])
    lw.values[node.output[0]] = out


def _normalizer(lw, node, a):
    s = _numeric(lw, node.input[0])
    kind = {"MAX": K.NORM_MAX, "L1": K.NORM_L1, "L2": K.NORM_L2}.get(_text(a.get("norm", b"MAX")))
    if kind is None:
        raise Unsupported("unknown norm")
    out = lw.new_slot(s.width, "float", s.dims)
    lw.emit(K.OP_NORMALIZER, [s.col, out.col, s.width, kind])
    lw.values[node.output[0]] = out


def _imputer(lw, node, a):
    s = lw.slot(node.input[0], "float")
    _two_d(s, "Imputer")
    values = list(a.get("imputed_value_floats", []))
    if len(values) not in (1, s.width):
        raise Unsupported("imputed values of another length than the input width")
    replaced = np.float32(a.get("replaced_value_float", 0.0))
    out = lw.new_slot(s.width, "float", s.dims)
    lw.emit(K.OP_IMPUTER, [s.col, out.col, s.width, int(np.isnan(replaced)), lw.fpush([replaced]),
                           lw.fpush(values), len(values)])
    lw.values[node.output[0]] = out


def _binarizer(lw, node, a):
    s = lw.slot(node.input[0], "float")
    out = lw.new_slot(s.width, "float", s.dims)
    lw.emit(K.OP_BINARIZER, [s.col, out.col, s.width, lw.fpush([a.get("threshold", 0.0)])])
    lw.values[node.output[0]] = out


def _onehot(lw, node, a):
    s = lw.slot(node.input[0])
    if int(a.get("zeros", 1)) == 0:
        raise Unsupported("zeros=0 makes onnxruntime fail on unknown categories; a block cannot fail one row")
    if s.kind == "category":
        cats = [_text(c) for c in a.get("cats_strings", [])]
        if not cats:
            raise Unsupported("string input without cats_strings")
        out = lw.new_slot(s.width * len(cats), "float", s.dims + (len(cats),))
        position = {c: p for p, c in enumerate(cats)}
        for i in range(s.width):
            feature_cats = s.categories[i]
            table = [position.get(c, -1) for c in feature_cats]
            lw.emit(K.OP_ONEHOT_IDX, [s.col + i, out.col + i * len(cats), 1, lw.ipush(table or [-1]),
                                      len(table), len(cats)])
    else:
        cats = [int(c) for c in a.get("cats_int64s", [])]
        if not cats:
            raise Unsupported("numeric input without cats_int64s")
        out = lw.new_slot(s.width * len(cats), "float", s.dims + (len(cats),))
        lw.emit(K.OP_ONEHOT_NUM, [s.col, out.col, s.width, lw.ipush(cats), len(cats)])
    lw.values[node.output[0]] = out


def _cast(lw, node, a):
    s = lw.slot(node.input[0], "float", "int", "bool")
    to = int(a.get("to", 0))
    if to in (TensorProto.FLOAT, TensorProto.DOUBLE) and s.kind == "float":
        _alias(lw, node, s, s.dims)
        return
    kind = {TensorProto.FLOAT: (K.CAST_FLOAT, "float"), TensorProto.DOUBLE: (K.CAST_FLOAT, "float"),
            TensorProto.INT64: (K.CAST_INT, "int"), TensorProto.INT32: (K.CAST_INT, "int"),
            TensorProto.BOOL: (K.CAST_BOOL, "bool")}.get(to)
    if kind is None:
        raise Unsupported(f"Cast to type {to}")
    out = lw.new_slot(s.width, kind[1], s.dims)
    lw.emit(K.OP_CAST, [s.col, out.col, s.width, kind[0]])
    lw.values[node.output[0]] = out


# ---- arithmetic and activations ---------------------------------------------------------------
_BIN = {"Add": K.BIN_ADD, "Sub": K.BIN_SUB, "Mul": K.BIN_MUL, "Div": K.BIN_DIV}
_UN = {"Sigmoid": K.UN_SIGMOID, "Tanh": K.UN_TANH, "Relu": K.UN_RELU, "Exp": K.UN_EXP,
       "Log": K.UN_LOG, "Abs": K.UN_ABS, "Neg": K.UN_NEG, "Sqrt": K.UN_SQRT}


def _const_row(c: np.ndarray) -> np.ndarray:
    """A constant that broadcasts along rows: a scalar, [w] or [1, w]."""
    if c.ndim == 2 and c.shape[0] == 1:
        c = c[0]
    if c.ndim > 1:
        raise Unsupported("a constant that does not broadcast along rows")
    if c.dtype.kind not in "fiub":
        raise Unsupported("a non-numeric constant")
    return np.atleast_1d(c).astype(np.float32)


def _binary(lw, node, a):
    kind = _BIN[node.op_type]
    x, y = node.input[0], node.input[1]
    if x in lw.values and y in lw.values:
        sa, sb = lw.slot(x, "float"), lw.slot(y, "float")
        if sa.dims != sb.dims and not (sa.width == 1 or sb.width == 1):
            raise Unsupported("operands of different shapes")
        if sa.width == 1 and sb.width > 1:
            raise Unsupported("broadcasting the left operand")
        out = lw.new_slot(sa.width, "float", sa.dims)
        lw.emit(K.OP_BINARY, [kind, sa.col, sa.width, 0, sb.col, sb.width, out.col, out.width, 0])
    else:
        left_const = x not in lw.values
        s = lw.slot(y if left_const else x, "float")
        c = _const_row(lw.const(x if left_const else y))
        if len(c) not in (1, s.width) or not s.dims:
            if not (s.dims == () and len(c) == 1):
                raise Unsupported("a constant of another width than the tensor")
        out = lw.new_slot(s.width, "float", s.dims)
        lw.emit(K.OP_BINARY, [kind, s.col, s.width, 1, lw.fpush(c), len(c), out.col, out.width, int(left_const)])
    lw.values[node.output[0]] = out


def _unary(lw, node, a):
    s = lw.slot(node.input[0], "float")
    out = lw.new_slot(s.width, "float", s.dims)
    lw.emit(K.OP_UNARY, [_UN[node.op_type], s.col, out.col, s.width])
    lw.values[node.output[0]] = out


def _softmax(lw, node, a):
    s = lw.slot(node.input[0], "float")
    _two_d(s, "Softmax")
    if int(a.get("axis", -1)) not in (1, -1):
        raise Unsupported("Softmax along rows")
    out = lw.new_slot(s.width, "float", s.dims)
    lw.emit(K.OP_SOFTMAX, [s.col, out.col, s.width])
    lw.values[node.output[0]] = out


def _argmax(lw, node, a):
    s = lw.slot(node.input[0], "float", "int")
    _two_d(s, "ArgMax")
    if int(a.get("axis", 0)) not in (1, -1):
        raise Unsupported("ArgMax along rows")
    keep = int(a.get("keepdims", 1))
    out = lw.new_slot(1, "int", (1,) if keep else ())
    lw.emit(K.OP_ARGMAX, [s.col, out.col, s.width, int(a.get("select_last_index", 0))])
    lw.values[node.output[0]] = out


def _matmul_like(lw, node, s: Slot, b: np.ndarray, alpha: float, c, beta: float):
    if b.ndim != 2 or b.shape[0] != s.width:
        raise Unsupported("a weight matrix that does not match the input width")
    m = b.shape[1]
    cvals = _const_row(c) if c is not None else np.zeros(0, np.float32)
    if len(cvals) not in (0, 1, m):
        raise Unsupported("a bias of another width")
    out = lw.new_slot(m, "float", (m,))
    lw.emit(K.OP_MATMUL, [s.col, s.width, out.col, m, lw.fpush(b.astype(np.float32)), lw.fpush([alpha]),
                          lw.fpush(cvals if len(cvals) else [0]), len(cvals), lw.fpush([beta])])
    lw.values[node.output[0]] = out


def _matmul(lw, node, a):
    s = lw.slot(node.input[0], "float")
    _two_d(s, "MatMul")
    _matmul_like(lw, node, s, lw.const(node.input[1]), 1.0, None, 0.0)


def _gemm(lw, node, a):
    s = lw.slot(node.input[0], "float")
    _two_d(s, "Gemm")
    if int(a.get("transA", 0)):
        raise Unsupported("Gemm with transA")
    b = lw.const(node.input[1])
    if int(a.get("transB", 0)):
        b = b.T
    c = lw.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    _matmul_like(lw, node, s, b, float(a.get("alpha", 1.0)), c, float(a.get("beta", 1.0)))


def _constant(lw, node, a):
    if "value" not in a:
        raise Unsupported("Constant other than a tensor value")
    lw.consts[node.output[0]] = to_array(a["value"])


# ---- models -----------------------------------------------------------------------------------
def _labels(a, key="classlabels_ints"):
    if a.get("classlabels_strings"):
        raise Unsupported("string class labels")
    labels = np.asarray(a.get(key, []), np.int64)
    if np.any(np.abs(labels) >= 2 ** 24):
        raise Unsupported("class labels beyond 2**24")
    return labels


def _linear_classifier(lw, node, a):
    s = _numeric(lw, node.input[0])
    coef = np.asarray(a.get("coefficients", []), np.float32)
    icpt = np.asarray(a.get("intercepts", []), np.float32)
    labels = _labels(a)
    n_targets = len(icpt)
    if n_targets == 0 or coef.size != n_targets * s.width:
        raise Unsupported("coefficients do not match intercepts × input width")
    if n_targets > 1 and len(labels) < n_targets:
        raise Unsupported("fewer class labels than score columns")
    second = n_targets == 1 and len(labels) == 2
    if second and trees.post_transform(a) == K.POST_PROBIT:
        raise Unsupported("PROBIT on a one-column binary classifier (onnxruntime's output is not defined)")
    n_scores = 2 if second else n_targets
    label = lw.new_slot(1, "int", ())
    scores = lw.new_slot(n_scores, "float", (n_scores,))
    lw.emit(K.OP_LINEAR_CLASSIFIER, [s.col, s.width, n_targets, lw.fpush(coef), lw.fpush(icpt), len(icpt),
                                     trees.post_transform(a), label.col, scores.col,
                                     lw.ipush(labels if len(labels) else [0]), len(labels), int(second)])
    lw.values[node.output[0]] = label
    if len(node.output) > 1:
        lw.values[node.output[1]] = scores


def _linear_regressor(lw, node, a):
    s = _numeric(lw, node.input[0])
    coef = np.asarray(a.get("coefficients", []), np.float32)
    n_targets = int(a.get("targets", 1))
    icpt = np.asarray(a.get("intercepts", []), np.float32)
    if coef.size != n_targets * s.width:
        raise Unsupported("coefficients do not match targets × input width")
    out = lw.new_slot(n_targets, "float", (n_targets,))
    lw.emit(K.OP_LINEAR_REGRESSOR, [s.col, s.width, n_targets, lw.fpush(coef), lw.fpush(icpt if len(icpt) else [0]),
                                    len(icpt), trees.post_transform(a), out.col])
    lw.values[node.output[0]] = out


def _tree_ensemble(lw, node, a, classifier: bool):
    s = _numeric(lw, node.input[0])
    ens = trees.parse(a, classifier, s.width)
    score = lw.new_slot(ens.n_targets, "float", (ens.n_targets,))
    label = lw.new_slot(1, "int", ()) if classifier else None
    args = [0] * K.N_TREE_ARGS
    args[K.T_IN], args[K.T_NF], args[K.T_LAYOUT] = s.col, s.width, ens.layout
    args[K.T_NTREES], args[K.T_DEPTH], args[K.T_NEG] = ens.n_trees, ens.depth, int(ens.negated)
    args[K.T_K], args[K.T_AGG], args[K.T_POST] = ens.n_targets, ens.aggregate, ens.post
    args[K.T_SCORE], args[K.T_LABEL] = score.col, label.col if label else -1
    args[K.T_FEAT] = lw.ipush(ens.feat if ens.feat.size else [0])
    args[K.T_THR] = lw.fpush(ens.thr if ens.thr.size else [0])
    args[K.T_LEAF] = lw.fpush(ens.leaves)
    args[K.T_HAS] = lw.ipush(ens.leaf_has)
    args[K.T_NEED_HAS] = int(ens.need_has)
    if ens.layout == K.LAYOUT_MASKS:
        args[K.T_MODE] = lw.ipush(ens.modes if ens.modes.size else [0])
    if ens.layout == K.LAYOUT_GENERAL:
        args[K.T_MODE] = lw.ipush(ens.modes if ens.modes.size else [0])
        args[K.T_TRUE] = lw.ipush(ens.true_child if ens.true_child.size else [0])
        args[K.T_FALSE] = lw.ipush(ens.false_child if ens.false_child.size else [0])
        args[K.T_ROOT] = lw.ipush(ens.roots)
    args[K.T_NB], args[K.T_BASE] = len(ens.base), lw.fpush(ens.base if len(ens.base) else [0])
    args[K.T_CLASSIFIER], args[K.T_BINARY_CASE] = int(classifier), int(ens.binary_case)
    args[K.T_ALL_POS], args[K.T_LABELS] = int(ens.all_positive), lw.ipush(ens.labels if len(ens.labels) else [0])
    args[K.T_NLEAF] = ens.leaves_per_tree
    args[K.T_KA], args[K.T_ACTIVE] = len(ens.active), lw.ipush(ens.active)
    args[K.T_CONST_MASK] = ens.const_mask
    if K.tree_variant(args) == K.TREES_SUM1:
        # the one-row descent's records, each tree's block on a 64-byte boundary of the pool
        # (the pool itself is aligned so: kernel.models.compiled)
        args[K.T_PACKED] = lw.ipush(trees.pack_trees(ens.feat, ens.thr, ens.leaves, ens.n_trees, ens.depth),
                                    align=POOL_ALIGN // 8)
    lw.emit(K.OP_TREES, args)
    if classifier:
        lw.values[node.output[0]] = label
        if len(node.output) > 1:
            lw.values[node.output[1]] = score
    else:
        lw.values[node.output[0]] = score


_ML = "ai.onnx.ml"
_HANDLERS = {
    ("ai.onnx", "Identity"): _identity, ("ai.onnx", "Reshape"): _reshape, ("ai.onnx", "Flatten"): _flatten,
    ("ai.onnx", "Squeeze"): _squeeze, ("ai.onnx", "Unsqueeze"): _unsqueeze, ("ai.onnx", "Concat"): _concat,
    ("ai.onnx", "Gather"): _gather, ("ai.onnx", "Cast"): _cast, ("ai.onnx", "Softmax"): _softmax,
    ("ai.onnx", "ArgMax"): _argmax, ("ai.onnx", "MatMul"): _matmul, ("ai.onnx", "Gemm"): _gemm,
    ("ai.onnx", "Constant"): _constant,
    **{("ai.onnx", op): _binary for op in _BIN}, **{("ai.onnx", op): _unary for op in _UN},
    (_ML, "Scaler"): _scaler, (_ML, "Normalizer"): _normalizer, (_ML, "Imputer"): _imputer,
    (_ML, "Binarizer"): _binarizer, (_ML, "OneHotEncoder"): _onehot,
    (_ML, "ArrayFeatureExtractor"): _array_feature_extractor,
    (_ML, "LinearClassifier"): _linear_classifier, (_ML, "LinearRegressor"): _linear_regressor,
    (_ML, "TreeEnsembleClassifier"): lambda lw, n, a: _tree_ensemble(lw, n, a, True),
    (_ML, "TreeEnsembleRegressor"): lambda lw, n, a: _tree_ensemble(lw, n, a, False),
}

#: the operators the Numba backend compiles (docs/models.md lists them)
COMPILED_OPERATORS = sorted(f"{d}.{op}" if d != "ai.onnx" else op for d, op in _HANDLERS)
