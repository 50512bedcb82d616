"""The contact-time gate: state + compliance before a dialer dials; atomic reservations."""
from __future__ import annotations

import datetime as dt
import threading

import pyarrow as pa
import pytest

from kernel.ledger import Ledger
from kernel.ledger.gate import GateError, UNKNOWN_ACCOUNT
from kernel.ledger.ledger import LedgerError
from kernel.pipeline import Pipeline

UTC = dt.timezone.utc
TS = pa.timestamp("us", tz="UTC")
# 10:00 in Shanghai, 10:00 in New York
CN_MORNING = dt.datetime(2026, 11, 30, 2, tzinfo=UTC)
US_MORNING = dt.datetime(2026, 11, 30, 15, tzinfo=UTC)


@pytest.fixture(scope="module")
def judge():
    return Pipeline(None, config={}, audit_path="/dev/null").judge


def register(ledger, account, country, zone, **book):
    row = {"account_id": account, "time_zone": zone, "country": country, "region": "X", "product": "NEW_CAR_LOAN",
           "phone_valid": True, "has_third_party_contact": True, "consent_automated_contact": True,
           "contact_opt_out": False, **book}
    ledger.register(pa.table({k: [v] for k, v in row.items()}))


def attempt(event_id, account, at, outcome, channel="PHONE", reservation=None):
    return {"event_id": event_id, "account_id": account, "kind": "CONTACT_ATTEMPT", "at": at, "channel": channel,
            "outcome": outcome, "reservation_id": reservation}


def table(rows):
    names = sorted({k for r in rows for k in r})
    return pa.table({n: pa.array([r.get(n) for r in rows], TS if n == "at" else pa.string()) for n in names})


def test_regf_first_call_connects_then_the_next_two_are_deferred(ledger_url, judge):
    """Three calls planned for one day: the dialer asks before each. After the first reaches
    the debtor, Regulation F forbids calls for 7 days: both later calls are DEFERred."""
    with Ledger(ledger_url) as ledger:
        register(ledger, "US1", "US", "America/New_York")
        first = ledger.check_contact("US1", "PHONE", US_MORNING, judge, now=US_MORNING)
        assert first.outcome == "KEEP" and first.reservation_id
        # before the outcome is reported the reservation counts as a conversation
        pending = ledger.check_contact("US1", "PHONE", US_MORNING + dt.timedelta(hours=3), judge,
                                       now=US_MORNING + dt.timedelta(hours=3))
        assert (pending.outcome, pending.reason_code) == ("DEFER", "REGF_RECENT_CONVERSATION")
        ledger.ingest(table([attempt("c1", "US1", US_MORNING + dt.timedelta(minutes=2), "RIGHT_PARTY",
                                     reservation=first.reservation_id)]), now=US_MORNING + dt.timedelta(hours=1))
        for hours in (3, 6):
            later = US_MORNING + dt.timedelta(hours=hours)
            v = ledger.check_contact("US1", "PHONE", later, judge, now=later)
            assert (v.outcome, v.reason_code) == ("DEFER", "REGF_RECENT_CONVERSATION")
            # day 8 in New York, 08:00 local
            assert v.next_allowed_at == dt.datetime(2026, 12, 7, 13, tzinfo=UTC)


def test_regf_an_unanswered_call_leaves_the_next_allowed(ledger_url, judge):
    with Ledger(ledger_url) as ledger:
        register(ledger, "US2", "US", "America/New_York")
        first = ledger.check_contact("US2", "PHONE", US_MORNING, judge, now=US_MORNING)
        ledger.ingest(table([attempt("c1", "US2", US_MORNING, "NO_ANSWER", reservation=first.reservation_id)]),
                      now=US_MORNING)
        later = US_MORNING + dt.timedelta(hours=3)
        assert ledger.check_contact("US2", "PHONE", later, judge, now=later).outcome == "KEEP"


def test_cn_cap_counts_connected_calls_not_attempts(ledger_url, judge):
    """China: at most 3 connected calls a day; unanswered attempts do not use that cap."""
    with Ledger(ledger_url) as ledger:
        register(ledger, "CN1", "CN", "Asia/Shanghai")
        ledger.ingest(table([attempt(f"n{i}", "CN1", CN_MORNING - dt.timedelta(minutes=10 * i), "NO_ANSWER")
                             for i in range(1, 4)]), now=CN_MORNING)
        assert ledger.check_contact("CN1", "PHONE", CN_MORNING, judge, now=CN_MORNING).outcome == "KEEP"
    with Ledger(ledger_url.replace("ledger.db", "other.db")) as ledger:
        register(ledger, "CN2", "CN", "Asia/Shanghai")
        ledger.ingest(table([attempt(f"r{i}", "CN2", CN_MORNING - dt.timedelta(minutes=10 * i), "RIGHT_PARTY")
                             for i in range(1, 4)]), now=CN_MORNING)
        v = ledger.check_contact("CN2", "PHONE", CN_MORNING, judge, now=CN_MORNING)
        assert (v.outcome, v.reason_code) == ("DEFER", "CN_DAILY_CONNECTED_CALLS")
        assert v.next_allowed_at == dt.datetime(2026, 12, 1, 0, tzinfo=UTC)        # 08:00 in Shanghai


def test_racing_dialers_for_the_last_allowed_call_get_exactly_one_keep(ledger_url, judge):
    with Ledger(ledger_url) as ledger:
        register(ledger, "CN3", "CN", "Asia/Shanghai")
        ledger.ingest(table([attempt(f"r{i}", "CN3", CN_MORNING - dt.timedelta(minutes=10 * i), "RIGHT_PARTY")
                             for i in range(1, 3)]), now=CN_MORNING)
        # the policies compiled before the race (a cold compile inside the first dialer's
        # transaction could outlast the others' wait for the lock on a loaded machine)
        register(ledger, "CN3W", "CN", "Asia/Shanghai")
        ledger.check_contact("CN3W", "PHONE", CN_MORNING, judge, now=CN_MORNING)
        verdicts = []
        start = threading.Barrier(8)

        def dial():
            start.wait()
            verdicts.append(ledger.check_contact("CN3", "PHONE", CN_MORNING, judge, now=CN_MORNING).outcome)

        threads = [threading.Thread(target=dial) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(verdicts) == ["DEFER"] * 7 + ["KEEP"]


def test_an_account_the_ledger_never_saw_is_blocked_and_bad_questions_are_errors(ledger_url, judge):
    with Ledger(ledger_url) as ledger:
        v = ledger.check_contact("NOBODY", "PHONE", CN_MORNING, judge, now=CN_MORNING)
        assert (v.outcome, v.reason_code) == ("BLOCK", UNKNOWN_ACCOUNT)
        with pytest.raises(GateError, match="channel 'EMAIL'"):
            ledger.check_contact("A", "EMAIL", CN_MORNING, judge, now=CN_MORNING)
        with pytest.raises(GateError, match="in the past"):
            ledger.check_contact("A", "PHONE", CN_MORNING - dt.timedelta(hours=1), judge, now=CN_MORNING)


def test_reports_must_name_a_reservation_of_their_account(ledger_url, judge):
    with Ledger(ledger_url) as ledger:
        register(ledger, "CN4", "CN", "Asia/Shanghai")
        register(ledger, "CN5", "CN", "Asia/Shanghai")
        v = ledger.check_contact("CN4", "PHONE", CN_MORNING, judge, now=CN_MORNING)
        result = ledger.ingest(table([
            attempt("x1", "CN5", CN_MORNING, "NO_ANSWER", reservation=v.reservation_id),
            attempt("x2", "CN4", CN_MORNING, "NO_ANSWER", reservation="nope"),
            attempt("x3", "CN4", CN_MORNING, "NO_ANSWER", channel="SMS", reservation=v.reservation_id),
            attempt("x4", "CN4", CN_MORNING, "NO_ANSWER", reservation=v.reservation_id),
            attempt("x5", "CN4", CN_MORNING, "RIGHT_PARTY", reservation=v.reservation_id),
        ]), now=CN_MORNING)
        assert result.accepted == 1
        assert [(r.event_id, r.reason) for r in result.rejected] == [
            ("x1", "reservation_id belongs to another account"),
            ("x2", "reservation_id names no reservation of this ledger"),
            ("x3", "channel differs from the reservation's"),
            ("x5", "the reservation is reported twice in this batch"),
        ]
        again = ledger.ingest(table([attempt("x4", "CN4", CN_MORNING, "NO_ANSWER", reservation=v.reservation_id)]),
                              now=CN_MORNING)
        assert (again.accepted, again.duplicate, again.rejected) == (0, 1, [])


def test_sync_reservations_is_true_or_false():
    from kernel.errors import PostloanError
    from kernel.ledger.state import StateSettings
    assert StateSettings.from_config({"ledger": {"sync_reservations": True}}).sync_reservations is True
    assert StateSettings().sync_reservations is False
    with pytest.raises(PostloanError, match=r"\[ledger\] sync_reservations: expected true or false, got 1"):
        StateSettings.from_config({"ledger": {"sync_reservations": 1}})


def test_the_gate_converts_only_the_state_its_policies_read_with_the_same_verdicts(ledger_url, tmp_path):
    """The gate converts only the state columns the pipeline's policies judging the channel's
    action read (its ``judge_columns_of``), straight from the fold's outputs: over a generated
    book and its history, every account's record on every channel, at three moments, is the
    one the merge of those columns gives (key for key, in order), and its verdict the one the
    whole converted state gives — outcome, reason, next allowed time and policy."""
    from kernel.ledger.gate import _EVERY_COLUMN, GATED_CHANNELS, _state_of, account_record
    from kernel.ledger.ledger import instant_us
    from kernel.synth import iter_book_and_events
    as_of = dt.date(2026, 11, 28)
    batches = list(iter_book_and_events(250, 23, as_of))
    book = pa.concat_tables([pa.Table.from_batches([b]) for b, _ in batches])
    events = pa.concat_tables([pa.Table.from_batches([e]) for _, e in batches])
    pipeline = Pipeline(None, config={}, audit_path=tmp_path / "audit.log")
    assert pipeline.judge_columns is not None and "calls_7d" in pipeline.judge_columns
    fewer = {action: _state_of(pipeline.judge, action) for action in GATED_CHANNELS.values()}
    # the built-in policies read no temporal pattern: the gate's state leaves the pattern pass
    # out, and its record is made straight from the fold's outputs
    assert all(f[0] is not _EVERY_COLUMN[0] and f[1] is False and f[2] is not None for f in fewer.values())
    straight = 0
    ids = book["account_id"].to_pylist()
    verdicts = {"KEEP": 0, "DEFER": 0, "BLOCK": 0}
    with Ledger(ledger_url) as ledger:
        ledger.register(book)
        ledger.ingest(events)
        s = ledger.settings
        for moment in (dt.datetime(2026, 11, 28, 2, tzinfo=UTC), dt.datetime(2026, 11, 28, 14, 30, tzinfo=UTC),
                       dt.datetime(2026, 11, 29, 23, 50, tzinfo=UTC)):
            at_us = instant_us(moment)
            with ledger.store.transaction(lock_account=None, synced=False) as cur:
                for account in ids:
                    whole = account_record(ledger.store, cur, account, at_us, s)
                    for channel, action in GATED_CHANNELS.items():
                        some = account_record(ledger.store, cur, account, at_us, s, fewer[action])
                        assert set(some) < set(whole)
                        # the record straight from the fold's outputs is the merged one, key for key
                        merged = account_record(ledger.store, cur, account, at_us, s, (*fewer[action][:2], None))
                        assert list(some.items()) == list(merged.items()) and type(some) is type(merged), account
                        straight += 1
                        expected = pipeline.judge(whole, action, moment)
                        assert pipeline.judge(some, action, moment) == expected, (account, channel, moment)
                        verdicts[expected[0]] += 1
    assert min(verdicts.values()) > 20, verdicts                       # every outcome, many times
    assert straight == 3 * 5 * len(ids)


def test_register_record_writes_only_what_changed(ledger_url):
    """A gRPC Decide's account registration: a new account is written; the same columns
    asked by another process (a fresh Ledger on the same store) are read, found equal and not
    written; changed columns are written, and the gate reads them."""
    row = {"account_id": "R1", "time_zone": "Asia/Shanghai", "country": "CN", "region": "X",
           "product": "NEW_CAR_LOAN", "phone_valid": True, "has_third_party_contact": False,
           "consent_automated_contact": None, "contact_opt_out": False}
    with Ledger(ledger_url) as ledger:
        assert ledger.register_record(row) is True
        assert ledger.register_record(row) is False
    with Ledger(ledger_url) as ledger:
        assert ledger.register_record(row) is False
        assert ledger.registered(["R1"])["R1"] == {k: v for k, v in row.items() if k != "account_id"}
        assert ledger.register_record({**row, "phone_valid": False, "region": "Y"}) is True
    with Ledger(ledger_url) as ledger:
        got = ledger.registered(["R1"])["R1"]
        assert (got["phone_valid"], got["region"], got["has_third_party_contact"]) == (False, "Y", False)


def test_registered_state_values_is_register_record_then_state_values(ledger_url):
    """A gRPC Decide's one read (:meth:`Ledger.registered_state_values`: the registration with
    the rows) registers what :meth:`Ledger.register_record` would — a new account written, the
    same columns not written again, changed ones written — and gives :meth:`Ledger.state_values`'
    state, every column."""
    row = {"account_id": "R1", "time_zone": "Asia/Shanghai", "country": "CN", "region": "X",
           "product": "NEW_CAR_LOAN", "phone_valid": True, "has_third_party_contact": False,
           "consent_automated_contact": None, "contact_opt_out": False}
    at = CN_MORNING

    def same(got, expected):                       # (NaN, the fold's null float, equals itself here)
        return got.keys() == expected.keys() and all(
            v == expected[k] or (v != v and expected[k] != expected[k]) for k, v in got.items())

    with Ledger(ledger_url) as ledger:
        ledger.ingest(table([attempt(f"a{k}", "R1", at - dt.timedelta(hours=k + 1), ("NO_ANSWER", "RIGHT_PARTY")[k % 2])
                             for k in range(5)]), now=at)
        writes = []
        ledger.store.register = lambda rows, now, write=ledger.store.register: (writes.append(rows), write(rows, now))
        expected = ledger.state_values("R1", "Asia/Shanghai", at)
        assert same(ledger.registered_state_values(row, at), expected) and len(writes) == 1
        assert same(ledger.registered_state_values(row, at), expected) and len(writes) == 1   # remembered
    with Ledger(ledger_url) as ledger:
        writes = []
        ledger.store.register = lambda rows, now, write=ledger.store.register: (writes.append(rows), write(rows, now))
        assert same(ledger.registered_state_values(row, at), expected) and writes == []       # stored the same
        assert same(ledger.registered_state_values({**row, "region": "Y"}, at), expected) and len(writes) == 1
        assert ledger.registered(["R1"])["R1"]["region"] == "Y"
        with pytest.raises(LedgerError, match="time_zone"):
            ledger.registered_state_values({**row, "account_id": "R2", "time_zone": None}, at)


def test_the_gates_record_holds_the_state_a_decide_reads(ledger_url):
    """The record the gate judges carries the account's state exactly as a gRPC Decide reads it
    (:meth:`Ledger.state_record`): every state column, the GPS ones (last ping, offline hours,
    status) and the temporal patterns' alerts included, over a generated book and its history
    at three moments."""
    from kernel.ledger.gate import account_record
    from kernel.ledger.join import _RECORD_COLUMNS
    from kernel.ledger.ledger import instant_us
    from kernel.synth import iter_book_and_events
    batches = list(iter_book_and_events(150, 29, dt.date(2026, 11, 28)))
    book = pa.concat_tables([pa.Table.from_batches([b]) for b, _ in batches])
    events = pa.concat_tables([pa.Table.from_batches([e]) for _, e in batches])
    zones = dict(zip(book["account_id"].to_pylist(), book["time_zone"].to_pylist()))
    with_gps = 0
    with Ledger(ledger_url) as ledger:
        ledger.register(book)
        ledger.ingest(events)
        for moment in (dt.datetime(2026, 11, 28, 2, tzinfo=UTC), dt.datetime(2026, 11, 28, 14, 30, tzinfo=UTC),
                       dt.datetime(2026, 11, 29, 23, 50, tzinfo=UTC)):
            at_us = instant_us(moment)
            reads = {account: ledger.state_record(account, zone, at_us) for account, zone in zones.items()}
            with ledger.store.transaction(lock_account=None, synced=False) as cur:
                for account, read in reads.items():
                    judged = account_record(ledger.store, cur, account, at_us, ledger.settings)
                    for name, _ in _RECORD_COLUMNS:
                        assert judged[name] == read[name], (account, moment, name)
                    with_gps += read["gps_last_ping_at"] is not None
    assert with_gps > 30, with_gps                       # the GPS columns were compared, not only nulls


def test_gate_rows_read_what_registered_in_and_account_rows_read(ledger_url):
    """The gate's read (:meth:`Store.gate_rows`, on SQLite one statement carrying the
    registration as a row) gives exactly :meth:`Store.registered_in` and
    :meth:`Store.account_rows`: every combination of true / false / null registered flags,
    texts that look like numbers kept as texts, accounts with and without events, reservations
    and GPS state, with and without the offline periods; nothing for an account never
    registered."""
    import itertools

    from kernel.ledger.ledger import instant_us
    flags = list(itertools.product((True, False, None), repeat=4))
    rows = [{"account_id": f"G{i}", "time_zone": "Asia/Shanghai" if i % 2 else "America/New_York",
             "country": "CN" if i % 3 else None, "region": "110000" if i % 4 else "1.5e3",
             "product": None if i % 5 == 0 else "NEW_CAR_LOAN", "phone_valid": f[0], "has_third_party_contact": f[1],
             "consent_automated_contact": f[2], "contact_opt_out": f[3]} for i, f in enumerate(flags)]
    names = list(rows[0])
    book = pa.table({n: pa.array([r[n] for r in rows], pa.bool_() if n in ("phone_valid", "has_third_party_contact",
                     "consent_automated_contact", "contact_opt_out") else pa.string()) for n in names})
    pings = [{"event_id": f"p{i}_{k}", "account_id": f"G{i}", "kind": "GPS_PING",
              "at": CN_MORNING - dt.timedelta(hours=30 - 12 * k), "lat": 31.2, "lon": 121.4}
             for i in range(0, len(rows), 3) for k in range(3)]
    with Ledger(ledger_url) as ledger:
        ledger.register(book)
        ledger.ingest(table([attempt(f"a{i}_{k}", f"G{i}", CN_MORNING - dt.timedelta(hours=5 * k + 1),
                                     ("NO_ANSWER", "RIGHT_PARTY")[k % 2]) for i in range(0, len(rows), 2)
                             for k in range(4)]), now=CN_MORNING)
        ledger.ingest(pa.table({"event_id": [p["event_id"] for p in pings],
                                "account_id": [p["account_id"] for p in pings],
                                "kind": [p["kind"] for p in pings], "at": pa.array([p["at"] for p in pings], TS),
                                "lat": [p["lat"] for p in pings], "lon": [p["lon"] for p in pings]}), now=CN_MORNING)
        at = instant_us(CN_MORNING)
        s = ledger.settings
        store = ledger.store
        with store.transaction(lock_account=None, synced=False) as cur:
            store.add_reservation(cur, "r1", "G1", 1, at - 60_000_000, at + 600_000_000, at - 60_000_000)
        seen = set()
        with store.transaction(lock_account=None, synced=False) as cur:
            for r in rows:
                for offline_since in (None, at - 86_400_000_000):
                    got = store.gate_rows(cur, r["account_id"], at, at - s.lookback_us, offline_since)
                    registered = store.registered_in(cur, r["account_id"])
                    assert got == (registered, *store.account_rows(cur, r["account_id"], at, at - s.lookback_us,
                                                                     offline_since)), r
                    assert registered == tuple(r[n] for n in names[1:])
                    seen.add((bool(got[1]), got[2] is not None))
            assert store.gate_rows(cur, "NOBODY", at, at - s.lookback_us, None) == (None, [], None, [])
        # a gRPC Decide's read of an account new to the process: the same, and the rows of an
        # account never registered too
        ledger.ingest(table([attempt("u1", "UNREGISTERED", CN_MORNING - dt.timedelta(hours=2), "NO_ANSWER")]),
                      now=CN_MORNING)
        for account in [r["account_id"] for r in rows] + ["UNREGISTERED", "NOBODY"]:
            for offline_since in (at + 1, at - 86_400_000_000):
                with store.reading() as cur:
                    expected = (store.registered_in(cur, account),
                                *store.account_rows(cur, account, at, at - s.lookback_us, offline_since))
                assert store.registered_rows_now(account, at, at - s.lookback_us, offline_since) == expected, account
        assert store.registered_rows_now("UNREGISTERED", at, at - s.lookback_us, at + 1)[:2] == (None, [
            (1, instant_us(CN_MORNING - dt.timedelta(hours=2)), None, None, 0, 0, None)])
    assert seen == {(True, True), (True, False), (False, True), (False, False)}, seen


def test_the_straight_record_keeps_the_books_value_where_the_state_says_nothing(ledger_url, judge):
    """The gate's record made straight from the fold's outputs keeps a registered book column
    (consent to automated contact, the opt-out) where the ledger's state is null — an account
    with no consent event, one with no event at all — and takes the state's value where it is
    not (a consent revoked, an opt-out): as the merged record does, and the verdicts follow."""
    from kernel.ledger.gate import GATED_CHANNELS, _state_of, account_record
    from kernel.ledger.ledger import instant_us
    at = CN_MORNING
    with Ledger(ledger_url) as ledger:
        for account, consent, opt_out in (("K1", True, False), ("K2", False, True), ("K3", True, False),
                                          ("K4", False, False)):
            register(ledger, account, "CN", "Asia/Shanghai", consent_automated_contact=consent, contact_opt_out=opt_out)
        ledger.ingest(table([attempt("e1", "K1", at - dt.timedelta(hours=30), "NO_ANSWER"),
                             {"event_id": "e3", "account_id": "K3", "kind": "CONSENT_REVOKED",
                              "at": at - dt.timedelta(hours=3), "channel": "SMS"},
                             {"event_id": "e4", "account_id": "K4", "kind": "OPT_OUT",
                              "at": at - dt.timedelta(hours=3), "channel": "PHONE"}]), now=at)
        s, at_us = ledger.settings, instant_us(at)
        seen = {}
        with ledger.store.transaction(lock_account=None, synced=False) as cur:
            for account in ("K1", "K2", "K3", "K4"):
                for action in GATED_CHANNELS.values():
                    fewer = _state_of(judge, action)
                    straight = account_record(ledger.store, cur, account, at_us, s, fewer)
                    merged = account_record(ledger.store, cur, account, at_us, s, (*fewer[:2], None))
                    assert list(straight.items()) == list(merged.items()), (account, action)
                    seen[account, action] = (straight["consent_automated_contact"], straight["contact_opt_out"])
                    assert judge(straight, action, at) == judge(merged, action, at)
    # the book's where the state says nothing (K1: no consent event; K2: no event at all), the state's else
    # (the consent as an SMS's policies read it, the opt-out as a phone call's)
    assert {a: (seen[a, "SMS"][0], seen[a, "PHONE"][1]) for a in ("K1", "K2", "K3", "K4")} == {
        "K1": (True, False), "K2": (False, True), "K3": (False, False), "K4": (False, True)}, seen


def test_a_zone_zoneinfo_does_not_know_is_refused_when_registered_and_named_when_stored(ledger_url, judge):
    """Registering a book (or one record) with a time zone zoneinfo does not know is refused
    naming the field, the row, the account and the zone, and nothing is written; an account
    whose stored registration holds one (a ledger written before the check) is named by the
    gate and the state — not a local-time error nor a policy's PLUGIN_ERROR block."""
    with Ledger(ledger_url) as ledger:
        book = {"account_id": ["Z1", "Z2", "Z3"], "time_zone": ["Asia/Shanghai", "Mars/Olympus", "UTC+8"],
                "country": ["CN"] * 3, "region": ["X"] * 3, "product": ["NEW_CAR_LOAN"] * 3, "phone_valid": [True] * 3,
                "has_third_party_contact": [True] * 3, "consent_automated_contact": [True] * 3,
                "contact_opt_out": [False] * 3}
        with pytest.raises(LedgerError, match=r"^time_zone: row 1 \(account 'Z2'\): 'Mars/Olympus' is not an IANA"):
            ledger.register(pa.table(book))
        with pytest.raises(LedgerError, match=r"^time_zone: row 2 \(account 'Z3'\): required"):
            ledger.register({**book, "time_zone": ["Asia/Shanghai", "Asia/Shanghai", None]})
        with pytest.raises(LedgerError, match=r"^account 'Z2': time_zone: 'UTC\+8' is not an IANA time zone"):
            ledger.register_record({k: v[1] for k, v in book.items()} | {"time_zone": "UTC+8"})
        assert ledger.registered(["Z1", "Z2", "Z3"]) == {}
        assert ledger.register({**book, "time_zone": ["Asia/Shanghai", "America/New_York", "posixrules"]}) == 3
        # a stored registration with an unknown zone, as an older ledger may hold
        stored = ledger.store.registered(["Z2"])["Z2"][1:]
        ledger.store.register([("Z2", "Mars/Olympus", *(int(v) if type(v) is bool else v for v in stored))], 0)
        for ask in (lambda: ledger.check_contact("Z2", "PHONE", CN_MORNING, judge, now=CN_MORNING),
                    lambda: ledger.state(CN_MORNING, ["Z1", "Z2"])):
            with pytest.raises(LedgerError, match=r"^account 'Z2': its registered time_zone: 'Mars/Olympus' is not"):
                ask()
        assert ledger.check_contact("Z1", "PHONE", CN_MORNING, judge, now=CN_MORNING).outcome == "KEEP"
