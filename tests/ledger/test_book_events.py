"""The whole book's events kept in memory (kernel.ledger.book): day after day, the state read
incrementally equals the state read afresh, every column, on both stores — with events that
arrive late (older than ones already read, some older than the look-back), events stamped
after the moment asked, payments before the look-back, sticky kinds, and reservations made
and reported between the reads."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from kernel.ledger import Ledger
from kernel.schema import ENUMS

UTC = dt.timezone.utc
DAY = dt.timedelta(days=1)
T0 = dt.datetime(2026, 11, 20, 2, tzinfo=UTC)
ACCOUNTS = [f"B{i:03d}" for i in range(40)]
ZONES = {a: z for a, z in zip(ACCOUNTS, ["Asia/Shanghai", "America/New_York", "UTC", "America/Los_Angeles"] * 10)}
TS = pa.timestamp("us", tz="UTC")
KINDS = ["CONTACT_ATTEMPT"] * 6 + ["PAYMENT"] * 3 + ["PROMISE_TO_PAY"] * 2 + [
    "DISPUTE_OPENED", "DISPUTE_RESOLVED", "COMPLAINT_OPENED", "CONSENT_REVOKED", "INSURANCE_RENEWED", "REPOSSESSED",
    "VEHICLE_SOLD", "HARDSHIP_DECLARED"]
CHANNELS = ["PHONE", "SMS", "VOICE_BOT", "FIELD_VISIT"]
OUTCOMES = ["RIGHT_PARTY", "NO_ANSWER", "WRONG_PARTY", "DELIVERED"]


def day_events(rng: np.random.Generator, day: int, now: dt.datetime, n: int) -> pa.Table:
    """``n`` events ingested at ``now``: most of the last days, some late (up to 200 days back,
    beyond the 183-day look-back) and some stamped up to two hours after the moment asked."""
    rows = []
    for k in range(n):
        kind = KINDS[rng.integers(len(KINDS))]
        where = rng.random()
        if where < 0.55:
            at = now - dt.timedelta(hours=float(rng.uniform(2, 72)))
        elif where < 0.85:
            at = now - dt.timedelta(days=float(rng.uniform(3, 200)))     # late; before the look-back too
        else:
            at = now - dt.timedelta(minutes=float(rng.uniform(0, 115)))  # after the moment asked (now − 2 h)
        at = at.replace(microsecond=0)
        row = {"event_id": f"d{day}-{k}", "account_id": ACCOUNTS[rng.integers(len(ACCOUNTS))], "kind": kind, "at": at}
        if kind in ("PAYMENT", "VEHICLE_SOLD"):
            row["amount"] = float(rng.integers(1, 40) * 50)
        elif kind == "PROMISE_TO_PAY":
            row["amount"] = float(rng.integers(1, 20) * 100)
            row["promise_date"] = at.date() + dt.timedelta(days=int(rng.integers(0, 20)))
        elif kind == "CONTACT_ATTEMPT":
            row["channel"] = CHANNELS[rng.integers(len(CHANNELS))]
            row["outcome"] = "DELIVERED" if row["channel"] == "SMS" else OUTCOMES[rng.integers(3)]
        elif kind == "CONSENT_REVOKED":
            row["channel"] = "VOICE_BOT"
        elif kind == "INSURANCE_RENEWED":
            row["expiry_date"] = at.date() + dt.timedelta(days=int(rng.integers(30, 400)))
        rows.append(row)
    return table(rows)


def table(rows: list[dict]) -> pa.Table:
    names = ("event_id", "account_id", "kind", "at", "amount", "promise_date", "channel", "outcome", "expiry_date",
             "reservation_id")
    types = {"at": TS, "amount": pa.float64(), "promise_date": pa.date32(), "expiry_date": pa.date32()}
    return pa.table({n: pa.array([r.get(n) for r in rows], types.get(n, pa.string())) for n in names})


def us(t: dt.datetime) -> int:
    return int(t.timestamp()) * 1_000_000


def assert_same_state(got: dict, want: dict, when) -> None:
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=f"{name} on {when}")


def rows_of(events) -> list[tuple]:
    cols = [events.account_id, events.kind, events.at, events.amount, events.promise_date, events.channel,
            events.outcome, events.expiry_date]
    rows = zip(*(c.tolist() for c in cols))
    return sorted((tuple(None if v != v else v for v in r) for r in rows), key=repr)     # (NaN: None)


def test_the_incremental_state_equals_a_fresh_read_day_after_day(ledger_url):
    rng = np.random.default_rng(7)
    accounts = list(ACCOUNTS)
    zones = [ZONES[a] for a in accounts]
    with Ledger(ledger_url) as fresh, Ledger(ledger_url) as kept:
        kept.keep_events()
        fresh.ingest(day_events(rng, -1, T0 - DAY, 600), now=T0 - DAY)
        reserved = 0
        for day in range(6):
            now = T0 + day * DAY
            fresh.ingest(day_events(rng, day, now, 150), now=now)
            # a reservation made (an unreported attempt), and yesterday's reported by an event
            with fresh.store.transaction() as cur:
                fresh.store.add_reservation(cur, f"r{day}", accounts[day], ENUMS["contact_channel"].index("PHONE"),
                                            us(now - dt.timedelta(hours=3)), us(now), us(now))
            if day:
                fresh.ingest(table([{"event_id": f"rep{day}", "account_id": accounts[day - 1], "kind": "CONTACT_ATTEMPT",
                                     "at": now - dt.timedelta(hours=3, days=1), "channel": "PHONE",
                                     "outcome": "NO_ANSWER", "reservation_id": f"r{day - 1}"}]), now=now)
                reserved += 1
            at = now - dt.timedelta(hours=2)           # events up to two hours later are in the store already
            want = fresh.state_columns(accounts, zones, at)
            got = kept.state_columns(accounts, zones, at)
            assert_same_state(got, want, at)
            since = us(at) - kept.settings.lookback_us
            assert rows_of(kept.book.read(us(at), since)) == rows_of(fresh.store.read_events(None, us(at), since))
            some = accounts[day % 3::3] + ["NO-EVENTS"]
            assert rows_of(kept.book.read(us(at), since, some)) == rows_of(fresh.store.read_events(some, us(at), since))
        assert kept.book.loads == 1                    # one full read, then only what was appended
        assert kept.book.appended > 6 * 150 * 0.5
        assert reserved == 5
        # the state of some accounts only: the same
        some = accounts[::3]
        assert_same_state(kept.state_columns(some, zones[::3], at), fresh.state_columns(some, zones[::3], at), at)
        # asking further back than the look-back kept reads everything afresh, and is still right
        back = at - 10 * DAY
        assert_same_state(kept.state_columns(accounts, zones, back), fresh.state_columns(accounts, zones, back), back)
        assert kept.book.loads == 2


def test_a_late_payment_before_the_look_back_becomes_the_last_payment(ledger_url):
    at = T0 + 3 * DAY
    with Ledger(ledger_url) as fresh, Ledger(ledger_url) as kept:
        kept.keep_events()
        fresh.ingest(table([{"event_id": "p1", "account_id": "A", "kind": "PAYMENT", "at": at - 300 * DAY,
                             "amount": 10.0}]), now=at)
        first = kept.state_columns(["A"], ["UTC"], at)
        assert first["last_payment_amount"][0] == 10.0
        # a payment made before the look-back, reported late: later than the one kept
        fresh.ingest(table([{"event_id": "p2", "account_id": "A", "kind": "PAYMENT", "at": at - 200 * DAY,
                             "amount": 20.0},
                            {"event_id": "p0", "account_id": "A", "kind": "PAYMENT", "at": at - 400 * DAY,
                             "amount": 5.0}]), now=at)
        for when in (at, at + 2 * DAY):
            want = fresh.state_columns(["A"], ["UTC"], when)
            got = kept.state_columns(["A"], ["UTC"], when)
            assert_same_state(got, want, when)
            assert got["last_payment_amount"][0] == 20.0
        assert kept.book.loads == 1


def test_a_ledger_restored_under_the_reader_is_read_afresh(ledger_url, make_ledger_url, tmp_path):
    at = T0
    rows = [{"event_id": f"e{i}", "account_id": "A", "kind": "PAYMENT", "at": at - i * DAY, "amount": float(i + 1)}
            for i in range(5)]
    with Ledger(ledger_url) as ledger:
        ledger.ingest(table(rows[:2]), now=at)
        ledger.backup(tmp_path / "two.bak")
        ledger.ingest(table(rows[2:]), now=at)
        ledger.keep_events()
        assert ledger.state_columns(["A"], ["UTC"], at)["ledger_events"][0] == 5
        ledger.restore(tmp_path / "two.bak")
        assert ledger.state_columns(["A"], ["UTC"], at)["ledger_events"][0] == 2
        assert ledger.book.loads == 2                  # the restore forgot what was kept: read again


def test_a_store_rewritten_by_another_process_is_read_afresh(ledger_url, make_ledger_url):
    """Fewer events than counted (another ledger restored over this one): read again."""
    at = T0
    with Ledger(ledger_url) as ledger, Ledger(ledger_url) as other:
        ledger.ingest(table([{"event_id": f"e{i}", "account_id": "A", "kind": "PAYMENT", "at": at - i * DAY,
                              "amount": 1.0} for i in range(4)]), now=at)
        ledger.keep_events()
        assert ledger.state_columns(["A"], ["UTC"], at)["ledger_events"][0] == 4
        with other.store.transaction() as cur:          # (what a restore elsewhere amounts to)
            cur.execute("DELETE FROM events WHERE event_id IN ('e1', 'e2')")
        assert ledger.state_columns(["A"], ["UTC"], at + DAY)["ledger_events"][0] == 2
        assert ledger.book.loads == 2
