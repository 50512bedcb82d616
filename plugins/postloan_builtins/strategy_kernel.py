"""The tiered strategy's actions wanted, compiled: one pass over the accounts for one account
or a million (:meth:`postloan_builtins.collection.TieredStrategy.plan` reads the columns, this
decides). Per account, in plan order (``KINDS``): an SMS and a voice bot for the mild
channel (an open promise: the SMS reminder only), phone calls for the medium channel and the
severe tier, a field visit, a third-party contact when the debtor is unreachable, a legal
review, a repossession, a disposal — each held back by an open dispute or promise as
``TieredStrategy`` documents; an account's phone calls come ``calls_per_day`` times (clamped to
the strategy's limits), the k-th ``k × spacing`` after now.

One set of steps (:func:`_bits`, :func:`_count`, :func:`_emit`) serves both entry points:
:func:`plan_actions` over columns (a batch) and :func:`plan_one` over one account's scalars (a
request: no one-element arrays to build, ≈ 1 µs each). The strategy's settings come as one
int64 array (``P_*`` positions)."""
from __future__ import annotations

from kernel.codegen.cache import configure_numba_cache

configure_numba_cache()          # before any kernel here is defined: one cache folder per code version

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

from kernel.localtime import NULL_TIME  # noqa: E402

#: positions in the settings array: failed attempts that make a debtor unreachable, whether an
#: open dispute / promise holds collection back (0/1), µs within which a field visit is not
#: repeated (0: always), the fewest and most calls, the PHONE action code, µs between calls
P_UNREACHABLE, P_HOLD_DISPUTE, P_HOLD_PROMISE, P_VISIT_EVERY_US, P_FEWEST, P_MAX_CALLS, P_PHONE, P_SPACING_US = range(8)
N_PARAMS = 8


@njit(cache=True, inline="always")
def _bits(tier, channel, legal, phone_valid, failed_attempts, third, repossessed, repossess, dispose, channel_valid,
          open_disputes, promise_open, last_visit_us, params, now_us):
    """One account's wanted action kinds as 8 bits (bit j: ``kinds[j]``), from its values as
    the batch's accessors give them (codes, flags, counts, µs). Without branches (0/1 integers
    and bitwise operators): an account's conditions are as good as random to a branch
    predictor, and a mispredicted branch costs more than the test."""
    ok = np.int64(phone_valid)
    unreachable = (1 - ok) | np.int64(failed_attempts >= params[P_UNREACHABLE])
    disputed = np.int64(open_disputes > 0) & np.int64(params[P_HOLD_DISPUTE] != 0)
    promised = np.int64(promise_open) & np.int64(params[P_HOLD_PROMISE] != 0) & (1 - disputed)
    every = params[P_VISIT_EVERY_US]
    visited = np.int64(every > 0) & np.int64(last_visit_us != NULL_TIME) & np.int64(now_us - last_visit_us < every)
    go = 1 - (disputed | promised)
    t = tier
    c = channel
    kept = 1 - np.int64(repossessed)
    sms_voice = np.int64(c == 1) & ok & go
    return ((sms_voice | (promised & np.int64(t >= 1) & ok))
            | sms_voice << 1
            | ((np.int64(c == 2) | np.int64(t == 3)) & ok & go) << 2
            | (np.int64(c == 3) & kept & (1 - visited) & go) << 3
            | (np.int64(t >= 2) & unreachable & np.int64(third) & go) << 4
            | (np.int64(legal) & go) << 5
            | (np.int64(repossess) & kept & go) << 6
            | (np.int64(dispose) & np.int64(channel_valid) & go) << 7)


@njit(cache=True, inline="always")
def _calls(calls_per_day, params):
    """Phone calls per day: ``calls_per_day`` within the fewest and most."""
    return min(max(np.int64(calls_per_day), params[P_FEWEST]), params[P_MAX_CALLS])


@njit(cache=True, inline="always")
def _count(bits, calls, kinds, phone):
    """How many actions ``bits`` make: a phone call ``calls`` times, every other kind once."""
    total = 0
    for j in range(8):                             # without branches too: most accounts want nothing
        total += (bits >> j & 1) * (calls if kinds[j] == phone else 1)
    return total


@njit(cache=True, inline="always")
def _emit(bits, i, calls, kinds, phone, now_us, spacing_us, rows, action, earliest, out):
    """Write account ``i``'s actions from position ``out`` on, in plan order; the next position."""
    for j in range(8):
        if bits >> j & 1:
            reps = calls if kinds[j] == phone else 1
            for k in range(reps):
                rows[out] = i
                action[out] = kinds[j]
                earliest[out] = now_us + k * spacing_us
                out += 1
    return out


@njit(cache=True)
def plan_actions(tier, channel, legal, phone_valid, failed_attempts, third, repossessed, repossess, dispose,
                 channel_valid, open_disputes, promise_open, last_visit_us, calls_per_day, kinds, params, now_us):
    """(rows, action codes, earliest µs) of every wanted action, account by account in plan
    order; a phone call :func:`_calls` times, spaced ``params[P_SPACING_US]`` from now."""
    n = tier.shape[0]
    phone = params[P_PHONE]
    wanted = np.empty(n, np.int64)
    total = 0
    for i in range(n):
        bits = _bits(tier[i], channel[i], legal[i], phone_valid[i], failed_attempts[i], third[i], repossessed[i],
                     repossess[i], dispose[i], channel_valid[i], open_disputes[i], promise_open[i], last_visit_us[i],
                     params, now_us)
        wanted[i] = bits
        total += _count(bits, _calls(calls_per_day[i], params), kinds, phone)
    rows = np.empty(total, np.int64)
    action = np.empty(total, np.int8)
    earliest = np.empty(total, np.int64)
    out = 0
    for i in range(n):
        bits = wanted[i]
        if bits:
            out = _emit(bits, i, _calls(calls_per_day[i], params), kinds, phone, now_us, params[P_SPACING_US], rows,
                        action, earliest, out)
    return rows, action, earliest


@njit(cache=True)
def plan_one(tier, channel, legal, phone_valid, failed_attempts, third, repossessed, repossess, dispose,
             channel_valid, open_disputes, promise_open, last_visit_us, calls_per_day, kinds, params, now_us):
    """:func:`plan_actions` for one account given as scalars: the same compiled steps, without
    one-element arrays to build; every row is 0."""
    phone = params[P_PHONE]
    bits = _bits(tier, channel, legal, phone_valid, failed_attempts, third, repossessed, repossess, dispose,
                 channel_valid, open_disputes, promise_open, last_visit_us, params, now_us)
    calls = _calls(calls_per_day, params)
    total = _count(bits, calls, kinds, phone)
    rows = np.zeros(total, np.int64)
    action = np.empty(total, np.int8)
    earliest = np.empty(total, np.int64)
    _emit(bits, 0, calls, kinds, phone, now_us, params[P_SPACING_US], rows, action, earliest, 0)
    return rows, action, earliest
