"""The tiered collection strategy and its scripts (话术): actions per tier, figures in the text,
template checks at load, vectorized and small-batch rendering giving the same text."""
from __future__ import annotations

import datetime as dt
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings, strategies as st

from kernel.errors import PostloanError
from kernel.hookspecs import ACTION, Batch
from plugin_helpers import utc

AS_OF = dt.date(2026, 11, 28)
NOW = utc(2026, 11, 28, 2, 0)          # 10:00 in Shanghai
CODE_NAME = {v: k for k, v in ACTION.items()}


def tier_decisions(book: pa.Table) -> dict[str, np.ndarray]:
    """What collection_tier / litigation / disposal would say, by DPD (input data)."""
    dpd = book["dpd"].to_numpy()
    tier = np.select([dpd > 30, dpd > 10, dpd > 0], [3, 2, 1], 0)
    return {
        "collection_tier.tier": np.array(["NONE", "MILD", "MEDIUM", "SEVERE"], dtype=object)[tier],
        "collection_tier.channel": np.array(["NONE", "SMS_VOICE", "PHONE", "FIELD_VISIT"], dtype=object)[tier],
        "collection_tier.legal_review": tier == 3,
        "collection_tier.priority": tier.astype(np.float64),
        "collection_tier.calls_per_day": np.where(tier == 2, 3, 1).astype(np.int64),
    }


@pytest.fixture(scope="module")
def strategy(manager):
    return manager.strategies()["tiered"]


@pytest.fixture(scope="module")
def planned(small_book, strategy):
    batch = Batch(small_book.num_rows, AS_OF, NOW, [tier_decisions(small_book), small_book])
    return batch, strategy.plan(batch)


def test_actions_follow_the_tiers(planned, small_book):
    batch, plan = planned
    rows, action = plan["row"], plan["action"]
    tier = batch.enum("collection_tier.tier", ("NONE", "MILD", "MEDIUM", "SEVERE"))
    phone_ok = batch.bool("phone_valid")
    for name in ("SMS", "VOICE_BOT"):
        assert set(rows[action == ACTION[name]]) == set(np.flatnonzero((tier == 1) & phone_ok))
    assert set(rows[action == ACTION["FIELD_VISIT"]]) == set(np.flatnonzero((tier == 3) & ~batch.bool("repossessed")))
    assert set(rows[action == ACTION["LEGAL_REVIEW"]]) == set(np.flatnonzero(tier == 3))
    # medium tier: 3 calls a day each, 180 minutes apart, from now; the severe tier its 1 call a
    # day beside the visit (calls_per_day)
    phone_rows = rows[action == ACTION["PHONE"]]
    assert set(phone_rows) == set(np.flatnonzero((tier >= 2) & phone_ok))
    calls = np.bincount(phone_rows, minlength=batch.n)
    assert np.all(calls[(tier == 2) & phone_ok] == 3) and np.all(calls[(tier == 3) & phone_ok] == 1)
    first = np.flatnonzero((action == ACTION["PHONE"]) & (tier[rows] == 2))[:3]
    assert (plan["earliest_at"][first] - batch.now_us).tolist() == [0, 180 * 60_000_000, 360 * 60_000_000]
    # third parties only for unreachable debtors in the medium and severe tiers
    unreachable = ~phone_ok | (batch.int("consecutive_failed_attempts") >= 3)
    third = rows[action == ACTION["THIRD_PARTY_CONTACT"]]
    assert set(third) == set(np.flatnonzero((tier >= 2) & unreachable & batch.bool("has_third_party_contact")))
    assert np.all(plan["priority"] == batch.float("collection_tier.priority")[rows])
    assert not (tier[rows] == 0).any()


def test_scripts_state_the_accounts_figures(planned, small_book):
    batch, plan = planned
    script = plan["script"].to_pylist()
    names = small_book["name"].to_pylist()
    dpd = small_book["dpd"].to_pylist()
    overdue = small_book["overdue_amount"].to_pylist()
    penalty = small_book["penalty_interest"].to_pylist()
    ids = small_book["account_id"].to_pylist()
    country = small_book["country"].to_pylist()
    checked = 0
    for i, (row, code) in enumerate(zip(plan["row"].tolist(), plan["action"].tolist())):
        if CODE_NAME[code] not in ("SMS", "VOICE_BOT", "PHONE", "FIELD_VISIT"):
            continue
        sym = "¥" if country[row] == "CN" else "$"
        text = script[i]
        assert names[row] in text
        assert ids[row][-4:] in text
        assert f"{sym}{overdue[row]:,.2f}" in text
        if round(penalty[row] * 100) > 0:
            assert f"{sym}{penalty[row]:,.2f}" in text
        else:                                   # nothing due: the late charge is not mentioned
            assert f"{sym}0.00" not in text and not any(w in text for w in ("late fee", "罚息", "滞纳金"))
        assert f"{sym}{overdue[row] + penalty[row]:,.2f}" in text
        assert (f"逾期{dpd[row]}天" in text) if country[row] == "CN" else \
            (f"{dpd[row]} {'day' if dpd[row] == 1 else 'days'}" in text)
        checked += 1
    assert checked > 100


def test_scripts_ask_for_a_date_and_record_the_promise(planned):
    batch, plan = planned
    for i, code in enumerate(plan["action"].tolist()):
        if CODE_NAME[code] in ("SMS", "VOICE_BOT", "PHONE", "FIELD_VISIT"):
            text = plan["script"][i].as_py()
            if plan["language"][i] == "zh":
                assert "还款" in text and ("日期" in text or "哪一天" in text) and ("承诺" in text or "记录" in text)
            else:
                assert "date" in text and ("promise" in text or "Record" in text)


def test_calls_ask_the_reason_and_offer_a_plan_visits_also_state_the_consequences(planned):
    """Seed §02: a collection call asks why the payment is late and offers a plan the debtor can
    keep; a field visit also states the consequences truthfully (the credit report, the
    contract's steps) — in every PHONE and FIELD_VISIT script, MEDIUM and SEVERE, both languages."""
    _, plan = planned
    seen = set()
    for i in np.flatnonzero(np.isin(plan["action"], [ACTION["PHONE"], ACTION["FIELD_VISIT"]])):
        text, zh = plan["script"][i].as_py(), plan["language"][i] == "zh"
        action = CODE_NAME[int(plan["action"][i])]
        seen.add((action, plan["language"][i]))
        after = text.split("【确认本人后】" if zh else "[Identity confirmed]", 1)[1]
        if zh:
            assert "原因" in after and ("还款计划" in after or "还款安排" in after), text
        else:
            assert "what has made the payment difficult" in after or "understand your situation" in after, text
            assert "payment plan" in after or "plan you can keep" in after or "repayment plan" in after, text
        if action == "FIELD_VISIT":
            assert ("后果" in after and "金融信用信息基础数据库" in after) if zh else \
                ("reported to the credit bureaus" in after and "repossessing" in after), text
    assert seen == {("PHONE", "zh"), ("PHONE", "en"), ("FIELD_VISIT", "zh"), ("FIELD_VISIT", "en")}


def test_field_visit_scripts_state_identity_and_purpose(planned):
    _, plan = planned
    visits = [plan["script"][i].as_py() for i in np.flatnonzero(plan["action"] == ACTION["FIELD_VISIT"])]
    assert visits
    for text in visits:
        if text.startswith("Hello"):
            assert "field representative of Example Auto Finance" in text and "ID card" in text and "I am here about" in text
        else:
            assert "示例汽车金融的贷后外访专员" in text and "工作证" in text and "今天上门的目的" in text


def test_third_party_scripts_never_mention_the_debt(planned):
    from postloan_builtins.compliance import mentions_debt
    _, plan = planned
    idx = np.flatnonzero(plan["action"] == ACTION["THIRD_PARTY_CONTACT"])
    assert idx.size
    texts = plan["script"].take(pa.array(idx))
    assert not mentions_debt(texts).any()
    assert pc.all(pc.or_(pc.match_substring(texts, "回电"), pc.match_substring(texts, "call me back"))).as_py()


def test_us_debtors_get_english_scripts_in_dollars(planned, small_book):
    _, plan = planned
    country = np.array(small_book["country"].to_pylist(), dtype=object)[plan["row"]]
    contact = np.isin(plan["action"], [ACTION[a] for a in ("SMS", "VOICE_BOT", "PHONE", "FIELD_VISIT")])
    us_rows = np.flatnonzero((country == "US") & contact)
    cn_rows = np.flatnonzero((country == "CN") & contact)
    assert us_rows.size and cn_rows.size
    assert all(plan["language"][i] == "en" and "$" in plan["script"][i].as_py() and "¥" not in plan["script"][i].as_py()
               for i in us_rows)
    assert all(plan["language"][i] == "zh" and "¥" in plan["script"][i].as_py() for i in cn_rows)


def test_amounts_are_written_in_the_accounts_currency_not_its_countrys(small_book, strategy):
    """The symbol follows the account's `currency` column: a CNY loan of a US-resident debtor is
    stated in yuan (in English), never relabelled as dollars; without the column, the country's."""
    book = small_book.slice(0, 400)
    us = pa.array(["US"] * book.num_rows).dictionary_encode()
    cny = pa.array(["CNY"] * book.num_rows).dictionary_encode()
    book = book.set_column(book.schema.get_field_index("country"), "country", us)
    book = book.set_column(book.schema.get_field_index("currency"), "currency", cny)
    plan = strategy.plan(Batch(book.num_rows, AS_OF, NOW, [tier_decisions(book), book]))
    money = np.isin(plan["action"], [ACTION[a] for a in ("SMS", "VOICE_BOT", "PHONE", "FIELD_VISIT")])
    texts = [plan["script"][i].as_py() for i in np.flatnonzero(money)]
    assert texts and all("¥" in t and "$" not in t for t in texts)
    assert all(plan["language"][i] == "en" for i in np.flatnonzero(money))
    no_column = book.drop_columns(["currency"])
    plan = strategy.plan(Batch(no_column.num_rows, AS_OF, NOW, [tier_decisions(no_column), no_column]))
    texts = [plan["script"][i].as_py() for i in np.flatnonzero(np.isin(plan["action"], [ACTION["SMS"]]))]
    assert texts and all("$" in t and "¥" not in t for t in texts)


def _us_sms(strategy, book: pa.Table, penalty: float) -> list[str]:
    """The SMS scripts of ``book``'s accounts moved to the US with ``penalty`` due."""
    n = book.num_rows
    book = book.set_column(book.schema.get_field_index("country"), "country", pa.array(["US"] * n).dictionary_encode())
    book = book.set_column(book.schema.get_field_index("currency"), "currency", pa.array(["USD"] * n).dictionary_encode())
    book = book.set_column(book.schema.get_field_index("penalty_interest"), "penalty_interest", pa.array([penalty] * n))
    plan = strategy.plan(Batch(n, AS_OF, NOW, [tier_decisions(book), book]))
    return [plan["script"][i].as_py() for i in np.flatnonzero(plan["action"] == ACTION["SMS"])]


@pytest.mark.parametrize("rows", [5, 300])             # a few accounts (Python) and many (Arrow)
def test_no_late_fee_is_stated_when_none_is_due(small_book, strategy, rows):
    """Issue 14: a US SMS in the grace period read "late fees of $0.00". With nothing due the
    clause is left out (the total is the overdue amount); a fee that is due is stated; half a
    cent rounds to nothing and is not stated either."""
    dpd = small_book["dpd"].to_numpy()
    book = small_book.take(pa.array(np.flatnonzero((dpd > 0) & (dpd <= 10))[:rows]))     # the tier that texts
    grace = _us_sms(strategy, book, 0.0)
    assert grace and all("late fee" not in t and "$0.00" not in t for t in grace)
    assert all(" overdue, $" in t and " in total." in t for t in grace)
    assert all("late fee" not in t for t in _us_sms(strategy, book, 0.004))
    due = _us_sms(strategy, book, 25.0)
    assert len(due) == len(grace) and all(" overdue plus late fees of $25.00, $" in t for t in due)


@pytest.mark.parametrize("extra, message", [
    ('[bad]\naction = "LEGAL_REVIEW"\ntext = "x{if penalty_interest}y"\n', r"\{if penalty_interest\} is not closed"),
    ('[bad]\naction = "LEGAL_REVIEW"\ntext = "x{end}"\n', r"\{end\} without an \{if <field>\}"),
    ('[bad]\naction = "LEGAL_REVIEW"\ntext = "{if dpd}{if penalty_interest}x{end}{end}"\n', r"do not nest"),
    ('[bad]\naction = "LEGAL_REVIEW"\ntext = "{if name}x{end}"\n', r"depends on an amount or a count"),
    ('[bad]\naction = "SMS"\ntext = "{lender}{name}{if dpd}如已还款请忽略{end}"\n', r"must say '如已还款请忽略'"),
])
def test_clause_mistakes_are_named(tmp_path, extra, message):
    write_templates(tmp_path, zh_extra=extra)
    with pytest.raises(PostloanError, match=r"zh\.toml: template 'bad'") as e:
        strategy_with(tmp_path)
    assert __import__("re").search(message, str(e.value)), str(e.value)


def test_small_batches_render_the_same_text_as_large_ones(small_book, strategy):
    decisions = tier_decisions(small_book)
    big = Batch(small_book.num_rows, AS_OF, NOW, [decisions, small_book])
    big_plan = strategy.plan(big)
    rows = np.flatnonzero(small_book["dpd"].to_numpy() > 0)[:7]
    sub_book = small_book.take(pa.array(rows))
    small = Batch(rows.size, AS_OF, NOW, [{k: v[rows] for k, v in decisions.items()}, sub_book])
    small_plan = strategy.plan(small)
    expected = {}
    for i, (row, code) in enumerate(zip(big_plan["row"].tolist(), big_plan["action"].tolist())):
        expected.setdefault((row, code), big_plan["script"][i].as_py())
    for i, (row, code) in enumerate(zip(small_plan["row"].tolist(), small_plan["action"].tolist())):
        assert small_plan["script"][i].as_py() == expected[(int(rows[row]), code)]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(-10**14, 10**14), min_size=1, max_size=80), st.sampled_from(["¥", "$"]))
def test_money_is_formatted_like_python(cents, symbol):
    from postloan_builtins.collection import format_money, format_money_small
    values = np.array(cents, np.float64) / 100
    vectorized = format_money(values, symbol).to_pylist()
    assert vectorized == format_money_small(values.tolist(), [symbol] * len(cents))
    assert vectorized == [("-" if v < 0 and round(abs(v) * 100) else "") + f"{symbol}{abs(v):,.2f}" for v in values.tolist()]


def test_money_formatting_edges():
    from postloan_builtins.collection import format_money
    values = np.array([0, 0.5, 999.99, 1000, 1234.56, 999999.99, 1000000, 12345678.9, np.nan])
    assert format_money(values, "¥").to_pylist() == [
        "¥0.00", "¥0.50", "¥999.99", "¥1,000.00", "¥1,234.56", "¥999,999.99", "¥1,000,000.00", "¥12,345,678.90", "—"]


# --- template files ------------------------------------------------------------------------

def write_templates(tmp_path, zh_extra: str = "", zh_replace: dict | None = None):
    from postloan_builtins.collection import TEMPLATES_DIR
    for lang in ("zh", "en"):
        text = (TEMPLATES_DIR / f"{lang}.toml").read_text("utf-8")
        if lang == "zh":
            for old, new in (zh_replace or {}).items():
                assert old in text
                text = text.replace(old, new)
            text += "\n" + textwrap.dedent(zh_extra)
        (tmp_path / f"{lang}.toml").write_text(text, "utf-8")
    return tmp_path


def strategy_with(tmp_path):
    from postloan_builtins.collection import TieredStrategy
    return TieredStrategy({"strategy": {"tiered": {"templates": str(tmp_path)}}})


def test_a_template_with_an_unknown_field_fails_at_load_naming_file_and_field(tmp_path):
    write_templates(tmp_path, zh_replace={"逾期金额{overdue_amount}{if": "逾期金额{overdue_amout}{if"})
    with pytest.raises(PostloanError, match=r"zh\.toml: template 'sms_reminder': unknown field \{overdue_amout\}; "
                                            r"did you mean \{overdue_amount\}\?"):
        strategy_with(tmp_path)


@pytest.mark.parametrize("extra, message", [
    ('[bad]\naction = "THIRD_PARTY_CONTACT"\ntext = "请转告{name}，逾期{dpd}天"\n',
     r"may use only location information \(\{caller\}, \{hotline\}, \{name\}\), but uses \{dpd\}"),
    ('[bad]\naction = "THIRD_PARTY_CONTACT"\ntext = "我是{lender}，请转告{name}回电"\n', r"but uses \{lender\}"),
    ('[bad]\naction = "THIRD_PARTY_CONTACT"\ntext = "{name}的车要被收走了"\n', r"must not mention the debt, but says '车要被'"),
    ('[bad]\naction = "THIRD_PARTY_CONTACT"\ntext = "请{name}把分期结清"\n', r"must not mention the debt, but says '分期'"),
    ('[bad]\naction = "PHONE"\ntext = "{lender}，本次通话将被录音。{name}您已逾期{dpd}天【确认本人后】"\n',
     r"debt details before the identity marker"),
    ('[bad]\naction = "PHONE"\ntext = "我是{lender}。请问是{name}吗？【确认本人后】逾期{dpd}天"\n', r"must say '本次通话将被录音'"),
    ('[bad]\naction = "SMS"\ntext = "【{lender}】{name}您已逾期{dpd}天"\n', r"must say '如已还款请忽略'"),
    ('[bad]\naction = "SMS"\ntext = "【客户服务中心】{name}您已逾期。如已还款请忽略。"\n', r"named truthfully"),
    ('[bad]\naction = "SMS"\ntext = "{name}您已逾期，不还就上黑名单。如已还款请忽略。"\n', r"threatens .*'黑名单'"),
    ('[bad]\naction = "VOICE_BOT"\ntext = "{lender}，本次通话将被录音。{name}吗？【确认本人后】逾期{dpd}天"\n',
     r"must end with a limited-content voicemail"),
    ('[bad]\naction = "VOICE_BOT"\ntext = "{lender}，本次通话将被录音。{name}吗？【确认本人后】逾期。【语音留言】逾期{dpd}天"\n',
     r"the voicemail may name only the business, the person and a number, but has \{dpd\}"),
    ('[bad]\naction = "THIRD_PARTY_CONTACT"\ntext = "请转告{name}尽快还款"\n', r"must not mention the debt, but says '还款'"),
    ('[bad]\naction = "SMS"\ntext = "{name:>10}"\n', r"field \{name\} takes no format"),
    ('[bad]\naction = "SMS"\ntext = "oops {name"\n', r"template 'bad': .*literal braces"),
    ('[bad]\naction = "EMAIL"\ntext = "x"\n', r"action 'EMAIL' is not one of SMS"),
    ('[bad]\naction = "SMS"\ntiers = ["HIGH"]\ntext = "x"\n', r"tiers must be a list of NONE"),
    ('[bad]\naction = "SMS"\ntext = "x"\nchannel = "y"\n', r"unknown key 'channel'"),
])
def test_template_mistakes_are_named(tmp_path, extra, message):
    write_templates(tmp_path, zh_extra=extra)
    with pytest.raises(PostloanError, match=r"zh\.toml: template 'bad'|zh\.toml") as e:
        strategy_with(tmp_path)
    assert __import__("re").search(message, str(e.value)), str(e.value)


def test_every_action_and_tier_needs_a_template(tmp_path):
    write_templates(tmp_path, zh_replace={'tiers = ["SEVERE"]': 'tiers = ["MEDIUM"]'})
    with pytest.raises(PostloanError, match=r"zh\.toml: no template for action PHONE at tier SEVERE"):
        strategy_with(tmp_path)


def test_edited_templates_change_the_scripts(tmp_path, small_book):
    write_templates(tmp_path, zh_replace={"【{lender}】": "【{lender}·贷后】"})
    edited = strategy_with(tmp_path)
    rows = np.flatnonzero((small_book["dpd"].to_numpy() > 0) & (small_book["dpd"].to_numpy() <= 10))
    book = small_book.take(pa.array(rows))
    batch = Batch(book.num_rows, AS_OF, NOW, [tier_decisions(book), book])
    plan = edited.plan(batch)
    sms = [plan["script"][i].as_py() for i in np.flatnonzero(plan["action"] == ACTION["SMS"])
           if plan["language"][i] == "zh"]
    assert sms and all(s.startswith("【示例汽车金融·贷后】") for s in sms)


def test_unknown_strategy_settings_are_named():
    from postloan_builtins.collection import TieredStrategy
    with pytest.raises(PostloanError, match=r"\[strategy.tiered\]: unknown setting 'max_call'"):
        TieredStrategy({"strategy": {"tiered": {"max_call": 2}}})


@pytest.mark.parametrize("key, value, most", [("max_calls", 2 ** 70, "9,223,372,036,854,775,807"),
                                              ("field_visit_every_days", 10 ** 9, "106,751,991"),
                                              ("call_spacing_minutes", 10 ** 20, "153,722,867,280"),
                                              ("unreachable_after_failed_attempts", -1, None)])
def test_whole_number_settings_out_of_range_are_named(key, value, most):
    """The compiled plan takes the whole-number settings as 64-bit integers (the intervals in
    µs): a value beyond that is an error naming the setting and its limit, not an overflow."""
    from postloan_builtins.collection import TieredStrategy
    message = rf"\[strategy.tiered\] {key}: " + (f"at most {most}," if most else "expected a whole number ≥ 0")
    with pytest.raises(PostloanError, match=message):
        TieredStrategy({"strategy": {"tiered": {key: value}}})
    if most:                                          # the limit itself is accepted
        TieredStrategy({"strategy": {"tiered": {key: int(most.replace(",", ""))}}})


# --------------------------------------------------------------------------------------------
# Enforcement routes (legal review) and the legal basis (repossession): each route's
# precondition on both sides (docs/compliance.md, "Routes in China")
# --------------------------------------------------------------------------------------------

ROUTES_ZH = {"网络仲裁": "arbitration", "赋强公证": "notarised", "实现担保物权": "security", "诉讼": "litigation"}


def _legal_scripts(strategy, small_book, **state) -> dict[str, str]:
    """The LEGAL_REVIEW and REPOSSESSION scripts of one SEVERE Chinese account with the
    ledger state ``state`` (column → value), by action name."""
    country = small_book["country"].to_pylist()
    row = next(i for i, d in enumerate(small_book["dpd"].to_pylist()) if d > 30 and country[i] == "CN")
    book = small_book.slice(row, 1)
    decisions = {k: v[[row]] for k, v in tier_decisions(small_book).items()}
    decisions["disposal.repossess"] = np.array([True])
    columns = {k: np.array([v]) for k, v in state.items()}
    plan = strategy.plan(Batch(1, AS_OF, NOW, [decisions, columns, book]))
    scripts = plan["script"]                  # one account's: a list of str (the pipeline keeps it)
    assert type(scripts) is list
    return {CODE_NAME[a]: scripts[i] for i, a in enumerate(plan["action"].tolist())
            if CODE_NAME[a] in ("LEGAL_REVIEW", "REPOSSESSION")}


def _routes(script: str) -> set[str]:
    listed = script.split("可选途径：", 1)[1].split("。", 1)[0]
    return {name for word, name in ROUTES_ZH.items() if word in listed}


NO_ROUTE_STATE = dict(arbitration_agreed=False, contract_notarised=False, mortgage_registered=False,
                      open_disputes=0, litigation_clause=False)


@pytest.mark.parametrize("state, expected", [
    ({}, set()),
    # online arbitration: an arbitration agreement, which then excludes litigation (或裁或审)
    ({"arbitration_agreed": True}, {"arbitration"}),
    ({"arbitration_agreed": True, "litigation_clause": True}, {"arbitration"}),
    ({"litigation_clause": True}, {"litigation"}),
    # a notarised enforceable instrument: the contract notarised with enforcement effect
    ({"contract_notarised": True}, {"notarised"}),
    # the special procedure: the mortgage registered and no substantive dispute open
    ({"mortgage_registered": True}, {"security"}),
    ({"mortgage_registered": True, "open_disputes": 1}, set()),
    ({"contract_notarised": True, "mortgage_registered": True, "litigation_clause": True},
     {"notarised", "security", "litigation"}),
])
def test_a_legal_review_lists_exactly_the_routes_whose_preconditions_hold(strategy, small_book, state, expected):
    if state.get("open_disputes"):           # the strategy's own dispute hold would plan nothing
        from postloan_builtins.collection import TieredStrategy
        strategy = TieredStrategy({"strategy": {"tiered": {"hold_on_dispute": False}}})
    script = _legal_scripts(strategy, small_book, **{**NO_ROUTE_STATE, **state})["LEGAL_REVIEW"]
    assert _routes(script) == expected
    if not expected:
        assert "暂无可用途径" in script


@pytest.mark.parametrize("state, basis", [
    ({}, "未记录法律依据（不得收车）"),
    ({"surrender_agreed_at": NOW}, "客户书面同意交车"),
    ({"court_order_at": NOW}, "法院判决或裁定"),
    ({"arbitral_award_at": NOW}, "仲裁裁决（经法院执行）"),
])
def test_a_repossession_order_states_its_recorded_legal_basis(strategy, small_book, state, basis):
    none = dict(surrender_agreed_at=None, court_order_at=None, arbitral_award_at=None, repossessed=False)
    columns = {**none, **state}
    columns = {k: (np.array([None], dtype="datetime64[us]") if v is None and k.endswith("_at") else v)
               for k, v in columns.items()}
    scripts = _legal_scripts(strategy, small_book, **{k: (v[0] if isinstance(v, np.ndarray) else v)
                                                      for k, v in columns.items()})
    assert f"法律依据：{basis}。" in scripts["REPOSSESSION"]
