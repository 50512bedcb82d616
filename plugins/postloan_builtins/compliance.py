"""Built-in compliance policies: China's collection rules, US Regulation F, third-party
contact, and litigation preconditions.

Each policy judges whole action batches with NumPy masks. Times are the debtor's local
time (book column ``time_zone``, DST included) at the moment the action would happen
(``max(earliest_at, now)``); ``now`` is given to the pipeline, never read from the clock.
docs/compliance.md explains every policy and reason code for compliance officers.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import kernel
from kernel.errors import PostloanError
from kernel.hookspecs import NULL_TIME, ActionBatch, ActionRow, CompliancePolicy, Verdict, Verdicts

__all__ = [
    "QuietHours", "CallLimits", "ComplaintPause", "AutomatedConsent", "ThirdPartyContact",
    "RegFOptOut", "RegFHours", "RegFConversation", "RegFCallFrequency", "LitigationPreconditions",
    "CONTACT", "CALLS", "AUTOMATED", "DEBT_TERMS", "mentions_debt",
]

#: actions that contact a person (debtor or third party)
CONTACT = ("SMS", "VOICE_BOT", "PHONE", "FIELD_VISIT", "THIRD_PARTY_CONTACT")
#: telephone calls to the debtor (a voice bot call is a call)
CALLS = ("PHONE", "VOICE_BOT")
#: automated contact, which needs the debtor's consent in China
AUTOMATED = ("SMS", "VOICE_BOT")

#: words that reveal a debt; a third-party script must contain none of them
DEBT_TERMS = ("逾期", "欠款", "欠费", "欠钱", "债", "催收", "催缴", "还款", "还钱", "罚息", "贷款", "车贷",
              "违约", "起诉", "诉讼", "拖欠",
              "debt", "overdue", "owe", "owing", "collect", "payment", "loan", "past due", "delinquen",
              "default", "penalt", "arrears", "lawsuit", "repossess", "balance")
# English terms match at the start of a word ("owe" must not match "however")
_DEBT_PATTERN = "(?i)(" + "|".join(re.escape(t) if not t.isascii() else r"\b" + re.escape(t)
                                   for t in DEBT_TERMS) + ")"


# the same pattern for Python's re, for a few texts (re.ASCII: \b as in RE2, Arrow's engine)
_DEBT_RE = re.compile(_DEBT_PATTERN, re.ASCII)


def mentions_debt(texts: pa.Array) -> np.ndarray:
    """Mask of the texts that contain a debt term (null → False)."""
    if len(texts) <= 16:
        return np.array([t is not None and _DEBT_RE.search(t) is not None for t in texts.to_pylist()], bool)
    hits = pc.match_substring_regex(texts, _DEBT_PATTERN)
    return pc.fill_null(hits, False).to_numpy(zero_copy_only=False).astype(bool)


def _minutes(text: Any, where: str) -> int:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", str(text))
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise PostloanError(f"{where}: expected a time of day HH:MM, got {text!r}")
    return int(m.group(1)) * 60 + int(m.group(2))


class _Policy(CompliancePolicy):
    """A built-in policy with parameters from ``[policy."<name>"]`` in the configuration."""

    defaults: Mapping[str, Any] = {}

    def __init__(self, **params):
        where = f'[policy."{self.name}"]'
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise PostloanError(f"{where}: unknown parameter {unknown[0]!r} "
                                f"(parameters: {', '.join(self.defaults) or 'none'})")
        self.params = {**self.defaults, **params}
        for key, default in self.defaults.items():
            value = self.params[key]
            if isinstance(default, int) and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise PostloanError(f"{where} {key}: expected a whole number ≥ 0, got {value!r}")
        self._where = where


class QuietHours(_Policy):
    """No collection contact between 22:00 and 08:00 in the debtor's local time."""

    name = "cn.quiet_hours"
    reason_codes = {"CN_QUIET_HOURS": "Contact in the debtor's local quiet hours (22:00–08:00); deferred to 08:00."}
    defaults = {"start": "22:00", "end": "08:00"}

    def __init__(self, **params):
        super().__init__(**params)
        self.start = _minutes(self.params["start"], f"{self._where} start")
        self.end = _minutes(self.params["end"], f"{self._where} end")

    def check(self, actions: ActionBatch) -> Verdicts:
        v = Verdicts(actions.n)
        contact = actions.is_action(*CONTACT)
        if not contact.any():
            return v
        minute = actions.local_minute
        quiet = (minute >= self.start) | (minute < self.end) if self.start > self.end else \
            (minute >= self.start) & (minute < self.end)
        v.defer(contact & quiet, "CN_QUIET_HOURS", actions.next_local_time(self.end))
        return v

    def check_one(self, a: ActionRow, v: Verdict) -> None:
        if a.action in CONTACT:
            m = a.local_minute
            quiet = (m >= self.start or m < self.end) if self.start > self.end else self.start <= m < self.end
            if quiet:
                v.defer("CN_QUIET_HOURS", a.next_local_time(self.end))


class CallLimits(_Policy):
    """At most 3 connected calls a day per debtor and 6 unanswered attempts a day per number.

    Calls planned in this batch count too: the k-th planned call of an account on a local day
    is judged as if the k − 1 before it were made and answered (for the connected-call limit)
    or unanswered (for the attempt limit) — the cautious reading."""

    name = "cn.call_limits"
    reason_codes = {
        "CN_DAILY_CONNECTED_CALLS": "The debtor already had 3 connected collection calls today; deferred to tomorrow 08:00.",
        "CN_DAILY_UNANSWERED_ATTEMPTS": "The number already had 6 unanswered attempts today; deferred to tomorrow 08:00.",
    }
    defaults = {"max_connected_calls": 3, "max_unanswered_attempts": 6, "day_starts": "08:00"}

    def __init__(self, **params):
        super().__init__(**params)
        self.day_starts = _minutes(self.params["day_starts"], f"{self._where} day_starts")

    def check(self, actions: ActionBatch) -> Verdicts:
        v = Verdicts(actions.n)
        calls = actions.is_action(*CALLS)
        if not calls.any():
            return v
        day = actions.local_day
        today = actions.local_day_of(np.full(actions.n, actions.now_us, np.int64))
        same_day = day == today
        before = actions.order_within_account(calls, by=day)
        connected = np.where(same_day, actions.int("connected_calls_today"), 0) + before
        attempts = np.where(same_day, actions.int("call_attempts_today"), 0)
        unanswered = np.maximum(attempts - np.where(same_day, actions.int("connected_calls_today"), 0), 0) + before
        tomorrow = actions.local_time_on_day(day + 1, self.day_starts)
        v.defer(calls & (connected >= self.params["max_connected_calls"]), "CN_DAILY_CONNECTED_CALLS", tomorrow)
        v.defer(calls & (unanswered >= self.params["max_unanswered_attempts"]), "CN_DAILY_UNANSWERED_ATTEMPTS", tomorrow)
        return v

    def check_one(self, a: ActionRow, v: Verdict) -> None:
        if a.action not in CALLS:
            return
        day = a.local_day
        same_day = day == a.local_day_of(a.now_us)
        before = a.earlier(CALLS, same_local_day=True)
        connected_today = a.int("connected_calls_today") if same_day else 0
        attempts = a.int("call_attempts_today") if same_day else 0
        tomorrow = a.local_time_on_day(day + 1, self.day_starts)
        if connected_today + before >= self.params["max_connected_calls"]:
            v.defer("CN_DAILY_CONNECTED_CALLS", tomorrow)
        if max(attempts - connected_today, 0) + before >= self.params["max_unanswered_attempts"]:
            v.defer("CN_DAILY_UNANSWERED_ATTEMPTS", tomorrow)


class ComplaintPause(_Policy):
    """No collection contact while a complaint about collection is open."""

    name = "cn.complaint_pause"
    reason_codes = {"CN_COMPLAINT_OPEN": "A complaint about collection is open; contact is paused until it is closed."}

    def check(self, actions: ActionBatch) -> Verdicts:
        v = Verdicts(actions.n)
        contact = actions.is_action(*CONTACT)
        if contact.any():
            v.block(contact & (actions.int("open_complaints") > 0), "CN_COMPLAINT_OPEN")
        return v

    def check_one(self, a: ActionRow, v: Verdict) -> None:
        if a.action in CONTACT and a.int("open_complaints") > 0:
            v.block("CN_COMPLAINT_OPEN")


class AutomatedConsent(_Policy):
    """No automated calls or messages (voice bot, SMS) without the debtor's consent."""

    name = "cn.automated_consent"
    reason_codes = {"CN_NO_AUTOMATED_CONSENT": "The debtor has not consented to automated calls and messages."}

    def check(self, actions: ActionBatch) -> Verdicts:
        v = Verdicts(actions.n)
        automated = actions.is_action(*AUTOMATED)
        if automated.any():
            v.block(automated & ~actions.bool("consent_automated_contact"), "CN_NO_AUTOMATED_CONSENT")
        return v

    def check_one(self, a: ActionRow, v: Verdict) -> None:
        if a.action in AUTOMATED and not a.bool("consent_automated_contact"):
            v.block("CN_NO_AUTOMATED_CONSENT")


class ThirdPartyContact(_Policy):
    """Third parties are contacted only when the debtor is unreachable (invalid number, or 3
    consecutive failed attempts), only if one is on file, and never told of the debt."""

    name = "third_party_contact"
    reason_codes = {
        "THIRD_PARTY_NONE_ON_FILE": "No third-party contact is on file.",
        "THIRD_PARTY_DEBTOR_REACHABLE": "The debtor is reachable (valid number, fewer than 3 consecutive failed attempts).",
        "THIRD_PARTY_DEBT_DISCLOSED": "The script for the third party mentions the debt.",
    }
    defaults = {"unreachable_after_failed_attempts": 3}

    def check(self, actions: ActionBatch) -> Verdicts:
        v = Verdicts(actions.n)
        third = actions.is_action("THIRD_PARTY_CONTACT")
        if not third.any():
            return v
        v.block(third & ~actions.bool("has_third_party_contact"), "THIRD_PARTY_NONE_ON_FILE")
        reachable = actions.bool("phone_valid") & (
            actions.int("consecutive_failed_attempts") < self.params["unreachable_after_failed_attempts"])
        v.block(third & reachable, "THIRD_PARTY_DEBTOR_REACHABLE")
        idx = np.flatnonzero(third)
        disclosed = np.zeros(actions.n, bool)
        script = actions.script
        disclosed[idx] = mentions_debt(script if idx.size == actions.n else script.take(pa.array(idx)))
        v.block(disclosed, "THIRD_PARTY_DEBT_DISCLOSED")
        return v

    def check_one(self, a: ActionRow, v: Verdict) -> None:
        if a.action != "THIRD_PARTY_CONTACT":
            return
        if not a.bool("has_third_party_contact"):
            v.block("THIRD_PARTY_NONE_ON_FILE")
        if a.bool("phone_valid") and a.int("consecutive_failed_attempts") < self.params["unreachable_after_failed_attempts"]:
            v.block("THIRD_PARTY_DEBTOR_REACHABLE")
        if a.script is not None and _DEBT_RE.search(a.script):
            v.block("THIRD_PARTY_DEBT_DISCLOSED")


class RegFOptOut(_Policy):
    """Regulation F: a debtor who asked not to be called is not called."""

    name = "us.regf_opt_out"
    reason_codes = {"REGF_OPT_OUT": "The debtor opted out of telephone contact."}

    def check(self, actions: ActionBatch) -> Verdicts:
        v = Verdicts(actions.n)
        calls = actions.is_action(*CALLS)
        if calls.any():
            v.block(calls & actions.bool("contact_opt_out"), "REGF_OPT_OUT")
        return v

    def check_one(self, a: ActionRow, v: Verdict) -> None:
        if a.action in CALLS and a.bool("contact_opt_out"):
            v.block("REGF_OPT_OUT")


class RegFHours(_Policy):
    """FDCPA / Regulation F: no communication before 08:00 or from 21:00, debtor's local time.

    The window is half-open, [08:00, 21:00): a call placed at 21:00:00 would run past 9 p.m."""

    name = "us.regf_hours"
    reason_codes = {"REGF_INCONVENIENT_TIME": "Outside 08:00–21:00 in the debtor's local time; deferred to 08:00."}
    defaults = {"start": "08:00", "end": "21:00"}

    def __init__(self, **params):
        super().__init__(**params)
        self.start = _minutes(self.params["start"], f"{self._where} start")
        self.end = _minutes(self.params["end"], f"{self._where} end")

    def check(self, actions: ActionBatch) -> Verdicts:
        v = Verdicts(actions.n)
        contact = actions.is_action(*CONTACT)
        if contact.any():
            minute = actions.local_minute
            v.defer(contact & ((minute < self.start) | (minute >= self.end)), "REGF_INCONVENIENT_TIME",
                    actions.next_local_time(self.start))
        return v

    def check_one(self, a: ActionRow, v: Verdict) -> None:
        if a.action in CONTACT and not self.start <= a.local_minute < self.end:
            v.defer("REGF_INCONVENIENT_TIME", a.next_local_time(self.start))


class RegFConversation(_Policy):
    """Regulation F § 1006.14(b)(2)(i)(B): no call within 7 days after a telephone
    conversation; the conversation's local day is day 1, calls resume on day 8."""

    name = "us.regf_conversation"
    reason_codes = {"REGF_RECENT_CONVERSATION": "A conversation took place within the last 7 days; deferred to the 8th day."}
    defaults = {"days": 7, "day_starts": "08:00"}

    def __init__(self, **params):
        super().__init__(**params)
        self.day_starts = _minutes(self.params["day_starts"], f"{self._where} day_starts")

    def check(self, actions: ActionBatch) -> Verdicts:
        v = Verdicts(actions.n)
        calls = actions.is_action(*CALLS)
        if not calls.any():
            return v
        spoke = actions.local_day_of(actions.time_us("last_conversation_at"))
        valid = spoke != NULL_TIME
        recent = calls & valid & (actions.local_day - np.where(valid, spoke, 0) < self.params["days"])
        resume_day = np.where(valid, spoke, 0) + self.params["days"]
        v.defer(recent, "REGF_RECENT_CONVERSATION", actions.local_time_on_day(resume_day, self.day_starts))
        return v

    def check_one(self, a: ActionRow, v: Verdict) -> None:
        if a.action not in CALLS:
            return
        spoke = a.local_day_of(a.time_us("last_conversation_at"))
        if spoke != NULL_TIME and a.local_day - spoke < self.params["days"]:
            v.defer("REGF_RECENT_CONVERSATION", a.local_time_on_day(spoke + self.params["days"], self.day_starts))


class RegFCallFrequency(_Policy):
    """Regulation F § 1006.14(b)(2)(i)(A): at most 7 calls in 7 days about a debt; planned
    calls in this batch count. Deferred to the next local morning, when the rolling count is
    checked again."""

    name = "us.regf_call_frequency"
    reason_codes = {"REGF_7_IN_7": "7 calls were already placed in the last 7 days; deferred to tomorrow 08:00 for a re-check."}
    defaults = {"max_calls": 7, "day_starts": "08:00"}

    def __init__(self, **params):
        super().__init__(**params)
        self.day_starts = _minutes(self.params["day_starts"], f"{self._where} day_starts")

    def check(self, actions: ActionBatch) -> Verdicts:
        v = Verdicts(actions.n)
        calls = actions.is_action(*CALLS)
        if calls.any():
            placed = actions.int("calls_7d") + actions.order_within_account(calls)
            v.defer(calls & (placed >= self.params["max_calls"]), "REGF_7_IN_7",
                    actions.local_time_on_day(actions.local_day + 1, self.day_starts))
        return v

    def check_one(self, a: ActionRow, v: Verdict) -> None:
        if a.action in CALLS and a.int("calls_7d") + a.earlier(CALLS) >= self.params["max_calls"]:
            v.defer("REGF_7_IN_7", a.local_time_on_day(a.local_day + 1, self.day_starts))


#: the litigation ruleset's ``missing`` members -> the reason code they give
_RULESET_MISSING = {
    "NOT_SEVERE": "LITIGATION_NOT_SEVERE",
    "NO_CLAUSE": "LITIGATION_NO_CLAUSE",
    "EVIDENCE_INCOMPLETE": "LITIGATION_EVIDENCE_INCOMPLETE",
    "NO_WILFUL_DEFAULT": "LITIGATION_NO_WILFUL_DEFAULT",
    "BELOW_THRESHOLD": "LITIGATION_BELOW_THRESHOLD",
}
_MISSING_MEMBERS = ("NONE",) + tuple(_RULESET_MISSING)


class LitigationPreconditions(_Policy):
    """A LEGAL_REVIEW goes ahead only with the contract clause, complete evidence (contact
    records kept, demand notices delivered) and the litigation ruleset's thresholds met;
    otherwise it is blocked, the reason listing every missing precondition joined by ``+``."""

    name = "litigation_preconditions"
    reason_codes = {
        "LITIGATION_NO_CLAUSE": "The contract has no dispute-resolution (litigation/arbitration) clause.",
        "LITIGATION_NO_CONTACT_RECORDS": "Collection contacts were not all recorded and kept (evidence).",
        "LITIGATION_NO_DEMAND_NOTICE": "No formal written demand notice (催告函) was delivered.",
        "LITIGATION_EVIDENCE_INCOMPLETE": "The litigation ruleset found the evidence incomplete.",
        "LITIGATION_NOT_SEVERE": "The account is not severely delinquent (litigation ruleset).",
        "LITIGATION_NO_WILFUL_DEFAULT": "No wilful default established (litigation ruleset).",
        "LITIGATION_BELOW_THRESHOLD": "Below the amount or days-past-due threshold (litigation ruleset).",
        "LITIGATION_NOT_ELIGIBLE": "The litigation ruleset found the account not eligible.",
        "LITIGATION_NO_DECISION": "The bundle gave no litigation decision for the account.",
    }
    defaults = {"min_demand_notices": 2}

    #: checked in this order; the reason lists them in this order
    ORDER = ("LITIGATION_NO_DECISION", "LITIGATION_NO_CLAUSE", "LITIGATION_NO_CONTACT_RECORDS",
             "LITIGATION_NO_DEMAND_NOTICE", "LITIGATION_EVIDENCE_INCOMPLETE", "LITIGATION_NOT_SEVERE",
             "LITIGATION_NO_WILFUL_DEFAULT", "LITIGATION_BELOW_THRESHOLD", "LITIGATION_NOT_ELIGIBLE")

    def check(self, actions: ActionBatch) -> Verdicts:
        v = Verdicts(actions.n)
        legal = actions.is_action("LEGAL_REVIEW")
        if not legal.any():
            return v
        bit = {code: np.int64(1) << i for i, code in enumerate(self.ORDER)}
        bits = np.zeros(actions.n, np.int64)
        have = actions.batch.has("litigation.eligible") and actions.batch.has("litigation.missing")
        if have:
            eligible = actions.bool("litigation.eligible", null=False)
            missing = actions.enum("litigation.missing", _MISSING_MEMBERS)
            null_decision = actions.int("litigation.eligible", null=-1) < 0
            bits |= np.where(null_decision, bit["LITIGATION_NO_DECISION"], 0)
            for i, member in enumerate(_MISSING_MEMBERS[1:], start=1):
                bits |= np.where(missing == i, bit[_RULESET_MISSING[member]], 0)
            unexplained = ~eligible & ~null_decision & (missing <= 0)
            bits |= np.where(unexplained, bit["LITIGATION_NOT_ELIGIBLE"], 0)
        else:
            bits |= bit["LITIGATION_NO_DECISION"]
        bits |= np.where(~actions.bool("litigation_clause"), bit["LITIGATION_NO_CLAUSE"], 0)
        bits |= np.where(~actions.bool("contact_records_kept"), bit["LITIGATION_NO_CONTACT_RECORDS"], 0)
        bits |= np.where(actions.int("demand_notices_sent") < self.params["min_demand_notices"],
                         bit["LITIGATION_NO_DEMAND_NOTICE"], 0)
        # the ruleset's EVIDENCE_INCOMPLETE adds nothing when a named evidence gap explains it
        named = bit["LITIGATION_NO_CONTACT_RECORDS"] | bit["LITIGATION_NO_DEMAND_NOTICE"]
        bits = np.where(bits & named, bits & ~bit["LITIGATION_EVIDENCE_INCOMPLETE"], bits)
        bits = np.where(legal, bits, 0)
        for combo in np.unique(bits[bits != 0]):
            code = "+".join(c for c in self.ORDER if combo & bit[c])
            v.block(bits == combo, code)
        return v

    def check_one(self, a: ActionRow, v: Verdict) -> None:
        if a.action != "LEGAL_REVIEW":
            return
        missing = set()
        account = a.account
        if account.has("litigation.eligible") and account.has("litigation.missing"):
            eligible = account.value("litigation.eligible")
            member = account.text("litigation.missing")
            if eligible is None:
                missing.add("LITIGATION_NO_DECISION")
            if member in _RULESET_MISSING:
                missing.add(_RULESET_MISSING[member])
            elif eligible is not None and not eligible:
                missing.add("LITIGATION_NOT_ELIGIBLE")
        else:
            missing.add("LITIGATION_NO_DECISION")
        if not a.bool("litigation_clause"):
            missing.add("LITIGATION_NO_CLAUSE")
        if not a.bool("contact_records_kept"):
            missing.add("LITIGATION_NO_CONTACT_RECORDS")
        if a.int("demand_notices_sent") < self.params["min_demand_notices"]:
            missing.add("LITIGATION_NO_DEMAND_NOTICE")
        if missing & {"LITIGATION_NO_CONTACT_RECORDS", "LITIGATION_NO_DEMAND_NOTICE"}:
            missing.discard("LITIGATION_EVIDENCE_INCOMPLETE")
        if missing:
            v.block("+".join(c for c in self.ORDER if c in missing))


POLICIES = (QuietHours, CallLimits, ComplaintPause, AutomatedConsent, ThirdPartyContact,
            RegFOptOut, RegFHours, RegFConversation, RegFCallFrequency, LitigationPreconditions)


@kernel.hookimpl
def postloan_compliance_policies(config):
    params = config.get("policy", {})   # third-party policies' sections are theirs to check
    built = []
    for policy in POLICIES:
        given = params.get(policy.name, {})
        if not isinstance(given, Mapping):
            raise PostloanError(f'[policy."{policy.name}"] must be a table of parameters')
        built.append(policy(**given))
    return built
