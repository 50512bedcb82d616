"""Performance evaluation (绩效评估): champion/challenger arms, outcome attribution and KPIs,
a simulator of the collections loop, the HTML portfolio report, and running it beyond one
machine (docs/evaluation.md).

- :mod:`kernel.evaluation.arms` — the stable, seeded assignment of accounts to arms;
- :mod:`kernel.evaluation.records` — what each decision run leaves for evaluation (snapshots
  and actions) and where it is kept (the ledger's store, or a folder of Parquet parts);
- :mod:`kernel.evaluation.kpis` — attribution of ledger events to decisions and the KPIs;
- :mod:`kernel.evaluation.stats` — intervals and tests of arm differences;
- :mod:`kernel.evaluation.simulate` — the collections loop with debtors of known behaviour;
- :mod:`kernel.evaluation.report` — the self-contained HTML report;
- :mod:`kernel.evaluation.run` — the figures of a ledger or a dataset folder (one process or Dask);
- :mod:`kernel.evaluation.distributed` — decide and report on Dask;
- :mod:`kernel.evaluation.demo` — what ``postloan demo`` adds: simulated days and the report.

Evaluation reads decisions and outcomes; it never changes a decision.
"""
from .arms import ARMS, SLOTS, Experiment, ExperimentError, slot_of, slots

__all__ = ["ARMS", "SLOTS", "Experiment", "ExperimentError", "slot_of", "slots"]
