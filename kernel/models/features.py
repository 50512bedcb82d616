"""Book columns → a model's float32 feature matrix, the encoding ``.block`` expects.

Numeric features: numbers as float32, booleans 0/1, nulls NaN. Category features: the index
of the value in the feature's category list, -1 when null or not in the list.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import ModelError


def column_values(column, kind: str, categories: Sequence[str] = ()) -> np.ndarray:
    """One feature column (Arrow array/chunked array or NumPy array) encoded as float32."""
    if isinstance(column, (pa.Array, pa.ChunkedArray)):
        arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        if kind == "category":
            if pa.types.is_dictionary(arr.type):
                arr = arr.dictionary_decode()
            idx = pc.index_in(arr.cast(pa.string()), value_set=pa.array(list(categories), pa.string()))
            return idx.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.float32)
        if pa.types.is_boolean(arr.type):
            arr = arr.cast(pa.int8())
        if pa.types.is_date(arr.type):
            arr = arr.cast(pa.int32())
        return arr.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False).astype(np.float32)
    values = np.asarray(column)
    if kind == "category":
        lookup = {c: i for i, c in enumerate(categories)}
        return np.array([lookup.get(v, -1) if isinstance(v, str) else -1 for v in values], np.float32)
    return values.astype(np.float32)


def feature_matrix(data, inputs, source: str = "model") -> np.ndarray:
    """The ``[rows, len(inputs)]`` float32 matrix of ``inputs`` (a model's ``.inputs``) read
    by name from ``data``: a pyarrow Table/RecordBatch or a mapping of column name → array."""
    names = data.schema.names if isinstance(data, (pa.Table, pa.RecordBatch)) else list(data)
    missing = [i.name for i in inputs if i.name not in names]
    if missing:
        raise ModelError(source, f"column {missing[0]!r} needed by the model is missing"
                         + (f" ({len(missing) - 1} more)" if len(missing) > 1 else ""))
    get = (lambda n: data.column(n)) if isinstance(data, (pa.Table, pa.RecordBatch)) else data.__getitem__
    cols = [column_values(get(i.name), i.kind, i.categories) for i in inputs]
    if not cols:
        return np.zeros((0, 0), np.float32)
    return np.ascontiguousarray(np.column_stack(cols), dtype=np.float32)


def categories_of(table: pa.Table | Mapping, name: str) -> list[str]:
    """Sorted distinct non-null strings of a column (for building category lists)."""
    col = table.column(name) if isinstance(table, pa.Table) else pa.array(table[name])
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    return sorted(v for v in pc.unique(col).to_pylist() if v is not None)
