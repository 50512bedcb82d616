"""The plan of one fused kernel: which batch columns it reads, where each value lives in the
kernel's packed arguments, and where each node writes its outputs.

Arguments are packed by storage type so that the compiled call takes a handful of arguments
whatever the bundle's size (Numba's dispatch cost grows with each argument):

=========  ===============================================================================
``I64``    int columns (int64 values)
``F64``    float columns (float64 values; NaN reads as null)
``I32``    date columns (date32 days)
``I8``     enum columns: dictionary indices or codes, as uint8
``RM``     per enum column, a 256-entry table index → member code (-1: not a member)
``BM``     bitmaps (Arrow layout): every column's validity and bool columns' values
``OFF``    bit offset of each bitmap (Arrow slices start mid-byte)
``T*``     constant tables of decision-table indexes (``TI64``, ``TF64``, ``TU64``)
``O*``     outputs, one row per output: ``OI64`` int, ``OF64`` float, ``OI32`` dates and winning
           rule codes, ``OI8`` enum codes, ``OU8`` bools, ``OV`` validity (0/1), ``OM`` the
           fired-rule bit masks of ``collect`` rulesets
=========  ===============================================================================
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..rules import ir
from ..rules.ir import Type

__all__ = ["ColumnSlot", "OutputSlot", "RuleSlot", "RulesetNode", "ModelNode", "Plan", "VALUE_GROUP",
           "OUTPUT_GROUP", "INPUT_GROUPS", "OUTPUT_GROUPS", "TABLE_GROUPS"]

VALUE_GROUP = {"int": "I64", "float": "F64", "date": "I32", "enum": "I8", "bool": "BM"}
OUTPUT_GROUP = {"int": "OI64", "float": "OF64", "date": "OI32", "enum": "OI8", "bool": "OU8"}
INPUT_GROUPS = ("I64", "F64", "I32", "I8", "RM", "BM", "OFF")
TABLE_GROUPS = ("TI64", "TF64", "TU64")
OUTPUT_GROUPS = ("OI64", "OF64", "OI32", "OI8", "OU8", "OV", "OM")


@dataclass(frozen=True)
class ColumnSlot:
    name: str          # batch column name
    type: Type
    value: int         # index in its value group (I64/F64/I32/I8, or BM for bool)
    valid: int         # index in BM of its validity bitmap
    remap: int = -1    # index in RM (enum)


@dataclass(frozen=True)
class OutputSlot:
    node: str
    output: str
    type: Type
    value: int         # index in its output group
    valid: int         # index in OV

    @property
    def column(self) -> str:
        return f"{self.node}.{self.output}"


@dataclass(frozen=True)
class RuleSlot:
    node: str
    ids: tuple[str, ...]       # rule ids by code (code len(ids) = "!unique" for unique)
    collect: bool
    value: int                 # index in OI32 (winning rule code) or first OM row (collect)
    words: int = 0             # OM rows (collect)


@dataclass
class RulesetNode:
    ir: ir.RulesetIR
    #: declared input name -> ("column", column name) or ("output", producer node, output name)
    sources: dict

    @property
    def name(self) -> str:
        return self.ir.name


@dataclass
class ModelNode:
    """A compiled model in the fused kernel (see docs/compiler.md, "Model nodes")."""
    name: str
    features: tuple            # per feature: (source, kind, categories) ; source like RulesetNode.sources
    outputs: tuple             # (output name, Type)
    block_fn: object           # the model's @njit block function
    params: tuple
    source_hash: str           # content hash of the model and of its block function's code


@dataclass
class Plan:
    nodes: list
    columns: dict = field(default_factory=dict)      # (column name, type) -> ColumnSlot
    outputs: dict = field(default_factory=dict)      # (node, output) -> OutputSlot
    rules: dict = field(default_factory=dict)        # node -> RuleSlot
    counts: dict = field(default_factory=dict)       # group -> number of entries

    @classmethod
    def build(cls, nodes: list) -> "Plan":
        plan = cls(nodes)
        for g in INPUT_GROUPS + OUTPUT_GROUPS:
            plan.counts[g] = 0
        for node in nodes:
            for name, src in _node_sources(node):
                if src[0] == "column":
                    plan._column(src[1], _source_type(node, name))
            for out_name, t in _node_outputs(node):
                group = OUTPUT_GROUP[t.kind]
                plan.outputs[(node.name, out_name)] = OutputSlot(node.name, out_name, t, plan._take(group),
                                                                 plan._take("OV"))
            if isinstance(node, RulesetNode):
                rs = node.ir
                ids = tuple(r.id for r in rs.rules)
                if rs.hit == "collect":
                    words = max(1, (len(ids) + 63) // 64)
                    start = plan.counts["OM"]
                    plan.counts["OM"] += words
                    plan.rules[node.name] = RuleSlot(node.name, ids, True, start, words)
                else:
                    plan.rules[node.name] = RuleSlot(node.name, ids, False, plan._take("OI32"))
        return plan

    def _take(self, group: str) -> int:
        i = self.counts[group]
        self.counts[group] = i + 1
        return i

    def _column(self, name: str, t: Type) -> ColumnSlot:
        key = (name, _storage_key(t))
        if key not in self.columns:
            value = self._take(VALUE_GROUP[t.kind])
            valid = self._take("BM")
            remap = self._take("RM") if t.kind == "enum" else -1
            self.columns[key] = ColumnSlot(name, t, value, valid, remap)
        return self.columns[key]

    def column(self, name: str, t: Type) -> ColumnSlot:
        return self.columns[(name, _storage_key(t))]

    def input_columns(self) -> list[ColumnSlot]:
        return list(self.columns.values())

    def used_groups(self) -> list[str]:
        """Argument groups this kernel takes (empty ones are left out of its signature)."""
        return [g for g in INPUT_GROUPS + OUTPUT_GROUPS
                if (self.counts["BM"] if g == "OFF" else self.counts.get(g))]


def _storage_key(t: Type):
    return t if t.kind == "enum" else t.kind


def _source_type(node, name) -> Type:
    if isinstance(node, RulesetNode):
        return node.ir.input_type(name)
    for src, kind, cats in node.features:
        if src[0] == "column" and src[1] == name:
            return kind
    raise KeyError(name)


def _node_sources(node):
    if isinstance(node, RulesetNode):
        return list(node.sources.items())
    return [(src[1] if src[0] == "column" else f"{src[1]}.{src[2]}", src) for src, _, _ in node.features]


def _node_outputs(node):
    if isinstance(node, RulesetNode):
        return [(o.name, o.type) for o in node.ir.outputs]
    return list(node.outputs)
