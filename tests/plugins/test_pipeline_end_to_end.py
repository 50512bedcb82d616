"""The whole decision path with the shipped bundle: Kernel.decide → valuation → strategy →
compliance → audit, and the NumPy single-account path agreeing with the batch path."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from plugin_helpers import numpy_columns

from kernel.audit import read_audit
from kernel.pipeline import Pipeline
from kernel.schema import pii_columns, validate

AS_OF = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 2, 30, tzinfo=dt.timezone.utc)       # 10:30 in Shanghai, 21:30 in New York


@pytest.fixture(scope="module")
def pipeline(kernel, tmp_path_factory):
    return Pipeline(kernel, audit_path=tmp_path_factory.mktemp("e2e") / "audit.log")


@pytest.fixture(scope="module")
def result(pipeline, small_book):
    return pipeline.run(small_book, AS_OF, NOW)


def column(table, name):
    return np.array(table[name].to_pylist(), dtype=object)


def test_every_account_is_decided_and_every_action_fits_the_contract(result, small_book):
    assert result.decisions.num_rows == small_book.num_rows
    assert result.decisions["account_id"].to_pylist() == small_book["account_id"].to_pylist()
    validate(result.actions, "actions")
    assert set(column(result.actions, "action")) >= {"SMS", "VOICE_BOT", "PHONE", "FIELD_VISIT", "LEGAL_REVIEW"}


def promised(book) -> set[str]:
    """Accounts whose book shows an open promise to pay (its date not yet past)."""
    return {a for a, p in zip(book["account_id"].to_pylist(), book["promise_date"].to_pylist())
            if p is not None and p >= AS_OF}


def test_actions_follow_the_collection_tier(result, small_book):
    d, a = result.decisions, result.actions
    tier = dict(zip(d["account_id"].to_pylist(), d["collection_tier.tier"].to_pylist()))
    channel = dict(zip(d["account_id"].to_pylist(), d["collection_tier.channel"].to_pylist()))
    reminded = promised(small_book)
    for account, action in zip(a["account_id"].to_pylist(), a["action"].to_pylist()):
        if action == "SMS":
            assert channel[account] == "SMS_VOICE" or account in reminded
        elif action == "VOICE_BOT":
            assert channel[account] == "SMS_VOICE"
        elif action == "PHONE":
            assert channel[account] == "PHONE" or tier[account] == "SEVERE"      # SEVERE calls beside visits
        elif action == "FIELD_VISIT":
            assert channel[account] == "FIELD_VISIT"
        elif action == "THIRD_PARTY_CONTACT":
            assert tier[account] in ("MEDIUM", "SEVERE")
    acted = set(a["account_id"].to_pylist())
    current = {k for k, v in tier.items() if v == "NONE"}
    flagged = set(pc.filter(d["account_id"], pc.or_(d["disposal.repossess"], d["disposal.dispose"])).to_pylist())
    assert not (acted & current) - flagged


def test_legal_review_goes_ahead_only_when_the_litigation_ruleset_and_the_evidence_allow(result, small_book):
    d, a = result.decisions, result.actions
    eligible = dict(zip(d["account_id"].to_pylist(), d["litigation.eligible"].to_pylist()))
    records = dict(zip(small_book["account_id"].to_pylist(), small_book["contact_records_kept"].to_pylist()))
    notices = dict(zip(small_book["account_id"].to_pylist(), small_book["demand_notices_sent"].to_pylist()))
    legal = [r for r in a.to_pylist() if r["action"] == "LEGAL_REVIEW"]
    assert legal and any(r["outcome"] == "BLOCK" for r in legal)
    for r in legal:
        complete = eligible[r["account_id"]] and records[r["account_id"]] and notices[r["account_id"]] >= 2
        if r["outcome"] == "KEEP":
            assert complete
        elif r["policy"] == "litigation_preconditions":
            assert not complete and r["reason_code"].startswith("LITIGATION_")


def held(book) -> set[str]:
    """Accounts the strategy holds back: an open promise or a dispute (docs/ledger.md)."""
    return promised(book) | {a for a, r in zip(book["account_id"].to_pylist(),
                                               book["reported_overdue_reason"].to_pylist()) if r == "DISPUTE"}


def test_repossessed_cars_get_a_valuation_and_a_disposal_channel(result, small_book):
    d = result.decisions
    need = pc.or_(d["disposal.repossess"], d["disposal.dispose"])
    assert pc.sum(need).as_py() > 0
    valued = d.filter(need)
    assert valued["valuation.price"].to_pylist() == valued["rv_model.price"].to_pylist()
    assert set(valued["valuation.method"].to_pylist()) == {"rv_model"}
    assert pc.all(pc.is_valid(valued["disposal_channel.channel"])).as_py()
    disposal = result.actions.filter(pc.equal(result.actions["action"].cast(pa.string()), "DISPOSAL"))
    waiting = held(small_book)
    dispose = {a for a, x in zip(d["account_id"].to_pylist(), d["disposal.dispose"].to_pylist()) if x}
    assert dispose & waiting and dispose - waiting
    assert sorted(disposal["account_id"].to_pylist()) == sorted(dispose - waiting)


def test_the_audit_record_is_the_batch_without_personal_data(pipeline, result):
    record = list(read_audit(pipeline.audit.path))[-1]
    assert record.meta["bundle_hash"] == pipeline.kernel.bundle_hash
    assert not set(record.decisions.schema.names) & (pii_columns("book") | {"script"})
    assert record.actions.num_rows == result.actions.num_rows
    assert record.actions["outcome"].to_pylist() == result.actions["outcome"].to_pylist()


def numpy_account(book: pa.Table, rows) -> dict[str, np.ndarray]:
    """Accounts as the gRPC server hands them over: NumPy columns, text as str objects."""
    return numpy_columns(book.take(pa.array(rows)))


def test_the_numpy_path_agrees_with_the_batch_path(pipeline, result, small_book):
    dpd = small_book["dpd"].to_numpy()
    picks = [int(np.flatnonzero((dpd > lo) & (dpd <= hi))[0]) for lo, hi in ((0, 10), (10, 30), (30, 90), (90, 10_000))]
    us = np.flatnonzero(np.array(small_book["country"].to_pylist()) == "US")
    picks += [int(us[np.argmax(dpd[us])])]
    for row in picks:
        one = pipeline.run_columns(numpy_account(small_book, [row]), AS_OF, NOW)
        account = small_book["account_id"][row].as_py()
        expected = result.actions.filter(pc.equal(result.actions["account_id"], account))
        assert one.actions.to_pylist() == expected.to_pylist(), account
        batch_row = result.decisions.slice(row, 1).to_pylist()[0]
        single = one.decisions.to_pylist()[0]
        for name, value in batch_row.items():
            if isinstance(value, float):
                assert single[name] == pytest.approx(value, rel=1e-9, nan_ok=True), name
            else:
                assert single[name] == value, name


def test_the_record_path_agrees_with_the_batch_path(pipeline, result, small_book):
    """run_record: one account as Python scalars (Kernel.decide_record) — the gRPC Decide path."""
    dpd = small_book["dpd"].to_numpy()
    for row in [int(np.flatnonzero((dpd > lo) & (dpd <= hi))[0]) for lo, hi in ((0, 10), (10, 30), (90, 10_000))]:
        record = small_book.slice(row, 1).to_pylist()[0]
        one = pipeline.run_record(record, AS_OF, NOW)
        expected = result.actions.filter(pc.equal(result.actions["account_id"], record["account_id"]))
        assert one.actions.to_pylist() == expected.to_pylist()
        batch_row = result.decisions.slice(row, 1).to_pylist()[0]
        decided = one.decision_record
        for name, value in batch_row.items():
            if isinstance(value, float):
                assert decided[name] == pytest.approx(value, rel=1e-9, nan_ok=True), name
            else:
                assert decided[name] == value, name
    audit = list(read_audit(pipeline.audit.path))[-1]
    assert audit.decisions["account_id"].to_pylist() == [record["account_id"]]
    assert audit.actions["outcome"].to_pylist() == one.actions["outcome"].to_pylist()
    assert not set(audit.decisions.schema.names) & pii_columns("book")


def test_the_interval_logs_records_are_the_ones_the_always_log_writes(pipeline, small_book, tmp_path):
    """With ``sync = "interval"`` the writer thread builds each record (``AuditLog.append_built``)
    from the result's parts as they were when it was acted on: the log reads back exactly
    as the "always" log of the same calls, though each result's decisions are turned into
    a table right after (what a caller reading ``result.decisions`` does)."""
    logs = {sync: Pipeline(pipeline.kernel, plugins=pipeline.plugins, audit_path=tmp_path / f"{sync}.log",
                           audit_sync=sync) for sync in ("always", "interval")}
    dpd = small_book["dpd"].to_numpy()
    rows = [int(r) for r in np.flatnonzero(dpd > 10)[:3]] + [int(np.flatnonzero(dpd == 0)[0])]
    for pipe in logs.values():
        for row in rows:
            for actions in (True, False):
                result = pipe.run_record(small_book.slice(row, 1).to_pylist()[0], AS_OF, NOW, actions=actions)
                result.decisions
        pipe.run(small_book.slice(0, 40), AS_OF, NOW).decisions
        pipe.audit.close()
    always, interval = (list(read_audit(tmp_path / f"{sync}.log")) for sync in ("always", "interval"))
    assert len(always) == len(interval) == 2 * len(rows) + 1
    for a, b in zip(always, interval):
        assert a.meta == b.meta and a.decisions.equals(b.decisions) and a.actions.equals(b.actions)


def test_an_open_promise_leaves_a_reminder_only_and_a_dispute_stops_collection(result, small_book):
    """Without a ledger the book says what it can: a promise date not yet past is an open
    promise, a recorded overdue reason DISPUTE an open dispute (docs/ledger.md)."""
    reasons = dict(zip(small_book["account_id"].to_pylist(), small_book["reported_overdue_reason"].to_pylist()))
    disputed = {k for k, v in reasons.items() if v == "DISPUTE"}
    reminded = promised(small_book) - disputed
    actions = result.actions.to_pylist()
    assert reminded and disputed
    assert {r["action"] for r in actions if r["account_id"] in reminded} == {"SMS"}
    assert not [r for r in actions if r["account_id"] in disputed]


def test_a_decision_only_record_that_is_not_valued_stages_as_the_general_way(pipeline, small_book):
    """``stage(actions=False)`` of one account heading for neither repossession nor disposal
    skips the Batch (``Pipeline._stage_unvalued_record``): its decisions, conflicts and (no)
    actions are those of the general way (the stage with actions, which builds the Batch and
    asks the valuation), column order included; a valued account, a flag that is not a plain
    bool and a naive ``now`` take the general way."""
    from kernel.hookspecs import Record
    from kernel.pipeline import _NO_ACTIONS

    fast = valued = 0
    for record in small_book.slice(0, 120).to_pylist():
        stated = pipeline.record_with_state(record, AS_OF, NOW)
        decided = Record(pipeline.kernel.decide_record(stated, AS_OF))
        quick = pipeline._stage_unvalued_record(stated, decided, NOW)
        one = pipeline.stage(stated, decided, AS_OF, NOW, actions=False)
        general = pipeline.stage(stated, decided, AS_OF, NOW, actions=True)
        assert list(one.decision_record.items()) == list(general.decision_record.items())
        assert one.unique_conflicts == general.unique_conflicts and one.errors == []
        assert {k: len(v) for k, v in one.action_columns.items()} == {k: 0 for k in _NO_ACTIONS}
        if quick is None:
            valued += 1
            assert decided["disposal.repossess"] or decided["disposal.dispose"]
            assert one.decision_record["valuation.method"] is not None
        else:
            fast += 1
            assert list(quick.decision_record.items()) == list(one.decision_record.items())
    assert fast and valued, (fast, valued)
    record = small_book.slice(0, 1).to_pylist()[0]
    stated = pipeline.record_with_state(record, AS_OF, NOW)
    decided = Record(pipeline.kernel.decide_record(stated, AS_OF))
    assert pipeline._stage_unvalued_record(stated, Record(decided, **{"disposal.dispose": np.bool_(False)}), NOW) is None
    with pytest.raises(Exception, match="time-zone-aware"):
        pipeline.stage(stated, decided, AS_OF, NOW.replace(tzinfo=None), actions=False)
