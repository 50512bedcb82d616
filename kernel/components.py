"""The component classes plugins return from their hooks (:mod:`kernel.hookspecs`).

Connectors move Arrow batches in and out; a collection strategy plans actions; compliance
policies keep, defer or block them; a valuation method prices cars; disposal channels are
where repossessed cars are sold. Their methods run on the decision path, on whole batches
(:mod:`kernel.batches`).
"""
from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa

from .errors import PostloanError
from .schema import ENUMS

if TYPE_CHECKING:
    from .batches import ActionBatch, Batch, Plan, Verdicts

__all__ = ["Connector", "CollectionStrategy", "StrategyStep", "CompliancePolicy", "ValuationMethod", "DisposalChannel"]


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
    #: whether :meth:`write` takes list columns (a collect ruleset's fired rules, ``<ruleset>.rule``);
    #: without, they are written as one text cell, ids separated by ``;``
    nested: bool = False

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


    def render(self, batch: "Batch", rows: np.ndarray, action) -> tuple[np.ndarray, np.ndarray, pa.Array]:
        """The strategy's scripts for actions it did not necessarily plan: for each of
        ``rows`` (accounts of ``batch``) and ``action`` (names or codes of :data:`ACTION`, one
        per row), ``(script_id, language, script)`` — the public script-rendering API a
        :class:`StrategyStep` reaches through :meth:`Plan.render`. A strategy without scripts
        raises ``NotImplementedError`` (the default)."""
        raise NotImplementedError(f"collection strategy {self.name!r} renders no scripts")


class StrategyStep(ABC):
    """One step after the collection strategy: it reads the plan so far and adds, drops or
    changes actions (:class:`~kernel.batches.Plan`). ``[pipeline] steps`` lists the steps that
    run, in order, after ``[pipeline] strategy``; a step that raises fails the batch, like the
    strategy."""

    name: str = ""

    @abstractmethod
    def apply(self, plan: "Plan") -> None:
        """Change ``plan`` in place (:meth:`~kernel.batches.Plan.add`, :meth:`~kernel.batches.Plan.keep`)."""


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
    price_factor (``price``: the valuation method's price for the car), s = success_rate,
    q = 1 − s, d = relist_price_drop:

        s·R·(1 − fee_rate) / (1 − q·(1 − d))          what the sale raises, net of commission
        − transport_cost − fee_fixed − relist_cost·q/s − holding_cost_per_day·expected_days/s
        − R·capital_cost_per_year·(expected_days/s)/365   the money tied up until cash

    over expected_days / s days to cash. A car the channel does not take (age, mileage, condition, country) is never sent there; age is fractional years
    from 1 January of the car's model year to the decision date
    (:func:`kernel.pipeline.vehicle_age_years`). ``[disposal] disabled`` switches channels off
    by name.
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
