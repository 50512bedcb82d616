"""Champion/challenger arms: a stable, seeded assignment; every decision and audit record
carries its arm; rulesets and strategies read it (docs/evaluation.md, "Arms")."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from kernel.audit import read_audit
from kernel.evaluation.arms import ARMS, SLOTS, Experiment, ExperimentError, add_arm, slot_of, slots
from kernel.pipeline import Pipeline
from kernel.synth import generate

UTC = dt.timezone.utc
AS_OF = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 2, 30, tzinfo=UTC)
CONFIG = {"experiment": {"name": "t", "seed": "2026q4", "arms": {"CHAMPION": 0.8, "CHALLENGER": 0.15, "HOLDOUT": 0.05}}}
IDS = [f"AC{i:010d}" for i in range(20_000)]


def test_slots_are_fixed_numbers_of_seed_and_id():
    # pinned: a change of the hash would move every account of every running experiment
    assert [slot_of(i, "2026q4") for i in ("AC0000000000", "AC0000000001", "AC0000000002")] == \
        [int(x) for x in slots(pa.array(["AC0000000000", "AC0000000001", "AC0000000002"]), "2026q4")]
    assert [slot_of(i, "s1") for i in ("AC0000000000", "AC0000000001", "AC0000000002")] == [4243, 6906, 9124]
    assert slot_of("AC0000000000", "s2") != slot_of("AC0000000000", "s1")


def test_the_same_slots_in_another_process_whatever_its_hash_seed():
    code = "from kernel.evaluation.arms import slots; import pyarrow as pa; " \
           f"print(list(slots(pa.array({IDS[:50]!r}), '2026q4')))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert eval(out) == [int(s) for s in slots(pa.array(IDS[:50]), "2026q4")]


def test_vectorized_slots_equal_the_one_account_path_whatever_the_batch():
    ids = IDS[:2000] + ["", "é", "账户-中文-01", "x" * 70]
    whole = slots(pa.array(ids), "seed")
    assert [slot_of(i, "seed") for i in ids] == whole.tolist()
    # a slice, a chunked array, a reversed order, a NumPy array: each account keeps its slot
    assert slots(pa.array(ids).slice(100, 50), "seed").tolist() == whole[100:150].tolist()
    assert slots(pa.chunked_array([ids[:7], ids[7:]]), "seed").tolist() == whole.tolist()
    assert slots(pa.array(ids[::-1]), "seed").tolist() == whole[::-1].tolist()
    assert slots(np.array(ids, dtype=object), "seed").tolist() == whole.tolist()
    assert 0 <= whole.min() and whole.max() < SLOTS


def test_shares_are_met_and_adding_an_arm_moves_no_other_account():
    e = Experiment.from_config(CONFIG)
    arms = e.assign(pa.array(IDS))
    share = np.bincount(arms, minlength=len(ARMS)) / len(IDS)
    assert abs(share[ARMS.index("CHAMPION")] - 0.80) < 0.01
    assert abs(share[ARMS.index("CHALLENGER")] - 0.15) < 0.01
    assert abs(share[ARMS.index("HOLDOUT")] - 0.05) < 0.005
    # two arms with 95 % of the slots; then a third listed last takes the free 5 %
    two = Experiment.from_config({"experiment": {"seed": "2026q4", "arms": {"CHAMPION": 0.8, "CHALLENGER": 0.15}}})
    before = two.assign(pa.array(IDS))
    assert (before == 0).mean() == pytest.approx(0.05, abs=0.005)         # NONE: the slots no arm owns
    placed = before != 0
    assert (arms[placed] == before[placed]).all()
    # explicit ranges: CHALLENGER_2 carved out of CHAMPION's end moves only those accounts
    carved = Experiment.from_config({"experiment": {"seed": "2026q4", "arms": {
        "CHAMPION": [0, 7000], "CHALLENGER_2": [7000, 8000], "CHALLENGER": [8000, 9500], "HOLDOUT": [9500, 10000]}}})
    after = carved.assign(pa.array(IDS))
    moved = after != arms
    assert (after[moved] == ARMS.index("CHALLENGER_2")).all() and (arms[moved] == ARMS.index("CHAMPION")).all()
    assert 0.08 < moved.mean() < 0.12


@pytest.mark.parametrize("arms,message", [
    ({"CHAMPION": 0.8, "WINNER": 0.2}, "'WINNER' is not an arm name"),
    ({"CHAMPION": 0.8, "CHALLENGER": 0.3}, "add up to more than 1"),
    ({"CHAMPION": 0.80005}, "multiple of 0.0001"),
    ({"CHAMPION": [0, 6000], "CHALLENGER": [5000, 10000]}, "CHAMPION and CHALLENGER overlap"),
    ({"CHAMPION": [0, 6000], "CHALLENGER": 0.2}, "not both"),
    ({"CHAMPION": [0, 10001]}, "0 <= start < end <= 10000"),
    ({"NONE": 0.5}, "'NONE' is not an arm name"),
])
def test_a_bad_configuration_names_the_key(arms, message):
    with pytest.raises(ExperimentError, match=message) as e:
        Experiment.from_config({"experiment": {"seed": 1, "arms": arms}, "_source": "conf.toml"})
    assert "conf.toml: [experiment.arms]" in str(e.value)
    with pytest.raises(ExperimentError, match=r"\[experiment\] seed is required"):
        Experiment.from_config({"experiment": {"arms": {"CHAMPION": 1.0}}})
    with pytest.raises(ExperimentError, match="'sed': unknown key"):
        Experiment.from_config({"experiment": {"sed": 1, "arms": {"CHAMPION": 1.0}}})


@pytest.fixture(scope="module")
def kernel():
    from kernel.runtime import Kernel
    return Kernel.load()


@pytest.fixture(scope="module")
def book():
    return generate(3_000, seed=5, as_of=AS_OF)


def test_every_decision_and_audit_record_carries_the_arm(kernel, book, tmp_path):
    pipe = Pipeline(kernel, audit_path=tmp_path / "audit.log", config=CONFIG)
    expected = np.array(ARMS, dtype=object)[Experiment.from_config(CONFIG).assign(book["account_id"])]
    result = pipe.run(book, AS_OF, NOW)
    assert result.decisions["experiment.arm"].to_pylist() == expected.tolist()
    # one account through the record path and a few through the columns path: the same arms
    record = book.slice(17, 1).to_pylist()[0]
    one = pipe.run_record(record, AS_OF, NOW)
    assert one.decision_record["experiment.arm"] == expected[17]
    records = list(read_audit(tmp_path / "audit.log"))
    assert records[0].meta["experiment"] == {"name": "t", "seed": "2026q4",
                                              "arms": {"CHAMPION": [0, 8000], "CHALLENGER": [8000, 9500],
                                                       "HOLDOUT": [9500, 10000]}}
    assert records[0].decisions["experiment.arm"].to_pylist() == expected.tolist()
    assert records[1].decisions["experiment.arm"].to_pylist() == [expected[17]]
    # without an experiment: no arm column, and the input says NONE
    plain = Pipeline(kernel, audit_path=tmp_path / "plain.log", config={})
    assert "experiment.arm" not in plain.run(book.slice(0, 10), AS_OF, NOW).decisions.column_names
    assert set(plain.with_state(book.slice(0, 10), AS_OF, NOW)["experiment_arm"].cast(pa.string()).to_pylist()) == {"NONE"}


RULESET = textwrap.dedent("""\
    ruleset: arm_offer
    version: "1"
    hit: first
    inputs:
      experiment_arm: {enum: [NONE, CHAMPION, CHALLENGER, CHALLENGER_2, CHALLENGER_3, HOLDOUT]}
      dpd: int
    outputs:
      early_call: {type: bool, default: false}
    rules:
      - id: challenger_calls_early
        when: experiment_arm == CHALLENGER and dpd >= 1
        then: {early_call: true}
    tests:
      - given: {experiment_arm: CHALLENGER, dpd: 3}
        expect: {early_call: true}
      - given: {experiment_arm: CHAMPION, dpd: 3}
        expect: {early_call: false}
    """)


def test_a_ruleset_reads_the_arm_like_any_enum_input(book, tmp_path):
    from kernel.runtime import Kernel
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "arm_offer.yaml").write_text(RULESET)
    k = Kernel.load(tmp_path / "bundle")
    pipe = Pipeline(k, audit_path=tmp_path / "audit.log", config=CONFIG)
    d = pipe.run(book, AS_OF, NOW, actions=False).decisions      # (a bundle without the tier: no plan)
    late = np.asarray(book["dpd"].to_numpy() >= 1)
    challenger = np.asarray(pc.equal(d["experiment.arm"], "CHALLENGER").to_numpy(zero_copy_only=False))
    early = np.asarray(d["arm_offer.early_call"].to_numpy(zero_copy_only=False))
    assert (early == (late & challenger)).all() and early.sum() > 0
    assert pipe.run_record(book.filter(pa.array(late & challenger)).slice(0, 1).to_pylist()[0], AS_OF, NOW,
                             actions=False).decision_record["arm_offer.early_call"] is True


def test_a_strategy_reads_the_arm_from_its_batch(kernel, book, tmp_path):
    from kernel.hookspecs import Batch

    class HoldoutSilent:
        """The built-in tiered plan, minus every action for the HOLDOUT arm."""

        def __init__(self, inner):
            self.inner = inner

        def plan(self, batch: Batch):
            plan = self.inner.plan(batch)
            keep = batch.enum("experiment_arm")[plan["row"]] != ARMS.index("HOLDOUT")
            return {k: (v.filter(pa.array(keep)) if isinstance(v, pa.Array) else np.asarray(v)[keep])
                    for k, v in plan.items()}

    pipe = Pipeline(kernel, audit_path=tmp_path / "a.log", config=CONFIG)
    tiered = pipe.strategy
    pipe.strategy = HoldoutSilent(tiered)
    result = pipe.run(book, AS_OF, NOW)
    holdout = set(pc.filter(result.decisions["account_id"], pc.equal(result.decisions["experiment.arm"], "HOLDOUT"))
                  .to_pylist())
    acted = set(result.actions["account_id"].to_pylist())
    assert holdout and not (holdout & acted) and acted


def test_postloan_decide_writes_the_arm(book, tmp_path):
    from kernel.cli import main
    pq.write_table(book.slice(0, 500), tmp_path / "book.parquet")
    (tmp_path / "conf.toml").write_text('[experiment]\nseed = "2026q4"\n[experiment.arms]\nCHAMPION = 0.8\n'
                                         'CHALLENGER = 0.15\nHOLDOUT = 0.05\n')
    assert main(["decide", "--in", str(tmp_path / "book.parquet"), "--out", str(tmp_path / "d.parquet"),
                 "--as-of", "2026-11-28", "--config", str(tmp_path / "conf.toml"), "--quiet"]) == 0
    d = pq.read_table(tmp_path / "d.parquet")
    expected = np.array(ARMS, dtype=object)[Experiment.from_config(CONFIG).assign(book["account_id"][:500])]
    assert d["experiment.arm"].to_pylist() == expected.tolist()


def test_add_arm_replaces_a_given_column_and_handles_records():
    e = Experiment.from_config(CONFIG)
    t = pa.table({"account_id": IDS[:5], "experiment_arm": ["HOLDOUT"] * 5})
    got = add_arm(t, e)["experiment_arm"].cast(pa.string()).to_pylist()
    assert got == [e.assign_one(i) for i in IDS[:5]]
    from kernel.hookspecs import Record
    assert add_arm(Record({"account_id": IDS[3]}), e)["experiment_arm"] == e.assign_one(IDS[3])
    assert add_arm({"account_id": np.array(IDS[:3])}, e)["experiment_arm"].tolist() == [e.assign_one(i) for i in IDS[:3]]
