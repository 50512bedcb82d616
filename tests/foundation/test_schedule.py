"""Repayment schedules against hand-computed tables."""
import numpy as np
import pytest

from kernel import schedule as s


def test_equal_installment_hand_computed():
    # 100,000 at 6 % a year over 12 months: i = 0.005, A = P·i(1+i)^n/((1+i)^n-1) = 8,606.64
    sc = s.schedule(100_000, 0.06, 12, "EQUAL_INSTALLMENT")
    assert sc.payment[0, 0] == pytest.approx(8606.64, abs=0.005)
    # installment 1: interest 100,000 × 0.005 = 500.00, principal 8,106.64, balance 91,893.36
    assert sc.interest[0, 0] == pytest.approx(500.00, abs=0.005)
    assert sc.principal[0, 0] == pytest.approx(8106.64, abs=0.005)
    assert sc.balance[0, 0] == pytest.approx(91893.36, abs=0.005)
    # installment 2: interest round(91,893.36 × 0.005) = 459.47
    assert sc.interest[0, 1] == pytest.approx(459.47, abs=0.005)
    assert sc.balance[0, -1] == 0
    assert sc.principal[0].sum() == pytest.approx(100_000, abs=1e-6)
    # the last installment absorbs the rounding: 8,606.69
    assert sc.payment[0, -1] == pytest.approx(8606.69, abs=0.005)


def test_equal_principal_hand_computed():
    # 120,000 at 6 % over 12 months: principal 10,000 a month; interest 600, 550, … 50
    sc = s.schedule(120_000, 0.06, 12, "EQUAL_PRINCIPAL")
    np.testing.assert_allclose(sc.principal[0], 10_000)
    np.testing.assert_allclose(sc.interest[0], 600 - 50 * np.arange(12))
    np.testing.assert_allclose(sc.payment[0], 10_600 - 50 * np.arange(12))
    assert sc.interest[0].sum() == pytest.approx(3_900)


def test_zero_rate_splits_principal_evenly():
    sc = s.schedule(36_000, 0.0, 36, "EQUAL_INSTALLMENT")
    np.testing.assert_allclose(sc.payment[0], 1_000)
    np.testing.assert_allclose(sc.interest[0], 0)


def test_vectorized_over_mixed_accounts():
    sc = s.schedule([100_000, 120_000, 50_000], [0.06, 0.06, 0.1], [12, 12, 24],
                    ["EQUAL_INSTALLMENT", "EQUAL_PRINCIPAL", "EQUAL_INSTALLMENT"])
    assert sc.payment.shape == (3, 24)
    assert np.isnan(sc.payment[0, 12:]).all() and not np.isnan(sc.payment[2]).any()
    np.testing.assert_allclose(np.nansum(sc.principal, axis=1), [100_000, 120_000, 50_000], atol=1e-6)


def test_position_agrees_with_full_schedule():
    rng = np.random.default_rng(5)
    n = 400
    principal = np.round(rng.uniform(20_000, 400_000, n), -2)
    rate = np.round(rng.uniform(0, 0.15, n), 4)
    term = rng.choice([12, 24, 36, 48, 60], n)
    method = rng.integers(0, 2, n)
    paid = (rng.random(n) * (term + 1)).astype(int)
    due = np.minimum(paid + rng.integers(0, 8, n), term)
    pos = s.position(principal, rate, term, method, paid, due)
    sc = s.schedule(principal, rate, term, method)
    for j in range(n):
        bal = principal[j] if paid[j] == 0 else sc.balance[j, paid[j] - 1]
        assert pos.outstanding_principal[j] == pytest.approx(bal, abs=1e-6)
        assert pos.overdue_principal[j] == pytest.approx(sc.principal[j, paid[j]:due[j]].sum(), abs=1e-6)
        assert pos.overdue_interest[j] == pytest.approx(sc.interest[j, paid[j]:due[j]].sum(), abs=1e-6)
        expected_next = sc.payment[j, paid[j]] if paid[j] < term[j] else 0.0
        assert pos.next_installment[j] == pytest.approx(expected_next, abs=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(principal=1000, annual_rate=0.05, term_months=0, method=0), "term_months"),
    (dict(principal=-1, annual_rate=0.05, term_months=12, method=0), "must not be negative"),
    (dict(principal=1000, annual_rate=0.05, term_months=12, method="BALLOON"), "unknown method 'BALLOON'"),
])
def test_bad_terms_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        s.schedule(**kwargs)
