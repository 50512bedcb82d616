"""Portfolio monitoring figures computed from a book and its decisions (columns in, numbers out).

What a post-loan manager reads first: overdue rates by count and by balance, the DPD-bucket
distribution, roll rates between buckets, and the profile of high-risk overdue customers.
Bucket boundaries are not repeated here: buckets come from the ``dpd_bucket`` ruleset's
decisions, and the bucket of 30 days ago from the same ruleset applied to ``dpd_30d_ago``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _np(col) -> np.ndarray:
    if isinstance(col, (pa.ChunkedArray, pa.Array)):
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type) if isinstance(col, pa.Array) else pc.cast(col, col.type.value_type)
        return col.to_numpy(zero_copy_only=False)
    return np.asarray(col)


@dataclass(frozen=True)
class Overview:
    accounts: int
    outstanding_principal: float
    overdue_rate: float            # share of accounts with dpd ≥ 1
    overdue_balance_rate: float    # outstanding principal of overdue accounts / all outstanding
    rate_30_plus: float            # share of accounts with dpd > 30
    rate_90_plus: float
    overdue_amount: float
    penalty_interest: float


def overview(book: pa.Table) -> Overview:
    dpd = _np(book["dpd"])
    outstanding = _np(book["outstanding_principal"])
    total = float(outstanding.sum())
    n = len(dpd)
    return Overview(
        accounts=n, outstanding_principal=total,
        overdue_rate=float(np.mean(dpd > 0)) if n else 0.0,
        overdue_balance_rate=float(outstanding[dpd > 0].sum() / total) if total else 0.0,
        rate_30_plus=float(np.mean(dpd > 30)) if n else 0.0,
        rate_90_plus=float(np.mean(dpd > 90)) if n else 0.0,
        overdue_amount=float(_np(book["overdue_amount"]).sum()),
        penalty_interest=float(_np(book["penalty_interest"]).sum()),
    )


def counts(values, order: list[str] | None = None) -> list[tuple[str, int, float]]:
    """(value, count, share) per distinct value (null shown as "∅"), in ``order`` when given,
    else most frequent first."""
    arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values)
    if pa.types.is_dictionary(arr.type):
        arr = pc.cast(arr, arr.type.value_type)
    found = {("∅" if r["values"] is None else str(r["values"])): r["counts"]
             for r in pc.value_counts(arr).to_pylist()}
    total = max(len(arr), 1)
    if order is None:
        order = sorted(found, key=lambda k: (-found[k], k))
    return [(k, found.get(k, 0), found.get(k, 0) / total) for k in order]


def sums_by(keys, values, order: list[str]) -> list[float]:
    """Sum of ``values`` per key, in ``order``."""
    k = _np(keys).astype(str)
    v = _np(values).astype(float)
    return [float(v[k == key].sum()) for key in order]


def roll_rates(bucket_then, bucket_now, order: list[str]) -> np.ndarray:
    """Transition matrix: row i = accounts in bucket ``order[i]`` 30 days ago, column j = share
    of them in bucket ``order[j]`` today (rows sum to 1; NaN for an empty row)."""
    then, now = _codes(_np(bucket_then), order), _codes(_np(bucket_now), order)
    k = len(order)
    m = np.zeros((k, k))
    np.add.at(m, (then, now), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return m / m.sum(axis=1, keepdims=True)


def _codes(values: np.ndarray, order: list[str]) -> np.ndarray:
    keys, inverse = np.unique(values.astype(str), return_inverse=True)
    unknown = set(keys.tolist()) - set(order)
    if unknown:
        raise ValueError(f"bucket values {sorted(unknown)} are not among {order}")
    return np.array([order.index(k) for k in keys.tolist()], dtype=np.int64)[inverse]


def profile(book: pa.Table, mask: np.ndarray, columns: list[str]) -> list[tuple[str, float, float]]:
    """(column, mean within ``mask``, mean over the book) for numeric columns, nulls ignored."""
    out = []
    for name in columns:
        v = _np(book[name]).astype(float)
        out.append((name, float(np.nanmean(v[mask])) if mask.any() else float("nan"), float(np.nanmean(v))))
    return out
