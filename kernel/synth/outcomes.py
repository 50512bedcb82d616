"""What happens to each account of a synthetic book after its snapshot: the simulated truth a
forward-looking PD model is trained and tested on, and the true overdue causes the bundle's
inferred reasons are measured against. Never book columns: a lender learns them only later.

**Default** (the PD model's label, docs/models.md): the account reaches **61+ days past due**
(three instalments unpaid: the oldest more than 60 days overdue — bucket M3 or worse) at some
month-end within the **6 months after the snapshot**. An account already 61+ DPD at the
snapshot is *in default*: it is left out of training and testing, and the bundle scores it 1
by rule (``early_warning.pd``), never by the model.

The forward simulation continues each account from its snapshot state with the very monthly
process that made its history (:mod:`kernel.synth.process`: the entry hazard with its
seasoning, loan-to-value and term effects; cure, stay or roll by true cause, quality and
depth; the economy's cycle by calendar month, so that an *earlier* snapshot is a different
time from a *later* one and an out-of-time test means something): the PD label and the book
are one process.

Deterministic by ``(seed, chunk)``, like the book (its own generator, ``(seed, chunk, 4)``).
"""
from __future__ import annotations

import datetime as dt
from typing import Iterator

import numpy as np
import pyarrow as pa

from . import process as proc
from .book import CAUSES, CHUNK, DEFAULT_AS_OF, simulate

#: the default definition: this many unpaid instalments (the oldest 61+ days past due)
DEFAULT_MISSED = 3
#: days past due at which an account is in default at the snapshot
DEFAULT_DPD = 60
#: months after the snapshot the label looks ahead
HORIZON_MONTHS = 6


def simulate_forward(h: dict, seed: int, chunk: int, as_of: dt.date) -> dict[str, np.ndarray]:
    """Continue ``h`` (a chunk's history, :func:`kernel.synth.book.simulate`) for
    :data:`HORIZON_MONTHS` months: ``default_6m`` (reaches default), ``in_default`` (already
    there at the snapshot) and ``months_to_default`` (0 when already, −1 never)."""
    rng = np.random.default_rng([seed, chunk, 4])
    in_default = h["dpd"] > DEFAULT_DPD
    when = proc.forward(rng, h["borrower"], h["missed"], h["cause"].astype(np.int64), h["due"], h["month0"],
                        HORIZON_MONTHS, DEFAULT_MISSED)
    when = np.where(in_default, 0, when)
    return {"default_6m": when >= 0, "in_default": in_default, "months_to_default": when}


def truth_schema() -> pa.Schema:
    return pa.schema([("account_id", pa.string()), ("overdue_cause", pa.string()), ("in_default", pa.bool_()),
                      ("default_6m", pa.bool_()), ("months_to_default", pa.int64())])


def iter_truth(accounts: int, seed: int = 0, as_of: dt.date = DEFAULT_AS_OF,
               with_book: bool = False) -> Iterator:
    """Yield, chunk by chunk, the simulated truth of the book ``generate(accounts, seed, as_of)``
    (with the book's batch when ``with_book``): the true overdue cause (NONE when current) and
    the forward outcome (:func:`simulate_forward`)."""
    names = np.array(CAUSES, dtype=object)
    for chunk in range((accounts + CHUNK - 1) // CHUNK):
        rows = min(CHUNK, accounts - chunk * CHUNK)
        batch, h = simulate(seed, chunk, CHUNK, as_of, people=with_book)
        out = simulate_forward(h, seed, chunk, as_of)
        truth = pa.RecordBatch.from_arrays(
            [batch.column("account_id"), pa.array(names[h["cause"]].tolist(), pa.string()),
             pa.array(out["in_default"]), pa.array(out["default_6m"]), pa.array(out["months_to_default"])],
            schema=truth_schema()).slice(0, rows)
        yield (batch.slice(0, rows), truth) if with_book else truth


def truth(accounts: int, seed: int = 0, as_of: dt.date = DEFAULT_AS_OF) -> pa.Table:
    """The simulated truth of a whole book in memory (:func:`iter_truth`)."""
    return pa.Table.from_batches(list(iter_truth(accounts, seed, as_of)), schema=truth_schema())


def book_with_truth(accounts: int, seed: int = 0, as_of: dt.date = DEFAULT_AS_OF) -> tuple[pa.Table, pa.Table]:
    """The book (with its personal-data columns) and its truth, row for row."""
    from .book import book_schema
    pairs = list(iter_truth(accounts, seed, as_of, with_book=True))
    return (pa.Table.from_batches([b for b, _ in pairs], schema=book_schema(as_of)),
            pa.Table.from_batches([t for _, t in pairs], schema=truth_schema()))
