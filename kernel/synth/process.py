"""The monthly repayment process of a synthetic loan, from origination to the snapshot and on
after it: one process for the book's history (:mod:`kernel.synth.book`) and the forward
outcome a PD model learns (:mod:`kernel.synth.outcomes`).

Each month an instalment falls due (until the term ends). In the month before its due date:

- a **current** account (nothing unpaid) pays it on time, a few days before the due date, or
  misses it and falls behind, with the monthly hazard
  ``sigmoid(ENTRY + Q·q + DTI·(dti − 0.45) + PAST·past + LTV·(ltv − 0.7) + TERM·(term − 36)/12
  + seasoning(k) + macro(month))`` — q the latent credit quality, ltv the loan-to-value at
  origination (a low down payment), k the instalment's number (few first-payment defaults,
  a peak in the first year and a half, then decline: :func:`seasoning`); a new delinquency
  gets its true cause (capacity, willingness, a forgotten instalment, a dispute);
- a **delinquent** account (``m`` instalments unpaid) pays everything (cures), pays one
  instalment (stays ``m`` behind once the new one falls due) or pays nothing (rolls to
  ``m + 1``), with odds by its true cause (a forgotten instalment is paid within the month;
  fraud never pays; unwillingness rarely cures), its quality and ``m``.

Payments fall on whole days: an on-time payment 0–3 days before its due date, a late one
(a cure or a stay) 1–27 days after the previous due date, mostly in the last week before
the next one (``27 − Exp(4)`` days after it). A loan with
:data:`WRITE_OFF_MISSED` instalments unpaid is written off and leaves the book: a book is a
snapshot of the loans still open, so the path of a loan written off before the snapshot is
drawn again (:func:`history`), up to :data:`REDRAWS` times — the open book's survivors.

All vectorised over a chunk's accounts, one month at a time; deterministic by the generator
passed in.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..hookspecs import NULL_TIME

#: true causes of a delinquency (kernel.synth.truth), in the order of the bundle's
#: risk_segment.overdue_reason members (UNKNOWN is an inference's, never a truth)
CAUSES = ("NONE", "CAPACITY", "WILLINGNESS", "OPERATIONAL", "DISPUTE", "FRAUD")
_C = {name: i for i, name in enumerate(CAUSES)}

# the entry hazard's coefficients (logit scale)
ENTRY = -2.35
Q, DTI, PAST, LTV, TERM = -1.0, 2.0, 0.2, 9.0, 0.35
#: cure odds by cause (logit), before quality and depth; stay odds
CURE = {"CAPACITY": 1.2, "WILLINGNESS": 0.0, "OPERATIONAL": 4.0, "DISPUTE": 0.4, "FRAUD": -30.0}
CURE_Q, CURE_DEPTH = 0.6, 2.9
#: cure odds per unit of equity (the car's value less the balance, a share of its price)
EQUITY = 3.0
STAY, STAY_Q, STAY_DEPTH = 0.6, 0.5, 0.5
#: instalments unpaid at which a loan is written off (about 7 months past due)
WRITE_OFF_MISSED = 8
#: how many times the path of a loan written off before the snapshot is drawn again
REDRAWS = 6
#: the economy's cycle, one for every book (not the book's seed)
_WORLD_SEED = 20_200_101


def macro(months: np.ndarray) -> np.ndarray:
    """The economy's effect on the monthly delinquency logit for calendar months counted from
    2000-01 (a 4-year cycle of ±0.3 plus a seeded shock per month)."""
    months = np.asarray(months, np.int64)
    shocks = np.random.default_rng(_WORLD_SEED).normal(0, 0.08, 600)
    return 0.3 * np.sin(2 * np.pi * months / 48.0) + shocks[np.clip(months, 0, 599)]


def seasoning(k: np.ndarray) -> np.ndarray:
    """The entry hazard's shape over a loan's life (logit, by instalment number): low for the
    first instalments, highest from the 6th to the 12th, declining after."""
    k = np.asarray(k, np.float64)
    return np.log(np.clip(k / 6.0, 0.2, 1.0)) - 0.07 * np.maximum(k - 12.0, 0.0)


@dataclass
class Borrower:
    """What the process reads of each account (constant over its life)."""

    quality: np.ndarray
    dti: np.ndarray
    past: np.ndarray           # bureau delinquencies before the loan
    ltv: np.ndarray
    term: np.ndarray
    cause_cdf: np.ndarray      # rows × 4: cumulative weights of CAPACITY … DISPUTE for a new delinquency
    fraud: np.ndarray          # never meant to pay
    depreciation: np.ndarray   # the car's yearly loss of value

    def equity(self, k: np.ndarray, missed: np.ndarray) -> np.ndarray:
        """The borrower's equity in the car as a share of its price when instalment ``k``
        falls due: the car's value (a geometric yearly loss) less the balance (the loan-to-value
        amortised, straight-line, over the instalments paid)."""
        paid = np.clip(k - 1 - missed, 0, None)
        balance = self.ltv * np.clip(1 - paid / np.maximum(self.term, 1), 0, 1)
        return (1 - self.depreciation) ** (k / 12.0) - balance

    def take(self, rows: np.ndarray) -> "Borrower":
        return Borrower(*(getattr(self, f)[rows] for f in self.__dataclass_fields__))


def entry_logit(b: Borrower, k: np.ndarray, month: np.ndarray) -> np.ndarray:
    """The logit of missing instalment ``k`` (falling due in calendar ``month``) when current."""
    return (ENTRY + Q * b.quality + DTI * (b.dti - 0.45) + PAST * b.past + LTV * (b.ltv - 0.7)
            + TERM * (b.term - 36) / 12.0 + seasoning(k) + macro(month))


def step(rng: np.random.Generator, b: Borrower, missed: np.ndarray, cause: np.ndarray, k: np.ndarray,
         month: np.ndarray, falls_due: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One month: the new ``missed`` and ``cause``, and how many instalments were paid
    (0: none; for a cure, every one unpaid plus the one falling due)."""
    n = missed.shape[0]
    u, v, w = rng.random(n), rng.random(n), rng.random(n)
    current = missed == 0
    new = current & falls_due & ((u < 1 / (1 + np.exp(-entry_logit(b, k, month)))) | b.fraud)
    pick = 1 + (b.cause_cdf < (v * b.cause_cdf[:, -1])[:, None]).sum(axis=1)
    new_cause = np.where(b.fraud, _C["FRAUD"], pick)
    base = np.select([cause == _C[c] for c in CURE], list(CURE.values()), 0.0)
    # a borrower with equity in the car sells it or refinances rather than lose it, the more
    # so as repossession nears
    equity = b.equity(k, missed)
    cure_logit = (base + CURE_Q * b.quality - CURE_DEPTH * (missed - 1)
                  + EQUITY * np.maximum(equity, 0) * np.minimum(missed, 3))
    p_cure = 1 / (1 + np.exp(-cure_logit))
    p_stay = (1 - p_cure) / (1 + np.exp(-(STAY + STAY_Q * b.quality - STAY_DEPTH * (missed - 1))))
    late = ~current
    cured = late & (w < p_cure)
    stayed = late & ~cured & (w < p_cure + p_stay)
    due = falls_due.astype(np.int64)
    paid = np.select([current & ~new & falls_due, cured, stayed], [1, missed + due, 1], 0)
    missed = np.select([new, cured, stayed], [1, 0, missed + due - 1], missed + np.where(late, due, 0))
    cause = np.where(new, new_cause, np.where(cured, 0, cause))
    return missed, cause, paid


@dataclass
class History:
    """An account's path from origination to the snapshot (rows × months, month ``k`` in
    column ``k − 1``; columns past an account's ``due`` are unused)."""

    missed: np.ndarray          # instalments unpaid after instalment k fell due
    paid: np.ndarray            # instalments paid in the month before k's due date (0: no payment)
    pay_day: np.ndarray         # the day of that payment (days since the epoch; NULL_TIME: none)
    cause: np.ndarray           # the true cause at the snapshot (0 NONE when current)
    redrawn: np.ndarray         # how many times the path was drawn again (written off)

    def at(self, col: np.ndarray) -> np.ndarray:
        """Per account, the value of ``missed`` after instalment ``col + 1`` (0 before the first)."""
        rows = np.arange(self.missed.shape[0])
        return np.where(col >= 0, self.missed[rows, np.maximum(col, 0)], 0)


def _path(rng, b: Borrower, due: np.ndarray, due_day, month0: np.ndarray, months: int):
    n = due.shape[0]
    missed = np.zeros(n, np.int64)
    cause = np.zeros(n, np.int64)
    M = np.zeros((n, months), np.int64)
    P = np.zeros((n, months), np.int64)
    D = np.full((n, months), NULL_TIME, np.int64)
    written_off = np.zeros(n, bool)
    for k in range(1, months + 1):
        active = k <= due
        kk = np.full(n, k, np.int64)
        new_missed, new_cause, paid = step(rng, b, missed, cause, kk, month0 + k, active)
        late_before = missed > 0
        on_time = rng.integers(0, 4, n)
        late_day = 27 - np.minimum(rng.exponential(4.0, n), 26).astype(np.int64)
        day_k = due_day(kk)
        prev = due_day(np.maximum(kk - 1, 1))
        pay = np.where(late_before, np.minimum(prev + late_day, day_k), day_k - on_time)
        missed = np.where(active, new_missed, missed)
        cause = np.where(active, new_cause, cause)
        has = active & (paid > 0)
        M[:, k - 1] = missed
        P[:, k - 1] = np.where(has, paid, 0)
        D[:, k - 1] = np.where(has, pay, NULL_TIME)
        written_off |= active & (missed >= WRITE_OFF_MISSED)
    return M, P, D, cause, written_off


def history(seed_seq, b: Borrower, due: np.ndarray, due_day, month0: np.ndarray) -> History:
    """Each account's path over its ``due`` instalments; ``due_day(k)`` gives the due day of
    instalment ``k`` per account, ``month0 + k`` its calendar month (from 2000-01). A path
    that reaches :data:`WRITE_OFF_MISSED` is drawn again (a fresh generator per round, on
    the written-off rows only), up to :data:`REDRAWS` times."""
    n = due.shape[0]
    months = int(max(due.max(initial=0), 1))
    rows = np.arange(n)
    M, P, D, cause, off = _path(np.random.default_rng([*seed_seq, 0]), b, due, due_day, month0, months)
    redrawn = np.zeros(n, np.int64)
    for r in range(1, REDRAWS + 1):
        again = rows[off]
        if again.size == 0:
            break
        sub_day = lambda k, again=again: due_day(k, again)  # noqa: E731
        m2, p2, d2, c2, off2 = _path(np.random.default_rng([*seed_seq, r]), b.take(again), due[again], sub_day,
                                     month0[again], months)
        M[again], P[again], D[again], cause[again] = m2, p2, d2, c2
        redrawn[again] += 1
        off = np.zeros(n, bool)
        off[again] = off2
    return History(M, P, D, cause, redrawn)


def forward(rng, b: Borrower, missed: np.ndarray, cause: np.ndarray, due: np.ndarray, month0: np.ndarray,
            months: int, default_missed: int) -> np.ndarray:
    """Continue from the snapshot for ``months`` months: the month (1…) in which each account
    first has ``default_missed`` instalments unpaid, −1 never."""
    missed, cause, due = missed.copy(), cause.copy(), due.copy()
    when = np.full(missed.shape[0], -1, np.int64)
    for month in range(1, months + 1):
        falls_due = due < b.term
        due = np.where(falls_due, due + 1, due)
        missed, cause, _ = step(rng, b, missed, cause, due, month0 + due, falls_due)
        reached = (missed >= default_missed) & (when < 0)
        when = np.where(reached, month, when)
    return when
