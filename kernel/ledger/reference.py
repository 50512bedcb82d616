"""The state of one account, defined column by column in plain Python.

This is the reference the compiled fold (:mod:`kernel.ledger.fold`) is tested against: each
column is computed from its definition (docs/ledger.md) by filtering the account's events,
with :mod:`zoneinfo` for local days — slow, obvious, independent of the fold's one-pass
bookkeeping. It is not used to decide.
"""
from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from typing import Sequence

from ..schema import ENUMS
from .patterns import windows
from .state import StateSettings

__all__ = ["Event", "reference_state", "reference_alerts"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
KINDS = ENUMS["event_kind"]
CHANNELS = ENUMS["contact_channel"]
OUTCOMES = ENUMS["contact_outcome"]


@dataclass(frozen=True)
class Event:
    """One event as the fold sees it (names, not codes; times in µs; dates in days)."""

    kind: str
    at: int
    amount: float | None = None
    promise_date: int | None = None
    channel: str | None = None
    outcome: str | None = None
    expiry_date: int | None = None


def _local_day(at_us: int, zone: zoneinfo.ZoneInfo) -> int:
    local = (_EPOCH + dt.timedelta(microseconds=at_us)).astimezone(zone)
    return (local.date() - dt.date(1970, 1, 1)).days


def _sort_key(e: Event):
    channel = CHANNELS.index(e.channel) if e.channel else -1
    outcome = OUTCOMES.index(e.outcome) if e.outcome else -1
    tie = (KINDS.index(e.kind) * 64 + channel + 1) * 64 + outcome + 1
    return (e.at, tie, e.amount if e.amount is not None else float("nan"))


def reference_state(events: Sequence[Event], zone: str, at: int, settings: StateSettings,
                    gps_last: int | None = None, gaps: Sequence[tuple[int, int]] = (),
                    last_ping: int | None = None) -> dict:
    """Every state column of one account (the fold's int and float columns and the alerts,
    with None for null) from its ``events`` (already limited to ``at`` and the look-back), the
    last ping at or before ``at`` (``gps_last``), and for the alerts the car's stored offline
    periods ``gaps`` (from, to) and its last ping ever (``last_ping``)."""
    tz = zoneinfo.ZoneInfo(zone)
    ev = sorted(events, key=lambda e: (e.at, _sort_key(e)[1], _nan_last(e.amount)))
    today = _local_day(at, tz)
    day = {id(e): _local_day(e.at, tz) for e in ev}

    def within(e, days):
        return day[id(e)] > today - days

    contacts = [e for e in ev if e.kind == "CONTACT_ATTEMPT"]
    calls = [e for e in contacts if e.channel in ("PHONE", "VOICE_BOT")]
    connected = [e for e in calls if e.outcome in ("RIGHT_PARTY", "UNREPORTED")]
    today_calls = [e for e in calls if day[id(e)] == today]
    s: dict = {"ledger_events": len(ev)}
    s["call_attempts_today"] = len(today_calls)
    s["connected_calls_today"] = sum(e.outcome in ("RIGHT_PARTY", "UNREPORTED") for e in today_calls)
    s["unanswered_attempts_today"] = s["call_attempts_today"] - s["connected_calls_today"]
    last_connected = max((i for i, e in enumerate(calls) if e.outcome in ("RIGHT_PARTY", "UNREPORTED")), default=-1)
    s["consecutive_failed_attempts"] = len(calls) - 1 - last_connected
    s["calls_7d"] = sum(within(e, 7) for e in calls)
    s["sms_today"] = sum(e.channel == "SMS" and e.outcome != "FAILED" and day[id(e)] == today for e in contacts)
    s["last_conversation_at"] = connected[-1].at if connected else None
    s["last_contact_attempt_at"] = contacts[-1].at if contacts else None
    visits = [e for e in contacts if e.channel == "FIELD_VISIT"]
    s["last_field_visit_at"] = visits[-1].at if visits else None
    s["field_visits_30d"] = sum(within(e, 30) for e in visits)
    s["third_party_contacts_30d"] = sum(e.channel == "THIRD_PARTY" and within(e, 30) for e in contacts)
    s["contact_attempts_30d"] = sum(within(e, 30) for e in contacts)
    s["right_party_contacts_30d"] = sum(e.outcome == "RIGHT_PARTY" and within(e, 30) for e in contacts)

    payments = [e for e in ev if e.kind == "PAYMENT"]
    s["last_payment_date"] = day[id(payments[-1])] if payments else None
    s["last_payment_amount"] = payments[-1].amount if payments else None
    s["paid_30d"] = sum(e.amount for e in payments if within(e, 30))

    grace = settings.promise_grace_days
    made_90 = kept_30 = kept_90 = broken_30 = broken_90 = 0
    open_promise = None
    for i, p in enumerate(ev):
        if p.kind != "PROMISE_TO_PAY":
            continue
        if within(p, 90):
            made_90 += 1
        deadline = p.promise_date + grace
        paid, kept_day = 0.0, None
        for q in ev[i + 1:]:
            if q.kind == "PAYMENT" and day[id(q)] <= deadline:
                paid += q.amount
                if paid >= p.amount - 0.005:
                    kept_day = day[id(q)]
                    break
        if kept_day is not None:
            kept_30 += kept_day > today - 30
            kept_90 += kept_day > today - 90
        elif today > deadline:
            broken_30 += deadline + 1 > today - 30
            broken_90 += deadline + 1 > today - 90
        else:
            open_promise = (p, paid)
    s.update(promises_made_90d=made_90, promises_kept_30d=kept_30, promises_kept_90d=kept_90,
             promises_broken_30d=broken_30, promises_broken_90d=broken_90, promise_open=open_promise is not None,
             promise_date=open_promise[0].promise_date if open_promise else None,
             promise_amount=open_promise[0].amount if open_promise else None,
             promise_paid=open_promise[1] if open_promise else None)

    for opened, closed, count, since in (("DISPUTE_OPENED", "DISPUTE_RESOLVED", "open_disputes", "dispute_opened_at"),
                                         ("COMPLAINT_OPENED", "COMPLAINT_CLOSED", "open_complaints",
                                          "complaint_opened_at")):
        queue: list[int] = []
        for e in ev:
            if e.kind == opened:
                queue.append(e.at)
            elif e.kind == closed and queue:
                queue.pop(0)
        s[count], s[since] = len(queue), (queue[0] if queue else None)
    # extensions of the oldest open complaint: a COMPLAINT_EXTENDED counts towards the complaint
    # that was the oldest open one when it came
    open_complaints: list[list[int]] = []
    for e in ev:
        if e.kind == "COMPLAINT_OPENED":
            open_complaints.append([e.at, 0])
        elif e.kind == "COMPLAINT_CLOSED" and open_complaints:
            open_complaints.pop(0)
        elif e.kind == "COMPLAINT_EXTENDED" and open_complaints:
            open_complaints[0][1] += 1
    s["complaint_extensions"] = open_complaints[0][1] if open_complaints else 0
    kinds = [e.kind for e in ev]
    s["cease_requested"] = "CEASE_REQUESTED" in kinds
    s["attorney_represented"] = "ATTORNEY_REPRESENTED" in kinds
    s["deceased"] = "DECEASED" in kinds
    s["bankruptcy_open"] = _last_of(kinds, {"BANKRUPTCY_FILED": True, "BANKRUPTCY_CLOSED": False}, False)
    s["hardship"] = _last_of(kinds, {"HARDSHIP_DECLARED": True, "HARDSHIP_ENDED": False}, False)
    s["employer_prohibits_contact"] = "EMPLOYER_PROHIBITS_CONTACT" in kinds
    s["work_hours_inconvenient"] = "WORK_HOURS_INCONVENIENT" in kinds
    # in service: the last start or end is a start; since: the first start after the last end
    ended = max((i for i, k in enumerate(kinds) if k == "MILITARY_SERVICE_ENDED"), default=-1)
    starts = [e.at for i, e in enumerate(ev) if e.kind == "MILITARY_SERVICE_STARTED" and i > ended]
    s["military_service"] = bool(starts)
    s["military_service_since"] = starts[0] if starts else None
    s["consent_gps"] = _last_of(kinds, {"GPS_CONSENT_GRANTED": True, "GPS_CONSENT_REVOKED": False}, None)
    for kind, column in (("MORTGAGE_REGISTERED", "mortgage_registered"), ("CONTRACT_NOTARISED", "contract_notarised"),
                         ("ARBITRATION_AGREED", "arbitration_agreed")):
        s[column] = kind in kinds
    for kind, column in (("COURT_ORDER_GRANTED", "court_order_at"), ("ARBITRAL_AWARD_GRANTED", "arbitral_award_at"),
                         ("SURRENDER_AGREED", "surrender_agreed_at"), ("CURE_NOTICE_SENT", "cure_notice_at")):
        found = [e.at for e in ev if e.kind == kind]
        s[column] = found[-1] if found else None
    for channel in ("PHONE", "SMS", "VOICE_BOT", "EMAIL"):
        about = [e for e in ev if e.kind in ("CONSENT_GRANTED", "CONSENT_REVOKED", "OPT_OUT")
                 and e.channel in (None, channel)]
        s[f"consent_{channel.lower()}"] = (about[-1].kind == "CONSENT_GRANTED") if about else None
        opt = [e for e in about if e.kind in ("OPT_OUT", "CONSENT_GRANTED")]
        s[f"_opt_{channel}"] = bool(opt) and opt[-1].kind == "OPT_OUT"
    s["opt_out_phone"] = s.pop("_opt_PHONE") | s.pop("_opt_VOICE_BOT")
    s["opt_out_sms"] = s.pop("_opt_SMS")
    s["opt_out_email"] = s.pop("_opt_EMAIL")

    tampers = [e for e in ev if e.kind == "GPS_TAMPER"]
    s["gps_tamper_30d"] = sum(within(e, 30) for e in tampers)
    s["gps_last_ping_at"] = gps_last
    if tampers and within(tampers[-1], settings.gps_tamper_days):
        s["gps_status"] = "TAMPERED"
    elif gps_last is not None:
        s["gps_status"] = "OFFLINE" if at - gps_last >= settings.gps_offline_after_hours * 3_600_000_000 else "ONLINE"
    else:
        s["gps_status"] = None
    s["gps_offline_hours"] = (at - gps_last) / 3_600_000_000 if gps_last is not None else None
    s["geofence_exits_30d"] = sum(e.kind == "GEOFENCE_EXIT" and within(e, 30) for e in ev)
    s["violations_90d"] = sum(e.kind == "VIOLATION" and within(e, 90) for e in ev)
    expiries = [e.expiry_date for e in ev if e.kind == "INSURANCE_RENEWED"]
    s["insurance_expiry_date"] = max(expiries) if expiries else None
    s["demand_notices_sent"] = kinds.count("DEMAND_NOTICE_SENT")
    stages = {"REPOSSESSION_ORDERED": "ORDERED", "REPOSSESSED": "REPOSSESSED", "DISPOSAL_NOTICE_SENT": "NOTICE_SENT",
              "REDEEMED": "REDEEMED", "VEHICLE_SOLD": "SOLD"}
    s["repossession_stage"] = _last_of(kinds, stages, "NONE")
    for kind, column in (("REPOSSESSION_ORDERED", "repossession_ordered_at"), ("REPOSSESSED", "repossessed_at"),
                         ("DISPOSAL_NOTICE_SENT", "disposal_notice_at"), ("REDEEMED", "redeemed_at"),
                         ("VEHICLE_SOLD", "sold_at")):
        found = [e for e in ev if e.kind == kind]
        s[column] = found[-1].at if found else None
    sold = [e for e in ev if e.kind == "VEHICLE_SOLD"]
    s["sale_amount"] = sold[-1].amount if sold else None
    s.update(reference_alerts(ev, at, settings, gaps, last_ping))
    return s


def reference_alerts(events: Sequence[Event], at: int, settings: StateSettings,
                     gaps: Sequence[tuple[int, int]] = (), last_ping: int | None = None) -> dict:
    """The temporal patterns' alerts, each written out from its definition (docs/ledger.md,
    "Temporal patterns") by trying every combination of events: ``alert_<name>`` and
    ``alert_<name>_at`` (the latest match's completion, None without a match)."""
    w = windows(settings.patterns)
    hour, day = 3_600_000_000, 86_400_000_000
    out = {}

    # gps_offline_then_exit: the tracker fell silent (a period of gps_offline_after_hours or
    # more, up to the moment: the stored periods and the silence after the last ping) or a
    # tamper alert, in the last lookback_days; then a geofence exit, later, within the window
    g = w["gps_offline_then_exit"]
    periods = [(start, min(end, at)) for start, end in gaps if start <= at]
    if last_ping is not None and last_ping <= at:
        periods.append((last_ping, at))
    went_dark = [start for start, end in periods if (end - start) / hour >= settings.gps_offline_after_hours]
    went_dark += [e.at for e in events if e.kind == "GPS_TAMPER"]
    exits = [e.at for e in events if e.kind == "GEOFENCE_EXIT"]
    found = [x for start in went_dark if start >= at - round(g["lookback_days"] * day)
             for x in exits if start < x <= start + round(g["exit_within_hours"] * hour)]
    out["alert_gps_offline_then_exit"] = bool(found)
    out["alert_gps_offline_then_exit_at"] = max(found) if found else None

    # promise_partial_silence: a promise in the last lookback_days; a payment smaller than it,
    # later, within payment_within_days; after that payment no payment and no RIGHT_PARTY
    # contact up to the moment, which is silence_days or more after it
    p = w["promise_partial_silence"]
    silence = round(p["silence_days"] * day)
    breaks = [e.at for e in events if e.kind == "PAYMENT"
              or (e.kind == "CONTACT_ATTEMPT" and e.outcome == "RIGHT_PARTY")]
    found = []
    for promise in events:
        if promise.kind != "PROMISE_TO_PAY" or promise.at < at - round(p["lookback_days"] * day):
            continue
        for pay in events:
            if (pay.kind == "PAYMENT" and promise.at < pay.at <= promise.at + round(p["payment_within_days"] * day)
                    and pay.amount < promise.amount and at - pay.at >= silence
                    and not any(b > pay.at for b in breaks)):
                found.append(pay.at + silence)
    out["alert_promise_partial_silence"] = bool(found)
    out["alert_promise_partial_silence_at"] = max(found) if found else None
    return out


def _last_of(kinds: list[str], meaning: dict, default):
    for k in reversed(kinds):
        if k in meaning:
            return meaning[k]
    return default


def _nan_last(amount):
    # NumPy's lexsort puts NaN after every number; None stands for NaN here
    return (1, 0.0) if amount is None else (0, amount)

