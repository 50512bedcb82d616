"""The ledger: events in, account state out.

>>> from kernel.ledger import Ledger
>>> ledger = Ledger("sqlite:///ledger.db")                          # doctest: +SKIP
>>> result = ledger.ingest(events)                                  # doctest: +SKIP
>>> result.accepted, result.duplicate, result.rejected              # doctest: +SKIP
>>> ledger.state(at=datetime(2026, 11, 28, 2, tzinfo=timezone.utc))  # doctest: +SKIP

Guarantees (docs/ledger.md):

- **idempotent**: an event is stored once by ``event_id``; a replayed file changes nothing
  (its rows count as duplicates); the same id with other content is rejected;
- **durable before acknowledged**: :meth:`Ledger.ingest` returns after its transaction is
  on disk (SQLite ``synchronous = FULL``; PostgreSQL's commit);
- **order-free**: state is derived in the order of each event's ``at``, whatever the order
  of arrival;
- **row by row**: a bad row is rejected with its reason while the good rows of its batch
  land (one bad row of a dialer's hourly file must not hold back the other 9,999).
"""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa

from ..errors import PostloanError
from ..localtime import known_zone
from ..schema import REQUIRED, check_value, columns
from . import gps as _gps
from .events import KIND, EventRows, Rejection, normalize
from .patterns import lookback_us
from .book import BookEvents
from .state import StateSettings, derive, derive_one, of_settings, state_table, steady_span
from .store import REGISTRY_COLUMNS, KeptRows, Store, open_store

__all__ = ["Ledger", "IngestResult", "LedgerError"]



@of_settings
def _patterns_lookback_us(settings) -> int:
    """:func:`~kernel.ledger.patterns.lookback_us` of ``settings``, worked out once: every
    one-account state read asks it (≈ 5–10 µs each time)."""
    return lookback_us(settings)


class LedgerError(PostloanError):
    """A ledger operation cannot be done as asked."""


@dataclass
class IngestResult:
    """What an ingest did: rows stored, rows already stored (replays), rows rejected."""

    accepted: int = 0
    duplicate: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def __iadd__(self, other: "IngestResult") -> "IngestResult":
        self.accepted += other.accepted
        self.duplicate += other.duplicate
        self.rejected.extend(other.rejected)
        return self

    @property
    def rows(self) -> int:
        return self.accepted + self.duplicate + len(self.rejected)


def _now_us() -> int:
    return time.time_ns() // 1000


def instant_us(value: dt.datetime | int | None) -> int:
    """An aware datetime (or µs since the epoch) as µs UTC; None: now."""
    # (an aware datetime first, its µs by one floor division: every Decide with state and
    # every CheckContact converts its moment — ≈ 0.5 µs against ≈ 2 by the delta's fields)
    if type(value) is dt.datetime and value.tzinfo is not None and value.utcoffset() is not None:
        return (value - _EPOCH) // _ONE_US
    if value is None:
        return _now_us()
    if isinstance(value, (int, np.integer)):
        return int(value)
    if not isinstance(value, dt.datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise LedgerError(f"expected a time-zone-aware datetime, got {value!r}")
    return (value - _EPOCH) // _ONE_US


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_ONE_US = dt.timedelta(microseconds=1)


class Ledger:
    """Events in, state out, over a :class:`~kernel.ledger.store.Store`.

    ``url``: ``sqlite:///…`` (default ``$POSTLOAN_DATA_DIR/ledger.db``) or
    ``postgresql://…``; ``config``: the configuration (its ``[ledger]`` table, see
    :class:`~kernel.ledger.state.StateSettings`)."""

    def __init__(self, url: str | None = None, config: Mapping | None = None, *, store: Store | None = None):
        self.settings = StateSettings.from_config(config)
        self.store = store or open_store(url)
        self.url = self.store.url
        self._purged_at = 0
        self._registered: dict[str, tuple] = {}          # account -> its registered columns, this process
        self.book: BookEvents | None = None               # keep_events(): the book's events in memory

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- events in ---------------------------------------------------------------------------
    def ingest(self, table: pa.Table | pa.RecordBatch | Iterable[pa.RecordBatch], *,
               now: dt.datetime | int | None = None) -> IngestResult:
        """Store the events of ``table`` (the contract's ``events`` columns; a table, a batch
        or an iterable of batches, each its own transaction): each row lands, is a duplicate
        of a stored event, or is rejected with its reason. Returns once the rows that landed
        are durable. ``now`` stamps ``recorded_at`` (default: the clock); no event may be
        later than ``now`` plus the allowed clock skew."""
        if isinstance(table, (pa.Table, pa.RecordBatch)):
            return self._ingest_one(table, now)
        total = IngestResult()
        offset = 0
        for batch in table:
            one = self._ingest_one(batch, now)
            one.rejected = [Rejection(r.row + offset, r.event_id, r.reason) for r in one.rejected]
            total += one
            offset += batch.num_rows
        return total

    def _ingest_one(self, batch, now) -> IngestResult:
        now_us = instant_us(now)
        s = self.settings
        rows, rejected = normalize(batch, now_us=now_us, max_future_us=int(s.max_clock_skew_seconds * 1e6),
                                   max_promise_days=s.max_promise_days)
        result = IngestResult(rejected=rejected)
        if rows.n == 0:
            return result
        pings = rows.kind == KIND["GPS_PING"]
        if pings.any():
            events, ping_rows = rows.take(np.flatnonzero(~pings)), rows.take(np.flatnonzero(pings))
        else:                                           # (a batch without pings: no copies)
            events, ping_rows = rows, EventRows.empty()
        with self.store.transaction() as cur:
            events, bad = self._check_reservations(cur, events)
            rejected.extend(bad)
            status = self.store.insert_events(cur, events, now_us)
            inserted = status == 0
            reports = np.flatnonzero(inserted & (events.reservation_id != None))     # noqa: E711 (elementwise)
            self.store.mark_reported(cur, list(zip(events.event_id[reports].tolist(),
                                                   events.reservation_id[reports].tolist())))
            _gps.reduce_pings(self.store, cur, ping_rows, int(s.gps_gap_minutes * 60e6), s.gps_position_hours > 0)
        result.accepted = int(inserted.sum()) + ping_rows.n
        result.duplicate = int((status == 1).sum())
        for i in np.flatnonzero(status == 2).tolist():
            rejected.append(Rejection(int(events.rows[i]), events.event_id[i],
                                      "event_id was already used by a different event (the stored one stays)"))
        rejected.sort(key=lambda r: r.row)
        self._maybe_purge(now_us)
        return result

    def _check_reservations(self, cur, events: EventRows) -> tuple[EventRows, list[Rejection]]:
        """Contact attempts that report a reservation must name one of this account and
        channel that no other event reported."""
        named = np.flatnonzero(events.reservation_id != None).tolist()      # noqa: E711 (elementwise)
        if not named:
            return events, []
        known = self.store.reservations_by_id(cur, sorted({events.reservation_id[i] for i in named}))
        bad: list[Rejection] = []
        drop = set()
        claimed: dict[str, str] = {}
        for i in named:
            rid, event_id = events.reservation_id[i], events.event_id[i]
            have = known.get(rid)
            why = None
            if have is None:
                why = "reservation_id names no reservation of this ledger"
            elif have[0] != events.account_id[i]:
                why = "reservation_id belongs to another account"
            elif have[1] != int(events.channel[i]):
                why = "channel differs from the reservation's"
            elif have[2] is not None and have[2] != event_id:
                why = "the reservation was already reported by another event"
            elif claimed.get(rid, event_id) != event_id:
                why = "the reservation is reported twice in this batch"
            if why:
                drop.add(i)
                bad.append(Rejection(int(events.rows[i]), event_id, why))
            else:
                claimed[rid] = event_id
        if drop:
            events = events.take(np.array([i for i in range(events.n) if i not in drop], np.int64))
        return events, bad

    def _maybe_purge(self, now_us: int) -> None:
        """Forget old positions at most once a minute."""
        if now_us - self._purged_at < 60_000_000:
            return
        self._purged_at = now_us
        self.store.purge_positions(now_us - int(self.settings.gps_position_hours * 3_600e6))

    # -- accounts ----------------------------------------------------------------------------
    def register(self, book: pa.Table | pa.RecordBatch | Mapping, *, now: dt.datetime | int | None = None) -> int:
        """Record the book columns the contact-time gate reads (:data:`REGISTRY_COLUMNS`) for
        every account of ``book``; only accounts whose columns changed are written. Returns
        how many were written."""
        cols = _registry_rows(book)
        if not cols:
            return 0
        have = self.store.registered([r[0] for r in cols])
        changed = [r for r in cols if have.get(r[0]) != tuple(r[1:])]
        if changed:
            self.store.register(changed, instant_us(now))
        return len(changed)

    def register_record(self, record: Mapping) -> bool:
        """Register one account given as a record (a gRPC Decide's account); remembered per
        process, so an unchanged account costs a dictionary lookup, not a write."""
        row = self._unremembered(record)
        # an account new to this process: its stored columns by one statement (no
        # transaction's begin and end, no batch of one), written only when they differ
        return row is not None and self._register_row(row, self.store.registered_in(None, row[0]))

    def _unremembered(self, record: Mapping) -> tuple | None:
        """The record's registry row (checked), or None when this process remembers it so."""
        account = record.get("account_id")
        values = tuple(map(record.get, REGISTRY_COLUMNS))
        # (a bool equals the 0/1 remembered: the record's values compare as they are)
        if account and self._registered.get(account) == values:
            return None
        row = _registry_row(record, values)
        return None if self._registered.get(row[0]) == row[1:] else row

    def _register_row(self, row: tuple, stored: tuple | None) -> bool:
        """Write ``row`` unless ``stored`` (the store's registration) has its values; remember it."""
        if len(self._registered) >= _REMEMBERED:
            self._registered.clear()
        written = stored != row[1:]
        if written:
            self.store.register([row], instant_us(None))
        self._registered[row[0]] = row[1:]
        return written

    def knows(self, account_id: str) -> bool:
        """Whether the ledger has heard of ``account_id`` (registered, or any event, GPS
        position or reservation of it): the accounts :meth:`state` lists by default."""
        return self.store.knows(account_id)

    def registered(self, accounts: Sequence[str] | None = None) -> dict[str, dict]:
        """The registered book columns of ``accounts`` (None: every account) by account id."""
        return {a: dict(zip(REGISTRY_COLUMNS, v)) for a, v in self.store.registered(accounts).items()}

    # -- state out ---------------------------------------------------------------------------
    def state_columns(self, accounts: Sequence[str], zones: Sequence[str] | np.ndarray,
                      at: dt.datetime | int | None = None) -> dict[str, np.ndarray]:
        """The state of ``accounts`` (their IANA ``zones`` in the same order) as of ``at``, as
        NumPy columns (the form the pipeline joins)."""
        at_us = instant_us(at)
        accounts = list(accounts)
        since = at_us - self.settings.lookback_us
        wanted = None if len(accounts) > 200_000 else accounts
        if self.book is not None:
            events = self.book.read(at_us, since, wanted)
        else:
            events = self.store.read_events(wanted, at_us, since)
        gps = self.store.read_gps(wanted, at_us)
        # the offline periods the temporal patterns read (none to read for cars that never pinged)
        offline = self.store.offline_periods(wanted, at_us - _patterns_lookback_us(self.settings), at_us) \
            if gps[0].shape[0] else None
        return derive(events, np.array(accounts, dtype=object), zones, at_us, self.settings, gps, offline)

    def keep_events(self, keep: bool = True) -> None:
        """Keep every account's events in memory from now on (``keep``; False: stop): each
        later :meth:`state_columns` / :meth:`state` reads only the events appended since the
        last one (:mod:`kernel.ledger.book`) — for whoever asks for the state of the whole
        book day after day, as the simulator does. The state is the same as read afresh."""
        self.book = BookEvents(self.store) if keep else None

    def state_record(self, account_id: str, zone: str | None, at: dt.datetime | int | None = None) -> dict:
        """One account's state as of ``at`` as record scalars (the path a gRPC Decide takes:
        one round trip to the store, no Arrow)."""
        from .join import record_state
        return record_state(self.state_values(account_id, zone, at))

    def state_values(self, account_id: str, zone: str | None, at: dt.datetime | int | None = None) -> dict:
        """One account's state as of ``at`` in the fold's representation (µs, days, codes)."""
        at_us = instant_us(at)
        rows, gps, offline = self.store.account_rows_now(account_id, at_us, at_us - self.settings.lookback_us,
                                                         at_us - _patterns_lookback_us(self.settings))
        # the store's kept list (a second question of an account while its rows stay the same):
        # what the fold is fed from it, and its values, are kept — an account asked once churns nothing
        return derive_one(rows, zone, at_us, self.settings, gps, offline, ordered=True,
                          remember=type(rows) is KeptRows)

    def kept_state_span(self, account_id: str, zone: str | None, at_us: int, values: dict) -> tuple | None:
        """For ``values`` just given by :meth:`state_values` of the account in ``zone`` as of
        ``at_us``: ``(version, from, until)`` when :meth:`state_values` gives these values
        again at any instant in ``[from, until)`` while the store's :meth:`version_now` is
        ``version`` — its rows kept by the store's cache for that span (no GPS rows) and their
        fold kept by this thread for it (the same local day, before the patterns' next
        instant); else None (nothing kept, a GPS state, a store that keeps nothing)."""
        s = self.settings
        kept = self.store.kept_rows_span(account_id, at_us, at_us - s.lookback_us,
                                         at_us - _patterns_lookback_us(s))
        if kept is None:
            return None
        version, start, end, rows = kept
        span = steady_span(rows, zone, at_us, values)
        return None if span is None else (version, max(start, span[0]), min(end, span[1]))

    def version_now(self):
        """The store's :meth:`~kernel.ledger.store.Store.version_now`: what changes whenever a
        commit reaches it (None: it cannot say)."""
        return self.store.version_now()

    def remembered(self, account_id: str) -> tuple | None:
        """The registered columns this process remembers for ``account_id`` (the very tuple
        while they stand: another registration of the account, or the memory starting over,
        replaces it), None when it remembers none."""
        return self._registered.get(account_id)

    def registered_state_values(self, record: Mapping, at: dt.datetime | int | None = None) -> dict:
        """:meth:`register_record` of ``record``, then :meth:`state_values` of its account as of
        ``at`` (the path a gRPC Decide takes): for an account whose registration this process
        does not remember, both with one read of the store (its stored registration comes
        with its rows; written after, when it differs — the state does not read it)."""
        row = self._unremembered(record)
        if row is None:
            return self.state_values(record.get("account_id"), record.get("time_zone"), at)
        at_us = instant_us(at)
        stored, rows, gps, offline = self.store.registered_rows_now(
            row[0], at_us, at_us - self.settings.lookback_us, at_us - _patterns_lookback_us(self.settings))
        self._register_row(row, stored)
        return derive_one(rows, row[1], at_us, self.settings, gps, offline, ordered=True)

    def state(self, at: dt.datetime | int | None = None, accounts: Sequence[str] | None = None,
              zones: Mapping[str, str] | None = None) -> pa.Table:
        """The state of ``accounts`` (default: every account the ledger has heard of) as of
        ``at`` (default now) as an Arrow table with the contract's ``state`` columns. Local
        days are counted in each account's time zone: ``zones`` (account → IANA name), else
        the one registered from its book, else UTC (:attr:`unzoned` says how many)."""
        at_us = instant_us(at)
        if accounts is None:
            accounts = self.store.all_accounts()
        registered = self.store.registered(None if len(accounts) > 200_000 else accounts)
        zone_at = REGISTRY_COLUMNS.index("time_zone")
        names = []
        unzoned = 0
        for a in accounts:
            z = (zones or {}).get(a)
            if z is None:
                row = registered.get(a)
                z = row[zone_at] if row else None
            unzoned += z is None
            names.append(z)
        for z in dict.fromkeys(names):
            if z is not None and not known_zone(z):
                raise stored_zone_error(accounts[names.index(z)], z)
        self.unzoned = unzoned
        return state_table(self.state_columns(accounts, names, at_us))

    # -- the contact-time gate ----------------------------------------------------------------
    def check_contact(self, account_id: str, channel: str, at: dt.datetime, judge, *,
                      now: dt.datetime | None = None):
        """May ``account_id`` be contacted by ``channel`` at ``at``? KEEP reserves the attempt
        (see :mod:`kernel.ledger.gate`); ``judge`` is a pipeline's
        :meth:`~kernel.pipeline.Pipeline.judge` (its compliance policies)."""
        from .gate import check_contact
        return check_contact(self, judge, account_id, channel, at, now=now)

    def counts(self) -> dict[str, int]:
        """How many events, reservations, cars with GPS state and registered accounts."""
        out = {}
        with self.store.reading() as cur:
            for label, table in (("events", "events"), ("reservations", "reservations"), ("cars pinging", "gps_last"),
                                 ("registered accounts", "accounts")):
                cur.execute(f"SELECT COUNT(*) FROM {table}")
                out[label] = int(cur.fetchone()[0])
        return out

    # -- backup ------------------------------------------------------------------------------
    def backup(self, target) -> None:
        """A consistent copy of the ledger in the file ``target``, taken while it is in use:
        SQLite's online backup (a SQLite file), PostgreSQL's ``pg_dump --format=custom``
        (docs/ledger.md). ``target`` is whole or untouched."""
        self.store.backup(target)

    def restore(self, source) -> None:
        """Replace the ledger's content with the backup ``source`` (made by :meth:`backup` on a
        ledger of the same kind), all or nothing; an older schema is then migrated."""
        self.store.restore(source)
        if self.book is not None:
            self.book.reset()


#: accounts whose registration a process remembers (then it starts over)
_REMEMBERED = 100_000


def _registry_row(record: Mapping, values: tuple) -> tuple:
    """``(account_id, *REGISTRY_COLUMNS)`` of one account (``values``: the record's
    REGISTRY_COLUMNS), flags as 0/1."""
    if not record.get("account_id"):
        raise LedgerError("the account has no account_id")
    if not record.get("time_zone"):
        raise LedgerError("the account has no time_zone (the gate counts days in the debtor's local time)")
    zone = record["time_zone"]
    if not known_zone(zone):
        raise LedgerError(f"account {record['account_id']!r}: time_zone: {check_value(_TIME_ZONE, zone)}")
    return (record["account_id"], *[int(v) if type(v) in _FLAG_TYPES else v for v in values])


_TIME_ZONE = columns("book")["time_zone"]


def stored_zone_error(account_id: str, zone) -> LedgerError:
    """The error of an account whose stored registration holds a zone zoneinfo does not know
    (a ledger written before registrations were checked, or by hand): said as such, not as a
    zone the local-time code stumbles on."""
    return LedgerError(f"account {account_id!r}: its registered time_zone: {check_value(_TIME_ZONE, zone)}; "
                       f"register the account again with a valid zone (a Decide of it, or `postloan ingest --book`)")


#: the types of a registered flag's value that are stored as 0/1
_FLAG_TYPES = (bool, np.bool_)


def _registry_rows(book) -> list[tuple]:
    """``(account_id, *REGISTRY_COLUMNS)`` per account of a book (table, batch or columns)."""
    def column(name):
        if isinstance(book, Mapping):
            values = book.get(name)
            if values is None:
                return None
            return list(values.tolist() if isinstance(values, np.ndarray) else values)
        if name not in book.schema.names:
            return None
        arr = book.column(name)
        if pa.types.is_dictionary(arr.type):
            arr = arr.cast(arr.type.value_type) if isinstance(arr, pa.Array) else \
                pa.chunked_array([c.dictionary_decode() for c in arr.chunks], arr.type.value_type)
        return arr.to_pylist()

    ids = column("account_id")
    if ids is None:
        raise LedgerError("the book has no account_id column")
    zones = column("time_zone")
    if zones is None:
        raise LedgerError("the book has no time_zone column (the gate counts days in the debtor's local time)")
    # each distinct zone checked once (in the order they first appear: the first bad row is
    # named), by the contract's words: a zone the gate could not count local days in is
    # refused here, not when the account is asked about
    for zone in dict.fromkeys(zones):
        problem = REQUIRED if zone is None else None if known_zone(zone) else check_value(_TIME_ZONE, zone)
        if problem is not None:
            row = zones.index(zone)
            raise LedgerError(f"time_zone: row {row} (account {ids[row]!r}): {problem}")
    values = [column(name) for name in REGISTRY_COLUMNS]
    n = len(ids)
    out = []
    for i in range(n):
        row = [ids[i]]
        for v in values:
            x = None if v is None else v[i]
            row.append(int(x) if isinstance(x, (bool, np.bool_)) else x)
        out.append(tuple(row))
    return out

