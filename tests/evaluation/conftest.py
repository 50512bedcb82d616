"""Evaluation fixtures: a small simulated ledger (runs and events) shared by the module's tests."""
from __future__ import annotations

import datetime as dt

import pytest

START = dt.date(2026, 11, 2)
CONFIG = {"experiment": {"seed": "t", "arms": {"CHAMPION": 0.6, "CHALLENGER": 0.4}}}


@pytest.fixture(scope="session")
def shipped_kernel():
    from kernel.runtime import Kernel
    return Kernel.load()


@pytest.fixture(scope="session")
def simulated_store(tmp_path_factory, shipped_kernel):
    """A SQLite ledger holding 6 simulated days of 6,000 accounts: its URL."""
    from kernel.evaluation.simulate import Behaviour, Simulator
    from kernel.ledger import Ledger
    from kernel.pipeline import Pipeline
    from kernel.synth import generate
    tmp = tmp_path_factory.mktemp("simulated")
    url = f"sqlite:///{tmp / 'ledger.db'}"
    ledger = Ledger(url)
    pipeline = Pipeline(shipped_kernel, ledger=ledger, config=CONFIG, audit_path=tmp / "audit.log")
    Simulator(pipeline, generate(6_000, seed=2, as_of=START), START,
              behaviour=Behaviour(effects={"CHALLENGER": {"promise": 0.1}}), seed=2).run(6)
    ledger.close()
    return url
