"""Static checks on a checked ruleset: rules that can never fire, rules shadowed under
``first`` / ``priority``, integer ranges no rule covers (warnings), and rules that provably
overlap under ``unique`` (errors).

Each rule's condition is read as a *box*: per input, the set of values it accepts (a
:class:`~.ir.ValueSet`), when the condition is a conjunction of simple tests on single inputs
(``dpd >= 31``, ``11 <= dpd <= 30``, ``x in [A, B]``, ``flag``, ``is_null(x)``, decision-table
cells). A condition with any other part is *opaque*: it may shadow nothing and prove no overlap,
so the checks never claim what they cannot prove. Large decision tables are screened with
vectorized interval hulls first, then verified exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import ir
from . import valuesets as vs
from .diagnostics import Diagnostics
from .ir import Type

__all__ = ["Box", "box_of", "static_checks"]

MAX_REPORTED = 20


@dataclass
class Box:
    sets: dict            # input name -> ValueSet (unconstrained inputs are absent)
    opaque: bool = False  # some part of the condition is not a simple test
    empty: bool = False   # provably never true


def box_of(e: ir.Expr, types: dict[str, Type]) -> Box:
    if isinstance(e, ir.Const):
        return Box({}, empty=e.value is not True)
    if isinstance(e, ir.Logic) and e.op == "and":
        box = Box({})
        for a in e.args:
            _meet(box, box_of(a, types), types)
        return box
    single = _single(e, types)
    if single is None:
        return Box({}, opaque=True)
    name, vset = single
    return Box({name: vset}, empty=vs.is_empty(vset))


def _meet(box: Box, other: Box, types) -> None:
    box.opaque |= other.opaque
    box.empty |= other.empty
    for name, s in other.sets.items():
        box.sets[name] = vs.intersect(types[name], box.sets[name], s) if name in box.sets else s
        if vs.is_empty(box.sets[name]):
            box.empty = True


def _var(e: ir.Expr):
    if isinstance(e, ir.ToFloat):
        e = e.arg
    return e.name if isinstance(e, ir.Name) else None


def _single(e: ir.Expr, types) -> tuple[str, ir.ValueSet] | None:
    """(input, accepted set) when ``e`` tests one input only."""
    if isinstance(e, ir.Compare):
        op, a, b = e.op, e.left, e.right
        if isinstance(a, ir.Const) and not isinstance(b, ir.Const):
            a, b, op = b, a, {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)
        name = _var(a)
        if name is None or not isinstance(b, ir.Const):
            return None
        t = types[name]
        if b.value is None:
            return name, vs.nothing(t)
        return name, vs.from_compare(t, op, int(b.value) if t.kind == "bool" else b.value)
    if isinstance(e, ir.InList):
        name = _var(e.arg)
        if name is None:
            return None
        t = types[name]
        if t.kind in ("enum", "bool"):
            s = vs.codes(int(v) for v in e.values)
        else:
            s = vs.nothing(t)
            for v in e.values:
                s = vs.union(t, s, vs.point(t, v))
        return name, (vs.complement(t, s) if e.negate else s)
    if isinstance(e, ir.Name) and e.type.kind == "bool":
        return e.name, vs.codes([1])
    if isinstance(e, ir.Call) and e.fn == "is_null":
        name = _var(e.args[0])
        if name is None:
            return None
        return name, ir.ValueSet(vs.nothing(types[name]).kind, null=True)
    if isinstance(e, ir.Unary) and e.op == "not":
        inner = _single(e.arg, types)
        if inner is None:
            return None
        name, s = inner
        return name, vs.complement(types[name], s)
    if isinstance(e, ir.Logic):
        parts = [_single(a, types) for a in e.args]
        if any(p is None for p in parts) or len({p[0] for p in parts}) != 1:
            return None
        name, t = parts[0][0], types[parts[0][0]]
        acc = parts[0][1]
        for _, s in parts[1:]:
            acc = vs.union(t, acc, s) if e.op == "or" else vs.intersect(t, acc, s)
        return name, acc
    return None


# --------------------------------------------------------------------------------- hull screen
class _Hulls:
    """Per-input interval hulls / code masks of every box, as arrays, for fast screening."""

    def __init__(self, boxes: list[Box], types: dict[str, Type]):
        self.names = sorted({n for b in boxes for n in b.sets})
        self.cols = {}
        for name in self.names:
            t = types[name]
            full = vs.everything(t)
            sets = [b.sets.get(name, full) for b in boxes]
            null = np.array([s.null for s in sets])
            if full.kind == "codes":
                m0 = np.array([sum(1 << c for c in s.codes if c < 64) for s in sets], dtype=np.uint64)
                m1 = np.array([sum(1 << (c - 64) for c in s.codes if c >= 64) for s in sets], dtype=np.uint64)
                self.cols[name] = ("codes", m0, m1, null)
            else:
                lo = np.array([s.intervals[0].lo if s.intervals else np.inf for s in sets])
                hi = np.array([s.intervals[-1].hi if s.intervals else -np.inf for s in sets])
                self.cols[name] = ("num", lo, hi, null)

    def covering(self, j: int, cand: np.ndarray) -> np.ndarray:
        """Candidates whose hulls contain box j's hull (necessary for j ⊆ i)."""
        for name in self.names:
            if cand.size == 0:
                break
            kind, a, b, null = self.cols[name]
            ok = null[cand] | ~null[j]
            if kind == "codes":
                ok &= ((a[j] & ~a[cand]) == 0) & ((b[j] & ~b[cand]) == 0)
            else:
                ok &= (a[cand] <= a[j]) & (b[cand] >= b[j])
            cand = cand[ok]
        return cand

    def meeting(self, j: int, cand: np.ndarray) -> np.ndarray:
        """Candidates whose hulls meet box j's hull (necessary for an overlap)."""
        for name in self.names:
            if cand.size == 0:
                break
            kind, a, b, null = self.cols[name]
            ok = null[cand] & null[j]
            if kind == "codes":
                ok |= ((a[j] & a[cand]) != 0) | ((b[j] & b[cand]) != 0)
            else:
                ok |= (a[cand] <= b[j]) & (a[j] <= b[cand])
            cand = cand[ok]
        return cand


def _subset(inner: Box, outer: Box, types) -> bool:
    for name, s in outer.sets.items():
        t = types[name]
        if not vs.is_subset(t, inner.sets.get(name, vs.everything(t)), s):
            return False
    return True


def _witness(a: Box, b: Box, types) -> dict | None:
    """A row on which both boxes hold, or None when they are disjoint."""
    row = {}
    for name in sorted(set(a.sets) | set(b.sets)):
        t = types[name]
        s = vs.intersect(t, a.sets.get(name, vs.everything(t)), b.sets.get(name, vs.everything(t)))
        if vs.is_empty(s):
            return None
        row[name] = None if (s.null and vs.is_empty(ir.ValueSet(s.kind, s.intervals, s.codes))) else vs.sample(t, s)
    return row


def static_checks(checked, d: Diagnostics) -> None:
    rs: ir.RulesetIR = checked.ir
    types = {i.name: i.type for i in rs.inputs}
    if rs.table is not None:
        boxes = {r.id: Box({c: cell for c, cell in zip(rs.table.columns, cells) if cell != vs.everything(types[c])},
                           empty=any(vs.is_empty(cell) for cell in cells))
                 for r, cells in zip(rs.rules, rs.table.cells)}
    else:
        boxes = {r.id: box_of(r.when, types) for r in rs.rules}
    pos = checked.rule_pos
    order = list(rs.evaluation_order())
    for r in order:
        if boxes[r.id].empty:
            d.warning(pos.get(r.id), f"rule `{r.id}` can never fire: its condition is never true", r.id)
    if rs.hit in ("first", "priority"):
        _shadowed(order, boxes, types, rs.hit, pos, d)
    if rs.hit == "unique":
        _overlaps(order, boxes, types, pos, d)
    _gaps(checked, boxes, types, d)


def _shadowed(order, boxes, types, hit, pos, d: Diagnostics) -> None:
    seq = [boxes[r.id] for r in order]
    hulls = _Hulls(seq, types)
    usable = np.array([not b.opaque and not b.empty for b in seq])
    reported = 0
    for j, r in enumerate(order):
        if seq[j].empty or j == 0:
            continue
        cand = hulls.covering(j, np.nonzero(usable[:j])[0])
        for i in cand:
            if _subset(seq[j], seq[int(i)], types):
                why = "always fires first" if hit == "first" else "fires whenever it does, with higher salience"
                d.warning(pos.get(r.id), f"rule `{r.id}` can never fire: rule `{order[int(i)].id}` "
                                         f"(line {order[int(i)].line}) {why}", r.id)
                reported += 1
                break
        if reported >= MAX_REPORTED:
            break


def _overlaps(order, boxes, types, pos, d: Diagnostics) -> None:
    seq = [boxes[r.id] for r in order]
    hulls = _Hulls(seq, types)
    usable = np.array([not b.opaque and not b.empty for b in seq])
    found = 0
    for j, r in enumerate(order):
        if not usable[j]:
            continue
        for i in hulls.meeting(j, np.nonzero(usable[:j])[0]):
            w = _witness(seq[int(i)], seq[j], types)
            if w is None:
                continue
            found += 1
            if found <= MAX_REPORTED:
                example = ", ".join(f"{k}={ir.format_value(v, types[k])}" for k, v in w.items()) or "any row"
                d.error(pos.get(r.id), f"rules `{order[int(i)].id}` and `{r.id}` overlap under hit: unique "
                                       f"(both fire when {example})", r.id)
    if found > MAX_REPORTED:
        d.error(pos.get(order[-1].id), f"… and {found - MAX_REPORTED} more overlapping pairs under hit: unique")


def _gaps(checked, boxes, types, d: Diagnostics) -> None:
    live = [b for b in boxes.values() if not b.empty]
    for name, t in types.items():
        if t.kind != "int":
            continue
        sets = [b.sets.get(name) for b in live]
        if any(s is None for s in sets) or len(sets) < 2:
            continue           # some rule accepts any value of it
        covered = vs.union_all(t, sets)
        holes = vs.gaps(t, covered)
        if holes:
            text = ", ".join(f"{int(h.lo)}" if h.lo == h.hi else f"{int(h.lo)}..{int(h.hi)}" for h in holes[:5])
            more = f" and {len(holes) - 5} more" if len(holes) > 5 else ""
            d.warning(checked.input_pos.get(name), f"integer input `{name}`: no rule covers {text}{more}")
