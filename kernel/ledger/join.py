"""Book ⋈ state: what a decision reads.

The decision input is the book with its upstream counters replaced by the ledger's state,
plus the state's own columns (``promise_open``, ``open_disputes``, ``last_field_visit_at``…).

Precedence (docs/ledger.md):

- a state column that *replaces* a book column of the same name takes the state's value for
  every account the ledger knows (``ledger_events`` > 0), and the book's otherwise;
- the columns in :data:`WHERE_SET` (GPS, insurance, consent, opt-out) take the state's value
  wherever the state has one (a car's pings make its GPS state known even when no other
  event of the account is), the book's otherwise;
- with ``[ledger] book_counters = "ignore"`` the ledger is the only source of the counters:
  an account it does not know has zero calls, no promise… (the GPS and insurance columns
  still fall back to the book where the state has nothing);
- without a ledger (or for accounts it does not know, by default) the state's own columns
  are read off the book as far as it says: an open promise is a ``promise_date`` not yet
  past, a dispute is a recorded overdue reason DISPUTE, a repossession the ``repossessed``
  flag; what the book cannot say is empty.
"""
from __future__ import annotations

import datetime as dt
import threading
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from ..errors import PostloanError
from ..hookspecs import NULL_TIME, Batch, Record
from ..schema import BOOK, ENUMS, STATE
from .fold import FLOAT_COLUMNS as _FOLD_FLOATS, INT_COLUMNS as _FOLD_INTS
from .state import _BOOL, _DATE, _ENUM, _TIME, DERIVED_EXPRS, derived_expr, state_table

__all__ = ["WHERE_SET", "REPLACED", "STATE_ONLY", "BOOK_COUNTERS", "book_state", "merge", "join_table",
           "join_columns", "with_state", "book_state_record", "merge_record", "record_state", "join_record",
           "join_book_state", "join_state_record", "StateInputs"]

_BOOK_NAMES = {c.name for c in BOOK}
#: state columns that replace the book column of the same name
REPLACED = tuple(c.name for c in STATE if c.name in _BOOK_NAMES and c.name != "account_id")
#: ... only where the state has a value
WHERE_SET = ("consent_automated_contact", "contact_opt_out", "gps_last_ping_at", "gps_offline_hours", "gps_status",
             "insurance_expiry_date")
#: columns the state adds to the book
STATE_ONLY = tuple(c.name for c in STATE if c.name not in _BOOK_NAMES)
#: ``[ledger] book_counters``: for accounts the ledger does not know
BOOK_COUNTERS = ("fallback", "ignore")
_FLOAT = {c.name for c in STATE if pa.types.is_floating(c.type)}
_DISPUTE = ENUMS["overdue_reason"].index("DISPUTE")
_TAMPERED = ENUMS["gps_status"].index("TAMPERED")
_STAGE_REPOSSESSED = ENUMS["repossession_stage"].index("REPOSSESSED")


def _null(name: str, n: int) -> np.ndarray:
    if name in _FLOAT:
        return np.full(n, np.nan)
    if name in _TIME or name in _DATE:
        return np.full(n, NULL_TIME, np.int64)
    if name in _ENUM or name.startswith("consent_") or name == "contact_opt_out":
        return np.full(n, -1, np.int64)
    return np.zeros(n, np.int64)


def book_state(batch: Batch) -> dict[str, np.ndarray]:
    """Every state column read off the book alone (the fold's representation: times in µs,
    dates in days, NULL_TIME / NaN / −1 for null, bools 0/1)."""
    n = batch.n
    out: dict[str, np.ndarray] = {c.name: _null(c.name, n) for c in STATE}
    out["account_id"] = np.asarray(batch.raw("account_id")) if batch.has("account_id") else np.full(n, None, object)
    out["state_at"] = np.full(n, batch.now_us, np.int64)
    for name in REPLACED:
        if not batch.has(name):
            continue
        if name in _FLOAT:
            out[name] = batch.float(name)
        elif name in _TIME:
            out[name] = batch.time_us(name)
        elif name in _DATE:
            out[name] = batch.days(name)
        elif name in _ENUM:
            out[name] = batch.enum(name).astype(np.int64)
        elif name in _BOOL or name == "consent_automated_contact" or name == "contact_opt_out":
            out[name] = np.where(batch.valid(name), batch.bool(name).astype(np.int64), -1)
        else:
            out[name] = batch.int(name)
    calls, connected = out["call_attempts_today"], out["connected_calls_today"]
    out["unanswered_attempts_today"] = np.maximum(calls - connected, 0)
    as_of_day = (batch.as_of - dt.date(1970, 1, 1)).days
    promise = out["promise_date"]
    out["promise_open"] = ((promise != NULL_TIME) & (promise >= as_of_day)).astype(np.int64)
    if batch.has("reported_overdue_reason"):
        out["open_disputes"] = (batch.enum("reported_overdue_reason") == _DISPUTE).astype(np.int64)
    consent = out["consent_automated_contact"]
    out["consent_sms"], out["consent_voice_bot"] = consent.copy(), consent.copy()
    out["opt_out_phone"] = np.maximum(out["contact_opt_out"], 0)
    if batch.has("gps_status"):
        out["gps_tamper_30d"] = (out["gps_status"] == _TAMPERED).astype(np.int64)
    out["repossession_stage"] = np.where(out["repossessed"] > 0, _STAGE_REPOSSESSED, 0)
    return out


def merge(book: Mapping[str, np.ndarray], ledger: Mapping[str, np.ndarray] | None,
          book_counters: str = "fallback") -> dict[str, np.ndarray]:
    """The state a decision reads: the ledger's where it knows the account (see the module's
    precedence), the book's otherwise."""
    if ledger is None:
        return dict(book)
    if book_counters not in BOOK_COUNTERS:
        raise PostloanError(f"[ledger] book_counters = {book_counters!r}: expected one of {', '.join(BOOK_COUNTERS)}")
    known = ledger["ledger_events"] > 0 if book_counters == "fallback" else np.ones(len(ledger["ledger_events"]), bool)
    out = {"account_id": book["account_id"], "state_at": ledger["state_at"]}
    for c in STATE[2:]:
        name = c.name
        mine, theirs = ledger[name], book[name]
        if name in WHERE_SET:
            null = np.isnan(mine) if name in _FLOAT else mine == (NULL_TIME if name in _TIME or name in _DATE else -1)
            out[name] = np.where(null, theirs, mine)
        else:
            out[name] = np.where(known, mine, theirs)
    return out


def join_table(book: pa.Table | pa.RecordBatch, state: Mapping[str, np.ndarray]) -> pa.Table:
    """``book`` with its replaced columns taken from ``state`` (fold representation, one row
    per book row) and the state's own columns appended."""
    table = book if isinstance(book, pa.Table) else pa.Table.from_batches([book])
    arrow = state_table({**state, "account_id": np.asarray(state["account_id"], dtype=object)})
    names = table.schema.names
    for name in REPLACED:
        column = arrow.column(name)
        if name in names:
            i = names.index(name)
            target = table.schema.field(name).type
            if not column.type.equals(target):
                column = _cast(column, target)
            table = table.set_column(i, table.schema.field(name), column)
        else:
            table = table.append_column(name, column)
    for name in STATE_ONLY:
        if name in names:
            raise PostloanError(f"the book has a column {name!r}, which only the ledger's state may give")
        table = table.append_column(arrow.schema.field(name), arrow.column(name))
    return table


def _cast(column: pa.ChunkedArray, target: pa.DataType):
    if pa.types.is_dictionary(target):
        return column.cast(pa.string()).dictionary_encode() if not pa.types.is_dictionary(column.type) else column
    return column.cast(target)


_EPOCH_DAY = dt.date(1970, 1, 1)
_UTC = dt.timezone.utc


# -- one account as a record of Python scalars (a gRPC Decide): the same precedence, no arrays --

def _fold_kind(name: str) -> str:
    """A state column's kind of fold value: float, time, date, enum, bool (consents and
    opt-outs too) or count."""
    if name in _FLOAT:
        return "float"
    if name in _TIME:
        return "time"
    if name in _DATE:
        return "date"
    if name in _ENUM:
        return "enum"
    if name in _BOOL or name.startswith("consent_") or name == "contact_opt_out":
        return "bool"
    return "count"


def _converter(name: str):
    """A fold value → record scalar function for one state column."""
    kind = _fold_kind(name)
    if kind == "float":
        return lambda v: None if v != v else v
    if kind == "time":
        return lambda v: None if v == NULL_TIME else _EPOCH + dt.timedelta(microseconds=v)
    if kind == "date":
        return lambda v: None if v == NULL_TIME else _EPOCH_DAY + dt.timedelta(days=v)
    if kind == "enum":
        members = ENUMS[_ENUM[name]]
        return lambda v: None if v < 0 else members[v]
    if kind == "bool":
        return lambda v: None if v < 0 else v > 0
    return None                               # counts: as they are


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)
#: each fold output's place in derive_one's lists (``outputs``)
_FOLD_INT = {name: i for i, name in enumerate(_FOLD_INTS)}
_FOLD_FLOAT = {name: i for i, name in enumerate(_FOLD_FLOATS)}
#: (column, converter or None) for every state column a record carries
_RECORD_COLUMNS = tuple((c.name, _converter(c.name)) for c in STATE[2:])
#: a record's state before the book is read: nulls, zeros, false
_EMPTY_RECORD = {name: (None if convert is not None and name not in _BOOL else 0 if convert is None else False)
                 for name, convert in _RECORD_COLUMNS}
_EMPTY_RECORD.update(repossession_stage="NONE", promise_open=False)
for _name in ("consent_sms", "consent_voice_bot", "consent_phone", "consent_email", "consent_gps",
              "consent_automated_contact", "contact_opt_out"):
    _EMPTY_RECORD[_name] = None
_REPLACED_SET = frozenset(REPLACED)
_WHERE_SET = frozenset(WHERE_SET)
#: the columns merge_record takes from the ledger only when it knows their value
_WHERE_SET_COLUMNS = tuple((name, convert) for name, convert in _RECORD_COLUMNS if name in _WHERE_SET)


def _record_state_exprs(columns, access=lambda name: f"s[{name!r}]") -> tuple[dict, list[tuple[str, str]]]:
    """(namespace, [(column, expression of the fold's values)]): each column's conversion
    written out (the same as :func:`_converter`'s), for the generated functions below: a
    request's state pays no call per column. ``access(column)``: the text reading a column's
    fold value (default: of the values' dictionary ``s``)."""
    env = {"NULL_TIME": NULL_TIME, "EPOCH": _EPOCH, "EPOCH_DAY": _EPOCH_DAY, "timedelta": dt.timedelta}
    exprs = []
    for i, (name, convert) in enumerate(columns):
        v = f"(x := {access(name)})"
        if convert is None:
            exprs.append((name, access(name)))
        elif name in _FLOAT:
            exprs.append((name, f"(None if {v} != x else x)"))
        elif name in _TIME:
            exprs.append((name, f"(None if {v} == NULL_TIME else EPOCH + timedelta(microseconds=x))"))
        elif name in _DATE:
            exprs.append((name, f"(None if {v} == NULL_TIME else EPOCH_DAY + timedelta(days=x))"))
        elif name in _ENUM:
            env[f"M{i}"] = ENUMS[_ENUM[name]]
            exprs.append((name, f"(None if {v} < 0 else M{i}[x])"))
        else:                                                   # bools, consents
            exprs.append((name, f"(None if {v} < 0 else x > 0)"))
    return env, exprs


def _record_state_code(columns=_RECORD_COLUMNS):
    """:func:`record_state` (of ``columns``) as one dict display, generated once."""
    env, exprs = _record_state_exprs(columns)
    source = "def record_state(s):\n    return {" + ", ".join(f"{name!r}: {e}" for name, e in exprs) + "}\n"
    exec(compile(source, "<record_state>", "exec"), env)
    return env["record_state"]


def _merge_code(columns, unless_null=frozenset()):
    """``merge_into(out, s)``: the record values of ``columns`` stored straight into ``out``
    (one store per column: no dictionary in between to build and copy), generated once; a
    column in ``unless_null`` is stored only when its value is not null (``out`` keeps its
    own: the gate's registered book columns where the ledger does not say)."""
    env, exprs = _record_state_exprs(columns)
    source = "def merge_into(out, s):\n" + "".join(
        f"    if (v := {e}) is not None:\n        out[{name!r}] = v\n" if name in unless_null else
        f"    out[{name!r}] = {e}\n" for name, e in exprs)
    exec(compile(source, "<merge_into>", "exec"), env)
    return env["merge_into"]


def gate_record_code(columns, registered: tuple[str, ...]):
    """``build(account_id, values, ints, floats)``: the gate's record — the account, its
    registered book columns (``registered``, ``values`` in their order), then the state
    columns ``columns`` converted as :func:`_merge_code` converts them, a registered column
    kept where the state's value is null — made straight from the fold's outputs as
    :func:`~kernel.ledger.state.derive_one` answers them with ``outputs`` (its integer and
    float outputs, two lists; the derived columns by :data:`~kernel.ledger.state.DERIVED_EXPRS`):
    no dictionary of the state's ≈ 70 values built to convert a dozen. The same record,
    key for key and in the same order, as ``merge_into`` of those columns over the
    registration (``tests/ledger/test_gate.py``). None when a column is no fold output (a
    temporal pattern's ``alert_*``: the pattern pass's)."""
    def access(name: str) -> str:
        if name in _FOLD_INT:
            return f"I[{_FOLD_INT[name]}]"
        if name in _FOLD_FLOAT:
            return f"F[{_FOLD_FLOAT[name]}]"
        return derived_expr(name, access)

    if any(name not in _FOLD_INT and name not in _FOLD_FLOAT and name not in DERIVED_EXPRS for name, _ in columns):
        return None
    env, exprs = _record_state_exprs(columns, access)
    state = dict(exprs)
    items = [f"'account_id': a"]
    for j, name in enumerate(registered):
        e = state.pop(name, None)
        items.append(f"{name!r}: r[{j}]" if e is None else f"{name!r}: r[{j}] if (v := {e}) is None else v")
    items += [f"{name!r}: {e}" for name, e in state.items()]
    env["Record"] = Record
    source = "def build(a, r, I, F):\n    return Record({" + ", ".join(items) + "})\n"
    exec(compile(source, "<gate_record>", "exec"), env)
    return env["build"]


_record_state = _record_state_code()
#: merge_record's stores of the columns it takes from the ledger whole once it has events (not WHERE_SET's)
_merge_rest = _merge_code(tuple((n, c) for n, c in _RECORD_COLUMNS if n not in _WHERE_SET))
#: ... and of WHERE_SET's columns, each stored only where the ledger's value is not null
_merge_where = _merge_code(_WHERE_SET_COLUMNS, unless_null=_WHERE_SET)


def record_state(values: Mapping[str, Any]) -> dict[str, Any]:
    """One account's derived state (:func:`~kernel.ledger.state.derive_one`'s fold values)
    as record scalars (dates, aware datetimes, enum names, None for null)."""
    return _record_state(values)


def book_state_record(record: Mapping[str, Any], as_of: dt.date) -> dict[str, Any]:
    """:func:`book_state` for one account given as a record."""
    out = dict(_EMPTY_RECORD)
    for name in REPLACED:
        if name in record:
            out[name] = record[name]
    _derive_record(out, record.get, as_of)
    return out


def _derive_record(out: dict, get, as_of: dt.date) -> None:
    """The state columns the book says something about without having them (an open promise,
    a dispute, unanswered calls…), read with ``get`` (the record's) into ``out``: the one
    derivation :func:`book_state_record` and :func:`join_book_state` share."""
    calls, connected = get("call_attempts_today") or 0, get("connected_calls_today") or 0
    out["unanswered_attempts_today"] = max(calls - connected, 0)
    promise = get("promise_date")
    out["promise_open"] = promise is not None and promise >= as_of
    out["open_disputes"] = int(get("reported_overdue_reason") == "DISPUTE")
    out["consent_sms"] = out["consent_voice_bot"] = get("consent_automated_contact")
    out["opt_out_phone"] = bool(get("contact_opt_out"))
    out["gps_tamper_30d"] = int(get("gps_status") == "TAMPERED")
    out["repossession_stage"] = "REPOSSESSED" if get("repossessed") else "NONE"


#: :data:`_EMPTY_RECORD` without the columns a record of the whole book has (the replaced ones)
_STATE_ONLY_RECORD = {name: value for name, value in _EMPTY_RECORD.items() if name not in _REPLACED_SET}


def join_book_state(record: Mapping[str, Any], as_of: dt.date) -> Record:
    """``join_record(record, book_state_record(record, as_of))`` — one account with its state
    read off the book alone (no ledger) — built straight: a record holding every replaced
    column keeps them as they are (the state would give back the same values), so only the
    state's own columns are added (their empty values, then :func:`_derive_record`'s), in
    the same order; any other record takes the general way. ``tests/ledger`` pins the two
    together."""
    if not record.keys() >= _REPLACED_SET:
        return join_record(record, book_state_record(record, as_of))
    out = Record(record)
    out.update(_STATE_ONLY_RECORD)
    _derive_record(out, record.get, as_of)
    return out


def merge_record(book: Mapping[str, Any], ledger: Mapping[str, Any] | None,
                 book_counters: str = "fallback") -> dict[str, Any]:
    """:func:`merge` for one account: ``book`` in record form, ``ledger`` in the fold's
    representation (:meth:`Ledger.state_values`); converts only the values it keeps. Values
    from :func:`~kernel.ledger.state.derive_one` (a ``FoldValues``) are converted once per
    distinct fold output: the conversion is a pure function of them, kept in their ``memo``."""
    if ledger is None:
        return dict(book)
    out = dict(book)
    _merge_parts(out, ledger, book_counters)
    return out


def join_state_record(record: Mapping[str, Any], as_of: dt.date, ledger: Mapping[str, Any],
                      book_counters: str = "fallback") -> Record:
    """``join_record(record, merge_record(book_state_record(record, as_of), ledger,
    book_counters))`` — one account with its ledger state, a gRPC Decide with a ledger —
    built straight: the book's join (:func:`join_book_state`: every state column is in it
    already, in the same order), then the ledger's record scalars stored over it, with no
    copy of the state in between. An account the ledger knows, whose record holds every
    replaced column (a Decide's), takes every state column from the ledger but WHERE_SET's
    nulls, which the record already holds: the record and the ledger's scalars, one store
    each. ``tests/ledger`` pins both to the general way."""
    if (book_counters == "ignore" or ledger["ledger_events"] > 0) and record.keys() >= _REPLACED_SET:
        out = Record(record)
        out.update(_known_parts(ledger))
        return out
    out = join_book_state(record, as_of)
    _merge_parts(out, ledger, book_counters)
    return out


def _merge_parts(out: dict, ledger: Mapping[str, Any], book_counters: str) -> None:
    """The ledger's record scalars stored into ``out`` by the precedence: WHERE_SET's where
    not null, the rest once the ledger knows the account (or ``book_counters = "ignore"``)."""
    memo = getattr(ledger, "memo", None)
    parts = None if memo is None else memo.get("record")
    if parts is None:
        parts = _record_parts(ledger)
        if memo is not None:
            memo["record"] = parts
    out.update(parts[0])
    if book_counters == "ignore" or ledger["ledger_events"] > 0:
        out.update(parts[1])


def _known_parts(ledger: Mapping[str, Any]) -> dict[str, Any]:
    """The record scalars of an account the ledger knows: :func:`_record_parts`' rest, then
    its WHERE_SET columns that are not null (kept in the values' ``memo`` when they have one)."""
    memo = getattr(ledger, "memo", None)
    known = None if memo is None else memo.get("known")
    if known is None:
        known = {}
        _merge_rest(known, ledger)
        _merge_where(known, ledger)
        if memo is not None:
            memo["known"] = known
    return known


def _record_parts(ledger: Mapping[str, Any]) -> tuple[dict, dict]:
    """The record scalars :func:`merge_record` stores: WHERE_SET's columns that are not null,
    and the rest (stored once the ledger knows the account)."""
    where: dict[str, Any] = {}
    _merge_where(where, ledger)
    rest: dict[str, Any] = {}
    _merge_rest(rest, ledger)
    return where, rest


def join_record(record: Mapping[str, Any], state: Mapping[str, Any]) -> Record:
    """One account's record with its record-form state joined."""
    out = Record(record)
    out.update(state)
    return out


def join_columns(columns: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A few accounts' NumPy columns (``Pipeline.run_columns``'s form: enums as str,
    dates as ``datetime64[D]``, instants as ``datetime64[us]``) with the state joined."""
    out = dict(columns)
    for c in STATE[2:]:
        name, values = c.name, state[c.name]
        if name in _TIME:
            out[name] = np.where(values == NULL_TIME, np.iinfo(np.int64).min, values).astype("datetime64[us]")
        elif name in _DATE:
            out[name] = np.where(values == NULL_TIME, np.iinfo(np.int64).min, values).astype("datetime64[D]")
        elif name in _ENUM:
            members = np.array(ENUMS[_ENUM[name]] + (None,), dtype=object)
            out[name] = members[values]
        elif name in _BOOL:
            out[name] = np.array([None if v < 0 else bool(v) for v in values.tolist()], dtype=object) \
                if (values < 0).any() else values > 0
        else:
            out[name] = values
    return out


def with_state(table: pa.Table | pa.RecordBatch, as_of: dt.date, now: dt.datetime, ledger=None,
               book_counters: str = "fallback", register: bool = True) -> pa.Table:
    """The book joined with each account's state as of ``now``: from ``ledger`` (a
    :class:`~kernel.ledger.Ledger`, or None) where it knows the account, read off the book
    otherwise. With a ledger the book's gate columns are registered too (``register``)."""
    n = table.num_rows
    batch = Batch(n, as_of, now, [table])
    state = book_state(batch)
    if ledger is not None:
        if register:
            ledger.register(table)
        ids = batch.strings("account_id").to_pylist()
        zones = batch.strings("time_zone").to_pylist() if batch.has("time_zone") else [None] * n
        state = merge(state, ledger.state_columns(ids, zones, now), book_counters)
    return join_table(table, state)


# -- one account's state written over a kernel's staged record inputs (a gRPC Decide's wire way) --

#: the fold's kind of each replaced column the writer takes, with the kernel storage it writes
_STAGED_KINDS = {"count": "i64", "float": "f64", "date": "i32", "enum": "u8", "bool": "bits"}
#: the days ``datetime.date`` holds, as days since 1970-01-01 (outside: the record's way)
_DAY_RANGE = (dt.date.min.toordinal() - _EPOCH_DAY.toordinal(), dt.date.max.toordinal() - _EPOCH_DAY.toordinal())


class StateInputs:
    """One account's ledger state written over the kernel's record inputs where the book's
    values were staged already (:class:`kernel.server.wire.KernelInputs`), by the precedence
    of :func:`join_state_record`: every replaced column the kernel reads takes the ledger's
    value once the ledger knows the account (or ``book_counters = "ignore"``), WHERE_SET's
    only where the ledger's value is not null; the bytes written are those the record path
    (``Kernel.decide_record`` of ``join_state_record``'s record) stages for the record
    scalars :func:`record_state` makes of the values. :meth:`write` gives False when it
    cannot vouch for that (an enum member the kernel does not know, a day out of
    ``datetime.date``'s range, a count that is not an int): the caller takes the record's
    way. Made by :meth:`for_layout`, None when the kernel reads a state column the writer
    does not take (a state-only column — the record's join derives those from the book —, an
    instant, a category)."""

    def __init__(self, columns: tuple, book_counters: str):
        self.columns = columns                 # (name, fold kind, storage, value byte, validity byte, codes)
        self.book_counters = book_counters
        self.source = self._source()
        self._local = threading.local()

    @classmethod
    def for_layout(cls, layout: tuple, book_counters: str = "fallback") -> "StateInputs | None":
        if book_counters not in BOOK_COUNTERS:
            return None
        columns = []
        for name, storage, at, valid_at, t, index in layout:
            if name in STATE_ONLY:
                return None
            if name not in _REPLACED_SET:
                continue
            kind = _fold_kind(name)
            if _STAGED_KINDS.get(kind) != storage or (kind == "enum") != (t.kind == "enum"):
                return None
            codes = tuple(index.get(m, -1) for m in ENUMS[_ENUM[name]]) if kind == "enum" else None
            columns.append((name, kind, storage, at, valid_at, codes))
        return cls(tuple(columns), book_counters)

    def _source(self) -> str:
        """``write(s)``'s body: per column its record scalar's staging, from the fold's value."""
        def store(i, name, kind, where_set):
            v, valid = f"(v := s[{name!r}])", self.columns[i][4]
            if kind == "count":                      # never null in the fold
                return [f"v = s[{name!r}]", "if type(v) is not int or not -I64 <= v < I64:", "    return False",
                        f"V{i}[0] = v", f"T[{valid}] = 255"]
            if kind == "float":
                null, value = f"{v} != v", [f"V{i}[0] = v"]
            elif kind == "date":
                null, value = f"{v} == NULL_TIME", ["if not DAY_LO <= v <= DAY_HI:", "    return False", f"V{i}[0] = v"]
            elif kind == "enum":                     # a member the kernel does not know: the record's refusal
                null, value = f"{v} < 0", [f"c = K{i}[v] if v < {len(self.columns[i][5])} else -1", "if c < 0:",
                                           "    return False", f"V{i}[0] = c"]
            else:
                null, value = f"{v} < 0", [f"V{i}[0] = 1 if v > 0 else 0"]
            if where_set:                            # the book's value stays where the ledger's is null
                return [f"if not ({null}):", *("    " + x for x in value), f"    T[{valid}] = 255"]
            return [f"if {null}:", f"    T[{valid}] = 0", "else:", *("    " + x for x in value),
                    f"    T[{valid}] = 255"]
        rest, where = [], []
        for i, (name, kind, *_) in enumerate(self.columns):
            (where if name in _WHERE_SET else rest).extend(store(i, name, kind, name in _WHERE_SET))
        known = "True" if self.book_counters == "ignore" else "s['ledger_events'] > 0"
        lines = ["def write(s):"]
        if rest:
            lines += [f"    if {known}:", *("        " + x for x in rest)]
        lines += ["    " + x for x in where] + ["    return True", ""]
        return "\n".join(lines)

    def write(self, target: np.ndarray, values: Mapping[str, Any]) -> bool:
        """``values`` (the fold's, :meth:`Ledger.state_values`) written into ``target`` (this
        thread's record inputs, the book's values staged): True, or False for the record's way."""
        local = self._local
        if getattr(local, "target", None) is not target:
            local.write, local.target = self._compile(target), target
        return local.write(values)

    def patch(self, values: Mapping[str, Any], size: int) -> tuple[np.ndarray, np.ndarray] | None:
        """What :meth:`write` writes for ``values`` into record inputs of ``size`` bytes, as
        (positions, bytes), whatever the inputs held — None when it declines. Found by writing
        into two buffers of this thread, one all 0 and one all 255: the writer reads only the
        values, so the bytes it writes are those where the two agree."""
        local = self._local
        scratch = getattr(local, "scratch", None)
        if scratch is None or scratch[0].shape[0] != size:
            low, high = np.zeros(size, np.uint8), np.full(size, 255, np.uint8)
            scratch = local.scratch = (low, high, self._compile(low), self._compile(high))
        low, high, write_low, write_high = scratch
        low.fill(0)
        high.fill(255)
        if not (write_low(values) and write_high(values)):
            return None
        at = np.flatnonzero(low == high)
        return at, low[at]

    def _compile(self, target: np.ndarray):
        """:meth:`write` over ``target``'s bytes: a one-element view of each column's value."""
        width = {"i64": (8, np.int64), "f64": (8, np.float64), "i32": (4, np.int32), "u8": (1, np.uint8),
                 "bits": (1, np.uint8)}
        env = {"T": target, "NULL_TIME": NULL_TIME, "I64": 1 << 63, "DAY_LO": _DAY_RANGE[0], "DAY_HI": _DAY_RANGE[1]}
        for i, (name, kind, storage, at, _, codes) in enumerate(self.columns):
            size, dtype = width[storage]
            env[f"V{i}"] = target[at:at + size].view(dtype)
            if codes is not None:
                env[f"K{i}"] = codes
        exec(compile(self.source, "<state over staged inputs>", "exec"), env)
        return env["write"]
