"""Valuation: the depreciation curve and the disposal-channel selector on worked examples."""
from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from kernel.errors import PostloanError
from kernel.hookspecs import Batch, DisposalChannel
from kernel.pipeline import disposal_economics, select_disposal_channels, vehicle_age_years
from plugin_helpers import utc

DAY0 = dt.date(1970, 1, 1)


def days(d: dt.date) -> int:
    return (d - DAY0).days


def car(**kw):
    base = {"brand": "Toyota", "model_year": 2024, "contract_date": np.datetime64("2024-01-01", "D"),
            "mileage_km": 30_000.0, "condition_grade": "B", "purchase_price": 200_000.0}
    base.update(kw)
    return base


def value(method, cars, as_of):
    cols = {k: np.array([c[k] for c in cars], dtype=object if isinstance(cars[0][k], str) else None) for k in cars[0]}
    cols["contract_date"] = np.array([c["contract_date"] for c in cars], "datetime64[D]")
    batch = Batch(len(cars), as_of, utc(2026, 1, 1), [cols])
    return method.value(batch, np.arange(len(cars)))


@pytest.fixture(scope="module")
def curve(manager):
    return manager.valuation_methods()["depreciation_curve"]


def test_vehicle_age_counts_from_the_first_of_january_of_the_model_year():
    ages = vehicle_age_years(np.array([2024, 2024, 2027]), np.array([days(dt.date(2026, 1, 1)), days(dt.date(2026, 7, 2)),
                                                                    days(dt.date(2026, 7, 2))]))
    assert ages[0] == pytest.approx(2.0)
    assert ages[1] == pytest.approx(2 + 182 / 365)
    assert ages[2] == 0.0                                 # next year's model: not negative


def test_depreciation_curve_worked_example(curve):
    # Toyota loses 10 % a year; two years since purchase; expected mileage (2 × 15,000); grade B 0.95
    got = value(curve, [car()], dt.date(2026, 1, 1))
    assert got[0] == pytest.approx(200_000 * 0.9 ** 2 * 1.0 * 0.95)          # 153,900


def test_depreciation_applies_only_since_the_purchase(curve):
    # a used 2020 car bought on 2024-01-01 at 100,000: two years of depreciation, not six
    got = value(curve, [car(model_year=2020, purchase_price=100_000.0, mileage_km=90_000.0, condition_grade="A")],
                dt.date(2026, 1, 1))
    assert got[0] == pytest.approx(100_000 * 0.9 ** 2)                     # 90,000 km = 6 years × 15,000


def test_mileage_and_condition_move_the_value(curve):
    base, high_km, low_km, grade_e, unknown_brand = value(curve, [
        car(), car(mileage_km=70_000.0), car(mileage_km=0.0), car(condition_grade="E"), car(brand="Unknown Motors"),
    ], dt.date(2026, 1, 1))
    assert high_km == pytest.approx(base * (1 - 0.02 * 4) / 1.0)            # 40,000 km over: −8 %
    assert low_km == pytest.approx(base / 1.0 * 1.05)                        # 30,000 km under: +6 %, capped at +5 %
    assert grade_e == pytest.approx(base / 0.95 * 0.45)
    assert unknown_brand == pytest.approx(200_000 * 0.84 ** 2 * 0.95)       # default rate 16 %


def test_every_catalogue_brand_has_a_depreciation_rate(curve):
    from kernel.synth import catalogue
    assert {b[0] for b in catalogue.ALL_BRANDS} <= set(curve.rates)


CHANNELS = [
    DisposalChannel("auction", "AUCTION", price_factor=0.96, success_rate=0.82, fee_rate=0.03, fee_fixed=600,
                    transport_cost=900, expected_days=14, holding_cost_per_day=60, max_age_years=12,
                    conditions=("A", "B", "C", "D")),
    DisposalChannel("dealer", "DEALER", price_factor=0.88, success_rate=0.97, fee_fixed=300, transport_cost=400,
                    expected_days=5, holding_cost_per_day=60, max_age_years=8, conditions=("A", "B", "C")),
    DisposalChannel("leasing", "LEASING", price_factor=0.94, success_rate=0.90, fee_rate=0.01, fee_fixed=500,
                    transport_cost=1000, expected_days=10, holding_cost_per_day=60, max_age_years=3,
                    max_mileage_km=60_000, conditions=("A", "B")),
    DisposalChannel("dismantler", "DISMANTLING", price_factor=0.25, success_rate=0.99, transport_cost=800,
                    expected_days=4, holding_cost_per_day=60),
    DisposalChannel("us_auction", "AUCTION", price_factor=0.95, success_rate=0.85, fee_rate=0.02, fee_fixed=300,
                    transport_cost=400, expected_days=18, holding_cost_per_day=40, countries=("US",)),
]


def select(price, age, km, grade, country="CN", channels=CHANNELS):
    idx, net, days_ = select_disposal_channels(np.array([price], float), np.array([age], float), np.array([km], float),
                                               np.array([grade], dtype=object), np.array([country], dtype=object),
                                               channels)
    return (channels[idx[0]].name if idx[0] >= 0 else None), net[0], days_[0]


def by_attempts(price, c, attempts=400):
    """Expected net proceeds and days to cash summed attempt by attempt (an independent reading
    of the relisting model): attempt k happens if the k before did not sell, costs the relist
    fee (k ≥ 1), the holding and the cost of funds of its days, and sells at a price
    relist_price_drop lower each time."""
    s, net, days, reach = c.success_rate, -c.transport_cost, 0.0, 1.0
    realized = price * c.price_factor
    relist = c.fee_fixed if c.relist_cost is None else c.relist_cost
    for k in range(attempts):
        if k:
            net -= reach * relist
        net -= reach * (c.holding_cost_per_day * c.expected_days
                        + realized * c.capital_cost_per_year * c.expected_days / 365)
        days += reach * c.expected_days
        sold = reach * s
        net += sold * (realized * (1 - c.relist_price_drop) ** k * (1 - c.fee_rate) - c.fee_fixed)
        reach *= 1 - s
    return net, days


def test_the_formula_is_the_sum_over_relistings():
    for c in CHANNELS + [dataclasses.replace(CHANNELS[0], relist_price_drop=0.05, capital_cost_per_year=0.06,
                                             relist_cost=250.0)]:
        for price in (5_000.0, 30_000.0, 100_000.0):
            net, days = disposal_economics(np.array([price]), c)
            want_net, want_days = by_attempts(price, c)
            assert net[0] == pytest.approx(want_net, rel=1e-9) and days[0] == pytest.approx(want_days, rel=1e-9)


def test_an_unsold_auction_relists_instead_of_recovering_nothing():
    # auction, 100,000: sells first time with 0.82; relisted until sold (no price drop here):
    #   96,000 × 0.97 − 600 − 900 − 600 × 0.18/0.82 − 60 × 14/0.82 = 90,317.1
    # the old reading (an unsold car recovers nothing) gave 73,500 and lost every car to the dealer
    net, days = disposal_economics(np.array([100_000.0]), CHANNELS[0])
    assert net[0] == pytest.approx(96_000 * 0.97 - 600 - 900 - 600 * 0.18 / 0.82 - 60 * 14 / 0.82)
    assert days[0] == pytest.approx(14 / 0.82)
    never = dataclasses.replace(CHANNELS[0], success_rate=0.0)
    assert disposal_economics(np.array([100_000.0]), never)[0][0] == -np.inf


def test_dear_car_goes_to_auction_cheap_car_to_the_dealer():
    # 100,000, 2 years, grade A: auction 90,317 beats dealer 84,378 (88,000 − 300 − 400 − 9 − 309)
    name, net, days_ = select(100_000, 2, 70_000, "A")
    assert name == "auction" and days_ == pytest.approx(14 / 0.82)
    # 15,000: the auction's fixed costs and wait outweigh its better price
    name, net, days_ = select(15_000, 5, 90_000, "B")
    assert name == "dealer" and net == pytest.approx(disposal_economics(np.array([15_000.0]), CHANNELS[1])[0][0])


def test_leasing_wins_when_its_price_outweighs_its_wait():
    leasing_friendly = [DisposalChannel("dealer", "DEALER", price_factor=0.80, success_rate=0.97,
                                        fee_fixed=300, transport_cost=400, expected_days=5,
                                        holding_cost_per_day=60), CHANNELS[2]]
    name, net, _ = select(100_000, 2, 40_000, "A", channels=leasing_friendly)
    assert name == "leasing" and net == pytest.approx(by_attempts(100_000, CHANNELS[2])[0])
    # the same car with 70,000 km is beyond the leasing company's limit
    name, net, _ = select(100_000, 2, 70_000, "A", channels=leasing_friendly)
    assert name == "dealer" and net == pytest.approx(by_attempts(100_000, leasing_friendly[0])[0])


def test_old_car_goes_to_auction():
    # 10 years: too old for dealer and leasing
    name, net, _ = select(30_000, 10, 180_000, "C")
    assert name == "auction" and net == pytest.approx(by_attempts(30_000, CHANNELS[0])[0])


def test_salvage_goes_to_the_dismantler_even_at_a_small_net():
    # grade E: no auction, dealer or leasing; dismantler 1,250 − 800 − 60 × 4/0.99 (it sells 99 %, relists the rest)
    name, net, _ = select(5_000, 14, 250_000, "E")
    assert name == "dismantler" and net == pytest.approx(1_250 - 800 - 60 * 4 / 0.99)


def test_channels_serve_their_own_countries():
    name, net, _ = select(20_000, 3, 50_000, "B", country="US",
                          channels=[CHANNELS[4], DisposalChannel("cn_only", "DEALER", 1.0, 1.0, countries=("CN",))])
    assert name == "us_auction" and net == pytest.approx(by_attempts(20_000, CHANNELS[4])[0])


def test_shipped_channels_give_a_plausible_mix():
    """On the shipped channel data, cars across the range of prices and ages: auctions take
    most, dealers the cheap and mid-priced young ones, no channel everything."""
    from postloan_builtins.valuation import load_channels
    channels = load_channels()
    rng = np.random.default_rng(5)
    n = 4000
    price = np.exp(rng.normal(np.log(80_000), 0.6, n))
    age = rng.uniform(0.5, 9, n)
    km = age * 16_000
    grade = np.array(list("ABCD"), dtype=object)[np.clip((age / 3).astype(int), 0, 3)]
    idx, net, _ = select_disposal_channels(price, age, km, grade, np.full(n, "CN", dtype=object), channels)
    kinds = np.array([channels[i].kind for i in idx])
    share = {k: float(np.mean(kinds == k)) for k in DisposalChannel.KINDS}
    assert 0.5 <= share["AUCTION"] <= 0.9 and 0.08 <= share["DEALER"] <= 0.45, share
    assert np.all(net > 0)


def test_no_price_or_no_channel_gives_no_recommendation():
    assert select(float("nan"), 2, 10_000, "A")[0] is None
    assert select(10_000, 30, 10_000, "E", channels=CHANNELS[:3])[0] is None


def test_the_shipped_channel_data_loads_and_covers_every_kind(manager):
    channels = manager.disposal_channels()
    assert {c.kind for c in channels.values()} == set(DisposalChannel.KINDS)
    assert all(0 < c.success_rate <= 1 and c.holding_cost_per_day is not None for c in channels.values())


def test_bad_channel_data_is_named(tmp_path):
    from postloan_builtins.valuation import load_channels
    path = tmp_path / "channels.toml"
    path.write_text('[[channel]]\nname = "x"\nkind = "PAWNSHOP"\nprice_factor = 1\nsuccess_rate = 1\n', "utf-8")
    with pytest.raises(PostloanError, match=r"channels.toml: disposal channel 'x': kind must be one of AUCTION"):
        load_channels(path)
    path.write_text('[[channel]]\nname = "x"\nkind = "DEALER"\nprice_factor = 1\nsuccess_rate = 1.5\n', "utf-8")
    with pytest.raises(PostloanError, match=r"channel 'x': success_rate must be a number in \[0, 1\], got 1.5$"):
        load_channels(path)
    path.write_text('[[channel]]\nname = "x"\nkind = "DEALER"\nprice_factor = 1\n', "utf-8")
    with pytest.raises(PostloanError, match=r"channels.toml: channel 'x': missing success_rate$"):
        load_channels(path)
    path.write_text('[[channel]]\nname = "x"\nkind = "DEALER"\nprice_factor = 1\nsuccess_rate = 1\nconditions = "AB"\n')
    with pytest.raises(PostloanError, match=r"conditions must be a list of condition_grade members, got 'AB'$"):
        load_channels(path)


# --- the residual-value model ----------------------------------------------------------------

def test_rv_model_scores_the_books_cars_like_onnxruntime(manager, small_book):
    """Built without the bundle (no rv_model.price column): compiled with kernel.compile_model
    and scored on a feature matrix built from the batch, equal to onnxruntime on a matrix built
    row by row in plain Python."""
    method = manager.valuation_methods()["rv_model"]
    book = small_book.slice(0, 400)
    batch = Batch(book.num_rows, dt.date(2026, 11, 28), utc(2026, 11, 28), [book])
    rows = np.arange(0, 400, 3)
    got = method.value(batch, rows)
    model = method._compiled()
    records = book.to_pylist()
    for rec in records:         # the age rulesets/vehicle_profile.yaml gives the model: year − model year, ≥ 0
        rec["vehicle_profile.age_years"] = max(2026 - rec["model_year"], 0)
    reference = np.array([[float(records[r][f.name]) if f.kind != "category" else
                           (f.categories.index(records[r][f.name]) if records[r][f.name] in f.categories else -1)
                           for f in model.inputs] for r in rows], np.float32)
    expected = model.run_matrix(reference)[:, [o.name for o in model.outputs].index("price")]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert np.all(got > 0)
    # an unknown brand is category −1, not an error
    odd = book.set_column(book.schema.get_field_index("brand"), "brand", pa.array(["Lada"] * 400))
    assert np.isfinite(method.value(Batch(400, dt.date(2026, 11, 28), utc(2026, 11, 28), [odd]), rows)).all()


def test_rv_model_reuses_the_bundles_price(manager):
    method = manager.valuation_methods()["rv_model"]
    batch = Batch(3, dt.date(2026, 11, 28), utc(2026, 11, 28), [{"rv_model.price": np.array([1.0, np.nan, 3.0])}])
    got = method.value(batch, np.array([0, 2]))
    assert got.tolist() == [1.0, 3.0]


def test_vehicle_age_is_fractional_years_since_the_first_of_january_of_the_model_year():
    # the guide: "a 2020 car is 6.91 years old on 2026-11-28, so max_age_years = 6 refuses it"
    age = vehicle_age_years(np.array([2020]), np.array([days(dt.date(2026, 11, 28))]))[0]
    assert round(age, 2) == 6.91


def test_channels_are_switched_off_by_configuration_as_the_guide_shows(tmp_path):
    """Issue 15, point 9: [disposal] disabled, the guide's own TOML block."""
    import re
    import tomllib

    from kernel.pipeline import Pipeline
    from kernel.plugins import PluginManager
    from plugin_helpers import ROOT
    guide = (ROOT / "docs" / "plugin-guide.md").read_text("utf-8")
    block = re.search(r"```toml\n(\[disposal\]\ndisabled = .*?)```", guide, re.S).group(1)
    config = tomllib.loads(block)
    on = {c.name for c in Pipeline(None, plugins=PluginManager({}), audit_path=tmp_path / "a.log").channels}
    off = {c.name for c in Pipeline(None, plugins=PluginManager(config), audit_path=tmp_path / "b.log").channels}
    assert {"live_auction", "dealer_buyback"} <= on and on - off == {"live_auction", "dealer_buyback"}
    # a car the dealer would buy (a cheap one: an auction's costs and time to cash outweigh its
    # better price) goes to the next best channel instead
    price, age, km = np.array([60_000.0]), np.array([1.5]), np.array([20_000.0])
    grade, country = np.array(["A"], dtype=object), np.array(["CN"], dtype=object)
    pipe_on = Pipeline(None, plugins=PluginManager({}), audit_path=tmp_path / "c.log")
    pipe_off = Pipeline(None, plugins=PluginManager(config), audit_path=tmp_path / "d.log")
    best_on = select_disposal_channels(price, age, km, grade, country, pipe_on.channels, 60.0)[0][0]
    best_off = select_disposal_channels(price, age, km, grade, country, pipe_off.channels, 60.0)[0][0]
    assert pipe_on.channels[best_on].name == "dealer_buyback"
    assert pipe_off.channels[best_off].name not in {"live_auction", "dealer_buyback"}


def test_switching_off_a_channel_no_plugin_offers_is_an_error(tmp_path):
    from kernel.pipeline import Pipeline
    from kernel.plugins import PluginManager
    with pytest.raises(PostloanError, match=r"\[disposal\] disabled names channel 'dealer_buyback_x'.*channels: "):
        Pipeline(None, plugins=PluginManager({"disposal": {"disabled": ["dealer_buyback_x"]}}),
                 audit_path=tmp_path / "a.log")


def test_the_compiled_selector_is_the_formula_channel_by_channel():
    """The selector (one compiled pass over the channels as arrays) gives exactly what
    disposal_economics gives channel by channel, with each channel's limits applied and the
    first channel listed winning a tie — on the shipped channels, cars of every grade and
    country (nulls included), missing prices, and at one car as at many."""
    from postloan_builtins.valuation import load_channels
    channels = load_channels()
    rng = np.random.default_rng(12)
    n = 3000
    price = np.exp(rng.normal(np.log(60_000), 0.9, n))
    price[rng.random(n) < 0.05] = np.nan
    age = rng.uniform(0, 14, n)
    km = rng.uniform(0, 300_000, n)
    grade = rng.choice(np.array(list("ABCDE") + [""], dtype=object), n)
    country = rng.choice(np.array(["CN", "US", ""], dtype=object), n)
    net = np.full((n, len(channels)), -np.inf)
    wait = np.full((n, len(channels)), np.nan)
    for j, c in enumerate(channels):
        value, days_ = disposal_economics(price, c)
        ok = ~np.isnan(price)
        if c.max_age_years is not None:
            ok &= age <= c.max_age_years
        if c.max_mileage_km is not None:
            ok &= km <= c.max_mileage_km
        if c.conditions:
            ok &= np.isin(grade, list(c.conditions))
        if c.countries:
            ok &= np.isin(country, list(c.countries))
        net[:, j] = np.where(ok, value, -np.inf)
        wait[:, j] = days_
    best = np.argmax(net, axis=1)
    top = net[np.arange(n), best]
    found = np.isfinite(top)
    idx, got_net, got_days = select_disposal_channels(price, age, km, grade, country, channels)
    assert found.sum() > n // 2 and (~found).sum() > 50
    assert np.array_equal(idx, np.where(found, best, -1))
    assert np.array_equal(got_net[found], top[found]) and np.isnan(got_net[~found]).all()
    assert np.array_equal(got_days[found], wait[np.arange(n), best][found])
    for i in rng.choice(n, 20, replace=False):             # one car at a time: the same
        one = select_disposal_channels(price[i:i + 1], age[i:i + 1], km[i:i + 1], grade[i:i + 1], country[i:i + 1],
                                       channels)
        assert one[0][0] == idx[i] and (one[1][0] == got_net[i] or (np.isnan(one[1][0]) and np.isnan(got_net[i])))
