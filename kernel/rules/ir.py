"""The intermediate representation: small frozen dataclasses, typed, free of YAML.

Values inside the IR use one internal representation per type, shared by both back ends:

======  ==========================================
int     Python ``int`` (64-bit range)
float   Python ``float``
bool    Python ``bool``
date    ``int`` days since 1970-01-01
enum    ``int`` code: the member's index in the type's member list
null    ``None``
======  ==========================================

:func:`dump` renders a ruleset's IR as text; golden tests pin it.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

__all__ = [
    "Type", "INT", "FLOAT", "BOOL", "DATE", "NULL", "enum_type", "Expr", "Const", "Name", "AsOf",
    "Unary", "Arith", "Compare", "Logic", "InList", "IfElse", "Call", "ToFloat", "EnumMap",
    "Input", "Output", "Rule", "Interval", "ValueSet", "Table", "RulesetIR", "dump", "dump_expr",
    "format_value", "EPOCH_ORDINAL", "MIN_DATE", "MAX_DATE", "INT_MIN", "INT_MAX",
]

INT_MIN, INT_MAX = -(2 ** 63), 2 ** 63 - 1
EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
#: the range of dates the language represents (days since 1970-01-01): 0001-01-01 … 9999-12-31
MIN_DATE = dt.date(1, 1, 1).toordinal() - EPOCH_ORDINAL
MAX_DATE = dt.date(9999, 12, 31).toordinal() - EPOCH_ORDINAL


@dataclass(frozen=True)
class Type:
    kind: str                          # int | float | bool | date | enum | null
    members: tuple[str, ...] = ()      # enum members, in declared order

    def __str__(self) -> str:
        if self.kind == "enum":
            return "enum {" + ", ".join(self.members) + "}"
        return self.kind

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "float")

    @property
    def ordered(self) -> bool:
        return self.kind in ("int", "float", "date", "enum")


INT, FLOAT, BOOL, DATE, NULL = Type("int"), Type("float"), Type("bool"), Type("date"), Type("null")


def enum_type(members) -> Type:
    return Type("enum", tuple(members))


# ---------------------------------------------------------------------------------- expressions
class Expr:
    """A typed expression node; every subclass has a ``type`` (field or property)."""

    __slots__ = ()


@dataclass(frozen=True)
class Const(Expr):
    type: Type
    value: object                      # internal representation; None = null


@dataclass(frozen=True)
class Name(Expr):
    """An input: a book column (``dpd``) or an upstream output (``early_warning.level``)."""
    type: Type
    name: str


@dataclass(frozen=True)
class AsOf(Expr):
    @property
    def type(self) -> Type:
        return DATE


@dataclass(frozen=True)
class Unary(Expr):
    op: str                            # neg | not | abs
    arg: Expr

    @property
    def type(self) -> Type:
        return self.arg.type


@dataclass(frozen=True)
class Arith(Expr):
    """``+ - * / %``. Operands are already of one kind (ints promoted with :class:`ToFloat`),
    except date arithmetic: ``date ± int → date`` and ``date - date → int``."""
    op: str
    left: Expr
    right: Expr
    type: Type


@dataclass(frozen=True)
class Compare(Expr):
    op: str                            # < <= > >= == !=
    left: Expr
    right: Expr

    @property
    def type(self) -> Type:
        return BOOL


@dataclass(frozen=True)
class Logic(Expr):
    op: str                            # and | or (three-valued)
    args: tuple[Expr, ...]

    @property
    def type(self) -> Type:
        return BOOL


@dataclass(frozen=True)
class InList(Expr):
    arg: Expr
    values: tuple                      # internal values (no nulls)
    negate: bool = False

    @property
    def type(self) -> Type:
        return BOOL


@dataclass(frozen=True)
class IfElse(Expr):
    cond: Expr
    then: Expr
    other: Expr
    type: Type


@dataclass(frozen=True)
class Call(Expr):
    fn: str                            # min max clip is_null coalesce days_between year month day
    args: tuple[Expr, ...]
    type: Type


@dataclass(frozen=True)
class ToFloat(Expr):
    arg: Expr

    @property
    def type(self) -> Type:
        return FLOAT


@dataclass(frozen=True)
class EnumMap(Expr):
    """An enum value re-coded into another enum's member order (``codes[i]`` is the new code of
    member ``i``, -1 where the target has no such member)."""
    arg: Expr
    codes: tuple[int, ...]
    type: Type


# ---------------------------------------------------------------------------------- rulesets
@dataclass(frozen=True)
class Input:
    name: str
    type: Type


@dataclass(frozen=True)
class Output:
    name: str
    type: Type
    default: object                    # internal value, None = null
    collect: str | None = None         # sum min max count any all first (hit: collect)


@dataclass(frozen=True)
class Rule:
    id: str
    when: Expr
    then: tuple[tuple[str, Expr], ...]
    salience: float | None = None
    line: int = 0


@dataclass(frozen=True)
class Interval:
    """A numeric interval; for int and date columns bounds are integers and both ends closed."""
    lo: float
    lo_closed: bool
    hi: float
    hi_closed: bool

    def __str__(self) -> str:
        return self.format()

    def format(self, t: "Type | None" = None) -> str:
        def bound(x):
            if t is not None and t.kind == "date" and x not in (float("inf"), float("-inf")):
                return format_value(int(x), t)
            return _num(x)
        return f"{'[' if self.lo_closed else '('}{bound(self.lo)}..{bound(self.hi)}{']' if self.hi_closed else ')'}"


@dataclass(frozen=True)
class ValueSet:
    """The set of values of one input a condition accepts: intervals (int, float, date) or
    member codes (enum; bool uses 0 and 1), and whether null is accepted."""
    kind: str                          # num | codes
    intervals: tuple[Interval, ...] = ()
    codes: frozenset = frozenset()
    null: bool = False

    def __str__(self) -> str:
        return self.format()

    def format(self, t: "Type | None" = None) -> str:
        """``{[1..10] null}``, with enum members and dates written out when ``t`` is given."""
        if self.kind == "num":
            parts = [i.format(t) for i in self.intervals]
        else:
            parts = [format_value(bool(c) if t.kind == "bool" else c, t) if t is not None else str(c)
                     for c in sorted(self.codes)]
        if self.null:
            parts.append("null")
        return "{" + " ".join(parts) + "}"


@dataclass(frozen=True)
class Table:
    """A decision table kept as cells, for indexing; its rows are also compiled to rules."""
    columns: tuple[str, ...]                       # condition input names
    cells: tuple[tuple[ValueSet, ...], ...]        # per row, per column
    then_columns: tuple[str, ...]


@dataclass(frozen=True)
class RulesetIR:
    name: str
    version: str
    description: str
    hit: str                                       # first | priority | collect | unique
    inputs: tuple[Input, ...]
    outputs: tuple[Output, ...]
    rules: tuple[Rule, ...]                        # file order
    table: Table | None = None
    reads_as_of: bool = False
    extra: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    def output(self, name: str) -> Output:
        for o in self.outputs:
            if o.name == name:
                return o
        raise KeyError(name)

    def input_type(self, name: str) -> Type:
        for i in self.inputs:
            if i.name == name:
                return i.type
        raise KeyError(name)

    def evaluation_order(self) -> tuple[Rule, ...]:
        """Rules in the order they are tried: file order, or for ``priority`` by salience
        (highest first, ties keep file order)."""
        if self.hit == "priority":
            return tuple(sorted(self.rules, key=lambda r: -(r.salience or 0.0)))
        return self.rules


# ---------------------------------------------------------------------------------- dump
def _num(x) -> str:
    if x == float("inf"):
        return "+inf"
    if x == float("-inf"):
        return "-inf"
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def format_value(value, type_: Type) -> str:
    """A value in the IR's internal representation, written as a rule author would."""
    if value is None:
        return "null"
    if type_.kind == "enum":
        return type_.members[value] if 0 <= value < len(type_.members) else f"<code {value}>"
    if type_.kind == "date":
        return dt.date.fromordinal(value + EPOCH_ORDINAL).isoformat()
    if type_.kind == "bool":
        return "true" if value else "false"
    return repr(value)


def dump_expr(e: Expr) -> str:
    """S-expression text of an expression, with every node's type."""
    if isinstance(e, Const):
        return f"{format_value(e.value, e.type)}:{e.type.kind}"
    if isinstance(e, Name):
        return f"{e.name}:{e.type.kind}"
    if isinstance(e, AsOf):
        return "as_of:date"
    if isinstance(e, Unary):
        return f"({e.op} {dump_expr(e.arg)})"
    if isinstance(e, Arith):
        return f"({e.op}:{e.type.kind} {dump_expr(e.left)} {dump_expr(e.right)})"
    if isinstance(e, Compare):
        return f"({e.op} {dump_expr(e.left)} {dump_expr(e.right)})"
    if isinstance(e, Logic):
        return f"({e.op} " + " ".join(dump_expr(a) for a in e.args) + ")"
    if isinstance(e, InList):
        vals = ", ".join(format_value(v, e.arg.type) for v in e.values)
        return f"({'not in' if e.negate else 'in'} {dump_expr(e.arg)} [{vals}])"
    if isinstance(e, IfElse):
        return f"(if:{e.type.kind} {dump_expr(e.cond)} {dump_expr(e.then)} {dump_expr(e.other)})"
    if isinstance(e, Call):
        return f"({e.fn}:{e.type.kind} " + " ".join(dump_expr(a) for a in e.args) + ")"
    if isinstance(e, ToFloat):
        return f"(float {dump_expr(e.arg)})"
    if isinstance(e, EnumMap):
        return f"(enum-map {dump_expr(e.arg)} {list(e.codes)})"
    raise TypeError(e)


def dump(ir: RulesetIR) -> str:
    lines = [f"ruleset {ir.name} version {ir.version!r} hit {ir.hit}" + (" reads as_of" if ir.reads_as_of else "")]
    for i in ir.inputs:
        lines.append(f"  input {i.name}: {i.type}")
    for o in ir.outputs:
        lines.append(f"  output {o.name}: {o.type} default {format_value(o.default, o.type)}"
                     + (f" collect {o.collect}" if o.collect else ""))
    if ir.table is not None:
        lines.append(f"  table when [{', '.join(ir.table.columns)}] then [{', '.join(ir.table.then_columns)}]")
        types = [ir.input_type(c) for c in ir.table.columns]
        for n, row in enumerate(ir.table.cells, 1):
            lines.append(f"    row{n}: " + " ".join(c.format(t) for c, t in zip(row, types)))
    for r in ir.rules:
        sal = f" salience {_num(r.salience)}" if r.salience is not None else ""
        lines.append(f"  rule {r.id}{sal} (line {r.line})")
        lines.append(f"    when {dump_expr(r.when)}")
        for name, e in r.then:
            lines.append(f"    then {name} = {dump_expr(e)}")
    return "\n".join(lines) + "\n"
