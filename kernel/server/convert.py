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


def date_value(message: Date, field: str) -> dt.date:
    try:
        return dt.date(message.year, message.month, message.day)
    except ValueError as e:
        raise FieldError(field, f"not a valid date ({message.year:04d}-{message.month:02d}-{message.day:02d}): {e}") from None


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


def timestamp_value(message: Timestamp) -> dt.datetime:
    return message.ToDatetime(tzinfo=UTC)


def enum_code(enum: str, member: str) -> int:
    """The proto enum number of a contract enum member (member index + 1)."""
    try:
        return schema.ENUMS[enum].index(member) + 1
    except ValueError:
        raise FieldError(enum, f"{member!r} is not one of {', '.join(schema.ENUMS[enum])}") from None


# -- records → messages (client side) ---------------------------------------------------------------
def _encoder(col: schema.Column):
    t = col.type
    name = col.name
    if col.enum:
        codes = {member: i for i, member in enumerate(schema.ENUMS[col.enum], start=1)}

        def enum(value):
            try:
                return codes[value]
            except KeyError:
                raise FieldError(name, f"{value!r} is not one of {', '.join(schema.ENUMS[col.enum])}") from None
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
            except (TypeError, ValueError, AttributeError) as e:
                raise FieldError(name, f"cannot encode {type(value).__name__}: {e}") from None
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
                    value = date_value(value, name)
                elif isinstance(value, Timestamp):
                    value = timestamp_value(value)
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
        return date_value(value.date_value, "value")
    if kind == "timestamp_value":
        return timestamp_value(value.timestamp_value)
    if kind == "string_list_value":
        return list(value.string_list_value.values)
    return getattr(value, kind)


def decision_dict(decision: decision_pb2.Decision) -> dict:
    """A Decision as one flat row, named like ``Kernel.decide``'s columns."""
    row = {"account_id": decision.account_id,
           "as_of": date_value(decision.as_of, "as_of") if decision.HasField("as_of") else None,
           "bundle_hash": decision.bundle_hash}
    for name, value in decision.values.items():
        row[name] = python_value(value)
    for ruleset, rule in decision.rules.items():
        row[f"{ruleset}.rule"] = python_value(rule)
    return row


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
