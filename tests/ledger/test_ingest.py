"""Ingest: idempotent by event_id, row-by-row rejection, durable counts."""
from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from kernel.ledger import KINDS, EventsError, Ledger

UTC = dt.timezone.utc
T = dt.datetime(2026, 11, 28, 2, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")


def events(rows: list[dict]) -> pa.Table:
    names = sorted({k for r in rows for k in r})
    types = {"at": TS, "promise_date": pa.date32(), "expiry_date": pa.date32(), "amount": pa.float64(),
             "lat": pa.float64(), "lon": pa.float64()}
    return pa.table({n: pa.array([r.get(n) for r in rows], types.get(n, pa.string())) for n in names})


def test_replayed_file_changes_nothing(ledger_url):
    table = events([
        {"event_id": "e1", "account_id": "A", "kind": "PAYMENT", "at": T - dt.timedelta(days=1), "amount": 100.0},
        {"event_id": "e2", "account_id": "A", "kind": "CONTACT_ATTEMPT", "at": T - dt.timedelta(hours=2),
         "channel": "PHONE", "outcome": "NO_ANSWER"},
    ])
    with Ledger(ledger_url) as ledger:
        first = ledger.ingest(table, now=T)
        assert (first.accepted, first.duplicate, first.rejected) == (2, 0, [])
        before = ledger.store.dump_tables()
        again = ledger.ingest(table, now=T + dt.timedelta(hours=1))
        assert (again.accepted, again.duplicate, again.rejected) == (0, 2, [])
        assert ledger.store.dump_tables() == before


def test_same_id_other_content_is_rejected_and_stored_event_stays(ledger_url):
    one = {"event_id": "e1", "account_id": "A", "kind": "PAYMENT", "at": T - dt.timedelta(days=1), "amount": 100.0}
    with Ledger(ledger_url) as ledger:
        ledger.ingest(events([one]), now=T)
        result = ledger.ingest(events([{**one, "amount": 999.0}]), now=T)
        assert result.accepted == 0 and [r.reason for r in result.rejected] == [
            "event_id was already used by a different event (the stored one stays)"]
        assert ledger.store.dump_tables()["events"][0][5] == 100.0


def test_bad_rows_are_rejected_while_good_rows_of_the_batch_land(ledger_url):
    table = events([
        {"event_id": "ok1", "account_id": "A", "kind": "PAYMENT", "at": T - dt.timedelta(days=1), "amount": 50.0},
        {"event_id": "bad1", "account_id": "A", "kind": "PAYMENT", "at": T - dt.timedelta(days=1)},
        {"event_id": "bad2", "account_id": "A", "kind": "NOT_A_KIND", "at": T},
        {"event_id": "bad3", "account_id": "A", "kind": "CONTACT_ATTEMPT", "at": T, "channel": "PHONE",
         "outcome": "NO_ANSWER", "amount": 1.0},
        {"event_id": "bad4", "account_id": "A", "kind": "PROMISE_TO_PAY", "at": T, "amount": 10.0,
         "promise_date": dt.date(2027, 6, 1)},
        {"event_id": "bad5", "account_id": "A", "kind": "PAYMENT", "at": T + dt.timedelta(days=2), "amount": 5.0},
        {"event_id": "ok2", "account_id": "B", "kind": "DISPUTE_OPENED", "at": T},
    ])
    with Ledger(ledger_url) as ledger:
        result = ledger.ingest(table, now=T)
    assert result.accepted == 2 and result.duplicate == 0
    assert [(r.row, r.event_id, r.reason) for r in result.rejected] == [
        (1, "bad1", "PAYMENT needs amount"),
        (2, "bad2", f"kind is not an event kind ({len(KINDS)} kinds: see docs/ledger.md)"),
        (3, "bad3", "amount is not a column of CONTACT_ATTEMPT (leave it empty)"),
        (4, "bad4", "promise_date is more than 90 days after the promise was made"),
        (5, "bad5", "at is in the future (beyond the allowed clock skew)"),
    ]


def test_a_batch_of_the_wrong_shape_is_refused_whole(ledger_url):
    with Ledger(ledger_url) as ledger:
        with pytest.raises(EventsError, match="missing column 'at'"):
            ledger.ingest(pa.table({"event_id": ["e"], "account_id": ["A"], "kind": ["PAYMENT"]}), now=T)
        with pytest.raises(EventsError, match="'payload' is not an event column"):
            ledger.ingest(events([{"event_id": "e", "account_id": "A", "kind": "DECEASED", "at": T,
                                   "payload": "{}"}]), now=T)
        assert ledger.store.count_events() == 0
