"""The monthly repayment process of a synthetic loan, from origination to the snapshot and on
after it: one process for the book's history (:mod:`kernel.synth.book`) and the forward
outcome a PD model learns (:mod:`kernel.synth.outcomes`).

Each month an instalment falls due (until the term ends). In the month before its due date:

- a **current** account (nothing unpaid) pays it on time, 0–3 days before the due date, or
  misses it and falls behind, with the monthly hazard
  ``sigmoid(ENTRY + Q·q + DTI·(dti − 0.45) + PAST·past + LTV·(ltv − norm) + TERM·(term − 36)/12
  + seasoning(k) + macro(month))`` — q the latent credit quality, ltv the loan-to-value at
  origination against its market's usual one (a low down payment), k the instalment's
  number: ``seasoning(k) = log(clip(k/6, 0.2, 1)) − 0.07·max(k − 12, 0) − FIRST·[k = 1]`` (an honest
  borrower almost always pays the first instalment: a first-payment default is fraud's mark;
  few defaults in the first months, a peak from the 6th to the
  12th instalment, then decline: defaults come early in a loan); a new delinquency gets its
  true cause (capacity, willingness, a forgotten instalment, a dispute; fraud from the start);
- a **delinquent** account (``m`` instalments unpaid) pays everything (cures), pays one
  instalment (stays ``m`` behind once the new one falls due) or pays nothing (rolls to
  ``m + 1``): cure logit ``CURE[cause] + CURE_Q·q − CURE_DEPTH·(m − 1) + EQUITY·max(e, 0)·min(m,
  3)`` (a forgotten instalment is paid within the month; fraud never pays; unwillingness
  rarely cures; a borrower with equity ``e`` in the car — its value, a geometric yearly loss,
  less the balance, the loan-to-value amortised straight-line, both shares of the price —
  sells or refinances rather than lose it, the more so as repossession nears); stay logit
  ``STAY + STAY_Q·q − STAY_DEPTH·(m − 1)`` among the rest.

Payments fall on whole days: an on-time payment 0–3 days before its due date, a late one
(a cure or a stay) 1–27 days after the previous due date, mostly in the last week before
the next one (``27 − Exp(4)`` days after it). A loan with :data:`WRITE_OFF_MISSED`
instalments unpaid is written off and leaves the book: a book is a snapshot of the loans
still open, so the path of a loan written off before the snapshot is drawn again
(:func:`history`), up to :data:`REDRAWS` times — the open book's survivors.

Each account draws :data:`DRAWS` uniforms a month from the chunk's NumPy generator (so the
process is deterministic by seed and chunk); one compiled loop (:func:`_walk`, Numba) walks
every account through its months, for the history and for the forward outcome alike.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from ..hookspecs import NULL_TIME

#: true causes of a delinquency (kernel.synth.truth), in the order of the bundle's
#: risk_segment.overdue_reason members (UNKNOWN is an inference's, never a truth)
CAUSES = ("NONE", "CAPACITY", "WILLINGNESS", "OPERATIONAL", "DISPUTE", "FRAUD")
_C = {name: i for i, name in enumerate(CAUSES)}

# the entry hazard's coefficients (logit scale)
ENTRY = -2.05
Q, DTI, PAST, LTV, TERM = -1.0, 2.0, 0.2, 9.0, 0.35
#: how much less an honest borrower misses the very first instalment (logit)
FIRST = 3.0
#: cure odds by cause (logit), before quality and depth; stay odds
CURE = {"CAPACITY": 0.4, "WILLINGNESS": 0.0, "OPERATIONAL": 4.0, "DISPUTE": 0.4, "FRAUD": -30.0}
CURE_Q, CURE_DEPTH = 0.6, 2.9
#: cure odds per unit of equity (the car's value less the balance, a share of its price)
EQUITY = 5.0
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
    ltv_norm: np.ndarray       # the market's usual loan-to-value (0.7 in China, 0.9 in the US)

    def take(self, rows: np.ndarray) -> "Borrower":
        return Borrower(*(getattr(self, f)[rows] for f in self.__dataclass_fields__))


_CURE_BASE = np.array([0.0] + [CURE[c] for c in CAUSES[1:]])       # by cause code
_MACRO = None


def _macro_table() -> np.ndarray:
    global _MACRO
    if _MACRO is None:
        _MACRO = macro(np.arange(600))
    return _MACRO


#: uniforms each account draws each month: entry, cause, transition, on-time day, late day
DRAWS = 5


@njit(cache=True)
def _walk(u, q, dti, past, ltv, ltv_norm, term, dep, cdf, fraud, month0, k_start, steps, days, missed0, cause0,
          macro_tab,
          cure_base, M, P, D, cause_out, written_off):  # pragma: no cover (compiled)
    """The monthly process for each account ``i``: ``steps[i]`` months from instalment
    ``k_start[i]`` (an instalment falls due while k ≤ term), from ``missed0``/``cause0``;
    ``u[j, :, i]`` its uniforms of month j. Writes missed after each month (``M``), the
    instalments paid in it (``P``) and the payment's day (``D``, when ``days`` has the due
    days; NULL_TIME without a payment), the final cause, and whether the loan reached
    :data:`WRITE_OFF_MISSED`."""
    n = q.shape[0]
    for i in range(n):
        missed = missed0[i]
        cause = cause0[i]
        off = False
        for j in range(steps[i]):
            k = k_start[i] + j
            before = missed
            falls = 1 if k <= term[i] else 0
            ue, uc, ut, ud, ul = u[j, 0, i], u[j, 1, i], u[j, 2, i], u[j, 3, i], u[j, 4, i]
            paid = 0
            if missed == 0:
                if falls == 0:
                    pass
                else:
                    kf = float(k)
                    season = np.log(min(max(kf / 6.0, 0.2), 1.0)) - 0.07 * max(kf - 12.0, 0.0) - (FIRST if k == 1 else 0.0)
                    mi = min(max(month0[i] + k, 0), 599)
                    logit = (ENTRY + Q * q[i] + DTI * (dti[i] - 0.45) + PAST * past[i] + LTV * (ltv[i] - ltv_norm[i])
                             + TERM * (term[i] - 36.0) / 12.0 + season + macro_tab[mi])
                    if fraud[i] or ue < 1.0 / (1.0 + np.exp(-logit)):
                        missed = 1
                        if fraud[i]:
                            cause = 5
                        else:
                            c = 0
                            while c < 3 and cdf[i, c] < uc * cdf[i, 3]:
                                c += 1
                            cause = 1 + c
                    else:
                        paid = 1
            elif fraud[i]:
                missed = missed + falls                                 # fraud never pays
            else:
                # a borrower with equity in the car sells it or refinances rather than lose
                # it, the more so as repossession nears
                done = max(k - 1 - missed, 0)
                balance = ltv[i] * min(max(1.0 - done / max(term[i], 1.0), 0.0), 1.0)
                equity = (1.0 - dep[i]) ** (k / 12.0) - balance
                cure_logit = (cure_base[cause] + CURE_Q * q[i] - CURE_DEPTH * (missed - 1)
                              + EQUITY * max(equity, 0.0) * min(missed, 3))
                p_cure = 1.0 / (1.0 + np.exp(-cure_logit))
                p_stay = (1.0 - p_cure) / (1.0 + np.exp(-(STAY + STAY_Q * q[i] - STAY_DEPTH * (missed - 1))))
                if ut < p_cure:
                    paid = missed + falls
                    missed = 0
                    cause = 0
                elif ut < p_cure + p_stay:
                    paid = 1
                    missed = missed + falls - 1
                else:
                    missed = missed + falls
            M[i, j] = missed
            P[i, j] = paid
            if paid > 0 and days.shape[1] > 0:
                day_k = days[i, k - 1]
                if before == 0:
                    D[i, j] = day_k - int(ud * 4.0)                     # on time: 0–3 days early
                else:
                    prev = days[i, max(k - 2, 0)]
                    late = 27 - min(int(-4.0 * np.log(1.0 - ul)), 26)    # mostly the week before the next
                    D[i, j] = min(prev + late, day_k)
            if missed >= WRITE_OFF_MISSED:
                off = True
        cause_out[i] = cause
        written_off[i] = off


def run(u: np.ndarray, b: Borrower, month0, k_start, steps, days, missed0, cause0):
    """:func:`_walk` over a chunk: (M, P, D, cause, written_off), a column per month of ``u``."""
    n = b.quality.shape[0]
    width = u.shape[0]
    M = np.zeros((n, width), np.int64)
    P = np.zeros((n, width), np.int64)
    D = np.full((n, width), NULL_TIME, np.int64)
    cause = np.zeros(n, np.int64)
    off = np.zeros(n, np.bool_)
    f = lambda x: np.ascontiguousarray(x, np.float64)  # noqa: E731
    _walk(u, f(b.quality), f(b.dti), f(b.past), f(b.ltv), f(b.ltv_norm), f(b.term), f(b.depreciation), f(b.cause_cdf),
          np.ascontiguousarray(b.fraud, np.bool_), np.asarray(month0, np.int64), np.asarray(k_start, np.int64),
          np.asarray(steps, np.int64), np.asarray(days, np.int64), np.asarray(missed0, np.int64),
          np.asarray(cause0, np.int64), _macro_table(), _CURE_BASE, M, P, D, cause, off)
    return M, P, D, cause, off


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


def _path(rng, b: Borrower, due: np.ndarray, days: np.ndarray, month0: np.ndarray, months: int):
    n = due.shape[0]
    u = rng.random((months, DRAWS, n))
    zeros = np.zeros(n, np.int64)
    return run(u, b, month0, np.ones(n, np.int64), due, days, zeros, zeros)


def history(seed_seq, b: Borrower, due: np.ndarray, days: np.ndarray, month0: np.ndarray) -> History:
    """Each account's path over its ``due`` instalments; ``days[:, k − 1]`` is the due day of
    instalment ``k`` (days since the epoch), ``month0 + k`` its calendar month (from 2000-01),
    ``days`` has a column for each instalment up to the largest ``due``. A path
    that reaches :data:`WRITE_OFF_MISSED` is drawn again (a fresh generator per round, on
    the written-off rows only), up to :data:`REDRAWS` times; one that fails every draw paid
    every instalment on its due date."""
    n = due.shape[0]
    months = int(max(due.max(initial=0), 1))
    rows = np.arange(n)
    M, P, D, cause, off = _path(np.random.default_rng([*seed_seq, 0]), b, due, days, month0, months)
    redrawn = np.zeros(n, np.int64)
    for r in range(1, REDRAWS + 1):
        again = rows[off]
        if again.size == 0:
            break
        m2, p2, d2, c2, off2 = _path(np.random.default_rng([*seed_seq, r]), b.take(again), due[again], days[again],
                                     month0[again], months)
        M[again], P[again], D[again], cause[again] = m2, p2, d2, c2
        redrawn[again] += 1
        off = np.zeros(n, bool)
        off[again] = off2
    # the few that fail every draw (the riskiest borrowers) are the survivors that paid every
    # instalment on its due date
    still = rows[off]
    if still.size:
        paid = np.arange(months)[None, :] < due[still, None]
        M[still], P[still], cause[still] = 0, paid, 0
        D[still] = np.where(paid, days[still], NULL_TIME)
    return History(M, P, D, cause, redrawn)


def forward(rng, b: Borrower, missed: np.ndarray, cause: np.ndarray, due: np.ndarray, month0: np.ndarray,
            months: int, default_missed: int) -> np.ndarray:
    """Continue from the snapshot for ``months`` months (the same process, from instalment
    ``due + 1``): the month (1…) in which each account first has ``default_missed``
    instalments unpaid, −1 never."""
    n = missed.shape[0]
    u = rng.random((months, DRAWS, n))
    M, _, _, _, _ = run(u, b, month0, due + 1, np.full(n, months, np.int64), np.zeros((n, 0), np.int64),
                        missed, cause)
    reached = M >= default_missed
    return np.where(reached.any(axis=1), reached.argmax(axis=1) + 1, -1)


@njit(cache=True)
def _summarise(M, P, D, due, days, today, far, out):  # pragma: no cover (compiled)
    n = M.shape[0]
    for i in range(n):
        t = today[i] - 30
        dpd_then = 0
        peak = 0
        times = 0
        first = far
        last = -1
        for j in range(due[i]):
            before = M[i, j - 1] if j > 0 else 0
            if D[i, j] != NULL_TIME:
                last = j
            if before > 0 and due[i] - j <= 12:                  # the DPD just before the payment
                end = D[i, j] - 1 if D[i, j] != NULL_TIME else days[i, j]
                peak = max(peak, end - days[i, j - before])
            if M[i, j] > 0:
                first = min(first, days[i, j] + 1)
                if due[i] - j <= 12:
                    times += 1
            # 30 days ago: j + 1 instalments had fallen due; month j + 2's payment made or not
            if days[i, j] < t and (j + 1 == due[i] or days[i, j + 1] >= t):
                m = M[i, j]
                if j + 1 < due[i] and D[i, j + 1] != NULL_TIME and D[i, j + 1] <= t:
                    m = max(m - P[i, j + 1], 0)
                if m > 0:
                    dpd_then = max(t - days[i, j + 1 - m], 1)
        out[0, i] = dpd_then
        out[1, i] = peak
        out[2, i] = times
        out[3, i] = first
        out[4, i] = last


def summarise(h: History, due: np.ndarray, days: np.ndarray, today: np.ndarray) -> dict[str, np.ndarray]:
    """What the book's counters of the last 12 (24) months read off each account's path:
    ``dpd_30d_ago`` (the DPD on the day 30 days before ``today``), ``max_dpd_12m`` (the highest
    DPD reached, just before each payment, over the last 12 months), ``times_overdue_12m``
    (instalments of the last 12 not paid by their due date), ``first_overdue_day`` (far in the future: never) and
    ``last_payment`` (the column of the last payment, −1: none)."""
    n = due.shape[0]
    out = np.zeros((5, n), np.int64)
    far = int(np.max(today, initial=0)) + 100_000
    _summarise(h.missed, h.paid, h.pay_day, np.asarray(due, np.int64), np.ascontiguousarray(days, np.int64),
               np.asarray(today, np.int64), far, out)
    names = ("dpd_30d_ago", "max_dpd_12m", "times_overdue_12m", "first_overdue_day", "last_payment")
    return dict(zip(names, out))
