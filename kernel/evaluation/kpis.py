"""Attribution and KPIs: from snapshots, actions and the ledger's events to figures per arm,
tier, channel, bucket and agent, with intervals and tests (docs/evaluation.md).

The work is split so that it runs on one partition of accounts at a time and adds up:
:class:`Accumulator` takes a partition's tables (in chunks, runs oldest first) and gives a
:class:`Partial` of sufficient statistics (counts and sums); partials :meth:`~Partial.merge`
in partition order; :func:`summarize` turns the merged partial into the figures (a plain,
JSON-able dict) the report shows. The same partitions merged in the same order give the same
bits, in one process or on Dask.

Population and attribution (the definitions, with every window, are in docs/evaluation.md):

- the accounts **in collections** are those decided at least once with ``dpd ≥ 1`` in the
  period; from that decision (its *entry*) on, every decision of the account is kept;
- an **event** is attributed to its account's latest kept decision made at or before it, when
  that decision is at most ``attribution_days`` older than the event (sales and repossessions:
  any age); the decision gives the arm, tier, bucket and (for account-level KPIs) channel; the
  event gives the contact channel and the agent.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import PostloanError
from . import stats as st
from .records import Part, with_currency

__all__ = ["Settings", "Accumulator", "Partial", "summarize", "evaluate", "BUCKETS", "KPIS", "DEFAULT_COSTS"]

BUCKETS = ("M0", "M1", "M2", "M3", "M4", "M5", "M6", "M7")
DIMENSIONS = ("tier", "bucket", "channel", "agent")
NA = "—"
DAY_US = 86_400_000_000
#: cost of one kept action of each kind, in the account's currency, unless [evaluation.costs]
#: (CNY) or [evaluation.costs.USD] say otherwise
DEFAULT_COSTS = {"CNY": {"SMS": 0.05, "VOICE_BOT": 0.3, "PHONE": 3.0, "FIELD_VISIT": 80.0, "LEGAL_REVIEW": 500.0,
                         "THIRD_PARTY_CONTACT": 3.0, "REPOSSESSION": 3000.0, "DISPOSAL": 1500.0},
                 "USD": {"SMS": 0.01, "VOICE_BOT": 0.05, "PHONE": 1.5, "FIELD_VISIT": 60.0, "LEGAL_REVIEW": 300.0,
                         "THIRD_PARTY_CONTACT": 1.5, "REPOSSESSION": 500.0, "DISPOSAL": 300.0}}
#: the currencies an account may be in (schema ``currency``), in the order they are shown
CURRENCIES = ("CNY", "USD")
ACTIONS = tuple(DEFAULT_COSTS["CNY"])
#: channels whose attempts can reach a person (contact and right-party contact rates)
DIALLED = ("PHONE", "VOICE_BOT", "FIELD_VISIT")
CONTACTED = ("RIGHT_PARTY", "WRONG_PARTY")

#: KPI -> (kind, label, unit shown); kinds: proportion, mean, ratio, rate, sum. A KPI of
#: :data:`MONEY` is computed and shown per currency, never summed across currencies ("{cur}"
#: in its unit is the currency).
KPIS: dict[str, tuple[str, str, str]] = {
    "contact_rate": ("proportion", "contact rate", "of dialled attempts"),
    "rpc_rate": ("proportion", "right-party contact rate", "of dialled attempts"),
    "promise_rate": ("proportion", "promise rate", "of right-party contacts"),
    "promise_kept_rate": ("proportion", "promise-kept rate", "of promises due"),
    "cure_rate": ("proportion", "cure rate (back to M0)", "of entries"),
    "roll_forward_rate": ("proportion", "roll-forward rate (count)", "of accounts"),
    "roll_forward_balance": ("ratio", "roll-forward rate (balance)", "of balance"),
    "collected": ("sum", "amount collected", "{cur}"),
    "collected_per_account": ("mean", "amount collected per account", "{cur}"),
    "cost_per_collected": ("ratio", "cost per amount collected", "{cur} per {cur}"),
    "recovery_rate": ("ratio", "recovery rate on repossessed cars", "of exposure"),
    "complaints_per_10k": ("rate", "complaints per 10,000 contacts", "per 10,000 contact attempts"),
    "block_rate": ("proportion", "compliance blocks", "of planned actions"),
    "defer_rate": ("proportion", "compliance deferrals", "of planned actions"),
}
#: the KPIs of money, or weighed by money: one figure per currency (keys "collected.CNY" …)
MONEY = ("roll_forward_balance", "collected", "collected_per_account", "cost_per_collected", "recovery_rate")
_SETTINGS = {"attribution_days": (float, 7.0), "promise_after_rpc_hours": (float, 24.0),
             "promise_grace_days": (int, 1), "cure_days": (int, 30), "control": (str, "CHAMPION"),
             "confidence": (float, 0.95), "top": (int, 50)}


@dataclass(frozen=True)
class Settings:
    """``[evaluation]``: windows, control arm, confidence, costs (docs/evaluation.md)."""

    attribution_days: float = 7.0
    promise_after_rpc_hours: float = 24.0
    promise_grace_days: int = 1
    cure_days: int = 30
    control: str = "CHAMPION"
    confidence: float = 0.95
    top: int = 50
    costs: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: {c: dict(v) for c, v in DEFAULT_COSTS.items()})

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> "Settings":
        section = (config or {}).get("evaluation") or {}
        source = (config or {}).get("_source") or "configuration"
        if not isinstance(section, Mapping):
            raise PostloanError(f"{source}: [evaluation] must be a table")
        values: dict[str, Any] = {}
        for key, value in section.items():
            if key == "costs":
                values["costs"] = _costs(value, source)
                continue
            if key not in _SETTINGS:
                raise PostloanError(f"{source}: [evaluation] {key!r}: unknown setting "
                                    f"(settings: {', '.join(sorted([*_SETTINGS, 'costs']))})")
            kind, _ = _SETTINGS[key]
            ok = isinstance(value, str) if kind is str else (
                not isinstance(value, bool) and isinstance(value, (int, float) if kind is float else int)
                and math.isfinite(value) and value > 0)
            if ok and key == "confidence":
                ok = 0 < value < 1
            if not ok:
                raise PostloanError(f"{source}: [evaluation] {key} must be "
                                    f"{'a name' if kind is str else 'a number in (0, 1)' if key == 'confidence' else 'a number above 0'}")
            values[key] = kind(value)
        return cls(**values)


def _costs(value, source: str) -> dict:
    """``[evaluation.costs]``: action = cost in CNY, and ``[evaluation.costs.USD]`` (or
    ``.CNY``): action = cost in that currency; each over the defaults."""
    if not isinstance(value, Mapping):
        raise PostloanError(f"{source}: [evaluation.costs] must be a table of action = cost")
    costs = {c: dict(v) for c, v in DEFAULT_COSTS.items()}

    def put(currency: str, table: Mapping, where: str) -> None:
        for action, cost in table.items():
            if action not in ACTIONS:
                raise PostloanError(f"{source}: {where} {action!r} is not an action ({', '.join(ACTIONS)}) "
                                    f"nor a currency ({', '.join(CURRENCIES)})" if where == "[evaluation.costs]" else
                                    f"{source}: {where} {action!r} is not an action ({', '.join(ACTIONS)})")
            if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not 0 <= cost < 1e9:
                raise PostloanError(f"{source}: {where} {action} must be a cost of 0 or more (in {currency})")
            costs[currency][action] = float(cost)

    put("CNY", {k: v for k, v in value.items() if k not in CURRENCIES}, "[evaluation.costs]")
    for currency in CURRENCIES:
        if currency in value:
            table = value[currency]
            if not isinstance(table, Mapping):
                raise PostloanError(f"{source}: [evaluation.costs.{currency}] must be a table of action = cost "
                                    f"in {currency}")
            put(currency, table, f"[evaluation.costs.{currency}]")
    return costs


# --------------------------------------------------------------------------------------------
# Partials: sufficient statistics that add up
# --------------------------------------------------------------------------------------------

@dataclass
class Partial:
    """Sums of one or more partitions. ``groups[(kpi, dimension, arm, value)]``: the KPI's
    sufficient statistics (proportion: [n, k]; mean: [n, Σx, Σx²]; ratio: [n, Σx, Σy, Σx², Σy²,
    Σxy]; rate: [events, exposure]; sum: [n, Σx]), a KPI of money named with its currency
    ("collected.USD"); ``series[(name, day)]``: per run date (amounts: "balance.CNY" …);
    ``vintage[(contract month, day)]``: [accounts, 30+]; ``rolls[(arm, currency, from, to)]``:
    [accounts, balance] at the end date; ``lists``: the report's ranked rows."""

    groups: dict = field(default_factory=dict)
    series: dict = field(default_factory=dict)
    vintage: dict = field(default_factory=dict)
    rolls: dict = field(default_factory=dict)
    lists: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)

    def merge(self, other: "Partial", top: int = 50) -> "Partial":
        for name in ("groups", "series", "vintage", "rolls", "counts"):
            mine, theirs = getattr(self, name), getattr(other, name)
            for key, value in theirs.items():
                mine[key] = mine[key] + value if key in mine else value
        for name, rows in other.lists.items():
            self.lists[name] = _top(self.lists.get(name, []) + rows, top)
        return self


def _top(rows: list, top: int) -> list:
    """The ``top`` rows by their sort key (first element, descending), ties by account id."""
    return sorted(rows, key=lambda r: (-r[0], r[1]["account_id"]))[:top]


def _add(target: dict, key, value) -> None:
    target[key] = target[key] + value if key in target else value


def _encode(values, n: int) -> tuple[np.ndarray, list[str]]:
    """Codes and names of a text column (null → "—")."""
    if values is None:
        return np.zeros(n, np.int64), [NA]
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else (values.chunk(0) if values.num_chunks else
                                                                          pa.array([], pa.string()))
    if not pa.types.is_dictionary(values.type):
        values = pc.dictionary_encode(values.cast(pa.string()))
    names = [NA if v is None else v for v in values.dictionary.to_pylist()]
    codes = values.indices.to_numpy(zero_copy_only=False)
    if values.null_count:
        codes = np.where(values.is_valid().to_numpy(zero_copy_only=False), codes, len(names))
        names.append(NA)
    return np.asarray(codes, np.int64), names


def _group(target: dict, kpi: str, arm, dims: Mapping[str, tuple], stats: np.ndarray) -> None:
    """Add the rows' statistics (rows × m) to ``target`` per arm, and per arm × dimension."""
    if stats.shape[0] == 0:
        return
    arm_codes, arm_names = arm
    for dim in ("all", *DIMENSIONS):
        if dim == "all":
            key, names = arm_codes, None
        else:
            codes, names = dims.get(dim) or (np.zeros(len(arm_codes), np.int64), [NA])
            key = arm_codes * len(names) + codes
        uniq, inverse = np.unique(key, return_inverse=True)
        sums = np.stack([np.bincount(inverse, weights=stats[:, j], minlength=len(uniq))
                         for j in range(stats.shape[1])], axis=1)
        for u, s in zip(uniq.tolist(), sums):
            if dim == "all":
                _add(target, (kpi, "all", arm_names[u], ""), s)
            else:
                _add(target, (kpi, dim, arm_names[u // len(names)], names[u % len(names)]), s)


def _group_money(target: dict, kpi: str, currency: tuple, arm, dims: Mapping[str, tuple],
                 stats: np.ndarray) -> None:
    """:func:`_group` for a KPI of money: the rows of each currency apart ("kpi.CNY" …);
    ``currency``: (codes of the rows, names)."""
    codes, names = currency
    for c in np.unique(codes).tolist():
        sel = codes == c
        _group(target, f"{kpi}.{names[c]}", (arm[0][sel], arm[1]), {k: (v[0][sel], v[1]) for k, v in dims.items()},
               stats[sel])


def _proportion_rows(success: np.ndarray) -> np.ndarray:
    return np.stack([np.ones(len(success)), success.astype(np.float64)], axis=1)


def _ratio_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.stack([np.ones(len(x)), x, y, x * x, y * y, x * y], axis=1)


def _mean_rows(x: np.ndarray) -> np.ndarray:
    return np.stack([np.ones(len(x)), x, x * x], axis=1)


# --------------------------------------------------------------------------------------------
# One partition
# --------------------------------------------------------------------------------------------

_SLIM = ("account_id", "as_of", "decided_at", "dpd", "outstanding_principal", "currency", "arm", "tier", "bucket",
         "channel", "valuation_price")
_ALERTS = ("insurance_expiring", "insurance_lapsed", "gps_offline", "geofence_exit", "violations",
           "gps_offline_then_exit")
_LEVEL_RANK = {"CRITICAL": 3, "ALERT": 2, "WATCH": 1}


def _np(col) -> np.ndarray:
    return col.to_numpy(zero_copy_only=False) if isinstance(col, (pa.Array, pa.ChunkedArray)) else np.asarray(col)


def _days(col) -> np.ndarray:
    return np.asarray(_np(pc.cast(col, pa.int32())), np.int64)


def _micros(col) -> np.ndarray:
    return np.asarray(_np(pc.cast(pc.cast(col, pa.timestamp("us", tz="UTC")), pa.int64())), np.int64)


class Accumulator:
    """Collects one partition (its snapshots in run order, its actions and events) and gives
    its :class:`Partial`. ``end``: the period's last run date (the same for every partition),
    from which rolls, lists and complete cure windows are read."""

    def __init__(self, settings: Settings, end: dt.date):
        self.s = settings
        self.end = end
        self.end_day = (end - dt.date(1970, 1, 1)).days
        self.partial = Partial()
        self._slim: list[pa.Table] = []
        self._seen = pa.array([], pa.string())
        self._actions: list[pa.Table] = []
        self._events: list[pa.Table] = []

    # -- snapshots: the report's aggregates, streamed; the KPIs' rows, kept ---------------------
    def add_snapshots(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        table = with_currency(table)
        self._report(table)
        dpd = _np(table["dpd"].fill_null(0))
        ids = table["account_id"]
        day = _days(table["as_of"])
        late = dpd >= 1
        seen = _np(pc.is_in(ids, value_set=self._seen)).astype(bool) if len(self._seen) else np.zeros(len(dpd), bool)
        # an account's rows from its first decision at dpd ≥ 1 on (runs oldest first)
        if late.any():
            late_ids = pc.filter(ids, pa.array(late))
            first = pa.table({"a": late_ids, "d": pa.array(day[late])}).group_by("a").aggregate([("d", "min")])
            known = first["a"].combine_chunks()
            index = pc.index_in(ids, value_set=known)
            valid = _np(index.is_valid()).astype(bool)
            starts = _np(first["d_min"]).astype(np.int64)
            first_day = np.where(valid, starts[_np(index.fill_null(0)).astype(np.int64)], np.iinfo(np.int64).max)
            keep = seen | (day >= first_day)
            self._seen = pc.unique(pa.concat_arrays([self._seen, known.cast(pa.string())]))
        else:
            keep = seen
        if keep.any():
            self._slim.append(table.select(list(_SLIM)).filter(pa.array(keep)))

    def add_actions(self, table: pa.Table) -> None:
        if table.num_rows:
            self._actions.append(table)

    def add_events(self, table: pa.Table) -> None:
        if table.num_rows:
            self._events.append(table)

    def _report(self, t: pa.Table) -> None:
        """Per run date: accounts and balance by bucket, overdue, alerts; vintages; at the end
        date: the roll matrix, the early-warning and alert lists, disposal recommendations."""
        p = self.partial
        day = _days(t["as_of"])
        bucket_codes = _bucket_codes(t["bucket"])
        balance = np.nan_to_num(_np(t["outstanding_principal"]).astype(np.float64))
        dpd = _np(t["dpd"].fill_null(0))
        cur_codes, cur_names = _encode(t["currency"], t.num_rows)
        for d in np.unique(day).tolist():
            sel = day == d
            b = bucket_codes[sel]
            _add(p.series, ("accounts", d), np.bincount(b, minlength=len(BUCKETS) + 1).astype(np.float64))
            od = dpd[sel] >= 1
            _add(p.series, ("overdue", d), np.array([sel.sum(), od.sum()], np.float64))
            for c in np.unique(cur_codes[sel]).tolist():          # amounts: each currency on its own
                mine = sel & (cur_codes == c)
                name = cur_names[c]
                _add(p.series, (f"balance.{name}", d),
                     np.bincount(bucket_codes[mine], weights=balance[mine], minlength=len(BUCKETS) + 1))
                _add(p.series, (f"overdue_balance.{name}", d),
                     np.array([balance[mine].sum(), balance[mine & (dpd >= 1)].sum()], np.float64))
            _add(p.series, ("alerts", d), np.array([np.count_nonzero(_np(t[a].filter(pa.array(sel)).fill_null(False)))
                                                    for a in _ALERTS], np.float64))
        # vintages: accounts and 30+ by contract month and run date
        month = _months(t["contract_date"])
        thirty = dpd > 30
        key = month * 100_000 + day
        uniq, inverse = np.unique(key, return_inverse=True)
        n = np.bincount(inverse, minlength=len(uniq))
        k = np.bincount(inverse, weights=thirty.astype(np.float64), minlength=len(uniq))
        for u, a, b in zip(uniq.tolist(), n.tolist(), k.tolist()):
            _add(p.vintage, (u // 100_000, u % 100_000), np.array([a, b], np.float64))
        last = day == self.end_day
        if last.any():
            self._end(t.filter(pa.array(last)), bucket_codes[last], balance[last], (cur_codes[last], cur_names))

    def _end(self, t: pa.Table, now_codes: np.ndarray, balance: np.ndarray, currency: tuple) -> None:
        p = self.partial
        then_codes = _bucket_codes(t["bucket_30d_ago"])
        arm_codes, arm_names = _encode(t["arm"], t.num_rows)
        cur_codes, cur_names = currency
        key = ((arm_codes * len(cur_names) + cur_codes) * 9 + then_codes) * 9 + now_codes
        uniq, inverse = np.unique(key, return_inverse=True)
        count = np.bincount(inverse, minlength=len(uniq))
        bal = np.bincount(inverse, weights=balance, minlength=len(uniq))
        for u, c, b in zip(uniq.tolist(), count.tolist(), bal.tolist()):
            head, rest = divmod(u, 81)
            arm, cur = divmod(head, len(cur_names))
            _add(p.rolls, (arm_names[arm], cur_names[cur], rest // 9, rest % 9), np.array([c, b], np.float64))
        # the roll-forward KPIs by arm and bucket of 30 days ago (known buckets only); by
        # balance: per currency
        known = (then_codes < len(BUCKETS)) & (now_codes < len(BUCKETS))
        if known.any():
            fwd = (now_codes > then_codes)[known]
            dims = {"bucket": (then_codes[known], list(BUCKETS) + [NA])}
            arm = (arm_codes[known], arm_names)
            _group(p.groups, "roll_forward_rate", arm, dims, _proportion_rows(fwd))
            _group_money(p.groups, "roll_forward_balance", (cur_codes[known], cur_names), arm, dims,
                         _ratio_rows(np.where(fwd, balance[known], 0.0), balance[known]))
        top = self.s.top
        level = _np(t["ew_level"].fill_null("NONE")).astype(str)
        rank = np.vectorize(lambda v: _LEVEL_RANK.get(v, 0), otypes=[np.int64])(level) if len(level) else level
        score = np.nan_to_num(_np(t["ew_score"]).astype(np.float64))
        ew = np.flatnonzero(rank > 0)
        ew = ew[np.lexsort((-score[ew], -rank[ew]))][:top]
        cols = ("account_id", "bucket", "dpd", "pd", "ew_level", "ew_score", "segment", "overdue_reason", "arm", "tier")
        rows = t.take(pa.array(ew, pa.int64())).select(list(cols)).to_pylist()
        p.lists["early_warning"] = _top(p.lists.get("early_warning", []) +
                                        [(rank[i] * 1000 + score[i], r) for i, r in zip(ew.tolist(), rows)], top)
        flags = np.stack([_np(t[a].fill_null(False)).astype(bool) for a in _ALERTS], axis=1)
        hits = flags.sum(axis=1)
        al = np.flatnonzero(hits > 0)
        al = al[np.lexsort((-balance[al], -hits[al]))][:top]
        rows = t.take(pa.array(al, pa.int64())).select(["account_id", "bucket", "dpd", "outstanding_principal",
                                                        "currency", "arm", *_ALERTS]).to_pylist()
        p.lists["vehicle_alerts"] = _top(p.lists.get("vehicle_alerts", []) +
                                         [(hits[i] * 1e12 + balance[i], r) for i, r in zip(al.tolist(), rows)], top)
        # disposal recommendations on the end date
        need = _np(t["repossess"].fill_null(False)).astype(bool) | _np(t["dispose"].fill_null(False)).astype(bool)
        if need.any():
            sub = t.filter(pa.array(need))
            ch_codes, ch_names = _encode(sub["disposal_channel"], sub.num_rows)
            net = np.nan_to_num(_np(sub["expected_net"]).astype(np.float64))
            price = np.nan_to_num(_np(sub["valuation_price"]).astype(np.float64))
            sub_cur = cur_codes[need]
            for c in np.unique(ch_codes).tolist():
                for k in np.unique(sub_cur[ch_codes == c]).tolist():      # amounts: per currency
                    sel = (ch_codes == c) & (sub_cur == k)
                    _add(p.counts, (f"recommended.{cur_names[k]}", ch_names[c]),
                         np.array([sel.sum(), net[sel].sum(), price[sel].sum()]))
        tiers, tier_names = _encode(t["tier"], t.num_rows)
        for c in np.unique(tiers).tolist():
            _add(p.counts, ("tier", tier_names[c]), np.array([np.count_nonzero(tiers == c)], np.float64))

    # -- the KPIs -----------------------------------------------------------------------------
    def finish(self) -> Partial:
        p = self.partial
        if not self._slim:
            return p
        s = pa.concat_tables(self._slim)
        # sort by account, then decision instant
        s = s.take(pc.sort_indices(s, sort_keys=[("account_id", "ascending"), ("decided_at", "ascending")]))
        ids = s["account_id"].combine_chunks()
        accounts = pc.unique(ids)
        code = _np(pc.index_in(ids, value_set=accounts)).astype(np.int64)
        at = _micros(s["decided_at"])
        n = s.num_rows
        arm = _encode(s["arm"], n)
        tier = _encode(s["tier"], n)
        bucket = _encode(s["bucket"], n)
        channel = _encode(s["channel"], n)
        currency = _encode(s["currency"], n)
        dpd = _np(s["dpd"].fill_null(0)).astype(np.int64)
        outstanding = np.nan_to_num(_np(s["outstanding_principal"]).astype(np.float64))
        day = _days(s["as_of"])
        keys = _Keys(code, at, len(accounts))

        def dims_of(rows, *, channel_codes=None, agent=None):
            d = {"tier": (tier[0][rows], tier[1]), "bucket": (bucket[0][rows], bucket[1])}
            d["channel"] = channel_codes if channel_codes is not None else (channel[0][rows], channel[1])
            if agent is not None:
                d["agent"] = agent
            return d

        def arm_of(rows):
            return arm[0][rows], arm[1]

        def currency_of(rows):
            return currency[0][rows], currency[1]

        events = pa.concat_tables(self._events) if self._events else None
        if events is not None:
            events = events.filter(pc.is_in(events["account_id"], value_set=accounts))
        window = int(self.s.attribution_days * DAY_US)
        collected = np.zeros(len(accounts))
        if events is not None and events.num_rows:
            events = events.take(pc.sort_indices(events, sort_keys=[("account_id", "ascending"), ("at", "ascending")]))
            e_code = _np(pc.index_in(events["account_id"], value_set=accounts)).astype(np.int64)
            e_at = _micros(events["at"])
            kind = _np(events["kind"].fill_null("")).astype(str)
            e_channel = _encode(events["channel"], events.num_rows)
            e_outcome = _np(events["outcome"].fill_null("")).astype(str)
            e_agent = _encode(events["agent"], events.num_rows)
            amount = np.nan_to_num(_np(events["amount"]).astype(np.float64))
            snap = keys.latest(e_code, e_at)
            attributed = (snap >= 0) & (e_at - at[np.maximum(snap, 0)] <= window)
            _add(p.counts, ("events", "attributed"), np.array([np.count_nonzero(attributed)], np.float64))
            _add(p.counts, ("events", "unattributed"), np.array([np.count_nonzero(~attributed)], np.float64))

            def pick(mask):
                rows = np.flatnonzero(mask & attributed)
                return rows, snap[rows]

            # contact attempts: contact and right-party contact rates, complaints' exposure
            attempt = kind == "CONTACT_ATTEMPT"
            ch_names = np.array(e_channel[1], dtype=object)[e_channel[0]].astype(str)
            dialled = attempt & np.isin(ch_names, DIALLED)
            rows, srows = pick(dialled)
            d = dims_of(srows, channel_codes=(e_channel[0][rows], e_channel[1]), agent=(e_agent[0][rows], e_agent[1]))
            _group(p.groups, "contact_rate", arm_of(srows), d, _proportion_rows(np.isin(e_outcome[rows], CONTACTED)))
            _group(p.groups, "rpc_rate", arm_of(srows), d, _proportion_rows(e_outcome[rows] == "RIGHT_PARTY"))
            # promise rate: right-party contacts followed by a promise within the window
            rpc = dialled & (e_outcome == "RIGHT_PARTY")
            rows, srows = pick(rpc)
            promise = kind == "PROMISE_TO_PAY"
            after = _Keys(e_code[promise], e_at[promise], len(accounts))
            nxt = after.next_at(e_code[rows], e_at[rows])
            promised = (nxt >= 0) & (nxt - e_at[rows] <= int(self.s.promise_after_rpc_hours * 3_600_000_000))
            d = dims_of(srows, channel_codes=(e_channel[0][rows], e_channel[1]), agent=(e_agent[0][rows], e_agent[1]))
            _group(p.groups, "promise_rate", arm_of(srows), d, _proportion_rows(promised))
            # promise kept: the account's payments from the promise to its date plus grace cover it
            rows, srows = pick(promise)
            pay = kind == "PAYMENT"
            paid = _Keys(e_code[pay], e_at[pay], len(accounts), weights=amount[pay])
            due_day = _days(events["promise_date"].fill_null(0))[rows]
            grace_end = (due_day + self.s.promise_grace_days + 1) * DAY_US - 1
            due = grace_end <= (self.end_day + 1) * DAY_US - 1
            total = paid.sum_between(e_code[rows], e_at[rows], grace_end)
            kept = total >= amount[rows] * (1 - 1e-9)
            rows, srows, kept = rows[due], srows[due], kept[due]
            d = dims_of(srows, agent=(e_agent[0][rows], e_agent[1]))
            d["channel"] = (np.zeros(len(rows), np.int64), [NA])
            _group(p.groups, "promise_kept_rate", arm_of(srows), d, _proportion_rows(kept))
            # complaints per 10,000 contact attempts (any channel)
            rows, srows = pick(attempt)
            d = dims_of(srows, channel_codes=(e_channel[0][rows], e_channel[1]), agent=(e_agent[0][rows], e_agent[1]))
            _group(p.groups, "complaints_per_10k", arm_of(srows), d,
                   np.stack([np.zeros(len(rows)), np.ones(len(rows))], axis=1))
            rows, srows = pick(kind == "COMPLAINT_OPENED")
            d = dims_of(srows, agent=(e_agent[0][rows], e_agent[1]))
            d["channel"] = (np.zeros(len(rows), np.int64), [NA])
            _group(p.groups, "complaints_per_10k", arm_of(srows), d,
                   np.stack([np.ones(len(rows)), np.zeros(len(rows))], axis=1))
            # amount collected: payments after a decision in collections (dpd ≥ 1)
            rows, srows = pick(pay)
            worked = dpd[srows] >= 1
            rows, srows = rows[worked], srows[worked]
            d = dims_of(srows, agent=(e_agent[0][rows], e_agent[1]))
            _group_money(p.groups, "collected", currency_of(srows), arm_of(srows), d,
                         np.stack([np.ones(len(rows)), amount[rows]], axis=1))
            np.add.at(collected, code[srows], amount[rows])
            # repossessed cars: sale amount over the exposure at the last decision before the sale
            sold = np.flatnonzero((kind == "VEHICLE_SOLD") & (snap >= 0))
            srows = snap[sold]
            d = dims_of(srows, agent=(e_agent[0][sold], e_agent[1]))
            _group_money(p.groups, "recovery_rate", currency_of(srows), arm_of(srows), d,
                         _ratio_rows(amount[sold], outstanding[srows]))
            expected = np.nan_to_num(_np(s["valuation_price"]).astype(np.float64))[srows]
            for name, mask in (("repossessed", kind == "REPOSSESSED"), ("redeemed", kind == "REDEEMED")):
                _add(p.counts, ("disposal", name), np.array([np.count_nonzero(mask)], np.float64))
            sold_cur = currency[0][srows]
            for c in np.unique(sold_cur).tolist():                      # sale amounts: per currency
                k = sold_cur == c
                _add(p.counts, (f"sold.{currency[1][c]}", "cars"),
                     np.array([k.sum(), amount[sold][k].sum(), outstanding[srows][k].sum(), expected[k].sum()]))
        # accounts: entry (first decision at dpd ≥ 1), cure, collected and cost per account
        first = np.r_[True, code[1:] != code[:-1]]
        entry_of = _first_where(code, dpd >= 1)                 # per account: row of its entry
        has = entry_of >= 0
        entry = entry_of[has]
        entry_day = day[entry]
        complete = entry_day + self.s.cure_days <= self.end_day
        cured_at = _first_after(code, day, dpd == 0, entry_of)  # per account: day of its first M0 after entry
        cured = (cured_at[has] >= 0) & (cured_at[has] - entry_day <= self.s.cure_days)
        e_rows = entry[complete]
        _group(p.groups, "cure_rate", arm_of(e_rows), dims_of(e_rows), _proportion_rows(cured[complete]))
        del first
        # the cost of the kept actions of each account (and blocks and deferrals)
        cost = np.zeros(len(accounts))
        if self._actions:
            a = pa.concat_tables(self._actions)
            a = a.filter(pc.is_in(a["account_id"], value_set=accounts))
            if a.num_rows:
                a_code = _np(pc.index_in(a["account_id"], value_set=accounts)).astype(np.int64)
                a_at = _micros(a["decided_at"])
                srow = keys.latest(a_code, a_at)
                ok = (srow >= 0) & (at[np.maximum(srow, 0)] == a_at)     # the decision that planned it
                outcome = _np(a["outcome"].fill_null("KEEP")).astype(str)
                act = _encode(a["action"], a.num_rows)
                rows, srows = np.flatnonzero(ok), srow[ok]
                d = dims_of(srows, channel_codes=(act[0][rows], act[1]))
                d["agent"] = (np.zeros(len(rows), np.int64), [NA])
                _group(p.groups, "block_rate", arm_of(srows), d, _proportion_rows(outcome[rows] == "BLOCK"))
                _group(p.groups, "defer_rate", arm_of(srows), d, _proportion_rows(outcome[rows] == "DEFER"))
                # each action's cost in its account's currency (a currency without costs: 0)
                prices = np.array([[self.s.costs.get(c, {}).get(x, 0.0) for x in act[1]] + [0.0]
                                   for c in currency[1]])
                spent = np.where(outcome[rows] == "KEEP", prices[currency[0][srows], act[0][rows]], 0.0)
                np.add.at(cost, code[srows], spent)
        rows = entry
        acc = code[rows]
        _group_money(p.groups, "collected_per_account", currency_of(rows), arm_of(rows), dims_of(rows),
                     _mean_rows(collected[acc]))
        _group_money(p.groups, "cost_per_collected", currency_of(rows), arm_of(rows), dims_of(rows),
                     _ratio_rows(cost[acc], collected[acc]))
        self._slim, self._actions, self._events = [], [], []
        return p


def _bucket_codes(col) -> np.ndarray:
    """0–7 for M0–M7, 8 for null or another value."""
    values = _np(pc.index_in(col.cast(pa.string()), value_set=pa.array(BUCKETS)))
    return np.where(np.isnan(values.astype(np.float64)), len(BUCKETS), np.nan_to_num(values.astype(np.float64))
                    ).astype(np.int64)


def _months(col) -> np.ndarray:
    """Months since 1970-01 of dates (−1 for null)."""
    days = _np(pc.cast(col, pa.int32()).fill_null(-(1 << 30))).astype(np.int64)
    valid = days > -(1 << 29)
    d = np.where(valid, days, 0).astype("datetime64[D]")
    return np.where(valid, d.astype("datetime64[M]").astype(np.int64), -1)


class _Keys:
    """Rows sorted by (account code, instant): the latest at or before, the next at or after,
    and sums of weights between two instants, by binary search on one combined key."""

    def __init__(self, code: np.ndarray, at: np.ndarray, accounts: int, weights: np.ndarray | None = None):
        self.base = int(at.min()) // 1000 if at.size else 0
        self.span = (int(at.max()) // 1000 - self.base + 2) if at.size else 1
        if accounts * self.span >= (1 << 62):
            raise PostloanError(f"evaluation: {accounts:,} accounts over {self.span / 86_400_000:,.0f} days are too "
                                f"many for one partition; use more partitions")
        key = code * self.span + (at // 1000 - self.base)
        order = np.argsort(key, kind="stable")
        self.order, self.key, self.code, self.at = order, key[order], code[order], at[order]
        self.cum = None if weights is None else np.r_[0.0, np.cumsum(weights[order])]

    def _key(self, code, at):
        rel = np.clip(at // 1000 - self.base, -1, self.span - 1)
        return code * self.span + rel

    def latest(self, code: np.ndarray, at: np.ndarray) -> np.ndarray:
        """Index (in the original order) of each query's latest row at or before, −1: none."""
        if not self.key.size:
            return np.full(len(code), -1, np.int64)
        j = np.searchsorted(self.key, self._key(code, at), side="right") - 1
        ok = (j >= 0) & (self.code[np.maximum(j, 0)] == code)
        return np.where(ok, self.order[np.maximum(j, 0)], -1)

    def next_at(self, code: np.ndarray, at: np.ndarray) -> np.ndarray:
        """The instant of each query's first row at or after (−1: none)."""
        if not self.key.size:
            return np.full(len(code), -1, np.int64)
        j = np.searchsorted(self.key, self._key(code, at), side="left")
        jj = np.minimum(j, len(self.key) - 1)
        ok = (j < len(self.key)) & (self.code[jj] == code)
        return np.where(ok, self.at[jj], -1)

    def sum_between(self, code: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Sum of the weights of each query account's rows with instant in [start, end]."""
        if not self.key.size:
            return np.zeros(len(code))
        lo = np.searchsorted(self.key, self._key(code, start), side="left")
        hi = np.searchsorted(self.key, self._key(code, end), side="right")
        return self.cum[hi] - self.cum[lo]


def _first_where(code: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per account code (0 … max): the first row (rows sorted by account) where ``mask``."""
    out = np.full(int(code.max()) + 1 if code.size else 0, -1, np.int64)
    rows = np.flatnonzero(mask)
    first = np.r_[True, code[rows][1:] != code[rows][:-1]] if rows.size else np.zeros(0, bool)
    out[code[rows[first]]] = rows[first]
    return out


def _first_after(code: np.ndarray, day: np.ndarray, mask: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Per account: the day of its first row after row ``start[account]`` where ``mask`` (−1)."""
    after = mask & (start[code] >= 0) & (np.arange(len(code)) > start[code])
    first = _first_where(code, after)
    return np.where(first >= 0, day[np.maximum(first, 0)], -1)


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------

def evaluate(parts: Iterable[Part], settings: Settings, end: dt.date) -> Partial:
    """The merged partial of ``parts`` (each a partition of accounts), in their order."""
    total = Partial()
    for part in parts:
        total.merge(evaluate_part(part, settings, end), settings.top)
    return total


def evaluate_part(part: Part, settings: Settings, end: dt.date) -> Partial:
    acc = Accumulator(settings, end)
    acc.add_snapshots(part.snapshots.sort_by([("as_of", "ascending")]) if part.snapshots.num_rows else part.snapshots)
    acc.add_actions(part.actions)
    acc.add_events(part.events)
    return acc.finish()


def _estimate(kind: str, v: np.ndarray, confidence: float) -> dict:
    if kind == "proportion":
        e = st.proportion(v[1], v[0], confidence)
        return {"value": e.value, "low": e.low, "high": e.high, "n": int(v[0]), "k": int(v[1])}
    if kind == "mean":
        e = st.mean_interval(v[0], v[1], v[2], confidence)
        return {"value": e.value, "low": e.low, "high": e.high, "n": int(v[0])}
    if kind == "ratio":
        e = st.ratio_estimate(*v, confidence=confidence)
        return {"value": e.value, "low": e.low, "high": e.high, "n": int(v[0]), "x": float(v[1]), "y": float(v[2])}
    if kind == "rate":
        e = st.poisson_interval(v[0], v[1], confidence, per=10_000)
        return {"value": e.value, "low": e.low, "high": e.high, "n": int(v[1]), "k": int(v[0])}
    return {"value": float(v[1]), "low": math.nan, "high": math.nan, "n": int(v[0])}


def _difference(kind: str, a: np.ndarray, b: np.ndarray, confidence: float) -> dict | None:
    if kind == "proportion":
        d = st.proportion_difference(a[1], a[0], b[1], b[0], confidence)
    elif kind == "mean":
        d = st.welch(*a, *b, confidence=confidence)
    elif kind == "ratio":
        d = st.ratio_difference(tuple(a), tuple(b), confidence)
    elif kind == "rate":
        d = st.poisson_difference(a[0], a[1], b[0], b[1], confidence, per=10_000)
    else:
        return None
    return {"value": d.value, "low": d.low, "high": d.high, "statistic": d.statistic, "p": d.p, "test": d.test}


def summarize(partial: Partial, settings: Settings, end: dt.date) -> dict:
    """The figures of a merged partial: KPIs by arm (with differences against the control arm)
    and by arm × dimension, the series, the roll matrix, vintages and the lists. Plain types
    only (NaN for "no data"), in a fixed order: the same partial gives the same dict."""
    conf = settings.confidence
    arms = sorted({key[2] for key in partial.groups if key[1] == "all"} | {k[0] for k in partial.rolls},
                  key=lambda a: (_arm_rank(a), a))
    control = settings.control if settings.control in arms else (arms[0] if arms else None)
    currencies = _currencies({key[0].split(".", 1)[1] for key in partial.groups if "." in key[0]}
                             | {name.split(".", 1)[1] for name, _ in partial.series if "." in name}
                             | {key[1] for key in partial.rolls}
                             | {key[0].split(".", 1)[1] for key in partial.counts if "." in key[0]})
    kpis = {}
    for base, (kind, label, unit) in KPIS.items():
        variants = [(f"{base}.{c}", c) for c in currencies] if base in MONEY else [(base, None)]
        for kpi, cur in variants:
            if cur is not None and not any(key[0] == kpi for key in partial.groups):
                continue
            by_arm = {}
            for arm in arms:
                v = partial.groups.get((kpi, "all", arm, ""))
                if v is None:
                    continue
                row = _estimate(kind, v, conf)
                if arm != control and control is not None and (kpi, "all", control, "") in partial.groups:
                    row["vs_control"] = _difference(kind, v, partial.groups[(kpi, "all", control, "")], conf)
                by_arm[arm] = row
            breakdown = {}
            for (k, dim, arm, value), v in sorted(partial.groups.items(), key=lambda kv: kv[0][1:]):
                if k == kpi and dim != "all":
                    breakdown.setdefault(dim, []).append({"arm": arm, "group": value, **_estimate(kind, v, conf)})
            kpis[kpi] = {"kpi": base, "kind": kind, "currency": cur,
                         "label": label if cur is None else f"{label} ({cur})",
                         "unit": unit.replace("{cur}", cur or ""), "by_arm": by_arm, "by": breakdown}
    days = sorted({d for (_, d) in partial.series})
    series = {"dates": [str(dt.date(1970, 1, 1) + dt.timedelta(days=d)) for d in days]}

    def per_day(name):
        return [partial.series[(name, d)].tolist() if (name, d) in partial.series else None for d in days]

    for name in ("accounts", "overdue", "alerts"):
        series[name] = per_day(name)
    # amounts per currency: outstanding by bucket, and [outstanding, overdue accounts' outstanding]
    for name in ("balance", "overdue_balance"):
        series[name] = {c: per_day(f"{name}.{c}") for c in currencies
                        if any(k == f"{name}.{c}" for k, _ in partial.series)}
    rolls_count = np.zeros((9, 9))
    rolls_balance = {c: np.zeros((9, 9)) for c in currencies if any(k[1] == c for k in partial.rolls)}
    for (arm, cur, a, b), v in sorted(partial.rolls.items()):
        rolls_count[a, b] += v[0]
        rolls_balance[cur][a, b] += v[1]
    vintage = [{"month": _month_name(m), "as_of": str(dt.date(1970, 1, 1) + dt.timedelta(days=d)),
                "mob": _mob(m, d), "accounts": int(v[0]), "thirty_plus": int(v[1])}
               for (m, d), v in sorted(partial.vintage.items()) if m >= 0]
    counts = {f"{a}:{b}": v.tolist() for (a, b), v in sorted(partial.counts.items())}
    return {"end": str(end), "arms": arms, "control": control, "confidence": conf, "currencies": currencies,
            "settings": {k: getattr(settings, k) for k in _SETTINGS} | {"costs": {c: dict(v) for c, v in
                                                                                   settings.costs.items()}},
            "kpis": kpis, "series": series, "buckets": list(BUCKETS),
            "rolls": {"count": rolls_count[:8, :8].tolist(),
                      "balance": {c: m[:8, :8].tolist() for c, m in rolls_balance.items()}},
            "vintage": vintage, "counts": counts,
            "early_warning": [_plain(r) for _, r in partial.lists.get("early_warning", [])],
            "vehicle_alerts": [_plain(r) for _, r in partial.lists.get("vehicle_alerts", [])]}


def _currencies(found: set) -> list[str]:
    """The currencies seen, in the order they are shown (CNY, USD, then any other by name)."""
    return [c for c in CURRENCIES if c in found] + sorted(found - set(CURRENCIES))


def _arm_rank(arm: str) -> int:
    from .arms import ARMS
    return ARMS.index(arm) if arm in ARMS else len(ARMS)


def _month_name(m: int) -> str:
    return f"{1970 + m // 12}-{m % 12 + 1:02d}"


def _mob(month: int, day: int) -> int:
    d = dt.date(1970, 1, 1) + dt.timedelta(days=day)
    return (d.year - 1970) * 12 + d.month - 1 - month


def _plain(row: dict) -> dict:
    return {k: (float(v) if isinstance(v, float) else v) for k, v in row.items()}
