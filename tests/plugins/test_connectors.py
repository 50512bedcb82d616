"""Connectors: every built-in format round-trips a book batch by batch, and a bad file is
rejected naming the column and row."""
from __future__ import annotations

import sqlite3

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from kernel.errors import PostloanError
from kernel.plugins import read_batches, write_batches
from kernel.schema import SchemaError, arrow_schema

FORMATS = ["book.parquet", "book.arrow", "book.arrows", "book.csv", "book.sqlite"]


@pytest.fixture(scope="module")
def book(small_book):
    return small_book.slice(0, 1500)


def roundtrip(manager, book, path, batch_size=400):
    rows = write_batches(str(path), book.to_batches(max_chunksize=512), schema=book.schema, manager=manager)
    batches = list(read_batches(str(path), batch_size=batch_size, manager=manager))
    return rows, batches


@pytest.mark.parametrize("name", FORMATS)
def test_a_book_round_trips_batch_by_batch(manager, book, tmp_path, name):
    rows, batches = roundtrip(manager, book, tmp_path / name)
    assert rows == book.num_rows
    sizes = [b.num_rows for b in batches]
    assert len(sizes) >= 4 and max(sizes) <= 400 and sum(sizes) == book.num_rows     # streamed, bounded
    back = pa.Table.from_batches(batches)
    assert back.schema.names == book.schema.names
    for column in book.schema.names:
        assert back[column].type == book[column].type, column
        assert back[column].to_pylist() == book[column].to_pylist(), column


def test_sqlite_uri_names_the_table(manager, book, tmp_path):
    db = tmp_path / "deploy.db"
    uri = f"sqlite:///{db}?table=loans"              # db is absolute: four slashes
    write_batches(uri, book.to_batches(), schema=book.schema, manager=manager)
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM loans").fetchone()[0] == book.num_rows
        assert con.execute("SELECT country FROM loans LIMIT 1").fetchone()[0] in ("CN", "US")
    back = pa.Table.from_batches(list(read_batches(uri, manager=manager)))
    assert back["dpd"].to_pylist() == book["dpd"].to_pylist()


def test_writing_replaces_the_target_only_when_complete(manager, book, tmp_path):
    path = tmp_path / "book.parquet"
    write_batches(str(path), book.to_batches(), schema=book.schema, manager=manager)

    def failing():
        yield book.to_batches()[0]
        raise RuntimeError("upstream died")

    with pytest.raises(PostloanError, match="connector 'parquet'.*failed to write: RuntimeError"):
        write_batches(str(path), failing(), schema=book.schema, manager=manager)
    assert pa.Table.from_batches(list(read_batches(str(path), manager=manager))).num_rows == book.num_rows
    assert [p.name for p in tmp_path.iterdir()] == ["book.parquet"]       # no temporary left behind



def test_sqlite_swap_is_one_transaction(manager, book, tmp_path):
    """A write that fails after the new rows went in leaves the old table whole and no
    staging table: DROP and RENAME commit together or not at all."""
    db = tmp_path / "book.sqlite"
    write_batches(str(db), book.to_batches(), schema=book.schema, manager=manager)

    def failing():
        yield book.to_batches()[0]
        raise RuntimeError("upstream died")

    with pytest.raises(PostloanError, match="failed to write: RuntimeError"):
        write_batches(str(db), failing(), schema=book.schema, manager=manager)
    with sqlite3.connect(db) as con:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert tables == ["book"] and con.execute("SELECT COUNT(*) FROM book").fetchone()[0] == book.num_rows


@pytest.mark.parametrize("name", FORMATS)
def test_written_files_get_the_usual_permissions(manager, book, tmp_path, name):
    import os
    path = tmp_path / name
    write_batches(str(path), book.slice(0, 10).to_batches(), schema=book.schema, manager=manager)
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask or name.endswith(".sqlite")   # sqlite makes its own


@pytest.mark.parametrize("name", FORMATS)
def test_a_source_without_rows_still_has_its_columns_checked(manager, book, tmp_path, name):
    empty = book.slice(0, 0)
    path = tmp_path / name
    write_batches(str(path), empty.to_batches() or [], schema=empty.schema, manager=manager)
    assert sum(b.num_rows for b in read_batches(str(path), manager=manager)) == 0     # a whole empty book: fine
    partial = empty.drop_columns(["penalty_interest"])
    other = tmp_path / ("partial_" + name)
    write_batches(str(other), [], schema=partial.schema, manager=manager)
    with pytest.raises(SchemaError, match=r"missing column 'penalty_interest'"):
        list(read_batches(str(other), manager=manager))


def test_a_source_without_columns_is_reported_empty(manager, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(PostloanError, match="empty"):
        list(read_batches(str(path), manager=manager))

def corrupt_csv(book, tmp_path, column, row, value):
    path = tmp_path / "bad.csv"
    import pyarrow.csv as pcsv
    plain = book.slice(0, 50).cast(pa.schema([pa.field(f.name, pa.string() if pa.types.is_dictionary(f.type) else f.type)
                                               for f in book.schema]))
    pcsv.write_csv(plain, path)
    lines = path.read_text("utf-8").splitlines()
    header = [h.strip('"') for h in lines[0].split(",")]
    index = header.index(column)
    import csv, io
    cells = next(csv.reader(io.StringIO(lines[row + 1])))
    cells[index] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(cells)
    lines[row + 1] = out.getvalue()
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def test_csv_bad_number_is_named_by_column_and_row(manager, book, tmp_path):
    path = corrupt_csv(book, tmp_path, "dpd", 17, "twelve")
    with pytest.raises(SchemaError, match=r"bad.csv: column 'dpd' row 17: 'twelve' is not a valid int64") as e:
        list(read_batches(str(path), manager=manager))
    assert (e.value.field, e.value.row) == ("dpd", 17)


def test_csv_bad_enum_member_is_named(manager, book, tmp_path):
    path = corrupt_csv(book, tmp_path, "country", 3, "FR")
    with pytest.raises(SchemaError, match=r"column 'country' row 3: not one of CN, US") as raised:
        list(read_batches(str(path), manager=manager))
    assert "FR" not in str(raised.value)           # a cell value is never quoted (it may be personal data)


def test_csv_bad_date_is_named(manager, book, tmp_path):
    path = corrupt_csv(book, tmp_path, "contract_date", 40, "2026-13-45")
    with pytest.raises(SchemaError, match=r"column 'contract_date' row 40: '2026-13-45' is not a valid date32"):
        list(read_batches(str(path), manager=manager))


def test_missing_column_is_named(manager, book, tmp_path):
    path = tmp_path / "partial.parquet"
    partial = book.drop_columns(["penalty_interest"])
    write_batches(str(path), partial.to_batches(), schema=partial.schema, manager=manager)
    with pytest.raises(SchemaError, match=r"partial.parquet: missing column 'penalty_interest'"):
        list(read_batches(str(path), manager=manager))


def test_a_null_in_a_later_batch_is_named_by_its_row_in_the_file(manager, book, tmp_path):
    path = tmp_path / "nulls.arrow"
    dpd = book["dpd"].combine_chunks()
    broken = book.set_column(book.schema.get_field_index("dpd"), "dpd",
                             pc.if_else(pa.array([i == 1234 for i in range(book.num_rows)]), pa.scalar(None, pa.int64()), dpd))
    write_batches(str(path), broken.to_batches(), schema=broken.schema, manager=manager)
    with pytest.raises(SchemaError, match=r"column 'dpd' must not be null \(first null at row 1234\)"):
        list(read_batches(str(path), batch_size=500, manager=manager))


def test_sqlite_bad_value_is_named(manager, book, tmp_path):
    db = tmp_path / "book.sqlite"
    write_batches(str(db), book.slice(0, 20).to_batches(), schema=book.schema, manager=manager)
    with sqlite3.connect(db) as con:
        con.execute("UPDATE book SET contract_date = 'last tuesday' WHERE account_id = ?",
                    (book["account_id"][7].as_py(),))
    with pytest.raises(SchemaError, match=r"column 'contract_date' row 7: 'last tuesday' is not a valid date32"):
        list(read_batches(str(db), manager=manager))


@pytest.mark.parametrize("uri, message", [
    ("nowhere/book.parquet", "no such file"),
    ("book.xlsx", r"no connector handles this file type \(known: .*\.csv.*\.parquet"),
    ("kafka://broker/topic", r"no connector handles the scheme 'kafka' \(schemes: sqlite\)"),
])
def test_unreadable_sources_are_named(manager, tmp_path, uri, message):
    with pytest.raises(PostloanError, match=message):
        list(read_batches(uri if "://" in uri else str(tmp_path / uri), manager=manager))


def test_a_file_that_is_not_what_its_name_says_is_named(manager, tmp_path):
    path = tmp_path / "book.parquet"
    path.write_text("account_id,dpd\nA,1\n")
    with pytest.raises(PostloanError, match=r"book.parquet: not a readable Parquet file"):
        list(read_batches(str(path), manager=manager))


def test_reading_only_requires_the_columns_asked_for(manager, book, tmp_path):
    path = tmp_path / "slim.csv"
    slim = book.select(["account_id", "dpd", "country"])
    write_batches(str(path), slim.to_batches(), schema=slim.schema, manager=manager)
    back = pa.Table.from_batches(list(read_batches(str(path), required=["dpd", "country", "collection_tier.tier"],
                                                   manager=manager)))
    assert back["country"].type == pa.dictionary(pa.int8(), pa.string())      # conformed to the contract
    with pytest.raises(SchemaError, match="missing column 'customer_id'"):
        list(read_batches(str(path), manager=manager))


def test_a_bad_value_in_a_personal_data_column_is_not_repeated(manager, book, tmp_path):
    path = corrupt_csv(book, tmp_path, "gps_lat", 5, "39.9N 116.4E")
    with pytest.raises(SchemaError, match=r"column 'gps_lat' row 5: \(value withheld: personal data\) is not a valid") as e:
        list(read_batches(str(path), manager=manager))
    assert "39.9N" not in str(e.value)


def test_a_csv_line_with_missing_fields_is_named_without_quoting_it(manager, book, tmp_path):
    path = corrupt_csv(book, tmp_path, "dpd", 0, "0")
    lines = path.read_text("utf-8").splitlines()
    lines[8] = lines[8].rsplit(",", 3)[0]                    # line 9 lost its last three fields
    path.write_text("\n".join(lines) + "\n", "utf-8")
    name = book["name"][7].as_py()
    with pytest.raises(PostloanError, match=r"bad.csv: not valid CSV at line 9: expected \d+ fields, got \d+") as e:
        list(read_batches(str(path), manager=manager))
    assert name not in str(e.value)
