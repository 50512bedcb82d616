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
answer leaves"), or with ``[audit] sync = "interval"`` written before and synced within
``interval_ms`` (see :class:`AuditLog`); it never holds personal data
(:func:`kernel.schema.pii_columns`, scripts).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import struct
import threading
import time
import weakref
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import orjson
import pyarrow as pa

from .errors import PostloanError
from .hookspecs import (ACTION, BLOCK, DEFER, NULL_TIME, ActionBatch, Batch, CompliancePolicy, DisposalChannel,
                        Record, Verdicts)
from .plugins import PluginError, PluginManager, _where, load_config
from .schema import ENUMS, arrow_schema, pii_columns

__all__ = ["Pipeline", "PipelineResult", "AuditLog", "AuditRecord", "read_audit",
           "select_disposal_channels", "vehicle_age_years", "PLUGIN_ERROR", "NO_POLICY_SET"]

log = logging.getLogger("postloan.pipeline")

PLUGIN_ERROR = "PLUGIN_ERROR"
#: the decision columns the valuation stage adds
_VALUATION_COLUMNS = ("valuation.price", "valuation.method", "disposal_channel.channel",
                      "disposal_channel.expected_net", "disposal_channel.expected_days")
_TEXT_VALUATION = {"valuation.method", "disposal_channel.channel"}
_NO_VALUATION = dict.fromkeys(_VALUATION_COLUMNS)
NO_POLICY_SET = "NO_POLICY_SET"
ENV_AUDIT = "POSTLOAN_AUDIT_PATH"
_APPLY_KEYS = {"country", "region", "product", "set"}
_ACTIONS_SCHEMA = arrow_schema("actions")
#: member names by code, with "" for code −1 (null or unknown)
_GRADE_NAMES = np.array(ENUMS["condition_grade"] + ("",), dtype=object)
_COUNTRY_NAMES = np.array(ENUMS["country"] + ("",), dtype=object)


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


def select_disposal_channels(price: np.ndarray, age_years: np.ndarray, mileage_km: np.ndarray,
                             condition: np.ndarray, country: np.ndarray,
                             channels: list[DisposalChannel], holding_cost_per_day: float = 60.0):
    """For each car, the channel with the highest expected net proceeds among those that take it.

    ``condition`` holds grade letters (A–E) and ``country`` country codes, as NumPy arrays of
    str. Returns ``(index, net, days)``: the channel's index in ``channels`` (-1: none takes
    the car or the price is unknown), its expected net proceeds and expected days to sale.
    Net = price × f × s − (fee_fixed + fee_rate × price × f) − transport − holding × days.
    """
    price = np.asarray(price, np.float64)
    n, m = price.shape[0], len(channels)
    if m == 0 or n == 0:
        return np.full(n, -1, np.int64), np.full(n, np.nan), np.full(n, np.nan)
    net = np.full((n, m), -np.inf)
    for j, c in enumerate(channels):
        holding = holding_cost_per_day if c.holding_cost_per_day is None else c.holding_cost_per_day
        realized = price * c.price_factor
        value = realized * c.success_rate - (c.fee_fixed + c.fee_rate * realized) - c.transport_cost \
            - holding * c.expected_days
        ok = ~np.isnan(price)
        if c.max_age_years is not None:
            ok &= age_years <= c.max_age_years
        if c.max_mileage_km is not None:
            ok &= mileage_km <= c.max_mileage_km
        if c.conditions:
            ok &= np.isin(condition, list(c.conditions))
        if c.countries:
            ok &= np.isin(country, list(c.countries))
        net[:, j] = np.where(ok, value, -np.inf)
    best = np.argmax(net, axis=1)                      # ties: the first channel listed
    best_net = net[np.arange(n), best]
    found = np.isfinite(best_net)
    days = np.array([c.expected_days for c in channels])[best]
    return np.where(found, best, -1), np.where(found, best_net, np.nan), np.where(found, days, np.nan)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------

class PipelineResult:
    """Decisions (one row per account) and actions (one row per planned action).

    ``decisions`` and ``actions`` are Arrow tables built on first access; ``decision_columns``
    and ``action_columns`` give the same data as NumPy arrays without building them (the
    single-account path). ``errors`` lists plugin failures that blocked actions."""

    def __init__(self, decisions, action_columns: dict[str, np.ndarray], errors: list[str]):
        self._decisions = decisions
        self.action_columns = action_columns
        self.errors = errors
        self._actions: pa.Table | None = None

    @property
    def decision_record(self) -> dict:
        """One account's decisions as Python scalars (the ``run_record`` path)."""
        d = self._decisions
        if isinstance(d, Record):
            return dict(d)
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
            self._decisions = pa.table({k: _to_arrow(v) for k, v in self._decisions.items()})
        return self._decisions

    @property
    def actions(self) -> pa.Table:
        if self._actions is None:
            self._actions = _actions_table(self.action_columns)
        return self._actions


def _no_actions() -> dict[str, Any]:
    """The action columns of a result whose actions were not asked for."""
    text = np.zeros(0, dtype=object)
    return {"action": np.zeros(0, np.int8), "priority": np.zeros(0), "earliest_at": np.zeros(0, np.int64),
            "script": pa.array([], pa.string()), "script_id": text, "language": text, "outcome": np.zeros(0, np.int8),
            "reason_code": text, "next_allowed_at": np.zeros(0, np.int64), "policy": text, "account_id": text}


def _one_column(value) -> np.ndarray:
    out = np.empty(1, dtype=object)
    out[0] = value
    return out


def _to_arrow(values) -> pa.Array:
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    if isinstance(values, np.ma.MaskedArray):        # the kernel's NumPy path masks null ints and bools
        return pa.array(values.data, mask=np.ma.getmaskarray(values))
    arr = np.asarray(values)
    if arr.dtype.kind == "f":
        return pa.array(arr, mask=np.isnan(arr))
    if arr.dtype == object:
        return pa.array(arr, from_pandas=True)
    return pa.array(arr)


_TEXT_ACTION_COLUMNS = {"account_id", "script_id", "language", "script", "reason_code", "policy"}


def _enum_array(codes: np.ndarray, enum: str) -> pa.DictionaryArray:
    codes = np.asarray(codes)
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int8), mask=codes < 0),
                                          pa.array(ENUMS[enum], pa.string()))


def _time_array(us: np.ndarray) -> pa.Array:
    us = np.asarray(us, np.int64)
    return pa.array(us, pa.timestamp("us", tz="UTC"), mask=us == NULL_TIME)


def _actions_table(c: Mapping[str, Any], *, with_script: bool = True) -> pa.Table:
    c = {k: (np.asarray(v, dtype=object if k in _TEXT_ACTION_COLUMNS else None) if isinstance(v, list) else v)
         for k, v in c.items()}
    language = np.asarray(c["language"], dtype=object)
    language_codes = np.array([-1 if v is None else ENUMS["language"].index(v) for v in language.tolist()],
                              np.int8) if language.size else np.zeros(0, np.int8)
    arrays = {
        "account_id": _to_arrow(c["account_id"]).cast(pa.string()),
        "action": _enum_array(c["action"], "action_channel"),
        "priority": pa.array(np.asarray(c["priority"], np.float64)),
        "earliest_at": _time_array(c["earliest_at"]),
        "script_id": pa.array(np.asarray(c["script_id"], dtype=object), pa.string()),
        "language": _enum_array(language_codes, "language"),
        "script": c["script"] if isinstance(c["script"], pa.Array) else pa.array(c["script"], pa.string()),
        "outcome": _enum_array(c["outcome"], "compliance_outcome"),
        "reason_code": pa.array(np.asarray(c["reason_code"], dtype=object), pa.string()),
        "next_allowed_at": _time_array(c["next_allowed_at"]),
        "policy": pa.array(np.asarray(c["policy"], dtype=object), pa.string()),
    }
    fields = [f for f in _ACTIONS_SCHEMA if with_script or f.name != "script"]
    return pa.Table.from_arrays([arrays[f.name] for f in fields], schema=pa.schema(fields, _ACTIONS_SCHEMA.metadata))


# --------------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------------

@dataclass
class _PolicySet:
    name: str
    #: (policy name, policy, plugin, the action codes it judges or None for all)
    policies: list[tuple[str, CompliancePolicy, str, frozenset | None]]


class Pipeline:
    """Runs the stages after the kernel's decision on whole batches.

    ``plugins`` is a :class:`~kernel.plugins.PluginManager` (default: one built from
    ``config``); ``config`` a TOML path or mapping (default ``$POSTLOAN_CONFIG``);
    ``audit_path`` the audit log (default ``[audit] path``, ``$POSTLOAN_AUDIT_PATH``, else
    ``~/.local/state/postloan/audit.log``); ``audit_sync`` and ``audit_interval_ms`` how it
    makes records durable (default ``[audit] sync`` and ``interval_ms``; see
    :class:`AuditLog`). Names in the configuration are resolved here, so a strategy, policy or
    method that no loaded plugin provides is an error at construction.
    """

    def __init__(self, kernel, plugins: PluginManager | None = None, config=None, audit_path=None,
                 audit_sync: str | None = None, audit_interval_ms: float | None = None):
        self.kernel = kernel
        if plugins is None:
            plugins = PluginManager(config)
        self.plugins = plugins
        self.config = load_config(config) if config is not None else plugins.config
        pipe = self.config.get("pipeline", {})
        self.strategy_name = pipe.get("strategy", "tiered")
        self.strategy = self._component("postloan_collection_strategies", self.strategy_name, "[pipeline] strategy")
        self.valuation_name = pipe.get("valuation", "rv_model")
        self.valuation = self._component("postloan_valuation_methods", self.valuation_name, "[pipeline] valuation")
        self.channels = list(plugins.disposal_channels().values())
        self.holding_cost = float(self.config.get("disposal", {}).get("holding_cost_per_day", 60.0))
        self.sets, self.apply = self._policy_sets()
        self._meta_fixed: dict | None = None
        audit = self.config.get("audit", {})
        path = audit_path or audit.get("path") or os.environ.get(ENV_AUDIT) \
            or Path.home() / ".local" / "state" / "postloan" / "audit.log"
        self.audit = AuditLog(path, sync=audit_sync or audit.get("sync", "always"),
                              interval_ms=audit_interval_ms or audit.get("interval_ms", DEFAULT_SYNC_INTERVAL_MS))

    # -- configuration ---------------------------------------------------------------------
    def _component(self, hook: str, name: str, where: str):
        found = self.plugins.components(hook)
        if name not in found:
            skipped = f"; plugins not loaded: {', '.join(f'{n} ({why})' for n, why in self.plugins.skipped.items())}" \
                if self.plugins.skipped else ""
            raise PostloanError(f"{where} = {name!r}: no loaded plugin provides it "
                                f"(available: {', '.join(sorted(found)) or 'none'}{skipped})")
        return found[name][0]

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

    # -- running ---------------------------------------------------------------------------
    def run(self, table: pa.Table | pa.RecordBatch, as_of: dt.date, now: dt.datetime, *,
            actions: bool = True) -> PipelineResult:
        """Decide ``table`` (the book's columns) and plan, check and audit its actions.
        ``actions=False``: the decisions only (valuation included), audited without actions."""
        decisions = self.kernel.decide(table, as_of)
        return self.act(table, decisions, as_of, now, actions=actions)

    def run_columns(self, columns: Mapping[str, np.ndarray], as_of: dt.date, now: dt.datetime, *,
                    actions: bool = True) -> PipelineResult:
        """The same for a few accounts given as NumPy columns (strings and enums as str
        arrays, dates as ``datetime64[D]``, instants as ``datetime64[us]``)."""
        decisions = self.kernel.decide_columns(columns, as_of)
        return self.act(columns, decisions, as_of, now, actions=actions)

    def run_record(self, record: Mapping[str, Any], as_of: dt.date, now: dt.datetime, *,
                   actions: bool = True) -> PipelineResult:
        """The same for one account given as Python scalars (``Kernel.decide_record``'s
        form): no arrays are built on the way in. ``result.decision_record`` gives the
        decisions as scalars; ``decisions`` / ``decision_columns`` convert on access."""
        decisions = self.kernel.decide_record(record, as_of)
        return self.act(Record(record), Record(decisions), as_of, now, actions=actions)

    def act(self, book, decisions, as_of: dt.date, now: dt.datetime, *, actions: bool = True) -> PipelineResult:
        """The stages after the kernel, then the audit log: ``decisions`` are the kernel's
        columns for ``book``. Returns once the audit record is durable (or, with ``[audit]
        sync = "interval"``, written)."""
        result = self.stage(book, decisions, as_of, now, actions=actions)
        self.audit.append(*self.audit_record(result, as_of, now))
        return result

    def audit_record(self, result: PipelineResult, as_of: dt.date, now: dt.datetime) -> tuple:
        """(meta, decisions, actions): what :meth:`act` appends to the audit log for ``result``
        — no personal data, no scripts."""
        actions = {k: v for k, v in result.action_columns.items() if k != "script"}
        decisions = _without_pii(result._decisions)
        return self._meta(as_of, now, _rows(decisions), actions, result.errors), decisions, actions

    def stage(self, book, decisions, as_of: dt.date, now: dt.datetime, *, actions: bool = True) -> PipelineResult:
        """Valuation, collection strategy and compliance, without the audit log (benchmarks,
        what-if runs); with ``actions=False`` the valuation only (no action is planned). Use
        :meth:`run` or :meth:`act` for decisions that are acted on."""
        n = _rows(book)
        if _rows(decisions) != n:
            raise PostloanError(f"the kernel returned {_rows(decisions)} decision rows for {n} accounts")
        batch = Batch(n, as_of, now, [decisions, book], self.config)
        extra = self._valuation(batch)
        if isinstance(book, Record):
            extra = Record({k: _first_value(v) for k, v in extra.items()} if extra else _NO_VALUATION)
        elif extra is None:
            extra = {name: np.full(n, None, dtype=object) if name in _TEXT_VALUATION else np.full(n, np.nan)
                     for name in _VALUATION_COLUMNS}
        batch.add(extra)
        if not actions:
            return PipelineResult(_with_columns(decisions, extra, book), _no_actions(), [])
        plan = self._plan(batch)
        errors: list[str] = []
        verdict = self._comply(batch, plan, errors)
        actions = {**plan, **verdict}
        actions["account_id"] = _take(batch.raw("account_id"), plan["row"])
        del actions["row"]
        return PipelineResult(_with_columns(decisions, extra, book), actions, errors)

    def _meta(self, as_of, now, n, actions, errors) -> dict:
        if self._meta_fixed is None:             # what every record of this pipeline shares
            self._meta_fixed = {
                "bundle_hash": getattr(self.kernel, "bundle_hash", None), "strategy": self.strategy_name,
                "valuation": self.valuation_name,
                "policy_sets": {s.name: [p[0] for p in s.policies] for s in self.sets},
                "plugins": {name: info.version or info.origin for name, info in self.plugins.infos.items()},
            }
        return {"as_of": as_of.isoformat(), "now": now.astimezone(dt.timezone.utc).isoformat(), "rows": n,
                "actions": len(actions["action"]), **self._meta_fixed, "errors": errors}

    # -- stages ----------------------------------------------------------------------------
    def _valuation(self, batch: Batch) -> dict[str, np.ndarray] | None:
        """The valuation columns of the accounts heading for repossession or disposal; None
        when there are none."""
        n = batch.n
        need = None
        for name in ("disposal.repossess", "disposal.dispose"):
            if batch.has(name):
                need = batch.bool(name) if need is None else need | batch.bool(name)
        rows = None if need is None else need.nonzero()[0]
        if rows is None or rows.size == 0:
            return None
        price = np.full(n, np.nan)
        channel = np.full(n, None, dtype=object)
        net = np.full(n, np.nan)
        days = np.full(n, np.nan)
        method = np.full(n, None, dtype=object)
        hook, plugin = "postloan_valuation_methods", self.plugins.provider("postloan_valuation_methods", self.valuation_name)
        try:
            values = self.valuation.value(batch, rows)
        except PostloanError as e:
            raise PluginError(f"valuation method {self.valuation_name!r} (plugin {plugin!r}, hook {hook}): {e}",
                              plugin=plugin, hook=hook) from e
        except Exception as e:
            raise PluginError(f"valuation method {self.valuation_name!r} (plugin {plugin!r}, hook {hook}) raised "
                              f"{type(e).__name__}{_where(e)}", plugin=plugin, hook=hook) from e
        values = _checked_floats(values, rows.size, f"valuation method {self.valuation_name!r} (plugin {plugin!r}, "
                                 f"hook {hook})", plugin, hook)
        price[rows] = values
        method[rows] = self.valuation_name
        age = vehicle_age_years(batch.int("model_year")[rows], np.full(rows.size, (batch.as_of - dt.date(1970, 1, 1)).days))
        grades = _GRADE_NAMES[batch.enum("condition_grade")[rows]]
        countries = _COUNTRY_NAMES[batch.enum("country")[rows]]
        best, best_net, best_days = select_disposal_channels(
            values, age, batch.float("mileage_km")[rows], grades, countries, self.channels, self.holding_cost)
        names = np.array([c.name for c in self.channels] + [None], dtype=object)
        channel[rows] = names[best]
        net[rows], days[rows] = best_net, best_days
        return dict(zip(_VALUATION_COLUMNS, (price, method, channel, net, days)))

    def _plan(self, batch: Batch) -> dict[str, Any]:
        hook = "postloan_collection_strategies"
        plugin = self.plugins.provider(hook, self.strategy_name)
        who = f"collection strategy {self.strategy_name!r} (plugin {plugin!r}, hook {hook})"
        try:
            plan = self.strategy.plan(batch)
        except PostloanError as e:
            raise PluginError(f"{who}: {e}", plugin=plugin, hook=hook) from e
        except Exception as e:
            raise PluginError(f"{who} raised {type(e).__name__}{_where(e)}", plugin=plugin, hook=hook) from e
        return _checked_plan(plan, batch.n, who, plugin, hook)

    def _route(self, batch: Batch) -> np.ndarray:
        """The policy set of each account (-1: none applies)."""
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
        outcome = np.zeros(n, np.int8)
        reason = np.full(n, None, dtype=object)
        policy = np.full(n, None, dtype=object)
        next_allowed = np.full(n, NULL_TIME, np.int64)
        result = {"outcome": outcome, "reason_code": reason, "next_allowed_at": next_allowed, "policy": policy}
        if n == 0:
            return result
        set_of = self._route(batch)[rows]
        unrouted = set_of < 0
        every = None
        if unrouted.any():
            outcome[unrouted], reason[unrouted], policy[unrouted] = BLOCK, NO_POLICY_SET, "compliance.apply"
        elif len(self.sets) == 1 or (set_of == set_of[0]).all():
            every = int(set_of[0])                 # one set judges every action (a request's account)
        for s, policy_set in enumerate(self.sets):
            if every is None:
                idx = (set_of == s).nonzero()[0]
                if idx.size == 0:
                    continue
                script = plan["script"].take(pa.array(idx))
                sub = ActionBatch(batch, rows[idx], plan["action"][idx], plan["earliest_at"][idx], script=script)
                judged = self._judge_all(policy_set, sub, errors)
                outcome[idx], reason[idx], next_allowed[idx], policy[idx] = judged
            elif s == every:
                sub = ActionBatch(batch, rows, plan["action"], plan["earliest_at"], script=plan["script"])
                result.update(zip(("outcome", "reason_code", "next_allowed_at", "policy"),
                                  self._judge_all(policy_set, sub, errors)))
        return result

    def _judge_all(self, policy_set: _PolicySet, actions: ActionBatch, errors: list[str]) -> tuple:
        """Every policy of a set on ``actions``, combined: (outcome, reason, next allowed, policy)."""
        n = actions.n
        outcome = np.zeros(n, np.int8)
        reason = np.full(n, None, dtype=object)
        policy = np.full(n, None, dtype=object)
        next_allowed = np.full(n, NULL_TIME, np.int64)
        planned = np.zeros(len(ACTION), bool)
        planned[actions.action] = True
        planned = frozenset(planned.nonzero()[0].tolist())
        deferred = False                           # whether any action is DEFERred so far
        for name, pol, plugin, scope in policy_set.policies:
            if scope is not None and scope.isdisjoint(planned):
                continue                           # none of the actions it judges
            v = self._judge(pol, name, plugin, actions, errors)
            if v is None:
                continue                           # kept everything: nothing to combine
            stricter = v.outcome > outcome
            if deferred:                           # two deferrals: the later time
                both = (v.outcome == DEFER) & (outcome == DEFER)
                if both.any():
                    next_allowed[both] = np.maximum(next_allowed[both], v.next_allowed_us[both])
            if stricter.any():
                outcome[stricter] = v.outcome[stricter]
                reason[stricter] = v.reason_codes()[stricter]
                policy[stricter] = name
                next_allowed[stricter] = v.next_allowed_us[stricter]
                deferred = deferred or bool((outcome == DEFER).any())
        return outcome, reason, next_allowed, policy

    def _judge(self, pol: CompliancePolicy, name: str, plugin: str, sub: ActionBatch, errors: list[str]):
        """The policy's verdicts, None when it kept every action; a policy that fails or
        returns malformed verdicts blocks every action with PLUGIN_ERROR."""
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
        message = (f"compliance policy {name!r} (plugin {plugin!r}, hook {hook}) {problem}: its {sub.n} action(s) "
                   f"are blocked with {PLUGIN_ERROR}")
        log.error(message)
        errors.append(message)
        return Verdicts(sub.n).block(np.ones(sub.n, bool), PLUGIN_ERROR)


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


def _rows(data) -> int:
    if isinstance(data, Record):
        return 1
    if isinstance(data, Mapping):
        for v in data.values():
            return len(v)
        return 0
    return data.num_rows


def _checked_floats(values, n: int, who: str, plugin: str, hook: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise PluginError(f"{who} returned {type(values).__name__} values that are not numbers", plugin=plugin, hook=hook) from None
    if arr.shape != (n,):
        raise PluginError(f"{who} returned {arr.shape[0] if arr.ndim else 'a scalar'} values for {n} rows",
                          plugin=plugin, hook=hook)
    return arr


def _checked_plan(plan: Any, n: int, who: str, plugin: str, hook: str) -> dict[str, Any]:
    def bad(message: str) -> PluginError:
        return PluginError(f"{who}: {message}", plugin=plugin, hook=hook)

    if not isinstance(plan, dict) and not isinstance(plan, Mapping):
        raise bad(f"plan() must return a mapping of columns, got {type(plan).__name__}")
    missing = [k for k in ("row", "action", "priority", "earliest_at") if k not in plan]
    if missing:
        raise bad(f"the plan lacks column {missing[0]!r}")
    row = np.asarray(plan["row"])
    if row.ndim != 1 or (row.size and row.dtype.kind not in "iu"):
        raise bad(f"column 'row' must be integers, got {row.dtype}")
    m = row.shape[0]
    out: dict[str, Any] = {"row": row.astype(np.int64, copy=False)}
    low, high = _min_max(row)
    if m and (low < 0 or high >= n):
        raise bad(f"column 'row' holds {high if high >= n else low}, outside 0…{n - 1}")
    for key in plan:
        value = plan[key]
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
    earliest = np.asarray(plan["earliest_at"])
    if earliest.dtype.kind == "M":
        earliest = earliest.astype("datetime64[us]").view(np.int64)
    if m and earliest.dtype.kind not in "iu":
        raise bad(f"column 'earliest_at' must be int64 microseconds or datetime64, got {earliest.dtype}")
    out["earliest_at"] = earliest.astype(np.int64, copy=False)
    script = plan.get("script")
    if script is None:
        script = pa.nulls(m, pa.string())
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
        used = set(language.tolist()) - {None}
        bad_language = [x for x in used if x not in ENUMS["language"]]
        if bad_language:
            raise bad(f"column 'language' holds {bad_language[0]!r}, not one of {', '.join(ENUMS['language'])}")
    out["language"] = language
    return out


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
    if not v.outcome.any():
        return _KEPT_ALL                              # nothing else to check
    if v.outcome.view(np.uint8).max() > BLOCK:         # as unsigned bytes, a negative code is above BLOCK too
        return "returned an outcome code outside KEEP/DEFER/BLOCK"
    deferred = v.outcome == DEFER
    if (v.next_allowed_us[deferred] == NULL_TIME).any():
        return "deferred an action without a next allowed time"
    if ((v.outcome != 0) & (v.reason < 0)).any():
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
        table = table.add_column(0, "account_id", _to_arrow(ids))
    for name, values in extra.items():
        table = table.append_column(name, _to_arrow(values))
    return table


_PII: frozenset | None = None


def _without_pii(decisions):
    global _PII
    if _PII is None:
        _PII = frozenset(pii_columns("book") | pii_columns("actions"))
    pii = _PII
    if isinstance(decisions, Record):
        return Record({k: v for k, v in decisions.items() if k not in pii})
    if isinstance(decisions, Mapping):
        return {k: v for k, v in decisions.items() if k not in pii}
    keep = [name for name in decisions.schema.names if name not in pii]
    return decisions.select(keep) if len(keep) != decisions.num_columns else decisions


# --------------------------------------------------------------------------------------------
# The audit log
# --------------------------------------------------------------------------------------------

_MAGIC = b"PLAU"
_HEADER = struct.Struct("<4sBQI")          # magic, kind, payload length, CRC-32 of the payload
_ARROW, _JSON = 1, 2
#: records of at most this many decisions are stored as JSON (no Arrow tables to build)
SMALL_RECORD = 16


#: how the audit log makes a record durable (``[audit] sync``)
AUDIT_SYNC = ("always", "interval")
DEFAULT_SYNC_INTERVAL_MS = 50.0


class AuditLog:
    """An append-only, crash-safe file of decision records.

    Each record is a frame: ``PLAU``, a kind byte, the payload length and its CRC-32, then the
    payload — Arrow IPC streams of the decisions and actions (compressed with zstd), or JSON for
    a handful of rows. A crash can only leave a torn last frame, which :func:`read_audit`
    detects and skips.

    ``sync`` says when a record is made durable:

    - ``"always"`` (the default): ``append`` returns only once the frame is written and synced
      to disk (fdatasync; the log's directory is fsync'd when the file is created). Threads
      appending at once share one sync (group commit): while one sync runs, the frames written
      meanwhile wait for the next, which covers them all.
    - ``"interval"``: ``append`` returns once the frame is written to the operating system —
      it survives a crash of the process — and a background thread syncs every
      ``interval_ms`` milliseconds: a power loss or kernel crash may lose the records of the
      last ``interval_ms``. :meth:`flush` syncs at once (the server does on shutdown).
    """

    def __init__(self, path: str | os.PathLike, sync: str = "always", interval_ms: float = DEFAULT_SYNC_INTERVAL_MS):
        if sync not in AUDIT_SYNC:
            raise PostloanError(f"[audit] sync = {sync!r}: expected one of {', '.join(map(repr, AUDIT_SYNC))}")
        if isinstance(interval_ms, bool) or not isinstance(interval_ms, (int, float)) or not 0 < interval_ms <= 60_000:
            raise PostloanError(f"[audit] interval_ms = {interval_ms!r}: expected milliseconds in (0, 60000]")
        self.path = Path(path)
        self.sync = sync
        self.interval_ms = float(interval_ms)
        self._fd: int | None = None
        self._write_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._written = 0                 # frames written to the file
        self._synced = 0                  # of them, synced to disk
        self._syncs = 0                   # fdatasync calls made
        self._syncer: threading.Thread | None = None

    @property
    def written(self) -> int:
        """Records written to the file (by this process, since the log was opened)."""
        return self._written

    @property
    def synced(self) -> int:
        """Of :attr:`written`, the records known to be on disk."""
        return self._synced

    @property
    def syncs(self) -> int:
        """The syncs made so far (fewer than :attr:`synced` when appends shared one)."""
        return self._syncs

    def _open(self) -> int:
        if self._fd is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                created = not self.path.exists()
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            except OSError as e:
                raise PostloanError(f"{self.path}: cannot open the audit log: {e.strerror}") from None
            if created:
                _fsync_dir(self.path.parent)
            if self.sync == "interval":
                self._start_syncer()
        return self._fd

    def append(self, meta: Mapping[str, Any], decisions, actions) -> None:
        """Write one record; return when it is durable (``sync="always"``) or written to the
        operating system (``"interval"``)."""
        frame = encode_record(meta, decisions, actions)
        with self._write_lock:
            fd = self._open()
            _write_all(fd, frame)
            self._written += 1
            mine = self._written
        if self.sync == "always":
            self._sync_through(mine)

    def flush(self) -> None:
        """Sync every record written so far."""
        self._sync_through(self._written)

    def _sync_through(self, record: int) -> None:
        """Return once records up to ``record`` are synced: the first caller to get the lock
        syncs everything written by then; callers it covered find nothing left to do."""
        with self._sync_lock:
            if self._synced < record and self._fd is not None:
                target = self._written
                _sync(self._fd)
                self._syncs += 1
                self._synced = target

    def _start_syncer(self) -> None:
        # The thread holds the log only weakly: a log nobody uses any more (a reloaded
        # pipeline's) is collected, and its thread ends at the next tick.
        ref = weakref.ref(self)
        interval = self.interval_ms / 1000

        def run() -> None:
            while True:
                time.sleep(interval)
                log_ = ref()
                if log_ is None or log_._fd is None:
                    return
                try:
                    log_.flush()
                except OSError as e:             # keep trying: the next tick may succeed
                    log.error("audit log %s: sync failed: %s", log_.path, e.strerror)
                del log_

        self._syncer = threading.Thread(target=run, name="postloan-audit-sync", daemon=True)
        self._syncer.start()

    def close(self) -> None:
        """Sync what is written and close the file."""
        with self._write_lock:
            if self._fd is not None:
                self.flush()
                with self._sync_lock:
                    os.close(self._fd)
                    self._fd = None

    def __del__(self):
        fd = getattr(self, "_fd", None)
        if fd is not None:
            try:
                if self._synced < self._written:
                    _sync(fd)
                os.close(fd)
            except OSError:
                pass


def _sync(fd: int) -> None:
    """Make written data durable. fdatasync also flushes the file size an append changed (what
    reading the data back needs) but skips timestamps, so it is cheaper than fsync."""
    (getattr(os, "fdatasync", None) or os.fsync)(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _json_default(value):
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.datetime64):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in the audit log")


def _json_columns(columns) -> dict:
    out = {}
    if isinstance(columns, Record):
        return {name: [None if isinstance(v, float) and v != v else v] for name, v in columns.items()}
    items = columns.items() if isinstance(columns, Mapping) else ((n, columns.column(n)) for n in columns.schema.names)
    for name, values in items:
        if isinstance(values, (pa.Array, pa.ChunkedArray)):
            out[name] = values.to_pylist()
        elif isinstance(values, np.ma.MaskedArray):
            out[name] = [None if m else v for v, m in zip(values.data.tolist(), np.ma.getmaskarray(values).tolist())]
        else:
            arr = np.asarray(values)
            if arr.dtype.kind == "f":
                out[name] = [None if x != x else x for x in arr.tolist()]
            elif arr.dtype.kind == "M":
                out[name] = [None if np.isnat(x) else str(x) for x in arr]
            else:
                out[name] = arr.tolist()
    return out


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def encode_record(meta: Mapping[str, Any], decisions, actions) -> bytes:
    """One audit frame for ``decisions`` and ``actions`` (Arrow tables or column mappings)."""
    rows = _rows(decisions)
    if rows <= SMALL_RECORD:
        # orjson: the bytes json.dumps(..., ensure_ascii=False, separators=(",", ":")) gives, ~7x faster
        payload = orjson.dumps({"meta": meta, "decisions": _json_columns(decisions), "actions": _json_columns(actions)},
                               default=_json_default)
        kind = _JSON
    else:
        if isinstance(decisions, Mapping):
            decisions = pa.table({k: _to_arrow(v) for k, v in decisions.items()})
        action_table = _actions_table({**actions, "script": pa.nulls(len(actions["action"]), pa.string())},
                                      with_script=False) if isinstance(actions, Mapping) else actions
        meta_bytes = json.dumps(meta, default=_json_default, ensure_ascii=False).encode()
        parts = [meta_bytes, _ipc(decisions), _ipc(action_table)]
        payload = b"".join(struct.pack("<Q", len(p)) + p for p in parts)
        kind = _ARROW
    return _HEADER.pack(_MAGIC, kind, len(payload), zlib.crc32(payload)) + payload


@dataclass
class AuditRecord:
    offset: int                 # byte offset of the frame in the file
    meta: dict
    decisions: pa.Table
    actions: pa.Table


@dataclass
class AuditScan:
    """What :func:`read_audit` found besides the records."""

    records: int = 0
    damaged: list[tuple[int, int]] = field(default_factory=list)    # (offset, bytes skipped)
    torn_tail: bool = False


def read_audit(path: str | os.PathLike, scan: AuditScan | None = None) -> Iterator[AuditRecord]:
    """Yield every intact record of an audit log, in order. A torn last frame (a crash while
    writing) is skipped and reported in ``scan.torn_tail``; damage inside the file is skipped
    up to the next intact frame and listed in ``scan.damaged``."""
    scan = scan if scan is not None else AuditScan()
    data = Path(path).read_bytes()
    pos, size = 0, len(data)
    while pos < size:
        frame = _frame_at(data, pos)
        if frame is None:
            nxt = data.find(_MAGIC, pos + 1)
            while nxt != -1 and _frame_at(data, nxt) is None:
                nxt = data.find(_MAGIC, nxt + 1)
            if nxt == -1:
                scan.torn_tail = True
                scan.damaged.append((pos, size - pos))
                return
            scan.damaged.append((pos, nxt - pos))
            pos = nxt
            continue
        kind, payload, end = frame
        scan.records += 1
        yield _decode(pos, kind, payload)
        pos = end


def _frame_at(data: bytes, pos: int):
    if pos + _HEADER.size > len(data):
        return None
    magic, kind, length, crc = _HEADER.unpack_from(data, pos)
    start = pos + _HEADER.size
    end = start + length
    if magic != _MAGIC or kind not in (_ARROW, _JSON) or end > len(data):
        return None
    payload = data[start:end]
    if zlib.crc32(payload) != crc:
        return None
    return kind, payload, end


def _decode(offset: int, kind: int, payload: bytes) -> AuditRecord:
    if kind == _JSON:
        obj = json.loads(payload)
        actions = obj["actions"]
        n = len(actions.get("action", []))
        # typed exactly as the Arrow records: enum names, UTC timestamps
        table = _actions_table({**actions, "script": [None] * n}, with_script=False) if n else \
            _actions_table({name: [] for name in ("account_id", "action", "priority", "earliest_at", "script_id",
                                                  "language", "script", "outcome", "reason_code",
                                                  "next_allowed_at", "policy")}, with_script=False)
        return AuditRecord(offset, obj["meta"], pa.table(obj["decisions"]), table)
    parts, pos = [], 0
    for _ in range(3):
        (length,) = struct.unpack_from("<Q", payload, pos)
        parts.append(payload[pos + 8: pos + 8 + length])
        pos += 8 + length
    meta = json.loads(parts[0])
    decisions = pa.ipc.open_stream(pa.py_buffer(parts[1])).read_all()
    actions = pa.ipc.open_stream(pa.py_buffer(parts[2])).read_all()
    return AuditRecord(offset, meta, decisions, actions)
