"""The collection process along each account's DPD path: contacts, promises to pay and
their outcome, simulated day by day while the account is overdue — and the book's contact
and promise counters read off them.

:mod:`kernel.synth.process` gives each account its monthly path from origination (what was
unpaid after each instalment fell due, the day of each payment). From it, the account's DPD
on every local day follows: ``t − (the due day of the oldest unpaid instalment)``, the
instalments due strictly before ``t``, less those paid by ``t``. On every day the account
is overdue the collection process works it by tier (the usual auto-finance treatment path):

- **1–10 DPD** (early, self-cure): an SMS reminder every 3 days from the first day past due,
  a voice-bot call every 3 days from the second;
- **11–30 DPD**: agent phone calls, Poisson(:data:`CALLS_M1`) a day, an SMS a week;
- **31+ DPD**: calls, Poisson(:data:`CALLS_M2`) a day (at most :data:`MAX_CALLS`), an SMS a
  week, a field visit every 14 days (on the 31st, 45th… day past due).

A call reaches the debtor (RIGHT_PARTY) with probability :data:`REACH` when the number on
file is valid (a voice bot :data:`REACH_BOT`, a visit :data:`REACH_VISIT`); a failed call
rings out, is busy, reaches voicemail or a wrong party (a dead number: fails or reaches
someone else). A debtor reached may promise to pay one instalment — one promise at a time:
none while one is pending. A debtor whose path shows a payment later in the month promises
often (:data:`PROMISE_PAYER`) and names a date near the day the payment comes (``the
payment's day + U{−3 … 2}``, at least tomorrow); one whose path shows none promises less
often (:data:`PROMISE_OTHER`, a tenth of that when unwilling) with a date 1–7 days ahead.
Whether a promise is **kept** is not drawn: it is the ledger's rule applied to the path —
kept when a payment (every payment on the path pays at least one instalment) comes after
it, by its date plus the grace day (``promise_grace_days``); broken once that passes;
open until then.

The process runs along the whole path from origination, with the same draws whatever is
written; ``history="full"`` keeps every event, ``"recent"`` those at or after the ledger's
look-back from the snapshot (:func:`lookback_us`: 183 days with the default
:class:`~kernel.ledger.StateSettings`, its 90-day counters plus promises falling due in them),
the events the ledger reads back at the snapshot. The book's counters — calls and connected
calls today, the failed streak, calls in 7 days, SMS today, the last conversation, promises
made, kept and broken in 90 (30) days, the open promise's date — are counted in the same
pass over the events of that look-back, by the rules of :mod:`kernel.ledger.fold` (local
days; PHONE and VOICE_BOT are calls; a RIGHT_PARTY contact is a conversation and ends the
failed streak; an SMS that failed does not count; a promise is made on its day, kept on its
payment's, broken the day after its date plus grace), so both histories give the book's
state.

Within a day the events are placed in order on office time (08:00–20:00 local), today's in
the calling window before the snapshot (:meth:`kernel.synth.history.Clock.call_window`),
stratified so that they never share an instant. Randomness: one NumPy-compatible Numba
generator seeded per chunk (deterministic by seed and chunk).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from ..hookspecs import NULL_TIME, utc_offsets
from ..schema import ENUMS
from . import history as hist

#: the two histories :mod:`kernel.synth.events` writes: ``recent`` (what the ledger reads back
#: at the snapshot) and ``full`` (everything since origination)
HISTORIES = ("recent", "full")
#: the ledger's default promise grace (StateSettings.promise_grace_days)
GRACE_DAYS = 1
#: agent calls a day at 11–30 and at 31+ DPD (Poisson means), and the most in a day
CALLS_M1, CALLS_M2, MAX_CALLS = 0.8, 1.1, 4
#: chance a contact reaches the debtor (a valid number): call, voice bot, field visit
REACH, REACH_BOT, REACH_VISIT = 0.35, 0.30, 0.40
#: chance a reached debtor promises: with a payment coming this month, without one
PROMISE_PAYER, PROMISE_OTHER = 0.75, 0.25
#: events a day at most (SMS, voice bot, visit, calls, a promise)
_MAX_DAY = 4 + MAX_CALLS

_CH = {name: i for i, name in enumerate(ENUMS["contact_channel"])}
_OUT = {name: i for i, name in enumerate(ENUMS["contact_outcome"])}
PHONE, SMS, VOICE_BOT, FIELD_VISIT = _CH["PHONE"], _CH["SMS"], _CH["VOICE_BOT"], _CH["FIELD_VISIT"]
RIGHT_PARTY, NO_ANSWER, BUSY, VOICEMAIL, WRONG_PARTY, FAILED, DELIVERED = (
    _OUT["RIGHT_PARTY"], _OUT["NO_ANSWER"], _OUT["BUSY"], _OUT["VOICEMAIL"], _OUT["WRONG_PARTY"], _OUT["FAILED"],
    _OUT["DELIVERED"])
#: event kinds the walk writes: a contact attempt, a promise to pay
CONTACT, PROMISE = 0, 1
_US_SEC = hist.US_SEC
_US_DAY = hist.US_DAY
_OPENS, _CLOSES = hist.OFFICE_OPENS, hist.OFFICE_CLOSES


@njit(cache=True)
def _state(M, P, D, due, days, i, t, j):  # pragma: no cover (compiled)
    """The DPD of account ``i`` on local day ``t`` in the interval after instalment ``j + 1``
    fell due (``days[i, j] < t ≤`` the next due day): 0 when current."""
    m = M[i, j]
    if j + 1 < due[i] and D[i, j + 1] != NULL_TIME and t >= D[i, j + 1]:
        m = max(m - P[i, j + 1], 0)
    if m <= 0:
        return 0
    return max(t - days[i, j + 1 - m], 0)


@njit(cache=True)
def _bound(M, P, D, due, days, today, write_lo, out):  # pragma: no cover (compiled)
    """Per account, the overdue days that may hold written events (local time ``write_lo`` on),
    times the events a day can hold."""
    for i in range(M.shape[0]):
        c = 0
        for j in range(due[i]):
            e = days[i, j + 1] if j + 1 < due[i] else today[i]
            if M[i, j] == 0 or (e + 1) * _US_DAY <= write_lo[i]:    # current all the interval, or unwritten
                continue
            for t in range(days[i, j] + 1, min(e, today[i]) + 1):
                if (t + 1) * _US_DAY > write_lo[i] and _state(M, P, D, due, days, i, t, j) > 0:
                    c += 1
        out[i] = c * _MAX_DAY


@njit(cache=True)
def _failed(valid):  # pragma: no cover (compiled)
    u = np.random.random()
    if valid:
        return NO_ANSWER if u < 0.55 else BUSY if u < 0.70 else VOICEMAIL if u < 0.90 else WRONG_PARTY
    return FAILED if u < 0.7 else WRONG_PARTY


@njit(cache=True)
def _walk(seed, M, P, D, due, days, today, lo, hi, valid, unwilling, write_lo, count_lo, starts,
          e_row, e_day, e_tod, e_kind, e_channel, e_outcome, e_date, used, counts):  # pragma: no cover (compiled)
    """Walk every account's overdue days from origination; write the events at local time
    ``write_lo[i]`` or later from ``starts[i]`` (``used[i]`` of them) and count the book's
    counters (``counts``: rows × 14, see :func:`simulate`) over those at ``count_lo[i]`` or
    later (the ledger's look-back; ``write_lo ≤ count_lo``). The draws do not depend on what
    is written: both histories come from one process."""
    np.random.seed(seed)
    ch = np.empty(_MAX_DAY, np.int64)
    out = np.empty(_MAX_DAY, np.int64)
    kd = np.empty(_MAX_DAY, np.int64)
    pdate = np.empty(_MAX_DAY, np.int64)
    ech = np.empty(_MAX_DAY, np.int64)
    eout = np.empty(_MAX_DAY, np.int64)
    for i in range(M.shape[0]):
        d0 = today[i]
        k = starts[i]
        calls_today = connected = streak = calls7 = sms_today = 0
        last_conv = -1
        last_day = last_tod = NULL_TIME      # the last contact ever (written or not)
        made = kept = broken = broken30 = 0
        pending = False                  # a promise not yet kept or past its date + grace
        p_date = p_kept = 0
        for j in range(due[i]):
            e = days[i, j + 1] if j + 1 < due[i] else d0
            if M[i, j] == 0:            # current all the interval (payments only reduce): no contact
                continue
            for t in range(days[i, j] + 1, min(e, d0) + 1):
                # a pending promise resolves: kept on its payment's day, broken after its deadline
                if pending:
                    if p_kept != NULL_TIME and t > p_kept:
                        pending = False
                    elif p_kept == NULL_TIME and t > p_date + GRACE_DAYS:
                        pending = False
                dpd = _state(M, P, D, due, days, i, t, j)
                if dpd <= 0:
                    continue
                # the payment ahead in this interval (a late payment: a cure or a stay)
                pay_ahead = NULL_TIME
                pay_today = False           # no promise on a payment's day (it may come before it)
                if j + 1 < due[i] and D[i, j + 1] != NULL_TIME:
                    pay_ahead = D[i, j + 1] if D[i, j + 1] > t else NULL_TIME
                    pay_today = D[i, j + 1] == t
                c = 0
                if dpd <= 10:
                    if (dpd - 1) % 3 == 0:
                        ch[c] = SMS; out[c] = DELIVERED if np.random.random() < 0.95 else FAILED; c += 1
                    if (dpd - 2) % 3 == 0:
                        ch[c] = VOICE_BOT
                        out[c] = RIGHT_PARTY if valid[i] and np.random.random() < REACH_BOT else _failed(valid[i])
                        c += 1
                else:
                    if dpd % 7 == 0:
                        ch[c] = SMS; out[c] = DELIVERED if np.random.random() < 0.95 else FAILED; c += 1
                    if dpd > 30 and (dpd - 31) % 14 == 0:
                        ch[c] = FIELD_VISIT; out[c] = RIGHT_PARTY if np.random.random() < REACH_VISIT else NO_ANSWER
                        c += 1
                    n_calls = min(np.random.poisson(CALLS_M1 if dpd <= 30 else CALLS_M2), MAX_CALLS)
                    for _ in range(n_calls):
                        ch[c] = PHONE
                        out[c] = RIGHT_PARTY if valid[i] and np.random.random() < REACH else _failed(valid[i])
                        c += 1
                # the day's events, in order; a promise follows the first conversation
                m = 0
                promised = False
                for x in range(c):
                    kd[m] = CONTACT
                    pdate[m] = NULL_TIME
                    ech[m], eout[m] = ch[x], out[x]
                    m += 1
                    if out[x] == RIGHT_PARTY and not pending and not promised and not pay_today:
                        payer = pay_ahead != NULL_TIME
                        p = PROMISE_PAYER if payer else PROMISE_OTHER * (0.1 if unwilling[i] else 1.0)
                        if np.random.random() < p:
                            promised = True
                            if payer:
                                date = max(pay_ahead + np.random.randint(-2, 4), t + 1)
                            else:
                                date = t + 1 + np.random.randint(0, 7)
                            kd[m] = PROMISE
                            pdate[m] = date
                            ech[m], eout[m] = -1, -1
                            m += 1
                # placed on the day in order, stratified: never two at one instant
                start = lo[i] if t == d0 else _OPENS
                span = (hi[i] if t == d0 else _CLOSES) - start
                for x in range(m):
                    u = 0.05 + 0.85 * np.random.random()
                    tod = start + int(span * (x + u) / m)
                    tod = (tod // _US_SEC) * _US_SEC
                    local = t * _US_DAY + tod
                    slot = -1
                    if local >= write_lo[i]:
                        slot = k
                        e_row[k] = i; e_day[k] = t; e_tod[k] = tod
                        e_kind[k] = kd[x]; e_channel[k] = ech[x]; e_outcome[k] = eout[x]; e_date[k] = pdate[x]
                        k += 1
                    counted = local >= count_lo[i]
                    if kd[x] == CONTACT:
                        last_day, last_tod = t, tod
                        if not counted:
                            continue
                        cx, ox = ech[x], eout[x]
                        if cx == PHONE or cx == VOICE_BOT:
                            if t == d0:
                                calls_today += 1
                                if ox == RIGHT_PARTY:
                                    connected += 1
                            if t > d0 - 7:
                                calls7 += 1
                            if ox == RIGHT_PARTY:
                                streak = 0
                                last_conv = slot
                            else:
                                streak += 1
                        elif cx == SMS:
                            if t == d0 and ox != FAILED:
                                sms_today += 1
                    else:
                        # the ledger's rule on the path: the first payment after the promise's
                        # day keeps it if it comes by the date plus the grace day
                        pending = True
                        p_date = pdate[x]
                        p_kept = NULL_TIME
                        for jj in range(j + 1, due[i]):
                            if D[i, jj] != NULL_TIME and D[i, jj] > t:
                                if D[i, jj] <= p_date + GRACE_DAYS:
                                    p_kept = D[i, jj]
                                break
                        if not counted:
                            continue
                        # the ledger's 90- and 30-day counters: made on its day, kept on its
                        # payment's, broken the day after its deadline
                        if t > d0 - 90:
                            made += 1
                        if p_kept != NULL_TIME:
                            if p_kept > d0 - 90:
                                kept += 1
                        elif d0 > p_date + GRACE_DAYS:
                            if p_date + GRACE_DAYS + 1 > d0 - 90:
                                broken += 1
                            if p_date + GRACE_DAYS + 1 > d0 - 30:
                                broken30 += 1
        used[i] = k - starts[i]
        is_open = pending and p_kept == NULL_TIME and d0 <= p_date + GRACE_DAYS
        counts[i, 0] = calls_today
        counts[i, 1] = connected
        counts[i, 2] = streak
        counts[i, 3] = calls7
        counts[i, 4] = sms_today
        counts[i, 5] = last_conv
        counts[i, 6] = made
        counts[i, 7] = kept
        counts[i, 8] = broken
        counts[i, 9] = broken30
        counts[i, 10] = 1 if is_open else 0
        counts[i, 11] = p_date if is_open else NULL_TIME
        counts[i, 12] = last_day
        counts[i, 13] = last_tod


@dataclass
class Collection:
    """The collection events of a chunk (one per row, sorted by account and instant) and the
    book's counters read off them."""

    clock: hist.Clock
    row: np.ndarray
    day: np.ndarray              # local day
    tod: np.ndarray              # µs after local midnight, whole seconds
    kind: np.ndarray             # CONTACT or PROMISE
    channel: np.ndarray          # contact_channel code (−1: a promise)
    outcome: np.ndarray          # contact_outcome code (−1: a promise)
    promise_day: np.ndarray      # local day (NULL_TIME: a contact)
    call_attempts_today: np.ndarray
    connected_calls_today: np.ndarray
    consecutive_failed_attempts: np.ndarray
    calls_7d: np.ndarray
    sms_today: np.ndarray
    last_conversation_at: np.ndarray     # NULL_TIME: none in the ledger's look-back
    promises_made_90d: np.ndarray
    promises_kept_90d: np.ndarray
    promises_broken_90d: np.ndarray
    promises_broken_30d: np.ndarray
    promise_open: np.ndarray             # bool
    promise_date: np.ndarray             # local day of the open promise (NULL_TIME: none)
    last_contact_at: np.ndarray          # the last contact ever, written or not (NULL_TIME: none)

    @property
    def at(self) -> np.ndarray:
        """Each event's instant (µs UTC, whole seconds): computed when the events are written
        (the book needs only the last conversation's)."""
        return hist.seconds(self.clock.instant(self.row, self.day, self.tod))


def lookback_us() -> int:
    """How far back the ledger reads contacts and promises at the snapshot with the default
    :class:`~kernel.ledger.StateSettings` (183 days): the book's counters and the recent
    history's contacts and promises are those at or after ``snapshot − lookback_us()``."""
    from ..ledger.state import StateSettings
    return StateSettings().lookback_us


def simulate(seed: int, clock: hist.Clock, path_missed: np.ndarray, path_paid: np.ndarray, pay_day: np.ndarray,
             due: np.ndarray, days: np.ndarray, phone_valid: np.ndarray, unwilling: np.ndarray,
             history: str = "recent") -> Collection:
    """Run the collection process of a chunk along its paths, from origination. ``pay_day``:
    the local day of each month's payment (NULL_TIME: none; no later than today), ``days``
    the due days, ``unwilling`` the accounts whose arrears are unwillingness to pay (they
    rarely promise without paying). ``history``: the events kept — ``"recent"``, those the
    ledger reads back at the snapshot (:func:`lookback_us`), or ``"full"``, every one since
    origination. The process, its draws and the counters do not depend on it."""
    if history not in HISTORIES:
        raise ValueError(f"history: expected one of {', '.join(HISTORIES)}, got {history!r}")
    n = due.shape[0]
    i64 = lambda x: np.ascontiguousarray(x, np.int64)  # noqa: E731
    M, P, D, due, days, today = (i64(path_missed), i64(path_paid), i64(pay_day), i64(due), i64(days),
                                 i64(clock.today))
    if days.shape[1] == 0:
        days = np.zeros((n, 1), np.int64)
        M, P, D = np.zeros((n, 1), np.int64), np.zeros((n, 1), np.int64), np.full((n, 1), NULL_TIME, np.int64)
    # the ledger's look-back in each debtor's local time (events lie on office time, away
    # from the small hours in which clocks change, so local order is the instants' order)
    cut = np.full(n, clock.snapshot - lookback_us(), np.int64)
    count_lo = cut + utc_offsets(clock.zone_names, clock.zone_of, cut) if n else cut
    write_lo = count_lo if history == "recent" else np.full(n, np.iinfo(np.int64).min // 2, np.int64)
    bound = np.zeros(n, np.int64)
    _bound(M, P, D, due, days, today, write_lo, bound)
    starts = np.cumsum(bound) - bound
    total = int(bound.sum())
    e_row, e_day = np.zeros(total, np.int32), np.zeros(total, np.int32)
    e_tod, e_date = np.zeros(total, np.int64), np.zeros(total, np.int64)
    e_kind, e_channel, e_outcome = (np.zeros(total, np.int8) for _ in range(3))
    used = np.zeros(n, np.int64)
    counts = np.zeros((n, 14), np.int64)
    lo, hi = clock.call_window()
    _walk(int(seed), M, P, D, due, days, today, i64(lo), i64(hi), np.ascontiguousarray(phone_valid, np.bool_),
          np.ascontiguousarray(unwilling, np.bool_), write_lo, count_lo, starts, e_row, e_day, e_tod, e_kind,
          e_channel, e_outcome, e_date, used, counts)
    keep = np.repeat(starts, used) + (np.arange(int(used.sum())) - np.repeat(np.cumsum(used) - used, used))
    row, day, tod = e_row[keep].astype(np.int64), e_day[keep].astype(np.int64), e_tod[keep]
    last = np.full(n, NULL_TIME, np.int64)
    has = np.flatnonzero(counts[:, 5] >= 0)
    pick = counts[has, 5]                       # the last conversation's slot in the walk's arrays
    last[has] = hist.seconds(clock.instant(has, e_day[pick].astype(np.int64), e_tod[pick]))
    contact = np.full(n, NULL_TIME, np.int64)
    has = np.flatnonzero(counts[:, 12] != NULL_TIME)
    contact[has] = hist.seconds(clock.instant(has, counts[has, 12], counts[has, 13]))
    return Collection(clock, row, day, tod, e_kind[keep], e_channel[keep], e_outcome[keep], e_date[keep],
                      counts[:, 0], counts[:, 1], counts[:, 2], counts[:, 3], counts[:, 4], last, counts[:, 6],
                      counts[:, 7], counts[:, 8], counts[:, 9], counts[:, 10].astype(bool), counts[:, 11], contact)
