"""Evaluation at scale, each against a peer in the same run (docs/evaluation.md, "Performance").

* **The report for 1,000,000 accounts and 30 days**: the simulator runs 30 days of the
  collections loop on a 1,000,000-account book (decisions, actions and events kept in a SQLite
  ledger), then ``figures_from_store`` + ``write_report`` are timed against reading the same
  runs and events back alone (the store's share of the time).
* **The state of the whole book day after day**: the demo's 100,000 accounts and their history
  in a SQLite ledger, six simulated days; each day the state read from the events kept in
  memory (``Ledger.keep_events``) against a fresh read of the same store, alternating, CPU
  time, the two compared column by column.
* **Dask decide of 10,000,000 accounts**: a 10,000,000-account book in 20 Parquet parts decided
  by ``postloan decide --in DIR`` in one process and with ``--dask`` on a local cluster of two
  worker processes (this machine's two cores), the same files, the same run: the ratio of the
  times, and the decisions compared part by part.

    pytest bench/bench_evaluation.py --benchmark-enable -s      # ≈ 15 minutes on 2 cores
    pytest bench/bench_evaluation.py --benchmark-disable        # smoke: small sizes, seconds
"""
from __future__ import annotations

import datetime as dt
import time

import pyarrow.parquet as pq
import pytest

from kernel.evaluation.kpis import Settings
from kernel.evaluation.records import RunStore
from kernel.evaluation.report import write_report
from kernel.evaluation.run import figures_from_store

START = dt.date(2026, 11, 1)
AS_OF = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 2, tzinfo=dt.timezone.utc)


def _smoke(benchmark) -> bool:
    return getattr(benchmark, "disabled", False)


def test_report_for_a_million_accounts_and_30_days(benchmark, tmp_path):
    from kernel.evaluation.simulate import Simulator
    from kernel.ledger import Ledger
    from kernel.pipeline import Pipeline
    from kernel.runtime import Kernel
    from kernel.synth import generate
    accounts, days = (3_000, 3) if _smoke(benchmark) else (1_000_000, 30)
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    config = {"experiment": {"seed": "bench", "arms": {"CHAMPION": 0.8, "CHALLENGER": 0.2}}}
    pipeline = Pipeline(Kernel.load(), ledger=ledger, config=config, audit_path=tmp_path / "audit.log")
    start = time.perf_counter()
    sim = Simulator(pipeline, generate(accounts, seed=1, as_of=START), START, seed=1)
    result = sim.run(days)
    simulated = time.perf_counter() - start
    settings = Settings()

    def read_alone():
        runs = RunStore(ledger)
        rows = sum(t.num_rows for t in runs.iter("snapshots")) + sum(t.num_rows for t in runs.iter("actions"))
        return rows, runs.events().num_rows

    def report():
        figures = figures_from_store(ledger, settings)
        return figures, write_report(figures, tmp_path / "report.html")

    t = time.perf_counter()
    rows, events = read_alone()
    read_seconds = time.perf_counter() - t
    t = time.perf_counter()
    figures, size = benchmark.pedantic(report, rounds=1, iterations=1)
    seconds = time.perf_counter() - t
    assert figures["end"] == str(result.runs[-1]) and len(figures["series"]["dates"]) == days and size > 10_000
    print(f"\nreport: {accounts:,} accounts, {days} runs ({rows:,} snapshot and action rows), {events:,} events "
          f"(simulated in {simulated:.0f} s): {seconds:.1f} s; reading the same back alone {read_seconds:.1f} s "
          f"({seconds / max(read_seconds, 1e-9):.2f}× the read)")
    ledger.close()


def test_incremental_state_against_fresh_reads_day_after_day(benchmark, tmp_path):
    """The demo's simulated days: the state of the whole book (100,000 accounts, their 183-day
    history in a SQLite ledger) read each day from the events kept in memory plus the day's
    appended ones (``Ledger.keep_events``, what the simulator uses) against a fresh read of the
    same store at the same moment, alternating day by day in the same run; CPU time of this
    process (the machine is shared), and the two states compared column by column."""
    import numpy as np
    import pyarrow as pa

    from kernel.evaluation.demo import DEMO_EFFECT, demo_config
    from kernel.evaluation.simulate import Behaviour, Simulator
    from kernel.ledger import Ledger
    from kernel.pipeline import Pipeline
    from kernel.runtime import Kernel
    from kernel.synth import iter_book_and_events, snapshot_at
    accounts, days = (3_000, 2) if _smoke(benchmark) else (100_000, 6)
    config = demo_config(None, days=days + 1)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    kept = Ledger(url, config)
    batches = []
    for batch, events in iter_book_and_events(accounts, 0, AS_OF):
        batches.append(batch)
        kept.ingest(events, now=snapshot_at(AS_OF))
    book = pa.Table.from_batches(batches)
    ids, zones = book["account_id"].to_pylist(), book["time_zone"].to_pylist()
    pipeline = Pipeline(Kernel.load(), ledger=kept, config=config, audit_path=tmp_path / "audit.log")
    sim = Simulator(pipeline, book, AS_OF, behaviour=Behaviour(effects=DEMO_EFFECT), seed=0, known=True)
    fresh = Ledger(url, config)
    times = {"kept": [], "fresh": []}

    def one_day(k):
        sim.step()
        at = snapshot_at(AS_OF + dt.timedelta(days=k + 1))
        got = {}
        for name, ledger in (("kept", kept), ("fresh", fresh))[::1 if k % 2 else -1]:   # alternating first
            t = time.process_time()
            got[name] = ledger.state_columns(ids, zones, at)
            times[name].append(time.process_time() - t)
        for column, values in got["fresh"].items():
            np.testing.assert_array_equal(got["kept"][column], values, err_msg=column)

    benchmark.pedantic(lambda: [one_day(k) for k in range(days)], rounds=1, iterations=1)
    # (the one full read of the kept events was the simulator's first day's)
    fresh_median, kept_median = float(np.median(times["fresh"])), float(np.median(times["kept"]))
    assert kept.book.loads == 1
    print(f"\nstate of {accounts:,} accounts, {days} simulated days ({sim.events_written:,} events appended): "
          f"fresh read {fresh_median:.2f} s CPU a day (median; {min(times['fresh']):.2f}–{max(times['fresh']):.2f}), "
          f"kept {kept_median:.2f} s ({min(times['kept']):.2f}–{max(times['kept']):.2f}) — "
          f"{fresh_median / max(kept_median, 1e-9):.2f}× less CPU a day")
    benchmark.extra_info.update(fresh_s=times["fresh"], kept_s=times["kept"])
    kept.close()
    fresh.close()


def test_dask_decide_of_ten_million_accounts(benchmark, tmp_path):
    from kernel.cli import main
    from kernel.synth import iter_book
    accounts, parts = (40_000, 4) if _smoke(benchmark) else (10_000_000, 20)
    book = tmp_path / "book"
    book.mkdir()
    per = accounts // parts
    writer, in_part, k = None, 0, 0
    for batch in iter_book(accounts, seed=3, as_of=AS_OF):      # streamed: memory stays bounded
        at = 0
        while at < batch.num_rows:
            if writer is None:
                writer = pq.ParquetWriter(book / f"part-{k:05d}.parquet", batch.schema)
            take = min(per - in_part, batch.num_rows - at)
            writer.write_batch(batch.slice(at, take))
            at, in_part = at + take, in_part + take
            if in_part == per:
                writer.close()
                writer, in_part, k = None, 0, k + 1
    if writer is not None:
        writer.close()
    args = ["decide", "--in", str(book), "--as-of", str(AS_OF), "--now", NOW.isoformat(), "--quiet"]
    t = time.perf_counter()
    assert benchmark.pedantic(main, args=(args + ["--out", str(tmp_path / "one")],), rounds=1, iterations=1) == 0
    single = time.perf_counter() - t
    if _smoke(benchmark):          # a cluster takes ≈ 10–20 s to start: tests/evaluation/test_dask.py runs it
        print(f"\ndecide {accounts:,} accounts in {parts} parts: one process {single:.1f} s (Dask leg: not in the smoke run)")
        return
    t = time.perf_counter()
    assert main(args + ["--out", str(tmp_path / "dask"), "--dask", "local", "--dask-workers", "2"]) == 0
    on_dask = time.perf_counter() - t
    names = sorted(p.name for p in book.iterdir())
    for name in names:
        a = pq.read_table(tmp_path / "one" / name)
        b = pq.read_table(tmp_path / "dask" / name)
        assert a.equals(b), name
    print(f"\ndecide {accounts:,} accounts in {len(names)} Parquet parts: one process {single:.1f} s "
          f"({accounts / single:,.0f} accounts/s); Dask local cluster, 2 workers {on_dask:.1f} s "
          f"({accounts / on_dask:,.0f} accounts/s, cluster start included): {single / on_dask:.2f}× the single process")
    benchmark.extra_info.update(single_s=single, dask_s=on_dask)
