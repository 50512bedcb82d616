"""The demo's book reads plausibly to a collections manager: the mixes and rates the bundle
produces on the generated book lie in the ranges docs/models.md cites ("What the demo's
figures should look like"). A generator or ruleset change that pushes one outside fails here."""
import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from kernel import Kernel
from kernel.pipeline import Pipeline
from kernel.synth import DEFAULT_AS_OF, snapshot_at
from kernel.synth.outcomes import book_with_truth

N = 30_000


@pytest.fixture(scope="module")
def run():
    book, truth = book_with_truth(N, 0, DEFAULT_AS_OF)
    result = Pipeline(Kernel.load()).run(book, DEFAULT_AS_OF, snapshot_at(DEFAULT_AS_OF))
    return book, truth, result.decisions, result.actions


def _strings(column):
    return np.array(pc.cast(column, pa.string()).to_pylist(), dtype=object)


def _shares(values) -> dict:
    u, c = np.unique(values.astype(str), return_counts=True)
    return {k: v / len(values) for k, v in zip(u, c)}


def test_delinquency_headline(run):
    book = run[0]
    dpd = book["dpd"].to_numpy()
    assert 0.04 <= np.mean(dpd > 0) <= 0.10          # overdue, any DPD
    assert 0.02 <= np.mean(dpd > 30) <= 0.06         # 30+
    assert 0.008 <= np.mean(dpd > 90) <= 0.025       # 90+ (NY Fed: ≈ 2.6 % of auto balances 90+)


def test_reason_mix(run):
    book, _, d, _ = run
    late = book["dpd"].to_numpy() > 0
    mix = _shares(_strings(d["risk_segment.overdue_reason"])[late])
    assert mix.get("FRAUD", 0) <= 0.05, mix           # was 12.5 %
    assert 0.45 <= mix.get("CAPACITY", 0) <= 0.80, mix
    assert 0.03 <= mix.get("WILLINGNESS", 0) <= 0.20, mix
    assert 0.03 <= mix.get("OPERATIONAL", 0) <= 0.20, mix
    assert mix.get("DISPUTE", 0) <= 0.08 and mix.get("UNKNOWN", 0) <= 0.25, mix


def test_segments_follow_risk_not_the_bucket(run):
    book, _, d, _ = run
    seg = _strings(d["risk_segment.segment"])
    mix = _shares(seg)
    assert 0.50 <= mix["PRIME"] <= 0.72 and 0.12 <= mix["NEAR_PRIME"] <= 0.30, mix
    assert 0.05 <= mix["SUBPRIME"] <= 0.18 and 0.02 <= mix["DEEP_SUBPRIME"] <= 0.10, mix
    bucket = _strings(d["dpd_bucket.bucket"])
    # no bucket maps to one segment: M2 and M4+ accounts spread over at least two segments
    for b in (["M2"], ["M4", "M5", "M6", "M7"]):
        assert len(set(seg[np.isin(bucket, b)])) >= 2, b
    # and the book's worst tier is not just the overdue accounts
    assert np.mean(book["dpd"].to_numpy()[seg == "DEEP_SUBPRIME"] == 0) >= 0.1
    high = np.asarray(d["risk_segment.high_risk"].to_numpy(zero_copy_only=False), bool)
    assert book["debt_to_income"].to_numpy()[high].mean() < 0.9        # was 1.47


def test_vehicle_alert_rates(run):
    d = run[2]
    rate = {c.split(".", 1)[1]: float(np.mean(d[c].to_numpy(zero_copy_only=False)))
            for c in d.column_names if c.startswith("vehicle_alerts.") and pa.types.is_boolean(d[c].type)}
    assert rate["geofence_exit"] <= 0.03, rate                           # was 12 %
    assert 0.005 <= rate["gps_offline"] <= 0.05 and rate["gps_tampered"] <= 0.02, rate
    assert 0.01 <= rate["insurance_lapsed"] <= 0.06 and 0.04 <= rate["insurance_expiring"] <= 0.12, rate


def test_disposal_channel_mix(run):
    d = run[2]
    need = np.asarray(pc.or_(d["disposal.repossess"], d["disposal.dispose"]).to_numpy(zero_copy_only=False), bool)
    assert need.sum() >= 100
    channel = _strings(d["disposal_channel.channel"])[need]
    kind = np.where(np.char.find(channel.astype(str), "auction") >= 0, "AUCTION",
                    np.where(np.char.find(channel.astype(str), "dealer") >= 0, "DEALER", "OTHER"))
    mix = _shares(kind)
    assert 0.50 <= mix.get("AUCTION", 0) <= 0.90 and 0.08 <= mix.get("DEALER", 0) <= 0.45, mix   # was 94 % dealer


def test_defaulted_accounts_are_pd_one_by_rule_and_never_ranked_by_the_model(run):
    book, truth, d, _ = run
    dpd = book["dpd"].to_numpy()
    pd_ = d["early_warning.pd"].to_numpy()
    in_default = np.asarray(d["early_warning.in_default"].to_numpy(zero_copy_only=False), bool)
    assert np.array_equal(in_default, dpd > 60)
    assert np.all(pd_[in_default] == 1.0)
    assert np.array_equal(pd_[~in_default], d["pd_model.probability"].to_numpy()[~in_default])
    rules = d["early_warning.rule"].to_pylist()
    assert not any(r.startswith("pd_") for i in np.flatnonzero(in_default) for r in rules[i])
    # the model's PD means something for the accounts it scores: it ranks who defaults next
    from sklearn.metrics import roc_auc_score
    y = np.asarray(truth["default_6m"].to_numpy(zero_copy_only=False), bool)
    assert roc_auc_score(y[~in_default], pd_[~in_default]) > 0.85
    current = dpd == 0
    assert roc_auc_score(y[current], pd_[current]) > 0.8          # among current accounts too (≈ 0.89)


def test_us_accounts_are_a_us_market(run):
    book, _, _, actions = run
    us = _strings(book["country"]) == "US"
    assert np.all(_strings(book["currency"])[us] == "USD") and np.all(_strings(book["currency"])[~us] == "CNY")
    brands = set(_strings(book["brand"])[us])
    assert not brands & {"BYD", "Changan", "Geely", "NIO", "Li Auto", "Haval"}, brands
    assert {"Ford", "Chevrolet", "Toyota"} <= brands
    assert 15_000 <= np.median(book["purchase_price"].to_numpy()[us]) <= 60_000          # USD
    assert 300 <= np.median(book["installment_amount"].to_numpy()[us]) <= 1_000         # USD a month
    assert 3_000 <= np.median(book["monthly_income"].to_numpy()[us]) <= 9_000
    assert np.all(book["penalty_rate_daily"].to_numpy()[us] == 0)                      # a late fee, not 罚息
    # within the 10-day grace period no late fee has been charged
    early = us & (book["dpd"].to_numpy() > 0) & (book["dpd"].to_numpy() <= 10)
    assert early.any() and np.all(book["penalty_interest"].to_numpy()[early] == 0)
    zones = set(_strings(book["time_zone"])[us])
    assert zones and all(z.startswith("America/") for z in zones)
    # scripts: amounts in dollars only, and what the contract calls the charge
    acts = actions.filter(pc.equal(pc.cast(actions["language"], pa.string()), "en"))
    scripts = [s for s in acts["script"].to_pylist() if s]
    assert scripts and all("¥" not in s and "CNY" not in s and "penalty interest" not in s for s in scripts)
    assert any("late fees of $" in s for s in scripts)


#: the precision of each inferred overdue reason on the simulated truth, as docs/models.md
#: documents it (seed 0, 30,000 accounts), less a margin for the smaller sample
PRECISION_AT_LEAST = {"CAPACITY": 0.90, "WILLINGNESS": 0.50, "OPERATIONAL": 0.85, "DISPUTE": 0.90, "FRAUD": 0.80}


def test_inferred_reasons_against_the_simulated_truth(run):
    book, truth, d, _ = run
    late = book["dpd"].to_numpy() > 0
    inferred = _strings(d["risk_segment.overdue_reason"])[late]
    true = np.array(truth["overdue_cause"].to_pylist(), dtype=object)[late]
    assert not np.any(true == "NONE")                     # every overdue account has a cause
    for reason, floor in PRECISION_AT_LEAST.items():
        chosen = inferred == reason
        assert chosen.sum() >= 10, reason
        precision = float(np.mean(true[chosen] == reason))
        assert precision >= floor, (reason, precision)
    assert np.mean(inferred == "UNKNOWN") <= 0.2


def test_roll_rate_m1_to_m2(run):
    book = run[0]
    bucket = lambda d: np.minimum(np.ceil(d / 30), 7)                    # noqa: E731
    now, then = bucket(book["dpd"].to_numpy()), bucket(book["dpd_30d_ago"].to_numpy())
    m1 = then == 1
    assert m1.sum() >= 300
    assert 0.08 <= np.mean(now[m1] == 2) <= 0.25                          # published: 10–20 % a month


#: recovery on the cars sent to repossession or sale (net proceeds up to the exposure, over the
#: exposure), by currency: S&P's U.S. Auto Loan ABS Tracker reports prime recoveries of 56–61 %
#: (February–March 2025) and subprime ones near 42 % (December 2011); the issue asks 40–75 %.
#: The US bound is a little lower for the sample: ≈ 150 US cars in 30,000 accounts
RECOVERY = {"CNY": (0.40, 0.75), "USD": (0.33, 0.70)}
#: share of those cars whose expected net proceeds exceed the debt (a surplus to the debtor):
#: at most a fifth, since a borrower with equity sells or refinances (version 1: 80 % of the
#: Chinese cars)
SURPLUS_AT_MOST = {"CNY": 0.20, "USD": 0.20}


def test_recovery_on_repossessed_cars_in_published_ranges(run):
    """Balances amortised from origination, defaults drawn with their real risk factors (low
    down payment, long term, early in the loan) and neglected cars: the recovery on the cars
    sent to repossession or sale is that of real repossessions (≈ 40–75 % of the balance,
    docs/models.md), not more than the debt (version 1: 132 %)."""
    book, _, d, _ = run
    need = np.asarray(pc.or_(d["disposal.repossess"], d["disposal.dispose"]).to_numpy(zero_copy_only=False), bool)
    col = lambda t, n: np.nan_to_num(t[n].to_numpy(zero_copy_only=False).astype(np.float64))   # noqa: E731
    exposure = col(book, "outstanding_principal") + col(book, "overdue_interest") + col(book, "penalty_interest")
    net = col(d, "disposal_channel.expected_net")
    cur = _strings(book["currency"])
    for c in ("CNY", "USD"):
        m = need & (cur == c)
        assert m.sum() >= 20, c
        recovery = np.minimum(np.maximum(net[m], 0), exposure[m]).sum() / exposure[m].sum()
        assert RECOVERY[c][0] <= recovery <= RECOVERY[c][1], (c, recovery)
        assert np.mean(net[m] > exposure[m]) <= SURPLUS_AT_MOST[c], (c, np.mean(net[m] > exposure[m]))


def test_promises_to_pay_kept_and_broken_by_the_path(run):
    """Promises come from conversations and are kept or broken by the path's own payments
    (kernel.synth.collection): of the promises closed in 90 days, 40–75 % kept (vendors put
    30–50 % of promises never kept, docs/models.md); an open promise on a minority of the
    overdue accounts, none on an account never overdue."""
    book = run[0]
    col = lambda name: book[name].to_numpy()  # noqa: E731
    kept, broken = col("promises_kept_90d").sum(), col("promises_broken_90d").sum()
    assert kept + broken > 1_000
    assert 0.40 <= kept / (kept + broken) <= 0.75, (kept, broken)
    dpd = col("dpd")
    open_promise = book["promise_date"].is_valid().to_numpy(zero_copy_only=False)
    assert 0.10 <= open_promise[dpd > 0].mean() <= 0.40
    never = (dpd == 0) & (col("times_overdue_12m") == 0) & (col("max_dpd_12m") == 0)
    assert never.sum() > 1_000 and col("promises_made_90d")[never].sum() == 0
    # contacts by tier: the early-stage accounts got SMS or voice-bot calls, not field visits
    assert (col("calls_7d")[(dpd > 0) & (dpd <= 10)] > 0).mean() > 0.3
