"""What ``postloan demo`` adds for evaluation: the day it decided, then a few simulated days,
kept in its ledger, and the HTML report written from them."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

__all__ = ["DEMO_EXPERIMENT", "DEMO_EFFECT", "demo_config", "simulate_and_report", "default_report_path",
           "default_audit_folder", "fresh_audit_path", "DEMO_AUDIT_KEPT"]

#: the experiment the demo runs when the configuration names none
DEMO_EXPERIMENT = {"name": "demo", "seed": "demo", "arms": {"CHAMPION": 0.8, "CHALLENGER": 0.2}}
#: the simulated debtors' true response to the challenger: a right-party contact brings a
#: promise to pay this much more often (the report should find it)
DEMO_EFFECT = {"CHALLENGER": {"promise": 0.08}}


def demo_config(config=None, days: int = 7) -> dict:
    """The configuration with the demo's experiment when it has no ``[experiment]``, and a
    cure window that fits in the demo's ``days`` when ``[evaluation] cure_days`` is not set
    (half the days: the entries of the first half have a complete window)."""
    from ..plugins import load_config
    merged = dict(load_config(config))
    if "experiment" not in merged:
        merged["experiment"] = DEMO_EXPERIMENT
    evaluation = dict(merged.get("evaluation") or {})
    if "cure_days" not in evaluation:
        evaluation["cure_days"] = max(1, min(30, days // 2))
    merged["evaluation"] = evaluation
    return merged


def default_report_path() -> Path:
    return Path.home() / ".local" / "state" / "postloan" / "report.html"


#: the demo's own audit logs kept (the newest; older ones are removed when a demo starts)
DEMO_AUDIT_KEPT = 5


def default_audit_folder() -> Path:
    """Where ``postloan demo`` writes its audit logs when neither ``--audit``, ``[audit]
    path`` nor ``$POSTLOAN_AUDIT_PATH`` names one: one file per run."""
    return Path.home() / ".local" / "state" / "postloan" / "demo-audit"


def fresh_audit_path(config, given=None) -> Path | None:
    """The audit log ``postloan demo`` writes: ``given`` (``--audit``), else the configured one
    (None: the pipeline's ``[audit] path`` or ``$POSTLOAN_AUDIT_PATH``, appended to as any
    pipeline does), else a file of this run alone in :func:`default_audit_folder`, named by
    the run's start (UTC) and process, the older ones beyond the newest
    :data:`DEMO_AUDIT_KEPT` removed (a demo decides 100,000 accounts on each of seven days:
    appended run after run, the pipeline's default log grew by ≈ 45 MB a run, never rotated).
    A run's log is never appended to by another run, so removing old ones leaves every
    record of the runs kept whole."""
    import datetime as dt
    import os

    from ..pipeline import ENV_AUDIT
    if given is not None:
        return Path(given)
    if (config.get("audit") or {}).get("path") or os.environ.get(ENV_AUDIT):
        return None
    folder = default_audit_folder()
    folder.mkdir(parents=True, exist_ok=True)
    earlier = sorted(folder.glob("demo-*.log"))
    for old in earlier[:max(0, len(earlier) - (DEMO_AUDIT_KEPT - 1))]:
        old.unlink(missing_ok=True)
    return folder / f"demo-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S.%fZ}-{os.getpid()}.log"


def simulate_and_report(pipeline, book, decided: list, as_of: dt.date, now: dt.datetime, days: int, path,
                        seed: int = 0) -> tuple[Path, dict]:
    """Record and act on the demo's decisions (``decided``: (joined batch, result) per batch,
    in the book's order), simulate ``days − 1`` more days, and write the report to ``path``.
    Returns the path and the figures."""
    from .kpis import Settings
    from .report import write_report
    from .run import figures_from_store
    from .simulate import Behaviour, Simulator
    sim = Simulator(pipeline, book, as_of, behaviour=Behaviour(effects=DEMO_EFFECT), seed=seed, known=True)
    batches, offset = [], 0
    for joined, result in decided:
        rows = np.arange(offset, offset + joined.num_rows)
        batches.append((rows, joined, result))
        offset += joined.num_rows
    sim.step(batches, now)
    sim.run(max(days - 1, 0))
    settings = Settings.from_config(pipeline.config)
    figures = figures_from_store(pipeline.ledger, settings)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_report(figures, path, "postloan demo — portfolio report")
    return path, figures
