"""GPS pings reduced to state on ingest: the last ping and the offline periods, no ping rows.

A fleet of a million cars pinging once a minute sends ~17,000 pings a second; storing each
would store positions (personal data) nobody needs and swamp the store. Per car the ledger
keeps ``gps_last`` (first ping, last ping, the last position for at most
``gps_position_hours``) and ``gps_gaps``: the periods between two pings further apart than
``gps_gap_minutes`` — the state changes online → offline → online. From these the last ping
at or before any moment is known (exactly, or within one gap: see
:func:`kernel.ledger.state.gps_last_ping`).

Pings are idempotent by construction: a ping already seen lies inside an online period or on
its edge and changes nothing. A late ping (older than the car's last) falls into an offline
period and splits it, or extends the first ping backwards.
"""
from __future__ import annotations

import numpy as np

from .events import EventRows

__all__ = ["reduce_pings"]


def reduce_pings(store, cur, pings: EventRows, gap_us: int, keep_position: bool) -> int:
    """Fold ``pings`` into the store's GPS tables inside transaction ``cur``; returns the
    number of cars whose state changed."""
    if pings.n == 0:
        return 0
    order = np.lexsort((pings.at, pings.account_id.astype(str)))
    account, at = pings.account_id[order], pings.at[order]
    lat, lon = pings.lat[order], pings.lon[order]
    starts = np.flatnonzero(np.r_[True, account[1:] != account[:-1]])
    ends = np.r_[starts[1:], account.shape[0]]
    names = account[starts].tolist()
    stored = store.gps_rows(cur, names)
    last_rows, added, removed = [], [], []
    for name, lo, hi in zip(names, starts.tolist(), ends.tolist()):
        times = at[lo:hi].tolist()
        have = stored.get(name)
        if have is None:
            first, last = times[0], times[0]
            gaps: list[tuple[int, int]] = []
            late = False
        else:
            first, last = have
            late = times[0] < last
            gaps = store.gps_gaps_of(cur, name) if late else []
        before = (first, last)
        original = list(gaps)
        new_gaps: list[tuple[int, int]] = []
        for t in times:
            if t >= last:
                if t - last > gap_us:
                    new_gaps.append((last, t))
                last = t
            elif t < first:
                if first - t > gap_us:
                    gaps.append((t, first))
                first = t
            else:                               # inside the history: split the gap holding t
                for g, (a, b) in enumerate(gaps):
                    if a < t < b:
                        gaps.pop(g)
                        if t - a > gap_us:
                            gaps.append((a, t))
                        if b - t > gap_us:
                            gaps.append((t, b))
                        break
        if late:
            kept = set(gaps)
            removed.extend((name, a) for a, b in original if (a, b) not in kept)
            added.extend((name, a, b) for a, b in gaps if (a, b) not in set(original))
        added.extend((name, a, b) for a, b in new_gaps)
        newest = keep_position and times[-1] == last and lat[hi - 1] == lat[hi - 1]
        if (first, last) != before or have is None or newest:
            position = (last, float(lat[hi - 1]), float(lon[hi - 1])) if newest else (None, None, None)
            last_rows.append((name, first, last, *position))
    store.write_gps(cur, last_rows, added, removed)
    return len(last_rows)
