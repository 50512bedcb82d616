"""Every event kind changes the state as docs/ledger.md says, through a real store."""
from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from kernel.ledger import Ledger

UTC = dt.timezone.utc
TS = pa.timestamp("us", tz="UTC")
T = dt.datetime(2026, 11, 28, 4, tzinfo=UTC)              # 12:00 in Shanghai
ZONE = {"A": "Asia/Shanghai"}


def state_after(ledger_url, *events, at=T):
    rows = [{"event_id": f"e{i}", "account_id": "A", **e} for i, e in enumerate(events)]
    names = sorted({k for r in rows for k in r})
    types = {"at": TS, "promise_date": pa.date32(), "expiry_date": pa.date32(), "amount": pa.float64(),
             "lat": pa.float64(), "lon": pa.float64()}
    table = pa.table({n: pa.array([r.get(n) for r in rows], types.get(n, pa.string())) for n in names})
    with Ledger(ledger_url) as ledger:
        result = ledger.ingest(table, now=at)
        assert not result.rejected, result.rejected
        return ledger.state(at=at, accounts=["A"], zones=ZONE).to_pylist()[0]


def ago(**kw):
    return T - dt.timedelta(**kw)


CASES = {
    "PAYMENT": ([dict(kind="PAYMENT", at=ago(days=2), amount=120.0)],
                dict(last_payment_date=dt.date(2026, 11, 26), last_payment_amount=120.0, paid_30d=120.0)),
    "CONTACT_ATTEMPT": ([dict(kind="CONTACT_ATTEMPT", at=ago(hours=1), channel="PHONE", outcome="RIGHT_PARTY"),
                         dict(kind="CONTACT_ATTEMPT", at=ago(minutes=30), channel="PHONE", outcome="NO_ANSWER"),
                         dict(kind="CONTACT_ATTEMPT", at=ago(minutes=20), channel="SMS", outcome="DELIVERED"),
                         dict(kind="CONTACT_ATTEMPT", at=ago(days=3), channel="FIELD_VISIT", outcome="RIGHT_PARTY")],
                        dict(call_attempts_today=2, connected_calls_today=1, unanswered_attempts_today=1,
                             consecutive_failed_attempts=1, calls_7d=2, sms_today=1, last_conversation_at=ago(hours=1),
                             last_field_visit_at=ago(days=3), field_visits_30d=1, contact_attempts_30d=4,
                             right_party_contacts_30d=2)),
    "PROMISE_TO_PAY": ([dict(kind="PROMISE_TO_PAY", at=ago(days=1), amount=300.0, promise_date=dt.date(2026, 12, 1)),
                        dict(kind="PAYMENT", at=ago(hours=2), amount=100.0)],
                       dict(promise_open=True, promise_date=dt.date(2026, 12, 1), promise_amount=300.0,
                            promise_paid=100.0, promises_made_90d=1)),
    "DISPUTE_OPENED": ([dict(kind="DISPUTE_OPENED", at=ago(days=5))],
                       dict(open_disputes=1, dispute_opened_at=ago(days=5))),
    "DISPUTE_RESOLVED": ([dict(kind="DISPUTE_OPENED", at=ago(days=5)), dict(kind="DISPUTE_RESOLVED", at=ago(days=1))],
                         dict(open_disputes=0, dispute_opened_at=None)),
    "COMPLAINT_OPENED": ([dict(kind="COMPLAINT_OPENED", at=ago(days=4))],
                         dict(open_complaints=1, complaint_opened_at=ago(days=4))),
    "COMPLAINT_CLOSED": ([dict(kind="COMPLAINT_OPENED", at=ago(days=4)), dict(kind="COMPLAINT_CLOSED", at=ago(days=2))],
                         dict(open_complaints=0)),
    "CEASE_REQUESTED": ([dict(kind="CEASE_REQUESTED", at=ago(days=1))], dict(cease_requested=True)),
    "ATTORNEY_REPRESENTED": ([dict(kind="ATTORNEY_REPRESENTED", at=ago(days=1))], dict(attorney_represented=True)),
    "BANKRUPTCY_FILED": ([dict(kind="BANKRUPTCY_FILED", at=ago(days=9))], dict(bankruptcy_open=True)),
    "BANKRUPTCY_CLOSED": ([dict(kind="BANKRUPTCY_FILED", at=ago(days=9)), dict(kind="BANKRUPTCY_CLOSED", at=ago(days=1))],
                          dict(bankruptcy_open=False)),
    "DECEASED": ([dict(kind="DECEASED", at=ago(days=1))], dict(deceased=True)),
    "CONSENT_GRANTED": ([dict(kind="CONSENT_GRANTED", at=ago(days=1), channel="SMS")],
                        dict(consent_sms=True, consent_voice_bot=None, consent_automated_contact=True)),
    "CONSENT_REVOKED": ([dict(kind="CONSENT_GRANTED", at=ago(days=3)), dict(kind="CONSENT_REVOKED", at=ago(days=1),
                                                                            channel="VOICE_BOT")],
                        dict(consent_sms=True, consent_voice_bot=False, consent_phone=True,
                             consent_automated_contact=False)),
    "OPT_OUT": ([dict(kind="OPT_OUT", at=ago(days=1), channel="PHONE")],
                dict(opt_out_phone=True, contact_opt_out=True, consent_phone=False, opt_out_sms=False)),
    "HARDSHIP_DECLARED": ([dict(kind="HARDSHIP_DECLARED", at=ago(days=1))], dict(hardship=True)),
    "HARDSHIP_ENDED": ([dict(kind="HARDSHIP_DECLARED", at=ago(days=9)), dict(kind="HARDSHIP_ENDED", at=ago(days=1))],
                       dict(hardship=False)),
    "GPS_PING": ([dict(kind="GPS_PING", at=ago(hours=5), lat=31.2, lon=121.5)],
                 dict(gps_last_ping_at=ago(hours=5), gps_offline_hours=5.0, gps_status="OFFLINE")),
    "GPS_TAMPER": ([dict(kind="GPS_PING", at=ago(minutes=5)), dict(kind="GPS_TAMPER", at=ago(days=2))],
                   dict(gps_status="TAMPERED", gps_tamper_30d=1)),
    "GEOFENCE_EXIT": ([dict(kind="GEOFENCE_EXIT", at=ago(days=2)), dict(kind="GEOFENCE_EXIT", at=ago(days=40))],
                      dict(geofence_exits_30d=1)),
    "INSURANCE_RENEWED": ([dict(kind="INSURANCE_RENEWED", at=ago(days=10), expiry_date=dt.date(2027, 11, 18))],
                          dict(insurance_expiry_date=dt.date(2027, 11, 18))),
    "VIOLATION": ([dict(kind="VIOLATION", at=ago(days=80)), dict(kind="VIOLATION", at=ago(days=100))],
                  dict(violations_90d=1)),
    "DEMAND_NOTICE_SENT": ([dict(kind="DEMAND_NOTICE_SENT", at=ago(days=30)), dict(kind="DEMAND_NOTICE_SENT", at=ago(days=3))],
                           dict(demand_notices_sent=2)),
    "REPOSSESSION_ORDERED": ([dict(kind="REPOSSESSION_ORDERED", at=ago(days=3))],
                             dict(repossession_stage="ORDERED", repossession_ordered_at=ago(days=3), repossessed=False)),
    "REPOSSESSED": ([dict(kind="REPOSSESSION_ORDERED", at=ago(days=3)), dict(kind="REPOSSESSED", at=ago(days=2))],
                    dict(repossession_stage="REPOSSESSED", repossessed_at=ago(days=2), repossessed=True)),
    "DISPOSAL_NOTICE_SENT": ([dict(kind="REPOSSESSED", at=ago(days=2)), dict(kind="DISPOSAL_NOTICE_SENT", at=ago(days=1))],
                             dict(repossession_stage="NOTICE_SENT", repossessed=True)),
    "REDEEMED": ([dict(kind="REPOSSESSED", at=ago(days=2)), dict(kind="REDEEMED", at=ago(days=1))],
                 dict(repossession_stage="REDEEMED", repossessed=False, redeemed_at=ago(days=1))),
    "VEHICLE_SOLD": ([dict(kind="REPOSSESSED", at=ago(days=20)), dict(kind="VEHICLE_SOLD", at=ago(days=1), amount=65000.0)],
                     dict(repossession_stage="SOLD", sold_at=ago(days=1), sale_amount=65000.0, repossessed=False)),
    "COMPLAINT_EXTENDED": ([dict(kind="COMPLAINT_OPENED", at=ago(days=20)), dict(kind="COMPLAINT_OPENED", at=ago(days=3)),
                            dict(kind="COMPLAINT_EXTENDED", at=ago(days=5))],
                           dict(open_complaints=2, complaint_opened_at=ago(days=20), complaint_extensions=1)),
    "EMPLOYER_PROHIBITS_CONTACT": ([dict(kind="EMPLOYER_PROHIBITS_CONTACT", at=ago(days=1))],
                                   dict(employer_prohibits_contact=True, work_hours_inconvenient=False)),
    "WORK_HOURS_INCONVENIENT": ([dict(kind="WORK_HOURS_INCONVENIENT", at=ago(days=1))], dict(work_hours_inconvenient=True)),
    "MILITARY_SERVICE_STARTED": ([dict(kind="MILITARY_SERVICE_STARTED", at=ago(days=40)),
                                  dict(kind="MILITARY_SERVICE_STARTED", at=ago(days=4))],
                                 dict(military_service=True, military_service_since=ago(days=40))),
    "MILITARY_SERVICE_ENDED": ([dict(kind="MILITARY_SERVICE_STARTED", at=ago(days=40)),
                                dict(kind="MILITARY_SERVICE_ENDED", at=ago(days=4))],
                               dict(military_service=False, military_service_since=None)),
    "COURT_ORDER_GRANTED": ([dict(kind="COURT_ORDER_GRANTED", at=ago(days=6))], dict(court_order_at=ago(days=6))),
    "ARBITRAL_AWARD_GRANTED": ([dict(kind="ARBITRAL_AWARD_GRANTED", at=ago(days=6))], dict(arbitral_award_at=ago(days=6))),
    "SURRENDER_AGREED": ([dict(kind="SURRENDER_AGREED", at=ago(days=2))], dict(surrender_agreed_at=ago(days=2))),
    "CURE_NOTICE_SENT": ([dict(kind="CURE_NOTICE_SENT", at=ago(days=30)), dict(kind="CURE_NOTICE_SENT", at=ago(days=9))],
                         dict(cure_notice_at=ago(days=9))),
    "GPS_CONSENT_GRANTED": ([dict(kind="GPS_CONSENT_GRANTED", at=ago(days=300))], dict(consent_gps=True)),
    "GPS_CONSENT_REVOKED": ([dict(kind="GPS_CONSENT_GRANTED", at=ago(days=300)),
                             dict(kind="GPS_CONSENT_REVOKED", at=ago(days=3))], dict(consent_gps=False)),
    "MORTGAGE_REGISTERED": ([dict(kind="MORTGAGE_REGISTERED", at=ago(days=700))], dict(mortgage_registered=True)),
    "CONTRACT_NOTARISED": ([dict(kind="CONTRACT_NOTARISED", at=ago(days=700))], dict(contract_notarised=True)),
    "ARBITRATION_AGREED": ([dict(kind="ARBITRATION_AGREED", at=ago(days=700))],
                           dict(arbitration_agreed=True, mortgage_registered=False, consent_gps=None)),
}


def test_every_kind_has_a_case():
    from kernel.ledger import KINDS
    assert set(CASES) == set(KINDS)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_kind_changes_the_state_as_documented(ledger_url, kind):
    events, expected = CASES[kind]
    state = state_after(ledger_url, *events)
    assert {k: state[k] for k in expected} == expected


def test_promises_kept_and_broken_are_derived(ledger_url):
    state = state_after(
        ledger_url,
        dict(kind="PROMISE_TO_PAY", at=ago(days=20), amount=200.0, promise_date=dt.date(2026, 11, 12)),
        dict(kind="PAYMENT", at=ago(days=17), amount=200.0),                         # kept on Nov 11
        dict(kind="PROMISE_TO_PAY", at=ago(days=10), amount=200.0, promise_date=dt.date(2026, 11, 20)),
        dict(kind="PAYMENT", at=ago(days=8), amount=50.0),                           # partial: broken on Nov 22
    )
    assert (state["promises_kept_30d"], state["promises_broken_30d"], state["promise_open"]) == (1, 1, False)


def test_arrival_order_does_not_matter(ledger_url, tmp_path):
    events = CASES["CONTACT_ATTEMPT"][0] + CASES["PROMISE_TO_PAY"][0] + CASES["DISPUTE_RESOLVED"][0]
    forward = state_after(ledger_url, *events)
    other = f"sqlite:///{tmp_path / 'reversed.db'}"
    rows = [{"event_id": f"e{i}", "account_id": "A", **e} for i, e in enumerate(events)]
    with Ledger(other) as ledger:
        for row in reversed(rows):                       # one event per file, latest first
            names = sorted(row)
            types = {"at": TS, "promise_date": pa.date32(), "amount": pa.float64()}
            ledger.ingest(pa.table({n: pa.array([row[n]], types.get(n, pa.string())) for n in names}), now=T)
        backwards = ledger.state(at=T, accounts=["A"], zones=ZONE).to_pylist()[0]
    assert forward == backwards
