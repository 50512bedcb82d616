"""The audit log: append-only frames, read back intact, a torn last record (a crash while
writing) detected and skipped, damage skipped up to the next intact frame, threads appending
at once; both durability settings ([audit] sync "always" and "interval")."""
from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow as pa
import pytest

from kernel.audit import AuditLog, AuditScan, encode_record, read_audit

ACTIONS = {"account_id": np.array(["AC1", "AC2"], dtype=object), "action": np.array([0, 2], np.int8),
           "priority": np.array([1.0, 2.0]), "earliest_at": np.array([1, 2], np.int64),
           "script_id": np.array(["sms_reminder", None], dtype=object), "language": np.array(["zh", None], dtype=object),
           "outcome": np.array([0, 1], np.int8), "reason_code": np.array([None, "CN_QUIET_HOURS"], dtype=object),
           "next_allowed_at": np.array([np.iinfo(np.int64).min, 5], np.int64),
           "policy": np.array([None, "cn.quiet_hours"], dtype=object)}


def record(i: int, rows: int = 2):
    decisions = {"account_id": np.array([f"AC{i}-{k}" for k in range(rows)], dtype=object),
                 "collection_tier.priority": np.arange(rows, dtype=np.float64) + i}
    actions = {k: v[:1].repeat(rows) if rows != 2 else v for k, v in ACTIONS.items()}
    return {"batch": i}, decisions, actions


def test_records_read_back_in_order_small_and_large(tmp_path):
    log = AuditLog(tmp_path / "audit.log")
    for i, rows in enumerate([2, 200, 3, 5000]):
        log.append(*record(i, rows))
    got = list(read_audit(log.path))
    assert [r.meta["batch"] for r in got] == [0, 1, 2, 3]
    assert [r.decisions.num_rows for r in got] == [2, 200, 3, 5000]
    assert got[3].decisions["collection_tier.priority"].to_pylist() == list(np.arange(5000) + 3.0)
    assert got[1].actions.num_rows == 200 and got[1].actions["outcome"].to_pylist()[0] == "KEEP"
    assert got[0].actions["reason_code"].to_pylist() == [None, "CN_QUIET_HOURS"]
    assert oct(os.stat(log.path).st_mode & 0o777) == "0o600"          # the log is not world-readable


@pytest.mark.parametrize("sync", ["always", "interval"])
def test_a_torn_last_record_is_detected_and_skipped(tmp_path, sync):
    log = AuditLog(tmp_path / "audit.log", sync=sync)
    for i in range(3):
        log.append(*record(i))
    log.flush()
    assert log.synced == 3                   # what was synced survives a crash in the next write
    frame = encode_record(*record(3, 500))
    with open(log.path, "ab") as f:          # the process died half-way through writing a frame
        f.write(frame[: len(frame) // 2])
    scan = AuditScan()
    got = list(read_audit(log.path, scan))
    assert [r.meta["batch"] for r in got] == [0, 1, 2]
    assert scan.torn_tail and scan.records == 3 and scan.damaged[0][1] == len(frame) // 2


def test_appending_after_a_crash_keeps_new_records_readable(tmp_path):
    path = tmp_path / "audit.log"
    AuditLog(path).append(*record(0))
    frame = encode_record(*record(1, 300))
    with open(path, "ab") as f:
        f.write(frame[:100])
    restarted = AuditLog(path)                # a new process appends after the torn frame
    restarted.append(*record(2))
    scan = AuditScan()
    assert [r.meta["batch"] for r in read_audit(path, scan)] == [0, 2]
    assert not scan.torn_tail and scan.damaged == [(len(encode_record(*record(0))), 100)]


def test_a_corrupted_record_in_the_middle_is_skipped(tmp_path):
    log = AuditLog(tmp_path / "audit.log")
    for i in range(3):
        log.append(*record(i, 40))
    data = bytearray(log.path.read_bytes())
    second = data.find(b"PLAU", 1)
    data[second + 40] ^= 0xFF                 # one flipped byte: the CRC no longer matches
    log.path.write_bytes(bytes(data))
    scan = AuditScan()
    assert [r.meta["batch"] for r in read_audit(log.path, scan)] == [0, 2]
    assert len(scan.damaged) == 1 and not scan.torn_tail


@pytest.mark.parametrize("sync", ["always", "interval"])
def test_a_killed_writer_leaves_only_whole_records(tmp_path, sync):
    """A process killed while appending: every record it had written is there, whole (with
    "interval" too: a written record is in the operating system, which outlives the process)."""
    path = tmp_path / "audit.log"
    script = f"""
import sys, numpy as np
sys.path.insert(0, {os.path.dirname(__file__)!r})
from test_audit_log import record
from kernel.audit import AuditLog
log = AuditLog({str(path)!r}, sync={sync!r}, interval_ms=60000)
for i in range(100000):
    log.append(*record(i, 3000))
    if i == 5:
        if log.sync == "interval":
            log.flush()                      # the six records written (they were only queued)
        print("ready", flush=True)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
    finally:
        proc.kill()
        proc.wait()
    got = list(read_audit(path))
    assert len(got) >= 6
    assert [r.meta["batch"] for r in got] == list(range(len(got)))     # whole records, in order, no gaps


def test_threads_appending_at_once_lose_nothing(tmp_path):
    log = AuditLog(tmp_path / "audit.log")

    def work(t):
        for i in range(25):
            log.append(*record(t * 100 + i, 3 if i % 2 else 40))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batches = sorted(r.meta["batch"] for r in read_audit(log.path))
    assert batches == sorted(t * 100 + i for t in range(6) for i in range(25))


def test_an_unwritable_audit_path_is_named(tmp_path):
    from kernel.errors import PostloanError
    (tmp_path / "file").write_text("x")
    with pytest.raises(PostloanError, match=r"file/audit.log: cannot open the audit log"):
        AuditLog(tmp_path / "file" / "audit.log").append(*record(0))


def test_always_returns_only_once_the_record_is_synced(tmp_path):
    log = AuditLog(tmp_path / "audit.log")
    for i in range(3):
        log.append(*record(i))
        assert log.synced == log.written == log.writes == i + 1      # one write per record


def test_concurrent_appends_share_one_sync(tmp_path):
    """Group commit: records written while a sync runs are all covered by the next one."""
    log = AuditLog(tmp_path / "audit.log")
    log.append(*record(0))
    assert log.syncs == 1
    log._sync_lock.acquire()                 # a sync in progress: the appends below write, then wait
    threads = [threading.Thread(target=log.append, args=record(i)) for i in range(1, 6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while log.written < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert log.written == 6 and log.synced == 1
    log._sync_lock.release()
    for t in threads:
        t.join()
    assert log.synced == 6 and log.syncs == 2          # five appends, one sync
    assert sorted(r.meta["batch"] for r in read_audit(log.path)) == list(range(6))


def _written(log, n: int) -> None:
    deadline = time.monotonic() + 10
    while log.written < n and time.monotonic() < deadline:
        time.sleep(0.002)


def test_interval_hands_records_to_the_writer_which_writes_at_once_and_syncs_in_the_background(tmp_path):
    log = AuditLog(tmp_path / "audit.log", sync="interval", interval_ms=20)
    log.append(*record(0))
    _written(log, 1)                                                         # no flush: the thread wrote it
    assert log.written == 1 and log.pending == 0
    assert [r.meta["batch"] for r in read_audit(log.path)] == [0]
    deadline = time.monotonic() + 10
    while log.synced < 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert log.synced == 1 and log.syncs >= 1


def test_interval_writes_the_records_of_a_moment_with_one_write(tmp_path, monkeypatch):
    """The writer thread wakes once for records appended close together and writes them with
    one write (a wake-up and a write per record took the GIL and a core from every call)."""
    import kernel.audit as audit
    writes = []
    real = audit._write_all
    monkeypatch.setattr(audit, "_write_all", lambda fd, data: (writes.append(len(data)), real(fd, data)))
    log = AuditLog(tmp_path / "audit.log", sync="interval", interval_ms=60_000)
    for i in range(20):
        log.append(*record(i))
    _written(log, 20)
    assert log.written == 20 and log.pending == 0
    assert 1 <= len(writes) <= 10, writes
    assert log.writes == len(writes)              # what the server's trace benchmark reads
    log.close()
    assert [r.meta["batch"] for r in read_audit(log.path)] == list(range(20))


def test_interval_does_not_sync_in_append_and_flush_syncs(tmp_path):
    log = AuditLog(tmp_path / "audit.log", sync="interval", interval_ms=60_000)
    for i in range(4):
        log.append(*record(i))
    _written(log, 4)
    assert (log.written, log.synced, log.syncs, log.pending) == (4, 0, 0, 0)
    assert 1 <= log.writes <= 4
    log.flush()
    assert (log.synced, log.syncs) == (4, 1)
    log.close()
    assert [r.meta["batch"] for r in read_audit(log.path)] == [0, 1, 2, 3]


def test_interval_appends_wait_when_the_writer_falls_behind(tmp_path):
    """Back-pressure: at most MAX_PENDING records queue; the next append waits for the writer,
    and every record lands, in order."""
    log = AuditLog(tmp_path / "audit.log", sync="interval", interval_ms=60_000)
    log.MAX_PENDING = 3
    log.append(*record(0))
    _written(log, 1)
    log._write_lock.acquire()                     # the writer is stuck in a slow write
    try:
        for i in range(1, 4):
            log.append(*record(i))
        assert log.pending == 3
        blocked = threading.Thread(target=log.append, args=record(4))
        blocked.start()
        blocked.join(0.3)
        assert blocked.is_alive() and log.pending == 3      # waits: the queue is full
    finally:
        log._write_lock.release()
    blocked.join(10)
    assert not blocked.is_alive()
    log.close()
    assert [r.meta["batch"] for r in read_audit(log.path)] == [0, 1, 2, 3, 4]


def test_a_record_the_writer_cannot_write_fails_the_next_append(tmp_path):
    from kernel.errors import PostloanError
    log = AuditLog(tmp_path / "audit.log", sync="interval", interval_ms=60_000)
    log.append(*record(0))
    log.append({"batch": object()}, *record(1)[1:])       # cannot be stored: the writer fails on it
    deadline = time.monotonic() + 10
    while log._failure is None and time.monotonic() < deadline:
        time.sleep(0.002)
    with pytest.raises(PostloanError, match=r"audit.log: the audit log's writer failed .*no further records"):
        log.append(*record(2))
    with pytest.raises(PostloanError, match="writer failed"):
        log.flush()
    log.close()                                           # the bad record was dropped: close succeeds
    assert log._fd is None
    assert [r.meta["batch"] for r in read_audit(log.path)] == [0]


def test_a_dropped_interval_log_writes_what_is_queued_syncs_and_its_thread_ends(tmp_path):
    """A reloaded pipeline's log is collected: its queued records are written and synced,
    its thread stops."""
    log = AuditLog(tmp_path / "audit.log", sync="interval", interval_ms=10)
    syncer = None
    for i in range(3):
        log.append(*record(i))
        syncer = log._syncer
    del log                                      # (whatever the thread had not written yet, __del__ writes)
    gc.collect()
    syncer.join(timeout=10)
    assert not syncer.is_alive()
    assert [r.meta["batch"] for r in read_audit(tmp_path / "audit.log")] == [0, 1, 2]


@pytest.mark.parametrize("settings, message", [
    ({"sync": "sometimes"}, r"\[audit\] sync = 'sometimes': expected one of 'always', 'interval'"),
    ({"sync": "interval", "interval_ms": 0}, r"\[audit\] interval_ms = 0: expected milliseconds"),
    ({"interval_ms": "50"}, r"\[audit\] interval_ms = '50': expected milliseconds"),
])
def test_bad_audit_settings_are_named(tmp_path, manager, settings, message):
    from kernel.errors import PostloanError
    from kernel.pipeline import Pipeline
    from kernel.plugins import load_config
    with pytest.raises(PostloanError, match=message):
        Pipeline(None, plugins=manager, config=load_config({"audit": settings}), audit_path=tmp_path / "a.log")


def test_the_pipeline_takes_the_setting_from_configuration_or_argument(tmp_path, manager):
    from kernel.pipeline import Pipeline
    from kernel.plugins import load_config
    config = load_config({"audit": {"sync": "interval", "interval_ms": 200}})
    pipe = Pipeline(None, plugins=manager, config=config, audit_path=tmp_path / "a.log")
    assert (pipe.audit.sync, pipe.audit.interval_ms) == ("interval", 200.0)
    pipe = Pipeline(None, plugins=manager, config=config, audit_path=tmp_path / "b.log", audit_sync="always")
    assert pipe.audit.sync == "always"
    assert Pipeline(None, plugins=manager, audit_path=tmp_path / "c.log").audit.sync == "always"     # the default


@pytest.mark.parametrize("sync", ["always", "interval"])
def test_append_built_builds_the_record_off_the_callers_thread_only_with_interval(tmp_path, sync):
    """``append_built``: with "interval" the writer thread builds the record (the caller's
    answer waits for neither its building nor its encoding), with "always" the caller does,
    and the record is durable on return; either way the record read back is the one
    ``append`` would have written."""
    builders = []

    def build(i):
        builders.append(threading.current_thread())
        return record(i)

    log = AuditLog(tmp_path / "audit.log", sync=sync, interval_ms=60_000)
    for i in range(3):
        log.append_built(build, i)
    if sync == "always":
        assert builders == [threading.current_thread()] * 3 and log.synced == 3
    _written(log, 3)
    assert len(builders) == 3
    if sync == "interval":
        assert all(t.name == "postloan-audit-writer" for t in builders)
    log.close()
    reference = AuditLog(tmp_path / "reference.log")
    for i in range(3):
        reference.append(*record(i))
    reference.close()
    for got, want in zip(read_audit(log.path), read_audit(reference.path), strict=True):
        assert (got.meta, got.decisions, got.actions) == (want.meta, want.decisions, want.actions)


def test_a_build_that_fails_in_the_writer_fails_the_next_append(tmp_path):
    from kernel.errors import PostloanError

    def broken():
        raise ValueError("no record")

    log = AuditLog(tmp_path / "audit.log", sync="interval", interval_ms=60_000)
    log.append_built(record, 0)
    log.append_built(broken)
    deadline = time.monotonic() + 10
    while log._failure is None and time.monotonic() < deadline:
        time.sleep(0.002)
    with pytest.raises(PostloanError, match=r"the audit log's writer failed \(no record\); no further records"):
        log.append_built(record, 2)
    log.close()
    assert [r.meta["batch"] for r in read_audit(log.path)] == [0]


def test_without_pii_drops_personal_columns_and_copies_only_then():
    from kernel.audit import without_pii
    from kernel.hookspecs import Record

    clean = Record({"account_id": "A1", "collection_tier.tier": "SOFT"})
    assert without_pii(clean) is clean                       # nothing to drop: no copy
    mapping = {"account_id": np.array(["A1"]), "pd_model.probability": np.array([0.1])}
    assert without_pii(mapping) is mapping
    dirty = Record({"account_id": "A1", "phone": "+86 138 0000 0000", "name": "Li"})
    kept = without_pii(dirty)
    assert isinstance(kept, Record) and kept == {"account_id": "A1"} and "phone" in dirty
    assert without_pii({"script": np.array(["hi"]), "action": np.array([1])}).keys() == {"action"}
    table = pa.table({"account_id": ["A1"], "address": ["x"]})
    assert without_pii(table).schema.names == ["account_id"]


def _json_frame_as_before(meta, decisions, actions) -> bytes:
    """A one-account record as the log wrote it before the one-account frame: kind 2, JSON
    columns (each decision a one-element column; NaN written as null)."""
    import struct
    import zlib

    import orjson

    from kernel.audit import _json_default

    def column(values):
        values = np.asarray(values)
        return [None if x != x else x for x in values.tolist()] if values.dtype.kind == "f" else values.tolist()

    payload = orjson.dumps({"meta": meta, "decisions": {name: [value] for name, value in decisions.items()},
                            "actions": {name: column(values) for name, values in actions.items()}},
                           default=_json_default)
    return struct.pack("<4sBQI", b"PLAU", 2, len(payload), zlib.crc32(payload)) + payload


def _one_account(i: int, actions: bool):
    import datetime as dt

    from kernel.hookspecs import Record
    decisions = Record({"account_id": f"AC{i}", "pd_model.probability": 0.125 + i, "early_warning.score": float("nan"),
                        "valuation.price": None, "litigation.eligible": bool(i % 2), "vehicle_alerts.count": np.int64(i),
                        "risk_segment.rule": ["pd_near_prime", "逾期"], "wilful_signals.rule": [],
                        "vehicle_profile.age_years": 2, "collection_tier.tier": "MEDIUM",
                        "snapshot.date": dt.date(2026, 11, 28)})
    columns = {k: v[:1] if actions else v[:0] for k, v in ACTIONS.items()}
    if actions:
        columns["priority"] = np.array([np.nan])
    return {"batch": i, "now": "2026-11-28T02:30:00+00:00", "errors": [], "unique_conflicts": {}}, decisions, columns


@pytest.mark.parametrize("sync", ["always", "interval"])
def test_one_account_frames_and_the_json_frames_before_them_read_back_alike(tmp_path, sync):
    """A Decide's record (one account: a Record of scalars, actions as columns) is written as
    the one-account frame — the column names in its head, the values as one JSON row; a log
    holding frames of both kinds (one written before the change, appended to after) reads
    back, record for record, what the JSON frame of the same record gives."""
    path = tmp_path / "audit.log"
    records = [_one_account(i, actions=i % 3 != 0) for i in range(6)]
    with open(path, "ab") as f:
        for rec in records[:3]:
            f.write(_json_frame_as_before(*rec))
    log = AuditLog(path, sync=sync, interval_ms=60_000)
    for rec in records:
        log.append(*rec)
    log.close()
    data = path.read_bytes()
    got = list(read_audit(path))
    assert len(got) == 9
    kinds = [data[r.offset + 4] for r in got]
    assert kinds == [2, 2, 2] + [3] * 6
    assert len(encode_record(*records[1])) < len(_json_frame_as_before(*records[1]))
    for old, new in zip(got[:3], got[3:6]):
        assert _same_record(old, new)
    reference = [_json_frame_as_before(*rec) for rec in records]
    expected = [r for frame in reference for r in read_audit_bytes(tmp_path, frame)]
    for want, have in zip(expected, got[3:], strict=True):
        assert _same_record(want, have)
    assert got[4].decisions["early_warning.score"].to_pylist() == [None]
    assert np.isnan(got[4].actions["priority"][0].as_py()) and got[4].actions.num_rows == 1      # (not null: NaN)
    assert got[3].actions.num_rows == 0


def _same_record(a, b) -> bool:
    """The same meta, and tables of the same schema and values (a NaN equal to a NaN)."""
    return a.meta == b.meta and all(x.schema == y.schema and repr(x.to_pylist()) == repr(y.to_pylist())
                                    for x, y in ((a.decisions, b.decisions), (a.actions, b.actions)))


def read_audit_bytes(tmp_path, frame: bytes):
    path = tmp_path / f"frame-{len(list(tmp_path.iterdir()))}.log"
    path.write_bytes(frame)
    return list(read_audit(path))


def test_a_damaged_one_account_frame_is_skipped_head_or_body(tmp_path):
    """The one-account frame's CRC-32 covers its head (the column names, whose CRC is made
    once per column set) and its body alike: a flipped byte in either is damage, skipped."""
    frames = [encode_record(*_one_account(i, actions=True)) for i in range(3)]
    head_at = 17 + 4 + 2                          # the frame header, the head's length, inside the names
    for flip in (head_at, len(frames[1]) - 3):
        damaged = bytearray(frames[1])
        damaged[flip] ^= 0x20
        path = tmp_path / f"audit-{flip}.log"
        path.write_bytes(frames[0] + bytes(damaged) + frames[2])
        scan = AuditScan()
        assert [r.meta["batch"] for r in read_audit(path, scan)] == [0, 2]
        assert scan.damaged == [(len(frames[0]), len(frames[1]))] and not scan.torn_tail


def test_decides_records_read_back_as_their_json_frames_did(kernel, small_book, tmp_path):
    """Differential, over 200 accounts of the synthetic book (the overdue half with actions):
    the records the pipeline writes for one account (one-account frames) read back exactly as
    the JSON frames of the same records did."""
    import datetime as dt

    from kernel.pipeline import Pipeline
    as_of, now = dt.date(2026, 11, 28), dt.datetime(2026, 11, 28, 2, 30, tzinfo=dt.timezone.utc)
    pipe = Pipeline(kernel, audit_path=tmp_path / "audit.log")
    dpd = small_book["dpd"].to_numpy()
    rows = [int(r) for pair in zip(np.flatnonzero(dpd > 0)[:100], np.flatnonzero(dpd == 0)[:100]) for r in pair]
    reference = []
    for i, row in enumerate(rows):
        result = pipe.run_record(small_book.slice(row, 1).to_pylist()[0], as_of, now, actions=i % 2 == 0)
        meta, decisions, actions = pipe.audit_record(result, as_of, now)
        meta = {**meta, "as_of": as_of.isoformat(), "now": now.isoformat()}      # the text the pipeline gave before
        reference.append(_json_frame_as_before(meta, decisions, actions))
    pipe.audit.close()
    (tmp_path / "reference.log").write_bytes(b"".join(reference))
    data = (tmp_path / "audit.log").read_bytes()
    got, want = list(read_audit(tmp_path / "audit.log")), list(read_audit(tmp_path / "reference.log"))
    assert len(got) == len(want) == len(rows) and {data[r.offset + 4] for r in got} == {3}
    assert sum(r.actions.num_rows for r in got) > 50
    assert (got[0].meta["as_of"], got[0].meta["now"]) == ("2026-11-28", "2026-11-28T02:30:00+00:00")
    for have, expected in zip(got, want):
        assert _same_record(have, expected)
