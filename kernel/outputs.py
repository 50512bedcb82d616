"""The outputs as Arrow: decision columns and action columns → ``pyarrow`` arrays and tables
with the data contract's types (:func:`kernel.schema.arrow_schema` ``("actions")``).

The pipeline builds its results with them and the audit log reads its records back with
them, so an action looks the same wherever it comes from.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from .hookspecs import NULL_TIME, Record
from .schema import ENUMS, arrow_schema

__all__ = ["to_arrow", "actions_table", "row_count"]

_ACTIONS_SCHEMA = arrow_schema("actions")


def to_arrow(values) -> pa.Array:
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    if isinstance(values, np.ma.MaskedArray):        # the kernel's NumPy path masks null ints and bools
        return pa.array(values.data, mask=np.ma.getmaskarray(values))
    arr = np.asarray(values)
    if arr.dtype.kind == "f":
        return pa.array(arr, mask=np.isnan(arr))
    if arr.dtype == object:
        return pa.array(arr, from_pandas=True)
    return pa.array(arr)


_TEXT_ACTION_COLUMNS = {"account_id", "script_id", "language", "script", "reason_code", "policy"}


def _enum_array(codes: np.ndarray, enum: str) -> pa.DictionaryArray:
    codes = np.asarray(codes)
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int8), mask=codes < 0),
                                          pa.array(ENUMS[enum], pa.string()))


def _time_array(us: np.ndarray) -> pa.Array:
    us = np.asarray(us, np.int64)
    return pa.array(us, pa.timestamp("us", tz="UTC"), mask=us == NULL_TIME)


def actions_table(c: Mapping[str, Any], *, with_script: bool = True) -> pa.Table:
    c = {k: (np.asarray(v, dtype=object if k in _TEXT_ACTION_COLUMNS else None) if isinstance(v, list) else v)
         for k, v in c.items()}
    language = np.asarray(c["language"], dtype=object)
    language_codes = np.array([-1 if v is None else ENUMS["language"].index(v) for v in language.tolist()],
                              np.int8) if language.size else np.zeros(0, np.int8)
    arrays = {
        "account_id": to_arrow(c["account_id"]).cast(pa.string()),
        "action": _enum_array(c["action"], "action_channel"),
        "priority": pa.array(np.asarray(c["priority"], np.float64)),
        "earliest_at": _time_array(c["earliest_at"]),
        "script_id": pa.array(np.asarray(c["script_id"], dtype=object), pa.string()),
        "language": _enum_array(language_codes, "language"),
        "script": c["script"] if isinstance(c["script"], pa.Array) else pa.array(c["script"], pa.string()),
        "outcome": _enum_array(c["outcome"], "compliance_outcome"),
        "reason_code": pa.array(np.asarray(c["reason_code"], dtype=object), pa.string()),
        "next_allowed_at": _time_array(c["next_allowed_at"]),
        "policy": pa.array(np.asarray(c["policy"], dtype=object), pa.string()),
    }
    fields = [f for f in _ACTIONS_SCHEMA if with_script or f.name != "script"]
    return pa.Table.from_arrays([arrays[f.name] for f in fields], schema=pa.schema(fields, _ACTIONS_SCHEMA.metadata))


def row_count(data) -> int:
    """Rows of ``data``: a :class:`~kernel.hookspecs.Record` (one account), a mapping of
    columns or an Arrow table."""
    if isinstance(data, Record):
        return 1
    if isinstance(data, Mapping):
        for v in data.values():
            return len(v)
        return 0
    return data.num_rows
