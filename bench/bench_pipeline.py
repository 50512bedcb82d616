"""The decision pipeline after the kernel, against the kernel's own decide in the same run.

* Batch: the built-in valuation + collection strategy (scripts included) + compliance stage on
  1,000,000 accounts, in rows/s, and its share of the whole decision time (kernel decide +
  stage); the audit-log append of the same batch is reported too. The kernel's ``decide`` on
  the same book, alternating with the stage, is the reference point.
* One account (4 actions): the same stage on the gRPC Decide form (``Pipeline.stage`` on a
  Record, as ``run_record`` calls it) and on NumPy columns, against ``Kernel.decide_record`` /
  ``decide_columns`` on the same account, alternating call by call.
* Where the one-account stage goes: the strategy's plan and its scripts, the policies and the
  script screen, against the whole stage and ``decide_record``.
* The script screen's pass over a batch's scripts, its first-character filter against none.
* The audit record of one Decide, in each ``[audit] sync`` mode, against the bare system calls
  it needs (``os.write`` + ``fdatasync`` of the same bytes; ``os.write`` alone).

    pytest bench/bench_pipeline.py --benchmark-enable -s
    pytest bench/bench_pipeline.py --benchmark-disable          # smoke: 20,000 accounts
"""
from __future__ import annotations

import datetime as dt
import statistics
import time

import numpy as np
import pyarrow as pa
import pytest

AS_OF = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.timezone.utc)      # 10:00 in Shanghai


def _smoke(benchmark) -> bool:
    return getattr(benchmark, "disabled", False)


def _book(rows: int) -> pa.Table:
    from kernel.synth import generate
    return generate(rows, seed=21, as_of=AS_OF)


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def test_stage_on_a_million_accounts(benchmark, kernel, pipeline):
    rows = 20_000 if _smoke(benchmark) else 1_000_000
    book = _book(rows)
    decisions = kernel.decide(book, AS_OF)
    pipeline.stage(book, decisions, AS_OF, NOW)                   # warm caches (zone tables, templates)
    decide_s, stage_s = [], []
    rounds = 1 if _smoke(benchmark) else 3

    def stage():
        # alternate with the reference so that noise on the shared machine hits both alike
        seconds, _ = _timed(kernel.decide, book, AS_OF)
        decide_s.append(seconds)
        seconds, result = _timed(pipeline.stage, book, decisions, AS_OF, NOW)
        stage_s.append(seconds)
        return result

    result = benchmark.pedantic(stage, rounds=rounds, iterations=1)
    audit_s, _ = _timed(pipeline.audit.append, {"bench": True}, result.decisions,
                        {k: v for k, v in result.action_columns.items() if k != "script"})
    decide, staged = statistics.median(decide_s), statistics.median(stage_s)
    actions = len(result.action_columns["action"])
    benchmark.extra_info.update({
        "accounts": rows, "actions": actions,
        "stage_rows_per_s": rows / staged, "decide_rows_per_s": rows / decide,
        "stage_share_of_decision_time": staged / (decide + staged),
        "stage_over_decide": staged / decide, "audit_append_s": audit_s,
    })
    print(f"\n{rows:,} accounts, {actions:,} actions: stage {staged:.3f} s ({rows / staged:,.0f} rows/s), "
          f"kernel decide {decide:.3f} s ({rows / decide:,.0f} rows/s); stage = {staged / (decide + staged):.0%} "
          f"of decide + stage ({staged / decide:.2f}× decide); audit append {audit_s:.3f} s")
    assert actions > rows * 0.05
    assert result.decisions.num_rows == rows


def _account_columns(book: pa.Table, row: int) -> dict[str, np.ndarray]:
    """One account as the gRPC server hands it to the pipeline: NumPy columns, text as str."""
    one = book.slice(row, 1)
    cols = {}
    for name in one.schema.names:
        column = one[name]
        if pa.types.is_dictionary(column.type) or pa.types.is_string(column.type):
            cols[name] = np.array(column.to_pylist(), dtype=object)
        else:
            cols[name] = column.to_numpy()
    return cols


def test_single_account_stage(benchmark, kernel, pipeline):
    """The stage after the kernel for one delinquent account (several actions), on the gRPC Decide
    form (a Record: Python scalars) and on NumPy columns, against the kernel's own decision of
    the same account in the same run (``decide_record`` / ``decide_columns``), call by call."""
    from kernel.hookspecs import Record
    book = _book(2_000)
    severe = int(np.flatnonzero(book["dpd"].to_numpy() > 40)[0])       # an account with several actions
    columns = _account_columns(book, severe)
    record = book.slice(severe, 1).to_pylist()[0]
    decided_record = kernel.decide_record(record, AS_OF)
    decided_columns = kernel.decide_columns(columns, AS_OF)
    calls = 200 if _smoke(benchmark) else 5_000
    for _ in range(200):                                              # warm every path
        pipeline.stage(Record(record), Record(decided_record), AS_OF, NOW)
        pipeline.stage(columns, decided_columns, AS_OF, NOW)
    times: dict[str, list] = {k: [] for k in ("decide_record", "stage_record", "decide_columns", "stage_columns")}

    def alternate():
        for _ in range(calls):
            seconds, decided = _timed(kernel.decide_record, record, AS_OF)
            times["decide_record"].append(seconds)
            times["stage_record"].append(_timed(pipeline.stage, Record(record), Record(decided), AS_OF, NOW)[0])
            seconds, decided = _timed(kernel.decide_columns, columns, AS_OF)
            times["decide_columns"].append(seconds)
            times["stage_columns"].append(_timed(pipeline.stage, columns, decided, AS_OF, NOW)[0])

    benchmark.pedantic(alternate, rounds=1, iterations=1)
    us = {k: statistics.median(v) * 1e6 for k, v in times.items()}
    result = pipeline.stage(Record(record), Record(decided_record), AS_OF, NOW)
    actions = len(result.action_columns["action"])
    benchmark.extra_info.update({"actions": actions, **{f"{k}_us_p50": v for k, v in us.items()},
                                 "stage_record_over_decide_record": us["stage_record"] / us["decide_record"],
                                 "stage_columns_over_decide_columns": us["stage_columns"] / us["decide_columns"]})
    print(f"\none account, {actions} actions (p50):"
          f"\n  record path:  decide_record {us['decide_record']:.0f} µs, stage {us['stage_record']:.0f} µs "
          f"({us['stage_record'] / us['decide_record']:.2f}× decide_record)"
          f"\n  columns path: decide_columns {us['decide_columns']:.0f} µs, stage {us['stage_columns']:.0f} µs "
          f"({us['stage_columns'] / us['decide_columns']:.2f}× decide_columns)")
    assert actions >= 2
    assert pipeline.stage(columns, decided_columns, AS_OF, NOW).actions.to_pylist() == result.actions.to_pylist()


@pytest.mark.parametrize("between", ["hot", "columns_path"])
def test_single_account_stage_parts(benchmark, kernel, pipeline, between):
    """Where the one-account stage goes (the gRPC Decide form, a Record): the strategy's plan
    with its scripts, the scripts alone, the valuation (the car's price and disposal channel),
    the compliance policies (one compiled call for the set, after the screen reads the
    scripts), the screen alone — against the whole stage and the kernel's decision of the same
    account, call by call. ``columns_path``: each part timed after the same account's columns
    path (``decide_columns`` and its stage), as ``test_single_account_stage`` times the record
    path — in the caches that leaves (every part slower than in a hot loop, by how much of
    memory it touches)."""
    from kernel.hookspecs import Batch, Record
    from postloan_builtins.compliance import _screen_listed
    book = _book(2_000)
    severe = int(np.flatnonzero(book["dpd"].to_numpy() > 40)[0])
    record = book.slice(severe, 1).to_pylist()[0]
    decided = kernel.decide_record(record, AS_OF)
    strategy = pipeline.strategy

    def batch():
        return Batch(1, AS_OF, NOW, [Record(decided), Record(record)], pipeline.config)

    planned = pipeline._plan(batch())
    # a request's scripts as the stage holds them (a list of str; an Arrow array before)
    script = planned["script"]
    listed = script if isinstance(script, list) else script.to_pylist()
    wanted = [True] * len(listed)
    tier = batch().enum_one("collection_tier.tier", ("NONE", "MILD", "MEDIUM", "SEVERE"))
    parts = {
        "decide_record": lambda: kernel.decide_record(record, AS_OF),
        "stage": lambda: pipeline.stage(Record(record), Record(decided), AS_OF, NOW),
        "strategy_plan": lambda: pipeline._plan(batch()),
        # what the plan pays for its scripts (the one-account renderer, as the stage calls it)
        "scripts": lambda: strategy._render_one(batch(), planned["row"], planned["action"], tier),
        "valuation": lambda: pipeline._valuation(batch()),
        "policies": lambda: pipeline._comply(batch(), planned, []),
        # the policies' screen of a request's scripts (compliance._screen_listed, as _judge_one reads them)
        "screen": lambda: _screen_listed(listed, wanted),
        "batch_alone": batch,
    }
    columns = _account_columns(book, severe)
    calls = 100 if _smoke(benchmark) else 3_000 if between == "hot" else 1_000
    for fn in parts.values():
        for _ in range(100):
            fn()
    times: dict[str, list] = {k: [] for k in parts}

    def columns_path():
        pipeline.stage(columns, kernel.decide_columns(columns, AS_OF), AS_OF, NOW)

    def alternate():
        for _ in range(calls):
            for name, fn in parts.items():
                if between == "columns_path":
                    columns_path()
                times[name].append(_timed(fn)[0])

    benchmark.pedantic(alternate, rounds=1, iterations=1)
    us = {k: statistics.median(v) * 1e6 for k, v in times.items()}
    low = {k: min(v) * 1e6 for k, v in times.items()}
    benchmark.extra_info.update({**{f"{k}_us_p50": v for k, v in us.items()}, **{f"{k}_us_min": v for k, v in low.items()},
                                 "actions": len(planned["action"])})
    print(f"\none account, {len(planned['action'])} actions, {between}, p50 (min) µs:")
    for k in parts:
        print(f"  {k:14s} {us[k]:7.1f} ({low[k]:.1f})")
    assert len(planned["action"]) >= 2


def test_screen_by_first_character(benchmark, kernel, pipeline):
    """The script screen's compiled pass (``screen_kernel.scan``) over a batch's scripts with its
    table as built — a position whose Chinese character (by its code point) or first three
    ASCII bytes start no pattern is passed over — against the same table with every position
    let through (the two-byte test and the candidates only, as before the filter),
    alternating pass by pass; the bits are the same."""
    from postloan_builtins import screen_kernel
    from postloan_builtins.compliance import _SCREEN_TABLE
    rows = 2_000 if _smoke(benchmark) else 20_000
    book = _book(rows)
    scripts = pipeline.stage(book, kernel.decide(book, AS_OF), AS_OF, NOW).action_columns["script"]
    arr = scripts.combine_chunks() if isinstance(scripts, pa.ChunkedArray) else scripts
    n = len(arr)
    offsets = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset:arr.offset + n + 1]
    data = np.frombuffer(arr.buffers()[2], np.uint8)
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    unfiltered = _SCREEN_TABLE.copy()
    bounds = unfiltered[:16 * screen_kernel.N_TABLES].view(np.int64)
    unfiltered[bounds[22]:bounds[23]] = 0xFF                    # the first characters' bitmap: all set
    out = {name: (np.empty(n, np.int64), np.empty(n, np.int64)) for name in ("filtered", "unfiltered")}
    tables = {"filtered": _SCREEN_TABLE, "unfiltered": unfiltered}
    times: dict[str, list] = {name: [] for name in tables}
    for name, table in tables.items():                         # compiled, warm
        screen_kernel.scan(data, offsets, valid, table, *out[name])

    def alternate():
        for _ in range(3 if _smoke(benchmark) else 15):
            for name, table in tables.items():
                times[name].append(_timed(screen_kernel.scan, data, offsets, valid, table, *out[name])[0])

    benchmark.pedantic(alternate, rounds=1, iterations=1)
    ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    megabytes = (offsets[-1] - offsets[0]) / 1e6
    benchmark.extra_info.update({**{f"{k}_ms_p50": v for k, v in ms.items()}, "megabytes": megabytes,
                                 "filtered_over_unfiltered": ms["filtered"] / ms["unfiltered"]})
    print(f"\nscreen of {n:,} scripts ({megabytes:.1f} MB), one thread, p50: by first character "
          f"{ms['filtered']:.1f} ms, without the filter {ms['unfiltered']:.1f} ms "
          f"({ms['filtered'] / ms['unfiltered']:.2f}×)")
    assert out["filtered"][0].tolist() == out["unfiltered"][0].tolist()
    assert out["filtered"][1].tolist() == out["unfiltered"][1].tolist()


def test_audit_append_per_sync_mode(benchmark, kernel, pipeline, tmp_path):
    """One Decide's audit record: AuditLog.append with sync "always" and "interval", against a
    bare write + fdatasync and a bare write of the same frame to files on the same disk."""
    import os
    from kernel.audit import AuditLog, encode_record
    book = _book(2_000)
    record = book.slice(int(np.flatnonzero(book["dpd"].to_numpy() > 40)[0]), 1).to_pylist()[0]
    result = pipeline.run_record(record, AS_OF, NOW)
    meta, decisions, actions = pipeline.audit_record(result, AS_OF, NOW)
    frame = encode_record(meta, decisions, actions)
    always = AuditLog(tmp_path / "always.log")
    interval = AuditLog(tmp_path / "interval.log", sync="interval", interval_ms=50)
    fd_synced = os.open(tmp_path / "bare-synced.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    fd_written = os.open(tmp_path / "bare-written.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    calls = 50 if _smoke(benchmark) else 2_000
    times: dict[str, list] = {k: [] for k in ("append_always", "write_fdatasync", "append_interval", "write")}

    def write_and_sync():
        os.write(fd_synced, frame)
        os.fdatasync(fd_synced)

    def alternate():
        for _ in range(calls):
            times["append_always"].append(_timed(always.append, meta, decisions, actions)[0])
            times["write_fdatasync"].append(_timed(write_and_sync)[0])
            times["append_interval"].append(_timed(interval.append, meta, decisions, actions)[0])
            times["write"].append(_timed(os.write, fd_written, frame)[0])

    try:
        benchmark.pedantic(alternate, rounds=1, iterations=1)
    finally:
        os.close(fd_synced)
        os.close(fd_written)
    us = {k: statistics.median(v) * 1e6 for k, v in times.items()}
    p99 = {k: float(np.percentile(v, 99)) * 1e6 for k, v in times.items()}
    benchmark.extra_info.update({**{f"{k}_us_p50": v for k, v in us.items()}, **{f"{k}_us_p99": v for k, v in p99.items()},
                                 "frame_bytes": len(frame), "syncs_always": always.syncs})
    print(f"\naudit record of one Decide ({len(frame)} bytes), p50 / p99:"
          f"\n  sync=always:   append {us['append_always']:.0f} / {p99['append_always']:.0f} µs; bare write+fdatasync "
          f"{us['write_fdatasync']:.0f} / {p99['write_fdatasync']:.0f} µs"
          f"\n  sync=interval: append {us['append_interval']:.0f} / {p99['append_interval']:.0f} µs; bare write "
          f"{us['write']:.0f} / {p99['write']:.0f} µs")
    interval.flush()
    assert always.synced == always.written == calls and interval.synced == interval.written == calls
