"""postloan decide: every connector format in and out, streaming by batches, bad books
rejected in one line (column and row) without touching the output."""
import csv
import datetime as dt
import sqlite3

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kernel import Kernel, plugins
from kernel.cli import main

from .conftest import AS_OF
from .test_bundle import ACTION, BUCKET, ruleset, write

#: a collect ruleset: its fired rules are a list column (text in CSV and SQLite)
SIGNALS = ruleset("signals", "{dpd: int, overdue_amount: float}",
                  "{n: {type: int, default: 0, collect: count}}",
                  "- id: overdue\n  when: dpd > 0\n  then: {}\n"
                  "- id: large\n  when: overdue_amount > 5000\n  then: {}\n", hit="collect")
ROWS = 1500


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return write(tmp_path_factory.mktemp("bundle"), bucket=BUCKET, action=ACTION, signals=SIGNALS)


@pytest.fixture(scope="module")
def expected(bundle, small_book):
    """The decisions as Kernel.decide makes them, normalized for comparison with any format."""
    decided = Kernel.load(bundle).decide(small_book.slice(0, ROWS), AS_OF)
    return {name: [_norm(v) for v in decided.column(name).to_pylist()] for name in decided.column_names}


def _norm(v):
    """One value as every format gives it back: bools as 0/1, dates as ISO text, rule lists
    as ids joined by ';' (the text formats' form), floats to 9 digits."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, float):
        return round(v, 9)
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, list):
        return ";".join(v)
    return v


def _read_back(path: str, fmt: str) -> dict:
    if fmt == "parquet":
        table = pq.read_table(path)
    elif fmt in ("arrow", "arrows"):
        table = pa.ipc.open_file(path).read_all() if fmt == "arrow" else pa.ipc.open_stream(path).read_all()
    elif fmt == "csv":                 # as text: an unquoted empty cell is null, "" an empty text
        import pyarrow.csv as pcsv
        with open(path, "rb") as f:
            header = pcsv.open_csv(f).schema.names
        text = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(
            column_types={n: pa.string() for n in header}, strings_can_be_null=True, quoted_strings_can_be_null=False))
        return {name: [None if v is None else _csv_value(v) for v in text.column(name).to_pylist()] for name in header}
    else:
        con = sqlite3.connect(path)
        cur = con.execute('SELECT * FROM "decisions"')
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
        con.close()
        return {name: [_norm(r[i]) for r in rows] for i, name in enumerate(names)}
    return {name: [_norm(v) for v in table.column(name).to_pylist()] for name in table.column_names}


def _csv_value(text: str):
    if text in ("true", "false"):
        return int(text == "true")
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return round(float(text), 9)
    except ValueError:
        return text


@pytest.mark.parametrize("fmt", ["parquet", "arrow", "arrows", "csv", "sqlite"])
def test_decide_round_trips_every_format(fmt, bundle, expected, small_book, tmp_path, capsys):
    book_path, out_path = str(tmp_path / f"book.{fmt}"), str(tmp_path / f"decisions.{fmt}")
    plugins.write_batches(book_path, small_book.slice(0, ROWS).to_batches(max_chunksize=500), schema=small_book.schema)
    assert main(["decide", "--in", book_path, "--out", out_path, "--as-of", AS_OF.isoformat(),
                 "--bundle", str(bundle), "--batch-rows", "600", "--quiet"]) == 0
    printed = capsys.readouterr()
    assert f"decided {ROWS:,} accounts" in printed.err and printed.out == ""    # stdout is for `--out -` alone
    got = _read_back(out_path, fmt)
    assert list(got)[:3] == ["account_id", "as_of", "bundle_hash"]
    assert got["account_id"] == small_book.column("account_id").to_pylist()[:ROWS]
    assert set(got["as_of"]) == {AS_OF.isoformat()} and len(set(got["bundle_hash"])) == 1
    for name, values in expected.items():
        assert got[name] == values, f"{fmt}: {name} differs"
    assert any(v == "overdue;large" for v in expected["signals.rule"])     # the lists were exercised


def test_formats_named_explicitly_and_sqlite_uris(bundle, expected, small_book, tmp_path):
    book = tmp_path / "export.txt"                        # CSV whatever the extension
    plugins.write_batches(str(book), small_book.slice(0, ROWS).to_batches(), schema=small_book.schema,
                          connector="csv")
    out = tmp_path / "decisions.db"
    uri = f"sqlite:///{out}?table=decisions"
    assert main(["decide", "--in", str(book), "--in-format", "csv", "--out", uri, "--as-of", AS_OF.isoformat(),
                 "--bundle", str(bundle), "--quiet"]) == 0
    con = sqlite3.connect(out)
    assert [_norm(r[0]) for r in con.execute('SELECT "action.weight" FROM decisions')] == expected["action.weight"]
    con.close()
    same = tmp_path / "decisions.out"
    assert main(["decide", "--in", str(book), "--format", "csv", "--out", str(same), "--as-of", AS_OF.isoformat(),
                 "--bundle", str(bundle), "--quiet"]) == 0
    assert _read_back(str(same), "csv")["signals.rule"] == expected["signals.rule"]


def test_a_bad_value_is_rejected_naming_column_and_row_and_the_output_is_kept(bundle, small_book, tmp_path, capsys):
    book = tmp_path / "book.csv"
    plugins.write_batches(str(book), small_book.slice(0, ROWS).to_batches(), schema=small_book.schema)
    with open(book, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    rows[1 + 1234][rows[0].index("dpd")] = "twelve"        # data row 1234, in the third batch
    with open(book, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    out = tmp_path / "decisions.parquet"
    out.write_bytes(b"an earlier run's decisions")
    assert main(["decide", "--in", str(book), "--out", str(out), "--bundle", str(bundle),
                 "--batch-rows", "500", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(book) in err and "column 'dpd' row 1234" in err and "'twelve'" in err
    assert out.read_bytes() == b"an earlier run's decisions"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["book.csv", "decisions.parquet"]   # no leftovers


def test_a_missing_column_is_rejected_in_one_line(bundle, small_book, tmp_path, capsys):
    book = tmp_path / "book.parquet"
    pq.write_table(small_book.slice(0, 10).drop_columns(["overdue_amount"]), book)
    out = tmp_path / "decisions.parquet"
    assert main(["decide", "--in", str(book), "--out", str(out), "--bundle", str(bundle), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing column 'overdue_amount'" in err and str(book) in err
    assert not out.exists()


def test_unknown_formats_are_named(bundle, small_book, tmp_path, capsys):
    book = tmp_path / "book.parquet"
    pq.write_table(small_book.slice(0, 10), book)
    assert main(["decide", "--in", str(book), "--out", str(tmp_path / "d.xyz"), "--bundle", str(bundle)]) == 2
    assert "no connector handles this file type" in capsys.readouterr().err
    assert main(["decide", "--in", str(book), "--out", str(tmp_path / "d.parquet"), "--format", "excel",
                 "--bundle", str(bundle)]) == 2
    assert "no connector named 'excel' (connectors: arrow, csv, parquet, sqlite)" in capsys.readouterr().err
