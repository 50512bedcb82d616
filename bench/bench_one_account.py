"""One account through the compiled kernel (``Kernel.decide_record``), hot and cold.

Every gRPC ``Decide`` calls ``decide_record`` once, after an idle gap: between two calls the
server's core halts and comes back with cold caches, so what one account costs there is its
cost *after an idle gap*, not in a hot loop. This bench measures, per call (median of many):

- ``hot``: back to back;
- ``thrash``: after writing 8 MB (every cache level evicted);
- ``idle``: after a 0.6 ms sleep (the core halts, as between two requests).

For each: the whole ``decide_record``, its parts (stage the record, the compiled call, read the
outputs back), and two peers measured in the same run, alternating with ours:

- the same compiled nodes called through ``block``'s entry point with its 18 array arguments
  (the record path before the driver's ``record`` entry: the ratio is what taking the arrays
  from one address table buys);
- onnxruntime scoring the residual-value model alone on the same row (``InferenceSession.run``
  on a prepared feed): one of the bundle's eleven nodes, by the library the models come from.

Wall time is what a request waits; the calling thread's CPU time is printed too (on a loaded
machine the wall time also holds other jobs' time slices). Reproduce with
``pytest bench/bench_one_account.py --benchmark-enable -s``.
"""
from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pytest

AS_OF = dt.date(2026, 11, 28)


@pytest.fixture(scope="module")
def accounts():
    from kernel.synth import generate
    book = generate(2000, seed=21, as_of=AS_OF)
    rows = np.flatnonzero(book["dpd"].to_numpy() > 40)[:1].tolist() + [0, 1]
    return book, [book.slice(r, 1).to_pylist()[0] for r in rows]


def _median_us(fn, n: int, before=None) -> tuple[float, float]:
    """Median wall and thread-CPU time of ``fn()`` in µs over ``n`` calls, each after ``before()``."""
    wall, cpu = [], []
    for _ in range(n):
        if before is not None:
            before()
        c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
        fn()
        w1, c1 = time.perf_counter_ns(), time.thread_time_ns()
        wall.append(w1 - w0)
        cpu.append(c1 - c0)
    return float(np.median(wall)) / 1000, float(np.median(cpu)) / 1000


def test_one_account_hot_and_cold(benchmark, kernel, accounts):
    book, records = accounts
    record = records[0]
    expected = kernel.decide(book.filter(np.isin(np.arange(book.num_rows),
                                                 np.flatnonzero(book["dpd"].to_numpy() > 40)[:1])), AS_OF)
    assert kernel.decide_record(record, AS_OF) == expected.to_pylist()[0]       # the same decisions
    ck = kernel._compiled
    kernel.decide_record(record, AS_OF)
    rec = ck._local.record
    assert rec.table is not None, "the driver's record entry is in use"
    from kernel.codegen.inputs import as_of_days
    days = as_of_days(AS_OF)
    rv = next(n for n in kernel.bundle.nodes if n.kind == "model" and n.name == "rv_model").model
    X = np.zeros((1, len(rv.inputs)), np.float32)
    known = {**record, **kernel.decide_record(record, AS_OF)}      # upstream outputs feed the model too
    X[0] = np.asarray([_feature(known, i) for i in rv.inputs], np.float32)
    feeds = rv._feeds(X)
    session = rv._session
    session.run(None, feeds)

    big = np.zeros(8_000_000, np.uint8)
    modes = {"hot": None, "thrash": lambda: big.fill(1), "idle": lambda: time.sleep(0.0006)}
    calls = {
        "decide_record": lambda: kernel.decide_record(record, AS_OF),
        "stage": lambda: rec.stage(record),
        "record entry": lambda: ck._record_entry(days, rec.table_at),
        "block entry (peer)": lambda: ck._block_entry(0, 1, days, *rec.args),
        "read": rec.read,
        "onnxruntime rv_model (peer)": lambda: session.run(None, feeds),
    }
    n_hot, n_cold = (300, 100) if benchmark.disabled else (20000, 2000)
    results = {mode: {name: [] for name in calls} for mode in modes}
    for _ in range(3 if benchmark.disabled else 5):       # alternating: load changes hit every call alike
        for mode, before in modes.items():
            for name, fn in calls.items():
                results[mode][name].append(_median_us(fn, n_hot if before is None else n_cold, before))
    table = {mode: {name: (float(np.median([w for w, _ in v])), float(np.median([c for _, c in v])))
                    for name, v in per.items()} for mode, per in results.items()}
    assert kernel.decide_record(record, AS_OF) == expected.to_pylist()[0]
    benchmark.pedantic(kernel.decide_record, args=(record, AS_OF), rounds=50 if benchmark.disabled else 2000,
                       iterations=1)
    print("\none account through the shipped bundle (11 nodes), median µs: wall / thread CPU")
    for mode, per in table.items():
        print(f"  {mode:6s} " + "; ".join(f"{name} {w:.1f} / {c:.1f}" for name, (w, c) in per.items()))
        entry, peer = per["record entry"][0], per["block entry (peer)"][0]
        ort, ours = per["onnxruntime rv_model (peer)"][0], per["decide_record"][0]
        print(f"         block entry / record entry {peer / entry:.2f}x; onnxruntime rv_model alone / "
              f"decide_record (whole bundle) {ort / ours:.2f}x")
        benchmark.extra_info.update({f"{mode}_{name}_us": round(w, 2) for name, (w, _) in per.items()})
    # what would fail if the record entry broke: it decides, and no slower than the block's
    assert table["hot"]["record entry"][1] < table["hot"]["block entry (peer)"][1] * 1.5


def _feature(record: dict, model_input) -> float:
    """The value onnxruntime gets for one model input of ``record`` (a category as its index)."""
    v = record.get(model_input.name)
    if v is None:
        return np.nan
    categories = getattr(model_input, "categories", None)
    if categories:
        return float(list(categories).index(v)) if v in categories else -1.0
    if isinstance(v, dt.date):
        return float((v - dt.date(1970, 1, 1)).days)
    return float(v)
