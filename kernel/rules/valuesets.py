"""Sets of values of one input, as decision-table cells and simple conditions describe them.

Numeric sets (int, float, date) are sorted, disjoint :class:`~.ir.Interval` lists; for int and
date inputs both ends are closed integers (``x < 5`` is ``[-inf..4]``). Enum and bool sets are
sets of codes (bool: 0 false, 1 true). Every set also says whether it holds null. These are
what the static checks (shadowed rules, gaps, overlaps under ``unique``) reason about and what
the decision-table index is built from.
"""
from __future__ import annotations

import math

from .ir import Interval, Type, ValueSet

INF = math.inf
__all__ = ["everything", "nothing", "from_compare", "point", "interval", "codes", "intersect", "union", "union_all",
           "complement", "is_empty", "is_subset", "gaps", "sample", "is_integral"]


def is_integral(t: Type) -> bool:
    return t.kind in ("int", "date")


def _domain_codes(t: Type) -> frozenset:
    return frozenset(range(len(t.members))) if t.kind == "enum" else frozenset((0, 1))


def everything(t: Type, null: bool = True) -> ValueSet:
    if t.kind in ("enum", "bool"):
        return ValueSet("codes", codes=_domain_codes(t), null=null)
    return ValueSet("num", (Interval(-INF, False, INF, False),), null=null)


def nothing(t: Type) -> ValueSet:
    return ValueSet("codes" if t.kind in ("enum", "bool") else "num")


def codes(values, null: bool = False) -> ValueSet:
    return ValueSet("codes", codes=frozenset(values), null=null)


def _norm(t: Type, iv: Interval) -> Interval | None:
    """Integer types: closed integer bounds. Returns None for an empty interval."""
    lo, lc, hi, hc = iv.lo, iv.lo_closed, iv.hi, iv.hi_closed
    if is_integral(t):
        # an infinite bound stays as it is (a comparison with ±inf can put +inf below or -inf above)
        if not math.isinf(lo):
            lo = math.ceil(lo) if lc or lo != math.floor(lo) else lo + 1
            lo, lc = float(lo), True
        if not math.isinf(hi):
            hi = math.floor(hi) if hc or hi != math.ceil(hi) else hi - 1
            hi, hc = float(hi), True
    if lo == -INF:
        lc = False
    if hi == INF:
        hc = False
    if lo > hi or (lo == hi and not (lc and hc)):
        return None
    return Interval(lo, lc, hi, hc)


def _make(t: Type, intervals, null: bool) -> ValueSet:
    normed = [n for n in (_norm(t, iv) for iv in intervals) if n is not None]
    return ValueSet("num", tuple(_merge(t, normed)), null=null)


def _merge(t: Type, ivs: list[Interval]) -> list[Interval]:
    ivs = sorted(ivs, key=lambda i: (i.lo, not i.lo_closed))
    out: list[Interval] = []
    for iv in ivs:
        if out:
            last = out[-1]
            touching = last.hi > iv.lo or (last.hi == iv.lo and (last.hi_closed or iv.lo_closed))
            if is_integral(t) and last.hi + 1 == iv.lo:
                touching = True
            if touching:
                if iv.hi > last.hi or (iv.hi == last.hi and iv.hi_closed):
                    out[-1] = Interval(last.lo, last.lo_closed, iv.hi, iv.hi_closed)
                continue
        out.append(iv)
    return out


def interval(t: Type, lo=-INF, lo_closed=True, hi=INF, hi_closed=True) -> ValueSet:
    return _make(t, [Interval(float(lo), lo_closed, float(hi), hi_closed)], False)


def point(t: Type, value) -> ValueSet:
    if t.kind in ("enum", "bool"):
        return codes([int(value)])
    return interval(t, value, True, value, True)


def from_compare(t: Type, op: str, value) -> ValueSet:
    """The set ``x <op> value`` accepts (never null)."""
    if t.kind in ("enum", "bool") and op in ("==", "!="):
        s = codes([int(value)])
        return s if op == "==" else complement(t, s)
    v = float(value)
    if op == "==":
        return interval(t, v, True, v, True)
    if op == "!=":
        return _make(t, [Interval(-INF, False, v, False), Interval(v, False, INF, False)], False)
    if t.kind == "enum":        # enums are ordered by member index
        n = len(t.members)
        allowed = [c for c in range(n) if _cmp(op, c, value)]
        return codes(allowed)
    return {"<": interval(t, -INF, False, v, False), "<=": interval(t, -INF, False, v, True),
            ">": interval(t, v, False, INF, False), ">=": interval(t, v, True, INF, False)}[op]


def _cmp(op, a, b) -> bool:
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "!=": a != b}[op]


def intersect(t: Type, a: ValueSet, b: ValueSet) -> ValueSet:
    if a.kind == "codes":
        return ValueSet("codes", codes=a.codes & b.codes, null=a.null and b.null)
    out = []
    for x in a.intervals:
        for y in b.intervals:
            lo, lc = (x.lo, x.lo_closed) if (x.lo, not x.lo_closed) > (y.lo, not y.lo_closed) else (y.lo, y.lo_closed)
            hi, hc = (x.hi, x.hi_closed) if (x.hi, x.hi_closed) < (y.hi, y.hi_closed) else (y.hi, y.hi_closed)
            out.append(Interval(lo, lc, hi, hc))
    return _make(t, out, a.null and b.null)


def union(t: Type, a: ValueSet, b: ValueSet) -> ValueSet:
    if a.kind == "codes":
        return ValueSet("codes", codes=a.codes | b.codes, null=a.null or b.null)
    return _make(t, list(a.intervals) + list(b.intervals), a.null or b.null)


def complement(t: Type, a: ValueSet) -> ValueSet:
    """Non-null values outside ``a`` (SQL: ``not`` of a condition is null on null input)."""
    if a.kind == "codes":
        return ValueSet("codes", codes=_domain_codes(t) - a.codes, null=False)
    out, lo, lc = [], -INF, False
    for iv in a.intervals:
        out.append(Interval(lo, lc, iv.lo, not iv.lo_closed))
        lo, lc = iv.hi, not iv.hi_closed
    out.append(Interval(lo, lc, INF, False))
    return _make(t, out, False)


def union_all(t: Type, sets) -> ValueSet:
    """The union of many sets at once (one sort, for large decision tables)."""
    sets = list(sets)
    if not sets:
        return nothing(t)
    null = any(s.null for s in sets)
    if sets[0].kind == "codes":
        return ValueSet("codes", codes=frozenset().union(*(s.codes for s in sets)), null=null)
    return _make(t, [iv for s in sets for iv in s.intervals], null)


def is_empty(a: ValueSet) -> bool:
    return not a.null and not (a.codes if a.kind == "codes" else a.intervals)


def is_subset(t: Type, a: ValueSet, b: ValueSet) -> bool:
    if a.null and not b.null:
        return False
    if a.kind == "codes":
        return a.codes <= b.codes
    return intersect(t, ValueSet("num", a.intervals), ValueSet("num", b.intervals)).intervals == a.intervals


def gaps(t: Type, a: ValueSet) -> list[Interval]:
    """Finite integer gaps between the intervals of ``a`` (int inputs)."""
    return [Interval(x.hi + 1, True, y.lo - 1, True) for x, y in zip(a.intervals, a.intervals[1:])
            if y.lo - x.hi > 1]


def sample(t: Type, a: ValueSet):
    """One member of ``a`` in internal representation (for overlap examples); None = null."""
    if a.kind == "codes":
        return min(a.codes) if a.codes else None
    if not a.intervals:
        return None
    iv = a.intervals[0]
    if iv.lo_closed:
        v = iv.lo
    elif iv.hi_closed:
        v = iv.hi
    elif iv.lo == -INF and iv.hi == INF:
        v = 0.0
    elif iv.lo == -INF:
        v = iv.hi - 1
    elif iv.hi == INF:
        v = iv.lo + 1
    else:
        v = (iv.lo + iv.hi) / 2
    return int(v) if is_integral(t) else float(v)
