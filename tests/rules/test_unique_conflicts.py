"""Rows that more than one rule of a `hit: unique` ruleset fires for get null outputs; they
used to do so silently (4.2 % of a 100,000-account book, exit 0, nothing printed). They are
counted per ruleset — the compiled kernel and the reference interpreter agree — and reported
by `postloan decide`, the audit record and the server's metrics."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kernel
from kernel.audit import read_audit
from kernel.cli import main
from kernel.pipeline import Pipeline

from .conftest import AS_OF, HERE

PAYLOAD = HERE / "hostile" / "unique_overlap.yaml"
NOW = dt.datetime(2026, 11, 28, 2, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def overlap_kernel():
    return kernel.Kernel.load(PAYLOAD)


def expected_conflicts(book) -> np.ndarray:
    dpd = np.asarray(book.column("dpd").to_numpy(zero_copy_only=False), np.float64)
    amount = np.asarray(book.column("overdue_amount").to_numpy(zero_copy_only=False), np.float64)
    return (dpd % 2 == 0) & (dpd > 0) & (amount > 10000)


def test_conflicting_rows_are_counted_and_null(overlap_kernel, small_book):
    decided = overlap_kernel.decide(small_book, AS_OF)
    conflict = expected_conflicts(small_book)
    assert conflict.sum() > 10                                        # the book has such rows
    assert overlap_kernel.unique_rulesets == ("overlap",)
    assert overlap_kernel.unique_conflicts(decided) == {"overlap": int(conflict.sum())}
    rule = decided.column("overlap.rule").to_pylist()
    assert [r == "!unique" for r in rule] == conflict.tolist()
    assert pc.sum(pc.is_null(decided.column("overlap.band"))).as_py() == conflict.sum()


def test_every_path_and_both_engines_count_the_same(overlap_kernel, small_book):
    book = small_book.slice(0, 300)
    conflict = int(expected_conflicts(book).sum())
    reference = overlap_kernel.decide(book, AS_OF, engine="reference")
    assert overlap_kernel.unique_conflicts(reference) == {"overlap": conflict}
    batch = next(overlap_kernel.decide_batches(book.to_batches(max_chunksize=300), AS_OF))
    assert overlap_kernel.unique_conflicts(batch) == {"overlap": conflict}
    columns = {"dpd": book.column("dpd").to_numpy(), "overdue_amount": book.column("overdue_amount").to_numpy()}
    assert overlap_kernel.unique_conflicts(overlap_kernel.decide_columns(columns, AS_OF)) == {"overlap": conflict}
    per_record = sum(overlap_kernel.unique_conflicts(overlap_kernel.decide_record(r, AS_OF)).get("overlap", 0)
                     for r in book.select(["dpd", "overdue_amount"]).to_pylist())
    assert per_record == conflict


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.one_of(st.none(), st.integers(-5, 40)),
                          st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))),
                min_size=1, max_size=40))
def test_compiled_and_reference_counts_agree_on_any_book(overlap_kernel, rows):
    book = pa.table({"dpd": pa.array([r[0] for r in rows], pa.int64()),
                     "overdue_amount": pa.array([r[1] for r in rows], pa.float64())})
    compiled = overlap_kernel.unique_conflicts(overlap_kernel.decide(book, AS_OF))
    assert compiled == overlap_kernel.unique_conflicts(overlap_kernel.decide(book, AS_OF, engine="reference"))
    want = sum(1 for d, a in rows if d is not None and a is not None and d % 2 == 0 and d > 0 and a > 10000)
    assert compiled == ({"overlap": want} if want else {})


def test_a_bundle_without_conflicts_reports_none(shipped_kernel, small_book):
    assert shipped_kernel.unique_rulesets == ("dpd_bucket",)
    assert shipped_kernel.unique_conflicts(shipped_kernel.decide(small_book, AS_OF)) == {}


def test_decide_reports_them_on_stderr(capsys, tmp_path, small_book):
    book = tmp_path / "book.parquet"
    import pyarrow.parquet as pq
    pq.write_table(small_book, book)
    out = tmp_path / "decided.parquet"
    assert main(["decide", "--in", str(book), "--out", str(out), "--bundle", str(PAYLOAD),
                 "--as-of", AS_OF.isoformat(), "--batch-rows", "1000", "--quiet"]) == 0
    n = int(expected_conflicts(small_book).sum())
    printed = capsys.readouterr()
    assert printed.out == ""
    assert printed.err.strip().splitlines()[-1] == (
        f"postloan decide: warning: ruleset overlap (hit: unique): {n:,} of {small_book.num_rows:,} accounts "
        f"matched more than one rule; their overlap.* outputs are null and overlap.rule is '!unique'")


def test_the_audit_record_and_the_result_carry_the_count(overlap_kernel, small_book, tmp_path):
    pipe = Pipeline(overlap_kernel, audit_path=tmp_path / "audit.log")
    n = int(expected_conflicts(small_book).sum())
    result = pipe.run(small_book, AS_OF, NOW, actions=False)
    assert result.unique_conflicts == {"overlap": n}
    record = pipe.run_record(small_book.slice(0, 1).to_pylist()[0], AS_OF, NOW, actions=False)
    [first, second] = list(read_audit(tmp_path / "audit.log"))
    assert first.meta["unique_conflicts"] == {"overlap": n}
    assert second.meta["unique_conflicts"] == record.unique_conflicts


def test_the_metric_counts_rows_by_ruleset():
    from prometheus_client import generate_latest

    from kernel.server.metrics import Metrics
    metrics = Metrics()
    metrics.count_unique_conflicts({"overlap": 3})
    metrics.count_unique_conflicts({"overlap": 2, "other": 1})
    text = generate_latest(metrics.registry).decode()
    assert 'postloan_unique_conflict_rows_total{ruleset="overlap"} 5.0' in text
    assert 'postloan_unique_conflict_rows_total{ruleset="other"} 1.0' in text


def test_the_server_counts_them_for_decide_and_decide_batch(small_book, tmp_path):
    from prometheus_client import generate_latest

    from kernel.client import Client
    from kernel.server.app import DecisionServer, ServerConfig
    import shutil
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    bundle = tmp_path / "bundle"                  # the shipped bundle (the strategy needs it) and the overlap
    shutil.copytree(root / "rulesets", bundle / "rulesets")
    shutil.copytree(root / "models", bundle / "models")
    shutil.copy(PAYLOAD, bundle / "rulesets" / PAYLOAD.name)
    server = DecisionServer(ServerConfig(bundle=str(bundle), port=0, audit_path=str(tmp_path / "audit.log")))
    server.start()
    try:
        server.wait_ready(600)
        conflict = expected_conflicts(small_book)
        one = small_book.filter(pa.array(conflict)).slice(0, 1)
        with Client(f"127.0.0.1:{server.port}") as client:
            client.decide(one.to_pylist()[0], AS_OF, now=NOW)
            client.decide_batch(small_book.slice(0, 500), AS_OF, now=NOW)
        text = generate_latest(server.metrics.registry).decode()
        counted = 1 + int(conflict[:500].sum())
        ruleset = next(iter(kernel.Kernel.load(PAYLOAD).nodes))
        assert counted > 1
        assert f'postloan_unique_conflict_rows_total{{ruleset="{ruleset}"}} {float(counted)}' in text
    finally:
        server.stop(0)
