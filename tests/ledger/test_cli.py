"""postloan ingest / state / ledger and decide --store, as a user runs them."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from kernel.ledger import KINDS
from kernel.ledger.store import SCHEMA_VERSION
from kernel.synth import generate

UTC = dt.timezone.utc
TS = pa.timestamp("us", tz="UTC")
AS_OF = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 2, 30, tzinfo=UTC)


def postloan(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "kernel", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=600)


@pytest.fixture
def data_dir(tmp_path):
    return {"POSTLOAN_DATA_DIR": str(tmp_path / "data")}


def test_ingest_reports_counts_lists_rejects_and_is_idempotent(tmp_path, data_dir):
    events = pa.table({"event_id": ["a", "b", "c"], "account_id": ["A1", "A1", "A2"],
                       "kind": ["PAYMENT", "PAYMENT", "OPT_OUT"], "at": pa.array([NOW] * 3, TS),
                       "amount": [100.0, None, None], "channel": [None, None, "LETTER"]})
    pcsv.write_csv(events, tmp_path / "events.csv")
    first = postloan("ingest", "--in", str(tmp_path / "events.csv"), "--rejects", str(tmp_path / "rejects.csv"),
                     env=data_dir)
    assert first.returncode == 1, first.stderr
    assert "3 rows" in first.stdout and "1 stored, 0 already stored, 2 rejected" in first.stdout
    assert "row 1 (b): PAYMENT needs amount" in first.stderr
    rejects = pcsv.read_csv(tmp_path / "rejects.csv").to_pylist()
    assert [r["row"] for r in rejects] == [1, 2] and rejects[1]["reason"].startswith("consent and opt-out")
    again = postloan("ingest", "--in", str(tmp_path / "events.csv"), env=data_dir)
    assert "0 stored, 1 already stored, 2 rejected" in again.stdout
    ok = postloan("ingest", "--in", str(tmp_path / "events.csv"), "--store", f"sqlite:///{tmp_path / 'other.db'}")
    assert (tmp_path / "other.db").exists() and "1 stored" in ok.stdout


def test_a_file_of_the_wrong_shape_is_one_line_and_exit_2(tmp_path, data_dir):
    pq.write_table(pa.table({"event_id": ["a"], "kind": ["PAYMENT"]}), tmp_path / "bad.parquet")
    out = postloan("ingest", "--in", str(tmp_path / "bad.parquet"), env=data_dir)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "missing column 'account_id'" in out.stderr
    out = postloan("ingest", "--in", str(tmp_path / "none.parquet"), env=data_dir)
    assert out.returncode == 2 and "no such file" in out.stderr


def test_decide_with_store_reads_state_and_state_exports_it(tmp_path):
    store = f"sqlite:///{tmp_path / 'ledger.db'}"
    book = generate(300, seed=4, as_of=AS_OF)
    pq.write_table(book, tmp_path / "book.parquet")
    ids = book["account_id"].to_pylist()
    # four broken promises for the first account in 30 days; none in the book
    at = [NOW - dt.timedelta(days=d) for d in (20, 18, 16, 14)]
    events = pa.table({"event_id": [f"p{i}" for i in range(4)], "account_id": [ids[0]] * 4,
                       "kind": ["PROMISE_TO_PAY"] * 4, "at": pa.array(at, TS), "amount": [500.0] * 4,
                       "promise_date": pa.array([(a + dt.timedelta(days=2)).date() for a in at], pa.date32())})
    pq.write_table(events, tmp_path / "events.parquet")
    assert postloan("ingest", "--in", str(tmp_path / "events.parquet"), "--book", str(tmp_path / "book.parquet"),
                    "--store", store).returncode == 0
    plain = postloan("decide", "--in", str(tmp_path / "book.parquet"), "--out", str(tmp_path / "plain.parquet"),
                     "--as-of", AS_OF.isoformat(), "--now", NOW.isoformat())
    with_state = postloan("decide", "--in", str(tmp_path / "book.parquet"), "--out", str(tmp_path / "state.parquet"),
                          "--as-of", AS_OF.isoformat(), "--now", NOW.isoformat(), "--store", store)
    assert plain.returncode == 0 and with_state.returncode == 0, with_state.stderr
    a, b = pq.read_table(tmp_path / "plain.parquet"), pq.read_table(tmp_path / "state.parquet")
    assert a.num_rows == b.num_rows == 300
    # the ledger's broken promises raise the first account's early warning; no other account changes
    changed = [i for i in range(300) if a.slice(i, 1).to_pylist() != b.slice(i, 1).to_pylist()]
    assert changed == [0]
    exported = postloan("state", "--store", store, "--out", str(tmp_path / "s.csv"), "--as-of", NOW.isoformat())
    assert exported.returncode == 0 and "warning" not in exported.stderr        # zones registered from the book
    state = {r["account_id"]: r for r in pcsv.read_csv(tmp_path / "s.csv").to_pylist()}
    assert len(state) == 300 and state[ids[0]]["promises_broken_30d"] == 4
    info = postloan("ledger", "info", "--store", store)
    assert f"schema version {SCHEMA_VERSION}; 4 events, 0 reservations, 0 cars pinging, 300 registered accounts" in info.stdout


def test_backup_restore_gives_back_the_same_state(tmp_path):
    store = f"sqlite:///{tmp_path / 'ledger.db'}"
    kinds = [k for k in KINDS if not KINDS[k].needs and k != "GPS_PING"]
    events = pa.table({"event_id": [f"e{i}" for i in range(len(kinds))], "account_id": ["A"] * len(kinds),
                       "kind": kinds, "at": pa.array([NOW - dt.timedelta(minutes=i) for i in range(len(kinds))], TS)})
    pq.write_table(events, tmp_path / "e.parquet")
    postloan("ingest", "--in", str(tmp_path / "e.parquet"), "--store", store)
    assert postloan("ledger", "backup", "--store", store, "--out", str(tmp_path / "b.db")).returncode == 0
    restored = f"sqlite:///{tmp_path / 'restored.db'}"
    assert postloan("ledger", "restore", "--store", restored, "--in", str(tmp_path / "b.db")).returncode == 0
    for url, name in ((store, "a.csv"), (restored, "b.csv")):
        postloan("state", "--store", url, "--out", str(tmp_path / name), "--as-of", NOW.isoformat())
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
    assert postloan("ledger", "backup", "--store", store).returncode == 2


def test_reading_a_ledger_that_is_not_there_is_an_error_not_an_empty_ledger(tmp_path, data_dir):
    """A mistyped --store for a command that only reads or copies the ledger (state, ledger
    info / backup / purge) names the URL and exits 2, creating nothing: an empty export or an
    empty backup would look like success."""
    missing = f"sqlite:///{tmp_path / 'typo.db'}"
    for args in (("state", "--out", str(tmp_path / "s.csv")), ("ledger", "info"),
                 ("ledger", "backup", "--out", str(tmp_path / "b.db")), ("ledger", "purge")):
        out = postloan(*args, "--store", missing, env=data_dir)
        assert out.returncode == 2 and "typo.db: no ledger there" in out.stderr, (args, out.stderr)
    out = postloan("state", "--out", str(tmp_path / "s.csv"), env=data_dir)      # the default ledger, never made
    assert out.returncode == 2 and "no ledger there" in out.stderr
    assert not (tmp_path / "typo.db").exists() and not (tmp_path / "b.db").exists()
    assert not (tmp_path / "data" / "ledger.db").exists()
