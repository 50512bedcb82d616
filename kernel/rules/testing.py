"""Running rulesets' ``tests:`` examples (``postloan test``).

Every example of every ruleset runs on the compiled engine, each ruleset on its own (its
``given`` values stand for all its inputs, upstream outputs included). All rulesets are compiled
into one kernel in which each reads private columns, so a bundle's examples cost one Numba
compilation, not one per ruleset.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import pyarrow as pa

from . import ir
from .columns import arrow_type
from .ruleset import Ruleset

__all__ = ["ExampleResult", "run_examples"]

_DEFAULT_AS_OF = dt.date(2000, 1, 1)      # examples that do not read as_of never see it


@dataclass
class ExampleResult:
    ruleset: str
    name: str
    file: str
    line: int
    column: int
    mismatches: list          # (output, expected text, got text)

    @property
    def passed(self) -> bool:
        return not self.mismatches

    def __str__(self) -> str:
        if self.passed:
            return f"{self.file}:{self.line}:{self.column}: ok: {self.ruleset}: {self.name}"
        parts = "; ".join(f"{out}: expected {exp}, got {got}" for out, exp, got in self.mismatches)
        return f"{self.file}:{self.line}:{self.column}: FAILED: {self.ruleset}: test `{self.name}`: {parts}"


def _column(name: str, values: list, t: ir.Type) -> pa.Array:
    if t.kind == "enum":
        return pa.array([None if v is None else t.members[v] for v in values], pa.string())
    if t.kind == "date":
        return pa.array(values, pa.int32()).cast(pa.date32())
    return pa.array(values, arrow_type(t))


def _text(value, t: ir.Type) -> str:
    return ir.format_value(value, t)


def _same(expected, got, t: ir.Type) -> bool:
    if expected is None or got is None:
        return expected is None and got is None
    if t.kind == "float":
        return math.isclose(expected, got, rel_tol=1e-9, abs_tol=1e-12)
    return expected == got


def run_examples(rulesets: list[Ruleset], engine: str = "compiled") -> list[ExampleResult]:
    """Run every example of ``rulesets``; one result per example, in file order."""
    from ..codegen import Plan, RulesetNode, compile_plan
    with_tests = [rs for rs in rulesets if rs.tests]
    if not with_tests:
        return []
    # one private column per (ruleset, input): rulesets never share or clash
    private = {rs.name: {i.name: f"{rs.name}/{i.name}" for i in rs.ir.inputs} for rs in with_tests}
    kernel = None
    if engine == "compiled":
        nodes = [RulesetNode(rs.ir, {name: ("column", col) for name, col in private[rs.name].items()})
                 for rs in with_tests]
        kernel = compile_plan(Plan.build(nodes))
    results: list[ExampleResult] = []
    for rs in with_tests:
        cases = rs.tests
        groups: dict = {}
        for k, case in enumerate(cases):
            groups.setdefault(case.as_of, []).append(k)
        got_rows: dict[int, dict] = {}
        for as_of_days, indices in groups.items():
            as_of = _DEFAULT_AS_OF if as_of_days is None else \
                dt.date.fromordinal(as_of_days + ir.EPOCH_ORDINAL)
            got = _run(rs, [cases[k] for k in indices], kernel, private[rs.name], as_of, engine)
            for k, row in zip(indices, got):
                got_rows[k] = row
        for k, case in enumerate(cases):
            got = got_rows[k]
            mismatches = []
            for out, expected in case.expect.items():
                if out == "rule":
                    if expected != got["rule"]:
                        mismatches.append(("rule", _rule_text(expected), _rule_text(got["rule"])))
                    continue
                t = rs.ir.output(out).type
                if not _same(expected, got[out], t):
                    mismatches.append((out, _text(expected, t), _text(got[out], t)
                                       + f" (rule {_rule_text(got['rule'])})"))
            results.append(ExampleResult(rs.name, case.name, rs.file, case.pos[0], case.pos[1], mismatches))
    return results


def _rule_text(rule) -> str:
    if isinstance(rule, list):
        return "[" + ", ".join(rule) + "]"
    return "none" if rule is None else str(rule)


def _run(rs: Ruleset, cases, kernel, columns: dict, as_of: dt.date, engine: str) -> list[dict]:
    """Outputs (internal values) and rule of ``rs`` for each example."""
    if engine == "reference":
        from .reference import evaluate_rules
        days = (as_of - dt.date(1970, 1, 1)).days
        return [evaluate_rules(rs.ir, case.given, days) for case in cases]
    arrays, names = [], []
    for name, col in columns.items():
        t = rs.ir.input_type(name)
        arrays.append(_column(col, [case.given.get(name) for case in cases], t))
        names.append(col)
    # every other ruleset's private columns are absent from this batch: give them nulls
    schema_names = set(names)
    for slot in kernel.input_slots:
        if slot.name not in schema_names:
            arrays.append(pa.nulls(len(cases), arrow_type(slot.type) if slot.type.kind != "enum" else pa.string()))
            names.append(slot.name)
            schema_names.add(slot.name)
    batch = pa.RecordBatch.from_arrays(arrays, names=names)
    out = dict(kernel.run_batch(batch, as_of))
    rows = []
    for r in range(len(cases)):
        row = {}
        for o in rs.ir.outputs:
            value = out[f"{rs.name}.{o.name}"][r].as_py()
            row[o.name] = _internal(value, o.type)
        rule = out[f"{rs.name}.rule"][r].as_py()
        row["rule"] = rule
        rows.append(row)
    return rows


def _internal(value, t: ir.Type):
    if value is None:
        return None
    if t.kind == "enum":
        return t.members.index(value)
    if t.kind == "date":
        return value.toordinal() - ir.EPOCH_ORDINAL
    return value
