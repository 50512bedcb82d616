"""Decision-table indexes: per condition column, the rows whose cell accepts a value, as bitsets.

For a numeric column the cells' interval end points cut the line into *regions* (each end point
and each open stretch between two); every region maps to the bitset of rows whose cell covers
it, found at run time by a binary search over the end points. Enum and bool columns map each
code straight to a bitset, and null to the rows whose cell is ``-``. Identical bitsets are
stored once. A row matches when its bit is set in every column's bitset: the kernel ANDs them
word by word, guided by a second-level bitset of non-empty words, and stops at the first match
under ``first``/``priority`` (rows are indexed in evaluation order). A 10,000-row table costs a
few dozen word operations per account instead of up to 10,000 rule tests.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..rules import ir
from ..rules import valuesets as vs

__all__ = ["TableData", "ColumnIndex", "TableIndex", "build_index"]


class TableData:
    """Constant arrays every indexed table of a kernel shares, one flat array per dtype."""

    def __init__(self):
        self.parts = {"TI64": [], "TF64": [], "TU64": []}
        self.sizes = {"TI64": 0, "TF64": 0, "TU64": 0}

    def add(self, group: str, values) -> int:
        dtype = {"TI64": np.int64, "TF64": np.float64, "TU64": np.uint64}[group]
        arr = np.ascontiguousarray(values, dtype=dtype).ravel()
        offset = self.sizes[group]
        self.parts[group].append(arr)
        self.sizes[group] += arr.size
        return offset

    def arrays(self) -> dict:
        out = {}
        for group, parts in self.parts.items():
            dtype = {"TI64": np.int64, "TF64": np.float64, "TU64": np.uint64}[group]
            out[group] = np.concatenate(parts) if parts else np.zeros(1, dtype)
        return out


@dataclass
class ColumnIndex:
    name: str
    type: ir.Type
    kind: str                      # num | codes
    null_id: int
    endpoints: int = 0             # number of end points (num)
    endpoints_group: str = "TI64"
    endpoints_off: int = 0
    regions_off: int = 0           # TI64: region (num) or code (codes) -> bitset id


@dataclass
class TableIndex:
    rows: int
    words: int
    summary_words: int
    bits_off: int                  # TU64: bitset b, word w at bits_off + b * words + w
    summary_off: int               # TU64: summary of bitset b at summary_off + b * summary_words
    columns: list = field(default_factory=list)
    all_id: int = -1               # the all-rows bitset when no column constrains anything
    order: list = field(default_factory=list)   # position -> index of the rule in file order


def _pack(member: np.ndarray, words: int) -> np.ndarray:
    """Bool rows → uint64 words, bit r of word r // 64 = row r."""
    packed = np.packbits(member.astype(bool), bitorder="little")
    padded = np.zeros(words * 8, dtype=np.uint8)
    padded[:packed.size] = packed
    return padded.view("<u8").astype(np.uint64)


class _Bitsets:
    def __init__(self, words: int):
        self.words = words
        self.ids: dict[bytes, int] = {}
        self.rows: list[np.ndarray] = []

    def id_of(self, member: np.ndarray) -> int:
        return self.id_of_words(_pack(member, self.words))

    def id_of_words(self, bits: np.ndarray) -> int:
        key = bits.tobytes()
        if key not in self.ids:
            self.ids[key] = len(self.rows)
            self.rows.append(bits.copy())
        return self.ids[key]


def _region_bitsets(col_cells, pos, k: int, n: int, bitsets: _Bitsets) -> list[int]:
    """Bitset id of each of the 2k+1 regions, sweeping the regions left to right and flipping
    a row's bit where one of its (disjoint) intervals starts or ends."""
    toggles: dict[int, list[int]] = {}
    for r, cell in enumerate(col_cells):
        for iv in cell.intervals:
            first = 0 if iv.lo == -vs.INF else 2 * pos[iv.lo] + (1 if iv.lo_closed else 2)
            last = 2 * k if iv.hi == vs.INF else 2 * pos[iv.hi] + (1 if iv.hi_closed else 0)
            toggles.setdefault(first, []).append(r)
            toggles.setdefault(last + 1, []).append(r)
    current = np.zeros(bitsets.words, dtype=np.uint64)
    ids = []
    for region in range(2 * k + 1):
        for r in toggles.get(region, ()):
            current[r >> 6] ^= np.uint64(1) << np.uint64(r & 63)
        ids.append(bitsets.id_of_words(current))
    return ids


def build_index(rs: ir.RulesetIR, data: TableData) -> TableIndex:
    table = rs.table
    rule_index = {r.id: k for k, r in enumerate(rs.rules)}
    order = [rule_index[r.id] for r in rs.evaluation_order()]
    cells = [table.cells[k] for k in order]
    n = len(order)
    words = max(1, (n + 63) // 64)
    bitsets = _Bitsets(words)
    types = {i.name: i.type for i in rs.inputs}
    columns = []
    for c, name in enumerate(table.columns):
        t = types[name]
        col_cells = [row[c] for row in cells]
        if all(cell == vs.everything(t) for cell in col_cells):
            continue                       # `-` everywhere: the column never narrows anything
        null_member = np.array([cell.null for cell in col_cells])
        null_id = bitsets.id_of(null_member)
        if col_cells[0].kind == "codes":
            size = len(t.members) if t.kind == "enum" else 2
            member = np.zeros((size, n), dtype=bool)
            for r, cell in enumerate(col_cells):
                for code in cell.codes:
                    member[code, r] = True
            ids = [bitsets.id_of(member[code]) for code in range(size)]
            columns.append(ColumnIndex(name, t, "codes", null_id, regions_off=data.add("TI64", ids)))
            continue
        ends = sorted({b for cell in col_cells for iv in cell.intervals for b in (iv.lo, iv.hi)
                       if b not in (vs.INF, -vs.INF)})
        pos = {e: p for p, e in enumerate(ends)}
        k = len(ends)
        ids = _region_bitsets(col_cells, pos, k, n, bitsets)
        integral = t.kind in ("int", "date")
        group = "TI64" if integral else "TF64"
        off = data.add(group, [int(e) for e in ends] if integral else ends) if ends else 0
        columns.append(ColumnIndex(name, t, "num", null_id, k, group, off, data.add("TI64", ids)))
    all_id = -1
    if not columns:
        all_id = bitsets.id_of(np.ones(n, dtype=bool))
    summary_words = max(1, (words + 63) // 64)
    matrix = np.stack(bitsets.rows)
    summaries = np.stack([_pack(row != 0, summary_words) for row in matrix])
    bits_off = data.add("TU64", matrix)
    summary_off = data.add("TU64", summaries)
    return TableIndex(n, words, summary_words, bits_off, summary_off, columns, all_id, order)
