"""Account state as of a moment, derived from events: the columns of ``kernel.schema.STATE``.

:func:`derive` takes the events a store read back (:class:`~kernel.ledger.store.EventColumns`),
the accounts wanted with their time zones and the moment, and returns the state columns as
NumPy arrays, one row per account. Days are counted in each debtor's local time (the law
counts "today" and "7 days" there); counts over 30 or 90 days are the local days ending
today. The compiled pass is :func:`kernel.ledger.fold.fold`; its plain-Python twin is
:mod:`kernel.ledger.reference`.
"""
from __future__ import annotations

import bisect
import functools
import operator
import string
import threading
from array import array
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from ..errors import PostloanError
from ..hookspecs import NULL_TIME, US_PER_DAY, _zone_table, utc_offsets
from ..localtime import _ZONE_TABLES
from ..schema import ENUMS, STATE, arrow_schema
from . import fold as F
from . import patterns as P
from .store import EventColumns

__all__ = ["StateSettings", "derive", "derive_one", "state_table", "gps_last_ping", "STATE_NAMES", "local_days"]

STATE_NAMES = tuple(c.name for c in STATE)
_STATE_SCHEMA = arrow_schema("state")
#: state columns derived from others after the fold
_DERIVED = ("consent_automated_contact", "contact_opt_out", "repossessed")
#: one account's derived columns as expressions of its fold outputs (``{column}``: that
#: output's value), the one text of :func:`_values` and of the gate's record
#: (:func:`kernel.ledger.join.gate_record_code`)
DERIVED_EXPRS = {
    "consent_automated_contact": "(-1 if {consent_sms} < 0 and {consent_voice_bot} < 0 "
                                 "else int(({consent_sms} != 0) and ({consent_voice_bot} != 0)))",
    "contact_opt_out": "({opt_out_phone} if {ledger_events} > 0 else -1)",
    "repossessed": "int({repossession_stage} in (2, 3))",
}
assert tuple(DERIVED_EXPRS) == _DERIVED


@dataclass(frozen=True)
class StateSettings:
    """How events become state (``[ledger]`` in the configuration; docs/ledger.md)."""

    #: days after a promise's date by which a payment still keeps it
    promise_grace_days: int = 1
    #: a promise's date may lie at most this many days after it was made
    max_promise_days: int = 90
    #: counters look back this many days (flags and holds never age out)
    lookback_days: int = 90
    #: a tamper alert makes the tracker TAMPERED for this many local days
    gps_tamper_days: int = 30
    #: a tracker silent this long is OFFLINE
    gps_offline_after_hours: float = 2.0
    #: pings further apart than this start an offline period
    gps_gap_minutes: float = 30.0
    #: the last position is forgotten after this many hours (0: never stored)
    gps_position_hours: float = 72.0
    #: a contact-time reservation counts as an attempt; it expires (outcome UNREPORTED) after
    reservation_minutes: float = 15.0
    #: sync each reservation to disk before KEEP is answered (events always are); off, a
    #: reservation survives a crash of the process but not of the machine (docs/ledger.md)
    sync_reservations: bool = False
    #: events may be at most this far ahead of the ingest's clock
    max_clock_skew_seconds: float = 300.0
    #: ``[ledger.patterns.<name>]`` windows that differ from the patterns' defaults:
    #: (pattern, window, value) triples (:func:`kernel.ledger.patterns.check_config`)
    patterns: tuple[tuple[str, str, float], ...] = ()

    @classmethod
    def from_config(cls, config: Mapping | None) -> "StateSettings":
        given = dict((config or {}).get("ledger", {}) or {})
        given.pop("store", None)
        given.pop("book_counters", None)
        patterns = given.pop("patterns", None)
        known = {f: getattr(cls, f) for f in cls.__dataclass_fields__ if f != "patterns"}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise PostloanError(f"[ledger] {unknown[0]!r}: unknown setting (settings: store, book_counters, "
                                f"patterns, {', '.join(known)})")
        out = {}
        for key, value in given.items():
            default = known[key]
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise PostloanError(f"[ledger] {key}: expected true or false, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 \
                    or (isinstance(default, int) and not isinstance(value, int)):
                kind = "a whole number" if isinstance(default, int) else "a number"
                raise PostloanError(f"[ledger] {key}: expected {kind} ≥ 0, got {value!r}")
            out[key] = value
        out["patterns"] = P.check_config(patterns, out.get("lookback_days", cls.lookback_days))
        return cls(**out)

    @property
    def lookback_us(self) -> int:
        """How far back the store reads non-sticky events: counters' look-back, and promises
        made early enough to fall due inside it."""
        days = self.lookback_days + self.max_promise_days + self.promise_grace_days + 2
        return days * US_PER_DAY


def local_days(instants: np.ndarray, zone_names: Sequence[str], zone_of: np.ndarray) -> np.ndarray:
    """The local date (days since the epoch) of each instant in the zone ``zone_names[zone_of]``."""
    if instants.shape[0] == 0:
        return np.zeros(0, np.int64)
    return (instants + utc_offsets(zone_names, zone_of, instants)) // US_PER_DAY


def gps_last_ping(first: np.ndarray, last: np.ndarray, gap_from: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The last ping at or before ``at`` from the reduced ping state: the latest ping if it
    is not later; none before the first; the start of the offline period holding ``at``; else
    ``at`` itself (the tracker was pinging, at most a session gap apart)."""
    out = np.where(last <= at, last, np.where(gap_from != NULL_TIME, gap_from, at))
    return np.where(first > at, NULL_TIME, out)


def derive(events: EventColumns, accounts: Sequence[str] | np.ndarray, zones: Sequence[str] | np.ndarray,
           at: int, settings: StateSettings,
           gps: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
           offline: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """State columns of ``accounts`` (with their IANA ``zones``) as of ``at`` (µs UTC), from
    ``events`` (already limited to ``at`` and the look-back by the store), the reduced GPS
    state ``gps`` = (account, first ping, last ping, gap start holding ``at``) and the stored
    offline periods ``offline`` = (account, from, to) that began in the patterns' look-back
    (:meth:`~kernel.ledger.store.Store.offline_periods`; the temporal patterns read them).
    Without ``gps`` and ``offline`` the GPS columns and the offline periods are unknown."""
    accounts = np.asarray(accounts, dtype=object)
    n = accounts.shape[0]
    zone_names, zone_of = _zone_index(zones, n)
    ids = pa.array(accounts, pa.string())
    if events.n and n:
        if n == 1:
            which = np.zeros(events.n, np.int64)
            mine = events.account_id == accounts[0]
            if not mine.all():
                which = np.where(mine, 0, -1)
        else:
            which = pc.fill_null(pc.index_in(pa.array(events.account_id, pa.string()), value_set=ids), -1)
            which = which.to_numpy(zero_copy_only=False).astype(np.int64)
        keep = np.flatnonzero(which >= 0)
        if keep.size != events.n:
            which = which[keep]
            events = EventColumns(*(getattr(events, f)[keep] for f in EventColumns.__dataclass_fields__))
    else:
        which = np.zeros(0, np.int64)
        events = EventColumns.from_rows([])
    day = local_days(events.at, zone_names, zone_of[which]) if events.n else np.zeros(0, np.int64)
    # events in instant order per account; ties broken by content, so arrival order never matters
    tie = (events.kind.astype(np.int64) * 64 + events.channel.astype(np.int64) + 1) * 64 + events.outcome + 1
    order = np.lexsort((events.amount, tie, events.at, which)) if events.n > 1 else np.arange(events.n)
    counts = np.bincount(which, minlength=n) if events.n else np.zeros(n, np.int64)
    starts = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=starts[1:])
    state_at = np.full(n, at, np.int64)
    today = local_days(state_at, zone_names, zone_of) if n else np.zeros(0, np.int64)
    gps_last = np.full(n, NULL_TIME, np.int64)
    if gps is not None and gps[0].shape[0] and n:
        g_acc, first, last, gap = gps
        where = pc.fill_null(pc.index_in(ids, value_set=pa.array(g_acc, pa.string())), -1).to_numpy(zero_copy_only=False)
        has = where >= 0
        pick = where[has].astype(np.int64)
        gps_last[has] = gps_last_ping(first[pick], last[pick], gap[pick], state_at[has])
    ints, floats = F.empty_outputs(n)
    kind, instant, amount = events.kind[order], events.at[order], events.amount[order]
    channel, outcome = events.channel[order], events.outcome[order]
    F.fold(starts, kind, instant, day[order], amount, events.promise_date[order], channel, outcome,
           events.expiry_date[order], state_at, today, gps_last, settings.promise_grace_days, settings.gps_tamper_days,
           int(settings.gps_offline_after_hours * 3_600_000_000), ints, floats)
    out: dict[str, np.ndarray] = {"account_id": accounts, "state_at": state_at}
    for i, name in enumerate(F.INT_COLUMNS):
        out[name] = ints[:, i]
    for i, name in enumerate(F.FLOAT_COLUMNS):
        out[name] = floats[:, i]
    sms, voice = out["consent_sms"], out["consent_voice_bot"]
    known = (sms >= 0) | (voice >= 0)
    both = np.where(sms >= 0, sms, 1) & np.where(voice >= 0, voice, 1)
    out["consent_automated_contact"] = np.where(known, both, -1)
    out["contact_opt_out"] = np.where(out["ledger_events"] > 0, out["opt_out_phone"], -1)
    stage = out["repossession_stage"]
    out["repossessed"] = ((stage == 2) | (stage == 3)).astype(np.int64)
    # temporal patterns: a pass of their own over the same sorted events and the offline
    # periods (kernel.ledger.patterns)
    prog = _program(settings)
    silent = P.offline_events(accounts, offline, gps, at, at - prog.lookback_us, ids) if n else None
    out.update(P.alerts(prog, starts, kind, instant, amount, channel, outcome, state_at, silent))
    return out


def _order(row: tuple):
    """The order :func:`derive` sorts an account's events in, for one row ``(kind, at,
    amount, promise_date, channel, outcome, expiry_date)``."""
    channel = -1 if row[4] is None else row[4]
    outcome = -1 if row[5] is None else row[5]
    amount = row[2]
    return (row[1], (row[0] * 64 + channel + 1) * 64 + outcome + 1, amount is None, amount or 0.0)


def derive_one(rows: list[tuple], zone: str | None, at: int, settings: StateSettings,
               gps: tuple | None = None, offline: list[tuple[int, int]] = (), *, ordered: bool = False,
               remember: bool = False, patterns: bool = True, outputs: bool = False) -> dict | tuple[list, list]:
    """One account's state from its event rows (:meth:`Store.account_rows`' form; sorted
    here unless ``ordered``), its reduced GPS state ``gps`` = (first ping, last ping, gap
    start holding ``at``) and its offline periods ``offline`` = [(from, to)] that began in the
    patterns' look-back: the same compiled fold and pattern matcher as :func:`derive`, fed
    without building an Arrow array on the way (the path one gRPC request takes). Returns
    ``{column: value}`` in the fold's representation. ``remember``: the rows' list is the
    store's cached one (:meth:`~kernel.ledger.store.Store.account_rows_now`), never changed:
    its fold inputs are kept for the next call with the same list, and the values of each
    distinct output of the fold are kept too (only the dictionary is reused, and the record
    scalars ``merge_record`` makes of it: :class:`FoldValues`); and without a GPS state as of
    ``at`` the fold and the pattern pass are not run again for the same list the same local day
    before the first instant the patterns may turn (:func:`_folded_until`) — a car with a GPS
    state as of ``at`` is folded every call: its last ping and hours offline move with the
    clock, its outputs never repeat. Rows not remembered take one compiled call
    (:func:`_fold_flat`; without the pattern pass :func:`_fold_rows`, of seven arguments).
    ``patterns`` False (a caller that reads no ``alert_*`` column: the gate whose policies
    read none) leaves the pattern pass and its columns out; every other
    column is the same. ``outputs`` (with ``patterns`` False, without ``remember``: the
    gate's one question) answers the fold's outputs as they are — its integer and its float
    outputs (:data:`~kernel.ledger.fold.INT_COLUMNS`, ``FLOAT_COLUMNS``) as two lists — and
    no dictionary: the caller converts the few it reads (:func:`~kernel.ledger.join.gate_record_code`).

    The one-row arrays the compiled passes read and write are this thread's, allocated once
    (:func:`_one_row`): each call only stores its few scalars into them."""
    if not ordered:
        rows = sorted(rows, key=_order)
    zone = zone or "UTC"
    b = _BUFFERS.__dict__.get("one")
    if b is None:
        b = _BUFFERS.one = _OneRow()
    day = _local_day_of(zone, at)
    last = NULL_TIME
    if gps is not None:                       # gps_last_ping, for one car in plain Python
        first, latest, gap = gps
        last = NULL_TIME if first > at else latest if latest <= at else gap if gap != NULL_TIME else at
    prog = flags = completed = None
    silences = ()
    if patterns:
        prog = _program(settings)
        # the GPS_OFFLINE pseudo-events (P.offline_events for one car): the stored offline periods
        # that began in the look-back, and the silence after the last ping
        since = at - prog.lookback_us
        silences = [(start, min(end, at)) for start, end in offline if since <= start <= at]
        if gps is not None and since <= gps[1] <= at:
            silences.append((gps[1], at))
    # The kept rows of an account with no GPS state as of the moment: the fold reads the moment
    # only through its local day, the pattern pass only through comparisons that turn at the
    # instants of _folded_until — this thread's last values for these rows, this day and
    # before that instant are the ones the passes would give again (docs/ledger.md).
    steady = remember and last == NULL_TIME and not silences
    if steady:
        folded = (id(rows), zone, patterns)
        kept = b.folded.get(folded)
        if kept is not None and kept[0] is rows and kept[1] is settings and kept[2] == day \
                and kept[3] <= at < kept[4]:
            out = FoldValues(kept[5])
            out.memo = kept[5].memo
            out["state_at"] = at
            return out
    head, ints, floats = b.head, b.ints, b.floats
    head[1] = len(rows)
    head[2] = at
    head[3] = day
    head[4] = last
    constants = _fold_constants(settings)
    if not remember and (rows or silences):
        # rows read once (nothing to keep): the fold (and the pattern pass) in one compiled call,
        # fed the rows (and the offline periods) as one flat buffer instead of eight NumPy columns
        table = _zone_table(zone, rows[0][1], rows[-1][1]) if rows else _ZONE_TABLES[zone]   # (rows by instant)
        flat = array("d", [_NAN if v is None else v for row in rows for v in row])
        if prog is None:
            folded = _fold_rows(flat, table[2], table[3], head, constants, ints, floats)
        else:
            flags, completed = b.alerts(prog)
            if silences and P.GPS_OFFLINE in prog.kinds:
                silences.sort(key=_first)          # (stable, by instant: P._group's order)
                flat.extend([v for silence in silences for v in silence])
            folded = _fold_flat(flat, table[2], table[3], head, constants, ints, floats, prog.reads, prog.patterns,
                                prog.steps, prog.matchers, prog.conds, prog.values, flags, completed)
        if folded:
            if outputs:
                return ints[0].tolist(), floats[0].tolist()
            out = _values(ints, floats, prog, flags, completed)
            out["state_at"] = at
            return out
    starts, state_at, today, last_ping = b.starts, b.state_at, b.today, b.last_ping
    columns = fold_inputs(rows, zone, remember)
    F.fold(starts, *columns, state_at, today, last_ping, *constants.tolist(), ints, floats)
    if patterns:
        silent = None
        if silences:
            start = np.array([x[0] for x in silences], np.int64)
            silent = (np.zeros(len(silences), np.int64), start,
                      (np.array([x[1] for x in silences], np.int64) - start) / P.US_PER_HOUR)
        kind, times, _, amount, _, channel, outcome, _ = columns
        flags, completed = b.alerts(prog)
        P.alert_rows(prog, starts, kind, times, amount, channel, outcome, state_at, silent, flags, completed)
    if outputs:
        return ints[0].tolist(), floats[0].tolist()
    if not remember or last != NULL_TIME:      # (a GPS state: the last ping and the hours offline
        out = _values(ints, floats, prog, flags, completed)     # move with the clock, no output repeats)
        out["state_at"] = at
        return out
    # the same outputs as a call before on this thread: that call's values (the dictionary is
    # a pure function of the outputs; the fold ran, so they are this moment's)
    key = (ints.tobytes(), floats.tobytes(), None if prog is None else flags.tobytes(),
           None if prog is None else completed.tobytes())
    memo = b.values.get(id(prog))
    if memo is None or memo[0] is not prog:          # (the outputs' meaning is the program's)
        if len(b.values) >= 8:
            b.values.clear()
        memo = b.values[id(prog)] = (prog, {})
    memo = memo[1]
    shared = memo.get(key)
    if shared is None:
        shared = _values(ints, floats, prog, flags, completed)
        shared.memo = {}
        if len(memo) >= _VALUES_KEPT:
            memo.clear()
        memo[key] = shared
    if steady:
        if len(b.folded) >= _VALUES_KEPT:
            b.folded.clear()
        b.folded[folded] = (rows, settings, day, at, _folded_until(rows, prog, at), shared)
    out = FoldValues(shared)
    out.memo = shared.memo
    out["state_at"] = at
    return out


def steady_span(rows: list, zone: str | None, at: int, values: dict, patterns: bool = True) -> tuple[int, int] | None:
    """For ``values`` just given by :func:`derive_one` (``remember``) of the kept ``rows`` in
    ``zone`` as of ``at``: the instants ``[from, until)`` around ``at`` over which it gives
    these values again — this thread's kept fold of the rows (no GPS state: the moment read
    only through the local day and the patterns' instants, :func:`_folded_until`), within the
    local day of ``at`` (the zone's offset constant over the span) — else None."""
    zone = zone or "UTC"
    b = _BUFFERS.__dict__.get("one")
    kept = b.folded.get((id(rows), zone, patterns)) if b is not None else None
    if kept is None or kept[0] is not rows or getattr(values, "memo", None) is not kept[5].memo \
            or not kept[3] <= at < kept[4] or _local_day_of(zone, at) != kept[2]:
        return None
    start, end, offset, _ = _ZONE_SPANS[zone]          # (the span holding at: _local_day_of just asked)
    day = kept[2]
    return max(kept[3], start, day * US_PER_DAY - offset), min(kept[4], end, (day + 1) * US_PER_DAY - offset)


_EXACT = 2.0 ** 53
#: the compiled passes _fold_flat calls (bound here: Numba freezes them when it compiles)
_fold, _match = F.fold, P.match


@njit(cache=True, inline="always")
def _flat_columns(flat, n, zone_starts, zone_offsets):
    """The fold's event columns of ``n`` rows given as one float64 buffer (each row's seven
    values in :meth:`Store.account_rows`' order, NaN for null), with each event's local day
    from the zone's transitions (``zone_starts``, ``zone_offsets``: ``offsets[bisect_right(starts,
    t)]``, as :func:`_local_days_of`); ``ok`` False when a value is not an integer a float64
    holds exactly (every value of the buffer is checked, the offline periods after the rows too)."""
    kind = np.empty(n, np.int8)
    at = np.empty(n, np.int64)
    day = np.empty(n, np.int64)
    amount = np.empty(n, np.float64)
    promise = np.empty(n, np.int64)
    channel = np.empty(n, np.int8)
    outcome = np.empty(n, np.int8)
    expiry = np.empty(n, np.int64)
    ok = True
    for i in range(len(flat)):
        v = flat[i]
        if v == v and i % 7 != 2 or i >= 7 * n:          # (amounts are floats; the rest whole numbers)
            if not (abs(v) < _EXACT and v == np.floor(v)):
                ok = False
    for i in range(n if ok else 0):
        k, t, a, p, c, o, x = (flat[7 * i], flat[7 * i + 1], flat[7 * i + 2], flat[7 * i + 3], flat[7 * i + 4],
                               flat[7 * i + 5], flat[7 * i + 6])
        if k != k or t != t or k < 0 or k > 127 or c > 127 or o > 127:
            ok = False
            break
        kind[i] = np.int8(k)
        at[i] = np.int64(t)
        day[i] = (at[i] + zone_offsets[np.searchsorted(zone_starts, at[i], side="right")]) // US_PER_DAY
        amount[i] = a
        promise[i] = NULL_TIME if p != p else np.int64(p)
        channel[i] = -1 if c != c else np.int8(c)
        outcome[i] = -1 if o != o else np.int8(o)
        expiry[i] = NULL_TIME if x != x else np.int64(x)
    return ok, kind, at, day, amount, promise, channel, outcome, expiry


@njit(cache=True)
def _fold_rows(flat, zone_starts, zone_offsets, head, constants, ints, floats):
    """:func:`fold_inputs` and :func:`kernel.ledger.fold.fold` for one account's rows given as
    one float64 buffer (:func:`_flat_columns`): the call's own values in this thread's
    ``head`` (0, the number of rows, the moment, its local day, the last ping: the fold's
    ``starts``, ``state_at``, ``today`` and ``gps_last`` are views of it) and the settings'
    in ``constants`` (:func:`_fold_constants`) — seven arguments for the dispatcher to check,
    not the fold's seventeen. False, with nothing written, when :func:`_flat_columns` cannot
    vouch for a value (then the caller takes the columns' way)."""
    ok, kind, at, day, amount, promise, channel, outcome, expiry = _flat_columns(flat, head[1], zone_starts,
                                                                               zone_offsets)
    if not ok:
        return False
    _fold(head[0:2], kind, at, day, amount, promise, channel, outcome, expiry, head[2:3], head[3:4], head[4:5],
          constants[0], constants[1], constants[2], ints, floats)
    return True


@njit(cache=True)
def _fold_flat(flat, zone_starts, zone_offsets, head, constants, ints, floats, reads, patterns, steps, matchers,
               conds, values, flags, completed):
    """:func:`_fold_rows` and the pattern matcher in one call: the buffer holds the rows, then
    the GPS_OFFLINE pseudo-events (each one's start and end, by start)."""
    n = head[1]
    ok, kind, at, day, amount, promise, channel, outcome, expiry = _flat_columns(flat, n, zone_starts, zone_offsets)
    if not ok:
        return False
    m = (len(flat) - 7 * n) // 2
    o_starts = np.zeros(2, np.int64)
    o_starts[1] = m
    o_at = np.empty(m, np.int64)
    o_hours = np.empty(m, np.float64)
    for j in range(m):
        o_at[j] = np.int64(flat[7 * n + 2 * j])
        o_hours[j] = (np.int64(flat[7 * n + 2 * j + 1]) - o_at[j]) / P.US_PER_HOUR
    starts, state_at = head[0:2], head[2:3]
    _fold(starts, kind, at, day, amount, promise, channel, outcome, expiry, state_at, head[3:4], head[4:5],
          constants[0], constants[1], constants[2], ints, floats)
    _match(starts, kind, at, amount, channel, outcome, o_starts, o_at, o_hours, reads, state_at, patterns, steps,
           matchers, conds, values, flags, completed)
    return True


def _folded_until(rows: list[tuple], prog, at: int) -> int:
    """The first instant after ``at`` at which the pattern pass over ``rows`` (``prog`` None:
    none) may answer otherwise, for an account without offline periods: the matcher reads the
    moment ``t`` only in ``at_e >= t - lookback`` (a first step leaves the look-back at
    ``at_e + lookback + 1``) and ``t - at_e < silence`` (a silence reaches its length at
    ``at_e + silence``), both monotone in ``t``; every row and pattern counted, not only those
    that match (an earlier bound is only a shorter reuse)."""
    until = _NEVER
    if prog is None:
        return until
    for lookback, silence in prog.patterns[:, (2, 4)].tolist():
        for row in rows:
            edge = row[1] + lookback + 1
            if at < edge < until:
                until = edge
            if silence >= 0:
                edge = row[1] + silence
                if at < edge < until:
                    until = edge
    return until


_NEVER = 2 ** 63 - 1
_first = operator.itemgetter(0)


def _values(ints: np.ndarray, floats: np.ndarray, prog, flags, completed) -> FoldValues:
    """The values of one account's fold outputs (row 0), with the alerts of ``prog`` (None:
    no pattern pass) and the columns derived from others."""
    out = FoldValues(zip(_INT_COLUMNS, ints[0].tolist()))
    out.update(zip(_FLOAT_COLUMNS, floats[0].tolist()))
    if prog is not None:
        out.update(zip(_alert_columns(prog.names), _pairs(flags[0].tolist(), completed[0].tolist())))
    _derive_into(out)
    return out


def derived_expr(name: str, access) -> str:
    """:data:`DERIVED_EXPRS`' expression of the derived column ``name``, each fold output it
    reads written as ``access(column)`` (the text reading that output's value)."""
    return DERIVED_EXPRS[name].format_map(_Lookup(access))


class _Lookup(dict):
    """``str.format_map``'s mapping writing each ``{column}`` as ``access(column)``."""

    def __init__(self, access):
        super().__init__()
        self.access = access

    def __missing__(self, name: str) -> str:
        return self.access(name)


def _derive_into_code():
    """``_derive_into(out)``: :data:`DERIVED_EXPRS` of the fold values ``out``, stored into it
    (each output they read taken into a local once, as a hand-written function would)."""
    reads = dict.fromkeys(field for e in DERIVED_EXPRS.values() for _, field, _, _ in string.Formatter().parse(e)
                          if field)
    source = "def _derive_into(out):\n" + "".join(f"    {c} = out[{c!r}]\n" for c in reads) + "".join(
        f"    out[{name!r}] = {derived_expr(name, lambda c: c)}\n" for name in DERIVED_EXPRS)
    env: dict = {}
    exec(compile(source, "<derive_into>", "exec"), env)
    return env["_derive_into"]


_derive_into = _derive_into_code()


class FoldValues(dict):
    """:func:`derive_one`'s values (a dict, column → value in the fold's representation);
    ``memo``: a dictionary shared by every call whose fold gave the same outputs, where the
    values' pure functions keep their answers (:func:`kernel.ledger.join.merge_record` its
    record scalars). Callers do not change it. Without ``remember`` a call's values have no
    ``memo``."""

    __slots__ = ("memo",)


#: distinct fold outputs a thread keeps the values of (then it starts over): each ≈ 10 KB with
#: its record scalars, so a thread holds at most ≈ 3 MB
_VALUES_KEPT = 256


def _pairs(flags: list, completed: list):
    """Each pattern's flag, then the instant it completed (the order of :func:`_alert_columns`)."""
    for pair in zip(flags, completed):
        yield from pair


class _OneRow:
    """A thread's one-row arrays for :func:`derive_one` (the compiled passes read ``starts``,
    the moment, today and the last ping, and write the outputs; nothing of them outlives a
    call: the values leave as Python scalars)."""

    def __init__(self):
        #: (0, rows, moment, its local day, last ping): the compiled calls' one argument of the
        #: call's own values, and the fold's one-row inputs as views of it
        self.head = np.zeros(5, np.int64)
        self.starts, self.state_at, self.today, self.last_ping = (self.head[0:2], self.head[2:3], self.head[3:4],
                                                                  self.head[4:5])
        self.ints, self.floats = F.empty_outputs(1)
        self._alerts: tuple = (None, None, None)
        #: per pattern program (None: no pattern pass), the values of the fold outputs seen last by
        #: the outputs' bytes: derive_one's
        self.values: dict[int, tuple[object, dict[tuple, FoldValues]]] = {}
        #: per (id of a kept rows' list, zone, patterns): (rows, settings, local day, from, until,
        #: values) — derive_one's values of those rows, good that day from ``from`` until ``until``
        self.folded: dict[tuple, tuple] = {}

    def alerts(self, prog) -> tuple[np.ndarray, np.ndarray]:
        """The pattern pass's one-row outputs for ``prog`` (its number of patterns)."""
        kept = self._alerts
        if kept[0] is not prog:
            n = len(prog.patterns)
            kept = self._alerts = (prog, np.empty((1, n), np.int64), np.empty((1, n), np.int64))
        return kept[1], kept[2]


#: each thread's :class:`_OneRow`
_BUFFERS = threading.local()


def fold_inputs(rows: list[tuple], zone: str, remember: bool = False) -> tuple:
    """The fold's event columns of one account's rows (sorted in the fold's order) with the
    local day of each event in ``zone``; remembered for the last few hundred lists of rows
    when ``remember`` (the store's cache of an account's rows hands back the same list while
    the rows cannot have changed — the columns are a pure function of the rows and the zone)."""
    if not rows:
        return _NO_EVENTS
    key = (id(rows), zone)
    hit = _INPUTS.get(key)
    if hit is not None and hit[0] is rows:          # the very list (held here, so its id is not reused)
        return hit[1]
    kind, times, amount, promise, channel, outcome, expiry = zip(*rows)
    columns = (np.array(kind, np.int8), np.array(times, np.int64), np.array(_local_days_of(zone, times), np.int64),
               np.array([_NAN if a is None else a for a in amount], np.float64),
               np.array([NULL_TIME if d is None else d for d in promise], np.int64),
               np.array([-1 if c is None else c for c in channel], np.int8),
               np.array([-1 if o is None else o for o in outcome], np.int8),
               np.array([NULL_TIME if d is None else d for d in expiry], np.int64))
    if not remember:
        return columns
    # (shared between calls: the fold and the matcher only read their event columns)
    if len(_INPUTS) >= _INPUTS_KEPT:
        _INPUTS.clear()
    _INPUTS[key] = (rows, columns)
    return columns


#: fold inputs by (id of the rows' list, zone): fold_inputs' memory
_INPUTS: dict[tuple, tuple] = {}
_INPUTS_KEPT = 512
_NAN = float("nan")
_INT_COLUMNS, _FLOAT_COLUMNS = F.INT_COLUMNS, F.FLOAT_COLUMNS


def _local_days_of(zone: str, instants: tuple) -> list[int]:
    """:func:`local_days` of one account's few instants (µs) in ``zone``, in plain Python:
    each instant's offset from the zone's cached transitions by bisection."""
    lo, hi = min(instants), max(instants)
    table = _zone_table(zone, lo, hi)
    lists = _ZONE_LISTS.get(zone)
    if lists is None or lists[0] is not table:
        lists = _ZONE_LISTS[zone] = (table, table[2].tolist(), table[3].tolist())
    _, starts, offsets = lists
    if not starts or bisect.bisect_right(starts, lo) == bisect.bisect_right(starts, hi):
        offset = offsets[bisect.bisect_right(starts, lo)]
        return [(t + offset) // US_PER_DAY for t in instants]
    right = bisect.bisect_right
    return [(t + offsets[right(starts, t)]) // US_PER_DAY for t in instants]


#: per zone, its cached transition table (kernel.localtime) as Python lists
_ZONE_LISTS: dict[str, tuple] = {}


def _local_day_of(zone: str, instant: int) -> int:
    """``_local_days_of(zone, (instant,))[0]``, from the span of constant offset that held the
    zone's instant asked last when ``instant`` falls in it (a call's "today": the same span
    call after call) — the same table, so the same offset."""
    span = _ZONE_SPANS.get(zone)
    if span is not None and span[0] <= instant < span[1] and _ZONE_TABLES.get(zone) is span[3]:
        return (instant + span[2]) // US_PER_DAY
    day = _local_days_of(zone, (instant,))[0]
    table, starts, offsets = _ZONE_LISTS[zone]
    i = bisect.bisect_right(starts, instant)
    lo = max(table[0], starts[i - 1]) if i else table[0]
    hi = min(table[1] + 1, starts[i]) if i < len(starts) else table[1] + 1
    _ZONE_SPANS[zone] = (lo, hi, offsets[i], table)
    return day


#: per zone, (from, until, offset, table): the span of its table holding the instant asked last
_ZONE_SPANS: dict[str, tuple] = {}


_NO_EVENTS = (np.zeros(0, np.int8), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64),
              np.zeros(0, np.int8), np.zeros(0, np.int8), np.zeros(0, np.int64))


@functools.lru_cache(maxsize=16)
def _alert_columns(names: tuple[str, ...]) -> tuple[str, ...]:
    """The alert columns of the patterns ``names``: each one's flag, then the instant it completed."""
    return tuple(c for n in names for c in (f"alert_{n}", f"alert_{n}_at"))


def of_settings(fn):
    """``fn(settings)`` of frozen settings worked out once per settings (the last 16 kept), the
    last settings asked answered by identity: hashing frozen settings costs ≈ 1.5 µs, and every
    one-account state read asks."""
    known = functools.lru_cache(maxsize=16)(fn)
    last = [(object(), None)]             # (settings, value): replaced whole, so threads see a pair

    @functools.wraps(fn)
    def answer(settings):
        asked, value = last[0]
        if asked is settings:
            return value
        value = known(settings)
        last[0] = (settings, value)
        return value
    return answer


@of_settings
def _fold_constants(settings: StateSettings) -> np.ndarray:
    """The fold's settings as :func:`_fold_rows` takes them: the promise grace (days), the
    tamper span (days) and the offline threshold (µs) — worked out once per settings."""
    return np.array([settings.promise_grace_days, settings.gps_tamper_days,
                     int(settings.gps_offline_after_hours * 3_600_000_000)], np.int64)


@of_settings
def _program(settings: StateSettings) -> P.Program:
    """The patterns' compiled program of ``settings``."""
    return P.program(settings)


def _zone_index(zones, n: int) -> tuple[list[str], np.ndarray]:
    """Distinct zone names and each account's index (unknown or null zones: UTC)."""
    values = ["UTC" if z is None or z == "" else str(z) for z in (zones.tolist() if isinstance(zones, np.ndarray)
                                                                  else list(zones))]
    if len(values) != n:
        raise PostloanError(f"{len(values)} time zones for {n} accounts")
    names = sorted(set(values)) or ["UTC"]
    index = {z: i for i, z in enumerate(names)}
    return names, np.array([index[z] for z in values], np.int64)


#: how each state column is typed on output
_TIME = {c.name for c in STATE if pa.types.is_timestamp(c.type)}
_DATE = {c.name for c in STATE if pa.types.is_date(c.type)}
_BOOL = {c.name for c in STATE if pa.types.is_boolean(c.type)}
_ENUM = {c.name: c.enum for c in STATE if c.enum}


def state_table(columns: Mapping[str, np.ndarray]) -> pa.Table:
    """The derived columns as an Arrow table with the contract's ``state`` schema."""
    arrays = []
    for field in _STATE_SCHEMA:
        name = field.name
        values = columns[name]
        if name == "account_id":
            arr = pa.array(values, pa.string())
        elif name in _TIME:
            arr = pa.array(values, pa.timestamp("us", tz="UTC"), mask=values == NULL_TIME)
        elif name in _DATE:
            arr = pa.array(np.where(values == NULL_TIME, 0, values).astype(np.int32), pa.date32(), mask=values == NULL_TIME)
        elif name in _BOOL:
            arr = pa.array(values > 0, pa.bool_(), mask=values < 0)
        elif name in _ENUM:
            members = pa.array(ENUMS[_ENUM[name]], pa.string())
            arr = pa.DictionaryArray.from_arrays(pa.array(values.astype(np.int8), mask=values < 0), members)
        elif pa.types.is_floating(field.type):
            arr = pa.array(values, pa.float64(), from_pandas=True)
        else:
            arr = pa.array(values, field.type)
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=_STATE_SCHEMA)
