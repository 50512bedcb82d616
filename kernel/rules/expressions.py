"""Stage 2a, check expressions: Python ``ast`` (the safe subset) → typed IR expressions.

Every name is resolved against the ruleset's declared inputs (bare or qualified), ``as_of`` and,
where an enum value is expected, the enum's members. Unknown names get "did you mean"; every
error carries the expression's position in the YAML file. Nothing is ever evaluated.
"""
from __future__ import annotations

import ast
import datetime as dt

from . import ir
from .diagnostics import Diagnostics, did_you_mean
from .ir import BOOL, DATE, FLOAT, INT, NULL, Type
from .parse import ExprSource

__all__ = ["ExprChecker", "FUNCTIONS", "KEYWORDS", "literal_value"]

#: name -> (min args, max args or None); documented in docs/rule-author-guide.md and docs/compiler.md
FUNCTIONS = {
    "min": (2, None), "max": (2, None), "abs": (1, 1), "clip": (3, 3), "is_null": (1, 1),
    "coalesce": (2, None), "days_between": (2, 2), "year": (1, 1), "month": (1, 1), "day": (1, 1),
    "date": (1, 1),
}
KEYWORDS = {"true": True, "True": True, "false": False, "False": False, "null": None, "None": None}
_ARITH = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%"}
_CMP = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_OP_TEXT = {ast.FloorDiv: "//", ast.Pow: "**", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^",
            ast.LShift: "<<", ast.RShift: ">>", ast.MatMult: "@"}


def _describe(t: Type) -> str:
    return str(t) if t.kind != "null" else "null"


def literal_value(value, t: Type):
    """A Python literal (from YAML or an expression) → internal value of type ``t``; raises
    ValueError with a readable reason."""
    if value is None:
        return None
    k = t.kind
    if k == "bool":
        if isinstance(value, bool):
            return value
        raise ValueError(f"expected true or false, got {value!r}")
    if isinstance(value, bool):
        raise ValueError(f"expected {t}, got {str(value).lower()}")
    if k == "int":
        if isinstance(value, float) and value.is_integer():
            value = int(value)                          # 3.0 is 3; 1.5e308 is then out of range
        if isinstance(value, int):
            if not ir.INT_MIN <= value <= ir.INT_MAX:
                raise ValueError(f"{value} does not fit a 64-bit int" if value.bit_length() <= 200 else
                                 "the number does not fit a 64-bit int")
            return value
        raise ValueError(f"expected an int, got {value!r}")
    if k == "float":
        if isinstance(value, (int, float)):
            return float(value)
        raise ValueError(f"expected a number, got {value!r}")
    if k == "date":
        if isinstance(value, dt.datetime):
            value = value.date()
        if isinstance(value, str):
            try:
                value = dt.date.fromisoformat(value.strip())
            except ValueError:
                raise ValueError(f"expected a date YYYY-MM-DD, got {value!r}") from None
        if isinstance(value, dt.date):
            return value.toordinal() - ir.EPOCH_ORDINAL
        raise ValueError(f"expected a date YYYY-MM-DD, got {value!r}")
    if k == "enum":
        if isinstance(value, str) and value.strip() in t.members:
            return t.members.index(value.strip())
        raise ValueError(f"{value!r} is not one of {', '.join(t.members)}"
                         + (did_you_mean(str(value), t.members) if isinstance(value, str) else ""))
    raise ValueError(f"no literal of type {t}")


class _Fail(Exception):
    """An expression could not be typed; the error has been reported already."""


class ExprChecker:
    """Types one expression. ``env`` maps input names (bare and qualified) to their types."""

    def __init__(self, env: dict[str, Type], diags: Diagnostics, source: ExprSource, rule: str | None):
        self.env = env
        self.diags = diags
        self.source = source
        self.rule = rule
        self.reads_as_of = False
        self.names_read: set[str] = set()

    # -- entry points -----------------------------------------------------------------------
    def check(self, node, expected: Type | None = None) -> ir.Expr | None:
        try:
            return self._check(node, expected)
        except _Fail:
            return None

    def _error(self, node, message: str, follows: str | None = None):
        self.diags.error(self.source.node_pos(node), message, self.rule, follows=follows)
        raise _Fail

    def _text(self, node) -> str:
        try:
            return ast.unparse(node)
        except Exception:  # pragma: no cover - unparse handles every node we accept
            return "expression"

    # -- helpers ----------------------------------------------------------------------------
    def _is_member_literal(self, node) -> bool:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return True
        if isinstance(node, ast.Name):
            return node.id not in self.env and node.id not in KEYWORDS and node.id != "as_of"
        return False

    def _member(self, node, t: Type) -> ir.Const:
        name = node.value if isinstance(node, ast.Constant) else node.id
        if name in t.members:
            return ir.Const(t, t.members.index(name))
        if isinstance(node, ast.Name):
            known = list(t.members) + list(self.env) + ["as_of"]
            self._error(node, f"unknown name `{name}`: not an input nor a member of {t}{did_you_mean(name, known)}",
                        follows=f"name:{name}")
        self._error(node, f"'{name}' is not a member of {t}{did_you_mean(name, t.members)}")

    def _unknown(self, node, name: str):
        self._error(node, f"unknown name `{name}`{did_you_mean(name, list(self.env) + ['as_of'])}"
                    + ("" if did_you_mean(name, list(self.env) + ['as_of']) else
                       " (declare it under `inputs:`)"), follows=f"name:{name}")

    def _bool(self, node, what: str) -> ir.Expr:
        e = self._check(node, BOOL)
        if e.type.kind == "null":
            return ir.Const(BOOL, None)
        if e.type != BOOL:
            self._error(node, f"{what} must be a condition (bool), got {_describe(e.type)} `{self._text(node)}`")
        return e

    # -- dispatch ---------------------------------------------------------------------------
    def _check(self, node, expected: Type | None = None) -> ir.Expr:
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            self._error(node, f"`{self._text(node)}` is not allowed in a rule expression (allowed: literals, "
                        f"inputs, + - * / %, comparisons, and/or/not, in, if-else, "
                        f"{', '.join(sorted(FUNCTIONS))})")
        return method(node, expected)

    def _Constant(self, node, expected):
        v = node.value
        if isinstance(v, bool):
            return ir.Const(BOOL, v)
        if isinstance(v, int):
            if not ir.INT_MIN <= v <= ir.INT_MAX:
                self._error(node, f"{v} does not fit a 64-bit int")
            return ir.Const(INT, v)
        if isinstance(v, float):
            return ir.Const(FLOAT, v)
        if v is None:
            return ir.Const(NULL, None)
        if isinstance(v, str):
            if expected is not None and expected.kind == "enum":
                return self._member(node, expected)
            if expected is not None and expected.kind == "date":
                self._error(node, f"a date is written date('{v}'), not as a string")
            self._error(node, f"string '{v}' can only be an enum member, compared with or assigned to an enum")
        self._error(node, f"unsupported literal `{self._text(node)}`")

    def _Name(self, node, expected):
        name = node.id
        if name in self.env:
            self.names_read.add(name)
            return ir.Name(self.env[name], name)
        if name in KEYWORDS:
            v = KEYWORDS[name]
            return ir.Const(NULL, None) if v is None else ir.Const(BOOL, v)
        if name == "as_of":
            self.reads_as_of = True
            return ir.AsOf()
        if expected is not None and expected.kind == "enum":
            return self._member(node, expected)
        if name in FUNCTIONS:
            self._error(node, f"`{name}` is a function: call it as {name}(...)")
        self._unknown(node, name)

    def _Attribute(self, node, expected):
        parts = []
        cur = node
        while isinstance(cur, ast.Attribute):
            parts.append(cur.attr)
            cur = cur.value
        if not isinstance(cur, ast.Name):
            self._error(node, f"`{self._text(node)}` is not a name")
        parts.append(cur.id)
        name = ".".join(reversed(parts))
        if name in self.env:
            self.names_read.add(name)
            return ir.Name(self.env[name], name)
        qualified = [n for n in self.env if "." in n]
        hint = did_you_mean(name, qualified or list(self.env))
        self._error(node, f"unknown name `{name}`{hint}" + ("" if hint else " (declare it under `inputs:`)"),
                    follows=f"name:{name}")

    def _UnaryOp(self, node, expected):
        if isinstance(node.op, ast.Not):
            return self._not(self._bool(node.operand, "the operand of `not`"))
        if isinstance(node.op, (ast.USub, ast.UAdd)):
            arg = self._check(node.operand, expected if expected is not None and expected.numeric else None)
            if arg.type.kind == "null":
                return arg
            if not arg.type.numeric:
                self._error(node, f"unary {'-' if isinstance(node.op, ast.USub) else '+'} needs a number, "
                                  f"got {_describe(arg.type)} `{self._text(node.operand)}`")
            if isinstance(node.op, ast.UAdd):
                return arg
            if isinstance(arg, ir.Const) and arg.value is not None:
                if arg.type == INT and -arg.value > ir.INT_MAX:
                    self._error(node, f"{-arg.value} does not fit a 64-bit int")
                return ir.Const(arg.type, -arg.value)
            return ir.Unary("neg", arg)
        self._error(node, "operator `~` is not supported")

    def _not(self, e: ir.Expr) -> ir.Expr:
        if isinstance(e, ir.Const):
            return ir.Const(BOOL, None if e.value is None else not e.value)
        return ir.Unary("not", e)

    def _BoolOp(self, node, expected):
        op = "and" if isinstance(node.op, ast.And) else "or"
        args = []
        failed = False
        for v in node.values:
            try:
                args.append(self._bool(v, f"each side of `{op}`"))
            except _Fail:
                failed = True
        if failed:
            raise _Fail
        flat = []
        for a in args:
            flat.extend(a.args if isinstance(a, ir.Logic) and a.op == op else [a])
        return ir.Logic(op, tuple(flat))

    def _BinOp(self, node, expected):
        op = _ARITH.get(type(node.op))
        if op is None:
            text = _OP_TEXT.get(type(node.op), "?")
            hint = " (use / for division)" if text == "//" else ""
            self._error(node, f"operator `{text}` is not supported{hint}")
        hint = expected if expected is not None and expected.numeric else None
        left, right = self._pair(node.left, node.right, hint)
        lt, rt = left.type.kind, right.type.kind
        if lt == "null" or rt == "null":
            other = right.type if lt == "null" else left.type
            if other.kind == "null":
                return ir.Const(NULL, None)
            result = FLOAT if op == "/" and other.numeric else other
            if other.kind == "date" and op == "-" and lt != "null":
                result = DATE
            return ir.Const(result, None)
        if left.type.numeric and right.type.numeric:
            if op == "/" or FLOAT in (left.type, right.type):
                return ir.Arith(op, _to_float(left), _to_float(right), FLOAT)
            return ir.Arith(op, left, right, INT)
        if lt == "date" and rt == "int" and op in "+-":
            return ir.Arith(op, left, right, DATE)
        if lt == "int" and rt == "date" and op == "+":
            return ir.Arith("+", right, left, DATE)
        if lt == "date" and rt == "date" and op == "-":
            return ir.Arith("-", left, right, INT)
        self._error(node, f"cannot apply `{op}` to {_describe(left.type)} and {_describe(right.type)} "
                          f"in `{self._text(node)}`")

    def _pair(self, a, b, hint: Type | None = None):
        """Check two operands that must agree; an enum member literal takes the other's type."""
        a_lit, b_lit = self._is_member_literal(a), self._is_member_literal(b)
        if a_lit and not b_lit:
            right = self._check(b, hint)
            left = self._check(a, right.type if right.type.kind in ("enum", "date") else hint)
        else:
            left = self._check(a, hint)
            right = self._check(b, left.type if left.type.kind in ("enum", "date") else hint)
        return left, right

    def _Compare(self, node, expected):
        if any(isinstance(op, (ast.Is, ast.IsNot)) for op in node.ops):
            self._error(node, "`is` is not supported: test nulls with is_null(x)")
        if any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
            if len(node.ops) != 1:
                self._error(node, "`in` cannot be chained with other comparisons")
            return self._in(node)
        operands = [node.left] + list(node.comparators)
        parts = []
        failed = False
        for i, op_node in enumerate(node.ops):
            try:
                parts.append(self._compare(node, _CMP[type(op_node)], operands[i], operands[i + 1]))
            except _Fail:
                failed = True
        if failed:
            raise _Fail
        return parts[0] if len(parts) == 1 else ir.Logic("and", tuple(parts))

    def _compare(self, node, op: str, a, b) -> ir.Expr:
        left, right = self._pair(a, b)
        lt, rt = left.type, right.type
        if lt.kind == "null" or rt.kind == "null":
            self.diags.warning(self.source.node_pos(node), f"comparing with null is always null (never true): "
                                                           f"use is_null(x) in `{self._text(node)}`", self.rule)
            return ir.Const(BOOL, None)
        if lt.numeric and rt.numeric:
            if lt != rt:
                left, right = _to_float(left), _to_float(right)
            return self._fold_compare(op, left, right)
        if lt.kind == rt.kind and lt.kind in ("date", "bool"):
            if lt.kind == "bool" and op not in ("==", "!="):
                self._error(node, f"bools compare only with == and !=, in `{self._text(node)}`")
            return self._fold_compare(op, left, right)
        if lt.kind == "enum" and rt.kind == "enum":
            if lt.members == rt.members:
                return self._fold_compare(op, left, right)
            if op not in ("==", "!="):
                self._error(node, f"cannot order values of different enums {lt} and {rt}")
            # compare by member name: both sides re-coded into the union of their members
            union = ir.enum_type(list(lt.members) + [m for m in rt.members if m not in lt.members])
            return self._fold_compare(op, _enum_map(left, union), _enum_map(right, union))
        self._error(node, f"cannot compare {_describe(lt)} with {_describe(rt)} in `{self._text(node)}`")

    @staticmethod
    def _fold_compare(op, left, right) -> ir.Expr:
        if isinstance(left, ir.Const) and isinstance(right, ir.Const):
            import operator
            fn = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
                  "==": operator.eq, "!=": operator.ne}[op]
            return ir.Const(BOOL, bool(fn(left.value, right.value)))
        return ir.Compare(op, left, right)

    def _in(self, node) -> ir.Expr:
        negate = isinstance(node.ops[0], ast.NotIn)
        seq = node.comparators[0]
        if not isinstance(seq, (ast.List, ast.Tuple, ast.Set)):
            self._error(seq, f"`in` needs a list of literals: x in [A, B], got `{self._text(seq)}`")
        arg = self._check(node.left)
        t = arg.type
        if t.kind == "null":
            return ir.Const(BOOL, None)
        values = []
        failed = False
        for elt in seq.elts:
            try:
                c = self._check(elt, t if t.kind == "enum" else None)
                if not isinstance(c, ir.Const) or c.value is None:
                    self._error(elt, f"`in` lists hold literal values, got `{self._text(elt)}`")
                if c.type == t or (t == FLOAT and c.type == INT):
                    values.append(float(c.value) if t == FLOAT else c.value)
                elif t == INT and c.type == FLOAT and float(c.value).is_integer():
                    values.append(int(c.value))
                else:
                    self._error(elt, f"`{self._text(elt)}` is {_describe(c.type)}, but "
                                     f"`{self._text(node.left)}` is {_describe(t)}")
            except _Fail:
                failed = True
        if failed:
            raise _Fail
        if t.kind == "bool":
            pass
        elif not t.ordered:
            self._error(node, f"`in` does not apply to {_describe(t)}")
        unique = tuple(dict.fromkeys(values))
        if isinstance(arg, ir.Const):
            if arg.value is None:
                return ir.Const(BOOL, None)
            return ir.Const(BOOL, (arg.value in unique) != negate)
        return ir.InList(arg, unique, negate)

    def _IfExp(self, node, expected):
        cond = self._bool(node.test, "the condition of `if`")
        then, other = self._pair(node.body, node.orelse, expected)
        t = self._unify([then, other], node, "the two branches of `if`", expected)
        return ir.IfElse(cond, _coerce(then, t), _coerce(other, t), t)

    def _unify(self, exprs, node, what: str, expected: Type | None = None) -> Type:
        types = [e.type for e in exprs if e.type.kind != "null"]
        if not types:
            return NULL
        if all(t.numeric for t in types):
            return FLOAT if FLOAT in types else INT
        first = types[0]
        if all(t == first for t in types):
            return first
        if (expected is not None and expected.kind == "enum" and all(t.kind == "enum" for t in types)
                and all(set(t.members) <= set(expected.members) for t in types)):
            return expected            # enums of other member lists, re-coded into the expected one
        self._error(node, f"{what} must have one type, got " + ", ".join(_describe(e.type) for e in exprs))

    def _Call(self, node, expected):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            name = self._text(node.func)
            self._error(node, f"unknown function `{name}`{did_you_mean(name, FUNCTIONS)}")
        fn = node.func.id
        if node.keywords:
            self._error(node, f"{fn}() takes no keyword arguments")
        lo, hi = FUNCTIONS[fn]
        n = len(node.args)
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
            self._error(node, f"{fn}() takes {want} argument{'s' if want != '1' else ''}, got {n}")
        if fn == "date":
            arg = node.args[0]
            if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                self._error(node, "date() takes a literal 'YYYY-MM-DD'")
            try:
                return ir.Const(DATE, literal_value(arg.value, DATE))
            except ValueError as e:
                self._error(arg, str(e))
        if fn == "is_null":
            arg = self._check(node.args[0], expected if expected is not None and expected.kind == "enum" else None)
            if isinstance(arg, ir.Const):
                return ir.Const(BOOL, arg.value is None)
            return ir.Call("is_null", (arg,), BOOL)
        if fn in ("year", "month", "day", "days_between"):
            args = [self._check(a) for a in node.args]
            for a, e in zip(node.args, args):
                if e.type.kind not in ("date", "null"):
                    self._error(a, f"{fn}() needs a date, got {_describe(e.type)} `{self._text(a)}`")
            if any(e.type.kind == "null" for e in args):
                return ir.Const(INT, None)
            return ir.Call(fn, tuple(args), INT)
        if fn == "abs":
            arg = self._check(node.args[0], expected)
            if arg.type.kind == "null":
                return arg
            if not arg.type.numeric:
                self._error(node, f"abs() needs a number, got {_describe(arg.type)}")
            return ir.Unary("abs", arg)
        # min, max, clip, coalesce: arguments of one type
        args = self._args_of_one_type(node, expected)
        t = self._unify(args, node, f"the arguments of {fn}()", expected)
        if fn in ("min", "max", "clip"):
            if t.kind == "null":
                return ir.Const(NULL, None)
            if not t.ordered:
                self._error(node, f"{fn}() needs numbers, dates or enum values, got {t}")
            if fn == "clip" and not t.numeric:
                self._error(node, f"clip() needs numbers, got {t}")
            if any(a.type.kind == "null" for a in args):
                return ir.Const(t, None)
        return ir.Call(fn, tuple(_coerce(a, t) for a in args), t)

    def _probe(self, node) -> Type | None:
        """The type of ``node`` on its own, if it has one (no diagnostics are kept)."""
        probe = ExprChecker(self.env, Diagnostics(self.diags.file), self.source, self.rule)
        e = probe.check(node)
        return None if e is None else e.type

    def _args_of_one_type(self, node, expected):
        """Check arguments that must share a type; bare enum members take the type of the
        first argument that has an enum type of its own (else the expected type)."""
        enum_t = None
        for a in node.args:
            if not self._is_member_literal(a):
                t = self._probe(a)
                if t is not None and t.kind == "enum":
                    enum_t = t
                    break
        if enum_t is None and expected is not None and expected.kind == "enum":
            enum_t = expected
        return [self._check(a, enum_t if enum_t is not None else expected) for a in node.args]

    def _List(self, node, expected):
        self._error(node, "a list is only allowed after `in`")

    _Tuple = _Set = _List


def _to_float(e: ir.Expr) -> ir.Expr:
    if e.type == INT:
        if isinstance(e, ir.Const):
            return ir.Const(FLOAT, None if e.value is None else float(e.value))
        return ir.ToFloat(e)
    return e


def _enum_map(e: ir.Expr, target: Type) -> ir.Expr:
    codes = tuple(target.members.index(m) if m in target.members else -1 for m in e.type.members)
    if isinstance(e, ir.Const):
        return ir.Const(target, None if e.value is None or codes[e.value] < 0 else codes[e.value])
    return ir.EnumMap(e, codes, target)


def _coerce(e: ir.Expr, t: Type) -> ir.Expr:
    """Give ``e`` type ``t``: ints widen to float, null literals take ``t``, enums re-code."""
    if e.type == t:
        return e
    if e.type.kind == "null":
        return ir.Const(t, None)
    if t == FLOAT and e.type == INT:
        return _to_float(e)
    if t.kind == "enum" and e.type.kind == "enum":
        return _enum_map(e, t)
    raise AssertionError(f"cannot coerce {e.type} to {t}")  # callers unify first


def coerce_to(e: ir.Expr, t: Type) -> ir.Expr | None:
    """``e`` as a value of type ``t`` (an output), or None if the types do not fit."""
    if e.type == t or e.type.kind == "null" or (t == FLOAT and e.type == INT):
        return _coerce(e, t)
    if t.kind == "enum" and e.type.kind == "enum" and set(e.type.members) <= set(t.members):
        return _enum_map(e, t)
    return None
