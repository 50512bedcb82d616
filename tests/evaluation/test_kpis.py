"""Each KPI on a hand-computed example (docs/evaluation.md, "KPIs")."""
from __future__ import annotations

import math

import pytest

from kernel.evaluation.kpis import Settings, evaluate, summarize

from .helpers import action, at, day, event, part, snap

SETTINGS = Settings(cure_days=2)
END = day(3)


def example():
    """A, B: CHAMPION; C, D: CHALLENGER (D never overdue). Days 0–3, decisions at 02:00."""
    snapshots = []
    for k, dpd in enumerate((5, 6, 0, 0)):
        snapshots.append(snap("A", k, dpd, then="M1" if k == 3 else None))
    for k, dpd in enumerate((40, 41, 42, 43)):
        snapshots.append(snap("B", k, dpd, outstanding=20_000.0, then="M1" if k == 3 else None))
    for k, dpd in enumerate((0, 3, 4, 0)):
        snapshots.append(snap("C", k, dpd, arm="CHALLENGER"))
    for k in range(4):
        snapshots.append(snap("D", k, 0, arm="CHALLENGER"))
    actions = [action("A", 0, "SMS"), action("A", 0, "VOICE_BOT", "DEFER"), action("B", 0, "FIELD_VISIT"),
               action("B", 0, "PHONE", "BLOCK"), action("C", 1, "SMS")]
    events = [
        event("A", "CONTACT_ATTEMPT", at(0, 3), channel="SMS", outcome="DELIVERED", agent="sms-gateway"),
        event("A", "CONTACT_ATTEMPT", at(0, 10), channel="PHONE", outcome="RIGHT_PARTY", agent="alice"),
        event("A", "PROMISE_TO_PAY", at(0, 10, 5), amount=500.0, promise_date=day(1), agent="alice"),
        event("A", "PAYMENT", at(1, 9), amount=300.0, agent="payments"),
        event("A", "PAYMENT", at(1, 20), amount=250.0, agent="payments"),
        event("B", "CONTACT_ATTEMPT", at(0, 11), channel="PHONE", outcome="NO_ANSWER", agent="alice"),
        event("B", "CONTACT_ATTEMPT", at(1, 11), channel="PHONE", outcome="WRONG_PARTY", agent="bob"),
        event("B", "CONTACT_ATTEMPT", at(2, 15), channel="FIELD_VISIT", outcome="RIGHT_PARTY", agent="carol"),
        event("B", "COMPLAINT_OPENED", at(2, 16)),
        event("B", "REPOSSESSED", at(3, 5), agent="recovery-agency"),
        event("B", "VEHICLE_SOLD", at(3, 6), amount=12_000.0, agent="auction"),
        event("C", "CONTACT_ATTEMPT", at(0, 9), channel="PHONE", outcome="NO_ANSWER", agent="bob"),  # before entry
        event("C", "CONTACT_ATTEMPT", at(1, 10), channel="PHONE", outcome="RIGHT_PARTY", agent="bob"),
        event("C", "PROMISE_TO_PAY", at(1, 12), amount=1000.0, promise_date=day(2), agent="bob"),
        event("C", "PAYMENT", at(2, 10), amount=400.0, agent="payments"),
        event("D", "PAYMENT", at(2, 10), amount=999.0, agent="payments"),                          # not in collections
    ]
    return part(snapshots, actions, events)


@pytest.fixture(scope="module")
def figures():
    return summarize(evaluate([example()], SETTINGS, END), SETTINGS, END)


def kpi(figures, name, arm="CHAMPION"):
    return figures["kpis"][name]["by_arm"][arm]


def by(figures, name, dim, arm, value):
    return next(r for r in figures["kpis"][name]["by"][dim] if r["arm"] == arm and r["group"] == value)


def test_contact_and_right_party_contact_rates(figures):
    # CHAMPION dialled: A phone RP, B phone no answer, B phone wrong party, B field visit RP
    assert (kpi(figures, "contact_rate")["k"], kpi(figures, "contact_rate")["n"]) == (3, 4)
    assert (kpi(figures, "rpc_rate")["k"], kpi(figures, "rpc_rate")["n"]) == (2, 4)
    # C's call before it was overdue is nobody's: not attributed
    assert (kpi(figures, "rpc_rate", "CHALLENGER")["k"], kpi(figures, "rpc_rate", "CHALLENGER")["n"]) == (1, 1)
    assert (by(figures, "rpc_rate", "channel", "CHAMPION", "PHONE")["k"],
            by(figures, "rpc_rate", "channel", "CHAMPION", "PHONE")["n"]) == (1, 3)
    assert by(figures, "rpc_rate", "agent", "CHAMPION", "alice")["n"] == 2
    assert by(figures, "rpc_rate", "tier", "CHAMPION", "SEVERE")["n"] == 3
    assert figures["counts"]["events:unattributed"] == [1.0]


def test_promise_and_promise_kept_rates(figures):
    # A promised 5 minutes after its right-party call; B's field visit brought no promise
    assert (kpi(figures, "promise_rate")["k"], kpi(figures, "promise_rate")["n"]) == (1, 2)
    assert (kpi(figures, "promise_rate", "CHALLENGER")["k"], kpi(figures, "promise_rate", "CHALLENGER")["n"]) == (1, 1)
    # A paid 300 + 250 ≥ 500 by its date plus a day's grace; C paid 400 of 1,000
    assert (kpi(figures, "promise_kept_rate")["k"], kpi(figures, "promise_kept_rate")["n"]) == (1, 1)
    assert (kpi(figures, "promise_kept_rate", "CHALLENGER")["k"],
            kpi(figures, "promise_kept_rate", "CHALLENGER")["n"]) == (0, 1)


def test_cure_rate_within_the_window(figures):
    # A overdue day 0, M0 on day 2 (2 days: cured); B never; C overdue day 1, M0 day 3
    assert (kpi(figures, "cure_rate")["k"], kpi(figures, "cure_rate")["n"]) == (1, 2)
    assert (kpi(figures, "cure_rate", "CHALLENGER")["k"], kpi(figures, "cure_rate", "CHALLENGER")["n"]) == (1, 1)
    assert by(figures, "cure_rate", "bucket", "CHAMPION", "M2")["k"] == 0


def test_roll_rates_by_count_and_balance(figures):
    # at the end date: A M1 → M0, B M1 → M2 (20,000 of 30,000 rolled); C, D M0 → M0
    assert (kpi(figures, "roll_forward_rate")["k"], kpi(figures, "roll_forward_rate")["n"]) == (1, 2)
    assert kpi(figures, "roll_forward_balance.CNY")["value"] == pytest.approx(20_000 / 30_000)
    assert (kpi(figures, "roll_forward_rate", "CHALLENGER")["k"], kpi(figures, "roll_forward_rate", "CHALLENGER")["n"]) \
        == (0, 2)
    assert figures["rolls"]["count"][1][2] == 1 and figures["rolls"]["count"][0][0] == 2
    assert figures["rolls"]["balance"]["CNY"][1][2] == 20_000


def test_amount_collected_cost_and_recovery(figures):
    assert kpi(figures, "collected.CNY")["value"] == 550 and kpi(figures, "collected.CNY", "CHALLENGER")["value"] == 400
    per = kpi(figures, "collected_per_account.CNY")
    assert (per["value"], per["n"]) == (275, 2)                  # A 550, B 0
    # kept actions: A's SMS (0.05), B's field visit (80); C's SMS
    assert kpi(figures, "cost_per_collected.CNY")["value"] == pytest.approx(80.05 / 550)
    assert kpi(figures, "cost_per_collected.CNY", "CHALLENGER")["value"] == pytest.approx(0.05 / 400)
    assert kpi(figures, "recovery_rate.CNY")["value"] == pytest.approx(12_000 / 20_000)
    assert figures["counts"]["sold.CNY:cars"][:3] == [1, 12_000, 20_000]
    assert figures["counts"]["disposal:repossessed"][0] == 1


def test_complaints_blocks_and_deferrals(figures):
    # CHAMPION: 5 contact attempts of any channel (A's SMS and call, B's three), 1 complaint
    c = kpi(figures, "complaints_per_10k")
    assert (c["k"], c["n"], c["value"]) == (1, 5, 2000)
    assert (kpi(figures, "block_rate")["k"], kpi(figures, "block_rate")["n"]) == (1, 4)
    assert (kpi(figures, "defer_rate")["k"], kpi(figures, "defer_rate")["n"]) == (1, 4)
    assert by(figures, "block_rate", "channel", "CHAMPION", "PHONE")["k"] == 1


def test_differences_against_the_control_arm(figures):
    d = kpi(figures, "cure_rate", "CHALLENGER")["vs_control"]
    assert d["value"] == pytest.approx(1 - 0.5)
    assert d["low"] < d["value"] < d["high"] and 0 < d["p"] <= 1
    assert "vs_control" not in kpi(figures, "cure_rate")
    assert figures["control"] == "CHAMPION" and figures["arms"] == ["CHAMPION", "CHALLENGER"]


def test_series_and_vintages(figures):
    assert figures["series"]["dates"] == [str(day(k)) for k in range(4)]
    overdue = figures["series"]["overdue"]
    assert [o[1] for o in overdue] == [2, 3, 2, 1]               # accounts with dpd ≥ 1 by day
    assert overdue[0][0] == 4
    v = [r for r in figures["vintage"] if r["as_of"] == str(day(3))]
    assert v == [{"month": "2024-05", "as_of": str(day(3)), "mob": 30, "accounts": 4, "thirty_plus": 1}]


def test_settings_are_checked():
    from kernel.errors import PostloanError
    with pytest.raises(PostloanError, match=r"\[evaluation\] 'cure_dayz': unknown setting"):
        Settings.from_config({"evaluation": {"cure_dayz": 3}})
    with pytest.raises(PostloanError, match=r"\[evaluation.costs\] 'FAX' is not an action"):
        Settings.from_config({"evaluation": {"costs": {"FAX": 1}}})
    with pytest.raises(PostloanError, match="confidence must be a number in"):
        Settings.from_config({"evaluation": {"confidence": 1.5}})
    costs = Settings.from_config({"evaluation": {"costs": {"SMS": 0.1, "USD": {"PHONE": 2.5}}}}).costs
    assert costs["CNY"]["SMS"] == 0.1 and costs["USD"]["PHONE"] == 2.5 and costs["USD"]["SMS"] == 0.01
    with pytest.raises(PostloanError, match=r"\[evaluation.costs.USD\] 'FAX' is not an action"):
        Settings.from_config({"evaluation": {"costs": {"USD": {"FAX": 1}}}})
    with pytest.raises(PostloanError, match=r"\[evaluation.costs.USD\] must be a table"):
        Settings.from_config({"evaluation": {"costs": {"USD": 3}}})
    assert math.isclose(Settings.from_config(None).attribution_days, 7)
