"""Conversions between the API's messages and the kernel's columns — both directions.

Client side: a record (dict of contract columns) → ``Account``; a ``Decision`` → dict.
Server side: an ``Account`` → a dict of one-element NumPy arrays (no Arrow: building a
one-row Arrow table costs more than the whole round trip, see MEASURED.md); decision
columns → ``Decision``. Arrow IPC streams carry batches.

Every codec is planned once per message type (a tuple of per-field closures), so a call
costs one loop over the fields and no type dispatch.
"""
from __future__ import annotations

import datetime as dt
import math
import struct

import numpy as np
import pyarrow as pa
from google.protobuf.timestamp_pb2 import Timestamp
from google.type.date_pb2 import Date

from .. import schema
from ._proto.postloan.v1 import contract_pb2, decision_pb2
from .status import FieldError

EPOCH = dt.date(1970, 1, 1)
EPOCH_ORDINAL = EPOCH.toordinal()
UTC = dt.timezone.utc
EPOCH_UTC = dt.datetime(1970, 1, 1, tzinfo=UTC)


def utc_today() -> dt.date:
    return dt.datetime.now(UTC).date()


# -- dates and instants ------------------------------------------------------------------------
def date_message(value) -> Date:
    if isinstance(value, dt.datetime):
        value = value.date()
    elif isinstance(value, str):
        value = dt.date.fromisoformat(value)
    elif isinstance(value, np.datetime64):
        value = value.astype("datetime64[D]").item()
    return Date(year=value.year, month=value.month, day=value.day)


def date_value(message: Date, field: str, bounded: bool = True) -> dt.date:
    """The date a ``google.type.Date`` carries; FieldError for an invalid one or (``bounded``:
    a request's date) one outside the contract's :data:`kernel.schema.DATE_RANGE`."""
    try:
        value = dt.date(message.year, message.month, message.day)
    except ValueError as e:
        raise FieldError(field, f"not a valid date ({message.year:04d}-{message.month:02d}-{message.day:02d}): {e}") from None
    lo, hi = schema.DATE_RANGE
    if bounded and not lo <= value <= hi:
        raise FieldError(field, f"{value} is outside the contract's range {lo} – {hi}")
    return value


def timestamp_message(value) -> Timestamp:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    elif isinstance(value, np.datetime64):
        value = value.astype("datetime64[us]").item().replace(tzinfo=UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


# protobuf's Timestamp: 0001-01-01T00:00:00Z … 9999-12-31T23:59:59.999999999Z
TIMESTAMP_SECONDS = (-62_135_596_800, 253_402_300_799)


def instant_problem(seconds: int, nanos: int) -> str | None:
    """What is wrong with a Timestamp's fields (None: a valid instant)."""
    if not TIMESTAMP_SECONDS[0] <= seconds <= TIMESTAMP_SECONDS[1]:
        return f"not a valid instant: seconds {seconds} outside {TIMESTAMP_SECONDS[0]} – {TIMESTAMP_SECONDS[1]}"
    if not 0 <= nanos <= 999_999_999:
        return f"not a valid instant: nanos {nanos} outside 0 – 999999999"
    return None


def instant_value(seconds: int, nanos: int) -> dt.datetime:
    """A valid Timestamp's fields as an aware UTC datetime: what ``Timestamp.ToDatetime(tzinfo=UTC)``
    gives (nanos truncated to µs), without its round trip through a naive datetime and
    ``astimezone`` (≈ 1 µs against 6–12 on the benchmark machine)."""
    return EPOCH_UTC + dt.timedelta(seconds=seconds, microseconds=nanos // 1000)


def timestamp_value(message: Timestamp, field: str = "timestamp", bounded: bool = True) -> dt.datetime:
    """The instant a Timestamp carries (aware, UTC); FieldError for an invalid one or
    (``bounded``: a request's instant) one outside the contract's
    :data:`kernel.schema.INSTANT_RANGE`."""
    seconds, nanos = message.seconds, message.nanos
    problem = instant_problem(seconds, nanos)
    if problem:
        raise FieldError(field, problem)
    value = instant_value(seconds, nanos)
    lo, hi = schema.INSTANT_RANGE
    if bounded and not lo <= value <= hi:
        raise FieldError(field, f"{value:%Y-%m-%dT%H:%M:%SZ} is outside the contract's range "
                                f"{lo:%Y-%m-%d} – {hi:%Y-%m-%d} (UTC)")
    return value


def enum_code(enum: str, member: str) -> int:
    """The proto enum number of a contract enum member (member index + 1)."""
    try:
        return schema.ENUMS[enum].index(member) + 1
    except ValueError:
        raise FieldError(enum, f"not one of {', '.join(schema.ENUMS[enum])}") from None


# -- records → messages (client side) ---------------------------------------------------------------
def _encoder(col: schema.Column):
    t = col.type
    name = col.name
    if col.enum:
        codes = {member: i for i, member in enumerate(schema.ENUMS[col.enum], start=1)}

        def enum(value):
            try:
                return codes[value]
            except (KeyError, TypeError):
                raise FieldError(name, f"not one of {', '.join(schema.ENUMS[col.enum])}") from None
        return enum
    if pa.types.is_integer(t):
        return int
    if pa.types.is_floating(t):
        return float
    if pa.types.is_boolean(t):
        return bool
    if pa.types.is_date(t):
        return date_message
    if pa.types.is_timestamp(t):
        return timestamp_message
    return str


class RecordCodec:
    """dict of contract columns ⇄ a contract message (Account, Vehicle, Action)."""

    def __init__(self, message_cls, table: str):
        self.message_cls = message_cls
        self.table = table
        self.columns = schema.TABLES[table]
        self._encoders = {c.name: _encoder(c) for c in self.columns}

    def encode(self, record: dict):
        """A message from ``record``; None and NaN are nulls; keys outside the contract are not sent."""
        kwargs = {}
        encoders = self._encoders
        for name, value in record.items():
            encode = encoders.get(name)
            if encode is None or value is None or (value != value):   # value != value: NaN
                continue
            try:
                kwargs[name] = encode(value)
            except FieldError:
                raise
            except (TypeError, ValueError, AttributeError, OverflowError):
                # (the exception's text may quote the value: a record's strings stay out of errors)
                raise FieldError(name, f"cannot encode a {type(value).__name__} as {schema.columns(self.table)[name].type}") from None
        return self.message_cls(**kwargs)

    def decode(self, message) -> dict:
        """The record a message carries (enums as member names, nulls as None)."""
        out = {}
        for col in self.columns:
            name = col.name
            if col.enum:
                code = getattr(message, name)
                out[name] = schema.ENUMS[col.enum][code - 1] if code else None
            elif message.HasField(name):
                value = getattr(message, name)
                if isinstance(value, Date):
                    value = date_value(value, name, bounded=False)
                elif isinstance(value, Timestamp):
                    value = timestamp_value(value, name, bounded=False)
                out[name] = value
            else:
                out[name] = None
        return out


ACCOUNT = RecordCodec(contract_pb2.Account, "book")
VEHICLE = RecordCodec(contract_pb2.Vehicle, "vehicles")
ACTION = RecordCodec(contract_pb2.Action, "actions")


# -- typed values ---------------------------------------------------------------------------------------
def set_value(target: decision_pb2.Value, value) -> None:
    """Store a Python / NumPy scalar in a Value; None and NaN stay unset (null)."""
    if value is None:
        return
    if isinstance(value, (bool, np.bool_)):
        target.bool_value = bool(value)
    elif isinstance(value, (int, np.integer)):
        target.int_value = int(value)
    elif isinstance(value, (float, np.floating)):
        if not math.isnan(value):
            target.float_value = float(value)
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, dt.datetime):
        target.timestamp_value.CopyFrom(timestamp_message(value))
    elif isinstance(value, dt.date):
        target.date_value.CopyFrom(date_message(value))
    elif isinstance(value, np.datetime64):
        if not np.isnat(value):
            if value.dtype == np.dtype("datetime64[D]"):
                target.date_value.CopyFrom(date_message(value))
            else:
                target.timestamp_value.CopyFrom(timestamp_message(value))
    elif isinstance(value, (list, tuple)):
        target.string_list_value.SetInParent()          # an empty list is not a null
        target.string_list_value.values.extend(str(v) for v in value)
    elif isinstance(value, bytes):
        target.string_value = value.decode("utf-8")
    else:
        raise TypeError(f"cannot carry a {type(value).__name__} in a Value")


def python_value(value: decision_pb2.Value):
    kind = value.WhichOneof("kind")
    if kind is None:
        return None
    if kind == "date_value":
        return date_value(value.date_value, "value", bounded=False)
    if kind == "timestamp_value":
        return timestamp_value(value.timestamp_value, "value", bounded=False)
    if kind == "string_list_value":
        return list(value.string_list_value.values)
    return getattr(value, kind)


def decision_dict(decision: decision_pb2.Decision) -> dict:
    """A Decision as one flat row, named like ``Kernel.decide``'s columns."""
    row = {"account_id": decision.account_id,
           "as_of": date_value(decision.as_of, "as_of", bounded=False) if decision.HasField("as_of") else None,
           "bundle_hash": decision.bundle_hash}
    for name, value in decision.values.items():
        row[name] = python_value(value)
    for ruleset, rule in decision.rules.items():
        row[f"{ruleset}.rule"] = python_value(rule)
    return row


# -- a Decide response as wire bytes ---------------------------------------------------------------
def _varint(n: int) -> bytes:
    if n < 128:
        return _SMALL_VARINTS[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL_VARINTS = tuple(bytes([n]) for n in range(128))


def _tag(message_cls, field: str, wire_type: int) -> bytes:
    return _varint(message_cls.DESCRIPTOR.fields_by_name[field].number << 3 | wire_type)


def _delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


_LEN, _I64_WIRE, _VARINT_WIRE = 2, 1, 0
_DECISION_TAGS = {f: _tag(decision_pb2.Decision, f, _LEN) for f in ("account_id", "as_of", "bundle_hash", "values", "rules")}
_RESPONSE_TAGS = {f: _tag(decision_pb2.DecideResponse, f, _LEN) for f in ("decision", "actions")}
_BOOL_TAG = _tag(decision_pb2.Value, "bool_value", _VARINT_WIRE)
_INT_TAG = _tag(decision_pb2.Value, "int_value", _VARINT_WIRE)
_FLOAT_TAG = _tag(decision_pb2.Value, "float_value", _I64_WIRE)
_STRING_TAG = _tag(decision_pb2.Value, "string_value", _LEN)
_LIST_TAG = _tag(decision_pb2.Value, "string_list_value", _LEN)
_LIST_ITEM_TAG = _tag(decision_pb2.StringList, "values", _LEN)
_MAP_KEY_TAG, _MAP_VALUE_TAG = b"\x0a", b"\x12"          # every map entry: key = 1, value = 2
_ACTION_TAGS = {f.name: _varint(f.number << 3 | (_I64_WIRE if f.type == f.TYPE_DOUBLE else _VARINT_WIRE
                                                 if f.type in (f.TYPE_ENUM, f.TYPE_INT64, f.TYPE_INT32) else _LEN))
                for f in contract_pb2.Action.DESCRIPTOR.fields}
_SECONDS_TAG = _tag(Timestamp, "seconds", _VARINT_WIRE)
_NANOS_TAG = _tag(Timestamp, "nanos", _VARINT_WIRE)
_NULL_TIME = -(1 << 63)                       # the pipeline's null instant (int64 min)
_LANGUAGE_CODES = {member: i for i, member in enumerate(schema.ENUMS["language"], start=1)}
_PACK_DOUBLE = struct.Struct("<d").pack
_INT64 = 1 << 63
_MEMOIZED = (str, bool, int, type(None), list)      # the value types whose entries are memoized
_NO_MEMO = object()


def _timestamp_payload(us: int) -> bytes:
    """A Timestamp's wire bytes for microseconds since the epoch (zero fields left out)."""
    seconds, micros = divmod(us, 1_000_000)
    return ((_SECONDS_TAG + _varint(seconds & 0xFFFF_FFFF_FFFF_FFFF) if seconds else b"")
            + (_NANOS_TAG + _varint(micros * 1000) if micros else b""))


def _action_payloads(columns: dict) -> list[bytes]:
    """Each planned action's ``Action`` wire bytes, from the pipeline's action columns (codes
    0-based, instants in µs with int64 min for null, text None for null); the bytes the
    message built field by field serializes to."""
    n = len(columns["action"])
    if n == 0:
        return []
    t = _ACTION_TAGS
    script = columns.get("script")
    script = script.to_pylist() if isinstance(script, (pa.Array, pa.ChunkedArray)) else \
        [None] * n if script is None else list(script)
    account_id, action, priority, outcome, earliest, later, script_id, language, reason, policy = (
        columns[name].tolist() for name in ("account_id", "action", "priority", "outcome", "earliest_at",
                                            "next_allowed_at", "script_id", "language", "reason_code", "policy"))
    out = []
    for i in range(n):
        parts = [_delimited(t["account_id"], str(account_id[i]).encode())]
        code = action[i] + 1
        if code:
            parts.append(t["action"] + _varint(code & 0xFFFF_FFFF_FFFF_FFFF))
        parts.append(t["priority"] + _PACK_DOUBLE(priority[i]))
        if earliest[i] != _NULL_TIME:
            parts.append(_delimited(t["earliest_at"], _timestamp_payload(earliest[i])))
        if script_id[i] is not None:
            parts.append(_delimited(t["script_id"], str(script_id[i]).encode()))
        if language[i] is not None:
            parts.append(t["language"] + _varint(_LANGUAGE_CODES[language[i]]))
        if script[i] is not None:
            parts.append(_delimited(t["script"], script[i].encode()))
        code = outcome[i] + 1
        if code:
            parts.append(t["outcome"] + _varint(code & 0xFFFF_FFFF_FFFF_FFFF))
        if reason[i] is not None:
            parts.append(_delimited(t["reason_code"], str(reason[i]).encode()))
        if later[i] != _NULL_TIME:
            parts.append(_delimited(t["next_allowed_at"], _timestamp_payload(later[i])))
        if policy[i] is not None:
            parts.append(_delimited(t["policy"], str(policy[i]).encode()))
        out.append(b"".join(parts))
    return out


def _value_payload(value) -> bytes:
    """A Value's wire bytes, as :func:`set_value` then SerializeToString would give them."""
    kind = type(value)
    if kind is float:
        return b"" if value != value else _FLOAT_TAG + _PACK_DOUBLE(value)
    if kind is str:
        return _delimited(_STRING_TAG, value.encode())
    if kind is bool:
        return _BOOL_TAG + (b"\x01" if value else b"\x00")
    if kind is int and -_INT64 <= value < _INT64:
        return _INT_TAG + _varint(value & 0xFFFF_FFFF_FFFF_FFFF)     # negative: ten bytes
    if value is None:
        return b""
    if kind is list:
        return _delimited(_LIST_TAG, b"".join(_delimited(_LIST_ITEM_TAG, str(v).encode()) for v in value))
    message = decision_pb2.Value()
    set_value(message, value)
    return message.SerializeToString()


class DecideResponseEncoder:
    """Encodes a Decide response — a ``Decision`` (one decision record: ``{column: Python
    scalar}``) and its actions (the pipeline's action columns) — straight to its wire bytes: the bytes of the
    messages built field by field, up to the order of map entries, in a fraction of the time.
    Per column, what precedes a float is made once, and the whole entry of any other value
    (string, bool, int, rule list, null) is made once and reused: a column takes few of them.

    The columns are written by a function generated once per order of a record's columns
    (the pipeline gives every record of a bundle the same): one expression per column,
    shaped by the type the column held in the record it was generated for — a float its
    prefix and its 8 bytes, a bool or a null its whole entry by identity, a string, an int
    or a rule list its entry from a memo of that type — and any other value through
    :meth:`_entry`, which gives every value its bytes."""

    MEMO_PER_COLUMN = 512          # bounds the memory a free-text output column could take
    WRITERS = 64                   # column orders kept (one per bundle in practice)

    def __init__(self, bundle_hash: str):
        self._bundle_hash = _delimited(_DECISION_TAGS["bundle_hash"], bundle_hash.encode())
        # column -> (map tag, key field, the whole entry up to a float's 8 bytes, memos by value type)
        self._columns: dict[str, tuple[bytes, bytes, bytes, dict[type, dict]]] = {}
        self._as_of: tuple = (None, b"")
        self._writers: dict[tuple, object] = {}       # the record's columns, in order -> writer

    def _column(self, name: str) -> tuple[bytes, bytes, bytes, dict[type, dict]]:
        is_rule = name.endswith(".rule")
        tag = _DECISION_TAGS["rules" if is_rule else "values"]
        key = _delimited(_MAP_KEY_TAG, (name[:-5] if is_rule else name).encode())
        float_value = _MAP_VALUE_TAG + _varint(len(_FLOAT_TAG) + 8) + _FLOAT_TAG
        plan = (tag, key, tag + _varint(len(key) + len(float_value) + 8) + key + float_value,
                {kind: {} for kind in _MEMOIZED})
        self._columns[name] = plan
        return plan

    def _entry(self, name: str, value) -> bytes:
        """One map entry's bytes, for any value (what a writer's expressions give for the
        values they expect). The entry of a value other than a float is made once per
        (column, value) and kept in the column's memo of the value's exact type — a rule
        list's under its tuple, when it holds strings only — so that True and 1, or
        ``[True]`` and ``[1]``, never share an entry."""
        tag, key, float_entry, memos = self._columns.get(name) or self._column(name)
        kind = type(value)
        if kind is float and value == value:
            return float_entry + _PACK_DOUBLE(value)
        memo = memos.get(kind)
        memo_key = _NO_MEMO
        if memo is not None:
            memo_key = tuple(value) if kind is list else value
            if kind is list and not all(type(item) is str for item in memo_key):
                memo_key = _NO_MEMO
            else:
                entry = memo.get(memo_key)
                if entry is not None:
                    return entry
        payload = key + _delimited(_MAP_VALUE_TAG, _value_payload(value))
        entry = tag + _varint(len(payload)) + payload
        if memo_key is not _NO_MEMO and len(memo) < self.MEMO_PER_COLUMN:
            memo[memo_key] = entry
        return entry

    def _writer(self, names: tuple, values):
        """The function giving the parts of a DecideResponse whose decision record's columns
        are ``names`` (in order; ``account_id`` is not an entry): the account id, date and
        bundle hash, then one expression per column, shaped by the type of its value in ``values`` (a record
        of that order); a value of another type takes :meth:`_entry`."""
        env = {"pack": _PACK_DOUBLE, "entry": self._entry, "tuple": tuple, "type": type,
               "float": float, "str": str, "int": int, "list": list}
        items = []
        for i, (name, sample) in enumerate(zip(names, values)):
            if name == "account_id":
                continue
            _, _, env[f"F{i}"], memos = self._columns.get(name) or self._column(name)
            env[f"N{i}"] = name
            v, kind, fallback = f"v{i}", type(sample), f"entry(N{i}, v{i})"
            if kind is float or sample is None:
                env[f"E{i}"] = self._entry(name, None)
                as_float = f"F{i} + pack({v}) if type({v}) is float and {v} == {v} else "
                as_null = f"E{i} if {v} is None else "
                expr = (as_float + as_null if kind is float else as_null + as_float) + fallback
            elif kind is bool:
                env[f"T{i}"], env[f"X{i}"] = self._entry(name, True), self._entry(name, False)
                expr = f"T{i} if {v} is True else X{i} if {v} is False else {fallback}"
            elif kind in (str, int, list):
                env[f"M{i}"] = memos[kind]
                lookup = f"tuple({v})" if kind is list else v
                expr = f"(M{i}.get({lookup}) if type({v}) is {kind.__name__} else None) or {fallback}"
            else:
                expr = fallback
            items.append(f"        {expr},\n")
        source = ("def write(account, day, bundle, values):\n"
                  f"    ({''.join(f'v{i}, ' for i in range(len(names)))}) = values\n"
                  "    return [account, day, bundle,\n" + "".join(items) + "    ]\n")
        exec(compile(source, f"<decision writer of {len(names)} columns>", "exec"), env)
        if len(self._writers) >= self.WRITERS:
            self._writers.clear()
        write = self._writers[names] = env["write"]
        return write

    def _parts(self, decisions: dict, as_of: dt.date) -> list[bytes]:
        """The response's parts as the writer of ``decisions``' column order gives them."""
        account_id = str(decisions["account_id"])
        day, date_field = self._as_of
        if as_of != day:
            date_field = _delimited(_DECISION_TAGS["as_of"], date_message(as_of).SerializeToString())
            self._as_of = (as_of, date_field)           # the next call most likely has the same date
        account = _delimited(_DECISION_TAGS["account_id"], account_id.encode()) if account_id else b""
        names = tuple(decisions)
        values = decisions.values()
        write = self._writers.get(names) or self._writer(names, values)
        try:
            return write(account, date_field, self._bundle_hash, values)
        except TypeError:                 # an unhashable value where a memo is looked up (a list in a list…)
            return self.general_parts(decisions, account, date_field)

    def general_parts(self, decisions: dict, account: bytes, date_field: bytes) -> list[bytes]:
        """What a writer gives, column by column through :meth:`_entry` (the general way,
        which the writers' expressions shortcut)."""
        return [account, date_field, self._bundle_hash,
                *(self._entry(name, value) for name, value in decisions.items() if name != "account_id")]

    def decision(self, decisions: dict, as_of: dt.date) -> bytes:
        """A Decision's bytes: ``account_id``, ``as_of``, the bundle hash and every other
        column of ``decisions`` in ``values`` (``<ruleset>.rule`` columns in ``rules``),
        written by the function generated for its columns' order (:meth:`_writer`)."""
        return b"".join(self._parts(decisions, as_of))

    def response(self, decisions: dict, as_of: dt.date, actions: dict | None = None) -> bytes:
        """A DecideResponse's bytes: the decision, and the actions given as the pipeline's
        action columns (``PipelineResult.action_columns``; None: no actions). (The decision's
        parts are joined once and prefixed: summing their lengths first, to join everything
        once, costs more than copying the joined decision.)"""
        decision = b"".join(self._parts(decisions, as_of))
        head = _RESPONSE_TAGS["decision"] + _varint(len(decision))
        if actions is None:
            return head + decision
        return b"".join((head, decision, self.actions(actions)))

    @staticmethod
    def actions(columns: dict) -> bytes:
        """A DecideResponse's ``actions`` fields for the pipeline's action columns: the bytes
        that follow its decision's (a response is the decision's field, then these)."""
        tag = _RESPONSE_TAGS["actions"]
        parts = []
        for action in _action_payloads(columns):
            parts += (tag, _varint(len(action)), action)
        return b"".join(parts)


# -- Arrow IPC ------------------------------------------------------------------------------------------
def to_ipc(table: pa.Table | pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write(table)
    return sink.getvalue().to_pybytes()


def from_ipc(data: bytes, field: str) -> pa.Table:
    if not data:
        raise FieldError(field, "empty: expected an Arrow IPC stream")
    try:
        return pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as e:
        raise FieldError(field, f"not a readable Arrow IPC stream: {e}") from None
