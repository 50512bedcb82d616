"""The tiered-collection ruleset, compiled, against durable_rules running the same policy.

durable_rules (a Rete engine in C with a Python DSL) is the interpreted peer: the policy of
``rulesets/collection_tier.yaml`` is translated into its DSL below, one rule per YAML rule.
The YAML's ``hit: first`` becomes durable_rules' salience: ``pri(1)`` for the first rule,
``pri(2)`` for the second…; each account is posted as one *event* (an ephemeral message,
consumed by the single highest-priority rule that matches, so exactly one rule acts, as under
``first``) carrying a unique ``id`` (identical messages are otherwise rejected as already
observed). An account no rule matches (a current account) raises MessageNotHandledException:
that is the YAML's "no rule fired", tier NONE. Every event goes to the default session, so
the 1,024-live-sessions-per-ruleset limit is never approached; the rule actions compute
calls_per_day and priority in Python from the event, as a durable_rules user would.

Both engines decide the same accounts: a seeded synthetic book whose upstream decision
columns (dpd_bucket, vehicle_alerts, risk_segment, early_warning) come from the shipped
rulesets; ``pd_model.probability``, which early_warning reads, is a seeded stand-in (the
benchmark measures collection_tier, for which it is just an input). The benchmark first
checks the translation: on every account of the durable_rules sample both engines give the
same tier, channel, legal review, calls per day and priority. Then it reports each engine's
rows/s — durable_rules on POSTLOAN_BENCH_DURABLE_ROWS accounts (default 20,000; only posting
is timed, the dicts are built beforehand), the compiled ruleset on POSTLOAN_BENCH_ROWS
(default 1,000,000) held in one table and again in batches of 65,536 rows — and the ratio of
the per-row rates. Goal (issue 3): at least 1,000×. A second benchmark runs the whole shipped
bundle (``Kernel.load()``: every ruleset and both models, fused) on the same 1,000,000 rows
against the same durable_rules figure.

    pytest bench/bench_durable_rules.py --benchmark-enable -s
"""
from __future__ import annotations

import datetime as dt
import itertools
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import kernel
from kernel.ledger.durable_peer import unavailable
from kernel.synth import generate

#: durable_rules 2.0.28 does not import on Python 3.13 (its C extension calls a removed API)
pytestmark = pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))

AS_OF = dt.date(2026, 11, 28)
RULESETS = Path(__file__).resolve().parents[1] / "rulesets"
#: in dependency order: risk_segment reads early_warning.pd (since the PD became forward-looking)
UPSTREAM = ("dpd_bucket", "vehicle_alerts", "early_warning", "risk_segment")
DURABLE_ROWS = int(os.environ.get("POSTLOAN_BENCH_DURABLE_ROWS", 20_000))
KERNEL_ROWS = int(os.environ.get("POSTLOAN_BENCH_ROWS", 1_000_000))
SMOKE_DURABLE_ROWS, SMOKE_KERNEL_ROWS = 2_000, 20_000       # under --benchmark-disable
ROUNDS = 3
#: rounds of the compiled ruleset (about 10 ms each): a median of several, since the machine is
#: shared and one round in a few pays for fresh memory or a busy core
KERNEL_ROUNDS = 9
BATCH_ROWS = 65_536
GOAL = 1_000

#: collection_tier's outputs, in the order the durable_rules actions record them
OUTPUTS = ("tier", "channel", "legal_review", "calls_per_day", "priority")
NOT_HANDLED = ("NONE", "NONE", False, 0, 0.0)            # the YAML outputs' defaults


# --------------------------------------------------------------------- the accounts
def seeded_pd(book: pa.Table, seed: int) -> pa.Array:
    """A plausible probability of serious delinquency per account (a seeded stand-in for
    pd_model, whose output early_warning reads)."""
    col = lambda name: book.column(name).to_numpy(zero_copy_only=False).astype(float)  # noqa: E731
    bureau = np.nan_to_num(col("bureau_score"), nan=620.0)
    logit = (-3.2 + 0.035 * col("dpd") + 0.5 * col("delinquencies_24m") + 1.2 * (col("debt_to_income") - 0.6)
             - (bureau - 650) / 60 + np.random.default_rng(seed).normal(0, 0.5, book.num_rows))
    return pa.array(1 / (1 + np.exp(-logit)))


def with_upstream(book: pa.Table, compiled: dict) -> pa.Table:
    """The book plus the upstream decision columns collection_tier reads."""
    table = book.append_column("pd_model.probability", seeded_pd(book, seed=5))
    for name in UPSTREAM:
        out = compiled[name].evaluate(table, as_of=AS_OF)
        for field, col in zip(out.schema, out.columns):
            if field.name != f"{name}.rule":
                table = table.append_column(field.name, col)
    return table


@pytest.fixture(scope="module")
def compiled():
    return {name: kernel.compile_ruleset(RULESETS / f"{name}.yaml") for name in UPSTREAM + ("collection_tier",)}


# --------------------------------------------------------------------- the peer
def events(table: pa.Table) -> list[dict]:
    """One event per account, with a unique id and the inputs collection_tier reads."""
    names = {"dpd": "dpd", "dpd_bucket.bucket": "bucket", "overdue_amount": "amount",
             "risk_segment.segment": "segment", "risk_segment.hardship": "hardship",
             "risk_segment.high_risk": "high_risk", "early_warning.level": "level",
             "promises_broken_30d": "broken_30d", "country": "country"}
    cols = {}
    for src, dst in names.items():
        arr = table.column(src)
        if pa.types.is_dictionary(arr.type):
            arr = arr.cast(arr.type.value_type)
        cols[dst] = arr.to_pylist()
    return [{"id": i, **{k: cols[k][i] for k in cols}} for i in range(table.num_rows)]


_ruleset_names = itertools.count()


def durable_collection_tier(results: dict) -> str:
    """Register collection_tier in durable_rules' DSL under a fresh name (a name can be
    registered only once per host); actions write each account's outputs into ``results``."""
    from durable.lang import m, pri, ruleset, when_all

    name = f"collection_tier_{next(_ruleset_names)}"
    severe = (m.bucket != "M0") & (m.bucket != "M1")
    warned = (m.level == "ALERT") | (m.level == "CRITICAL")
    at_risk = warned | (m.broken_30d >= 1) | (m.segment == "SUBPRIME") | (m.segment == "DEEP_SUBPRIME")
    mild = (m.bucket == "M1") & (m.dpd <= 10)
    medium = (m.bucket == "M1") & (m.dpd >= 11)

    def act(tier, channel, legal, calls, base, full_at):
        """``full_at``: the overdue amount at which the amount's share of priority stops, in
        yuan; a US account's is in dollars, as the YAML's (``us_full_at``)."""
        us_full_at = {100000: 15000, 50000: 7500}[full_at]

        def action(c):
            amount, us = c.m.amount, c.m.country == "US"
            per_day = calls(amount, us) if callable(calls) else calls
            results[c.m.id] = (tier, channel, legal, per_day,
                               base + 0.4 * min(amount / (us_full_at if us else full_at), 1))
        return action

    with ruleset(name):
        # salience = the YAML's file order (hit: first)
        when_all(pri(1), severe & (m.high_risk == True))(  # noqa: E712 (durable_rules' DSL)
            act("SEVERE", "FIELD_VISIT", True, 2, 3.5, 100000))
        when_all(pri(2), severe & (m.hardship == True))(  # noqa: E712
            act("SEVERE", "FIELD_VISIT", True, 1, 3.0, 100000))
        when_all(pri(3), severe)(act("SEVERE", "FIELD_VISIT", True, 2, 3.0, 100000))
        when_all(pri(4), mild & warned)(act("MILD", "SMS_VOICE", False, 1, 1.3, 50000))
        when_all(pri(5), mild)(act("MILD", "SMS_VOICE", False, 1, 1.0, 50000))
        when_all(pri(6), medium & (m.hardship == True))(  # noqa: E712
            act("MEDIUM", "PHONE", False, 1, 2.0, 50000))
        when_all(pri(7), medium & at_risk)(
            act("MEDIUM", "PHONE", False, lambda amount, us: 3 if amount >= (1500 if us else 10000) else 2, 2.3, 50000))
        when_all(pri(8), medium)(
            act("MEDIUM", "PHONE", False, lambda amount, us: 2 if amount >= (1500 if us else 10000) else 1, 2.0, 50000))
    return name


def run_durable(evts: list[dict]) -> tuple[dict, float]:
    """Post every event to a freshly registered ruleset; returns (outputs by id, seconds)."""
    from durable.engine import MessageNotHandledException
    from durable.lang import get_host

    results: dict = {}
    name = durable_collection_tier(results)
    host = get_host()
    post = host.post
    start = time.perf_counter()
    for event in evts:
        try:
            post(name, event)
        except MessageNotHandledException:
            results[event["id"]] = NOT_HANDLED
    return results, time.perf_counter() - start


# --------------------------------------------------------------------- the benchmark
def _smoke(config) -> bool:
    """True under --benchmark-disable (pytest-benchmark's own rule): small sizes, one round."""
    return bool(config.getoption("benchmark_disable") and not config.getoption("benchmark_enable"))


@pytest.fixture(scope="module")
def durable_rate(request, compiled) -> tuple[float, int]:
    """durable_rules' rows/s on the sample, once the translation is shown faithful on it."""
    n_durable = SMOKE_DURABLE_ROWS if _smoke(request.config) else DURABLE_ROWS
    sample = with_upstream(generate(n_durable, seed=21, as_of=AS_OF), compiled)
    evts = events(sample)

    ours = compiled["collection_tier"].evaluate(sample, as_of=AS_OF)
    expected = list(zip(*(_column(ours, f"collection_tier.{o}") for o in OUTPUTS)))
    theirs, _ = run_durable(evts)
    assert len(theirs) == len(evts)
    mismatches = [(i, expected[i], theirs[i]) for i in range(len(evts))
                  if expected[i][:4] != theirs[i][:4] or abs(expected[i][4] - theirs[i][4]) > 1e-9]
    assert not mismatches, f"{len(mismatches)} accounts differ, e.g. (row, kernel, durable_rules): {mismatches[:3]}"
    tiers = {t for t, *_ in expected}
    assert tiers == {"NONE", "MILD", "MEDIUM", "SEVERE"}, f"the sample must exercise every tier, got {tiers}"

    rounds = 1 if _smoke(request.config) else ROUNDS
    return n_durable / statistics.median(run_durable(evts)[1] for _ in range(rounds)), n_durable


def test_collection_tier_against_durable_rules(benchmark, compiled, durable_rate):
    """The same ruleset in both engines."""
    smoke = benchmark.disabled
    n_kernel = SMOKE_KERNEL_ROWS if smoke else KERNEL_ROWS
    rounds = 1 if smoke else KERNEL_ROUNDS
    tier = compiled["collection_tier"]
    # one contiguous table (a book in memory) and the same rows in batches of 65,536 (the
    # generator's chunk, a typical Parquet row group: `postloan decide` streams batches)
    big = with_upstream(generate(n_kernel, seed=22, as_of=AS_OF), compiled).combine_chunks()
    batched = pa.Table.from_batches(big.to_batches(max_chunksize=BATCH_ROWS))
    tier.evaluate(big.slice(0, 1000), as_of=AS_OF)               # compiled and warm before timing
    benchmark.pedantic(tier.evaluate, args=(big,), kwargs={"as_of": AS_OF}, rounds=rounds, iterations=1)
    kernel_s = benchmark.stats.stats.median if benchmark.stats else _median_seconds(tier.evaluate, big, rounds)
    batched_s = _median_seconds(tier.evaluate, batched, rounds)
    _report(benchmark, "collection_tier", durable_rate, n_kernel, kernel_s, batched_s)
    # the fixed cost of one batch: a one-row batch through the compiled kernel (schema check,
    # addresses, outputs, Arrow arrays), and the extra time the 65,536-row batches took per batch
    one = big.slice(0, 1).to_batches()[0]
    compiled = tier.kernel()
    fixed_us = _median_seconds(lambda b, as_of: compiled.run_batch(b, as_of), one, 200 if not smoke else 20) * 1e6
    per_batch_us = (batched_s - kernel_s) / len(batched.to_batches()) * 1e6
    benchmark.extra_info.update({"one_row_batch_us": round(fixed_us, 1), "extra_per_batch_us": round(per_batch_us, 1)})
    print(f"per batch: a one-row batch costs {fixed_us:,.0f} µs; the {BATCH_ROWS:,}-row batches took "
          f"{per_batch_us:,.0f} µs more per batch than one table")


def test_shipped_bundle_against_durable_rules(benchmark, durable_rate):
    """The whole shipped bundle — every ruleset and both models, one fused kernel — against
    durable_rules running collection_tier alone."""
    smoke = benchmark.disabled
    n_kernel = SMOKE_KERNEL_ROWS if smoke else KERNEL_ROWS
    rounds = 1 if smoke else ROUNDS
    bundle = kernel.Kernel.load()
    book = generate(n_kernel, seed=22, as_of=AS_OF)
    big = book.combine_chunks()
    bundle.decide(big.slice(0, 1000), as_of=AS_OF)
    benchmark.pedantic(bundle.decide, args=(big,), kwargs={"as_of": AS_OF}, rounds=rounds, iterations=1)
    kernel_s = benchmark.stats.stats.median if benchmark.stats else _median_seconds(bundle.decide, big, rounds)
    batched_s = _median_seconds(bundle.decide, book, rounds)           # the generator's 65,536-row batches
    _report(benchmark, "shipped bundle", durable_rate, n_kernel, kernel_s, batched_s, same_work=False)


def _median_seconds(decide, table: pa.Table, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        decide(table, as_of=AS_OF)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _report(benchmark, what: str, durable_rate: tuple[float, int], n_kernel: int, kernel_s: float,
            batched_s: float, same_work: bool = True) -> None:
    peer_rate, n_durable = durable_rate
    kernel_rate, batched_rate = n_kernel / kernel_s, n_kernel / batched_s
    ratio, batched_ratio = kernel_rate / peer_rate, batched_rate / peer_rate
    benchmark.extra_info.update({
        "durable_rules_rows": n_durable, "durable_rules_rows_per_s": round(peer_rate),
        "compiled_rows": n_kernel, "compiled_rows_per_s": round(kernel_rate), "ratio": round(ratio, 1),
        "compiled_batched_rows_per_s": round(batched_rate), "batched_ratio": round(batched_ratio, 1),
        "batch_rows": BATCH_ROWS, **({"goal_ratio": GOAL} if same_work else {}),
    })
    print(f"\n{what}: durable_rules (collection_tier) {peer_rate:,.0f} rows/s ({n_durable:,} events); "
          f"compiled {kernel_rate:,.0f} rows/s ({n_kernel:,} rows, one table), ratio {ratio:,.0f}×; "
          f"in batches of {BATCH_ROWS:,}: {batched_rate:,.0f} rows/s, ratio {batched_ratio:,.0f}×"
          + (f" (goal ≥ {GOAL:,}×: {'met' if min(ratio, batched_ratio) >= GOAL else 'NOT met'})" if same_work else
             " (not the same work: the bundle runs 9 rulesets and 2 models, durable_rules one ruleset)"))


def _column(table: pa.Table, name: str) -> list:
    arr = table.column(name)
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    return arr.to_pylist()
