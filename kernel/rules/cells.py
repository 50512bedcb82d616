"""Decision-table condition cells → value sets and the equivalent condition expressions.

Cell syntax (RULESET_LANGUAGE.md, "Decision tables"): ``-`` (any), a literal (equality; enum
members may be bare), ``< x``, ``<= x``, ``> x``, ``>= x``, ``!= x`` (also ``== x``), ranges
``[a..b]``, ``(a..b)``, ``[a..b)``, ``(a..b]``, a comma list ``A, B`` (any of; each item may be any
cell but a list), ``not(<cell>)``. A cell is a YAML string or a bare number / bool / date.
"""
from __future__ import annotations

import datetime as dt
import functools
import re

from . import ir
from . import valuesets as vs
from .expressions import literal_value
from .ir import BOOL, Type

__all__ = ["CellError", "parse_cell", "cell_condition"]

_COMPARE = re.compile(r"^(<=|>=|!=|==|<|>|=)\s*(.+)$")


class CellError(ValueError):
    pass


@functools.lru_cache(maxsize=65536)
def parse_cell(value, t: Type) -> ir.ValueSet:
    """The set of values a condition cell accepts; raises CellError with the reason.
    (Memoized: large tables repeat the same cells.)"""
    if value is None:
        raise CellError("empty cell: write - for any value")
    if isinstance(value, str):
        return _parse_text(value.strip(), t)
    return vs.point(t, _literal(value, t))


def _parse_text(text: str, t: Type) -> ir.ValueSet:
    if text == "":
        raise CellError("empty cell: write - for any value")
    if text == "-":
        return vs.everything(t)
    if text.startswith("not(") and text.endswith(")") and _balanced(text[4:-1]):
        return vs.complement(t, _parse_text(text[4:-1].strip(), t))
    items = _split_commas(text)
    if len(items) > 1:
        result = vs.nothing(t)
        for item in items:
            result = vs.union(t, result, _parse_text(item.strip(), t))
        return result
    bounds = _range(text)
    if bounds:
        if t.kind == "bool":
            raise CellError("ranges do not apply to bool")
        opening, lo_text, hi_text, closing = bounds
        lo, hi = _literal_text(lo_text, t), _literal_text(hi_text, t)
        if lo > hi:
            raise CellError(f"empty range {text}: {lo_text} is above {hi_text}")
        if t.kind == "enum":
            lo_c = lo if opening == "[" else lo + 1
            hi_c = hi if closing == "]" else hi - 1
            return vs.codes(range(lo_c, hi_c + 1))
        result = vs.interval(t, lo, opening == "[", hi, closing == "]")
        if vs.is_empty(result):
            raise CellError(f"empty range {text}")
        return result
    m = _COMPARE.match(text)
    if m:
        op = {"=": "=="}.get(m.group(1), m.group(1))
        value = _literal_text(m.group(2), t)
        if t.kind == "bool" and op not in ("==", "!="):
            raise CellError("bools compare only with == and !=")
        return vs.from_compare(t, op, value)
    return vs.point(t, _literal_text(text, t))


def _range(text: str) -> tuple[str, str, str, str] | None:
    """``[a..b]``, ``(a..b)``, ``[a..b)``, ``(a..b]`` as (opening, a, b, closing), split at the
    first ``..`` after a's first character; None for any other text. (A regular expression with
    two lazy groups took quadratic time on a long cell: a 100,000-character cell ran for minutes.)"""
    if len(text) < 2 or text[0] not in "[(" or text[-1] not in "])":
        return None
    inner = text[1:-1].lstrip()
    split = inner.find("..", 1)
    if split < 0:
        return None
    lo, hi = inner[:split].rstrip(), inner[split + 2:].strip()
    return (text[0], lo, hi, text[-1]) if lo and hi else None


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += ch in "([" and 1 or 0
        depth -= ch in ")]" and 1 or 0
        if depth < 0:
            return False
    return depth == 0


def _split_commas(text: str) -> list[str]:
    items, depth, cur = [], 0, []
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            items.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    items.append("".join(cur))
    return items


def _literal_text(text: str, t: Type):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        # quotes make a string, in a cell as in an expression (`dpd >= '1'` is an error there):
        # a string can only be an enum member
        if t.kind == "date":
            raise CellError(f"a date is written date('{text[1:-1]}') or bare, not as a string")
        if t.kind != "enum":
            raise CellError(f"string {text} can only be an enum member, compared with or assigned to an enum; "
                            f"write the {t} without quotes")
        text = text[1:-1]
    if t.kind in ("int", "float"):
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            try:
                value = float(text.replace("_", ""))
            except ValueError:
                raise CellError(f"expected a number, got {text!r}") from None
        return _literal(value, t)
    if t.kind == "bool":
        lowered = {"true": True, "false": False}.get(text.lower())
        if lowered is None:
            raise CellError(f"expected true or false, got {text!r}")
        return _literal(lowered, t)
    if t.kind == "date":
        m = re.fullmatch(r"date\(\s*['\"]?([^'\")]*)['\"]?\s*\)", text)
        return _literal(m.group(1) if m else text, t)
    return _literal(text, t)


def _literal(value, t: Type):
    if isinstance(value, dt.date) and t.kind != "date":
        raise CellError(f"expected {t}, got a date")
    try:
        v = literal_value(value, t)
    except ValueError as e:
        raise CellError(str(e)) from None
    if t.kind == "bool":
        return int(v)
    return v


@functools.lru_cache(maxsize=65536)
def cell_condition(name: str, t: Type, cell: ir.ValueSet) -> ir.Expr:
    """An expression accepting exactly the values of ``cell`` (null handling included)."""
    x = ir.Name(t, name)
    if cell == vs.everything(t):
        return ir.Const(BOOL, True)
    if vs.is_empty(cell):
        return ir.Const(BOOL, False)
    parts: list[ir.Expr] = []
    if cell.kind == "codes":
        if cell.codes:
            values = tuple(sorted(cell.codes))
            if t.kind == "bool":
                values = tuple(bool(v) for v in values)
            parts.append(ir.Compare("==", x, ir.Const(t, values[0])) if len(values) == 1 else ir.InList(x, values))
    else:
        for iv in cell.intervals:
            parts.append(_interval_condition(x, t, iv))
    if cell.null:
        parts.append(ir.Call("is_null", (x,), BOOL))
    return parts[0] if len(parts) == 1 else ir.Logic("or", tuple(parts))


def _interval_condition(x: ir.Name, t: Type, iv: ir.Interval) -> ir.Expr:
    def const(v):
        return ir.Const(t, int(v) if t.kind in ("int", "date") else float(v))
    if iv.lo == iv.hi:
        return ir.Compare("==", x, const(iv.lo))
    parts = []
    if iv.lo != vs.INF * -1:
        parts.append(ir.Compare(">=" if iv.lo_closed else ">", x, const(iv.lo)))
    if iv.hi != vs.INF:
        parts.append(ir.Compare("<=" if iv.hi_closed else "<", x, const(iv.hi)))
    if not parts:                        # (-inf..inf): any non-null value
        return ir.Unary("not", ir.Call("is_null", (x,), BOOL))
    return parts[0] if len(parts) == 1 else ir.Logic("and", tuple(parts))
