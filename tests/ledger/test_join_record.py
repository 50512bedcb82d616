"""One account's record joined with the state read off the book alone: the straight build
(:func:`kernel.ledger.join.join_book_state`, a gRPC Decide without a ledger) against the
general one (``join_record(record, book_state_record(record))``) — the same values, the same
column order, for whole-book records and for records lacking columns; and joined with a
ledger's state (:func:`~kernel.ledger.join.join_state_record`, a gRPC Decide with one)
against ``join_record(record, merge_record(book_state_record(record), state))``."""
from __future__ import annotations

import datetime as dt
import random

import pytest

from kernel.hookspecs import NULL_TIME, Record
from kernel.ledger.join import (_FLOAT, REPLACED, book_state_record, join_book_state, join_record, join_state_record,
                                merge_record)
from kernel.ledger.state import _BOOL, _DATE, _ENUM, _TIME, STATE_NAMES, FoldValues
from kernel.schema import ENUMS
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


def _fold_values(rng: random.Random) -> dict:
    """A state in the fold's representation, every column's value drawn from its kinds: null
    or not, known account or not."""
    out = {"account_id": "A0", "state_at": 1_796_000_000_000_000}
    for name in STATE_NAMES[2:]:
        if name in _TIME:
            out[name] = rng.choice([NULL_TIME, 1_795_000_000_000_000 + rng.randrange(10 ** 12)])
        elif name in _DATE:
            out[name] = rng.choice([NULL_TIME, 20_780 + rng.randrange(60)])
        elif name in _ENUM:
            out[name] = rng.randrange(-1, len(ENUMS[_ENUM[name]]))
        elif name in _BOOL or name.startswith("consent_") or name == "contact_opt_out":
            out[name] = rng.choice([-1, 0, 1])
        elif name in _FLOAT:
            out[name] = rng.choice([float("nan"), 0.0, rng.uniform(0, 5_000)])
        else:
            out[name] = rng.choice([0, rng.randrange(1, 9)])
    out["ledger_events"] = rng.choice([0, rng.randrange(1, 40)])
    return out


def test_records_join_a_ledger_state_as_the_general_way(records):
    rng = random.Random(13)
    for i, record in enumerate(records):
        record = dict(record)
        if i % 3 == 1:                                   # the general book join: a replaced column missing
            for name in rng.sample(REPLACED, rng.randint(1, 4)):
                del record[name]
        state = _fold_values(rng)
        kept = FoldValues(state)
        kept.memo = {}                                   # a remembered fold output: its scalars kept
        for book_counters in ("fallback", "ignore"):
            general = join_record(record, merge_record(book_state_record(record, AS_OF), state, book_counters))
            _same(join_state_record(record, AS_OF, state, book_counters), general)
            _same(join_state_record(record, AS_OF, kept, book_counters), general)
            _same(join_state_record(record, AS_OF, kept, book_counters), general)     # from the memo
