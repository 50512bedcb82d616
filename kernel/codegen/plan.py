"""The plan of one fused kernel: which batch columns it reads, where each value lives in the
kernel's packed arguments, and where each node writes its outputs.

Input columns reach the kernel as one array of raw addresses (``PTR``): per column, its
values (int64, float64, date32 days, enum codes as uint8, or a bool bitmap), its validity bitmap
(Arrow layout; bit offset in ``OFF``) and, for enums, a 256-entry table from code or dictionary
position to member index (-1: null). The compiled call therefore takes the same dozen arguments
whatever the bundle reads, and the zero-copy Arrow path and the one-account path share one
signature (one compilation). Outputs are one 2-D array per storage type, one row per output:

=========  ===============================================================================
``OI64``   int outputs               ``OF64``   float outputs
``OI32``   date outputs and the winning rule's code (-1 none) of each non-collect ruleset
``OI8``    enum codes                ``OU8``    bools
``OV``     validity (0/1) of every output
``OM``     fired-rule bit masks of ``collect`` rulesets (64 rules per row of words)
``T*``     constant tables of decision-table indexes (``TI64``, ``TF64``, ``TU64``)
=========  ===============================================================================
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..rules.ir import Type

__all__ = ["ColumnSlot", "OutputSlot", "RuleSlot", "RulesetNode", "ModelNode", "Plan", "OUTPUT_GROUP",
           "INPUT_GROUPS", "OUTPUT_GROUPS", "TABLE_GROUPS", "ARG_GROUPS"]

OUTPUT_GROUP = {"int": "OI64", "float": "OF64", "date": "OI32", "enum": "OI8", "bool": "OU8"}
INPUT_GROUPS = ("PTR", "OFF")
TABLE_GROUPS = ("TI64", "TF64", "TU64")
OUTPUT_GROUPS = ("OI64", "OF64", "OI32", "OI8", "OU8", "OV", "OM")
#: the kernel's array arguments, in order (every kernel takes all of them)
ARG_GROUPS = INPUT_GROUPS + OUTPUT_GROUPS + TABLE_GROUPS


@dataclass(frozen=True)
class ColumnSlot:
    name: str          # batch column name
    type: Type
    value: int         # PTR index of its values
    valid: int         # PTR index of its validity bitmap
    remap: int = -1    # PTR index of its code table (enum)


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
    features: tuple            # per feature: (source, "numeric" | "category", categories, Type read)
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
            value = self._take("PTR")
            valid = self._take("PTR")
            remap = self._take("PTR") if t.kind in ("enum", "category") else -1
            self.columns[key] = ColumnSlot(name, t, value, valid, remap)
        return self.columns[key]

    def column(self, name: str, t: Type) -> ColumnSlot:
        return self.columns[(name, _storage_key(t))]

    def input_columns(self) -> list[ColumnSlot]:
        return list(self.columns.values())


def _storage_key(t: Type):
    return t if t.kind in ("enum", "category") else t.kind


def _source_type(node, name) -> Type:
    if isinstance(node, RulesetNode):
        return node.ir.input_type(name)
    for src, kind, cats, t in node.features:
        if src[0] == "column" and src[1] == name:
            return t
    raise KeyError(name)


def _node_sources(node):
    if isinstance(node, RulesetNode):
        return list(node.sources.items())
    return [(src[1] if src[0] == "column" else f"{src[1]}.{src[2]}", src) for src, _, _, _ in node.features]


def _node_outputs(node):
    if isinstance(node, RulesetNode):
        return [(o.name, o.type) for o in node.ir.outputs]
    return list(node.outputs)
