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


@njit(cache=True, inline="always")
def _wanted(i, tier, channel, legal, phone_ok, unreachable, third, repossessed, repossess, dispose, disputed,
            promised_in, visited):
    """Account ``i``'s wanted action kinds as 8 bits (bit j: :data:`KINDS` [j]). Without
    branches (0/1 integers and bitwise operators): an account's conditions are as good as
    random to a branch predictor, and a mispredicted branch costs more than the test."""
    disputed_i = np.int64(disputed[i])
    promised = np.int64(promised_in[i]) & (1 - disputed_i)
    go = 1 - (disputed_i | promised)
    ok = np.int64(phone_ok[i])
    t = tier[i]
    c = channel[i]
    kept = 1 - np.int64(repossessed[i])
    sms_voice = np.int64(c == 1) & ok & go
    return ((sms_voice | (promised & np.int64(t >= 1) & ok))
            | sms_voice << 1
            | ((np.int64(c == 2) | np.int64(t == 3)) & ok & go) << 2
            | (np.int64(c == 3) & kept & (1 - np.int64(visited[i])) & go) << 3
            | (np.int64(t >= 2) & np.int64(unreachable[i]) & np.int64(third[i]) & go) << 4
            | (np.int64(legal[i]) & go) << 5
            | (np.int64(repossess[i]) & kept & go) << 6
            | (np.int64(dispose[i]) & go) << 7)


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
        for j in range(8):                         # without branches too: most accounts want nothing
            total += (bits >> j & 1) * (calls[i] if kinds[j] == phone else 1)
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
