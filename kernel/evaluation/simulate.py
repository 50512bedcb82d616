"""A simulator of the collections loop: decide → act → events → state, day after day.

Debtors of a synthetic book (:func:`kernel.synth.generate`) answer the actions the pipeline
keeps with probabilities that depend on their risk segment, the channel and their arm — a
configured, **known** behaviour (:class:`Behaviour`), so that what evaluation measures can
be checked against the truth. Each simulated day:

1. the book of the day (DPD, overdue amounts, DPD 30 days before, repossession) is joined with
   each account's state from the ledger and decided by the pipeline (kernel, valuation,
   strategy, compliance, audit) at 10:00 Beijing time;
2. the run's snapshots and actions are kept (:class:`~kernel.evaluation.records.RunStore`);
3. every kept action is carried out: an SMS is delivered; a voice-bot call, phone call or
   field visit reaches the debtor (RIGHT_PARTY) with ``rpc[channel] × segment``, else someone
   else (WRONG_PARTY, ``wrong_party`` of the rest) or nobody (NO_ANSWER); a
   right-party contact brings a promise to pay with ``promise × segment + effect[arm]``; a
   promise is kept (paid in full on its date) with ``keep × segment``; a contact brings a
   complaint with ``complaint``; a repossession order brings the car in with ``repossess``,
   and it is sold ``sale_after_days`` later for ``sale_factor`` of its valuation;
4. debtors also pay by themselves (``self_cure``) and current accounts fall behind
   (``roll_in``); overdue accounts age a day;
5. the day's events go into the ledger, whose state the next day's decisions read.

Accounts the simulator never wrote an event for are decided without the ledger's state:
with ``[ledger] book_counters = "fallback"`` (the default) the ledger gives them the book's
columns anyway (docs/ledger.md, Precedence 1), so the result is the same and a day costs the
state of the accounts in play only.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import PostloanError
from .records import RunStore, action_records, snapshot

__all__ = ["Behaviour", "Simulator", "SimulationResult"]

UTC = dt.timezone.utc
DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000
SEGMENTS = ("PRIME", "NEAR_PRIME", "SUBPRIME", "DEEP_SUBPRIME")


@dataclass(frozen=True)
class Behaviour:
    """How the simulated debtors respond (probabilities per action or per day)."""

    #: a call or visit reaches the debtor (RIGHT_PARTY); otherwise NO_ANSWER
    rpc: Mapping[str, float] = field(default_factory=lambda: {"VOICE_BOT": 0.30, "PHONE": 0.40, "FIELD_VISIT": 0.60})
    #: of the calls and visits that do not reach the debtor, the share someone else answers
    wrong_party: float = 0.15
    #: a right-party contact brings a promise to pay
    promise: float = 0.45
    #: a promise is kept (paid in full on its date)
    keep: float = 0.65
    #: multiplier of rpc, promise and keep by risk segment
    segment: Mapping[str, float] = field(default_factory=lambda: {"PRIME": 1.2, "NEAR_PRIME": 1.0, "SUBPRIME": 0.85,
                                                                  "DEEP_SUBPRIME": 0.7})
    #: the true effect of each arm: added to a probability ("rpc", "promise", "keep")
    effects: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    complaint: float = 0.002
    #: an overdue debtor pays everything overdue by himself, per day
    self_cure: float = 0.01
    #: a current account falls one installment behind, per day
    roll_in: float = 0.0015
    #: a repossession order brings the car in, per day it is kept
    repossess: float = 0.25
    sale_after_days: int = 10
    sale_factor: tuple[float, float] = (0.80, 1.00)

    def probability(self, what: str, base: np.ndarray | float, segment: np.ndarray, arm: np.ndarray) -> np.ndarray:
        mult = np.array([self.segment.get(s, 1.0) for s in SEGMENTS] + [1.0])[segment]
        p = np.asarray(base, np.float64) * mult
        for name, effect in self.effects.items():
            p = p + np.where(arm == name, float(effect.get(what, 0.0)), 0.0)
        return np.clip(p, 0.0, 1.0)


@dataclass
class SimulationResult:
    days: int
    accounts: int
    events: int
    actions: int
    runs: list[dt.date]


class Simulator:
    """Runs ``days`` of the loop on ``book`` with ``pipeline`` (whose ledger receives the
    events); keeps the runs in ``runs`` (a :class:`RunStore`, default: the pipeline ledger's
    store). ``seed`` fixes every draw."""

    def __init__(self, pipeline, book: pa.Table, start: dt.date, *, behaviour: Behaviour | None = None,
                 seed: int = 0, runs: RunStore | None = None, known: bool = False):
        if pipeline.ledger is None:
            raise PostloanError("the simulator needs a pipeline with a ledger (Pipeline(kernel, ledger=...))")
        from ..pipeline import Pipeline
        self.pipeline = pipeline
        if pipeline.ledger.book is None:
            # each day reads the state of the accounts in play: every account's events kept in
            # memory, only the day's new events read from the store (kernel.ledger.book)
            pipeline.ledger.keep_events()
        config = dict(pipeline.config)
        config["ledger"] = {k: v for k, v in (config.get("ledger") or {}).items() if k != "store"}
        self.plain = Pipeline(pipeline.kernel, plugins=pipeline.plugins, config=config,
                              audit_path=pipeline.audit.path)
        self.plain.audit = pipeline.audit
        self.behaviour = behaviour or Behaviour()
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.runs = runs or RunStore(pipeline.ledger)
        self.day = start
        self.book = book.combine_chunks()
        n = book.num_rows
        self.n = n
        self.ids = np.asarray(book["account_id"].to_numpy(zero_copy_only=False), dtype=object)
        self.dpd = np.asarray(book["dpd"].to_numpy(), np.int64).copy()
        self.installment = np.nan_to_num(np.asarray(book["installment_amount"].to_numpy(zero_copy_only=False), np.float64))
        self.overdue_n = np.asarray(book["overdue_installments"].to_numpy(), np.int64).copy()
        self.overdue = np.asarray(book["overdue_amount"].to_numpy(), np.float64).copy()
        self.repossessed = np.asarray(book["repossessed"].to_numpy(zero_copy_only=False), bool).copy()
        # accounts whose state comes from the ledger (known: every account, e.g. a ledger that
        # holds the book's history already)
        self.touched = np.full(n, bool(known))
        # accounts whose gate columns the ledger has: registered once (the simulator never
        # changes them — _book_today replaces DPD, overdue and repossession columns only — so
        # registering every day again would read and compare 100,000 rows to write none)
        self.registered = np.zeros(n, bool)
        self.promise_day = np.full(n, -1, np.int64)        # a kept promise pays on this day
        self.sale_day = np.full(n, -1, np.int64)
        self.sale_amount = np.zeros(n)
        then = np.asarray(book["dpd_30d_ago"].to_numpy(), np.int64)
        # DPD of the 30 days before the start, consistent with today's and 30 days ago
        j = np.arange(30, 0, -1)[:, None]
        now = self.dpd[None, :]
        # a ring of the last 30 days' DPD: row (day + k) % 30 holds the DPD of k days ago … the
        # oldest row is read as "30 days ago", then overwritten with today's
        self.history = np.where(now >= j, now - j, np.where(then[None, :] > 0, np.maximum(then[None, :] + 30 - j, 0), 0)
                                ).astype(np.int32)
        self.history[0] = then
        self._oldest = 0
        self._events: list[dict] = []
        self._count = 0
        self.events_written = 0
        self.actions_seen = 0
        self.dates: list[dt.date] = []

    # -- one day -------------------------------------------------------------------------------
    def run(self, days: int) -> SimulationResult:
        for _ in range(days):
            self.step()
        return SimulationResult(days, self.n, self.events_written, self.actions_seen, list(self.dates))

    def _book_today(self) -> pa.Table:
        b = self.book
        ratio = np.where(self.overdue_n > 0, 1.0, 0.0)
        cols = {"dpd": pa.array(self.dpd), "dpd_30d_ago": pa.array(self.history[self._oldest]),
                "overdue_installments": pa.array(self.overdue_n), "overdue_amount": pa.array(self.overdue),
                "overdue_principal": pa.array(self.overdue * 0.85 * ratio),
                "overdue_interest": pa.array(self.overdue * 0.15 * ratio),
                "max_dpd_12m": pa.array(np.maximum(np.asarray(b["max_dpd_12m"].to_numpy(), np.int64), self.dpd)),
                "repossessed": pa.array(self.repossessed)}
        for name, values in cols.items():
            b = b.set_column(b.schema.get_field_index(name), name, values.cast(b.schema.field(name).type))
        return b

    def step(self, decided: list | None = None, now: dt.datetime | None = None) -> None:
        """One day. ``decided``: the day's decisions made already — ``(rows, joined,
        result)`` per batch, ``rows`` the batch's indices in the book — to record and act on
        instead of deciding (``postloan demo`` decides its first day itself)."""
        from ..synth import snapshot_at
        as_of = self.day
        now = now or snapshot_at(as_of)
        if decided is None:
            book = self._book_today()
            decided = []
            for pipe, rows in ((self.pipeline, np.flatnonzero(self.touched)), (self.plain, np.flatnonzero(~self.touched))):
                if rows.size == 0:
                    continue
                part = book.take(pa.array(rows))
                if pipe is self.pipeline:
                    new = ~self.registered[rows]
                    if new.any():
                        pipe.ledger.register(part.filter(pa.array(new)))
                        self.registered[rows[new]] = True
                joined = pipe.with_state(part, as_of, now, register=False)
                result = pipe.act(joined, pipe.kernel.decide(joined, as_of), as_of, now)
                decided.append((rows, joined, result))
        else:                                   # (joined by Pipeline.with_state, which registered them)
            for rows, _, _ in decided:
                self.registered[rows] = True
        snaps = [snapshot(j, r.decisions, as_of, now, self.pipeline.kernel) for _, j, r in decided]
        acts = [action_records(r.actions, as_of, now) for _, _, r in decided]
        self.runs.record_run(as_of, pa.concat_tables(snaps), pa.concat_tables(acts))
        self.dates.append(as_of)
        day = (as_of - dt.date(1970, 1, 1)).days
        now_us = int(now.timestamp() * 1_000_000)
        for rows, joined, result in decided:
            self._act(rows, result, now_us, day)
        self._age(day, now_us)
        self._flush(now + dt.timedelta(days=1))
        self.history[self._oldest] = self.dpd
        self._oldest = (self._oldest + 1) % self.history.shape[0]
        self.day = as_of + dt.timedelta(days=1)

    def _emit(self, rows: np.ndarray, kind: str, at: np.ndarray, agent: str, **columns) -> None:
        if rows.size == 0:
            return
        k = np.arange(self._count, self._count + rows.size)
        self._count += rows.size
        self._events.append({"event_id": np.array([f"SIM{self.seed}-{i}" for i in k.tolist()], dtype=object),
                             "account_id": self.ids[rows], "kind": np.full(rows.size, kind, dtype=object),
                             "at": np.asarray(at, np.int64), "agent": np.full(rows.size, agent, dtype=object),
                             **columns})
        self.touched[rows] = True

    def _act(self, rows: np.ndarray, result, now_us: int, day: int) -> None:
        a = result.actions
        if a.num_rows == 0:
            return
        self.actions_seen += a.num_rows
        keep = np.asarray(pc.equal(a["outcome"].cast(pa.string()), "KEEP").to_numpy(zero_copy_only=False), bool)
        a = a.filter(pa.array(keep))
        d = result.decisions
        local = np.asarray(pc.index_in(a["account_id"], value_set=d["account_id"].combine_chunks())
                           .to_numpy(zero_copy_only=False), np.int64)
        account = rows[local]
        kind = np.asarray(a["action"].cast(pa.string()).to_numpy(zero_copy_only=False)).astype(str)
        earliest = np.asarray(a["earliest_at"].cast(pa.int64()).to_numpy(zero_copy_only=False), np.int64)
        segment = _codes(d["risk_segment.segment"], SEGMENTS)[local] if "risk_segment.segment" in d.column_names \
            else np.full(local.size, 1)
        arm = np.asarray(d["experiment.arm"].to_numpy(zero_copy_only=False)).astype(str)[local] \
            if "experiment.arm" in d.column_names else np.full(local.size, "NONE")
        rng, b = self.rng, self.behaviour
        at = np.minimum(np.maximum(earliest, now_us) + (rng.random(local.size) * 8 * HOUR_US).astype(np.int64),
                        now_us + 18 * HOUR_US)
        sms = kind == "SMS"
        self._emit(account[sms], "CONTACT_ATTEMPT", at[sms], "sms-gateway", channel=_full(sms, "SMS"),
                   outcome=_full(sms, "DELIVERED"))
        for channel, agent in (("VOICE_BOT", "dialer"), ("PHONE", "dialer"), ("FIELD_VISIT", "field-team")):
            sel = np.flatnonzero(kind == channel)
            if sel.size == 0:
                continue
            p = b.probability("rpc", b.rpc.get(channel, 0.0), segment[sel], arm[sel])
            reached = rng.random(sel.size) < p
            wrong = ~reached & (rng.random(sel.size) < b.wrong_party)
            outcome = np.where(reached, "RIGHT_PARTY", np.where(wrong, "WRONG_PARTY", "NO_ANSWER")).astype(object)
            self._emit(account[sel], "CONTACT_ATTEMPT", at[sel], agent, channel=_full(sel, channel), outcome=outcome)
            complain = rng.random(sel.size) < b.complaint
            self._emit(account[sel[complain]], "COMPLAINT_OPENED", at[sel[complain]] + HOUR_US, "customer-service")
            hit = sel[reached]
            promised = hit[rng.random(hit.size) < b.probability("promise", b.promise, segment[hit], arm[hit])]
            promised = promised[self.overdue[account[promised]] > 0]
            acc = account[promised]
            days = rng.integers(1, 6, promised.size)
            self._emit(acc, "PROMISE_TO_PAY", at[promised] + 300_000_000, agent,
                       amount=self.overdue[acc].copy(), promise_date=(day + days).astype(np.int64))
            kept = rng.random(promised.size) < b.probability("keep", b.keep, segment[promised], arm[promised])
            self.promise_day[acc[kept]] = day + days[kept]
        order = np.flatnonzero(kind == "REPOSSESSION")
        if order.size:
            taken = order[(rng.random(order.size) < b.repossess) & ~self.repossessed[account[order]]]
            acc = account[taken]
            self._emit(acc, "REPOSSESSED", at[taken], "recovery-agency")
            self.repossessed[acc] = True
            price = np.nan_to_num(np.asarray(d["valuation.price"].to_numpy(zero_copy_only=False), np.float64)[local[taken]]) \
                if "valuation.price" in d.column_names else np.zeros(acc.size)
            low, high = b.sale_factor
            self.sale_day[acc] = day + b.sale_after_days
            self.sale_amount[acc] = np.maximum(price * rng.uniform(low, high, acc.size), 1.0)

    def _age(self, day: int, now_us: int) -> None:
        """Payments (kept promises and self-cures) cure; the rest age a day; some fall behind;
        cars due for sale are sold."""
        rng, b = self.rng, self.behaviour
        late = self.dpd > 0
        pays = (self.promise_day == day + 1) & late
        pays |= late & (rng.random(self.n) < b.self_cure) & ~self.repossessed
        rows = np.flatnonzero(pays)
        at = now_us + 20 * HOUR_US + (rng.random(rows.size) * 3 * HOUR_US).astype(np.int64)
        self._emit(rows, "PAYMENT", at, "payments", amount=np.maximum(self.overdue[rows], 1.0))
        self.dpd[rows], self.overdue[rows], self.overdue_n[rows] = 0, 0.0, 0
        self.promise_day[self.promise_day <= day + 1] = -1
        aging = (self.dpd > 0) & ~pays
        self.dpd[aging] += 1
        fresh = np.flatnonzero((self.dpd == 0) & ~pays & (rng.random(self.n) < b.roll_in))
        self.dpd[fresh], self.overdue_n[fresh], self.overdue[fresh] = 1, 1, self.installment[fresh]
        due = (self.dpd % 30 == 1) & (self.dpd > 1)                 # a further installment falls due
        self.overdue_n[due] += 1
        self.overdue[due] += self.installment[due]
        sold = np.flatnonzero(self.sale_day == day + 1)
        self._emit(sold, "VEHICLE_SOLD", now_us + 6 * HOUR_US + np.zeros(sold.size, np.int64), "auction",
                   amount=self.sale_amount[sold])
        self.sale_day[sold] = -1

    def _flush(self, until: dt.datetime) -> None:
        if not self._events:
            return
        names = ("event_id", "account_id", "kind", "at", "amount", "promise_date", "channel", "outcome", "agent")
        cols: dict[str, list] = {n: [] for n in names}
        for part in self._events:
            m = len(part["event_id"])
            for name in names:
                cols[name].append(part.get(name, np.full(m, None, dtype=object)))
        data = {n: np.concatenate(v) for n, v in cols.items()}
        table = pa.table({
            "event_id": pa.array(data["event_id"], pa.string()), "account_id": pa.array(data["account_id"], pa.string()),
            "kind": pa.array(data["kind"], pa.string()),
            "at": pa.array(data["at"].astype(np.int64), pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "amount": pa.array([None if v is None or v != v else float(v) for v in data["amount"]], pa.float64()),
            "promise_date": pa.array([None if v is None else int(v) for v in data["promise_date"]], pa.int32())
            .cast(pa.date32()),
            "channel": pa.array(data["channel"], pa.string()), "outcome": pa.array(data["outcome"], pa.string()),
            "agent": pa.array(data["agent"], pa.string())})
        result = self.pipeline.ledger.ingest(table, now=until)
        if result.rejected:
            first = result.rejected[0]
            raise PostloanError(f"the simulator wrote an event the ledger rejected: {first.reason}")
        self.events_written += table.num_rows
        self._events = []


def _full(mask: np.ndarray, value: str) -> np.ndarray:
    n = int(mask.sum()) if mask.dtype == bool else mask.size
    return np.full(n, value, dtype=object)


def _codes(col, members) -> np.ndarray:
    values = np.asarray(pc.index_in(col.cast(pa.string()), value_set=pa.array(members)).fill_null(len(members))
                        .to_numpy(zero_copy_only=False), np.int64)
    return values


def behaviour_from(config: Mapping[str, Any] | None) -> Behaviour:
    """``[simulation]`` of a configuration as a :class:`Behaviour` (missing keys: defaults)."""
    section = dict((config or {}).get("simulation") or {})
    allowed = set(Behaviour.__dataclass_fields__)
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise PostloanError(f"[simulation] {unknown[0]!r}: unknown setting (settings: {', '.join(sorted(allowed))})")
    if "sale_factor" in section:
        section["sale_factor"] = tuple(section["sale_factor"])
    return Behaviour(**section)
