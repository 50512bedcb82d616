"""The temporal patterns in durable_rules: the peer the compiled matcher is measured against.

The design card named durable_rules (a Rete engine in C with a Python DSL) for temporal
patterns. This module translates each spec of :data:`kernel.ledger.patterns.PATTERNS` into
its DSL, so that the tests hold the compiled matcher equal to it and ``bench/bench_patterns.py``
times both on the same events. It is not used to decide: docs/ledger.md ("Temporal
patterns") says why, with the figures.

The translation, one ruleset and one rule per pattern:

- each account is a durable_rules session (``sid``); each of its events a *fact* with a
  unique ``id`` (a message identical to an earlier one is rejected otherwise) and its instant
  ``t`` in µs; facts, not events, since an event is consumed by its first match and the alert
  wants the latest one;
- step *i*: ``c.s<i> << ((kind == K) & conditions) | …``, after the step before
  (``m.t > c.s<i-1>.t``) and within its window (``m.t <= c.s<i-1>.t + window``);
- the silence: one ``none((kind == K) & … & (m.t > c.s<last>.t))`` per alternative;
- the moment: a ``CLOCK`` fact, the rule's last condition, within the look-back of the first
  step and, with a silence, at least its length after the last step. durable_rules' own
  timers run on the wall clock, which cannot say what was true as of another moment.

What durable_rules 2.0.28 does with this, found while writing it (bench/bench_patterns.py
measures the first two):

- at most 1,024 sessions per ruleset (``MemoryError`` past that): a live matcher that keeps
  each account's partial matches holds 1,024 accounts. ``run`` therefore deletes each
  account's session after reading its alerts (``keep=False``);
- ``none()`` is checked only when a partial match forms: a silence-breaking fact asserted
  after that does not withdraw it. Fed in arrival order (oldest first, as a live stream
  comes), a payment made after the partial one does not stop the alert. So ``run`` asserts an
  account's facts **newest first**, then the clock (``order="oldest"`` shows the difference);
- a ``none()`` over alternatives joined by ``|`` ignores its ``m.t > …`` correlation (a
  payment before the partial one blocks the match): hence one ``none()`` per alternative;
- with the clock as the first condition, or a ``none()`` after the clock, the engine crashed
  (segmentation fault) on the plainest match (a promise, a partial payment, the clock);
- the DSL's references are mutable: ``c.s0.t + window`` changes the object ``c.s0.t`` returned,
  and a reused reference reads ``t.t`` ("property not found", error 311): every reference
  below is taken afresh;
- a ruleset name can be registered once per process: every :class:`DurablePatterns`
  registers versioned names (``<pattern>_v<n>``).
"""
from __future__ import annotations

import itertools
from typing import Iterable, Mapping, Sequence

from .patterns import PATTERNS, PREVIOUS, Pattern, Setting, window_us, windows

__all__ = ["DurablePatterns", "fact"]

_versions = itertools.count(1)


def fact(i, kind: str, at: int, amount: float | None = None, channel: str | None = None,
         outcome: str | None = None, hours: float | None = None) -> dict:
    """One event as a durable_rules fact (``i``: its id, unique in the account; fields the
    event lacks are left out)."""
    out = {"id": i, "kind": kind, "t": at}
    for name, value in (("amount", amount), ("channel", channel), ("outcome", outcome), ("hours", hours)):
        if value is not None:
            out[name] = value
    return out


class DurablePatterns:
    """Every pattern as a durable_rules ruleset under a fresh versioned name.

    ``run(histories, moment)`` asserts each account's facts and the clock, reads its alerts
    and (``keep=False``) deletes its sessions, so any number of accounts can be run one after
    another; ``keep=True`` keeps every session, as a live matcher would, and fails past
    1,024 accounts."""

    def __init__(self, settings, patterns: Sequence[Pattern] = PATTERNS):
        from durable.lang import get_host
        self.settings = settings
        self.patterns = tuple(patterns)
        self.version = next(_versions)
        self.names = {p.name: f"{p.name}_v{self.version}" for p in self.patterns}
        self.kinds = {p.name: _kinds(p) for p in self.patterns}
        self.completed: dict[tuple[str, str], int] = {}
        values = windows(getattr(settings, "patterns", ()))
        for p in self.patterns:
            self._register(p, values[p.name])
        self.host = get_host()
        self._clock_ids = itertools.count()

    def _register(self, p: Pattern, w: Mapping[str, float]) -> None:
        from durable.lang import c, m, none, ruleset, when_all

        def ref(alias: str):
            return getattr(c, alias)                 # afresh: references are mutable

        def alternatives(any_of, prev: str | None):
            expr = None
            for alt in any_of:
                term = m.kind == alt.kind
                for field, op, value in alt.where:
                    other = getattr(ref(prev), field) if value is PREVIOUS else None
                    term = term & _condition(getattr(m, field), op, value, other, self.settings)
                expr = term if expr is None else (expr | term)
            return expr

        last = f"s{len(p.steps) - 1}"
        silence = window_us(p, p.silence.length, w) if p.silence else 0
        conditions = []
        for i, step in enumerate(p.steps):
            prev = f"s{i - 1}" if i else None
            expr = alternatives(step.any_of, prev)
            if i:
                expr = expr & (m.t > ref(prev).t)
                if step.within:
                    expr = expr & (m.t <= ref(prev).t + window_us(p, step.within, w))
            conditions.append(ref(f"s{i}") << expr)
        if p.silence is not None:
            for alt in p.silence.any_of:
                conditions.append(none(alternatives((alt,), None) & (m.t > ref(last).t)))
        clock = (m.kind == "CLOCK") & (m.t <= ref("s0").t + window_us(p, p.lookback, w))
        if p.silence is not None:
            clock = clock & (m.t >= ref(last).t + silence)
        conditions.append(ref("clock") << clock)
        with ruleset(self.names[p.name]):
            when_all(*conditions)(_recorder(self.completed, p.name, last, silence))

    def run(self, histories: Mapping[str, Iterable[dict]], moment: int, *, keep: bool = False,
            order: str = "newest") -> dict:
        """Alerts of every account of ``histories`` (account → its facts, :func:`fact`) as of
        ``moment``: ``{account: {column: value}}`` with the state's alert columns (bool; the
        completion in µs or None). ``order``: the facts newest first (right, see the module)
        or ``"oldest"`` first, as a live stream would bring them."""
        from durable.engine import MessageNotHandledException
        sign = -1 if order == "newest" else 1
        out = {}
        for account, facts in histories.items():
            facts = list(facts)
            for p in self.patterns:
                ruleset, kinds = self.names[p.name], self.kinds[p.name]
                mine = sorted((f for f in facts if f["kind"] in kinds), key=lambda f: sign * f["t"])
                mine.append({"id": f"clock-{next(self._clock_ids)}", "kind": "CLOCK", "t": moment})
                for f in mine:
                    try:
                        self.host.assert_fact(ruleset, {"sid": account, **f})
                    except MessageNotHandledException:
                        pass                          # a fact no rule can use yet
                if not keep:
                    self.host.delete_state(ruleset, account)
            row = {}
            for p in self.patterns:
                done = self.completed.pop((p.name, account), None)
                flag, at = p.columns
                row[flag], row[at] = done is not None, done
            out[account] = row
        return out


def _recorder(completed: dict, pattern: str, last: str, silence: int):
    """The rule's action: the latest completion per (pattern, account)."""
    def action(context):
        key = (pattern, context.s.sid)
        done = getattr(context, last).t + silence
        if completed.get(key, done) <= done:
            completed[key] = done
    return action


def _kinds(p: Pattern) -> frozenset[str]:
    parts = [s.any_of for s in p.steps] + ([p.silence.any_of] if p.silence else [])
    return frozenset(alt.kind for any_of in parts for alt in any_of)


def _condition(x, op: str, value, other, settings):
    if value is PREVIOUS:
        y = other
    elif isinstance(value, Setting):
        y = float(getattr(settings, value.name))
    else:
        y = value
    if op == "in":
        expr = None
        for v in y:
            expr = (x == v) if expr is None else (expr | (x == v))
        return expr
    return {"==": lambda: x == y, "!=": lambda: x != y, "<": lambda: x < y, "<=": lambda: x <= y,
            ">": lambda: x > y, ">=": lambda: x >= y}[op]()
