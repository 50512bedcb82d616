"""One account's state read now (``Ledger.state_values``, the gRPC Decide path) is never stale.

SQLite answers it from a per-thread cache of the account's rows (``SQLiteStore.account_rows_now``),
kept while no commit reached the file and the clock has not moved a row into or out of the
read's window. These tests hold it equal to an uncached read after writes by the same
connection, another connection, another process and a restore, and as the clock crosses every
edge of the window; on PostgreSQL (no cache) they hold the same behaviour.
"""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pytest

from kernel.ledger import Ledger
from kernel.ledger.patterns import lookback_us
from kernel.ledger.state import derive_one
from kernel.ledger.store import SQLiteStore
from kernel.pipeline import Pipeline

UTC = dt.timezone.utc
TS = pa.timestamp("us", tz="UTC")
HOUR = 3_600_000_000
# 10:00 in Shanghai
T0 = dt.datetime(2026, 11, 30, 2, tzinfo=UTC)
T0_US = int(T0.timestamp()) * 1_000_000


def us(t: dt.datetime) -> int:
    return int(t.timestamp() * 1_000_000)


def uncached(ledger: Ledger, account: str, zone: str, at_us: int) -> dict:
    """The state read the long way: the statement run now, no cache."""
    s = ledger.settings
    rows, gps, offline = ledger.store.account_rows(None, account, at_us, at_us - s.lookback_us,
                                                   at_us - lookback_us(s))
    return derive_one(rows, zone, at_us, s, gps, offline, ordered=True)


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]) for k in a)


def events(rows: list[dict]) -> pa.Table:
    names = ("event_id", "account_id", "kind", "at", "channel", "outcome", "amount", "promise_date", "lat", "lon")
    types = {"at": TS, "amount": pa.float64(), "promise_date": pa.date32(), "lat": pa.float64(), "lon": pa.float64()}
    return pa.table({n: pa.array([r.get(n) for r in rows], types.get(n, pa.string())) for n in names})


def register(ledger, account, zone="Asia/Shanghai"):
    ledger.register(pa.table({"account_id": [account], "time_zone": [zone], "country": ["CN"], "region": ["X"],
                              "product": ["NEW_CAR_LOAN"], "phone_valid": [True], "has_third_party_contact": [True],
                              "consent_automated_contact": [True], "contact_opt_out": [False]}))


def test_a_write_by_the_same_ledger_is_seen_at_once(ledger_url):
    with Ledger(ledger_url) as ledger:
        ledger.ingest(events([{"event_id": "p1", "account_id": "A", "kind": "PAYMENT", "at": T0 - dt.timedelta(days=3),
                               "amount": 100.0}]), now=T0)
        for _ in range(3):                      # asked, cached, answered from the cache
            assert ledger.state_values("A", "Asia/Shanghai", T0_US)["open_disputes"] == 0
        ledger.ingest(events([{"event_id": "d1", "account_id": "A", "kind": "DISPUTE_OPENED",
                               "at": T0 - dt.timedelta(hours=1)}]), now=T0)
        assert ledger.state_values("A", "Asia/Shanghai", T0_US)["open_disputes"] == 1


def test_a_write_by_another_connection_is_seen_at_once(ledger_url):
    with Ledger(ledger_url) as reader, Ledger(ledger_url) as writer:
        for round_ in range(3):
            before = reader.state_values("A", "Asia/Shanghai", T0_US)["paid_30d"]
            assert reader.state_values("A", "Asia/Shanghai", T0_US)["paid_30d"] == before
            assert reader.state_values("A", "Asia/Shanghai", T0_US)["paid_30d"] == before     # (a cached read)
            writer.ingest(events([{"event_id": f"p{round_}", "account_id": "A", "kind": "PAYMENT",
                                   "at": T0 - dt.timedelta(days=1), "amount": 10.0}]), now=T0)
            assert reader.state_values("A", "Asia/Shanghai", T0_US)["paid_30d"] == pytest.approx(10.0 * (round_ + 1))


def test_a_write_by_another_process_is_seen_by_the_next_state_read_and_the_next_check_contact(ledger_url):
    """A dispute opened by another process: the next Decide's state has it, and the next
    CheckContact is BLOCKed (hold.dispute) — however warm this process's reads were."""
    judge = Pipeline(None, config={}, audit_path="/dev/null").judge
    with Ledger(ledger_url) as ledger:
        register(ledger, "CN9")
        ledger.ingest(events([{"event_id": "n1", "account_id": "CN9", "kind": "CONTACT_ATTEMPT", "channel": "SMS",
                               "outcome": "DELIVERED", "at": T0 - dt.timedelta(days=2)}]), now=T0)
        for _ in range(3):
            assert ledger.state_values("CN9", "Asia/Shanghai", T0_US)["open_disputes"] == 0
        assert ledger.check_contact("CN9", "SMS", T0, judge, now=T0).outcome == "KEEP"
        script = textwrap.dedent(f"""
            import datetime as dt, pyarrow as pa
            from kernel.ledger import Ledger
            at = dt.datetime.fromisoformat({(T0 - dt.timedelta(minutes=5)).isoformat()!r})
            with Ledger({ledger_url!r}) as other:
                r = other.ingest(pa.table({{"event_id": ["c1"], "account_id": ["CN9"], "kind": ["DISPUTE_OPENED"],
                                            "at": pa.array([at], pa.timestamp("us", tz="UTC"))}}), now=at)
                print(r.accepted)
            """)
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
        assert done.stdout.strip() == "1", done.stderr
        assert ledger.state_values("CN9", "Asia/Shanghai", T0_US)["open_disputes"] == 1
        later = T0 + dt.timedelta(minutes=1)
        verdict = ledger.check_contact("CN9", "SMS", later, judge, now=later)
        assert (verdict.outcome, verdict.reason_code) == ("BLOCK", "HOLD_DISPUTE_OPEN"), verdict


def test_a_restore_is_seen_at_once(ledger_url, make_ledger_url, tmp_path):
    with Ledger(ledger_url) as ledger:
        ledger.ingest(events([{"event_id": "p1", "account_id": "A", "kind": "PAYMENT", "at": T0 - dt.timedelta(days=1),
                               "amount": 100.0}]), now=T0)
        backup = tmp_path / "ledger.backup"
        ledger.backup(backup)
        ledger.ingest(events([{"event_id": "d1", "account_id": "A", "kind": "DISPUTE_OPENED",
                               "at": T0 - dt.timedelta(hours=1)}]), now=T0)
        for _ in range(3):
            assert ledger.state_values("A", "Asia/Shanghai", T0_US)["open_disputes"] == 1
        ledger.restore(backup)
        assert ledger.state_values("A", "Asia/Shanghai", T0_US)["open_disputes"] == 0


def test_as_the_clock_moves_rows_enter_and_leave_the_window_exactly_as_an_uncached_read_says(ledger_url):
    """No write between the reads: only the clock moves. Events stored ahead of the clock
    (allowed: the clock skew; reservations up to 7 days ahead), events and reservations
    leaving the look-back, offline periods ceasing to be recent or to hold the moment — each
    read at the instant before, at and after its edge, cached and uncached alike."""
    rng = np.random.default_rng(7)
    zone = "Asia/Shanghai"
    judge = Pipeline(None, config={}, audit_path="/dev/null").judge
    with Ledger(ledger_url) as ledger:
        s = ledger.settings
        look, pattern_look = s.lookback_us, lookback_us(s)
        register(ledger, "A", zone)
        rows = []
        for i in range(60):
            ago = int(rng.integers(0, look + 3 * 86_400_000_000))
            kind = ["PAYMENT", "CONTACT_ATTEMPT", "PROMISE_TO_PAY", "GEOFENCE_EXIT", "DISPUTE_OPENED"][i % 5]
            row = {"event_id": f"e{i}", "account_id": "A", "kind": kind, "at": dt.datetime.fromtimestamp(
                (T0_US - ago) / 1e6, UTC)}
            if kind == "PAYMENT":
                row["amount"] = float(rng.integers(1, 50) * 10)
            elif kind == "CONTACT_ATTEMPT":
                row.update(channel="PHONE", outcome=["NO_ANSWER", "RIGHT_PARTY"][i % 2])
            elif kind == "PROMISE_TO_PAY":
                row.update(amount=300.0, promise_date=(T0 - dt.timedelta(microseconds=ago) + dt.timedelta(days=5)).date())
            rows.append(row)
        # ahead of the clock, by the allowed skew
        rows.append({"event_id": "ahead", "account_id": "A", "kind": "PAYMENT", "at": T0 + dt.timedelta(seconds=200),
                     "amount": 5.0})
        ledger.ingest(events(rows), now=T0)
        # GPS pings with offline periods: one that began long ago and lasted, one recent
        pings = [T0 - dt.timedelta(days=40), T0 - dt.timedelta(days=10), T0 - dt.timedelta(days=10, minutes=-10),
                 T0 - dt.timedelta(hours=5), T0 - dt.timedelta(hours=1)]
        ledger.ingest(events([{"event_id": f"g{i}", "account_id": "A", "kind": "GPS_PING", "at": t, "lat": 30.0,
                               "lon": 120.0} for i, t in enumerate(pings)]), now=T0)
        # a reservation made for a moment ahead, never reported
        ahead = T0 + dt.timedelta(hours=2)
        ledger.check_contact("A", "SMS", ahead, judge, now=T0)
        stored = ledger.store.dump_tables()
        edges = {T0_US + 1}
        for r in stored["events"] + [(None, None, None, r[3]) for r in stored["reservations"]]:
            at = r[3]
            edges |= {at, at + look, at + pattern_look}
        for _, start, end in stored["gps_gaps"]:
            edges |= {start, end, start + pattern_look}
        for _, first, last, *_ in stored["gps_last"]:
            edges |= {first, last, last + int(s.gps_offline_after_hours * HOUR)}
        moments = sorted(t + d for t in edges for d in (-1, 0, 1) if T0_US <= t + d <= T0_US + look + 86_400_000_000)
        assert len(moments) > 100
        checked = 0
        for at in moments:
            cached = ledger.state_values("A", zone, at)
            again = ledger.state_values("A", zone, at)                 # a hit, surely
            truth = uncached(ledger, "A", zone, at)
            assert same(cached, truth), (at, {k: (cached[k], truth[k]) for k in truth if cached[k] != truth[k]})
            assert same(again, truth)
            # and the rows themselves: exactly what the statement reads now
            window = (at, at - look, at - pattern_look)
            assert ledger.store.account_rows_now("A", *window) == ledger.store.account_rows(None, "A", *window), at
            if isinstance(ledger.store, SQLiteStore):     # a hit hands back the very list (its fold inputs are kept)
                assert ledger.store.account_rows_now("A", *window)[0] is ledger.store.account_rows_now("A", *window)[0]
            checked += 1
        assert checked == len(moments)


def test_a_moment_earlier_than_the_cached_read_is_read_again(ledger_url):
    with Ledger(ledger_url) as ledger:
        ledger.ingest(events([{"event_id": "p1", "account_id": "A", "kind": "PAYMENT", "at": T0,
                               "amount": 100.0}]), now=T0)
        for _ in range(3):
            assert ledger.state_values("A", "UTC", T0_US)["paid_30d"] == 100.0
        assert ledger.state_values("A", "UTC", T0_US - 1)["paid_30d"] == 0.0
        assert ledger.state_values("A", "UTC", T0_US)["paid_30d"] == 100.0


def test_reads_from_many_threads_while_another_connection_writes_are_never_stale(ledger_url):
    """Threads read one account over and over while another ledger adds payments: a read
    that starts after a write returned always counts it."""
    import threading
    with Ledger(ledger_url) as reader, Ledger(ledger_url) as writer:
        written = [0]
        errors = []

        def read():
            for _ in range(200):
                floor = written[0]
                paid = reader.state_values("A", "UTC", T0_US)["paid_30d"]
                paid = 0 if paid != paid else paid
                if paid < floor * 10.0:
                    errors.append((floor, paid))

        threads = [threading.Thread(target=read) for _ in range(3)]
        for t in threads:
            t.start()
        for i in range(20):
            writer.ingest(events([{"event_id": f"p{i}", "account_id": "A", "kind": "PAYMENT",
                                   "at": T0 - dt.timedelta(hours=i + 1), "amount": 10.0}]), now=T0)
            written[0] = i + 1
        for t in threads:
            t.join()
        assert not errors, errors[:3]
        assert reader.state_values("A", "UTC", T0_US)["paid_30d"] == 200.0


def test_the_second_question_fills_the_cache_and_the_third_is_answered_from_it(ledger_url):
    """(SQLite) the same rows object comes back while nothing changed — the cache is used —
    and a new one after a write; PostgreSQL reads every time."""
    with Ledger(ledger_url) as ledger:
        ledger.ingest(events([{"event_id": "p1", "account_id": "A", "kind": "PAYMENT", "at": T0 - dt.timedelta(days=1),
                               "amount": 100.0}]), now=T0)
        s = ledger.settings
        window = (T0_US, T0_US - s.lookback_us, T0_US - lookback_us(s))
        reads = [ledger.store.account_rows_now("A", *window)[0] for _ in range(4)]
        assert all(r == reads[0] for r in reads)
        cached = ledger_url.startswith("sqlite")
        assert (reads[2] is reads[1] and reads[3] is reads[1]) == cached
        assert reads[1] is not reads[0]
        ledger.ingest(events([{"event_id": "p2", "account_id": "B", "kind": "PAYMENT", "at": T0 - dt.timedelta(days=1),
                               "amount": 1.0}]), now=T0)
        after = ledger.store.account_rows_now("A", *window)[0]
        assert after == reads[0] and after is not reads[1]           # another account's write: read again
