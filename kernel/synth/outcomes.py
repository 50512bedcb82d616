"""What happens to each account of a synthetic book after its snapshot: the simulated truth a
forward-looking PD model is trained and tested on, and the true overdue causes the bundle's
inferred reasons are measured against. Never book columns: a lender learns them only later.

**Default** (the PD model's label, docs/models.md): the account reaches **61+ days past due**
(three instalments unpaid: the oldest more than 60 days overdue — bucket M3 or worse) at some
month-end within the **6 months after the snapshot**. An account already 61+ DPD at the
snapshot is *in default*: it is left out of training and testing, and the bundle scores it 1
by rule (``early_warning.pd``), never by the model.

The forward simulation continues each account from its snapshot state, month by month (a new
instalment falls due each month until the term ends):

- a current account falls behind with the monthly hazard
  ``sigmoid(−5.4 − 1.1·q + 2·(dti − 0.45) + 0.25·past delinquencies + macro(month))``
  (q: the customer's latent credit quality, the generator's; ≈ 1 % a month on the book);
- a delinquent account pays everything (cures), pays one instalment (stays) or pays nothing
  (rolls one instalment deeper), with odds by its true cause (a forgotten instalment is paid
  within the month; fraud never pays; unwillingness rarely cures) and its quality; M3 (three
  unpaid) is default;
- ``macro(month)``: one economy for every book, a slow cycle (±0.3 on the logit, 4 years) plus
  a seeded monthly shock (σ 0.08) by calendar month, so that an *earlier* snapshot is a
  different time from a *later* one and an out-of-time test means something.

Deterministic by ``(seed, chunk)``, like the book (a third generator, ``(seed, chunk, 4)``).
"""
from __future__ import annotations

import datetime as dt
from typing import Iterator

import numpy as np
import pyarrow as pa

from .book import CAUSES, CHUNK, DEFAULT_AS_OF, simulate

#: the default definition: this many unpaid instalments (the oldest 61+ days past due)
DEFAULT_MISSED = 3
#: days past due at which an account is in default at the snapshot
DEFAULT_DPD = 60
#: months after the snapshot the label looks ahead
HORIZON_MONTHS = 6
#: the economy's cycle, one for every book (not the book's seed)
_WORLD_SEED = 20_200_101


def macro(months: np.ndarray) -> np.ndarray:
    """The economy's effect on the monthly delinquency logit for calendar months counted from
    2000-01 (a 4-year cycle of ±0.3 plus a seeded shock per month)."""
    months = np.asarray(months, np.int64)
    shocks = np.random.default_rng(_WORLD_SEED).normal(0, 0.08, 600)
    return 0.3 * np.sin(2 * np.pi * months / 48.0) + shocks[np.clip(months, 0, 599)]


def _month_index(as_of: dt.date) -> int:
    return (as_of.year - 2000) * 12 + as_of.month - 1


def simulate_forward(h: dict, seed: int, chunk: int, as_of: dt.date) -> dict[str, np.ndarray]:
    """Continue ``h`` (a chunk's history, :func:`kernel.synth.book.simulate`) for
    :data:`HORIZON_MONTHS` months: ``default_6m`` (reaches default), ``in_default`` (already
    there at the snapshot) and ``months_to_default`` (0 when already, −1 never)."""
    rng = np.random.default_rng([seed, chunk, 4])
    q, dti, past = h["quality"], h["dti"], h["past_delinq"]
    missed, due, term, cause = h["missed"].copy(), h["due"].copy(), h["term"], h["cause"].astype(np.int64)
    n = missed.shape[0]
    in_default = h["dpd"] > DEFAULT_DPD
    when = np.where(in_default, 0, -1)
    start = _month_index(as_of)
    c = {name: i for i, name in enumerate(CAUSES)}
    for month in range(1, HORIZON_MONTHS + 1):
        falls_due = due < term
        due = np.where(falls_due, due + 1, due)
        current = missed == 0
        logit = -5.4 - 1.1 * q + 2.0 * (dti - 0.45) + 0.25 * past + macro(np.array([start + month]))[0]
        new = current & falls_due & (rng.random(n) < 1 / (1 + np.exp(-logit)))
        # a new delinquency's cause: drawn like the book's (capacity most often)
        new_cause = np.where(rng.random(n) < 0.6, c["CAPACITY"],
                             np.where(rng.random(n) < 0.5, c["WILLINGNESS"], c["OPERATIONAL"]))
        cause = np.where(new, new_cause, cause)
        # delinquent: cure / stay / roll, by cause and quality
        cure_logit = np.select([cause == c["OPERATIONAL"], cause == c["FRAUD"], cause == c["WILLINGNESS"],
                                cause == c["DISPUTE"]], [2.0, -9.0, -1.6, -0.8], -0.7) + 0.8 * q - 0.5 * (missed - 1)
        stay_logit = 0.2 + 0.5 * q
        u = rng.random(n)
        p_cure = 1 / (1 + np.exp(-cure_logit))
        p_stay = (1 - p_cure) / (1 + np.exp(-stay_logit))
        late = ~current
        cured = late & (u < p_cure)
        stayed = late & ~cured & (u < p_cure + p_stay)
        rolled = late & ~cured & ~stayed
        missed = np.where(cured, 0, np.where(rolled & falls_due, missed + 1, missed))
        missed = np.where(new, 1, missed)
        cause = np.where(cured, 0, cause)
        reached = (missed >= DEFAULT_MISSED) & (when < 0)
        when = np.where(reached, month, when)
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
