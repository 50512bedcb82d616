"""The stages after the kernel (valuation → strategy → compliance → audit) on whole batches:
policies combined in sequence, routing by country/region/product, malformed plugins reported
by name and never silently allowed, and the NumPy path agreeing with the Arrow path.

The decision columns are input data built by hand (what the shipped rulesets produce); the
kernel's own decision is exercised end to end in test_pipeline_end_to_end.py.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import kernel
from kernel.errors import PostloanError
from kernel.hookspecs import ACTION, CollectionStrategy, CompliancePolicy, ValuationMethod, Verdicts
from kernel.audit import read_audit
from kernel.pipeline import NO_POLICY_SET, PLUGIN_ERROR, Pipeline
from kernel.plugins import PluginError, PluginManager
from kernel.schema import pii_columns, validate
from plugin_helpers import columns_of, us, utc

AS_OF = dt.date(2026, 11, 28)
NOW = utc(2026, 11, 28, 2, 0)         # 10:00 in Shanghai, 21:00 in New York


def decisions_for(book) -> dict[str, np.ndarray]:
    """Decision columns as the shipped rulesets would give them (input data), by DPD."""
    dpd = np.asarray(book["dpd"].to_numpy() if isinstance(book, pa.Table) else book["dpd"])
    repossessed = np.asarray(book["repossessed"].to_numpy(zero_copy_only=False) if isinstance(book, pa.Table)
                             else book["repossessed"])
    tier = np.select([dpd > 30, dpd > 10, dpd > 0], [3, 2, 1], 0)
    return {
        "collection_tier.tier": np.array(["NONE", "MILD", "MEDIUM", "SEVERE"], dtype=object)[tier],
        "collection_tier.channel": np.array(["NONE", "SMS_VOICE", "PHONE", "FIELD_VISIT"], dtype=object)[tier],
        "collection_tier.legal_review": tier == 3,
        "collection_tier.priority": tier + np.minimum(dpd / 1000, 0.9),
        "collection_tier.calls_per_day": np.where(tier == 2, 2, 1).astype(np.int64),
        "litigation.eligible": dpd > 90,
        "litigation.missing": np.where(dpd > 90, "NONE", "NOT_SEVERE").astype(object),
        "disposal.repossess": (dpd > 150) & ~repossessed,
        "disposal.dispose": (dpd > 150) & repossessed,
    }


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, manager):
    return Pipeline(None, plugins=manager, audit_path=tmp_path_factory.mktemp("audit") / "audit.log")


@pytest.fixture(scope="module")
def result(pipeline, small_book):
    return pipeline.act(small_book, pa.table(decisions_for(small_book)), AS_OF, NOW)


def test_actions_match_the_data_contract(result):
    actions = result.actions
    validate(actions, "actions")
    assert actions.num_rows > 500
    outcomes = set(actions["outcome"].to_pylist())
    assert outcomes == {"KEEP", "DEFER", "BLOCK"}
    kept = pc.equal(actions["outcome"].cast(pa.string()), "KEEP")
    assert pc.all(pc.is_null(pc.filter(actions["reason_code"], kept))).as_py()
    not_kept = pc.invert(kept)
    assert pc.all(pc.is_valid(pc.filter(actions["reason_code"], not_kept))).as_py()
    assert pc.all(pc.is_valid(pc.filter(actions["policy"], not_kept))).as_py()
    deferred = pc.equal(actions["outcome"].cast(pa.string()), "DEFER")
    assert pc.all(pc.greater(pc.filter(actions["next_allowed_at"], deferred), pa.scalar(NOW))).as_py()


def test_valuation_and_disposal_channel_become_decision_columns(result, small_book):
    d = result.decisions
    assert d.num_rows == small_book.num_rows
    need = pc.or_(d["disposal.repossess"], d["disposal.dispose"])
    price = d["valuation.price"]
    assert pc.all(pc.is_valid(pc.filter(price, need))).as_py()
    assert pc.all(pc.is_null(pc.filter(price, pc.invert(need)))).as_py()
    assert set(pc.filter(d["disposal_channel.channel"], need).to_pylist()) <= {
        "online_auction", "live_auction", "dealer_buyback", "leasing_company", "dismantler",
        "us_wholesale_auction", "us_dealer", "us_salvage"}
    disposal = result.actions.filter(pc.equal(result.actions["action"].cast(pa.string()), "DISPOSAL"))
    assert disposal.num_rows == pc.sum(d["disposal.dispose"]).as_py()


def test_the_audit_log_holds_the_batch_without_personal_data(pipeline, result):
    records = list(read_audit(pipeline.audit.path))
    record = records[-1]
    assert record.meta["rows"] == result.decisions.num_rows and record.meta["actions"] == result.actions.num_rows
    assert record.meta["as_of"] == "2026-11-28" and record.meta["now"] == NOW.isoformat()
    assert not set(record.decisions.schema.names) & (pii_columns("book") | {"script"})
    assert "script" not in record.actions.schema.names
    assert record.actions.to_pylist() == result.actions.drop_columns(["script"]).to_pylist()
    assert record.decisions["account_id"].to_pylist() == result.decisions["account_id"].to_pylist()


def test_no_name_or_script_reaches_the_audit_file(pipeline, small_book, result):
    blob = read_back_text(pipeline)
    for value in small_book["name"].to_pylist()[:200] + small_book["phone"].to_pylist()[:200]:
        assert value not in blob
    assert "您好" not in blob


def read_back_text(pipeline) -> str:
    """Every value of every audit record, as text (the file itself is compressed)."""
    parts = []
    for record in read_audit(pipeline.audit.path):
        parts.append(str(record.meta))
        parts.append(str(record.decisions.to_pylist()))
        parts.append(str(record.actions.to_pylist()))
    return "\n".join(parts)


def test_the_numpy_path_gives_the_arrow_paths_actions(pipeline, small_book, result):
    rows = np.flatnonzero(small_book["dpd"].to_numpy() > 0)[:5]
    sub = small_book.take(pa.array(rows))
    columns = {name: _numpy(sub[name]) for name in sub.schema.names}
    decisions = decisions_for(columns)
    small = pipeline.act(columns, decisions, AS_OF, NOW)
    expected = result.actions.filter(pc.is_in(result.actions["account_id"], sub["account_id"]))
    assert small.actions.to_pylist() == expected.to_pylist()
    record = list(read_audit(pipeline.audit.path))[-1]          # a small batch: a JSON record
    assert record.actions["account_id"].to_pylist() == small.actions["account_id"].to_pylist()
    assert record.actions["reason_code"].to_pylist() == small.actions["reason_code"].to_pylist()


def _numpy(column: pa.ChunkedArray) -> np.ndarray:
    """A column as the gRPC server hands it over: text as str objects, dates and instants as
    datetime64 (NaT for null), numbers as NumPy numbers (NaN for a null float)."""
    if pa.types.is_dictionary(column.type) or pa.types.is_string(column.type):
        return np.array(column.to_pylist(), dtype=object)
    return column.to_numpy()


# --- policies in sequence ------------------------------------------------------------------

class FixedPlan(CollectionStrategy):
    name = "fixed"

    def __init__(self, planned):
        self.planned = planned

    def plan(self, batch):
        return self.planned


def plugin_of(hook: str, component):
    return type("Plugin", (), {hook: staticmethod(kernel.hookimpl(specname=hook)(lambda: [component]))})


def pipeline_with(tmp_path, *components, config=None):
    pm = PluginManager(config or {})
    hooks = {CollectionStrategy: "postloan_collection_strategies", CompliancePolicy: "postloan_compliance_policies",
             ValuationMethod: "postloan_valuation_methods"}
    for i, component in enumerate(components):
        hook = next(h for base, h in hooks.items() if isinstance(component, base))
        pm.register(plugin_of(hook, component), f"test.{component.name}")
    cfg = {"pipeline": {"strategy": "fixed"}, **(config or {})}
    return Pipeline(None, plugins=pm, config=cfg, audit_path=tmp_path / "audit.log")


def one_account_plan(actions, earliest=None):
    n = len(actions)
    return {"row": np.zeros(n, np.int64), "action": np.array(actions, dtype=object),
            "priority": np.ones(n), "earliest_at": np.array(earliest or [us(NOW)] * n, np.int64)}


def run_one(pipe, account, at=NOW):
    cols = columns_of([account])
    return pipe.act(cols, {"litigation.eligible": np.array([True]), "litigation.missing": np.array(["NONE"], dtype=object)},
                    AS_OF, at)


def test_the_strictest_outcome_wins_and_the_first_blocking_reason_is_kept(tmp_path):
    late = utc(2026, 11, 28, 15, 0)                          # 23:00 in Shanghai: quiet hours too
    pipe = pipeline_with(tmp_path, FixedPlan(one_account_plan(["PHONE", "SMS"], earliest=[us(late)] * 2)))
    r = run_one(pipe, {"open_complaints": 1, "consent_automated_contact": False}, at=late)
    rows = r.actions.to_pylist()
    assert [(a["action"], a["outcome"], a["reason_code"], a["policy"]) for a in rows] == [
        ("PHONE", "BLOCK", "CN_COMPLAINT_OPEN", "cn.complaint_pause"),
        ("SMS", "BLOCK", "CN_COMPLAINT_OPEN", "cn.complaint_pause"),     # complaint_pause runs before consent
    ]
    assert rows[0]["next_allowed_at"] is None


def test_two_deferrals_keep_the_first_reason_and_the_later_time(tmp_path):
    early = utc(2026, 11, 27, 23, 0)                          # 07:00 in Shanghai
    pipe = pipeline_with(tmp_path, FixedPlan(one_account_plan(["PHONE"], earliest=[us(early)])))
    r = run_one(pipe, {"connected_calls_today": 3, "call_attempts_today": 3}, at=early)
    (a,) = r.actions.to_pylist()
    assert (a["outcome"], a["reason_code"], a["policy"]) == ("DEFER", "CN_QUIET_HOURS", "cn.quiet_hours")
    assert a["next_allowed_at"] == utc(2026, 11, 29, 0, 0)    # tomorrow 08:00 (call limit), not today 08:00


def test_policy_sets_are_chosen_by_country_region_and_product(tmp_path):
    config = {"compliance": {
        "sets": {"lease": ["cn.quiet_hours"], "cn": ["cn.complaint_pause", "cn.quiet_hours"]},
        "apply": [{"country": "CN", "product": "FINANCE_LEASE", "region": ["CN-GD", "CN-SH"], "set": "lease"},
                  {"country": "CN", "set": "cn"}]}}
    plan = {"row": np.arange(3), "action": np.array(["PHONE"] * 3, dtype=object), "priority": np.ones(3),
            "earliest_at": np.full(3, us(NOW))}
    pipe = pipeline_with(tmp_path, FixedPlan(plan), config=config)
    accounts = [{"product": "FINANCE_LEASE", "open_complaints": 1},                       # lease set: no complaint rule
                {"product": "FINANCE_LEASE", "region": "CN-BJ", "open_complaints": 1},    # cn set
                {"country": "US", "time_zone": "America/New_York"}]                       # no set applies
    r = pipe.act(columns_of(accounts), {"x": np.zeros(3)}, AS_OF, NOW)
    assert [(a["outcome"], a["reason_code"]) for a in r.actions.to_pylist()] == [
        ("KEEP", None), ("BLOCK", "CN_COMPLAINT_OPEN"), ("BLOCK", NO_POLICY_SET)]



def test_policy_sets_by_country_and_product_without_region_take_the_first_matching_rule(tmp_path):
    # no rule reads the region: routing is one lookup in a table of (country, product) codes
    config = {"compliance": {
        "sets": {"lease": ["cn.quiet_hours"], "cn": ["cn.complaint_pause", "cn.quiet_hours"]},
        "apply": [{"country": "CN", "product": "FINANCE_LEASE", "set": "lease"},
                  {"country": "CN", "set": "cn"}, {"product": "FINANCE_LEASE", "set": "cn"}]}}
    plan = {"row": np.arange(4), "action": np.array(["PHONE"] * 4, dtype=object), "priority": np.ones(4),
            "earliest_at": np.full(4, us(NOW))}
    pipe = pipeline_with(tmp_path, FixedPlan(plan), config=config)
    us_account = {"country": "US", "time_zone": "America/New_York"}
    accounts = [{"product": "FINANCE_LEASE", "open_complaints": 1},                        # lease: first rule wins
                {"open_complaints": 1},                                                   # cn
                {**us_account, "product": "FINANCE_LEASE", "open_complaints": 1},         # cn, by product
                us_account]                                                               # no set applies
    r = pipe.act(columns_of(accounts), {"x": np.zeros(4)}, AS_OF, NOW)
    assert [(a["outcome"], a["reason_code"]) for a in r.actions.to_pylist()] == [
        ("KEEP", None), ("BLOCK", "CN_COMPLAINT_OPEN"), ("BLOCK", "CN_COMPLAINT_OPEN"), ("BLOCK", NO_POLICY_SET)]

class Raising(CompliancePolicy):
    name = "test.raising"
    reason_codes = {"NEVER": "never given"}

    def check(self, actions):
        raise ZeroDivisionError("a debtor's name could be here")


class WrongLength(CompliancePolicy):
    name = "test.wrong_length"
    reason_codes = {"X": "x"}

    def check(self, actions):
        return Verdicts(actions.n + 1)


class UncataloguedReason(CompliancePolicy):
    name = "test.uncatalogued"
    reason_codes = {"X": "x"}

    def check(self, actions):
        return Verdicts(actions.n).block(np.ones(actions.n, bool), "SOMETHING_ELSE")


class NoNextTime(CompliancePolicy):
    name = "test.no_next_time"
    reason_codes = {"WAIT": "wait"}

    def check(self, actions):
        v = Verdicts(actions.n).defer(np.ones(actions.n, bool), "WAIT", 0)
        v.next_allowed_us[:] = np.iinfo(np.int64).min
        return v


@pytest.mark.parametrize("policy, problem", [
    (Raising(), r"raised ZeroDivisionError at test_pipeline_stage.py:\d+"),
    (WrongLength(), r"returned verdicts for 3 actions, expected 2"),
    (UncataloguedReason(), r"gave reason code 'SOMETHING_ELSE', which is not in its reason_codes"),
    (NoNextTime(), r"deferred an action without a next allowed time"),
])
def test_a_broken_policy_blocks_its_actions_with_plugin_error(tmp_path, policy, problem):
    config = {"compliance": {"sets": {"cn": ["cn.automated_consent", policy.name, "cn.quiet_hours"]},
                             "apply": [{"country": "CN", "set": "cn"}]}}
    pipe = pipeline_with(tmp_path, FixedPlan(one_account_plan(["PHONE", "SMS"])), policy, config=config)
    r = run_one(pipe, {"consent_automated_contact": False})
    rows = r.actions.to_pylist()
    # the SMS was already blocked for consent (first blocking reason kept); the call is blocked by the error
    assert [(a["outcome"], a["reason_code"], a["policy"]) for a in rows] == [
        ("BLOCK", PLUGIN_ERROR, policy.name), ("BLOCK", "CN_NO_AUTOMATED_CONSENT", "cn.automated_consent")]
    (error,) = r.errors
    assert __import__("re").search(rf"compliance policy '{policy.name}' \(plugin 'test.{policy.name}', hook "
                                   rf"postloan_compliance_policies\) {problem}", error), error
    assert "name could be here" not in error
    record = list(read_audit(pipe.audit.path))[-1]
    assert record.meta["errors"] == [error]


class BadPlans(CollectionStrategy):
    name = "fixed"

    def __init__(self, mode):
        self.mode = mode

    def plan(self, batch):
        good = one_account_plan(["PHONE"])
        if self.mode == "raise":
            raise RuntimeError("boom")
        if self.mode == "length":
            return {**good, "priority": np.ones(2)}
        if self.mode == "action":
            return {**good, "action": np.array(["TELEGRAM"], dtype=object)}
        if self.mode == "row":
            return {**good, "row": np.array([5])}
        return [good]


@pytest.mark.parametrize("mode, message", [
    ("raise", r"raised RuntimeError at test_pipeline_stage.py:\d+"),
    ("length", r"column 'priority' has 2 values, column 'row' 1"),
    ("action", r"column 'action' holds 'TELEGRAM', not one of SMS"),
    ("row", r"column 'row' holds 5, outside 0…0"),
    ("list", r"plan\(\) must return a mapping of columns, got list"),
])
def test_a_broken_strategy_fails_the_batch_naming_plugin_and_hook(tmp_path, mode, message):
    pipe = pipeline_with(tmp_path, BadPlans(mode))
    with pytest.raises(PluginError, match=r"collection strategy 'fixed' \(plugin 'test.fixed', hook "
                                          r"postloan_collection_strategies\)(:)? " + message) as e:
        run_one(pipe, {})
    assert (e.value.plugin, e.value.hook) == ("test.fixed", "postloan_collection_strategies")
    assert not pipe.audit.path.exists()                         # nothing half-done was recorded


class BrokenValuation(ValuationMethod):
    name = "broken"

    def value(self, batch, rows):
        return np.ones(rows.size + 1)


def test_a_broken_valuation_fails_the_batch(tmp_path):
    pipe = pipeline_with(tmp_path, FixedPlan(one_account_plan(["DISPOSAL"])), BrokenValuation(),
                         config={"pipeline": {"valuation": "broken"}})
    pipe.config["pipeline"]["strategy"] = "fixed"
    cols = columns_of([{"model_year": 2022, "mileage_km": 50000.0, "condition_grade": "B"}])
    with pytest.raises(PluginError, match=r"valuation method 'broken' \(plugin 'test.broken', hook "
                                          r"postloan_valuation_methods\) returned 2 values for 1 rows"):
        pipe.act(cols, {"disposal.dispose": np.array([True])}, AS_OF, NOW)


@pytest.mark.parametrize("config, message", [
    ({"pipeline": {"strategy": "aggressive"}}, r"\[pipeline\] strategy = 'aggressive': no loaded plugin provides it "
                                               r"\(available: tiered\)"),
    ({"compliance": {"sets": {"cn": ["cn.quiet_hour"]}}}, r"\[compliance.sets\] cn names policy 'cn.quiet_hour', which no "
                                                         r"loaded plugin provides"),
    ({"compliance": {"apply": [{"country": "JP", "set": "cn"}]}}, r"rule 1: country 'JP' is not one of CN, US"),
    ({"compliance": {"apply": [{"country": "CN", "set": "china"}]}}, r"rule 1: set 'china' is not in \[compliance.sets\]"),
    ({"compliance": {"apply": [{"county": "CN", "set": "cn"}]}}, r"rule 1: unknown key 'county'"),
])
def test_configuration_mistakes_are_named_at_construction(tmp_path, manager, config, message):
    from kernel.plugins import load_config
    with pytest.raises(PostloanError, match=message):
        Pipeline(None, plugins=manager, config=load_config(config), audit_path=tmp_path / "a.log")


def test_denied_builtins_make_the_default_configuration_fail_clearly(tmp_path):
    pm = PluginManager({"plugins": {"deny": ["builtins.compliance"]}})
    with pytest.raises(PostloanError, match=r"names policy 'hold.bankruptcy', which no loaded plugin provides"):
        Pipeline(None, plugins=pm, audit_path=tmp_path / "a.log")


class _FixedEngine:
    """An engine whose verdicts are given: the pattern of two actions, repeated."""

    def __init__(self, outcome, reasons, until, names):
        self.v = (outcome, reasons, until, names)

    def judge(self, policies, actions):
        reps = actions.n // 2
        return tuple(np.tile(np.asarray(x), reps) for x in self.v)


def test_judge_run_checks_few_as_many(pipeline):
    """An engine run's verdicts are checked the same for a request's few actions (plain values)
    as for a batch's many (arrays): malformed ones are refused either way; and a request's
    verdicts are the set's as they are only when clean where they keep."""
    from kernel.hookspecs import ActionBatch, Batch
    NULL = -(1 << 63)
    o = lambda *v: np.array(v, np.int8)                                      # noqa: E731
    obj = lambda *v: np.array(list(v) + [object()], dtype=object)[:-1]       # noqa: E731
    cases = [  # (verdicts of two actions, well-formed, clean where they keep)
        ((o(0, 2), obj(None, "R"), np.array([NULL, NULL]), obj(None, "p")), True, True),
        ((o(1, 0), obj("D", None), np.array([5, NULL]), obj("p", None)), True, True),
        ((o(1, 0), obj("D", None), np.array([NULL, NULL]), obj("p", None)), False, False),   # DEFER, no time
        ((o(3, 0), obj("X", None), np.array([NULL, NULL]), obj("p", None)), False, False),   # no such outcome
        ((o(-1, 0), obj("X", None), np.array([NULL, NULL]), obj("p", None)), False, False),
        ((o(0, 0), obj("R", None), np.array([NULL, NULL]), obj(None, None)), True, False),   # a reason on KEEP
        ((o(0, 2), obj(None, "R"), np.array([7, NULL]), obj(None, "p")), True, False),       # a time on KEEP
        ((o(0, 2), obj(None, "R"), np.array([NULL, NULL]), obj("p", "p")), True, False),     # a policy on KEEP
        ((o(2, 2), obj("R", "R"), np.array([NULL, NULL]), obj("p", "p")), True, True),
    ]
    entries = [("fixed", None, "test", None)]
    for verdicts, formed, clean in cases:
        engine = _FixedEngine(*verdicts)
        for n in (2, 200):
            batch = Batch(n, AS_OF, NOW, [{"dpd": np.zeros(n, np.int64)}])
            actions = ActionBatch(batch, np.arange(n), np.zeros(n, np.int8), np.zeros(n, np.int64))
            found = pipeline._judge_run(engine, entries, actions, [])
            assert (found is not None) == formed, (verdicts, n)
            if found is not None:
                for got, given in zip(found, verdicts):
                    assert got.tolist() == np.tile(given, n // 2).tolist()
        batch = Batch(2, AS_OF, NOW, [{"dpd": np.zeros(2, np.int64)}])
        actions = ActionBatch(batch, np.arange(2), np.zeros(2, np.int8), np.zeros(2, np.int64))
        assert (pipeline._judge_run(engine, entries, actions, [], whole=True) is not None) == (formed and clean)
    # an outcome column of another type is the arrays' check's, never a request's set verdicts
    engine = _FixedEngine(np.array([0, 2], np.int64), obj(None, "R"), np.array([NULL, NULL]), obj(None, "p"))
    batch = Batch(2, AS_OF, NOW, [{"dpd": np.zeros(2, np.int64)}])
    actions = ActionBatch(batch, np.arange(2), np.zeros(2, np.int8), np.zeros(2, np.int64))
    assert pipeline._judge_run(engine, entries, actions, [], whole=True) is None


def test_a_strategy_handing_back_the_same_typed_plan_gets_the_same_actions_and_its_plan_untouched(tmp_path):
    """A plan already in its types is taken as it is (no conversion): the stage must not
    write its verdicts into the strategy's own dict, which the strategy may hand out again."""
    codes = ACTION["PHONE"], ACTION["SMS"]
    planned = {"row": np.zeros(2, np.int64), "action": np.array(codes, np.int8), "priority": np.ones(2),
               "earliest_at": np.full(2, us(NOW), np.int64), "script_id": np.array([None, None], dtype=object),
               "language": np.array([None, None], dtype=object), "script": [None, None]}
    keys = sorted(planned)
    pipe = pipeline_with(tmp_path, FixedPlan(planned))
    first = run_one(pipe, {"connected_calls_today": 0}).actions.to_pylist()
    assert sorted(planned) == keys and planned["row"].tolist() == [0, 0]
    assert run_one(pipe, {"connected_calls_today": 0}).actions.to_pylist() == first
    assert [a["action"] for a in first] == ["PHONE", "SMS"]
