"""Temporal patterns: the compiled matcher, the plain-Python reference and durable_rules agree.

Each scenario below sits on an edge of a pattern's definition (a window met exactly or
missed by 1 µs, ties, breakers, a period still going on…) and runs through all three; a seeded
history of 1,000 accounts (durable_rules holds at most 1,024 live sessions per ruleset) runs
through the compiled matcher and durable_rules with every session kept live. The end-to-end
tests go through a SQLite ledger: pings reduced to offline periods, events, state, a ruleset
that reads an alert.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import random

import numpy as np
import pyarrow as pa
import pytest

import kernel
from kernel.errors import PostloanError
from kernel.hookspecs import NULL_TIME
from kernel.ledger import Ledger
from kernel.ledger import patterns as P
from kernel.ledger.durable_peer import DurableProcess, fact, unavailable
from kernel.ledger.join import book_state, with_state
from kernel.ledger.reference import Event, reference_alerts
from kernel.ledger.state import StateSettings, derive
from kernel.ledger.store import EventColumns
from kernel.schema import ENUMS, arrow_schema

DAY = 86_400_000_000
HOUR = 3_600_000_000
AT = int(dt.datetime(2026, 11, 28, 2, tzinfo=dt.timezone.utc).timestamp()) * 1_000_000
UTC = dt.timezone.utc
GPS, PROMISE = "alert_gps_offline_then_exit", "alert_promise_partial_silence"

#: the [ledger] settings the scenarios use, by name; durable_rules makes one peer for each
#: when its child process starts (it crashes on rulesets registered after facts failed to join)
CONFIGS = {
    "default": {},
    "narrow": {"patterns": {"gps_offline_then_exit": {"exit_within_hours": 12}}},
    "short": {"patterns": {"gps_offline_then_exit": {"lookback_days": 4}}},
    "strict": {"gps_offline_after_hours": 4.0},
    "quick": {"patterns": {"promise_partial_silence": {"silence_days": 3}}},
}
SETTINGS = {name: StateSettings.from_config({"ledger": config}) for name, config in CONFIGS.items()}


@pytest.fixture(scope="module")
def durable():
    """durable_rules in a child process: a peer per configuration, one for 1,000 live
    accounts, one to fill until it refuses a session."""
    if unavailable():            # Python 3.13: the compiled matcher and the reference still agree
        yield None
        return
    peers = {name: {"ledger": config} for name, config in CONFIGS.items()}
    peers["live"] = {"ledger": {}}
    peers["limit"] = {"ledger": {}, "patterns": ["gps_offline_then_exit"]}
    with DurableProcess(peers) as process:
        yield process


@pytest.fixture
def peer(durable):
    """durable_rules itself, for the tests about it: skipped where it does not import."""
    if durable is None:
        pytest.skip(unavailable())
    return durable


# ------------------------------------------------------------------ the three engines
def event_columns(histories: dict[str, list[Event]]) -> EventColumns:
    rows = []
    for account, events in histories.items():
        for e in events:
            rows.append((account, ENUMS["event_kind"].index(e.kind), e.at, np.nan if e.amount is None else e.amount,
                         e.promise_date, None if e.channel is None else ENUMS["contact_channel"].index(e.channel),
                         None if e.outcome is None else ENUMS["contact_outcome"].index(e.outcome), e.expiry_date))
    return EventColumns.from_rows(rows)


def gps_inputs(cars: dict[str, tuple[list[tuple[int, int]], int | None]], at: int):
    """The store's reduced GPS state and offline periods for ``cars`` (account → (gaps, last ping))."""
    have = [(a, gaps, last) for a, (gaps, last) in cars.items() if last is not None]
    first = [min([last] + [f for f, _ in gaps]) - HOUR for _, gaps, last in have]
    holding = [next((f for f, t in gaps if f <= at < t), NULL_TIME) for _, gaps, _ in have]
    gps = (np.array([a for a, _, _ in have], dtype=object), np.array(first, np.int64),
           np.array([last for _, _, last in have], np.int64), np.array(holding, np.int64))
    rows = [(a, f, t) for a, gaps, _ in have for f, t in gaps]
    offline = (np.array([r[0] for r in rows], dtype=object), np.array([r[1] for r in rows], np.int64),
               np.array([r[2] for r in rows], np.int64))
    return gps, offline


def compiled(histories, cars, at, settings):
    accounts = list(histories)
    gps, offline = gps_inputs(cars, at)
    state = derive(event_columns(histories), accounts, ["Asia/Shanghai"] * len(accounts), at, settings, gps, offline)
    return {a: {c: (None if state[c][i] == NULL_TIME else int(state[c][i])) if c.endswith("_at")
                else bool(state[c][i]) for c in P.ALERT_COLUMNS} for i, a in enumerate(accounts)}


def durable_facts(events: list[Event], gaps, last_ping, at) -> list[dict]:
    """An account's events and offline periods (up to the moment) as durable_rules facts."""
    facts = [fact(i, e.kind, e.at, e.amount, e.channel, e.outcome) for i, e in enumerate(events)]
    periods = [(f, min(t, at)) for f, t in gaps if f <= at]
    if last_ping is not None and last_ping <= at:
        periods.append((last_ping, at))
    facts += [fact(f"gap{j}", "GPS_OFFLINE", f, hours=(t - f) / HOUR) for j, (f, t) in enumerate(periods)]
    return facts


_sids = iter(range(10**9))


def three(durable, events: list[Event], *, gaps=(), last_ping=None, at=AT, config="default") -> dict:
    """One account's alerts from the compiled matcher, the reference and durable_rules; they must agree."""
    settings = SETTINGS[config]
    got = compiled({"A": events}, {"A": (list(gaps), last_ping)}, at, settings)["A"]
    ref = reference_alerts(sorted(events, key=lambda e: e.at), at, settings, list(gaps), last_ping)
    assert got == ref, ("compiled", got, "reference", ref)
    if durable is not None:
        sid = f"S{next(_sids)}"                         # an account (session) of its own in the peer
        peer = durable.run(config, {sid: durable_facts(events, gaps, last_ping, at)}, at)[0][sid]
        assert peer == ref, ("durable_rules", peer, "reference", ref)
    return got


def tamper(ago: int) -> Event:
    return Event("GPS_TAMPER", AT - ago)


def exit_(ago: int) -> Event:
    return Event("GEOFENCE_EXIT", AT - ago)


def promise(ago: int, amount: float = 1000.0) -> Event:
    return Event("PROMISE_TO_PAY", AT - ago, amount=amount, promise_date=(AT - ago) // DAY + 7)


def payment(ago: int, amount: float) -> Event:
    return Event("PAYMENT", AT - ago, amount=amount)


def call(ago: int, outcome: str) -> Event:
    return Event("CONTACT_ATTEMPT", AT - ago, channel="PHONE", outcome=outcome)


# ------------------------------------------------------------------ gps_offline_then_exit
def test_a_tamper_then_an_exit_within_48_hours_raises_the_alert_at_the_exit(durable):
    got = three(durable, [tamper(10 * DAY), exit_(10 * DAY - 5 * HOUR), exit_(9 * DAY)])
    assert got[GPS] and got[GPS + "_at"] == AT - 9 * DAY           # the latest exit of a match
    assert not got[PROMISE]


@pytest.mark.parametrize("gap, fires", [(48 * HOUR, True), (48 * HOUR + 1, False), (0, False), (-HOUR, False)])
def test_the_exit_comes_after_the_tracker_went_dark_and_within_the_window(durable, gap, fires):
    assert three(durable, [tamper(5 * DAY), exit_(5 * DAY - gap)])[GPS] is fires


@pytest.mark.parametrize("ago, fires", [(30 * DAY, True), (30 * DAY + 1, False)])
def test_the_tracker_went_dark_in_the_last_30_days(durable, ago, fires):
    assert three(durable, [tamper(ago), exit_(ago - HOUR)])[GPS] is fires


@pytest.mark.parametrize("length, fires", [(2 * HOUR, True), (2 * HOUR - 1, False)])
def test_an_offline_period_counts_from_gps_offline_after_hours(durable, length, fires):
    start = AT - 4 * DAY
    got = three(durable, [exit_(4 * DAY - HOUR)], gaps=[(start, start + length)], last_ping=AT - HOUR)
    assert got[GPS] is fires


def test_the_silence_after_the_last_ping_counts_once_it_is_long_enough(durable):
    events = [exit_(90 * 60_000_000)]                  # the car left 90 minutes ago
    assert three(durable, events, last_ping=AT - 2 * HOUR)[GPS]   # silent for 2 hours: offline
    assert not three(durable, events, last_ping=AT - 2 * HOUR + 1)[GPS]


def test_as_of_an_earlier_moment_a_period_counts_up_to_that_moment(durable):
    """The store's periods are as of now; as of an earlier moment, one still going on then
    counts up to that moment, and one that began later does not count."""
    start = AT - 10 * DAY
    gaps = [(start, start + 3 * DAY), (AT - 2 * DAY, AT - DAY)]
    events = [exit_(10 * DAY - 30 * 60_000_000), exit_(2 * DAY - HOUR)]
    assert three(durable, events, gaps=gaps, last_ping=AT - HOUR, at=start + 2 * HOUR)[GPS]
    assert not three(durable, events, gaps=gaps, last_ping=AT - HOUR, at=start + HOUR)[GPS]     # 1 hour offline then
    got = three(durable, events, gaps=gaps, last_ping=AT - HOUR)
    assert got[GPS + "_at"] == AT - 2 * DAY + HOUR


def test_windows_are_configured_per_pattern(durable):
    events = [tamper(5 * DAY), exit_(5 * DAY - 20 * HOUR)]
    assert three(durable, events)[GPS]
    assert not three(durable, events, config="narrow")[GPS]      # exit_within_hours = 12
    assert not three(durable, events, config="short")[GPS]       # lookback_days = 4


def test_the_offline_threshold_is_the_ledgers(durable):
    start = AT - 4 * DAY
    events, gaps = [exit_(4 * DAY - HOUR)], [(start, start + 3 * HOUR)]
    assert three(durable, events, gaps=gaps, last_ping=AT - HOUR)[GPS]
    assert not three(durable, events, gaps=gaps, last_ping=AT - HOUR, config="strict")[GPS]   # 4 hours


# ------------------------------------------------------------------ promise_partial_silence
def test_a_promise_a_partial_payment_then_seven_days_of_silence(durable):
    got = three(durable, [promise(20 * DAY), payment(15 * DAY, 300.0)])
    assert got[PROMISE] and got[PROMISE + "_at"] == AT - 15 * DAY + 7 * DAY
    assert not got[GPS]


@pytest.mark.parametrize("silent_for, fires", [(7 * DAY, True), (7 * DAY - 1, False)])
def test_the_silence_lasts_seven_days_up_to_the_moment(durable, silent_for, fires):
    assert three(durable, [promise(20 * DAY), payment(silent_for, 300.0)])[PROMISE] is fires


@pytest.mark.parametrize("amount, fires", [(999.99, True), (1000.0, False), (1500.0, False)])
def test_partial_means_smaller_than_the_promised_amount(durable, amount, fires):
    assert three(durable, [promise(20 * DAY), payment(15 * DAY, amount)])[PROMISE] is fires


@pytest.mark.parametrize("breaker, fires", [
    (call(10 * DAY, "RIGHT_PARTY"), False),             # a conversation after the partial payment
    (payment(10 * DAY, 1000.0), False),                 # another payment, not a partial one itself
    (call(10 * DAY, "NO_ANSWER"), True),                # an unanswered call is still silence
    (call(16 * DAY, "RIGHT_PARTY"), True),              # before the partial payment
    (call(15 * DAY, "RIGHT_PARTY"), True),              # at the same instant: not after it
    (Event("DISPUTE_OPENED", AT - 10 * DAY), True),     # not a kind the silence is about
])
def test_what_breaks_the_silence(durable, breaker, fires):
    assert three(durable, [promise(20 * DAY), payment(15 * DAY, 300.0), breaker])[PROMISE] is fires


def test_a_later_partial_payment_starts_its_own_silence(durable):
    got = three(durable, [promise(30 * DAY), payment(25 * DAY, 100.0), payment(12 * DAY, 200.0)])
    assert got[PROMISE] and got[PROMISE + "_at"] == AT - 12 * DAY + 7 * DAY


@pytest.mark.parametrize("after, fires", [(30 * DAY, True), (30 * DAY + 1, False), (0, False)])
def test_the_payment_comes_after_the_promise_within_30_days(durable, after, fires):
    assert three(durable, [promise(40 * DAY), payment(40 * DAY - after, 300.0)])[PROMISE] is fires


def test_a_payment_before_the_promise_is_not_its_partial_payment(durable):
    assert not three(durable, [payment(25 * DAY, 300.0), promise(20 * DAY)])[PROMISE]


def test_silence_and_payment_windows_are_configured(durable):
    events = [promise(20 * DAY), payment(5 * DAY, 300.0)]
    assert not three(durable, events)[PROMISE]
    got = three(durable, events, config="quick")                  # silence_days = 3
    assert got[PROMISE] and got[PROMISE + "_at"] == AT - 2 * DAY


# ------------------------------------------------------------------ many accounts, live sessions
def random_histories(n: int, seed: int):
    """Seeded histories of the kinds the patterns read, on a half-day grid (ties and window
    edges), with cars that ping, fall silent and come back."""
    rng = random.Random(seed)
    histories, cars = {}, {}
    for a in range(n):
        events = []
        for _ in range(rng.randrange(0, 20)):
            kind = rng.choice(("PAYMENT", "PROMISE_TO_PAY", "CONTACT_ATTEMPT", "GPS_TAMPER", "GEOFENCE_EXIT"))
            at = AT - rng.randrange(0, 80) * DAY // 2 - rng.choice((0, 1, HOUR))
            if kind == "PAYMENT":
                events.append(Event(kind, at, amount=rng.randrange(1, 7) * 100.0))
            elif kind == "PROMISE_TO_PAY":
                events.append(Event(kind, at, amount=rng.randrange(1, 7) * 100.0, promise_date=at // DAY + 5))
            elif kind == "CONTACT_ATTEMPT":
                events.append(Event(kind, at, channel="PHONE", outcome=rng.choice(("RIGHT_PARTY", "NO_ANSWER"))))
            else:
                events.append(Event(kind, at))
        last = t = AT - rng.randrange(-2 * DAY, 10 * DAY)
        gaps = []
        for _ in range(rng.randrange(0, 4)):
            online, offline = rng.randrange(0, 6 * DAY), rng.randrange(HOUR // 2 + 1, 80 * HOUR)
            gaps.append((t - online - offline, t - online))
            t -= online + offline
        histories[f"A{a:04d}"], cars[f"A{a:04d}"] = events, (gaps, last)
    return histories, cars


def test_a_thousand_accounts_live_in_durable_rules_agree_with_the_compiled_matcher(peer):
    durable = peer
    settings = StateSettings()
    histories, cars = random_histories(1_000, seed=11)
    got = compiled(histories, cars, AT, settings)
    facts = {a: durable_facts(histories[a], *cars[a], AT) for a in histories}
    theirs, _, _ = durable.run("live", facts, AT, keep=True)      # 1,000 sessions live at once: under 1,024
    assert theirs == got
    for a in list(histories)[:50]:
        ref = reference_alerts(sorted(histories[a], key=lambda e: e.at), AT, settings, *cars[a])
        assert ref == got[a], a
    fired = {c: sum(row[c] for row in got.values()) for c in (GPS, PROMISE)}
    assert fired[GPS] > 150 and fired[PROMISE] > 50, fired          # the sample exercises both


def test_durable_rules_holds_at_most_1024_live_accounts_per_ruleset(peer):
    """The measured limit that caps durable_rules as a live matcher (docs/ledger.md)."""
    durable = peer
    assert durable.limit("limit", AT) == (1_024, "MemoryError")


def test_durable_rules_in_arrival_order_misses_a_breaker_that_comes_later(peer):
    """Why the peer asserts facts newest first: in the order a live stream brings them, a
    payment after the partial one does not withdraw the partial match (none() is checked
    when the match forms), so durable_rules alerts where the definition does not."""
    durable = peer
    events = [promise(20 * DAY), payment(15 * DAY, 300.0), payment(10 * DAY, 50.0), payment(2 * DAY, 400.0)]
    assert not three(durable, events)[PROMISE]
    facts = {"oldest-first": durable_facts(events, (), None, AT)}
    assert durable.run("default", facts, AT, order="oldest")[0]["oldest-first"][PROMISE]


def test_arrival_order_never_changes_the_alerts():
    histories, cars = random_histories(200, seed=5)
    first = compiled(histories, cars, AT, StateSettings())
    rng = random.Random(3)
    shuffled = {a: rng.sample(events, len(events)) for a, events in reversed(histories.items())}
    again = compiled(shuffled, cars, AT, StateSettings())
    assert again == first


# ------------------------------------------------------------------ settings and specs
@pytest.mark.parametrize("patterns, message", [
    ({"gps_offline": {}}, "[ledger.patterns] 'gps_offline': unknown pattern (patterns: gps_offline_then_exit, "
                          "promise_partial_silence)"),
    ({"gps_offline_then_exit": {"within_hours": 12}},
     "[ledger.patterns.gps_offline_then_exit] 'within_hours': unknown setting (settings: exit_within_hours, "
     "lookback_days)"),
    ({"promise_partial_silence": {"silence_days": 0}},
     "[ledger.patterns.promise_partial_silence] silence_days: expected a number > 0, got 0"),
    ({"promise_partial_silence": {"silence_days": "7"}},
     "[ledger.patterns.promise_partial_silence] silence_days: expected a number > 0, got '7'"),
    ({"promise_partial_silence": {"silence_days": True}},
     "[ledger.patterns.promise_partial_silence] silence_days: expected a number > 0, got True"),
    ({"gps_offline_then_exit": {"lookback_days": 120}},
     "[ledger.patterns.gps_offline_then_exit] lookback_days = 120: above [ledger] lookback_days (90), "
     "how far back the ledger reads events"),
    ({"gps_offline_then_exit": 48}, "[ledger.patterns.gps_offline_then_exit]: expected a table of windows"),
    ([1], "[ledger.patterns]: expected a table of patterns"),
])
def test_pattern_settings_are_checked_with_errors_that_name_them(patterns, message):
    with pytest.raises(PostloanError) as e:
        StateSettings.from_config({"ledger": {"patterns": patterns}})
    assert str(e.value).startswith(message)


def test_a_longer_lookback_is_allowed_when_the_ledger_reads_that_far():
    s = StateSettings.from_config({"ledger": {"lookback_days": 180,
                                              "patterns": {"gps_offline_then_exit": {"lookback_days": 120}}}})
    assert P.windows(s.patterns)["gps_offline_then_exit"] == {"exit_within_hours": 48, "lookback_days": 120.0}


@pytest.mark.parametrize("change, message", [
    (dict(steps=()), "has no step"),
    (dict(steps=(P.Step((P.on("GPS_PING"),)),)), "'GPS_PING' is not an event kind"),
    (dict(steps=(P.Step((P.on("PAYMENT", amount=("<", P.PREVIOUS)),)),)), "PREVIOUS needs a step before"),
    (dict(steps=(P.Step((P.on("PAYMENT", colour=("==", 1)),)),)), "no field 'colour'"),
    (dict(steps=(P.Step((P.on("CONTACT_ATTEMPT", outcome=("==", "ANSWERED")),)),)), "'ANSWERED' is not one of"),
    (dict(lookback="lookback_weeks"), "window 'lookback_weeks' has no default"),
    (dict(name="not_declared"), "declare alert_not_declared (bool) and alert_not_declared_at (timestamp)"),
])
def test_a_spec_mistake_is_named(change, message):
    spec = dataclasses.replace(P.PATTERNS[0], **change)
    with pytest.raises(ValueError, match=f"pattern '{spec.name}': .*{message[:20]}"):
        P._check_spec(spec)


# ------------------------------------------------------------------ through a ledger
def _events(rows: list[dict]) -> pa.Table:
    schema = pa.schema([f for f in arrow_schema("events") if f.name != "recorded_at"])
    return pa.Table.from_pylist(rows, schema=schema)


def _instant(us: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(microseconds=us)


def test_through_a_ledger_pings_become_offline_periods_and_alerts(ledger_url):
    """Pings every 10 minutes, then 5 hours of silence in which the car leaves its geofence;
    a promise and a partial payment on another account; the alerts in the exported state."""
    ledger = Ledger(ledger_url)
    rows, t = [], AT - 3 * DAY
    for k in range(40):
        rows.append(dict(event_id=f"p{k}", account_id="CAR", kind="GPS_PING", at=_instant(t + k * 600_000_000)))
    dark = t + 39 * 600_000_000
    for k in range(10):
        rows.append(dict(event_id=f"q{k}", account_id="CAR", kind="GPS_PING",
                         at=_instant(dark + 5 * HOUR + k * 600_000_000)))
    rows.append(dict(event_id="x1", account_id="CAR", kind="GEOFENCE_EXIT", at=_instant(dark + 3 * HOUR)))
    rows.append(dict(event_id="pr", account_id="DEBTOR", kind="PROMISE_TO_PAY", at=_instant(AT - 20 * DAY),
                     amount=1000.0, promise_date=_instant(AT - 10 * DAY).date()))
    rows.append(dict(event_id="pa", account_id="DEBTOR", kind="PAYMENT", at=_instant(AT - 15 * DAY), amount=300.0))
    result = ledger.ingest(_events(rows), now=_instant(AT))
    assert result.accepted == len(rows) and not result.rejected
    assert [x.tolist() for x in ledger.store.offline_periods(["CAR"], AT - 30 * DAY, AT)] == \
        [["CAR"], [dark], [dark + 5 * HOUR]]                  # the 5-hour silence, from the pings
    state = {r["account_id"]: r for r in ledger.state(at=_instant(AT)).to_pylist()}
    assert state["CAR"][GPS] is True and state["CAR"][GPS + "_at"] == _instant(dark + 3 * HOUR)
    assert state["CAR"][PROMISE] is False and state["CAR"][PROMISE + "_at"] is None
    assert state["DEBTOR"][PROMISE] is True and state["DEBTOR"][PROMISE + "_at"] == _instant(AT - 8 * DAY)
    assert state["DEBTOR"][GPS] is False
    # as of an earlier moment: before the exit, no alert; at the exit (3 hours into the
    # silence, offline for 2 hours already) the alert
    early = {r["account_id"]: r for r in ledger.state(at=_instant(dark + 3 * HOUR - 1)).to_pylist()}
    assert early["CAR"][GPS] is False
    later = {r["account_id"]: r for r in ledger.state(at=_instant(dark + 3 * HOUR)).to_pylist()}
    assert later["CAR"][GPS] is True
    # a late breaker: a payment of the whole amount reported today for 10 days ago ends the silence
    ledger.ingest(_events([dict(event_id="late", account_id="DEBTOR", kind="PAYMENT", at=_instant(AT - 10 * DAY),
                                amount=1000.0)]), now=_instant(AT))
    assert ledger.state(at=_instant(AT), accounts=["DEBTOR"]).column(PROMISE).to_pylist() == [False]
    ledger.close()


def test_offline_periods_are_read_by_their_start(ledger_url):
    ledger = Ledger(ledger_url)
    with ledger.store.transaction() as cur:
        ledger.store.write_gps(cur, [], [("A", 100, 200), ("A", 300, 400), ("B", 150, 160)], [])
    store = ledger.store
    assert sorted(zip(*[x.tolist() for x in store.offline_periods(None, 100, 300)])) == \
        [("A", 100, 200), ("A", 300, 400), ("B", 150, 160)]
    assert [x.tolist() for x in store.offline_periods(["A"], 101, 1000)] == [["A"], [300], [400]]
    assert [x.tolist() for x in store.offline_periods(["C"], 0, 1000)] == [[], [], []]
    ledger.close()


def test_without_a_ledger_the_alerts_are_false(small_book):
    from kernel.hookspecs import Batch
    book = small_book.slice(0, 10)
    state = book_state(Batch(10, dt.date(2026, 11, 28), _instant(AT), [book]))
    for name in P.ALERT_COLUMNS:
        assert (state[name] == (NULL_TIME if name.endswith("_at") else 0)).all(), name
    joined = with_state(book, dt.date(2026, 11, 28), _instant(AT))
    assert joined.column(GPS).to_pylist() == [False] * 10
    assert joined.column(GPS + "_at").null_count == 10


def guide_example() -> str:
    """The rule-author guide's example of a ruleset reading an alert."""
    from pathlib import Path
    guide = (Path(__file__).resolve().parents[2] / "docs" / "rule-author-guide.md").read_text(encoding="utf-8")
    return "ruleset: hidden_car" + guide.split("ruleset: hidden_car", 1)[1].split("```", 1)[0]


def test_the_guides_example_passes_its_own_tests(tmp_path, capsys):
    from kernel.cli import main
    (tmp_path / "hidden_car.yaml").write_text(guide_example(), encoding="utf-8")
    assert main(["test", str(tmp_path / "hidden_car.yaml")]) == 0, capsys.readouterr()


def test_a_ruleset_reads_the_alert_with_the_books_dpd(ledger_url, small_book):
    """The rule-author guide's example: "while overdue" is the book's dpd, the sequence is the ledger's."""
    book = small_book.slice(0, 4)
    ids = book.column("account_id").to_pylist()
    ledger = Ledger(ledger_url)
    ledger.ingest(_events([dict(event_id=f"t{i}", account_id=a, kind="GPS_TAMPER", at=_instant(AT - 2 * DAY))
                           for i, a in enumerate(ids[:2])]
                          + [dict(event_id=f"x{i}", account_id=a, kind="GEOFENCE_EXIT", at=_instant(AT - DAY))
                             for i, a in enumerate(ids[:2])]), now=_instant(AT))
    book = book.set_column(book.schema.get_field_index("dpd"), "dpd", pa.array([15, 0, 15, 0], pa.int64()))
    joined = with_state(book, dt.date(2026, 11, 28), _instant(AT), ledger)
    assert joined.column(GPS).to_pylist() == [True, True, False, False]
    ruleset = kernel.compile_ruleset(guide_example())
    decided = ruleset.evaluate(joined, as_of=dt.date(2026, 11, 28))
    assert decided.column("hidden_car.hidden").to_pylist() == [True, False, False, False]
    ledger.close()
