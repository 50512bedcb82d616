"""Temporal patterns: the compiled matcher against durable_rules, on the same events, in one run.

The design card named durable_rules for temporal patterns; kernel/ledger/durable_peer.py
translates the specs of kernel/ledger/patterns.py into its DSL (docs/ledger.md, "Temporal
patterns"). This benchmark measures, in one run:

* **the live-session limit**: durable_rules keeps an account's partial matches in a session;
  the peer fills one ruleset with sessions until it refuses one (1,024, ``MemoryError``);
* **events/s, same events**: a seeded history of POSTLOAN_BENCH_PATTERN_ACCOUNTS accounts
  (default 1,000: what one ruleset can hold live) — promises, payments, calls, tamper alerts,
  geofence exits and offline periods — through durable_rules (every session kept live, facts
  newest first, only ``assert_fact`` timed, in a child process: durable_rules 2.0.28 crashes
  in ways the peer's docstring lists) and through the compiled matcher (the pattern step of
  ``derive``: the offline periods as pseudo-events, then the matcher over the sorted events).
  Both must give every account the same alerts before anything is timed; the ratio is of the
  per-event rates;
* **arrival order**: the same accounts through durable_rules with the facts oldest first, as
  a live stream would deliver them: how many accounts it gets wrong (none() is checked only
  when a partial match forms);
* **scale**: the compiled matcher on POSTLOAN_BENCH_PATTERN_SCALE accounts (default 1,000,000)
  — no durable_rules figure exists there (1,024 live accounts per ruleset).

    pytest bench/bench_patterns.py --benchmark-enable -s
    pytest bench/bench_patterns.py --benchmark-disable           # smoke: 200 accounts
"""
from __future__ import annotations

import datetime as dt
import os
import statistics
import time

import numpy as np
import pyarrow as pa
import pytest

from kernel.hookspecs import NULL_TIME
from kernel.ledger import patterns as P
from kernel.ledger.durable_peer import DurablePatterns, DurableProcess, fact, unavailable
from kernel.ledger.state import StateSettings, _program
from kernel.schema import ENUMS

DAY = 86_400_000_000
HOUR = 3_600_000_000
AT = int(dt.datetime(2026, 11, 28, 2, tzinfo=dt.timezone.utc).timestamp()) * 1_000_000
ACCOUNTS = int(os.environ.get("POSTLOAN_BENCH_PATTERN_ACCOUNTS", 1_000))
SCALE = int(os.environ.get("POSTLOAN_BENCH_PATTERN_SCALE", 1_000_000))
SMOKE_ACCOUNTS, SMOKE_SCALE = 200, 20_000
ROUNDS = 3
KIND = {name: code for code, name in enumerate(ENUMS["event_kind"])}
CHANNELS, OUTCOMES = ENUMS["contact_channel"], ENUMS["contact_outcome"]
#: the kinds the patterns read, and how often each occurs
MIX = (("CONTACT_ATTEMPT", 0.40), ("PAYMENT", 0.20), ("PROMISE_TO_PAY", 0.12), ("GEOFENCE_EXIT", 0.20),
       ("GPS_TAMPER", 0.08))


def _smoke(benchmark) -> bool:
    return getattr(benchmark, "disabled", False)


# --------------------------------------------------------------------- the histories
class History:
    """Seeded event columns of ``n`` accounts, sorted by (account, instant) as ``derive``
    sorts them, and the cars' reduced GPS state and offline periods."""

    def __init__(self, n: int, seed: int):
        rng = np.random.default_rng(seed)
        self.n = n
        self.accounts = np.array([f"P{a:07d}" for a in range(n)], dtype=object)
        per = rng.poisson(12, n)
        which = np.repeat(np.arange(n), per)
        m = which.shape[0]
        kinds = np.array([KIND[k] for k, _ in MIX], np.int8)
        kind = kinds[rng.choice(len(MIX), m, p=[p for _, p in MIX])]
        at = AT - rng.integers(0, 60 * 24 * 60, m) * 60_000_000           # a minute grid over 60 days
        order = np.lexsort((at, which))
        self.which, self.kind, self.at = which[order], kind[order], at[order]
        k = self.kind
        self.amount = np.where(k == KIND["PAYMENT"], rng.integers(1, 21, m) * 100.0,
                               np.where(k == KIND["PROMISE_TO_PAY"], rng.integers(5, 31, m) * 100.0, np.nan))
        contact = k == KIND["CONTACT_ATTEMPT"]
        self.channel = np.where(contact, CHANNELS.index("PHONE"), -1).astype(np.int8)
        self.outcome = np.where(contact, np.where(rng.random(m) < 0.3, OUTCOMES.index("RIGHT_PARTY"),
                                                  OUTCOMES.index("NO_ANSWER")), -1).astype(np.int8)
        self.starts = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(self.which, minlength=n), out=self.starts[1:])
        # cars: the last ping 0–3 days ago, and offline periods of 30 minutes to 60 hours
        self.last_ping = AT - rng.integers(0, 3 * DAY, n)
        gaps = rng.poisson(3, n)
        g_which = np.repeat(np.arange(n), gaps)
        g_from = AT - rng.integers(3 * DAY, 45 * DAY, g_which.shape[0])
        self.gaps = (self.accounts[g_which], g_from, g_from + rng.integers(HOUR // 2, 60 * HOUR, g_which.shape[0]))
        self.gps = (self.accounts, self.last_ping - 50 * DAY, self.last_ping, np.full(n, NULL_TIME))
        self.ids = pa.array(self.accounts, pa.string())
        self.moment = np.full(n, AT, np.int64)

    @property
    def events(self) -> int:
        return int(self.kind.shape[0])

    def alerts(self, settings: StateSettings) -> dict[str, np.ndarray]:
        """The pattern step of ``derive``: offline periods to pseudo-events, then the matcher."""
        silent = P.offline_events(self.accounts, self.gaps, self.gps, AT, AT - _program(settings).lookback_us, self.ids)
        return P.alerts(_program(settings), self.starts, self.kind, self.at, self.amount, self.channel,
                        self.outcome, self.moment, silent)

    def offline_count(self, settings: StateSettings) -> int:
        since = AT - _program(settings).lookback_us
        return int(P.offline_events(self.accounts, self.gaps, self.gps, AT, since, self.ids)[0].shape[0])

    def facts(self) -> dict[str, list[dict]]:
        """The same events and offline periods (up to the moment) as durable_rules facts."""
        kinds = ENUMS["event_kind"]
        out = {a: [] for a in self.accounts.tolist()}
        for i in range(self.events):
            a = self.accounts[self.which[i]]
            out[a].append(fact(i, kinds[self.kind[i]], int(self.at[i]),
                               None if np.isnan(self.amount[i]) else float(self.amount[i]),
                               CHANNELS[self.channel[i]] if self.channel[i] >= 0 else None,
                               OUTCOMES[self.outcome[i]] if self.outcome[i] >= 0 else None))
        a_of, g_from, g_to = self.gaps
        for j, (a, f, t) in enumerate(zip(a_of.tolist(), g_from.tolist(), g_to.tolist())):
            if f <= AT:
                out[a].append(fact(f"g{j}", "GPS_OFFLINE", f, hours=(min(t, AT) - f) / HOUR))
        for j, (a, last) in enumerate(zip(self.accounts.tolist(), self.last_ping.tolist())):
            if last <= AT:
                out[a].append(fact(f"l{j}", "GPS_OFFLINE", last, hours=(AT - last) / HOUR))
        return out


def _rows(alerts: dict[str, np.ndarray], accounts) -> dict[str, dict]:
    return {a: {c: (None if alerts[c][i] == NULL_TIME else int(alerts[c][i])) if c.endswith("_at")
                else bool(alerts[c][i]) for c in P.ALERT_COLUMNS} for i, a in enumerate(accounts)}


# --------------------------------------------------------------------- the benchmark
@pytest.fixture(scope="module")
def measured(request):
    if unavailable():
        pytest.skip(unavailable())
    """durable_rules' figures on the sample, once its alerts are shown equal to the compiled
    matcher's on every account."""
    smoke = bool(request.config.getoption("benchmark_disable") and not request.config.getoption("benchmark_enable"))
    n = SMOKE_ACCOUNTS if smoke else ACCOUNTS
    rounds = 1 if smoke else ROUNDS
    settings = StateSettings()
    sample = History(n, seed=31)
    facts = sample.facts()
    ours = _rows(sample.alerts(settings), sample.accounts.tolist())
    live = {f"live{r}": {"ledger": {}, "accounts": n} for r in range(rounds)}
    with DurableProcess({**live, "stream": {"ledger": {}, "accounts": n},
                         "limit": {"ledger": {}, "patterns": ["gps_offline_then_exit"]}}) as durable:
        sessions, refused = durable.limit("limit", AT)
        timings = []
        for r in range(rounds):
            theirs, seconds, asserted = durable.run(f"live{r}", facts, AT, keep=n <= 1_024)
            mismatches = [a for a in ours if ours[a] != theirs[a]]
            assert not mismatches, (f"{len(mismatches)} of {n} accounts differ, e.g. {mismatches[0]}: compiled "
                                    f"{ours[mismatches[0]]}, durable_rules {theirs[mismatches[0]]}")
            timings.append(seconds)
        stream, _, _ = durable.run("stream", facts, AT, order="oldest")
    wrong_in_stream = sum(ours[a] != stream[a] for a in ours)
    fired = {c: sum(row[c] for row in ours.values()) for c in P.ALERT_COLUMNS if not c.endswith("_at")}
    assert all(fired.values()), f"the sample must raise every alert, got {fired}"
    events = sum(len(f) for f in facts.values())
    return {"accounts": n, "events": events, "asserted": asserted, "seconds": statistics.median(timings),
            "sessions": sessions, "refused": refused, "wrong_in_stream": wrong_in_stream, "fired": fired,
            "sample": sample, "settings": settings}


def test_patterns_against_durable_rules(benchmark, measured):
    """The same events through both engines: per-event rates and their ratio."""
    sample, settings = measured["sample"], measured["settings"]
    sample.alerts(settings)                                         # compiled and warm
    rounds = 3 if _smoke(benchmark) else 25
    benchmark.pedantic(sample.alerts, args=(settings,), rounds=rounds, iterations=1)
    compiled_s = benchmark.stats.stats.median if benchmark.stats else _median(sample.alerts, settings, rounds)
    events = measured["events"]
    durable_rate = events / measured["seconds"]
    compiled_rate = events / compiled_s
    ratio = compiled_rate / durable_rate
    benchmark.extra_info.update({
        "accounts": measured["accounts"], "events": events, "durable_rules_events_per_s": round(durable_rate),
        "durable_rules_accounts_per_s": round(measured["accounts"] / measured["seconds"]),
        "compiled_events_per_s": round(compiled_rate), "ratio": round(ratio, 1),
        "durable_rules_live_sessions": measured["sessions"], "durable_rules_refused_with": measured["refused"],
        "durable_rules_wrong_in_arrival_order": measured["wrong_in_stream"], "alerts": measured["fired"],
    })
    print(f"\npatterns on {measured['accounts']:,} accounts, {events:,} events (offline periods included; "
          f"alerts raised {measured['fired']}):\n"
          f"  durable_rules {durable_rate:,.0f} events/s ({measured['asserted']:,} facts asserted, the clocks "
          f"included; {measured['accounts'] / measured['seconds']:,.0f} accounts/s), every session live\n"
          f"  compiled      {compiled_rate:,.0f} events/s — ratio {ratio:,.0f}×, the same alerts on every account\n"
          f"  durable_rules holds {measured['sessions']:,} live accounts per ruleset, then {measured['refused']}; "
          f"fed oldest first (a live stream) it got {measured['wrong_in_stream']:,} of {measured['accounts']:,} "
          f"accounts wrong")


def test_patterns_at_scale(benchmark):
    """The compiled matcher where durable_rules has no figure: a million accounts."""
    n = SMOKE_SCALE if _smoke(benchmark) else SCALE
    history = History(n, seed=32)
    settings = StateSettings()
    history.alerts(settings)
    rounds = 1 if _smoke(benchmark) else 3
    benchmark.pedantic(history.alerts, args=(settings,), rounds=rounds, iterations=1)
    seconds = benchmark.stats.stats.median if benchmark.stats else _median(history.alerts, settings, rounds)
    offline = history.offline_count(settings)
    events = history.events + offline
    benchmark.extra_info.update({"accounts": n, "events": events, "events_per_s": round(events / seconds),
                                 "accounts_per_s": round(n / seconds)})
    print(f"\npatterns at scale: {n:,} accounts, {events:,} events ({offline:,} offline periods) in "
          f"{seconds:.2f} s — {events / seconds:,.0f} events/s, {n / seconds:,.0f} accounts/s")


def test_one_account(benchmark):
    """The pattern step for the one account a request asks about (``derive``'s extra cost)."""
    history = History(1, seed=33)
    settings = StateSettings()
    history.alerts(settings)
    calls = 200 if _smoke(benchmark) else 5_000
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        history.alerts(settings)
        times.append(time.perf_counter() - start)
    p50 = statistics.median(times) * 1e6
    benchmark.extra_info.update({"one_account_p50_us": round(p50, 1), "events": history.events})
    benchmark.pedantic(history.alerts, args=(settings,), rounds=1, iterations=1)
    print(f"\none account ({history.events} events): the pattern step p50 {p50:.0f} µs")


def _median(fn, settings, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn(settings)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


assert DurablePatterns.ROTATE <= 1_024
