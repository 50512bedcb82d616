"""The audit log: an append-only, crash-safe file of every decision and action, without
personal data.

>>> from kernel.audit import AuditLog, read_audit
>>> log = AuditLog("audit.log", sync="always")          # doctest: +SKIP
>>> log.append(meta, decisions, actions)                # durable when it returns  # doctest: +SKIP
>>> [r.meta for r in read_audit("audit.log")]           # doctest: +SKIP

:class:`kernel.pipeline.Pipeline` appends one record per batch it decides
(:meth:`~kernel.pipeline.Pipeline.act`); the record holds the decisions without
:func:`without_pii` columns and the actions without their scripts. Its ``meta``: ``as_of``,
``now``, ``rows``, ``actions`` (count), ``bundle_hash``, ``strategy``, ``valuation``,
``policy_sets``, ``plugins`` (name -> version), ``errors`` (plugin failures that blocked
actions) and ``unique_conflicts`` (per ``hit: unique`` ruleset, the rows more than one rule
fired for, whose outputs are null; ``{}`` when none).
"""
from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import os
import struct
import threading
import time
import weakref
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import orjson
import pyarrow as pa

from .errors import PostloanError
from .hookspecs import Record
from .outputs import actions_table, row_count, to_arrow
from .schema import pii_columns

__all__ = ["AuditLog", "AuditRecord", "AuditScan", "read_audit", "encode_record", "without_pii",
           "AUDIT_SYNC", "DEFAULT_SYNC_INTERVAL_MS"]

log = logging.getLogger("postloan.audit")

_PII: frozenset | None = None


def without_pii(decisions):
    """``decisions`` (a Record, a mapping of columns or a table) without the personal-data
    columns of the book and the actions (:func:`kernel.schema.pii_columns`). A record or
    mapping holding none of them is given back as it is (one C-level set test, no copy: the
    audit log takes a record's objects over and nothing changes them)."""
    global _PII
    if _PII is None:
        _PII = frozenset(pii_columns("book") | pii_columns("actions"))
    pii = _PII
    if isinstance(decisions, Mapping) and decisions.keys().isdisjoint(pii):      # (a few look-ups: the smaller side)
        return decisions
    if isinstance(decisions, Record):
        return Record({k: v for k, v in decisions.items() if k not in pii})
    if isinstance(decisions, Mapping):
        return {k: v for k, v in decisions.items() if k not in pii}
    keep = [name for name in decisions.schema.names if name not in pii]
    return decisions.select(keep) if len(keep) != decisions.num_columns else decisions



_MAGIC = b"PLAU"
_HEADER = struct.Struct("<4sBQI")          # magic, kind, payload length, CRC-32 of the payload
_ARROW, _JSON, _ROW = 1, 2, 3
_KINDS = (_ARROW, _JSON, _ROW)
#: records of at most this many decisions are stored as JSON (no Arrow tables to build)
SMALL_RECORD = 16
_HEAD_LENGTH = struct.Struct("<I")


#: how the audit log makes a record durable (``[audit] sync``)
AUDIT_SYNC = ("always", "interval")
DEFAULT_SYNC_INTERVAL_MS = 50.0


class AuditLog:
    """An append-only, crash-safe file of decision records.

    Each record is a frame: ``PLAU``, a kind byte, the payload length and its CRC-32, then the
    payload — Arrow IPC streams of the decisions and actions (compressed with zstd), JSON
    columns for a handful of rows, or for one account's record (a Decide's) the column names
    once and the values as one JSON row (:func:`encode_record`). A crash can only leave a
    torn last frame, which :func:`read_audit` detects and skips.

    ``sync`` says when a record is made durable:

    - ``"always"`` (the default): ``append`` returns only once the frame is written and synced
      to disk (fdatasync; the log's directory is fsync'd when the file is created). Threads
      appending at once share one sync (group commit): while one sync runs, the frames written
      meanwhile wait for the next, which covers them all.
    - ``"interval"``: ``append`` hands the record to the log's writer thread and returns at
      once (the caller's answer does not wait for the encoding or the write — nor, with
      :meth:`append_built`, for the record's building); the thread
      wakes when a record arrives while it is idle, lets the records of the next
      :attr:`WRITE_DELAY_MS` milliseconds (at most ``interval_ms``) join it, and encodes and
      writes them with one write — the operating system has them, and they survive a crash of
      the process, within about that delay — and syncs every ``interval_ms`` milliseconds.
      One wake-up and one write per batch, not per record: on a busy server the thread takes
      the GIL and a core from the calls far less often. A crash of the process may lose the
      records still queued (those of the last few milliseconds), a power loss or kernel crash
      those of the last ``interval_ms``. At most
      :attr:`MAX_PENDING` records wait: past that ``append`` blocks until the thread catches
      up (back-pressure). :meth:`flush` writes what is queued and syncs at once (the server
      does on shutdown); a write the thread could not make is raised by the next ``append``,
      :meth:`flush` or :meth:`close`. ``append`` takes the record's objects over: the caller
      must not change them afterwards.
    """

    #: records queued for the writer thread (``"interval"``) before ``append`` blocks
    MAX_PENDING = 1024
    #: ``"interval"``: how long the writer thread, woken by a record, waits for more to join it
    WRITE_DELAY_MS = 5.0
    #: ``"interval"``: records encoded into one write at most
    WRITE_BATCH = 256

    def __init__(self, path: str | os.PathLike, sync: str = "always", interval_ms: float = DEFAULT_SYNC_INTERVAL_MS):
        if sync not in AUDIT_SYNC:
            raise PostloanError(f"[audit] sync = {sync!r}: expected one of {', '.join(map(repr, AUDIT_SYNC))}")
        if isinstance(interval_ms, bool) or not isinstance(interval_ms, (int, float)) or not 0 < interval_ms <= 60_000:
            raise PostloanError(f"[audit] interval_ms = {interval_ms!r}: expected milliseconds in (0, 60000]")
        self.path = Path(path)
        self.sync = sync
        self.interval_ms = float(interval_ms)
        self._fd: int | None = None
        self._write_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._written = 0                 # frames written to the file
        self._writes = 0                  # write calls that wrote them ("interval": several frames each)
        self._synced = 0                  # of them, synced to disk
        self._syncs = 0                   # fdatasync calls made
        self._syncer: threading.Thread | None = None
        # "interval": records waiting for the writer thread, each (encode, args): its frame is encode(*args)
        self._pending: collections.deque = collections.deque()
        self._wake = threading.Condition(threading.Lock())
        self._idle = [False]              # the writer thread waits for a record: append must wake it
        self._failure: BaseException | None = None

    @property
    def written(self) -> int:
        """Records written to the file (by this process, since the log was opened)."""
        return self._written

    @property
    def writes(self) -> int:
        """The writes that wrote :attr:`written` (``"interval"``: fewer — each of the writer
        thread's wake-ups writes every record queued by then with one write)."""
        return self._writes

    @property
    def synced(self) -> int:
        """Of :attr:`written`, the records known to be on disk."""
        return self._synced

    @property
    def syncs(self) -> int:
        """The syncs made so far (fewer than :attr:`synced` when appends shared one)."""
        return self._syncs

    def _open(self) -> int:
        if self._fd is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                created = not self.path.exists()
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            except OSError as e:
                raise PostloanError(f"{self.path}: cannot open the audit log: {e.strerror}") from None
            if created:
                _fsync_dir(self.path.parent)
            if self.sync == "interval" and (self._syncer is None or not self._syncer.is_alive()):
                self._start_syncer()
        return self._fd

    def append(self, meta: Mapping[str, Any], decisions, actions) -> None:
        """Write one record; return when it is durable (``sync="always"``), or once it is
        queued for the writer thread (``"interval"``)."""
        if self.sync == "interval":
            self._queue(encode_record, (meta, decisions, actions))
            return
        self._write_durably(encode_record(meta, decisions, actions))

    def append_built(self, build, *args) -> None:
        """:meth:`append` the record ``build(*args)`` gives — ``(meta, decisions, actions)``.
        With ``sync="interval"`` the writer thread calls ``build`` when it encodes the
        record, so neither the record's building nor its encoding is on the caller's path
        (``build`` must give the same record whenever it is called: what it reads is not
        changed afterwards); with ``"always"`` it is called here, and the record is durable
        when this returns. A ``build`` that fails in the writer thread fails the log as an
        unencodable record does (raised by the next ``append``, :meth:`flush` or :meth:`close`)."""
        if self.sync == "interval":
            self._queue(_encode_built, (build, args))
            return
        self._write_durably(encode_record(*build(*args)))

    def _queue(self, encode, args: tuple) -> None:
        """Hand ``encode(*args)`` — a frame to be — to the writer thread (``"interval"``)."""
        self._raise_failure()
        wake = self._wake
        with wake:
            if self._fd is None:
                self._open()                     # the file and the writer thread, on first use
            while len(self._pending) >= self.MAX_PENDING:
                wake.wait(0.1)                    # back-pressure: the writer drains, then notifies
                self._raise_failure()
            self._pending.append((encode, args))
            if self._idle[0]:                    # a busy writer takes this record with the others
                self._idle[0] = False
                wake.notify_all()

    def _write_durably(self, frame: bytes) -> None:
        """Write one frame and return once it is synced (``"always"``; group commit)."""
        with self._write_lock:
            fd = self._open()
            _write_all(fd, frame)
            self._written += 1
            self._writes += 1
            mine = self._written
        self._sync_through(mine)

    @property
    def pending(self) -> int:
        """Records handed to the writer thread and not yet written (``"interval"``)."""
        return len(self._pending)

    def _drain(self) -> None:
        """Encode and write every queued record, in order, up to :attr:`WRITE_BATCH` frames
        per write (``"interval"``)."""
        pending = self._pending
        if not pending:
            return
        with self._write_lock:
            try:
                while pending:
                    frames, bad = [], None
                    for i in range(min(len(pending), self.WRITE_BATCH)):   # (appends only add at the right)
                        try:
                            encode, args = pending[i]
                            frames.append(encode(*args))
                        except BaseException as e:   # noqa: BLE001 — the ones before it are written first
                            bad = e
                            break
                    if frames:
                        _write_all(self._open(), frames[0] if len(frames) == 1 else b"".join(frames))
                        for _ in frames:             # (an OSError leaves them queued: close retries them)
                            pending.popleft()
                        self._written += len(frames)
                        self._writes += 1
                    if bad is not None:
                        pending.popleft()            # it can never be written: not kept for a retry
                        raise bad
            except BaseException as e:            # noqa: BLE001 — kept, raised to the next caller
                self._failure = e
                raise
            finally:
                with self._wake:
                    self._wake.notify_all()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            e = self._failure
            raise PostloanError(f"{self.path}: the audit log's writer failed ({getattr(e, 'strerror', None) or e}); "
                                f"no further records are accepted") from e

    def flush(self) -> None:
        """Write what is queued, then sync every record written so far."""
        self._raise_failure()
        self._drain()
        self._sync_through(self._written)

    def _sync_through(self, record: int) -> None:
        """Return once records up to ``record`` are synced: the first caller to get the lock
        syncs everything written by then; callers it covered find nothing left to do."""
        with self._sync_lock:
            if self._synced < record and self._fd is not None:
                target = self._written
                _sync(self._fd)
                self._syncs += 1
                self._synced = target

    def _start_syncer(self) -> None:
        # The thread holds the log only weakly: a log nobody uses any more (a reloaded
        # pipeline's) is collected (its __del__ writes what is queued and syncs), and the
        # thread ends at its next wake-up. It waits on the condition without taking records,
        # so a record is never in the hands of a thread whose log is gone.
        ref = weakref.ref(self)
        interval = self.interval_ms / 1000
        delay = min(self.WRITE_DELAY_MS, self.interval_ms) / 1000
        wake, pending, idle = self._wake, self._pending, self._idle

        def run() -> None:
            _name_os_thread(WRITER_THREAD_OS_NAME)
            next_sync = time.monotonic() + interval
            while True:
                with wake:
                    if not pending:
                        idle[0] = True
                        wake.wait(max(0.0, next_sync - time.monotonic()))
                        idle[0] = False
                if pending and delay:
                    time.sleep(delay)        # the records of the next moment join this one's write
                log_ = ref()
                if log_ is None or log_._fd is None or log_._failure is not None:
                    return
                try:
                    log_._drain()
                    if time.monotonic() >= next_sync:
                        log_._sync_through(log_._written)
                        next_sync = time.monotonic() + interval
                except OSError as e:             # keep trying: the next tick may succeed
                    log.error("audit log %s: write or sync failed: %s", log_.path, e.strerror)
                    next_sync = time.monotonic() + interval
                except BaseException as e:       # noqa: BLE001 — a record that cannot be encoded
                    log.error("audit log %s: writer stopped: %s", log_.path, e)
                    return
                del log_

        self._syncer = threading.Thread(target=run, name="postloan-audit-writer", daemon=True)
        self._syncer.start()

    def close(self) -> None:
        """Write what is queued, sync what is written and close the file (closed even when
        a queued record cannot be written: that error is raised after)."""
        try:
            self._drain()
        finally:
            with self._write_lock:
                if self._fd is not None:
                    self._sync_through(self._written)
                    with self._sync_lock:
                        os.close(self._fd)
                        self._fd = None
            with self._wake:
                self._wake.notify_all()          # the writer thread sees the file closed and ends

    def __del__(self):
        try:
            if getattr(self, "_pending", None):
                self._drain()
        except BaseException:                    # noqa: BLE001 — nothing to raise to in a finalizer
            pass
        fd = getattr(self, "_fd", None)
        if fd is not None:
            try:
                if self._synced < self._written:
                    _sync(fd)
                os.close(fd)
            except OSError:
                pass


#: the writer thread's name for the operating system (``top -H``, ``/proc/PID/task/*/comm``:
#: what a benchmark reads its CPU time by)
WRITER_THREAD_OS_NAME = "postloan-audit"


def _name_os_thread(name: str) -> None:
    """Name the calling thread for the operating system (Linux; at most 15 bytes kept).
    Python names its threads only for itself."""
    try:
        import ctypes
        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)      # PR_SET_NAME
    except (OSError, AttributeError):
        pass


def _sync(fd: int) -> None:
    """Make written data durable. fdatasync also flushes the file size an append changed (what
    reading the data back needs) but skips timestamps, so it is cheaper than fsync."""
    (getattr(os, "fdatasync", None) or os.fsync)(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _json_default(value):
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.datetime64):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in the audit log")


def _json_columns(columns) -> dict:
    if isinstance(columns, Record):          # (orjson writes a NaN as null)
        return {name: [v] for name, v in columns.items()}
    items = columns.items() if isinstance(columns, Mapping) else ((n, columns.column(n)) for n in columns.schema.names)
    return {name: _json_column(values) for name, values in items}


def _json_column(values) -> list:
    """A column's values as a list orjson writes (it writes a NaN or an infinity as null, as
    the reader's Arrow tables want a missing value)."""
    if type(values) is np.ndarray and values.dtype.kind != "M":
        return values.tolist()
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values.to_pylist()
    if isinstance(values, np.ma.MaskedArray):
        return [None if m else v for v, m in zip(values.data.tolist(), np.ma.getmaskarray(values).tolist())]
    arr = np.asarray(values)
    if arr.dtype.kind == "M":
        return [None if np.isnat(x) else str(x) for x in arr]
    return arr.tolist()


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def _encode_built(build, args: tuple) -> bytes:
    """The frame of the record ``build(*args)`` gives (:meth:`AuditLog.append_built`)."""
    return encode_record(*build(*args))


#: the head of a one-account frame (its column names, JSON) and the head's CRC-32, by
#: (decision names, action names): a server writes the same few column sets all day
_ROW_HEADS: dict[tuple, tuple[bytes, int]] = {}
_ROW_HEADS_KEPT = 64


def _row_head(decision_names: tuple, action_names: tuple) -> tuple[bytes, int]:
    key = (decision_names, action_names)
    head = _ROW_HEADS.get(key)
    if head is None:
        names = orjson.dumps([decision_names, action_names])
        prefix = _HEAD_LENGTH.pack(len(names)) + names
        if len(_ROW_HEADS) >= _ROW_HEADS_KEPT:
            _ROW_HEADS.clear()
        head = _ROW_HEADS[key] = prefix, zlib.crc32(prefix)
    return head


def _encode_row(meta: Mapping[str, Any], decisions: Record, actions: dict) -> bytes:
    """The frame of one account's record: the head — the decision and action column names,
    the same for every record of a column set, made once — then ``[meta, the decision values,
    the action columns]`` as one JSON array. The head comes first so that its CRC-32 is made
    once too: the payload's is the body's continued from it."""
    prefix, prefix_crc = _row_head(tuple(decisions), tuple(actions))
    columns = [v.tolist() if type(v) is np.ndarray and v.dtype.kind != "M" else _json_column(v) for v in actions.values()]
    body = orjson.dumps([meta, list(decisions.values()), columns], default=_json_default)
    return b"".join((_HEADER.pack(_MAGIC, _ROW, len(prefix) + len(body), zlib.crc32(body, prefix_crc)), prefix, body))


def encode_record(meta: Mapping[str, Any], decisions, actions) -> bytes:
    """One audit frame for ``decisions`` and ``actions`` (Arrow tables or column mappings;
    one account's decisions as a :class:`~kernel.hookspecs.Record` of scalars and its
    actions as a dict of columns make the compact one-account frame)."""
    if type(actions) is dict and isinstance(decisions, Record):
        return _encode_row(meta, decisions, actions)
    rows = row_count(decisions)
    if rows <= SMALL_RECORD:
        # orjson: the bytes json.dumps(..., ensure_ascii=False, separators=(",", ":")) gives, ~7x faster
        payload = orjson.dumps({"meta": meta, "decisions": _json_columns(decisions), "actions": _json_columns(actions)},
                               default=_json_default)
        kind = _JSON
    else:
        if isinstance(decisions, Mapping):
            decisions = pa.table({k: to_arrow(v) for k, v in decisions.items()})
        action_table = actions_table({**actions, "script": pa.nulls(len(actions["action"]), pa.string())},
                                      with_script=False) if isinstance(actions, Mapping) else actions
        meta_bytes = json.dumps(meta, default=_json_default, ensure_ascii=False).encode()
        parts = [meta_bytes, _ipc(decisions), _ipc(action_table)]
        payload = b"".join(struct.pack("<Q", len(p)) + p for p in parts)
        kind = _ARROW
    return _HEADER.pack(_MAGIC, kind, len(payload), zlib.crc32(payload)) + payload


@dataclass
class AuditRecord:
    offset: int                 # byte offset of the frame in the file
    meta: dict
    decisions: pa.Table
    actions: pa.Table


@dataclass
class AuditScan:
    """What :func:`read_audit` found besides the records."""

    records: int = 0
    damaged: list[tuple[int, int]] = field(default_factory=list)    # (offset, bytes skipped)
    torn_tail: bool = False


def read_audit(path: str | os.PathLike, scan: AuditScan | None = None) -> Iterator[AuditRecord]:
    """Yield every intact record of an audit log, in order. A torn last frame (a crash while
    writing) is skipped and reported in ``scan.torn_tail``; damage inside the file is skipped
    up to the next intact frame and listed in ``scan.damaged``."""
    scan = scan if scan is not None else AuditScan()
    data = Path(path).read_bytes()
    pos, size = 0, len(data)
    while pos < size:
        frame = _frame_at(data, pos)
        if frame is None:
            nxt = data.find(_MAGIC, pos + 1)
            while nxt != -1 and _frame_at(data, nxt) is None:
                nxt = data.find(_MAGIC, nxt + 1)
            if nxt == -1:
                scan.torn_tail = True
                scan.damaged.append((pos, size - pos))
                return
            scan.damaged.append((pos, nxt - pos))
            pos = nxt
            continue
        kind, payload, end = frame
        scan.records += 1
        yield _decode(pos, kind, payload)
        pos = end


def _frame_at(data: bytes, pos: int):
    if pos + _HEADER.size > len(data):
        return None
    magic, kind, length, crc = _HEADER.unpack_from(data, pos)
    start = pos + _HEADER.size
    end = start + length
    if magic != _MAGIC or kind not in _KINDS or end > len(data):
        return None
    payload = data[start:end]
    if zlib.crc32(payload) != crc:
        return None
    return kind, payload, end


def _json_actions(actions: dict) -> pa.Table:
    """The actions of a JSON frame, typed exactly as the Arrow records: enum names, UTC timestamps."""
    n = len(actions.get("action", []))
    if n:
        return actions_table({**actions, "script": [None] * n}, with_script=False)
    return actions_table({name: [] for name in ("account_id", "action", "priority", "earliest_at", "script_id",
                                                "language", "script", "outcome", "reason_code",
                                                "next_allowed_at", "policy")}, with_script=False)


def _decode(offset: int, kind: int, payload: bytes) -> AuditRecord:
    if kind == _ROW:
        (head,) = _HEAD_LENGTH.unpack_from(payload)
        decision_names, action_names = json.loads(payload[_HEAD_LENGTH.size: _HEAD_LENGTH.size + head])
        meta, row, action_columns = json.loads(payload[_HEAD_LENGTH.size + head:])
        decisions = pa.table({name: [value] for name, value in zip(decision_names, row)})
        return AuditRecord(offset, meta, decisions, _json_actions(dict(zip(action_names, action_columns))))
    if kind == _JSON:
        obj = json.loads(payload)
        return AuditRecord(offset, obj["meta"], pa.table(obj["decisions"]), _json_actions(obj["actions"]))
    parts, pos = [], 0
    for _ in range(3):
        (length,) = struct.unpack_from("<Q", payload, pos)
        parts.append(payload[pos + 8: pos + 8 + length])
        pos += 8 + length
    meta = json.loads(parts[0])
    decisions = pa.ipc.open_stream(pa.py_buffer(parts[1])).read_all()
    actions = pa.ipc.open_stream(pa.py_buffer(parts[2])).read_all()
    return AuditRecord(offset, meta, decisions, actions)
