"""The tiered strategy's actions wanted, compiled: one pass over the accounts for one account
or a million (:meth:`postloan_builtins.collection.TieredStrategy.plan` reads the columns, this
decides). Per account, in plan order (:data:`KINDS`): an SMS and a voice bot for the mild
channel (an open promise: the SMS reminder only), phone calls for the medium channel and the
severe tier, a field visit, a third-party contact when the debtor is unreachable, a legal
review, a repossession, a disposal — each held back by an open dispute or promise as
``TieredStrategy`` documents; an account's phone calls come ``calls[row]`` times, the k-th
``k × spacing`` after now. The same arithmetic as the NumPy steps it replaced (one-element
arrays cost ≈ 1 µs a step at one account: ≈ 50 steps)."""
from __future__ import annotations

from kernel.codegen.cache import configure_numba_cache

configure_numba_cache()          # before any kernel here is defined: one cache folder per code version

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402


@njit(cache=True)
def _wanted(i, tier, channel, legal, phone_ok, unreachable, third, repossessed, repossess, dispose, disputed,
            promised_in, visited):
    """Account ``i``'s wanted action kinds as 8 bits (bit j: :data:`KINDS` [j])."""
    disputed_i = disputed[i]
    promised = promised_in[i] and not disputed_i
    go = not (disputed_i or promised)
    ok = phone_ok[i]
    t = tier[i]
    c = channel[i]
    sms_voice = c == 1 and ok and go
    bits = 0
    if sms_voice or (promised and t >= 1 and ok):
        bits |= 1
    if sms_voice:
        bits |= 2
    if (c == 2 or t == 3) and ok and go:
        bits |= 4
    if c == 3 and not repossessed[i] and not visited[i] and go:
        bits |= 8
    if t >= 2 and unreachable[i] and third[i] and go:
        bits |= 16
    if legal[i] and go:
        bits |= 32
    if repossess[i] and not repossessed[i] and go:
        bits |= 64
    if dispose[i] and go:
        bits |= 128
    return bits


@njit(cache=True)
def plan_actions(tier, channel, legal, phone_ok, unreachable, third, repossessed, repossess, dispose, disputed,
                 promised, visited, calls, kinds, phone, now_us, spacing_us):
    """(rows, action codes, earliest µs) of every wanted action, account by account in plan
    order; a phone call ``calls[row]`` times (0: none), spaced ``spacing_us`` from now."""
    n = tier.shape[0]
    wanted = np.empty(n, np.int64)
    total = 0
    for i in range(n):
        bits = _wanted(i, tier, channel, legal, phone_ok, unreachable, third, repossessed, repossess, dispose,
                       disputed, promised, visited)
        wanted[i] = bits
        if bits:
            for j in range(8):
                if bits >> j & 1:
                    total += calls[i] if kinds[j] == phone else 1
    rows = np.empty(total, np.int64)
    action = np.empty(total, np.int8)
    earliest = np.empty(total, np.int64)
    out = 0
    for i in range(n):
        bits = wanted[i]
        if not bits:
            continue
        for j in range(8):
            if bits >> j & 1:
                reps = calls[i] if kinds[j] == phone else 1
                for k in range(reps):
                    rows[out] = i
                    action[out] = kinds[j]
                    earliest[out] = now_us + k * spacing_us
                    out += 1
    return rows, action, earliest
