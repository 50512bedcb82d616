"""The compliance policies at one account, in process: the contact-time gate's question
(``Pipeline.judge`` of one action on an account's record with its state — what
``CheckContact`` asks between reading the state and writing the reservation) and the stage's
(``Pipeline._comply`` of the account's two planned actions, their scripts screened), each
against the kernel's own decision of the same account (``decide_record``), call by call.

Run against another tree in the same minutes to compare two versions of the policies (the
file imports the tree on ``PYTHONPATH``)::

    pytest bench/bench_judge.py --benchmark-enable -s
    cd /work/main && PYTHONPATH=/work/main:/work/main/plugins \\
        pytest /path/to/bench/bench_judge.py --benchmark-enable -s
"""
from __future__ import annotations

import datetime as dt
import statistics
import time

import numpy as np

AS_OF = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.timezone.utc)      # 10:00 in Shanghai


def _smoke(benchmark) -> bool:
    return getattr(benchmark, "disabled", False)


def _cpu_each(fn, calls: int) -> float:
    """CPU seconds of this thread per call of ``fn`` over ``calls`` calls."""
    start = time.thread_time()
    for _ in range(calls):
        fn()
    return (time.thread_time() - start) / calls


def test_policies_at_one_account(benchmark, kernel, pipeline):
    """The gate's one action (an SMS, then a phone call) and the stage's two planned actions
    of one delinquent account, against ``decide_record`` of the account: p50 of single calls
    and this thread's CPU per call over blocks of 200, alternating."""
    from kernel.hookspecs import Batch, Record
    from kernel.synth import generate
    book = generate(2_000, seed=21, as_of=AS_OF)
    severe = int(np.flatnonzero(book["dpd"].to_numpy() > 40)[0])
    record = book.slice(severe, 1).to_pylist()[0]
    decided = kernel.decide_record(record, AS_OF)
    gate_record = dict(pipeline.record_with_state(record, AS_OF, NOW))
    planned = pipeline._plan(Batch(1, AS_OF, NOW, [Record(decided), Record(record)], pipeline.config))
    parts = {
        "decide_record": lambda: kernel.decide_record(record, AS_OF),
        "gate_sms": lambda: pipeline.judge(gate_record, "SMS", NOW, AS_OF),
        "gate_phone": lambda: pipeline.judge(gate_record, "PHONE", NOW, AS_OF),
        "stage_policies": lambda: pipeline._comply(Batch(1, AS_OF, NOW, [Record(decided), Record(record)],
                                                        pipeline.config), planned, []),
    }
    calls = 50 if _smoke(benchmark) else 3_000
    blocks = 1 if _smoke(benchmark) else 10
    for fn in parts.values():
        for _ in range(100):
            fn()
    times: dict[str, list] = {k: [] for k in parts}
    cpu: dict[str, list] = {k: [] for k in parts}

    def alternate():
        for _ in range(calls):
            for name, fn in parts.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        for _ in range(blocks):
            for name, fn in parts.items():
                cpu[name].append(_cpu_each(fn, 200))

    benchmark.pedantic(alternate, rounds=1, iterations=1)
    us = {k: statistics.median(v) * 1e6 for k, v in times.items()}
    cpu_us = {k: statistics.median(v) * 1e6 for k, v in cpu.items()}
    benchmark.extra_info.update({**{f"{k}_us_p50": v for k, v in us.items()},
                                 **{f"{k}_cpu_us": v for k, v in cpu_us.items()},
                                 "actions": len(planned["action"])})
    print(f"\npolicies at one account ({len(planned['action'])} planned actions), p50 / CPU per call, µs:")
    for k in parts:
        print(f"  {k:15s} {us[k]:7.1f} / {cpu_us[k]:7.1f}  ({cpu_us[k] / cpu_us['decide_record']:.2f}× decide_record's CPU)")
    assert pipeline.judge(gate_record, "SMS", NOW, AS_OF)[0] in ("KEEP", "DEFER", "BLOCK")
    assert len(planned["action"]) >= 2
