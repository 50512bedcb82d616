"""The book's snapshot instant and the date a book is decided as of.

A book is a snapshot: its balances, DPD, insurance dates and counters are what they were at one
instant. A written book carries that instant in its schema metadata under
:data:`SNAPSHOT_KEY` (``postloan.snapshot_at``, ISO 8601 UTC, e.g. ``2026-11-28T02:00:00Z``):
Parquet and Arrow IPC files keep it; CSV and SQLite cannot, so a book in those formats carries
none. ``postloan decide`` decides a book as of its snapshot's date unless told otherwise
(:func:`decision_date`): deciding it as of a later date would read the snapshot's DPD and
expiry dates as that day's, so it needs an explicit ``--after-snapshot``; an earlier date is
refused (the book already holds what happened after it).
"""
from __future__ import annotations

import datetime as dt
from typing import Mapping

from .errors import PostloanError

#: schema metadata key holding the snapshot instant (ISO 8601, UTC)
SNAPSHOT_KEY = "postloan.snapshot_at"


def read_snapshot(metadata: Mapping | None, source: str = "book") -> dt.datetime | None:
    """The snapshot instant in a schema's metadata (keys and values bytes or str), as an
    aware UTC datetime; None when the metadata holds none. A value that is not an ISO 8601
    instant is an error naming ``source``."""
    if not metadata:
        return None
    raw = metadata.get(SNAPSHOT_KEY.encode(), metadata.get(SNAPSHOT_KEY))
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise PostloanError(f"{source}: schema metadata {SNAPSHOT_KEY} is not an ISO 8601 instant "
                            f"(expected e.g. 2026-11-28T02:00:00Z)") from None
    if value.tzinfo is None:
        raise PostloanError(f"{source}: schema metadata {SNAPSHOT_KEY} has no time zone "
                            f"(expected UTC, e.g. 2026-11-28T02:00:00Z)")
    return value.astimezone(dt.timezone.utc)


def shown(snapshot: dt.datetime) -> str:
    return snapshot.strftime("%Y-%m-%dT%H:%M:%SZ")


def decision_date(given: dt.date | None, snapshot: dt.datetime | None, *, after_snapshot: bool = False,
                  source: str = "book", today: dt.date | None = None) -> tuple[dt.date, str]:
    """The date to decide a book as of, and a sentence saying where it came from.

    - no ``given`` date: the snapshot's (UTC) date; a book without a snapshot: ``today``
      (default the clock's UTC date), said so;
    - ``given`` equal to the snapshot's date, or a book without a snapshot: ``given``;
    - ``given`` later than the snapshot's date: only with ``after_snapshot`` (else an error
      naming both dates and the flag);
    - ``given`` earlier than the snapshot's date: an error.
    """
    if snapshot is None:
        if given is not None:
            return given, f"decided as of {given} (--as-of; {source} carries no snapshot date)"
        today = today or dt.datetime.now(dt.timezone.utc).date()
        return today, (f"decided as of today, {today}: {source} carries no snapshot date ({SNAPSHOT_KEY} "
                       f"in its schema metadata; CSV and SQLite books carry none) — give --as-of to decide it "
                       f"as of the day its figures were taken")
    day = snapshot.date()
    if given is None:
        return day, f"decided as of {day}, the book's snapshot date ({SNAPSHOT_KEY} {shown(snapshot)})"
    if given == day:
        return given, f"decided as of {given}, the book's snapshot date ({SNAPSHOT_KEY} {shown(snapshot)})"
    if given < day:
        raise PostloanError(f"{source}: --as-of {given} is before the book's snapshot ({SNAPSHOT_KEY} "
                            f"{shown(snapshot)}): the book already holds what happened after that date; "
                            f"decide it as of {day}, or decide a book taken on {given}")
    if not after_snapshot:
        raise PostloanError(f"{source}: --as-of {given} is {(given - day).days} day(s) after the book's snapshot "
                            f"({SNAPSHOT_KEY} {shown(snapshot)}): its DPD, balances and insurance and GPS dates "
                            f"would be read as that day's; decide a fresh snapshot, or give --after-snapshot to "
                            f"decide this one as of {given} anyway")
    return given, (f"decided as of {given}, {(given - day).days} day(s) after the book's snapshot "
                   f"({SNAPSHOT_KEY} {shown(snapshot)}; --after-snapshot)")
