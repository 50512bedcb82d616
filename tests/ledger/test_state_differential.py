"""The compiled state fold against the plain-Python reference, over generated histories."""
from __future__ import annotations

import datetime as dt

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from kernel.hookspecs import NULL_TIME
from kernel.ledger.fold import FLOAT_COLUMNS, INT_COLUMNS
from kernel.ledger.patterns import ALERT_COLUMNS, lookback_us
from kernel.ledger.reference import Event, reference_state
from kernel.ledger.state import StateSettings, derive, derive_one
from kernel.ledger.store import EventColumns
from kernel.schema import ENUMS

DAY = 86_400_000_000
HOUR = 3_600_000_000
AT = int(dt.datetime(2026, 11, 28, 2, tzinfo=dt.timezone.utc).timestamp()) * 1_000_000
ZONES = ("Asia/Shanghai", "America/New_York", "America/Los_Angeles", "UTC")
KINDS = ENUMS["event_kind"]
NEEDS = {"PAYMENT": "amount", "PROMISE_TO_PAY": "promise", "CONTACT_ATTEMPT": "contact", "VEHICLE_SOLD": "amount",
         "INSURANCE_RENEWED": "expiry", "CONSENT_GRANTED": "consent", "CONSENT_REVOKED": "consent",
         "OPT_OUT": "consent"}


@st.composite
def an_event(draw):
    # contact attempts, payments and promises carry most of the logic: drawn more often
    kind = draw(st.sampled_from([k for k in KINDS if k != "GPS_PING"] + ["CONTACT_ATTEMPT"] * 8
                                + ["PAYMENT", "PROMISE_TO_PAY"] * 3))
    # instants clustered near the moment (today, yesterday, the week) and spread over the look-back
    at = AT - draw(st.one_of(st.integers(0, DAY), st.integers(0, 8 * DAY), st.integers(0, 120 * DAY)))
    at -= at % 60_000_000 * draw(st.booleans())          # some ties on whole minutes
    need = NEEDS.get(kind)
    e = dict(kind=kind, at=at)
    if need == "amount":
        e["amount"] = float(draw(st.integers(1, 50)) * 50)
    elif need == "promise":
        e["amount"] = float(draw(st.integers(1, 20)) * 100)
        e["promise_date"] = at // DAY + draw(st.integers(-1, 20))
    elif need == "contact":
        e["channel"] = draw(st.sampled_from(ENUMS["contact_channel"]))
        e["outcome"] = draw(st.sampled_from(ENUMS["contact_outcome"]))
    elif need == "expiry":
        e["expiry_date"] = at // DAY + draw(st.integers(0, 400))
    elif need == "consent":
        e["channel"] = draw(st.sampled_from((None, "PHONE", "SMS", "VOICE_BOT", "EMAIL")))
    return Event(**e)


def columns(events_by_account: list[list[Event]]) -> EventColumns:
    rows = []
    for a, events in enumerate(events_by_account):
        for e in events:
            rows.append((f"A{a}", ENUMS["event_kind"].index(e.kind), e.at, e.amount if e.amount is not None else None,
                         e.promise_date, ENUMS["contact_channel"].index(e.channel) if e.channel else None,
                         ENUMS["contact_outcome"].index(e.outcome) if e.outcome else None, e.expiry_date))
    return EventColumns.from_rows([tuple(np.nan if (i == 3 and v is None) else v for i, v in enumerate(r))
                                   for r in rows])


def as_fold(name: str, value):
    """A reference value in the fold's representation."""
    if name in ALERT_COLUMNS:
        return NULL_TIME if value is None else int(value)
    if name in ("gps_status",):
        return -1 if value is None else ENUMS["gps_status"].index(value)
    if name == "repossession_stage":
        return ENUMS["repossession_stage"].index(value)
    if name.startswith("consent_"):
        return -1 if value is None else int(value)
    if value is None:
        return NULL_TIME if name in INT_COLUMNS else np.nan
    return int(value) if name in INT_COLUMNS else float(value)


#: a car's pings: its last ping `ago` before the moment (negative: after it), and going back
#: from there (online time, offline period) pairs; the first ping before the earliest
a_car = st.tuples(st.integers(-2 * DAY, 10 * DAY),
                  st.lists(st.tuples(st.integers(0, 6 * DAY), st.integers(HOUR // 2 + 1, 80 * HOUR)), max_size=4))


def gps_history(ago: int, pairs) -> tuple[int, int, list[tuple[int, int]]]:
    """(first ping, last ping, offline periods) of a car."""
    last = t = AT - ago
    gaps = []
    for online, offline in pairs:
        gaps.append((t - online - offline, t - online))
        t -= online + offline
    return t - HOUR, last, gaps


def gps_columns(accounts, cars):
    """The store's reduced GPS state (read_gps) and offline periods (offline_periods)."""
    have = [(a, *gps_history(*car)) for a, car in zip(accounts, cars) if car is not None]
    holding = [next((f for f, t in gaps if f <= AT < t), NULL_TIME) for _, _, _, gaps in have]
    gps = (np.array([h[0] for h in have], dtype=object), np.array([h[1] for h in have], np.int64),
           np.array([h[2] for h in have], np.int64), np.array(holding, np.int64))
    rows = [(a, f, t) for a, _, _, gaps in have for f, t in gaps]
    offline = (np.array([r[0] for r in rows], dtype=object), np.array([r[1] for r in rows], np.int64),
               np.array([r[2] for r in rows], np.int64))
    return gps, offline


def last_ping_at(first: int, last: int, gaps) -> int | None:
    """The last ping at or before the moment, from its definition."""
    if first > AT:
        return None
    if last <= AT:
        return last
    return next((f for f, t in gaps if f <= AT < t), AT)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories=st.lists(st.lists(an_event(), max_size=25), min_size=1, max_size=4),
       zones=st.lists(st.sampled_from(ZONES), min_size=4, max_size=4),
       cars=st.lists(st.one_of(st.none(), a_car), min_size=4, max_size=4),
       grace=st.integers(0, 3))
def test_fold_equals_reference(histories, zones, cars, grace):
    settings_ = StateSettings(promise_grace_days=grace)
    n = len(histories)
    accounts = [f"A{a}" for a in range(n)]
    gps_state, offline = gps_columns(accounts, cars[:n])
    got = derive(columns(histories), accounts, zones[:n], AT, settings_, gps_state, offline)
    for a, events in enumerate(histories):
        first, last, gaps = gps_history(*cars[a]) if cars[a] is not None else (None, None, [])
        want = reference_state(events, zones[a], AT, settings_,
                               gps_last=None if first is None else last_ping_at(first, last, gaps),
                               gaps=gaps, last_ping=last)
        for name in INT_COLUMNS + ALERT_COLUMNS:
            assert got[name][a] == as_fold(name, want[name]), (name, a, events)
        for name in FLOAT_COLUMNS:
            w = as_fold(name, want[name])
            assert (np.isnan(w) and np.isnan(got[name][a])) or abs(got[name][a] - w) < 1e-6, (name, a, events)


def test_arrival_order_never_changes_the_state():
    rng = np.random.default_rng(7)
    events = [Event("PAYMENT", AT - 3 * DAY, amount=100.0), Event("PROMISE_TO_PAY", AT - 4 * DAY, amount=100.0,
                                                                 promise_date=(AT - 2 * DAY) // DAY),
              Event("CONTACT_ATTEMPT", AT - 3600_000_000, channel="PHONE", outcome="RIGHT_PARTY"),
              Event("CONTACT_ATTEMPT", AT - 7200_000_000, channel="PHONE", outcome="NO_ANSWER"),
              Event("DISPUTE_OPENED", AT - DAY), Event("DISPUTE_RESOLVED", AT - DAY)]
    first = derive(columns([events]), ["A0"], ["Asia/Shanghai"], AT, StateSettings())
    for _ in range(10):
        shuffled = [events[i] for i in rng.permutation(len(events))]
        again = derive(columns([shuffled]), ["A0"], ["Asia/Shanghai"], AT, StateSettings())
        for name in INT_COLUMNS + FLOAT_COLUMNS:
            assert np.array_equal(first[name], again[name], equal_nan=True), name
    assert first["promises_kept_90d"][0] == 1 and first["consecutive_failed_attempts"][0] == 0


def test_one_account_path_equals_the_batch_path(ledger_url):
    """derive_one over the store's ordered rows (the Decide and gate path) equals derive over
    the same events (the batch path), column for column."""
    import pyarrow as pa

    from kernel.ledger import Ledger
    rng = np.random.default_rng(5)
    kinds = [k for k in KINDS if k not in ("GPS_PING",)]
    rows = []
    for i in range(40):                      # pings with silences: offline periods for the patterns
        rows.append({"event_id": f"g{i}", "account_id": f"A{i % 3}", "kind": "GPS_PING",
                     "at": AT - int(rng.integers(0, 20 * DAY))})
    for i in range(300):
        kind = kinds[rng.integers(len(kinds))] if i % 3 else "CONTACT_ATTEMPT"
        at = AT - int(rng.integers(0, 100 * DAY))
        e = {"event_id": f"e{i}", "account_id": f"A{i % 7}", "kind": kind, "at": at}
        need = NEEDS.get(kind)
        if need == "amount":
            e["amount"] = float(rng.integers(1, 40) * 25)
        elif need == "promise":
            e["amount"], e["promise_date"] = 300.0, int(at // DAY + rng.integers(0, 10))
        elif need == "contact":
            e["channel"] = ENUMS["contact_channel"][rng.integers(7)]
            e["outcome"] = ENUMS["contact_outcome"][rng.integers(7)]
        elif need == "expiry":
            e["expiry_date"] = int(at // DAY + 300)
        rows.append(e)
    types = {"at": pa.timestamp("us", tz="UTC"), "promise_date": pa.date32(), "expiry_date": pa.date32(),
             "amount": pa.float64()}
    names = sorted({k for r in rows for k in r})
    table = pa.table({n: pa.array([r.get(n) for r in rows], types.get(n, pa.string())) for n in names})
    with Ledger(ledger_url) as ledger:
        assert not ledger.ingest(table, now=AT).rejected
        accounts = [f"A{i}" for i in range(7)]
        zones = ["Asia/Shanghai", "America/New_York", "UTC", "America/Los_Angeles", "Asia/Shanghai", "UTC", "UTC"]
        batch = ledger.state_columns(accounts, zones, AT)
        for a, (account, zone) in enumerate(zip(accounts, zones)):
            one = ledger.state_values(account, zone, AT)
            alerts = [name for name in batch if name.startswith("alert_")]
            assert alerts
            for name in INT_COLUMNS + FLOAT_COLUMNS + tuple(alerts):
                assert np.array_equal(batch[name][a], one[name], equal_nan=True), (account, name)
            # without the pattern pass (the gate whose policies read no alert): every other
            # column the same, no alert column
            s = ledger.settings
            rows, gps, offline = ledger.store.account_rows(None, account, AT, AT - s.lookback_us,
                                                           AT - lookback_us(s))
            fewer = derive_one(rows, zone, AT, s, gps, offline, ordered=True, patterns=False)
            assert set(fewer) == {name for name in one if not name.startswith("alert_")}
            for name, value in fewer.items():
                assert np.array_equal(value, one[name], equal_nan=True), (account, name)


@st.composite
def a_pattern_event(draw):
    """The kinds the temporal patterns read, dense in the last weeks (so that matches happen)."""
    kind = draw(st.sampled_from(("PAYMENT", "PROMISE_TO_PAY", "CONTACT_ATTEMPT", "GPS_TAMPER", "GEOFENCE_EXIT")))
    # whole half days back over 40 days (a few over 100), less 0, 1 µs or an hour: windows of
    # whole hours and days meet their edges exactly, or miss them by 1 µs; ties are common
    at = AT - draw(st.one_of(st.integers(0, 80), st.integers(0, 200))) * DAY // 2
    at -= draw(st.sampled_from((0, 1, HOUR)))
    if kind == "PAYMENT":
        return Event(kind, at, amount=float(draw(st.integers(1, 6)) * 100))
    if kind == "PROMISE_TO_PAY":
        return Event(kind, at, amount=float(draw(st.integers(1, 6)) * 100), promise_date=at // DAY + 5)
    if kind == "CONTACT_ATTEMPT":
        return Event(kind, at, channel="PHONE", outcome=draw(st.sampled_from(("RIGHT_PARTY", "NO_ANSWER"))))
    return Event(kind, at)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories=st.lists(st.tuples(st.lists(a_pattern_event(), max_size=12), st.lists(an_event(), max_size=2))
                          .map(lambda drawn: drawn[0] + drawn[1]), min_size=1, max_size=4),
       cars=st.lists(st.one_of(st.none(), a_car), min_size=4, max_size=4),
       offline_after=st.sampled_from((0.5, 2.0, 24.0)),
       windows=st.fixed_dictionaries({}, optional={
           "gps_offline_then_exit": st.fixed_dictionaries({}, optional={
               "exit_within_hours": st.sampled_from((1, 12, 36, 240)), "lookback_days": st.sampled_from((3, 30))}),
           "promise_partial_silence": st.fixed_dictionaries({}, optional={
               "payment_within_days": st.sampled_from((1, 10, 30)), "silence_days": st.sampled_from((0.5, 3, 7)),
               "lookback_days": st.sampled_from((14, 90))})}))
def test_alerts_equal_reference(histories, cars, offline_after, windows):
    """The alerts on histories dense in the kinds the patterns read, with their windows
    configured ([ledger.patterns]) and the offline threshold varied."""
    settings_ = StateSettings.from_config({"ledger": {"gps_offline_after_hours": offline_after,
                                                      "patterns": windows}})
    n = len(histories)
    accounts = [f"A{a}" for a in range(n)]
    gps_state, offline = gps_columns(accounts, cars[:n])
    got = derive(columns(histories), accounts, ["UTC"] * n, AT, settings_, gps_state, offline)
    for a, events in enumerate(histories):
        first, last, gaps = gps_history(*cars[a]) if cars[a] is not None else (None, None, [])
        want = reference_state(events, "UTC", AT, settings_, gaps=gaps, last_ping=last)
        for name in ALERT_COLUMNS:
            assert got[name][a] == as_fold(name, want[name]), (name, a, events, gaps, last)


def _fold_rows(events: list[Event]) -> list[tuple]:
    """One account's events as the store's rows (derive_one's input), in the fold's order."""
    from kernel.ledger.state import _order
    rows = [(KINDS.index(e.kind), e.at, e.amount, e.promise_date,
             ENUMS["contact_channel"].index(e.channel) if e.channel else None,
             ENUMS["contact_outcome"].index(e.outcome) if e.outcome else None, e.expiry_date) for e in events]
    return sorted(rows, key=_order)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(an_event(), max_size=20), zone=st.sampled_from(ZONES), car=st.one_of(st.none(), a_car),
       steps=st.lists(st.integers(-40, 40), min_size=5, max_size=25))
def test_one_account_values_kept_per_fold_output_equal_the_batch_path(events, zone, car, steps):
    """derive_one keeps the values (and merge_record their record scalars) of each fold output
    it saw: asked at moments hours apart, back and forth over day boundaries and the same
    moment again (hits, then misses as the windows slide), every answer equals the batch path
    at that moment, and the merged record equals the one merged from a plain dict."""
    from kernel.ledger.join import book_state_record, join_record, join_state_record, merge_record
    s = StateSettings()
    rows = _fold_rows(events)
    record = {"account_id": "A0", "time_zone": zone, "call_attempts_today": 2, "gps_status": "ONLINE",
              "consent_automated_contact": True}
    book = book_state_record(record, dt.date(2026, 11, 27))
    for step in steps + steps[:3]:
        at = AT + step * 3 * HOUR
        if car is None:
            gps = offline = None
            one = derive_one(rows, zone, at, s, None, [], ordered=True, remember=True)
        else:
            first, last, gaps = gps_history(*car)
            holding = next((f for f, t in gaps if f <= at < t), NULL_TIME)
            since = at - lookback_us(s)
            gps = (np.array(["A0"], dtype=object), np.array([first]), np.array([last]), np.array([holding]))
            recent = [(f, t) for f, t in gaps if since <= f <= at]
            offline = (np.array(["A0"] * len(recent), dtype=object), np.array([f for f, _ in recent], np.int64),
                       np.array([t for _, t in recent], np.int64))
            one = derive_one(rows, zone, at, s, (first, last, holding), recent, ordered=True, remember=True)
        batch = derive(columns([events]), ["A0"], [zone], at, s, gps, offline)
        for name, value in one.items():
            assert np.array_equal(batch[name][0], value, equal_nan=True), (name, at)
        assert merge_record(book, one) == merge_record(book, dict(one))
        assert merge_record(book, one, "ignore") == merge_record(book, dict(one), "ignore")
        joined = join_state_record(record, dt.date(2026, 11, 27), one)     # the gRPC Decide's straight join
        assert list(joined.items()) == list(join_record(record, merge_record(book, dict(one))).items())


def test_local_day_of_equals_local_days_across_offset_changes():
    """The one-instant "today" from the span of the zone's last answer equals local_days,
    at every local midnight (±1 µs) and offset change (±1 µs, ±1 h) of a year and a half, in
    zones whose clocks change at midnight too, visited forwards, backwards and at random."""
    import zoneinfo

    from kernel.ledger.state import _local_day_of
    rng = np.random.default_rng(3)
    start = dt.datetime(2025, 12, 1)
    for zone in ("America/Havana", "America/Santiago", "America/New_York", "Asia/Shanghai", "UTC", "Europe/London"):
        info = zoneinfo.ZoneInfo(zone)
        instants = []
        previous = None
        for d in range(540):
            local = start + dt.timedelta(days=d)
            midnight = int(local.replace(tzinfo=info).timestamp()) * 1_000_000
            instants += [midnight - 1, midnight, midnight + 1]
            offset = local.replace(tzinfo=info).utcoffset()
            if previous is not None and offset != previous:      # a change that day: find it to the µs
                lo, hi = midnight - DAY, midnight + DAY
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    at = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=mid)
                    lo, hi = (mid, hi) if at.astimezone(info).utcoffset() == previous else (lo, mid)
                instants += [hi + x for x in (-HOUR, -1, 0, 1, HOUR)]
            previous = offset
        shuffled = [instants[i] for i in rng.permutation(len(instants))]
        for t in instants + instants[::-1] + shuffled:
            assert _local_day_of(zone, t) == int(local_days_of(zone, t)), (zone, t)


def local_days_of(zone: str, instant: int) -> int:
    from kernel.ledger.state import local_days
    return local_days(np.array([instant], np.int64), [zone], np.zeros(1, np.int64))[0]
