"""The decision pipeline: decide → valuation → collection strategy → compliance → audit log.

>>> import datetime as dt, kernel
>>> from kernel.pipeline import Pipeline
>>> pipe = Pipeline(kernel.Kernel.load(), audit_path="audit.log")           # doctest: +SKIP
>>> result = pipe.run(book, as_of=dt.date(2026, 11, 28),
...                   now=dt.datetime(2026, 11, 28, 10, tzinfo=dt.timezone.utc))  # doctest: +SKIP
>>> result.decisions, result.actions                                          # doctest: +SKIP

Everything works on whole batches. ``run_columns`` is the path for one or a few accounts
(a gRPC request): NumPy columns in, no Arrow tables built on the way in.

Malformed plugin output
- A collection strategy or valuation method that raises or returns malformed output fails
  the batch with a :class:`~kernel.plugins.PluginError` naming the plugin, hook and component:
  no plan is better than a wrong one, and nothing is written to the audit log.
- A compliance policy that raises or returns malformed verdicts BLOCKs every action it was
  judging with reason ``PLUGIN_ERROR`` (fail closed: never silently allowed); the error,
  naming the plugin and policy, is in :attr:`PipelineResult.errors` and the audit record.
- An account whose country, region and product match no ``[[compliance.apply]]`` rule has
  its actions BLOCKed with reason ``NO_POLICY_SET``.

The audit log is written and synced to disk (fdatasync) before ``run`` returns ("durable before the
answer leaves"), or with ``[audit] sync = "interval"`` handed to the log's writer thread and
synced within ``interval_ms`` (see :class:`kernel.audit.AuditLog`); it never holds personal data
(:func:`kernel.schema.pii_columns`, scripts).
"""
from __future__ import annotations

import datetime as dt
import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from .codegen.cache import configure_numba_cache

configure_numba_cache()          # before the compiled function below is defined: the per-version folder

from numba import njit  # noqa: E402

from .audit import DEFAULT_SYNC_INTERVAL_MS, AuditLog, without_pii
from .errors import PostloanError
from .hookspecs import (ACTION, BLOCK, DEFER, KEEP, NULL_TIME, ActionBatch, Batch, CompliancePolicy, DisposalChannel,
                        Plan, Record, Verdicts)
from .outputs import actions_table, row_count, to_arrow
from .plugins import PluginError, PluginManager, _where, load_config
from .schema import ENUMS

__all__ = ["Pipeline", "PipelineResult", "disposal_economics", "select_disposal_channels", "vehicle_age_years", "PLUGIN_ERROR",
           "NO_POLICY_SET"]

log = logging.getLogger("postloan.pipeline")

PLUGIN_ERROR = "PLUGIN_ERROR"
#: the decision columns the valuation stage adds
_VALUATION_COLUMNS = ("valuation.price", "valuation.method", "disposal_channel.channel",
                      "disposal_channel.expected_net", "disposal_channel.expected_days")
_TEXT_VALUATION = {"valuation.method", "disposal_channel.channel"}
_NO_VALUATION = dict.fromkeys(_VALUATION_COLUMNS)
#: the decision columns whose accounts are valued (heading for repossession or disposal)
_VALUED = ("disposal.repossess", "disposal.dispose")
_VALUED_SET = frozenset(_VALUED)
_ABSENT = object()
NO_POLICY_SET = "NO_POLICY_SET"
ENV_AUDIT = "POSTLOAN_AUDIT_PATH"
_APPLY_KEYS = {"country", "region", "product", "set"}


def _no_valuation(n: int) -> dict[str, np.ndarray]:
    """The valuation columns of ``n`` accounts none of which is valued (None / NaN)."""
    return {name: np.full(n, None, dtype=object) if name in _TEXT_VALUATION else np.full(n, np.nan)
            for name in _VALUATION_COLUMNS}


# --------------------------------------------------------------------------------------------
# Vehicles: age, disposal channels
# --------------------------------------------------------------------------------------------

def vehicle_age_years(model_year: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Years from 1 January of ``model_year`` to the dates ``days`` (days since the epoch),
    with the fraction of the year elapsed; never negative."""
    days = np.asarray(days, np.int64)
    d = days.astype("datetime64[D]")
    year = d.astype("datetime64[Y]")
    start = year.astype("datetime64[D]")
    length = ((year + 1).astype("datetime64[D]") - start).astype(np.int64)
    frac = year.astype(np.int64) + 1970 + (d - start).astype(np.int64) / length
    return np.maximum(frac - np.asarray(model_year, np.float64), 0.0)


def _year_fraction(day: dt.date) -> float:
    """The year of ``day`` with the fraction of it elapsed (:func:`vehicle_age_years`' clock),
    for one date: the same arithmetic as Python floats."""
    start = dt.date(day.year, 1, 1)
    return day.year + (day - start).days / (dt.date(day.year + 1, 1, 1) - start).days


def disposal_economics(price: np.ndarray, c: DisposalChannel, holding_cost_per_day: float = 60.0):
    """Expected net proceeds and expected days to cash of selling cars worth ``price`` on
    channel ``c``, relisting every unsold listing until it sells (see :class:`DisposalChannel`
    for the formula). A channel that never sells (success rate 0) nets −inf."""
    price = np.asarray(price, np.float64)
    s = c.success_rate
    if s <= 0:
        return np.full(price.shape, -np.inf), np.full(price.shape, np.inf)
    q, d = 1.0 - s, c.relist_price_drop
    holding = holding_cost_per_day if c.holding_cost_per_day is None else c.holding_cost_per_day
    relist = c.fee_fixed if c.relist_cost is None else c.relist_cost
    realized = price * c.price_factor
    days = c.expected_days / s
    gross = s * realized * (1.0 - c.fee_rate) / (1.0 - q * (1.0 - d))
    cost = c.transport_cost + c.fee_fixed + relist * q / s + holding * days \
        + realized * c.capital_cost_per_year * days / 365.0
    return gross - cost, np.full(price.shape, days)


class _ChannelTable:
    """The disposal channels as arrays, one entry per channel, worked out once (a pipeline's
    channels do not change): what :func:`disposal_economics` computes per channel, and which
    cars each channel takes (grade and country codes as lookup tables, the last entry for
    code −1, null). Choosing among them is then a few whole-matrix steps, for one car or a
    million."""

    def __init__(self, channels: list[DisposalChannel], holding_cost_per_day: float = 60.0):
        m = len(channels)
        self.m = m
        self.sells = np.array([c.success_rate > 0 for c in channels], bool)
        s = np.array([c.success_rate if c.success_rate > 0 else 1.0 for c in channels], np.float64)
        q = 1.0 - s
        d = np.array([c.relist_price_drop for c in channels], np.float64)
        holding = np.array([holding_cost_per_day if c.holding_cost_per_day is None else c.holding_cost_per_day
                            for c in channels], np.float64)
        relist = np.array([c.fee_fixed if c.relist_cost is None else c.relist_cost for c in channels], np.float64)
        self.factor = np.array([c.price_factor for c in channels], np.float64)
        self.days = np.array([c.expected_days for c in channels], np.float64) / s
        # the same operations, in the same order, as disposal_economics: the same numbers
        self.s = s
        self.keep = 1.0 - np.array([c.fee_rate for c in channels], np.float64)
        self.denominator = 1.0 - q * (1.0 - d)
        self.fixed = np.array([c.transport_cost + c.fee_fixed for c in channels], np.float64) + relist * q / s \
            + holding * self.days
        self.capital = np.array([c.capital_cost_per_year for c in channels], np.float64)
        self.max_age = np.array([np.inf if c.max_age_years is None else c.max_age_years for c in channels], np.float64)
        self.age_limited = np.array([c.max_age_years is not None for c in channels], bool)
        self.max_km = np.array([np.inf if c.max_mileage_km is None else c.max_mileage_km for c in channels], np.float64)
        self.km_limited = np.array([c.max_mileage_km is not None for c in channels], bool)
        grades, countries = ENUMS["condition_grade"], ENUMS["country"]
        self.grade_ok = np.array([[not c.conditions or g in c.conditions for g in grades] + [not c.conditions]
                                  for c in channels], bool).reshape(m, len(grades) + 1)
        self.country_ok = np.array([[not c.countries or k in c.countries for k in countries] + [not c.countries]
                                    for c in channels], bool).reshape(m, len(countries) + 1)

    def choose(self, price: np.ndarray, age_years: np.ndarray, mileage_km: np.ndarray, grade: np.ndarray,
               country: np.ndarray):
        """:func:`select_disposal_channels` with grades and countries as enum codes (−1: null):
        one compiled pass, for one car or a million."""
        price = np.ascontiguousarray(price, np.float64)
        n = price.shape[0]
        best = np.full(n, -1, np.int64)
        net = np.full(n, np.nan)
        days = np.full(n, np.nan)
        if self.m and n:
            _choose_channels(price, np.ascontiguousarray(age_years, np.float64),
                             np.ascontiguousarray(mileage_km, np.float64), np.ascontiguousarray(grade, np.int64),
                             np.ascontiguousarray(country, np.int64), self.sells, self.s, self.factor, self.keep,
                             self.denominator, self.fixed, self.capital, self.days, self.max_age, self.age_limited,
                             self.max_km, self.km_limited, self.grade_ok, self.country_ok, best, net, days)
        return best, net, days


@njit(cache=True)
def _choose_channels(price, age, km, grade, country, sells, s, factor, keep, denominator, fixed, capital, wait,
                     max_age, age_limited, max_km, km_limited, grade_ok, country_ok, best, net, days):
    """Each car's channel with the highest expected net proceeds among those that take it (the
    first listed on a tie; none: −1, NaN), the arithmetic of :func:`disposal_economics` in its
    order. Code −1 (null) reads the tables' last entry."""
    m = s.shape[0]
    for i in range(price.shape[0]):
        p = price[i]
        if p != p:
            continue
        g = grade[i] if grade[i] >= 0 else grade_ok.shape[1] - 1
        c = country[i] if country[i] >= 0 else country_ok.shape[1] - 1
        top = -np.inf
        chosen = -1
        for j in range(m):
            if not (sells[j] and grade_ok[j, g] and country_ok[j, c]):
                continue
            if age_limited[j] and not age[i] <= max_age[j]:
                continue
            if km_limited[j] and not km[i] <= max_km[j]:
                continue
            realized = p * factor[j]
            value = s[j] * realized * keep[j] / denominator[j] - (fixed[j] + realized * capital[j] * wait[j] / 365.0)
            if value > top:
                top = value
                chosen = j
        if chosen >= 0 and np.isfinite(top):
            best[i] = chosen
            net[i] = top
            days[i] = wait[chosen]


def select_disposal_channels(price: np.ndarray, age_years: np.ndarray, mileage_km: np.ndarray,
                             condition: np.ndarray, country: np.ndarray,
                             channels: list[DisposalChannel], holding_cost_per_day: float = 60.0):
    """For each car, the channel with the highest expected net proceeds among those that take it.

    ``condition`` holds grade letters (A–E) and ``country`` country codes, as NumPy arrays of
    str. Returns ``(index, net, days)``: the channel's index in ``channels`` (-1: none takes
    the car or the price is unknown), its expected net proceeds and expected days to cash.
    Net proceeds count relisting an unsold car (its cost, delay and lower price) and the cost
    of the time to cash (:func:`disposal_economics`).
    """
    grade_of = {g: i for i, g in enumerate(ENUMS["condition_grade"])}
    country_of = {c: i for i, c in enumerate(ENUMS["country"])}
    grade = np.array([grade_of.get(g, -1) for g in np.asarray(condition, dtype=object).tolist()], np.int64)
    codes = np.array([country_of.get(c, -1) for c in np.asarray(country, dtype=object).tolist()], np.int64)
    return _ChannelTable(channels, holding_cost_per_day).choose(
        price, np.asarray(age_years, np.float64), np.asarray(mileage_km, np.float64), grade, codes)


@functools.cache
def _record_joins():
    """What :meth:`Pipeline.record_with_state` calls, imported once (the ledger's package is
    imported on first use, not with the pipeline; an import statement in the call would
    cost a microsecond or two per request)."""
    from types import SimpleNamespace

    from .evaluation.arms import add_arm_record
    from .ledger.join import join_book_state, join_state_record
    return SimpleNamespace(add_arm_record=add_arm_record, join_book_state=join_book_state,
                           join_state_record=join_state_record)


def _verdict_holds(outcome, reason, until, policy) -> bool:
    """One verdict of an engine's one-account way, as plain values, is what the pipeline
    takes: ints; a block or deferral (with its time) names its reason and policy, a keep is
    clean — :func:`_few_verdicts_hold` (``whole``) and the types, together."""
    if type(outcome) is not int or type(until) is not int:
        return False
    if outcome == KEEP:
        return until == NULL_TIME and reason is None and policy is None
    if outcome == BLOCK or outcome == DEFER and until != NULL_TIME:
        return type(reason) is str and type(policy) is str
    return False


def _few_verdicts_hold(outcome: list, until: list, reasons: list, names: list, whole: bool) -> bool:
    """A request's few verdicts as plain values are well-formed (an outcome code, a deferral
    with its time) and, ``whole`` (they are the set's), clean where they keep (no time,
    reason or policy): what the pipeline checks of an engine's run before taking it."""
    for x, y in zip(outcome, until):
        if not 0 <= x <= BLOCK or x == DEFER and y == NULL_TIME:
            return False
    if whole and KEEP in outcome:
        for x, y, r, p in zip(outcome, until, reasons, names):
            if x == KEEP and (y != NULL_TIME or r is not None or p is not None):
                return False
    return True


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


class PipelineResult:
    """Decisions (one row per account) and actions (one row per planned action).

    ``decisions`` and ``actions`` are Arrow tables built on first access; ``decision_columns``
    and ``action_columns`` give the same data as NumPy arrays without building them (the
    single-account path). ``errors`` lists plugin failures that blocked actions;
    ``unique_conflicts`` the rows per ``hit: unique`` ruleset that more than one rule fired
    for (their outputs null; :meth:`kernel.Kernel.unique_conflicts`)."""

    def __init__(self, decisions, action_columns: dict[str, np.ndarray], errors: list[str],
                 unique_conflicts: dict[str, int] | None = None):
        self._decisions = decisions
        self.action_columns = action_columns
        self.errors = errors
        self.unique_conflicts = unique_conflicts or {}
        self._actions: pa.Table | None = None

    @property
    def decision_record(self) -> dict:
        """One account's decisions as Python scalars (the ``run_record`` path): the result's
        own record, not a copy (the response is encoded from it and the audit record built
        from it: read it, do not change it)."""
        d = self._decisions
        if isinstance(d, Record):
            return d
        return {name: values[0] for name, values in self.decisions.to_pydict().items()}

    @property
    def decision_columns(self) -> Mapping[str, Any]:
        d = self._decisions
        if isinstance(d, Record):
            return {k: _one_column(v) for k, v in d.items()}
        return d if isinstance(d, Mapping) else {name: d.column(name) for name in d.schema.names}

    @property
    def decisions(self) -> pa.Table:
        if isinstance(self._decisions, Record):
            self._decisions = pa.Table.from_pylist([dict(self._decisions)])
        elif not isinstance(self._decisions, pa.Table):
            self._decisions = pa.table({k: to_arrow(v) for k, v in self._decisions.items()})
        return self._decisions

    @property
    def actions(self) -> pa.Table:
        if self._actions is None:
            self._actions = actions_table(self.action_columns)
        return self._actions


_TEXT_NONE = np.zeros(0, dtype=object)
#: the action columns of a result whose actions were not asked for (zero-length arrays
#: cannot be changed in place; each result gets its own dict)
_NO_ACTIONS = {"action": np.zeros(0, np.int8), "priority": np.zeros(0), "earliest_at": np.zeros(0, np.int64),
               "script": pa.array([], pa.string()), "script_id": _TEXT_NONE, "language": _TEXT_NONE,
               "outcome": np.zeros(0, np.int8), "reason_code": _TEXT_NONE, "next_allowed_at": np.zeros(0, np.int64),
               "policy": _TEXT_NONE, "account_id": _TEXT_NONE}


#: the columns compliance adds to the plan, in the order of :func:`_kept`
_VERDICT_COLUMNS = ("outcome", "reason_code", "next_allowed_at", "policy")


def _kept(n: int) -> tuple:
    """Verdict columns keeping ``n`` actions: (outcome, reason, next allowed, policy)."""
    next_allowed = np.empty(n, np.int64)
    next_allowed.fill(NULL_TIME)
    return np.zeros(n, np.int8), np.empty(n, dtype=object), next_allowed, np.empty(n, dtype=object)  # None-filled


#: the script of the one action :meth:`Pipeline.judge` asks about: none (Arrow arrays are immutable)
_NO_SCRIPT = pa.nulls(1, pa.string())
#: each action code as a one-action plan's action column (only read)
_ONE_ACTION = {code: np.array([code], np.int8) for code in ACTION.values()}


def _one_column(value) -> np.ndarray:
    out = np.empty(1, dtype=object)
    out[0] = value
    return out


# --------------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------------

_UNKNOWN = object()


@dataclass
class _PolicySet:
    name: str
    #: (policy name, policy, plugin, the action codes it judges or None for all)
    policies: list[tuple[str, CompliancePolicy, str, frozenset | None]]

    @functools.cached_property
    def runs(self) -> list[tuple[Any, list]]:
        """The policies in order, consecutive ones of one engine together: (engine or None,
        [policy entries]) — an engine judges its run in one call (``engine.judge``). Worked
        out once: a set's policies do not change (a reload builds a new pipeline)."""
        out: list[tuple[Any, list]] = []
        for entry in self.policies:
            engine = getattr(entry[1], "engine", None)
            if engine is not None and out and out[-1][0] is engine:
                out[-1][1].append(entry)
            else:
                out.append((engine, [entry]))
        return out

    def runs_for(self, planned: frozenset) -> list[tuple[Any, list]]:
        """:attr:`runs` without the policies that judge none of the ``planned`` action codes
        (and runs left empty), worked out once per set of codes."""
        cache = self.__dict__.setdefault("_runs_for", {})
        found = cache.get(planned)
        if found is None:
            found = []
            for engine, entries in self.runs:
                entries = [e for e in entries if e[3] is None or not e[3].isdisjoint(planned)]
                if entries:
                    found.append((engine, entries))
            if len(cache) >= 512:
                cache.clear()
            cache[planned] = found
        return found

    def request_for(self, planned: frozenset) -> tuple | None:
        """When one engine judges every policy that applies to the ``planned`` action codes
        and offers ``judge_request``: (its ``judge_request``, those policies) — what
        :meth:`Pipeline._judge_request` calls —, else None; worked out once per set of codes."""
        cache = self.__dict__.setdefault("_request_for", {})
        found = cache.get(planned, _UNKNOWN)
        if found is _UNKNOWN:
            runs = self.runs_for(planned)
            judge_request = getattr(runs[0][0], "judge_request", None) if len(runs) == 1 else None
            found = None if judge_request is None else (judge_request, [e[1] for e in runs[0][1]])
            if len(cache) >= 512:
                cache.clear()
            cache[planned] = found
        return found

    def action_for(self, code: int) -> tuple | None:
        """When one engine judges every policy that applies to the action ``code`` and offers
        ``judge_action`` (one action of one account, its verdict as plain values): (its
        ``judge_action``, those policies) — what :meth:`Pipeline.judge` calls —, else None;
        worked out once per action."""
        cache = self.__dict__.setdefault("_action_for", {})
        found = cache.get(code, _UNKNOWN)
        if found is _UNKNOWN:
            runs = self.runs_for(frozenset((code,)))
            judge_action = getattr(runs[0][0], "judge_action", None) if len(runs) == 1 else None
            found = cache[code] = None if judge_action is None else (judge_action, [e[1] for e in runs[0][1]])
        return found


class Pipeline:
    """Runs the stages after the kernel's decision on whole batches.

    ``plugins`` is a :class:`~kernel.plugins.PluginManager` (default: one built from
    ``config``); ``config`` a TOML path or mapping (default ``$POSTLOAN_CONFIG``);
    ``audit_path`` the audit log (default ``[audit] path``, ``$POSTLOAN_AUDIT_PATH``, else
    ``~/.local/state/postloan/audit.log``); ``audit_sync`` and ``audit_interval_ms`` how it
    makes records durable (default ``[audit] sync`` and ``interval_ms``; see
    :class:`kernel.audit.AuditLog`). Names in the configuration are resolved here, so a strategy, policy or
    method that no loaded plugin provides is an error at construction.
    """

    #: the kernel's decision columns that send an account to valuation (either set)
    valued_flags = _VALUED
    #: the decision columns the valuation stage adds after the kernel's (null for an account not valued)
    valuation_columns = _VALUATION_COLUMNS

    def __init__(self, kernel, plugins: PluginManager | None = None, config=None, audit_path=None,
                 audit_sync: str | None = None, audit_interval_ms: float | None = None, ledger=None):
        self.kernel = kernel
        if plugins is None:
            plugins = PluginManager(config)
        self.plugins = plugins
        self.config = load_config(config) if config is not None else plugins.config
        self.ledger = self._ledger(ledger)
        from .evaluation.arms import Experiment
        self.experiment = Experiment.from_config(self.config)     # [experiment]: champion/challenger arms
        self.book_counters = (self.config.get("ledger") or {}).get("book_counters", "fallback")
        pipe = self.config.get("pipeline", {})
        self.strategy_name = pipe.get("strategy", "tiered")
        self.strategy = self._component("postloan_collection_strategies", self.strategy_name, "[pipeline] strategy")
        self.steps = [(name, self._component("postloan_strategy_steps", name, "[pipeline] steps"))
                      for name in pipe.get("steps", [])]
        self.valuation_name = pipe.get("valuation", "rv_model")
        self.valuation = self._component("postloan_valuation_methods", self.valuation_name, "[pipeline] valuation")
        self.channels = self._disposal_channels(plugins.disposal_channels())
        self.holding_cost = float(self.config.get("disposal", {}).get("holding_cost_per_day", 60.0))
        self._channel_table = _ChannelTable(self.channels, self.holding_cost)
        self._channel_names = np.array([c.name for c in self.channels] + [None], dtype=object)
        self.sets, self.apply = self._policy_sets()
        self._route_table = self._enum_route_table()
        self._routes_seen: dict = {}            # a record's route keys' values -> its set (_route_one)
        self._meta_fixed: dict | None = None
        audit = self.config.get("audit", {})
        path = audit_path or audit.get("path") or os.environ.get(ENV_AUDIT) \
            or Path.home() / ".local" / "state" / "postloan" / "audit.log"
        self.audit = AuditLog(path, sync=audit_sync or audit.get("sync", "always"),
                              interval_ms=audit_interval_ms or audit.get("interval_ms", DEFAULT_SYNC_INTERVAL_MS))

    # -- configuration ---------------------------------------------------------------------
    def _ledger(self, ledger):
        """The ledger the decisions read state from: a :class:`~kernel.ledger.Ledger`, a store
        URL, or None (``[ledger] store`` in the configuration, if set)."""
        if ledger is None:
            ledger = (self.config.get("ledger") or {}).get("store")
        if ledger is None:
            return None
        from .ledger import Ledger
        return ledger if isinstance(ledger, Ledger) else Ledger(str(ledger), self.config)

    def _component(self, hook: str, name: str, where: str):
        found = self.plugins.components(hook)
        if name not in found:
            skipped = f"; plugins not loaded: {', '.join(f'{n} ({why})' for n, why in self.plugins.skipped.items())}" \
                if self.plugins.skipped else ""
            raise PostloanError(f"{where} = {name!r}: no loaded plugin provides it "
                                f"(available: {', '.join(sorted(found)) or 'none'}{skipped})")
        return found[name][0]

    def _disposal_channels(self, offered: Mapping[str, DisposalChannel]) -> list[DisposalChannel]:
        """Every channel the plugins offer but those ``[disposal] disabled`` switches off (by
        name; a name no plugin offers is an error, so a typo cannot leave a channel on)."""
        disabled = (self.config.get("disposal") or {}).get("disabled", [])
        unknown = [name for name in disabled if name not in offered]
        if unknown:
            raise PostloanError(f"[disposal] disabled names channel {unknown[0]!r}, which no loaded plugin offers "
                                f"(channels: {', '.join(sorted(offered)) or 'none'})")
        return [c for name, c in offered.items() if name not in disabled]

    def _policy_sets(self):
        comp = self.config.get("compliance", {})
        sets_cfg = comp.get("sets", {})
        policies = self.plugins.components("postloan_compliance_policies")
        sets: list[_PolicySet] = []
        for set_name, names in sets_cfg.items():
            if not isinstance(names, list):
                raise PostloanError(f"[compliance.sets] {set_name}: expected a list of policy names")
            resolved = []
            for name in names:
                if name not in policies:
                    raise PostloanError(f"[compliance.sets] {set_name} names policy {name!r}, which no loaded plugin "
                                        f"provides (policies: {', '.join(sorted(policies)) or 'none'})")
                policy, plugin = policies[name]
                resolved.append((name, policy, plugin, _scope(policy, name, plugin)))
            sets.append(_PolicySet(set_name, resolved))
        index = {s.name: i for i, s in enumerate(sets)}
        rules = []
        for i, rule in enumerate(comp.get("apply", [])):
            where = f"[[compliance.apply]] rule {i + 1}"
            if not isinstance(rule, Mapping):
                raise PostloanError(f"{where}: expected a table")
            unknown = sorted(set(rule) - _APPLY_KEYS)
            if unknown:
                raise PostloanError(f"{where}: unknown key {unknown[0]!r} (keys: {', '.join(sorted(_APPLY_KEYS))})")
            if rule.get("set") not in index:
                raise PostloanError(f"{where}: set {rule.get('set')!r} is not in [compliance.sets] "
                                    f"({', '.join(index) or 'none'})")
            match = {}
            for key in ("country", "region", "product"):
                if key in rule:
                    values = [rule[key]] if isinstance(rule[key], str) else rule[key]
                    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                        raise PostloanError(f"{where}: {key} must be a name or a list of names")
                    if key == "region":             # free text: matched against the batch's distinct regions
                        match[key] = frozenset(values)
                        continue
                    bad = [v for v in values if v not in ENUMS[key]]
                    if bad:
                        raise PostloanError(f"{where}: {key} {bad[0]!r} is not one of {', '.join(ENUMS[key])}")
                    # an enum: True per member code that matches, and False for code −1 (null)
                    match[key] = np.array([m in values for m in ENUMS[key]] + [False])
            rules.append((match, index[rule["set"]]))
        return sets, rules

    def _enum_route_table(self) -> tuple[tuple[str, ...], np.ndarray] | None:
        """When no ``[[compliance.apply]]`` rule reads the region: the enum keys the rules
        read and the policy set (-1: none) of every combination of their codes (the last
        index along each axis is code −1, null), with the first matching rule's set."""
        if any("region" in match for match, _ in self.apply):
            return None
        keys = tuple(sorted({key for match, _ in self.apply for key in match}))
        table = np.full(tuple(len(ENUMS[key]) + 1 for key in keys), -1, np.int64)
        for match, set_index in reversed(self.apply):       # an earlier rule overwrites a later one
            hit = np.ones(table.shape, bool)
            for axis, key in enumerate(keys):
                if key in match:
                    hit &= match[key].reshape([-1 if a == axis else 1 for a in range(len(keys))])
            table[hit] = set_index
        return keys, table

    # -- running ---------------------------------------------------------------------------
    def run(self, table: pa.Table | pa.RecordBatch, as_of: dt.date, now: dt.datetime, *,
            actions: bool = True) -> PipelineResult:
        """Decide ``table`` (the book's columns) and plan, check and audit its actions.
        ``actions=False``: the decisions only (valuation included), audited without actions."""
        table = self.with_state(table, as_of, now)
        decisions = self.kernel.decide(table, as_of)
        return self.act(table, decisions, as_of, now, actions=actions)

    def with_state(self, table: pa.Table | pa.RecordBatch, as_of: dt.date, now: dt.datetime, *,
                   register: bool = True) -> pa.Table:
        """The book joined with each account's state as of ``now`` (docs/ledger.md): from the
        ledger where it knows the account, read off the book otherwise. With a ledger, the
        book's gate columns are registered too (the contact-time gate reads them), unless
        ``register`` is False (the caller registered them already)."""
        from .evaluation.arms import add_arm
        from .ledger.join import with_state
        return add_arm(with_state(table, as_of, now, self.ledger, self.book_counters, register), self.experiment)

    def columns_with_state(self, columns: Mapping[str, np.ndarray], as_of: dt.date, now: dt.datetime) -> dict:
        """A few accounts' NumPy columns (``run_columns``' form) joined with their state."""
        from .ledger.join import book_state, join_columns, merge
        batch = Batch(row_count(columns), as_of, now, [columns], self.config)
        state = book_state(batch)
        if self.ledger is not None:
            state = merge(state, self.ledger.state_columns(batch.strings("account_id").to_pylist(),
                                                           batch.strings("time_zone").to_pylist(), now),
                          self.book_counters)
        from .evaluation.arms import add_arm
        return add_arm(join_columns(columns, state), self.experiment)

    def record_with_state(self, record: Mapping[str, Any], as_of: dt.date, now: dt.datetime, *,
                          register: bool = False) -> Record:
        """One account's record joined with its state (the ``run_record`` path). With a
        ledger and ``register``, the account's gate columns are registered too (one read of
        the store for both)."""
        joins = _record_joins()
        if self.ledger is None:                # the state read off the book alone
            return joins.add_arm_record(joins.join_book_state(record, as_of), self.experiment)
        values = self.ledger.registered_state_values(record, now) if register else \
            self.ledger.state_values(record.get("account_id"), record.get("time_zone"), now)
        return self.join_state_values(record, as_of, values)

    def join_state_values(self, record: Mapping[str, Any], as_of: dt.date, values: Mapping[str, Any]) -> Record:
        """:meth:`record_with_state`'s join of a record with the ledger's ``values`` (read by
        the caller: :meth:`Ledger.registered_state_values`)."""
        joins = _record_joins()
        return joins.add_arm_record(joins.join_state_record(record, as_of, values, self.book_counters),
                                    self.experiment)

    @functools.cached_property
    def judge_columns(self) -> frozenset | None:
        """The account columns :meth:`judge` reads — those the compliance policies say they
        read (``columns_read``) and the ``[[compliance.apply]]`` keys — or None when a policy
        does not say (then any column may be read)."""
        out = {key for match, _ in self.apply for key in match}
        for policy_set in self.sets:
            for _, policy, _, _ in policy_set.policies:
                columns = getattr(policy, "columns_read", None)
                if columns is None:
                    return None
                out |= columns
        return frozenset(out)

    def judge_columns_of(self, action: str) -> frozenset | None:
        """:attr:`judge_columns` of the policies that judge ``action`` (an action name) — with
        the ``[[compliance.apply]]`` keys, which route every account — or None when one of
        them does not say; worked out once per action. What :meth:`judge` of that action
        reads: a policy that does not judge it is never run on it."""
        cache = self.__dict__.setdefault("_judge_columns_of", {})
        if action in cache:
            return cache[action]
        code = ACTION.get(action)
        if code is None:
            raise PostloanError(f"action {action!r} is not one of {', '.join(ACTION)}")
        out = {key for match, _ in self.apply for key in match}
        for policy_set in self.sets:
            for _, policy, _, codes in policy_set.policies:
                if codes is not None and code not in codes:
                    continue
                columns = getattr(policy, "columns_read", None)
                if columns is None:
                    out = None
                    break
                out |= columns
            if out is None:
                break
        found = cache[action] = None if out is None else frozenset(out)
        return found

    def judge(self, record: Mapping[str, Any], action: str, at: dt.datetime, as_of: dt.date | None = None) -> tuple:
        """The compliance verdict on one action planned at ``at`` for one account given as a
        record of book and state columns (the contact-time gate's question): ``(outcome,
        reason_code, next_allowed_us, policy, errors)``, outcome KEEP / DEFER / BLOCK. A
        :class:`Record` (the gate's) is read as it is, any other mapping copied into one."""
        code = ACTION.get(action)
        if code is None:
            raise PostloanError(f"action {action!r} is not one of {', '.join(ACTION)}")
        at = at.astimezone(dt.timezone.utc)
        batch = Batch(1, as_of or at.date(), at, [record if type(record) is Record else Record(record)], self.config)
        # :meth:`_comply`'s one-account way (:meth:`_judge_request`), its verdicts taken as the
        # engine's plain lists: no verdict columns built to read row 0 back from
        low = self._route_one(batch)
        if low >= 0:
            one = self.sets[low].action_for(code)
            if one is not None:
                found = self._judge_action(one, batch, code)
                if found is not None:
                    outcome, reason, until, name = found
                    return ("KEEP", "DEFER", "BLOCK")[outcome], reason, until, name, []
            found = self._judge_request(self.sets[low], batch, {"action": _ONE_ACTION[code], "earliest_at": np.array(
                [batch.now_us], np.int64), "script": [None]}, plain=True)
            if found is not None:
                outcome, reasons, until, names = found
                return ("KEEP", "DEFER", "BLOCK")[outcome[0]], reasons[0], until[0], names[0], []
        plan = {"row": np.zeros(1, np.int64), "action": _ONE_ACTION[code],
                "earliest_at": np.array([batch.now_us], np.int64), "script": _NO_SCRIPT}
        errors: list[str] = []
        verdict = self._comply(batch, plan, errors)
        outcome = ("KEEP", "DEFER", "BLOCK")[int(verdict["outcome"][0])]
        return outcome, verdict["reason_code"][0], int(verdict["next_allowed_at"][0]), verdict["policy"][0], errors

    def run_columns(self, columns: Mapping[str, np.ndarray], as_of: dt.date, now: dt.datetime, *,
                    actions: bool = True) -> PipelineResult:
        """The same for a few accounts given as NumPy columns (strings and enums as str
        arrays, dates as ``datetime64[D]``, instants as ``datetime64[us]``)."""
        columns = self.columns_with_state(columns, as_of, now)
        decisions = self.kernel.decide_columns(columns, as_of)
        return self.act(columns, decisions, as_of, now, actions=actions)

    def run_record(self, record: Mapping[str, Any], as_of: dt.date, now: dt.datetime, *,
                   actions: bool = True) -> PipelineResult:
        """The same for one account given as Python scalars (``Kernel.decide_record``'s
        form): no arrays are built on the way in. ``result.decision_record`` gives the
        decisions as scalars; ``decisions`` / ``decision_columns`` convert on access."""
        record = self.record_with_state(record, as_of, now, register=True)
        decisions = self.kernel.decide_record(record, as_of)
        return self.act(record, Record(decisions), as_of, now, actions=actions)

    def act(self, book, decisions, as_of: dt.date, now: dt.datetime, *, actions: bool = True) -> PipelineResult:
        """The stages after the kernel, then the audit log: ``decisions`` are the kernel's
        columns for ``book``. Returns once the audit record is durable (or, with ``[audit]
        sync = "interval"``, handed to the audit log's writer thread, which builds, encodes
        and writes it within a few milliseconds)."""
        result = self.stage(book, decisions, as_of, now, actions=actions)
        self._append_audit(result, as_of, now)
        return result

    def act_unvalued(self, account_id: str, decisions: Record, as_of: dt.date, now: dt.datetime) -> PipelineResult | None:
        """:meth:`act` with ``actions=False`` for one account whose stage reads nothing of
        its book but the id — decisions heading for neither repossession nor disposal, no
        experiment (:meth:`_stage_unvalued_record`) —, so that the caller need not build the
        book's record (the gRPC server writes the kernel's inputs from the wire). None: the
        caller must :meth:`act` with the record."""
        if not decisions.keys() >= _VALUED_SET:          # the flags would be read off the book
            return None
        result = self._stage_unvalued_record(Record(account_id=account_id), decisions, now)
        if result is not None:
            self._append_audit(result, as_of, now)
        return result

    def audit_unvalued(self, build, *args) -> None:
        """:meth:`act_unvalued`'s audit record for one account its caller has found unvalued
        itself (no flag of :data:`_VALUED` set; the gRPC server's compiled decision-only
        Decide): ``build(*args)`` gives its (account id, decisions, as_of, now) when the
        record is built — with ``[audit] sync = "interval"`` by the audit log's writer thread,
        off the call's path."""
        self.audit.append_built(self._unvalued_audit_record, build, args)

    def _unvalued_audit_record(self, build, args: tuple) -> tuple:
        account_id, decisions, as_of, now = build(*args)
        result = self._stage_unvalued_record(Record(account_id=account_id), Record(decisions), now)
        if result is None:
            raise PostloanError(f"account {account_id!r} was audited as unvalued, but its decisions value it")
        return self.audit_record(result, as_of, now)

    def _append_audit(self, result: PipelineResult, as_of: dt.date, now: dt.datetime) -> None:
        # with [audit] sync = "interval" the writer thread builds the record, off the call's
        # path, from the result's parts as they are now (``result.decisions`` later turns its
        # decisions into a table: the record must not depend on when it is built)
        self.audit.append_built(self._audit_record, result._decisions, result.action_columns, result.errors,
                                result.unique_conflicts, as_of, now)

    def audit_record(self, result: PipelineResult, as_of: dt.date, now: dt.datetime) -> tuple:
        """(meta, decisions, actions): what :meth:`act` appends to the audit log for ``result``
        — no personal data, no scripts."""
        return self._audit_record(result._decisions, result.action_columns, result.errors, result.unique_conflicts,
                                  as_of, now)

    def _audit_record(self, decisions, action_columns: Mapping, errors: list, unique_conflicts: dict,
                      as_of: dt.date, now: dt.datetime) -> tuple:
        actions = {k: v for k, v in action_columns.items() if k != "script"}
        decisions = without_pii(decisions)
        meta = self._meta(as_of, now, row_count(decisions), actions, errors)
        meta["unique_conflicts"] = unique_conflicts
        return meta, decisions, actions

    def stage(self, book, decisions, as_of: dt.date, now: dt.datetime, *, actions: bool = True) -> PipelineResult:
        """Valuation, collection strategy and compliance, without the audit log (benchmarks,
        what-if runs); with ``actions=False`` the valuation only (no action is planned). Use
        :meth:`run` or :meth:`act` for decisions that are acted on."""
        if not actions and isinstance(book, Record) and isinstance(decisions, Record):
            result = self._stage_unvalued_record(book, decisions, now)
            if result is not None:
                return result
        n = row_count(book)
        if row_count(decisions) != n:
            raise PostloanError(f"the kernel returned {row_count(decisions)} decision rows for {n} accounts")
        conflicts = self._unique_conflicts(decisions)
        decided = None                           # the result's decision columns, when made before the batch
        if isinstance(book, Record) and isinstance(decisions, Record) and self._unvalued_record(book, decisions, now):
            # a request heading for neither repossession nor disposal: its batch with the empty
            # valuation columns first from the start — the sources Batch.add leaves below when
            # the valuation finds nothing to value —, its record merged once
            extra = _NO_VALUATION
            if "account_id" in decisions or "account_id" in book:
                # the result's decision record (the decisions, the id, the empty valuation) is
                # the batch's first source: it reads as [extra, decisions, book] do, and the
                # decisions are copied once for both
                decided = _with_columns(decisions, extra, book)
                batch = Batch(n, as_of, now, [decided, book], self.config)
            else:
                batch = Batch(n, as_of, now, [Record(extra), decisions, book], self.config)
        else:
            batch = Batch(n, as_of, now, [decisions, book], self.config)
            if isinstance(book, Record):
                extra = self._valuation_record(batch)
            else:
                extra = self._valuation(batch)
                if extra is None:
                    extra = _no_valuation(n)
            if self.experiment is not None:          # the decision column experiment.arm
                from .evaluation.arms import decision_arms
                arms = decision_arms(batch, self.experiment)
                extra = Record({**extra, "experiment.arm": arms[0]}) if isinstance(book, Record) \
                    else {**extra, "experiment.arm": arms}
            batch.add(extra)
        if not actions:
            return PipelineResult(_with_columns(decisions, extra, book) if decided is None else decided,
                                  dict(_NO_ACTIONS), [], conflicts)
        actions = self._plan(batch)              # the plan's own dict (_checked_plan's): the actions' columns
        errors: list[str] = []
        actions.update(self._comply(batch, actions, errors))
        rows = actions.pop("row")
        merged = batch.merged
        account_id = merged.get("account_id") if merged is not None else None
        if type(account_id) is str:              # one record's id: each action's (batch.raw's row 0)
            ids = actions["account_id"] = np.empty(rows.shape[0], dtype=object)
            ids.fill(account_id)
        else:
            actions["account_id"] = _take(batch.raw("account_id"), rows)
        if decided is None:
            decided = _with_columns(decisions, extra, book)
        return PipelineResult(decided, actions, errors, conflicts)

    def _unique_conflicts(self, decisions) -> dict[str, int]:
        return self.kernel.unique_conflicts(decisions) if hasattr(self.kernel, "unique_conflicts") else {}

    def _stage_unvalued_record(self, book: Record, decisions: Record, now: dt.datetime) -> PipelineResult | None:
        """:meth:`stage` with ``actions=False`` for one account (records) that heads for
        neither repossession nor disposal, without the Batch the general way builds to find
        that out: the same result (no valuation, no action), or None when the general way
        must run — a flag of :data:`_VALUED` set or not a plain bool (the Batch converts it),
        an experiment (its arm), a naive ``now`` (the Batch refuses it). A flag is read as
        the Batch reads it: the decisions' value, else the book's."""
        if not self._unvalued_record(book, decisions, now):
            return None
        return PipelineResult(_with_columns(decisions, _NO_VALUATION, book), dict(_NO_ACTIONS), [],
                              self._unique_conflicts(decisions))

    def _unvalued_record(self, book: Record, decisions: Record, now: dt.datetime) -> bool:
        """Whether one account (records) heads for neither repossession nor disposal, with no
        experiment and an aware ``now``: each flag of :data:`_VALUED` None, False or absent,
        read as the Batch reads it (the decisions' value, else the book's) — then the
        valuation values nothing and the account's valuation columns are all null."""
        if self.experiment is not None or now.tzinfo is None or now.utcoffset() is None:
            return False
        for name in _VALUED:
            value = decisions.get(name, _ABSENT)
            if value is _ABSENT:
                value = book.get(name)
            if value is not None and value is not False:
                return False
        return True

    def _meta(self, as_of, now, n, actions, errors) -> dict:
        if self._meta_fixed is None:             # what every record of this pipeline shares
            self._meta_fixed = {
                "bundle_hash": getattr(self.kernel, "bundle_hash", None), "strategy": self.strategy_name,
                "valuation": self.valuation_name,
                "policy_sets": {s.name: [p[0] for p in s.policies] for s in self.sets},
                "plugins": {name: info.version or info.origin for name, info in self.plugins.infos.items()},
            }
            if self.experiment is not None:
                self._meta_fixed["experiment"] = self.experiment.describe()
        # as_of and now as they are: the audit log writes them as ISO text (orjson's own, a
        # quarter of isoformat's cost), and reads them back so
        return {"as_of": as_of, "now": now.astimezone(dt.timezone.utc), "rows": n,
                "actions": len(actions["action"]), **self._meta_fixed, "errors": errors}

    # -- stages ----------------------------------------------------------------------------
    def _strategy_who(self) -> tuple[str, str]:
        """(what to call the strategy in an error, its plugin)."""
        hook = "postloan_collection_strategies"
        plugin = self.plugins.provider(hook, self.strategy_name)
        return f"collection strategy {self.strategy_name!r} (plugin {plugin!r}, hook {hook})", plugin

    def _valuation(self, batch: Batch) -> dict[str, np.ndarray] | None:
        """The valuation columns of the accounts heading for repossession or disposal; None
        when there are none."""
        if batch.n == 1:                           # a request: its two flags as Python bools
            if not self._valued_one(batch):
                return None
            rows = np.zeros(1, np.int64)
        else:
            need = None
            for name in _VALUED:
                if batch.has(name):
                    need = batch.bool(name) if need is None else need | batch.bool(name)
            rows = None if need is None else need.nonzero()[0]
            if rows is None or rows.size == 0:
                return None
        out = _no_valuation(batch.n)
        for name, values in self.valuate(batch, rows).items():
            out[name][rows] = values
        return out

    @staticmethod
    def _valued_one(batch: Batch) -> bool:
        """Whether one account (a batch of one) heads for repossession or disposal."""
        for name in _VALUED:
            if batch.has(name) and batch.bool_one(name):
                return True
        return False

    def _valuation_record(self, batch: Batch) -> Record:
        """Row 0 of :meth:`_valuation` as the Record the stage adds for one account (its
        values as :func:`_first_value` reads them, the empty valuation when it is not valued):
        :meth:`valuate`'s one-row columns read directly — the row is all of them — without
        the batch's null columns they would be written into first."""
        if not self._valued_one(batch):
            return Record(_NO_VALUATION)
        return Record({k: _first_value(v) for k, v in self.valuate(batch, np.zeros(1, np.int64)).items()})

    def valuate(self, batch: Batch, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Value the cars of ``rows`` (indices into ``batch``) with the configured valuation
        method and choose each one's disposal channel: the columns ``valuation.price``,
        ``valuation.method``, ``disposal_channel.channel`` (a name of :attr:`channels`, None
        when no channel takes the car), ``disposal_channel.expected_net`` and
        ``disposal_channel.expected_days``, one value per row of ``rows``. The batch needs
        the vehicle's columns, ``country`` and what the valuation method reads. A method that
        raises or returns malformed values raises :class:`~kernel.plugins.PluginError`."""
        hook = "postloan_valuation_methods"
        try:
            values = self.valuation.value(batch, rows)
        except Exception as e:
            who, plugin = self._valuation_who()
            if isinstance(e, PostloanError):
                raise PluginError(f"{who}: {e}", plugin=plugin, hook=hook) from e
            raise PluginError(f"{who} raised {type(e).__name__}{_where(e)}", plugin=plugin, hook=hook) from e
        price = _checked_floats(values, rows.size, self._valuation_who, hook)
        age = np.maximum(_year_fraction(batch.as_of) - batch.int("model_year")[rows], 0.0)
        best, net, days = self._channel_table.choose(
            price, age, batch.float("mileage_km")[rows], batch.enum("condition_grade")[rows], batch.enum("country")[rows])
        method = np.empty(rows.size, dtype=object)
        method.fill(self.valuation_name)
        return dict(zip(_VALUATION_COLUMNS, (price, method, self._channel_names[best], net, days)))

    def _valuation_who(self) -> tuple[str, str]:
        """(what to call the valuation method in an error, its plugin)."""
        hook = "postloan_valuation_methods"
        plugin = self.plugins.provider(hook, self.valuation_name)
        return f"valuation method {self.valuation_name!r} (plugin {plugin!r}, hook {hook})", plugin

    def _plan(self, batch: Batch) -> dict[str, Any]:
        hook = "postloan_collection_strategies"
        try:
            plan = self.strategy.plan(batch)
        except Exception as e:
            plugin = self.plugins.provider(hook, self.strategy_name)
            who = f"collection strategy {self.strategy_name!r} (plugin {plugin!r}, hook {hook})"
            if isinstance(e, PostloanError):
                raise PluginError(f"{who}: {e}", plugin=plugin, hook=hook) from e
            raise PluginError(f"{who} raised {type(e).__name__}{_where(e)}", plugin=plugin, hook=hook) from e
        plan = _checked_plan(plan, batch.n, self._strategy_who, hook)
        for name, step in self.steps:              # [pipeline] steps, in order (plugin-guide.md)
            hook = "postloan_strategy_steps"
            plugin = self.plugins.provider(hook, name)
            who = f"strategy step {name!r} (plugin {plugin!r}, hook {hook})"
            current = Plan(batch, plan, renderer=self.strategy.render)
            try:
                step.apply(current)
            except PostloanError as e:
                raise PluginError(f"{who}: {e}", plugin=plugin, hook=hook) from e
            except Exception as e:
                raise PluginError(f"{who} raised {type(e).__name__}{_where(e)}", plugin=plugin, hook=hook) from e
            plan = _checked_plan(current.columns(), batch.n, (who, plugin), hook)
        return plan

    def _route_one(self, batch: Batch) -> int:
        """Row 0 of :meth:`_route` (a batch of one account) as a Python int: with no rule
        reading the region, one lookup of its codes as Python ints (``Batch.enum_one``, row 0
        of ``Batch.enum``)."""
        if self._route_table is not None:
            keys, table = self._route_table
            merged = batch.merged
            if merged is None:
                return int(table[tuple([batch.enum_one(key) for key in keys])])
            values = tuple([merged.get(key) for key in keys])
            plain = True                           # a record's plain texts: the key
            for v in values:
                if v is not None and type(v) is not str:
                    plain = False
            found = self._routes_seen.get(values) if plain else None
            if found is None:
                found = int(table[tuple([batch.enum_one(key) for key in keys])])
                if plain:
                    if len(self._routes_seen) >= 4096:
                        self._routes_seen.clear()
                    self._routes_seen[values] = found
            return found
        return int(self._route(batch)[0])

    def _route(self, batch: Batch) -> np.ndarray:
        """The policy set of each account (-1: none applies)."""
        if self._route_table is not None:          # no rule reads the region: one lookup
            keys, table = self._route_table
            if not keys:
                return np.full(batch.n, table[()])
            if batch.n == 1:                       # one account: its codes as Python ints
                return table[tuple(int(batch.enum(key)[0]) for key in keys)].reshape(1)
            return table[tuple(batch.enum(key) for key in keys)]
        out = np.full(batch.n, -1, np.int64)
        for match, set_index in self.apply:
            hit = out < 0
            for key, allowed in match.items():
                if key == "region":
                    names, index = batch.categories("region")
                    hit &= np.array([name in allowed for name in names] + [False])[index]
                else:
                    hit &= allowed[batch.enum(key)]
            out[hit] = set_index
        return out

    def _comply(self, batch: Batch, plan: Mapping[str, Any], errors: list[str]) -> dict[str, np.ndarray]:
        rows = plan["row"]
        n = rows.shape[0]
        if n and batch.n == 1:                     # one account: its set, every action's
            low = high = self._route_one(batch)
            set_of = None
            if low >= 0 and n <= 64:
                found = self._judge_request(self.sets[low], batch, plan)
                if found is not None:
                    return found
        else:
            set_of = self._route(batch)[rows] if n else rows
            low, high = _min_max(set_of)
        if n and low == high >= 0:                 # one set judges every action (a request's account)
            sub = ActionBatch(batch, rows, plan["action"], plan["earliest_at"], script=plan["script"])
            return dict(zip(_VERDICT_COLUMNS, self._judge_all(self.sets[low], sub, errors)))
        outcome, reason, next_allowed, policy = verdicts = _kept(n)
        result = dict(zip(_VERDICT_COLUMNS, verdicts))
        if n == 0:
            return result
        if set_of is None:
            set_of = np.full(n, low, np.int64)
        unrouted = set_of < 0
        outcome[unrouted], reason[unrouted], policy[unrouted] = BLOCK, NO_POLICY_SET, "compliance.apply"
        for s, policy_set in enumerate(self.sets):
            idx = (set_of == s).nonzero()[0]
            if idx.size == 0:
                continue
            script = plan["script"].take(pa.array(idx))
            sub = ActionBatch(batch, rows[idx], plan["action"][idx], plan["earliest_at"][idx], script=script)
            outcome[idx], reason[idx], next_allowed[idx], policy[idx] = self._judge_all(policy_set, sub, errors)
        return result

    @staticmethod
    def _judge_action(one: tuple, batch: Batch, code: int) -> tuple | None:
        """:meth:`judge`'s one action at the batch's moment judged by the engine that judges
        every policy of the set applying to it (``one``: :meth:`_PolicySet.action_for`) —
        (outcome code, reason code, next allowed µs, policy name) — when its verdict passes
        :meth:`_judge_request`'s checks; None otherwise (then :meth:`_judge_request`, and past
        it the general way, judge it again and name the errors)."""
        judge_action, policies = one
        try:
            found = judge_action(policies, batch, code, batch.now_us)
        except Exception as e:                     # noqa: BLE001 — judged again the other ways, errors named there
            log.debug("engine run of action %d failed (%s); judging it the request's way", code, e)
            return None
        if type(found) is not tuple or len(found) != 4 or not _verdict_holds(*found):
            return None
        return found

    def _judge_request(self, policy_set: _PolicySet, batch: Batch, plan: Mapping[str, Any],
                       plain: bool = False) -> dict | tuple | None:
        """The verdict columns of a request's few actions (one account, ≤ 64 actions) when one
        engine judges every policy of its set that applies and offers ``judge_request`` (the
        built-in one: plain lists from the plan's columns, no :class:`ActionBatch`, nothing
        read back), and its verdicts pass :meth:`_judge_run`'s checks — well-formed, clean
        where they keep — in the columns' types; None otherwise (then the general way runs:
        an ActionBatch, :meth:`_judge_all`, which judges each policy alone when the engine's
        run fails). Pinned to that way by ``test_a_requests_verdicts_are_the_general_ways``. ``plain``:
        the verdicts as the engine's lists once checked — (outcome codes, reason codes, next
        allowed µs, policy names) —, not as columns (:meth:`judge`'s one action reads them)."""
        action = plan["action"]
        codes = action.tolist()
        request = policy_set.request_for(frozenset(codes))
        if request is None:
            return None
        judge_request, policies = request
        m = len(codes)
        try:
            found = judge_request(policies, batch, action, plan["earliest_at"], plan["script"])
        except Exception as e:                     # noqa: BLE001 — judged again the general way, errors named there
            log.debug("engine run of %s failed (%s); judging them the general way",
                      [p[0] for p in policy_set.runs_for(frozenset(codes))[0][1]], e)
            return None
        if type(found) is not tuple or len(found) != 4:
            return None
        outcome, reasons, until, names = found
        if not (type(outcome) is list and type(reasons) is list and type(until) is list and type(names) is list
                and len(outcome) == len(reasons) == len(until) == len(names) == m):
            return None
        for x, y, r, p in zip(outcome, until, reasons, names):
            if not _verdict_holds(x, r, y, p):
                return None
        if plain:
            return found
        return {"outcome": np.array(outcome, np.int8), "reason_code": np.array(reasons, dtype=object),
                "next_allowed_at": np.array(until, np.int64), "policy": np.array(names, dtype=object)}

    def _judge_all(self, policy_set: _PolicySet, actions: ActionBatch, errors: list[str]) -> tuple:
        """Every policy of a set on ``actions``, combined: (outcome, reason, next allowed, policy).

        Consecutive policies of one engine (the built-ins: compiled rules) are judged by one
        call; its verdicts are already combined in order, and combining them with the rest is
        the same as combining each policy in turn (the strictest outcome wins, the first reason
        for it stays, deferrals keep the later time)."""
        n = actions.n
        planned = frozenset(actions.action.tolist() if n <= 64 else np.unique(actions.action).tolist())
        runs = policy_set.runs_for(planned)
        if n <= 64 and len(runs) == 1 and runs[0][0] is not None:
            # one engine judges every policy that applies: its verdicts, when well-formed and
            # clean where they keep, are the combination (the first verdicts combined into
            # "all kept" are themselves)
            found = self._judge_run(runs[0][0], runs[0][1], actions, errors, whole=True)
            if found is not None:
                return found
        outcome, reason, next_allowed, policy = _kept(n)
        state = [False, False]                     # whether any action is judged / DEFERred so far
        for engine, entries in runs:
            if engine is not None:
                found = self._judge_run(engine, entries, actions, errors)
                if found is not None:
                    _combine(state, (outcome, reason, next_allowed, policy), *found)
                    continue
            for name, pol, plugin, scope in entries:
                v = self._judge(pol, name, plugin, actions, errors, scope)
                if v is not None:                  # None: kept everything, nothing to combine
                    _combine(state, (outcome, reason, next_allowed, policy), v.outcome, v.reason_codes,
                             v.next_allowed_us, name)
        return outcome, reason, next_allowed, policy

    def _judge_run(self, engine, entries: list, actions: ActionBatch, errors: list[str], whole: bool = False):
        """The verdicts of a run of one engine's policies in one call — (outcome, reasons,
        next allowed, policy names) — or None when the call fails or returns malformed
        verdicts (each policy is then judged alone, so only a failing one blocks). ``whole``:
        the run is every policy that applies to a request's few actions (≤ 64), so its
        verdicts are the set's — None also unless they are in the set's columns' types
        (:func:`_kept`) and clean where they keep (no reason, time or policy), as combining
        them would make them."""
        try:
            outcome, reasons, until, names = engine.judge([e[1] for e in entries], actions)
        except Exception as e:                     # noqa: BLE001 — judged again one by one, errors named there
            log.debug("engine run of %s failed (%s); judging them one by one", [e[0] for e in entries], e)
            return None
        n = actions.n
        if not (getattr(outcome, "shape", None) == (n,) and getattr(reasons, "shape", None) == (n,)
                and getattr(until, "shape", None) == (n,) and getattr(names, "shape", None) == (n,)):
            return None
        if whole and (outcome.dtype != np.int8 or reasons.dtype != object or names.dtype != object
                      or until.dtype != np.int64):
            return None
        if n <= 64 and outcome.dtype == np.int8:  # a request's few verdicts: one pass over plain values
            # (the same checks as the arrays' below; test_judge_run_checks_few_as_many)
            if not _few_verdicts_hold(outcome.tolist(), until.tolist(), reasons.tolist(), names.tolist(), whole):
                return None
            return outcome, reasons, until, names
        if np.count_nonzero(outcome.view(np.uint8) > BLOCK) or \
                np.count_nonzero((outcome == DEFER) & (until == NULL_TIME)):
            return None
        return outcome, reasons, until, names

    def _judge(self, pol: CompliancePolicy, name: str, plugin: str, sub: ActionBatch, errors: list[str],
               scope: frozenset | None = None):
        """The policy's verdicts, None when it kept every action; a policy that fails or
        returns malformed verdicts blocks with PLUGIN_ERROR every action it judges (those of
        ``scope``, its declared ``actions``; all when it declares none)."""
        hook = "postloan_compliance_policies"
        try:
            v = pol.check(sub)
            problem = _verdict_problem(v, sub.n, pol)
        except PostloanError as e:                   # ours: names a column, never personal data
            problem = f"failed: {e}"
        except Exception as e:
            problem = f"raised {type(e).__name__}{_where(e)}"
        if problem is None:
            return v
        if problem is _KEPT_ALL:
            return None
        judged = np.ones(sub.n, bool) if scope is None else np.isin(sub.action, list(scope))
        message = (f"compliance policy {name!r} (plugin {plugin!r}, hook {hook}) {problem}: the "
                   f"{np.count_nonzero(judged)} action(s) it judges are blocked with {PLUGIN_ERROR}")
        log.error(message)
        errors.append(message)
        return Verdicts(sub.n).block(judged, PLUGIN_ERROR)


def _combine(state: list, verdicts: tuple, v_outcome: np.ndarray, v_reason, v_next: np.ndarray, name) -> None:
    """Combine one policy's (or one engine run's) verdicts into the set's so far, in place:
    a strictly stricter outcome replaces (reason, time, policy); two deferrals keep the later
    time. ``v_reason`` is an object array of reason codes or a callable giving it (built only
    when needed); ``name`` a policy name or an object array of them."""
    outcome, reason, next_allowed, policy = verdicts
    if not state[0]:                               # the first verdicts: every judged action is stricter
        stricter = v_outcome != KEEP
    else:
        stricter = v_outcome > outcome
        if state[1]:                               # two deferrals: the later time
            both = (v_outcome == DEFER) & (outcome == DEFER)
            if np.count_nonzero(both):
                next_allowed[both] = np.maximum(next_allowed[both], v_next[both])
    if not np.count_nonzero(stricter):
        return
    state[0] = True
    outcome[stricter] = v_outcome[stricter]
    reason[stricter] = (v_reason() if callable(v_reason) else v_reason)[stricter]
    policy[stricter] = name if isinstance(name, str) else name[stricter]
    next_allowed[stricter] = v_next[stricter]
    state[1] = state[1] or np.count_nonzero(outcome == DEFER) > 0


# --------------------------------------------------------------------------------------------
# Checking plugin output
# --------------------------------------------------------------------------------------------

def _scope(policy: CompliancePolicy, name: str, plugin: str) -> frozenset | None:
    """The action codes a policy judges (its ``actions``), None for all."""
    names = getattr(policy, "actions", ()) or ()
    if isinstance(names, str) or not all(isinstance(a, str) for a in names):
        raise PluginError(f"compliance policy {name!r} (plugin {plugin!r}): actions must be a tuple of action "
                          f"names, got {names!r}", plugin=plugin, hook="postloan_compliance_policies")
    unknown = [a for a in names if a not in ACTION]
    if unknown:
        raise PluginError(f"compliance policy {name!r} (plugin {plugin!r}): actions holds {unknown[0]!r}, not one "
                          f"of {', '.join(ACTION)}", plugin=plugin, hook="postloan_compliance_policies")
    return frozenset(ACTION[a] for a in names) if names else None


def _first_value(values):
    v = values[0]
    return None if v is None or (isinstance(v, float) and v != v) else (v.item() if hasattr(v, "item") else v)


def _checked_floats(values, n: int, who, hook: str) -> np.ndarray:
    """``values`` as ``n`` float64s; ``who`` gives (who returned them, plugin) when they are not."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        name, plugin = who()
        raise PluginError(f"{name} returned {type(values).__name__} values that are not numbers", plugin=plugin,
                          hook=hook) from None
    if arr.shape != (n,):
        name, plugin = who()
        raise PluginError(f"{name} returned {arr.shape[0] if arr.ndim else 'a scalar'} values for {n} rows",
                          plugin=plugin, hook=hook)
    return arr


def _checked_plan(plan: Any, n: int, who, hook: str) -> dict[str, Any]:
    """The plan's columns checked and in their types; ``who`` is (who made it, plugin), or a
    function giving them (worked out only when the plan is wrong). The scripts are an Arrow
    string array, except for one account (``n == 1``) given a list of str / None: that list
    as it is (a request's scripts go on as Python strings: :meth:`ActionBatch.listed_script`,
    the response's encoding; :attr:`ActionBatch.script` and ``PipelineResult.actions`` make
    the Arrow array when read). A request's plan already in its types (the built-in
    strategy's) is accepted by :func:`_typed_plan`; anything else, right or wrong, is checked
    and converted here (the one place a plan is rejected)."""
    typed = _typed_plan(plan, n)
    if typed is not None:
        return typed
    return _checked_plan_columns(plan, n, who, hook)


#: the columns of a plan in its types, as _checked_plan gives them
_PLAN_COLUMNS = frozenset(("row", "action", "priority", "earliest_at", "script_id", "language", "script"))
_I8 = np.dtype(np.int8)
_F64 = np.dtype(np.float64)
_OBJECT = np.dtype(object)


def _typed_plan(plan: Any, n: int) -> dict[str, Any] | None:
    """One account's plan (``n == 1``, at most 64 actions) whose columns are all already in
    the types :func:`_checked_plan_columns` gives — 1-D int64 rows, int8 action codes, float64
    priorities, int64 µs, object script ids and languages, a list of str / None scripts — and
    whose values it would accept (rows within the batch, codes of :data:`ACTION`, languages of
    the contract): its columns as they are, with nothing converted; None for anything else
    (then :func:`_checked_plan_columns` converts it or names what is wrong). Pinned to it by
    ``test_a_typed_plan_is_checked_as_the_columns_check_it``."""
    if n != 1 or type(plan) is not dict or len(plan) != 7:
        return None
    row, action, priority, earliest = plan.get("row"), plan.get("action"), plan.get("priority"), plan.get("earliest_at")
    script_id, language, script = plan.get("script_id"), plan.get("language"), plan.get("script")
    # seven keys, each of these types: the keys are _PLAN_COLUMNS (an absent one gives None)
    if not (type(row) is np.ndarray and type(action) is np.ndarray and type(priority) is np.ndarray
            and type(earliest) is np.ndarray and type(script_id) is np.ndarray and type(language) is np.ndarray
            and type(script) is list):
        return None
    m = len(script)
    # equality, not identity: the arrays a Numba function returns carry dtypes equal to
    # NumPy's singletons but not them (the built-in strategy's rows, codes and times)
    if m > 64 or not (row.dtype == _I64 and action.dtype == _I8 and priority.dtype == _F64
                      and earliest.dtype == _I64 and script_id.dtype == _OBJECT and language.dtype == _OBJECT):
        return None
    shape = (m,)
    if not (row.shape == shape and action.shape == shape and priority.shape == shape and earliest.shape == shape
            and script_id.shape == shape and language.shape == shape):
        return None
    if m:
        if any(row.tolist()) or min(codes := action.tolist()) < 0 or max(codes) >= len(ACTION):
            return None
        for x in language.tolist():
            if x is not None and x not in _LANGUAGES:
                return None
        for x in script:
            if x is not None and type(x) is not str:
                return None
    return {"row": row, "action": action, "priority": priority, "earliest_at": earliest, "script": script,
            "script_id": script_id, "language": language}        # _checked_plan_columns' order


def _checked_plan_columns(plan: Any, n: int, who, hook: str) -> dict[str, Any]:
    """:func:`_checked_plan` of any plan: each column checked and converted to its type."""
    def bad(message: str) -> PluginError:
        name, plugin = who() if callable(who) else who
        return PluginError(f"{name}: {message}", plugin=plugin, hook=hook)

    if not isinstance(plan, dict) and not isinstance(plan, Mapping):
        raise bad(f"plan() must return a mapping of columns, got {type(plan).__name__}")
    missing = [k for k in ("row", "action", "priority", "earliest_at") if k not in plan]
    if missing:
        raise bad(f"the plan lacks column {missing[0]!r}")
    row = plan["row"]
    if type(row) is not np.ndarray or row.dtype is not _I64:       # already int64: nothing to convert
        row = np.asarray(row)
        if row.ndim != 1 or (row.size and row.dtype.kind not in "iu"):
            raise bad(f"column 'row' must be integers, got {row.dtype}")
        row = row.astype(np.int64, copy=False)
    elif row.ndim != 1:
        raise bad(f"column 'row' must be integers, got {row.dtype}")
    m = row.shape[0]
    out: dict[str, Any] = {"row": row}
    low, high = _min_max(row)
    if m and (low < 0 or high >= n):
        raise bad(f"column 'row' holds {high if high >= n else low}, outside 0…{n - 1}")
    for key, value in plan.items():
        length = len(value) if hasattr(value, "__len__") else -1
        if length != m:
            raise bad(f"column {key!r} has {length} values, column 'row' {m}")
    action = np.asarray(plan["action"])
    if action.dtype.kind in "iu":
        low, high = _min_max(action)
        if m and (low < 0 or high >= len(ACTION)):
            raise bad(f"column 'action' holds code {high if high >= len(ACTION) else low}, not an action "
                      f"({', '.join(ACTION)})")
        out["action"] = action.astype(np.int8, copy=False)
    elif action.dtype.kind in "UO" or action.dtype.kind == "T":
        names, inverse = np.unique(action.astype(object).astype(str), return_inverse=True) if m else ([], np.zeros(0, int))
        names = [str(x) for x in names]
        unknown = [x for x in names if x not in ACTION]
        if unknown:
            raise bad(f"column 'action' holds {unknown[0]!r}, not one of {', '.join(ACTION)}")
        out["action"] = np.array([ACTION[x] for x in names], np.int8)[inverse] if m else np.zeros(0, np.int8)
    else:
        raise bad(f"column 'action' must be action names or codes, got {action.dtype}")
    try:
        out["priority"] = np.asarray(plan["priority"], np.float64)
    except (TypeError, ValueError):
        raise bad("column 'priority' must be numbers") from None
    earliest = plan["earliest_at"]
    if type(earliest) is not np.ndarray:
        earliest = np.asarray(earliest)
    if earliest.dtype.kind == "M":
        earliest = earliest.astype("datetime64[us]").view(np.int64)
    if m and earliest.dtype.kind not in "iu":
        raise bad(f"column 'earliest_at' must be int64 microseconds or datetime64, got {earliest.dtype}")
    out["earliest_at"] = earliest.astype(np.int64, copy=False)
    script = plan.get("script")
    if script is None:
        script = pa.nulls(m, pa.string())
    elif n == 1 and type(script) is list and all(type(x) is str or x is None for x in script):
        pass                                       # one account's scripts: kept as Python strings (no Arrow)
    elif not isinstance(script, pa.Array):
        try:
            script = pa.array(list(script), pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            raise bad("column 'script' must be text") from None
    elif not pa.types.is_string(script.type):
        raise bad(f"column 'script' must be text, got {script.type}")
    out["script"] = script
    none = None if "script_id" in plan and "language" in plan else np.full(m, None, dtype=object)
    out["script_id"] = np.asarray(plan["script_id"] if "script_id" in plan else none, dtype=object)
    language = np.asarray(plan["language"] if "language" in plan else none, dtype=object)
    if m:
        bad_language = [x for x in set(language.tolist()) if x is not None and x not in _LANGUAGES]
        if bad_language:
            raise bad(f"column 'language' holds {bad_language[0]!r}, not one of {', '.join(ENUMS['language'])}")
    out["language"] = language
    return out


_I64 = np.dtype(np.int64)
_LANGUAGES = frozenset(ENUMS["language"])


def _min_max(values: np.ndarray) -> tuple[int, int]:
    """The smallest and largest of integers (0, 0 when empty); Python's for a few."""
    if values.shape[0] <= 64:
        listed = values.tolist()
        return (min(listed), max(listed)) if listed else (0, 0)
    return int(values.min()), int(values.max())


#: what _verdict_problem gives for verdicts that keep every action
_KEPT_ALL = "kept every action"


def _verdict_problem(v: Any, n: int, pol: CompliancePolicy) -> str | None:
    """What is wrong with a policy's verdicts (None: nothing; :data:`_KEPT_ALL`: they keep
    every action, so there is nothing to check or combine)."""
    if not isinstance(v, Verdicts):
        return f"returned a {type(v).__name__}, expected kernel.hookspecs.Verdicts"
    if v.n != n or v.outcome.shape != (n,) or v.next_allowed_us.shape != (n,) or v.reason.shape != (n,):
        return f"returned verdicts for {v.outcome.shape[0] if v.outcome.ndim else '?'} actions, expected {n}"
    # np.count_nonzero: NumPy's cheapest test of a mask (a request's few actions pay per call)
    outcome = v.outcome
    if not np.count_nonzero(outcome):
        return _KEPT_ALL                              # nothing else to check
    if np.count_nonzero(outcome.view(np.uint8) > BLOCK):   # as unsigned bytes, a negative code is above BLOCK too
        return "returned an outcome code outside KEEP/DEFER/BLOCK"
    if np.count_nonzero(v.next_allowed_us[outcome == DEFER] == NULL_TIME):
        return "deferred an action without a next allowed time"
    if np.count_nonzero((outcome != KEEP) & (v.reason < 0)):
        return "deferred or blocked an action without a reason code"
    known = set(getattr(pol, "reason_codes", {}) or {})
    for code in v.codes:
        parts = code.split("+")
        if any(p not in known for p in parts):
            return f"gave reason code {code!r}, which is not in its reason_codes"
    return None


def _take(values, rows: np.ndarray):
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values.take(pa.array(rows))
    return np.asarray(values)[rows]


def _with_columns(decisions, extra: Mapping[str, np.ndarray], book):
    """The kernel's decisions plus the pipeline's own decision columns (and the account id)."""
    if isinstance(decisions, Record):
        out = Record(decisions)
        out.setdefault("account_id", book.get("account_id"))
        out.update(extra)
        return out
    if isinstance(decisions, Mapping):
        out = dict(decisions)
        if "account_id" not in out:
            out["account_id"] = np.asarray(book["account_id"]) if isinstance(book, Mapping) else book.column("account_id")
        out.update(extra)
        return out
    table = decisions if isinstance(decisions, pa.Table) else pa.Table.from_batches([decisions])
    if "account_id" not in table.schema.names:
        ids = book["account_id"] if isinstance(book, Mapping) else book.column("account_id")
        table = table.add_column(0, "account_id", to_arrow(ids))
    for name, values in extra.items():
        table = table.append_column(name, to_arrow(values))
    return table
