"""Stage 2, check: the parsed YAML tree → a typed :class:`~.ir.RulesetIR` plus every diagnostic.

The checker walks the whole file and reports every problem it finds (unknown keys, bad types,
unknown names with "did you mean", bad cells…) before giving up; a file with errors yields no
IR. Static checks on the result (shadowed rules, integer gaps, overlaps under ``unique``) live
in :mod:`.static`.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from . import ir
from .cells import CellError, cell_condition, parse_cell
from .diagnostics import Diagnostics, did_you_mean
from .expressions import ExprChecker, coerce_to, literal_value
from .ir import BOOL, DATE, FLOAT, INT, Type
from .parse import ExprSource, Mapping, Scalar, Sequence, parse_expression

__all__ = ["Checked", "TestCase", "check_document", "parse_type", "HIT_POLICIES", "COLLECT_OPS"]

HIT_POLICIES = ("first", "priority", "collect", "unique")
COLLECT_OPS = ("sum", "min", "max", "count", "any", "all", "first")
TOP_KEYS = ("ruleset", "version", "description", "hit", "inputs", "outputs", "rules", "table", "tests")
RULE_KEYS = ("id", "when", "then", "salience", "description")
OUTPUT_KEYS = ("type", "enum", "default", "collect", "description")
TABLE_KEYS = ("when", "then", "rows")
TEST_KEYS = ("name", "given", "expect", "as_of")
ROW_KEYS = ("id", "note", "cells")
BASIC_TYPES = {"int": INT, "float": FLOAT, "bool": BOOL, "date": DATE}
MAX_ENUM_MEMBERS = 127          # codes are int8

NAME = re.compile(r"^[a-z][a-z0-9_]*$")
INPUT = re.compile(r"^([a-z_][a-z0-9_]*|[a-z][a-z0-9_]*\.[a-z_][a-z0-9_]*)$")
RULE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


@dataclass
class TestCase:
    name: str
    pos: tuple[int, int]
    given: dict                        # input name -> internal value
    expect: dict                       # output name (or "rule") -> internal value
    as_of: int | None = None           # days since epoch


@dataclass
class Checked:
    """The result of checking one file: the IR and where each part sits in the file."""
    ir: ir.RulesetIR
    file: str
    name_pos: tuple[int, int]
    input_pos: dict = field(default_factory=dict)
    output_pos: dict = field(default_factory=dict)
    rule_pos: dict = field(default_factory=dict)
    rules_pos: tuple[int, int] = (1, 1)
    tests: list = field(default_factory=list)
    rule_notes: dict = field(default_factory=dict)      # table row id -> its `note:`


def _kind(node) -> str:
    if isinstance(node, Mapping):
        return "a mapping"
    if isinstance(node, Sequence):
        return "a list"
    v = node.value
    if v is None:
        return "nothing (null)"
    if isinstance(v, bool):
        return f"`{str(v).lower()}`"
    text = str(v)
    return f"`{text}`" if len(text) <= 80 else f"`{text[:60]}…` ({len(text):,} characters)"


def _check_keys(m: Mapping, allowed, what: str, d: Diagnostics, rule=None) -> None:
    for key, (pos, _) in m.items.items():
        if key not in allowed:
            d.error(pos, f"unknown key `{key}` in {what}{did_you_mean(str(key), allowed)} "
                         f"(expected one of: {', '.join(allowed)})", rule)


def parse_type(node, d: Diagnostics, what: str, allow_default=False) -> Type | None:
    """``int`` / ``{type: int}`` / ``{enum: [A, B]}`` → Type."""
    if isinstance(node, Scalar):
        if isinstance(node.value, str) and node.value.strip() in BASIC_TYPES:
            return BASIC_TYPES[node.value.strip()]
        d.error(node.pos, f"{what}: unknown type {_kind(node)}{did_you_mean(str(node.value), BASIC_TYPES)} "
                          f"(expected int, float, bool, date or {{enum: [...]}})")
        return None
    if not isinstance(node, Mapping):
        d.error(node.pos, f"{what}: expected a type (int, float, bool, date or {{enum: [...]}}), got {_kind(node)}")
        return None
    has_type, has_enum = "type" in node.items, "enum" in node.items
    if has_type and has_enum:
        d.error(node.key_pos("enum"), f"{what}: give either `type:` or `enum:`, not both")
        return None
    if has_enum:
        members = node.get("enum")
        if not isinstance(members, Sequence) or not members.items:
            d.error(members.pos, f"{what}: `enum:` needs a non-empty list of member names")
            return None
        names, ok = [], True
        for item in members.items:
            if not isinstance(item, Scalar) or not isinstance(item.value, str) or not item.value.strip():
                d.error(item.pos, f"{what}: enum members are names (strings), got {_kind(item)}")
                ok = False
                continue
            if item.value in names:
                d.error(item.pos, f"{what}: enum member `{item.value}` listed twice")
                ok = False
                continue
            names.append(item.value)
        if len(names) > MAX_ENUM_MEMBERS:
            d.error(members.pos, f"{what}: at most {MAX_ENUM_MEMBERS} enum members, got {len(names)}")
            ok = False
        return ir.enum_type(names) if ok else None
    if has_type:
        return parse_type(node.get("type"), d, what)
    d.error(node.pos, f"{what}: missing `type:` (int, float, bool, date) or `enum: [...]`")
    return None


def _string(node, d: Diagnostics, what: str) -> str | None:
    if isinstance(node, Scalar) and isinstance(node.value, str):
        return node.value
    hint = f' (quote it: "{node.value}")' if isinstance(node, Scalar) and isinstance(node.value, (int, float)) \
        and not isinstance(node.value, bool) else ""
    d.error(node.pos, f"{what} must be a string, got {_kind(node)}{hint}")
    return None


#: keys only a ruleset has: a mapping with none of them is some other YAML file
RULESET_MARKS = ("ruleset", "hit", "inputs", "outputs", "rules", "table")
NOT_A_RULESET = "not a ruleset: a ruleset file is a mapping with `ruleset: <name>`, `outputs:` and `rules:` (or `table:`)"


def _shape(node) -> str:
    """What a node is, without its content (for files that may not be rulesets at all)."""
    if isinstance(node, Mapping):
        return "a mapping"
    if isinstance(node, Sequence):
        return "a list"
    v = node.value
    if v is None:
        return "nothing (null)"
    return "text" if isinstance(v, str) else f"a {type(v).__name__}"


def check_document(root, d: Diagnostics, *, book_only: bool = False) -> Checked | None:
    """Check one parsed file; returns None when it has errors (they are in ``d``).

    Bare input names that are columns of the data contract (:mod:`kernel.schema`) must be
    declared with the contract's type; the rest of the file is then checked with the
    contract's type, so one wrong declaration is one error. With ``book_only`` (a bundle, and
    ``postloan check``) every bare input must be such a column; without it (``compile_ruleset``)
    other names are the caller's own columns.

    A file that is not a ruleset at all — not a mapping, or a mapping with none of the
    ruleset's own keys — gets one error that quotes none of its content: a bundle path may
    point at any file (a symlink to /etc/passwd), and its keys or text must not leak into
    error messages and logs."""
    if not isinstance(root, Mapping):
        d.error(root.pos, f"{NOT_A_RULESET}; this file is {_shape(root)}")
        return None
    if not any(key in root.items for key in RULESET_MARKS):
        d.error(root.pos, f"{NOT_A_RULESET}; this file has none of those keys")
        return None
    _check_keys(root, TOP_KEYS, "the ruleset", d)

    name_node = root.get("ruleset")
    name = None
    if name_node is None:
        d.error(root.pos, "missing `ruleset: <name>`")
    else:
        name = _string(name_node, d, "`ruleset`")
        if name is not None and not NAME.match(name):
            d.error(name_node.pos, f"ruleset name `{name}` must match [a-z][a-z0-9_]*")
    version = ""
    vnode = root.get("version")
    if vnode is None:
        d.error(root.pos, 'missing `version: "<version>"` (every decision records it)')
    else:
        version = _string(vnode, d, "`version`") or ""
    description = ""
    if root.get("description") is not None:
        description = _string(root.get("description"), d, "`description`") or ""
    hit = "first"
    hnode = root.get("hit")
    if hnode is not None:
        h = _string(hnode, d, "`hit`")
        if h is not None and h not in HIT_POLICIES:
            d.error(hnode.pos, f"unknown hit policy `{h}`{did_you_mean(h, HIT_POLICIES)} "
                               f"(expected one of: {', '.join(HIT_POLICIES)})")
        elif h is not None:
            hit = h

    checked = Checked(None, d.file, name_node.pos if name_node else root.pos)  # type: ignore[arg-type]
    inputs = _inputs(root.get("inputs"), d, checked)
    inputs = _against_the_contract(inputs, d, checked, book_only)
    d.partial = {"name": name, "inputs": [(i.name, i.type, checked.input_pos[i.name]) for i in inputs]}
    env = {i.name: i.type for i in inputs}
    outputs = _outputs(root.get("outputs"), hit, d, checked, root)

    rules_node, table_node = root.get("rules"), root.get("table")
    rules: list[ir.Rule] = []
    table = None
    reads_as_of = False
    if rules_node is not None and table_node is not None:
        d.error(root.key_pos("table"), "give either `rules:` or `table:`, not both")
    elif rules_node is None and table_node is None:
        d.error(root.pos, "missing `rules:` (or a decision `table:`)")
    elif rules_node is not None:
        checked.rules_pos = root.key_pos("rules")
        rules, reads_as_of = _rules(rules_node, env, outputs, hit, d, checked)
    else:
        checked.rules_pos = root.key_pos("table")
        rules, table, reads_as_of = _table(table_node, env, outputs, hit, d, checked)

    if d.has_errors or name is None:
        return None
    checked.ir = ir.RulesetIR(name, version, description, hit, tuple(inputs), tuple(outputs),
                              tuple(rules), table, reads_as_of)
    checked.tests = _tests(root.get("tests"), checked.ir, d)
    if d.has_errors:
        return None
    from .static import static_checks
    static_checks(checked, d)
    return None if d.has_errors else checked


_KEY_LINE = re.compile(r"^(\s+)([a-z_]+):(\s|$)")


def swallowed_keys(root, text: str, d: Diagnostics) -> None:
    """Warn of a line inside a top-level block scalar (``description: |``) that looks like a
    top-level key the file does not otherwise give: indented one step too far, ``hit: unique``
    is text of the description and the ruleset silently runs under ``first``."""
    if not isinstance(root, Mapping):
        return
    lines = text.splitlines()
    for key, (kpos, node) in root.items.items():
        if not isinstance(node, Scalar) or node.style not in ("literal", "folded"):
            continue
        for number in range(node.pos[0], len(lines)):          # the lines after the `|`
            line = lines[number]
            if line.strip() and not line[:1].isspace():
                break                                          # back at the top level
            m = _KEY_LINE.match(line)
            if m and m.group(2) in TOP_KEYS and m.group(2) not in root.items:
                d.warning((number + 1, len(m.group(1)) + 1),
                          f"`{m.group(2)}:` is inside the block text of `{key}:` (indented under it), so it "
                          f"is not a key of the ruleset: move it to the start of the line")


# ------------------------------------------------------------------------------------ inputs
def _inputs(node, d: Diagnostics, checked: Checked) -> list[ir.Input]:
    if node is None:
        return []
    if not isinstance(node, Mapping):
        d.error(node.pos, f"`inputs:` maps each input name to its type, got {_kind(node)}")
        return []
    out = []
    for key, (pos, tnode) in node.items.items():
        key = str(key)
        if key == "as_of":
            d.error(pos, "`as_of` is built in (the decision date); do not declare it as an input")
            continue
        if not INPUT.match(key):
            d.error(pos, f"input name `{key}` must be a column name (dpd) or a qualified output "
                         f"(early_warning.level)")
            continue
        t = parse_type(tnode, d, f"input `{key}`")
        if t is not None:
            out.append(ir.Input(key, t))
            checked.input_pos[key] = pos
    return out


def contract_type(col) -> Type | None:
    """The rules' type of a data-contract column (None: rules cannot read it)."""
    from ..schema import logical_type
    lt = logical_type(col)
    if isinstance(lt, dict):
        return ir.enum_type(lt["enum"])
    return BASIC_TYPES.get(lt) if isinstance(lt, str) else None


def _against_the_contract(inputs: list[ir.Input], d: Diagnostics, checked: Checked,
                          book_only: bool) -> list[ir.Input]:
    """Bare inputs checked against the data contract; a wrong declaration is replaced by the
    contract's type, so the rules and examples are checked against what the data holds."""
    from ..schema import columns
    book = columns("input")
    out = []
    for i in inputs:
        if "." in i.name:
            out.append(i)
            continue
        pos = checked.input_pos[i.name]
        col = book.get(i.name)
        if col is None:
            if book_only:
                close = did_you_mean(i.name, book)
                meant = next(iter(difflib.get_close_matches(i.name, list(book), n=1, cutoff=0.6)), None)
                d.error(pos, f"input `{i.name}` is not a column of the book (kernel.schema){close}",
                        cause=f"name:{meant}" if meant else None)
            out.append(i)
            continue
        actual = contract_type(col)
        if actual is None:
            d.error(pos, f"input `{i.name}`: the book column is {col.type}, which rules cannot read")
            out.append(i)
        elif actual != i.type:
            d.error(pos, f"input `{i.name}` is declared as {i.type}, but the data contract says {actual}")
            out.append(ir.Input(i.name, actual))
        else:
            out.append(i)
    return out


# ------------------------------------------------------------------------------------ outputs
def _outputs(node, hit: str, d: Diagnostics, checked: Checked, root: Mapping) -> list[ir.Output]:
    if node is None:
        d.error(root.pos, "missing `outputs:` (each output with its type and default)")
        return []
    if not isinstance(node, Mapping) or not node.items:
        d.error(node.pos, f"`outputs:` maps each output name to its type and default, got {_kind(node)}")
        return []
    out = []
    for key, (pos, spec) in node.items.items():
        key = str(key)
        what = f"output `{key}`"
        if not NAME.match(key):
            d.error(pos, f"output name `{key}` must match [a-z][a-z0-9_]*")
            continue
        if key == "rule":
            d.error(pos, "`rule` is reserved: every ruleset produces `<ruleset>.rule` (the winning rule)")
            continue
        if not isinstance(spec, Mapping):
            d.error(spec.pos, f"{what}: expected {{type: ..., default: ...}} or {{enum: [...], default: ...}} "
                              f"(every output needs a default), got {_kind(spec)}")
            continue
        _check_keys(spec, OUTPUT_KEYS, what, d)
        t = parse_type(spec, d, what)
        if t is None:
            continue
        dnode = spec.get("default")
        default = None
        if dnode is None:
            d.error(pos, f"{what}: missing `default:` (the value when no rule sets it)")
        elif not isinstance(dnode, Scalar):
            d.error(dnode.pos, f"{what}: the default is a literal {t}, got {_kind(dnode)}")
        else:
            try:
                default = literal_value(dnode.value, t)
            except ValueError as e:
                d.error(dnode.pos, f"{what}: bad default: {e}")
        collect = None
        cnode = spec.get("collect")
        if hit == "collect":
            if cnode is None:
                d.error(pos, f"{what}: under hit: collect, say how values combine: "
                             f"collect: {' | '.join(COLLECT_OPS)}")
            else:
                collect = _collect_op(cnode, t, what, d)
        elif cnode is not None:
            d.error(spec.key_pos("collect"), f"{what}: `collect:` applies only under hit: collect")
        out.append(ir.Output(key, t, default, collect))
        checked.output_pos[key] = pos
    return out


def _collect_op(node, t: Type, what: str, d: Diagnostics) -> str | None:
    op = node.value if isinstance(node, Scalar) else None
    if op not in COLLECT_OPS:
        d.error(node.pos, f"{what}: unknown collect `{op}`{did_you_mean(str(op), COLLECT_OPS)} "
                          f"(expected one of: {', '.join(COLLECT_OPS)})")
        return None
    fits = {"sum": t.numeric, "min": t.ordered, "max": t.ordered, "count": t == INT,
            "any": t == BOOL, "all": t == BOOL, "first": True}[op]
    if not fits:
        need = {"sum": "int or float", "min": "int, float, date or enum", "max": "int, float, date or enum",
                "count": "int", "any": "bool", "all": "bool"}[op]
        d.error(node.pos, f"{what}: collect: {op} needs an output of type {need}, but it is {t}")
        return None
    return op


# ------------------------------------------------------------------------------------ rules
def _salience(rnode: Mapping, hit: str, d: Diagnostics, rid: str | None):
    snode = rnode.get("salience")
    if hit != "priority":
        if snode is not None:
            d.warning(rnode.key_pos("salience"), f"`salience` has no effect under hit: {hit}", rid)
        return None
    if snode is None:
        d.error(rnode.pos, "under hit: priority every rule needs `salience: <number>`", rid)
        return None
    v = snode.value if isinstance(snode, Scalar) else None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        d.error(snode.pos, f"`salience` must be a number, got {_kind(snode)}", rid)
        return None
    return float(v)


def _rules(node, env, outputs, hit, d: Diagnostics, checked: Checked):
    if not isinstance(node, Sequence) or not node.items:
        d.error(node.pos, f"`rules:` is a list of rules (- id: ..., when: ..., then: ...), got {_kind(node)}")
        return [], False
    out_types = {o.name: o.type for o in outputs}
    rules, seen, reads_as_of = [], {}, False
    for n, rnode in enumerate(node.items, 1):
        if not isinstance(rnode, Mapping):
            d.error(rnode.pos, f"rule {n}: expected a mapping (id, when, then), got {_kind(rnode)}")
            continue
        rid = None
        idnode = rnode.get("id")
        if idnode is None:
            d.error(rnode.pos, f"rule {n}: missing `id`")
        else:
            raw = idnode.value if isinstance(idnode, Scalar) else None
            rid = str(raw) if isinstance(raw, (str, int)) and not isinstance(raw, bool) else None
            if rid is None or not RULE_ID.match(rid):
                d.error(idnode.pos, f"rule {n}: `id` must be a name (letters, digits, _ . -), got {_kind(idnode)}")
                rid = None
            elif rid in seen:
                d.error(idnode.pos, f"rule id `{rid}` is used twice (first at line {seen[rid][0]})", rid)
            else:
                seen[rid] = idnode.pos
                checked.rule_pos[rid] = idnode.pos
        _check_keys(rnode, RULE_KEYS, f"rule `{rid or n}`", d, rid)
        salience = _salience(rnode, hit, d, rid)
        wnode = rnode.get("when")
        when = None
        if wnode is None:
            d.error(rnode.pos, "missing `when` (write `when: true` for a rule that always fires)", rid)
        else:
            when, used = _condition(wnode, env, d, rid)
            reads_as_of |= used
        then, used = _then(rnode.get("then"), rnode, out_types, env, d, rid)
        reads_as_of |= used
        if rid is not None and when is not None and then is not None:
            rules.append(ir.Rule(rid, when, tuple(then), salience, rnode.pos[0]))
    return rules, reads_as_of


def _condition(node, env, d: Diagnostics, rid):
    if isinstance(node, Scalar) and isinstance(node.value, bool):
        return ir.Const(BOOL, node.value), False
    if not isinstance(node, Scalar) or not isinstance(node.value, str):
        d.error(node.pos, f"`when` must be a condition expression, got {_kind(node)}", rid)
        return None, False
    source = ExprSource(node)
    tree = parse_expression(source, d, rid)
    if tree is None:
        return None, False
    checker = ExprChecker(env, d, source, rid)
    e = checker.check(tree, BOOL)
    if e is None:
        return None, checker.reads_as_of
    if e.type.kind == "null":
        return ir.Const(BOOL, None), checker.reads_as_of
    if e.type != BOOL:
        d.error(node.pos, f"`when` must be a condition (bool), got {e.type} `{node.value}`", rid)
        return None, checker.reads_as_of
    return e, checker.reads_as_of


def value_expr(node, t: Type, env, d: Diagnostics, rid, what: str):
    """A `then` value (or output cell): literal, bare enum member, or expression of type ``t``."""
    if isinstance(node, (Mapping, Sequence)):
        d.error(node.pos, f"{what}: expected a value or expression, got {_kind(node)}", rid)
        return None, False
    v = node.value
    if v is None:
        return ir.Const(t, None), False
    if not isinstance(v, str) or (t.kind == "date" and re.fullmatch(r"\s*\d{4}-\d{2}-\d{2}\s*", v)):
        try:
            return ir.Const(t, literal_value(v, t)), False
        except ValueError as e:
            d.error(node.pos, f"{what}: {e}", rid)
            return None, False
    if t.kind == "enum" and v.strip() in t.members:
        return ir.Const(t, t.members.index(v.strip())), False
    source = ExprSource(node)
    tree = parse_expression(source, d, rid)
    if tree is None:
        return None, False
    checker = ExprChecker(env, d, source, rid)
    e = checker.check(tree, t)
    if e is None:
        return None, checker.reads_as_of
    fitted = coerce_to(e, t)
    if fitted is None:
        d.error(node.pos, f"{what} is {t}, but `{v.strip()}` is {e.type}", rid)
        return None, checker.reads_as_of
    return fitted, checker.reads_as_of


def _then(node, rnode, out_types, env, d: Diagnostics, rid):
    if node is None:
        d.error(rnode.pos, "missing `then` (the outputs this rule sets; `then: {}` sets none)", rid)
        return None, False
    if not isinstance(node, Mapping):
        d.error(node.pos, f"`then` maps outputs to values, got {_kind(node)}", rid)
        return None, False
    out, ok, reads = [], True, False
    for key, (pos, vnode) in node.items.items():
        key = str(key)
        if key not in out_types:
            if not NAME.match(key):
                d.error(pos, f"`{key}` is not an output name: a comma inside a {{...}} mapping ends the value "
                             f"before it; quote the expression (\"...\") or write `then:` as a block", rid)
            else:
                d.error(pos, f"unknown output `{key}`{did_you_mean(key, out_types)} (declare it under `outputs:`)", rid)
            ok = False
            continue
        e, used = value_expr(vnode, out_types[key], env, d, rid, f"output `{key}`")
        reads |= used
        if e is None:
            ok = False
        else:
            out.append((key, e))
    return (out if ok else None), reads


# ------------------------------------------------------------------------------------ tables
def _names(node, d: Diagnostics, what: str) -> list[tuple[str, tuple]] | None:
    if not isinstance(node, Sequence):
        d.error(node.pos, f"table `{what}:` is a list of names, got {_kind(node)}")
        return None
    out = []
    for item in node.items:
        if not isinstance(item, Scalar) or not isinstance(item.value, str):
            d.error(item.pos, f"table `{what}:` holds names, got {_kind(item)}")
            return None
        out.append((item.value.strip(), item.pos))
    return out


def _table(node, env, outputs, hit, d: Diagnostics, checked: Checked):
    if not isinstance(node, Mapping):
        d.error(node.pos, f"`table:` needs when, then and rows, got {_kind(node)}")
        return [], None, False
    _check_keys(node, TABLE_KEYS, "the table", d)
    missing = [k for k in TABLE_KEYS if k not in node.items]
    for k in missing:
        d.error(node.pos, f"table: missing `{k}:`")
    if missing:
        return [], None, False
    when_cols = _names(node.get("when"), d, "when")
    then_cols = _names(node.get("then"), d, "then")
    if when_cols is None or then_cols is None:
        return [], None, False
    out_types = {o.name: o.type for o in outputs}
    ok = True
    for col, pos in when_cols:
        if col not in env:
            d.error(pos, f"table column `{col}` is not a declared input{did_you_mean(col, env)}",
                    follows=f"name:{col}")
            ok = False
    has_salience = False
    for col, pos in then_cols:
        if col == "salience" and hit == "priority":
            has_salience = True
        elif col not in out_types:
            d.error(pos, f"table column `{col}` is not a declared output{did_you_mean(col, out_types)}")
            ok = False
    if hit == "priority" and not has_salience:
        d.error(node.key_pos("then"), "under hit: priority a table needs a `salience` column under `then:`")
        ok = False
    names = [c for c, _ in when_cols] + [c for c, _ in then_cols]
    if len(set(names)) != len(names):
        d.error(node.key_pos("when"), "a table names each column once")
        ok = False
    rows_node = node.get("rows")
    if not isinstance(rows_node, Sequence) or not rows_node.items:
        d.error(rows_node.pos, f"table `rows:` is a list of rows, got {_kind(rows_node)}")
        return [], None, False
    if not ok:
        return [], None, False
    width = len(names)
    rules, cells_all, reads_as_of = [], [], False
    seen: dict[str, tuple] = {}
    for n, row in enumerate(rows_node.items, 1):
        rid = f"row{n}"
        if isinstance(row, Mapping):            # - {id: m2, note: "...", cells: [...]}
            row, rid = _row_mapping(row, n, d, checked)
            if row is None:
                continue
        if rid in seen:
            d.error(row.pos, f"row {n}: rule id `{rid}` is used twice (first at line {seen[rid][0]})", rid)
            continue
        seen[rid] = row.pos
        if not isinstance(row, Sequence):
            d.error(row.pos, f"row {n} must be a list of {width} cells (or a mapping with `cells:`, "
                             f"and optional `id:` and `note:`), got {_kind(row)}", rid)
            continue
        if len(row.items) != width:
            d.error(row.pos, f"row {n} has {len(row.items)} cells, expected {width} "
                             f"({', '.join(names)})", rid)
            continue
        cells, conds, then, salience, row_ok = [], [], [], None, True
        for (col, _), cell in zip(when_cols, row.items):
            t = env[col]
            if not isinstance(cell, Scalar):
                d.error(cell.pos, f"column `{col}`: a cell is a string or number, got {_kind(cell)}", rid)
                row_ok = False
                continue
            try:
                vset = parse_cell(cell.value, t)
            except CellError as e:
                d.error(cell.pos, f"column `{col}` ({t}): {e}", rid)
                row_ok = False
                continue
            cells.append(vset)
            cond = cell_condition(col, t, vset)
            if not (isinstance(cond, ir.Const) and cond.value is True):
                conds.append(cond)
        for (col, _), cell in zip(then_cols, row.items[len(when_cols):]):
            if col == "salience":
                v = cell.value if isinstance(cell, Scalar) else None
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    d.error(cell.pos, f"column `salience` must be a number, got {_kind(cell)}", rid)
                    row_ok = False
                else:
                    salience = float(v)
                continue
            e, used = value_expr(cell, out_types[col], env, d, rid, f"output `{col}`")
            reads_as_of |= used
            if e is None:
                row_ok = False
            else:
                then.append((col, e))
        if not row_ok:
            continue
        when = conds[0] if len(conds) == 1 else (ir.Logic("and", tuple(conds)) if conds else ir.Const(BOOL, True))
        rules.append(ir.Rule(rid, when, tuple(then), salience, row.pos[0]))
        checked.rule_pos[rid] = row.pos
        cells_all.append(tuple(cells))
    table = ir.Table(tuple(c for c, _ in when_cols), tuple(cells_all),
                     tuple(c for c, _ in then_cols if c != "salience"))
    return rules, table, reads_as_of


def _row_mapping(node: Mapping, n: int, d: Diagnostics, checked: Checked):
    """A table row written as a mapping: ``cells:`` (the row's list), with an optional ``id:``
    (the rule id explanations, ``<ruleset>.rule`` and the audit show instead of ``row<N>``)
    and ``note:`` (text for the reader, shown in explanations). Returns (cells node, id)."""
    _check_keys(node, ROW_KEYS, f"row {n}", d)
    rid = f"row{n}"
    idnode = node.get("id")
    if idnode is not None:
        raw = idnode.value if isinstance(idnode, Scalar) else None
        given = str(raw) if isinstance(raw, (str, int)) and not isinstance(raw, bool) else None
        if given is None or not RULE_ID.match(given):
            d.error(idnode.pos, f"row {n}: `id` must be a name (letters, digits, _ . -), got {_kind(idnode)}")
            return None, rid
        rid = given
    nnode = node.get("note")
    if nnode is not None:
        note = _string(nnode, d, f"row {n}: `note`")
        if note is None:
            return None, rid
        checked.rule_notes[rid] = note.strip()
    cells = node.get("cells")
    if cells is None:
        d.error(node.pos, f"row {n}: missing `cells:` (the row's cells, as a list)", rid)
        return None, rid
    return cells, rid


# ------------------------------------------------------------------------------------ tests
def _tests(node, rs: ir.RulesetIR, d: Diagnostics) -> list[TestCase]:
    if node is None:
        return []
    if not isinstance(node, Sequence):
        d.error(node.pos, f"`tests:` is a list of examples (- name, given, expect), got {_kind(node)}")
        return []
    inputs = {i.name: i.type for i in rs.inputs}
    outputs = {o.name: o.type for o in rs.outputs}
    rule_ids = [r.id for r in rs.rules]
    out = []
    for n, tnode in enumerate(node.items, 1):
        if not isinstance(tnode, Mapping):
            d.error(tnode.pos, f"test {n}: expected a mapping (name, given, expect), got {_kind(tnode)}")
            continue
        _check_keys(tnode, TEST_KEYS, f"test {n}", d)
        name = f"test {n}"
        if tnode.get("name") is not None:
            name = str(tnode.get("name").value) if isinstance(tnode.get("name"), Scalar) else name
        label = f"test `{name}`"
        case = TestCase(name, tnode.pos, {}, {})
        asnode = tnode.get("as_of")
        if asnode is not None:
            try:
                case.as_of = literal_value(asnode.value if isinstance(asnode, Scalar) else asnode, DATE)
            except ValueError as e:
                d.error(asnode.pos, f"{label}: as_of: {e}")
        elif rs.reads_as_of:
            d.error(tnode.pos, f"{label}: the rules read `as_of`, so the example must give `as_of: YYYY-MM-DD`")
        for key, target, types in (("given", case.given, inputs), ("expect", case.expect, outputs)):
            m = tnode.get(key)
            if m is None:
                d.error(tnode.pos, f"{label}: missing `{key}:`")
                continue
            if not isinstance(m, Mapping):
                d.error(m.pos, f"{label}: `{key}:` maps names to values, got {_kind(m)}")
                continue
            for k, (pos, vnode) in m.items.items():
                k = str(k)
                if key == "expect" and k == "rule":
                    target["rule"] = _expected_rule(vnode, rs, rule_ids, label, d)
                    continue
                if k not in types:
                    kind = "input" if key == "given" else "output"
                    d.error(pos, f"{label}: unknown {kind} `{k}`{did_you_mean(k, list(types) + (['rule'] if key == 'expect' else []))}",
                            follows=f"name:{k}" if key == "given" else None)
                    continue
                if not isinstance(vnode, Scalar):
                    d.error(vnode.pos, f"{label}: `{k}` needs a literal value, got {_kind(vnode)}")
                    continue
                try:
                    target[k] = literal_value(vnode.value, types[k])
                except ValueError as e:
                    d.error(vnode.pos, f"{label}: `{k}`: {e}")
        out.append(case)
    return out


def _expected_rule(vnode, rs, rule_ids, label, d):
    if rs.hit == "collect":
        items = vnode.items if isinstance(vnode, Sequence) else None
        if items is None:
            d.error(vnode.pos, f"{label}: under hit: collect, `rule` is the list of fired rule ids")
            return []
        ids = [str(i.value) if isinstance(i, Scalar) else None for i in items]
    else:
        if not isinstance(vnode, Scalar):
            d.error(vnode.pos, f"{label}: `rule` is the winning rule id (or null)")
            return None
        ids = [None if vnode.value is None else str(vnode.value)]
    for i in ids:
        if i is not None and i not in rule_ids and i != "!unique":
            d.error(vnode.pos, f"{label}: unknown rule id `{i}`{did_you_mean(str(i), rule_ids)}")
    return ids if rs.hit == "collect" else ids[0]
