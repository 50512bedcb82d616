"""What each decision run leaves for evaluation, and where it is kept.

A **run** is the decisions and actions of one decision date (``as_of``). Evaluation keeps two
tables of it, without personal data:

- **snapshots** (:data:`SNAPSHOT`): one row per account decided — what it looked like and
  what was decided: arm, DPD and its bucket (and 30 days before), balances and their
  ``currency`` (every amount of a row is in it: CNY, USD), vintage, tier and channel, segment,
  early warning (``pd``: the bundle's ``early_warning.pd``, the probability it decides on —
  the PD model's, or 1 for an account already in default), vehicle alerts, disposal;
- **actions** (:data:`ACTION`): one row per planned action with its compliance outcome.

The outcomes are the ledger's **events** (payments, contact attempts, promises, complaints,
repossessions, sales). Together they are a **dataset**, kept in one of two places:

- the ledger's own store (:class:`RunStore`: the tables ``evaluation_parts`` and
  ``evaluation_schema`` beside the ledger's, each run as zstd-compressed Arrow IPC parts;
  the events are the ledger's ``events`` table) — what ``postloan report --store URL`` reads;
- a folder of Parquet files partitioned by account (:func:`write_dataset`):
  ``snapshots/part-NNNNN.parquet``, ``actions/part-NNNNN.parquet``, ``events/part-NNNNN.parquet``,
  part ``k`` of each holding the same accounts — what ``postloan report --in DIR`` reads, one
  partition at a time, in one process or on Dask.
"""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import PostloanError
from ..schema import ENUMS
from .arms import SLOTS, slots

__all__ = ["with_currency", "currency_of", "SNAPSHOT", "ACTION", "OUTCOME_EVENTS", "snapshot", "action_records", "RunStore", "Part",
           "write_dataset", "read_dataset", "dataset_parts", "DatasetError", "PARTITION_SEED"]

UTC = dt.timezone.utc
TS = pa.timestamp("us", tz="UTC")
_S, _F, _I, _B, _D = pa.string(), pa.float64(), pa.int64(), pa.bool_(), pa.date32()

#: snapshot column -> (type, the decision input or decision column it is read from)
_SNAPSHOT_SOURCES: dict[str, tuple[pa.DataType, str | None]] = {
    "account_id": (_S, "account_id"), "as_of": (_D, None), "decided_at": (TS, None),
    "arm": (_S, "experiment.arm"),
    "dpd": (_I, "dpd"), "dpd_30d_ago": (_I, "dpd_30d_ago"),
    "bucket": (_S, "dpd_bucket.bucket"), "bucket_30d_ago": (_S, None),
    "outstanding_principal": (_F, "outstanding_principal"), "overdue_amount": (_F, "overdue_amount"),
    "contract_date": (_D, "contract_date"), "country": (_S, "country"), "currency": (_S, "currency"),
    "tier": (_S, "collection_tier.tier"), "channel": (_S, "collection_tier.channel"),
    "segment": (_S, "risk_segment.segment"), "overdue_reason": (_S, "risk_segment.overdue_reason"),
    "ew_level": (_S, "early_warning.level"), "ew_score": (_F, "early_warning.score"),
    "pd": (_F, "early_warning.pd"),
    "insurance_expiring": (_B, "vehicle_alerts.insurance_expiring"),
    "insurance_lapsed": (_B, "vehicle_alerts.insurance_lapsed"),
    "gps_offline": (_B, "vehicle_alerts.gps_offline"), "geofence_exit": (_B, "vehicle_alerts.geofence_exit"),
    "violations": (_B, "vehicle_alerts.violations"),
    "gps_offline_then_exit": (_B, "alert_gps_offline_then_exit"),
    "repossess": (_B, "disposal.repossess"), "dispose": (_B, "disposal.dispose"),
    "valuation_price": (_F, "valuation.price"), "disposal_channel": (_S, "disposal_channel.channel"),
    "expected_net": (_F, "disposal_channel.expected_net"), "repossession_stage": (_S, "repossession_stage"),
}
#: the snapshot table's schema
SNAPSHOT = pa.schema([pa.field(name, t) for name, (t, _) in _SNAPSHOT_SOURCES.items()])
#: the action records' schema
ACTION = pa.schema([pa.field("account_id", _S), pa.field("as_of", _D), pa.field("decided_at", TS),
                    pa.field("action", _S), pa.field("outcome", _S), pa.field("reason_code", _S),
                    pa.field("policy", _S), pa.field("earliest_at", TS)])
#: the ledger events evaluation reads (kinds), and the columns it reads of them
OUTCOME_EVENTS = ("PAYMENT", "CONTACT_ATTEMPT", "PROMISE_TO_PAY", "COMPLAINT_OPENED", "REPOSSESSED",
                  "REDEEMED", "VEHICLE_SOLD")
EVENT = pa.schema([pa.field("account_id", _S), pa.field("kind", _S), pa.field("at", TS), pa.field("amount", _F),
                   pa.field("promise_date", _D), pa.field("channel", _S), pa.field("outcome", _S),
                   pa.field("agent", _S)])
#: the salt of the hash that partitions a dataset by account (not an experiment's seed)
PARTITION_SEED = "postloan-dataset-partition"
KINDS = ("snapshots", "actions", "events")


class DatasetError(PostloanError):
    """A dataset folder or a stored run that cannot be read; names the file or run."""


def _column(table, name: str, t: pa.DataType, n: int):
    if name not in table.column_names:
        return pa.nulls(n, t)
    col = table[name]
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    return col.cast(t) if not col.type.equals(t) else col


def snapshot(book, decisions: pa.Table, as_of: dt.date, now: dt.datetime, kernel=None) -> pa.Table:
    """The snapshot rows of one decided batch: ``book`` is what the kernel read (book ⋈
    state), ``decisions`` the pipeline's decisions, row for row. ``bucket_30d_ago`` comes from
    the bundle's ``dpd_bucket`` ruleset applied to ``dpd_30d_ago`` (``kernel``: the bundle's
    kernel; without it, or without the ruleset, it is null) — the boundaries stay in one place.
    A column a bundle does not produce is null; ``arm`` is NONE without an experiment."""
    book = book if isinstance(book, pa.Table) else pa.Table.from_batches([book])
    n = book.num_rows
    if decisions.num_rows != n:
        raise PostloanError(f"snapshot: {decisions.num_rows} decision rows for {n} accounts")
    arrays = []
    for name, (t, source) in _SNAPSHOT_SOURCES.items():
        if name == "as_of":
            arrays.append(pa.array(np.full(n, (as_of - dt.date(1970, 1, 1)).days, np.int32), _D))
        elif name == "decided_at":
            arrays.append(pa.array(np.full(n, int(now.timestamp() * 1_000_000), np.int64), pa.int64()).cast(TS))
        elif name == "bucket_30d_ago":
            arrays.append(_bucket_then(kernel, book, as_of, n))
        elif name == "arm":
            arm = _column(decisions, source, t, n)
            arrays.append(arm.fill_null("NONE") if arm.null_count else arm)
        elif name == "currency":
            arrays.append(currency_of(_column(book, "currency", t, n), _column(book, "country", _S, n)))
        else:
            where = decisions if source in decisions.column_names else book
            arrays.append(_column(where, source, t, n))
    return pa.Table.from_arrays(arrays, schema=SNAPSHOT)


def currency_of(currency: pa.Array, country: pa.Array) -> pa.Array:
    """Each row's currency: the given one, or where null the country's (US: USD, else CNY),
    as the data contract says (schema ``currency``)."""
    if currency.null_count == 0:
        return currency
    by_country = pc.if_else(pc.equal(country, "US").fill_null(False), "USD", "CNY")
    return pc.coalesce(currency, by_country)


def with_currency(table: pa.Table) -> pa.Table:
    """A snapshot table of a layout before ``currency`` (stored runs, older datasets): the
    column added from the country, in its place (and a null currency filled the same way)."""
    n = table.num_rows
    country = _column(table, "country", _S, n)
    if "currency" in table.column_names:
        given = _column(table, "currency", _S, n)
        if not given.null_count:
            return table
        where = table.column_names.index("currency")
        return table.set_column(where, pa.field("currency", _S), currency_of(given, country))
    cur = currency_of(pa.nulls(n, _S), country)
    where = table.column_names.index("country") + 1 if "country" in table.column_names else table.num_columns
    return table.add_column(where, pa.field("currency", _S), cur)


def _bucket_then(kernel, book: pa.Table, as_of: dt.date, n: int):
    if kernel is None or "dpd_bucket" not in getattr(kernel, "nodes", ()) or "dpd_30d_ago" not in book.column_names:
        return pa.nulls(n, _S)
    shifted = pa.table({"dpd": book["dpd_30d_ago"]})
    out = kernel.bundle.node("dpd_bucket").ruleset.evaluate(shifted, as_of=as_of)["dpd_bucket.bucket"]
    return _column(pa.table({"b": out}), "b", _S, n)


def action_records(actions: pa.Table, as_of: dt.date, now: dt.datetime) -> pa.Table:
    """The action rows of one decided batch (the pipeline's ``actions``, without scripts)."""
    n = actions.num_rows
    day = pa.array(np.full(n, (as_of - dt.date(1970, 1, 1)).days, np.int32), _D)
    at = pa.array(np.full(n, int(now.timestamp() * 1_000_000), np.int64), pa.int64()).cast(TS)
    arrays = [_column(actions, "account_id", _S, n), day, at, _column(actions, "action", _S, n),
              _column(actions, "outcome", _S, n), _column(actions, "reason_code", _S, n),
              _column(actions, "policy", _S, n), _column(actions, "earliest_at", TS, n)]
    return pa.Table.from_arrays(arrays, schema=ACTION)


# --------------------------------------------------------------------------------------------
# Runs in the ledger's store
# --------------------------------------------------------------------------------------------

#: rows per stored part: a run of 1,000,000 accounts is 4 parts
PART_ROWS = 262_144
_SCHEMA_VERSION = 1


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


class RunStore:
    """The runs kept in a ledger's store, beside its events (``evaluation_parts``: one row per
    part of a run, its Arrow IPC bytes; ``evaluation_schema``: the layout's version, upgraded
    apart from the ledger's own migrations). ``store``: a
    :class:`~kernel.ledger.store.Store`, a :class:`~kernel.ledger.Ledger` or a store URL."""

    def __init__(self, store):
        from ..ledger import Ledger
        from ..ledger.store import Store, open_store
        self._owned = False
        if isinstance(store, Ledger):
            store = store.store
        elif not isinstance(store, Store):
            store, self._owned = open_store(store), True
        self.store = store
        blob = "BLOB" if store.mark == "?" else "BYTEA"          # SQLite, PostgreSQL
        with store.transaction() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS evaluation_schema (version INTEGER NOT NULL)")
            cur.execute("SELECT version FROM evaluation_schema")
            row = cur.fetchone()
            if row is None:
                cur.execute(f"""CREATE TABLE IF NOT EXISTS evaluation_parts (
                    as_of INTEGER NOT NULL, kind TEXT NOT NULL, part INTEGER NOT NULL, rows BIGINT NOT NULL,
                    recorded_at BIGINT NOT NULL, payload {blob} NOT NULL, PRIMARY KEY (as_of, kind, part))""")
                cur.execute(store._sql("INSERT INTO evaluation_schema (version) VALUES (?)"), (_SCHEMA_VERSION,))
            elif int(row[0]) > _SCHEMA_VERSION:
                raise DatasetError(f"{store.url}: its evaluation tables are version {row[0]}, newer than this "
                                   f"postloan knows ({_SCHEMA_VERSION}); upgrade postloan")

    def close(self) -> None:
        if self._owned:
            self.store.close()

    def record_run(self, as_of: dt.date, snapshots: pa.Table, actions: pa.Table | None = None) -> None:
        """Keep one run (replacing a run of the same date), durable when it returns. A null
        ``currency`` is the country's (US: USD, else CNY)."""
        _check(snapshots, SNAPSHOT, "snapshots")
        snapshots = with_currency(snapshots)
        actions = actions if actions is not None else ACTION.empty_table()
        _check(actions, ACTION, "actions")
        day = (as_of - dt.date(1970, 1, 1)).days
        now = int(dt.datetime.now(UTC).timestamp() * 1_000_000)
        rows = []
        for kind, table in (("snapshots", snapshots), ("actions", actions)):
            table = table.combine_chunks()
            for k, start in enumerate(range(0, max(table.num_rows, 1), PART_ROWS)):
                part = table.slice(start, PART_ROWS)
                rows.append((day, kind, k, part.num_rows, now, _ipc(part)))
        sql = self.store._sql
        with self.store.transaction() as cur:
            cur.execute(sql("DELETE FROM evaluation_parts WHERE as_of = ?"), (day,))
            cur.executemany(sql("INSERT INTO evaluation_parts (as_of, kind, part, rows, recorded_at, payload) "
                                "VALUES (?, ?, ?, ?, ?, ?)"), rows)

    def runs(self) -> list[dt.date]:
        """The dates of the runs kept, oldest first."""
        with self.store.reading() as cur:
            cur.execute("SELECT DISTINCT as_of FROM evaluation_parts ORDER BY as_of")
            return [dt.date(1970, 1, 1) + dt.timedelta(days=int(r[0])) for r in cur.fetchall()]

    def read(self, kind: str) -> pa.Table:
        """Every run's ``kind`` ("snapshots" or "actions") as one table, oldest run first."""
        schema = SNAPSHOT if kind == "snapshots" else ACTION
        return pa.concat_tables([schema.empty_table(), *self.iter(kind)])

    def iter(self, kind: str) -> Iterator[pa.Table]:
        """Every run's ``kind`` part by part, oldest run first (memory: one part at a time)."""
        with self.store.reading() as cur:
            cur.execute(self.store._sql("SELECT as_of, part, payload FROM evaluation_parts WHERE kind = ? "
                                        "ORDER BY as_of, part"), (kind,))
            while True:
                rows = cur.fetchmany(16)
                if not rows:
                    break
                for day, part, payload in rows:
                    try:
                        table = pa.ipc.open_stream(pa.py_buffer(bytes(payload))).read_all()
                    except pa.ArrowInvalid as e:
                        when = dt.date(1970, 1, 1) + dt.timedelta(days=int(day))
                        raise DatasetError(f"{self.store.url}: the {kind} of the run of {when} (part {part}) "
                                           f"cannot be read ({e})") from None
                    yield with_currency(table) if kind == "snapshots" else table

    def events(self, since: dt.datetime | None = None, until: dt.datetime | None = None) -> pa.Table:
        """The ledger's outcome events (:data:`OUTCOME_EVENTS`) with ``at`` in ``[since, until]``."""
        return read_store_events(self.store, since, until)


def read_store_events(store, since=None, until=None) -> pa.Table:
    """The outcome events of a ledger's store as the :data:`EVENT` table, oldest first."""
    kinds = ", ".join(str(ENUMS["event_kind"].index(k)) for k in OUTCOME_EVENTS)
    lo = -(1 << 62) if since is None else int(since.timestamp() * 1_000_000)
    hi = (1 << 62) if until is None else int(until.timestamp() * 1_000_000)
    cols: dict[str, list] = {k: [] for k in ("account_id", "kind", "at", "amount", "promise_date", "channel",
                                              "outcome", "agent")}
    with store.reading() as cur:
        cur.execute(store._sql(f"SELECT account_id, kind, at, amount, promise_date, channel, outcome, agent "
                               f"FROM events WHERE kind IN ({kinds}) AND at >= ? AND at <= ? "
                               f"ORDER BY at, event_id"), (lo, hi))
        while True:
            rows = cur.fetchmany(200_000)
            if not rows:
                break
            for key, values in zip(cols, zip(*rows)):
                cols[key].extend(values)
    return _events_table(cols)


def _events_table(cols: dict[str, list]) -> pa.Table:
    def names(codes, enum):
        arr = pa.array(cols[codes], pa.int8())
        return pa.DictionaryArray.from_arrays(arr, pa.array(ENUMS[enum])).dictionary_decode() \
            if len(arr) else pa.array([], _S)
    at = pa.array(cols["at"], pa.int64()).cast(TS)
    promise = pa.array(cols["promise_date"], pa.int64()).cast(pa.int32()).cast(_D)
    return pa.Table.from_arrays([pa.array(cols["account_id"], _S), names("kind", "event_kind"), at,
                                 pa.array(cols["amount"], _F), promise, names("channel", "contact_channel"),
                                 names("outcome", "contact_outcome"), pa.array(cols["agent"], _S)], schema=EVENT)


def _check(table: pa.Table, schema: pa.Schema, what: str) -> None:
    if not table.schema.equals(schema, check_metadata=False):
        missing = [f.name for f in schema if f.name not in table.column_names]
        raise DatasetError(f"{what}: expected the columns of kernel.evaluation.records "
                           f"({'missing ' + missing[0] if missing else 'other types or order'})")


# --------------------------------------------------------------------------------------------
# Datasets: snapshots, actions and events partitioned by account
# --------------------------------------------------------------------------------------------

@dataclass
class Part:
    """One partition of a dataset: the same accounts' snapshots, actions and events."""

    snapshots: pa.Table
    actions: pa.Table
    events: pa.Table


def partition_of(account_ids, partitions: int) -> np.ndarray:
    """The partition (0 … partitions − 1) of each account: a stable hash, not the arm's."""
    return slots(account_ids, PARTITION_SEED) * partitions // SLOTS


def write_dataset(folder: str | os.PathLike, part: Part, partitions: int) -> list[Path]:
    """Write ``part`` (a whole dataset) to ``folder`` as ``partitions`` Parquet parts per
    table, partitioned by account; returns the files written."""
    if partitions < 1:
        raise DatasetError(f"{folder}: partitions must be 1 or more")
    folder = Path(folder)
    written = []
    for kind, table in (("snapshots", part.snapshots), ("actions", part.actions), ("events", part.events)):
        (folder / kind).mkdir(parents=True, exist_ok=True)
        which = partition_of(table["account_id"], partitions) if table.num_rows else np.zeros(0, np.int64)
        for k in range(partitions):
            path = folder / kind / f"part-{k:05d}.parquet"
            pq.write_table(table.filter(pa.array(which == k)), path)
            written.append(path)
    return written


def dataset_parts(folder: str | os.PathLike) -> list[str]:
    """The part names of a dataset folder (``part-00000.parquet`` …), checked: every part is
    in each of snapshots/, actions/ and events/."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder (a dataset is a folder with snapshots/, actions/, events/)")
    names = None
    for kind in KINDS:
        sub = folder / kind
        if not sub.is_dir():
            raise DatasetError(f"{folder}: no {kind}/ folder (a dataset has snapshots/, actions/ and events/)")
        found = sorted(p.name for p in sub.glob("*.parquet"))
        if names is None:
            names = found
        elif found != names:
            other = sorted(set(found) ^ set(names))[0]
            raise DatasetError(f"{folder}: {other} is not in each of snapshots/, actions/ and events/")
    if not names:
        raise DatasetError(f"{folder}: holds no Parquet parts")
    return names


#: the columns no row of a dataset's table may leave empty
_REQUIRED = {"snapshots": ("account_id", "as_of", "decided_at"), "actions": ("account_id", "decided_at"),
             "events": ("account_id", "kind", "at")}


def _np_bool(col) -> np.ndarray:
    return np.asarray(col.to_numpy(zero_copy_only=False), bool)


def read_part(folder: str | os.PathLike, name: str) -> Part:
    """One partition of a dataset folder."""
    folder = Path(folder)
    tables = []
    for kind, schema in (("snapshots", SNAPSHOT), ("actions", ACTION), ("events", EVENT)):
        path = folder / kind / name
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as e:
            raise DatasetError(f"{path}: not a readable Parquet file ({str(e).splitlines()[0][:160]})") from None
        if kind == "snapshots" and "currency" not in table.column_names:     # a dataset from before it
            table = table.append_column("currency", pa.nulls(table.num_rows, _S))
        missing = [f.name for f in schema if f.name not in table.column_names]
        if missing:
            raise DatasetError(f"{path}: missing column {missing[0]!r}")
        try:
            table = table.select(schema.names).cast(schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise DatasetError(f"{path}: a column has the wrong type ({str(e).splitlines()[0][:160]})") from None
        for column in _REQUIRED[kind]:
            col = table[column]
            if col.null_count:
                row = int(np.flatnonzero(~_np_bool(col.is_valid()))[0])
                raise DatasetError(f"{path}: column {column!r} row {row} is empty (every {kind[:-1]} needs it)")
        if kind == "snapshots":
            table = with_currency(table)                # a null currency: the country's
        tables.append(table)
    return Part(*tables)


def read_dataset(folder: str | os.PathLike) -> Iterator[Part]:
    for name in dataset_parts(folder):
        yield read_part(folder, name)


def store_part(url_or_store) -> Part:
    """A ledger store's whole dataset as one part (its runs and its outcome events)."""
    runs = RunStore(url_or_store)
    try:
        return Part(runs.read("snapshots"), runs.read("actions"), runs.events())
    finally:
        runs.close()
