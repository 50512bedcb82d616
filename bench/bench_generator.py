"""Generator throughput (accounts/s), against writing the same shape of plain noise.

The peer is the floor any generator pays: NumPy uniform noise in the book's column types,
written through the same Parquet writer. The ratio says what realism costs on top of I/O.
Goal (issue 2): 1,000,000 accounts in under 30 s here; 10,000,000 streamed in bounded memory.

    pytest bench/bench_generator.py --benchmark-enable
    POSTLOAN_BENCH_ACCOUNTS=10000000 pytest bench/bench_generator.py --benchmark-enable -k write
"""
from __future__ import annotations

import os
import resource
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kernel.schema import arrow_schema
from kernel.synth import CHUNK, write_book

ACCOUNTS = int(os.environ.get("POSTLOAN_BENCH_ACCOUNTS", 1_000_000))


def _noise_batch(schema: pa.Schema, rows: int, rng) -> pa.RecordBatch:
    arrays = []
    for field in schema:
        t = field.type
        if pa.types.is_dictionary(t):
            arrays.append(pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, 2, rows).astype(np.int8)),
                                                         pa.array(["A", "B"])))
        elif pa.types.is_integer(t):
            arrays.append(pa.array(rng.integers(0, 1000, rows)))
        elif pa.types.is_floating(t):
            arrays.append(pa.array(rng.random(rows)))
        elif pa.types.is_boolean(t):
            arrays.append(pa.array(rng.random(rows) < 0.5))
        elif pa.types.is_date(t):
            arrays.append(pa.array(rng.integers(18000, 21000, rows).astype(np.int32), pa.date32()))
        elif pa.types.is_timestamp(t):
            arrays.append(pa.array(rng.integers(0, 2**40, rows), t))
        else:
            arrays.append(pa.array(rng.integers(0, 10**12, rows)).cast(pa.string()))
    return pa.RecordBatch.from_arrays(arrays, schema=schema.remove_metadata())


def _write_noise(path, rows: int) -> None:
    schema = arrow_schema("book").remove_metadata()
    rng = np.random.default_rng(0)
    with pq.ParquetWriter(path, schema, compression="zstd") as w:
        for start in range(0, rows, CHUNK):
            w.write_batch(_noise_batch(schema, min(CHUNK, rows - start), rng))


def test_generator_write(benchmark, tmp_path):
    path = tmp_path / "book.parquet"
    start = time.perf_counter()
    _write_noise(tmp_path / "noise.parquet", ACCOUNTS)
    peer = time.perf_counter() - start
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    benchmark.pedantic(write_book, args=(path, ACCOUNTS), kwargs={"seed": 1}, rounds=1, iterations=1)
    ours = benchmark.stats.stats.mean if benchmark.stats else None
    if ours is None:                       # --benchmark-disable: time the one run ourselves
        start = time.perf_counter(); write_book(path, ACCOUNTS, seed=1); ours = time.perf_counter() - start
    peak_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    benchmark.extra_info.update({
        "accounts": ACCOUNTS, "accounts_per_s": round(ACCOUNTS / ours),
        "noise_accounts_per_s": round(ACCOUNTS / peer), "time_vs_noise": round(ours / peer, 2),
        "peak_rss_growth_mb": round(peak_growth_mb, 1),
    })
    print(f"\ngenerator: {ACCOUNTS / ours:,.0f} accounts/s ({ours:.1f} s for {ACCOUNTS:,}); "
          f"noise peer {ACCOUNTS / peer:,.0f}/s; ratio {ours / peer:.2f}× the noise time; "
          f"peak RSS growth {peak_growth_mb:.0f} MB")
    assert pq.ParquetFile(path).metadata.num_rows == ACCOUNTS


EVENTS_ACCOUNTS = int(os.environ.get("POSTLOAN_BENCH_EVENT_ACCOUNTS", 100_000))


def test_generator_events_full_vs_recent(benchmark, tmp_path):
    """The event history behind the book (``postloan generate --events``): the full history
    from origination against the recent one (the peer, written in the same run): events an
    account, time, CPU time and file size of each."""
    from kernel.synth import write_events

    def timed(history):
        path = tmp_path / f"{history}.parquet"
        wall, cpu = time.perf_counter(), time.process_time()
        n = write_events(str(path), EVENTS_ACCOUNTS, seed=0, history=history)
        return n, time.perf_counter() - wall, time.process_time() - cpu, path.stat().st_size

    write_events(str(tmp_path / "warm.parquet"), 100, seed=0, history="full")      # compile outside the timing
    recent = timed("recent")
    full = benchmark.pedantic(timed, args=("full",), rounds=1, iterations=1)
    if full is None:
        full = timed("full")
    benchmark.extra_info.update({
        "accounts": EVENTS_ACCOUNTS, "recent_events": recent[0], "full_events": full[0],
        "recent_events_per_account": round(recent[0] / EVENTS_ACCOUNTS, 1),
        "full_events_per_account": round(full[0] / EVENTS_ACCOUNTS, 1),
        "recent_s": round(recent[1], 1), "full_s": round(full[1], 1),
        "recent_cpu_s": round(recent[2], 1), "full_cpu_s": round(full[2], 1),
        "full_vs_recent_cpu": round(full[2] / recent[2], 2),
        "recent_mb": round(recent[3] / 2**20, 1), "full_mb": round(full[3] / 2**20, 1),
    })
    print(f"\nevents of {EVENTS_ACCOUNTS:,} accounts: recent {recent[0]:,} ({recent[0] / EVENTS_ACCOUNTS:.1f} an account, "
          f"{recent[1]:.1f} s, CPU {recent[2]:.1f} s, {recent[3] / 2**20:.0f} MB); full {full[0]:,} "
          f"({full[0] / EVENTS_ACCOUNTS:.1f} an account, {full[1]:.1f} s, CPU {full[2]:.1f} s, {full[3] / 2**20:.0f} MB); "
          f"full/recent CPU {full[2] / recent[2]:.2f}×, events {full[0] / recent[0]:.2f}×")
    assert full[0] > recent[0]
