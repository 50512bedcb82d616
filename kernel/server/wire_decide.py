"""A decision-only ``Decide`` from the request's wire bytes to the response's wire bytes in one
compiled call (:class:`RequestDecider`, the gRPC server's way for a request with ``actions``
false, no ledger and no experiment).

One Numba function (:func:`_decide_request`) reads the request and writes its Account into
the kernel's record inputs (:func:`kernel.server.wire._parse_request_into`), runs the
kernel's compiled ``record`` function on them through its native address (no return to
Python in between), and writes the ``DecideResponse``'s bytes straight from the kernel's
outputs: per decision column, the map entry :class:`~kernel.server.convert.DecideResponseEncoder`
makes for that value. The bytes of every entry a column can hold as a whole — a null, a
bool, an enum member, a rule id — are that encoder's own, made once when the decider is
built; the pass copies them, and assembles only what depends on a number (a float's eight
bytes, an int's varint, a date's fields, a collect ruleset's fired rules, the lengths
before them). Nothing of the answer is a Python object until its bytes: no decisions dict,
no record. The account's decisions are read off a copy of the outputs' bytes only where the
audit record is built — by the audit log's writer thread with ``sync = "interval"``.

An account heading for repossession or disposal (a flag of the valuation set) is decided
here too, and the caller takes its decisions from the outputs' copy through the stage that
values it; a request the pass cannot read or vouch for is handed over before anything runs
(the caller parses it: same answers, same refusals).
``tests/server/test_wire_kernel.py`` holds the response bytes and the audit records against
the record's way, account by account; ``tests/server/test_wire_decide.py`` the writer against
the encoder on decision columns of every kind.
"""
from __future__ import annotations

import threading
import time
from typing import NamedTuple

from ..codegen.cache import configure_numba_cache

configure_numba_cache()          # before Numba is imported (see kernel.server.wire)

import numpy as np  # noqa: E402
from numba import njit, types  # noqa: E402
from numba.core import cgutils  # noqa: E402
from numba.extending import intrinsic  # noqa: E402

from ..codegen.helpers import call_native, civil  # noqa: E402
from . import convert  # noqa: E402
from ._proto.postloan.v1 import decision_pb2  # noqa: E402
from .wire import (_ACCOUNT_START, _ACCOUNT_STOP, _ACTIONS, _AS_OF, _ID_START, _ID_STOP, _NO_MOMENT, _NOW,  # noqa: E402
                   _REQUEST_LIMITS, KernelInputs, _parse_request_into)

# column kinds of the response plan (kernel.Kernel.record_outputs' kinds)
_FLOAT, _INT, _BOOL, _DATE, _ENUM, _RULE, _COLLECT = range(7)
_KINDS = {"float": _FLOAT, "int": _INT, "bool": _BOOL, "date": _DATE, "enum": _ENUM, "rule": _RULE,
          "collect": _COLLECT}
# plan columns: kind, value byte, validity byte (−1: none), first piece, count (enum members,
# rule codes, collect words), role (_PLAIN, _VALUED: a flag that sends the account to the
# stage that values it when set, _TIER: the tier the metrics count), unique bit (a ``hit:
# unique`` ruleset's rule column: its bit in the conflicts mask; −1 otherwise)
_PLAN_WIDTH = 7
_PLAIN, _VALUED, _TIER = range(3)
# the pieces every response has, first in the pieces table: DecideResponse's decision tag,
# Decision's account_id tag, its as_of tag, its bundle hash field, and the entries after the
# kernel's (the pipeline's valuation columns, null on this path)
_P_RESPONSE, _P_ACCOUNT, _P_AS_OF, _P_BUNDLE, _P_TAIL = range(5)
# what the pass leaves in ``facts`` (int64): where the response starts in ``out``, the tier's
# member code (−1: null), the conflicts mask, the account id's bytes in the request, as_of
# (days since 1970) and now (µs)
_F_START, _F_TIER, _F_CONFLICTS, _F_ID_START, _F_ID_STOP, _F_DAYS, _F_NOW = range(7)
#: the answers of the pass besides a response's length
HANDED_OVER, VALUED, STAGED = -1, -2, -3
_EPOCH_ORDINAL = 719_163            # datetime.date(1970, 1, 1).toordinal()
_US_PER_DAY = 86_400_000_000
_ROOM = 16                          # bytes before the decision: its tag and length go there
#: the tags of Value's fields the pass writes itself (int_value, date_value, string_list_value)
_INT_TAG, _DATE_TAG, _LIST_TAG = (convert._tag(decision_pb2.Value, name, wire)[0] for name, wire in
                                  (("int_value", 0), ("date_value", 2), ("string_list_value", 2)))
_U7 = np.uint64(7)
_LOW7 = np.uint64(0x7F)


@intrinsic
def _copy(typingctx, target, target_at, source, source_at, n):
    """``target[target_at:target_at + n] = source[source_at:source_at + n]`` (uint8 arrays, not
    overlapping) by LLVM's memcpy: Numba's own loop copies byte by byte — the pieces of a
    response (≈ 2 KB) took ≈ 4 µs of the pass's 6, memcpy ≈ 0.2 (hot)."""
    def codegen(context, builder, signature, args):
        to = context.make_array(signature.args[0])(context, builder, args[0])
        from_ = context.make_array(signature.args[2])(context, builder, args[2])
        cgutils.raw_memcpy(builder, builder.gep(to.data, [args[1]]), builder.gep(from_.data, [args[3]]), args[4], 1)
        return context.get_dummy_value()
    return types.none(target, types.int64, source, types.int64, types.int64), codegen


@njit(cache=True)
def _varint_size(value):
    """The bytes of ``value``'s varint (an int64 taken as protobuf's uint64: negative, ten)."""
    u = np.uint64(value)
    n = 1
    while u > _LOW7:
        u >>= _U7
        n += 1
    return n


@njit(cache=True)
def _put_varint(out, at, value):
    """``value``'s varint (as :func:`_varint_size`) into ``out[at:]``; the position after it."""
    u = np.uint64(value)
    while u > _LOW7:
        out[at] = np.uint8((u & _LOW7) | np.uint64(0x80))
        u >>= _U7
        at += 1
    out[at] = np.uint8(u)
    return at + 1


@njit(cache=True)
def _put(out, at, pieces, blob, piece):
    """Piece ``piece`` (its bytes in ``blob``) into ``out[at:]``; the position after it."""
    start = pieces[piece, 0]
    n = pieces[piece, 1] - start
    _copy(out, at, blob, start, n)
    return at + n


@njit(cache=True)
def _size(pieces, piece):
    return pieces[piece, 1] - pieces[piece, 0]


@njit(cache=True)
def _read_int(buffer, at, width):
    """The ``width``-byte little-endian signed integer at ``buffer[at:]``."""
    value = np.int64(0)
    for k in range(width):
        value |= np.int64(buffer[at + k]) << (8 * k)
    if width < 8 and value >= np.int64(1) << (8 * width - 1):
        value -= np.int64(1) << (8 * width)
    return value


@njit(cache=True)
def _date_size(days):
    """The bytes of a ``google.type.Date``'s message for ``days`` (zero fields left out)."""
    size = 0
    for field in civil(days):
        if field:
            size += 1 + _varint_size(field)
    return size


@njit(cache=True)
def _put_date(out, at, days):
    y, m, d = civil(days)
    if y:
        out[at] = 0x08
        at = _put_varint(out, at + 1, y)
    if m:
        out[at] = 0x10
        at = _put_varint(out, at + 1, m)
    if d:
        out[at] = 0x18
        at = _put_varint(out, at + 1, d)
    return at


@njit(cache=True)
def _write_decision(buffer, plan, pieces, blob, request, id_start, id_stop, days, out, facts):
    """The DecideResponse of the decisions in ``buffer`` (the kernel's record outputs, offsets
    by ``plan``) into ``out`` from ``facts[_F_START]``; its length, or :data:`VALUED` when a
    valuation flag is set (the caller's stage values the account). The tier's code and the
    unique conflicts into ``facts``."""
    at = _ROOM
    if id_stop > id_start:                                   # account_id (an empty one is left out)
        at = _put(out, at, pieces, blob, _P_ACCOUNT)
        at = _put_varint(out, at, id_stop - id_start)
        _copy(out, at, request, id_start, id_stop - id_start)
        at += id_stop - id_start
    at = _put(out, at, pieces, blob, _P_AS_OF)
    at = _put_varint(out, at, _date_size(days))
    at = _put_date(out, at, days)
    at = _put(out, at, pieces, blob, _P_BUNDLE)
    facts[_F_TIER] = -1
    facts[_F_CONFLICTS] = 0
    double = np.empty(1, np.float64)                         # a float's bytes (see wire._parse)
    double_bytes = double.view(np.uint8)
    for c in range(plan.shape[0]):
        kind = plan[c, 0]
        value_at = plan[c, 1]
        valid = plan[c, 2] < 0 or buffer[plan[c, 2]] != 0
        first = plan[c, 3]
        if kind == _FLOAT:
            for k in range(8):
                double_bytes[k] = buffer[value_at + k]
            x = double[0]
            if valid and x == x:                              # (NaN: null, as the encoder has it)
                at = _put(out, at, pieces, blob, first + 1)
                for k in range(8):
                    out[at + k] = double_bytes[k]
                at += 8
            else:
                at = _put(out, at, pieces, blob, first)
        elif kind == _BOOL:
            flag = buffer[value_at] != 0
            if plan[c, 5] == _VALUED and valid and flag:
                return VALUED
            at = _put(out, at, pieces, blob, (first + 1 + (1 if flag else 0)) if valid else first)
        elif kind == _ENUM or kind == _RULE:
            code = _read_int(buffer, value_at, 1 if kind == _ENUM else 4)
            if not valid or code < 0 or code >= plan[c, 4]:
                code = -1
            if plan[c, 5] == _TIER:
                facts[_F_TIER] = code
            if plan[c, 6] >= 0 and code == plan[c, 4] - 1:   # a hit: unique ruleset's "!unique"
                facts[_F_CONFLICTS] |= np.int64(1) << plan[c, 6]
            at = _put(out, at, pieces, blob, first + 1 + code)
        elif kind == _INT or kind == _DATE:
            if not valid:
                at = _put(out, at, pieces, blob, first)
                continue
            # map tag, entry length, key, Value's tag and length, the Value: int_value / date_value
            if kind == _INT:
                v = _read_int(buffer, value_at, 8)
                inner = _varint_size(v)
            else:
                v = _read_int(buffer, value_at, 4)
                inner = _date_size(v)
                inner += _varint_size(inner)
            value = 1 + inner
            entry = _size(pieces, first + 2) + _varint_size(value) + value
            at = _put(out, at, pieces, blob, first + 1)
            at = _put_varint(out, at, entry)
            at = _put(out, at, pieces, blob, first + 2)
            at = _put_varint(out, at, value)
            if kind == _INT:
                out[at] = _INT_TAG
                at = _put_varint(out, at + 1, v)
            else:
                out[at] = _DATE_TAG
                at = _put_varint(out, at + 1, _date_size(v))
                at = _put_date(out, at, v)
        else:                                                 # collect: the fired rules' ids, in rule order
            words = plan[c, 4]
            items = 0
            for w in range(words):
                mask = _read_int(buffer, value_at + 8 * w, 8)
                for b in range(64):
                    if (mask >> b) & 1:
                        items += _size(pieces, first + 2 + 64 * w + b)
            listed = 1 + _varint_size(items) + items            # Value: string_list_value
            entry = _size(pieces, first + 1) + _varint_size(listed) + listed
            at = _put(out, at, pieces, blob, first)
            at = _put_varint(out, at, entry)
            at = _put(out, at, pieces, blob, first + 1)
            at = _put_varint(out, at, listed)
            out[at] = _LIST_TAG
            at = _put_varint(out, at + 1, items)
            for w in range(words):
                mask = _read_int(buffer, value_at + 8 * w, 8)
                for b in range(64):
                    if (mask >> b) & 1:
                        at = _put(out, at, pieces, blob, first + 2 + 64 * w + b)
    at = _put(out, at, pieces, blob, _P_TAIL)
    length = at - _ROOM                                       # then the decision's tag and length before it
    start = _ROOM - _size(pieces, _P_RESPONSE) - _varint_size(length)
    head = _put(out, start, pieces, blob, _P_RESPONSE)
    _put_varint(out, head, length)
    facts[_F_START] = start
    return at - start


@njit(cache=True)
def _decide_request(request, clock_us, with_actions, limits, id_slot, head, plan, floats_lo_hi, zones, seen, values,
                    floats, route, codes, names, blob, bits_lo, bits_hi, buffer, inputs_at, kernel, table_at,
                    response_plan, pieces, response_blob, out, facts, kept, kept_account, kept_from, kept_until,
                    kept_at, kept_bytes):
    """A decision-only DecideRequest's bytes to its DecideResponse's (any, ``with_actions``:
    then the decision's part of a response): the request read and its Account written into
    the kernel's inputs (``buffer[inputs_at:]``) by
    :func:`~kernel.server.wire._parse_request_into` — :data:`HANDED_OVER` when it cannot
    vouch for them —, the kernel's ``record`` function (address ``kernel``) run on them for
    the request's as_of (unset: ``clock_us``'s UTC day), then :func:`_write_decision`. The
    account id's bytes, as_of (days) and now (µs; unset: ``clock_us``) into ``facts``.
    With a ledger (``kept``), its kept state bytes (``kept_bytes`` at ``kept_at`` of the
    inputs) are written over the staged inputs before the kernel runs when the request's
    Account is ``kept_account``'s bytes and now is in ``[kept_from, kept_until)``; else
    :data:`STAGED`: the inputs staged, nothing run."""
    if not _parse_request_into(request, limits, id_slot, head, plan, floats_lo_hi, zones, seen, values, floats, route,
                               codes, names, blob, buffer[inputs_at:], bits_lo, bits_hi, with_actions):
        return HANDED_OVER
    now = head[_NOW] if head[_NOW] != _NO_MOMENT else clock_us
    if kept:
        start, stop = head[_ACCOUNT_START], head[_ACCOUNT_STOP]
        if not kept_from <= now < kept_until or stop - start != kept_account.shape[0]:
            return STAGED
        for k in range(stop - start):
            if request[start + k] != kept_account[k]:
                return STAGED
        for k in range(kept_at.shape[0]):
            buffer[inputs_at + kept_at[k]] = kept_bytes[k]
    days = head[_AS_OF] - _EPOCH_ORDINAL if head[_AS_OF] != _NO_MOMENT else clock_us // _US_PER_DAY
    facts[_F_DAYS] = days
    facts[_F_NOW] = now
    facts[_F_ID_START] = head[_ID_START]
    facts[_F_ID_STOP] = head[_ID_STOP]
    call_native(kernel, (days, table_at))
    return _write_decision(buffer, response_plan, pieces, response_blob, request, head[_ID_START], head[_ID_STOP],
                           days, out, facts)


@njit(cache=True)
def _decide_staged(request, head, days, buffer, kernel, table_at, response_plan, pieces, response_blob, out, facts):
    """:func:`_decide_request` after its request pass: the inputs already staged (and, with a
    ledger, its state written over them), ``head`` the pass's (the account id's bytes in
    ``request``); the kernel run for ``days`` and :func:`_write_decision`."""
    call_native(kernel, (days, table_at))
    return _write_decision(buffer, response_plan, pieces, response_blob, request, head[_ID_START], head[_ID_STOP],
                           days, out, facts)


class ResponseTables(NamedTuple):
    """What :func:`_write_decision` writes a response by (:func:`response_tables`)."""

    plan: np.ndarray               # int64 [columns, _PLAN_WIDTH]
    pieces: np.ndarray             # int64 [pieces, 2]: each piece's start and end in ``blob``
    blob: np.ndarray               # uint8: the pieces' bytes
    tiers: tuple                   # the tier column's members by code, then None (code −1)
    unique: tuple                  # the hit: unique rulesets, by their bit in the conflicts mask
    size: int                      # bytes a response may take at most (with the room before it)


def response_tables(outputs: tuple, encoder: convert.DecideResponseEncoder, tail: tuple[str, ...],
                    valued: tuple[str, ...], tier: str, unique_rulesets: tuple[str, ...],
                    id_bytes: int) -> ResponseTables | None:
    """The tables by which :func:`_write_decision` writes the response ``encoder`` gives for
    the decisions of a kernel whose outputs are ``outputs`` (``Kernel.record_outputs``), then
    the account id (at most ``id_bytes`` bytes), then the null columns ``tail`` (the stage's
    after the kernel's for an account not valued); ``valued``: the kernel's bool columns that
    send an account to valuation; ``tier``: the enum column the metrics count. Every entry a
    column can hold whole is the encoder's own. None: these outputs cannot be written so (a
    kernel column named as the stage's, a flag of ``valued`` missing or not a bool, over 63
    ``hit: unique`` rulesets)."""
    names = [c[0] for c in outputs]
    unique_columns = {f"{name}.rule": bit for bit, name in enumerate(unique_rulesets)}
    if "account_id" in names or set(tail) & set(names) or len(unique_columns) > 63 or \
            not all(any(c[0] == v and c[1] == "bool" for c in outputs) for v in valued):
        return None
    tags = convert._DECISION_TAGS
    pieces = [convert._RESPONSE_TAGS["decision"], tags["account_id"], tags["as_of"], encoder._bundle_hash,
              b"".join(encoder._entry(name, None) for name in tail)]
    # the room before the decision, its account id (tag, length, bytes) and as_of (a Date: at most 18 bytes)
    plan, size, tiers = [], _ROOM + 16 + id_bytes + 32 + sum(len(p) for p in pieces), (None,)
    for name, kind, value_at, valid_at, labels in outputs:
        first = len(pieces)
        map_tag, key, float_entry, _ = encoder._columns.get(name) or encoder._column(name)
        count = 0
        if kind == "float":
            pieces += [encoder._entry(name, None), float_entry]
            size += len(float_entry) + 8
        elif kind in ("int", "date"):
            pieces += [encoder._entry(name, None), map_tag, key + convert._MAP_VALUE_TAG]
            size += len(map_tag) + len(key) + 48            # lengths' varints, the Value (≤ 11 / 21 bytes)
        elif kind == "bool":
            pieces += [encoder._entry(name, v) for v in (None, False, True)]
        elif kind in ("enum", "rule"):
            count = len(labels)
            pieces += [encoder._entry(name, v) for v in (None, *labels)]
        else:                                               # collect
            count, ids = labels
            item = [convert._delimited(convert._LIST_ITEM_TAG, str(i).encode()) for i in ids]
            item += [b""] * (64 * count - len(item))
            pieces += [map_tag, key + convert._MAP_VALUE_TAG, *item]
            size += len(map_tag) + len(key) + 40 + sum(len(i) for i in item)
        if kind in ("bool", "enum", "rule"):
            size += max(len(p) for p in pieces[first:])
        role = _VALUED if name in valued else _TIER if name == tier and kind == "enum" else _PLAIN
        if role == _TIER:
            tiers = (*labels, None)
        plan.append((_KINDS[kind], value_at, valid_at, first, count, role, unique_columns.get(name, -1)))
    table, at = [], 0
    for piece in pieces:
        table.append((at, at + len(piece)))
        at += len(piece)
    return ResponseTables(np.array(plan, np.int64).reshape(-1, _PLAN_WIDTH), np.array(table, np.int64).reshape(-1, 2),
                          np.frombuffer(b"".join(pieces) or b"\0", np.uint8).copy(), tiers, tuple(unique_rulesets), size)


# where :meth:`RequestDecider._thread_args` holds the request pass's head, the kernel's buffer,
# the inputs' place in it, the kernel's address, its table's place, the response tables (then
# out, facts), out and facts
_A_HEAD = 2
_A_BUFFER, _A_INPUTS_AT, _A_KERNEL, _A_TABLE_AT, _A_RESPONSE, _A_OUT, _A_FACTS = 15, 16, 17, 18, 19, 22, 23

#: :func:`_decide_request`'s kept state arguments without a ledger (none)
_NOT_KEPT = (False, np.zeros(0, np.uint8), 0, 0, np.zeros(0, np.int64), np.zeros(0, np.uint8))


class RequestDecider:
    """A decision-only DecideRequest's bytes to (the DecideResponse's bytes, its account id,
    as_of, now, tier, unique conflicts, the kernel outputs' bytes) in one compiled call
    (:func:`_decide_request`), the response's bytes those of
    :meth:`~kernel.server.convert.DecideResponseEncoder.response` for the decisions the
    kernel gives — None for them when the account is valued (a flag of ``valued`` set: the
    caller's stage must value it, from the outputs' bytes: ``Kernel.read_outputs``). Made by
    :meth:`for_kernel`, which gives None when the kernel's outputs cannot be read this way."""

    def __init__(self, inputs: KernelInputs, kernel, tables: ResponseTables):
        self.inputs, self.kernel, self.tables = inputs, kernel, tables
        self._local = threading.local()

    @classmethod
    def for_kernel(cls, inputs: KernelInputs | None, kernel, encoder: convert.DecideResponseEncoder,
                   tail: tuple[str, ...], valued: tuple[str, ...], tier: str) -> "RequestDecider | None":
        """See :func:`response_tables` for ``tail``, ``valued`` and ``tier``."""
        if inputs is None or not inputs.reads_requests or getattr(kernel, "record_address", None) is None \
                or kernel.record_buffer()[2] is None:
            return None
        id_chars = inputs.decoder.columns[inputs.id_slot].length_limit     # (checked by the request pass)
        tables = response_tables(kernel.record_outputs, encoder, tail, valued, tier, kernel.unique_rulesets,
                                 4 * id_chars)
        return cls(inputs, kernel, tables) if tables is not None else None

    def _thread_args(self) -> tuple:
        """This thread's arguments of the pass after the request and the clock (made once)."""
        inputs, decoder = self.inputs, self.inputs.decoder
        seen, values, floats = decoder.thread_buffers()
        buffer, inputs_at, table_at = self.kernel.record_buffer()
        args = self._local.args = (
            _REQUEST_LIMITS, inputs.id_slot, inputs.thread_head(), decoder.plan, decoder.bounds, decoder.zones,
            seen, values, floats, inputs.route, inputs.codes, inputs.names, inputs.blob, inputs.bits.start,
            inputs.bits.stop, buffer, inputs_at, self.kernel.record_address, table_at, self.tables.plan,
            self.tables.pieces, self.tables.blob, np.zeros(self.tables.size, np.uint8), np.zeros(_F_NOW + 1, np.int64))
        return args

    def decide(self, data: bytes, with_actions: bool = False) -> tuple | None:
        """(response bytes — None for a valued account —, account id, as_of days, now µs,
        tier, unique conflicts, the outputs' bytes) for a decision-only request's bytes;
        None: the request is handed over (nothing ran; parse it). ``with_actions``: a request
        asking for actions is decided too (:meth:`actions_asked` tells), the response's bytes
        its decision's only — the caller's stage plans the actions, appended after them."""
        try:
            args = self._local.args
        except AttributeError:
            args = self._thread_args()
        n = _decide_request(np.frombuffer(data, np.uint8), time.time_ns() // 1000, with_actions, *args, *_NOT_KEPT)
        if n == HANDED_OVER:
            return None
        facts = args[_A_FACTS]
        _, _, _, id_start, id_stop, days, now = facts.tolist()
        return self._answer(data[id_start:id_stop].decode(), n, args, days, now)

    def decide_kept(self, data: bytes, account: np.ndarray, kept_from: int, kept_until: int, kept_at: np.ndarray,
                    kept_bytes: np.ndarray) -> tuple | int | None:
        """:meth:`decide` with a ledger's kept state bytes (``kept_bytes`` at ``kept_at`` of the
        inputs) written over the request's staged Account, for a request whose Account is
        ``account``'s bytes and whose now lies in ``[kept_from, kept_until)``; :data:`STAGED`
        when it is not (its Account staged, nothing run:
        :meth:`~kernel.server.wire.KernelInputs.staged_request` reads what the pass found);
        None: handed over."""
        try:
            args = self._local.args
        except AttributeError:
            args = self._thread_args()
        n = _decide_request(np.frombuffer(data, np.uint8), time.time_ns() // 1000, False, *args, True, account,
                            kept_from, kept_until, kept_at, kept_bytes)
        if n == HANDED_OVER:
            return None
        if n == STAGED:
            return STAGED
        facts = args[_A_FACTS]
        _, _, _, id_start, id_stop, days, now = facts.tolist()
        return self._answer(data[id_start:id_stop].decode(), n, args, days, now)

    def decide_staged(self, data: bytes, account_id: str, days: int, now_us: int) -> tuple:
        """:meth:`decide`'s answer for the request ``data`` whose Account this thread just
        staged (:meth:`kernel.server.wire.KernelInputs.stage_request`, its state written over
        the inputs with a ledger), decided for ``days`` (as_of) at ``now_us``."""
        try:
            args = self._local.args
        except AttributeError:
            args = self._thread_args()
        n = _decide_staged(np.frombuffer(data, np.uint8), self.inputs.thread_head(), days, args[_A_BUFFER],
                           args[_A_KERNEL], args[_A_TABLE_AT], *args[_A_RESPONSE:])
        return self._answer(account_id, n, args, days, now_us)

    def actions_asked(self) -> bool:
        """Whether the request this thread's :meth:`decide` just decided asks for actions
        (``actions`` true, or unset: protobuf's default for the field is true)."""
        return self._local.args[_A_HEAD][_ACTIONS] != 0

    def _answer(self, account_id: str, n: int, args: tuple, days: int, now_us: int) -> tuple:
        buffer, out, facts = args[_A_BUFFER], args[_A_OUT], args[_A_FACTS]
        start, tier, conflicts = facts.tolist()[:3]
        tables = self.tables
        return (out[start:start + n].tobytes() if n >= 0 else None, account_id, days, now_us, tables.tiers[tier],
                {name: 1 for b, name in enumerate(tables.unique) if conflicts >> b & 1} if conflicts else {},
                buffer[:args[_A_INPUTS_AT]].tobytes())
