"""The generator's two histories (``history="recent"`` and ``"full"``, kernel.synth.events):
the full one writes every payment, contact and promise since origination and the tracker's
alerts month by month since the first instalment; the recent one is a faithful truncation of
it — a subset of its events, and the same ledger state as of the snapshot, column for column,
which is the book's wherever a state column replaces a book counter."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from kernel.cli import main
from kernel.synth import generate, generate_events, iter_book_and_events, snapshot_at
from kernel.synth.collection import lookback_us

from .test_synth_events import _local_days, assert_state_equals_book, derived, values

SEED = 7
ACCOUNTS = 4_000
DAY_US = 86_400_000_000
#: what only the full history adds: older payments, contacts, promises and tracker alerts
OLDER_KINDS = {"PAYMENT", "CONTACT_ATTEMPT", "PROMISE_TO_PAY", "GPS_TAMPER", "GEOFENCE_EXIT"}


@pytest.fixture(scope="module")
def histories():
    book = generate(ACCOUNTS, seed=SEED)
    return book, generate_events(ACCOUNTS, seed=SEED), generate_events(ACCOUNTS, seed=SEED, history="full")


@pytest.fixture(scope="module")
def states(histories, tmp_path_factory):
    book, recent, full = histories
    folder = tmp_path_factory.mktemp("ledgers")
    out = {}
    for name, events in (("recent", recent), ("full", full)):
        state, (result, _) = derived(book, events, f"sqlite:///{folder / name}.db", snapshot_at().date())
        assert (result.accepted, result.rejected) == (events.num_rows, []), name
        out[name] = state
    return out


def _keys(events: pa.Table) -> list[tuple]:
    cols = [values(events, c) for c in ("account_id", "kind", "at", "channel", "outcome", "amount", "promise_date",
                                        "lat", "lon", "expiry_date", "agent")]
    return list(zip(*cols))


def test_the_recent_history_is_the_full_one_without_its_older_events(histories):
    """Every recent event is in the full history (same account, kind, instant and values);
    what the full history adds is older than what the ledger reads back at the snapshot:
    contacts and promises before its look-back, payments before the last 12 months, tracker
    alerts of months that began over a year ago."""
    _, recent, full = histories
    recent_keys, full_keys = _keys(recent), _keys(full)
    recent_set = set(recent_keys)
    assert len(recent_set) == len(recent_keys) and recent_set <= set(full_keys)
    extra = [k for k in full_keys if k not in recent_set]
    assert len(extra) > recent.num_rows            # the full history is much longer (≈ 2.3×)
    assert {k[1] for k in extra} == OLDER_KINDS
    snapshot = snapshot_at().replace(tzinfo=None)
    cut = snapshot - dt.timedelta(microseconds=lookback_us())
    for kind, oldest in (("CONTACT_ATTEMPT", cut), ("PROMISE_TO_PAY", cut),
                         ("PAYMENT", snapshot - dt.timedelta(days=300)),
                         # months that began over a year ago (an episode falls in 29 days after it)
                         ("GPS_TAMPER", snapshot - dt.timedelta(days=365 - 29)),
                         ("GEOFENCE_EXIT", snapshot - dt.timedelta(days=365 - 29))):
        newest = max(k[2] for k in extra if k[1] == kind).replace(tzinfo=None)
        assert newest < oldest, kind
    # the other kinds are written alike in both histories
    others = [k for k in full_keys if k[1] not in OLDER_KINDS]
    assert others == [k for k in recent_keys if k[1] not in OLDER_KINDS]


def test_both_histories_give_the_same_state_which_is_the_book(histories, states):
    """Ingested into two ledgers, the recent and the full history give the same state as of
    the snapshot in every column but the count of events read, and it is the book's."""
    book, _, _ = histories
    recent, full = states["recent"], states["full"]
    assert recent.column_names == full.column_names
    differ = [c for c in recent.column_names if c != "ledger_events" and not recent[c].equals(full[c])]
    assert not differ, differ
    assert_state_equals_book(book, recent)
    assert_state_equals_book(book, full)
    # the full history's older events lie outside what the ledger reads at the snapshot
    assert recent["ledger_events"].equals(full["ledger_events"])


def test_accounts_now_current_carry_their_earlier_delinquencies(histories):
    """An account current all of the last 12 months that was behind 18–30 months ago has the
    collection's contacts and (most of them) a promise to pay from then in the full history,
    none in the recent one."""
    book, recent, full = histories
    d0 = (snapshot_at().date() - dt.date(1970, 1, 1)).days
    dpd, times = book["dpd"].to_numpy(), book["times_overdue_12m"].to_numpy()
    clean = (dpd == 0) & (times == 0) & (book["max_dpd_12m"].to_numpy() == 0)

    def earlier(events, kind):
        rows, day = _local_days(events.filter(pc.equal(events["kind"].cast(pa.string()), kind)), book)
        age = d0 - day
        return set(rows[(age >= 540) & (age <= 900) & clean[rows]].tolist())

    contacted, promised = earlier(full, "CONTACT_ATTEMPT"), earlier(full, "PROMISE_TO_PAY")
    assert len(contacted) > 100
    assert promised <= contacted and len(promised) > 0.5 * len(contacted)
    assert not earlier(recent, "CONTACT_ATTEMPT") and not earlier(recent, "PROMISE_TO_PAY")
    # and the payments of every month since origination: an account the collection never
    # worked paid every instalment due (a payment is a whole number of instalments: two when
    # a missed one is paid the day after), the recent history only its last 12 months'
    def payments(events):
        pay = events.filter(pc.equal(events["kind"].cast(pa.string()), "PAYMENT"))
        rows, _ = _local_days(pay, book)
        amount = pay["amount"].to_numpy()
        total = np.bincount(rows, amount, minlength=book.num_rows)
        least = np.full(book.num_rows, np.inf)
        np.minimum.at(least, rows, amount)
        return total / least, np.bincount(rows, minlength=book.num_rows)

    crow, _ = _local_days(full.filter(pc.equal(full["kind"].cast(pa.string()), "CONTACT_ATTEMPT")), book)
    inst = book["installments_paid"].to_numpy()
    spotless = (np.bincount(crow, minlength=book.num_rows) == 0) & (inst > 12)
    assert spotless.sum() > 500
    paid, _ = payments(full)
    assert np.allclose(paid[spotless], inst[spotless], atol=0.01)
    _, count = payments(recent)
    assert (count[spotless] <= 12).all() and (count[spotless] >= 11).mean() > 0.95


def test_contacts_since_origination_keep_the_tiered_cadence(histories):
    """Every day of the full history keeps the tiered strategy's cadence (kernel.synth.
    collection): at most one SMS, one voice-bot call (1–10 DPD) or agents' calls (11+ DPD,
    at most four) but never both, at most one field visit; a month with contacts holds
    between a first-10-days' few and a month at 31+ DPD's (≈ 30 × 1.1 calls + 4 SMS + 2
    visits ≈ 39) on average."""
    book, _, full = histories
    calls = full.filter(pc.equal(full["kind"].cast(pa.string()), "CONTACT_ATTEMPT"))
    rows, day = _local_days(calls, book)
    channel = np.array(values(calls, "channel"))
    key = rows * 1_000_000 + day
    per_day = {}
    for name in ("SMS", "VOICE_BOT", "PHONE", "FIELD_VISIT"):
        u, n = np.unique(key[channel == name], return_counts=True)
        per_day[name] = dict(zip(u.tolist(), n.tolist()))
    assert max(per_day["SMS"].values()) == 1 and max(per_day["VOICE_BOT"].values()) == 1
    assert max(per_day["FIELD_VISIT"].values()) == 1 and max(per_day["PHONE"].values()) <= 4
    assert not set(per_day["VOICE_BOT"]) & set(per_day["PHONE"])
    _, per_month = np.unique(rows * 100_000 + day // 30, return_counts=True)
    assert 4 <= per_month.mean() <= 39 and per_month.size > 2_000
    # the contacts reach back years, not only over the ledger's look-back
    d0 = (snapshot_at().date() - dt.date(1970, 1, 1)).days
    assert ((d0 - day) > 365).mean() > 0.3 and (d0 - day).max() > 3 * 365


def test_the_full_history_is_deterministic_and_independent_of_the_book_size(histories):
    _, _, full = histories
    smaller = generate_events(1_500, seed=SEED, history="full")
    rows = int(pc.sum(pc.less(full["account_id"], "AC0000001500")).as_py())
    assert smaller.equals(full.slice(0, rows))
    assert not generate_events(1_500, seed=SEED + 1, history="full")["at"].equals(smaller["at"])
    # one simulation for book and events gives the same of both in either history
    book, events = next(iter_book_and_events(1_500, seed=SEED, history="full"))
    assert pa.Table.from_batches([events]).equals(smaller)
    assert pa.Table.from_batches([book]).equals(generate(1_500, seed=SEED))


def test_a_history_must_be_recent_or_full():
    with pytest.raises(ValueError, match="history: expected one of recent, full, got 'all'"):
        generate_events(10, history="all")


def test_generate_writes_either_history(tmp_path, capsys):
    out, events = tmp_path / "book.parquet", tmp_path / "events.parquet"
    assert main(["generate", "--accounts", "300", "--seed", "3", "--quiet", "--out", str(out),
                 "--events", str(events), "--history", "full"]) == 0
    assert pq.read_table(events).equals(generate_events(300, seed=3, history="full"))
    assert "(history full)" in capsys.readouterr().err
    assert main(["generate", "--accounts", "10", "--quiet", "--out", str(out), "--history", "full"]) == 2
    assert "--history: only with --events" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["generate", "--accounts", "10", "--quiet", "--out", str(out), "--events", str(events),
              "--history", "everything"])
    assert "invalid choice: 'everything'" in capsys.readouterr().err


def test_the_full_history_on_the_day_us_clocks_change(tmp_path):
    """As of 2026-03-08 (US daylight saving time starts): the full history's state is the book."""
    as_of = dt.date(2026, 3, 8)
    book = generate(2_000, seed=5, as_of=as_of)
    events = generate_events(2_000, seed=5, as_of=as_of, history="full")
    state, (result, _) = derived(book, events, f"sqlite:///{tmp_path / 'l.db'}", as_of)
    assert result.accepted == events.num_rows and not result.rejected
    assert_state_equals_book(book, state)
