"""Beyond one machine: decide and report on a Dask LocalCluster (2 worker processes) give the
single-process results, and each worker compiles the kernel once, not once per partition."""
from __future__ import annotations

import datetime as dt
import json
import math

import pyarrow.parquet as pq
import pytest

from kernel.cli import main

distributed = pytest.importorskip("distributed", reason="dask[distributed] is not installed")

AS_OF = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 2, tzinfo=dt.timezone.utc)
PARTS = 5


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as c, Client(c) as client:
        yield c, client


@pytest.fixture(scope="module")
def book_folder(tmp_path_factory):
    from kernel.synth import generate
    folder = tmp_path_factory.mktemp("book")
    book = generate(5_000, seed=9, as_of=AS_OF)
    for k in range(PARTS):
        pq.write_table(book.slice(k * 1_000, 1_000), folder / f"part-{k:05d}.parquet")
    return folder


def test_decide_on_dask_equals_one_process_and_loads_the_kernel_once_per_worker(cluster, book_folder, tmp_path,
                                                                              shipped_kernel):
    from kernel.evaluation.distributed import decide_folder, loads as worker_loads
    _, client = cluster
    one = decide_folder(shipped_kernel, book_folder, tmp_path / "one", AS_OF, NOW)
    many = decide_folder(shipped_kernel, book_folder, tmp_path / "many", AS_OF, NOW, client=client)
    assert one["rows"] == many["rows"] == 5_000 and one["conflicts"] == many["conflicts"]
    for k in range(PARTS):
        name = f"part-{k:05d}.parquet"
        assert pq.read_table(tmp_path / "one" / name).equals(pq.read_table(tmp_path / "many" / name)), name
    # five partitions on two workers: each worker that took one loaded the kernel once
    loads = client.run(worker_loads)
    counts = [n.get(shipped_kernel.bundle_hash, 0) for n in loads.values()]
    assert sum(counts) >= 1 and max(counts) == 1, loads
    # a second job reuses the workers' kernels
    decide_folder(shipped_kernel, book_folder, tmp_path / "again", AS_OF, NOW, client=client)
    assert client.run(worker_loads) == loads


def test_postloan_decide_dask_cli(cluster, book_folder, tmp_path, capsys):
    c, _ = cluster
    args = ["decide", "--in", str(book_folder), "--as-of", "2026-11-28", "--now", "2026-11-28T02:00:00Z", "--quiet"]
    assert main(args + ["--out", str(tmp_path / "one")]) == 0
    assert main(args + ["--out", str(tmp_path / "dask"), "--dask", c.scheduler_address]) == 0
    assert "on Dask" in capsys.readouterr().err
    for k in range(PARTS):
        name = f"part-{k:05d}.parquet"
        assert pq.read_table(tmp_path / "one" / name).equals(pq.read_table(tmp_path / "dask" / name))
    book_file = next(book_folder.iterdir())
    assert main(["decide", "--in", str(book_file), "--out", str(tmp_path / "x.parquet"), "--dask", "local"]) == 2
    assert "give --in a folder of Parquet files" in capsys.readouterr().err


def _same(a, b) -> bool:
    """Equal figures, NaN equal to NaN."""
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str) \
        if not _has_nan(a) else json.dumps(a, sort_keys=True, default=str).replace("NaN", "n") == \
        json.dumps(b, sort_keys=True, default=str).replace("NaN", "n")


def _has_nan(x) -> bool:
    if isinstance(x, float):
        return math.isnan(x)
    if isinstance(x, dict):
        return any(_has_nan(v) for v in x.values())
    if isinstance(x, list):
        return any(_has_nan(v) for v in x)
    return False


def test_report_on_dask_equals_one_process(cluster, simulated_store, tmp_path):
    from kernel.evaluation.kpis import Settings
    from kernel.evaluation.run import figures_from_folder, figures_from_store
    c, client = cluster
    dataset = tmp_path / "dataset"
    assert main(["report", "--store", simulated_store, "--out", str(tmp_path / "store.html"), "--export", str(dataset),
                 "--partitions", "4"]) == 0
    settings = Settings()
    one = figures_from_folder(dataset, settings)
    many = figures_from_folder(dataset, settings, client)
    assert _same(one, many)
    # the partitioned figures are the store's: counts exactly, sums to rounding
    whole = figures_from_store(simulated_store, settings)
    assert one["kpis"]["promise_rate"]["by_arm"] == whole["kpis"]["promise_rate"]["by_arm"]
    assert one["series"]["accounts"] == whole["series"]["accounts"]
    # and the CLI writes the same bytes in one process and on the cluster
    assert main(["report", "--in", str(dataset), "--out", str(tmp_path / "one.html")]) == 0
    assert main(["report", "--in", str(dataset), "--out", str(tmp_path / "dask.html"), "--dask",
                 c.scheduler_address]) == 0
    assert (tmp_path / "one.html").read_bytes() == (tmp_path / "dask.html").read_bytes()
