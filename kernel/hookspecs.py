"""Every hook a postloan plugin can implement, and the batch types those hooks exchange.

A plugin is a module (or object) with functions marked ``@kernel.hookimpl`` whose names are
the hooks below; it is found through the ``postloan`` entry-point group (see
``docs/plugin-guide.md``). Built-in plugins are registered exactly the same way.

The hooks are *registries*: each is called once, when the plugin manager first needs that
kind of component, and returns the components the plugin offers (connectors, collection
strategies, compliance policies, valuation methods, disposal channels). Results from every
plugin are concatenated; two components of one kind with the same name are an error naming
both plugins. Components are then picked by name in the configuration (which strategy, which
compliance policies for which products and regions, which valuation method).

The components' methods are the decision path: they take and return **whole batches**
(:class:`Batch`, :class:`ActionBatch`, NumPy arrays, Arrow tables), never one account.
"""
from __future__ import annotations

import datetime as dt
import math
import numbers
import zoneinfo
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np
import pluggy
import pyarrow as pa
import pyarrow.compute as pc

from .errors import PostloanError
from .schema import ENUMS

__all__ = [
    "PROJECT", "hookspec", "hookimpl", "HOOKS",
    "postloan_connectors", "postloan_collection_strategies", "postloan_compliance_policies",
    "postloan_valuation_methods", "postloan_disposal_channels",
    "Connector", "CollectionStrategy", "CompliancePolicy", "ValuationMethod", "DisposalChannel",
    "Batch", "ActionBatch", "Verdicts", "Record", "ACTION", "OUTCOME", "KEEP", "DEFER", "BLOCK",
    "NULL_TIME", "US_PER_MINUTE", "US_PER_DAY", "utc_offsets",
]

PROJECT = "postloan"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: action name -> code (the order of the contract's ``action_channel`` enum)
ACTION: dict[str, int] = {name: i for i, name in enumerate(ENUMS["action_channel"])}
#: compliance outcome name -> code; a larger code is stricter
OUTCOME: dict[str, int] = {name: i for i, name in enumerate(ENUMS["compliance_outcome"])}
KEEP, DEFER, BLOCK = OUTCOME["KEEP"], OUTCOME["DEFER"], OUTCOME["BLOCK"]

#: the null instant / date in int64 columns (microseconds or days since the Unix epoch)
NULL_TIME = np.iinfo(np.int64).min
US_PER_MINUTE = 60_000_000
US_PER_DAY = 86_400_000_000


# --------------------------------------------------------------------------------------------
# Hook specifications
# --------------------------------------------------------------------------------------------

@hookspec
def postloan_connectors(config: Mapping) -> Iterable["Connector"]:
    """Return the data connectors this plugin provides.

    Called once, the first time a file or URI is opened through
    ``kernel.plugins.read_batches`` / ``write_batches``. ``config`` is the whole configuration
    (read your settings from ``config["plugin"]["<your plugin name>"]``). The lists from all
    plugins are concatenated; a connector is chosen for a URI by its scheme
    (``sqlite:///book.db``) or file suffix (``.parquet``). A name, scheme or suffix two
    connectors claim fails only the URIs it covers, naming both plugins, until the caller
    names one (``<plugin>:<name>``), ``[connectors.choose]`` picks one or a plugin is denied.

    Example::

        @kernel.hookimpl
        def postloan_connectors(config):
            return [JsonLinesConnector()]
    """


@hookspec
def postloan_collection_strategies(config: Mapping) -> Iterable["CollectionStrategy"]:
    """Return the collection strategies this plugin provides.

    Called once, when a :class:`kernel.pipeline.Pipeline` is built. The configuration's
    ``[pipeline] strategy`` names the one strategy that plans actions (default ``tiered``,
    the built-in). Results from all plugins are concatenated; duplicate names are an error.

    Example::

        @kernel.hookimpl
        def postloan_collection_strategies(config):
            return [SmsOnlyStrategy()]
    """


@hookspec
def postloan_compliance_policies(config: Mapping) -> Iterable["CompliancePolicy"]:
    """Return the compliance policies this plugin provides.

    Called once, when a pipeline is built. Which policies check which actions is
    configuration: ``[compliance.sets]`` lists policies by name, in order, and
    ``[[compliance.apply]]`` picks a set per country, region or product. Results from all
    plugins are concatenated; duplicate names are an error.

    Example::

        @kernel.hookimpl
        def postloan_compliance_policies(config):
            dates = config.get("plugin", {}).get("holidays", {}).get("dates", [])
            return [HolidayPolicy(dates)]
    """


@hookspec
def postloan_valuation_methods(config: Mapping) -> Iterable["ValuationMethod"]:
    """Return the vehicle valuation methods this plugin provides.

    Called once, when a pipeline is built. ``[pipeline] valuation`` names the method that
    values the cars of accounts heading for repossession or disposal (default ``rv_model``,
    the residual-value model; ``depreciation_curve`` is the other built-in). Results are
    concatenated; duplicate names are an error.

    Example::

        @kernel.hookimpl
        def postloan_valuation_methods(config):
            return [FixedShareOfInvoice(0.5)]
    """


@hookspec
def postloan_disposal_channels(config: Mapping) -> Iterable["DisposalChannel"]:
    """Return disposal channels (auction platforms, dealers, leasing companies, dismantlers).

    Called once, when a pipeline is built. The disposal-channel selector considers every
    channel from every plugin and picks, per car, the one with the highest expected net
    proceeds. Results are concatenated; duplicate names are an error. A channel checks its
    own fields when it is made (:attr:`DisposalChannel.RANGES`): a bad one fails the hook,
    naming the plugin, channel and field.

    Example::

        @kernel.hookimpl
        def postloan_disposal_channels(config):
            return [DisposalChannel(name="my_auction", kind="AUCTION", price_factor=0.93,
                                    success_rate=0.8, fee_rate=0.04, fee_fixed=500,
                                    transport_cost=1200, expected_days=20)]
    """


#: hook name -> the component base class its results must be instances of
HOOKS: dict[str, type] = {}  # filled below, once the classes exist


# --------------------------------------------------------------------------------------------
# Components
# --------------------------------------------------------------------------------------------

class Connector(ABC):
    """Reads and writes Arrow record batches from a store (file, database, topic).

    The plugin system validates and conforms what ``read`` yields against the data contract
    (``kernel.schema``), so a connector only moves data. A PostgreSQL connector implements
    ``read`` with a server-side cursor and ``write`` with ``COPY``; a Kafka connector with a
    consumer and a producer of Arrow IPC messages.
    """

    #: unique connector name, e.g. ``"parquet"``
    name: str = ""
    #: URI schemes handled, e.g. ``("sqlite",)`` for ``sqlite:///path.db?table=book``
    schemes: tuple[str, ...] = ()
    #: file suffixes handled, e.g. ``(".parquet", ".pq")``
    suffixes: tuple[str, ...] = ()

    @abstractmethod
    def read(self, uri: str, *, schema: pa.Schema, batch_size: int) -> Iterator[pa.RecordBatch]:
        """Yield the data at ``uri`` as record batches of at most ``batch_size`` rows.

        ``schema`` is the contract's schema of what is being read; use it to type untyped
        sources (CSV, SQL text columns). Raise :class:`kernel.errors.PostloanError` naming the
        column or row for values that cannot be parsed. A source with columns but no rows
        yields one empty batch with those columns, so that they are still checked against
        the contract; yield nothing only when the source has no columns either (an empty
        file), which :func:`kernel.plugins.read_batches` reports as an error."""

    @abstractmethod
    def write(self, uri: str, batches: Iterable[pa.RecordBatch], *, schema: pa.Schema) -> int:
        """Write every batch of ``batches`` (all of ``schema``) to ``uri``; return rows written.
        The target is replaced, and must not appear half-written when this raises."""


class CollectionStrategy(ABC):
    """Turns decision columns into an action plan (several actions per account allowed)."""

    name: str = ""

    @abstractmethod
    def plan(self, batch: "Batch") -> Mapping[str, np.ndarray | pa.Array | Sequence]:
        """Plan the actions for every account of ``batch``.

        Return columns of equal length, one row per planned action:

        - ``row`` (int): the account's row in ``batch``;
        - ``action`` (str or int code of the contract's ``action_channel`` enum);
        - ``priority`` (float, higher first);
        - ``earliest_at`` (int64 microseconds since the epoch, UTC, or ``datetime64``);
        - optionally ``script_id``, ``language`` (``zh``/``en``) and ``script`` (the rendered
          text; it names the debtor, so it never goes to logs).
        """


class CompliancePolicy(ABC):
    """Keeps, defers or blocks planned actions, each with a reason code."""

    name: str = ""
    #: every reason code the policy may give -> what it means (shown by ``postloan plugins``)
    reason_codes: Mapping[str, str] = {}
    #: the actions the policy judges (names of :data:`ACTION`, e.g. ``("PHONE", "VOICE_BOT")``);
    #: the pipeline does not call :meth:`check` on a batch without any of them (a request
    #: with one field visit skips every calling rule). Empty: every action.
    actions: tuple[str, ...] = ()

    @abstractmethod
    def check(self, actions: "ActionBatch") -> "Verdicts":
        """Judge every action of ``actions``; return ``Verdicts(actions.n)`` after calling its
        ``defer`` and ``block`` with masks. Actions the policy is not about stay KEEP."""


class ValuationMethod(ABC):
    """Values the financed car: the expected wholesale price today, in the loan's currency."""

    name: str = ""

    @abstractmethod
    def value(self, batch: "Batch", rows: np.ndarray) -> np.ndarray:
        """Return float64 prices for the accounts ``rows`` of ``batch`` (NaN: cannot value)."""


@dataclass(frozen=True)
class DisposalChannel:
    """One way to sell a repossessed car, with what it costs and how well it works.

    A listing sells with probability ``success_rate``; one that does not is relisted (costing
    ``relist_cost``, default ``fee_fixed``, another ``expected_days``, and a price
    ``relist_price_drop`` lower) until it sells: an unsold car is never a recovery of zero.
    Expected net proceeds (:func:`kernel.pipeline.disposal_economics`), with R = price ×
    price_factor, s = success_rate, q = 1 − s, d = relist_price_drop:

        s·R·(1 − fee_rate) / (1 − q·(1 − d))          what the sale raises, net of commission
        − transport_cost − fee_fixed − relist_cost·q/s − holding_cost_per_day·expected_days/s
        − R·capital_cost_per_year·(expected_days/s)/365   the money tied up until cash

    over expected_days / s days to cash. A car the channel does not take (age, mileage,
    condition, country) is never sent there.
    """

    name: str
    kind: str                       # AUCTION, DEALER, LEASING or DISMANTLING
    price_factor: float             # realized price / valuation
    success_rate: float             # share of listings that sell
    fee_rate: float = 0.0           # commission on the realized price
    fee_fixed: float = 0.0          # per-car fixed fees
    transport_cost: float = 0.0     # to the buyer or the platform's yard
    expected_days: float = 0.0      # from listing to cash
    holding_cost_per_day: float | None = None   # storage, insurance; None: the selector's default
    relist_cost: float | None = None            # per unsold listing relisted; None: fee_fixed
    relist_price_drop: float = 0.0              # price lower on each relisting (0.05 = 5 %)
    capital_cost_per_year: float = 0.0          # cost of the money tied up in the car, a year
    max_age_years: float | None = None
    max_mileage_km: float | None = None
    conditions: tuple[str, ...] = ()            # accepted condition grades; empty: all
    countries: tuple[str, ...] = ()             # countries served; empty: all
    description: str = ""

    KINDS = ("AUCTION", "DEALER", "LEASING", "DISMANTLING")
    #: the numeric fields and their ranges: a channel outside them is refused when it is made,
    #: so a plugin's typo ("0.9" as text, a success rate of 50, −10 days) fails at load time
    #: naming the channel and field instead of breaking the selector or winning every car
    RANGES = {"price_factor": (0.0, 2.0), "success_rate": (0.0, 1.0), "fee_rate": (0.0, 1.0),
              "fee_fixed": (0.0, math.inf), "transport_cost": (0.0, math.inf), "expected_days": (0.0, math.inf),
              "holding_cost_per_day": (0.0, math.inf), "max_age_years": (0.0, math.inf),
              "max_mileage_km": (0.0, math.inf), "relist_cost": (0.0, math.inf), "relist_price_drop": (0.0, 1.0),
              "capital_cost_per_year": (0.0, 1.0)}
    OPTIONAL = ("holding_cost_per_day", "max_age_years", "max_mileage_km", "relist_cost")

    def __post_init__(self):
        problem = self._problem()
        if problem:
            raise PostloanError(f"disposal channel {self.name!r}: {problem}")

    def _problem(self) -> str | None:
        """What is wrong with the channel's fields (None: nothing); numbers become floats and
        lists tuples on the way."""
        if not isinstance(self.name, str) or not self.name:
            return "name must be non-empty text"
        if self.kind not in self.KINDS:
            return f"kind must be one of {', '.join(self.KINDS)}, got {self.kind!r}"
        for field, (lo, hi) in self.RANGES.items():
            value = getattr(self, field)
            if value is None and field in self.OPTIONAL:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
                    or not lo <= value <= hi:
                shown = f"{value!r} ({type(value).__name__})" if not isinstance(value, numbers.Real) else repr(value)
                return f"{field} must be a number in [{lo:g}, {hi:g}], got {shown}"
            object.__setattr__(self, field, float(value))
        for field, enum in (("conditions", "condition_grade"), ("countries", "country")):
            values = getattr(self, field)
            if isinstance(values, str) or not isinstance(values, (tuple, list)):
                return f"{field} must be a list of {enum} members, got {values!r}"
            unknown = [v for v in values if v not in ENUMS[enum]]
            if unknown:
                return f"{field} holds {unknown[0]!r}, not one of {', '.join(ENUMS[enum])}"
            object.__setattr__(self, field, tuple(values))
        if not isinstance(self.description, str):
            return f"description must be text, got {type(self.description).__name__}"
        return None


HOOKS.update({
    "postloan_connectors": Connector,
    "postloan_collection_strategies": CollectionStrategy,
    "postloan_compliance_policies": CompliancePolicy,
    "postloan_valuation_methods": ValuationMethod,
    "postloan_disposal_channels": DisposalChannel,
})


# --------------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------------

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

    @property
    def records(self) -> tuple[Mapping, ...] | None:
        """The sources, in search order, when every one is a :class:`Record` (one account as
        Python scalars: the gRPC Decide path) — a component may then read values directly,
        ``next((r[name] for r in batch.records if name in r), None)`` — else None."""
        if all(kind == "record" for _, _, kind in self._sources):
            return tuple(source for source, _, _ in self._sources)
        return None

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
        if self._raw.get(name) is not None:
            return True
        for _, names, _ in self._sources:
            if name in names:
                return True
        return False

    def add(self, columns: Mapping[str, np.ndarray]) -> "Batch":
        """Add columns computed by a stage (e.g. the valuation); they shadow same-named ones."""
        self._sources.insert(0, _source(columns))
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
    def float(self, name: str) -> np.ndarray:
        """float64 values; null → NaN."""
        key = ("f", name)
        out = self._cache.get(key)
        if out is None:
            out = self._cache[key] = _to_float(self.raw(name))
        return out

    def int(self, name: str, null: int = 0) -> np.ndarray:
        """int64 values; null → ``null``."""
        key = ("i", name, null)
        out = self._cache.get(key)
        if out is None:
            out = self._cache[key] = _to_int(self.raw(name), null)
        return out

    def bool(self, name: str, null: bool = False) -> np.ndarray:
        """bool values; null → ``null``."""
        key = ("b", name, null)
        out = self._cache.get(key)
        if out is None:
            out = self._cache[key] = _to_bool(self.raw(name), null)
        return out

    def enum(self, name: str, members: Sequence[str] | None = None) -> np.ndarray:
        """int8 codes of the values in ``members`` (default: the contract's members of a book
        column); null or an unknown member → -1."""
        members = _book_members(name) if members is None else tuple(members)
        key = ("e", name, members)
        out = self._cache.get(key)
        if out is None:
            out = self._cache[key] = _to_codes(self.raw(name), members)
        return out

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

    ``rows`` maps each action to its account's row in :attr:`batch`; ``action`` holds the
    action codes (:data:`ACTION`); ``at_us`` is when the action would happen
    (``max(earliest_at, now)``), in microseconds UTC. :meth:`float`, :meth:`int`,
    :meth:`bool`, :meth:`enum`, :meth:`time_us` and :meth:`days` give the account's column per
    action. Local time is the debtor's (book column ``time_zone``), DST included.
    """

    def __init__(self, batch: Batch, rows: np.ndarray, action: np.ndarray, earliest_at_us: np.ndarray,
                 script: pa.Array | None = None):
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
        if self._script is None:
            self._script = pa.nulls(self.n, pa.string())
        return self._script

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


# --------------------------------------------------------------------------------------------
# Local time: offsets per distinct zone, per distinct instant
# --------------------------------------------------------------------------------------------

def utc_offsets(zone_names: Sequence[str], zone_of: np.ndarray, instants_us: np.ndarray,
                *, per_instant: bool = False) -> np.ndarray:
    """UTC offsets (µs) of ``instants_us`` in the zones ``zone_names[zone_of]``.

    Vectorized per distinct zone: each zone's transitions around the instants are found once
    with zoneinfo and cached (:func:`_zone_table`), then every instant is looked up with one
    ``searchsorted`` — or none, when the zone keeps one offset over the cached span (most of
    the world, China included, has no daylight saving time). ``per_instant`` asks zoneinfo
    for every instant instead (the reference the tests compare with). Raises
    :class:`PostloanError` naming an unknown zone or a row without one."""
    instants_us = np.asarray(instants_us, np.int64)
    zone_of = np.asarray(zone_of)
    n = instants_us.shape[0]
    out = np.empty(n, np.int64)
    if n == 0:
        return out
    small = n <= 64                      # a request's few actions: Python's min/max are cheaper
    zones = zone_of.tolist() if small else None
    if (min(zones) if small else int(zone_of.min())) < 0:
        raise PostloanError(f"column 'time_zone': null at action {int(np.flatnonzero(zone_of < 0)[0])}")
    present = set(zones) if small else np.unique(zone_of).tolist()
    for z in present:
        at = slice(None) if len(present) == 1 else np.flatnonzero(zone_of == z)
        instants = instants_us[at]
        if per_instant:
            zone = _zone(zone_names[z])
            out[at] = [_offset(zone, u) for u in instants.tolist()]
            continue
        if small:
            listed = instants.tolist()
            lo, hi = min(listed), max(listed)
        else:
            lo, hi = int(instants.min()), int(instants.max())
        _, _, starts, values = _zone_table(zone_names[z], lo, hi)
        out[at] = values[0] if starts.size == 0 else values[np.searchsorted(starts, instants, side="right")]
    return out


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_ONE_US = dt.timedelta(microseconds=1)
#: cached transitions per zone: name -> (covered from, covered to, transition instants, offsets)
_ZONE_TABLES: dict[str, tuple[int, int, np.ndarray, np.ndarray]] = {}


def _zone_table(name: str, lo: int, hi: int) -> tuple[int, int, np.ndarray, np.ndarray]:
    """The zone's offset transitions covering [lo, hi], cached; a request outside the cached
    span rebuilds it over the union, with margins (a few days back, two weeks ahead: deferrals
    look up to a week or so forward). Only a valid zone's table is ever cached."""
    table = _ZONE_TABLES.get(name)
    if table is not None and table[0] <= lo and hi <= table[1]:
        return table
    if table is not None:
        lo, hi = min(lo, table[0]), max(hi, table[1])
    lo, hi = lo - 2 * US_PER_DAY, hi + 16 * US_PER_DAY
    starts, values = _transitions(_zone(name), lo, hi)
    table = _ZONE_TABLES[name] = (lo, hi, starts, values)
    return table


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise PostloanError(f"column 'time_zone': unknown IANA time zone {name!r}") from None


def _offset(zone: zoneinfo.ZoneInfo, instant_us: int) -> int:
    return (_EPOCH + dt.timedelta(microseconds=instant_us)).astimezone(zone).utcoffset() // _ONE_US


def _transitions(zone: zoneinfo.ZoneInfo, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """The zone's offset changes in [lo, hi]: instants (µs) and the offset in force before the
    first and from each (sampled daily — real zones never change twice in a day — then
    bisected to the microsecond)."""
    grid = list(range(lo, hi, US_PER_DAY)) + [hi]
    offsets = [_offset(zone, t) for t in grid]
    starts, values = [], [offsets[0]]
    for i in range(len(grid) - 1):
        if offsets[i] == offsets[i + 1]:
            continue
        a, b = grid[i], grid[i + 1]          # offset(a) = offsets[i] != offset(b)
        while b - a > 1:
            mid = (a + b) // 2
            if _offset(zone, mid) == offsets[i]:
                a = mid
            else:
                b = mid
        starts.append(b)
        values.append(_offset(zone, b))
    return np.array(starts, np.int64), np.array(values, np.int64)


# --------------------------------------------------------------------------------------------
# Column conversion (Arrow or NumPy in, NumPy out)
# --------------------------------------------------------------------------------------------

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


def _datetime_us(value: dt.datetime) -> int:
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return delta // dt.timedelta(microseconds=1)


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


def _to_int(values, null: int) -> np.ndarray:
    if type(values) is np.ndarray and values.dtype is _I64:
        return values
    if isinstance(values, np.ma.MaskedArray):      # the kernel's NumPy path masks null ints and bools
        return values.astype(np.int64).filled(null)
    plain = _numpy_plain(values)
    if plain is not None:
        if plain.dtype.kind == "f":
            return np.where(np.isnan(plain), null, plain).astype(np.int64)
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


def _is_text(values) -> bool:
    return isinstance(values, np.ndarray) and (values.dtype == object or values.dtype.kind in "UT")


def _to_codes(values, members: tuple[str, ...]) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        return values.astype(np.int8)        # already codes
    if _is_text(values) and values.shape[0] <= SMALL_TEXT:
        index = _MEMBER_INDEX.get(members)
        if index is None:
            index = _MEMBER_INDEX[members] = {m: i for i, m in enumerate(members)}
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
    return np.concatenate(parts) if len(parts) != 1 else parts[0]


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
