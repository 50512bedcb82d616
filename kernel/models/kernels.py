"""Numba kernels of the model compiler: the ops of block programs and their interpreters.

A compiled model is a *program*: a short list of block ops (Scaler, tree ensemble, linear
model, …) lowered by :mod:`kernel.models.lower` into three flat arrays, run by an
interpreter (:func:`interpreter`): a generated ``block`` function that loops over the
program's ops and calls the op functions below. The interpreter a bundle compiles knows
only the ops its model uses, so it is shared by every model with the same ops and Numba
caches it on disk — a new model with known ops costs no Numba compile at all; the
interpreter of every op (``interpreter()``) serves ``CompiledModel.run`` and ``score``.

``params`` is the tuple ``(prog, ipool, fpool, out_cols)``:

- ``prog`` int64: a header ``[n_features, scratch_width, n_ops]`` then, per op, its opcode,
  its argument count and its arguments (column offsets in the scratch and offsets into the
  pools);
- ``ipool`` int64 and ``fpool`` float32: every op's parameters (feature ids, thresholds, leaf
  values, coefficients…) at the offsets the op names;
- ``out_cols`` int64: which scratch columns become the columns of ``out``.

Values live in a float32 scratch ``S[scratch_width, rows]`` (column-major; onnxruntime computes these ops
in float32, so doing the same keeps results equal, including at thresholds); integer outputs
(labels, ArgMax) are stored as floats and are exact below 2**24.
"""
from __future__ import annotations

import math
import os

from ..codegen.cache import configure_numba_cache

configure_numba_cache()          # before any kernel is defined: one cache folder in every process

import numpy as np  # noqa: E402
from llvmlite import ir as llvm_ir  # noqa: E402
from numba import njit, prange, types  # noqa: E402
from numba.cpython.unsafe.numbers import trailing_zeros  # noqa: E402
from numba.extending import intrinsic  # noqa: E402

from ..codegen.helpers import new_array  # noqa: E402
from ..codegen.pipeline import LeanCompiler  # noqa: E402

#: the tree functions of the one-target ensembles every shipped tree model uses (and that the
#: models' straight-line blocks call): through the lean pipeline of generated code
#: (``kernel.codegen.pipeline``), so no ``inline="always"`` callee and no NumPy allocation
#: overload (``new_array`` instead): a cold compile of the RV model's block took 3.4-3.6 s of
#: CPU through Numba's default pipeline
_LEAN_TREES = dict(cache=True, pipeline_class=LeanCompiler, no_cfunc_wrapper=True)

# ---- opcodes ---------------------------------------------------------------------------
OP_GATHER = 1        # out cols <- in cols (Concat, Gather, ArrayFeatureExtractor)
OP_SCALER = 2
OP_NORMALIZER = 3
OP_IMPUTER = 4
OP_BINARIZER = 5
OP_ONEHOT_NUM = 6    # numeric / int64 categories
OP_ONEHOT_IDX = 7    # category index -> encoder position through a table
OP_CAST = 8
OP_BINARY = 9        # Add Sub Mul Div with a slot or a constant
OP_UNARY = 10
OP_SOFTMAX = 11
OP_ARGMAX = 12
OP_MATMUL = 13       # x @ B * alpha + beta * C  (MatMul, Gemm with constant B, C)
OP_LINEAR_CLASSIFIER = 14
OP_LINEAR_REGRESSOR = 15
OP_TREES = 16

# post transforms (onnxruntime's POST_EVAL_TRANSFORM order)
POST_NONE, POST_LOGISTIC, POST_SOFTMAX, POST_SOFTMAX_ZERO, POST_PROBIT = 0, 1, 2, 3, 4
# aggregate functions
AGG_AVERAGE, AGG_SUM, AGG_MIN, AGG_MAX = 0, 1, 2, 3
# binary / unary kinds
BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV = 0, 1, 2, 3
UN_SIGMOID, UN_TANH, UN_RELU, UN_EXP, UN_LOG, UN_ABS, UN_NEG, UN_SQRT = 0, 1, 2, 3, 4, 5, 6, 7
# cast targets
CAST_FLOAT, CAST_INT, CAST_BOOL = 0, 1, 2
# normalizer kinds
NORM_MAX, NORM_L1, NORM_L2 = 0, 1, 2
# tree node modes for the general layout
MODE_LEQ, MODE_LT, MODE_GTE, MODE_GT, MODE_EQ, MODE_NEQ = 0, 1, 2, 3, 4, 5
# tree layouts (kernel.models.trees)
LAYOUT_MASKS, LAYOUT_DESCENT, LAYOUT_GENERAL = 0, 1, 2
#: below this many rows a masks-layout ensemble descends instead (the same padded arrays):
#: the masks test every node of a tree, worth it only when a node's loop covers many rows
MASKS_MIN_ROWS = 8

_F32 = np.float32
_ONE = np.float32(1.0)
_ZERO = np.float32(0.0)


# ---- scalar helpers (float32 arithmetic, as onnxruntime) -------------------------------
@njit(cache=True, inline="always")
def _logistic(v):
    a = np.float32(1.0) / (np.float32(1.0) + np.float32(math.exp(-abs(v))))
    return np.float32(1.0) - a if v < 0 else a


@njit(cache=True, inline="always")
def _erfinv(x):
    # onnxruntime's approximation (ml_common.h ErfInv), in float32 like it
    sgn = np.float32(-1.0) if x < 0 else np.float32(1.0)
    x = (np.float32(1.0) - x) * (np.float32(1.0) + x)
    lg = np.float32(math.log(x))
    v = np.float32(2.0) / (np.float32(3.14159) * np.float32(0.147)) + np.float32(0.5) * lg
    v2 = np.float32(1.0) / np.float32(0.147) * lg
    v3 = -v + np.float32(math.sqrt(v * v - v2))
    return sgn * np.float32(math.sqrt(v3))


@njit(cache=True, inline="always")
def _probit(v):
    return np.float32(1.4142135) * _erfinv(np.float32(2.0) * v - np.float32(1.0))


@njit(cache=True, error_model="numpy")          # 0 / 0 is NaN, as onnxruntime's (a softmax of -inf scores)
def _transform_row(s, n, post):
    """Apply a post transform in place to the first ``n`` values of ``s`` (n >= 2 semantics)."""
    if post == POST_LOGISTIC:
        for j in range(n):
            s[j] = _logistic(s[j])
    elif post == POST_PROBIT:
        for j in range(n):
            s[j] = _probit(s[j])
    elif post == POST_SOFTMAX:
        m = np.float32(-3.4028235e38)
        for j in range(n):
            if s[j] > m:
                m = s[j]
        tot = np.float32(0.0)
        for j in range(n):
            s[j] = np.float32(math.exp(s[j] - m))
            tot += s[j]
        for j in range(n):
            s[j] = s[j] / tot
    elif post == POST_SOFTMAX_ZERO:
        m = np.float32(-3.4028235e38)
        for j in range(n):
            if s[j] > m:
                m = s[j]
        e = np.float32(math.exp(-m))
        tot = np.float32(0.0)
        for j in range(n):
            if s[j] > np.float32(1e-7) or s[j] < np.float32(-1e-7):
                s[j] = np.float32(math.exp(s[j] - m))
                tot += s[j]
            else:
                s[j] = s[j] * e
        for j in range(n):
            s[j] = s[j] / tot


# ---- simple ops --------------------------------------------------------------------------
@njit(cache=True)
def _op_gather(S, a, ip):
    # a: [out_col, n, idx_off]
    out, n, off = a[0], a[1], a[2]
    for j in range(n):
        for r in range(S.shape[1]):
            S[out + j, r] = S[ip[off + j], r]


@njit(cache=True)
def _op_scaler(S, a, fp):
    # a: [in, out, w, off_offset, n_offset, scale_offset, n_scale]
    src, dst, w, oo, no, so, ns = a[0], a[1], a[2], a[3], a[4], a[5], a[6]
    for j in range(w):
        off = fp[oo + (j if no > 1 else 0)] if no > 0 else _ZERO
        sc = fp[so + (j if ns > 1 else 0)] if ns > 0 else _ONE
        for r in range(S.shape[1]):
            S[dst + j, r] = (S[src + j, r] - off) * sc


@njit(cache=True)
def _op_normalizer(S, a):
    src, dst, w, kind = a[0], a[1], a[2], a[3]
    tmp = np.empty(w, _F32)
    for r in range(S.shape[1]):
        if kind == NORM_MAX:
            m = np.float32(-3.4028235e38)
            for j in range(w):
                if m < S[src + j, r]:
                    m = S[src + j, r]
            for j in range(w):
                tmp[j] = S[src + j, r] / m if m != 0 else S[src + j, r]
        elif kind == NORM_L1:
            t = np.float32(0.0)
            for j in range(w):
                t += abs(S[src + j, r])
            for j in range(w):
                tmp[j] = S[src + j, r] / t if t != 0 else S[src + j, r]
        else:
            t = np.float32(0.0)
            for j in range(w):
                x = S[src + j, r]
                t += x * x
            for j in range(w):
                x = S[src + j, r]
                if t != 0:
                    v = np.float32(math.sqrt((x * x) / t))
                    tmp[j] = -v if x < 0 else v
                else:
                    tmp[j] = x
        for j in range(w):
            S[dst + j, r] = tmp[j]


@njit(cache=True)
def _op_imputer(S, a, fp):
    # a: [in, out, w, replace_is_nan, replaced_offset, values_offset, n_values]
    src, dst, w, isnan_, ro, vo, nv = a[0], a[1], a[2], a[3], a[4], a[5], a[6]
    rep = fp[ro]
    for j in range(w):
        value = fp[vo + (j if nv > 1 else 0)]
        for r in range(S.shape[1]):
            x = S[src + j, r]
            hit = math.isnan(x) if isnan_ else x == rep
            S[dst + j, r] = value if hit else x


@njit(cache=True)
def _op_binarizer(S, a, fp):
    src, dst, w, to = a[0], a[1], a[2], a[3]
    t = fp[to]
    for j in range(w):
        for r in range(S.shape[1]):
            x = S[src + j, r]
            S[dst + j, r] = x if math.isnan(x) else (_ONE if x > t else _ZERO)


@njit(cache=True)
def _op_onehot_num(S, a, ip):
    # a: [in, out, k, cats_offset, n_cats]: input column i -> n_cats output columns
    src, dst, k, co, nc = a[0], a[1], a[2], a[3], a[4]
    for r in range(S.shape[1]):
        for i in range(k):
            x = S[src + i, r]
            for j in range(nc):
                S[dst + i * nc + j, r] = _ZERO
            if not math.isnan(x) and abs(x) < 9.2e18:
                v = np.int64(x)
                for j in range(nc):
                    if ip[co + j] == v:
                        S[dst + i * nc + j, r] = _ONE


@njit(cache=True)
def _op_onehot_idx(S, a, ip):
    # a: [in, out, k, table_offset, table_len, n_cats]; table maps a feature's category index
    src, dst, k, to, tl, nc = a[0], a[1], a[2], a[3], a[4], a[5]
    for r in range(S.shape[1]):
        for i in range(k):
            x = S[src + i, r]
            for j in range(nc):
                S[dst + i * nc + j, r] = _ZERO
            if x >= 0 and x < tl:
                p = ip[to + np.int64(x)]
                if p >= 0:
                    S[dst + i * nc + p, r] = _ONE


@njit(cache=True)
def _op_cast(S, a):
    src, dst, w, kind = a[0], a[1], a[2], a[3]
    for j in range(w):
        for r in range(S.shape[1]):
            x = S[src + j, r]
            if kind == CAST_INT:
                S[dst + j, r] = np.float32(math.trunc(x)) if not math.isnan(x) else x
            elif kind == CAST_BOOL:
                S[dst + j, r] = _ONE if x != 0 else _ZERO
            else:
                S[dst + j, r] = x


@njit(cache=True, error_model="numpy")          # x / 0 is ±inf or NaN, as onnxruntime's, not an exception
def _op_binary(S, a, fp):
    # a: [kind, a_col, a_w, b_const, b_ref, b_w, out, out_w, const_on_left]
    kind, ac, aw, bconst, bref, bw, dst, ow, left = a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]
    for j in range(ow):
        for r in range(S.shape[1]):
            x = S[ac + (j if aw > 1 else 0), r]
            jb = j if bw > 1 else 0
            y = fp[bref + jb] if bconst else S[bref + jb, r]
            if left:
                x, y = y, x
            if kind == BIN_ADD:
                z = x + y
            elif kind == BIN_SUB:
                z = x - y
            elif kind == BIN_MUL:
                z = x * y
            else:
                z = x / y
            S[dst + j, r] = z


@njit(cache=True)
def _op_unary(S, a):
    kind, src, dst, w = a[0], a[1], a[2], a[3]
    for j in range(w):
        for r in range(S.shape[1]):
            x = S[src + j, r]
            if kind == UN_SIGMOID:
                z = _logistic(x)
            elif kind == UN_TANH:
                z = np.float32(math.tanh(x))
            elif kind == UN_RELU:
                z = x if x > 0 else (_ZERO if not math.isnan(x) else x)
            elif kind == UN_EXP:
                z = np.float32(math.exp(x))
            elif kind == UN_LOG:
                z = np.float32(math.log(x)) if x > 0 else (np.float32(-np.inf) if x == 0 else np.float32(np.nan))
            elif kind == UN_ABS:
                z = abs(x)
            elif kind == UN_NEG:
                z = -x
            else:
                z = np.float32(math.sqrt(x)) if x >= 0 else np.float32(np.nan)
            S[dst + j, r] = z


@njit(cache=True)
def _op_softmax(S, a):
    src, dst, w = a[0], a[1], a[2]
    tmp = np.empty(w, _F32)
    for r in range(S.shape[1]):
        for j in range(w):
            tmp[j] = S[src + j, r]
        _transform_row(tmp, w, np.int64(POST_SOFTMAX))     # one compiled signature: no literals
        for j in range(w):
            S[dst + j, r] = tmp[j]


@njit(cache=True)
def _op_argmax(S, a):
    src, dst, w, last = a[0], a[1], a[2], a[3]
    for r in range(S.shape[1]):
        best = 0
        m = S[src, r]
        for j in range(1, w):
            x = S[src + j, r]
            if x > m or (last and x == m):
                m = x
                best = j
        S[dst, r] = np.float32(best)


@njit(cache=True)
def _op_matmul(S, a, fp):
    # a: [in, k, out, m, B_offset (k x m, row-major), alpha_offset, C_offset, n_C, beta_offset]
    src, k, dst, m, bo, ao, co, nc, beo = a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]
    alpha = fp[ao]
    beta = fp[beo]
    tmp = np.empty(m, _F32)
    for r in range(S.shape[1]):
        for j in range(m):
            acc = np.float32(0.0)
            for i in range(k):
                acc += S[src + i, r] * fp[bo + i * m + j]
            acc = acc * alpha if alpha != 1 else acc
            if nc > 0:
                acc += beta * fp[co + (j if nc > 1 else 0)]
            tmp[j] = acc
        for j in range(m):
            S[dst + j, r] = tmp[j]


@njit(cache=True)
def _op_linear_classifier(S, a, ip, fp):
    # a: [in, F, n_targets, coef_off, icpt_off, n_icpt, post, label_col, score_col,
    #     labels_off, n_labels, add_second]
    src, nf, nt, co, io, ni, post, lcol, scol, lo, nl, second = (
        a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11])
    s = np.empty(max(nt, 2), _F32)
    for r in range(S.shape[1]):
        for t in range(nt):
            acc = np.float32(0.0)
            for f in range(nf):
                acc += S[src + f, r] * fp[co + t * nf + f]
            s[t] = acc + (fp[io + t] if t < ni else _ZERO)
        if nt == 1:
            label = (ip[lo + 1] if nl == 2 else 1) if s[0] > 0 else (ip[lo] if nl == 2 else 0)
        else:
            best = 0
            m = s[0]
            for t in range(1, nt):
                if s[t] > m:
                    m = s[t]
                    best = t
            label = ip[lo + best]
        S[lcol, r] = np.float32(label)
        if nt > 1:
            _transform_row(s, nt, post)
            for t in range(nt):
                S[scol + t, r] = s[t]
        else:
            v = s[0]
            if post == POST_PROBIT:
                v = _probit(v)
            elif post == POST_LOGISTIC and second:
                v = _logistic(v)
            if second:
                S[scol, r] = _ONE - v
                S[scol + 1, r] = v
            else:
                S[scol, r] = v


@njit(cache=True)
def _op_linear_regressor(S, a, fp):
    src, nf, nt, co, io, ni, post, dst = a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]
    s = np.empty(max(nt, 2), _F32)
    for r in range(S.shape[1]):
        for t in range(nt):
            acc = np.float32(0.0)
            for f in range(nf):
                acc += S[src + f, r] * fp[co + t * nf + f]
            s[t] = acc + (fp[io + t] if t < ni else _ZERO)
        if nt > 1:
            _transform_row(s, nt, post)
        elif post == POST_PROBIT:
            s[0] = _probit(s[0])
        for t in range(nt):
            S[dst + t, r] = s[t]


# ---- tree ensembles -----------------------------------------------------------------------
# Tree op arguments (see kernel.models.lower.lower_trees for how they are built):
T_IN, T_NF, T_LAYOUT, T_NTREES, T_DEPTH, T_NEG, T_K, T_AGG, T_POST, T_SCORE, T_LABEL, \
    T_FEAT, T_THR, T_LEAF, T_HAS, T_NEED_HAS, T_MODE, T_TRUE, T_FALSE, T_ROOT, \
    T_NB, T_BASE, T_CLASSIFIER, T_BINARY_CASE, T_ALL_POS, T_LABELS, T_NLEAF, \
    T_KA, T_ACTIVE, T_CONST_MASK, T_PACKED = range(31)
N_TREE_ARGS = 31


_DEBRUIJN64 = np.array([0, 1, 2, 53, 3, 7, 54, 27, 4, 38, 41, 8, 34, 55, 48, 28, 62, 5, 39, 46, 44, 42,
                        22, 9, 24, 35, 59, 56, 49, 18, 29, 11, 63, 52, 6, 26, 37, 40, 33, 47, 61, 45,
                        43, 21, 23, 58, 17, 10, 51, 25, 36, 32, 60, 20, 57, 16, 50, 31, 19, 15, 30, 14,
                        13, 12], np.int64)


@njit(cache=True, inline="always")
def _lowest_bit(m):
    """Index of the single set bit of ``m`` (a de Bruijn multiply: no loop, no branch)."""
    x = np.uint64(m)
    return _DEBRUIJN64[(x * np.uint64(0x022FDD63CC95386D)) >> np.uint64(58)]


@njit(cache=True)
def _descend_general(ET, r, ip, fp, a, node):
    feat_o, thr_o, mode_o, true_o, false_o = a[T_FEAT], a[T_THR], a[T_MODE], a[T_TRUE], a[T_FALSE]
    while node >= 0:
        x = ET[ip[feat_o + node], r]
        t = fp[thr_o + node]
        m = ip[mode_o + node]
        mode = m & 7
        if mode == MODE_LEQ:
            c = x <= t
        elif mode == MODE_LT:
            c = x < t
        elif mode == MODE_GTE:
            c = x >= t
        elif mode == MODE_GT:
            c = x > t
        elif mode == MODE_EQ:
            c = x == t
        else:
            c = x != t
        if (m & 8) and math.isnan(x):
            c = True
        node = ip[true_o + node] if c else ip[false_o + node]
    return -node - 1


@njit(cache=True)
def _leaves_masks(ET, rows, feat, thr, fo, n_inner, ip, keep_o, m, kk):
    """Every node of a complete tree against every row (a vector loop per node), each
    narrowing a bitmask of the leaves still reachable; the one left is the exit leaf."""
    everything = np.int64(-1) if n_inner == 63 else (np.int64(1) << (n_inner + 1)) - 1
    for r in range(rows):
        m[r] = everything
    for k in range(n_inner):
        col = ET[feat[fo + k]]
        th = thr[fo + k]
        keep_second = ip[keep_o + k]              # leaves kept when x' <= c
        keep_first = ip[keep_o + n_inner + k]     # leaves kept otherwise (NaN included)
        for r in range(rows):
            m[r] &= keep_second if col[r] <= th else keep_first
    for r in range(rows):
        kk[r] = _lowest_bit(m[r])


@njit(**_LEAN_TREES)
def _trees_sum_masks32(ET, rows, feat, thr, n_inner, ntrees, keep, nleaf_tree, leaves, acc):
    """``acc[r] += leaf value`` of every tree, in tree order (float32 sums in onnxruntime's
    order), for complete trees of at most 32 leaves: per tree, each node narrows a 32-bit
    mask of the leaves still reachable for every row at once (vectorized: a row's mask fits a
    32-bit lane), and the exit leaf is the one bit left (one tzcnt)."""
    m = new_array((rows,), np.uint32)
    everything = np.uint32((1 << (n_inner + 1)) - 1)
    for t in range(ntrees):
        fo = t * n_inner
        for r in range(rows):
            m[r] = everything
        for k in range(n_inner):
            col = ET[feat[fo + k]]
            th = thr[fo + k]
            keep_second = np.uint32(keep[k])            # leaves kept when x' <= c
            keep_first = np.uint32(keep[n_inner + k])   # leaves kept otherwise (NaN included)
            for r in range(rows):
                m[r] &= keep_second if col[r] <= th else keep_first
        base = t * nleaf_tree
        for r in range(rows):
            acc[r] += leaves[base + np.int64(trailing_zeros(m[r]))]


@njit(**_LEAN_TREES)
def _leaves_descent(ET, rows, feat, thr, fo, depth, n_inner, kk):
    """Branch-free descent, four rows interleaved so their load chains overlap."""
    r = 0
    while r + 4 <= rows:
        k0 = k1 = k2 = k3 = 0
        for _ in range(depth):
            k0 = 2 * k0 + 1 + (ET[feat[fo + k0], r] <= thr[fo + k0])
            k1 = 2 * k1 + 1 + (ET[feat[fo + k1], r + 1] <= thr[fo + k1])
            k2 = 2 * k2 + 1 + (ET[feat[fo + k2], r + 2] <= thr[fo + k2])
            k3 = 2 * k3 + 1 + (ET[feat[fo + k3], r + 3] <= thr[fo + k3])
        kk[r], kk[r + 1], kk[r + 2], kk[r + 3] = k0 - n_inner, k1 - n_inner, k2 - n_inner, k3 - n_inner
        r += 4
    while r < rows:
        k0 = 0
        for _ in range(depth):
            k0 = 2 * k0 + 1 + (ET[feat[fo + k0], r] <= thr[fo + k0])
        kk[r] = k0 - n_inner
        r += 1


@intrinsic
def _low_float32(typingctx, word):
    """The float32 whose bits are the low 32 bits of the int64 ``word`` (a packed tree record)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.trunc(args[0], llvm_ir.IntType(32)), llvm_ir.FloatType())
    return types.float32(types.int64), codegen


@njit(**_LEAN_TREES)
def _rows_descent_sum(ET, rows, packed, depth, ntrees, acc):
    """``acc[r] +=`` the exit leaf of every tree, in tree order (float32 sums in onnxruntime's
    order), for a few rows (the record path: one account per call), through the packed records
    of ``trees.pack_trees``: per row, four trees descended at once. One row's descent of a tree is
    a chain of dependent loads (record, feature) per level; interleaved, four chains overlap
    (and, after an idle gap, their cache misses too). Each step is the padded layout's
    ``k = 2k + 1 + (x[f] <= c)``; at the bottom node the comparison picks one of its two leaves."""
    top = 1 << (depth - 1)               # words of a tree's top levels, then 2 per bottom node
    words = 3 * top
    for r in range(rows):
        s = acc[r]
        t = 0
        while t + 4 <= ntrees:
            b0, b1, b2, b3 = t * words, (t + 1) * words, (t + 2) * words, (t + 3) * words
            k0 = k1 = k2 = k3 = 0
            for _ in range(depth - 1):
                w0, w1, w2, w3 = packed[b0 + k0], packed[b1 + k1], packed[b2 + k2], packed[b3 + k3]
                k0 = 2 * k0 + 1 + (ET[w0 >> 32, r] <= _low_float32(w0))
                k1 = 2 * k1 + 1 + (ET[w1 >> 32, r] <= _low_float32(w1))
                k2 = 2 * k2 + 1 + (ET[w2 >> 32, r] <= _low_float32(w2))
                k3 = 2 * k3 + 1 + (ET[w3 >> 32, r] <= _low_float32(w3))
            b0 += top + 2 * (k0 - top + 1)
            b1 += top + 2 * (k1 - top + 1)
            b2 += top + 2 * (k2 - top + 1)
            b3 += top + 2 * (k3 - top + 1)
            w0, w1, w2, w3 = packed[b0], packed[b1], packed[b2], packed[b3]
            c0 = np.int64(ET[w0 >> 32, r] <= _low_float32(w0)) << 5
            c1 = np.int64(ET[w1 >> 32, r] <= _low_float32(w1)) << 5
            c2 = np.int64(ET[w2 >> 32, r] <= _low_float32(w2)) << 5
            c3 = np.int64(ET[w3 >> 32, r] <= _low_float32(w3)) << 5
            s += _low_float32(packed[b0 + 1] >> c0)
            s += _low_float32(packed[b1 + 1] >> c1)
            s += _low_float32(packed[b2 + 1] >> c2)
            s += _low_float32(packed[b3 + 1] >> c3)
            t += 4
        while t < ntrees:
            b0 = t * words
            k0 = 0
            for _ in range(depth - 1):
                w0 = packed[b0 + k0]
                k0 = 2 * k0 + 1 + (ET[w0 >> 32, r] <= _low_float32(w0))
            b0 += top + 2 * (k0 - top + 1)
            w0 = packed[b0]
            c0 = np.int64(ET[w0 >> 32, r] <= _low_float32(w0)) << 5
            s += _low_float32(packed[b0 + 1] >> c0)
            t += 1
        acc[r] = s


#: tree-ensemble variants the interpreter compiles separately (see :func:`tree_variant`)
TREES_SUM1, TREES_GENERAL = 0, 1
#: the deepest padded tree of the one-target variant: 31 inner nodes, one 32-bit leaf mask
SUM1_MAX_DEPTH = 5


def tree_variant(a) -> int:
    """Which tree-ensemble code an op's arguments ``a`` need: :data:`TREES_SUM1` for a padded
    ensemble of at most 32 leaves per tree whose leaves carry one summed target and all the
    same target mask (every shipped model: boosted trees, binary or regression), else
    :data:`TREES_GENERAL`. Plain Python over ints: the interpreter's generator calls it and
    compiled code calls the same function (``_tree_variant``)."""
    if (a[T_LAYOUT] == LAYOUT_MASKS and a[T_DEPTH] <= SUM1_MAX_DEPTH and a[T_KA] == 1 and not a[T_NEED_HAS]
            and (a[T_AGG] == AGG_SUM or a[T_AGG] == AGG_AVERAGE)):
        return TREES_SUM1
    return TREES_GENERAL


_tree_variant = njit(cache=True, inline="always")(tree_variant)


@njit(**_LEAN_TREES)
def _tree_features(S, a):
    """The block's features ([feature, row]: a node reads one contiguous row of them) — the
    scratch's own columns, followed by their negations when some node compares -x (see
    kernel.models.trees)."""
    src, nf, rows = a[T_IN], a[T_NF], S.shape[1]
    if a[T_NEG]:
        ET = new_array((2 * nf, rows), _F32)
        for f in range(nf):
            for r in range(rows):
                ET[f, r] = S[src + f, r]
                ET[nf + f, r] = -S[src + f, r]
        return ET
    return S[src:src + nf]


@njit(**_LEAN_TREES)
def _widen(acc, a, ip):
    """The ``KA`` targets the leaves store placed among the ensemble's ``K`` (the others 0)."""
    K, KA = a[T_K], a[T_KA]
    if KA == K:
        return acc
    rows = acc.shape[0]
    full = new_array((rows, K), _F32)
    for r in range(rows):
        for c in range(K):
            full[r, c] = _ZERO
        for c in range(KA):
            full[r, ip[a[T_ACTIVE] + c]] = acc[r, c]
    return full


@njit(**_LEAN_TREES)
def _trees_sum1(S, a, ip, fp):
    """Scores ``(acc [rows, K], has [rows])`` of a :data:`TREES_SUM1` ensemble: every exit leaf
    summed straight into one score through 32-bit leaf masks (:func:`_trees_sum_masks32`),
    or, below :data:`MASKS_MIN_ROWS` rows, by descending the trees (:func:`_rows_descent_sum`)."""
    rows = S.shape[1]
    ntrees, depth, nleaf_tree = a[T_NTREES], a[T_DEPTH], a[T_NLEAF]
    n_inner = (1 << depth) - 1
    ET = _tree_features(S, a)
    feat = ip[a[T_FEAT]:]
    thr = fp[a[T_THR]:]
    leaves = fp[a[T_LEAF]:]
    acc1 = new_array((rows,), _F32)
    for r in range(rows):
        acc1[r] = _ZERO
    if rows >= MASKS_MIN_ROWS:
        _trees_sum_masks32(ET, rows, feat, thr, n_inner, ntrees, ip[a[T_MODE]:a[T_MODE] + 2 * n_inner],
                           nleaf_tree, leaves, acc1)
    else:
        _rows_descent_sum(ET, rows, ip[a[T_PACKED]:], depth, ntrees, acc1)
    acc = new_array((rows, 1), _F32)
    has = new_array((rows,), np.int64)
    mask = a[T_CONST_MASK]
    for r in range(rows):
        acc[r, 0] = acc1[r]
        has[r] = mask
    return _widen(acc, a, ip), has


@njit(cache=True)
def _trees_general(S, a, ip, fp):
    """Scores ``(acc [rows, K], has [rows])`` of any ensemble: every layout, several targets,
    MIN/MAX aggregation, leaves with differing target masks."""
    rows = S.shape[1]
    layout, ntrees, depth, K, agg = a[T_LAYOUT], a[T_NTREES], a[T_DEPTH], a[T_K], a[T_AGG]
    need_has = a[T_NEED_HAS]
    ET = _tree_features(S, a)
    # leaves store only the KA targets some leaf carries (T_ACTIVE lists them); SUM and
    # AVERAGE accumulate those, MIN/MAX keep every target (KA == K)
    KA = a[T_KA]
    acc = np.zeros((rows, KA), _F32)
    has = np.zeros(rows, np.int64)
    has_o, nleaf_tree = a[T_HAS], a[T_NLEAF]
    minmax = agg == AGG_MIN or agg == AGG_MAX
    n_inner = (1 << depth) - 1
    feat = ip[a[T_FEAT]:]
    thr = fp[a[T_THR]:]
    leaves = fp[a[T_LEAF]:]
    kk = np.zeros(rows, np.int64)
    m = np.empty(rows, np.int64)
    masks = layout == LAYOUT_MASKS and rows >= MASKS_MIN_ROWS
    if masks and KA == 1 and not minmax and n_inner < 32:
        # one summed score, trees of depth <= 5 (leaves with differing target masks: the
        # masks are not tracked, as in the one-target variant)
        acc1 = np.zeros(rows, _F32)
        _trees_sum_masks32(ET, rows, feat, thr, n_inner, ntrees, ip[a[T_MODE]:a[T_MODE] + 2 * n_inner],
                           nleaf_tree, leaves, acc1)
        for r in range(rows):
            acc[r, 0] = acc1[r]
        ntrees_left = 0
    else:
        ntrees_left = ntrees
    for t in range(ntrees_left):
        if masks:
            _leaves_masks(ET, rows, feat, thr, t * n_inner, n_inner, ip, a[T_MODE], m, kk)
        elif layout != LAYOUT_GENERAL:
            _leaves_descent(ET, rows, feat, thr, t * n_inner, depth, n_inner, kk)
        else:
            for r in range(rows):
                kk[r] = _descend_general(ET, r, ip, fp, a, ip[a[T_ROOT] + t])
        if layout != LAYOUT_GENERAL:
            base_leaf = t * nleaf_tree
            for r in range(rows):
                kk[r] += base_leaf
        if KA == 1 and not minmax:
            for r in range(rows):
                acc[r, 0] += leaves[kk[r]]
        elif not minmax:
            for r in range(rows):
                lo = kk[r] * KA
                for c in range(KA):
                    acc[r, c] += leaves[lo + c]
                if need_has:
                    has[r] |= ip[has_o + kk[r]]
        else:
            for r in range(rows):
                leaf = kk[r]
                lh = ip[has_o + leaf]
                lo = leaf * K
                for c in range(K):
                    if (lh >> c) & 1:
                        v = leaves[lo + c]
                        if not (has[r] >> c) & 1 or (v < acc[r, c] if agg == AGG_MIN else v > acc[r, c]):
                            acc[r, c] = v
                has[r] |= lh
    if not need_has and not minmax:
        for r in range(rows):
            has[r] = a[T_CONST_MASK]
    return _widen(acc, a, ip), has


@njit(cache=True)
def _finalize_regressor(S, a, fp, acc, has, ntrees):
    K, agg, post, dst, nb, bo = a[T_K], a[T_AGG], a[T_POST], a[T_SCORE], a[T_NB], a[T_BASE]
    s = np.empty(max(K, 2), _F32)
    nt = np.float32(ntrees)
    for r in range(acc.shape[0]):
        if K == 1:
            origin = fp[bo] if nb == 1 else _ZERO
            v = acc[r, 0]
            if agg == AGG_AVERAGE:
                v = v / nt
            v = v + origin
            S[dst, r] = _probit(v) if post == POST_PROBIT else v
            continue
        for c in range(K):
            h = (has[r] >> c) & 1
            base = fp[bo + c] if nb == K else _ZERO
            if agg == AGG_SUM:
                v = acc[r, c] + base if nb == K else acc[r, c]
            elif agg == AGG_AVERAGE:
                v = acc[r, c] / nt + base if nb == K else acc[r, c] / nt
            else:
                v = base + (acc[r, c] if h else _ZERO)
            s[c] = v if h else _ZERO
        _transform_row(s, K, post)
        for c in range(K):
            S[dst + c, r] = s[c]


@njit(cache=True)
def _finalize_classifier(S, a, ip, fp, acc, has):
    K, post, dst, lcol, nb, bo = a[T_K], a[T_POST], a[T_SCORE], a[T_LABEL], a[T_NB], a[T_BASE]
    binary_case, all_pos, lo = a[T_BINARY_CASE], a[T_ALL_POS], a[T_LABELS]
    s = np.empty(max(K, 2), _F32)
    for r in range(acc.shape[0]):
        hm = has[r]
        if K > 2:
            for c in range(K):
                s[c] = acc[r, c]
            for c in range(min(nb, K)):
                if not (hm >> c) & 1:
                    hm |= np.int64(1) << c
                    s[c] = fp[bo + c]
                else:
                    s[c] = s[c] + fp[bo + c]
            best = -1
            m = _ZERO
            for c in range(K):
                if (hm >> c) & 1 and (best == -1 or s[c] > m):
                    best = c
                    m = s[c]
            S[lcol, r] = np.float32(ip[lo + best])
            for c in range(K):
                if not (hm >> c) & 1:
                    s[c] = _ZERO
            _transform_row(s, K, post)
            for c in range(K):
                S[dst + c, r] = s[c]
            continue
        # two classes: onnxruntime's binary rules (kernel.models.trees documents them)
        s0, s1 = acc[r, 0], acc[r, 1]
        h0, h1 = hm & 1, (hm >> 1) & 1
        wr = -1
        size = 2
        if nb == 2:
            if h1:
                s1 = fp[bo + 1] + s0
                s0 = -s1
            else:
                s1 = s1 + fp[bo + 1]
                s0 = s0 + fp[bo]
        elif nb == 1:
            s0 = s0 + fp[bo]
            if not h1:
                size = 1
        elif nb == 0:
            wr = 3
            if not h1:
                size = 1
        if size == 2 and h1:
            pos = s1
        else:
            pos = s0 if h0 else _ZERO
        if binary_case:
            if all_pos:
                if pos > np.float32(0.5):
                    wr, label = 0, ip[lo + 1]
                else:
                    wr, label = 1, ip[lo]
            else:
                if pos > 0:
                    wr, label = 2, ip[lo + 1]
                else:
                    wr, label = 3, ip[lo]
        else:
            label = 1 if pos > 0 else 0
        S[lcol, r] = np.float32(label)
        if size == 2:
            s[0] = s0 if h0 else _ZERO
            s[1] = s1 if h1 else _ZERO
            _transform_row(s, np.int64(2), post)      # (int64, not the literal 2: one signature)
            S[dst, r] = s[0]
            S[dst + 1, r] = s[1]
        else:
            v = s0 if h0 else _ZERO
            if wr == 0 or wr == 1:
                if post == POST_LOGISTIC:
                    v = _logistic(v)
                S[dst, r] = _ONE - v
                S[dst + 1, r] = v
            elif post == POST_LOGISTIC:
                S[dst, r] = _logistic(-v)
                S[dst + 1, r] = _logistic(v)
            else:
                S[dst, r] = -v
                S[dst + 1, r] = v


# ---- the interpreter -----------------------------------------------------------------------
#: per opcode, the call the interpreter makes (S the scratch, a the op's arguments), in the
#: order the interpreter tests them
_OP_CALLS = {
    OP_SCALER: "_op_scaler(S, a, fp)",
    OP_GATHER: "_op_gather(S, a, ip)",
    OP_IMPUTER: "_op_imputer(S, a, fp)",
    OP_LINEAR_CLASSIFIER: "_op_linear_classifier(S, a, ip, fp)",
    OP_LINEAR_REGRESSOR: "_op_linear_regressor(S, a, fp)",
    OP_ONEHOT_IDX: "_op_onehot_idx(S, a, ip)",
    OP_ONEHOT_NUM: "_op_onehot_num(S, a, ip)",
    OP_NORMALIZER: "_op_normalizer(S, a)",
    OP_BINARIZER: "_op_binarizer(S, a, fp)",
    OP_CAST: "_op_cast(S, a)",
    OP_BINARY: "_op_binary(S, a, fp)",
    OP_UNARY: "_op_unary(S, a)",
    OP_SOFTMAX: "_op_softmax(S, a)",
    OP_ARGMAX: "_op_argmax(S, a)",
    OP_MATMUL: "_op_matmul(S, a, fp)",
}
_TREE_CALLS = {TREES_SUM1: "_trees_sum1(S, a, ip, fp)", TREES_GENERAL: "_trees_general(S, a, ip, fp)"}
#: generator version: part of every generated interpreter's source (and so of its file name)
_GENERATOR = 2

_HEADER = """\
# Generated by kernel.models.kernels (postloan) — do not edit: the file name is its content hash.
# generator {version}; the model interpreter for {what}
from numba import njit, prange

from kernel.models.kernels import (  # noqa: F401
    _F32, OP_ARGMAX, OP_BINARIZER, OP_BINARY, OP_CAST, OP_GATHER, OP_IMPUTER, OP_LINEAR_CLASSIFIER,
    OP_LINEAR_REGRESSOR, OP_MATMUL, OP_NORMALIZER, OP_ONEHOT_IDX, OP_ONEHOT_NUM, OP_SCALER, OP_SOFTMAX, OP_TREES,
    OP_UNARY, T_CLASSIFIER, T_NTREES, TREES_SUM1, _finalize_classifier, _finalize_regressor, _op_argmax,
    _op_binarizer, _op_binary, _op_cast, _op_gather, _op_imputer, _op_linear_classifier, _op_linear_regressor,
    _op_matmul, _op_normalizer, _op_onehot_idx, _op_onehot_num, _op_scaler, _op_softmax, _op_unary, _tree_variant,
    _trees_general, _trees_sum1)
import numpy as np


@njit(cache=True)
def block(X, params, out):
    \"\"\"Score one block of rows: ``X`` float32[rows, n_features] -> ``out`` float64[rows, n_out].\"\"\"
    prog, ip, fp, out_cols = params
    rows = X.shape[0]
    nf, width, nops = prog[0], prog[1], prog[2]
    S = np.empty((width, rows), _F32)
    for r in range(rows):
        for f in range(nf):
            S[f, r] = X[r, f]
    pc = 3
    for _ in range(nops):
        op = prog[pc]
        na = prog[pc + 1]
        a = prog[pc + 2:pc + 2 + na]
        pc += 2 + na
"""

_FOOTER = """\
    for r in range(rows):
        for j in range(out_cols.shape[0]):
            out[r, j] = S[out_cols[j], r]


@njit(cache=True)
def run_serial(X, params, out, rows_per_block):
    \"\"\"All rows, one block after another on the calling thread (no thread-pool launch).\"\"\"
    n = X.shape[0]
    for start in range(0, n, rows_per_block):
        end = min(start + rows_per_block, n)
        block(X[start:end], params, out[start:end])


@njit(cache=True, parallel=True)
def run_parallel(X, params, out, rows_per_block):
    \"\"\"All rows, blocks spread over Numba's threads.\"\"\"
    n = X.shape[0]
    nblocks = (n + rows_per_block - 1) // rows_per_block
    for b in prange(nblocks):
        start = b * rows_per_block
        end = min(start + rows_per_block, n)
        block(X[start:end], params, out[start:end])
"""


def program_ops(prog) -> list:
    """The ops of a lowered program: ``[(opcode, arguments)]`` in order."""
    ops, pc = [], 3
    for _ in range(int(prog[2])):
        op, na = int(prog[pc]), int(prog[pc + 1])
        ops.append((op, [int(v) for v in prog[pc + 2:pc + 2 + na]]))
        pc += 2 + na
    return ops


def interpreter_source(prog=None) -> str:
    """The source of a model interpreter (``block``, ``run_serial``, ``run_parallel``) that runs
    the ops ``prog`` uses, or every op (``prog=None``).

    Numba compiles every branch of a function, whichever the data takes: the interpreter of
    every op took 12-14 s of CPU to compile, most of it ops and tree variants the shipped
    models never run. One that knows only a program's ops (and, for a tree ensemble, only its
    variant and whether it classifies) compiles in a fraction of that, is shared by every
    model with the same ops, and runs the same op functions."""
    if prog is None:
        ops, trees = set(_OP_CALLS), {(v, c) for v in _TREE_CALLS for c in (False, True)}
        what = "every op"
    else:
        ops, trees = set(), set()
        for op, a in program_ops(prog):
            if op == OP_TREES:
                trees.add((tree_variant(a), bool(a[T_CLASSIFIER])))
            elif op in _OP_CALLS:
                ops.add(op)
            else:
                raise ValueError(f"the model interpreter has no op {op}")
        what = ", ".join([_OPCODE_NAMES[op] for op in _OP_CALLS if op in ops]
                         + [f"{'classifying' if c else 'regression'} trees ({'one summed target' if v == TREES_SUM1 else 'general'})"
                            for v, c in sorted(trees)]) or "no op"
    lines = [_HEADER.format(version=_GENERATOR, what=what)]
    branch = "if"
    if trees:
        lines.append("        if op == OP_TREES:")
        variants, kinds = sorted({v for v, _ in trees}), sorted({c for _, c in trees})
        if len(variants) == 1:
            lines.append(f"            acc, has = {_TREE_CALLS[variants[0]]}")
        else:
            lines.append("            if _tree_variant(a) == TREES_SUM1:")
            lines.append(f"                acc, has = {_TREE_CALLS[TREES_SUM1]}")
            lines.append("            else:")
            lines.append(f"                acc, has = {_TREE_CALLS[TREES_GENERAL]}")
        classify = "_finalize_classifier(S, a, ip, fp, acc, has)"
        regress = "_finalize_regressor(S, a, fp, acc, has, a[T_NTREES])"
        if len(kinds) == 1:
            lines.append(f"            {classify if kinds[0] else regress}")
        else:
            lines += ["            if a[T_CLASSIFIER]:", f"                {classify}", "            else:",
                      f"                {regress}"]
        branch = "elif"
    for op, call in _OP_CALLS.items():
        if op in ops:
            lines.append(f"        {branch} op == {_OPCODE_NAMES[op]}:")
            lines.append(f"            {call}")
            branch = "elif"
    if branch == "if":
        lines.append("        pass")
    return "\n".join(lines) + "\n" + _FOOTER


_OPCODE_NAMES = {value: name for name, value in list(globals().items()) if name.startswith("OP_")}


_INTERPRETERS: dict = {}


def interpreter(prog=None):
    """The module of :func:`interpreter_source` (written to the kernel cache folder under its
    content hash and imported once per process; Numba caches its functions beside it).
    Remembered per program and ``$POSTLOAN_CACHE_DIR``: ``CompiledModel.score`` asks for it on every call,
    and generating the source and checking its file took ≈ 0.3 ms, 50 times a one-row score."""
    key = (os.environ.get("POSTLOAN_CACHE_DIR"), None if prog is None else np.asarray(prog, np.int64).tobytes())
    module = _INTERPRETERS.get(key)
    if module is None:
        from ..codegen import cache
        module = _INTERPRETERS[key] = cache.import_source(cache.write_source(interpreter_source(prog)))
    return module
