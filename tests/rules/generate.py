"""Random rulesets (as YAML source) and random books for differential tests.

Everything is drawn through hypothesis' ``draw`` so examples shrink and replay. Expressions
cover every operator and function of the language over int, float, bool, date and enum
inputs; values reach the edges (nulls, NaN, ±inf, int64 limits, dates far from today).
"""
from __future__ import annotations

import datetime as dt

import pyarrow as pa
from hypothesis import strategies as st

INPUTS = {
    "i1": "int", "i2": "int", "f1": "float", "f2": "float", "b1": "bool", "b2": "bool",
    "d1": "date", "d2": "date", "e1": "enum", "e2": "enum2",
}
ENUM = ["A", "B", "C", "D"]
ENUM2 = ["C", "A", "E"]               # another member list: compared by name
INT_EDGES = [0, 1, -1, 2, 3, -7, 10, 100, 2 ** 31, 2 ** 62, -(2 ** 62), 2 ** 63 - 1, -(2 ** 63)]
FLOAT_EDGES = [0.0, -0.0, 0.5, -2.5, 1.0, 3.0, 1e300, -1e300, float("inf"), float("-inf"), float("nan"), 1e-300]
DATES = [dt.date(1970, 1, 1), dt.date(2026, 11, 28), dt.date(2024, 2, 29), dt.date(1, 1, 1),
         dt.date(9999, 12, 31), dt.date(1969, 12, 31), dt.date(2000, 3, 1)]


def int_literal(draw) -> str:
    v = draw(st.sampled_from([0, 1, 2, 3, -1, 5, 30, 2 ** 62, 2 ** 63 - 1, -(2 ** 63) + 1]))
    return f"({v})" if v < 0 else str(v)


def float_literal(draw) -> str:
    v = draw(st.sampled_from([0.0, 0.5, 1.5, -2.0, 1e300, 3.25]))
    return f"({v!r})" if v < 0 else repr(v)


def expr(draw, kind: str, depth: int) -> str:
    """An expression of ``kind`` (int, float, bool, date, enum)."""
    leaf = depth <= 0 or draw(st.integers(0, 3)) == 0
    if kind == "int":
        if leaf:
            return draw(st.sampled_from(["i1", "i2", "LIT"])).replace("LIT", int_literal(draw))
        form = draw(st.integers(0, 11))
        a = lambda k="int": expr(draw, k, depth - 1)     # noqa: E731
        return [
            lambda: f"({a()} + {a()})", lambda: f"({a()} - {a()})", lambda: f"({a()} * {a()})",
            lambda: f"({a()} % {a()})", lambda: f"(-{a()})", lambda: f"abs({a()})",
            lambda: f"min({a()}, {a()})", lambda: f"max({a()}, {a()}, {a()})",
            lambda: f"coalesce({a()}, {a()})", lambda: f"({a('date')} - {a('date')})",
            lambda: draw(st.sampled_from(["year", "month", "day"])) + f"({a('date')})",
            lambda: f"({a()} if {a('bool')} else {a()})",
        ][form]()
    if kind == "float":
        if leaf:
            return draw(st.sampled_from(["f1", "f2", "LIT", "i1"])).replace("LIT", float_literal(draw))
        form = draw(st.integers(0, 8))
        a = lambda k="float": expr(draw, k, depth - 1)   # noqa: E731
        return [
            lambda: f"({a()} + {a()})", lambda: f"({a()} * {a()})", lambda: f"({a()} / {a()})",
            lambda: f"({a()} % {a()})", lambda: f"({a('int')} / {a('int')})", lambda: f"clip({a()}, {a()}, {a()})",
            lambda: f"min({a()}, {a('int')})", lambda: f"coalesce({a()}, {a()}, 1.5)",
            lambda: f"({a()} if {a('bool')} else {a('int')})",
        ][form]()
    if kind == "date":
        if leaf:
            return draw(st.sampled_from(["d1", "d2", "as_of", "date('2026-01-31')"]))
        form = draw(st.integers(0, 3))
        a = lambda k="date": expr(draw, k, depth - 1)    # noqa: E731
        return [lambda: f"({a()} + {a('int')})", lambda: f"({a()} - {a('int')})",
                lambda: f"coalesce({a()}, {a()})", lambda: f"max({a()}, {a()})"][form]()
    if kind == "enum":
        if leaf:
            return draw(st.sampled_from(["e1", "'B'", "D"]))
        form = draw(st.integers(0, 2))
        a = lambda k="enum": expr(draw, k, depth - 1)    # noqa: E731
        return [lambda: f"({a()} if {a('bool')} else {a()})", lambda: f"coalesce({a()}, {a()})",
                lambda: f"max({a()}, {a()})"][form]()
    # bool
    if leaf:
        return draw(st.sampled_from(["b1", "b2", "true", "false", "null", "is_null(i1)", "is_null(e2)"]))
    form = draw(st.integers(0, 12))
    a = lambda k="bool": expr(draw, k, depth - 1)        # noqa: E731
    op = draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]))
    return [
        lambda: f"({a()} and {a()})", lambda: f"({a()} or {a()} or {a()})", lambda: f"(not {a()})",
        lambda: f"({a('int')} {op} {a('int')})", lambda: f"({a('float')} {op} {a('int')})",
        lambda: f"({a('date')} {op} {a('date')})", lambda: f"(e1 {op} {a('enum')})",
        lambda: f"(e2 {draw(st.sampled_from(['==', '!=']))} coalesce(e1, {a('enum')}))",
        lambda: f"({a('int')} in [1, 2, 3])", lambda: "(e1 not in [A, C])",
        lambda: f"({a('int')} <= {a('int')} < {a('int')})", lambda: f"({a()} == {a()})",
        lambda: f"is_null({a('float')})",
    ][form]()


OUTPUTS = {  # name: (type spec, default, collect ops allowed)
    "o_int": ("{type: int, default: 0", ["sum", "min", "max", "first"]),
    "o_float": ("{type: float, default: -1.5", ["sum", "min", "max", "first"]),
    "o_bool": ("{type: bool, default: false", ["any", "all", "first"]),
    "o_date": ("{type: date, default: 2000-01-01", ["min", "max", "first"]),
    "o_enum": ("{enum: [A, B, C, D], default: A", ["min", "max", "first"]),
    "o_count": ("{type: int, default: 0", ["count"]),
}
KIND = {"o_int": "int", "o_float": "float", "o_bool": "bool", "o_date": "date", "o_enum": "enum"}


def _header(name: str, hit: str) -> list[str]:
    return [f"ruleset: {name}", 'version: "1"', f"hit: {hit}",
            "inputs: {i1: int, i2: int, f1: float, f2: float, b1: bool, b2: bool, d1: date, d2: date, "
            "e1: {enum: [A, B, C, D]}, e2: {enum: [C, A, E]}}"]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def ruleset_source(draw, name: str, depth: int = 3) -> str:
    hit = draw(st.sampled_from(["first", "first", "priority", "collect", "unique"]))
    lines = _header(name, hit)
    lines.append("outputs:")
    outputs = [o for o in OUTPUTS if hit == "collect" or o != "o_count"]
    for o in outputs:
        spec, ops = OUTPUTS[o]
        extra = f", collect: {draw(st.sampled_from(ops))}" if hit == "collect" else ""
        lines.append(f"  {o}: {spec}{extra}}}")
    lines.append("rules:")
    for k in range(draw(st.integers(1, 5))):
        lines.append(f"  - id: r{k}")
        if hit == "priority":
            lines.append(f"    salience: {draw(st.integers(0, 3))}")
        lines.append(f"    when: {_quote(expr(draw, 'bool', depth))}")
        chosen = draw(st.lists(st.sampled_from([o for o in outputs if o != "o_count"]), unique=True, max_size=4))
        lines.append("    then:")
        if not chosen:
            lines[-1] = "    then: {}"
        for o in chosen:
            value = "null" if draw(st.integers(0, 9)) == 0 else _quote(expr(draw, KIND[o], depth - 1))
            lines.append(f"      {o}: {value}")
    return "\n".join(lines) + "\n"


CELLS = {
    "i1": ["-", "1", "[0..3]", "(1..10]", "< 2", ">= 3", "!= 0", "1, 2, 5", "not([1..2])", "[-5..5)"],
    "f1": ["-", "0.5", "[0..1.5]", "> 0", "<= -2.5", "(0.5..3.0)", "not(0)", "1.0, 3.0"],
    "e1": ["-", "A", "B, C", "not(D)", "'A'", "[B..D]", ">= C"],
    "b1": ["-", "true", "false", "!= true"],
    "d1": ["-", ">= 2000-01-01", "< 1970-01-01", "[2024-02-29..2026-11-28]"],
}


def table_source(draw, name: str) -> str:
    hit = draw(st.sampled_from(["first", "priority", "collect", "unique"]))
    lines = _header(name, hit)
    columns = draw(st.lists(st.sampled_from(sorted(CELLS)), min_size=1, max_size=4, unique=True))
    collect = hit == "collect"
    lines += ["outputs:",
              "  o_int: {type: int, default: 0" + (", collect: sum}" if collect else "}"),
              "  o_enum: {enum: [A, B, C, D], default: A" + (", collect: max}" if collect else "}")]
    if collect:
        lines.append("  o_count: {type: int, default: 0, collect: count}")
    then = ["o_int", "o_enum"] + (["salience"] if hit == "priority" else [])
    lines += ["table:", f"  when: [{', '.join(columns)}]", f"  then: [{', '.join(then)}]", "  rows:"]
    # large enough, sometimes, to go through the index (INDEX_MIN_ROWS)
    for r in range(draw(st.sampled_from([2, 5, 20, 40]))):
        cells = [_quote(draw(st.sampled_from(CELLS[c]))) for c in columns]
        cells.append(_quote(draw(st.sampled_from(["1", "i2 + 1", "null", "7", "-3"]))))
        cells.append(draw(st.sampled_from(["A", "B", "C", "D", "e1"])))
        if hit == "priority":
            cells.append(str(draw(st.integers(0, 4))))
        lines.append(f"    - [{', '.join(cells)}]")
    return "\n".join(lines) + "\n"


def book(draw, n: int) -> pa.Table:
    """A batch of ``n`` rows over INPUTS, with nulls and edge values; Arrow types vary."""
    def column(kind):
        if kind == "int":
            values = draw(st.lists(st.one_of(st.none(), st.sampled_from(INT_EDGES), st.integers(-20, 20)),
                                   min_size=n, max_size=n))
            return pa.array(values, pa.int64())
        if kind == "float":
            values = draw(st.lists(st.one_of(st.none(), st.sampled_from(FLOAT_EDGES),
                                             st.floats(-10, 10, allow_nan=False).map(lambda x: round(x, 2))),
                                   min_size=n, max_size=n))
            return pa.array(values, pa.float64())
        if kind == "bool":
            return pa.array(draw(st.lists(st.one_of(st.none(), st.booleans()), min_size=n, max_size=n)), pa.bool_())
        if kind == "date":
            values = draw(st.lists(st.one_of(st.none(), st.sampled_from(DATES),
                                             st.dates(dt.date(1990, 1, 1), dt.date(2030, 1, 1))),
                                   min_size=n, max_size=n))
            return pa.array(values, pa.date32())
        members = ENUM if kind == "enum" else ENUM2
        values = draw(st.lists(st.one_of(st.none(), st.sampled_from(members)), min_size=n, max_size=n))
        arr = pa.array(values, pa.string())
        return arr.dictionary_encode() if draw(st.booleans()) else arr
    return pa.table({name: column(kind) for name, kind in INPUTS.items()})
