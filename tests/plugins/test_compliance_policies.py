"""Each built-in compliance policy at and around its boundaries, in the debtor's local time."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from kernel.hookspecs import BLOCK, DEFER, KEEP, NULL_TIME
from plugin_helpers import make_actions, us, utc

SHANGHAI_OFFSET = dt.timedelta(hours=8)


def judge(policy, accounts, planned, now, scripts=None):
    actions = make_actions(accounts, planned, now, scripts)
    v = policy.check(actions)
    return v.outcome.tolist(), v.reason_codes().tolist(), v.next_allowed_us.tolist()


def shanghai(y, m, d, hh, mm) -> dt.datetime:
    return utc(y, m, d, hh, mm) - SHANGHAI_OFFSET


# --- China: quiet hours 22:00–08:00 ----------------------------------------------------------

@pytest.mark.parametrize("local, expected", [
    ((21, 59), KEEP), ((22, 0), DEFER), ((23, 30), DEFER), ((0, 0), DEFER), ((7, 59), DEFER), ((8, 0), KEEP),
])
def test_quiet_hours_boundaries(policies, local, expected):
    now = shanghai(2026, 11, 28, *local)
    outcome, reason, until = judge(policies["cn.quiet_hours"], [{}], [(0, "PHONE")], now)
    assert outcome == [expected]
    if expected == DEFER:
        assert reason == ["CN_QUIET_HOURS"]
        day = 28 if local[0] < 8 else 29
        assert until == [us(shanghai(2026, 11, day, 8, 0))]      # the next 08:00 local
    else:
        assert reason == [None] and until == [NULL_TIME]


def test_quiet_hours_apply_to_every_contact_channel_but_not_to_internal_work(policies):
    now = shanghai(2026, 11, 28, 23, 0)
    channels = ["SMS", "VOICE_BOT", "PHONE", "FIELD_VISIT", "THIRD_PARTY_CONTACT", "LEGAL_REVIEW",
                "REPOSSESSION", "DISPOSAL"]
    outcome, _, _ = judge(policies["cn.quiet_hours"], [{}], [(0, c) for c in channels], now)
    assert outcome == [DEFER] * 5 + [KEEP] * 3


def test_quiet_hours_judge_the_planned_time_not_now(policies):
    now = shanghai(2026, 11, 28, 20, 0)
    outcome, _, _ = judge(policies["cn.quiet_hours"], [{}],
                          [(0, "PHONE", shanghai(2026, 11, 28, 21, 59)), (0, "PHONE", shanghai(2026, 11, 28, 22, 0))], now)
    assert outcome == [KEEP, DEFER]


def test_quiet_hours_use_each_debtors_own_time_zone(policies):
    # 22:30 in Shanghai is 20:30 in Urumqi (UTC+6)
    now = shanghai(2026, 11, 28, 22, 30)
    outcome, _, until = judge(policies["cn.quiet_hours"], [{}, {"time_zone": "Asia/Urumqi"}],
                              [(0, "SMS"), (1, "SMS")], now)
    assert outcome == [DEFER, KEEP]


# --- China: 3 connected calls a day, 6 unanswered attempts a day -----------------------------

def test_third_connected_call_is_allowed_and_fourth_is_deferred(policies):
    now = shanghai(2026, 11, 28, 10, 0)
    accounts = [{"connected_calls_today": 2, "call_attempts_today": 2},
                {"connected_calls_today": 3, "call_attempts_today": 3}]
    outcome, reason, until = judge(policies["cn.call_limits"], accounts, [(0, "PHONE"), (1, "PHONE")], now)
    assert outcome == [KEEP, DEFER]
    assert reason[1] == "CN_DAILY_CONNECTED_CALLS"
    assert until[1] == us(shanghai(2026, 11, 29, 8, 0))


def test_sixth_unanswered_attempt_is_allowed_and_seventh_is_deferred(policies):
    now = shanghai(2026, 11, 28, 10, 0)
    accounts = [{"call_attempts_today": 5}, {"call_attempts_today": 6},
                {"call_attempts_today": 8, "connected_calls_today": 2}]      # 6 unanswered
    outcome, reason, _ = judge(policies["cn.call_limits"], accounts, [(0, "PHONE"), (1, "VOICE_BOT"), (2, "PHONE")], now)
    assert outcome == [KEEP, DEFER, DEFER]
    assert reason[1] == reason[2] == "CN_DAILY_UNANSWERED_ATTEMPTS"


def test_calls_planned_in_the_same_batch_count_against_the_daily_limit(policies):
    now = shanghai(2026, 11, 28, 9, 0)
    later = shanghai(2026, 11, 28, 12, 0)
    outcome, _, _ = judge(policies["cn.call_limits"], [{"connected_calls_today": 1, "call_attempts_today": 1}],
                          [(0, "PHONE", later), (0, "PHONE"), (0, "PHONE", shanghai(2026, 11, 28, 15, 0)), (0, "SMS")], now)
    # planned calls in time order: 09:00 (2nd connected), 12:00 (3rd), 15:00 (would be the 4th)
    assert outcome == [KEEP, KEEP, DEFER, KEEP]


@pytest.mark.parametrize("name, account, planned, expected", [
    ("cn.call_limits", {"connected_calls_today": 1, "call_attempts_today": 1},
     [("PHONE", (12, 0)), ("PHONE", (9, 0)), ("PHONE", (15, 0)), ("SMS", (9, 0))], [KEEP, KEEP, DEFER, KEEP]),
    ("cn.sms_cap", {"sms_today": 1}, [("SMS", (9, 0)), ("SMS", (10, 0))], [KEEP, DEFER]),
    ("third_party_contact", {"phone_valid": False},
     [("THIRD_PARTY_CONTACT", (9, 0)), ("THIRD_PARTY_CONTACT", (10, 0))], [KEEP, BLOCK]),
], ids=["calls", "sms", "third"])
def test_a_requests_planned_actions_count_as_a_batchs_do(policies, name, account, planned, expected):
    """One account's record (a request: the engine's one-account compiled call, told which
    facts its run needs) counts the calls, SMS and third-party contacts planned before each
    action as the batch's columns do."""
    from kernel.hookspecs import ACTION, ActionBatch, Batch, Record
    from plugin_helpers import ACCOUNT_DEFAULTS
    now = shanghai(2026, 11, 28, 9, 0)
    timed = [(0, action, shanghai(2026, 11, 28, *at)) for action, at in planned]
    assert judge(policies[name], [account], timed, now)[0] == expected             # the columns' way
    batch = Batch(1, dt.date(2026, 11, 28), now, [Record({**ACCOUNT_DEFAULTS, **account})])
    actions = ActionBatch(batch, np.zeros(len(timed), np.int64), np.array([ACTION[a] for _, a, _ in timed], np.int8),
                          np.array([us(at) for _, _, at in timed], np.int64))
    assert policies[name].check(actions).outcome.tolist() == expected


def test_daily_counters_do_not_apply_to_a_call_planned_for_tomorrow(policies):
    now = shanghai(2026, 11, 28, 10, 0)
    outcome, _, _ = judge(policies["cn.call_limits"], [{"connected_calls_today": 3, "call_attempts_today": 3}],
                          [(0, "PHONE"), (0, "PHONE", shanghai(2026, 11, 29, 9, 0))], now)
    assert outcome == [DEFER, KEEP]


def test_sms_and_field_visits_are_not_calls(policies):
    now = shanghai(2026, 11, 28, 10, 0)
    outcome, _, _ = judge(policies["cn.call_limits"], [{"connected_calls_today": 9, "call_attempts_today": 20}],
                          [(0, "SMS"), (0, "FIELD_VISIT")], now)
    assert outcome == [KEEP, KEEP]


# --- China: complaints, consent ----------------------------------------------------------------

def test_open_complaint_pauses_contact_but_not_legal_work(policies):
    now = shanghai(2026, 11, 28, 10, 0)
    outcome, reason, _ = judge(policies["cn.complaint_pause"], [{"open_complaints": 1}, {"open_complaints": 0}],
                               [(0, "PHONE"), (0, "FIELD_VISIT"), (0, "LEGAL_REVIEW"), (1, "PHONE")], now)
    assert outcome == [BLOCK, BLOCK, KEEP, KEEP]
    assert reason[:2] == ["CN_COMPLAINT_OPEN"] * 2


def test_automated_contact_needs_consent_and_agents_do_not(policies):
    now = shanghai(2026, 11, 28, 10, 0)
    outcome, reason, _ = judge(policies["cn.automated_consent"], [{"consent_automated_contact": False}],
                               [(0, "SMS"), (0, "VOICE_BOT"), (0, "PHONE")], now)
    assert outcome == [BLOCK, BLOCK, KEEP]
    assert reason[0] == "CN_NO_AUTOMATED_CONSENT"


# --- third parties --------------------------------------------------------------------------

@pytest.mark.parametrize("account, expected, reason", [
    ({"phone_valid": True, "consecutive_failed_attempts": 2}, BLOCK, "THIRD_PARTY_DEBTOR_REACHABLE"),
    ({"phone_valid": True, "consecutive_failed_attempts": 3}, KEEP, None),
    ({"phone_valid": False, "consecutive_failed_attempts": 0}, KEEP, None),
    ({"phone_valid": False, "has_third_party_contact": False}, BLOCK, "THIRD_PARTY_NONE_ON_FILE"),
])
def test_third_party_only_when_the_debtor_is_unreachable(policies, account, expected, reason):
    now = shanghai(2026, 11, 28, 10, 0)
    outcome, reasons, _ = judge(policies["third_party_contact"], [account], [(0, "THIRD_PARTY_CONTACT")], now,
                                scripts=["您好，请转告王伟回电。"])
    assert outcome == [expected] and reasons == [reason]


@pytest.mark.parametrize("script, disclosed", [
    ("您好，请转告王伟回电400-800-8000。", False),
    ("您好，王伟的车贷已逾期，请转告他还款。", True),
    ("Please ask James to call us back; however busy, it matters.", False),
    ("Please tell James his payment is past due.", True),
    ("We are collecting a DEBT.", True),
])
def test_third_party_script_must_not_mention_the_debt(policies, script, disclosed):
    now = shanghai(2026, 11, 28, 10, 0)
    outcome, reason, _ = judge(policies["third_party_contact"], [{"phone_valid": False}],
                               [(0, "THIRD_PARTY_CONTACT")], now, scripts=[script])
    assert outcome == [BLOCK if disclosed else KEEP]
    assert reason == ["THIRD_PARTY_DEBT_DISCLOSED" if disclosed else None]


# --- US Regulation F ------------------------------------------------------------------------

NY = {"time_zone": "America/New_York", "country": "US", "region": "US-NY"}


def test_seventh_call_in_seven_days_is_allowed_and_eighth_deferred(policies):
    now = utc(2026, 12, 1, 15, 0)          # 10:00 in New York
    accounts = [{**NY, "calls_7d": 6}, {**NY, "calls_7d": 7}]
    outcome, reason, until = judge(policies["us.regf_call_frequency"], accounts, [(0, "PHONE"), (1, "PHONE")], now)
    assert outcome == [KEEP, DEFER]
    assert reason[1] == "REGF_7_IN_7"
    assert until[1] == us(utc(2026, 12, 2, 13, 0))          # tomorrow 08:00 EST


def test_planned_calls_count_toward_seven_in_seven(policies):
    now = utc(2026, 12, 1, 15, 0)
    outcome, _, _ = judge(policies["us.regf_call_frequency"], [{**NY, "calls_7d": 6}],
                          [(0, "PHONE"), (0, "VOICE_BOT", utc(2026, 12, 1, 18, 0)), (0, "SMS")], now)
    assert outcome == [KEEP, DEFER, KEEP]


@pytest.mark.parametrize("days_ago, expected", [(6, DEFER), (7, KEEP), (0, DEFER)])
def test_no_call_within_seven_days_after_a_conversation(policies, days_ago, expected):
    now = utc(2026, 12, 10, 15, 0)                          # 10:00 EST
    spoke = now - dt.timedelta(days=days_ago, hours=1)
    outcome, reason, until = judge(policies["us.regf_conversation"], [{**NY, "last_conversation_at": spoke}],
                                   [(0, "PHONE"), (0, "SMS")], now)
    assert outcome == [expected, KEEP]
    if expected == DEFER:
        resume_day = (spoke - dt.timedelta(hours=5)).date() + dt.timedelta(days=7)
        assert reason[0] == "REGF_RECENT_CONVERSATION"
        assert until[0] == us(utc(resume_day.year, resume_day.month, resume_day.day, 13, 0))   # 08:00 EST


def test_conversation_days_are_counted_in_the_debtors_local_dates(policies):
    # 2026-12-03 03:00 UTC is 2026-12-02 22:00 in New York: 7 local days before 2026-12-09
    spoke = utc(2026, 12, 3, 3, 0)
    now = utc(2026, 12, 9, 15, 0)                           # only 6 days later in UTC dates
    outcome, _, _ = judge(policies["us.regf_conversation"], [{**NY, "last_conversation_at": spoke}], [(0, "PHONE")], now)
    assert outcome == [KEEP]


def test_no_conversation_on_record_does_not_defer(policies):
    outcome, _, _ = judge(policies["us.regf_conversation"], [{**NY}], [(0, "PHONE")], utc(2026, 12, 10, 15, 0))
    assert outcome == [KEEP]


@pytest.mark.parametrize("now, expected", [
    (utc(2026, 7, 1, 0, 59), KEEP),      # 20:59 EDT
    (utc(2026, 7, 1, 1, 0), DEFER),      # 21:00 EDT
    (utc(2026, 12, 1, 12, 59), DEFER),   # 07:59 EST
    (utc(2026, 12, 1, 13, 0), KEEP),     # 08:00 EST
])
def test_regf_hours_boundaries(policies, now, expected):
    outcome, reason, _ = judge(policies["us.regf_hours"], [{**NY}], [(0, "SMS")], now)
    assert outcome == [expected]
    assert reason == ["REGF_INCONVENIENT_TIME" if expected == DEFER else None]


def test_regf_hours_across_the_spring_forward_gap(policies):
    # 2026-03-08 02:00 EST jumps to 03:00 EDT; at 01:30 EST the next 08:00 is 08:00 EDT = 12:00 UTC
    now = utc(2026, 3, 8, 6, 30)
    _, _, until = judge(policies["us.regf_hours"], [{**NY}], [(0, "PHONE")], now)
    assert until == [us(utc(2026, 3, 8, 12, 0))]


def test_regf_hours_across_the_autumn_fall_back(policies):
    # 2026-11-01 02:00 EDT falls back to 01:00 EST; at 01:30 EDT the next 08:00 is 08:00 EST = 13:00 UTC
    now = utc(2026, 11, 1, 5, 30)
    _, _, until = judge(policies["us.regf_hours"], [{**NY}], [(0, "PHONE")], now)
    assert until == [us(utc(2026, 11, 1, 13, 0))]


def test_quiet_hours_deferral_crosses_the_night_of_a_dst_change(policies):
    # 21:30 EST on 2026-03-07; the next 08:00 is on 2026-03-08, already EDT: 12:00 UTC
    now = utc(2026, 3, 8, 2, 30)
    outcome, _, until = judge(policies["us.regf_hours"], [{**NY}], [(0, "PHONE")], now)
    assert outcome == [DEFER] and until == [us(utc(2026, 3, 8, 12, 0))]


def test_arizona_keeps_standard_time_while_california_moves(policies):
    now = utc(2026, 7, 1, 4, 30)      # 21:30 in Los Angeles (PDT), 21:30 in Phoenix (MST, no DST)
    accounts = [{**NY, "time_zone": "America/Los_Angeles"}, {**NY, "time_zone": "America/Phoenix"}]
    outcome, _, until = judge(policies["us.regf_hours"], accounts, [(0, "PHONE"), (1, "PHONE")], now)
    assert outcome == [DEFER, DEFER]
    assert until == [us(utc(2026, 7, 1, 15, 0)), us(utc(2026, 7, 1, 15, 0))]
    winter = utc(2026, 12, 1, 4, 30)  # 20:30 in LA (PST), 21:30 in Phoenix
    outcome, _, _ = judge(policies["us.regf_hours"], accounts, [(0, "PHONE"), (1, "PHONE")], winter)
    assert outcome == [KEEP, DEFER]


def test_a_phone_opt_out_restricts_calls_not_texts(policies):
    """Reg F § 1006.14(h): the medium the debtor asked us not to use is the telephone."""
    outcome, reason, _ = judge(policies["us.regf_restricted_medium"], [{**NY, "contact_opt_out": True}, {**NY}],
                               [(0, "PHONE"), (0, "VOICE_BOT"), (0, "SMS"), (1, "PHONE")], utc(2026, 12, 1, 15, 0))
    assert outcome == [BLOCK, BLOCK, KEEP, KEEP] and reason[0] == "REGF_RESTRICTED_MEDIUM"


@pytest.mark.parametrize("opted_out, script, expected", [
    (False, "Example Auto Finance: please call us. Reply STOP to opt out.", (KEEP, None)),
    (True, "Example Auto Finance: please call us. Reply STOP to opt out.", (BLOCK, "REGF_OPT_OUT_SMS")),
    (False, "Example Auto Finance: please call us.", (BLOCK, "REGF_NO_OPT_OUT_NOTICE")),
])
def test_texts_honour_the_sms_opt_out_and_carry_the_instruction(policies, opted_out, script, expected):
    """Reg F § 1006.6(e): an SMS opt-out blocks texts; every text says how to opt out."""
    outcome, reason, _ = judge(policies["us.regf_opt_out"], [{**NY, "opt_out_sms": opted_out}],
                               [(0, "SMS"), (0, "PHONE")], utc(2026, 12, 1, 15, 0), scripts=[script, None])
    assert (outcome[0], reason[0]) == expected and outcome[1] == KEEP


# --- litigation preconditions ---------------------------------------------------------------

def litigation(policy, account, eligible=True, missing="NONE", with_decision=True):
    from kernel.hookspecs import ACTION, ActionBatch, Batch
    from plugin_helpers import columns_of
    book = columns_of([account])
    sources = [book]
    if with_decision:
        sources.insert(0, {"litigation.eligible": np.array([eligible]), "litigation.missing": np.array([missing], dtype=object)})
    now = utc(2026, 11, 28, 2, 0)
    batch = Batch(1, dt.date(2026, 11, 28), now, sources)
    actions = ActionBatch(batch, np.array([0, 0]), np.array([ACTION["LEGAL_REVIEW"], ACTION["PHONE"]], np.int8),
                          np.full(2, us(now)))
    v = policy.check(actions)
    assert v.outcome[1] == KEEP                  # only legal review is this policy's business
    return v.outcome[0], v.reason_codes()[0]


def test_litigation_with_every_precondition_met_is_kept(policies):
    assert litigation(policies["litigation_preconditions"], {}) == (KEEP, None)


@pytest.mark.parametrize("account, decision, reason", [
    ({"litigation_clause": False}, {"eligible": False, "missing": "NO_CLAUSE"}, "LITIGATION_NO_CLAUSE"),
    ({"contact_records_kept": False}, {"eligible": False, "missing": "EVIDENCE_INCOMPLETE"}, "LITIGATION_NO_CONTACT_RECORDS"),
    ({"demand_notices_sent": 1}, {"eligible": False, "missing": "EVIDENCE_INCOMPLETE"}, "LITIGATION_NO_DEMAND_NOTICE"),
    ({"demand_notices_sent": 0, "litigation_clause": False}, {"eligible": False, "missing": "NOT_SEVERE"},
     "LITIGATION_NO_CLAUSE+LITIGATION_NO_DEMAND_NOTICE+LITIGATION_NOT_SEVERE"),
    ({}, {"eligible": False, "missing": "BELOW_THRESHOLD"}, "LITIGATION_BELOW_THRESHOLD"),
    ({}, {"eligible": False, "missing": "NO_WILFUL_DEFAULT"}, "LITIGATION_NO_WILFUL_DEFAULT"),
    ({}, {"eligible": False, "missing": "EVIDENCE_INCOMPLETE"}, "LITIGATION_EVIDENCE_INCOMPLETE"),
    ({}, {"eligible": False, "missing": "NONE"}, "LITIGATION_NOT_ELIGIBLE"),
    ({"litigation_clause": False}, {"eligible": True, "missing": "NONE"}, "LITIGATION_NO_CLAUSE"),
])
def test_litigation_blocked_naming_what_is_missing(policies, account, decision, reason):
    assert litigation(policies["litigation_preconditions"], account, **decision) == (BLOCK, reason)


def test_litigation_without_a_litigation_decision_is_blocked(policies):
    assert litigation(policies["litigation_preconditions"], {}, with_decision=False) == (BLOCK, "LITIGATION_NO_DECISION")


def test_every_reason_a_policy_gives_is_in_its_catalogue(policies):
    for name, policy in policies.items():
        assert policy.reason_codes, name
        for code in policy.reason_codes:
            assert code.isupper() and " " not in code, code


def test_policy_parameters_come_from_the_configuration():
    from kernel.errors import PostloanError
    from kernel.plugins import PluginManager
    pm = PluginManager({"policy": {"cn.quiet_hours": {"start": "21:00"}}})
    now = shanghai(2026, 11, 28, 21, 30)
    outcome, _, _ = judge(pm.policies()["cn.quiet_hours"], [{}], [(0, "SMS")], now)
    assert outcome == [DEFER]
    with pytest.raises(PostloanError, match=r'\[policy."cn.call_limits"\].*unknown parameter \'max_calls\''):
        PluginManager({"policy": {"cn.call_limits": {"max_calls": 2}}}).policies()
    with pytest.raises(PostloanError, match="expected a time of day HH:MM, got '25:00'"):
        PluginManager({"policy": {"cn.quiet_hours": {"end": "25:00"}}}).policies()
