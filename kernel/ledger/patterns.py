"""Temporal patterns: sequences of events within windows, which state counters cannot express.

A counter says *how many* (``geofence_exits_30d``); a pattern says *in what order and how
close together*: the tracker went silent and **then**, within 48 hours, the car left its
geofence; a promise to pay, **then** a payment short of it, **then** silence. Each pattern is a
declarative :class:`Pattern` in :data:`PATTERNS` below, and one compiled matcher
(:func:`match`, Numba, one pass per account like :mod:`kernel.ledger.fold`) interprets them
all. A pattern raises an **alert**: two state columns, ``alert_<name>`` (bool) and
``alert_<name>_at`` (the instant the latest match completed), which rulesets read like any
input (docs/ledger.md, "Temporal patterns").

The spec
--------
- A **step** is one event: any of its alternatives (:func:`on`: an event kind and optional
  conditions on the event's fields). Step 2 onwards must happen strictly after the event
  that matched the step before it, and at most its ``within`` window after it (no window:
  any time after).
- The first step must lie in the pattern's ``lookback`` window (the last N days up to the
  moment).
- An optional final **silence**: no event matching any of its alternatives after the last
  step's event up to the moment, and the moment at least its length after that event.
- Conditions: ``field=(op, value)`` with op ``== != < <= > >=`` or ``in`` (a tuple of values);
  the value is a number, a channel or outcome name, :data:`PREVIOUS` (the same field of the
  event that matched the step before) or :func:`setting` (a ``[ledger]`` setting, read when
  the state is derived). A condition on a field the event lacks is false.
- Fields: ``amount``, ``channel``, ``outcome``, and ``hours`` — the length of an offline
  period. ``GPS_OFFLINE`` is not an event kind one ingests: it is an offline period of the
  reduced ping state (``gps_gaps``, and the silence after the last ping), placed at the instant
  the tracker fell silent, ``hours`` long up to the moment (a period still going on counts
  up to the moment).
- Windows are elapsed time, not calendar days (48 hours is 48 hours in every time zone).
  Each is a named setting with a default, overridable under ``[ledger.patterns.<name>]``; its
  unit is its name's suffix (``_hours`` or ``_days``).

The alert is true when at least one match exists as of the moment; ``_at`` is the latest
completion: the last step's instant, or with a silence the instant the silence reached its
length. The result depends only on the events' instants, never on their arrival order.
:mod:`kernel.ledger.reference` defines both shipped alerts again in plain Python, and
:mod:`kernel.ledger.durable_peer` runs the same specs in durable_rules: the tests hold all
three equal.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from ..errors import PostloanError
from ..hookspecs import NULL_TIME, US_PER_DAY
from ..schema import ENUMS, STATE
from . import fold as _fold  # noqa: F401  (sets NUMBA_CACHE_DIR before anything is compiled)

__all__ = ["Pattern", "Step", "Silence", "On", "on", "setting", "PREVIOUS", "PATTERNS", "ALERT_COLUMNS",
           "PSEUDO_KINDS", "FIELDS", "windows", "check_config", "Program", "program", "match", "alerts",
           "offline_events", "lookback_us", "US_PER_HOUR"]

US_PER_HOUR = 3_600_000_000
_UNITS = {"_hours": US_PER_HOUR, "_days": US_PER_DAY}

#: kinds a pattern may name that are not ingested events (code: after the contract's kinds)
PSEUDO_KINDS = ("GPS_OFFLINE",)
_KINDS = ENUMS["event_kind"] + PSEUDO_KINDS
KIND_CODE = {name: code for code, name in enumerate(_KINDS)}
GPS_OFFLINE = KIND_CODE["GPS_OFFLINE"]
#: the fields a condition may read (columns of the matcher's field matrix)
FIELDS = ("amount", "channel", "outcome", "hours")
_ENUM_FIELDS = {"channel": ENUMS["contact_channel"], "outcome": ENUMS["contact_outcome"]}
_OPS = ("==", "!=", "<", "<=", ">", ">=", "in")
OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN = range(len(_OPS))


class _Previous:
    def __repr__(self) -> str:
        return "PREVIOUS"


#: a condition's value: the same field of the event that matched the step before
PREVIOUS = _Previous()


@dataclass(frozen=True)
class Setting:
    """A condition's value read from ``[ledger]`` (a :class:`~kernel.ledger.state.StateSettings` field)."""

    name: str


def setting(name: str) -> Setting:
    return Setting(name)


@dataclass(frozen=True)
class On:
    """One alternative of a step: an event ``kind`` and conditions ``(field, op, value)``."""

    kind: str
    where: tuple[tuple[str, str, object], ...] = ()


def on(kind: str, **where: tuple) -> On:
    """``on("PAYMENT", amount=("<", PREVIOUS))``: a PAYMENT smaller than the step before's."""
    return On(kind, tuple((name, op, value) for name, (op, value) in where.items()))


@dataclass(frozen=True)
class Step:
    """An event matching any of ``any_of``, at most the window named ``within`` after the
    previous step's event (None: any time after)."""

    any_of: tuple[On, ...]
    within: str | None = None


@dataclass(frozen=True)
class Silence:
    """No event matching any of ``any_of`` after the last step up to the moment, and the
    moment at least the window named ``length`` after the last step."""

    any_of: tuple[On, ...]
    length: str


@dataclass(frozen=True)
class Pattern:
    """A named sequence; see the module's docstring for what each part means."""

    name: str
    doc: str
    steps: tuple[Step, ...]
    #: the window (name) in which the first step must lie, up to the moment
    lookback: str
    #: named windows and their defaults (unit: the name's suffix, _hours or _days)
    windows: Mapping[str, float] = field(default_factory=dict)
    silence: Silence | None = None

    @property
    def columns(self) -> tuple[str, str]:
        return f"alert_{self.name}", f"alert_{self.name}_at"


#: Every pattern, in the order of their state columns.
PATTERNS: tuple[Pattern, ...] = (
    Pattern(
        name="gps_offline_then_exit",
        doc="The tracker went offline (an offline period of at least gps_offline_after_hours, or a GPS_TAMPER) "
            "and then, within exit_within_hours, the car left its geofence; in the last lookback_days.",
        steps=(
            Step((on("GPS_OFFLINE", hours=(">=", setting("gps_offline_after_hours"))), on("GPS_TAMPER"))),
            Step((on("GEOFENCE_EXIT"),), within="exit_within_hours"),
        ),
        lookback="lookback_days",
        windows={"exit_within_hours": 48, "lookback_days": 30},
    ),
    Pattern(
        name="promise_partial_silence",
        doc="A PROMISE_TO_PAY, then within payment_within_days a PAYMENT smaller than the promised amount, then "
            "silence: no PAYMENT and no RIGHT_PARTY contact for silence_days up to the moment; the promise in the "
            "last lookback_days.",
        steps=(
            Step((on("PROMISE_TO_PAY"),)),
            Step((on("PAYMENT", amount=("<", PREVIOUS)),), within="payment_within_days"),
        ),
        silence=Silence((on("PAYMENT"), on("CONTACT_ATTEMPT", outcome=("==", "RIGHT_PARTY"))), length="silence_days"),
        lookback="lookback_days",
        windows={"payment_within_days": 30, "silence_days": 7, "lookback_days": 90},
    ),
)

#: the state columns the patterns write, two per pattern
ALERT_COLUMNS: tuple[str, ...] = tuple(c for p in PATTERNS for c in p.columns)


# -------------------------------------------------------------------------- checking the specs
def _check_spec(p: Pattern) -> None:
    """A spec mistake is a programming error: raised when this module is imported."""
    def fail(why: str):
        raise ValueError(f"pattern {p.name!r}: {why}")

    if not p.steps:
        fail("has no step")
    for name in p.windows:
        if not any(name.endswith(u) for u in _UNITS):
            fail(f"window {name!r} must end in _hours or _days (its unit)")
    used = [p.lookback] + [s.within for s in p.steps if s.within] + ([p.silence.length] if p.silence else [])
    for name in used:
        if name not in p.windows:
            fail(f"window {name!r} has no default in windows")
    if not p.lookback.endswith("_days"):
        fail("the lookback window is counted in days")
    if p.steps[0].within:
        fail("the first step has no previous step to be within")
    parts = [(i, s.any_of) for i, s in enumerate(p.steps)] + ([(-1, p.silence.any_of)] if p.silence else [])
    for i, alternatives in parts:
        if not alternatives:
            fail("a step has no alternative")
        for alt in alternatives:
            if alt.kind not in KIND_CODE or alt.kind == "GPS_PING":
                fail(f"{alt.kind!r} is not an event kind (GPS_PING is reduced to GPS_OFFLINE periods)")
            for name, op, value in alt.where:
                if name not in FIELDS:
                    fail(f"{alt.kind}: no field {name!r} (fields: {', '.join(FIELDS)})")
                if op not in _OPS:
                    fail(f"{alt.kind}.{name}: operator {op!r} is not one of {' '.join(_OPS)}")
                if value is PREVIOUS and i <= 0:
                    fail(f"{alt.kind}.{name}: PREVIOUS needs a step before (not the first step, not the silence)")
                values = value if op == "in" else (value,)
                if op == "in" and (not isinstance(value, tuple) or not value):
                    fail(f"{alt.kind}.{name}: 'in' takes a non-empty tuple")
                for v in values:
                    if name in _ENUM_FIELDS and isinstance(v, str) and v not in _ENUM_FIELDS[name]:
                        fail(f"{alt.kind}.{name}: {v!r} is not one of {', '.join(_ENUM_FIELDS[name])}")
                    if op == "in" and name not in _ENUM_FIELDS:
                        fail(f"{alt.kind}.{name}: 'in' is for channel and outcome")
    state = {c.name: c for c in STATE}
    flag, at = p.columns
    if flag not in state or str(state[flag].type) != "bool" or at not in state \
            or "timestamp" not in str(state[at].type):
        fail(f"declare {flag} (bool) and {at} (timestamp) in kernel.schema.STATE")


for _p in PATTERNS:
    _check_spec(_p)
assert len({p.name for p in PATTERNS}) == len(PATTERNS)
assert set(ALERT_COLUMNS) == {c.name for c in STATE if c.name.startswith("alert_")}, \
    "every alert_ column of STATE belongs to a pattern"
del _p
_BY_NAME = {p.name: p for p in PATTERNS}


# -------------------------------------------------------------------------- settings
def check_config(given, lookback_days: int) -> tuple[tuple[str, str, float], ...]:
    """``[ledger.patterns]`` checked: ``(pattern, window, value)`` overrides. Each table is
    named after a pattern and sets its windows to numbers > 0; a look-back may not exceed
    ``[ledger] lookback_days`` (the ledger reads no further back)."""
    if given is None:
        return ()
    if not isinstance(given, Mapping):
        raise PostloanError(f"[ledger.patterns]: expected a table of patterns ({', '.join(_BY_NAME)}), got {given!r}")
    out = []
    for name, table in given.items():
        p = _BY_NAME.get(name)
        if p is None:
            raise PostloanError(f"[ledger.patterns] {name!r}: unknown pattern (patterns: {', '.join(_BY_NAME)})")
        where = f"[ledger.patterns.{name}]"
        if not isinstance(table, Mapping):
            raise PostloanError(f"{where}: expected a table of windows ({', '.join(p.windows)}), got {table!r}")
        for key, value in table.items():
            if key not in p.windows:
                raise PostloanError(f"{where} {key!r}: unknown setting (settings: {', '.join(p.windows)})")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
                    or value == float("inf"):
                raise PostloanError(f"{where} {key}: expected a number > 0, got {value!r}")
            if key == p.lookback and value > lookback_days:
                raise PostloanError(f"{where} {key} = {value}: above [ledger] lookback_days ({lookback_days}), "
                                    f"how far back the ledger reads events")
            out.append((name, key, float(value)))
    return tuple(out)


def windows(overrides: tuple[tuple[str, str, float], ...] = ()) -> dict[str, dict[str, float]]:
    """Every pattern's windows: the defaults with ``overrides`` applied."""
    out = {p.name: dict(p.windows) for p in PATTERNS}
    for name, key, value in overrides:
        out[name][key] = value
    return out


def window_us(pattern: Pattern, name: str, values: Mapping[str, float]) -> int:
    unit = next(u for suffix, u in _UNITS.items() if name.endswith(suffix))
    return int(round(values[name] * unit))


# -------------------------------------------------------------------------- the program
@dataclass(frozen=True)
class Program:
    """The specs as tables the compiled matcher reads.

    - ``patterns[p]`` = (first step, steps, lookback µs, silence step or −1, silence µs);
    - ``steps[s]`` = (first matcher, end of matchers, within µs or −1);
    - ``matchers[m]`` = (kind code, first condition, end of conditions);
    - ``conds[c]`` = (field, operator, reads PREVIOUS, member bit set for ``in``) and
      ``values[c]`` the value compared with.
    """

    patterns: np.ndarray
    steps: np.ndarray
    matchers: np.ndarray
    conds: np.ndarray
    values: np.ndarray
    #: the event kinds any pattern reads (others never reach the matcher)
    kinds: tuple[int, ...]
    #: the patterns, in table order
    names: tuple[str, ...]
    #: per kind code: does some pattern read it?
    reads: np.ndarray
    #: how far back any pattern's first step may lie (µs)
    lookback_us: int


def program(settings, patterns: tuple[Pattern, ...] = PATTERNS) -> Program:
    """The matcher's tables for ``patterns`` with the windows and settings of ``settings``
    (a :class:`~kernel.ledger.state.StateSettings`)."""
    values_of = windows(getattr(settings, "patterns", ()))
    p_rows, s_rows, m_rows, c_rows, c_values, kinds = [], [], [], [], [], set()

    def add_step(alternatives, within_us):
        m_lo = len(m_rows)
        for alt in alternatives:
            kinds.add(KIND_CODE[alt.kind])
            c_lo = len(c_rows)
            for name, op, value in alt.where:
                members = 0
                if op == "in":
                    for v in value:
                        members |= 1 << _ENUM_FIELDS[name].index(v)
                    number = 0.0
                elif value is PREVIOUS:
                    number = 0.0
                elif isinstance(value, Setting):
                    number = float(getattr(settings, value.name))
                elif isinstance(value, str):
                    number = float(_ENUM_FIELDS[name].index(value))
                else:
                    number = float(value)
                c_rows.append((FIELDS.index(name), _OPS.index(op), int(value is PREVIOUS), members))
                c_values.append(number)
            m_rows.append((KIND_CODE[alt.kind], c_lo, len(c_rows)))
        s_rows.append((m_lo, len(m_rows), within_us))

    for p in patterns:
        w = values_of.get(p.name, dict(p.windows))
        first = len(s_rows)
        for s in p.steps:
            add_step(s.any_of, window_us(p, s.within, w) if s.within else -1)
        silence_step, silence_us = -1, -1
        if p.silence is not None:
            silence_step = len(s_rows)
            add_step(p.silence.any_of, -1)
            silence_us = window_us(p, p.silence.length, w)
        p_rows.append((first, len(p.steps), window_us(p, p.lookback, w), silence_step, silence_us))
    as_int = lambda rows, width: np.array(rows, np.int64).reshape(-1, width)  # noqa: E731
    reads = np.zeros(len(_KINDS), np.bool_)
    reads[sorted(kinds)] = True
    return Program(as_int(p_rows, 5), as_int(s_rows, 3), as_int(m_rows, 3), as_int(c_rows, 4),
                   np.array(c_values, np.float64), tuple(sorted(kinds)), tuple(p.name for p in patterns), reads,
                   max((int(row[2]) for row in p_rows), default=0))


# -------------------------------------------------------------------------- the matcher
#: "no previous event" as an int64, not the literal -1: a literal argument would compile _step_matches
#: a second time (Numba specializes a function on each literal it is called with)
_NONE = np.int64(-1)


@njit(cache=True)
def _step_matches(s, e, prev, kind, fields, steps, matchers, conds, values):
    """Does event ``e`` match any alternative of step ``s`` (``prev``: the event that matched
    the step before, −1 for none)?"""
    for mi in range(steps[s, 0], steps[s, 1]):
        if matchers[mi, 0] != kind[e]:
            continue
        ok = True
        for ci in range(matchers[mi, 1], matchers[mi, 2]):
            f = conds[ci, 0]
            x = fields[e, f]
            y = fields[prev, f] if conds[ci, 2] == 1 else values[ci]
            if x != x or y != y:                       # a field the event lacks: false
                ok = False
                break
            op = conds[ci, 1]
            if op == OP_EQ:
                r = x == y
            elif op == OP_NE:
                r = x != y
            elif op == OP_LT:
                r = x < y
            elif op == OP_LE:
                r = x <= y
            elif op == OP_GT:
                r = x > y
            elif op == OP_GE:
                r = x >= y
            else:
                r = x >= 0 and x < 63 and ((conds[ci, 3] >> np.int64(x)) & 1) == 1
            if not r:
                ok = False
                break
        if ok:
            return True
    return False


@njit(cache=True)
def _match_account(m, kind, at, fields, t, patterns, steps, matchers, conds, values, valid, flag, completed):
    """One account's events ``0:m`` (sorted by instant, ties in any order): ``flag[p]`` and
    ``completed[p]`` per pattern (see :func:`match`)."""
    for p in range(patterns.shape[0]):
        flag[p] = 0
        completed[p] = NULL_TIME
        first, k, lookback, silence_step, silence = (patterns[p, 0], patterns[p, 1], patterns[p, 2],
                                                     patterns[p, 3], patterns[p, 4])
        # step 0: in the look-back
        for e in range(m):
            valid[0, e] = at[e] >= t - lookback and _step_matches(first, e, _NONE, kind, fields, steps, matchers,
                                                                  conds, values)
        # step i: strictly after an event valid for step i − 1, within its window
        for i in range(1, k):
            s = first + i
            within = steps[s, 2]
            for e in range(m):
                ok = False
                for q in range(e - 1, -1, -1):
                    if at[q] >= at[e]:
                        continue
                    if within >= 0 and at[e] - at[q] > within:
                        break
                    if valid[i - 1, q] and _step_matches(s, e, q, kind, fields, steps, matchers, conds, values):
                        ok = True
                        break
                valid[i, e] = ok
        # the silence: nothing matching it after the last step, and long enough by now
        quiet_since = NULL_TIME
        if silence_step >= 0:
            for e in range(m):
                if _step_matches(silence_step, e, _NONE, kind, fields, steps, matchers, conds, values):
                    quiet_since = max(quiet_since, at[e])
        for e in range(m):
            if not valid[k - 1, e]:
                continue
            done = at[e]
            if silence_step >= 0:
                if quiet_since > at[e] or t - at[e] < silence:
                    continue
                done = at[e] + silence
            flag[p] = 1
            completed[p] = max(completed[p], done)


@njit(cache=True)
def match(starts, kind, at, amount, channel, outcome, o_starts, o_at, o_hours, reads, moment, patterns, steps,
          matchers, conds, values, flag, completed):
    """Account ``a``'s events are ``starts[a]:starts[a + 1]`` of the event columns and its
    GPS_OFFLINE pseudo-events ``o_starts[a]:o_starts[a + 1]`` of ``o_at``/``o_hours``, both
    sorted by instant; ``reads[k]``: some pattern reads kind ``k``. Each account's events
    that a pattern reads are merged by instant into one buffer, then matched. Writes
    ``flag[a, p]`` (0/1) and ``completed[a, p]`` (the latest match's completion, NULL_TIME
    for none)."""
    n = starts.shape[0] - 1
    most = 1
    longest = 1
    for a in range(n):
        most = max(most, starts[a + 1] - starts[a] + o_starts[a + 1] - o_starts[a])
    for p in range(patterns.shape[0]):
        longest = max(longest, patterns[p, 1])
    b_kind = np.empty(most, np.int64)
    b_at = np.empty(most, np.int64)
    b_fields = np.empty((most, 4), np.float64)
    valid = np.zeros((longest, most), np.bool_)
    for a in range(n):
        m = 0
        i, i_end = starts[a], starts[a + 1]
        j, j_end = o_starts[a], o_starts[a + 1]
        while i < i_end or j < j_end:
            if j >= j_end or (i < i_end and at[i] <= o_at[j]):
                k = kind[i]
                if reads[k]:
                    b_kind[m] = k
                    b_at[m] = at[i]
                    b_fields[m, 0] = amount[i]
                    b_fields[m, 1] = channel[i] if channel[i] >= 0 else np.nan
                    b_fields[m, 2] = outcome[i] if outcome[i] >= 0 else np.nan
                    b_fields[m, 3] = np.nan
                    m += 1
                i += 1
            else:
                b_kind[m] = GPS_OFFLINE
                b_at[m] = o_at[j]
                b_fields[m, 0] = np.nan
                b_fields[m, 1] = np.nan
                b_fields[m, 2] = np.nan
                b_fields[m, 3] = o_hours[j]
                m += 1
                j += 1
        _match_account(m, b_kind, b_at, b_fields, moment[a], patterns, steps, matchers, conds, values, valid,
                       flag[a], completed[a])


@njit(cache=True)
def _group(n, which, at, hours):
    """Pseudo-events in any order grouped by account (a counting sort) and sorted by instant
    within each (an insertion sort: a car has a few offline periods): (starts, at, hours)."""
    starts = np.zeros(n + 1, np.int64)
    for i in range(which.shape[0]):
        starts[which[i] + 1] += 1
    for a in range(n):
        starts[a + 1] += starts[a]
    fill = starts[:-1].copy()
    out_at = np.empty(at.shape[0], np.int64)
    out_hours = np.empty(at.shape[0], np.float64)
    for i in range(which.shape[0]):
        k = fill[which[i]]
        fill[which[i]] += 1
        out_at[k] = at[i]
        out_hours[k] = hours[i]
    for a in range(n):
        for i in range(starts[a] + 1, starts[a + 1]):
            t, h = out_at[i], out_hours[i]
            j = i - 1
            while j >= starts[a] and out_at[j] > t:
                out_at[j + 1] = out_at[j]
                out_hours[j + 1] = out_hours[j]
                j -= 1
            out_at[j + 1] = t
            out_hours[j + 1] = h
    return starts, out_at, out_hours


# -------------------------------------------------------------------------- from events to alerts
def offline_events(accounts: np.ndarray, offline, gps, moment: int, since: int,
                   ids: pa.Array | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``GPS_OFFLINE`` pseudo-events of ``accounts`` as of ``moment``: (account index,
    instant the tracker fell silent, hours silent up to the moment). They are each stored
    offline period (``offline`` = account, from, to) that began in ``[since, moment]``, and
    the silence after a car's last ping (``gps`` = account, first ping, last ping, …) when that
    ping is in ``[since, moment]``. ``ids``: ``accounts`` as an Arrow array, if at hand."""
    parts = []
    if offline is not None and offline[0].shape[0]:
        o_acc, o_from, o_to = offline
        keep = (o_from <= moment) & (o_from >= since)
        if keep.any():
            parts.append((o_acc[keep], o_from[keep], np.minimum(o_to[keep], moment)))
    if gps is not None and gps[0].shape[0]:
        g_acc, g_last = gps[0], gps[2]
        keep = (g_last <= moment) & (g_last >= since)
        if keep.any():
            parts.append((g_acc[keep], g_last[keep], np.full(int(keep.sum()), moment, np.int64)))
    if not parts or accounts.shape[0] == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    if accounts.shape[0] > 1 and ids is None:
        ids = pa.array(accounts, pa.string())

    def index(names):
        if accounts.shape[0] == 1:                     # one account (a request): no hashing
            return np.where(names == accounts[0], 0, -1)
        found = pc.fill_null(pc.index_in(pa.array(names, pa.string()), value_set=ids), -1)
        return found.to_numpy(zero_copy_only=False).astype(np.int64)

    if len(parts) == 1:
        names, start, end = parts[0]
        which = index(names)
    else:
        which = np.concatenate([index(names) for names, _, _ in parts])
        start, end = np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])
    mine = which >= 0
    if not mine.all():
        which, start, end = which[mine], start[mine], end[mine]
    return which, start.astype(np.int64), (end - start) / US_PER_HOUR


def lookback_us(settings) -> int:
    """How far back any pattern's first step may lie (µs)."""
    values = windows(getattr(settings, "patterns", ()))
    return max(window_us(p, p.lookback, values[p.name]) for p in PATTERNS)


def alerts(prog: Program, starts: np.ndarray, kind: np.ndarray, at: np.ndarray, amount: np.ndarray,
           channel: np.ndarray, outcome: np.ndarray, moment: np.ndarray,
           offline: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The alert columns of the accounts whose events are ``starts[a]:starts[a + 1]`` of the
    event columns, sorted by instant within each account (the fold's order), with the
    GPS_OFFLINE pseudo-events ``offline`` = (account index, instant, hours) in any order.
    Bools as 0/1, instants in µs (NULL_TIME: none)."""
    flag, completed = alert_rows(prog, starts, kind, at, amount, channel, outcome, moment, offline)
    out = {}
    for p, pattern in enumerate(prog.names):
        out[f"alert_{pattern}"], out[f"alert_{pattern}_at"] = flag[:, p], completed[:, p]
    return out


#: no offline pseudo-events, for one account (read-only: the matcher never writes them)
_NO_OFFLINE_ONE = (np.zeros(0, np.int64), np.zeros(0), np.zeros(2, np.int64))


def alert_rows(prog: Program, starts: np.ndarray, kind: np.ndarray, at: np.ndarray, amount: np.ndarray,
               channel: np.ndarray, outcome: np.ndarray, moment: np.ndarray,
               offline: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
               flag: np.ndarray | None = None, completed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`alerts` as the matcher's two matrices (account × pattern, in ``prog.names``'
    order: the flags and the instants completed), for one account's few events without a
    dictionary of columns; written into ``flag`` and ``completed`` when given (int64,
    accounts × patterns: a caller's reused buffers)."""
    n = starts.shape[0] - 1
    if offline is not None and offline[0].shape[0] and GPS_OFFLINE in prog.kinds:
        o_starts, o_at, o_hours = _group(n, *offline)
    elif n == 1:
        o_at, o_hours, o_starts = _NO_OFFLINE_ONE
    else:
        o_at, o_hours, o_starts = np.zeros(0, np.int64), np.zeros(0), np.zeros(n + 1, np.int64)
    if flag is None:
        flag = np.empty((n, len(prog.patterns)), np.int64)
    if completed is None:
        completed = np.empty((n, len(prog.patterns)), np.int64)
    match(starts, kind, at, amount, channel, outcome, o_starts, o_at, o_hours, prog.reads, moment, prog.patterns,
          prog.steps, prog.matchers, prog.conds, prog.values, flag, completed)
    return flag, completed
