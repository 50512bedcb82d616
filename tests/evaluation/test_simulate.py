"""The simulator: a known arm effect is recovered by the KPIs, within their interval."""
from __future__ import annotations

import datetime as dt

import pytest

from kernel.evaluation.kpis import Settings, evaluate, summarize
from kernel.evaluation.records import store_part
from kernel.evaluation.simulate import Behaviour, Simulator
from kernel.ledger import Ledger
from kernel.pipeline import Pipeline
from kernel.synth import generate

START = dt.date(2026, 11, 2)
EFFECT = 0.10
CONFIG = {"experiment": {"seed": "sim", "arms": {"CHAMPION": 0.5, "CHALLENGER": 0.5}}}


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    from kernel.runtime import Kernel
    tmp = tmp_path_factory.mktemp("sim")
    ledger = Ledger(f"sqlite:///{tmp / 'ledger.db'}")
    pipeline = Pipeline(Kernel.load(), ledger=ledger, config=CONFIG, audit_path=tmp / "audit.log")
    behaviour = Behaviour(effects={"CHALLENGER": {"promise": EFFECT}})
    sim = Simulator(pipeline, generate(20_000, seed=11, as_of=START), START, behaviour=behaviour, seed=11)
    result = sim.run(8)
    yield result, ledger
    ledger.close()


def test_the_measured_arm_difference_recovers_the_true_effect(simulated):
    result, ledger = simulated
    assert result.runs == [START + dt.timedelta(days=k) for k in range(8)] and result.events > 1_000
    # 99 % intervals: the draws shift whenever the strategy or the policies change, and a 95 %
    # interval misses the truth once in twenty realisations
    settings = Settings(cure_days=3, confidence=0.99)
    end = result.runs[-1]
    figures = summarize(evaluate([store_part(ledger.store)], settings, end), settings, end)
    promise = figures["kpis"]["promise_rate"]["by_arm"]
    diff = promise["CHALLENGER"]["vs_control"]
    assert promise["CHAMPION"]["n"] > 400 and promise["CHALLENGER"]["n"] > 400
    assert diff["low"] <= EFFECT <= diff["high"]             # the truth lies in the interval
    assert diff["low"] > 0 and diff["p"] < 0.01              # and the effect is found
    # where the arms are the same, no difference is found: right-party contacts
    for same in ("rpc_rate", "contact_rate"):
        d = figures["kpis"][same]["by_arm"]["CHALLENGER"]["vs_control"]
        assert d["low"] <= 0 <= d["high"], same
    contact = figures["kpis"]["contact_rate"]["by_arm"]["CHAMPION"]
    assert contact["value"] > figures["kpis"]["rpc_rate"]["by_arm"]["CHAMPION"]["value"]    # wrong parties
    # the loop closed: promises were kept, accounts cured, money collected
    assert figures["kpis"]["promise_kept_rate"]["by_arm"]["CHAMPION"]["k"] > 0
    assert figures["kpis"]["collected.CNY"]["by_arm"]["CHAMPION"]["value"] > 0
    assert figures["kpis"]["cure_rate"]["by_arm"]["CHAMPION"]["k"] > 0
