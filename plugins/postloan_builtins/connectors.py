"""Built-in connectors: Parquet, Arrow IPC, CSV and SQLite, each streaming by batches.

Every connector only moves data; ``kernel.plugins.read_batches`` conforms and validates
what they yield against the data contract. Writers never leave a half-written target and
never replace what is not theirs (:func:`kernel.files.open_output`): files are written next
to the target and renamed over it (a symlink's target, so that the link stays), ``-`` and
special files (``/dev/stdout``, FIFOs) are written in place; SQLite tables are swapped in one
transaction, in a database that must be a regular file.
"""
from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path
from typing import Iterable, Iterator
from urllib.parse import parse_qs, unquote, urlparse

import pyarrow as pa
import pyarrow.compute as pc

import kernel
from kernel.errors import PostloanError
from kernel.files import FileError, is_special_output, open_output
from kernel.hookspecs import Connector
from kernel.plugins import shown
from kernel.schema import SchemaError

__all__ = ["ParquetConnector", "ArrowIpcConnector", "CsvConnector", "SqliteConnector"]


def _or_empty(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """The batches; for a source with no rows, one empty batch with the source's columns, so
    that they are still checked against the contract (``read`` of the Connector hook)."""
    empty = True
    for batch in batches:
        empty = False
        yield batch
    if empty:
        yield pa.RecordBatch.from_arrays([pa.array([], f.type) for f in schema], schema=schema)


def _rebatch(batches: Iterable[pa.RecordBatch], size: int) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        for start in range(0, batch.num_rows, size):
            yield batch.slice(start, size)


def _require_file(path: str) -> None:
    if not os.path.exists(path):
        raise PostloanError(f"{path}: no such file")
    if os.path.isdir(path):
        raise PostloanError(f"{path}: is a directory, expected a file")


def _plain(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Dictionary columns decoded to their values (for formats that store text)."""
    if not any(pa.types.is_dictionary(f.type) for f in batch.schema):
        return batch
    arrays = [a.dictionary_decode() if pa.types.is_dictionary(a.type) else a for a in batch.columns]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


class ParquetConnector(Connector):
    name = "parquet"
    nested = True                   # list columns as lists
    suffixes = (".parquet", ".pq")

    def read(self, uri, *, schema, batch_size):
        import pyarrow.parquet as pq
        _require_file(uri)
        try:
            f = pq.ParquetFile(uri)
        except (pa.ArrowInvalid, UnicodeDecodeError) as e:     # (a corrupt footer: names that are not UTF-8)
            raise PostloanError(f"{uri}: not a readable Parquet file ({e})") from None
        yield from _or_empty(f.iter_batches(batch_size=batch_size), f.schema_arrow)

    def write(self, uri, batches, *, schema):
        import pyarrow.parquet as pq
        rows = 0
        with open_output(uri) as sink, pq.ParquetWriter(sink, schema, compression="zstd") as w:
            for batch in batches:
                w.write_batch(batch)
                rows += batch.num_rows
        return rows


class ArrowIpcConnector(Connector):
    """Arrow IPC: the file format (``.arrow``, ``.feather``, ``.ipc``) or the stream format
    (``.arrows``); reading accepts either whatever the suffix."""

    name = "arrow"
    nested = True                   # list columns as lists
    suffixes = (".arrow", ".arrows", ".feather", ".ipc")

    def read(self, uri, *, schema, batch_size):
        _require_file(uri)
        try:
            reader = pa.ipc.open_file(pa.memory_map(uri))
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
        except pa.ArrowInvalid:
            try:
                reader = batches = pa.ipc.open_stream(pa.OSFile(uri))
            except pa.ArrowInvalid as e:
                raise PostloanError(f"{uri}: not an Arrow IPC file or stream ({e})") from None
        yield from _or_empty(_rebatch(batches, batch_size), reader.schema)

    def write(self, uri, batches, *, schema):
        rows = 0
        stream = str(uri).lower().endswith(".arrows")
        opener = pa.ipc.new_stream if stream else pa.ipc.new_file
        with open_output(uri) as sink, opener(sink, schema) as w:
            for batch in batches:
                w.write_batch(batch)
                rows += batch.num_rows
        return rows


_CSV_COLUMN = re.compile(r"CSV column #(\d+)")
_CSV_SHAPE = re.compile(r"Expected (\d+) columns, got (\d+)")


def _first_line_with_fields_other_than(path: str, expected: int) -> int | None:
    """The 1-based line of the first CSV record whose field count is not ``expected``."""
    import csv
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        for record in reader:
            if len(record) != expected:
                return reader.line_num
    return None


class CsvConnector(Connector):
    """CSV with a header row, UTF-8. Contract columns are typed by the contract (enums as
    their member names, dates ``YYYY-MM-DD``, instants ISO 8601 in UTC); empty cells are
    nulls. Other columns pass through with inferred types."""

    name = "csv"
    suffixes = (".csv",)

    def read(self, uri, *, schema, batch_size):
        import pyarrow.csv as pcsv
        _require_file(uri)
        types = {f.name: (f.type.value_type if pa.types.is_dictionary(f.type) else f.type) for f in schema}
        convert = pcsv.ConvertOptions(column_types=types, strings_can_be_null=True)
        read_opts = pcsv.ReadOptions(block_size=1 << 22)
        try:
            reader = pcsv.open_csv(uri, read_options=read_opts, convert_options=convert)
            yield from _or_empty(_rebatch(_csv_batches(reader), batch_size), reader.schema)
        except pa.ArrowInvalid as e:
            raise self._explain(uri, e, types) from None

    def _explain(self, uri: str, error: pa.ArrowInvalid, types: dict) -> PostloanError:
        """Turn Arrow's 'CSV column #N: conversion error' into the column's name and row."""
        import pyarrow.csv as pcsv
        message = str(error)
        m = _CSV_COLUMN.search(message)
        if not m:
            shape = _CSV_SHAPE.search(message)
            if shape:       # Arrow quotes the offending line, which may hold personal data
                line = _first_line_with_fields_other_than(uri, int(shape.group(1)))
                where = f" at line {line}" if line else ""
                return PostloanError(f"{uri}: not valid CSV{where}: expected {shape.group(1)} fields, "
                                     f"got {shape.group(2)}")
            return PostloanError(f"{uri}: not valid CSV ({message.split(':')[0]})")
        with open(uri, "rb") as f:
            header = pcsv.open_csv(f).schema.names
        index = int(m.group(1))
        name = header[index] if index < len(header) else f"#{index}"
        target = types.get(name)
        as_text = pcsv.ConvertOptions(column_types={n: pa.string() for n in header}, strings_can_be_null=True,
                                      include_columns=[name])
        offset = 0
        for batch in pcsv.open_csv(uri, convert_options=as_text):
            column = batch.column(0)
            row = _first_bad_cast(column, target)
            if row is not None:
                value = column[row].as_py()
                return SchemaError(f"{uri}: column {name!r} row {offset + row}: {shown(name, value)} is not a valid {target}",
                                   field=name, row=offset + row)
            offset += batch.num_rows
        return SchemaError(f"{uri}: column {name!r}: {message}", field=name)

    def write(self, uri, batches, *, schema):
        import pyarrow.csv as pcsv
        rows = 0
        plain_schema = pa.schema([pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
                                  for f in schema])
        with open_output(uri) as sink, pcsv.CSVWriter(sink, plain_schema) as w:
            for batch in batches:
                w.write_batch(_plain(batch))
                rows += batch.num_rows
        return rows


def _csv_batches(reader) -> Iterator[pa.RecordBatch]:
    for batch in reader:
        yield batch


def _first_bad_cast(column: pa.Array, target: pa.DataType | None) -> int | None:
    """Index of the first value of a text column that does not cast to ``target`` (bisection:
    O(log n) vectorized casts)."""
    if target is None:
        return None

    def ok(lo: int, hi: int) -> bool:
        try:
            pc.cast(column.slice(lo, hi - lo), target)
            return True
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return False

    lo, hi = 0, len(column)
    if ok(lo, hi):
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(lo, mid):
            lo = mid
        else:
            hi = mid
    return lo


class SqliteConnector(Connector):
    """SQLite for small deployments: ``sqlite:///relative.db?table=book`` or
    ``sqlite:////absolute/path.db`` (SQLAlchemy's convention), or a path ending in
    ``.sqlite``/``.sqlite3``/``.db`` (the table is then the contract table's name, e.g. book).

    Dates are stored as ISO ``YYYY-MM-DD`` text, instants as ISO 8601 UTC text, booleans as
    0/1, enums as their member names. Reading uses a cursor and ``fetchmany``; writing builds
    the new table beside the old one and swaps them in one transaction."""

    name = "sqlite"
    schemes = ("sqlite",)
    suffixes = (".sqlite", ".sqlite3", ".db")

    @staticmethod
    def _locate(uri: str, default_table: str) -> tuple[str, str]:
        parsed = urlparse(uri)
        if parsed.scheme == "sqlite":
            # SQLAlchemy's convention: sqlite:///relative.db, sqlite:////absolute/path.db
            if parsed.netloc:
                raise PostloanError(f"{uri}: a sqlite URI has no host; write sqlite:///relative.db "
                                    f"or sqlite:////absolute/path.db")
            path = unquote(parsed.path)[1:]
            table = parse_qs(parsed.query).get("table", [default_table])[0]
        else:
            path, table = uri, default_table
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", table):
            raise PostloanError(f"{uri}: table name {table!r} must be a plain identifier")
        return path, table

    def read(self, uri, *, schema, batch_size):
        default = (schema.metadata or {}).get(b"postloan.table", b"book").decode()
        path, table = self._locate(uri, default)
        _require_file(path)
        con = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
        try:
            cur = con.execute(f'SELECT * FROM "{table}"')
        except sqlite3.DatabaseError as e:
            con.close()
            raise PostloanError(f"{uri}: cannot read table {table!r}: {e}") from None
        names = [d[0] for d in cur.description]
        types = {f.name: f.type for f in schema}
        offset = 0
        try:
            while True:
                rows = cur.fetchmany(batch_size)
                if not rows:
                    if offset == 0:         # no rows: the table's columns, still checked
                        yield pa.RecordBatch.from_arrays([pa.array([], types.get(n, pa.null())) for n in names],
                                                         names=names)
                    break
                columns = list(zip(*rows))
                arrays = [_sql_column(uri, name, values, types.get(name), offset) for name, values in zip(names, columns)]
                offset += len(rows)
                yield pa.RecordBatch.from_arrays(arrays, names=names)
        finally:
            con.close()

    def write(self, uri, batches, *, schema):
        default = (schema.metadata or {}).get(b"postloan.table", b"book").decode()
        path, table = self._locate(uri, default)
        if is_special_output(path):          # a database is changed in place: it must be a file of its own
            raise FileError(path, "SQLite writes to a database file, not to standard output or a special file")
        decls = ", ".join(f'"{f.name}" {_sql_type(f.type)}' for f in schema)
        staging = f"{table}__postloan_new"
        # Autocommit mode and one explicit transaction: Python's sqlite3 would commit each
        # CREATE / DROP / ALTER on its own, and a crash between them would lose the table.
        con = sqlite3.connect(path, isolation_level=None)
        rows = 0
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                con.execute(f'DROP TABLE IF EXISTS "{staging}"')
                con.execute(f'CREATE TABLE "{staging}" ({decls})')
                marks = ", ".join("?" * len(schema))
                for batch in batches:
                    cols = [_sql_values(batch.column(i)) for i in range(batch.num_columns)]
                    con.executemany(f'INSERT INTO "{staging}" VALUES ({marks})', zip(*cols))
                    rows += batch.num_rows
                con.execute(f'DROP TABLE IF EXISTS "{table}"')
                con.execute(f'ALTER TABLE "{staging}" RENAME TO "{table}"')
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        finally:
            con.close()
        return rows


def _sql_type(t: pa.DataType) -> str:
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return "INTEGER"
    if pa.types.is_floating(t):
        return "REAL"
    return "TEXT"


def _sql_values(arr: pa.Array) -> list:
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
    elif pa.types.is_date(t):
        arr = arr.cast(pa.string())
    elif pa.types.is_timestamp(t):
        # %S carries the microseconds
        arr = pc.strftime(arr.cast(pa.timestamp("us", tz="UTC")), format="%Y-%m-%dT%H:%M:%SZ")
    elif pa.types.is_boolean(t):
        arr = arr.cast(pa.int64())
    return arr.to_pylist()


def _sql_column(uri: str, name: str, values: tuple, target: pa.DataType | None, offset: int) -> pa.Array:
    if target is None:
        return pa.array(values)
    text_type = target.value_type if pa.types.is_dictionary(target) else target
    try:
        if pa.types.is_date(text_type) or pa.types.is_timestamp(text_type):
            return pc.cast(pa.array(values, pa.string()), text_type)
        if pa.types.is_boolean(text_type):
            if not all(v in (0, 1, None) for v in values):
                raise TypeError("not 0/1")
            return pa.array([None if v is None else bool(v) for v in values], pa.bool_())
        return pa.array(values, text_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        row = next((i for i, v in enumerate(values) if _bad_sql_value(v, text_type)), 0)
        raise SchemaError(f"{uri}: column {name!r} row {offset + row}: {shown(name, values[row])} is not a valid {text_type}",
                          field=name, row=offset + row) from None


def _bad_sql_value(value, target: pa.DataType) -> bool:
    try:
        if pa.types.is_date(target) or pa.types.is_timestamp(target):
            pc.cast(pa.array([value], pa.string()), target)
        elif pa.types.is_boolean(target):
            return value not in (0, 1, None)
        else:
            pa.array([value], target)
        return False
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return True


@kernel.hookimpl
def postloan_connectors(config):
    return [ParquetConnector(), ArrowIpcConnector(), CsvConnector(), SqliteConnector()]
