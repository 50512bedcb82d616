"""The built-in compliance rules, compiled: one Numba function per policy, judging one action.

This module is where every built-in rule is written down — once. Each ``_p_<policy>``
function reads the action (``a``: its code; ``i``: its index), the account's features
(``_x``), the per-action facts the engine prepared (``inp.A``: planned calls before it,
script checks) and the policy's parameters (``inp.P[j]``), and returns ``(outcome, reason,
until)``: KEEP/DEFER/BLOCK, the index of its reason code in the policy's ``REASONS`` (−1 for
KEEP) and, for DEFER, the instant (µs UTC) it may next be tried.

:func:`judge` runs a list of policies over every action and combines their verdicts exactly as
the pipeline combines policies (the strictest outcome wins; the first reason for it stays;
two deferrals keep the later time). A policy's own ``check`` runs it alone through the same
function, so a rule has one implementation whether it is judged alone (tests, a third-party
set) or fused with the others of its set (the pipeline: one compiled call per set).

Local time is the debtor's, from each zone's offset transitions (``kernel.hookspecs``'s
cached tables): the same arithmetic as :class:`kernel.hookspecs.ActionBatch`, DST included.
docs/compliance.md is the rulebook in words; tests/plugins/test_compliance_policies.py holds
each rule at its boundaries.
"""
from __future__ import annotations

from collections import namedtuple

from kernel.codegen.cache import configure_numba_cache

configure_numba_cache()          # before any kernel here is defined: one cache folder per code version

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

from kernel.hookspecs import ACTION, NULL_TIME, US_PER_DAY, US_PER_MINUTE  # noqa: E402
from kernel.schema import ENUMS  # noqa: E402


def _inner(fn=None, **options):
    """``@njit(cache=True)`` for a function only compiled code calls (the rules and their
    helpers): without the CPython and C-callable wrappers Numba otherwise builds for every
    function — for one taking :data:`Inputs` (16 fields, 14 arrays) the wrapper's unboxing is
    most of the function's machine code, and it was compiled once per rule (measured:
    docs/compiler.md, "The plugins' kernels")."""
    options = {"cache": True, "no_cpython_wrapper": True, "no_cfunc_wrapper": True, **options}
    return njit(**options) if fn is None else njit(fn, **options)


KEEP, DEFER, BLOCK = 0, 1, 2
NULL = NULL_TIME
DAY, MINUTE = US_PER_DAY, US_PER_MINUTE
SMS, VOICE_BOT, PHONE, FIELD_VISIT, LEGAL_REVIEW, THIRD_PARTY, REPOSSESSION, DISPOSAL = (
    ACTION["SMS"], ACTION["VOICE_BOT"], ACTION["PHONE"], ACTION["FIELD_VISIT"], ACTION["LEGAL_REVIEW"],
    ACTION["THIRD_PARTY_CONTACT"], ACTION["REPOSSESSION"], ACTION["DISPOSAL"])

# --------------------------------------------------------------------------------------------
# Features: the account columns the rules read, one row each in the engine's matrix
# --------------------------------------------------------------------------------------------

#: (feature, kind, the columns it is read from, first found). Kinds: ``int`` (null 0), ``bool``
#: (0/1, null 0), ``tri`` (−1 null, 0, 1), ``time`` (µs UTC, null NULL_TIME), ``day`` (days
#: since the epoch, null NULL_TIME), ``enum:<contract enum>`` (member code, −1 null/unknown).
#: A feature read from no column of the batch is an error naming the first column (fail closed).
FEATURES = (
    ("country", "enum:country", ("country",)),
    ("connected_calls_today", "int", ("connected_calls_today",)),
    ("call_attempts_today", "int", ("call_attempts_today",)),
    ("consecutive_failed_attempts", "int", ("consecutive_failed_attempts",)),
    ("calls_7d", "int", ("calls_7d",)),
    ("sms_today", "int", ("sms_today",)),
    ("last_conversation_at", "time", ("last_conversation_at",)),
    ("open_complaints", "int", ("open_complaints",)),
    ("complaint_opened_at", "time", ("complaint_opened_at",)),
    ("complaint_extensions", "int", ("complaint_extensions",)),
    ("consent_automated_contact", "tri", ("consent_automated_contact",)),
    ("consent_sms", "tri", ("consent_sms", "consent_automated_contact")),
    ("consent_voice_bot", "tri", ("consent_voice_bot", "consent_automated_contact")),
    ("consent_phone", "tri", ("consent_phone",)),
    ("opt_out_sms", "bool", ("opt_out_sms",)),
    ("opt_out_phone", "bool", ("opt_out_phone", "contact_opt_out")),
    ("phone_valid", "bool", ("phone_valid",)),
    ("has_third_party_contact", "bool", ("has_third_party_contact",)),
    ("third_party_contacts_30d", "int", ("third_party_contacts_30d",)),
    ("litigation_clause", "bool", ("litigation_clause",)),
    ("contact_records_kept", "bool", ("contact_records_kept",)),
    ("demand_notices_sent", "int", ("demand_notices_sent",)),
    ("promise_open", "bool", ("promise_open",)),
    ("promise_date", "day", ("promise_date",)),
    ("open_disputes", "int", ("open_disputes",)),
    ("cease_requested", "bool", ("cease_requested",)),
    ("attorney_represented", "bool", ("attorney_represented",)),
    ("bankruptcy_open", "bool", ("bankruptcy_open",)),
    ("deceased", "bool", ("deceased",)),
    ("hardship", "bool", ("hardship",)),
    ("military_service", "bool", ("military_service",)),
    ("military_service_since", "time", ("military_service_since",)),
    ("contract_date", "day", ("contract_date",)),
    ("court_order_at", "time", ("court_order_at",)),
    ("arbitral_award_at", "time", ("arbitral_award_at",)),
    ("surrender_agreed_at", "time", ("surrender_agreed_at",)),
    ("cure_notice_at", "time", ("cure_notice_at",)),
    ("employer_prohibits_contact", "bool", ("employer_prohibits_contact",)),
    ("work_hours_inconvenient", "bool", ("work_hours_inconvenient",)),
    ("dpd", "int", ("dpd",)),
    ("last_payment_date", "day", ("last_payment_date",)),
    ("repossession_stage", "enum:repossession_stage", ("repossession_stage",)),
    ("repossessed_at", "time", ("repossessed_at",)),
    ("disposal_notice_at", "time", ("disposal_notice_at",)),
    ("consent_gps", "tri", ("consent_gps",)),
    ("gps_status", "enum:gps_status", ("gps_status",)),
    ("litigation_eligible", "tri", ("litigation.eligible",)),
    ("litigation_missing", "enum:litigation_missing", ("litigation.missing",)),
)
FEATURE_INDEX = {name: k for k, (name, _, _) in enumerate(FEATURES)}
#: the litigation ruleset's ``missing`` members (its enum, in its order)
LITIGATION_MISSING = ("NONE", "NOT_SEVERE", "NO_CLAUSE", "EVIDENCE_INCOMPLETE", "NO_WILFUL_DEFAULT",
                      "BELOW_THRESHOLD")

(F_COUNTRY, F_CONNECTED_TODAY, F_ATTEMPTS_TODAY, F_CONSECUTIVE_FAILED, F_CALLS_7D, F_SMS_TODAY, F_LAST_CONVERSATION,
 F_OPEN_COMPLAINTS, F_COMPLAINT_OPENED, F_COMPLAINT_EXTENSIONS, F_CONSENT_AUTOMATED, F_CONSENT_SMS,
 F_CONSENT_VOICE_BOT, F_CONSENT_PHONE, F_OPT_OUT_SMS, F_OPT_OUT_PHONE, F_PHONE_VALID, F_HAS_THIRD_PARTY,
 F_THIRD_PARTY_30D, F_LITIGATION_CLAUSE, F_RECORDS_KEPT, F_DEMAND_NOTICES, F_PROMISE_OPEN, F_PROMISE_DATE,
 F_OPEN_DISPUTES, F_CEASE, F_ATTORNEY, F_BANKRUPTCY, F_DECEASED, F_HARDSHIP, F_MILITARY, F_MILITARY_SINCE,
 F_CONTRACT_DATE, F_COURT_ORDER, F_AWARD, F_SURRENDER, F_CURE_NOTICE, F_EMPLOYER_PROHIBITS, F_WORK_HOURS, F_DPD,
 F_LAST_PAYMENT, F_STAGE, F_REPOSSESSED_AT, F_DISPOSAL_NOTICE_AT, F_CONSENT_GPS, F_GPS_STATUS, F_LIT_ELIGIBLE,
 F_LIT_MISSING) = range(len(FEATURES))
assert len(FEATURES) == F_LIT_MISSING + 1

COUNTRY_CN, COUNTRY_US = ENUMS["country"].index("CN"), ENUMS["country"].index("US")
STAGE_REPOSSESSED = ENUMS["repossession_stage"].index("REPOSSESSED")
STAGE_NOTICE_SENT = ENUMS["repossession_stage"].index("NOTICE_SENT")
GPS_NO_DEVICE = ENUMS["gps_status"].index("NO_DEVICE")

#: per-action facts the engine prepares (rows of ``inp.A``)
(A_CALLS_BEFORE_TODAY, A_CALLS_BEFORE, A_SMS_BEFORE_TODAY, A_THIRD_BEFORE, A_SCRIPT) = range(5)
N_ACTION_FACTS = 5

#: what the screen found in an action's script (bits of ``inp.A[A_SCRIPT]``; 0 without a script)
S_HAS_SCRIPT = 1              # the action carries a script
S_DEBT = 2                    # a debt term anywhere
S_OPT_OUT_NOTICE = 4          # the opt-out instruction (SMS)
S_RECORDING_NOTICE = 8        # the call-recording notice
S_PAID_IGNORE = 16            # 如已还款请忽略 / "if you have already paid"
S_DEBT_BEFORE_IDENTITY = 32   # a debt term before the identity marker (or with no marker)
S_VOICEMAIL_OK = 64           # a limited-content voicemail section, free of debt terms
S_ANONYMOUS = 128             # an anonymous self-identification (客户服务中心 …)
S_FALSE_THREAT = 256          # a threat no lender may make (黑名单, 坐牢, 影响子女 …)

#: the inputs of one judgement, as the compiled functions see them (:func:`judge_one` takes them
#: as plain arguments and makes them this tuple itself)
Inputs = namedtuple("Inputs", "action at acc X A D P base zone zst zen zts zoff zob now as_of")


# --------------------------------------------------------------------------------------------
# Local time (the same arithmetic as ActionBatch's, one instant at a time)
# --------------------------------------------------------------------------------------------

@_inner
def _offset(inp, z, t):
    """The UTC offset (µs) of zone ``z`` at instant ``t``: the offset in force after the last
    transition at or before ``t`` (searchsorted, side right)."""
    lo, hi = inp.zst[z], inp.zen[z]
    a, b = lo, hi
    while a < b:
        m = (a + b) >> 1
        if inp.zts[m] <= t:
            a = m + 1
        else:
            b = m
    return inp.zoff[inp.zob[z] + a - lo]


@_inner
def _local(inp, z, t):
    return t + _offset(inp, z, t)


@_inner
def _day(inp, z, t):
    """The local date (days since the epoch) of instant ``t`` in zone ``z``."""
    return (t + _offset(inp, z, t)) // DAY


@_inner
def _to_utc(inp, z, local):
    """The instant of a local wall-clock time: an ambiguous one (autumn) takes the later
    reading; one skipped by a spring gap moves forward by the gap."""
    guess = local - _offset(inp, z, local)
    first = local - _offset(inp, z, guess)
    if first == guess:
        return first
    second = local - _offset(inp, z, first)
    return max(first, second)


@_inner
def _on_day(inp, z, day, minute):
    """The instant of local ``minute`` of the day on local date ``day``."""
    return _to_utc(inp, z, day * DAY + minute * MINUTE)


@_inner
def _next_at(inp, z, t, minute):
    """The first instant at or after ``t`` whose local time of day is ``minute``."""
    local = _local(inp, z, t)
    target = (local // DAY) * DAY + minute * MINUTE
    if target < local:
        target += DAY
    return _to_utc(inp, z, target)


@_inner
def _inside(inp, z, t, opens, closes):
    """Whether ``t`` falls in the daily local window [opens, closes) (minutes; it may wrap
    past midnight)."""
    minute = (_local(inp, z, t) % DAY) // MINUTE
    if opens < closes:
        return opens <= minute < closes
    return minute >= opens or minute < closes


@_inner(inline="always")
def _x(inp, f, i):
    """Feature ``f`` of the account of action ``i``."""
    return inp.X[f, inp.acc[i]]


@_inner(inline="always")
def _d(inp, j, k, i):
    """The ``k``-th value policy ``j`` derived for the account of action ``i``."""
    return inp.D[inp.base[j] + k, inp.acc[i]]


@_inner(inline="always")
def _consent(inp, f, i):
    """Consent to a channel: the channel's own statement, else the book's consent to automated
    contact; null is no consent."""
    v = _x(inp, f, i)
    if v < 0 and f != F_CONSENT_PHONE:
        v = _x(inp, F_CONSENT_AUTOMATED, i)
    return v == 1


# --------------------------------------------------------------------------------------------
# The rules. Parameters are inp.P[j, k] in the order of the policy's PARAMS (compliance.py).
# --------------------------------------------------------------------------------------------

@_inner
def _p_window(i, j, inp, zones):
    """Contact only inside [opens, closes) local time (P: opens, closes) in each of the
    debtor's first ``zones`` zones (inp.zone[i, :]); otherwise DEFER to the first instant every
    zone allows."""
    at = inp.at[i]
    opens, closes = inp.P[j, 0], inp.P[j, 1]
    t = at
    for _ in range(8):                           # each pass moves to a later opening, or stops
        moved = False
        for k in range(zones):
            z = inp.zone[i, k]
            if z < 0:
                continue
            if not _inside(inp, z, t, opens, closes):
                t = _next_at(inp, z, t, opens)
                moved = True
        if not moved:
            break
    if t == at:
        return KEEP, -1, NULL
    return DEFER, 0, t


@_inner
def _p_call_limits(i, j, inp):
    """China: at most P0 connected calls a day per debtor, P1 unanswered attempts a day;
    planned calls of the same local day count (the k-th as if the k − 1 before it were made).
    DEFER to the next local day at P2 (day_starts)."""
    z = inp.zone[i, 0]
    day = _day(inp, z, inp.at[i])
    same_day = day == _day(inp, z, inp.now)
    before = inp.A[A_CALLS_BEFORE_TODAY, i]
    connected_today = _x(inp, F_CONNECTED_TODAY, i) if same_day else 0
    attempts = _x(inp, F_ATTEMPTS_TODAY, i) if same_day else 0
    connected = connected_today + before
    unanswered = max(attempts - connected_today, 0) + before
    if connected >= inp.P[j, 0]:
        return DEFER, 0, _on_day(inp, z, day + 1, inp.P[j, 2])
    if unanswered >= inp.P[j, 1]:
        return DEFER, 1, _on_day(inp, z, day + 1, inp.P[j, 2])
    return KEEP, -1, NULL


@_inner
def _p_complaint_pause(i, j, inp):
    """China: no collection contact while a complaint is open (BLOCK until it is closed).
    Past its handling deadline — P0 days from the complaint's local date, P1 after one
    extension, P2 after two — the reason says the complaint is overdue (escalate)."""
    if _x(inp, F_OPEN_COMPLAINTS, i) <= 0:
        return KEEP, -1, NULL
    opened = _x(inp, F_COMPLAINT_OPENED, i)
    if opened == NULL:
        return BLOCK, 0, NULL                   # the book says open, not since when
    z = inp.zone[i, 0]
    extensions = _x(inp, F_COMPLAINT_EXTENSIONS, i)
    days = inp.P[j, 0] if extensions <= 0 else inp.P[j, 1] if extensions == 1 else inp.P[j, 2]
    if _day(inp, z, inp.at[i]) > _day(inp, z, opened) + days:
        return BLOCK, 1, NULL
    return BLOCK, 0, NULL


@_inner
def _p_automated_consent(i, j, inp, a):
    """China: SMS and voice bot need the debtor's consent to that channel."""
    f = F_CONSENT_SMS if a == SMS else F_CONSENT_VOICE_BOT
    if _consent(inp, f, i):
        return KEEP, -1, NULL
    return BLOCK, 0, NULL


@_inner
def _p_third_party(i, j, inp):
    """Third parties: one on file; only when the debtor is unreachable (invalid number or P0
    consecutive failed calls); never told of the debt (the script screen); at most P1 contacts
    of third parties in 30 days, planned ones included."""
    if _x(inp, F_HAS_THIRD_PARTY, i) == 0:
        return BLOCK, 0, NULL
    if _x(inp, F_PHONE_VALID, i) != 0 and _x(inp, F_CONSECUTIVE_FAILED, i) < inp.P[j, 0]:
        return BLOCK, 1, NULL
    if inp.A[A_SCRIPT, i] & S_DEBT:
        return BLOCK, 2, NULL
    if _x(inp, F_THIRD_PARTY_30D, i) + inp.A[A_THIRD_BEFORE, i] >= inp.P[j, 1]:
        return BLOCK, 3, NULL
    return KEEP, -1, NULL


@_inner
def _p_regf_opt_out(i, j, inp):
    """Reg F § 1006.6(e): no SMS to a debtor who opted out of them; every SMS carries the
    opt-out instruction."""
    if _d(inp, j, 0, i) == 0:
        return KEEP, -1, NULL                   # the rule does not bind this operator here
    if _x(inp, F_OPT_OUT_SMS, i) != 0:
        return BLOCK, 0, NULL
    s = inp.A[A_SCRIPT, i]
    if s & S_HAS_SCRIPT and not s & S_OPT_OUT_NOTICE:    # no script (a gate's question): nothing said yet
        return BLOCK, 1, NULL
    return KEEP, -1, NULL


@_inner
def _p_restricted_medium(i, j, inp):
    """Reg F § 1006.14(h): no call to a debtor who asked not to be called."""
    if _d(inp, j, 0, i) == 0 or _x(inp, F_OPT_OUT_PHONE, i) == 0:
        return KEEP, -1, NULL
    return BLOCK, 0, NULL


@_inner
def _p_regf_hours(i, j, inp):
    """FDCPA § 805(a)(1): communication only in [P0, P1) local time in every time zone the
    debtor may be in (their zone and, where the state spans two, the state's zones)."""
    if _d(inp, j, 0, i) == 0:
        return KEEP, -1, NULL
    return _p_window(i, j, inp, 3)


@_inner
def _p_regf_conversation(i, j, inp):
    """Reg F § 1006.14(b)(2)(i)(B): no call within P0 days after a conversation (its local
    date is day 1); DEFER to day P0 + 1 at P1."""
    if _d(inp, j, 0, i) == 0:
        return KEEP, -1, NULL
    spoke = _x(inp, F_LAST_CONVERSATION, i)
    if spoke == NULL:
        return KEEP, -1, NULL
    z = inp.zone[i, 0]
    spoke_day = _day(inp, z, spoke)
    if _day(inp, z, inp.at[i]) - spoke_day < inp.P[j, 0]:
        return DEFER, 0, _on_day(inp, z, spoke_day + inp.P[j, 0], inp.P[j, 1])
    return KEEP, -1, NULL


@_inner
def _p_regf_call_frequency(i, j, inp):
    """Reg F § 1006.14(b)(2)(i)(A): at most P0 calls in 7 days, planned ones included; DEFER to
    tomorrow at P1 for a re-count."""
    if _d(inp, j, 0, i) == 0:
        return KEEP, -1, NULL
    if _x(inp, F_CALLS_7D, i) + inp.A[A_CALLS_BEFORE, i] >= inp.P[j, 0]:
        z = inp.zone[i, 0]
        return DEFER, 0, _on_day(inp, z, _day(inp, z, inp.at[i]) + 1, inp.P[j, 1])
    return KEEP, -1, NULL


# litigation: one bit per missing precondition, in the order of LitigationPreconditions.ORDER
L_NO_DECISION, L_NO_CLAUSE, L_NO_RECORDS, L_NO_NOTICE, L_EVIDENCE, L_NOT_SEVERE, L_NO_WILFUL, L_BELOW, L_NOT_ELIGIBLE = (
    1, 2, 4, 8, 16, 32, 64, 128, 256)


@_inner
def _p_litigation(i, j, inp):
    """A legal review needs the contract clause, the evidence (contact records, P0 demand
    notices) and the litigation ruleset's thresholds; every missing one is named (the reason
    is the bits; compliance.py spells them)."""
    eligible = _x(inp, F_LIT_ELIGIBLE, i)
    missing = _x(inp, F_LIT_MISSING, i)
    bits = 0
    if missing == 1:
        bits |= L_NOT_SEVERE
    elif missing == 2:
        bits |= L_NO_CLAUSE
    elif missing == 3:
        bits |= L_EVIDENCE
    elif missing == 4:
        bits |= L_NO_WILFUL
    elif missing == 5:
        bits |= L_BELOW
    if eligible < 0:
        bits |= L_NO_DECISION
    elif eligible == 0 and missing <= 0:
        bits |= L_NOT_ELIGIBLE                  # not eligible, and the ruleset does not say why
    if _x(inp, F_LITIGATION_CLAUSE, i) == 0:
        bits |= L_NO_CLAUSE
    if _x(inp, F_RECORDS_KEPT, i) == 0:
        bits |= L_NO_RECORDS
    if _x(inp, F_DEMAND_NOTICES, i) < inp.P[j, 0]:
        bits |= L_NO_NOTICE
    if bits & (L_NO_RECORDS | L_NO_NOTICE):
        bits &= ~L_EVIDENCE                     # a named evidence gap explains the ruleset's
    if bits:
        return BLOCK, bits, NULL
    return KEEP, -1, NULL


# -- holds ------------------------------------------------------------------------------------

@_inner
def _p_promise_hold(i, j, inp):
    """An open promise to pay not yet due: no action but an SMS reminder until the promised
    date plus P0 grace days have passed; DEFER to the next local day at P1."""
    if _x(inp, F_PROMISE_OPEN, i) == 0:
        return KEEP, -1, NULL
    due = _x(inp, F_PROMISE_DATE, i)
    if due == NULL:
        return KEEP, -1, NULL
    z = inp.zone[i, 0]
    last = due + inp.P[j, 0]                    # the last day the promise can still be kept
    if _day(inp, z, inp.at[i]) > last:
        return KEEP, -1, NULL
    return DEFER, 0, _on_day(inp, z, last + 1, inp.P[j, 1])


@_inner(inline="always")
def _p_flag_hold(i, j, inp, f):
    """BLOCK while the flag or count ``f`` is set, for the rule's bound accounts."""
    if _d(inp, j, 0, i) == 0 or _x(inp, f, i) <= 0:
        return KEEP, -1, NULL
    return BLOCK, 0, NULL


@_inner
def _p_scra(i, j, inp):
    """SCRA (50 U.S.C. § 3952): no repossession, during military service, of a car bought on
    a contract made before the service began — without a court order made during it."""
    if _x(inp, F_MILITARY, i) == 0:
        return KEEP, -1, NULL
    since = _x(inp, F_MILITARY_SINCE, i)
    contract = _x(inp, F_CONTRACT_DATE, i)
    z = inp.zone[i, 0]
    if since != NULL and contract != NULL and contract >= _day(inp, z, since):
        return KEEP, -1, NULL                   # the contract was made during the service
    order = _x(inp, F_COURT_ORDER, i)
    if order != NULL and (since == NULL or order >= since):
        return KEEP, -1, NULL
    return BLOCK, 0, NULL


@_inner
def _p_tcpa(i, j, inp, a):
    """TCPA (47 U.S.C. § 227(b)(1)(A)(iii)): artificial or prerecorded voice calls (voice bot)
    and texts to a mobile number need the debtor's prior express consent; agents' calls too
    when P0 says the dialer is an autodialer."""
    if a == SMS:
        ok = _consent(inp, F_CONSENT_SMS, i)
    elif a == VOICE_BOT:
        ok = _consent(inp, F_CONSENT_VOICE_BOT, i)
    elif inp.P[j, 0] != 0:
        ok = _consent(inp, F_CONSENT_PHONE, i)
    else:
        return KEEP, -1, NULL
    if ok:
        return KEEP, -1, NULL
    return BLOCK, 0, NULL


@_inner
def _weekday(day):
    """0 Monday … 6 Sunday of a date in days since the epoch (1970-01-01 was a Thursday)."""
    return (day + 3) % 7


@_inner
def _p_inconvenient(i, j, inp, a):
    """FDCPA § 805(a)(3) and (a)(1): when the debtor said the employer prohibits contact at
    work, no call on a working day (Monday–Friday) in [P0, P1) local time; when the debtor said
    working hours are inconvenient, no call or visit then. DEFER to P1 that day."""
    if _d(inp, j, 0, i) == 0:
        return KEEP, -1, NULL
    employer = _x(inp, F_EMPLOYER_PROHIBITS, i) != 0 and (a == PHONE or a == VOICE_BOT)
    stated = _x(inp, F_WORK_HOURS, i) != 0
    if not (employer or stated):
        return KEEP, -1, NULL
    z = inp.zone[i, 0]
    at = inp.at[i]
    if _weekday(_day(inp, z, at)) >= 5 or not _inside(inp, z, at, inp.P[j, 0], inp.P[j, 1]):
        return KEEP, -1, NULL
    until = _on_day(inp, z, _day(inp, z, at), inp.P[j, 1])
    return DEFER, 0 if employer else 1, until


@_inner
def _civil(day):
    """(year, month, day) of a date in days since the epoch (the proleptic Gregorian calendar)."""
    z = day + 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (1 if m <= 2 else 0), m, d


@_inner
def _from_civil(y, m, d):
    """Days since the epoch of (year, month, day); a day past the month's end runs on."""
    y -= 1 if m <= 2 else 0
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m - 3 if m > 2 else m + 9) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


@njit(cache=True)
def add_years(day, years):
    """The same month and day ``years`` later (29 February → 1 March in a common year)."""
    y, m, d = _civil(day)
    return _from_civil(y + years, m, 1) + d - 1


@_inner
def _p_limitation(i, j, inp):
    """No legal action once the limitation period — D0 years (0: none applies) — has run from
    its start: the oldest unpaid due date (as_of − dpd); in China the latest of that, the last
    payment and the last conversation (a demand that reached the debtor interrupts it: Civil
    Code art. 195). BLOCK from the anniversary (local date); reason 0 US, 1 CN."""
    years = _d(inp, j, 0, i)
    dpd = _x(inp, F_DPD, i)
    if years <= 0 or dpd <= 0:
        return KEEP, -1, NULL
    z = inp.zone[i, 0]
    start = inp.as_of - dpd
    cn = _x(inp, F_COUNTRY, i) == COUNTRY_CN
    if cn:
        start = max(start, _x(inp, F_LAST_PAYMENT, i))
        spoke = _x(inp, F_LAST_CONVERSATION, i)
        if spoke != NULL:
            start = max(start, _day(inp, z, spoke))
    if _day(inp, z, inp.at[i]) >= add_years(start, years):
        return BLOCK, 1 if cn else 0, NULL
    return KEEP, -1, NULL


@_inner
def _p_script_content(i, j, inp, a):
    """What a script to the debtor must and must not say (the screen's bits, inp.A[A_SCRIPT]):
    D0 the set of checks for the account (bits: 1 identity first, 2 recording notice on calls,
    4 如已还款请忽略 in SMS, 8 limited-content voicemail for voice bots, 16 no anonymous caller,
    32 no false threats)."""
    s = inp.A[A_SCRIPT, i]
    if not s & S_HAS_SCRIPT:
        return KEEP, -1, NULL                    # no script: nothing said (the strategy's business)
    checks = _d(inp, j, 0, i)
    calls = a == PHONE or a == VOICE_BOT
    if checks & 16 and s & S_ANONYMOUS:
        return BLOCK, 0, NULL
    if checks & 32 and s & S_FALSE_THREAT:
        return BLOCK, 1, NULL
    if checks & 1 and (calls or a == FIELD_VISIT) and s & S_DEBT_BEFORE_IDENTITY:
        return BLOCK, 2, NULL
    if checks & 2 and calls and not s & S_RECORDING_NOTICE:
        return BLOCK, 3, NULL
    if checks & 4 and a == SMS and not s & S_PAID_IGNORE:
        return BLOCK, 4, NULL
    if checks & 8 and a == VOICE_BOT and not s & S_VOICEMAIL_OK:
        return BLOCK, 5, NULL
    return KEEP, -1, NULL


@_inner
def _p_sms_cap(i, j, inp):
    """China: at most P0 collection SMS a local day, planned ones included; DEFER to the next
    day at P1."""
    z = inp.zone[i, 0]
    day = _day(inp, z, inp.at[i])
    sent = _x(inp, F_SMS_TODAY, i) if day == _day(inp, z, inp.now) else 0
    if sent + inp.A[A_SMS_BEFORE_TODAY, i] >= inp.P[j, 0]:
        return DEFER, 0, _on_day(inp, z, day + 1, inp.P[j, 1])
    return KEEP, -1, NULL


@_inner
def _p_gps_consent(i, j, inp):
    """China (PIPL arts. 28–29): locating the car by its tracker — a repossession of a car that
    has one — needs the debtor's separate consent to GPS tracking."""
    status = _x(inp, F_GPS_STATUS, i)
    if status == GPS_NO_DEVICE or _x(inp, F_CONSENT_GPS, i) == 1:
        return KEEP, -1, NULL
    return BLOCK, 0, NULL


@_inner
def _p_repossession_basis(i, j, inp):
    """China: a repossession needs its legal basis recorded: the debtor's written agreement to
    hand the car over, a court ruling or an arbitral award."""
    if _x(inp, F_SURRENDER, i) != NULL or _x(inp, F_COURT_ORDER, i) != NULL or _x(inp, F_AWARD, i) != NULL:
        return KEEP, -1, NULL
    return BLOCK, 0, NULL


@_inner
def _p_right_to_cure(i, j, inp):
    """Where the state gives a right to cure (D0 days > 0): no repossession without a cure
    notice; none until D0 full days after it (DEFER to the next day at P0)."""
    days = _d(inp, j, 0, i)
    if days <= 0:
        return KEEP, -1, NULL
    sent = _x(inp, F_CURE_NOTICE, i)
    if sent == NULL:
        return BLOCK, 0, NULL
    z = inp.zone[i, 0]
    first = _day(inp, z, sent) + days + 1       # the cure period's days after the day it was sent
    if _day(inp, z, inp.at[i]) < first:
        return DEFER, 1, _on_day(inp, z, first, inp.P[j, 0])
    return KEEP, -1, NULL


@_inner
def _p_disposal(i, j, inp):
    """No sale of a car not held; none without a notice of disposition sent after the
    repossession; none before D0 days after the notice and D1 days after the repossession
    (the redemption window) — DEFER to the later of the two at P0."""
    stage = _x(inp, F_STAGE, i)
    if stage != STAGE_REPOSSESSED and stage != STAGE_NOTICE_SENT:
        return BLOCK, 0, NULL
    taken = _x(inp, F_REPOSSESSED_AT, i)
    notice = _x(inp, F_DISPOSAL_NOTICE_AT, i)
    if notice == NULL or (taken != NULL and notice < taken):
        return BLOCK, 1, NULL
    z = inp.zone[i, 0]
    first = _day(inp, z, notice) + _d(inp, j, 0, i)
    if taken != NULL:
        first = max(first, _day(inp, z, taken) + _d(inp, j, 1, i))
    if _day(inp, z, inp.at[i]) < first:
        return DEFER, 2, _on_day(inp, z, first, inp.P[j, 0])
    return KEEP, -1, NULL


@_inner
def _p_ma_calls(i, j, inp):
    """Massachusetts (940 CMR 7.04(1)(f), 209 CMR 18.14(1)(d)): at most P0 calls in 7 days to
    a debtor whose state (D0) is MA, planned ones included; DEFER to tomorrow at P1."""
    if _d(inp, j, 0, i) == 0:
        return KEEP, -1, NULL
    if _x(inp, F_CALLS_7D, i) + inp.A[A_CALLS_BEFORE, i] >= inp.P[j, 0]:
        z = inp.zone[i, 0]
        return DEFER, 0, _on_day(inp, z, _day(inp, z, inp.at[i]) + 1, inp.P[j, 1])
    return KEEP, -1, NULL


# --------------------------------------------------------------------------------------------
# Dispatch and combination
# --------------------------------------------------------------------------------------------

# policy kernel ids (compliance.py's classes name theirs)
(K_QUIET_HOURS, K_CALL_LIMITS, K_COMPLAINT, K_AUTOMATED_CONSENT, K_THIRD_PARTY, K_REGF_OPT_OUT,
 K_RESTRICTED_MEDIUM, K_REGF_HOURS, K_REGF_CONVERSATION, K_REGF_FREQUENCY, K_LITIGATION, K_PROMISE, K_DISPUTE,
 K_CEASE, K_ATTORNEY, K_BANKRUPTCY, K_SCRA, K_DECEASED, K_HARDSHIP, K_TCPA, K_INCONVENIENT, K_LIMITATION,
 K_SCRIPT, K_SMS_CAP, K_GPS_CONSENT, K_BASIS, K_CURE, K_DISPOSAL, K_MA_CALLS) = range(29)


# Every call between these functions passes ``inp`` (16 fields, 14 arrays) and costs ≈ 0.4 µs
# however little the callee does (measured: a flag hold called directly 375 ns an action, through
# _dispatch 750 ns). _dispatch is therefore inlined into judge_range, and the verdicts loop over
# a range of actions inside one call (a cold compile of judge was not slower, on the loaded
# machine); the rules themselves are not inlined (all of them: 1.8 µs an action against 2.9, but
# judge's cold compile 123 s against 48–74 s).
@_inner(inline="always")
def _dispatch(k, i, j, a, inp):
    if k == K_QUIET_HOURS:
        return _p_window(i, j, inp, 1)
    if k == K_CALL_LIMITS:
        return _p_call_limits(i, j, inp)
    if k == K_COMPLAINT:
        return _p_complaint_pause(i, j, inp)
    if k == K_AUTOMATED_CONSENT:
        return _p_automated_consent(i, j, inp, a)
    if k == K_THIRD_PARTY:
        return _p_third_party(i, j, inp)
    if k == K_REGF_OPT_OUT:
        return _p_regf_opt_out(i, j, inp)
    if k == K_RESTRICTED_MEDIUM:
        return _p_restricted_medium(i, j, inp)
    if k == K_REGF_HOURS:
        return _p_regf_hours(i, j, inp)
    if k == K_REGF_CONVERSATION:
        return _p_regf_conversation(i, j, inp)
    if k == K_REGF_FREQUENCY:
        return _p_regf_call_frequency(i, j, inp)
    if k == K_LITIGATION:
        return _p_litigation(i, j, inp)
    if k == K_PROMISE:
        return _p_promise_hold(i, j, inp)
    if k == K_DISPUTE:
        return _p_flag_hold(i, j, inp, F_OPEN_DISPUTES)
    if k == K_CEASE:
        return _p_flag_hold(i, j, inp, F_CEASE)
    if k == K_ATTORNEY:
        return _p_flag_hold(i, j, inp, F_ATTORNEY)
    if k == K_BANKRUPTCY:
        return _p_flag_hold(i, j, inp, F_BANKRUPTCY)
    if k == K_SCRA:
        return _p_scra(i, j, inp)
    if k == K_DECEASED:
        return _p_flag_hold(i, j, inp, F_DECEASED)
    if k == K_HARDSHIP:
        return _p_flag_hold(i, j, inp, F_HARDSHIP)
    if k == K_TCPA:
        return _p_tcpa(i, j, inp, a)
    if k == K_INCONVENIENT:
        return _p_inconvenient(i, j, inp, a)
    if k == K_LIMITATION:
        return _p_limitation(i, j, inp)
    if k == K_SCRIPT:
        return _p_script_content(i, j, inp, a)
    if k == K_SMS_CAP:
        return _p_sms_cap(i, j, inp)
    if k == K_GPS_CONSENT:
        return _p_gps_consent(i, j, inp)
    if k == K_BASIS:
        return _p_repossession_basis(i, j, inp)
    if k == K_CURE:
        return _p_right_to_cure(i, j, inp)
    if k == K_DISPOSAL:
        return _p_disposal(i, j, inp)
    if k == K_MA_CALLS:
        return _p_ma_calls(i, j, inp)
    return BLOCK, -2, NULL                      # an unknown kernel id: fail closed


@njit(cache=True, nogil=True)
def judge_range(kernels, scopes, inp, lo, hi, outcome, reason, until, winner):
    """Every policy ``kernels[j]`` (judging the actions whose code is a bit of ``scopes[j]``)
    on actions ``lo`` to ``hi``, combined in order: a strictly stricter outcome replaces the
    verdict so far (its reason, time and policy ``winner``); a second deferral keeps the
    later time. Holds no GIL: :func:`judge_many` runs ranges of a batch on several threads."""
    for i in range(lo, hi):
        a = inp.action[i]
        o, r, t, w = KEEP, -1, NULL, -1
        for j in range(kernels.shape[0]):
            if not (scopes[j] >> a) & 1:
                continue
            po, pr, pt = _dispatch(kernels[j], i, j, a, inp)
            if po > o:
                o, r, t, w = po, pr, pt, j
            elif po == DEFER and o == DEFER and pt > t:
                t = pt
        outcome[i] = o
        reason[i] = r
        until[i] = t
        winner[i] = w


@njit(cache=True)
def judge(kernels, scopes, inp, outcome, reason, until, winner):
    """Every action's verdict (:func:`judge_range`), one after another: a request's few.
    (``lo`` an int64, not the literal 0: the one compiled :func:`judge_range` is also the one
    :func:`judge_many` calls.)"""
    judge_range(kernels, scopes, inp, np.int64(0), inp.action.shape[0], outcome, reason, until, winner)


#: ranges a batch is cut into by :func:`judge_many` (claimed in turn by the threads), and the
#: fewest actions in one
PARTS, PART_MIN = 64, 1024


def judge_many(kernels, scopes, inp, outcome, reason, until, winner):
    """The same verdicts as :func:`judge` for a batch: :func:`judge_range` over up to
    :data:`PARTS` ranges of actions, claimed in turn by the calling thread and the compiled
    kernel's pool threads (:func:`kernel.codegen.driver._share`; each verdict reads the
    inputs and writes its own row only). One compiled function serves both: no ``parallel=True``
    copy whose parfor passes and gufunc cost ≈ 8 s of a cold compile (docs/compiler.md)."""
    from functools import partial

    from kernel.codegen.driver import _share
    m = inp.action.shape[0]
    parts = max(1, min(PARTS, m // PART_MIN))
    _share([partial(judge_range, kernels, scopes, inp, m * k // parts, m * (k + 1) // parts, outcome, reason, until,
                    winner) for k in range(parts)])


# --------------------------------------------------------------------------------------------
# Per-action facts: what this batch plans before each action
# --------------------------------------------------------------------------------------------

@_inner
def _before(rows, key, at, action, kinds, out):
    """For each action whose code is a bit of ``kinds``: how many such actions of the same
    account with the same ``key`` come before it in this batch, by instant then plan order
    (as :meth:`kernel.hookspecs.ActionBatch.order_within_account`)."""
    m = action.shape[0]
    idx = np.empty(m, np.int64)
    n = 0
    for i in range(m):
        out[i] = 0
        if (kinds >> action[i]) & 1:
            idx[n] = i
            n += 1
    if n < 2:
        return
    idx = idx[:n]
    # lexicographic order (rows, key, at, plan order) by stable sorts, least significant first
    order = np.argsort(at[idx], kind="mergesort")
    order = order[np.argsort(key[idx][order], kind="mergesort")]
    order = order[np.argsort(rows[idx][order], kind="mergesort")]
    first = 0
    for p in range(n):
        i = idx[order[p]]
        if p > 0:
            prev = idx[order[p - 1]]
            if rows[i] != rows[prev] or key[i] != key[prev]:
                first = p
        out[i] = p - first


@njit(cache=True)
def prepare_facts(inp, rows, calls, sms, third, A):
    """Fill ``A``'s rows of planned actions before each: calls the same local day and in all,
    SMS the same local day, third-party contacts in all."""
    m = inp.action.shape[0]
    day = np.empty(m, np.int64)
    same = np.zeros(m, np.int64)
    for i in range(m):
        day[i] = _day(inp, inp.zone[i, 0], inp.at[i])
    call_kinds = (1 << PHONE) | (1 << VOICE_BOT)
    if calls:
        _before(rows, day, inp.at, inp.action, call_kinds, A[A_CALLS_BEFORE_TODAY])
        _before(rows, same, inp.at, inp.action, call_kinds, A[A_CALLS_BEFORE])
    if sms:
        _before(rows, day, inp.at, inp.action, 1 << SMS, A[A_SMS_BEFORE_TODAY])
    if third:
        _before(rows, same, inp.at, inp.action, 1 << THIRD_PARTY, A[A_THIRD_BEFORE])


@njit(cache=True)
def judge_planned(kernels, scopes, inp, calls, sms, third, outcome, reason, until, winner):
    """:func:`prepare_facts` (the accounts: ``inp.acc``) then :func:`judge`, in one call: a
    request's few actions pay for one dispatch of the inputs, not two."""
    if calls or sms or third:
        prepare_facts(inp, inp.acc, calls, sms, third, inp.A)
    judge(kernels, scopes, inp, outcome, reason, until, winner)


def pack_run(kernels: np.ndarray, scopes: np.ndarray, base: np.ndarray, params: np.ndarray) -> np.ndarray:
    """A run of policies' constant arrays as :func:`judge_one` takes them, in one int64 array:
    the number of policies and of parameters each, then ``kernels``, ``scopes``, ``base`` and
    the ``(policies, parameters)`` ``params`` row by row (:func:`_run_arrays` gives them
    back). Made once per run: a request's call unboxes one array instead of four."""
    count, width = params.shape
    return np.concatenate([np.array([count, width], np.int64), kernels, scopes, base, params.ravel()]).astype(np.int64)


def pack_zones(zst: np.ndarray, zen: np.ndarray, zts: np.ndarray, zoff: np.ndarray, zob: np.ndarray) -> np.ndarray:
    """Zones' offset tables (:data:`Inputs`' ``zst zen zts zoff zob``) in one int64 array: the
    number of zones and of transitions, then ``zst``, ``zen``, ``zob``, ``zts`` and ``zoff``
    (:func:`_zone_arrays` gives them back)."""
    return np.concatenate([np.array([zst.shape[0], zts.shape[0]], np.int64), zst, zen, zob, zts, zoff]).astype(np.int64)


@njit(cache=True, inline="always")
def _run_arrays(run):
    """:func:`pack_run`'s arrays out of its int64 array (views, C-contiguous as the batch's)."""
    count, width = run[0], run[1]
    at = 2 + 3 * count
    return (run[2:2 + count], run[2 + count:2 + 2 * count], run[2 + 2 * count:at],
            run[at:at + count * width].reshape((count, width)))


@njit(cache=True, inline="always")
def _zone_arrays(zones):
    """:func:`pack_zones`' arrays out of its int64 array: (zst, zen, zts, zoff, zob)."""
    count, transitions = zones[0], zones[1]
    at = 2 + 3 * count
    return (zones[2:2 + count], zones[2 + count:2 + 2 * count], zones[at:at + transitions], zones[at + transitions:],
            zones[2 + 2 * count:at])


#: :func:`judge_one`'s ``needs``: bits of the per-action facts the run's policies read
NEEDS_CALLS, NEEDS_SMS, NEEDS_THIRD = 1, 2, 4


#: :func:`judge_one`'s call buffer: the features (``X``, one column), then the moment, the
#: date (days) and ``needs``, then each action's instant, the facts (``A``) and the verdicts
ONE_NOW, ONE_AS_OF, ONE_NEEDS = len(FEATURES), len(FEATURES) + 1, len(FEATURES) + 2


@njit(cache=True, inline="always")
def one_call_layout(m):
    """Where :func:`judge_one`'s call buffer of ``m`` actions holds each action's instant, the
    ``(N_ACTION_FACTS, m)`` facts and the ``(4, m)`` verdicts: their first positions, and the
    buffer's length (the engine makes its buffers by it, the compiled call reads them by it)."""
    at = ONE_NEEDS + 1
    facts = at + m
    out = facts + N_ACTION_FACTS * m
    return at, facts, out, out + 4 * m


@njit(cache=True)
def judge_one(run, action, D, zone, zones, call):
    """:func:`judge_planned` (the same functions, nothing else) for one account's request:
    the inputs made :data:`Inputs` here (typing a 16-field tuple at the call costs ≈ 1.5 µs
    more than its fields) — the run's constant arrays packed in one (:func:`pack_run`), the
    zones' tables in another (:func:`pack_zones`), and the request's own values in the
    thread's one call buffer (:func:`one_call_layout`: the features, the moment, the date,
    the facts it needs as bits ``NEEDS_*``, each action's instant and facts, the verdicts):
    6 arguments to unbox, not 22 —, every action the account's (row 0); the verdicts in the
    buffer's ``(4, m)`` rows — outcome, reason, next allowed, winner — read back by one
    ``tolist``."""
    kernels, scopes, base, P = _run_arrays(run)
    zst, zen, zts, zoff, zob = _zone_arrays(zones)
    m = action.shape[0]
    at, facts, verdicts, end = one_call_layout(m)
    X = call[:ONE_NOW].reshape((ONE_NOW, 1))
    A = call[facts:verdicts].reshape((N_ACTION_FACTS, m))
    out = call[verdicts:end].reshape((4, m))
    needs = call[ONE_NEEDS]
    inp = Inputs(action, call[at:facts], np.zeros(m, np.int64), X, A, D, P, base, zone, zst, zen, zts, zoff, zob,
                 call[ONE_NOW], call[ONE_AS_OF])
    judge_planned(kernels, scopes, inp, needs & NEEDS_CALLS != 0, needs & NEEDS_SMS != 0, needs & NEEDS_THIRD != 0,
                  out[0], out[1], out[2], out[3])
