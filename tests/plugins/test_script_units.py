"""Counts in scripts carry their unit in proper English — "1 day", "12 days", "1 demand notice",
"3 demand notices" — through `{field:singular|plural}`; Chinese scripts are unchanged."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from kernel.errors import PostloanError
from kernel.hookspecs import ACTION, Batch
from plugin_helpers import utc

AS_OF = dt.date(2026, 11, 28)
NOW = utc(2026, 11, 28, 2, 0)


def accounts(small_book, country: str, dpd: list[int], notices: list[int]) -> pa.Table:
    """Reachable accounts of ``country`` with the given days past due and demand notices."""
    country_of = np.array(small_book["country"].to_pylist(), dtype=object)
    reachable = small_book["phone_valid"].to_numpy(zero_copy_only=False)
    rows = np.flatnonzero((country_of == country) & reachable)[:len(dpd)]
    assert rows.size == len(dpd)
    book = small_book.take(pa.array(rows))
    book = book.set_column(book.schema.get_field_index("dpd"), "dpd", pa.array(dpd, pa.int64()))
    return book.set_column(book.schema.get_field_index("demand_notices_sent"), "demand_notices_sent",
                           pa.array(notices, pa.int64()))


def scripts(strategy, book: pa.Table, tier: str) -> dict[str, list[str]]:
    """Each account's script per action, in book order, at one collection tier."""
    n = book.num_rows
    channel = {"MILD": "SMS_VOICE", "SEVERE": "FIELD_VISIT"}[tier]
    decisions = {"collection_tier.tier": np.full(n, tier, dtype=object),
                 "collection_tier.channel": np.full(n, channel, dtype=object),
                 "collection_tier.legal_review": np.full(n, tier == "SEVERE"),
                 "collection_tier.priority": np.ones(n), "collection_tier.calls_per_day": np.ones(n, np.int64)}
    plan = strategy.plan(Batch(n, AS_OF, NOW, [decisions, book]))
    out: dict[str, list] = {}
    for name in ("SMS", "LEGAL_REVIEW"):
        picked = np.flatnonzero(plan["action"] == ACTION[name])
        by_row = dict(zip(plan["row"][picked].tolist(), plan["script"].take(pa.array(picked)).to_pylist()))
        if by_row:
            out[name] = [by_row[r] for r in range(n)]
    return out


@pytest.fixture(scope="module")
def strategy(manager):
    return manager.strategies()["tiered"]


# 3 accounts go through the few-rows path (Python formatting), 90 through the vectorized one
@pytest.mark.parametrize("repeat", [1, 30])
def test_english_counts_are_singular_for_one_and_plural_otherwise(strategy, small_book, repeat):
    book = accounts(small_book, "US", [1, 12, 0] * repeat, [1, 3, 0] * repeat)
    sms = scripts(strategy, book, "MILD")["SMS"]
    assert "your auto loan ending" in sms[0]
    for k in range(repeat):
        assert " is 1 day past due," in sms[3 * k]
        assert " is 12 days past due," in sms[3 * k + 1]
        assert " is 0 days past due," in sms[3 * k + 2]
    legal = scripts(strategy, book, "SEVERE")["LEGAL_REVIEW"]
    assert ", 1 day past due, " in legal[0] and "1 demand notice delivered." in legal[0]
    assert ", 12 days past due, " in legal[1] and "3 demand notices delivered." in legal[1]
    assert "0 demand notices delivered." in legal[2]
    assert not any("(s)" in text for text in sms + legal)


def test_chinese_scripts_are_unchanged(strategy, small_book):
    book = accounts(small_book, "CN", [1, 12], [1, 3])
    sms = scripts(strategy, book, "MILD")["SMS"]
    assert "已逾期1天，" in sms[0] and "已逾期12天，" in sms[1]
    legal = scripts(strategy, book, "SEVERE")["LEGAL_REVIEW"]
    assert all("day" not in text for text in sms + legal)


def test_counted():
    from postloan_builtins.collection import counted
    assert [counted(v, ("day", "days")) for v in (1, 12, 0, -1)] == ["1 day", "12 days", "0 days", "-1 day"]
    assert counted(7, None) == "7"


@pytest.mark.parametrize("text, message", [
    ("{dpd:days}", r"\{dpd:days\}: a count's unit is written \{dpd:singular\|plural\}"),
    ("{dpd:day|}", r"\{dpd:day\|\}: a count's unit is written"),
    ("{overdue_amount:yuan|yuan}", r"field \{overdue_amount\} takes no format .*\{dpd:day\|days\}"),
    ("{dpd!r}", r"field \{dpd\} takes no format"),
])
def test_a_unit_only_goes_with_a_count(tmp_path, text, message):
    from postloan_builtins.collection import TEMPLATES_DIR, TieredStrategy
    for lang in ("zh", "en"):
        (tmp_path / f"{lang}.toml").write_text((TEMPLATES_DIR / f"{lang}.toml").read_text("utf-8"), "utf-8")
    with open(tmp_path / "en.toml", "a", encoding="utf-8") as f:
        f.write(f'\n[bad]\naction = "SMS"\ntext = "{text}"\n')
    with pytest.raises(PostloanError, match=r"en\.toml: template 'bad': " + message):
        TieredStrategy({"strategy": {"tiered": {"templates": str(tmp_path)}}})
