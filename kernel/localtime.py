"""Local time: the debtor's UTC offset at any instant, vectorized per distinct IANA zone.

Instants are int64 microseconds since the Unix epoch (UTC), dates int64 days since it;
:data:`NULL_TIME` is their null. :func:`utc_offsets` is what :class:`kernel.batches.ActionBatch`'s
local-time helpers (``local_day``, ``next_local_time``…) and the ledger's local days are built on.
"""
from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from typing import Sequence

import numpy as np

from .errors import PostloanError

__all__ = ["NULL_TIME", "US_PER_MINUTE", "US_PER_DAY", "utc_offsets", "known_zone", "listed_zones"]

#: the null instant / date in int64 columns (microseconds or days since the Unix epoch)
NULL_TIME = np.iinfo(np.int64).min
US_PER_MINUTE = 60_000_000
US_PER_DAY = 86_400_000_000


def utc_offsets(zone_names: Sequence[str], zone_of: np.ndarray, instants_us: np.ndarray,
                *, per_instant: bool = False) -> np.ndarray:
    """UTC offsets (µs) of ``instants_us`` in the zones ``zone_names[zone_of]``.

    Vectorized per distinct zone: each zone's transitions around the instants are found once
    with zoneinfo and cached (:func:`_zone_table`), then every instant is looked up with one
    ``searchsorted`` — or none, when the zone keeps one offset over the cached span (most of
    the world, China included, has no daylight saving time). ``per_instant`` asks zoneinfo
    for every instant instead (the reference the tests compare with). Raises
    :class:`PostloanError` naming an unknown zone or a row without one."""
    instants_us = np.asarray(instants_us, np.int64)
    zone_of = np.asarray(zone_of)
    n = instants_us.shape[0]
    out = np.empty(n, np.int64)
    if n == 0:
        return out
    small = n <= 64                      # a request's few actions: Python's min/max are cheaper
    zones = zone_of.tolist() if small else None
    if (min(zones) if small else int(zone_of.min())) < 0:
        raise PostloanError(f"column 'time_zone': null at action {int(np.flatnonzero(zone_of < 0)[0])}")
    present = set(zones) if small else np.unique(zone_of).tolist()
    for z in present:
        at = slice(None) if len(present) == 1 else np.flatnonzero(zone_of == z)
        instants = instants_us[at]
        if per_instant:
            zone = _zone(zone_names[z])
            out[at] = [_offset(zone, u) for u in instants.tolist()]
            continue
        if small:
            listed = instants.tolist()
            lo, hi = min(listed), max(listed)
        else:
            lo, hi = int(instants.min()), int(instants.max())
        _, _, starts, values = _zone_table(zone_names[z], lo, hi)
        out[at] = values[0] if starts.size == 0 else values[np.searchsorted(starts, instants, side="right")]
    return out


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_ONE_US = dt.timedelta(microseconds=1)
#: cached transitions per zone: name -> (covered from, covered to, transition instants, offsets)
_ZONE_TABLES: dict[str, tuple[int, int, np.ndarray, np.ndarray]] = {}


def _zone_table(name: str, lo: int, hi: int) -> tuple[int, int, np.ndarray, np.ndarray]:
    """The zone's offset transitions covering [lo, hi], cached; a request outside the cached
    span rebuilds it over the union, with margins (a few days back, two weeks ahead: deferrals
    look up to a week or so forward). Only a valid zone's table is ever cached."""
    table = _ZONE_TABLES.get(name)
    if table is not None and table[0] <= lo and hi <= table[1]:
        return table
    if table is not None:
        lo, hi = min(lo, table[0]), max(hi, table[1])
    lo, hi = lo - 2 * US_PER_DAY, hi + 16 * US_PER_DAY
    starts, values = _transitions(_zone(name), lo, hi)
    table = _ZONE_TABLES[name] = (lo, hi, starts, values)
    return table


#: the zone names zoneinfo has opened in this process: a request's zone is checked by one set
#: lookup per distinct value. Only zones are kept (a bounded set); a name zoneinfo refuses is
#: tried again each time it comes, so junk cannot grow the set.
_KNOWN_ZONES: set[str] = set()


def known_zone(name) -> bool:
    """Whether ``name`` is an IANA time zone zoneinfo knows (what :func:`utc_offsets` can
    use): a set lookup once it has been seen, one ``ZoneInfo`` the first time."""
    if not isinstance(name, str):
        return False
    if name in _KNOWN_ZONES:
        return True
    try:
        _zone(name)
    except PostloanError:
        return False
    _KNOWN_ZONES.add(name)
    return True


@functools.cache
def listed_zones() -> tuple[str, ...]:
    """Every zone zoneinfo lists (``available_timezones``: its time zone database's files),
    sorted; worked out once per process (≈ 70 ms: it opens each file). The compiled wire pass
    looks a request's zone up in these; zoneinfo opens a few names it does not list
    (``posixrules``, ``right/…``), which :func:`known_zone` still accepts."""
    return tuple(sorted(zoneinfo.available_timezones()))


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise PostloanError(f"column 'time_zone': unknown IANA time zone {name!r}") from None


def _offset(zone: zoneinfo.ZoneInfo, instant_us: int) -> int:
    return (_EPOCH + dt.timedelta(microseconds=instant_us)).astimezone(zone).utcoffset() // _ONE_US


def _transitions(zone: zoneinfo.ZoneInfo, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """The zone's offset changes in [lo, hi]: instants (µs) and the offset in force before the
    first and from each (sampled daily — real zones never change twice in a day — then
    bisected to the microsecond)."""
    grid = list(range(lo, hi, US_PER_DAY)) + [hi]
    offsets = [_offset(zone, t) for t in grid]
    starts, values = [], [offsets[0]]
    for i in range(len(grid) - 1):
        if offsets[i] == offsets[i + 1]:
            continue
        a, b = grid[i], grid[i + 1]          # offset(a) = offsets[i] != offset(b)
        while b - a > 1:
            mid = (a + b) // 2
            if _offset(zone, mid) == offsets[i]:
                a = mid
            else:
                b = mid
        starts.append(b)
        values.append(_offset(zone, b))
    return np.array(starts, np.int64), np.array(values, np.int64)
