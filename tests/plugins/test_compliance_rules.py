"""The rules of issue 12, each at its boundary on both sides: holds from the ledger's state,
US consent and timing rules and whom they bind, scripts, China's caps and consents,
repossession and disposal, limitation periods. Older rules: test_compliance_policies.py."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from kernel.errors import PostloanError
from kernel.hookspecs import BLOCK, DEFER, KEEP, NULL_TIME
from kernel.plugins import PluginManager
from plugin_helpers import make_actions, us, utc

CONTACT = ["SMS", "VOICE_BOT", "PHONE", "FIELD_VISIT", "THIRD_PARTY_CONTACT"]
EVERY = CONTACT + ["LEGAL_REVIEW", "REPOSSESSION", "DISPOSAL"]
NY = {"time_zone": "America/New_York", "country": "US", "region": "US-NY"}
TUESDAY_10_NY = utc(2026, 12, 1, 15, 0)         # 10:00 EST, a Tuesday
SHANGHAI_10 = utc(2026, 12, 1, 2, 0)            # 10:00 in Shanghai, a Tuesday


def judge(policy, accounts, planned, now, scripts=None, as_of=dt.date(2026, 12, 1)):
    v = policy.check(make_actions(accounts, planned, now, scripts, as_of=as_of))
    return v.outcome.tolist(), v.reason_codes().tolist(), v.next_allowed_us.tolist()


def shanghai(y, m, d, hh=10, mm=0):
    return utc(y, m, d, hh, mm) - dt.timedelta(hours=8)


def new_york(y, m, d, hh=10, mm=0):            # EST (winter)
    return utc(y, m, d, hh, mm) + dt.timedelta(hours=5)


@pytest.fixture(scope="module")
def creditor():
    """The policies of an operator that is a creditor collecting its own loans in the US."""
    return PluginManager({"compliance": {"operator": {"US": "creditor"}}}).policies()


# --- holds --------------------------------------------------------------------------------------

@pytest.mark.parametrize("day, expected", [(2, DEFER), (3, DEFER), (4, KEEP)])
def test_an_open_promise_holds_all_but_reminders_until_its_date_plus_grace(policies, day, expected):
    """Promised for 2 December, grace 1 day: on 2 and 3 December only an SMS; from the 4th all."""
    account = {"promise_open": True, "promise_date": dt.date(2026, 12, 2)}
    now = shanghai(2026, 12, day)
    outcome, reason, until = judge(policies["hold.promise"], [account], [(0, a) for a in EVERY], now)
    assert outcome == [KEEP] + [expected] * 7
    if expected == DEFER:
        assert set(reason[1:]) == {"HOLD_PROMISE_OPEN"}
        assert set(until[1:]) == {us(shanghai(2026, 12, 4, 8, 0))}
    closed = judge(policies["hold.promise"], [{**account, "promise_open": False}], [(0, "PHONE")], now)[0]
    assert closed == [KEEP]


@pytest.mark.parametrize("name, column, value, held, reason", [
    ("hold.dispute", "open_disputes", 1, EVERY, "HOLD_DISPUTE_OPEN"),
    ("hold.bankruptcy", "bankruptcy_open", True, EVERY, "HOLD_BANKRUPTCY_STAY"),
    ("hold.deceased", "deceased", True, CONTACT + ["REPOSSESSION"], "HOLD_DECEASED"),
    ("hold.hardship", "hardship", True, EVERY[1:], "HOLD_HARDSHIP"),
])
def test_a_hold_blocks_its_actions_while_it_lasts_and_not_after(policies, name, column, value, held, reason):
    outcome, reasons, _ = judge(policies[name], [{column: value}], [(0, a) for a in EVERY], SHANGHAI_10)
    assert outcome == [BLOCK if a in held else KEEP for a in EVERY]
    assert {r for r in reasons if r} == {reason}
    ended = judge(policies[name], [{column: 0 if isinstance(value, int) and not isinstance(value, bool) else False}],
                  [(0, a) for a in EVERY], SHANGHAI_10)[0]
    assert ended == [KEEP] * len(EVERY)


@pytest.mark.parametrize("name, column, reason", [
    ("us.cease_communication", "cease_requested", "US_CEASE_COMMUNICATION"),
    ("us.attorney_represented", "attorney_represented", "US_ATTORNEY_REPRESENTED"),
])
def test_cease_and_attorney_block_contact_but_not_legal_steps(policies, name, column, reason):
    outcome, reasons, _ = judge(policies[name], [{**NY, column: True}, {**NY, column: False}],
                                [(0, a) for a in EVERY] + [(1, "PHONE")], TUESDAY_10_NY)
    assert outcome == [BLOCK] * 5 + [KEEP] * 3 + [KEEP]
    assert reasons[0] == reason


@pytest.mark.parametrize("name, column, bound_regions", [
    ("us.cease_communication", "cease_requested", {"US-CA"}),
    ("us.attorney_represented", "attorney_represented", {"US-CA", "US-FL"}),
    ("us.regf_restricted_medium", "opt_out_phone", {"US-CA"}),
])
def test_fdcpa_rules_bind_a_creditor_only_where_state_law_says(creditor, name, column, bound_regions):
    """A creditor collecting its own loans is not a debt collector under the FDCPA; California's
    Rosenthal Act (and Florida's FCCPA for attorneys) binds it to the same rules."""
    regions = ["US-NY", "US-CA", "US-FL", "US-TX"]
    zones = {"US-NY": "America/New_York", "US-CA": "America/Los_Angeles", "US-FL": "America/New_York",
             "US-TX": "America/Chicago"}
    accounts = [{"country": "US", "region": r, "time_zone": zones[r], column: True} for r in regions]
    outcome, _, _ = judge(creditor[name], accounts, [(k, "PHONE") for k in range(4)], utc(2026, 12, 1, 19, 0))
    assert outcome == [BLOCK if r in bound_regions else KEEP for r in regions]


@pytest.mark.parametrize("contract, order, expected", [
    (dt.date(2025, 6, 30), None, BLOCK),                       # the day before service began
    (dt.date(2025, 7, 1), None, KEEP),                         # made during service: not protected
    (dt.date(2024, 1, 1), utc(2025, 7, 2, 15), KEEP),          # a court order made during service
    (dt.date(2024, 1, 1), utc(2025, 6, 1, 15), BLOCK),         # an order from before the service
])
def test_scra_repossession_needs_a_court_order(policies, contract, order, expected):
    account = {**NY, "military_service": True, "military_service_since": utc(2025, 7, 1, 14), "contract_date": contract,
               "court_order_at": order}
    outcome, reason, _ = judge(policies["us.scra"], [account, {**account, "military_service": False}],
                               [(0, "REPOSSESSION"), (0, "PHONE"), (1, "REPOSSESSION")], TUESDAY_10_NY)
    assert outcome == [expected, KEEP, KEEP]
    assert reason[0] == ("US_SCRA_COURT_ORDER_REQUIRED" if expected == BLOCK else None)


# --- United States: consent, opt-out, time ----------------------------------------------------

@pytest.mark.parametrize("consent, expected", [(True, KEEP), (False, BLOCK), (None, BLOCK)])
def test_tcpa_voice_bots_and_texts_need_consent_to_that_channel(policies, consent, expected):
    account = {**NY, "consent_sms": consent, "consent_voice_bot": consent, "consent_automated_contact": False}
    outcome, reason, _ = judge(policies["us.tcpa_consent"], [account], [(0, "SMS"), (0, "VOICE_BOT"), (0, "PHONE")],
                               TUESDAY_10_NY)
    assert outcome == [expected, expected, KEEP]
    assert reason[0] == (None if expected == KEEP else "US_TCPA_NO_CONSENT")


def test_tcpa_falls_back_to_the_books_consent_where_the_ledger_says_nothing(policies):
    outcome, _, _ = judge(policies["us.tcpa_consent"], [{**NY, "consent_automated_contact": True}],
                          [(0, "SMS"), (0, "VOICE_BOT")], TUESDAY_10_NY)
    assert outcome == [KEEP, KEEP]


def test_tcpa_covers_agents_calls_when_the_dialer_autodials():
    policy = PluginManager({"policy": {"us.tcpa_consent": {"phone_autodialed": True}}}).policies()["us.tcpa_consent"]
    outcome, _, _ = judge(policy, [{**NY, "consent_phone": False}, {**NY, "consent_phone": True}],
                          [(0, "PHONE"), (1, "PHONE")], TUESDAY_10_NY)
    assert outcome == [BLOCK, KEEP]


@pytest.mark.parametrize("local, expected, until", [
    ((8, 59), DEFER, (9, 0)),           # 07:59 in Mountain time (El Paso): not yet in both zones
    ((9, 0), KEEP, None),               # 08:00 Mountain, 09:00 Central
    ((20, 59), KEEP, None),
    ((21, 0), DEFER, (9, 0)),           # 21:00 Central: the next time both allow is 09:00 Central tomorrow
])
def test_a_state_that_spans_two_zones_must_allow_in_both(policies, local, expected, until):
    """Texas: Central and Mountain time. A debtor known by a Central time zone may be in El Paso."""
    texan = {"country": "US", "region": "US-TX", "time_zone": "America/Chicago"}
    now = utc(2026, 12, 1, *local) + dt.timedelta(hours=6)             # CST = UTC−6
    outcome, reason, next_at = judge(policies["us.regf_hours"], [texan, {**texan, "region": "US-IL"}],
                                     [(0, "PHONE"), (1, "PHONE")], now)
    assert outcome[0] == expected
    if expected == DEFER:
        day = 1 if local < (12, 0) else 2
        assert reason[0] == "REGF_INCONVENIENT_TIME"
        assert next_at[0] == us(utc(2026, 12, day, *until) + dt.timedelta(hours=6))
    # Illinois has one zone: 08:59 Central is allowed there
    assert outcome[1] == (DEFER if local >= (21, 0) else KEEP)


@pytest.mark.parametrize("when, flags, action, expected", [
    (new_york(2026, 12, 1, 16, 59), {"employer_prohibits_contact": True}, "PHONE", (DEFER, "US_WORKPLACE_PROHIBITS_CONTACT")),
    (new_york(2026, 12, 1, 17, 0), {"employer_prohibits_contact": True}, "PHONE", (KEEP, None)),
    (new_york(2026, 12, 1, 8, 59), {"employer_prohibits_contact": True}, "PHONE", (KEEP, None)),
    (new_york(2026, 12, 5, 11, 0), {"employer_prohibits_contact": True}, "PHONE", (KEEP, None)),      # Saturday
    (new_york(2026, 12, 1, 11, 0), {"employer_prohibits_contact": True}, "FIELD_VISIT", (KEEP, None)),
    (new_york(2026, 12, 1, 9, 0), {"work_hours_inconvenient": True}, "FIELD_VISIT", (DEFER, "US_INCONVENIENT_TIME_STATED")),
    (new_york(2026, 12, 1, 8, 59), {"work_hours_inconvenient": True}, "FIELD_VISIT", (KEEP, None)),
])
def test_working_hours_the_debtor_said_are_off_limits(policies, when, flags, action, expected):
    outcome, reason, until = judge(policies["us.inconvenient_times"], [{**NY, **flags}], [(0, action)], when)
    assert (outcome[0], reason[0]) == expected
    if expected[0] == DEFER:
        assert until[0] == us(new_york(2026, 12, 1, 17, 0))


def test_massachusetts_allows_two_calls_in_seven_days(policies):
    ma = {"country": "US", "region": "US-MA", "time_zone": "America/New_York"}
    outcome, reason, until = judge(policies["us.ma_call_frequency"],
                                   [{**ma, "calls_7d": 1}, {**ma, "calls_7d": 2}, {**NY, "calls_7d": 5}],
                                   [(0, "PHONE"), (1, "PHONE"), (2, "PHONE"), (0, "VOICE_BOT", TUESDAY_10_NY
                                                                               + dt.timedelta(hours=2))],
                                   TUESDAY_10_NY)
    assert outcome == [KEEP, DEFER, KEEP, DEFER]         # the planned second call is the third in 7 days
    assert reason[1] == "US_MA_2_IN_7" and until[1] == us(new_york(2026, 12, 2, 8, 0))


# --- limitation periods -------------------------------------------------------------------------

@pytest.mark.parametrize("days_before_anniversary, expected", [(1, KEEP), (0, BLOCK)])
def test_a_time_barred_us_debt_is_not_sued_on(policies, days_before_anniversary, expected):
    """The oldest unpaid installment fell due 2022-12-01 (as_of − dpd); 4 years later it is barred."""
    as_of = dt.date(2026, 12, 1) - dt.timedelta(days=days_before_anniversary)
    dpd = (as_of - dt.date(2022, 12, 1)).days
    outcome, reason, _ = judge(policies["limitation_period"], [{**NY, "dpd": dpd}], [(0, "LEGAL_REVIEW"), (0, "PHONE")],
                               new_york(as_of.year, as_of.month, as_of.day), as_of=as_of)
    assert outcome == [expected, KEEP]
    assert reason[0] == ("US_TIME_BARRED_DEBT" if expected == BLOCK else None)


@pytest.mark.parametrize("last_payment, spoke, expected", [
    (dt.date(2023, 12, 1), None, BLOCK),                      # 3 years since the last payment
    (dt.date(2023, 12, 2), None, KEEP),
    (dt.date(2023, 6, 1), shanghai(2023, 12, 2), KEEP),         # a conversation (a demand) interrupted it
])
def test_china_limitation_runs_three_years_from_the_last_payment_or_demand(policies, last_payment, spoke, expected):
    account = {"dpd": 1200, "last_payment_date": last_payment, "last_conversation_at": spoke}
    outcome, reason, _ = judge(policies["limitation_period"], [account], [(0, "LEGAL_REVIEW")], SHANGHAI_10)
    assert outcome == [expected]
    assert reason[0] == ("CN_LIMITATION_EXPIRED" if expected == BLOCK else None)


# --- scripts ---------------------------------------------------------------------------------

CN_CALL = "您好，我是示例汽车金融的贷后专员，本次通话将被录音。请问是王伟本人吗？【确认本人后】您的车贷已逾期12天。"


@pytest.mark.parametrize("action, script, reason", [
    ("PHONE", CN_CALL, None),
    ("PHONE", "您好，我是客户服务中心。本次通话将被录音。请问是王伟本人吗？【确认本人后】您的车贷已逾期。", "SCRIPT_ANONYMOUS_CALLER"),
    ("PHONE", "您好，本次通话将被录音。王伟您好，您的车贷已逾期12天。【确认本人后】", "SCRIPT_DEBT_BEFORE_IDENTITY"),
    ("PHONE", "您好，我是示例汽车金融的贷后专员。请问是王伟本人吗？【确认本人后】您的车贷已逾期12天。", "SCRIPT_NO_RECORDING_NOTICE"),
    ("PHONE", CN_CALL + "不还就上黑名单。", "SCRIPT_FALSE_THREAT"),
    ("SMS", "【示例汽车金融】王伟您好，您尾号1234的账单已到期。如已还款请忽略。", None),
    ("SMS", "【示例汽车金融】王伟您好，您尾号1234的账单已到期。", "SCRIPT_NO_PAID_NOTICE"),
])
def test_china_scripts_say_what_they_must_and_nothing_they_must_not(policies, action, script, reason):
    outcome, reasons, _ = judge(policies["cn.script_content"], [{}], [(0, action)], SHANGHAI_10, scripts=[script])
    assert (outcome[0], reasons[0]) == ((KEEP, None) if reason is None else (BLOCK, reason))


US_CALL = "Hello, this is Example Auto Finance. May I speak with James Smith? [Identity confirmed] Your auto loan is past due."
US_BOT = US_CALL + " [Voicemail] This is Example Auto Finance for James Smith; please call us at +1-800-555-0100."


@pytest.mark.parametrize("region, action, script, reason", [
    ("US-NY", "PHONE", US_CALL, None),
    ("US-CA", "PHONE", US_CALL, "SCRIPT_NO_RECORDING_NOTICE"),               # all-party consent state
    ("US-CA", "PHONE", US_CALL + " This call is recorded.", None),
    ("US-NY", "PHONE", "Hello James, your auto loan is past due. [Identity confirmed]", "SCRIPT_DEBT_BEFORE_IDENTITY"),
    ("US-NY", "PHONE", "Hello, I am calling from Example Customer Service. [Identity confirmed] Your loan is due.",
     "SCRIPT_ANONYMOUS_CALLER"),
    ("US-NY", "VOICE_BOT", US_BOT, None),
    ("US-NY", "VOICE_BOT", US_CALL, "US_NO_LIMITED_CONTENT_VOICEMAIL"),
    ("US-NY", "VOICE_BOT", US_CALL + " [Voicemail] James, your payment is late; call us.", "US_NO_LIMITED_CONTENT_VOICEMAIL"),
])
def test_us_scripts_confirm_identity_first_and_leave_only_limited_content(policies, region, action, script, reason):
    zone = "America/Los_Angeles" if region == "US-CA" else "America/New_York"
    outcome, reasons, _ = judge(policies["us.script_content"], [{**NY, "region": region, "time_zone": zone}],
                                [(0, action)], utc(2026, 12, 1, 19, 0), scripts=[script])
    assert (outcome[0], reasons[0]) == ((KEEP, None) if reason is None else (BLOCK, reason))


# --- China: SMS cap, complaints, GPS, repossession basis -----------------------------------------

def test_china_caps_collection_sms_per_day_planned_ones_included(policies):
    outcome, reason, until = judge(policies["cn.sms_cap"], [{"sms_today": 1}, {"sms_today": 2}, {"sms_today": 0}],
                                   [(0, "SMS"), (1, "SMS"), (2, "SMS"), (2, "SMS"), (2, "SMS")], SHANGHAI_10)
    assert outcome == [KEEP, DEFER, KEEP, KEEP, DEFER]
    assert reason[1] == "CN_DAILY_SMS_CAP" and until[1] == us(shanghai(2026, 12, 2, 8, 0))


@pytest.mark.parametrize("opened, extensions, reason", [
    (dt.date(2026, 11, 16), 0, "CN_COMPLAINT_OPEN"),         # day 15 after the complaint
    (dt.date(2026, 11, 15), 0, "CN_COMPLAINT_OVERDUE"),      # day 16
    (dt.date(2026, 11, 1), 1, "CN_COMPLAINT_OPEN"),          # day 30, extended once
    (dt.date(2026, 10, 31), 1, "CN_COMPLAINT_OVERDUE"),
    (dt.date(2026, 10, 2), 2, "CN_COMPLAINT_OPEN"),          # day 60, extended twice
])
def test_a_complaint_pauses_contact_and_escalates_past_its_deadline(policies, opened, extensions, reason):
    account = {"open_complaints": 1, "complaint_opened_at": shanghai(opened.year, opened.month, opened.day, 15, 0),
               "complaint_extensions": extensions}
    outcome, reasons, _ = judge(policies["cn.complaint_pause"], [account, {**account, "open_complaints": 0}],
                                [(0, "PHONE"), (1, "PHONE")], SHANGHAI_10)
    assert outcome == [BLOCK, KEEP] and reasons[0] == reason


@pytest.mark.parametrize("consent, status, expected", [(True, "ONLINE", KEEP), (False, "ONLINE", BLOCK),
                                                       (None, "OFFLINE", BLOCK), (None, "NO_DEVICE", KEEP)])
def test_locating_the_car_by_gps_needs_separate_consent(policies, consent, status, expected):
    outcome, reason, _ = judge(policies["cn.gps_consent"], [{"consent_gps": consent, "gps_status": status}],
                               [(0, "REPOSSESSION"), (0, "FIELD_VISIT")], SHANGHAI_10)
    assert outcome == [expected, KEEP]
    assert reason[0] == (None if expected == KEEP else "CN_NO_GPS_CONSENT")


@pytest.mark.parametrize("basis", [None, "surrender_agreed_at", "court_order_at", "arbitral_award_at"])
def test_china_repossession_needs_a_recorded_legal_basis(policies, basis):
    account = {basis: shanghai(2026, 11, 20)} if basis else {}
    outcome, reason, _ = judge(policies["cn.repossession_basis"], [account], [(0, "REPOSSESSION")], SHANGHAI_10)
    assert outcome == [KEEP if basis else BLOCK]
    assert reason[0] == (None if basis else "CN_REPOSSESSION_NO_LEGAL_BASIS")


# --- repossession and disposal ------------------------------------------------------------------

MA = {"country": "US", "region": "US-MA", "time_zone": "America/New_York"}


@pytest.mark.parametrize("account, when, expected", [
    ({**MA}, new_york(2026, 12, 1), (BLOCK, "US_CURE_NOTICE_REQUIRED")),
    ({**MA, "cure_notice_at": new_york(2026, 11, 10, 11)}, new_york(2026, 12, 1), (DEFER, "US_CURE_PERIOD")),   # day 21
    ({**MA, "cure_notice_at": new_york(2026, 11, 10, 11)}, new_york(2026, 12, 2), (KEEP, None)),                # day 22
    ({**NY}, new_york(2026, 12, 1), (KEEP, None)),                                   # New York: no right to cure
])
def test_repossession_waits_for_the_right_to_cure(policies, account, when, expected):
    outcome, reason, until = judge(policies["us.right_to_cure"], [account], [(0, "REPOSSESSION")], when)
    assert (outcome[0], reason[0]) == expected
    if expected[0] == DEFER:
        assert until[0] == us(new_york(2026, 12, 2, 8, 0))


TAKEN = shanghai(2026, 11, 16, 15)          # repossessed on 16 November (local)


@pytest.mark.parametrize("account, when, expected", [
    ({"repossession_stage": "NONE"}, SHANGHAI_10, (BLOCK, "DISPOSAL_NOT_HELD")),
    ({"repossession_stage": "REDEEMED", "repossessed_at": TAKEN}, SHANGHAI_10, (BLOCK, "DISPOSAL_NOT_HELD")),
    ({"repossession_stage": "REPOSSESSED", "repossessed_at": TAKEN}, SHANGHAI_10, (BLOCK, "DISPOSAL_NO_NOTICE")),
    ({"repossession_stage": "NOTICE_SENT", "repossessed_at": TAKEN, "disposal_notice_at": shanghai(2026, 11, 10)},
     SHANGHAI_10, (BLOCK, "DISPOSAL_NO_NOTICE")),                                    # sent before the repossession
    ({"repossession_stage": "NOTICE_SENT", "repossessed_at": TAKEN, "disposal_notice_at": shanghai(2026, 11, 17)},
     shanghai(2026, 11, 30), (DEFER, "DISPOSAL_REDEMPTION_WINDOW")),               # day 14 after
    ({"repossession_stage": "NOTICE_SENT", "repossessed_at": TAKEN, "disposal_notice_at": shanghai(2026, 11, 17)},
     shanghai(2026, 12, 1), (KEEP, None)),                                          # day 15
])
def test_no_sale_before_the_notice_and_the_redemption_window(policies, account, when, expected):
    outcome, reason, until = judge(policies["disposal_notice"], [account], [(0, "DISPOSAL")], when)
    assert (outcome[0], reason[0]) == expected
    if expected[0] == DEFER:
        assert until[0] == us(shanghai(2026, 12, 1, 8, 0))


def test_california_gives_fifteen_days_after_the_notice(policies):
    ca = {"country": "US", "region": "US-CA", "time_zone": "America/Los_Angeles", "repossession_stage": "NOTICE_SENT",
          "repossessed_at": utc(2026, 11, 1, 20), "disposal_notice_at": utc(2026, 11, 16, 20)}   # 16 Nov, 12:00 PST
    day_14 = judge(policies["disposal_notice"], [ca], [(0, "DISPOSAL")], utc(2026, 11, 30, 20))[0]
    day_15 = judge(policies["disposal_notice"], [ca], [(0, "DISPOSAL")], utc(2026, 12, 1, 20))[0]
    assert (day_14, day_15) == ([DEFER], [KEEP])
    texas = {**ca, "region": "US-TX", "time_zone": "America/Chicago"}                    # UCC: 10 days
    assert judge(policies["disposal_notice"], [texas], [(0, "DISPOSAL")], utc(2026, 11, 26, 20))[0] == [KEEP]


# --- third parties ------------------------------------------------------------------------------

@pytest.mark.parametrize("script", ["他欠我们钱，请他回电。", "请他把分期结清。", "他的车要被收走了。", "Tell him his car note is late."])
def test_the_screen_refuses_what_the_keyword_list_let_through(policies, script):
    outcome, reason, _ = judge(policies["third_party_contact"], [{"phone_valid": False, "third_party_contacts_30d": 0}],
                               [(0, "THIRD_PARTY_CONTACT")], SHANGHAI_10, scripts=[script])
    assert (outcome, reason) == ([BLOCK], ["THIRD_PARTY_DEBT_DISCLOSED"])


def test_third_parties_are_contacted_once_in_thirty_days(policies):
    outcome, reason, _ = judge(policies["third_party_contact"],
                               [{"phone_valid": False, "third_party_contacts_30d": 0},
                                {"phone_valid": False, "third_party_contacts_30d": 1}],
                               [(0, "THIRD_PARTY_CONTACT"), (0, "THIRD_PARTY_CONTACT"), (1, "THIRD_PARTY_CONTACT")],
                               SHANGHAI_10, scripts=["请转告王伟回电。"] * 3)
    assert outcome == [KEEP, BLOCK, BLOCK] and reason[1] == reason[2] == "THIRD_PARTY_CONTACT_CAP"


# --- configuration -----------------------------------------------------------------------------

@pytest.mark.parametrize("config, message", [
    ({"compliance": {"operator": {"US": "debt_buyer"}}}, r"\[compliance.operator\] US = 'debt_buyer': expected one of"),
    ({"compliance": {"operator": {"MX": "creditor"}}}, r"\[compliance.operator\] MX: not a country"),
    ({"policy": {"us.right_to_cure": {"days_by_state": {"US-MA": "21"}}}},
     r'\[policy."us.right_to_cure"\] days_by_state: expected a table of region code = whole number'),
    ({"policy": {"us.tcpa_consent": {"phone_autodialed": "yes"}}},
     r'\[policy."us.tcpa_consent"\] phone_autodialed: expected true or false'),
])
def test_bad_compliance_configuration_is_named(config, message):
    with pytest.raises(PostloanError, match=message):
        PluginManager(config).policies()


def test_every_policy_has_rules_for_the_rulebook_and_every_code_is_in_them(policies):
    for name, policy in policies.items():
        assert policy.RULES, name
        documented = {r.reason for r in policy.RULES}
        if "LITIGATION_*" not in documented:
            for code in policy.reason_codes:
                if code in documented:
                    continue
                assert any(code in p.reason_codes and code in {r.reason for r in p.RULES}
                           for p in policies.values()), (name, code)
        assert NULL_TIME < 0


@pytest.mark.parametrize("proceeds, deficiency, surplus", [
    (100_000.00, 1_500.00, 0.0),          # short of what was owed and the expenses: a deficiency
    (101_499.99, 0.01, 0.0),              # one cent short
    (101_500.00, 0.0, 0.0),               # exactly enough: nothing either way
    (101_500.01, 0.0, 0.01),              # one cent over: a surplus, returned to the debtor
    (120_000.00, 0.0, 18_500.00),
])
def test_a_sale_leaves_a_deficiency_or_a_surplus(proceeds, deficiency, surplus):
    """UCC § 9-615 / Civil Code art. 643: proceeds pay the expenses of retaking and selling,
    then the debt; what is left over goes back, what is short is still owed."""
    from postloan_builtins.compliance import settlement
    out = settlement(np.array([100_000.00]), np.array([proceeds]), 1_500.00)
    assert out["deficiency"][0] == pytest.approx(deficiency, abs=1e-6)
    assert out["surplus"][0] == pytest.approx(surplus, abs=1e-6)
    assert (out["deficiency"][0] > 0) + (out["surplus"][0] > 0) <= 1


def test_a_car_not_sold_has_no_settlement():
    from postloan_builtins.compliance import settlement
    out = settlement(np.array([100_000.0, 50_000.0]), np.array([np.nan, 60_000.0]), np.array([0.0, 500.0]))
    assert np.isnan(out["deficiency"][0]) and np.isnan(out["surplus"][0])
    assert out["surplus"][1] == pytest.approx(9_500.0) and out["deficiency"][1] == 0.0
