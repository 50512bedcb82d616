"""The local calendar behind a synthetic book: when things happened, in each debtor's zone.

A book's counters are what the ledger derives from an account's events
(:mod:`kernel.ledger.state`, as of an instant, in the debtor's local calendar). The payments
come from the monthly process (:mod:`kernel.synth.process`), the contacts and promises to pay
from the collection process along the same path (:mod:`kernel.synth.collection`); this module
holds what they share: each account's :class:`Clock` at the snapshot (today, the time of
day, the calling window) and the placement of events on local days — on *office time*
(08:00–20:00) of earlier days (:func:`office_instant`: ``x`` office days before today's
start), at a time of a given day (:func:`day_instant`), in whole seconds.

Everything is in whole seconds (µs since the epoch, UTC) or local days (days since the
epoch, in the debtor's zone). The tracker follows :class:`kernel.ledger.StateSettings`'
defaults: OFFLINE after 2 hours, a tamper alert counts for 30 days.
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
