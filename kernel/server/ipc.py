"""Reading an Arrow IPC stream that came from outside (``DecideBatch``), safely.

``pyarrow.ipc`` trusts what it reads: offsets and dictionary indices are not checked (a
string column whose offsets point past its data crashes Arrow's compute kernels, taking
the process down), and a compressed buffer is decompressed to whatever size its 8-byte
prefix declares (0.03 MiB of zstd can declare 2²⁷ rows and gigabytes). So a stream is read
in two passes over its messages:

1. **Declared sizes, before decoding anything**: each message's metadata (a flatbuffer,
   parsed here for the few fields needed) gives the batch's row count and its buffers; a
   compressed buffer's prefix gives its decoded size. Rows and decoded bytes are summed
   message by message and the stream is refused (:class:`~kernel.server.status.QuotaError`,
   RESOURCE_EXHAUSTED) as soon as a limit is passed — nothing has been allocated for it yet.
2. **Decode, then validate in full**: only the contract's columns are decoded, their types
   checked against the contract first, and every batch is validated in full
   (``RecordBatch.validate(full=True)``) before anything computes on it.

Anything malformed is INVALID_ARGUMENT (:class:`~kernel.server.status.FieldError`) naming
the field, never a crash, a hang or an INTERNAL error.
"""
from __future__ import annotations

import struct

import pyarrow as pa

from .. import schema
from .status import FieldError, QuotaError

#: Messages (record and dictionary batches) one stream may hold: each decoded batch costs
#: Python objects per column, whatever its size, so a stream of empty batches is bounded too.
MAX_MESSAGES = 1_024
#: Largest metadata of one message (a schema, a batch's buffer list). The book's schema with
#: its documentation is ≈ 20 KB.
MAX_METADATA_BYTES = 1 << 20

_SCHEMA, _DICTIONARY_BATCH, _RECORD_BATCH = 1, 2, 3          # flatbuffer MessageHeader union tags
_I64 = struct.Struct("<q")


class _Malformed(ValueError):
    """The metadata is not a well-formed Arrow message."""


class _Table:
    """A flatbuffer table: read fields by slot, every offset bounds-checked."""

    def __init__(self, data: bytes, pos: int):
        self.data, self.pos = data, pos
        vtable = pos - self._unpack("<i", pos)
        vtable_size = self._unpack("<H", vtable)
        self.slots = [self._unpack("<H", vtable + 4 + 2 * i) for i in range(max(0, (vtable_size - 4) // 2))]

    def _unpack(self, fmt: str, at: int):
        size = struct.calcsize(fmt)
        if at < 0 or at + size > len(self.data):
            raise _Malformed("offset out of bounds")
        return struct.unpack_from(fmt, self.data, at)[0]

    def _field(self, slot: int) -> int | None:
        offset = self.slots[slot] if slot < len(self.slots) else 0
        return self.pos + offset if offset else None

    def scalar(self, slot: int, fmt: str, default=0):
        at = self._field(slot)
        return default if at is None else self._unpack(fmt, at)

    def table(self, slot: int) -> "_Table | None":
        at = self._field(slot)
        return None if at is None else _Table(self.data, at + self._unpack("<I", at))

    def structs(self, slot: int, size: int, fmt: str) -> list[tuple]:
        """A vector of fixed-size structs."""
        at = self._field(slot)
        if at is None:
            return []
        vector = at + self._unpack("<I", at)
        count = self._unpack("<I", vector)
        if vector + 4 + count * size > len(self.data):
            raise _Malformed("vector out of bounds")
        return [struct.unpack_from(fmt, self.data, vector + 4 + i * size) for i in range(count)]


def _batch_sizes(batch: _Table, body: pa.Buffer | None) -> tuple[int, int]:
    """(rows, decoded bytes) a RecordBatch table declares: its length, and the sum of its
    buffers' sizes once decompressed (a compressed buffer starts with its decoded length as
    an int64; -1: stored as is)."""
    rows = batch.scalar(0, "<q")
    if rows < 0:
        raise _Malformed("negative row count")
    compressed = batch.table(3) is not None
    body_size = body.size if body is not None else 0
    decoded = 0
    for offset, length in batch.structs(2, 16, "<qq"):
        if offset < 0 or length < 0 or offset + length > body_size:
            raise _Malformed("a buffer lies outside the message body")
        if compressed and length >= 8:
            declared = _I64.unpack(body[offset:offset + 8].to_pybytes())[0]
            if declared < -1:
                raise _Malformed("negative decompressed length")
            decoded += length - 8 if declared == -1 else declared
        else:
            decoded += length
    return rows, decoded


def _declared_schema(data, field: str, max_rows: int, max_bytes: int) -> pa.Schema:
    """Pass 1: read every message's metadata and refuse the stream when its declared rows or
    decoded bytes pass the limits; return its schema."""
    reader = pa.ipc.MessageReader.open_stream(data)
    stream_schema = None
    rows = decoded = messages = 0
    while True:
        try:
            message = reader.read_next_message()
        except StopIteration:
            break
        metadata = message.metadata
        if metadata.size > MAX_METADATA_BYTES:
            raise FieldError(field, f"an Arrow message's metadata is {metadata.size:,} bytes, more than "
                                    f"{MAX_METADATA_BYTES:,}")
        flat = metadata.to_pybytes()
        try:
            root = _Table(flat, struct.unpack_from("<I", flat, 0)[0] if len(flat) >= 4 else -1)
            kind = root.scalar(1, "<B")
            header = root.table(2)
            if kind == _SCHEMA:
                if stream_schema is not None:
                    raise _Malformed("a second schema message")
                stream_schema = pa.ipc.read_schema(message)
                try:
                    stream_schema.names
                except UnicodeDecodeError:
                    raise _Malformed("a column name is not valid UTF-8") from None
                continue
            if stream_schema is None:
                raise _Malformed("a batch before the schema")
            if kind not in (_RECORD_BATCH, _DICTIONARY_BATCH) or header is None:
                raise _Malformed(f"unexpected message type {message.type!r}")
            batch = header if kind == _RECORD_BATCH else header.table(1)
            if batch is None:
                raise _Malformed("a dictionary batch without data")
            batch_rows, batch_bytes = _batch_sizes(batch, message.body)
        except (_Malformed, struct.error) as e:
            raise FieldError(field, f"not a readable Arrow IPC stream: message {messages + 1}: {e}") from None
        messages += 1
        if messages > MAX_MESSAGES:
            raise QuotaError("max_batch_messages", f"the Arrow stream holds more than {MAX_MESSAGES:,} batches; "
                                                   f"write fewer, larger ones")
        if kind == _RECORD_BATCH:
            rows += batch_rows
            if rows > max_rows:
                raise QuotaError("max_batch_rows", f"batch of at least {rows:,} accounts exceeds the server's "
                                                   f"limit of {max_rows:,}; split it")
        decoded += batch_bytes
        if decoded > max_bytes:
            raise QuotaError("max_batch_bytes", f"the Arrow stream decodes to more than {max_bytes:,} bytes "
                                                f"(the server's --max-batch-bytes); split it")
    if stream_schema is None:
        raise FieldError(field, "not a readable Arrow IPC stream: no schema message")
    return stream_schema


def read_book(data: bytes, *, field: str = "accounts", max_rows: int, max_bytes: int) -> pa.Table:
    """:func:`read_table` of the contract's ``book`` table."""
    return read_table(data, "book", field=field, max_rows=max_rows, max_bytes=max_bytes)


def read_table(data: bytes, table: str, *, field: str, max_rows: int, max_bytes: int) -> pa.Table:
    """The rows of an Arrow IPC stream from outside, each batch validated in full; only the
    contract ``table``'s columns are decoded (others are dropped unread). Raises FieldError
    (malformed stream, a contract column of the wrong type or appearing twice) or
    QuotaError (rows, decoded bytes, batches over the limits) before decoding what would
    pass a limit."""
    if not data:
        raise FieldError(field, "empty: expected an Arrow IPC stream")
    buffer = pa.py_buffer(data)
    try:
        stream_schema = _declared_schema(buffer, field, max_rows, max_bytes)
    # Arrow's I/O errors (a truncated stream) are OSErrors; a message quoting bytes that are not
    # UTF-8 (a column name) surfaces as UnicodeDecodeError
    except (pa.ArrowException, OSError, UnicodeDecodeError) as e:
        raise FieldError(field, f"not a readable Arrow IPC stream: {_reason(e)}") from None
    contract = schema.columns(table)
    wanted = [i for i, name in enumerate(stream_schema.names) if name in contract]
    # Types first, from the schema alone: a column of a type the contract does not accept is
    # never decoded.
    present = sorted({stream_schema.names[i] for i in wanted})
    schema.validate(stream_schema.empty_table(), table, required=present, check_values=False, source=field)
    options = pa.ipc.IpcReadOptions(included_fields=wanted, use_threads=False)
    batches = []
    try:
        reader = pa.ipc.open_stream(buffer, options=options)
        for number, batch in enumerate(reader, start=1):
            _validate_batch(batch, number, field)
            batches.append(batch)
        table = pa.Table.from_batches(batches, schema=reader.schema)
    except (pa.ArrowException, OSError, UnicodeDecodeError) as e:
        raise FieldError(field, f"not a readable Arrow IPC stream: {_reason(e)}") from None
    return _conform_moments(table, field)


def _conform_moments(table: pa.Table, field: str) -> pa.Table:
    """Dates as date32 and instants as the contract's ``timestamp[us, UTC]``, whatever unit and
    time zone the stream used: a time zone name the server does not know (``Mars/Olympus``)
    fails only when something converts a value, deep in the pipeline; a unit change that
    overflows is refused here, naming the column."""
    contract = schema.columns("book")
    for i, name in enumerate(table.schema.names):
        col, actual = contract.get(name), table.schema.field(i).type
        if col is None or actual.equals(col.type) or not (pa.types.is_timestamp(actual) or pa.types.is_date(actual)):
            continue
        # ns → µs truncates (it cannot overflow); s or ms → µs must not overflow
        lossy = pa.types.is_date64(actual) or (pa.types.is_timestamp(actual) and actual.unit == "ns")
        try:
            converted = table.column(i).cast(col.type, safe=not lossy)
        except pa.ArrowException as e:
            raise FieldError(f"{field}.{name}", f"cannot be read as {col.type}: {_reason(e)}") from None
        table = table.set_column(i, col.field(), converted)
    return table


def _validate_batch(batch: pa.RecordBatch, number: int, field: str) -> None:
    """Arrow's full validation of one decoded batch, column by column so that the error names
    the column: offsets, dictionary indices, UTF-8, lengths."""
    try:
        batch.validate()                  # the batch's own shape: every column num_rows long
    except (pa.ArrowException, UnicodeDecodeError) as e:
        raise FieldError(field, f"batch {number} is not valid Arrow data: {_reason(e)}") from None
    for name, column in zip(batch.schema.names, batch.columns):
        try:
            column.validate(full=True)
        except (pa.ArrowException, UnicodeDecodeError) as e:
            raise FieldError(f"{field}.{name}", f"batch {number}: not valid Arrow data: {_reason(e)}") from None


def _reason(error: BaseException) -> str:
    """Arrow's own words, first line, bounded (they name offsets, lengths and ids — not values)."""
    text = str(error).splitlines()[0] if str(error) else ""
    return (text[:200] + "…" if len(text) > 200 else text) or type(error).__name__
