"""The serving engine: one compiled, warm bundle (Kernel + Pipeline) and the conversions
between its columns and the API's messages. The server holds one Engine and swaps it whole
on reload, so a call never sees half of an old bundle and half of a new one."""
from __future__ import annotations

import datetime as dt
import functools
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa


from .. import schema
from ..errors import PostloanError
from . import convert
from ._proto.postloan.v1 import contract_pb2, decision_pb2
from .status import FieldError, QuotaError
from ..hookspecs import Record
from ..ledger.ledger import instant_us
from .ledger_inputs import LedgerInputs
from .wire import KernelInputs, WireDecoder
from .wire_decide import STAGED, RequestDecider

UTC = dt.timezone.utc
NAT = np.iinfo(np.int64).min          # NaT as an int64
EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
MiB = 1 << 20


def precondition_violations(error: BaseException) -> list[tuple[str, str, str]]:
    """PreconditionFailure entries (type, subject, description) for an error: one per
    diagnostic of a rejected bundle (type BUNDLE, subject ``file:line:column rule``), the
    plugin and hook of a plugin's error (type PLUGIN), else the error's class."""
    out = []
    for d in getattr(error, "diagnostics", None) or ():
        if getattr(d, "severity", "error") != "error":
            continue
        where = ":".join(str(x) for x in (getattr(d, "file", None), getattr(d, "line", None),
                                          getattr(d, "column", None)) if x not in (None, ""))
        rule = getattr(d, "rule", None)
        out.append(("BUNDLE", where + (f" rule {rule}" if rule else ""), getattr(d, "message", str(d))))
    if out:
        return out
    plugin = getattr(error, "plugin", None)
    if plugin:
        return [("PLUGIN", f"{plugin} {getattr(error, 'hook', '') or ''}".strip(), str(error))]
    return [(type(error).__name__, "", str(error))]


def _unknown_member(prefix: str, name: str, code: int, members: tuple) -> FieldError:
    return FieldError(prefix + name, _unknown_member_text(name, code, members))


def _unknown_member_text(name: str, code: int, members: tuple) -> str:
    return (f"enum value {code} is not one of 1–{len(members) - 1} (this server's {name} members: "
            f"{', '.join(members[1:])})")


# -- Account message → one record of Python scalars -------------------------------------------------
#: the message each table's records arrive in
_MESSAGES = {"book": contract_pb2.Account, "vehicles": contract_pb2.Vehicle}


class AccountRecord:
    """Decodes an ``Account`` (or ``Vehicle``) into :meth:`kernel.Kernel.decide_record`'s
    form — a dict of Python scalars (enums as member names, dates as ``datetime.date``,
    instants as aware UTC ``datetime``, null as None) — and checks it against the contract
    (:func:`kernel.schema.record_checker`: nulls, lengths, ranges). Any problem raises
    FieldError (INVALID_ARGUMENT) listing every offending field in contract order. The
    fastest way in for one account: no arrays.

    A message is read from its wire bytes by one compiled pass that checks every field
    against the contract, and the record built by one dict display generated once per table
    (:class:`kernel.server.wire.WireDecoder`); only when that pass finds something wrong — a
    required field unset, a value out of range, an undecodable date — or cannot vouch for
    the bytes is the message read again field by field (:meth:`_decode_checked`), which gives
    the record after all or the violations' words."""

    def __init__(self, columns: tuple[schema.Column, ...] = schema.BOOK, prefix: str = "account.",
                 table: str = "book"):
        self.prefix = prefix
        self.order = {prefix + c.name: i for i, c in enumerate(columns)}
        self.check = schema.record_checker(table, prefix)
        self.plain = tuple(c.name for c in columns
                           if not c.enum and not pa.types.is_date(c.type) and not pa.types.is_timestamp(c.type))
        self.enums = tuple((c.name, (None,) + schema.ENUMS[c.enum]) for c in columns if c.enum)
        self.days = tuple(c.name for c in columns if not c.enum and pa.types.is_date(c.type))
        self.micros = tuple(c.name for c in columns if not c.enum and pa.types.is_timestamp(c.type))
        self._fast = WireDecoder(columns, _MESSAGES[table].DESCRIPTOR)
        self.source = self._fast.source

    def __call__(self, message) -> dict:
        out = self._fast(message)
        return out if out is not None else self._decode_checked(message)

    def _decode_checked(self, message) -> dict:
        """Field by field, every problem collected: the words of a refusal."""
        has = message.HasField
        out: dict = {}
        undecodable: list[tuple[str, str]] = []
        for name in self.plain:
            out[name] = getattr(message, name) if has(name) else None
        for name, members in self.enums:
            code = getattr(message, name)
            if 0 <= code < len(members):               # (a negative index would wrap around)
                out[name] = members[code]
            else:
                out[name] = None
                undecodable.append((name, _unknown_member_text(name, code, members)))
        for name in self.days:
            out[name] = None
            if has(name):
                d = getattr(message, name)
                try:
                    out[name] = dt.date(d.year, d.month, d.day)
                except ValueError as e:
                    undecodable.append((name, f"not a valid date ({d.year:04d}-{d.month:02d}-{d.day:02d}): {e}"))
        for name in self.micros:
            out[name] = None
            if has(name):
                ts = getattr(message, name)
                problem = convert.instant_problem(ts.seconds, ts.nanos)
                if problem:
                    undecodable.append((name, problem))
                else:
                    out[name] = convert.instant_value(ts.seconds, ts.nanos)
        found = self.check(out)
        if found or undecodable:
            self._refuse(found, undecodable)
        return out

    def _refuse(self, found, undecodable) -> None:
        bad = {self.prefix + name: text for name, text in undecodable}
        violations = sorted([*bad.items(), *((v.field, v.message) for v in found if v.field not in bad)],
                            key=lambda item: self.order.get(item[0], len(self.order)))
        (field, text), *more = violations
        raise FieldError(field, text, more)


# -- Account message → one-element NumPy columns ---------------------------------------------------
class AccountColumns:
    """Decodes an ``Account`` that :class:`AccountRecord` has accepted into the kernel's NumPy
    column forms. Values of one dtype are gathered into one array and handed out as
    one-element views (cheaper than one array each)."""

    def __init__(self, columns: tuple[schema.Column, ...] = schema.BOOK, prefix: str = "account."):
        self.prefix = prefix
        floats, ints, nullable_ints, bools, codes, days, micros, texts = [], [], [], [], [], [], [], []
        for col in columns:
            t = col.type
            if col.enum:
                codes.append(col)
            elif pa.types.is_integer(t):
                (nullable_ints if col.nullable else ints).append(col)
            elif pa.types.is_floating(t):
                floats.append(col)
            elif pa.types.is_boolean(t):
                bools.append(col)
            elif pa.types.is_date(t):
                days.append(col)
            elif pa.types.is_timestamp(t):
                micros.append(col)
            else:
                texts.append(col)
        self.floats = tuple((c.name, c.nullable) for c in floats)
        self.ints = tuple(c.name for c in ints)
        self.nullable_ints = tuple(c.name for c in nullable_ints)
        self.bools = tuple((c.name, c.nullable) for c in bools)
        self.codes = tuple((c.name, c.nullable, (None,) + schema.ENUMS[c.enum]) for c in codes)
        self.days = tuple((c.name, c.nullable) for c in days)
        self.micros = tuple((c.name, c.nullable) for c in micros)
        self.texts = tuple((c.name, c.nullable) for c in texts)

    def _missing(self, name: str, message=None) -> FieldError:
        # unreachable after AccountRecord's check; kept so that a direct caller gets a clear error
        return FieldError(self.prefix + name, schema.REQUIRED)

    def __call__(self, message) -> dict[str, np.ndarray]:
        has = message.HasField
        out: dict[str, np.ndarray] = {}
        values = []
        for name, nullable in self.floats:
            if has(name):
                values.append(getattr(message, name))
            elif nullable:
                values.append(np.nan)
            else:
                raise self._missing(name, message)
        arr = np.array(values, np.float64)
        for i, (name, _) in enumerate(self.floats):
            out[name] = arr[i:i + 1]
        values = []
        for name in self.ints:
            if not has(name):
                raise self._missing(name, message)
            values.append(getattr(message, name))
        arr = np.array(values, np.int64)
        for i, name in enumerate(self.ints):
            out[name] = arr[i:i + 1]
        for name in self.nullable_ints:      # a null int is None in an object array (the kernel's form)
            out[name] = np.array([getattr(message, name)], np.int64) if has(name) else np.array([None], object)
        values = []
        for name, nullable in self.bools:
            if has(name):
                values.append(getattr(message, name))
            elif nullable:
                values.append(False)
            else:
                raise self._missing(name, message)
        arr = np.array(values, np.bool_)
        for i, (name, _) in enumerate(self.bools):
            out[name] = arr[i:i + 1]
        values = []
        for name, nullable, members in self.codes:      # enums as member strings (None: unset)
            code = getattr(message, name)
            if code == 0 and not nullable:
                raise self._missing(name, message)
            if not 0 <= code < len(members):            # (a negative index would wrap around)
                raise _unknown_member(self.prefix, name, code, members)
            values.append(members[code])
        arr = np.array(values, object)
        for i, (name, _, _) in enumerate(self.codes):
            out[name] = arr[i:i + 1]
        values = []
        for name, nullable in self.days:
            if has(name):
                d = getattr(message, name)
                try:
                    values.append(dt.date(d.year, d.month, d.day).toordinal() - EPOCH_ORDINAL)
                except ValueError as e:
                    raise FieldError(self.prefix + name, f"not a valid date ({d.year:04d}-{d.month:02d}-{d.day:02d}): {e}") from None
            elif nullable:
                values.append(NAT)
            else:
                raise self._missing(name, message)
        arr = np.array(values, np.int64).view("datetime64[D]")
        for i, (name, _) in enumerate(self.days):
            out[name] = arr[i:i + 1]
        values = []
        for name, nullable in self.micros:
            if has(name):
                ts = getattr(message, name)
                values.append(ts.seconds * 1_000_000 + ts.nanos // 1000)
            elif nullable:
                values.append(NAT)
            else:
                raise self._missing(name, message)
        arr = np.array(values, np.int64).view("datetime64[us]")
        for i, (name, _) in enumerate(self.micros):
            out[name] = arr[i:i + 1]
        values = []
        for name, nullable in self.texts:
            if has(name):
                values.append(getattr(message, name))
            elif nullable:
                values.append(None)
            else:
                raise self._missing(name, message)
        arr = np.array(values, object)
        for i, (name, _) in enumerate(self.texts):
            out[name] = arr[i:i + 1]
        return out


# -- the engine ---------------------------------------------------------------------------------------
BATCH_CHUNK = 16_384        # rows per pipeline run in DecideBatch: bounds memory, lets deadlines bite
TIER_COLUMN = "collection_tier.tier"      # the decision column the servers' metrics count calls by


def _decided_request(kernel, account_id: str, outputs: bytes, days: int, now_us: int) -> tuple:
    """(account id, decisions, as_of, now) of a request :class:`RequestDecider` decided, from
    the kernel outputs' bytes it copied."""
    return (account_id, kernel.read_outputs(outputs), dt.date.fromordinal(days + EPOCH_ORDINAL),
            convert.EPOCH_UTC + dt.timedelta(0, 0, now_us))


def _first(values):
    """Element 0 of a decision column as a Python value (None for null)."""
    if isinstance(values, np.ma.MaskedArray):
        return None if np.ma.getmaskarray(values)[0] else values.data[0].item()
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values[0].as_py()
    value = values[0]
    return value.item() if isinstance(value, np.generic) and not isinstance(value, np.datetime64) else value


@dataclass
class Engine:
    """A compiled, warm bundle ready to serve: the kernel, the pipeline behind it, and what
    GetBundle reports about them."""

    kernel: Any
    pipeline: Any
    path: str                       # shown by GetBundle ("(shipped)" for the shipped bundle)
    loaded_at: dt.datetime
    compile_seconds: float
    source: str | None = None       # what Kernel.load was given (None: the shipped bundle)
    account_record: AccountRecord = field(default_factory=AccountRecord)
    account_columns: AccountColumns = field(default_factory=AccountColumns)
    decision_schema: pa.Schema | None = None    # of a DecideBatch answer's decisions (known after the warm-up)
    encoder: convert.DecideResponseEncoder = field(init=False, repr=False)

    def __post_init__(self):
        self.encoder = convert.DecideResponseEncoder(self.bundle_hash)

    @property
    def bundle_hash(self) -> str:
        return self.kernel.bundle_hash

    @property
    def channel_kinds(self) -> dict[str, str]:
        """The kind of each disposal channel (auction, dealer, …) by name."""
        return {c.name: c.kind for c in self.pipeline.channels}

    @property
    def versions(self) -> dict[str, str]:
        return {name: str(v) for name, v in self.kernel.version.items()}

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(self.kernel.inputs)

    @property
    def outputs(self) -> tuple[tuple[str, str], ...]:
        types = self.kernel.output_types
        return tuple((name, str(types.get(name, t))) for name, t in self.kernel.outputs.items())

    # -- one account ------------------------------------------------------------------------
    def record(self, account) -> dict:
        """The Account as one record of Python scalars (``Kernel.decide_record``'s form),
        checked against the contract (FieldError naming every offending field)."""
        return self.account_record(account)

    def columns(self, account) -> dict[str, np.ndarray]:
        """The Account as the kernel's NumPy columns (enums as member strings), checked
        against the contract first."""
        self.account_record(account)
        return self.account_columns(account)

    def decide_response(self, record: dict, as_of: dt.date, now: dt.datetime, actions: bool = True):
        """(DecideResponse wire bytes, tier, unique conflicts) for one account given as a
        record (:meth:`record`):
        ``Pipeline.run_record``, Python scalars end to end, no arrays built for the kernel and
        no Decision message built field by field (:class:`convert.DecideResponseEncoder`).
        ``actions=False``: no action is planned."""
        return self._answer(self.pipeline.run_record(record, as_of, now, actions=actions), as_of, actions)

    def decide_account(self, account, as_of: dt.date, now: dt.datetime, actions: bool = True):
        """``decide_response(record(account), …)``, the same bytes and audit record, with the
        Account's wire bytes written straight into the kernel's inputs when
        :attr:`kernel_inputs` can (:class:`kernel.server.wire.KernelInputs`): the record is
        built only when something still reads it — a stage with actions, an account heading
        for valuation —, and not at all for a decision-only one. Anything the wire pass
        cannot vouch for takes the record's way, which also words a refusal."""
        direct = self.kernel_inputs
        if direct is None and self.ledger_inputs is not None:
            return self._decide_with_ledger(self.ledger_inputs, account, as_of, now, actions)
        if direct is None or not direct.stage(account):
            return self.decide_response(self.record(account), as_of, now, actions)
        return self._decide_staged(account.account_id, lambda: account, as_of, now, actions)

    def decide_request(self, data: bytes, note_account=None):
        """:meth:`decide_account`'s answer and audit record — (DecideResponse wire bytes, tier,
        unique conflicts) — for a ``DecideRequest`` given as its wire bytes, as_of and now the
        request's or — unset — the server's UTC day and clock; ``note_account(account id)`` is
        called as soon as the id is known. The request read, the kernel run and the decision's
        bytes written by one compiled call (:class:`kernel.server.wire_decide.RequestDecider`);
        decision-only, that is the response and the audit record is built off the call's path;
        with actions, the stage plans them from the record built off the same parse and their
        bytes follow the decision's (:meth:`_decide_request_staged`). An account heading
        for valuation takes the stage that values it, its record built from the same parse.
        None: nothing ran — parse the request and call :meth:`decide_account` (bytes the pass
        cannot vouch for; with a ledger, a call with actions)."""
        decider = self.request_decider
        if decider is None:
            way = self.ledger_inputs
            return self._decide_request_with_state(way, data, note_account) if way is not None else None
        decided = decider.decide(data, with_actions=True)
        if decided is None:
            return None
        response, account_id, days, now_us, tier, conflicts, outputs = decided
        if note_account is not None:
            note_account(account_id)
        actions = decider.actions_asked()
        if response is not None and not actions:
            self.pipeline.audit_unvalued(_decided_request, self.kernel, account_id, outputs, days, now_us)
            return response, tier, conflicts
        return self._decide_request_staged(data, decided, actions)

    def _decide_request_staged(self, data: bytes, decided: tuple, actions: bool):
        """:meth:`decide_request`'s answer for a request ``decided``
        (:meth:`RequestDecider.decide`'s answer) that asks for actions or whose account is
        valued: the stage on the record built off the same pass
        (:meth:`KernelInputs.request_record`: no protobuf parse); the response the pass's
        decision bytes, then the actions' — the bytes :meth:`_answer` gives, whose decision is
        the kernel's with the empty valuation (tests/server/test_wire_kernel.py) —, or for an
        account the stage values, :meth:`_answer`'s own."""
        response, account_id, days, now_us, tier, conflicts, outputs = decided
        _, decisions, as_of, now = _decided_request(self.kernel, account_id, outputs, days, now_us)
        inputs = self.kernel_inputs
        result = self._staged_result(account_id, lambda: inputs.request_record(data), as_of, now, actions,
                                     Record(decisions))
        if response is None:
            return self._answer(result, as_of, actions)
        return response + self.encoder.actions(result.action_columns), tier, conflicts

    def _decide_request_with_state(self, way: LedgerInputs, data: bytes, note_account):
        """:meth:`decide_request` with a ledger: the request's Account staged from its bytes
        (:meth:`kernel.server.wire.KernelInputs.stage_request`), the ledger's state written
        over it (:meth:`_decide_with_state`, its record built from the same parse) — or, for
        an Account asked again with nothing committed since, in the span its state holds, the
        state bytes written last time, all in the one compiled call a Decide without a ledger
        takes (:meth:`LedgerInputs.kept_state`)."""
        decider = self.ledger_decider
        pipeline = self.pipeline
        ledger = pipeline.ledger
        kept = way.kept_state(data, ledger) if decider is not None else None
        decided = decider.decide_kept(data, *kept) if kept is not None else STAGED
        if decided is None:
            return None
        if decided is not STAGED:
            response, account_id, days, now_us, tier, conflicts, outputs = decided
            if note_account is not None:
                note_account(account_id)
            if response is not None:
                pipeline.audit_unvalued(_decided_request, self.kernel, account_id, outputs, days, now_us)
                return response, tier, conflicts
            _, decisions, as_of, now = _decided_request(self.kernel, account_id, outputs, days, now_us)
            values = ledger.registered_state_values(way.request_registry(data), now)   # (the kept bytes' values)
            return self._decide_valued(way, data, values, Record(decisions), as_of, now)
        staged = way.inputs.stage_request(data) if kept is None else way.inputs.staged_request(data)
        if staged is None:
            return None
        account_id, as_of, now = staged
        if note_account is not None:
            note_account(account_id)
        as_of, now = as_of or convert.utc_today(), now or dt.datetime.now(UTC)
        registry = way.request_registry(data)
        values = ledger.registered_state_values(registry, now)
        if decider is None:
            message = lambda: decision_pb2.DecideRequest.FromString(data).account      # noqa: E731
            return self._decide_with_state(way, registry, message, as_of, now, False, values)
        target = self.kernel.record_inputs()
        if not way.state.write(target, values):
            return self._decide_joined(way, lambda: decision_pb2.DecideRequest.FromString(data).account, values,
                                       as_of, now, False)
        now_us = instant_us(now)
        way.keep_state(ledger, registry, way.inputs.request_account(data), now_us, values, target.shape[0])
        # the kernel and the response's bytes in one compiled call, as without a ledger
        days = as_of.toordinal() - EPOCH_ORDINAL
        response, _, _, _, tier, conflicts, outputs = decider.decide_staged(data, account_id, days, now_us)
        if response is not None:
            pipeline.audit_unvalued(_decided_request, self.kernel, account_id, outputs, days, now_us)
            return response, tier, conflicts
        return self._decide_valued(way, data, values, Record(self.kernel.read_outputs(outputs)), as_of, now)

    def _decide_valued(self, way: LedgerInputs, data: bytes, values: dict, decisions: Record, as_of: dt.date,
                       now: dt.datetime):
        """The answer for a request's account heading for valuation, decided with the ledger's
        state ``values``: the stage from its record (the book's, joined with the state)."""
        pipeline = self.pipeline
        record = pipeline.join_state_values(way.inputs.record(decision_pb2.DecideRequest.FromString(data).account),
                                            as_of, values)
        return self._answer(pipeline.act(record, decisions, as_of, now, actions=False), as_of, False)

    @functools.cached_property
    def ledger_decider(self) -> RequestDecider | None:
        """:attr:`request_decider` for a pipeline with a ledger: the kernel run and the
        response written by one compiled call once the request's Account is staged and the
        ledger's state written over it (:meth:`_decide_request_with_state`)."""
        way = self.ledger_inputs
        if way is None:
            return None
        pipeline = self.pipeline
        return RequestDecider.for_kernel(way.inputs, self.kernel, self.encoder, pipeline.valuation_columns,
                                         pipeline.valued_flags, TIER_COLUMN)

    @functools.cached_property
    def request_decider(self) -> RequestDecider | None:
        """Decide's compiled way for a decision-only request (:meth:`decide_request`), when the
        Account's bytes go straight into the kernel (:attr:`kernel_inputs`) and the kernel's
        outputs can be read by compiled code (else None)."""
        pipeline = self.pipeline
        return RequestDecider.for_kernel(self.kernel_inputs, self.kernel, self.encoder, pipeline.valuation_columns,
                                         pipeline.valued_flags, TIER_COLUMN)

    def _decide_staged(self, account_id: str, message, as_of: dt.date, now: dt.datetime, actions: bool,
                       decisions: Record | None = None):
        """The answer for the account whose inputs are staged: the kernel on them (unless
        ``decisions`` are its answer already), then the stage — from the id alone when
        decision-only and unvalued, else from the record, built off the same parse
        (``message()``: the Account, for its texts)."""
        inputs = self.kernel_inputs
        return self._answer(self._staged_result(account_id, lambda: inputs.record(message()), as_of, now, actions,
                                                decisions), as_of, actions)

    def _staged_result(self, account_id: str, book, as_of: dt.date, now: dt.datetime, actions: bool,
                       decisions: Record | None = None):
        """:meth:`_decide_staged`'s pipeline result (acted on: audited); ``book()`` the
        account's record, built from the parse that staged it."""
        if decisions is None:
            decisions = Record(self.kernel.decide_staged(as_of))
        pipeline = self.pipeline
        result = None if actions else pipeline.act_unvalued(account_id, decisions, as_of, now)
        if result is None:
            record = pipeline.record_with_state(book(), as_of, now, register=True)
            result = pipeline.act(record, decisions, as_of, now, actions=actions)
        return result

    @functools.cached_property
    def kernel_inputs(self) -> KernelInputs | None:
        """The Account's bytes straight into the kernel, when the kernel reads the book's
        values as they are: no ledger (whose state would replace some) and no experiment
        (whose arm the stage adds), every input a field of the Account (else None)."""
        if getattr(self.pipeline, "ledger", None) is not None or getattr(self.pipeline, "experiment", None) is not None:
            return None
        if not hasattr(self.kernel, "record_layout"):
            return None
        return KernelInputs.for_kernel(self.account_record._fast, self.kernel)

    def _decide_with_ledger(self, way: LedgerInputs, account, as_of: dt.date, now: dt.datetime, actions: bool):
        """:meth:`decide_account` with a ledger: the book's values staged from the wire, the
        ledger's state written over them (read with the registration's few columns, built
        from the same parse), the decisions taken from there; the record is built (and
        joined with the same state values) only when the stage reads it, or when the state's
        writer cannot vouch for its bytes (then the kernel decides the joined record)."""
        if not way.inputs.stage(account):
            return self.decide_response(self.record(account), as_of, now, actions)
        return self._decide_with_state(way, way.registry(account), lambda: account, as_of, now, actions)

    def _decide_with_state(self, way: LedgerInputs, registry: dict, message, as_of: dt.date, now: dt.datetime,
                           actions: bool, values: dict | None = None):
        """:meth:`_decide_with_ledger` once the book's values are staged: ``registry`` (the
        record's account id, time zone and registered columns) read from the same parse,
        ``message()`` the Account (for the record, when something reads it); ``values`` the
        state's, when the caller read them (and the writer declined them)."""
        pipeline = self.pipeline
        if values is None:
            values = pipeline.ledger.registered_state_values(registry, now)
        if not way.state.write(self.kernel.record_inputs(), values):
            return self._decide_joined(way, message, values, as_of, now, actions)
        decisions = Record(self.kernel.decide_staged(as_of))
        result = None if actions else pipeline.act_unvalued(registry["account_id"], decisions, as_of, now)
        if result is None:
            record = pipeline.join_state_values(way.inputs.record(message()), as_of, values)
            result = pipeline.act(record, decisions, as_of, now, actions=actions)
        return self._answer(result, as_of, actions)

    def _decide_joined(self, way: LedgerInputs, message, values: dict, as_of: dt.date, now: dt.datetime,
                       actions: bool):
        """The record's way with a ledger, for state values the writer declined: the book's
        record joined with them, the kernel on the joined record."""
        pipeline = self.pipeline
        record = pipeline.join_state_values(way.inputs.record(message()), as_of, values)
        result = pipeline.act(record, Record(self.kernel.decide_record(record, as_of)), as_of, now, actions=actions)
        return self._answer(result, as_of, actions)

    @functools.cached_property
    def ledger_inputs(self) -> LedgerInputs | None:
        """The Account's bytes straight into the kernel with the ledger's state written over
        them (:class:`LedgerInputs`), for a pipeline with a ledger and no experiment (whose
        arm the stage adds), when every input of the kernel is a field of the Account or a
        state column the writer takes (else None: the record's way)."""
        pipeline = self.pipeline
        if getattr(pipeline, "ledger", None) is None or getattr(pipeline, "experiment", None) is not None:
            return None
        if not hasattr(self.kernel, "record_layout"):
            return None
        return LedgerInputs.for_kernel(self.account_record._fast, self.kernel, pipeline.book_counters)

    def _answer(self, result, as_of: dt.date, actions: bool):
        decisions = result.decision_record
        planned = result.action_columns if actions else None
        return (self.encoder.response(decisions, as_of, planned), decisions.get(TIER_COLUMN),
                result.unique_conflicts)

    # -- batches ----------------------------------------------------------------------------
    def decide_batch(self, table: pa.Table, as_of: dt.date, now: dt.datetime, with_actions: bool, *,
                     time_remaining=None, max_response_bytes: int | None = None) -> "BatchAnswer":
        """Decide a table of book rows in chunks and encode the answer, audited only once it is
        known to fit in ``max_response_bytes`` (the caller cannot receive a larger one, so no
        record is written for it: QuotaError instead). A nullable contract column left out is
        a null, as in ``Decide``; every column is checked against the contract first
        (:func:`kernel.schema.validate`). Gives up (DeadlineExceeded) when the caller's
        deadline passes, before anything is audited."""
        table = complete_book(table)
        schema.validate(table, "book", source="accounts")
        rows = table.num_rows
        if max_response_bytes is not None and rows * self.decision_row_floor > max_response_bytes:
            raise QuotaError("max_message_mb", _too_large(rows, rows * self.decision_row_floor, max_response_bytes,
                                                          self.decision_row_floor, at_least=True))
        staged, estimate = [], 0
        for start in range(0, max(rows, 1), BATCH_CHUNK):
            if time_remaining is not None and time_remaining() <= 0:
                raise DeadlineExceeded(f"deadline passed after {start:,} of {rows:,} accounts; nothing was audited")
            chunk = self.pipeline.with_state(table.slice(start, BATCH_CHUNK), as_of, now)    # book ⋈ state
            result = self.pipeline.stage(chunk, self.kernel.decide(chunk, as_of), as_of, now, actions=with_actions)
            staged.append(result)
            estimate += result.decisions.nbytes + (result.actions.nbytes if with_actions else 0)
            if max_response_bytes is not None and estimate > max_response_bytes:     # stop early: it cannot fit
                done = start + chunk.num_rows
                raise QuotaError("max_message_mb", _too_large(rows, estimate, max_response_bytes, estimate / done,
                                                              at_least=True))
        decided = _concat([r.decisions for r in staged])
        acted = _concat([r.actions for r in staged]) if with_actions else None
        conflicts: dict[str, int] = {}
        for result in staged:
            for ruleset, n in result.unique_conflicts.items():
                conflicts[ruleset] = conflicts.get(ruleset, 0) + n
        answer = BatchAnswer(decided, acted, convert.to_ipc(decided),
                             convert.to_ipc(acted) if acted is not None else b"", conflicts)
        size = len(answer.decisions_ipc) + len(answer.actions_ipc) + RESPONSE_OVERHEAD
        if max_response_bytes is not None and size > max_response_bytes:
            raise QuotaError("max_message_mb", _too_large(rows, size, max_response_bytes, size / max(rows, 1)))
        audit = self.pipeline.audit
        for result in staged:             # the answer will be sent: now it is acted on, durably
            audit.append(*self.pipeline.audit_record(result, as_of, now))
        return answer

    @functools.cached_property
    def decision_row_floor(self) -> float:
        """Bytes every decision row takes at least in the answer's Arrow stream: the fixed
        widths of the bundle's decision columns (offsets for strings and lists, indices for
        dictionaries); decides up front that a batch cannot fit, before any work."""
        return _row_floor(self.decision_schema) if self.decision_schema is not None else 0.0

    # -- explain ----------------------------------------------------------------------------
    def explain_message(self, columns: dict, as_of: dt.date) -> decision_pb2.ExplainResponse:
        # Kernel.explain builds a table: null ints go in as masked arrays, the form it reads.
        masked = {name: np.ma.masked_array(np.zeros(1, np.int64), mask=[True])
                  for name in self.account_columns.nullable_ints if columns[name].dtype == object}
        columns = self.pipeline.columns_with_state({**columns, **masked}, as_of, dt.datetime.now(UTC))
        traces = self.kernel.explain(columns, as_of)[0]
        response = decision_pb2.ExplainResponse(account_id=str(columns["account_id"][0]), bundle_hash=self.bundle_hash)
        for ruleset, trace in traces.items():
            item = response.rulesets.add(ruleset=ruleset, version=str(trace.get("version", "")))
            convert.set_value(item.rule, trace["rule"])
            for name, value in trace["inputs"].items():
                convert.set_value(item.inputs[name], value)
            for name, value in trace["outputs"].items():
                convert.set_value(item.outputs[name], value)
            note = trace.get("note")
            if isinstance(note, dict):                    # collect: every fired row's note
                item.notes.update(note)
            elif note is not None:
                item.notes[str(trace["rule"])] = note
        models = [n.name for n in self.kernel.bundle.nodes if n.kind == "model"]
        if models:
            decided = self.kernel.decide_columns(columns, as_of)
            for model in models:
                for name, column in decided.items():
                    if name.startswith(model + "."):
                        value = _first(column)
                        if value is not None:
                            response.model_scores[name] = float(value)
        return response


    # -- valuation --------------------------------------------------------------------------
    def valuate_message(self, request, as_of: dt.date, now: dt.datetime) -> decision_pb2.ValuateResponse:
        """The configured valuation method and the disposal-channel selector on one vehicle."""
        from ..hookspecs import Batch

        countries = schema.ENUMS["country"]
        if request.country == 0:
            raise FieldError("country", "required (the disposal channels depend on it)")
        if not 1 <= request.country <= len(countries):       # (a negative index would wrap around)
            raise _unknown_member("", "country", request.country, (None, *countries))
        VEHICLE_RECORD(request.vehicle)                      # the contract's checks (model_year in range…)
        problem = request.region and schema.check_value(schema.columns()["region"], request.region)
        if problem:
            raise FieldError("region", problem)
        columns = VEHICLE_COLUMNS(request.vehicle)
        model_year = int(columns["model_year"][0])
        bought = (convert.date_value(request.purchase_date, "purchase_date") if request.HasField("purchase_date")
                  else dt.date(model_year, 1, 1))
        columns["contract_date"] = np.array([bought], "datetime64[D]")
        columns["country"] = np.array([schema.ENUMS["country"][request.country - 1]], object)
        columns["region"] = np.array([request.region or None], object)
        valued = self.pipeline.valuate(Batch(1, as_of, now, [columns], self.pipeline.config), np.array([0]))
        price, channel = valued["valuation.price"][0], valued["disposal_channel.channel"][0]
        response = decision_pb2.ValuateResponse(vin=request.vehicle.vin, bundle_hash=self.bundle_hash)
        response.details["method"].string_value = self.pipeline.valuation_name
        if not np.isnan(price):
            response.valuation = float(price)
        if channel is not None:
            response.channel = channel
            response.details["channel_kind"].string_value = self.channel_kinds[channel]
            response.details["expected_net"].float_value = float(valued["disposal_channel.expected_net"][0])
            response.details["expected_days"].float_value = float(valued["disposal_channel.expected_days"][0])
        return response


VEHICLE_RECORD = AccountRecord(schema.VEHICLES, prefix="vehicle.", table="vehicles")
VEHICLE_COLUMNS = AccountColumns(schema.VEHICLES, prefix="vehicle.")
RESPONSE_OVERHEAD = 1024          # DecideBatchResponse's fields around the two streams


@dataclass
class BatchAnswer:
    """What DecideBatch sends: the decisions (and actions) as tables and as IPC bytes."""

    decisions: pa.Table
    actions: pa.Table | None
    decisions_ipc: bytes
    actions_ipc: bytes
    #: rows per ``hit: unique`` ruleset that more than one rule fired for
    unique_conflicts: dict = field(default_factory=dict)


def _concat(tables: list[pa.Table]) -> pa.Table:
    return pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]


def _too_large(rows: int, size: float, limit: int, per_row: float, at_least: bool = False) -> str:
    fits = int(limit / per_row) if per_row > 0 else rows
    return (f"the answer for {rows:,} accounts would be {'at least ' if at_least else ''}{size / MiB:,.1f} MiB, "
            f"over the server's largest message ({limit / MiB:,.0f} MiB, --max-message-mb); nothing was audited. "
            f"Send at most about {max(fits, 1):,} accounts per call")


def _row_floor(arrow_schema: pa.Schema) -> float:
    floor = 0.0
    for f in arrow_schema:
        t = f.type
        if pa.types.is_dictionary(t):
            floor += t.index_type.bit_width / 8
        elif pa.types.is_boolean(t):
            floor += 1 / 8
        elif pa.types.is_string(t) or pa.types.is_binary(t) or pa.types.is_list(t):
            floor += 4
        elif pa.types.is_large_string(t) or pa.types.is_large_binary(t) or pa.types.is_large_list(t):
            floor += 8
        else:
            try:
                floor += t.bit_width / 8
            except ValueError:              # nested types without a fixed width: count nothing
                pass
    return floor


def complete_book(table: pa.Table) -> pa.Table:
    """``table`` with every nullable book column it lacks added as nulls: leaving a nullable
    column out of a batch means null, as leaving a field out of an Account does."""
    n = table.num_rows
    names = set(table.schema.names)
    for col in schema.BOOK:
        if col.nullable and col.name not in names:
            table = table.append_column(col.field(), pa.nulls(n, col.type))
    return table


class DeadlineExceeded(PostloanError):
    """The caller's deadline passed while the server was working on its batch."""


def _warm_the_gate(pipeline, settings, folder: Path, now: dt.datetime) -> None:
    """CheckContact's and GetState's compiled parts (the fold, the state, each channel's
    policies, their KEEP, DEFER and BLOCK) loaded or compiled before the server says SERVING,
    on a scratch ledger of synthetic accounts and their events in ``folder``, with the real
    ledger's settings and the real pipeline's judge (it writes nothing): on an empty cache the
    first dialer's KEEP took 1.7 s, another channel's first BLOCK 0.7 s more."""
    from ..ledger import Ledger
    from ..ledger.gate import GATED_CHANNELS, check_contact_values
    from ..ledger.store import open_store
    from ..synth import generate, generate_events

    day = now.date() - dt.timedelta(days=1)          # a history that ends before now
    book = generate(40, seed=1, as_of=day)
    with Ledger(store=open_store(f"sqlite:///{folder / 'gate.db'}")) as scratch:
        scratch.settings = settings
        scratch.register(book)
        scratch.ingest(generate_events(40, seed=1, as_of=day))
        ids = book["account_id"].to_pylist()
        now_us = instant_us(now)
        for hours in (0, 8, 16):                      # day and night in the accounts' zones, whatever the hour
            for k, channel in enumerate(GATED_CHANNELS):
                check_contact_values(scratch, pipeline.judge, ids[(k + hours) % len(ids)], channel,
                                     now_us + hours * 3_600_000_000, now_us)
        scratch.state(at=now, accounts=ids[:2])


def load_engine(path: str | None, *, audit_path: str | None = None, audit_sync: str | None = None,
                audit_interval_ms: float | None = None, ledger=None, config: str | None = None) -> Engine:
    """Compile the bundle at ``path`` (None: the shipped one) into a warm Engine: the kernel
    compiled, the pipeline built (its audit log at ``audit_path``, synced as ``audit_sync``
    says: see :class:`kernel.audit.AuditLog`), and synthetic accounts decided through
    the exact path a Decide call takes (and one car valued as a Valuate call values it), so
    the first real call pays no first-call costs.
    ``config``: the configuration file (None: ``$POSTLOAN_CONFIG``, else the defaults)."""
    from ..pipeline import Pipeline
    from ..runtime import Kernel
    from ..synth import generate

    start = time.perf_counter()
    kernel = Kernel.load(path)
    pipeline = Pipeline(kernel, config=config, audit_path=audit_path, audit_sync=audit_sync,
                        audit_interval_ms=audit_interval_ms, ledger=ledger)
    # Warm up on a synthetic account through a twin pipeline whose audit log is thrown away:
    # the real audit log holds real decisions only.
    with tempfile.TemporaryDirectory(prefix="postloan-warm-") as tmp:
        twin = Pipeline(kernel, plugins=pipeline.plugins, config=pipeline.config, audit_path=Path(tmp) / "audit.log")
        warm = Engine(kernel, twin, path="", loaded_at=dt.datetime.now(UTC), compile_seconds=0.0)
        sample = generate(200, seed=0)
        now = dt.datetime.now(UTC)
        # a current account and the most overdue one: the latter plans actions, so the
        # strategy's and the policies' compiled kernels load (or compile) here, not on the
        # first real delinquent account
        dpd = sample["dpd"].to_numpy()
        for row in (int(np.argmin(dpd)), int(np.argmax(dpd))):
            account = convert.ACCOUNT.encode(sample.slice(row, 1).to_pylist()[0])
            for actions in (True, False):        # the record's way and the wire's (Decide's, without a ledger)
                warm.decide_response(warm.record(account), now.date(), now, actions=actions)
                warm.decide_account(account, now.date(), now, actions=actions)
            request = decision_pb2.DecideRequest(account=account, actions=False).SerializeToString()
            warm.decide_request(request)                        # Decide's way from the request's bytes
        answer = warm.decide_batch(sample, now.date(), now, with_actions=True)
        # Valuate scores a car no bundle decided: its model compiles on first use (seconds on
        # a cold cache, past a client's deadline on a busy machine), so here, not on a call.
        vehicle = sample.slice(0, 1).to_pylist()[0]
        warm.valuate_message(decision_pb2.ValuateRequest(
            vehicle=convert.VEHICLE.encode({name: vehicle[name] for name in schema.columns("vehicles")}),
            country=convert.enum_code("country", vehicle["country"]), region=vehicle["region"] or ""),
            now.date(), now)
        if ledger is not None:
            _warm_the_gate(pipeline, ledger.settings, Path(tmp), now)
        twin.audit.close()
    engine = Engine(kernel, pipeline, path=str(path) if path else "(shipped)", loaded_at=dt.datetime.now(UTC),
                    compile_seconds=time.perf_counter() - start, source=path, decision_schema=answer.decisions.schema)
    engine.ledger_inputs          # (with a ledger: its generated functions made here, not on the first call)
    engine.ledger_decider         # (… and its compiled call's tables)
    engine.request_decider        # (its tables made here, not on the first call)
    return engine
