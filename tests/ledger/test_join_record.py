"""One account's record joined with the state read off the book alone: the straight build
(:func:`kernel.ledger.join.join_book_state`, a gRPC Decide without a ledger) against the
general one (``join_record(record, book_state_record(record))``) — the same values, the same
column order, for whole-book records and for records lacking columns."""
from __future__ import annotations

import datetime as dt
import random

import pytest

from kernel.hookspecs import Record
from kernel.ledger.join import REPLACED, book_state_record, join_book_state, join_record
from kernel.synth import generate

AS_OF = dt.date(2026, 11, 28)


@pytest.fixture(scope="module")
def records():
    return generate(300, seed=5, as_of=AS_OF).to_pylist()


def _general(record, as_of):
    return join_record(record, book_state_record(record, as_of))


def _same(fast, general):
    assert isinstance(fast, Record)
    assert list(fast.items()) == list(general.items())        # values and order


def test_whole_book_records_join_as_the_general_way(records):
    rng = random.Random(7)
    promised = 0
    for record in records:
        # the derivations' inputs varied: promises either side of as_of, disputes, nulls
        record = dict(record)
        record["promise_date"] = rng.choice([None, AS_OF, AS_OF - dt.timedelta(days=1), AS_OF + dt.timedelta(days=3)])
        record["reported_overdue_reason"] = rng.choice([None, "DISPUTE", record["reported_overdue_reason"]])
        record["gps_status"] = rng.choice([None, "TAMPERED", record["gps_status"]])
        record["call_attempts_today"] = rng.choice([None, 0, 3])
        record["connected_calls_today"] = rng.choice([None, 0, 1, 5])
        record["consent_automated_contact"] = rng.choice([None, True, False])
        record["contact_opt_out"] = rng.choice([None, True, False])
        record["repossessed"] = rng.choice([None, True, False])
        fast = join_book_state(record, AS_OF)
        _same(fast, _general(record, AS_OF))
        promised += fast["promise_open"]
    assert 0 < promised < len(records)          # both sides of the promise test were met


def test_records_lacking_columns_or_carrying_state_columns(records):
    rng = random.Random(11)
    for record in records[:100]:
        record = dict(record)
        for name in rng.sample(REPLACED, rng.randint(1, 4)):     # the general way: a replaced column missing
            del record[name]
        _same(join_book_state(record, AS_OF), _general(record, AS_OF))
    record = dict(records[0], promise_open=True, repossession_stage="SOLD", open_disputes=9)
    joined = join_book_state(record, AS_OF)                       # the state's values win, in place
    _same(joined, _general(record, AS_OF))
    assert list(joined)[:len(record)] == list(record)


def test_the_join_leaves_the_record_alone(records):
    record = dict(records[1])
    before = list(record.items())
    joined = join_book_state(record, AS_OF)
    joined["dpd"] = -1
    assert list(record.items()) == before
