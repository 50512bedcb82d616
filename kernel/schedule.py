"""Repayment schedules (还款计划), vectorized over accounts.

Two methods, as Chinese auto-finance contracts write them:

- **equal installment** (等额本息): a constant payment ``A = P·i·(1+i)^n / ((1+i)^n − 1)``
  with monthly rate ``i = annual_rate / 12`` (``A = P / n`` when ``i = 0``);
- **equal principal** (等额本金): principal ``P / n`` each month plus interest on the balance.

Amounts are in fen-exact yuan: each installment's interest is ``round(balance · i, 2)``, the
equal-installment payment is rounded to the fen, and the last installment pays whatever
balance remains, so the principal parts always sum to ``P`` exactly.

Every function takes NumPy arrays (one element per account; scalars broadcast) and steps
through the periods for all accounts at once: time O(accounts × term), memory O(accounts)
for :func:`position` (the generator's path) and O(accounts × term) for :func:`schedule`.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

EQUAL_INSTALLMENT = 0   # 等额本息
EQUAL_PRINCIPAL = 1     # 等额本金
METHODS = {"EQUAL_INSTALLMENT": EQUAL_INSTALLMENT, "EQUAL_PRINCIPAL": EQUAL_PRINCIPAL}


class Schedule(NamedTuple):
    """Full schedules, shape (accounts, max term); NaN after an account's last installment."""

    payment: np.ndarray
    principal: np.ndarray
    interest: np.ndarray
    balance: np.ndarray    # balance after the installment is paid


class Position(NamedTuple):
    """Where each account stands after ``paid`` installments with ``due`` fallen due."""

    outstanding_principal: np.ndarray   # balance after ``paid`` installments
    next_installment: np.ndarray        # amount of installment ``paid + 1`` (0 when repaid)
    overdue_principal: np.ndarray       # principal parts of installments paid+1 .. due
    overdue_interest: np.ndarray        # interest parts of installments paid+1 .. due


def _round_fen(x):
    return np.round(x, 2)


def _method_codes(method, n) -> np.ndarray:
    m = np.asarray(method)
    if m.dtype.kind in "OUS":
        try:
            m = np.array([METHODS[str(v)] for v in m.ravel()]).reshape(m.shape)
        except KeyError as e:
            raise ValueError(f"repayment_method: unknown method {e.args[0]!r}; "
                             f"expected one of {', '.join(METHODS)}") from None
    return np.broadcast_to(m.astype(np.int8), (n,))


def _prepare(principal, annual_rate, term_months, method):
    principal, annual_rate, term_months = np.broadcast_arrays(
        np.asarray(principal, np.float64), np.asarray(annual_rate, np.float64),
        np.asarray(term_months, np.int64))
    principal, annual_rate, term_months = (np.atleast_1d(a) for a in (principal, annual_rate, term_months))
    n = principal.shape[0]
    if np.any(term_months < 1):
        raise ValueError("term_months: every loan needs at least one installment")
    if np.any(principal < 0) or np.any(annual_rate < 0):
        raise ValueError("principal and annual_rate must not be negative")
    method = _method_codes(method, n)
    i = annual_rate / 12.0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        growth = (1.0 + i) ** term_months
        annuity = np.where(i > 0, principal * i * growth / (growth - 1.0), principal / term_months)
    level_payment = _round_fen(annuity)
    level_principal = _round_fen(principal / term_months)
    return principal, i, term_months, method, level_payment, level_principal


def _installment(k, balance, i, term, method, level_payment, level_principal):
    """Installment k (1-based) for every account given the balance before it."""
    interest = _round_fen(balance * i)
    last = k >= term
    principal_part = np.where(method == EQUAL_INSTALLMENT, level_payment - interest, level_principal)
    principal_part = np.where(last, balance, np.minimum(principal_part, balance))
    return principal_part + interest, principal_part, interest


def payment(principal, annual_rate, term_months, method="EQUAL_INSTALLMENT") -> np.ndarray:
    """The first installment of each loan (for 等额本息, every installment but the last)."""
    p, i, term, m, lp, lpr = _prepare(principal, annual_rate, term_months, method)
    return _installment(1, p, i, term, m, lp, lpr)[0]


def schedule(principal, annual_rate, term_months, method="EQUAL_INSTALLMENT") -> Schedule:
    """Every installment of every loan; arrays of shape (accounts, max term)."""
    p, i, term, m, lp, lpr = _prepare(principal, annual_rate, term_months, method)
    n, horizon = p.shape[0], int(term.max(initial=0))
    out = [np.full((n, horizon), np.nan) for _ in range(4)]
    balance = p.copy()
    for k in range(1, horizon + 1):
        live = term >= k
        pay, prin, intr = _installment(k, balance, i, term, m, lp, lpr)
        balance = np.where(live, _round_fen(balance - prin), balance)
        for arr, val in zip(out, (pay, prin, intr, balance)):
            arr[:, k - 1] = np.where(live, val, np.nan)
    return Schedule(*out)


def position(principal, annual_rate, term_months, method, paid, due) -> Position:
    """Balances after ``paid`` installments and the parts of installments ``paid+1..due``.

    ``paid`` and ``due`` are per-account counts with ``0 <= paid <= term`` and
    ``paid <= due``; ``due`` beyond the term is clipped to it.
    """
    p, i, term, m, lp, lpr = _prepare(principal, annual_rate, term_months, method)
    paid = np.broadcast_to(np.asarray(paid, np.int64), p.shape)
    due = np.minimum(np.broadcast_to(np.asarray(due, np.int64), p.shape), term)
    if np.any(paid < 0) or np.any(paid > term):
        raise ValueError("paid: must lie between 0 and term_months")
    if np.any(due < paid):
        raise ValueError("due: must not be less than paid")
    n = p.shape[0]
    outstanding = p.copy()
    next_inst = np.zeros(n)
    over_p = np.zeros(n)
    over_i = np.zeros(n)
    balance = p.copy()
    horizon = min(max(int(due.max(initial=0)), int(paid.max(initial=0)) + 1), int(term.max(initial=0)))
    for k in range(1, horizon + 1):
        live = term >= k
        pay, prin, intr = _installment(k, balance, i, term, m, lp, lpr)
        is_next = live & (k == paid + 1)
        next_inst = np.where(is_next, pay, next_inst)
        overdue = live & (k > paid) & (k <= due)
        over_p += np.where(overdue, prin, 0.0)
        over_i += np.where(overdue, intr, 0.0)
        balance = np.where(live, _round_fen(balance - prin), balance)
        outstanding = np.where(k == paid, balance, outstanding)
    return Position(outstanding, next_inst, _round_fen(over_p), _round_fen(over_i))
