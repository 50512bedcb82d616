"""The batch types the decision-path components exchange: :class:`Batch` (an account's
columns by name), :class:`ActionBatch` (planned actions as policies see them),
:class:`Verdicts` (a policy's judgement) and :class:`Record` (one account as Python values).

Accessors convert a column once (Arrow, NumPy or a record's scalars in; NumPy out) and cache it.
"""
from __future__ import annotations

import datetime as dt
from typing import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import PostloanError
from .localtime import NULL_TIME, US_PER_DAY, US_PER_MINUTE, utc_offsets
from .schema import ENUMS

__all__ = ["Batch", "ActionBatch", "Plan", "Verdicts", "Record", "ACTION", "OUTCOME", "KEEP", "DEFER", "BLOCK"]

#: action name -> code (the order of the contract's ``action_channel`` enum)
ACTION: dict[str, int] = {name: i for i, name in enumerate(ENUMS["action_channel"])}
#: compliance outcome name -> code; a larger code is stricter
OUTCOME: dict[str, int] = {name: i for i, name in enumerate(ENUMS["compliance_outcome"])}
KEEP, DEFER, BLOCK = OUTCOME["KEEP"], OUTCOME["DEFER"], OUTCOME["BLOCK"]


class Batch:
    """One decision batch as columns: the book's columns and the decision columns by name.

    ``sources`` are searched in order (the decisions first, then the book); each is a
    ``pyarrow.Table``, ``RecordBatch``, a mapping of NumPy arrays or a :class:`Record` (one
    account as Python scalars). Accessors convert a column once and cache it, so a policy
    pays for a column only the first time any component reads it. ``now`` is the aware UTC
    instant the pipeline runs at (pinned by tests, never read from the clock by policies);
    ``now_us`` the same in microseconds.
    """

    def __init__(self, n: int, as_of: dt.date, now: dt.datetime, sources: Sequence, config: Mapping | None = None):
        if now.tzinfo is None or now.utcoffset() is None:
            raise PostloanError("now: must be a time-zone-aware datetime (e.g. datetime.now(timezone.utc))")
        self.n = int(n)
        self.as_of = as_of
        self.now = now.astimezone(dt.timezone.utc)
        self.now_us = _datetime_us(self.now)
        self.config: Mapping = config or {}
        self._sources = [_source(s) for s in sources]
        self._cache: dict = {}
        self._raw: dict = {}                  # name -> column as given, or None when absent
        self._merged: dict | None = _UNSEEN   # one account's values by column (see merged)

    @property
    def records(self) -> tuple[Mapping, ...] | None:
        """The sources, in search order, when every one is a :class:`Record` (one account as
        Python scalars: the gRPC Decide path) — a component may then read values directly,
        ``next((r[name] for r in batch.records if name in r), None)`` — else None."""
        if all(kind == "record" for _, _, kind in self._sources):
            return tuple(source for source, _, _ in self._sources)
        return None

    @property
    def merged(self) -> dict | None:
        """One account's values by column — each column's value from the first source that has
        it — when every source is a :class:`Record` (the gRPC Decide path), else None. Worked
        out once per batch (again after :meth:`add`); components read it, never change it."""
        merged = self._merged
        if merged is _UNSEEN:
            merged = None
            sources = self._sources
            for _, _, kind in sources:
                if kind != "record":
                    break
            else:
                merged = sources[-1][0]            # one record (the gate's question): itself
                if len(sources) > 1:
                    # the last source's copy (dict.copy clones its table: no rehash, no
                    # resizing), the others' values over it
                    merged = merged.copy()
                    for k in range(len(sources) - 2, -1, -1):
                        merged.update(sources[k][0])
            self._merged = merged
        return merged

    def _find(self, name: str):
        found = self._raw.get(name, _UNSEEN)
        if found is _UNSEEN:
            found = None
            for source, names, kind in self._sources:
                if name in names:
                    found = _one(source[name]) if kind == "record" else source[name] if kind else source.column(name)
                    break
            self._raw[name] = found
        return found

    def has(self, name: str) -> bool:
        merged = self._merged
        if merged is not _UNSEEN and merged is not None:  # one record: its columns are the merged keys
            return name in merged
        if self._raw.get(name) is not None:
            return True
        for _, names, _ in self._sources:
            if name in names:
                return True
        return False

    def add(self, columns: Mapping[str, np.ndarray]) -> "Batch":
        """Add columns computed by a stage (e.g. the valuation); they shadow same-named ones."""
        source = _source(columns)
        self._sources.insert(0, source)
        merged = self._merged
        if source[2] == "record" and merged is not _UNSEEN and merged is not None:
            # one account's merged values already worked out: the new record's shadow them (a
            # new dict: the old one may be a source, or held by a reader)
            self._merged = {**merged, **columns}
        else:
            self._merged = _UNSEEN
        stale = set(columns)
        self._cache = {k: v for k, v in self._cache.items() if k[1] not in stale}
        self._raw = {k: v for k, v in self._raw.items() if k not in stale}
        return self

    def raw(self, name: str):
        """The column as given (Arrow array or NumPy array; a record's value as a one-element
        array)."""
        found = self._find(name)
        if found is None:
            raise PostloanError(f"column {name!r} is neither a book column nor a decision column of this batch")
        return found

    # Each accessor looks its key up directly: on a request's one account the lookup, not the
    # conversion, is most of what a policy pays for a column it shares with others.
    def _plain(self, name: str, kinds: tuple):
        """One account's value of ``name`` when every source is a :class:`Record` and the value
        is None or of exactly one of ``kinds`` (the types whose conversion is the plain one the
        accessors' fast paths write); else :data:`_UNSEEN` (convert the column)."""
        merged = self._merged
        if merged is _UNSEEN:
            merged = self.merged
        if merged is None:
            return _UNSEEN
        value = merged.get(name, _UNSEEN)          # absent: _UNSEEN, whose type is in no kinds
        return value if value is None or type(value) in kinds else _UNSEEN

    def float(self, name: str) -> np.ndarray:
        """float64 values; null → NaN."""
        key = ("f", name)
        out = self._cache.get(key)
        if out is None:
            value = self._plain(name, _PLAIN_NUMBERS)         # one account: no column to convert
            out = self._cache[key] = _to_float(self.raw(name)) if value is _UNSEEN else \
                np.array([np.nan if value is None else value], np.float64)
        return out

    def int(self, name: str, null: int = 0) -> np.ndarray:
        """int64 values; null → ``null``."""
        key = ("i", name, null)
        out = self._cache.get(key)
        if out is None:
            value = self._plain(name, _PLAIN_WHOLE)
            out = self._cache[key] = _to_int(self.raw(name), null, name) if value is _UNSEEN else \
                np.array([null if value is None else value], np.int64)
        return out

    def bool(self, name: str, null: bool = False) -> np.ndarray:
        """bool values; null → ``null``."""
        key = ("b", name, null)
        out = self._cache.get(key)
        if out is None:
            value = self._plain(name, _PLAIN_WHOLE)
            out = self._cache[key] = _to_bool(self.raw(name), null) if value is _UNSEEN else \
                np.array([null if value is None else value], bool)
        return out

    def enum(self, name: str, members: Sequence[str] | None = None) -> np.ndarray:
        """int8 codes of the values in ``members`` (default: the contract's members of a book
        column); null or an unknown member → -1."""
        members = _book_members(name) if members is None else tuple(members)
        key = ("e", name, members)
        out = self._cache.get(key)
        if out is None:
            value = self._plain(name, _PLAIN_TEXT)
            out = self._cache[key] = _to_codes(self.raw(name), members) if value is _UNSEEN else \
                np.array([-1 if value is None else _member_index(members).get(value, -1)], np.int8)
        return out

    # One account's value as a Python scalar (a batch of one row: a request) — the value the
    # accessor above gives its row 0: a record's plain value as the accessors' fast path
    # converts it, anything else through the accessor's column (one conversion each).
    def float_one(self, name: str) -> float:
        """Row 0 of :meth:`float` as a Python float."""
        value = self._plain(name, _PLAIN_NUMBERS)
        if value is _UNSEEN:
            return float(self.float(name)[0])
        return np.nan if value is None else float(value)

    def int_one(self, name: str, null: int = 0) -> int:
        """Row 0 of :meth:`int` as a Python int."""
        value = self._plain(name, _PLAIN_WHOLE)
        if value is _UNSEEN:
            return int(self.int(name, null)[0])
        return null if value is None else int(value)

    def bool_one(self, name: str, null: bool = False) -> bool:
        """Row 0 of :meth:`bool` as a Python bool."""
        value = self._plain(name, _PLAIN_WHOLE)
        if value is _UNSEEN:
            return bool(self.bool(name, null)[0])
        return null if value is None else bool(value)

    def enum_one(self, name: str, members: Sequence[str] | None = None) -> int:
        """Row 0 of :meth:`enum` as a Python int (-1: null or not a member)."""
        value = self._plain(name, _PLAIN_TEXT)
        if value is _UNSEEN:
            return int(self.enum(name, members)[0])
        members = _book_members(name) if members is None else tuple(members)
        return -1 if value is None else _member_index(members).get(value, -1)

    def time_us_one(self, name: str) -> int:
        """Row 0 of :meth:`time_us` as a Python int (:data:`NULL_TIME`: null)."""
        value = self._plain(name, _PLAIN_TIMES)
        if value is _UNSEEN:
            return int(self.time_us(name)[0])
        return _scalar_us(value)

    def days_one(self, name: str) -> int:
        """Row 0 of :meth:`days` as a Python int (:data:`NULL_TIME`: null)."""
        value = self._plain(name, _PLAIN_DATES)
        if value is _UNSEEN:
            return int(self.days(name)[0])
        return _scalar_days(value)

    def valid_one(self, name: str) -> bool:
        """Row 0 of :meth:`valid` as a Python bool."""
        value = self._plain(name, _PLAIN_VALID)
        if value is _UNSEEN:
            return bool(self.valid(name)[0])
        return value is not None and value == value                 # NaN: not valid

    def time_us(self, name: str) -> np.ndarray:
        """Timestamps as int64 microseconds since the epoch, UTC; null → :data:`NULL_TIME`."""
        key = ("t", name)
        out = self._cache.get(key)
        if out is None:
            out = self._cache[key] = _to_time_us(self.raw(name))
        return out

    def days(self, name: str) -> np.ndarray:
        """Dates as int64 days since the epoch; null → :data:`NULL_TIME`."""
        key = ("d", name)
        out = self._cache.get(key)
        if out is None:
            out = self._cache[key] = _to_days(self.raw(name))
        return out

    def valid(self, name: str) -> np.ndarray:
        """True where the column holds a value (not null, not NaN)."""
        key = ("v", name)
        out = self._cache.get(key)
        if out is None:
            out = self._cache[key] = _valid(self.raw(name))
        return out

    def strings(self, name: str) -> pa.Array:
        """Text values as one Arrow string array (null stays null)."""
        key = ("s", name)
        out = self._cache.get(key)
        if out is None:
            out = self._cache[key] = _to_strings(self.raw(name))
        return out

    def categories(self, name: str) -> tuple[list[str], np.ndarray]:
        """The distinct values of a text column and, per row, the index of its value (null → -1)."""
        key = ("c", name)
        out = self._cache.get(key)
        if out is None:
            out = self._cache[key] = _categories(self.raw(name))
        return out


_UNSEEN = object()
#: the plain Python types a record's value has for the accessors' one-account fast path: their
#: conversion is the one the columns' gives (tests/plugins/test_small_batches.py compares them)
_PLAIN_NUMBERS = (float, int, bool)
_PLAIN_WHOLE = (int, bool)
_PLAIN_TEXT = (str,)
_PLAIN_TIMES = (dt.datetime,)
_PLAIN_DATES = (dt.date,)
#: values whose validity is plain: None and NaN are not, a text or a number is
_PLAIN_VALID = (str, float, int, bool)
_BOOK_MEMBERS: dict[str, tuple[str, ...]] = {}


def _book_members(name: str) -> tuple[str, ...]:
    """The contract's members of the book's enum column ``name``."""
    try:
        return _BOOK_MEMBERS[name]
    except KeyError:
        from .schema import columns
        col = columns("input").get(name)
        if col is None or not col.enum:
            raise PostloanError(f"column {name!r}: give the enum members to decode it") from None
        members = _BOOK_MEMBERS[name] = tuple(ENUMS[col.enum])
        return members


class ActionBatch:
    """The planned actions of a batch, as policies see them.

    :attr:`batch` is the :class:`Batch` the actions were planned for — every column of each
    account: the book, the case ledger's state joined to it (``promise_open``,
    ``open_disputes``, ``last_field_visit_at``…, docs/ledger.md), the kernel's decision columns
    and the pipeline's; :meth:`has` says whether a column is there (a state column is, with or
    without a ledger: without one it is read off the book as far as it can be).
    ``rows`` maps each action to its account's row in :attr:`batch`; ``action`` holds the
    action codes (:data:`ACTION`); ``at_us`` is when the action would happen
    (``max(earliest_at, now)``), in microseconds UTC. :meth:`float`, :meth:`int`,
    :meth:`bool`, :meth:`enum`, :meth:`time_us` and :meth:`days` give the account's column per
    action. Local time is the debtor's (book column ``time_zone``), DST included.
    """

    def __init__(self, batch: Batch, rows: np.ndarray, action: np.ndarray, earliest_at_us: np.ndarray,
                 script: pa.Array | list | None = None):
        self.batch = batch
        self.rows = rows
        self.action = action
        self.earliest_at_us = earliest_at_us
        self.at_us = np.maximum(earliest_at_us, batch.now_us)
        self.n = int(rows.shape[0])
        self.now_us = batch.now_us
        self.config = batch.config
        self._script = script
        self._cache: dict = {}

    # -- account columns per action --------------------------------------------------------
    def has(self, name: str) -> bool:
        """Whether the accounts have column ``name`` (book, state, decision or pipeline column)."""
        return self.batch.has(name)

    def _per_action(self, key, values: np.ndarray) -> np.ndarray:
        out = self._cache.get(key)
        if out is None:
            out = self._cache[key] = values[self.rows]
        return out

    def float(self, name: str) -> np.ndarray:
        return self._per_action(("f", name), self.batch.float(name))

    def int(self, name: str, null: int = 0) -> np.ndarray:
        return self._per_action(("i", name, null), self.batch.int(name, null))

    def bool(self, name: str, null: bool = False) -> np.ndarray:
        return self._per_action(("b", name, null), self.batch.bool(name, null))

    def enum(self, name: str, members: Sequence[str] | None = None) -> np.ndarray:
        return self._per_action(("e", name, tuple(members or ())), self.batch.enum(name, members))

    def time_us(self, name: str) -> np.ndarray:
        return self._per_action(("t", name), self.batch.time_us(name))

    def days(self, name: str) -> np.ndarray:
        return self._per_action(("d", name), self.batch.days(name))

    @property
    def script(self) -> pa.Array:
        """The rendered script of each action (null where none); PII: never log it."""
        script = self._script
        if script is None:
            script = self._script = pa.nulls(self.n, pa.string())
        elif type(script) is list:               # a request's scripts as given (listed_script): once
            script = self._script = pa.array(script, pa.string())
        return script

    def listed_script(self) -> list:
        """:attr:`script` as a list of Python str (None where none) — a request's few scripts
        as the pipeline hands them over (one account's plan keeps them as a list: no Arrow
        array is built unless :attr:`script` is read)."""
        script = self._script
        if type(script) is list:
            return script
        if script is None or script.null_count == self.n:
            return [None] * self.n
        return script.to_pylist()

    def is_action(self, *names: str) -> np.ndarray:
        """Mask of the actions that are one of ``names`` (``"PHONE"``, ``"SMS"``…)."""
        return _action_table(names)[self.action]

    def order_within_account(self, mask: np.ndarray, by: np.ndarray | None = None) -> np.ndarray:
        """For each action in ``mask``, how many earlier actions in ``mask`` (by ``at_us``, then
        plan order) the same account has in this batch — within the same ``by`` key when given
        (e.g. the local day): 0 for the first, 1 for the second… Used to count planned calls
        against daily and weekly limits."""
        out = np.zeros(self.n, np.int64)
        idx = np.flatnonzero(mask)
        if idx.size < 2:
            return out
        key = np.zeros(self.n, np.int64) if by is None else np.asarray(by, np.int64)
        order = idx[np.lexsort((idx, self.at_us[idx], key[idx], self.rows[idx]))]
        r, g = self.rows[order], key[order]
        starts = np.r_[True, (r[1:] != r[:-1]) | (g[1:] != g[:-1])]
        position = np.arange(order.size)
        first = np.maximum.accumulate(np.where(starts, position, 0))
        out[order] = position - first
        return out

    # -- local time ------------------------------------------------------------------------
    def _zones(self):
        key = ("zones",)
        if key not in self._cache:
            names, index = self.batch.categories("time_zone")
            self._cache[key] = (names, index[self.rows])
        return self._cache[key]

    def utc_offset_us(self, instants_us: np.ndarray) -> np.ndarray:
        """The debtor's UTC offset (microseconds, DST included) at each action's instant."""
        names, zone_of = self._zones()
        return utc_offsets(names, zone_of, instants_us)

    @property
    def local_us(self) -> np.ndarray:
        """``at_us`` as the debtor's local wall-clock time (microseconds since 1970-01-01 local)."""
        key = ("local",)
        if key not in self._cache:
            self._cache[key] = self.at_us + self.utc_offset_us(self.at_us)
        return self._cache[key]

    @property
    def local_minute(self) -> np.ndarray:
        """Minute of the local day at ``at_us`` (0 … 1439)."""
        return (self.local_us % US_PER_DAY) // US_PER_MINUTE

    @property
    def local_day(self) -> np.ndarray:
        """Local date at ``at_us`` as days since 1970-01-01."""
        return self.local_us // US_PER_DAY

    def local_day_of(self, instants_us: np.ndarray) -> np.ndarray:
        """The debtor's local date (days since the epoch) of other instants; null stays null."""
        valid = instants_us != NULL_TIME
        safe = np.where(valid, instants_us, self.at_us)
        day = (safe + self.utc_offset_us(safe)) // US_PER_DAY
        return np.where(valid, day, NULL_TIME)

    def local_to_utc(self, local_us: np.ndarray) -> np.ndarray:
        """The UTC instant of each action's debtor-local wall-clock time ``local_us``.

        Ambiguous times (autumn fall-back) take either reading consistently; times skipped by
        a spring-forward gap are moved forward by the gap (02:30 → 03:30)."""
        guess = local_us - self.utc_offset_us(local_us)
        first = local_us - self.utc_offset_us(guess)
        if (first == guess).all():              # no offset change in between: second would equal first
            return first
        second = local_us - self.utc_offset_us(first)
        return np.maximum(first, second)

    def next_local_time(self, minute_of_day: int, day_offset: np.ndarray | int = 0) -> np.ndarray:
        """The first instant at or after ``at_us`` + ``day_offset`` local days whose local time
        is ``minute_of_day`` (e.g. 480 = 08:00), in microseconds UTC."""
        day = self.local_day + day_offset
        target = day * US_PER_DAY + minute_of_day * US_PER_MINUTE
        shift = np.asarray(day_offset) > 0
        target = np.where((target < self.local_us) & ~shift, target + US_PER_DAY, target)
        return self.local_to_utc(target)

    def local_time_on_day(self, day: np.ndarray, minute_of_day: int) -> np.ndarray:
        """The instant (µs UTC) of local ``minute_of_day`` on local date ``day`` (days since epoch)."""
        return self.local_to_utc(day * US_PER_DAY + minute_of_day * US_PER_MINUTE)


class Plan:
    """The actions planned so far for a batch, as strategy steps see and change them.

    Columns, one row per action: ``row`` (the account's row in :attr:`batch`), ``action``
    (codes of :data:`ACTION`), ``priority``, ``earliest_at`` (µs UTC), ``script_id``,
    ``language``, ``script``. :meth:`add` appends actions (their scripts rendered by the
    active strategy), :meth:`keep` drops the others, and the columns may be replaced
    outright (``plan.priority = ...``) as long as their lengths stay equal; the pipeline checks
    the plan after every step as it checks the strategy's."""

    COLUMNS = ("row", "action", "priority", "earliest_at", "script_id", "language", "script")

    def __init__(self, batch: Batch, columns: Mapping, renderer=None):
        self.batch = batch
        for name in self.COLUMNS:
            setattr(self, name, columns[name])
        if type(self.script) is list:            # one account's scripts as a list: a step sees Arrow
            self.script = pa.array(self.script, pa.string())
        self._renderer = renderer

    @property
    def n(self) -> int:
        return int(self.row.shape[0])

    def columns(self) -> dict:
        return {name: getattr(self, name) for name in self.COLUMNS}

    def is_action(self, *names: str) -> np.ndarray:
        """Mask of the planned actions that are one of ``names``."""
        return _action_table(names)[self.action]

    def planned(self, *names: str) -> np.ndarray:
        """Per account of the batch: whether any action among ``names`` is planned for it."""
        out = np.zeros(self.batch.n, bool)
        out[self.row[self.is_action(*names)]] = True
        return out

    def render(self, rows, action) -> tuple[np.ndarray, np.ndarray, pa.Array]:
        """``(script_id, language, script)`` of ``action`` (a name, or names or codes, one per
        row) for the accounts ``rows``, rendered by the active collection strategy
        (:meth:`~kernel.components.CollectionStrategy.render`): the same templates, fields and
        checks as the scripts it plans itself."""
        rows = np.asarray(rows, np.int64)
        if self._renderer is None:
            raise PostloanError("this plan has no strategy to render scripts")
        return self._renderer(self.batch, rows, _action_codes(action, rows.size))

    def add(self, rows, action, *, priority=None, earliest_at=None, script: bool = True) -> "Plan":
        """Append one action per account of ``rows``: ``action`` (a name, or one per row),
        ``priority`` (default: 0), ``earliest_at`` (µs UTC; default: the batch's now) and, with
        ``script``, the active strategy's script for it."""
        rows = np.asarray(rows, np.int64)
        m = rows.size
        codes = _action_codes(action, m)
        priority = np.broadcast_to(np.asarray(0.0 if priority is None else priority, np.float64), (m,))
        earliest = np.broadcast_to(np.asarray(self.batch.now_us if earliest_at is None else earliest_at, np.int64), (m,))
        if script and m:
            script_id, language, text = self.render(rows, codes)
        else:
            script_id = language = np.full(m, None, dtype=object)
            text = pa.nulls(m, pa.string())
        self.row = np.concatenate([self.row, rows])
        self.action = np.concatenate([self.action, codes])
        self.priority = np.concatenate([self.priority, priority])
        self.earliest_at = np.concatenate([self.earliest_at, earliest])
        self.script_id = np.concatenate([np.asarray(self.script_id, dtype=object), np.asarray(script_id, dtype=object)])
        self.language = np.concatenate([np.asarray(self.language, dtype=object), np.asarray(language, dtype=object)])
        self.script = pa.concat_arrays([_as_string_array(self.script), _as_string_array(text)])
        return self

    def keep(self, mask) -> "Plan":
        """Keep only the actions in ``mask`` (one bool per planned action)."""
        mask = np.asarray(mask, bool)
        for name in self.COLUMNS:
            value = getattr(self, name)
            setattr(self, name, value.filter(pa.array(mask)) if isinstance(value, pa.Array) else np.asarray(value)[mask])
        return self


def _action_codes(action, m: int) -> np.ndarray:
    if isinstance(action, str):
        if action not in ACTION:
            raise PostloanError(f"unknown action {action!r} (actions: {', '.join(ACTION)})")
        return np.full(m, ACTION[action], np.int8)
    values = np.asarray(action)
    if values.dtype.kind in "iu":
        return values.astype(np.int8)
    unknown = [a for a in set(values.tolist()) if a not in ACTION]
    if unknown:
        raise PostloanError(f"unknown action {unknown[0]!r} (actions: {', '.join(ACTION)})")
    return np.array([ACTION[a] for a in values.tolist()], np.int8)


def _as_string_array(values) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        return values.cast(pa.string())
    return pa.array(list(values), pa.string())


_ACTION_TABLES: dict[tuple[str, ...], np.ndarray] = {}


def _action_table(names: tuple[str, ...]) -> np.ndarray:
    """A bool per action code: is it one of ``names`` (lookup instead of ``np.isin``)."""
    try:
        return _ACTION_TABLES[names]
    except KeyError:
        table = np.zeros(len(ACTION), bool)
        table[[ACTION[n] for n in names]] = True
        _ACTION_TABLES[names] = table
        return table


class Verdicts:
    """A policy's judgement of every action in an :class:`ActionBatch`.

    All actions start KEEP. :meth:`defer` and :meth:`block` apply to the actions in a mask;
    the strictest outcome wins (BLOCK > DEFER > KEEP). A reason is replaced only by a
    strictly stricter outcome, so the first reason given for an outcome is the one kept; two
    deferrals keep the later ``next_allowed_at`` (the action must wait for both).
    """

    def __init__(self, n: int):
        self.n = int(n)
        self.outcome = np.zeros(self.n, np.int8)
        self.reason = np.empty(self.n, np.int16)          # index into codes
        self.reason.fill(-1)
        self.next_allowed_us = np.empty(self.n, np.int64)
        self.next_allowed_us.fill(NULL_TIME)
        self.codes: list[str] = []
        self._blocked = self._deferred = False         # whether any action was, so far

    def _code(self, code: str) -> int:
        if not isinstance(code, str) or not code:
            raise PostloanError(f"a reason code must be a non-empty string, got {code!r}")
        codes = self.codes
        if code in codes:
            return codes.index(code)
        codes.append(code)
        return len(codes) - 1

    def block(self, mask: np.ndarray, code: str) -> "Verdicts":
        """Block the actions in ``mask`` with reason ``code``."""
        new = np.asarray(mask, bool)
        index = self._code(code)
        if not np.count_nonzero(new):                # NumPy's cheapest test of a small mask
            return self
        if self._blocked:
            new = new & (self.outcome < BLOCK)
        self.outcome[new] = BLOCK
        self.reason[new] = index
        self.next_allowed_us[new] = NULL_TIME
        self._blocked = True
        return self

    def defer(self, mask: np.ndarray, code: str, until_us: np.ndarray | int) -> "Verdicts":
        """Defer the actions in ``mask`` until ``until_us`` (µs UTC) with reason ``code``."""
        mask = np.asarray(mask, bool)
        index = self._code(code)
        if not np.count_nonzero(mask):
            return self
        until = np.asarray(until_us, np.int64)
        if until.shape != (self.n,):
            until = np.broadcast_to(until, (self.n,))
        if not (self._blocked or self._deferred):          # all KEEP so far: every masked action is new
            new = mask
        else:
            new = mask & (self.outcome < DEFER)
            again = mask & (self.outcome == DEFER)
            self.next_allowed_us[again] = np.maximum(self.next_allowed_us[again], until[again])
        self.outcome[new] = DEFER
        self.reason[new] = index
        self.next_allowed_us[new] = until[new]
        self._deferred = True
        return self

    def reason_codes(self) -> np.ndarray:
        """The reason of each action as an object array (None where kept)."""
        table = np.array(self.codes + [None], dtype=object)
        return table[self.reason]          # -1 picks the trailing None


def _one(value) -> np.ndarray:
    """A record's value as a one-element column (None → null: NaN, NaT or an object None)."""
    dtype = _ONE_DTYPES.get(type(value))
    if dtype is not None:                    # the common types, without a chain of isinstance
        return np.array([value], dtype)
    if isinstance(value, bool) or isinstance(value, np.bool_):
        return np.array([value], bool)
    if isinstance(value, (int, np.integer)):
        return np.array([value], np.int64)
    if isinstance(value, (float, np.floating)):
        return np.array([value], np.float64)
    if isinstance(value, dt.datetime):
        return np.array([_scalar_us(value)], "datetime64[us]")
    if isinstance(value, dt.date):
        return np.array([value], "datetime64[D]")
    out = np.empty(1, dtype=object)
    out[0] = value
    return out


_ONE_DTYPES = {bool: bool, int: np.int64, float: np.float64, str: object, type(None): object}


def _scalar_us(v) -> int:
    if v is None:
        return NULL_TIME
    if isinstance(v, np.datetime64):
        return int(v.astype("datetime64[us]").astype(np.int64))
    if isinstance(v, dt.datetime):
        return _datetime_us(v if v.tzinfo else v.replace(tzinfo=dt.timezone.utc))
    return int(v)


def _scalar_days(v) -> int:
    if v is None:
        return NULL_TIME
    if isinstance(v, np.datetime64):
        return int(v.astype("datetime64[D]").astype(np.int64))
    if isinstance(v, dt.date):
        return (v - dt.date(1970, 1, 1)).days
    return int(v)


class Record(dict):
    """One account as Python scalars (``{"dpd": 15, "country": "CN", "contract_date":
    date(...), ...}``; None or NaN is null) — the fastest path for one request
    (:meth:`kernel.pipeline.Pipeline.run_record`). A :class:`Batch` of one record hands
    vectorized code a one-element array of a column only when it asks for it."""


def _source(source) -> tuple:
    """(source, its column names, whether it is a mapping) — looked up on every access."""
    if isinstance(source, Record):
        return source, source.keys(), "record"
    if isinstance(source, dict):
        return source, source.keys(), True
    if isinstance(source, Mapping):
        return source, frozenset(source), True
    return source, frozenset(source.schema.names), False


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _datetime_us(value: dt.datetime) -> int:
    """An aware datetime as µs since the epoch (integer arithmetic on the timedelta's parts:
    exact, and a quarter of the cost of ``delta // timedelta(microseconds=1)``)."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _arrow(values) -> pa.Array | pa.ChunkedArray:
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    arr = np.asarray(values)
    if arr.dtype == object or arr.dtype.kind in "US" or isinstance(arr.dtype, np.dtypes.StringDType):
        return pa.array(arr.astype(object) if arr.dtype != object else arr, from_pandas=True)
    return pa.array(arr)


def _numpy_plain(values):
    """A NumPy array with no nulls to handle, or None when Arrow conversion is needed."""
    if isinstance(values, np.ndarray) and not isinstance(values, np.ma.MaskedArray) \
            and values.dtype != object and values.dtype.kind not in "USMmT":
        return values
    return None


def _small_objects(values, kinds: tuple[type, ...]) -> list | None:
    """The values of a small object array (a request's: nulls as None) as a list, when every
    one is None or of ``kinds``; else None, and Arrow converts (and names what is wrong)."""
    if type(values) is np.ndarray and values.dtype == object and values.shape[0] <= SMALL_TEXT:
        items = values.tolist()
        if all(v is None or isinstance(v, kinds) for v in items):
            return items
    return None


_F64, _I64, _BOOL = np.dtype(np.float64), np.dtype(np.int64), np.dtype(bool)


def _to_float(values) -> np.ndarray:
    if type(values) is np.ndarray and values.dtype is _F64:        # already the form wanted
        return values
    if isinstance(values, np.ma.MaskedArray):
        return values.astype(np.float64).filled(np.nan)
    plain = _numpy_plain(values)
    if plain is not None:
        return plain.astype(np.float64, copy=False)
    items = _small_objects(values, (int, float, np.integer, np.floating))
    if items is not None:
        return np.array([np.nan if v is None else v for v in items], np.float64)
    arr = _arrow(values)
    if pa.types.is_dictionary(arr.type):
        raise PostloanError(f"expected numbers, got an enum column ({arr.type})")
    return pc.fill_null(arr.cast(pa.float64()), np.nan).to_numpy()


def _to_int(values, null: int, name: str = "") -> np.ndarray:
    if type(values) is np.ndarray and values.dtype is _I64:
        return values
    if isinstance(values, np.ma.MaskedArray):      # the kernel's NumPy path masks null ints and bools
        return values.astype(np.int64).filled(null)
    plain = _numpy_plain(values)
    if plain is not None:
        if plain.dtype.kind == "f":
            whole = np.where(np.isnan(plain), null, plain)
            beyond = ~((whole >= -2.0 ** 63) & (whole < 2.0 ** 63))   # ±inf or past int64: the cast would wrap silently
            if beyond.any():
                raise PostloanError(f"column {name!r}: expected whole numbers, got {float(whole[beyond][0])!r}")
            return whole.astype(np.int64)
        return plain.astype(np.int64, copy=False)
    items = _small_objects(values, (int, np.integer))
    if items is not None:
        return np.array([null if v is None else v for v in items], np.int64)
    arr = _arrow(values)
    return pc.fill_null(arr.cast(pa.int64()), null).to_numpy()


def _to_bool(values, null: bool) -> np.ndarray:
    if type(values) is np.ndarray and values.dtype is _BOOL:
        return values
    if isinstance(values, np.ma.MaskedArray):
        return values.astype(bool).filled(null)
    plain = _numpy_plain(values)
    if plain is not None:
        return plain.astype(bool, copy=False)
    items = _small_objects(values, (bool, np.bool_))
    if items is not None:
        return np.array([null if v is None else v for v in items], bool)
    arr = _arrow(values)
    return pc.fill_null(arr.cast(pa.bool_()), null).to_numpy(zero_copy_only=False).astype(bool, copy=False)


#: NumPy text columns up to this many rows are decoded with dict lookups, larger ones by Arrow
SMALL_TEXT = 64
_MEMBER_INDEX: dict[tuple[str, ...], dict] = {}


def _member_index(members: tuple[str, ...]) -> dict:
    """member → its code."""
    index = _MEMBER_INDEX.get(members)
    if index is None:
        index = _MEMBER_INDEX[members] = {m: i for i, m in enumerate(members)}
    return index


def _is_text(values) -> bool:
    return isinstance(values, np.ndarray) and (values.dtype == object or values.dtype.kind in "UT")


def _to_codes(values, members: tuple[str, ...]) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        return values.astype(np.int8)        # already codes
    if _is_text(values) and values.shape[0] <= SMALL_TEXT:
        index = _member_index(members)
        return np.array([index.get(v, -1) for v in values.tolist()], np.int8)
    arr = _arrow(values)
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    member_set = pa.array(members, pa.string())
    parts = []
    for chunk in chunks:
        if pa.types.is_dictionary(chunk.type):
            mapping = pc.fill_null(pc.index_in(chunk.dictionary.cast(pa.string()), value_set=member_set), -1)
            mapping = mapping.to_numpy().astype(np.int8)
            indices = pc.fill_null(chunk.indices.cast(pa.int64()), -1).to_numpy()
            codes = np.where(indices >= 0, mapping[np.maximum(indices, 0)] if mapping.size else -1, -1)
            parts.append(codes.astype(np.int8))
        else:
            idx = pc.fill_null(pc.index_in(chunk.cast(pa.string()), value_set=member_set), -1)
            parts.append(idx.to_numpy().astype(np.int8))
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.empty(0, np.int8)     # a column of no chunks: no rows


def _to_time_us(values) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind == "M":
        us = values.astype("datetime64[us]")
        out = us.view(np.int64).copy()
        out[np.isnat(us)] = NULL_TIME
        return out
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        return values.astype(np.int64)
    items = _small_objects(values, (dt.datetime, np.datetime64))
    if items is not None:
        return np.array([_scalar_us(v) for v in items], np.int64)
    arr = _arrow(values)
    if pa.types.is_timestamp(arr.type):
        arr = arr.cast(pa.timestamp("us", tz=arr.type.tz)).cast(pa.int64())
    return pc.fill_null(arr.cast(pa.int64()), NULL_TIME).to_numpy()


def _to_days(values) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind == "M":
        d = values.astype("datetime64[D]")
        out = d.view(np.int64).copy()
        out[np.isnat(d)] = NULL_TIME
        return out
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        return values.astype(np.int64)
    items = _small_objects(values, (dt.date, np.datetime64))
    if items is not None and not any(isinstance(v, dt.datetime) for v in items):
        return np.array([_scalar_days(v) for v in items], np.int64)
    arr = _arrow(values)
    if pa.types.is_date64(arr.type):
        arr = arr.cast(pa.date32())
    if pa.types.is_date32(arr.type):
        arr = arr.cast(pa.int32())
    return pc.fill_null(arr.cast(pa.int64()), NULL_TIME).to_numpy()


def _valid(values) -> np.ndarray:
    if isinstance(values, np.ma.MaskedArray):
        return ~np.ma.getmaskarray(values)
    if isinstance(values, np.ndarray):
        if values.dtype == object:
            return np.not_equal(values, None)
        if values.dtype.kind == "f":
            return ~np.isnan(values)
        if values.dtype.kind in "mM":
            return ~np.isnat(values)
        return np.ones(values.shape[0], bool)
    return pc.is_valid(_arrow(values)).to_numpy(zero_copy_only=False).astype(bool)


def _to_strings(values) -> pa.Array:
    arr = _arrow(values)
    if isinstance(arr, pa.ChunkedArray):
        arr = pa.chunked_array([c.dictionary_decode() for c in arr.chunks], arr.type.value_type) \
            if pa.types.is_dictionary(arr.type) else arr
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return arr.cast(pa.string())


def _categories(values) -> tuple[list[str], np.ndarray]:
    if _is_text(values) and values.shape[0] <= SMALL_TEXT:
        items = values.tolist()
        names = list(dict.fromkeys(v for v in items if v is not None))
        position = {v: i for i, v in enumerate(names)}
        return names, np.array([position.get(v, -1) if v is not None else -1 for v in items], np.int64)
    arr = _arrow(values)
    if isinstance(arr, pa.ChunkedArray):
        if pa.types.is_dictionary(arr.type):
            arr = arr.unify_dictionaries()
        arr = arr.combine_chunks()
    if not pa.types.is_dictionary(arr.type):
        arr = pc.dictionary_encode(arr.cast(pa.string()))
    names = arr.dictionary.cast(pa.string()).to_pylist()
    index = pc.fill_null(arr.indices.cast(pa.int64()), -1).to_numpy()
    return names, index
