"""When the things a synthetic book counts happened: the timing behind its counters.

A book's counters (calls today, the last conversation, promises kept and broken, the last
payment, the tracker's last ping…) are what the ledger derives from an account's events
(:mod:`kernel.ledger.state`, as of an instant, in the debtor's local calendar). The
payments come from the monthly process (:mod:`kernel.synth.process`); for the contacts,
promises and the tracker the book generator (:mod:`kernel.synth.book`) draws its counters,
then this module draws *when* each counted thing happened — within the DPD path: calls
while overdue, promises after the first arrears, no broken promise where a payment would
keep it — vectorized per chunk, so that

1. the counters are mutually consistent (a conversation today means the streak of failed
   attempts started after it; a kept promise needs a payment, which may be the last one…),
   and the book is corrected where its independent draws were not;
2. :mod:`kernel.synth.events` can write the events behind the book from the same draws, and
   the state derived from them equals the book's counters (tests/ledger/test_synth_events.py).

Everything is in whole seconds (µs since the epoch, UTC) or local days (days since the
epoch, in the debtor's zone). Rules follow :class:`kernel.ledger.StateSettings`' defaults:
a promise is kept by payments up to one day after its date (``promise_grace_days`` 1), a
tracker is OFFLINE after 2 hours, a tamper alert counts for 30 days.

Calls. Today's attempts fall in the local calling window of the snapshot's day (from 08:00,
or the two hours before the snapshot where that is earlier, to the snapshot or 21:00);
earlier calls fall on *office time* (08:00–20:00) of earlier days, placed by an office
coordinate ``x``: ``x`` office days before today's start (``x`` in [0, 6) is the 6 days
before today, which ``calls_7d`` counts with today). Sequences are stratified (the i-th of
``n`` in the i-th ``n``-th of its span), so they are ordered and never collide.

Promises. The 90 days before today are cut into 15 slots of 6 days; a closed promise (kept
or broken) takes one slot: made on its second or third day, due 0–2 days later, so its date
plus the grace ends inside the slot; a kept promise is paid in full inside its window. Slots
10–14 end in the last 30 days (a broken promise there is broken in 30 days), slots 0–9
before. A broken promise never shares its slot with a payment, so no payment can keep it.
The open promise is made in the last 7 days (during the last conversation when there was
one), after every payment. No promise is made before the account was first overdue.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..hookspecs import NULL_TIME, utc_offsets

US_SEC = 1_000_000
US_MIN = 60 * US_SEC
US_HOUR = 60 * US_MIN
US_DAY = 24 * US_HOUR

#: office hours of earlier days (local): calls, visits and messages are placed in them
OFFICE_OPENS, OFFICE_CLOSES = 8 * US_HOUR, 20 * US_HOUR
#: days of the rolling 7-day call count before today
WINDOW_DAYS = 6
#: promise slots: SLOTS slots of SLOT_DAYS days end the day before today
SLOTS, SLOT_DAYS = 15, 6
#: slots from this one on end in the last 30 days
RECENT_SLOT = 10
#: a tracker silent this long or longer reports no geofence exits in 30 days (its exits
#: must lie in the 30 local days and before its last ping, with a day of margin)
EXITS_NEED_PING_WITHIN_H = 26 * 24.0
#: a TAMPERED tracker's alert (sent with its last ping) is at most this old: the state counts
#: an alert for 30 local days (``gps_tamper_days``), two days of margin
TAMPER_WITHIN_H = 28 * 24.0


def seconds(us: np.ndarray) -> np.ndarray:
    """Instants floored to whole seconds."""
    return (np.asarray(us, np.int64) // US_SEC) * US_SEC


@dataclass
class Clock:
    """Each account's local calendar at the snapshot instant."""

    zone_names: list[str]
    zone_of: np.ndarray        # zone index per account
    snapshot: int              # µs UTC
    today: np.ndarray          # local day (days since the epoch) at the snapshot
    time_of_day: np.ndarray    # µs since local midnight at the snapshot

    @classmethod
    def at(cls, snapshot_us: int, zone_names: list[str], zone_of: np.ndarray) -> "Clock":
        n = zone_of.shape[0]
        t = np.full(n, snapshot_us, np.int64)
        local = t + utc_offsets(zone_names, zone_of, t)
        today = local // US_DAY
        return cls(zone_names, zone_of, int(snapshot_us), today, local - today * US_DAY)

    def instant(self, rows: np.ndarray, day: np.ndarray, tod: np.ndarray) -> np.ndarray:
        """UTC µs of local ``day`` at ``tod`` µs after midnight, in the zones of ``rows``
        (two steps: the offset at the local time read as UTC, then at the instant found;
        exact away from the small hours in which clocks change)."""
        local = np.asarray(day, np.int64) * US_DAY + np.asarray(tod, np.int64)
        if local.shape[0] == 0:
            return local
        zones = self.zone_of[rows]
        guess = local - utc_offsets(self.zone_names, zones, local)
        return local - utc_offsets(self.zone_names, zones, guess)

    def day_of(self, rows: np.ndarray, instants: np.ndarray) -> np.ndarray:
        """The local day of each instant in the zones of ``rows``."""
        instants = np.asarray(instants, np.int64)
        if instants.shape[0] == 0:
            return instants
        return (instants + utc_offsets(self.zone_names, self.zone_of[rows], instants)) // US_DAY

    def call_window(self) -> tuple[np.ndarray, np.ndarray]:
        """Today's calling window per account, µs after local midnight: [lo, hi)."""
        hi = np.minimum(self.time_of_day, 21 * US_HOUR)
        lo = np.clip(np.minimum(8 * US_HOUR, hi - 2 * US_HOUR), 0, None)
        return lo, hi


def office_instant(clock: Clock, rows: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The instant ``x`` office days before the start of today: local day today − ⌊x⌋ − 1,
    at 20:00 minus the fraction of ``x`` in 12-hour days (whole seconds)."""
    whole = np.floor(x)
    day = clock.today[rows] - whole.astype(np.int64) - 1
    tod = (OFFICE_CLOSES - (x - whole) * (OFFICE_CLOSES - OFFICE_OPENS)).astype(np.int64)
    return seconds(clock.instant(rows, day, tod))


def today_instant(clock: Clock, rows: np.ndarray, i: np.ndarray, u: np.ndarray, count: np.ndarray) -> np.ndarray:
    """The ``i``-th of ``count`` events in today's calling window (jitter ``u`` in [0, 1))."""
    lo, hi = clock.call_window()
    tod = lo[rows] + ((hi - lo)[rows] * (i + u) / np.maximum(count, 1)).astype(np.int64)
    return seconds(clock.instant(rows, clock.today[rows], tod))


def day_instant(clock: Clock, rows: np.ndarray, day: np.ndarray, u: np.ndarray,
                opens: int = 7 * US_HOUR, closes: int = 22 * US_HOUR) -> np.ndarray:
    """An instant on local ``day`` between ``opens`` and ``closes`` (before the snapshot
    when ``day`` is today: in the first nine tenths of the day so far)."""
    today = day >= clock.today[rows]
    so_far = clock.time_of_day[rows]
    tod = np.where(today, u * 0.9 * so_far, opens + u * (closes - opens)).astype(np.int64)
    return seconds(clock.instant(rows, day, tod))


def ragged(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, j) for ``counts[row]`` items per row: the row of each item and its index in it."""
    counts = np.asarray(counts, np.int64)
    rows = np.repeat(np.arange(counts.shape[0]), counts)
    starts = np.cumsum(counts) - counts
    return rows, np.arange(rows.shape[0]) - starts[rows]


# --- calls ---------------------------------------------------------------------------------
@dataclass
class Calls:
    """Call attempts (PHONE) behind the book's contact counters."""

    attempts_today: np.ndarray
    connected_today: np.ndarray
    failed_streak: np.ndarray       # consecutive_failed_attempts (fixed)
    calls_7d: np.ndarray
    spoke: np.ndarray               # a conversation within the look-back (fixed)
    last_conversation: np.ndarray   # µs, NULL_TIME: none
    #: where the last conversation is: 0 none, 1 today, 2 in the 6 days before, 3 earlier
    where: np.ndarray
    #: its index: today, in time order; in the 6 days before, by recency (0 = most recent)
    index: np.ndarray
    jitter: np.ndarray              # its place within its stratum
    older: np.ndarray               # failed attempts before the 6 days (after the conversation)
    older_span: np.ndarray          # office days before the 6 days they span (the conversation at the end)

    @property
    def before_today(self) -> np.ndarray:
        """Attempts in the 6 days before today."""
        return self.calls_7d - self.attempts_today


def calls(rng: np.random.Generator, clock: Clock, attempts: np.ndarray, connected: np.ndarray,
          failed_draw: np.ndarray, calls_7d: np.ndarray, spoke_draw: np.ndarray, gap_s: np.ndarray,
          overdue_days: np.ndarray) -> Calls:
    """Make the book's independent contact draws consistent and place the last conversation.

    ``failed_draw``: the drawn streak of failed attempts; ``spoke_draw``: whether the debtor
    was reached within the look-back; ``gap_s``: seconds from the snapshot back to the last
    conversation, as drawn (used when it must lie before the 7-day window). Kept as drawn:
    attempts and connected calls today, calls in 7 days. Fixed: a connected call today is
    the last conversation and the streak counts only the failures after it; with none today
    the streak covers every attempt today and the conversation lies before them; a debtor
    never reached has failed every attempt. Calls are made only while the account is overdue:
    ``overdue_days`` is the number of local days before today it has been (calls on earlier
    days are dropped, a conversation or failed streak that would lie before is cut)."""
    n = attempts.shape[0]
    a, c, w = attempts.astype(np.int64), connected.astype(np.int64), calls_7d.astype(np.int64)
    # no call before today unless overdue all the 6 days before; before them, only as far back
    # as the account has been overdue (office days: a margin of one)
    w = np.where(overdue_days >= WINDOW_DAYS, w, a)
    room = np.asarray(overdue_days, np.float64) - WINDOW_DAYS - 1.0
    spoke_draw = spoke_draw & (room > 0.5)
    failed_draw = np.where(room > 0.5, failed_draw, np.minimum(failed_draw, w))
    before = w - a
    reached_today = c > 0
    spoke = spoke_draw | reached_today
    streak = failed_draw.astype(np.int64)
    streak = np.where(reached_today, np.minimum(streak, a - c), streak)
    earlier = spoke & ~reached_today
    streak = np.where(earlier & (a > 0), np.maximum(streak, a), streak)
    streak = np.where(~spoke, np.maximum(streak, w), streak)
    k = streak - a                                   # failures before today, after the conversation
    where = np.select([reached_today, earlier & (k < before), earlier], [1, 2, 3], 0).astype(np.int8)
    index = np.select([where == 1, where == 2], [a - streak - 1, k], 0).astype(np.int64)
    older = np.select([where == 3, ~spoke], [k - before, streak - w], 0).astype(np.int64)
    jitter = rng.uniform(0.05, 0.9, n)
    gap_days = np.asarray(gap_s, np.float64) / 86_400
    older_span = np.where(where == 3, gap_days + 0.25 * older, older + 1.0)
    older_span = np.minimum(older_span, np.maximum(room, 0.5))
    last = np.full(n, NULL_TIME, np.int64)
    for code, place in ((1, lambda r: today_instant(clock, r, index[r], jitter[r], a[r])),
                        (2, lambda r: office_instant(clock, r, WINDOW_DAYS * (index[r] + jitter[r])
                                                     / np.maximum(before[r], 1))),
                        (3, lambda r: office_instant(clock, r, WINDOW_DAYS + older_span[r]))):
        rows = np.flatnonzero(where == code)
        last[rows] = place(rows)
    return Calls(a, c, streak, w, spoke, last, where, index, jitter, older, older_span)


# --- promises and payments -----------------------------------------------------------------
@dataclass
class Promises:
    """Promises to pay behind the book's promise counters, and the payments that kept them."""

    made: np.ndarray             # promises_made_90d (the open one included)
    kept: np.ndarray
    broken: np.ndarray
    broken_30d: np.ndarray
    open: np.ndarray             # bool
    open_made: np.ndarray        # µs (NULL_TIME when none)
    #: the accounts with closed promises, and per account of them and slot (rows × SLOTS):
    rows: np.ndarray
    slot: np.ndarray             # 0 none, 1 kept, 2 broken
    made_at: np.ndarray          # µs
    promise_day: np.ndarray      # local day
    paid_at: np.ndarray          # µs of the payment that kept it (NULL_TIME: broken or none)
    amount: np.ndarray           # promised (and, when kept, paid)

    def last_paid(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Per account: the instant of its last payment that kept a promise (NULL_TIME: none)
        and its amount."""
        at = np.full(n, NULL_TIME, np.int64)
        amount = np.zeros(n)
        if self.rows.size:
            last = np.argmax(self.paid_at, axis=1)
            pick = np.arange(self.rows.size)
            at[self.rows] = self.paid_at[pick, last]
            amount[self.rows] = self.amount[pick, last]
        return at, amount


def _pick(rng_keys: np.ndarray, allowed: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Per row, ``count`` of the ``allowed`` slots with the highest keys (fewer when fewer
    are allowed)."""
    key = np.where(allowed, rng_keys, -np.inf)
    order = np.argsort(-key, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(key.shape[1])[None, :].repeat(key.shape[0], 0), axis=1)
    return allowed & (rank < count[:, None])


def promises(rng: np.random.Generator, clock: Clock, kept: np.ndarray, broken: np.ndarray, broken_30d: np.ndarray,
             open_promise: np.ndarray, delinquent: np.ndarray, first_day: np.ndarray, payment_days: np.ndarray,
             last_payment_at: np.ndarray, base_amount: np.ndarray, calls: Calls) -> Promises:
    """Place the closed promises in slots and the open one in the last 7 days.

    ``kept``, ``broken`` and ``broken_30d`` are the drawn counts of closed promises;
    ``first_day`` the first local day a promise may be made (the first day the account was
    overdue: no promise before); ``payment_days`` the local days of the instalment payments
    (rows × payments, NULL_TIME: none), whose slots hold no broken promise, the last one's
    slot no kept one before it; ``last_payment_at`` the last instalment payment's instant,
    which the open promise follows. Counts that do not fit are cut (young loans, accounts
    overdue only lately, many promises)."""
    n = kept.shape[0]
    rows = np.flatnonzero(kept + broken > 0)        # draws only for accounts with closed promises
    m = rows.shape[0]
    d0 = clock.today[rows]
    start = d0[:, None] - SLOTS * SLOT_DAYS + SLOT_DAYS * np.arange(SLOTS)[None, :]   # first day of each slot
    slot_index = np.arange(SLOTS)[None, :]
    pays = payment_days[rows]
    slots_paid = np.where(pays == NULL_TIME, -1, (pays - (d0[:, None] - SLOTS * SLOT_DAYS)) // SLOT_DAYS)
    pay_slot = slots_paid.max(axis=1, initial=-1)
    usable = (start >= first_day[rows, None]) & ~(open_promise[rows, None] & (slot_index == SLOTS - 1))
    no_payment = ~(slot_index[:, :, None] == slots_paid[:, None, :]).any(axis=2)
    keys = rng.random((m, SLOTS))
    recent = _pick(keys, usable & no_payment & (slot_index >= RECENT_SLOT), broken_30d[rows])
    old = _pick(keys, usable & no_payment & (slot_index < RECENT_SLOT), (broken - broken_30d)[rows])
    # current accounts keep their promises before their last instalment payment where they can
    before_payment = (~delinquent[rows])[:, None] & (slot_index < pay_slot[:, None])
    keep = _pick(keys + before_payment, usable & ~recent & ~old, kept[rows])
    slot = np.where(keep, 1, np.where(recent | old, 2, 0)).astype(np.int8)
    kept, broken_30d, broken = kept.copy(), broken_30d.copy(), broken.copy()
    kept[rows], broken_30d[rows] = keep.sum(1), recent.sum(1)
    broken[rows] = broken_30d[rows] + old.sum(1)

    made_day = start + 1 + rng.integers(0, 2, (m, SLOTS))
    lead = rng.integers(0, 3, (m, SLOTS))
    promise_day = made_day + lead
    pay_day = made_day + (rng.random((m, SLOTS)) * (lead + 1)).astype(np.int64)
    made_tod = (8 * US_HOUR + rng.random((m, SLOTS)) * 4 * US_HOUR).astype(np.int64)
    pay_tod = (13 * US_HOUR + rng.random((m, SLOTS)) * 7 * US_HOUR).astype(np.int64)
    share = rng.uniform(0.3, 1.0, (m, SLOTS))
    base = base_amount[rows, None]
    amount = np.where(delinquent[rows, None], np.maximum(np.round(base * share, -1), 10.0),
                      np.round(base, 2) + np.zeros((m, SLOTS)))
    made_at = np.full((m, SLOTS), NULL_TIME, np.int64)
    paid_at = np.full((m, SLOTS), NULL_TIME, np.int64)
    used = np.flatnonzero(slot.ravel() > 0)
    who = rows[used // SLOTS]
    made_at.ravel()[used] = seconds(clock.instant(who, made_day.ravel()[used], made_tod.ravel()[used]))
    paying = np.flatnonzero(slot.ravel() == 1)
    paid_at.ravel()[paying] = seconds(clock.instant(rows[paying // SLOTS], pay_day.ravel()[paying],
                                                    pay_tod.ravel()[paying]))

    # the open promise: during the last conversation when it was in the last 7 days, else
    # on office time of one of the 6 days before today
    open_made = np.full(n, NULL_TIME, np.int64)
    talks = np.flatnonzero(open_promise)
    spoke_at = calls.last_conversation[talks]
    recent_talk = (spoke_at != NULL_TIME) & (clock.day_of(talks, np.where(spoke_at == NULL_TIME, 0, spoke_at))
                                             >= clock.today[talks] - WINDOW_DAYS)
    x = rng.uniform(0.05, WINDOW_DAYS - 0.05, talks.shape[0])
    during = np.minimum(spoke_at + 30 * US_SEC, clock.snapshot - US_SEC)
    open_made[talks] = np.where(recent_talk, np.maximum(during, spoke_at), office_instant(clock, talks, x))
    # after the last instalment payment (a payment after it would count towards it)
    after = np.where(last_payment_at[talks] == NULL_TIME, open_made[talks], last_payment_at[talks] + US_MIN)
    open_made[talks] = np.minimum(np.maximum(open_made[talks], after), clock.snapshot - US_SEC)
    made = kept + broken + open_promise
    return Promises(made, kept, broken, broken_30d, open_promise, open_made, rows, slot, made_at, promise_day,
                    paid_at, amount)
