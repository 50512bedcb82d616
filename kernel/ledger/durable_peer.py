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

What durable_rules 2.0.28 did with this while it was written (bench/bench_patterns.py
measures the first two; each crash below was reproduced, every time, on a few facts):

- at most 1,024 sessions per ruleset (``MemoryError`` past that): a live matcher keeping
  each account's partial matches holds 1,024 accounts;
- ``none()`` is checked only when a partial match forms: a silence-breaking fact asserted
  after that does not withdraw it. Fed in arrival order (oldest first, as a live stream
  comes), a payment after the partial one does not stop the alert. So :meth:`run` asserts an
  account's facts **newest first**, then the clock (``order="oldest"`` shows the difference);
- a ``none()`` over alternatives joined by ``|`` ignores its ``m.t > …`` correlation (a
  payment before the partial one blocks the match): hence one ``none()`` per alternative;
- segmentation faults: in a rule with a ``none()``, with the clock as its first condition or
  the ``none()`` after the clock (on the plainest match: a promise, a partial payment, the
  clock); on ``delete_state`` of a session holding facts that had not all joined; on
  registering new rulesets between runs (after ten or so, with sessions holding facts that
  had not joined). So every ruleset is registered before the first fact
  (``accounts=`` says how many sets to make: one per :data:`DurablePatterns.ROTATE`
  accounts), sessions are never deleted, and the tests and the benchmark run durable_rules in
  a child process (:class:`DurableProcess`) so that a crash fails them and nothing else;
- ``durable.lang.get_host()`` starts threads that dispatch every ruleset's pending actions
  in a loop, beside the caller; this peer uses a host without them (:func:`_quiet_host`),
  so every action runs inside the ``assert_fact`` that caused it;
- the DSL's references are mutable: ``c.s0.t + window`` changes the object ``c.s0.t``
  returned, and a reused reference reads ``t.t`` ("property not found", error 311);
- a ruleset name can be registered once per process: names are versioned (``<pattern>_v<n>``).
"""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from typing import Iterable, Mapping, Sequence

from .patterns import PATTERNS, PREVIOUS, Pattern, Setting, window_us, windows

__all__ = ["DurablePatterns", "DurableProcess", "fact"]

_versions = itertools.count(1)


def unavailable() -> str | None:
    """Why durable_rules cannot run here, or None. Its C extension (2.0.28, unmaintained since
    2020) calls ``PyEval_CallObject``, which Python 3.13 removed: it installs there but does not
    import. It is the patterns' peer in tests and benchmarks only; postloan never needs it to
    decide."""
    try:
        import durable.engine  # noqa: F401
    except ImportError as e:
        return f"durable_rules does not import on this Python ({type(e).__name__}: {e})"
    return None


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
    """Every pattern as a durable_rules ruleset, registered for ``accounts`` accounts: one set
    of versioned rulesets per :data:`ROTATE` accounts, all registered now (see the module).

    :meth:`run` asserts each account's facts and the clock and reads its alerts, moving to the
    next set every :data:`ROTATE` accounts; ``keep=True`` stays on the current set, as a live
    matcher holding every account would, and fails past 1,024 accounts."""

    #: accounts per set of rulesets (durable_rules holds at most 1,024 sessions per ruleset)
    ROTATE = 1_000

    def __init__(self, settings, patterns: Sequence[Pattern] = PATTERNS, *, accounts: int = ROTATE):
        self.settings = settings
        self.patterns = tuple(patterns)
        self.kinds = {p.name: _kinds(p) for p in self.patterns}
        self.completed: dict[tuple[str, str], int] = {}
        self.assert_seconds = 0.0                   # time spent inside assert_fact
        self.facts = 0                              # facts asserted (the clocks included)
        values = windows(getattr(settings, "patterns", ()))
        self._sets = []
        for _ in range(max(1, -(-accounts // self.ROTATE))):
            version = next(_versions)
            names = {p.name: f"{p.name}_v{version}" for p in self.patterns}
            for p in self.patterns:
                self._register(p, values[p.name], names[p.name])
            self._sets.append(names)
        self.host = _quiet_host([n for names in self._sets for n in names.values()])
        self._set, self.sessions = 0, 0
        self._clock_ids = itertools.count()

    @property
    def names(self) -> dict[str, str]:
        """The rulesets in use: pattern → registered name."""
        return self._sets[self._set]

    def _register(self, p: Pattern, w: Mapping[str, float], name: str) -> None:
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
        with ruleset(name):
            when_all(*conditions)(_recorder(self.completed, p.name, last, silence))

    def run(self, histories: Mapping[str, Iterable[dict]], moment: int, *, keep: bool = False,
            order: str = "newest") -> dict:
        """Alerts of every account of ``histories`` (account → its facts, :func:`fact`) as of
        ``moment``: ``{account: {column: value}}`` with the state's alert columns (bool; the
        completion in µs or None). ``order``: the facts newest first (right, see the module)
        or ``"oldest"`` first, as a live stream would bring them."""
        from durable.engine import MessageNotHandledException
        sign = -1 if order == "newest" else 1
        assert_fact = self.host.assert_fact
        out = {}
        for account, facts in histories.items():
            if not keep and self.sessions >= self.ROTATE:
                if self._set + 1 >= len(self._sets):
                    raise RuntimeError(f"durable_rules peer made for {len(self._sets) * self.ROTATE} accounts: "
                                       f"create it with accounts= the number to run")
                self._set, self.sessions = self._set + 1, 0
            self.sessions += 1
            facts = list(facts)
            for p in self.patterns:
                ruleset, kinds = self.names[p.name], self.kinds[p.name]
                mine = sorted((f for f in facts if f["kind"] in kinds), key=lambda f: sign * f["t"])
                mine.append({"id": f"clock-{next(self._clock_ids)}", "kind": "CLOCK", "t": moment})
                mine = [{"sid": account, **f} for f in mine]
                start = time.perf_counter()
                for f in mine:
                    try:
                        assert_fact(ruleset, f)
                    except MessageNotHandledException:
                        pass                          # a fact no rule can use yet
                self.assert_seconds += time.perf_counter() - start
                self.facts += len(mine)
            row = {}
            for p in self.patterns:
                done = self.completed.pop((p.name, account), None)
                flag, at = p.columns
                row[flag], row[at] = done is not None, done
            out[account] = row
        return out


def _quiet_host(names: list[str]):
    """A durable_rules host holding the rulesets ``names`` just defined, without the
    background threads ``durable.lang.get_host()`` starts: every action runs in the caller's
    thread, inside ``assert_fact``."""
    from durable import engine, lang

    class QuietHost(engine.Host):
        def _run(self):
            pass

    host = QuietHost()
    definitions = {}
    for name in names:
        full_name, definition = lang._rulesets.pop(name).define()
        definitions[full_name] = definition
    host.register_rulesets(definitions)
    return host


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


# ------------------------------------------------------------------------------ a child process
class DurableProcess:
    """durable_rules in a child process (``python -m kernel.ledger.durable_peer``): a crash of
    the engine ends the child, and the caller gets an error instead of losing its process.

    ``peers`` names every peer the child makes at start (all rulesets before any fact, see
    the module): ``{name: {"ledger": {...[ledger] settings}, "patterns": [names] or None,
    "accounts": n}}``. :meth:`run` sends one job to a named peer and returns its alerts, the
    seconds spent in ``assert_fact`` and the facts asserted; :meth:`limit` fills a peer's
    sessions until durable_rules refuses one and returns how many it held."""

    def __init__(self, peers: Mapping[str, Mapping]):
        import kernel
        root = os.path.dirname(os.path.dirname(os.path.abspath(kernel.__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        self._child = subprocess.Popen([sys.executable, "-m", "kernel.ledger.durable_peer"], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True, env=env)
        self._ask({"peers": peers})

    def _ask(self, message: Mapping) -> dict:
        self._child.stdin.write(json.dumps(message) + "\n")
        self._child.stdin.flush()
        line = self._child.stdout.readline()
        if not line:
            code = self._child.wait(timeout=30)
            raise RuntimeError(f"the durable_rules child process ended (exit status {code})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"durable_rules child: {reply['error']}")
        return reply

    def run(self, peer: str, histories: Mapping[str, list[dict]], moment: int, *, keep: bool = False,
            order: str = "newest") -> tuple[dict, float, int]:
        reply = self._ask({"peer": peer, "histories": histories, "moment": moment, "keep": keep, "order": order})
        return reply["alerts"], reply["seconds"], reply["facts"]

    def limit(self, peer: str, at: int) -> tuple[int, str]:
        reply = self._ask({"peer": peer, "limit": at})
        return reply["sessions"], reply["refused"]

    def close(self) -> None:
        if self._child.poll() is None:
            self._child.stdin.close()
            self._child.wait(timeout=30)

    def __enter__(self) -> "DurableProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _serve() -> None:
    """The child's loop: one JSON message per line in, one reply per line out."""
    from .state import StateSettings
    by_name = {p.name: p for p in PATTERNS}
    peers: dict[str, DurablePatterns] = {}
    for line in sys.stdin:
        message = json.loads(line)
        try:
            if "peers" in message:
                for name, spec in message["peers"].items():
                    settings = StateSettings.from_config({"ledger": spec.get("ledger", {})})
                    chosen = tuple(by_name[n] for n in spec["patterns"]) if spec.get("patterns") else PATTERNS
                    peers[name] = DurablePatterns(settings, chosen, accounts=spec.get("accounts", 1_000))
                reply = {"ok": True}
            elif "limit" in message:
                peer = peers[message["peer"]]
                refused = ""
                for n in itertools.count():
                    try:
                        peer.run({f"limit-{n}": []}, message["limit"], keep=True)
                    except Exception as e:          # noqa: BLE001 (what durable_rules raises is the finding)
                        refused = type(e).__name__
                        break
                reply = {"sessions": n, "refused": refused}
            else:
                peer = peers[message["peer"]]
                before, facts = peer.assert_seconds, peer.facts
                alerts = peer.run(message["histories"], message["moment"], keep=message["keep"],
                                  order=message["order"])
                reply = {"alerts": alerts, "seconds": peer.assert_seconds - before, "facts": peer.facts - facts}
        except Exception as e:                        # noqa: BLE001 (reported to the parent)
            reply = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _serve()
