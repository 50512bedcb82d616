"""Bundle-level scenarios: given one account's book (and state) columns, expect the outputs of
several rulesets and models — the end-to-end test a ruleset's own ``tests:`` cannot be, since
each ruleset is tested alone (docs/rule-author-guide.md, section 9).

A scenario file is named ``*.scenarios.yaml`` and lies anywhere in a bundle's folders (the
bundle loader skips it); ``postloan test`` runs every one it finds after the rulesets'
examples::

    scenarios:
      - name: exactly 31 days past due goes to the field team
        as_of: 2026-11-28
        given: {dpd: 31, overdue_amount: 8000, country: CN}
        expect: {dpd_bucket.bucket: M2, collection_tier.tier: SEVERE}

``given`` names book or state columns (the bundle's inputs); those left out are null, as in a
ruleset's examples. ``expect`` names decision columns (``<ruleset>.<output>``,
``<model>.<output>``, ``<ruleset>.rule``); only those are checked. Every problem is reported
with its file, line and column, names with "did you mean".
"""
from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from .rules.diagnostics import Diagnostic, Diagnostics, RulesetError, did_you_mean
from .rules.expressions import literal_value
from .rules.ir import Type

__all__ = ["SUFFIX", "Scenario", "scenario_files", "load_scenarios", "run_scenarios"]

SUFFIX = ".scenarios.yaml"
SCENARIO_KEYS = ("name", "as_of", "given", "expect")


@dataclass
class Scenario:
    name: str
    file: str
    line: int
    column: int
    as_of: dt.date
    given: dict            # input name -> internal value (see kernel.rules.expressions.literal_value)
    expect: dict           # decision column -> (expected Python value, its Type or None for .rule)


def scenario_files(paths=None) -> list[Path]:
    """Every ``*.scenarios.yaml`` under ``paths`` (files or folders; default: the shipped bundle's)."""
    from .bundle import default_bundle_paths
    if paths is None:
        paths = default_bundle_paths()
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.rglob(f"*{SUFFIX}") if f.is_file()
                            and not any(part.startswith(".") for part in f.relative_to(p).parts))
        elif p.name.endswith(SUFFIX):
            found.append(p)
    return list(dict.fromkeys(f.resolve() for f in found))


def load_scenarios(path, inputs: dict[str, Type], outputs: dict[str, Type], rulesets) -> list[Scenario]:
    """The scenarios of one file, checked against the bundle: its ``inputs`` (name → Type), its
    decision ``outputs`` (column → Type) and its ``rulesets`` (names, for ``<ruleset>.rule``).
    Raises :class:`RulesetError` with every problem."""
    from .rules.parse import Mapping, Scalar, Sequence, parse_yaml
    file = str(path)
    d = Diagnostics(file)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RulesetError([Diagnostic(file, 1, 1, None, f"cannot read: {e}")]) from None
    root = parse_yaml(text, d)
    if root is None:
        raise RulesetError(d.items)
    items = root.get("scenarios") if isinstance(root, Mapping) else None
    if not isinstance(items, Sequence):
        raise RulesetError([Diagnostic(file, root.pos[0], root.pos[1], None,
                                       "a scenario file is a mapping with `scenarios:`, a list of "
                                       "{name, as_of, given, expect}")])
    rule_columns = {f"{r}.rule" for r in rulesets}
    known_outputs = list(outputs) + sorted(rule_columns)
    found = []
    for n, node in enumerate(items.items, 1):
        if not isinstance(node, Mapping):
            d.error(node.pos, f"scenario {n}: expected a mapping (name, as_of, given, expect)")
            continue
        for key, (pos, _) in node.items.items():
            if key not in SCENARIO_KEYS:
                d.error(pos, f"scenario {n}: unknown key `{key}`{did_you_mean(str(key), SCENARIO_KEYS)} "
                             f"(expected one of: {', '.join(SCENARIO_KEYS)})")
        name_node = node.get("name")
        name = str(name_node.value) if isinstance(name_node, Scalar) else f"scenario {n}"
        label = f"scenario `{name}`"
        as_of = dt.date(2000, 1, 1)
        as_of_node = node.get("as_of")
        if as_of_node is None:
            d.error(node.pos, f"{label}: missing `as_of: YYYY-MM-DD` (the decision date)")
        else:
            value = as_of_node.value if isinstance(as_of_node, Scalar) else None
            try:
                as_of = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
            except ValueError:
                d.error(as_of_node.pos, f"{label}: as_of: expected a date YYYY-MM-DD, got {value!r}")
        scenario = Scenario(name, file, node.pos[0], node.pos[1], as_of, {}, {})
        for key, known in (("given", inputs), ("expect", outputs)):
            m = node.get(key)
            if not isinstance(m, Mapping):
                d.error(node.pos if m is None else m.pos, f"{label}: `{key}:` maps names to values")
                continue
            for column, (pos, vnode) in m.items.items():
                column = str(column)
                if key == "expect" and column in rule_columns:
                    scenario.expect[column] = (_plain(vnode), None)
                    continue
                if column not in known:
                    what = "an input of the bundle (a book or state column)" if key == "given" else "a decision column"
                    d.error(pos, f"{label}: `{column}` is not {what}"
                                 f"{did_you_mean(column, known if key == 'given' else known_outputs)}")
                    continue
                t = known[column]
                if not isinstance(vnode, Scalar):
                    d.error(vnode.pos, f"{label}: `{column}` needs a literal value")
                    continue
                try:
                    internal = vnode.value if t.kind == "string" else literal_value(vnode.value, t)
                except ValueError as e:
                    d.error(vnode.pos, f"{label}: `{column}`: {e}")
                    continue
                if key == "given":
                    scenario.given[column] = internal
                else:
                    scenario.expect[column] = (_python(internal, t), t)
        found.append(scenario)
    if d.has_errors:
        raise RulesetError(d.items)
    return found


def _plain(node):
    from .rules.parse import Scalar, Sequence
    if isinstance(node, Sequence):
        return [_plain(i) for i in node.items]
    return node.value if isinstance(node, Scalar) else None


def _python(internal, t: Type):
    """An internal value as the decision table gives it (enum → label, date → date)."""
    if internal is None:
        return None
    if t.kind == "enum":
        return t.members[internal]
    if t.kind == "date":
        return dt.date(1970, 1, 1) + dt.timedelta(days=internal)
    return internal


def _table(scenarios: list[Scenario], inputs: dict[str, Type]) -> pa.Table:
    from .rules.columns import arrow_type
    from .rules.testing import _column
    arrays = []
    for name, t in inputs.items():
        values = [s.given.get(name) for s in scenarios]
        if t.kind == "string":
            arrays.append(pa.array(values, pa.string()))
        else:
            arrays.append(_column(name, values, t) if t.kind in ("enum", "date") else pa.array(values, arrow_type(t)))
    return pa.Table.from_arrays(arrays, names=list(inputs))


def _same(expected, got, t: Type | None) -> bool:
    if expected is None or got is None:
        return expected is None and got is None
    if t is not None and t.kind == "float":
        return math.isclose(expected, got, rel_tol=1e-9, abs_tol=1e-12)
    return expected == got


def _text(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return "null" if value is None else str(value)


def run_scenarios(kernel, scenarios: list[Scenario], engine: str = "compiled") -> list:
    """Decide every scenario's account with ``kernel`` (compiled, or the reference engines) and
    compare: one :class:`~kernel.rules.testing.ExampleResult` per scenario, in file order."""
    from .rules.testing import ExampleResult
    results = []
    by_day: dict[dt.date, list[int]] = {}
    for i, s in enumerate(scenarios):
        by_day.setdefault(s.as_of, []).append(i)
    decided: dict[int, dict] = {}
    for as_of, indices in by_day.items():
        table = _table([scenarios[i] for i in indices], kernel.inputs)
        out = kernel.decide(table, as_of, engine=engine)
        rows = out.to_pylist()
        for i, row in zip(indices, rows):
            decided[i] = row
    for i, s in enumerate(scenarios):
        got = decided[i]
        mismatches = []
        for column, (expected, t) in s.expect.items():
            value = got.get(column)
            if not _same(expected, value, t):
                rule = column.split(".", 1)[0] + ".rule"
                why = f" (rule {_text(got[rule])})" if rule in got and rule != column else ""
                mismatches.append((column, _text(expected), _text(value) + why))
        results.append(ExampleResult("scenario", s.name, s.file, s.line, s.column, mismatches))
    return results
