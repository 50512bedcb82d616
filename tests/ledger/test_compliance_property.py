"""No action a rule forbids is ever KEEP: a property over generated books and event histories.

Each example takes accounts of a generated book (with the history the generator gives them),
adds events drawn by hypothesis — holds, consents, opt-outs, repossession steps, legal bases —
picks a moment (quiet hours, the edges of the US window, office hours), decides every account
through the real pipeline from a real ledger and asks the contact-time gate too. Every KEEP is
then checked against the rules' preconditions, written out here plainly from docs/compliance.md
(not from the policies' code): a precondition a KEEP breaks fails the test, naming it.
"""
from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

UTC = dt.timezone.utc
AS_OF = dt.date(2026, 11, 28)
DAY = dt.timedelta(days=1)
CONTACT = {"SMS", "VOICE_BOT", "PHONE", "FIELD_VISIT", "THIRD_PARTY_CONTACT"}
CALLS = {"PHONE", "VOICE_BOT"}
#: the zones a debtor of a state may be in (the generator's US states)
STATE_ZONES = {"US-TX": ("America/Chicago", "America/Denver"), "US-FL": ("America/New_York", "America/Chicago"),
               "US-AZ": ("America/Phoenix", "America/Denver")}
CURE_DAYS = {"US-IA": 20, "US-KS": 20, "US-ME": 14, "US-MA": 21, "US-MO": 20, "US-SC": 20, "US-WV": 10, "US-WI": 15}
DEBT_WORDS = ("逾期", "欠", "还款", "贷款", "车贷", "分期", "结清", "收走", "debt", "overdue", "loan", "payment", "late",
              "owe")
#: kinds hypothesis adds, and the columns they carry
KINDS = ("DISPUTE_OPENED", "DISPUTE_RESOLVED", "BANKRUPTCY_FILED", "BANKRUPTCY_CLOSED", "DECEASED", "CEASE_REQUESTED",
         "ATTORNEY_REPRESENTED", "HARDSHIP_DECLARED", "HARDSHIP_ENDED", "COMPLAINT_OPENED", "COMPLAINT_CLOSED",
         "CONSENT_GRANTED", "CONSENT_REVOKED", "OPT_OUT", "PROMISE_TO_PAY", "MILITARY_SERVICE_STARTED",
         "COURT_ORDER_GRANTED", "SURRENDER_AGREED", "GPS_CONSENT_GRANTED", "GPS_CONSENT_REVOKED", "CURE_NOTICE_SENT",
         "REPOSSESSION_ORDERED", "REPOSSESSED", "DISPOSAL_NOTICE_SENT", "REDEEMED", "EMPLOYER_PROHIBITS_CONTACT",
         "WORK_HOURS_INCONVENIENT")


@pytest.fixture(scope="module")
def world():
    """A generated book of 600 accounts, its event history, and the shipped bundle."""
    import kernel
    from kernel.synth import iter_book_and_events
    batches = list(iter_book_and_events(600, 17, AS_OF))
    book = pa.Table.from_batches([b for b, _ in batches])
    events = pa.concat_tables([pa.Table.from_batches([e]) for _, e in batches])
    return book, events, kernel.Kernel.load()


@st.composite
def histories(draw):
    """(account rows, extra events, the moment): accounts skewed to the long overdue, whose
    actions are the most varied."""
    rows = draw(st.lists(st.integers(0, 599), min_size=4, max_size=24, unique=True))
    extra = []
    for k in range(draw(st.integers(0, 40))):
        kind = draw(st.sampled_from(KINDS))
        event = {"row": draw(st.sampled_from(rows)), "kind": kind,
                 "ago": draw(st.one_of(st.integers(1, 60 * 24), st.integers(1, 40 * 24 * 60)))}   # minutes
        if kind in ("CONSENT_GRANTED", "CONSENT_REVOKED", "OPT_OUT"):
            event["channel"] = draw(st.sampled_from([None, "PHONE", "SMS", "VOICE_BOT"]))
        if kind == "PROMISE_TO_PAY":
            event["amount"] = 500.0
            event["promise_days"] = draw(st.integers(-2, 5))
        extra.append(event)
    # the moment: hours around the CN and US windows' edges on the decision date, in UTC
    hour = draw(st.sampled_from([0, 1, 2, 12, 13, 14, 15, 16, 23]))
    minute = draw(st.sampled_from([0, 1, 59]))
    return rows, extra, dt.datetime(2026, 11, 28, hour, minute, tzinfo=UTC)


def _events_table(book, rows, extra, now):
    ids = book["account_id"].to_pylist()
    out = []
    for k, e in enumerate(extra):
        at = now - dt.timedelta(minutes=e["ago"])
        row = {"event_id": f"h{k}", "account_id": ids[e["row"]], "kind": e["kind"], "at": at,
               "channel": e.get("channel"), "amount": e.get("amount"), "promise_date": None}
        if e["kind"] == "PROMISE_TO_PAY":
            row["promise_date"] = at.date() + dt.timedelta(days=max(e["promise_days"], 0))
        out.append(row)
    types = {"at": pa.timestamp("us", tz="UTC"), "amount": pa.float64(), "promise_date": pa.date32()}
    names = ["event_id", "account_id", "kind", "at", "channel", "amount", "promise_date"]
    return pa.table({n: pa.array([r[n] for r in out], types.get(n, pa.string())) for n in names})


def _local(instant: dt.datetime, zone: str) -> dt.datetime:
    return instant.astimezone(zoneinfo.ZoneInfo(zone))


def broken(action: str, s: dict, script: str | None, at: dt.datetime) -> list[str]:
    """The preconditions a KEEP of ``action`` for the account ``s`` (book ⋈ state) at ``at``
    would break, from docs/compliance.md."""
    out = []
    country, zone, region = s["country"], s["time_zone"], s["region"]
    local = _local(at, zone)
    contact = action in CONTACT

    def consent(channel):
        own = s.get(f"consent_{channel}")
        return own if own is not None else bool(s["consent_automated_contact"])

    if s["bankruptcy_open"]:
        out.append("bankruptcy stay")
    if s["open_disputes"] > 0:
        out.append("open dispute")
    if s["deceased"] and (contact or action == "REPOSSESSION"):
        out.append("deceased")
    if s["hardship"] and action != "SMS":
        out.append("hardship")
    if s["promise_open"] and s["promise_date"] is not None and action != "SMS" \
            and local.date() <= s["promise_date"] + DAY:
        out.append("open promise")
    if action == "THIRD_PARTY_CONTACT" and script and any(w in script.lower() for w in DEBT_WORDS):
        out.append("debt told to a third party")
    if action == "DISPOSAL":
        held = s["repossession_stage"] in ("REPOSSESSED", "NOTICE_SENT")
        taken, notice = s["repossessed_at"], s["disposal_notice_at"]
        if not held or notice is None or (taken is not None and notice < taken):
            out.append("disposal without a held car and its notice")
        else:
            wait = (0, 15) if country == "CN" else (15, 15) if region == "US-CA" else (10, 10)
            first = _local(notice, zone).date() + wait[0] * DAY
            if taken is not None:
                first = max(first, _local(taken, zone).date() + wait[1] * DAY)
            if local.date() < first:
                out.append("disposal inside the redemption window")
    if country == "CN":
        if contact and s["open_complaints"] > 0:
            out.append("open complaint")
        if contact and not 8 <= local.hour < 22:
            out.append("CN quiet hours")
        if action in ("SMS", "VOICE_BOT") and not consent(action.lower()):
            out.append("CN consent")
        if action == "SMS" and script and "如已还款请忽略" not in script:
            out.append("如已还款请忽略")
        if action in CALLS and script and "录音" not in script:
            out.append("recording notice")
        if action == "REPOSSESSION":
            if s["surrender_agreed_at"] is None and s["court_order_at"] is None and s["arbitral_award_at"] is None:
                out.append("no legal basis")
            if s["gps_status"] != "NO_DEVICE" and s["consent_gps"] is not True:
                out.append("no GPS consent")
    if country == "US":                          # the default operator: a third-party collector
        if contact and (s["cease_requested"] or s["attorney_represented"]):
            out.append("cease or attorney")
        if contact:
            for z in (zone,) + STATE_ZONES.get(region, ()):
                if not 8 <= _local(at, z).hour < 21:
                    out.append(f"US hours in {z}")
        if action in ("SMS", "VOICE_BOT") and not consent(action.lower()):
            out.append("TCPA consent")
        if action == "SMS" and (s["opt_out_sms"] or (script and "Reply STOP" not in script)):
            out.append("SMS opt-out")
        if action in CALLS:
            if s["opt_out_phone"] or s["contact_opt_out"]:
                out.append("restricted medium")
            spoke = s["last_conversation_at"]
            if spoke is not None and (local.date() - _local(spoke, zone).date()).days < 7:
                out.append("7 days after a conversation")
        if action == "REPOSSESSION":
            since = s["military_service_since"]
            if s["military_service"] and since is not None and s["contract_date"] < _local(since, zone).date() \
                    and (s["court_order_at"] is None or s["court_order_at"] < since):
                out.append("SCRA")
            days = CURE_DAYS.get(region)
            if days and (s["cure_notice_at"] is None or
                         local.date() <= _local(s["cure_notice_at"], zone).date() + days * DAY):
                out.append("right to cure")
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(history=histories())
def test_no_keep_breaks_a_rule(world, tmp_path_factory, history):
    from kernel.ledger import Ledger
    from kernel.pipeline import Pipeline
    book, events, kern = world
    rows, extra, now = history
    sub = book.take(pa.array(sorted(rows)))
    ids = set(sub["account_id"].to_pylist())
    mine = events.filter(pa.array([a in ids for a in events["account_id"].to_pylist()]))
    folder = tmp_path_factory.mktemp("ledger")
    with Ledger(f"sqlite:///{folder / 'ledger.db'}") as ledger:
        ledger.ingest(mine, now=now)
        result = ledger.ingest(_events_table(sub, list(range(sub.num_rows)), [
            {**e, "row": sorted(rows).index(e["row"])} for e in extra], now), now=now)
        assert not result.rejected, result.rejected
        pipe = Pipeline(kern, config={}, audit_path=folder / "audit.log", ledger=ledger)
        joined = pipe.with_state(sub, AS_OF, now)
        state = {r["account_id"]: r for r in joined.to_pylist()}
        actions = pipe.act(joined, kern.decide(joined, AS_OF), AS_OF, now).actions.to_pylist()
        kept = 0
        for a in actions:
            if a["outcome"] != "KEEP":
                continue
            at = max(a["earliest_at"], now)
            problems = broken(a["action"], state[a["account_id"]], a["script"], at)
            assert not problems, (a["account_id"], a["action"], at, problems)
            kept += 1
        # the gate answers a dialer with the same rules
        for account in sorted(ids)[:4]:
            for channel, action in (("PHONE", "PHONE"), ("SMS", "SMS"), ("THIRD_PARTY", "THIRD_PARTY_CONTACT")):
                v = ledger.check_contact(account, channel, now, pipe.judge, now=now)
                if v.outcome == "KEEP":
                    problems = broken(action, state[account], None, now)
                    assert not problems, ("gate", account, channel, problems)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(history=histories(), later=st.sampled_from([0, 1, 60, 60 * 24 + 1]))
def test_the_gates_straight_record_is_the_general_ways(world, tmp_path_factory, history, later):
    """The gate's fewest-steps way — the columns of the channel's action only, the record made
    straight from the fold's outputs, the engine's ``judge_action`` — against the general way
    (every state column merged into the record, judged through the request's layer), over
    generated books and drawn histories, every channel, at the drawn moment and minutes to a
    day later: the same values of every column the action's policies read, and the same
    outcome, reason, next allowed time and policy."""
    from kernel.hookspecs import ACTION, Batch, Record
    from kernel.ledger import Ledger
    from kernel.ledger.gate import GATED_CHANNELS, _state_of, _instant, account_record
    from kernel.ledger.ledger import instant_us
    from kernel.pipeline import _ONE_ACTION, Pipeline
    book, events, kern = world
    rows, extra, now = history
    sub = book.take(pa.array(sorted(rows)))
    ids = sub["account_id"].to_pylist()
    mine = events.filter(pa.array([a in set(ids) for a in events["account_id"].to_pylist()]))
    folder = tmp_path_factory.mktemp("ledger")
    with Ledger(f"sqlite:///{folder / 'ledger.db'}") as ledger:
        ledger.register(sub)
        ledger.ingest(mine, now=now)
        ledger.ingest(_events_table(sub, list(range(sub.num_rows)), [
            {**e, "row": sorted(rows).index(e["row"])} for e in extra], now), now=now)
        pipe = Pipeline(kern, config={}, audit_path=folder / "audit.log", ledger=ledger)
        at_us = instant_us(now + dt.timedelta(minutes=later))
        at = _instant(at_us)
        s = ledger.settings
        with ledger.store.transaction(lock_account=None, synced=False) as cur:
            for account in ids:
                whole = account_record(ledger.store, cur, account, at_us, s)
                for action in GATED_CHANNELS.values():
                    straight = account_record(ledger.store, cur, account, at_us, s, _state_of(pipe.judge, action))
                    # (a registered book column the action's policies do not read keeps the book's value)
                    read = pipe.judge_columns_of(action)
                    assert [k for k in straight if k in read and straight[k] != whole[k]] == [], (account, action)
                    batch = Batch(1, at.date(), at, [Record(whole)], pipe.config)
                    general = pipe._judge_request(pipe.sets[pipe._route_one(batch)], batch, {
                        "action": _ONE_ACTION[ACTION[action]], "earliest_at": np.array([batch.now_us], np.int64),
                        "script": [None]}, plain=True)
                    got = pipe.judge(straight, action, at)
                    outcome, reasons, until, names = general
                    assert got[:4] == (("KEEP", "DEFER", "BLOCK")[outcome[0]], reasons[0], until[0], names[0]), \
                        (account, action, got, general)
