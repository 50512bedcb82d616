"""The compiled one-account renderer (script_kernel, collection._CompiledScripts) against the
Python one (collection._account_renderer, the reference): over drawn accounts — amounts with
NaN, infinities, half cents, negatives and sums beyond 64-bit cents; counts null, ±1, beyond
64 bits; names and vehicles in any script, NUL and lone surrogates included; both countries,
currencies, every tier and action of the built-in templates — the scripts are the reference's
byte for byte wherever the kernel writes them, and the screen bits it hands the policies are
the plain screen's (compliance._screen_one)."""
from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from kernel.hookspecs import ACTION, NULL_TIME, Batch, Record
from postloan_builtins import collection as C
from postloan_builtins import compliance

AS_OF = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 2, 30, tzinfo=dt.timezone.utc)
_ACTION_NAMES = {code: name for name, code in ACTION.items()}


@pytest.fixture(scope="module")
def strategy():
    return C.TieredStrategy({})


_amounts = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**9, 10**9).map(lambda c: c / 100),
                     st.sampled_from([0.005, 0.015, 2.675, -0.004, -0.005, 1e16, 9.2e16, 1e300, -0.0, math.nan]),
                     st.none())
_counts = st.one_of(st.integers(-3, 3), st.integers(-2**63 + 1, 2**63 - 1), st.sampled_from([2**63, -2**70, 10**30]),
                    st.none())
_texts = st.one_of(st.text(max_size=12), st.sampled_from(["徐杰", "Toyota", "Camry", "大众", "途观L", "a\x00b", "\ud800x",
                                                          "Debt Collector", "欠款", "", "🚗"]), st.none())


@st.composite
def accounts(draw):
    record = {
        "country": draw(st.sampled_from(["CN", "US", None])),
        "name": draw(_texts), "account_id": draw(_texts), "brand": draw(_texts), "model": draw(_texts),
        "overdue_amount": draw(_amounts), "penalty_interest": draw(_amounts),
        "installment_amount": draw(_amounts), "valuation.price": draw(_amounts),
        "disposal_channel.channel": draw(_texts), "disposal_channel.expected_net": draw(_amounts),
        "dpd": draw(_counts), "demand_notices_sent": draw(_counts), "disposal_channel.expected_days": draw(_counts),
        "arbitration_agreed": draw(st.booleans()), "contract_notarised": draw(st.booleans()),
        "mortgage_registered": draw(st.booleans()), "open_disputes": draw(st.integers(0, 2)),
        "litigation_clause": draw(st.booleans()),
    }
    if draw(st.booleans()):
        record["currency"] = draw(st.sampled_from(["CNY", "USD", None]))
    codes = draw(st.lists(st.sampled_from(sorted(ACTION.values())), min_size=1, max_size=6))
    return record, codes, draw(st.integers(-1, 3))


def _scripts(strategy, record, codes, tier):
    """(the compiled renderer's scripts or None where it declines, the reference's or the
    exception it raises, the bits it remembered)."""
    batch = Batch(1, AS_OF, NOW, [Record(record)], {})
    symbol, late_charge, (reference, compiled), _, _ = strategy._account_scripts(batch, codes, tier)
    one = C._OneAccount(batch, symbol, late_charge, strategy._constants, strategy.vehicle_names)
    compliance._rendered.last = None
    try:
        expected = reference(one, batch.merged.get, symbol)
    except Exception as e:                       # noqa: BLE001 — the compiled path must raise it too or decline
        expected = e
    try:
        # no template for any of the actions: no program, the reference's Nones
        got = compiled(one, batch.merged.get, symbol) if compiled is not None else [None] * len(codes)
    except Exception as e:                       # noqa: BLE001
        got = e
    return got, expected, compliance._rendered.last


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(accounts())
def test_the_compiled_scripts_are_the_python_renderers(strategy, account):
    record, codes, tier = account
    got, expected, remembered = _scripts(strategy, record, codes, tier)
    if isinstance(expected, Exception):
        assert got is None or type(got) is type(expected), (got, expected)
        return
    if got is None:                              # declined: what the kernel does not write
        amounts = [record[c] for c in ("overdue_amount", "penalty_interest", "installment_amount", "valuation.price",
                                       "disposal_channel.expected_net") if type(record[c]) is float]
        if type(record["overdue_amount"]) is float and type(record["penalty_interest"]) is float:
            amounts.append(record["overdue_amount"] + record["penalty_interest"])          # total_due
        counts = [record[c] for c in ("dpd", "demand_notices_sent", "disposal_channel.expected_days")
                  if type(record[c]) is int]
        texts = [record[c] for c in ("name", "account_id", "brand", "model", "disposal_channel.channel")
                 if type(record[c]) is str]
        assert (any(not math.isfinite(a) or abs(a) * 100 >= 2**63 for a in amounts)
                or any(not -2**63 <= c < 2**63 for c in counts)
                or any("\x00" in t or any("\ud800" <= ch <= "\udfff" for ch in t) for t in texts)), record
        return
    assert got == expected
    if all(x is None for x in got):
        return
    scripts, bits = remembered
    assert scripts is got
    for text, b, code in zip(scripts, bits, codes):
        if text is None or _ACTION_NAMES[code] not in compliance.SCREENED_ACTIONS:
            assert b is None
        else:
            assert b == compliance._screen_one(text), text


def test_the_policies_take_the_remembered_bits_only_for_the_same_scripts(strategy):
    """_screen_listed takes the bits remembered for the very str objects it is given; an equal
    text that is another object, or another list, is read again."""
    record = {"country": "CN", "name": "徐杰", "account_id": "A0155", "brand": "Volkswagen", "model": "Tiguan L",
              "overdue_amount": 30038.44, "penalty_interest": 832.06, "installment_amount": 7509.61, "dpd": 101,
              "demand_notices_sent": 2}
    got, expected, (scripts, bits) = _scripts(strategy, record, [ACTION["FIELD_VISIT"], ACTION["LEGAL_REVIEW"]], 3)
    assert got == expected and bits[0] is not None and bits[1] is None
    wanted = [True, True]
    plain = [compliance._screen_one(s) for s in got]
    assert compliance._screen_listed(got, wanted) == plain
    compliance._rendered.last = (scripts, [12345, None])            # what is remembered is what is taken …
    assert compliance._screen_listed(got, wanted) == [12345, plain[1]]
    copies = ["".join(list(s)) for s in got]                        # … for those objects only
    assert compliance._screen_listed(copies, wanted) == plain
    compliance._rendered.last = None


def test_a_null_count_and_a_missing_amount_read_as_the_dash(strategy):
    record = {"country": "US", "name": "Ann", "account_id": "X1", "brand": "Ford", "model": "F-150",
              "overdue_amount": math.nan, "penalty_interest": None, "installment_amount": -0.005, "dpd": None,
              "demand_notices_sent": NULL_TIME}
    got, expected, _ = _scripts(strategy, record, [ACTION["LEGAL_REVIEW"], ACTION["SMS"]], 1)
    assert got == expected and "—" in got[0]
