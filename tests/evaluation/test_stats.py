"""The test statistics against published values and against scipy on raw data."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sst

from kernel.evaluation import stats


def test_wilson_and_newcombe_match_newcombes_published_examples():
    # Newcombe (1998), Statistics in Medicine 17: 81/263 → 0.2553–0.3662 (score interval)
    low, high = stats.wilson(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    # … and the difference 56/70 − 48/80 → 0.0524–0.3339 (method 10, hybrid score)
    d, low, high = stats.newcombe(56, 70, 48, 80)
    assert (round(d, 4), round(low, 4), round(high, 4)) == (0.2, 0.0524, 0.3339)
    assert all(math.isnan(v) for v in stats.wilson(0, 0))     # no trials: no interval


def test_two_proportion_z_is_the_chi_square_test():
    z, p = stats.two_proportion_z(56, 70, 48, 80)
    chi2, p_chi2, _, _ = sst.chi2_contingency([[56, 14], [48, 32]], correction=False)
    assert z * z == pytest.approx(chi2) and p == pytest.approx(p_chi2)


def test_welch_from_sums_equals_scipy_on_the_raw_values():
    rng = np.random.default_rng(3)
    a, b = rng.gamma(2.0, 300.0, 400), rng.gamma(2.2, 300.0, 350)
    d = stats.welch(len(a), a.sum(), (a * a).sum(), len(b), b.sum(), (b * b).sum())
    ref = sst.ttest_ind(a, b, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert d.statistic == pytest.approx(ref.statistic) and d.p == pytest.approx(ref.pvalue)
    assert (d.low, d.high) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_ratio_of_sums_delta_method():
    rng = np.random.default_rng(4)
    y = rng.uniform(1000, 5000, 500)
    x = y * rng.uniform(0.3, 0.9, 500)
    n, sums = len(x), (x.sum(), y.sum(), (x * x).sum(), (y * y).sum(), (x * y).sum())
    e = stats.ratio_estimate(n, *sums)
    r = x.sum() / y.sum()
    se = np.std(x - r * y, ddof=1) / math.sqrt(n) / y.mean()       # the linearised values' standard error
    assert e.value == pytest.approx(r) and (e.high - e.low) / 2 == pytest.approx(1.959964 * se, rel=1e-5)
    d = stats.ratio_difference((n, *sums), (n, *sums))
    assert d.value == 0 and d.p == pytest.approx(1.0)


def test_poisson_rate_exact_interval_and_conditional_test():
    e = stats.poisson_interval(10, 1000, per=10_000)
    # Garwood's exact interval for 10 events: 4.7954–18.3904
    assert e.value == 100 and round(e.low / 10, 4) == 4.7954 and round(e.high / 10, 4) == 18.3904
    d = stats.poisson_difference(30, 10_000, 10, 10_000, per=10_000)
    assert d.value == 20 and d.p == pytest.approx(sst.binomtest(30, 40, 0.5).pvalue) and d.p < 0.01
