"""Beyond one machine: ``postloan decide`` and ``postloan report`` on Dask.

A partitioned dataset is a folder of Parquet files. ``decide`` maps one task to each input
file and writes the decisions of ``in/part-k.parquet`` to ``out/part-k.parquet``; ``report``
maps one task to each partition of a dataset folder and merges the partials in the
partitions' order (:func:`kernel.evaluation.run.figures_from_folder`). In one process the
same function runs on the same files in the same order, so the results are identical.

The bundle travels to the workers as its files' bytes and content hash
(:class:`BundleSource`); each worker process writes them once into a folder named by the hash
and compiles the kernel once — from Numba's on-disk cache when it holds the bundle — then
keeps it for every later partition (:func:`worker_kernel`; :data:`LOADS` counts the loads a
process made, which the tests read on every worker).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import PostloanError

__all__ = ["BundleSource", "worker_kernel", "LOADS", "loads", "dask_client", "decide_folder", "decide_file", "input_parts"]

#: kernels this process compiled or loaded for partitions, by bundle hash
LOADS: dict[str, int] = {}
_KERNELS: dict[str, object] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class BundleSource:
    """A bundle as it travels to workers: its files (name → bytes) and its content hash."""

    files: tuple[tuple[str, bytes], ...]
    bundle_hash: str

    @classmethod
    def of(cls, kernel) -> "BundleSource":
        names: dict[str, bytes] = {}
        for path in kernel.bundle.files:
            path = Path(path)
            if path.name in names:
                raise PostloanError(f"{path}: two files of the bundle are named {path.name}; rename one to run "
                                    f"the bundle on Dask")
            names[path.name] = path.read_bytes()
        return cls(tuple(sorted(names.items())), kernel.bundle_hash)


def loads() -> dict[str, int]:
    """:data:`LOADS` of this process (``client.run(loads)`` asks every worker)."""
    return dict(LOADS)


def worker_kernel(source: BundleSource):
    """The kernel of ``source`` in this process: loaded once (and counted in :data:`LOADS`),
    then reused by every partition."""
    with _LOCK:
        kernel = _KERNELS.get(source.bundle_hash)
        if kernel is not None:
            return kernel
        from ..runtime import Kernel
        folder = Path(tempfile.gettempdir()) / "postloan-bundles" / source.bundle_hash[:32]
        if not folder.is_dir():
            folder.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".bundle-", dir=folder.parent))
            for name, data in source.files:
                (staging / name).write_bytes(data)
            try:
                os.replace(staging, folder)
            except OSError:                    # another process of this machine was first
                for child in staging.iterdir():
                    child.unlink()
                staging.rmdir()
        kernel = Kernel.load(folder)
        if kernel.bundle_hash != source.bundle_hash:
            raise PostloanError(f"the bundle rebuilt on this worker hashes {kernel.bundle_hash[:12]}, not "
                                f"{source.bundle_hash[:12]}: its files differ")
        _KERNELS[source.bundle_hash] = kernel
        LOADS[source.bundle_hash] = LOADS.get(source.bundle_hash, 0) + 1
        return kernel


@contextlib.contextmanager
def dask_client(address: str | None, workers: int = 2) -> Iterator:
    """A ``distributed.Client``: None for no Dask (yields None), ``"local"`` for a local
    cluster of ``workers`` processes (one thread each) closed on exit, else a scheduler's
    address."""
    if not address:
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise PostloanError("--dask needs Dask: pip install 'dask[distributed]'") from None
    if address == "local":
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                          silence_logs=40) as cluster, Client(cluster) as client:
            yield client
        return
    try:
        client = Client(address, timeout=30)
    except (OSError, TimeoutError, ValueError) as e:
        raise PostloanError(f"--dask {address}: cannot reach the scheduler ({str(e).splitlines()[0][:160]})") from None
    with client:
        yield client


def input_parts(folder) -> list[Path]:
    """The Parquet files of a partitioned book folder, in name order."""
    folder = Path(folder)
    parts = sorted(p for p in folder.glob("*.parquet") if p.is_file())
    if not parts:
        raise PostloanError(f"{folder}: holds no .parquet files (a partitioned book is a folder of Parquet files)")
    return parts


def decide_file(source: BundleSource, book: str, out: str, as_of: dt.date, now: dt.datetime, nested: bool,
                store: str | None, config: str | None, batch_rows: int) -> dict:
    """Decide one Parquet file of a book into ``out`` (one task); returns its rows and the
    unique conflicts per ruleset."""
    from .. import plugins
    from ..cli.decide import _book_counters, _decisions, _experiment, decision_schema
    kernel = worker_kernel(source)
    ledger = None
    if store:
        from ..cli.ingest import open_ledger
        ledger = open_ledger(store, config)
    experiment = _experiment(config)
    schema = decision_schema(kernel, nested, experiment is not None)
    conflicts: dict[str, int] = {}
    try:
        batches = plugins.read_batches(book, required=list(kernel.inputs), batch_size=batch_rows)

        class _Quiet:
            def update(self, n):
                pass
        decided = _decisions(kernel, batches, as_of, schema, nested, book, _Quiet(), conflicts, ledger, now,
                             _book_counters(config), experiment)
        rows = plugins.write_batches(out, decided, schema=schema)
    finally:
        if ledger is not None:
            ledger.close()
    return {"rows": rows, "conflicts": conflicts}


def decide_folder(kernel, folder, out_folder, as_of: dt.date, now: dt.datetime, *, client=None,
                  store: str | None = None, config: str | None = None, batch_rows: int = 65_536) -> dict:
    """Decide every Parquet file of ``folder`` into ``out_folder`` (same names): on
    ``client`` one task per file, else one after another here. Returns the rows decided and
    the unique conflicts per ruleset."""
    parts = input_parts(folder)
    out_folder = Path(out_folder)
    out_folder.mkdir(parents=True, exist_ok=True)
    source = BundleSource.of(kernel)
    args = [(str(p.resolve()), str((out_folder / p.name).resolve())) for p in parts]
    if client is None:
        _KERNELS.setdefault(source.bundle_hash, kernel)          # this process has it already
        results = [decide_file(source, b, o, as_of, now, True, store, config, batch_rows) for b, o in args]
    else:
        futures = client.map(decide_file, [source] * len(args), [b for b, _ in args], [o for _, o in args],
                             as_of=as_of, now=now, nested=True, store=store, config=config, batch_rows=batch_rows,
                             key=[f"postloan-decide-{Path(b).name}" for b, _ in args], pure=False)
        results = client.gather(futures)
    total = {"rows": 0, "conflicts": {}, "parts": len(parts)}
    for r in results:
        total["rows"] += r["rows"]
        for name, n in r["conflicts"].items():
            total["conflicts"][name] = total["conflicts"].get(name, 0) + n
    return total
