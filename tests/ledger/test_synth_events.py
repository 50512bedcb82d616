"""The generator's event history: ingested into a fresh ledger, the state derived as of the
book's snapshot equals the book's counters wherever a state column replaces one."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from kernel.cli import main
from kernel.ledger import Ledger
from kernel.synth import (CHUNK, SNAPSHOT_KEY, generate, generate_events, iter_book_and_events, iter_events,
                          snapshot_at)

SEED = 13
#: two chunks: the second starts mid-way through the accounts compared
ACCOUNTS = CHUNK + 2_500

#: book columns a state column of the same name replaces (kernel/schema.py, STATE)
REPLACED = (
    "call_attempts_today", "connected_calls_today", "consecutive_failed_attempts", "calls_7d", "sms_today",
    "last_conversation_at", "last_payment_date", "last_payment_amount", "promise_date", "promises_made_90d",
    "promises_kept_90d", "promises_broken_90d", "promises_broken_30d", "open_complaints", "contact_opt_out",
    "consent_automated_contact", "gps_last_ping_at", "gps_offline_hours", "gps_status", "geofence_exits_30d",
    "violations_90d", "insurance_expiry_date", "demand_notices_sent", "repossessed",
)


def values(table: pa.Table, name: str) -> list:
    col = table[name]
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    return col.to_pylist()


def derived(book: pa.Table, events: pa.Table, url: str, as_of: dt.date) -> tuple[pa.Table, object]:
    """Ingest ``events`` into the empty ledger at ``url`` as of the snapshot; the state of
    every account of ``book`` (in its time zone) as of the snapshot, and the ingest's result."""
    at = snapshot_at(as_of)
    ids = book["account_id"].to_pylist()
    with Ledger(url) as ledger:
        result = ledger.ingest(events, now=at)
        state = ledger.state(at=at, accounts=ids, zones=dict(zip(ids, book["time_zone"].to_pylist())))
        lookback_us = ledger.settings.lookback_us
    return state, (result, lookback_us)


def old_payments(events: pa.Table, lookback_us: int, as_of: dt.date) -> set[str]:
    """Accounts whose last PAYMENT event lies before the ledger's look-back (the state reads
    it anyway: a last payment never ages out)."""
    pay = events.filter(pc.equal(events["kind"].cast(pa.string()), "PAYMENT"))
    last = pay.group_by("account_id").aggregate([("at", "max")])
    since = pa.scalar(int(snapshot_at(as_of).timestamp() * 1e6) - lookback_us, pa.timestamp("us", tz="UTC"))
    return set(last.filter(pc.less(last["at_max"], since))["account_id"].to_pylist())


def assert_state_equals_book(book: pa.Table, state: pa.Table) -> None:
    ids = book["account_id"].to_pylist()
    assert state["account_id"].to_pylist() == ids
    for name in REPLACED:
        want, got = values(book, name), values(state, name)
        if name == "gps_status":             # no tracker: no ping and no alert, so no state
            want = [None if w == "NO_DEVICE" else w for w in want]
        if name == "gps_offline_hours":
            bad = [i for i, (w, g) in enumerate(zip(want, got))
                   if (w is None) != (g is None) or (w is not None and abs(w - g) > 1e-6)]
        else:
            bad = [i for i, (w, g) in enumerate(zip(want, got)) if w != g]
        assert not bad, (f"{name}: {len(bad)} accounts differ, e.g. "
                         + ", ".join(f"{ids[i]} book {want[i]!r} state {got[i]!r}" for i in bad[:3]))


@pytest.fixture(scope="module")
def generated():
    return generate(ACCOUNTS, seed=SEED), generate_events(ACCOUNTS, seed=SEED)


@pytest.fixture(scope="module")
def ingested(generated, tmp_path_factory):
    book, events = generated
    url = f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'ledger.db'}"
    state, (result, lookback_us) = derived(book, events, url, snapshot_at().date())
    return state, result, old_payments(events, lookback_us, snapshot_at().date())


def test_every_event_lands(generated, ingested):
    _, events = generated
    _, result, _ = ingested
    assert (result.accepted, result.duplicate, result.rejected) == (events.num_rows, 0, [])


def test_state_as_of_the_snapshot_equals_the_book(generated, ingested):
    book, _ = generated
    state, _, _ = ingested
    assert_state_equals_book(book, state)


def test_the_comparison_covers_both_countries_every_zone_and_every_signal(generated, ingested):
    """The book exercises what the equality is about: US debtors' local day (the evening
    before as_of), each counter non-zero somewhere, every tracker status, open promises."""
    book, _ = generated
    state, _, forgotten = ingested
    country, zone = values(book, "country"), set(values(book, "time_zone"))
    assert {"CN", "US"} <= set(country) and len(zone) >= 5
    us = np.array(country) == "US"
    assert (np.array(values(book, "call_attempts_today"))[us] > 0).sum() > 10
    for name in ("connected_calls_today", "consecutive_failed_attempts", "sms_today", "promises_kept_90d",
                 "promises_broken_30d", "open_complaints", "geofence_exits_30d", "violations_90d",
                 "demand_notices_sent"):
        assert sum(v > 0 for v in values(book, name)) > 20, name
    assert set(values(book, "gps_status")) == {"ONLINE", "OFFLINE", "TAMPERED", "NO_DEVICE"}
    for name in ("promise_date", "last_conversation_at", "contact_opt_out", "repossessed"):
        assert sum(bool(v) for v in values(book, name)) > 20, name
    assert sum(v is False for v in values(book, "consent_automated_contact")) > 20
    # some last payments lie before the look-back: the equality covers them too
    assert forgotten


def test_a_snapshot_on_the_day_us_clocks_change(tmp_path):
    """As of 2026-03-08 (US daylight saving time starts): the same equality."""
    as_of = dt.date(2026, 3, 8)
    book, events = generate(3_000, seed=5, as_of=as_of), generate_events(3_000, seed=5, as_of=as_of)
    state, (result, lookback_us) = derived(book, events, f"sqlite:///{tmp_path / 'l.db'}", as_of)
    assert result.accepted == events.num_rows and not result.rejected
    assert_state_equals_book(book, state)


def test_events_happen_by_the_snapshot_have_unique_ids_and_come_sorted(generated):
    _, events = generated
    at = events["at"].to_numpy()
    assert at.max() <= np.datetime64(snapshot_at().replace(tzinfo=None))
    assert pc.count_distinct(events["event_id"]).as_py() == events.num_rows
    account = np.array(events["account_id"].to_pylist())
    assert (account[1:] >= account[:-1]).all()
    same = account[1:] == account[:-1]
    assert (at[1:][same] >= at[:-1][same]).all()
    assert events["event_id"][0].as_py() == f"S{SEED}-20261128-AC0000000000-000"


def test_same_seed_same_events_other_seed_other_events(generated):
    _, events = generated
    assert generate_events(2_000, seed=SEED).equals(events.slice(0, _rows_of(events, 2_000)))
    other = generate_events(2_000, seed=SEED + 1)
    assert not other["at"].equals(events.slice(0, other.num_rows)["at"])


def _rows_of(events: pa.Table, accounts: int) -> int:
    """Events of the first ``accounts`` accounts (events come sorted by account)."""
    return int(pc.sum(pc.less(events["account_id"], f"AC{accounts:010d}")).as_py())


def test_events_do_not_depend_on_chunking_or_batching(generated):
    book, events = generated
    batches = list(iter_events(ACCOUNTS, seed=SEED))
    assert len(batches) == 2 and pa.Table.from_batches(batches).equals(events)
    # an account's events do not depend on how many accounts follow it
    one_chunk = generate_events(CHUNK, seed=SEED)
    assert one_chunk.equals(events.slice(0, one_chunk.num_rows))
    assert events.slice(one_chunk.num_rows)["account_id"][0].as_py() == f"AC{CHUNK:010d}"
    # one simulation for both gives the same book and the same events
    pairs = list(iter_book_and_events(ACCOUNTS, seed=SEED))
    assert pa.Table.from_batches([b for b, _ in pairs]).equals(book)
    assert pa.Table.from_batches([e for _, e in pairs]).equals(events)


def test_book_and_events_carry_the_snapshot_instant(generated):
    book, events = generated
    assert snapshot_at() == dt.datetime(2026, 11, 28, 2, tzinfo=dt.timezone.utc)
    for table in (book, events):
        assert table.schema.metadata[SNAPSHOT_KEY.encode()] == b"2026-11-28T02:00:00Z"
    assert events.schema.metadata[b"postloan.table"] == b"events"


def test_generate_writes_the_events_beside_the_book(tmp_path, capsys):
    book_file, events_file = tmp_path / "book.parquet", tmp_path / "events.parquet"
    code = main(["generate", "--accounts", "700", "--seed", "2", "--as-of", "2026-07-15", "--quiet",
                 "--out", str(book_file), "--events", str(events_file)])
    assert code == 0
    out = capsys.readouterr().err                # summaries go to stderr (stdout may be the data)
    written = pq.read_table(events_file)
    assert f"wrote {written.num_rows:,} events of 700 accounts to {events_file} (history recent)" in out
    assert written.equals(generate_events(700, seed=2, as_of=dt.date(2026, 7, 15)))
    for f in (book_file, events_file):
        assert pq.read_schema(f).metadata[SNAPSHOT_KEY.encode()] == b"2026-07-15T02:00:00Z"
    # any connector's format, by extension
    csv = tmp_path / "events.csv"
    assert main(["generate", "--accounts", "50", "--quiet", "--out", str(tmp_path / "b.arrow"),
                 "--events", str(csv)]) == 0
    assert csv.read_text().splitlines()[0].startswith('"event_id","account_id","kind","at"')
    arrow_book = pa.ipc.open_file(str(tmp_path / "b.arrow")).schema
    assert arrow_book.metadata[SNAPSHOT_KEY.encode()] == b"2026-11-28T02:00:00Z"


def test_generate_refuses_events_over_the_book(tmp_path, capsys):
    target = tmp_path / "same.parquet"
    assert main(["generate", "--accounts", "10", "--quiet", "--out", str(target), "--events", str(target)]) == 2
    assert "the same file as --out" in capsys.readouterr().err


def _local_days(events: pa.Table, book: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Each event's account row in ``book`` and its local day in the account's zone."""
    from kernel.hookspecs import utc_offsets
    zones = sorted(set(values(book, "time_zone")))
    row_of = {a: i for i, a in enumerate(book["account_id"].to_pylist())}
    rows = np.array([row_of[a] for a in events["account_id"].to_pylist()], np.int64)
    zone_of = np.array([zones.index(z) for z in values(book, "time_zone")])[rows]
    at = events["at"].cast(pa.int64()).to_numpy()
    return rows, (at + utc_offsets(zones, zone_of, at)) // 86_400_000_000


def test_calls_and_promises_follow_the_dpd_path(generated):
    """The history is one process: the collection process calls an account only on days it
    is overdue (a current account was called before the payment that cured it; an overdue
    one, since its last payment, only once its oldest unpaid instalment had fallen due), an
    account never overdue in 12 months is never called, no promise precedes the account's
    first arrears, and an account never overdue in 12 months paid each of its last 12
    instalments."""
    book, events = generated
    kind = np.array(values(events, "kind"))
    channel = np.array(values(events, "channel"), dtype=object)
    dpd = book["dpd"].to_numpy()
    oldest_unpaid = book["next_due_date"].cast(pa.int32()).fill_null(10**6).to_numpy()
    last_payment = book["last_payment_date"].cast(pa.int32()).fill_null(-1).to_numpy()
    calls = events.filter(pa.array((kind == "CONTACT_ATTEMPT") & np.isin(channel, ["PHONE", "VOICE_BOT"])))
    rows, day = _local_days(calls, book)
    assert rows.size > 1_000
    current = dpd[rows] == 0
    assert current.any() and (~current).any()
    assert (day[current] <= last_payment[rows][current]).all()
    since = ~current & (day > last_payment[rows])
    assert since.sum() > 1_000 and (day[since] > oldest_unpaid[rows][since]).all()
    never = (dpd == 0) & (book["times_overdue_12m"].to_numpy() == 0) & (book["max_dpd_12m"].to_numpy() == 0)
    assert not never[rows].any()
    # contacts by DPD tier: voice bots early, agents' calls and field visits later
    assert {"PHONE", "VOICE_BOT", "SMS", "FIELD_VISIT"} <= set(channel[kind == "CONTACT_ATTEMPT"])
    # promises: only from accounts that are or have been overdue in the last 12 months
    promises = events.filter(pa.array(kind == "PROMISE_TO_PAY"))
    rows, _ = _local_days(promises, book)
    ever = (dpd > 0) | (book["times_overdue_12m"].to_numpy() > 0) | (book["max_dpd_12m"].to_numpy() > 0)
    assert rows.size > 500 and ever[rows].all()
    # instalments paid month by month: an account current all year paid 12 in 12 months
    pay = events.filter(pa.array(kind == "PAYMENT"))
    prow, _ = _local_days(pay, book)
    count = np.bincount(prow, minlength=book.num_rows)
    clean = ((book["times_overdue_12m"].to_numpy() == 0) & (book["installments_due"].to_numpy() >= 12)
             & (book["promises_made_90d"].to_numpy() == 0))
    assert clean.sum() > 1_000 and (count[clean] == 12).all()
