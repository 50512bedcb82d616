"""The reference interpreter: the IR evaluated one row at a time in plain Python.

It is the meaning of the language. The compiled engine must agree with it on every input
(differential tests), and ``Kernel.explain`` uses it to show which rule won and what it read.
Values use the IR's internal representation (see :mod:`.ir`): ``None`` is null.
"""
from __future__ import annotations

import datetime as dt
import math

from . import ir

__all__ = ["evaluate_expr", "evaluate_rules", "names_read", "UNIQUE_CONFLICT"]

UNIQUE_CONFLICT = "!unique"


def _int(v):
    return v if ir.INT_MIN <= v <= ir.INT_MAX else None


def _float(v):
    return None if v != v else v          # NaN is null


def _date(v):
    return v if ir.MIN_DATE <= v <= ir.MAX_DATE else None


def _civil(days):
    if not ir.MIN_DATE <= days <= ir.MAX_DATE:
        return None
    return dt.date.fromordinal(days + ir.EPOCH_ORDINAL)


def evaluate_expr(e: ir.Expr, row: dict, as_of: int):
    t = type(e)
    if t is ir.Const:
        return e.value
    if t is ir.Name:
        return row.get(e.name)
    if t is ir.AsOf:
        return as_of
    if t is ir.ToFloat:
        v = evaluate_expr(e.arg, row, as_of)
        return None if v is None else float(v)
    if t is ir.Compare:
        a = evaluate_expr(e.left, row, as_of)
        b = evaluate_expr(e.right, row, as_of)
        if a is None or b is None:
            return None
        op = e.op
        return (a < b if op == "<" else a <= b if op == "<=" else a > b if op == ">" else
                a >= b if op == ">=" else a == b if op == "==" else a != b)
    if t is ir.Logic:
        unknown = False
        decisive = e.op == "or"          # True decides `or`, False decides `and`
        for arg in e.args:
            v = evaluate_expr(arg, row, as_of)
            if v is None:
                unknown = True
            elif v == decisive:
                return decisive
        return None if unknown else not decisive
    if t is ir.Arith:
        a = evaluate_expr(e.left, row, as_of)
        b = evaluate_expr(e.right, row, as_of)
        if a is None or b is None:
            return None
        return _arith(e, a, b)
    if t is ir.Unary:
        v = evaluate_expr(e.arg, row, as_of)
        if v is None:
            return None
        if e.op == "not":
            return not v
        r = -v if e.op == "neg" else abs(v)
        return _int(r) if e.type == ir.INT else r
    if t is ir.InList:
        v = evaluate_expr(e.arg, row, as_of)
        return None if v is None else (v in e.values) != e.negate
    if t is ir.IfElse:
        c = evaluate_expr(e.cond, row, as_of)
        return evaluate_expr(e.then if c is True else e.other, row, as_of)
    if t is ir.Call:
        return _call(e, row, as_of)
    if t is ir.EnumMap:
        v = evaluate_expr(e.arg, row, as_of)
        if v is None or e.codes[v] < 0:
            return None
        return e.codes[v]
    raise TypeError(f"unknown IR node {e!r}")


def _arith(e: ir.Arith, a, b):
    op, kind = e.op, e.type.kind
    if kind == "date":                       # date ± int
        return _date(a + b if op == "+" else a - b)
    if e.left.type.kind == "date":           # date - date
        return a - b
    if kind == "int":
        if op == "%":
            return None if b == 0 else a % b
        return _int(a + b if op == "+" else a - b if op == "-" else a * b)
    if op == "/":
        return None if b == 0 else _float(a / b)
    if op == "%":
        return None if b == 0 else _float(_pymod(a, b))
    return _float(a + b if op == "+" else a - b if op == "-" else a * b)


def _pymod(a: float, b: float) -> float:
    try:
        return a % b
    except (ValueError, OverflowError):     # inf % x
        return math.nan


def _call(e: ir.Call, row, as_of):
    fn = e.fn
    if fn == "coalesce":
        for a in e.args:
            v = evaluate_expr(a, row, as_of)
            if v is not None:
                return v
        return None
    vals = [evaluate_expr(a, row, as_of) for a in e.args]
    if fn == "is_null":
        return vals[0] is None
    if any(v is None for v in vals):
        return None
    if fn == "min":
        return min(vals)
    if fn == "max":
        return max(vals)
    if fn == "clip":
        x, lo, hi = vals
        return min(max(x, lo), hi)
    if fn == "days_between":
        return vals[1] - vals[0]
    d = _civil(vals[0])
    if d is None:
        return None
    return d.year if fn == "year" else d.month if fn == "month" else d.day


def _fires(rule: ir.Rule, row, as_of) -> bool:
    return evaluate_expr(rule.when, row, as_of) is True


def evaluate_rules(rs: ir.RulesetIR, row: dict, as_of: int) -> dict:
    """Outputs of one ruleset on one row: ``{output: value, ..., "rule": id | None | [ids]}``."""
    out = {o.name: o.default for o in rs.outputs}
    if rs.hit in ("first", "priority"):
        out["rule"] = None
        for rule in rs.evaluation_order():
            if _fires(rule, row, as_of):
                for name, e in rule.then:
                    out[name] = evaluate_expr(e, row, as_of)
                out["rule"] = rule.id
                break
        return out
    fired = [r for r in rs.rules if _fires(r, row, as_of)]
    if rs.hit == "unique":
        if len(fired) == 1:
            for name, e in fired[0].then:
                out[name] = evaluate_expr(e, row, as_of)
            out["rule"] = fired[0].id
        elif len(fired) > 1:
            out = {o.name: None for o in rs.outputs}
            out["rule"] = UNIQUE_CONFLICT
        else:
            out["rule"] = None
        return out
    # collect
    for o in rs.outputs:
        if o.collect == "count":
            if fired:
                out[o.name] = len(fired)
            continue
        values = [evaluate_expr(dict(r.then)[o.name], row, as_of) for r in fired if o.name in dict(r.then)]
        if not values:
            continue
        out[o.name] = _combine(o, values)
    out["rule"] = [r.id for r in fired]
    return out


def _combine(o: ir.Output, values: list):
    if o.collect == "first":
        return values[0]
    present = [v for v in values if v is not None]
    if not present:
        return None
    if o.collect == "sum":
        if o.type == ir.FLOAT:
            acc = 0.0
            for v in present:
                acc += v
            return _float(acc)
        acc = 0
        for v in present:                    # an overflow at any step is null
            acc = _int(acc + v)
            if acc is None:
                return None
        return acc
    if o.collect == "min":
        return min(present)
    if o.collect == "max":
        return max(present)
    if o.collect == "any":
        return any(present)
    return all(present)                      # all


def names_read(e: ir.Expr) -> list[str]:
    """Input names an expression reads, in first-read order (for explain)."""
    seen: dict[str, None] = {}

    def walk(x):
        if isinstance(x, ir.Name):
            seen.setdefault(x.name)
        for child in getattr(x, "__dataclass_fields__", {}):
            v = getattr(x, child)
            if isinstance(v, ir.Expr):
                walk(v)
            elif isinstance(v, tuple):
                for item in v:
                    if isinstance(item, ir.Expr):
                        walk(item)
    walk(e)
    return list(seen)
