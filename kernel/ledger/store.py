"""Where events live: SQLite embedded (default) or PostgreSQL, behind one small interface.

``open_store(url)`` gives a :class:`Store`:

- ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``, or a plain path — one
  file, WAL journal, ``synchronous = FULL``: a transaction is on disk when its commit returns
  (the gate's reservations may ask for less: ``transaction(synced=False)``);
- ``postgresql://user@host:port/db`` — several processes and machines (needs the
  ``postgres`` extra: psycopg 3).

Both keep the same tables (created and upgraded by the versioned migrations in
:data:`MIGRATIONS`), with enumerations stored as their contract codes (lookup tables and the
``events_named`` view give the names back to a person reading the database):

- ``events``: one row per event, ``event_id`` the primary key (idempotency);
- ``reservations``: contact-time reservations made by the gate (``CheckContact``);
- ``gps_last`` / ``gps_gaps``: GPS pings reduced to the last ping and the offline periods
  longer than the session gap (pings themselves are never stored);
- ``accounts``: the book columns the contact-time gate needs per account (registered from
  books that pass through a ledger-backed decision or ``postloan ingest --book``).

Every write happens in one transaction per call; every method that writes returns only once
that transaction is durable.
"""
from __future__ import annotations

import itertools
import os
import re
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence
from urllib.parse import quote, unquote, urlparse

import numpy as np

from ..errors import PostloanError
from ..hookspecs import NULL_TIME
from ..schema import ENUMS
from .events import KIND, EventRows, STICKY_KINDS

__all__ = ["Store", "SQLiteStore", "Appended", "open_store", "StoreError", "MIGRATIONS", "SCHEMA_VERSION", "default_url", "mask_url",
           "EventColumns", "REGISTRY_COLUMNS"]

ENV_DATA_DIR = "POSTLOAN_DATA_DIR"


class StoreError(PostloanError):
    """The store cannot be opened, is from a newer postloan, or a write failed."""


def mask_url(url: str) -> str:
    """``url`` with its password (in the authority or a ``password=`` parameter) as ``***``;
    the rest exactly as given."""
    m = re.match(r"([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)(.*)", url, re.S)
    if m is None:
        return url
    scheme, netloc, rest = m.groups()
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            netloc = userinfo.split(":", 1)[0] + ":***@" + host
    return scheme + netloc + re.sub(r"([?&])password=[^&#]*", r"\1password=***", rest)


def default_url() -> str:
    """``sqlite:///$POSTLOAN_DATA_DIR/ledger.db`` (default data dir ``~/.local/share/postloan``)."""
    root = os.environ.get(ENV_DATA_DIR) or os.path.join(os.path.expanduser("~"), ".local", "share", "postloan")
    return "sqlite:///" + os.path.join(root, "ledger.db")


#: book columns the contact-time gate reads per account (the ``accounts`` table)
REGISTRY_COLUMNS = ("time_zone", "country", "region", "product", "phone_valid", "has_third_party_contact",
                    "consent_automated_contact", "contact_opt_out")
_REGISTRY_BOOL = ("phone_valid", "has_third_party_contact", "consent_automated_contact", "contact_opt_out")
#: the registry's text columns, then its flags (:meth:`SQLiteStore.gate_rows` reads them in this order)
_REGISTRY_TEXTS, _REGISTRY_FLAGS = REGISTRY_COLUMNS[:4], REGISTRY_COLUMNS[4:]
if _REGISTRY_FLAGS != _REGISTRY_BOOL or set(_REGISTRY_TEXTS) & set(_REGISTRY_BOOL):
    raise ImportError("REGISTRY_COLUMNS: the four texts first, then the four flags")
#: the four registered flags packed as Σ 3^i · (0 false, 1 true, 2 null) → the flags (False, True, None)
_FLAGS_OF = {sum(3 ** i * v for i, v in enumerate(digits)): tuple((False, True, None)[v] for v in digits)
             for digits in itertools.product(range(3), repeat=4)}
#: the kind of the registration's row in :meth:`SQLiteStore.gate_rows`' statement
_REGISTERED = -5

_EVENT_COLUMNS = ("event_id", "account_id", "kind", "at", "recorded_at", "amount", "promise_date", "channel",
                  "outcome", "expiry_date", "reservation_id", "agent")

#: Migrations, in order: (version, statements). ``{real}`` is the dialect's double type.
#: A migration is never edited once released: add the next version instead.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, [
        """CREATE TABLE events (
            event_id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            kind SMALLINT NOT NULL,
            at BIGINT NOT NULL,
            recorded_at BIGINT NOT NULL,
            amount {real},
            promise_date INTEGER,
            channel SMALLINT,
            outcome SMALLINT,
            expiry_date INTEGER,
            reservation_id TEXT,
            agent TEXT)""",
        "CREATE INDEX events_account_at ON events (account_id, at)",
        """CREATE TABLE reservations (
            reservation_id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            channel SMALLINT NOT NULL,
            at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            created_at BIGINT NOT NULL,
            reported_by TEXT)""",
        "CREATE INDEX reservations_account_at ON reservations (account_id, at)",
        """CREATE TABLE gps_last (
            account_id TEXT PRIMARY KEY,
            first_ping_at BIGINT NOT NULL,
            last_ping_at BIGINT NOT NULL,
            position_at BIGINT,
            lat {real},
            lon {real})""",
        """CREATE TABLE gps_gaps (
            account_id TEXT NOT NULL,
            from_at BIGINT NOT NULL,
            to_at BIGINT NOT NULL,
            PRIMARY KEY (account_id, from_at))""",
        """CREATE TABLE accounts (
            account_id TEXT PRIMARY KEY,
            time_zone TEXT NOT NULL,
            country TEXT,
            region TEXT,
            product TEXT,
            phone_valid SMALLINT,
            has_third_party_contact SMALLINT,
            consent_automated_contact SMALLINT,
            contact_opt_out SMALLINT,
            registered_at BIGINT NOT NULL)""",
        "CREATE TABLE event_kinds (code SMALLINT PRIMARY KEY, name TEXT NOT NULL)",
        "CREATE TABLE contact_channels (code SMALLINT PRIMARY KEY, name TEXT NOT NULL)",
        "CREATE TABLE contact_outcomes (code SMALLINT PRIMARY KEY, name TEXT NOT NULL)",
        """CREATE VIEW events_named AS
            SELECT e.event_id, e.account_id, k.name AS kind, e.at, e.recorded_at, e.amount, e.promise_date,
                   c.name AS channel, o.name AS outcome, e.expiry_date, e.reservation_id, e.agent
            FROM events e JOIN event_kinds k ON k.code = e.kind
            LEFT JOIN contact_channels c ON c.code = e.channel
            LEFT JOIN contact_outcomes o ON o.code = e.outcome""",
    ]),
    # the event kinds of issue 12 (compliance holds and legal bases), appended to the contract's
    # event_kind: a ledger made before them gets their names in its lookup table (a ledger made
    # after has them from version 1 already)
    (2, [f"INSERT INTO event_kinds (code, name) SELECT {code}, '{name}' "
         f"WHERE NOT EXISTS (SELECT 1 FROM event_kinds WHERE code = {code})"
         for code, name in enumerate(ENUMS["event_kind"]) if code >= 28 and code < 42]),
    # an insertion sequence for events, what an incremental reader (kernel.ledger.book) asks
    # "what was appended since?" by: SQLite has one already (the rowid: rows are never deleted,
    # and one writer at a time), PostgreSQL gets an identity column, and its ingests take the
    # events lock (PostgresStore.insert_events) so that numbers become visible in order.
    # (dialect, statement): a statement for that store only
    (3, [("postgresql", "ALTER TABLE events ADD COLUMN seq BIGINT GENERATED BY DEFAULT AS IDENTITY"),
         ("postgresql", "CREATE INDEX events_seq ON events (seq)")]),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]
_LOOKUPS = {"event_kinds": "event_kind", "contact_channels": "contact_channel", "contact_outcomes": "contact_outcome"}


@dataclass
class EventColumns:
    """Events read back for deriving state: NumPy columns, one row per event (unreported
    reservations included, as CONTACT_ATTEMPT with outcome UNREPORTED)."""

    account_id: np.ndarray      # object
    kind: np.ndarray            # int8
    at: np.ndarray              # int64 µs
    amount: np.ndarray          # float64 (NaN: null)
    promise_date: np.ndarray    # int64 days (NULL_TIME)
    channel: np.ndarray         # int8 (−1)
    outcome: np.ndarray         # int8 (−1)
    expiry_date: np.ndarray     # int64 days (NULL_TIME)

    @property
    def n(self) -> int:
        return int(self.at.shape[0])

    def take(self, rows: np.ndarray) -> "EventColumns":
        return EventColumns(*(getattr(self, f)[rows] for f in self.__dataclass_fields__))

    @classmethod
    def concat(cls, parts: Sequence["EventColumns"]) -> "EventColumns":
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__))

    @classmethod
    def from_rows(cls, rows: Sequence[tuple]) -> "EventColumns":
        if not rows:
            return cls(np.zeros(0, object), np.zeros(0, np.int8), np.zeros(0, np.int64), np.zeros(0),
                       np.zeros(0, np.int64), np.zeros(0, np.int8), np.zeros(0, np.int8), np.zeros(0, np.int64))
        # one C-level pass from the rows to a record array (``zip(*rows)`` and a NumPy array
        # per column cost twice as much at a million rows); nullable columns stay objects there
        s = np.array(rows if isinstance(rows, list) else list(rows), dtype=_ROW)
        return cls(s["account"].copy(), s["kind"].copy(), s["at"].copy(), np.array(s["amount"].tolist(), np.float64),
                   _nulls(s["promise"], NULL_TIME, np.int64), _nulls(s["channel"], -1, np.int8),
                   _nulls(s["outcome"], -1, np.int8), _nulls(s["expiry"], NULL_TIME, np.int64))


@dataclass
class Appended:
    """What :meth:`Store.read_appended` read: the last sequence number, how many events the
    store holds (``total``) and held up to ``after`` (``before``: an incremental reader checks
    it against what it counted, so a store rewritten under it is read afresh), the new rows in
    the window, the new payments before it (``older``; the reader keeps each account's
    latest) and the unreported reservations."""

    last: int
    total: int
    before: int
    rows: EventColumns
    older: EventColumns
    reserved: EventColumns


_STICKY_CODES = np.array([KIND[k] for k in STICKY_KINDS], np.int8)

#: an event row as :meth:`Store.read_events` selects it
_ROW = np.dtype([("account", object), ("kind", np.int8), ("at", np.int64), ("amount", object), ("promise", object),
                 ("channel", object), ("outcome", object), ("expiry", object)])


def _nulls(values: np.ndarray, null: int, dtype) -> np.ndarray:
    """An object column of integers and None as ``dtype`` with None as ``null``."""
    missing = np.equal(values, None)
    if missing.any():
        values = values.copy()
        values[missing] = null
    return values.astype(dtype)


def _content(row: tuple) -> tuple:
    """An event row without its id and ``recorded_at`` (what a duplicate must repeat)."""
    return row[1:4] + row[5:]


def _none(values: np.ndarray, null) -> list:
    """A column as Python values with ``null`` (NaN, NULL_TIME or −1) as None."""
    listed = values.tolist()
    if values.dtype.kind == "f":
        return [None if v != v else v for v in listed]
    return [None if v == null else v for v in listed]


def _nullable(values: np.ndarray, null) -> list | None:
    """A column to bind: None when every row is null (the statement's NULL), else a list of
    Python values with the nulls (NaN, ``null`` or, for text, None) as None."""
    if values.dtype.kind == "f":
        missing = np.isnan(values)
    elif null == "object":
        missing = np.equal(values, None)
    else:
        missing = values == null
    if not missing.any():
        return values.tolist()
    if missing.all():
        return None
    out = values.astype(object)
    out[missing] = None
    return out.tolist()


#: the tables whose rows name an account: an account the ledger has heard of has a row in one
ACCOUNT_TABLES = ("accounts", "events", "gps_last", "reservations")


class Store:
    """The store interface the ledger uses; :class:`SQLiteStore` and
    :class:`~kernel.ledger.postgres.PostgresStore` implement it over one SQL schema."""

    url: str
    #: the driver's parameter marker
    mark = "?"
    real = "REAL"
    #: how many parameters one statement may bind
    max_params = 30_000
    #: the driver's exceptions
    _errors: tuple = ()
    #: the migrations' dialect (a ``(dialect, statement)`` migration runs on its dialect only)
    dialect = "sqlite"
    #: the events' insertion sequence: numbers that grow with every row inserted, visible in
    #: order (a reader that saw number k has seen every row numbered below it)
    seq = "rowid"

    # -- connections and transactions (per backend) -------------------------------------
    def _connection(self):
        raise NotImplementedError

    @contextmanager
    def transaction(self, lock_account: str | None = None, synced: bool = True) -> Iterator:
        """A write transaction, durable when the block exits; ``lock_account`` serializes
        it with every other transaction that locks the same account (the gate's reservations).
        ``synced=False`` (the gate's reservations, unless configured otherwise) commits
        without waiting for the disk: the write survives a crash of the process, and reaches
        the disk with the next synced commit or checkpoint."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def version(self) -> int:
        raise NotImplementedError

    def backup(self, target: str | os.PathLike) -> None:
        """A consistent copy of the whole ledger in the file ``target``, taken while the
        ledger is in use."""
        raise NotImplementedError

    def restore(self, source: str | os.PathLike) -> None:
        """Replace the ledger's content with the backup ``source`` made by :meth:`backup`."""
        raise NotImplementedError

    # -- SQL helpers ----------------------------------------------------------------------
    def _sql(self, text: str) -> str:
        return text if self.mark == "?" else text.replace("?", self.mark)

    def _migrate(self, cur, current: int) -> None:
        for version, statements in MIGRATIONS:
            if version <= current:
                continue
            for statement in statements:
                if isinstance(statement, tuple):
                    dialect, statement = statement
                    if dialect != self.dialect:
                        continue
                try:
                    cur.execute(statement.format(real=self.real))
                except self._errors as e:
                    first = " ".join(statement.split())[:80]
                    raise StoreError(f"{self.url}: migration to schema version {version} failed at "
                                     f"'{first}' ({' '.join(str(e).split())}); nothing was changed") from None
            if version == 1:
                for table, enum in _LOOKUPS.items():
                    cur.executemany(self._sql(f"INSERT INTO {table} (code, name) VALUES (?, ?)"),
                                    list(enumerate(ENUMS[enum])))
                cur.execute("CREATE TABLE ledger_schema (version INTEGER NOT NULL)")
                cur.execute(self._sql("INSERT INTO ledger_schema (version) VALUES (?)"), (version,))
            else:
                cur.execute(self._sql("UPDATE ledger_schema SET version = ?"), (version,))

    def _check_version(self, found: int) -> None:
        if found > SCHEMA_VERSION:
            raise StoreError(f"{self.url}: the ledger's schema is version {found}, newer than this postloan knows "
                             f"({SCHEMA_VERSION}); upgrade postloan")

    # -- events ----------------------------------------------------------------------------
    def insert_events(self, cur, rows: EventRows, recorded_at: int) -> np.ndarray:
        """Insert ``rows`` (in ``cur``'s transaction); returns per row 0 inserted, 1 a
        duplicate of a stored event (same id, same content) or 2 a conflict (same id,
        other content: the stored event stays). An id repeated within ``rows`` is inserted
        once, from its first row; the later rows are duplicates or conflicts of it."""
        n = rows.n
        status = np.zeros(n, np.int8)
        if n == 0:
            return status
        ids = rows.event_id.tolist()
        if len(set(ids)) == n and self._insert_fresh(cur, rows, ids, recorded_at):
            return status                               # the common case: every id is new
        params = list(zip(ids, rows.account_id.tolist(), rows.kind.tolist(), rows.at.tolist(),
                          [recorded_at] * n, _none(rows.amount, None), _none(rows.promise_date, NULL_TIME),
                          _none(rows.channel, -1), _none(rows.outcome, -1), _none(rows.expiry_date, NULL_TIME),
                          rows.reservation_id.tolist(), rows.agent.tolist()))
        unique = params
        if len(set(ids)) < n:                           # an id repeated within the batch: its first row
            first: dict[str, tuple] = {}
            for row in params:
                first.setdefault(row[0], row)
            unique = list(first.values())
        inserted = self._insert_unique(cur, unique)
        if inserted is None:
            if len(unique) == n:                        # the common case: every id is new
                return status
            inserted = {row[0] for row in unique}
        # Tell each row that was not inserted here a duplicate (same content as the event
        # stored under its id, or as the first row of the batch with its id) from a conflict.
        stored = self._events_by_id(cur, sorted({key for key in ids if key not in inserted}))
        reference: dict[str, tuple] = {}
        for i, row in enumerate(params):
            key = row[0]
            content = _content(row)
            earlier = reference.get(key)
            if earlier is None:
                if key in inserted:
                    reference[key] = content
                    continue
                have = stored.get(key)
                if have is None:
                    raise StoreError(f"{self.url}: event {key!r} was neither inserted nor found stored")
                earlier = reference[key] = _content(have)
            status[i] = 1 if earlier == content else 2
        return status

    def _insert_fresh(self, cur, rows: EventRows, ids: list, recorded_at: int) -> bool:
        """Insert ``rows`` (distinct ids) if none of their ids is stored yet, and say whether
        it did; otherwise nothing is inserted. The fast path of :meth:`insert_events`
        (measured in bench_ledger): a column empty in every row is a NULL of the statement,
        ``recorded_at`` its constant, and the others are bound straight from NumPy, their
        nulls set in one vectorized step — about half the binds of the general path."""
        values = {"event_id": ids, "account_id": rows.account_id.tolist(), "kind": rows.kind.tolist(),
                  "at": rows.at.tolist(), "recorded_at": int(recorded_at),
                  "amount": _nullable(rows.amount, None), "promise_date": _nullable(rows.promise_date, NULL_TIME),
                  "channel": _nullable(rows.channel, -1), "outcome": _nullable(rows.outcome, -1),
                  "expiry_date": _nullable(rows.expiry_date, NULL_TIME),
                  "reservation_id": _nullable(rows.reservation_id, "object"), "agent": _nullable(rows.agent, "object")}
        bound = [name for name in _EVENT_COLUMNS if isinstance(values[name], list)]
        marks = ", ".join("?" if name in bound else "NULL" if values[name] is None else str(values[name])
                          for name in _EVENT_COLUMNS)
        sql = self._sql(f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) VALUES ({marks}) "
                        f"ON CONFLICT (event_id) DO NOTHING")
        cur.execute("SAVEPOINT ingest")
        cur.executemany(sql, zip(*(values[name] for name in bound)))
        if cur.rowcount == len(ids):
            cur.execute("RELEASE SAVEPOINT ingest")
            return True
        cur.execute("ROLLBACK TO SAVEPOINT ingest")     # a replay: the general path tells rows apart
        cur.execute("RELEASE SAVEPOINT ingest")
        return False

    def _insert_unique(self, cur, params: list[tuple]) -> set | None:
        """Insert the rows ``params`` (distinct event ids) whose id is not stored yet; returns
        the ids inserted, or None when every row was."""
        cur.execute("SAVEPOINT ingest")
        if self._insert_ignoring(cur, params) == len(params):
            cur.execute("RELEASE SAVEPOINT ingest")
            return None
        # Some ids were already there (a replay): undo, and insert only the new ones.
        cur.execute("ROLLBACK TO SAVEPOINT ingest")
        present = self._events_by_id(cur, [row[0] for row in params])
        fresh = [row for row in params if row[0] not in present]
        if fresh:
            self._insert_ignoring(cur, fresh)
        cur.execute("RELEASE SAVEPOINT ingest")
        return {row[0] for row in fresh}

    def _insert_ignoring(self, cur, params: list[tuple]) -> int:
        cur.executemany(self._sql(f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) VALUES "
                                  f"({', '.join('?' * len(_EVENT_COLUMNS))}) ON CONFLICT (event_id) DO NOTHING"), params)
        return cur.rowcount

    def _events_by_id(self, cur, ids: list[str]) -> dict[str, tuple]:
        out = {}
        for chunk in _chunks(ids, self.max_params):
            cur.execute(self._sql(f"SELECT {', '.join(_EVENT_COLUMNS)} FROM events WHERE event_id IN "
                                  f"({', '.join('?' * len(chunk))})"), chunk)
            for row in cur.fetchall():
                out[row[0]] = tuple(row)
        return out

    def reservations_by_id(self, cur, ids: list[str]) -> dict[str, tuple]:
        """(account_id, channel, reported_by) of the reservations with these ids."""
        out = {}
        for chunk in _chunks(ids, self.max_params):
            cur.execute(self._sql(f"SELECT reservation_id, account_id, channel, reported_by FROM reservations "
                                  f"WHERE reservation_id IN ({', '.join('?' * len(chunk))})"), chunk)
            for rid, account, channel, reported in cur.fetchall():
                out[rid] = (account, channel, reported)
        return out

    def mark_reported(self, cur, pairs: list[tuple[str, str]]) -> None:
        """Mark reservations reported: ``(event_id, reservation_id)`` pairs."""
        if pairs:
            cur.executemany(self._sql("UPDATE reservations SET reported_by = ? WHERE reservation_id = ?"), pairs)

    def _window_sql(self, upper: str = "at") -> str:
        """The events a state as of ``?`` (until) reads: not later, and either inside the
        look-back (``at`` ≥ the second ``?``) or of a kind whose state never ages out
        (``upper``: the column the first ``?`` bounds)."""
        sticky = ", ".join(str(KIND[k]) for k in STICKY_KINDS)
        return (f"SELECT account_id, kind, at, amount, promise_date, channel, outcome, expiry_date FROM events "
                f"WHERE {upper} <= ? AND (at >= ? OR kind IN ({sticky}))")

    def _reserved_sql(self) -> str:
        """The unreported reservations in ``[second ?, first ?]`` as UNREPORTED contact attempts."""
        contact, unreported = KIND["CONTACT_ATTEMPT"], ENUMS["contact_outcome"].index("UNREPORTED")
        return (f"SELECT account_id, {contact}, at, NULL, NULL, channel, {unreported}, NULL FROM reservations "
                f"WHERE reported_by IS NULL AND at <= ? AND at >= ?")

    def read_events(self, accounts: Sequence[str] | None, until: int, since: int) -> EventColumns:
        """The events of ``accounts`` (None: every account) with ``at`` ≤ ``until`` and
        either ``at`` ≥ ``since`` or of a kind whose state never ages out, plus the
        unreported reservations in the same window as UNREPORTED contact attempts."""
        events, reserved = self._window_sql(), self._reserved_sql()
        with self.reading() as cur:
            if accounts is None:
                cur.execute(self._sql(f"{events} UNION ALL {reserved} UNION ALL {self._older_payments('')}"),
                            (until, since, until, since, since))
                return EventColumns.from_rows(cur.fetchall())
            rows: list = []
            for chunk in _chunks(list(accounts), self.max_params // 3):
                marks = ", ".join("?" * len(chunk))
                where = f"AND account_id IN ({marks})"
                cur.execute(self._sql(f"{events} {where} UNION ALL {reserved} {where} UNION ALL "
                                      f"{self._older_payments(where)}"),
                            (until, since, *chunk, until, since, *chunk, since, *chunk))
                rows.extend(cur.fetchall())
            return EventColumns.from_rows(rows)

    def read_appended(self, after: int, floor: int, until: int, since: int) -> "Appended":
        """What an incremental reader (:class:`kernel.ledger.book.BookEvents`) needs, in one
        snapshot: the events inserted after the sequence number ``after`` (0: every event)
        with ``at`` ≥ ``floor`` or of a sticky kind, in insertion order; the last payment
        before ``floor`` of each account among them (after = 0) or every such payment (later
        calls: the reader keeps each account's latest); and the unreported reservations in
        ``[since, until]`` (they change — a report marks them — so they are read afresh).
        ``after`` = 0 filters in the store; later calls read every new row (a day's worth)
        and filter here, on the same conditions."""
        seq = self.seq
        with self.reading() as cur:
            cur.execute(f"SELECT COALESCE(MAX({seq}), 0), COUNT(*) FROM events")
            last, total = (int(v) for v in cur.fetchone())
            cur.execute(self._sql(self._reserved_sql()), (until, since))
            reserved = EventColumns.from_rows(cur.fetchall())
            if after == 0:
                cur.execute(self._sql(f"{self._window_sql(seq)} ORDER BY {seq}"), (last, floor))
                rows = EventColumns.from_rows(cur.fetchall())
                cur.execute(self._sql(self._older_payments(f"AND {seq} <= ?")), (floor, last))
                older = EventColumns.from_rows(cur.fetchall())
                return Appended(last, total, 0, rows, older, reserved)
            cur.execute(self._sql(f"SELECT account_id, kind, at, amount, promise_date, channel, outcome, expiry_date "
                                  f"FROM events WHERE {seq} > ? AND {seq} <= ? ORDER BY {seq}"), (after, last))
            new = EventColumns.from_rows(cur.fetchall())
        sticky = np.isin(new.kind, _STICKY_CODES)
        keep = (new.at >= floor) | sticky
        older = np.flatnonzero(~keep & (new.kind == KIND["PAYMENT"]))
        return Appended(last, total, total - new.n, new.take(np.flatnonzero(keep)), new.take(older), reserved)

    def _older_payments(self, where: str) -> str:
        """Each account's last payment before the look-back (``at`` < the first parameter;
        ``where`` filters accounts): the state's last payment never ages out."""
        # SQLite takes a bare column's value from the row that gave MAX(at)
        return (f"SELECT account_id, {KIND['PAYMENT']} AS kind, MAX(at) AS at, amount, NULL AS promise_date, "
                f"NULL AS channel, NULL AS outcome, NULL AS expiry_date FROM events "
                f"WHERE kind = {KIND['PAYMENT']} AND at < ? {where} GROUP BY account_id")

    @contextmanager
    def reading(self) -> Iterator:
        """A cursor for reads (a consistent snapshot where the backend gives one)."""
        raise NotImplementedError

    def count_events(self) -> int:
        with self.reading() as cur:
            cur.execute("SELECT COUNT(*) FROM events")
            return int(cur.fetchone()[0])

    # -- GPS -----------------------------------------------------------------------------
    def gps_rows(self, cur, accounts: Sequence[str]) -> dict[str, tuple[int, int]]:
        """(first_ping_at, last_ping_at) of the accounts that have pinged."""
        out = {}
        for chunk in _chunks(list(accounts), self.max_params):
            cur.execute(self._sql(f"SELECT account_id, first_ping_at, last_ping_at FROM gps_last WHERE account_id IN "
                                  f"({', '.join('?' * len(chunk))})"), chunk)
            for account, first, last in cur.fetchall():
                out[account] = (int(first), int(last))
        return out

    def gps_gaps_of(self, cur, account: str) -> list[tuple[int, int]]:
        cur.execute(self._sql("SELECT from_at, to_at FROM gps_gaps WHERE account_id = ? ORDER BY from_at"), (account,))
        return [(int(a), int(b)) for a, b in cur.fetchall()]

    def write_gps(self, cur, last: list[tuple], gaps_added: list[tuple], gaps_removed: list[tuple]) -> None:
        """Upsert ``(account, first, last, position_at, lat, lon)`` rows (a null position
        keeps the stored one); add and remove offline gaps."""
        if gaps_removed:
            cur.executemany(self._sql("DELETE FROM gps_gaps WHERE account_id = ? AND from_at = ?"), gaps_removed)
        if gaps_added:
            cur.executemany(self._sql("INSERT INTO gps_gaps (account_id, from_at, to_at) VALUES (?, ?, ?) "
                                      "ON CONFLICT (account_id, from_at) DO UPDATE SET to_at = excluded.to_at"), gaps_added)
        if last:
            cur.executemany(self._sql(
                "INSERT INTO gps_last (account_id, first_ping_at, last_ping_at, position_at, lat, lon) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account_id) DO UPDATE SET "
                "first_ping_at = excluded.first_ping_at, last_ping_at = excluded.last_ping_at, "
                "position_at = COALESCE(excluded.position_at, gps_last.position_at), "
                "lat = COALESCE(excluded.lat, gps_last.lat), lon = COALESCE(excluded.lon, gps_last.lon)"), last)

    def read_gps(self, accounts: Sequence[str] | None, until: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(account, first ping, last ping, start of the gap holding ``until`` or NULL_TIME)."""
        with self.reading() as cur:
            if accounts is None:
                cur.execute("SELECT account_id, first_ping_at, last_ping_at FROM gps_last")
                last = cur.fetchall()
                cur.execute(self._sql("SELECT account_id, from_at FROM gps_gaps WHERE from_at <= ? AND to_at > ?"),
                            (until, until))
                gaps = dict(cur.fetchall())
            else:
                last, gaps = [], {}
                for chunk in _chunks(list(accounts), self.max_params - 2):
                    marks = ", ".join("?" * len(chunk))
                    cur.execute(self._sql(f"SELECT account_id, first_ping_at, last_ping_at FROM gps_last "
                                          f"WHERE account_id IN ({marks})"), chunk)
                    last.extend(cur.fetchall())
                    cur.execute(self._sql(f"SELECT account_id, from_at FROM gps_gaps WHERE from_at <= ? AND to_at > ? "
                                          f"AND account_id IN ({marks})"), (until, until, *chunk))
                    gaps.update(cur.fetchall())
        if not last:
            empty = np.zeros(0, np.int64)
            return np.zeros(0, object), empty, empty, empty
        account, first, latest = zip(*last)
        gap = np.array([gaps.get(a, NULL_TIME) for a in account], np.int64)
        return np.array(account, dtype=object), np.array(first, np.int64), np.array(latest, np.int64), gap

    def offline_periods(self, accounts: Sequence[str] | None, since: int,
                        until: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(account, from, to) of the stored offline periods (``gps_gaps``) of ``accounts``
        (None: every car) that began in ``[since, until]`` — what the temporal patterns read
        (the silence after a car's last ping is not a stored period: see :meth:`read_gps`)."""
        query = "SELECT account_id, from_at, to_at FROM gps_gaps WHERE from_at >= ? AND from_at <= ?"
        with self.reading() as cur:
            if accounts is None:
                cur.execute(self._sql(query), (since, until))
                rows = cur.fetchall()
            else:
                rows = []
                for chunk in _chunks(list(accounts), self.max_params - 2):
                    cur.execute(self._sql(f"{query} AND account_id IN ({', '.join('?' * len(chunk))})"),
                                (since, until, *chunk))
                    rows.extend(cur.fetchall())
        if not rows:
            return np.zeros(0, object), np.zeros(0, np.int64), np.zeros(0, np.int64)
        account, start, end = zip(*rows)
        return np.array(account, dtype=object), np.array(start, np.int64), np.array(end, np.int64)

    def purge_positions(self, older_than: int) -> int:
        """Forget last positions older than ``older_than`` (µs); returns how many."""
        with self.transaction() as cur:
            cur.execute(self._sql("UPDATE gps_last SET lat = NULL, lon = NULL, position_at = NULL "
                                  "WHERE position_at < ?"), (older_than,))
            return cur.rowcount

    # -- accounts (the gate's book columns) ------------------------------------------------
    def register(self, rows: list[tuple], now: int) -> None:
        """Upsert ``(account_id, *REGISTRY_COLUMNS)`` rows."""
        cols = ("account_id",) + REGISTRY_COLUMNS + ("registered_at",)
        updates = ", ".join(f"{c} = excluded.{c}" for c in cols[1:])
        with self.transaction() as cur:
            cur.executemany(self._sql(f"INSERT INTO accounts ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
                                      f"ON CONFLICT (account_id) DO UPDATE SET {updates}"),
                            [tuple(r) + (now,) for r in rows])

    def registered(self, accounts: Sequence[str] | None) -> dict[str, tuple]:
        """The registered book columns (REGISTRY_COLUMNS order) of ``accounts`` (None: all)."""
        cols = ", ".join(("account_id",) + REGISTRY_COLUMNS)
        out = {}
        with self.reading() as cur:
            if accounts is None:
                cur.execute(f"SELECT {cols} FROM accounts")
                rows = cur.fetchall()
            else:
                rows = []
                for chunk in _chunks(list(accounts), self.max_params):
                    cur.execute(self._sql(f"SELECT {cols} FROM accounts WHERE account_id IN "
                                          f"({', '.join('?' * len(chunk))})"), chunk)
                    rows.extend(cur.fetchall())
        for row in rows:
            values = list(row[1:])
            for i, name in enumerate(REGISTRY_COLUMNS):
                if name in _REGISTRY_BOOL and values[i] is not None:
                    values[i] = bool(values[i])
            out[row[0]] = tuple(values)
        return out

    def knows(self, account: str) -> bool:
        """Whether the ledger has heard of ``account``: a row of it in one of
        :data:`ACCOUNT_TABLES` (the accounts :meth:`all_accounts` lists)."""
        with self.reading() as cur:
            cur.execute(self._sql(" UNION ALL ".join(
                f"SELECT 1 FROM (SELECT 1 FROM {table} WHERE account_id = ? LIMIT 1) {table}"
                for table in ACCOUNT_TABLES)), (account,) * len(ACCOUNT_TABLES))
            return cur.fetchone() is not None

    def all_accounts(self) -> list[str]:
        """Every account the ledger has heard of (:meth:`knows`), sorted."""
        with self.reading() as cur:
            cur.execute(" UNION ".join(f"SELECT account_id FROM {table}" for table in ACCOUNT_TABLES))
            return sorted(r[0] for r in cur.fetchall())

    def registered_in(self, cur, account: str) -> tuple | None:
        """One account's registered book columns, read inside an open transaction (``cur``),
        or read now on this thread's connection (``cur`` None: one statement, one snapshot —
        what a gRPC Decide's registration checks, without a transaction's begin and end)."""
        sql = self._registered_sql
        if sql is None:
            sql = self._registered_sql = self._sql(f"SELECT {', '.join(REGISTRY_COLUMNS)} FROM accounts "
                                                   f"WHERE account_id = ?")
        if cur is None:
            rows = self._query(sql, (account,))
            row = rows[0] if rows else None
        else:
            cur.execute(sql, (account,))
            row = cur.fetchone()
        if row is None:
            return None
        return _registered_values(row)

    _registered_sql: str | None = None

    # -- reservations ----------------------------------------------------------------------
    def add_reservation(self, cur, reservation_id: str, account: str, channel: int, at: int, expires_at: int,
                        created_at: int) -> None:
        cur.execute(self._sql("INSERT INTO reservations (reservation_id, account_id, channel, at, expires_at, created_at) "
                              "VALUES (?, ?, ?, ?, ?, ?)"), (reservation_id, account, channel, at, expires_at, created_at))

    def account_rows(self, cur, account: str, until: int, since: int,
                     offline_since: int | None = None) -> tuple[list[tuple], tuple | None, list[tuple[int, int]]]:
        """One account's events (as :meth:`read_events`, as rows ``(kind, at, amount,
        promise_date, channel, outcome, expiry_date)`` with None for null, in the fold's
        order) and its reduced
        GPS state ``(first ping, last ping, start of the gap holding until or NULL_TIME)``
        or None, and its offline periods ``[(from, to)]`` that began in ``[offline_since,
        until]`` (the temporal patterns read them), in one round trip (``cur``: an open
        transaction's cursor, or None to read on this thread's connection)."""
        sql = self._account_sql
        if sql is None:
            sql = self._account_sql = self._sql(self._account_select())
        params = (account, until, since, account, until, since, account,
                  account, until, until + 1 if offline_since is None else offline_since, until, since, account)
        if cur is None:
            rows = self._query(sql, params)
        else:
            cur.execute(sql, params)
            rows = cur.fetchall()
        return _split_account_rows(rows, until, offline_since)

    def account_rows_now(self, account: str, until: int, since: int,
                         offline_since: int) -> tuple[list[tuple], tuple | None, list[tuple[int, int]]]:
        """:meth:`account_rows` read now, outside a transaction (the path a gRPC Decide
        takes); :class:`SQLiteStore` answers it from a cache that is never stale."""
        return self.account_rows(None, account, until, since, offline_since)

    def kept_rows_span(self, account: str, until: int, since: int, offline_since: int) -> tuple | None:
        """What :meth:`account_rows_now` keeps of the account as of ``until`` (asked with the same
        look-backs): ``(version, from, until, rows)`` — the store's :meth:`version_now` when the
        rows were read, the instants between which it hands back the very list ``rows`` while
        that version stands — when it keeps them and the account has no GPS rows (its answer
        moves with the clock only at those instants); else None. The base store keeps nothing."""
        return None

    def version_now(self):
        """What changes whenever a commit reaches the store (None: this store cannot say)."""
        return None

    def _account_select(self, edges: bool = False, registration: bool = False) -> str:
        """The statement of :meth:`account_rows`; ``edges`` (SQLite): with two more rows, kind −3,
        whose ``at`` is the earliest instant after ``until`` of any of the account's events,
        reservations or offline periods (six more parameters: account, until, three times), and
        kind −4, whose ``at`` is ``PRAGMA data_version`` as of the rows' own snapshot;
        ``registration`` (SQLite, :meth:`SQLiteStore.gate_rows`): with the account's
        registration as a row of kind −5 (one more parameter: account)."""
        sticky = ", ".join(str(KIND[k]) for k in STICKY_KINDS)
        contact, unreported = KIND["CONTACT_ATTEMPT"], ENUMS["contact_outcome"].index("UNREPORTED")
        # GPS rows ride along as kinds −1 (first and last ping) and −2 (an offline period:
        # the one holding `until`, and those the patterns read)
        later = (" UNION ALL SELECT -3, MIN(t), NULL, NULL, NULL, NULL, NULL FROM ("
                 "SELECT MIN(at) AS t FROM events WHERE account_id = ? AND at > ? UNION ALL "
                 "SELECT MIN(at) FROM reservations WHERE account_id = ? AND at > ? UNION ALL "
                 "SELECT MIN(from_at) FROM gps_gaps WHERE account_id = ? AND from_at > ?) AS later "
                 "UNION ALL SELECT -4, data_version, NULL, NULL, NULL, NULL, NULL FROM pragma_data_version") \
            if edges else ""
        if registration:       # (SQLite keeps each value's own type through the union: texts stay texts)
            packed = " + ".join(f"{3 ** i} * IFNULL({name} != 0, 2)" for i, name in enumerate(_REGISTRY_FLAGS))
            later += (f" UNION ALL SELECT {_REGISTERED}, NULL, {', '.join(_REGISTRY_TEXTS)}, {packed} "
                      f"FROM accounts WHERE account_id = ?")
        return (f"SELECT kind, at, amount, promise_date, channel, outcome, expiry_date FROM ("
                f"SELECT kind, at, amount, promise_date, channel, outcome, expiry_date FROM events "
                f"WHERE account_id = ? AND at <= ? AND (at >= ? OR kind IN ({sticky})) UNION ALL "
                f"SELECT {contact}, at, NULL, NULL, channel, {unreported}, NULL FROM reservations "
                f"WHERE account_id = ? AND reported_by IS NULL AND at <= ? AND at >= ? UNION ALL "
                f"SELECT -1, last_ping_at, NULL, first_ping_at, NULL, NULL, NULL FROM gps_last WHERE account_id = ? "
                f"UNION ALL SELECT -2, from_at, NULL, to_at, NULL, NULL, NULL FROM gps_gaps "
                f"WHERE account_id = ? AND from_at <= ? AND (from_at >= ? OR to_at > ?) UNION ALL "
                f"SELECT kind, at, amount, promise_date, channel, outcome, expiry_date FROM "
                f"({self._older_payments('AND account_id = ?')}) AS older{later}) AS u "
                # the fold's order (kernel.ledger.state._order): nulls first, amounts' last
                f"ORDER BY {_ROWS_ORDER}")

    _account_sql: str | None = None

    def gate_rows(self, cur, account: str, until: int, since: int, offline_since: int | None
                  ) -> tuple[tuple | None, list[tuple], tuple | None, list[tuple[int, int]]]:
        """What the contact-time gate reads of one account in its open transaction ``cur``:
        ``(registered, rows, gps, offline)`` — :meth:`registered_in` (None: never registered;
        then nothing else is read) and :meth:`account_rows`. :class:`SQLiteStore` and
        :class:`~kernel.ledger.postgres.PostgresStore` read both with one statement."""
        registered = self.registered_in(cur, account)
        if registered is None:
            return None, [], None, []
        return (registered, *self.account_rows(cur, account, until, since, offline_since))

    def registered_rows_now(self, account: str, until: int, since: int, offline_since: int
                            ) -> tuple[tuple | None, list[tuple], tuple | None, list[tuple[int, int]]]:
        """:meth:`registered_in` (None: never registered) and :meth:`account_rows_now` of one
        account read now, in one snapshot: what a gRPC Decide reads of an account whose
        registration this process does not know yet (its rows are read whether it is
        registered or not). :class:`SQLiteStore` reads both with one statement."""
        with self.reading() as cur:
            return (self.registered_in(cur, account), *self.account_rows(cur, account, until, since, offline_since))

    def _query(self, sql: str, params: tuple) -> list:
        """One read statement's rows (one snapshot)."""
        with self.reading() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    # -- whole-store copies ----------------------------------------------------------------
    def dump_tables(self) -> dict[str, list[tuple]]:
        """Every row of every data table (tests compare stores with it)."""
        out = {}
        with self.reading() as cur:
            for table, order in (("events", "event_id"), ("reservations", "reservation_id"),
                                 ("gps_last", "account_id"), ("gps_gaps", "account_id, from_at"),
                                 ("accounts", "account_id")):
                cur.execute(f"SELECT * FROM {table} ORDER BY {order}")
                names = [d[0] for d in cur.description]
                if table == "events" and self.seq in names:     # (the insertion sequence: the store's own)
                    keep = [i for i, name in enumerate(names) if name != self.seq]
                    out[table] = [tuple(r[i] for i in keep) for r in cur.fetchall()]
                else:
                    out[table] = [tuple(r) for r in cur.fetchall()]
        return out


#: the order of :meth:`Store.account_rows`' rows: the fold's (kernel.ledger.state._order), nulls first, amounts' last
_ROWS_ORDER = "at, kind, channel IS NOT NULL, channel, outcome IS NOT NULL, outcome, amount IS NULL, amount"


def _registered_values(row) -> tuple:
    """A registration's ``REGISTRY_COLUMNS`` values as read (the flags as stored numbers) →
    as answered: the flags as bool, None kept."""
    return tuple(bool(v) if name in _REGISTRY_BOOL and v is not None else v for name, v in zip(REGISTRY_COLUMNS, row))


#: accounts whose rows a thread's cache holds (then it starts over)
_CACHED_ACCOUNTS = 10_000
_NEVER = 2 ** 63 - 1
_ABSENT = object()


class KeptRows(list):
    """An account's events as :meth:`SQLiteStore.account_rows_now` keeps them: the same list
    while they cannot have changed (what is built from it may be kept with it), never changed."""


def _split_account_rows(rows: list, until: int,
                        offline_since: int | None) -> tuple[list[tuple], tuple | None, list[tuple[int, int]]]:
    """:meth:`Store.account_rows`' answer from its statement's rows (as of ``until``)."""
    if not rows or min(r[0] for r in rows) >= 0:
        return rows, None, []
    return ([row for row in rows if row[0] >= 0],
            *_gps_of([row for row in rows if row[0] < 0], until, offline_since))


def _asked(entries: dict, key: tuple) -> None:
    """Note in a thread's rows cache that ``key`` was asked once (its rows not kept: the next
    question fills the entry), emptying a full cache first."""
    if len(entries) >= _CACHED_ACCOUNTS:
        entries.clear()
    entries[key] = None


def _registered_rows_params(account: str, until: int, since: int, offline_since: int | None) -> tuple:
    """The parameters of :meth:`SQLiteStore._registered_rows_sql`."""
    return (account, until, since, account, until, since, account, account, until,
            until + 1 if offline_since is None else offline_since, until, since, account, account)


def _registration_of(rows: list) -> tuple[tuple | None, list]:
    """(the registration, the account's rows) of :meth:`SQLiteStore._registered_rows_sql`'s
    rows; the registration None when there is no row of kind −5 (never registered)."""
    if not rows or rows[0][0] != _REGISTERED:
        return None, rows
    first = rows[0]
    del rows[0]
    return (first[2], first[3], first[4], first[5], *_FLAGS_OF[first[6]]), rows


def _gps_of(extras: list, until: int, offline_since: int | None) -> tuple[tuple | None, list[tuple[int, int]]]:
    """The reduced GPS state and the offline periods of an account's GPS rows (kinds −1, −2)."""
    first = last = None
    gap = NULL_TIME
    offline = []
    since_offline = until + 1 if offline_since is None else offline_since
    for row in extras:
        if row[0] == -1:
            last, first = row[1], row[3]
        else:                                  # an offline period: holding `until`, or recent
            if row[3] > until:
                gap = row[1]
            if row[1] >= since_offline:
                offline.append((row[1], row[3]))
    return None if last is None else (first, last, gap), offline


def _chunks(values: list, size: int) -> Iterator[list]:
    for i in range(0, len(values), size):
        yield values[i:i + size]


# --------------------------------------------------------------------------------------------
# SQLite
# --------------------------------------------------------------------------------------------

class SQLiteStore(Store):
    """One SQLite file: WAL journal, ``synchronous = FULL`` (a commit is on disk when it
    returns), a connection per thread, writers serialized by SQLite's own lock (``BEGIN
    IMMEDIATE``: a transaction that writes holds the lock from its first statement, so a
    gate's read-check-reserve cannot interleave with another's). The transactions that lock an
    account (the gate's) share one connection per durability among the process's threads,
    taken in turn (:meth:`transaction`)."""

    mark = "?"
    real = "REAL"
    max_params = 30_000
    busy_timeout_ms = 30_000
    _errors = (sqlite3.Error,)

    def __init__(self, path: str | os.PathLike, url: str | None = None):
        self.path = Path(path)
        self.url = url or f"sqlite:///{self.path}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"{self.url}: cannot create its folder: {e.strerror or e}") from None
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        #: the account-locking transactions' connections, by synced (unsynced, synced), and their turn
        self._locking: list[sqlite3.Connection | None] = [None, None]
        self._locking_turn = threading.RLock()
        with self.transaction() as cur:
            cur.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'ledger_schema'")
            current = 0
            if cur.fetchone():
                cur.execute("SELECT version FROM ledger_schema")
                current = int(cur.fetchone()[0])
            else:
                cur.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'")
                if cur.fetchone()[0]:
                    raise StoreError(f"{self.url}: holds tables but is not a postloan ledger")
            self._check_version(current)
            self._migrate(cur, current)

    def _connection(self, synced: bool = True) -> sqlite3.Connection:
        """This thread's connection: ``synced`` (``synchronous = FULL``), or the one whose
        commits do not wait for the disk (``NORMAL``: the gate's unsynced reservations —
        in WAL mode their commit is in the log, synced with the next synced commit or
        checkpoint; a connection of its own, so that no call pays for switching the pragma
        back and forth)."""
        conn = getattr(self._local, "conn" if synced else "unsynced", None)
        if conn is None:
            conn = self._open(synced)
            setattr(self._local, "conn" if synced else "unsynced", conn)
        return conn

    def _open(self, synced: bool) -> sqlite3.Connection:
        """A new connection to the file (:meth:`_connection`'s settings), closed by :meth:`close`."""
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=self.busy_timeout_ms / 1000)
            conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
            self._wal(conn)
            conn.execute("PRAGMA synchronous = FULL" if synced else "PRAGMA synchronous = NORMAL")
            # measured on ingest (bench_ledger): a 64 MiB page cache, the file mapped and the
            # WAL checkpointed every 10,000 pages instead of 1,000 take a 400,000-event ingest
            # from ≈ 80 k to ≈ 100 k events/s; durability is the same (FULL syncs each commit)
            conn.execute("PRAGMA cache_size = -65536")
            conn.execute("PRAGMA mmap_size = 268435456")
            conn.execute("PRAGMA wal_autocheckpoint = 10000")
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.url}: not a usable SQLite database ({e})") from None
        with self._lock:
            self._all.append(conn)
        return conn

    def _wal(self, conn: sqlite3.Connection) -> None:
        """Switch to the WAL journal. SQLite answers "locked" at once, without its busy
        handler, while another process is creating the same new file: wait and try again."""
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        delay = 0.005
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.2)

    def transaction(self, lock_account: str | None = None, synced: bool = True) -> "_SQLiteTransaction":
        """(unsynced: WAL + NORMAL, the commit is in the log.) A transaction that locks an
        account (the gate's) runs on the connection the process's threads share for them, one
        thread at a time (waiting at most the busy timeout): SQLite lets one writer at a time
        in anyway, and a connection drops its whole page cache when it sees another
        connection's commit — with a connection per thread, a thread's next gate question
        found its cache dropped by the other threads' reservations and read every page
        again."""
        if lock_account is None:
            return _SQLiteTransaction(self.url, self._connection(synced))
        return _SharedSQLiteTransaction(self, synced)

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Cursor]:
        conn = self._connection()
        cur = conn.cursor()
        cur.execute("BEGIN")                      # one snapshot for every statement of the read
        try:
            yield cur
        except sqlite3.Error as e:
            conn.rollback()
            raise StoreError(f"{self.url}: {e}") from None
        except BaseException:
            conn.rollback()
            raise
        cur.execute("COMMIT")

    def version(self) -> int:
        with self.reading() as cur:
            cur.execute("SELECT version FROM ledger_schema")
            return int(cur.fetchone()[0])

    def account_rows_now(self, account: str, until: int, since: int,
                         offline_since: int) -> tuple[list[tuple], tuple | None, list[tuple[int, int]]]:
        """:meth:`Store.account_rows` read now, from this thread's cache of the statement's
        rows when they cannot have changed: no commit to the file since they were read —
        neither by this connection (its ``total_changes``, read before the rows) nor by any
        other connection or process (``data_version``, read by the same statement as the rows,
        in their snapshot) — and ``until`` not earlier than when they were
        read and before the first instant at which the statement's answer moves with the
        clock: a stored event, reservation or offline period after the read's ``until``
        entering the window, or a row read leaving it (``until`` − its ``at`` past the
        look-back; an offline period neither recent nor holding ``until``). Then the rows are
        exactly what the statement would read now; the state is folded from them as of
        ``until`` every time (today's counters move with the clock). An account asked for the
        first time is read plainly (nothing kept but that it was asked): the cache costs a
        one-question-per-account caller nothing."""
        conn = self._connection()
        entries = self._rows_cache(conn)
        key = (account, until - since, until - offline_since)
        hit = entries.get(key, _ABSENT)
        if hit is _ABSENT:                       # asked for the first time: read plainly (the rows of
            _asked(entries, key)                 # an account asked once are not worth keeping); a
            return self.account_rows(None, account, until, since, offline_since)   # second question fills the cache
        try:
            if hit is not None and hit[1] <= until < hit[2] and hit[0] == (
                    conn.execute("PRAGMA data_version").fetchone()[0], conn.total_changes, self._generation):
                # (the very list of events every hit: the fold's inputs built from it are kept)
                return (hit[3], *_gps_of(hit[4], until, offline_since)) if hit[4] else (hit[3], None, [])
            changes, generation = conn.total_changes, self._generation
            sql = self._account_edges_sql
            if sql is None:
                sql = self._account_edges_sql = self._account_select(edges=True)
            rows = conn.execute(sql, (account, until, since, account, until, since, account, account, until,
                                      offline_since, until, since, account,
                                      account, until, account, until, account, until)).fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"{self.url}: {e}") from None
        valid_until = _NEVER
        version = None
        lookback, offline_lookback = until - since, until - offline_since
        kept = []
        for row in rows:
            kind, at = row[0], row[1]
            if kind == -4:                       # data_version, read in the rows' own snapshot
                version = at
            elif kind >= 0:
                kept.append(row)
                if at >= since:                  # leaves the window once until > at + look-back
                    valid_until = min(valid_until, at + lookback + 1)
            elif kind == -3:
                if at is not None:               # enters the window once until reaches it
                    valid_until = min(valid_until, at)
            else:
                kept.append(row)
                if kind == -2:                   # read while recent or holding until
                    valid_until = min(valid_until, max(at + offline_lookback + 1, row[3]))
        if len(entries) >= _CACHED_ACCOUNTS:
            entries.clear()
        events = KeptRows(row for row in kept if row[0] >= 0)
        extras = [row for row in kept if row[0] < 0]
        entries[key] = ((version, changes, generation), until, valid_until, events, extras)
        return (events, *_gps_of(extras, until, offline_since)) if extras else (events, None, [])

    _account_edges_sql: str | None = None

    def kept_rows_span(self, account: str, until: int, since: int, offline_since: int) -> tuple | None:
        entries = getattr(self._local, "rows_cache", None)
        if entries is None or entries[0] is not getattr(self._local, "conn", None):
            return None
        hit = entries[1].get((account, until - since, until - offline_since))
        if hit is None or hit[4] or not hit[1] <= until < hit[2]:
            return None
        return (entries[0], *hit[0]), hit[1], hit[2], hit[3]

    def version_now(self) -> tuple:
        """(this thread's connection, its ``PRAGMA data_version`` and ``total_changes``, restores
        through this store): :meth:`account_rows_now`'s test that nothing was committed since
        a read — the connection with them, as the rows cache is its connection's (another
        connection's counters say nothing of this one's)."""
        conn = self._connection()
        try:
            return conn, conn.execute("PRAGMA data_version").fetchone()[0], conn.total_changes, self._generation
        except sqlite3.Error as e:
            raise StoreError(f"{self.url}: {e}") from None

    def _rows_cache(self, conn: sqlite3.Connection) -> dict:
        """This thread's cache of :meth:`account_rows_now` (emptied with a new connection)."""
        entries = getattr(self._local, "rows_cache", None)
        if entries is None or entries[0] is not conn:
            entries = self._local.rows_cache = (conn, {})
        return entries[1]

    def gate_rows(self, cur, account: str, until: int, since: int, offline_since: int | None
                  ) -> tuple[tuple | None, list[tuple], tuple | None, list[tuple[int, int]]]:
        """:meth:`Store.gate_rows` in one statement: :meth:`account_rows`' statement with the
        account's registration riding along as one more row (kind −5, ``at`` NULL: the first
        in its order) carrying the four registered texts and the four registered flags packed
        into one number (:data:`_FLAGS_OF`); no such row: never registered."""
        cur.execute(self._registered_rows_sql(), _registered_rows_params(account, until, since, offline_since))
        registered, rows = _registration_of(cur.fetchall())
        if registered is None:
            return None, [], None, []
        return (registered, *_split_account_rows(rows, until, offline_since))

    def registered_rows_now(self, account: str, until: int, since: int, offline_since: int
                            ) -> tuple[tuple | None, list[tuple], tuple | None, list[tuple[int, int]]]:
        """:meth:`Store.registered_rows_now` with :meth:`gate_rows`' one statement, read
        outside a transaction (one statement reads one snapshot). Counts as the account's
        first question to :meth:`account_rows_now`'s cache (the next one fills it)."""
        conn = self._connection()
        entries = self._rows_cache(conn)
        key = (account, until - since, until - offline_since)
        if key not in entries:
            _asked(entries, key)
        try:
            rows = conn.execute(self._registered_rows_sql(),
                                _registered_rows_params(account, until, since, offline_since)).fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"{self.url}: {e}") from None
        registered, rows = _registration_of(rows)
        return (registered, *_split_account_rows(rows, until, offline_since))

    def _registered_rows_sql(self) -> str:
        """:meth:`account_rows`' statement with the account's registration riding along as one
        more row (kind −5, ``at`` NULL: the first in its order) carrying the four registered
        texts and the four registered flags packed into one number (:data:`_FLAGS_OF`)."""
        sql = self._registered_rows_text
        if sql is None:
            sql = self._registered_rows_text = self._account_select(registration=True)
        return sql

    _registered_rows_text: str | None = None
    #: bumped when the file's content is replaced through this store's own connection (restore)
    _generation = 0

    def _query(self, sql: str, params: tuple) -> list:
        try:                        # one statement outside a transaction reads one snapshot
            return self._connection().execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"{self.url}: {e}") from None

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
            self._locking = [None, None]
        self._local = threading.local()

    def backup(self, target: str | os.PathLike) -> None:
        """A consistent copy of the whole ledger into the file ``target`` while it is in use
        (SQLite's online backup API: one read snapshot, writers go on). The copy is written
        next to ``target``, synced, then renamed over it: ``target`` is whole or untouched."""
        target = Path(target)
        if not target.parent.is_dir():
            raise StoreError(f"{self.url}: backup: the folder of {target} does not exist")
        if target.exists() and target.resolve() == self.path.resolve():
            raise StoreError(f"{self.url}: backup: {target} is the ledger itself")
        tmp = target.with_name(target.name + ".part")
        try:
            tmp.unlink(missing_ok=True)
            out = sqlite3.connect(tmp)
            try:
                self._connection().backup(out)
                out.execute("PRAGMA journal_mode = DELETE")     # one self-contained file
            finally:
                out.close()
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, target)
            _fsync_dir(target.parent)
        except (sqlite3.Error, OSError) as e:
            raise StoreError(f"{self.url}: backup to {target} failed ({_reason(e)})") from None
        finally:
            tmp.unlink(missing_ok=True)

    def restore(self, source: str | os.PathLike) -> None:
        """Replace this ledger's content with the backup file ``source`` (checked first: a
        postloan ledger, of a schema version this postloan knows), in one step other
        connections see whole, then bring it to this schema version."""
        source = Path(source)
        if not source.is_file():
            raise StoreError(f"{self.url}: restore: {source} is not a file")
        try:
            src = sqlite3.connect(f"file:{quote(str(source.resolve()))}?mode=ro", uri=True)
        except sqlite3.Error as e:
            raise StoreError(f"{self.url}: restore: cannot open {source} ({_reason(e)})") from None
        try:
            try:
                version = int(src.execute("SELECT version FROM ledger_schema").fetchone()[0])
                src.execute("SELECT COUNT(*) FROM events").fetchone()
            except (sqlite3.DatabaseError, TypeError):
                raise StoreError(f"{self.url}: restore: {source} is not a backup of a postloan ledger") from None
            self._check_version(version)
            self._generation += 1             # the content changes under this connection's caches
            src.backup(self._connection())
            self._generation += 1
        except sqlite3.Error as e:
            raise StoreError(f"{self.url}: restore from {source} failed ({_reason(e)})") from None
        finally:
            src.close()
        with self.transaction() as cur:             # bring an older backup up to date
            cur.execute("SELECT version FROM ledger_schema")
            self._migrate(cur, int(cur.fetchone()[0]))


class _SQLiteTransaction:
    """:meth:`SQLiteStore.transaction`: ``BEGIN IMMEDIATE`` on entering (the cursor), ``COMMIT``
    when the block ends, rolled back when it raises — an SQLite error as a :class:`StoreError`
    naming the store. A class rather than a ``@contextmanager`` generator: the gate opens one
    per ``CheckContact``, and the generator's frame, its wrapper and their two resumptions cost
    more than these two methods."""

    __slots__ = ("url", "conn", "cur")

    def __init__(self, url: str, conn: sqlite3.Connection):
        self.url, self.conn = url, conn

    def __enter__(self) -> sqlite3.Cursor:
        cur = self.cur = self.conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.url}: cannot start a transaction ({e})") from None
        return cur

    def __exit__(self, kind, error, trace) -> bool:
        if kind is not None:
            self.conn.rollback()
            if issubclass(kind, sqlite3.Error):
                raise StoreError(f"{self.url}: {error} (the transaction was rolled back)") from None
            return False
        try:
            self.cur.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            self.conn.rollback()
            raise StoreError(f"{self.url}: commit failed ({e})") from None
        return False


class _SharedSQLiteTransaction(_SQLiteTransaction):
    """:meth:`SQLiteStore.transaction` of an account-locking transaction: on the store's shared
    connection for them (opened on first use), taken for the transaction's length."""

    __slots__ = ("store", "synced")

    def __init__(self, store: SQLiteStore, synced: bool):
        self.url, self.store, self.synced = store.url, store, synced

    def __enter__(self) -> sqlite3.Cursor:
        store = self.store
        turn = store._locking_turn
        if not turn.acquire(timeout=store.busy_timeout_ms / 1000):
            raise StoreError(f"{self.url}: cannot start a transaction (another thread of this process held "
                             f"the ledger for {store.busy_timeout_ms / 1000:g} s)")
        try:
            conn = store._locking[self.synced]
            if conn is None:
                conn = store._locking[self.synced] = store._open(self.synced)
            self.conn = conn
            return super().__enter__()
        except BaseException:
            turn.release()
            raise

    def __exit__(self, kind, error, trace) -> bool:
        try:
            return super().__exit__(kind, error, trace)
        finally:
            self.store._locking_turn.release()


def _reason(error: BaseException) -> str:
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (where the platform allows opening a folder)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def open_store(url: str | os.PathLike | None = None, *, existing: bool = False) -> Store:
    """The store at ``url`` (default :func:`default_url`): ``sqlite:///…`` or a path for
    SQLite, ``postgresql://…`` for PostgreSQL. A SQLite file is created where none is, unless
    ``existing`` (what only reads or copies a ledger asks: a mistyped path is an error, not an
    empty ledger)."""
    url = str(url) if url is not None else default_url()
    parsed = urlparse(url)
    if parsed.scheme in ("postgresql", "postgres"):
        from .postgres import PostgresStore
        return PostgresStore(url)
    if parsed.scheme == "sqlite":
        if parsed.netloc:
            raise StoreError(f"{url}: a SQLite URL has no host: sqlite:///relative.db or sqlite:////absolute.db")
        path = unquote(parsed.path[1:] if parsed.path.startswith("/") else parsed.path)
        if not path:
            raise StoreError(f"{url}: names no file")
        return _sqlite_store(path, url, existing)
    if parsed.scheme and len(parsed.scheme) > 1:
        raise StoreError(f"{mask_url(url)}: unknown store; use sqlite:///FILE or postgresql://USER@HOST/DB")
    return _sqlite_store(url, f"sqlite:///{url}", existing)


def _sqlite_store(path: str, url: str, existing: bool) -> SQLiteStore:
    if existing and not os.path.isfile(path):
        raise StoreError(f"{url}: no ledger there (no such file; `postloan ingest`, or a decide or serve "
                         "with --store, creates one)")
    return SQLiteStore(path, url)

