"""Arrow columns ↔ language values: which Arrow types each language type accepts, the Arrow
type of each output, and the row-at-a-time conversions the reference interpreter uses.

Accepted inputs (RULESET_LANGUAGE.md): ``int`` any Arrow integer; ``float`` any float or
integer; ``bool`` bool; ``date`` date32 or date64; enum string, large_string or
dictionary-of-string. Floats: NaN reads as null. Outputs: int64, float64, bool, date32,
enums ``dictionary<int8, string>`` (members in declared order); ``<ruleset>.rule`` is
``dictionary<int32, string>`` (under ``collect``, a list of them:
``list<dictionary<int32, string>>``).
"""
from __future__ import annotations

import math

import pyarrow as pa

from ..errors import PostloanError
from .ir import Type

__all__ = ["InputError", "rule_array", "collect_array", "arrow_type", "accepts", "expected_text", "find_columns", "to_python",
           "from_python", "RULE_TYPE", "COLLECT_RULE_TYPE", "enum_codes_of"]

RULE_TYPE = pa.dictionary(pa.int32(), pa.string())
#: the ids of every fired rule: a list of strings, dictionary-encoded (a collect ruleset fires
#: several rules per row; writing each id's bytes out would cost more than deciding)
COLLECT_RULE_TYPE = pa.list_(pa.dictionary(pa.int32(), pa.string()))


class InputError(PostloanError):
    """A batch cannot be decided: a column the rules read is missing, has the wrong type or
    holds a value outside its enum. ``column`` names it."""

    def __init__(self, message: str, column: str | None = None):
        super().__init__(message)
        self.column = column


def arrow_type(t: Type) -> pa.DataType:
    return {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "date": pa.date32(),
            "enum": pa.dictionary(pa.int8(), pa.string()), "null": pa.null()}[t.kind]


def _is_string(at: pa.DataType) -> bool:
    return pa.types.is_string(at) or pa.types.is_large_string(at)


def accepts(t: Type, at: pa.DataType) -> bool:
    k = t.kind
    if k == "int":
        return pa.types.is_integer(at)
    if k == "float":
        return pa.types.is_floating(at) or pa.types.is_integer(at)
    if k == "bool":
        return pa.types.is_boolean(at)
    if k == "date":
        return pa.types.is_date32(at) or pa.types.is_date64(at)
    if k in ("enum", "category"):
        return _is_string(at) or (pa.types.is_dictionary(at) and _is_string(at.value_type))
    return False


def expected_text(t: Type) -> str:
    return {"int": "int (any Arrow integer type)", "float": "float (any Arrow float or integer type)",
            "bool": "bool", "date": "date (date32 or date64)",
            "enum": f"{t} (string or dictionary<…, string>)",
            "category": "string or dictionary<…, string>"}[t.kind]


def find_columns(schema: pa.Schema, inputs) -> None:
    """Raise :class:`InputError` naming the first input missing from ``schema`` or of a type
    the language does not accept for it."""
    names = set(schema.names)
    for name, t in inputs:
        if name not in names:
            raise InputError(f"missing column `{name}` (the rules read it as {t})", name)
        at = schema.field(name).type
        if not accepts(t, at):
            raise InputError(f"column `{name}` has type {at}, expected {expected_text(t)}", name)


def enum_codes_of(name: str, arr: pa.Array, t: Type):
    """Raise InputError on the first value of ``arr`` (string or dictionary) outside ``t``."""
    import pyarrow.compute as pc
    values = arr.dictionary_decode() if pa.types.is_dictionary(arr.type) else arr
    members = pa.array(t.members, pa.string())
    bad = pc.and_kleene(pc.invert(pc.is_in(values, value_set=members)), pc.is_valid(values))
    if pc.any(bad).as_py():
        row = int(pc.index(bad, True).as_py())
        raise InputError(f"column `{name}` row {row}: {values[row].as_py()!r} is not one of "
                         f"{', '.join(t.members)}", name)


def to_python(name: str, arr, t: Type) -> list:
    """A column as internal values (reference interpreter)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if t.kind == "enum":
        enum_codes_of(name, arr, t)
        index = {m: i for i, m in enumerate(t.members)}
        return [None if v is None else index[v] for v in arr.to_pylist()]
    if t.kind == "date":
        if pa.types.is_date64(arr.type):
            ms = arr.cast(pa.int64()).to_pylist()
            return [None if v is None else v // 86_400_000 for v in ms]
        return arr.cast(pa.int32()).to_pylist()
    values = arr.to_pylist()
    if t.kind == "float":
        return [None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in values]
    return values


def from_python(values: list, t: Type) -> pa.Array:
    """Internal values → the output column type."""
    if t.kind == "enum":
        codes = pa.array([v for v in values], pa.int8())
        return pa.DictionaryArray.from_arrays(codes, pa.array(t.members, pa.string()))
    if t.kind == "date":
        return pa.array(values, pa.int32()).cast(pa.date32())
    if t.kind == "float":
        return pa.array(values, pa.float64())
    return pa.array(values, arrow_type(t))


def rule_array(values: list, rs) -> pa.Array:
    """``<ruleset>.rule`` from reference values: the rule ids (all of them, in file order, then
    ``!unique``, as the compiled engine's dictionary) or, under collect, lists of ids."""
    ids = [r.id for r in rs.rules] + (["!unique"] if rs.hit == "unique" else [])
    index = {rule_id: k for k, rule_id in enumerate(ids)}
    if rs.hit == "collect":
        return collect_array([[index[i] for i in fired] for fired in values], ids)
    codes = pa.array([None if v is None else index[v] for v in values], pa.int32())
    return pa.DictionaryArray.from_arrays(codes, pa.array(ids, pa.string()))


def collect_array(fired: list, ids, offsets=None, codes=None) -> pa.Array:
    """A ``<ruleset>.rule`` column under collect from, per row, the fired rules' indices (or
    from ready ``offsets`` and ``codes``)."""
    import numpy as np
    if offsets is None:
        offsets = np.zeros(len(fired) + 1, dtype=np.int32)
        np.cumsum([len(f) for f in fired], out=offsets[1:])
        codes = np.array([c for f in fired for c in f], dtype=np.int32)
    values = pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(list(ids), pa.string()))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values)
