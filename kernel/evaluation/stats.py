"""Intervals and tests for KPIs and for the differences between arms (docs/evaluation.md,
"Test statistics"). Every function takes sufficient statistics (counts and sums), which add
up across partitions, so a KPI computed on Dask is the KPI computed in one process.

- a **proportion** (k successes of n trials): Wilson score interval; the difference of two
  independent proportions: Newcombe's hybrid score interval (method 10) and the pooled
  two-proportion z test;
- a **mean** (n, Σx, Σx²): Student's t interval; the difference of two means: Welch's t
  interval and test (Welch–Satterthwaite degrees of freedom);
- a **ratio of sums** R = Σx / Σy over units (n, Σx, Σy, Σx², Σy², Σxy): a delta-method
  (linearised) standard error, normal interval; the difference of two ratios: z;
- a **rate per exposure** (c events over E units, e.g. complaints per 10,000 contacts): exact
  Poisson (Garwood) interval; the difference: normal interval, and the exact conditional test
  (c₁ given c₁ + c₂ is binomial with p = E₁ / (E₁ + E₂)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats as _st

__all__ = ["Estimate", "Difference", "wilson", "newcombe", "two_proportion_z", "mean_interval", "welch",
           "ratio_estimate", "ratio_difference", "poisson_interval", "poisson_difference", "proportion",
           "proportion_difference"]

NAN = float("nan")


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float
    n: float


@dataclass(frozen=True)
class Difference:
    """``value`` = treatment − control, its interval, the test's statistic and two-sided p."""

    value: float
    low: float
    high: float
    statistic: float
    p: float
    test: str


def _z(confidence: float) -> float:
    return float(_st.norm.ppf(0.5 + confidence / 2))


def wilson(k: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval of a proportion k / n (NaN, NaN for n = 0)."""
    if n <= 0:
        return NAN, NAN
    z = _z(confidence)
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    denom = 1 + z * z / n
    return max(0.0, (centre - half) / denom), min(1.0, (centre + half) / denom)


def proportion(k: float, n: float, confidence: float = 0.95) -> Estimate:
    low, high = wilson(k, n, confidence)
    return Estimate(k / n if n else NAN, low, high, n)


def newcombe(k1: float, n1: float, k2: float, n2: float, confidence: float = 0.95) -> tuple[float, float, float]:
    """p1 − p2 and Newcombe's hybrid score interval (his method 10), from the two Wilson
    intervals."""
    if n1 <= 0 or n2 <= 0:
        return NAN, NAN, NAN
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, confidence)
    l2, u2 = wilson(k2, n2, confidence)
    d = p1 - p2
    return d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def two_proportion_z(k1: float, n1: float, k2: float, n2: float) -> tuple[float, float]:
    """The pooled two-proportion z statistic and its two-sided p-value."""
    if n1 <= 0 or n2 <= 0:
        return NAN, NAN
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (k1 / n1 - k2 / n2) / se
    return z, float(2 * _st.norm.sf(abs(z)))


def proportion_difference(k1, n1, k2, n2, confidence: float = 0.95) -> Difference:
    d, low, high = newcombe(k1, n1, k2, n2, confidence)
    z, p = two_proportion_z(k1, n1, k2, n2)
    return Difference(d, low, high, z, p, "two-proportion z; Newcombe hybrid score interval")


def _mean_var(n: float, sx: float, sxx: float) -> tuple[float, float]:
    mean = sx / n
    var = max(sxx - n * mean * mean, 0.0) / (n - 1) if n > 1 else NAN
    return mean, var


def mean_interval(n: float, sx: float, sxx: float, confidence: float = 0.95) -> Estimate:
    """Mean and Student's t interval from n, Σx and Σx²."""
    if n <= 0:
        return Estimate(NAN, NAN, NAN, 0)
    mean, var = _mean_var(n, sx, sxx)
    if n < 2:
        return Estimate(mean, NAN, NAN, n)
    half = float(_st.t.ppf(0.5 + confidence / 2, n - 1)) * math.sqrt(var / n)
    return Estimate(mean, mean - half, mean + half, n)


def welch(n1, sx1, sxx1, n2, sx2, sxx2, confidence: float = 0.95) -> Difference:
    """Mean 1 − mean 2: Welch's t interval and test."""
    if n1 < 2 or n2 < 2:
        return Difference(NAN, NAN, NAN, NAN, NAN, "Welch t")
    m1, v1 = _mean_var(n1, sx1, sxx1)
    m2, v2 = _mean_var(n2, sx2, sxx2)
    a, b = v1 / n1, v2 / n2
    se = math.sqrt(a + b)
    d = m1 - m2
    if se == 0:
        return Difference(d, d, d, 0.0 if d == 0 else math.copysign(math.inf, d), 1.0 if d == 0 else 0.0, "Welch t")
    df = (a + b) ** 2 / (a * a / (n1 - 1) + b * b / (n2 - 1))
    t = d / se
    half = float(_st.t.ppf(0.5 + confidence / 2, df)) * se
    return Difference(d, d - half, d + half, t, float(2 * _st.t.sf(abs(t), df)), "Welch t")


def _ratio(n, sx, sy, sxx, syy, sxy) -> tuple[float, float]:
    """R = Σx/Σy and its delta-method standard error."""
    if n <= 0 or sy == 0:
        return NAN, NAN
    r = sx / sy
    if n < 2:
        return r, NAN
    mean_y = sy / n
    # the sample variance of the linearised values x − R·y (their mean is 0)
    var = max(sxx - 2 * r * sxy + r * r * syy, 0.0) / (n - 1)
    return r, math.sqrt(var / n) / abs(mean_y)


def ratio_estimate(n, sx, sy, sxx, syy, sxy, confidence: float = 0.95) -> Estimate:
    r, se = _ratio(n, sx, sy, sxx, syy, sxy)
    z = _z(confidence)
    return Estimate(r, r - z * se, r + z * se, n)


def ratio_difference(a: tuple, b: tuple, confidence: float = 0.95) -> Difference:
    """R_a − R_b of two independent ratios of sums, each given as (n, Σx, Σy, Σx², Σy², Σxy)."""
    ra, sa = _ratio(*a)
    rb, sb = _ratio(*b)
    if any(math.isnan(v) for v in (ra, sa, rb, sb)):
        return Difference(ra - rb, NAN, NAN, NAN, NAN, "z (delta method)")
    se = math.sqrt(sa * sa + sb * sb)
    d = ra - rb
    if se == 0:
        return Difference(d, d, d, 0.0, 1.0 if d == 0 else 0.0, "z (delta method)")
    z = _z(confidence)
    stat = d / se
    return Difference(d, d - z * se, d + z * se, stat, float(2 * _st.norm.sf(abs(stat))), "z (delta method)")


def poisson_interval(c: float, exposure: float, confidence: float = 0.95, per: float = 1.0) -> Estimate:
    """Rate c / exposure × per and the exact (Garwood) interval."""
    if exposure <= 0:
        return Estimate(NAN, NAN, NAN, exposure)
    alpha = 1 - confidence
    low = 0.0 if c == 0 else float(_st.chi2.ppf(alpha / 2, 2 * c)) / 2
    high = float(_st.chi2.ppf(1 - alpha / 2, 2 * c + 2)) / 2
    return Estimate(c / exposure * per, low / exposure * per, high / exposure * per, exposure)


def poisson_difference(c1, e1, c2, e2, confidence: float = 0.95, per: float = 1.0) -> Difference:
    """Rate 1 − rate 2 (× per): normal interval, exact conditional binomial test."""
    if e1 <= 0 or e2 <= 0:
        return Difference(NAN, NAN, NAN, NAN, NAN, "exact conditional (binomial)")
    d = (c1 / e1 - c2 / e2) * per
    se = math.sqrt(c1 / e1 ** 2 + c2 / e2 ** 2) * per
    z = _z(confidence)
    total = int(round(c1 + c2))
    p = 1.0 if total == 0 else float(_st.binomtest(int(round(c1)), total, e1 / (e1 + e2)).pvalue)
    stat = d / se if se else 0.0
    return Difference(d, d - z * se, d + z * se, stat, p, "exact conditional (binomial)")
