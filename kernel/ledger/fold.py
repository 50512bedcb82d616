"""The state fold: every account's events, in order, to its state columns in one compiled pass.

One ``@njit(cache=True)`` function walks the events sorted by (account, at, …) and writes
one row of an int64 matrix and one of a float64 matrix per account. The same function serves
a million accounts and the one a gRPC request asks for (no per-call NumPy chains).
:mod:`kernel.ledger.reference` defines every column again, plainly and row by row; the
differential tests hold the two equal. The column definitions are in docs/ledger.md.
"""
from __future__ import annotations

from ..codegen.cache import configure_numba_cache

configure_numba_cache()          # before any function here is defined (see its docstring)

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

from ..hookspecs import NULL_TIME  # noqa: E402
from ..schema import ENUMS  # noqa: E402

_K = {name: code for code, name in enumerate(ENUMS["event_kind"])}
_C = {name: code for code, name in enumerate(ENUMS["contact_channel"])}
_O = {name: code for code, name in enumerate(ENUMS["contact_outcome"])}
_G = {name: code for code, name in enumerate(ENUMS["gps_status"])}

# event kinds, channels and outcomes as module constants (Numba freezes globals)
PAYMENT, CONTACT, PROMISE = _K["PAYMENT"], _K["CONTACT_ATTEMPT"], _K["PROMISE_TO_PAY"]
DISPUTE_OPENED, DISPUTE_RESOLVED = _K["DISPUTE_OPENED"], _K["DISPUTE_RESOLVED"]
COMPLAINT_OPENED, COMPLAINT_CLOSED = _K["COMPLAINT_OPENED"], _K["COMPLAINT_CLOSED"]
CEASE, ATTORNEY, BANKRUPTCY_FILED, BANKRUPTCY_CLOSED = (_K["CEASE_REQUESTED"], _K["ATTORNEY_REPRESENTED"],
                                                        _K["BANKRUPTCY_FILED"], _K["BANKRUPTCY_CLOSED"])
DECEASED, CONSENT_GRANTED, CONSENT_REVOKED, OPT_OUT = (_K["DECEASED"], _K["CONSENT_GRANTED"], _K["CONSENT_REVOKED"],
                                                       _K["OPT_OUT"])
HARDSHIP_DECLARED, HARDSHIP_ENDED = _K["HARDSHIP_DECLARED"], _K["HARDSHIP_ENDED"]
GPS_TAMPER, GEOFENCE_EXIT, INSURANCE_RENEWED, VIOLATION = (_K["GPS_TAMPER"], _K["GEOFENCE_EXIT"],
                                                           _K["INSURANCE_RENEWED"], _K["VIOLATION"])
DEMAND_NOTICE, ORDERED, REPOSSESSED, NOTICE, REDEEMED, SOLD = (
    _K["DEMAND_NOTICE_SENT"], _K["REPOSSESSION_ORDERED"], _K["REPOSSESSED"], _K["DISPOSAL_NOTICE_SENT"],
    _K["REDEEMED"], _K["VEHICLE_SOLD"])
(COMPLAINT_EXTENDED, EMPLOYER_PROHIBITS, WORK_HOURS, MILITARY_STARTED, MILITARY_ENDED, COURT_ORDER, AWARD,
 SURRENDER, CURE_NOTICE, GPS_CONSENT_GRANTED, GPS_CONSENT_REVOKED, MORTGAGE, NOTARISED, ARBITRATION) = (
    _K["COMPLAINT_EXTENDED"], _K["EMPLOYER_PROHIBITS_CONTACT"], _K["WORK_HOURS_INCONVENIENT"],
    _K["MILITARY_SERVICE_STARTED"], _K["MILITARY_SERVICE_ENDED"], _K["COURT_ORDER_GRANTED"],
    _K["ARBITRAL_AWARD_GRANTED"], _K["SURRENDER_AGREED"], _K["CURE_NOTICE_SENT"], _K["GPS_CONSENT_GRANTED"],
    _K["GPS_CONSENT_REVOKED"], _K["MORTGAGE_REGISTERED"], _K["CONTRACT_NOTARISED"], _K["ARBITRATION_AGREED"])
PHONE, SMS, VOICE_BOT, FIELD_VISIT, EMAIL, THIRD_PARTY = (_C["PHONE"], _C["SMS"], _C["VOICE_BOT"], _C["FIELD_VISIT"],
                                                          _C["EMAIL"], _C["THIRD_PARTY"])
RIGHT_PARTY, UNREPORTED, FAILED = _O["RIGHT_PARTY"], _O["UNREPORTED"], _O["FAILED"]
GPS_ONLINE, GPS_OFFLINE, GPS_TAMPERED = _G["ONLINE"], _G["OFFLINE"], _G["TAMPERED"]
NULL = NULL_TIME
#: promise amounts are met to the cent
CENT = 0.005

#: int64 output columns, in matrix order (times µs, dates days, NULL_TIME null; bools 0/1;
#: consent −1 null; enum codes −1 null)
INT_COLUMNS = (
    "ledger_events", "call_attempts_today", "connected_calls_today", "unanswered_attempts_today",
    "consecutive_failed_attempts", "calls_7d", "sms_today", "last_conversation_at", "last_contact_attempt_at",
    "last_field_visit_at", "field_visits_30d", "third_party_contacts_30d", "contact_attempts_30d",
    "right_party_contacts_30d", "last_payment_date", "promise_open", "promise_date", "promises_made_90d",
    "promises_kept_30d", "promises_kept_90d", "promises_broken_30d", "promises_broken_90d", "open_disputes",
    "dispute_opened_at", "open_complaints", "complaint_opened_at", "cease_requested", "attorney_represented",
    "bankruptcy_open", "deceased", "hardship", "consent_sms", "consent_voice_bot", "consent_phone", "consent_email",
    "opt_out_phone", "opt_out_sms", "opt_out_email", "gps_last_ping_at", "gps_status", "gps_tamper_30d",
    "geofence_exits_30d", "violations_90d", "insurance_expiry_date", "demand_notices_sent", "repossession_stage",
    "repossession_ordered_at", "repossessed_at", "disposal_notice_at", "redeemed_at", "sold_at",
    # compliance holds and legal bases (issue 12): appended, so the positions above never move
    "complaint_extensions", "employer_prohibits_contact", "work_hours_inconvenient", "military_service",
    "military_service_since", "court_order_at", "arbitral_award_at", "surrender_agreed_at", "cure_notice_at",
    "consent_gps", "mortgage_registered", "contract_notarised", "arbitration_agreed",
)
FLOAT_COLUMNS = ("last_payment_amount", "paid_30d", "promise_amount", "promise_paid", "gps_offline_hours",
                 "sale_amount")
_I = {name: i for i, name in enumerate(INT_COLUMNS)}
_F = {name: i for i, name in enumerate(FLOAT_COLUMNS)}
# column positions as module constants for the compiled function
(I_EVENTS, I_CALLS_TODAY, I_CONNECTED_TODAY, I_UNANSWERED_TODAY, I_CONSECUTIVE, I_CALLS_7D, I_SMS_TODAY,
 I_LAST_CONVERSATION, I_LAST_CONTACT, I_LAST_VISIT, I_VISITS_30D, I_THIRD_30D, I_CONTACTS_30D, I_RPC_30D,
 I_LAST_PAYMENT, I_PROMISE_OPEN, I_PROMISE_DATE, I_MADE_90D, I_KEPT_30D, I_KEPT_90D, I_BROKEN_30D, I_BROKEN_90D,
 I_DISPUTES, I_DISPUTE_AT, I_COMPLAINTS, I_COMPLAINT_AT, I_CEASE, I_ATTORNEY, I_BANKRUPTCY, I_DECEASED, I_HARDSHIP,
 I_CONSENT_SMS, I_CONSENT_VOICE_BOT, I_CONSENT_PHONE, I_CONSENT_EMAIL, I_OPT_PHONE, I_OPT_SMS, I_OPT_EMAIL,
 I_GPS_LAST, I_GPS_STATUS, I_TAMPER_30D, I_EXITS_30D, I_VIOLATIONS_90D, I_INSURANCE, I_NOTICES, I_STAGE,
 I_ORDERED_AT, I_REPOSSESSED_AT, I_NOTICE_AT, I_REDEEMED_AT, I_SOLD_AT,
 I_COMPLAINT_EXTENSIONS, I_EMPLOYER_PROHIBITS, I_WORK_HOURS, I_MILITARY, I_MILITARY_SINCE, I_COURT_ORDER_AT,
 I_AWARD_AT, I_SURRENDER_AT, I_CURE_NOTICE_AT, I_CONSENT_GPS, I_MORTGAGE, I_NOTARISED,
 I_ARBITRATION) = range(len(INT_COLUMNS))
(F_LAST_PAYMENT, F_PAID_30D, F_PROMISE_AMOUNT, F_PROMISE_PAID, F_OFFLINE_HOURS, F_SALE) = range(len(FLOAT_COLUMNS))
US_PER_HOUR = 3_600_000_000


@njit(cache=True)
def _consent_set(consent, opt, channel, granted, opted):
    """Apply a consent or opt-out event to the per-channel state (channel −1: all four).
    consent: −1 null, 0, 1; slots: 0 PHONE, 1 SMS, 2 VOICE_BOT, 3 EMAIL."""
    for slot in range(4):
        c = PHONE if slot == 0 else SMS if slot == 1 else VOICE_BOT if slot == 2 else EMAIL
        if channel >= 0 and channel != c:
            continue
        if granted:
            consent[slot] = 1
            opt[slot] = 0
        else:
            consent[slot] = 0
            if opted:
                opt[slot] = 1


@njit(cache=True)
def fold(starts, kind, at, day, amount, promise_day, channel, outcome, expiry_day, state_at, today, gps_last,
         grace_days, tamper_days, offline_after_us, ints, floats):
    """Events ``starts[a]:starts[a + 1]`` belong to account ``a`` and are sorted by instant;
    ``day`` is each event's local date, ``today`` each account's. Writes ``ints[a]`` and
    ``floats[a]`` (column order :data:`INT_COLUMNS`, :data:`FLOAT_COLUMNS`)."""
    n = starts.shape[0] - 1
    most = 1
    for a in range(n):
        most = max(most, starts[a + 1] - starts[a])
    # per-account scratch, sized once: promises (made index) and open disputes/complaints
    p_index = np.empty(most, np.int64)
    p_paid = np.empty(most, np.float64)
    p_kept_day = np.empty(most, np.int64)
    disputes = np.empty(most, np.int64)
    complaints = np.empty(most, np.int64)
    extensions = np.empty(most, np.int64)
    consent = np.empty(4, np.int64)
    opt = np.empty(4, np.int64)
    for a in range(n):
        lo, hi = starts[a], starts[a + 1]
        t, d0 = state_at[a], today[a]
        row = ints[a]
        f = floats[a]
        for j in range(row.shape[0]):
            row[j] = 0
        for j in range(f.shape[0]):
            f[j] = 0.0
        for j in (I_LAST_CONVERSATION, I_LAST_CONTACT, I_LAST_VISIT, I_LAST_PAYMENT, I_PROMISE_DATE, I_DISPUTE_AT,
                  I_COMPLAINT_AT, I_GPS_LAST, I_INSURANCE, I_ORDERED_AT, I_REPOSSESSED_AT, I_NOTICE_AT, I_REDEEMED_AT,
                  I_SOLD_AT, I_MILITARY_SINCE, I_COURT_ORDER_AT, I_AWARD_AT, I_SURRENDER_AT, I_CURE_NOTICE_AT):
            row[j] = NULL
        row[I_CONSENT_GPS] = -1
        f[F_LAST_PAYMENT] = np.nan
        f[F_PROMISE_AMOUNT] = np.nan
        f[F_PROMISE_PAID] = np.nan
        f[F_OFFLINE_HOURS] = np.nan
        f[F_SALE] = np.nan
        consent[:] = -1
        opt[:] = 0
        promises = 0
        n_disputes = d_head = 0
        n_complaints = c_head = 0
        bankrupt = hardship = 0
        stage = 0
        last_tamper_day = NULL
        row[I_EVENTS] = hi - lo
        for e in range(lo, hi):
            k = kind[e]
            d = day[e]
            if k == CONTACT:
                ch, out = channel[e], outcome[e]
                row[I_LAST_CONTACT] = at[e]
                if d > d0 - 30:
                    row[I_CONTACTS_30D] += 1
                    if out == RIGHT_PARTY:
                        row[I_RPC_30D] += 1
                if ch == PHONE or ch == VOICE_BOT:
                    connected = out == RIGHT_PARTY or out == UNREPORTED
                    if d == d0:
                        row[I_CALLS_TODAY] += 1
                        if connected:
                            row[I_CONNECTED_TODAY] += 1
                    if d > d0 - 7:
                        row[I_CALLS_7D] += 1
                    if connected:
                        row[I_CONSECUTIVE] = 0
                        row[I_LAST_CONVERSATION] = at[e]
                    else:
                        row[I_CONSECUTIVE] += 1
                elif ch == SMS:
                    if d == d0 and out != FAILED:
                        row[I_SMS_TODAY] += 1
                elif ch == FIELD_VISIT:
                    row[I_LAST_VISIT] = at[e]
                    if d > d0 - 30:
                        row[I_VISITS_30D] += 1
                elif ch == THIRD_PARTY:
                    if d > d0 - 30:
                        row[I_THIRD_30D] += 1
            elif k == PAYMENT:
                row[I_LAST_PAYMENT] = d
                f[F_LAST_PAYMENT] = amount[e]
                if d > d0 - 30:
                    f[F_PAID_30D] += amount[e]
                for p in range(promises):           # towards every promise made before it
                    q = p_index[p]
                    if p_kept_day[p] == NULL and d <= promise_day[q] + grace_days:
                        p_paid[p] += amount[e]
                        if p_paid[p] >= amount[q] - CENT:
                            p_kept_day[p] = d
            elif k == PROMISE:
                p_index[promises] = e
                p_paid[promises] = 0.0
                p_kept_day[promises] = NULL
                promises += 1
                if d > d0 - 90:
                    row[I_MADE_90D] += 1
            elif k == DISPUTE_OPENED:
                disputes[n_disputes] = at[e]
                n_disputes += 1
            elif k == DISPUTE_RESOLVED:
                if d_head < n_disputes:
                    d_head += 1
            elif k == COMPLAINT_OPENED:
                complaints[n_complaints] = at[e]
                extensions[n_complaints] = 0
                n_complaints += 1
            elif k == COMPLAINT_EXTENDED:
                if c_head < n_complaints:
                    extensions[c_head] += 1
            elif k == COMPLAINT_CLOSED:
                if c_head < n_complaints:
                    c_head += 1
            elif k == CEASE:
                row[I_CEASE] = 1
            elif k == ATTORNEY:
                row[I_ATTORNEY] = 1
            elif k == BANKRUPTCY_FILED:
                bankrupt = 1
            elif k == BANKRUPTCY_CLOSED:
                bankrupt = 0
            elif k == DECEASED:
                row[I_DECEASED] = 1
            elif k == HARDSHIP_DECLARED:
                hardship = 1
            elif k == HARDSHIP_ENDED:
                hardship = 0
            elif k == CONSENT_GRANTED:
                _consent_set(consent, opt, channel[e], True, False)
            elif k == CONSENT_REVOKED:
                _consent_set(consent, opt, channel[e], False, False)
            elif k == OPT_OUT:
                _consent_set(consent, opt, channel[e], False, True)
            elif k == GPS_TAMPER:
                last_tamper_day = d
                if d > d0 - 30:
                    row[I_TAMPER_30D] += 1
            elif k == GEOFENCE_EXIT:
                if d > d0 - 30:
                    row[I_EXITS_30D] += 1
            elif k == VIOLATION:
                if d > d0 - 90:
                    row[I_VIOLATIONS_90D] += 1
            elif k == INSURANCE_RENEWED:
                if row[I_INSURANCE] == NULL or expiry_day[e] > row[I_INSURANCE]:
                    row[I_INSURANCE] = expiry_day[e]
            elif k == DEMAND_NOTICE:
                row[I_NOTICES] += 1
            elif k == ORDERED:
                stage = 1
                row[I_ORDERED_AT] = at[e]
            elif k == REPOSSESSED:
                stage = 2
                row[I_REPOSSESSED_AT] = at[e]
            elif k == NOTICE:
                stage = 3
                row[I_NOTICE_AT] = at[e]
            elif k == REDEEMED:
                stage = 4
                row[I_REDEEMED_AT] = at[e]
            elif k == SOLD:
                stage = 5
                row[I_SOLD_AT] = at[e]
                f[F_SALE] = amount[e]
            elif k == EMPLOYER_PROHIBITS:
                row[I_EMPLOYER_PROHIBITS] = 1
            elif k == WORK_HOURS:
                row[I_WORK_HOURS] = 1
            elif k == MILITARY_STARTED:
                if row[I_MILITARY] == 0:             # a second start report keeps the first start
                    row[I_MILITARY] = 1
                    row[I_MILITARY_SINCE] = at[e]
            elif k == MILITARY_ENDED:
                row[I_MILITARY] = 0
                row[I_MILITARY_SINCE] = NULL
            elif k == COURT_ORDER:
                row[I_COURT_ORDER_AT] = at[e]
            elif k == AWARD:
                row[I_AWARD_AT] = at[e]
            elif k == SURRENDER:
                row[I_SURRENDER_AT] = at[e]
            elif k == CURE_NOTICE:
                row[I_CURE_NOTICE_AT] = at[e]
            elif k == GPS_CONSENT_GRANTED:
                row[I_CONSENT_GPS] = 1
            elif k == GPS_CONSENT_REVOKED:
                row[I_CONSENT_GPS] = 0
            elif k == MORTGAGE:
                row[I_MORTGAGE] = 1
            elif k == NOTARISED:
                row[I_NOTARISED] = 1
            elif k == ARBITRATION:
                row[I_ARBITRATION] = 1
        row[I_UNANSWERED_TODAY] = row[I_CALLS_TODAY] - row[I_CONNECTED_TODAY]
        # promises: kept, broken, or open (the last open one is reported)
        for p in range(promises):
            q = p_index[p]
            deadline = promise_day[q] + grace_days
            if p_kept_day[p] != NULL:
                if p_kept_day[p] > d0 - 30:
                    row[I_KEPT_30D] += 1
                if p_kept_day[p] > d0 - 90:
                    row[I_KEPT_90D] += 1
            elif d0 > deadline:
                broken_day = deadline + 1
                if broken_day > d0 - 30:
                    row[I_BROKEN_30D] += 1
                if broken_day > d0 - 90:
                    row[I_BROKEN_90D] += 1
            else:
                row[I_PROMISE_OPEN] = 1
                row[I_PROMISE_DATE] = promise_day[q]
                f[F_PROMISE_AMOUNT] = amount[q]
                f[F_PROMISE_PAID] = p_paid[p]
        row[I_DISPUTES] = n_disputes - d_head
        if d_head < n_disputes:
            row[I_DISPUTE_AT] = disputes[d_head]
        row[I_COMPLAINTS] = n_complaints - c_head
        if c_head < n_complaints:
            row[I_COMPLAINT_AT] = complaints[c_head]
            row[I_COMPLAINT_EXTENSIONS] = extensions[c_head]
        row[I_BANKRUPTCY] = bankrupt
        row[I_HARDSHIP] = hardship
        row[I_CONSENT_PHONE] = consent[0]
        row[I_CONSENT_SMS] = consent[1]
        row[I_CONSENT_VOICE_BOT] = consent[2]
        row[I_CONSENT_EMAIL] = consent[3]
        row[I_OPT_PHONE] = 1 if opt[0] == 1 or opt[2] == 1 else 0
        row[I_OPT_SMS] = opt[1]
        row[I_OPT_EMAIL] = opt[3]
        row[I_STAGE] = stage
        # GPS: the last ping at or before t comes from the reduced ping state
        g = gps_last[a]
        row[I_GPS_LAST] = g
        status = -1
        if last_tamper_day != NULL and last_tamper_day > d0 - tamper_days:
            status = GPS_TAMPERED
        elif g != NULL:
            status = GPS_OFFLINE if t - g >= offline_after_us else GPS_ONLINE
        row[I_GPS_STATUS] = status
        if g != NULL:
            f[F_OFFLINE_HOURS] = (t - g) / US_PER_HOUR


def empty_outputs(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.empty((n, len(INT_COLUMNS)), np.int64), np.empty((n, len(FLOAT_COLUMNS)), np.float64)
