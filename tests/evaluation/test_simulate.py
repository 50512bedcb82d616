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


def _simulate_demo_like(tmp, kernel, keep: bool):
    """Three simulated days on a book with its event history in the ledger (as the demo runs
    them), the state read kept in memory (``keep``) or afresh each day."""
    import pyarrow as pa

    from kernel.evaluation.records import RunStore
    from kernel.synth import iter_book_and_events, snapshot_at
    as_of = dt.date(2026, 11, 28)
    ledger = Ledger(f"sqlite:///{tmp / 'ledger.db'}")
    batches = []
    for batch, events in iter_book_and_events(3_000, 5, as_of):
        batches.append(batch)
        ledger.ingest(events, now=snapshot_at(as_of))
    pipeline = Pipeline(kernel, ledger=ledger, config=CONFIG, audit_path=tmp / "audit.log")
    sim = Simulator(pipeline, pa.Table.from_batches(batches), as_of, seed=5, known=True)
    assert ledger.book is not None                       # the simulator keeps the events in memory
    if not keep:
        ledger.keep_events(False)
    sim.run(3)
    runs = RunStore(ledger)
    out = runs.read("snapshots"), runs.read("actions"), ledger.state(at=snapshot_at(as_of + dt.timedelta(days=3)))
    if keep:
        assert ledger.book.loads == 1 and ledger.book.appended > 0
    ledger.close()
    return out


def test_simulated_days_decide_the_same_with_the_events_kept_as_read_afresh(tmp_path, shipped_kernel):
    (tmp_path / "kept").mkdir()
    (tmp_path / "fresh").mkdir()
    kept = _simulate_demo_like(tmp_path / "kept", shipped_kernel, True)
    fresh = _simulate_demo_like(tmp_path / "fresh", shipped_kernel, False)
    for a, b, what in zip(kept, fresh, ("snapshots", "actions", "state")):
        assert a.num_rows > 0, what
        assert a.equals(b), what
