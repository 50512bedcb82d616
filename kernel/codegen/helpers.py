"""Compiled helpers every generated kernel imports (Numba-cached here, inlined by LLVM).

Generated kernels read input columns through raw addresses (``p_i64(addr)[i]``): the same
compiled code then serves Arrow buffers (zero-copy) and small NumPy arrays alike, and a call
takes one address array instead of a tuple of arrays per column. The caller keeps every
buffer alive for the duration of the call.

Nothing here can trap: integer overflow is reported (``add``, ``sub``, ``neg``, ``absolute``,
``mul`` return the wrapped value and an ok flag), modulo by zero returns 0 and the caller marks
the value null.
"""
from __future__ import annotations

from .cache import configure_numba_cache

configure_numba_cache()          # before any function here is defined (see its docstring)

import operator  # noqa: E402

import numpy as np  # noqa: E402
from numba import njit, types  # noqa: E402
from numba.cpython.builtins import do_minmax  # noqa: E402
from numba.cpython.unsafe.numbers import trailing_zeros  # noqa: E402
from numba.core import cgutils  # noqa: E402
from numba.extending import intrinsic  # noqa: E402

from .pipeline import LeanCompiler  # noqa: E402

__all__ = ["fired_lists", "p_i64", "p_f64", "p_f32", "p_i32", "p_u8", "p_i8", "call_native", "element_pointer",
           "add", "sub", "neg", "absolute", "mul", "imod", "fmod", "civil", "bits64", "popcount", "row_pointer", "row_address",
           "pack_valid", "pack_rule", "zero_invalid", "select", "bit", "py_min", "py_max", "new_array", "array_at", "array2_at", "p_u64", "OPTS", "LEAN", "NODE_OPTS"]

OPTS = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)
#: generated code's options (the driver, the models' straight-line blocks): :data:`OPTS`
#: through the shorter pipeline of :mod:`.pipeline`, and no C-callback wrapper (nothing calls
#: generated code as a C function); the helpers here keep Numba's default pipeline
LEAN = dict(OPTS, pipeline_class=LeanCompiler, no_cfunc_wrapper=True)
#: a node function's: only ever called through its address (``call_native``), never from
#: Python either, so Numba builds no CPython wrapper (≈ 5-10 % of a node's compile)
NODE_OPTS = dict(LEAN, no_cpython_wrapper=True)
INT_MIN = -9223372036854775808


def _pointer(dtype):
    ptr = types.CPointer(dtype)

    @intrinsic
    def cast(typingctx, addr):
        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(ptr))
        return ptr(types.int64), codegen
    return cast


p_i64 = _pointer(types.int64)
p_f64 = _pointer(types.float64)
p_f32 = _pointer(types.float32)
p_i32 = _pointer(types.int32)
p_u8 = _pointer(types.uint8)
p_i8 = _pointer(types.int8)
p_u64 = _pointer(types.uint64)


@intrinsic
def row_pointer(typingctx, array, row):
    """Pointer to the first element of row ``row`` of a 2-D array. Indexing it takes no
    negative-index wraparound (which Numba emits for an array indexed by a signed int)."""
    ptr = types.CPointer(array.dtype)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        stride = cgutils.unpack_tuple(builder, ary.strides, 2)[0]
        address = builder.add(builder.ptrtoint(ary.data, stride.type), builder.mul(args[1], stride))
        return builder.inttoptr(address, context.get_value_type(ptr))
    return ptr(array, types.int64), codegen


@intrinsic
def row_address(typingctx, array, row):
    """The address (int64) of the first element of row ``row`` of a 2-D array."""
    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        stride = cgutils.unpack_tuple(builder, ary.strides, 2)[0]
        return builder.add(builder.ptrtoint(ary.data, stride.type), builder.mul(args[1], stride))
    return types.int64(array, types.int64), codegen


@intrinsic
def element_pointer(typingctx, array, index):
    """Pointer to element ``index`` of a 1-D array: a node's view of its own part of a table
    shared by every node of a kernel (indexing a pointer takes no negative-index wraparound)."""
    ptr = types.CPointer(array.dtype)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        return builder.gep(ary.data, [args[1]])
    return ptr(array, types.int64), codegen


@intrinsic
def call_native(typingctx, address, arguments):
    """Call the Numba-compiled function at ``address`` with the tuple ``arguments``.

    The callee (a node function, a model's block function) must have been compiled for
    exactly ``arguments``' types and return nothing; the caller looks its address up once
    (``kernel.codegen.cache.native_address``) and passes it at run time. Calling through an
    address instead of by name keeps the callee out of the caller's LLVM module: Numba links
    every callee it calls by name into the caller and optimizes the whole again, which made
    the fused kernel's compile time grow with the sum of its nodes and recompile them all
    when one changed. An exception the callee raises (a failed allocation) propagates."""
    if not isinstance(arguments, types.BaseTuple):
        return None
    argtys = tuple(arguments.types)

    def codegen(context, builder, signature, args):
        fnty = context.call_conv.get_function_type(types.none, argtys)
        fn = builder.inttoptr(args[0], fnty.as_pointer())
        values = cgutils.unpack_tuple(builder, args[1], len(argtys))
        status, _ = context.call_conv.call_function(builder, fn, types.none, argtys, values)
        with cgutils.if_unlikely(builder, status.is_error):
            context.call_conv.return_status_propagate(builder, status)
        return context.get_dummy_value()
    return types.none(types.int64, arguments), codegen


def _dtype_of(dtype):
    """The element type a ``dtype`` argument names (``np.float32`` in compiled code: a number
    class), or None."""
    if isinstance(dtype, types.NumberClass) and isinstance(dtype.dtype, (types.Integer, types.Float)):
        return dtype.dtype
    return None


@intrinsic
def new_array(typingctx, shape, dtype):
    """``np.empty(shape, dtype)`` for a tuple of int64 (a new C-contiguous array, its elements
    not set), allocated as NumPy's own ``np.empty`` allocates in compiled code. ``np.empty``
    is an overload whose implementation Numba compiles, through its whole pipeline, the first
    time each process types it for a type: ≈ 0.1-0.2 s of a cold compile per distinct call,
    where this costs the few instructions of the allocation itself."""
    from numba.np.arrayobj import _empty_nd_impl, _parse_shape
    from numba.core.imputils import impl_ret_new_ref
    element = _dtype_of(dtype)
    if (element is None or not isinstance(shape, types.BaseTuple) or len(shape) == 0
            or not all(isinstance(t, types.Integer) for t in shape)):
        return None
    arrtype = types.Array(element, len(shape), "C")

    def codegen(context, builder, signature, args):
        # (NumPy's checks, as np.empty's: a negative size is a ValueError)
        ary = _empty_nd_impl(context, builder, arrtype, _parse_shape(context, builder, shape, args[0]))
        return impl_ret_new_ref(context, builder, arrtype, ary._getvalue())
    return arrtype(shape, dtype), codegen


def _c_array(context, builder, arrtype, data, dims: list):
    """The value of a C-contiguous ``arrtype`` array of shape ``dims`` (LLVM intp values) over
    memory at ``data``, owned by someone else (no MemInfo): what :func:`array_at` and
    :func:`array2_at` return."""
    from numba.np.arrayobj import make_array, populate_array
    ary = make_array(arrtype)(context, builder)
    itemsize = context.get_constant(types.intp, context.get_abi_sizeof(context.get_data_type(arrtype.dtype)))
    strides, stride = [], itemsize
    for dim in reversed(dims[1:]):           # the last axis steps by one element, each earlier by a row
        strides.insert(0, stride)
        stride = builder.mul(dim, stride)
    strides.insert(0, stride)
    populate_array(ary, data=data, shape=cgutils.pack_array(builder, dims),
                   strides=cgutils.pack_array(builder, strides), itemsize=itemsize, meminfo=None)
    return ary._getvalue()


@intrinsic
def array_at(typingctx, pointer, size):
    """A 1-D C-contiguous array of ``size`` elements over memory at ``pointer`` (``p_i64(addr)``
    and the like), owned by someone else (no reference count): ``numba.carray(pointer, size)``
    without its overload, which Numba compiles afresh in every process, per element type."""
    if not isinstance(pointer, types.CPointer) or not isinstance(size, types.Integer):
        return None
    arrtype = types.Array(pointer.dtype, 1, "C")

    def codegen(context, builder, signature, args):
        return _c_array(context, builder, arrtype, args[0], [context.cast(builder, args[1], size, types.intp)])
    return arrtype(pointer, size), codegen


@intrinsic
def array2_at(typingctx, pointer, rows, cols):
    """A 2-D C-contiguous ``[rows, cols]`` array over memory at ``pointer``, owned by someone
    else (no reference count), as :func:`array_at`: the record path's driver rebuilds the
    kernel's arrays from the addresses in one table instead of taking each array from Python
    (unboxing an array argument costs the call a MemInfo allocation and a few cache lines)."""
    if (not isinstance(pointer, types.CPointer) or not isinstance(rows, types.Integer)
            or not isinstance(cols, types.Integer)):
        return None
    arrtype = types.Array(pointer.dtype, 2, "C")

    def codegen(context, builder, signature, args):
        return _c_array(context, builder, arrtype, args[0], [context.cast(builder, args[1], rows, types.intp),
                                                             context.cast(builder, args[2], cols, types.intp)])
    return arrtype(pointer, rows, cols), codegen


@intrinsic
def select(typingctx, cond, a, b):
    """``a if cond else b`` as one LLVM ``select``: no branch. Both ``a`` and ``b`` are
    evaluated, so the generated code uses it only where evaluating the other value cannot trap
    or read out of bounds (values already computed, a float division under the numpy error
    model). A conditional expression costs Numba's passes two blocks and a phi each: on the
    shipped bundle's nodes, three times the compile time of a ``select`` per line."""
    ta, tb = types.unliteral(a), types.unliteral(b)
    t = ta if ta == tb else typingctx.unify_types(ta, tb)
    if t is None or not isinstance(t, (types.Number, types.Boolean)):
        return None

    def codegen(context, builder, signature, args):
        c = context.cast(builder, args[0], signature.args[0], types.boolean)
        x = context.cast(builder, args[1], signature.args[1], t)
        y = context.cast(builder, args[2], signature.args[2], t)
        return builder.select(c, x, y)
    return t(cond, a, b), codegen


@intrinsic
def bit(typingctx, word, j):
    """Bit ``j`` of a uint64 word as a bool: ``((word >> j) & 1) != 0`` in one call. A
    generated node reads every bitmap bit it uses this way, and Numba's front end costs per
    IR instruction: the call is two instructions where the expression was six."""
    if word != types.uint64 or j != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.trunc(builder.lshr(args[0], args[1]), context.get_value_type(types.boolean))
    return types.boolean(types.uint64, types.uint64), codegen


def _python_minmax(compare):
    """An intrinsic computing Python's ``min(a, b)`` (``compare`` ``operator.lt``) or ``max(a,
    b)`` (``operator.gt``) of two numbers or bools exactly as Numba's builtins do — their own
    code generation (``do_minmax``: the unified type, then ``select(b OP a, b, a)``, so
    ``max(1.5, nan)`` is 1.5 as in Python) — without the overload of ``min`` / ``max`` that
    Numba compiles through its whole pipeline for every pair of argument types in every
    process (six such compiles, ≈ 0.35 s of a cold compile of the shipped bundle)."""
    def typer(typingctx, a, b):
        a, b = types.unliteral(a), types.unliteral(b)
        if not all(isinstance(t, (types.Number, types.Boolean)) for t in (a, b)):
            return None
        result = typingctx.unify_types(a, b)
        if result is None:
            return None

        def codegen(context, builder, signature, args):
            return do_minmax(context, builder, list(signature.args), list(args), compare)
        return result(a, b), codegen
    return intrinsic(typer)


py_min = _python_minmax(operator.lt)
py_max = _python_minmax(operator.gt)


@intrinsic
def popcount(typingctx, x):
    """Number of set bits of a uint64 (one instruction)."""
    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])
    return types.uint64(types.uint64), codegen


@njit(**OPTS)
def bits64(p, lo, hi):
    """Bits ``lo .. hi - 1`` (at most 64) of the bitmap at ``p`` as a uint64, bit 0 first; reads
    no byte past bit ``hi - 1``. Bits above ``hi - lo`` are unspecified."""
    q = lo >> 3
    r = np.uint64(lo & 7)
    span = ((hi - 1) >> 3) - q          # bytes after the first: 0..8
    w = np.uint64(0)
    for k in range(min(span, 7) + 1):
        w |= np.uint64(p[q + k]) << np.uint64(8 * k)
    w >>= r
    if span == 8:                        # only when r > 0: the 9th byte's low bits
        w |= np.uint64(p[q + 8]) << (np.uint64(64) - r)
    return w


#: multiplying eight 0/1 bytes (a little-endian uint64) by this gathers them into the top byte,
#: first byte lowest: bit 56 + k of the product is byte k
_GATHER = np.uint64(0x0102040810204080)
_S56 = np.uint64(56)


@njit(**OPTS)
def pack_valid(src, out, s, e):
    """Pack bytes ``s..e`` (0/1) of the row at address ``src`` into the bitmap at address
    ``out`` (LSB first; ``s`` a multiple of 8; the last byte's bits past ``e`` are 0); returns
    how many were 0. Rows are passed as addresses (``row_address``): an array view per call
    costs Numba a reference count update, which for a few dozen bitmaps per block of rows
    was most of the packing's cost."""
    ones = 0
    i = s
    while i + 8 <= e:                    # eight bytes at once, by one multiplication
        x = p_u64(src + i)[0]
        p_u8(out)[i >> 3] = np.uint8((x * _GATHER) >> _S56)
        ones += int(popcount(x))
        i += 8
    if i < e:
        row = p_u8(src)
        byte = 0
        for t in range(e - i):
            byte |= (1 if row[i + t] != 0 else 0) << t
        p_u8(out)[i >> 3] = byte
        ones += int(popcount(np.uint64(byte)))
    return (e - s) - ones


@njit(**OPTS)
def pack_rule(src, out, s, e):
    """Winning-rule codes (int32 at address ``src``): pack ``codes >= 0`` (a rule fired) into
    the bitmap at ``out`` and make the other codes 0 (a valid dictionary index under a null);
    returns how many were null."""
    codes = p_i32(src)
    bits = p_u8(out)
    ones = 0
    i = s
    while i < e:
        top = min(8, e - i)
        byte = 0
        if top == 8:                     # a constant trip count: unrolled, branch-free
            for t in range(8):
                c = codes[i + t]
                negative = c >> 31       # -1 or 0
                codes[i + t] = c & ~negative
                byte |= (1 + negative) << t
        else:
            for t in range(top):
                c = codes[i + t]
                negative = c >> 31
                codes[i + t] = c & ~negative
                byte |= (1 + negative) << t
        bits[i >> 3] = byte
        ones += int(popcount(np.uint64(byte)))
        i += 8
    return (e - s) - ones


@njit(**OPTS)
def zero_invalid(codes_at, valid_at, s, e):
    """Enum codes (int8 at ``codes_at``) under a null (0 in the bytes at ``valid_at``) become
    0, a valid dictionary index."""
    codes, valid = p_i8(codes_at), p_u8(valid_at)
    for i in range(s, e):
        if valid[i] == 0:
            codes[i] = 0


# Numba marks signed integer arithmetic "nsw" (overflow is undefined behaviour for LLVM),
# which lets LLVM delete overflow checks written in signed arithmetic (it folds
# ``(a * b) // a == b`` to true). The checked operations below therefore compute in uint64,
# where wrapping is defined, and reinterpret the result.
_U32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_SIGN = np.uint64(1) << np.uint64(63)


@njit(**OPTS)
def add(a, b):
    """``a + b`` wrapped to 64 bits, and whether it did not overflow."""
    r = np.int64(np.uint64(a) + np.uint64(b))
    return r, ((a ^ r) & (b ^ r)) >= 0


@njit(**OPTS)
def sub(a, b):
    r = np.int64(np.uint64(a) - np.uint64(b))
    return r, ((a ^ b) & (a ^ r)) >= 0


@njit(**OPTS)
def neg(a):
    return np.int64(np.uint64(0) - np.uint64(a)), a != INT_MIN


@njit(**OPTS)
def absolute(a):
    if a >= 0:
        return a, True
    return neg(a)


@njit(**OPTS)
def mul(a, b):
    """``a * b`` wrapped to 64 bits, and whether it did not overflow (exact: the 128-bit
    magnitude of the product from 32-bit limbs)."""
    r = np.int64(np.uint64(a) * np.uint64(b))
    ua = np.uint64(a) if a >= 0 else np.uint64(0) - np.uint64(a)
    ub = np.uint64(b) if b >= 0 else np.uint64(0) - np.uint64(b)
    a_hi, a_lo = ua >> _S32, ua & _U32
    b_hi, b_lo = ub >> _S32, ub & _U32
    if a_hi != 0 and b_hi != 0:
        return r, False
    cross = a_hi * b_lo + a_lo * b_hi
    if cross > _U32:
        return r, False
    low = a_lo * b_lo
    total = (cross << _S32) + low
    if total < low:
        return r, False
    negative = (a < 0) != (b < 0)
    limit = _SIGN if negative else _SIGN - np.uint64(1)
    return r, total <= limit


@njit(**OPTS)
def imod(a, b):
    """Python's ``a % b`` for ints; 0 where it is undefined (b == 0) or would trap (b == -1)."""
    if b == 0 or b == -1:
        return 0
    return a % b


@njit(**OPTS)
def fmod(a, b):
    if b == 0.0:
        return 0.0
    return a % b


@njit(**OPTS)
def civil(z):
    """(year, month, day) of ``z`` days since 1970-01-01 (H. Hinnant's civil_from_days)."""
    z = z + 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


@njit(**OPTS)
def fired_lists(masks, rules):
    """Fired-rule bit masks (``[words, n]`` uint64; no bit at or past ``rules`` is ever set) →
    list offsets (int32, n + 1) and rule indices (int32) of every fired rule, row by row in
    rule order: the layout of an Arrow ``list`` column."""
    words, n = masks.shape
    offsets = np.empty(n + 1, dtype=np.int32)
    offsets[0] = 0
    total = 0
    for i in range(n):
        for w in range(words):
            total += int(popcount(masks[w, i]))
        offsets[i + 1] = total
    indices = np.empty(total, dtype=np.int32)
    k = 0
    for i in range(n):
        for w in range(words):
            m = masks[w, i]
            while m != np.uint64(0):
                indices[k] = w * 64 + np.int64(trailing_zeros(m))
                k += 1
                m &= m - np.uint64(1)
    return offsets, indices
