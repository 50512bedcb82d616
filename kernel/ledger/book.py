"""The whole book's events kept in memory, brought up to date by what was appended since.

A simulator (kernel.evaluation.simulate), or anyone asking the ledger for the state of the
whole book day after day, would otherwise read every account's events again each day
(1.8 M rows for the demo's 100,000 accounts: SQLite hands each row to Python for ≈ 2.5 µs).
:class:`BookEvents` reads them once, keeps the columns, and on each later read fetches only
the rows inserted since (the store's insertion sequence: SQLite's rowid, PostgreSQL's
``seq`` column — :meth:`~kernel.ledger.store.Store.read_appended`). What it hands to
:func:`~kernel.ledger.state.derive` is what :meth:`~kernel.ledger.store.Store.read_events`
would have read at that moment, row for row, in the same order: the same fold then gives the
same state (tests/ledger/test_book_events.py compares every column, on both stores).

What it keeps, for a look-back that starts at ``floor`` (the ``since`` of the reads so far):

- every event with ``at`` ≥ ``floor`` or of a sticky kind, whatever its ``at`` (a later
  ``until`` may reach events stamped in the future), in insertion order;
- each account's last payment before ``floor`` (the state's last payment never ages out).

An event may arrive late (its ``at`` older than events already seen): it is kept, or
becomes an account's last older payment, by the same conditions. The look-back moves with
the moment asked: the events that fall out of it are dropped, their payments folded into the
last older payments. A read further back than ``floor`` reads everything afresh; so does a
read that finds the store rewritten under it (fewer or other rows than counted: a restore).
Unreported reservations change (a report marks them), so they are read afresh each time, in
the same snapshot as the appended rows.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..hookspecs import NULL_TIME
from .events import KIND
from .store import _STICKY_CODES, EventColumns, Store

__all__ = ["BookEvents"]

_PAYMENT = KIND["PAYMENT"]


class BookEvents:
    """The events of every account of ``store`` as of the last read (see the module)."""

    def __init__(self, store: Store):
        self.store = store
        self.loads = 0                  # full reads (tests and the benchmark look)
        self.appended = 0               # rows read as appended since
        self.reset()

    def reset(self) -> None:
        """Forget what was read (the next read reads every event)."""
        self.floor: int | None = None
        self.last = 0                   # the last sequence number read
        self.count = 0                  # events the store held then
        self.rows = EventColumns.from_rows([])
        self.older: dict[str, tuple[int, float]] = {}     # account -> (at, amount) of its last payment < floor
        self._older_columns: EventColumns | None = None
        # each account a number: the rows' accounts as numbers (``code``), for picking the
        # rows of the accounts asked without comparing strings; the rows' account ids are
        # the names' own objects (one string per account, not one per row)
        self.names: list[str] = []
        self.number: dict[str, int] = {}
        self.code = np.zeros(0, np.int32)

    def read(self, until: int, since: int, accounts=None) -> EventColumns:
        """The events of ``accounts`` (None: every account) as :meth:`Store.read_events`
        ``(accounts, until, since)`` reads them now."""
        if self.floor is None or since < self.floor:
            appended = self._load(since, until)
        else:
            appended = self.store.read_appended(self.last, self.floor, until, since)
            if appended.before != self.count:               # rewritten under us: read afresh
                appended = self._load(since, until)
            else:
                self._merge(appended)
        if since > self.floor:
            self._advance(since)
        rows, older, reserved = self.rows, self._older_rows(), appended.reserved
        pick = rows.at <= until
        if accounts is not None:
            wanted = np.zeros(len(self.names) + 1, bool)
            number = self.number
            wanted[[number.get(a, -1) for a in accounts]] = True      # (−1: an account without events)
            wanted[-1] = False
            pick &= wanted[self.code]
            older = older.take(np.flatnonzero(wanted[self._older_codes]))
            if reserved.n:
                asked = set(accounts)
                reserved = reserved.take(np.flatnonzero([a in asked for a in reserved.account_id.tolist()]))
        if not pick.all():
            rows = rows.take(np.flatnonzero(pick))
        return EventColumns.concat([rows, reserved, older])

    def _numbered(self, events: EventColumns) -> tuple[EventColumns, np.ndarray]:
        """``events`` with each account id replaced by its name's own object, and their numbers."""
        if events.n == 0:
            return events, np.zeros(0, np.int32)
        encoded = pa.array(events.account_id, pa.string()).dictionary_encode()
        number, names = self.number, self.names
        codes = np.empty(len(encoded.dictionary), np.int32)
        for i, name in enumerate(encoded.dictionary.to_pylist()):
            k = number.get(name)
            if k is None:
                k = number[name] = len(names)
                names.append(name)
            codes[i] = k
        code = codes[encoded.indices.to_numpy(zero_copy_only=False)]
        events.account_id = np.array(names, dtype=object)[code] if len(names) else events.account_id
        return events, code

    # -- keeping ----------------------------------------------------------------------------
    def _load(self, floor: int, until: int):
        self.reset()
        appended = self.store.read_appended(0, floor, until, floor)
        self.floor, self.last, self.count = floor, appended.last, appended.total
        self.rows, self.code = self._numbered(appended.rows)
        older = appended.older
        self.older = dict(zip(older.account_id.tolist(), zip(older.at.tolist(), older.amount.tolist())))
        self.loads += 1
        return appended

    def _merge(self, appended) -> None:
        self.last, self.count = appended.last, appended.total
        self.appended += appended.rows.n + appended.older.n
        if appended.rows.n:
            rows, code = self._numbered(appended.rows)
            self.rows = EventColumns.concat([self.rows, rows])
            self.code = np.concatenate([self.code, code])
        self._older(appended.older)

    def _older(self, payments: EventColumns) -> None:
        """Payments before the floor: each account keeps its latest (the first of equal ones,
        in insertion order)."""
        if payments.n == 0:
            return
        older = self.older
        for account, at, amount in zip(payments.account_id.tolist(), payments.at.tolist(), payments.amount.tolist()):
            have = older.get(account)
            if have is None or at > have[0]:
                older[account] = (at, amount)
        self._older_columns = None

    def _advance(self, floor: int) -> None:
        """Move the look-back's start to ``floor``: the events before it that are not sticky
        leave; their payments become older payments."""
        rows = self.rows
        out = (rows.at < floor) & ~np.isin(rows.kind, _STICKY_CODES)
        if out.any():
            self._older(rows.take(np.flatnonzero(out & (rows.kind == _PAYMENT))))
            keep = np.flatnonzero(~out)
            self.rows, self.code = rows.take(keep), self.code[keep]
        self.floor = floor

    def _older_rows(self) -> EventColumns:
        """The last older payments as event rows, by account (as the store's GROUP BY)."""
        if self._older_columns is None:
            accounts = sorted(self.older)
            n = len(accounts)
            number = self.number
            for a in accounts:                       # (a payment read before any event of its account)
                if a not in number:
                    number[a] = len(self.names)
                    self.names.append(a)
            self._older_codes = np.array([number[a] for a in accounts], np.int32)
            at, amount = (np.array([self.older[a][i] for a in accounts], dtype) for i, dtype in
                          ((0, np.int64), (1, np.float64)))
            self._older_columns = EventColumns(np.array(accounts, dtype=object), np.full(n, _PAYMENT, np.int8),
                                               at.reshape(n), amount.reshape(n), np.full(n, NULL_TIME, np.int64),
                                               np.full(n, -1, np.int8), np.full(n, -1, np.int8),
                                               np.full(n, NULL_TIME, np.int64))
        return self._older_columns
