"""Stage 1, parse: YAML text → a tree of positioned nodes; expression text → Python ``ast``.

YAML is composed by libyaml (PyYAML's C parser, ~20× faster than a pure-Python parser on a
10,000-row decision table) into nodes that keep the line and column of every key and value;
scalars are then typed by this module with the YAML 1.2 core schema (as ruamel.yaml does:
``no``/``on`` stay strings, ``2026-01-01`` is a date), duplicate keys are errors. Without
libyaml, ruamel.yaml's round-trip loader gives the same tree. Later stages see only plain
:class:`Mapping`, :class:`Sequence` and :class:`Scalar` nodes with 1-based positions.

Expressions are parsed with Python's own parser (``ast``, never ``eval``) and
:class:`ExprSource` maps an ``ast`` node's position back into the YAML file: exact for plain,
quoted and ``|`` block scalars; the start of the value for folded or multi-line plain scalars
(their line breaks are gone by then).
"""
from __future__ import annotations

import ast
import datetime as dt
import io
import math
import re
import warnings
from dataclasses import dataclass, field

from .diagnostics import Diagnostics

__all__ = ["Scalar", "Mapping", "Sequence", "Node", "ExprSource", "parse_yaml", "parse_expression"]

Pos = tuple[int, int]


@dataclass
class Scalar:
    value: object                    # str, int, float, bool, None, datetime.date
    pos: Pos
    style: str = "plain"             # plain | single | double | literal | folded
    in_flow: bool = False            # inside a {...} or [...] (where a comma ends a plain value)


@dataclass
class Mapping:
    pos: Pos
    items: dict = field(default_factory=dict)       # key -> (key_pos, node)

    def get(self, key):
        entry = self.items.get(key)
        return entry[1] if entry else None

    def key_pos(self, key) -> Pos:
        return self.items[key][0]


@dataclass
class Sequence:
    pos: Pos
    items: list = field(default_factory=list)


Node = Scalar | Mapping | Sequence


def parse_yaml(text: str, diags: Diagnostics) -> Node | None:
    """Parse one YAML document; syntax errors (and duplicate keys) go to ``diags``."""
    try:
        import yaml
        loader = yaml.CSafeLoader
    except (ImportError, AttributeError):
        return _parse_ruamel(text, diags)
    lines = text.splitlines()
    try:
        problem = _structure_problem(yaml.parse(text, Loader=loader))
        if problem is not None:
            diags.error(*problem)
            return None
        docs = list(yaml.compose_all(text, Loader=loader))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        pos = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = " ".join(str(p) for p in (e.context, e.problem) if p)
        if "maximum nesting depth" in problem:      # PyYAML ≥ 6.0.4 caps nesting itself, below ours
            diags.error(pos, f"invalid YAML: mappings and lists nested more than {MAX_YAML_DEPTH} deep")
        else:
            diags.error(pos, f"invalid YAML: {problem}{_tab_hint(lines, pos)}")
        return None
    except yaml.reader.ReaderError as e:     # a character YAML forbids (NUL, most control characters)
        diags.error(_position(text, e.position), f"invalid YAML: character U+{e.character:04X} is not allowed "
                                                 f"(control characters other than tab and line breaks)")
        return None
    except yaml.YAMLError as e:
        diags.error((1, 1), f"invalid YAML: {' '.join(str(e).split())}")
        return None
    docs = [d for d in docs if d is not None]
    if not docs or (isinstance(docs[0], yaml.ScalarNode) and _core_value(docs[0].value) is None):
        diags.error((1, 1), "empty file: expected a ruleset (`ruleset: <name>` …)")
        return None
    if len(docs) > 1:
        diags.error((1, 1), "one ruleset per file: found several YAML documents (`---`)")
    return _from_libyaml(docs[0], lines, diags, False)


#: deepest nesting of mappings and lists a ruleset may have (a decision table's cells sit at
#: depth 4): libyaml's composer and this module recurse once per level, and 100,000 nested
#: `[` crashed the process (C stack) where 1,000 raised RecursionError
MAX_YAML_DEPTH = 64
#: nodes that aliases (`*name`) may add to the document once expanded: ten aliases of ten
#: aliases … (a "billion laughs" file) expand a few hundred bytes to billions of nodes
MAX_ALIAS_NODES = 100_000


def _structure_problem(events) -> tuple[tuple[int, int], str] | None:
    """(position, message) when the document nests deeper than :data:`MAX_YAML_DEPTH` or its
    aliases expand to more than :data:`MAX_ALIAS_NODES` extra nodes; read from libyaml's
    event stream (no recursion), stopping at the first problem."""
    import yaml
    sizes: dict[str, int] = {}                 # anchor -> nodes of its value, aliases expanded
    stack: list[list] = []                     # per open collection: [nodes so far, anchor]
    extra = 0
    for event in events:
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if len(stack) >= MAX_YAML_DEPTH:
                mark = event.start_mark
                return (mark.line + 1, mark.column + 1), (f"invalid YAML: mappings and lists nested more than "
                                                          f"{MAX_YAML_DEPTH} deep")
            stack.append([1, event.anchor])
            continue
        if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            size, anchor = stack.pop()
        elif isinstance(event, yaml.ScalarEvent):
            size, anchor = 1, event.anchor
        elif isinstance(event, yaml.AliasEvent):
            size, anchor = sizes.get(event.anchor, 1), None
            extra += size
            if extra > MAX_ALIAS_NODES:
                mark = event.start_mark
                return (mark.line + 1, mark.column + 1), (f"invalid YAML: aliases (*name) expand to more than "
                                                          f"{MAX_ALIAS_NODES:,} nodes")
        else:
            continue
        if anchor is not None:
            sizes[anchor] = size
        if stack:
            stack[-1][0] += size
    return None


def _position(text: str, offset: int) -> Pos:
    """1-based (line, column) of character ``offset`` of ``text``."""
    offset = max(0, min(offset, len(text)))
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


_STYLES = {None: "plain", "": "plain", "'": "single", '"': "double", "|": "literal", ">": "folded"}


def _from_libyaml(node, lines, diags: Diagnostics, in_flow: bool) -> Node:
    import yaml
    pos = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out = Mapping(pos)
        flow = in_flow or bool(node.flow_style)
        for key_node, value_node in node.value:
            key = _plain_scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            key_pos = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                diags.error(key_pos, "invalid YAML: a key must be a name")
                continue
            if key in out.items:
                diags.error(key_pos, f"invalid YAML: duplicate key `{key}` (first at line {out.items[key][0][0]})")
                continue
            out.items[key] = (key_pos, _from_libyaml(value_node, lines, diags, flow))
        return out
    if isinstance(node, yaml.SequenceNode):
        out = Sequence(pos)
        flow = in_flow or bool(node.flow_style)
        out.items = [_from_libyaml(item, lines, diags, flow) for item in node.value]
        return out
    style = _STYLES.get(node.style, "plain")
    scalar = Scalar(_plain_scalar(node), pos, style, in_flow)
    if style == "literal":
        scalar.block_lines = lines      # type: ignore[attr-defined]  (to find the block's indent)
    return scalar


_INT = re.compile(r"^[-+]?[0-9]+$")
#: longer integers are read as ±inf (an int64 has 19 digits; Python converts at most 4,300)
_MAX_INT_DIGITS = 400
_OCT = re.compile(r"^0o[0-7]+$")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def _plain_scalar(node):
    """A scalar's value: quoted and block scalars are strings; plain ones follow the YAML 1.2
    core schema (null, bool, int, float) plus dates, like ruamel.yaml."""
    if node.style not in (None, ""):
        return node.value
    return _core_value(node.value)


def _core_value(text: str):
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if _INT.match(text):
        if len(text) > _MAX_INT_DIGITS:          # Python refuses to convert more digits; no int64 is that long
            return math.copysign(math.inf, -1.0 if text.startswith("-") else 1.0)
        return int(text)
    if _OCT.match(text):
        return int(text[2:], 8)
    if _HEX.match(text):
        return int(text[2:], 16)
    if _FLOAT.match(text):
        return float(text)
    lowered = text.lower()
    if lowered in (".inf", "+.inf"):
        return math.inf
    if lowered == "-.inf":
        return -math.inf
    if lowered == ".nan":
        return math.nan
    if _DATE.match(text):
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            return text
    return text


def _tab_hint(lines: list[str], pos: tuple[int, int]) -> str:
    """YAML forbids tabs in indentation, and its own message does not say so."""
    line, column = pos
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    if "\t" in text[:column] or "\t" in text[:len(text) - len(text.lstrip())]:
        return " (a tab: YAML indents with spaces only)"
    return ""


def _parse_ruamel(text: str, diags: Diagnostics) -> Node | None:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    lines = text.splitlines()
    try:
        docs = list(yaml.load_all(io.StringIO(text)))
    except RecursionError:
        diags.error((1, 1), "invalid YAML: mappings and lists nested too deeply")
        return None
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        pos = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = " ".join(str(p) for p in (e.context, e.problem) if p)
        if "maximum nesting depth" in problem:      # PyYAML ≥ 6.0.4 caps nesting itself, below ours
            diags.error(pos, f"invalid YAML: mappings and lists nested more than {MAX_YAML_DEPTH} deep")
        else:
            diags.error(pos, f"invalid YAML: {problem}{_tab_hint(lines, pos)}")
        return None
    except YAMLError as e:
        diags.error((1, 1), f"invalid YAML: {e}")
        return None
    if not docs or docs[0] is None:
        diags.error((1, 1), "empty file: expected a ruleset (`ruleset: <name>` …)")
        return None
    if len(docs) > 1:
        diags.error((1, 1), "one ruleset per file: found several YAML documents (`---`)")
    return _convert(docs[0], (1, 1), "plain", lines)


def _style(value) -> str:
    from ruamel.yaml.scalarstring import (DoubleQuotedScalarString, FoldedScalarString,
                                          LiteralScalarString, SingleQuotedScalarString)
    if isinstance(value, DoubleQuotedScalarString):
        return "double"
    if isinstance(value, SingleQuotedScalarString):
        return "single"
    if isinstance(value, LiteralScalarString):
        return "literal"
    if isinstance(value, FoldedScalarString):
        return "folded"
    return "plain"


def _convert(value, pos: Pos, style: str, lines, in_flow: bool = False) -> Node:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    if isinstance(value, CommentedMap):
        node = Mapping(pos)
        flow = in_flow or bool(value.fa.flow_style())
        for key, item in value.items():
            kl, kc = value.lc.key(key)
            vl, vc = value.lc.value(key)
            node.items[_plain(key)] = ((kl + 1, kc + 1), _convert(item, (vl + 1, vc + 1), _style(item), lines, flow))
        return node
    if isinstance(value, CommentedSeq):
        node = Sequence(pos)
        flow = in_flow or bool(value.fa.flow_style())
        for i, item in enumerate(value):
            il, ic = value.lc.item(i)
            node.items.append(_convert(item, (il + 1, ic + 1), _style(item), lines, flow))
        return node
    scalar = Scalar(_plain(value), pos, style, in_flow)
    if style == "literal":
        scalar.block_lines = lines      # type: ignore[attr-defined]  (to find the block's indent)
    return scalar


def _plain(value):
    """ruamel's scalar subclasses → plain Python values."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


class ExprSource:
    """Where an expression's text sits in the YAML file."""

    def __init__(self, scalar: Scalar):
        self.scalar = scalar
        self.text = str(scalar.value)
        line, col = scalar.pos
        self._block_indent = None
        if scalar.style in ("single", "double"):
            col += 1
        if scalar.style == "literal":
            lines = getattr(scalar, "block_lines", [])
            content = lines[line] if line < len(lines) else ""
            self._block_indent = len(content) - len(content.lstrip(" "))
        self._origin = (line, col)
        # split once: the checker asks for the position of every node (30,000 nodes of one
        # 120,000-character expression took seconds when each call split the text again)
        self._lines = self.text.split("\n")
        self._char_at: dict[int, list[int]] = {}

    def _column(self, idx: int, byte_offset: int) -> int:
        """The character column of a UTF-8 byte offset into line ``idx`` (``ast`` counts bytes)."""
        line = self._lines[idx]
        if line.isascii():
            return min(byte_offset, len(line))
        table = self._char_at.get(idx)
        if table is None:                    # byte offset -> characters wholly before it
            table = self._char_at[idx] = [i for i, ch in enumerate(line) for _ in range(len(ch.encode("utf-8")))]
            table.append(len(line))
        return table[max(0, min(byte_offset, len(table) - 1))]

    def pos(self, lineno: int, col_offset: int) -> Pos:
        """1-based file position of ``ast`` (lineno, col_offset) within this expression."""
        idx = max(0, min(lineno - 1, len(self._lines) - 1))
        col = self._column(idx, col_offset)
        line0, col0 = self._origin
        if self._block_indent is not None:
            return (line0 + 1 + idx, self._block_indent + col + 1)
        if idx == 0 and self.scalar.style in ("plain", "single", "double") and "\n" not in self.text:
            return (line0, col0 + col)
        return (line0, col0)

    def node_pos(self, node) -> Pos:
        return self.pos(getattr(node, "lineno", 1), getattr(node, "col_offset", 0))


def parse_expression(source: ExprSource, diags: Diagnostics, rule: str | None):
    """Parse an expression with Python's parser; a syntax error is reported at its column."""
    text = source.text
    if not text.strip():
        diags.error(source.scalar.pos, "empty expression", rule)
        return None
    if len(text) > MAX_EXPRESSION_CHARS:
        diags.error(source.scalar.pos, f"expression of {len(text):,} characters, more than {MAX_EXPRESSION_CHARS:,} "
                                       f"(split it over several rules or outputs)", rule)
        return None
    try:
        # The parentheses let an expression span lines (block scalars) without backslashes.
        # Python only warns of some mistakes ("30and": invalid decimal literal) on stderr:
        # as errors they get a position like any other syntax error.
        with warnings.catch_warnings():
            warnings.simplefilter("error", SyntaxWarning)
            tree = ast.parse("(" + text + "\n)", mode="eval")
    except (RecursionError, MemoryError):      # Python's parser gives up on deep nesting this way
        diags.error(source.scalar.pos, _TOO_DEEP, rule)
        return None
    except SyntaxError as e:
        lineno = e.lineno or 1
        offset = max(0, (e.offset or 1) - 1 - (1 if lineno == 1 else 0))
        # SyntaxError offsets count characters, ExprSource.pos wants bytes
        line_text = text.split("\n")[min(lineno - 1, text.count("\n"))]
        offset_bytes = len(line_text[:offset].encode("utf-8"))
        msg = e.msg
        if msg.startswith("invalid syntax"):
            msg = "invalid expression syntax"
        if "never closed" in msg and source.scalar.style == "plain" and source.scalar.in_flow:
            msg += " (a comma inside a {...} mapping ends a plain value: quote the expression)"
        diags.error(source.pos(lineno, offset_bytes), f"{msg} in `{' '.join(text.split())}`", rule)
        return None
    if _depth(tree.body) > MAX_EXPRESSION_DEPTH:
        diags.error(source.scalar.pos, _TOO_DEEP, rule)
        return None
    _shift_first_line(tree)
    return tree.body


#: deepest expression tree a rule may have (`a + b + c` is 3 deep; the shipped rulesets reach
#: 8): the checker, the reference interpreter and the code generator recurse once per level
MAX_EXPRESSION_DEPTH = 100
#: the longest expression text (the shipped rulesets' longest is a few hundred characters): the
#: parse and the checks cost time in proportion, and a file may be 16 MiB
MAX_EXPRESSION_CHARS = 10_000
_TOO_DEEP = f"expression nested more than {MAX_EXPRESSION_DEPTH} deep (split it over several rules or outputs)"


def _depth(node) -> int:
    """The depth of an ``ast`` tree, counted without recursion."""
    deepest, stack = 0, [(node, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth <= MAX_EXPRESSION_DEPTH:
            stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _shift_first_line(tree) -> None:
    """Undo the opening parenthesis: columns on the first line move left by one."""
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) == 1 and hasattr(node, "col_offset"):
            node.col_offset -= 1
