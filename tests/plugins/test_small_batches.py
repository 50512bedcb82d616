"""A request's few accounts take the scalar twins (plan_one, check_one): differential tests
against the vectorized strategy and policies, over generated accounts, actions and instants
(DST changes included)."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import kernel
from kernel.hookspecs import ACTION, ActionBatch, ActionRow, AccountRow, Batch, CompliancePolicy, Verdict, Verdicts
from kernel.pipeline import PLUGIN_ERROR, Pipeline
from kernel.plugins import PluginManager
from plugin_helpers import columns_of, us, utc
from test_pipeline_stage import decisions_for

ZONES = ["Asia/Shanghai", "Asia/Urumqi", "America/New_York", "America/Los_Angeles", "America/Phoenix",
         "America/Chicago"]
#: instants around DST changes and quiet-hour edges are favoured
AROUND = [utc(2026, 3, 8, 6, 0), utc(2026, 11, 1, 5, 0), utc(2026, 11, 28, 13, 59), utc(2026, 11, 27, 23, 59),
          utc(2026, 7, 1, 0, 59)]

accounts_strategy = st.fixed_dictionaries({
    "time_zone": st.sampled_from(ZONES), "country": st.sampled_from(["CN", "US"]),
    "phone_valid": st.booleans(), "has_third_party_contact": st.booleans(),
    "consent_automated_contact": st.booleans(), "contact_opt_out": st.booleans(),
    "connected_calls_today": st.integers(0, 4), "call_attempts_today": st.integers(0, 8),
    "consecutive_failed_attempts": st.integers(0, 5), "calls_7d": st.integers(0, 9),
    "open_complaints": st.integers(0, 1), "litigation_clause": st.booleans(), "contact_records_kept": st.booleans(),
    "demand_notices_sent": st.integers(0, 3),
    "last_conversation_at": st.one_of(st.none(), st.integers(-9 * 24 * 60, 60).map(
        lambda m: utc(2026, 11, 28, 2, 0) + dt.timedelta(minutes=m))),
    "litigation.eligible": st.one_of(st.none(), st.booleans()),
    "litigation.missing": st.sampled_from(["NONE", "NOT_SEVERE", "NO_CLAUSE", "EVIDENCE_INCOMPLETE",
                                           "NO_WILFUL_DEFAULT", "BELOW_THRESHOLD", "SOMETHING_NEW"]),
})


@st.composite
def scenarios(draw):
    accounts = draw(st.lists(accounts_strategy, min_size=1, max_size=4))
    base = draw(st.sampled_from(AROUND)) + dt.timedelta(minutes=draw(st.integers(-600, 600)))
    planned = draw(st.lists(st.tuples(st.integers(0, len(accounts) - 1), st.sampled_from(list(ACTION)),
                                      st.integers(0, 36 * 60)), min_size=1, max_size=10))
    scripts = [draw(st.sampled_from([None, "请转告王伟回电。", "王伟的车贷已逾期。", "Please call us back.", "Your loan is past due."]))
               for _ in planned]
    return accounts, base, planned, scripts


def _batch(accounts, now):
    cols = columns_of([{k: v for k, v in a.items() if not k.startswith("litigation.")} for a in accounts])
    eligible = [a["litigation.eligible"] for a in accounts]
    decisions = {"litigation.eligible": np.ma.masked_array([bool(e) for e in eligible], mask=[e is None for e in eligible]),
                 "litigation.missing": np.array([a["litigation.missing"] for a in accounts], dtype=object)}
    return Batch(len(accounts), dt.date(2026, 11, 28), now, [decisions, cols])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_each_policys_check_one_agrees_with_check(policies, scenario):
    accounts, now, planned, scripts = scenario
    batch = _batch(accounts, now)
    rows = np.array([p[0] for p in planned])
    action = np.array([ACTION[p[1]] for p in planned], np.int8)
    earliest = np.array([us(now) + p[2] * 60_000_000 for p in planned], np.int64)
    vector = ActionBatch(batch, rows, action, earliest, script=pa.array(scripts, pa.string()))
    account_rows = [AccountRow(batch, i) for i in range(batch.n)]
    siblings: list = []
    for k, p in enumerate(planned):
        siblings.append(ActionRow(account_rows[p[0]], p[1], int(earliest[k]), scripts[k], k, siblings))
    for name, policy in policies.items():
        v = policy.check(vector)
        expected = list(zip(v.outcome.tolist(), v.reason_codes().tolist(), v.next_allowed_us.tolist()))
        got = []
        for row in siblings:
            one = Verdict()
            policy.check_one(row, one)
            got.append((one.outcome, one.code, one.next_allowed_us))
        assert got == expected, name


@pytest.fixture(scope="module")
def twin_pipelines(manager, tmp_path_factory):
    scalar = Pipeline(None, plugins=manager, audit_path=tmp_path_factory.mktemp("small") / "a.log")
    vector = Pipeline(None, plugins=manager, audit_path=tmp_path_factory.mktemp("small") / "b.log")
    vector.small_accounts = 0
    assert scalar.small_accounts >= 1
    return scalar, vector


def numpy_columns(table: pa.Table) -> dict[str, np.ndarray]:
    out = {}
    for name in table.schema.names:
        col = table[name]
        out[name] = np.array(col.to_pylist(), dtype=object) \
            if pa.types.is_dictionary(col.type) or pa.types.is_string(col.type) else col.to_numpy()
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(0, 4_999), min_size=1, max_size=4), st.sampled_from(AROUND),
       st.integers(-720, 720))
def test_the_small_path_gives_the_batch_paths_actions(twin_pipelines, small_book, picks, around, minutes):
    scalar, vector = twin_pipelines
    dpd = small_book["dpd"].to_numpy()
    delinquent = np.flatnonzero(dpd > 0)
    rows = [int(delinquent[p % delinquent.size]) if p % 3 else p for p in picks]
    sub = small_book.take(pa.array(rows))
    cols = numpy_columns(sub)
    decisions = decisions_for(cols)
    now = around + dt.timedelta(minutes=minutes)
    a = scalar.stage(cols, decisions, dt.date(2026, 11, 28), now)
    b = vector.stage(cols, decisions, dt.date(2026, 11, 28), now)
    assert a.actions.to_pylist() == b.actions.to_pylist()
    assert a.decisions.to_pylist() == b.decisions.to_pylist()


class BrokenTwin(CompliancePolicy):
    name = "test.broken_twin"
    reason_codes = {"X": "x"}

    def check(self, actions):
        return Verdicts(actions.n)

    def check_one(self, action, verdict):
        raise IndexError("boom")


def test_a_failing_scalar_twin_blocks_with_plugin_error(tmp_path, small_book):
    pm = PluginManager({})
    pm.register(type("P", (), {"postloan_compliance_policies": staticmethod(
        kernel.hookimpl(specname="postloan_compliance_policies")(lambda: [BrokenTwin()]))}), "test.twin")
    config = {"compliance": {"sets": {"cn": ["test.broken_twin", "cn.quiet_hours"], "us": ["us.regf_hours"]}}}
    pipe = Pipeline(None, plugins=pm, config=config, audit_path=tmp_path / "a.log")
    assert pipe.small_accounts >= 1
    row = int(np.flatnonzero((small_book["dpd"].to_numpy() > 0) & (np.array(small_book["country"].to_pylist()) == "CN"))[0])
    cols = numpy_columns(small_book.slice(row, 1))
    result = pipe.act(cols, decisions_for(cols), dt.date(2026, 11, 28), utc(2026, 11, 28, 2, 0))
    assert result.actions.num_rows >= 1
    assert set(result.actions["reason_code"].to_pylist()) == {PLUGIN_ERROR}
    assert result.errors and "compliance policy 'test.broken_twin' (plugin 'test.twin', hook " \
                             "postloan_compliance_policies) raised IndexError" in result.errors[0]


def test_routing_reads_only_the_columns_its_rules_name(twin_pipelines, small_book):
    scalar, vector = twin_pipelines
    row = int(np.flatnonzero(small_book["dpd"].to_numpy() > 0)[0])
    cols = numpy_columns(small_book.slice(row, 1).drop_columns(["region", "product"]))
    for pipe in (scalar, vector):               # the default rules route by country only
        assert pipe.stage(cols, decisions_for(cols), dt.date(2026, 11, 28), utc(2026, 11, 28, 2, 0)).actions.num_rows


def test_a_column_a_policy_needs_is_named_when_missing(twin_pipelines, small_book):
    scalar, vector = twin_pipelines
    dpd = small_book["dpd"].to_numpy()
    contactable = (dpd > 0) & (dpd <= 30) & small_book["phone_valid"].to_numpy(zero_copy_only=False)
    row = int(np.flatnonzero(contactable & (np.array(small_book["country"].to_pylist()) == "CN"))[0])
    cols = numpy_columns(small_book.slice(row, 1).drop_columns(["open_complaints"]))
    for pipe in (scalar, vector):
        result = pipe.stage(cols, decisions_for(cols), dt.date(2026, 11, 28), utc(2026, 11, 28, 2, 0))
        assert set(result.actions["reason_code"].to_pylist()) == {PLUGIN_ERROR}        # fail closed
        assert "compliance policy 'cn.complaint_pause'" in result.errors[0]
        assert "column 'open_complaints' is neither a book column nor a decision column" in result.errors[0]


def test_threads_sharing_a_pipeline_get_the_answers_one_thread_gets(twin_pipelines, small_book, tmp_path):
    """The gRPC server calls one Pipeline from many threads: results and audit stay whole."""
    import threading
    from kernel.pipeline import read_audit
    scalar, _ = twin_pipelines
    pipe = Pipeline(None, plugins=scalar.plugins, audit_path=tmp_path / "threads.log")
    delinquent = np.flatnonzero(small_book["dpd"].to_numpy() > 0)[:24]
    requests = [numpy_columns(small_book.slice(int(r), 1)) for r in delinquent]
    now = utc(2026, 11, 28, 2, 0)
    expected = [pipe.stage(c, decisions_for(c), dt.date(2026, 11, 28), now).actions.to_pylist() for c in requests]
    got: dict[int, list] = {}

    def serve(worker):
        for i in range(worker, len(requests), 4):
            got[i] = pipe.act(requests[i], decisions_for(requests[i]), dt.date(2026, 11, 28), now).actions.to_pylist()

    threads = [threading.Thread(target=serve, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [got[i] for i in range(len(requests))] == expected
    assert len(list(read_audit(pipe.audit.path))) == len(requests)
