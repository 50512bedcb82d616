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
from kernel.hookspecs import NULL_TIME, ActionBatch, CompliancePolicy, Verdicts

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


def mentions_debt(texts: pa.Array, among: np.ndarray | None = None) -> np.ndarray:
    """Mask of the texts that contain a debt term (null → False); with ``among``, only the
    texts in that mask are searched (the others are False)."""
    n = len(texts)
    if n <= 16:                          # a request's few scripts: Python's re beats Arrow's per-call cost
        wanted = [True] * n if among is None else among.tolist()
        return np.array([w and t is not None and _DEBT_RE.search(t) is not None
                         for t, w in zip(texts.to_pylist(), wanted)], bool)
    if among is not None:
        out = np.zeros(n, bool)
        idx = among.nonzero()[0]
        if idx.size:
            out[idx] = mentions_debt(texts.take(pa.array(idx)))
        return out
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


class _ContactHours(_Policy):
    """Contact only inside a daily window of the debtor's local time, [opens, closes) (it may
    wrap past midnight); outside it, deferred to the next opening. Subclasses name the
    parameters that hold the window's ends and the reason code."""

    actions = CONTACT
    opens_param: str
    closes_param: str
    reason: str

    def __init__(self, **params):
        super().__init__(**params)
        self.opens = _minutes(self.params[self.opens_param], f"{self._where} {self.opens_param}")
        self.closes = _minutes(self.params[self.closes_param], f"{self._where} {self.closes_param}")

    def check(self, actions: ActionBatch) -> Verdicts:
        v = Verdicts(actions.n)
        minute = actions.local_minute
        inside = (minute >= self.opens) & (minute < self.closes) if self.opens < self.closes else \
            (minute >= self.opens) | (minute < self.closes)
        deferred = actions.is_action(*self.actions) & ~inside
        if np.count_nonzero(deferred):               # cheaper than .any() on a request's few actions
            v.defer(deferred, self.reason, actions.next_local_time(self.opens))
        return v


class QuietHours(_ContactHours):
    """No collection contact between 22:00 and 08:00 in the debtor's local time."""

    name = "cn.quiet_hours"
    reason = "CN_QUIET_HOURS"
    reason_codes = {reason: "Contact in the debtor's local quiet hours (22:00–08:00); deferred to 08:00."}
    defaults = {"start": "22:00", "end": "08:00"}
    opens_param, closes_param = "end", "start"          # the quiet hours' end opens the window


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
    actions = CALLS
    defaults = {"max_connected_calls": 3, "max_unanswered_attempts": 6, "day_starts": "08:00"}

    def __init__(self, **params):
        super().__init__(**params)
        self.day_starts = _minutes(self.params["day_starts"], f"{self._where} day_starts")

    def check(self, actions: ActionBatch) -> Verdicts:
        v = Verdicts(actions.n)
        calls = actions.is_action(*self.actions)
        day = actions.local_day
        today = actions.local_day_of(np.full(actions.n, actions.now_us, np.int64))
        same_day = day == today
        before = actions.order_within_account(calls, by=day)
        connected_today = np.where(same_day, actions.int("connected_calls_today"), 0)
        connected = connected_today + before
        attempts = np.where(same_day, actions.int("call_attempts_today"), 0)
        unanswered = np.maximum(attempts - connected_today, 0) + before
        too_many = calls & (connected >= self.params["max_connected_calls"])
        unanswered_too_often = calls & (unanswered >= self.params["max_unanswered_attempts"])
        if np.count_nonzero(too_many) or np.count_nonzero(unanswered_too_often):
            tomorrow = actions.local_time_on_day(day + 1, self.day_starts)
            v.defer(too_many, "CN_DAILY_CONNECTED_CALLS", tomorrow)
            v.defer(unanswered_too_often, "CN_DAILY_UNANSWERED_ATTEMPTS", tomorrow)
        return v


class ComplaintPause(_Policy):
    """No collection contact while a complaint about collection is open."""

    name = "cn.complaint_pause"
    reason_codes = {"CN_COMPLAINT_OPEN": "A complaint about collection is open; contact is paused until it is closed."}
    actions = CONTACT

    def check(self, actions: ActionBatch) -> Verdicts:
        return Verdicts(actions.n).block(actions.is_action(*self.actions) & (actions.int("open_complaints") > 0),
                                         "CN_COMPLAINT_OPEN")


class AutomatedConsent(_Policy):
    """No automated calls or messages (voice bot, SMS) without the debtor's consent."""

    name = "cn.automated_consent"
    reason_codes = {"CN_NO_AUTOMATED_CONSENT": "The debtor has not consented to automated calls and messages."}
    actions = AUTOMATED

    def check(self, actions: ActionBatch) -> Verdicts:
        return Verdicts(actions.n).block(actions.is_action(*self.actions) & ~actions.bool("consent_automated_contact"),
                                         "CN_NO_AUTOMATED_CONSENT")


class ThirdPartyContact(_Policy):
    """Third parties are contacted only when the debtor is unreachable (invalid number, or 3
    consecutive failed attempts), only if one is on file, and never told of the debt."""

    name = "third_party_contact"
    reason_codes = {
        "THIRD_PARTY_NONE_ON_FILE": "No third-party contact is on file.",
        "THIRD_PARTY_DEBTOR_REACHABLE": "The debtor is reachable (valid number, fewer than 3 consecutive failed attempts).",
        "THIRD_PARTY_DEBT_DISCLOSED": "The script for the third party mentions the debt.",
    }
    actions = ("THIRD_PARTY_CONTACT",)
    defaults = {"unreachable_after_failed_attempts": 3}

    def check(self, actions: ActionBatch) -> Verdicts:
        v = Verdicts(actions.n)
        third = actions.is_action(*self.actions)
        v.block(third & ~actions.bool("has_third_party_contact"), "THIRD_PARTY_NONE_ON_FILE")
        reachable = actions.bool("phone_valid") & (
            actions.int("consecutive_failed_attempts") < self.params["unreachable_after_failed_attempts"])
        v.block(third & reachable, "THIRD_PARTY_DEBTOR_REACHABLE")
        v.block(mentions_debt(actions.script, among=third), "THIRD_PARTY_DEBT_DISCLOSED")
        return v


class RegFOptOut(_Policy):
    """Regulation F: a debtor who asked not to be called is not called."""

    name = "us.regf_opt_out"
    reason_codes = {"REGF_OPT_OUT": "The debtor opted out of telephone contact."}
    actions = CALLS

    def check(self, actions: ActionBatch) -> Verdicts:
        return Verdicts(actions.n).block(actions.is_action(*self.actions) & actions.bool("contact_opt_out"),
                                         "REGF_OPT_OUT")


class RegFHours(_ContactHours):
    """FDCPA / Regulation F: no communication before 08:00 or from 21:00, debtor's local time.

    The window is half-open, [08:00, 21:00): a call placed at 21:00:00 would run past 9 p.m."""

    name = "us.regf_hours"
    reason = "REGF_INCONVENIENT_TIME"
    reason_codes = {reason: "Outside 08:00–21:00 in the debtor's local time; deferred to 08:00."}
    defaults = {"start": "08:00", "end": "21:00"}
    opens_param, closes_param = "start", "end"


class RegFConversation(_Policy):
    """Regulation F § 1006.14(b)(2)(i)(B): no call within 7 days after a telephone
    conversation; the conversation's local day is day 1, calls resume on day 8."""

    name = "us.regf_conversation"
    reason_codes = {"REGF_RECENT_CONVERSATION": "A conversation took place within the last 7 days; deferred to the 8th day."}
    actions = CALLS
    defaults = {"days": 7, "day_starts": "08:00"}

    def __init__(self, **params):
        super().__init__(**params)
        self.day_starts = _minutes(self.params["day_starts"], f"{self._where} day_starts")

    def check(self, actions: ActionBatch) -> Verdicts:
        v = Verdicts(actions.n)
        spoke = actions.local_day_of(actions.time_us("last_conversation_at"))
        valid = spoke != NULL_TIME
        spoke = np.where(valid, spoke, 0)
        recent = actions.is_action(*self.actions) & valid & (actions.local_day - spoke < self.params["days"])
        if np.count_nonzero(recent):
            v.defer(recent, "REGF_RECENT_CONVERSATION",
                    actions.local_time_on_day(spoke + self.params["days"], self.day_starts))
        return v


class RegFCallFrequency(_Policy):
    """Regulation F § 1006.14(b)(2)(i)(A): at most 7 calls in 7 days about a debt; planned
    calls in this batch count. Deferred to the next local morning, when the rolling count is
    checked again."""

    name = "us.regf_call_frequency"
    reason_codes = {"REGF_7_IN_7": "7 calls were already placed in the last 7 days; deferred to tomorrow 08:00 for a re-check."}
    actions = CALLS
    defaults = {"max_calls": 7, "day_starts": "08:00"}

    def __init__(self, **params):
        super().__init__(**params)
        self.day_starts = _minutes(self.params["day_starts"], f"{self._where} day_starts")

    def check(self, actions: ActionBatch) -> Verdicts:
        v = Verdicts(actions.n)
        calls = actions.is_action(*self.actions)
        placed = actions.int("calls_7d") + actions.order_within_account(calls)
        deferred = calls & (placed >= self.params["max_calls"])
        if np.count_nonzero(deferred):
            v.defer(deferred, "REGF_7_IN_7", actions.local_time_on_day(actions.local_day + 1, self.day_starts))
        return v


#: the litigation ruleset's ``missing`` members -> the reason code they give
_RULESET_MISSING = {
    "NOT_SEVERE": "LITIGATION_NOT_SEVERE",
    "NO_CLAUSE": "LITIGATION_NO_CLAUSE",
    "EVIDENCE_INCOMPLETE": "LITIGATION_EVIDENCE_INCOMPLETE",
    "NO_WILFUL_DEFAULT": "LITIGATION_NO_WILFUL_DEFAULT",
    "BELOW_THRESHOLD": "LITIGATION_BELOW_THRESHOLD",
}
_MISSING_MEMBERS = ("NONE",) + tuple(_RULESET_MISSING)
_LITIGATION_ORDER = ("LITIGATION_NO_DECISION", "LITIGATION_NO_CLAUSE", "LITIGATION_NO_CONTACT_RECORDS",
                     "LITIGATION_NO_DEMAND_NOTICE", "LITIGATION_EVIDENCE_INCOMPLETE", "LITIGATION_NOT_SEVERE",
                     "LITIGATION_NO_WILFUL_DEFAULT", "LITIGATION_BELOW_THRESHOLD", "LITIGATION_NOT_ELIGIBLE")
_LITIGATION_BIT = {code: 1 << i for i, code in enumerate(_LITIGATION_ORDER)}
#: the same as NumPy scalars: a bool array times an int64 scalar costs less than times a Python int
_LITIGATION_BIT64 = {code: np.int64(b) for code, b in _LITIGATION_BIT.items()}


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

    actions = ("LEGAL_REVIEW",)

    #: checked in this order; the reason lists them in this order
    ORDER = _LITIGATION_ORDER
    #: one bit per missing precondition
    BIT = _LITIGATION_BIT
    #: the bit each member code of the ruleset's ``missing`` sets (NONE and −1, unknown: none)
    MISSING_BITS = np.array([0] + [_LITIGATION_BIT[_RULESET_MISSING[m]] for m in _MISSING_MEMBERS[1:]] + [0], np.int64)

    def __init__(self, **params):
        super().__init__(**params)
        self._reasons: dict[int, str] = {}          # bits -> reason code, as met

    def _reason(self, bits: int) -> str:
        try:
            return self._reasons[bits]
        except KeyError:
            code = self._reasons[bits] = "+".join(c for c in self.ORDER if bits & self.BIT[c])
            return code

    def check(self, actions: ActionBatch) -> Verdicts:
        v = Verdicts(actions.n)
        bit = _LITIGATION_BIT64
        if actions.batch.has("litigation.eligible") and actions.batch.has("litigation.missing"):
            missing = actions.enum("litigation.missing", _MISSING_MEMBERS)
            no_decision = actions.int("litigation.eligible", null=-1) < 0
            unexplained = ~(actions.bool("litigation.eligible", null=False) | no_decision) & (missing <= 0)
            bits = self.MISSING_BITS[missing] | no_decision * bit["LITIGATION_NO_DECISION"] \
                | unexplained * bit["LITIGATION_NOT_ELIGIBLE"]
        else:
            bits = np.full(actions.n, bit["LITIGATION_NO_DECISION"], np.int64)
        bits |= ~actions.bool("litigation_clause") * bit["LITIGATION_NO_CLAUSE"]
        bits |= ~actions.bool("contact_records_kept") * bit["LITIGATION_NO_CONTACT_RECORDS"]
        bits |= (actions.int("demand_notices_sent") < self.params["min_demand_notices"]) * bit["LITIGATION_NO_DEMAND_NOTICE"]
        # the ruleset's EVIDENCE_INCOMPLETE adds nothing when a named evidence gap explains it
        named = bit["LITIGATION_NO_CONTACT_RECORDS"] | bit["LITIGATION_NO_DEMAND_NOTICE"]
        bits &= ~(((bits & named) != 0) * bit["LITIGATION_EVIDENCE_INCOMPLETE"])
        bits *= actions.is_action(*self.actions)
        distinct = set(bits.tolist() if actions.n <= 64 else np.unique(bits).tolist())
        for combo in sorted(distinct - {0}):
            v.block(bits == combo, self._reason(combo))
        return v


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
