"""The figures of a dataset: from a ledger's store (one process, streamed run by run) or
from a partitioned folder (partition by partition, in one process or on Dask), and the
report written from them."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from .kpis import Accumulator, Partial, Settings, evaluate_part, summarize
from .records import DatasetError, RunStore, dataset_parts, read_part

__all__ = ["figures_from_store", "figures_from_folder", "folder_end", "part_partial"]


def figures_from_store(store, settings: Settings) -> dict:
    """The figures of every run kept in a ledger's store and its events (``store``: a URL,
    a :class:`~kernel.ledger.Ledger` or a store)."""
    runs = RunStore(store)
    try:
        dates = runs.runs()
        if not dates:
            raise DatasetError(f"{runs.store.url}: holds no decision runs to report on (runs are kept by "
                               f"`postloan demo`, the simulator, or kernel.evaluation.records.RunStore.record_run)")
        end = dates[-1]
        acc = Accumulator(settings, end)
        for table in runs.iter("snapshots"):
            acc.add_snapshots(table)
        for table in runs.iter("actions"):
            acc.add_actions(table)
        acc.add_events(runs.events())
        return summarize(acc.finish(), settings, end)
    finally:
        runs.close()


def folder_end(folder) -> dt.date:
    """The last run date of a dataset folder (reading the snapshots' ``as_of`` only)."""
    end = None
    for name in dataset_parts(folder):
        path = Path(folder) / "snapshots" / name
        try:
            days = pq.read_table(path, columns=["as_of"])["as_of"]
        except (OSError, KeyError, ValueError) as e:
            raise DatasetError(f"{path}: cannot read its as_of column ({str(e).splitlines()[0][:160]})") from None
        latest = pc.max(days).as_py()
        if latest is not None and (end is None or latest > end):
            end = latest
    if end is None:
        raise DatasetError(f"{folder}: its snapshots hold no run")
    return end


def part_partial(folder: str, name: str, settings: Settings, end: dt.date) -> Partial:
    """One partition's partial (what a Dask task computes)."""
    return evaluate_part(read_part(folder, name), settings, end)


def figures_from_folder(folder, settings: Settings, client=None) -> dict:
    """The figures of a partitioned dataset folder: each partition's partial, merged in the
    partitions' order — on ``client`` (a ``distributed.Client``) when given, one task per
    partition; the result is the same either way."""
    folder = str(Path(folder).resolve())
    names = dataset_parts(folder)
    end = folder_end(folder)
    if client is None:
        partials = (part_partial(folder, name, settings, end) for name in names)
    else:
        futures = client.map(part_partial, [folder] * len(names), names, settings=settings, end=end,
                             key=[f"postloan-report-{name}" for name in names], pure=False)
        partials = client.gather(futures)
    total = Partial()
    for partial in partials:
        total.merge(partial, settings.top)
    return summarize(total, settings, end)
