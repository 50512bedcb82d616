"""Money is never added across currencies (docs/evaluation.md, "Currencies"): the book's
``currency`` travels into the snapshots, every KPI of money is computed per currency, and the
report prints each amount with its own currency's symbol."""
from __future__ import annotations

import datetime as dt
import re

import pyarrow as pa
import pytest

from kernel.evaluation.kpis import Settings, evaluate, summarize
from kernel.evaluation.records import SNAPSHOT, snapshot, with_currency
from kernel.evaluation.report import render

from .helpers import action, at, day, event, part, snap

SETTINGS = Settings(cure_days=2)
END = day(3)


def example():
    """Two accounts in collections in one arm, the same amounts in two currencies: A in CNY
    (a car sold too), U in USD; both roll from M1 to M2 on the end date."""
    snapshots = []
    for k, dpd in enumerate((20, 25, 28, 35)):
        snapshots.append(snap("A", k, dpd, outstanding=40_000.0, then="M1" if k == 3 else None, valuation_price=30_000.0,
                              repossess=k == 3, disposal_channel="online_auction", expected_net=25_000.0,
                              gps_offline=k == 3))
        snapshots.append(snap("U", k, dpd, outstanding=3_000.0, then="M1" if k == 3 else None, country="US",
                              currency="USD", valuation_price=2_000.0, repossess=k == 3,
                              disposal_channel="online_auction", expected_net=1_500.0, gps_offline=k == 3))
    actions = [action("A", 0, "PHONE"), action("U", 0, "PHONE"), action("U", 1, "FIELD_VISIT")]
    events = [event("A", "PAYMENT", at(1, 9), amount=500.0), event("U", "PAYMENT", at(1, 9), amount=70.0),
              event("A", "VEHICLE_SOLD", at(3, 6), amount=30_000.0), event("U", "VEHICLE_SOLD", at(3, 6), amount=2_400.0)]
    return part(snapshots, actions, events)


@pytest.fixture(scope="module")
def figures():
    return summarize(evaluate([example()], SETTINGS, END), SETTINGS, END)


def value(figures, name):
    return figures["kpis"][name]["by_arm"]["CHAMPION"]


def test_money_kpis_are_per_currency(figures):
    assert figures["currencies"] == ["CNY", "USD"]
    assert "collected" not in figures["kpis"]                     # no figure adds the two up
    assert value(figures, "collected.CNY")["value"] == 500 and value(figures, "collected.USD")["value"] == 70
    assert value(figures, "collected_per_account.USD")["n"] == 1
    # costs in each account's currency: CNY phone 3; USD phone 1.5 and field visit 60
    assert value(figures, "cost_per_collected.CNY")["value"] == pytest.approx(3 / 500)
    assert value(figures, "cost_per_collected.USD")["value"] == pytest.approx(61.5 / 70)
    assert value(figures, "recovery_rate.CNY")["value"] == pytest.approx(30_000 / 40_000)
    assert value(figures, "recovery_rate.USD")["value"] == pytest.approx(2_400 / 3_000)
    assert value(figures, "roll_forward_balance.USD")["x"] == 3_000
    assert figures["kpis"]["collected.USD"]["unit"] == "USD" and figures["kpis"]["collected.USD"]["label"].endswith("(USD)")
    # counts are not money: one figure for both
    assert (value(figures, "roll_forward_rate")["k"], value(figures, "roll_forward_rate")["n"]) == (2, 2)


def test_series_rolls_and_disposal_are_per_currency(figures):
    s = figures["series"]
    assert s["overdue_balance"]["CNY"][-1] == [40_000, 40_000] and s["overdue_balance"]["USD"][-1] == [3_000, 3_000]
    assert s["balance"]["USD"][-1][2] == 3_000 and s["balance"]["CNY"][-1][2] == 40_000
    assert figures["rolls"]["balance"]["CNY"][1][2] == 40_000 and figures["rolls"]["balance"]["USD"][1][2] == 3_000
    assert figures["rolls"]["count"][1][2] == 2
    c = figures["counts"]
    assert c["sold.CNY:cars"][:3] == [1, 30_000, 40_000] and c["sold.USD:cars"][:3] == [1, 2_400, 3_000]
    assert c["recommended.CNY:online_auction"] == [1, 25_000, 30_000]
    assert c["recommended.USD:online_auction"] == [1, 1_500, 2_000]
    assert {r["account_id"]: r["currency"] for r in figures["vehicle_alerts"]} == {"A": "CNY", "U": "USD"}


def test_the_report_prints_each_amount_in_its_currency(figures):
    text = render(figures)
    assert "$70" in text and "¥500" in text
    assert "¥570" not in text and "$570" not in text                 # never the sum of the two
    assert "¥43,000" not in text and "$43,000" not in text
    assert re.search(r"¥40,000 · \$3,000", text)                     # outstanding, each on its own
    assert "$3,000" in text and "¥3,000" not in text                 # U's balance in dollars only
    assert "$2,400" in text and "¥2,400" not in text                 # U's sale
    assert 'data-chart="roll-rates-balance-CNY"' in text and 'data-chart="roll-rates-balance-USD"' in text
    assert "amount collected (USD)" in text and "amount collected (CNY)" in text


def test_snapshots_carry_the_currency_and_the_decided_pd():
    book = pa.table({"account_id": ["A", "U", "V"], "country": ["CN", "US", "US"],
                     "currency": pa.array(["CNY", "USD", None]).dictionary_encode(), "dpd": [0, 400, 3]})
    decisions = pa.table({"pd_model.probability": [0.1, 0.2, 0.3], "early_warning.pd": [0.1, 1.0, 0.3]})
    t = snapshot(book, decisions, dt.date(2026, 11, 28), dt.datetime(2026, 11, 28, 2, tzinfo=dt.timezone.utc))
    assert t.schema.equals(SNAPSHOT)
    assert t["currency"].to_pylist() == ["CNY", "USD", "USD"]         # null: the country's
    assert t["pd"].to_pylist() == [0.1, 1.0, 0.3]                     # what the bundle decides on, not the raw model


def test_runs_stored_before_the_currency_column_read_it_from_the_country():
    old = pa.table({"account_id": ["A", "U"], "country": ["CN", "US"], "dpd": [1, 2]})
    assert with_currency(old)["currency"].to_pylist() == ["CNY", "USD"]
    assert with_currency(old).column_names == ["account_id", "country", "currency", "dpd"]
