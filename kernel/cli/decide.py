"""postloan decide: decide a whole book in any connector's format, streaming by batches."""
from __future__ import annotations

from . import args as a

HELP = "decide every account of a book (Parquet, Arrow IPC, CSV, SQLite…) with a bundle; write the decisions"
DESCRIPTION = """Decide every account of a book (the data contract's book columns) with a bundle (default:
the shipped bundle) and write one decision row per account: account_id, as_of, bundle_hash,
then every decision column (<ruleset>.<output>, <model>.<output>, <ruleset>.rule).

Both files go through the connector plugins (`postloan plugins` lists them): the format
follows the file's extension (.parquet, .arrow/.feather/.arrows, .csv, .sqlite/.db, or a URI
such as sqlite:///book.db?table=book); --in-format and --out-format name a file's connector,
--format one for the files whose name says none (a name that says another is an error);
without them, `-` (standard output, for --out) and names without an extension are Parquet. The
book is read, decided and written batch by batch, so memory stays bounded whatever its size.
Formats whose connector takes no nested lists (CSV, SQLite: all built-ins but Parquet and Arrow
IPC; a plugin's connector says so with `nested = True`) get a collect ruleset's fired rules as
one text cell, ids separated by ';'.

With --store, each account's state is read from the case ledger as of --now (default: now,
or the end of the --as-of date in UTC when that date is past) and replaces the book's upstream
counters of the same meaning (docs/ledger.md, "Precedence"); the book's accounts are
registered for the contact-time gate. Without it, the state's own columns (an open promise, a
dispute…) are read off the book as far as it says.

The decision date: --as-of, else the book's snapshot date — the date of the instant its
schema metadata holds as postloan.snapshot_at (`postloan generate` writes it into Parquet and
Arrow files; CSV and SQLite keep none, so such a book is decided as of today unless --as-of
says otherwise). The summary says which. A book is never silently decided as of a later day
than it was taken on: --as-of after the snapshot date needs --after-snapshot, and a date
before it is refused.

Rows that more than one rule of a `hit: unique` ruleset fired for (null outputs, rule
'!unique') are counted per ruleset and reported on stderr after the summary.

A bad book is rejected before any decision is written, naming the column (and the row, for a
bad value) in one line (exit status 2); an existing output file is left as it was. The output
is written beside the file and renamed into place (a symlink keeps pointing at it); special
files such as a FIFO are written, never replaced. The summary goes to stderr, so `--out -`
pipes the decisions alone.

A folder as --in is a partitioned book: each of its .parquet files is decided into the file of
the same name in the --out folder. With --dask the files are decided on a Dask cluster, one
task per file (--dask local: a cluster of --dask-workers processes on this machine; else the
scheduler's address; the folders, and a --store, must be reachable from every worker): the
bundle travels as its files and hash and is compiled once per worker, and the decisions are
the same as in one process.

examples:
  postloan decide --in book.parquet --out decisions.parquet --as-of 2026-11-28
  postloan decide --in book/ --out decisions/ --dask local
  postloan decide --in book.csv --out decisions.sqlite
  postloan decide --in export.txt --in-format csv --out decisions.arrow
  postloan decide --in book.parquet --store sqlite:///ledger.db --out decisions.parquet"""

#: connectors whose formats store list columns as lists
#: separator of rule ids in the text form of a collect ruleset's fired rules
RULE_SEPARATOR = ";"


def _book(text: str) -> str:
    """A file that must exist, a folder of Parquet files (a partitioned book), or a connector
    URI (scheme://…), which its connector checks."""
    import os
    from urllib.parse import urlparse
    if len(urlparse(text).scheme) > 1 or os.path.isdir(text):
        return text
    return a.existing_file(text)


def _target(text: str) -> str:
    import os
    from urllib.parse import urlparse
    if text and (len(urlparse(text).scheme) > 1 or os.path.isdir(text) or text.endswith(os.sep)):
        return text
    return a.output_file(text)


def add_arguments(p) -> None:
    p.add_argument("--in", dest="input", type=_book, required=True,
                   help="the book: a file (format by extension) or a connector URI")
    p.add_argument("--out", type=_target, required=True,
                   help="the decisions: a file (format by extension), '-' for standard output, or a connector URI")
    p.add_argument("--format", default=None, metavar="CONNECTOR",
                   help="connector for both files, e.g. parquet, arrow, csv, sqlite (default: by extension)")
    p.add_argument("--in-format", default=None, metavar="CONNECTOR", help="connector for --in")
    p.add_argument("--out-format", default=None, metavar="CONNECTOR", help="connector for --out")
    p.add_argument("--as-of", type=a.date, default=None,
                   help="decision date YYYY-MM-DD (default: the book's snapshot date, postloan.snapshot_at; "
                        "today for a book without one, said so)")
    p.add_argument("--after-snapshot", action="store_true",
                   help="allow an --as-of later than the book's snapshot date (its DPD and dates are then stale)")
    p.add_argument("--bundle", type=a.existing_path, default=None,
                   help="bundle folder or file (default: the shipped bundle, or $POSTLOAN_BUNDLE)")
    p.add_argument("--batch-rows", type=a.positive_int, default=65_536, help="rows per batch (default 65536)")
    p.add_argument("--store", default=None, metavar="URL",
                   help="read each account's state from this ledger (sqlite:///FILE or postgresql://…)")
    p.add_argument("--now", type=a.instant, default=None,
                   help="the moment the state is read as of (default: now, or the end of a past --as-of date)")
    p.add_argument("--config", type=a.existing_file, default=None, help="configuration file (default $POSTLOAN_CONFIG)")
    p.add_argument("--dask", default=None, metavar="ADDRESS",
                   help="decide a partitioned book (--in DIR) on Dask: a scheduler address (tcp://host:8786) or "
                        "'local' for a cluster on this machine")
    p.add_argument("--dask-workers", type=a.positive_int, default=2, help="workers of --dask local (default 2)")
    p.add_argument("--actions-out", type=_target, default=None, metavar="FILE",
                   help="also plan and check the actions (collection strategy, compliance policies; audited "
                        "like every acted-on decision) and write them here, scripts included (format by "
                        "extension, or --actions-format)")
    p.add_argument("--actions-format", default=None, metavar="CONNECTOR", help="connector for --actions-out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def state_moment(as_of, now):
    """The instant state is read as of: ``now`` if given; else the clock, or the last
    microsecond of ``as_of`` (UTC) when that day is already over."""
    import datetime as dt
    if now is not None:
        return now
    clock = dt.datetime.now(dt.timezone.utc)
    end = dt.datetime.combine(as_of, dt.time.max, tzinfo=dt.timezone.utc)
    return min(clock, end)


def run(args) -> int:
    import os
    import time

    from .. import plugins
    from ..errors import PostloanError
    from ..runtime import Kernel
    from ..snapshot import decision_date
    from .progress import bar, say

    if os.path.isdir(args.input) or args.dask:
        if args.actions_out:
            raise PostloanError("--actions-out decides one book (a file), not a partitioned folder")
        return _run_partitioned(args)
    manager = plugins.default_manager()
    # resolve both connectors first: an unknown format or extension fails before any work
    reader = connector(manager, args.input, args.in_format, args.format, "--in-format")
    as_of, note = decision_date(args.as_of, book_snapshot(args.input, reader), after_snapshot=args.after_snapshot,
                                source=args.input)
    # `-` and names without an extension are Parquet, as for `postloan generate`
    plain_name = not os.path.splitext(args.out)[1] and "://" not in args.out
    writer = connector(manager, args.out, args.out_format or ("parquet" if plain_name and not args.format else None),
                       args.format, "--out-format")
    # a file format's target replaces the whole file (a store with tables, such as SQLite,
    # writes a table of its own beside the book's)
    if not writer.schemes and os.path.realpath(args.out) == os.path.realpath(args.input):
        raise PostloanError(f"{args.out}: --out is the book itself; the decisions would replace it")
    actions_writer = None
    if args.actions_out:
        actions_writer = connector(manager, args.actions_out, args.actions_format, args.format, "--actions-format")
        if not actions_writer.schemes and os.path.realpath(args.actions_out) in (
                os.path.realpath(args.input), os.path.realpath(args.out)):
            raise PostloanError(f"{args.actions_out}: --actions-out is the book or the decisions file; give a file of its own")
    ledger = None
    if args.store or args.config:
        from .ingest import open_ledger
        ledger = open_ledger(args.store, args.config) if (args.store or _configured_store(args.config)) else None
    kernel = Kernel.load(args.bundle, progress=False if args.quiet else None)
    batches = read_ahead(plugins.read_batches(args.input, required=list(kernel.inputs), batch_size=args.batch_rows,
                                              manager=manager, connector=reader))
    nested = bool(getattr(writer, "nested", False))       # the connector says whether it takes lists
    experiment = _experiment(args.config)
    out_schema = decision_schema(kernel, nested, experiment is not None)
    now = state_moment(as_of, args.now)
    acted, act = [], None
    if actions_writer is not None:
        from ..pipeline import Pipeline
        pipeline = Pipeline(kernel, config=args.config)

        def act(book, decisions):
            acted.append(pipeline.act(book, decisions, as_of, now).actions)
    start = time.perf_counter()
    with bar(None, "deciding", unit="acct", disable=args.quiet) as progress:
        conflicts: dict[str, int] = {}
        decided = _decisions(kernel, batches, as_of, out_schema, nested, args.input, progress, conflicts,
                             ledger, now, _book_counters(args.config), experiment, act)
        try:
            rows = plugins.write_batches(args.out, decided, schema=out_schema, manager=manager, connector=writer)
            if actions_writer is not None:
                actions = write_actions(args.actions_out, acted, manager, actions_writer)
        finally:
            if ledger is not None:
                ledger.close()
            if act is not None:
                pipeline.audit.close()
    seconds = time.perf_counter() - start
    # on stderr: `--out -` pipes the decisions alone
    say(f"decided {rows:,} accounts into {a.shown_output(args.out)} in {seconds:.1f} s "
        f"({rows / max(seconds, 1e-9):,.0f} accounts/s; bundle {kernel.bundle_hash[:12]}); {note}")
    if actions_writer is not None:
        outcomes = ", ".join(f"{n:,} {name}" for name, n in actions["outcomes"].items())
        say(f"planned {actions['rows']:,} actions ({outcomes}) into {a.shown_output(args.actions_out)}")
    for ruleset, n in conflicts.items():
        say(f"postloan decide: warning: ruleset {ruleset} (hit: unique): {n:,} of {rows:,} accounts matched more "
            f"than one rule; their {ruleset}.* outputs are null and {ruleset}.rule is '!unique'")
    return 0


def write_actions(uri: str, tables: list, manager, writer) -> dict:
    """Write the planned actions (one table per decided batch) through ``writer``; returns
    the rows written and the count per compliance outcome (KEEP, DEFER, BLOCK)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from .. import plugins
    from ..outputs import _ACTIONS_SCHEMA
    from ..schema import ENUMS
    schema = pa.schema(list(_ACTIONS_SCHEMA), metadata={**(_ACTIONS_SCHEMA.metadata or {}), b"postloan.table": b"actions"})
    batches = [b for t in tables for b in t.cast(schema).to_batches() if b.num_rows] \
        or [pa.RecordBatch.from_pylist([], schema=schema)]
    rows = plugins.write_batches(uri, iter(batches), schema=schema, manager=manager, connector=writer)
    outcomes = {name: 0 for name in ENUMS["compliance_outcome"]}
    for t in tables:
        for item in pc.value_counts(t.column("outcome").cast(pa.string())).to_pylist():
            if item["values"] is not None:
                outcomes[item["values"]] += item["counts"]
    return {"rows": rows, "outcomes": outcomes}


def _run_partitioned(args) -> int:
    """--in DIR: every Parquet file of the folder decided into --out DIR (same names), one
    after another or, with --dask, one task per file on a Dask cluster."""
    import os
    import time

    from ..errors import PostloanError
    from ..evaluation.distributed import dask_client, decide_folder
    from ..runtime import Kernel
    from ..snapshot import decision_date
    from .progress import say

    if not os.path.isdir(args.input):
        raise PostloanError(f"{args.input}: --dask decides a partitioned book: give --in a folder of Parquet files")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise PostloanError(f"{args.out}: --in is a folder, so --out must be a folder too (it is a file)")
    if any(x is not None for x in (args.format, args.in_format, args.out_format)) and \
            "parquet" not in (args.format, args.in_format, args.out_format):
        raise PostloanError("a partitioned book is read and written as Parquet: drop --format, --in-format, --out-format")
    if os.path.realpath(args.out) == os.path.realpath(args.input):
        raise PostloanError(f"{args.out}: --out is the book's folder; the decisions would replace its parts")
    as_of, note = decision_date(args.as_of, folder_snapshot(args.input), after_snapshot=args.after_snapshot,
                                source=args.input)
    kernel = Kernel.load(args.bundle, progress=False if args.quiet else None)
    start = time.perf_counter()
    with dask_client(args.dask, args.dask_workers) as client:
        total = decide_folder(kernel, args.input, args.out, as_of, state_moment(as_of, args.now), client=client,
                              store=args.store, config=args.config, batch_rows=args.batch_rows)
    seconds = time.perf_counter() - start
    where = f" on Dask ({args.dask})" if args.dask else ""
    say(f"decided {total['rows']:,} accounts of {total['parts']} parts into {args.out}{where} in {seconds:.1f} s "
        f"({total['rows'] / max(seconds, 1e-9):,.0f} accounts/s; bundle {kernel.bundle_hash[:12]}); {note}")
    for ruleset, n in total["conflicts"].items():
        say(f"postloan decide: warning: ruleset {ruleset} (hit: unique): {n:,} of {total['rows']:,} accounts matched "
            f"more than one rule; their {ruleset}.* outputs are null and {ruleset}.rule is '!unique'")
    return 0


def book_snapshot(uri: str, conn):
    """The snapshot instant a book carries in its schema metadata (``postloan.snapshot_at``;
    None when its format keeps none, e.g. CSV), read from the connector's first batch."""
    from ..schema import arrow_schema
    from ..snapshot import read_snapshot
    reader = conn.read(str(uri), schema=arrow_schema("book"), batch_size=1)
    try:
        first = next(iter(reader), None)
    finally:
        close = getattr(reader, "close", None)
        if close is not None:
            close()
    return read_snapshot(first.schema.metadata if first is not None else None, str(uri))


def folder_snapshot(folder: str):
    """The snapshot instant of a partitioned book: every part's must agree (None if none has one)."""
    import glob
    import os

    import pyarrow.parquet as pq

    from ..errors import PostloanError
    from ..snapshot import read_snapshot, shown
    found = {}
    for part in sorted(glob.glob(os.path.join(folder, "*.parquet"))):
        try:
            metadata = pq.read_schema(part).metadata
        except Exception as e:  # noqa: BLE001 (the reader's error is reported when the part is decided)
            raise PostloanError(f"{part}: not a readable Parquet file ({e})") from None
        found[part] = read_snapshot(metadata, part)
    parts = list(found.items())
    for part, value in parts[1:]:
        if value != parts[0][1]:
            def text(v):
                return shown(v) if v is not None else "none"
            raise PostloanError(f"{folder}: its parts are snapshots of different moments ({parts[0][0]}: "
                                f"{text(parts[0][1])}, {part}: {text(value)}); decide each snapshot on its own")
    return parts[0][1] if parts else None


def connector(manager, uri: str, own: str | None, shared: str | None, own_flag: str):
    """The connector for one file: ``own`` (--in-format / --out-format) if given, else the one
    its extension or scheme names; ``shared`` (--format) stands in where they name none, and
    disagreeing with them is an error — never a file written in a format its name denies."""
    from ..errors import PostloanError
    if own is not None or shared is None:
        return manager.connector_for(uri, own)
    named = manager.connector_for(uri, shared)
    try:
        by_name = manager.connector_for(uri)
    except PostloanError:            # the extension says nothing
        return named
    if by_name is not named:
        raise PostloanError(f"{uri}: --format {shared}, but the name says {by_name.name}; "
                            f"give this file's format with {own_flag}")
    return named


def decision_schema(kernel, nested: bool = True, experiment: bool = False):
    """The decision file's schema: account_id, as_of, bundle_hash, then every decision column
    (collect rule lists as text when ``nested`` is false), then ``experiment.arm`` when an
    experiment is configured."""
    import pyarrow as pa
    fields = [pa.field("account_id", pa.string()), pa.field("as_of", pa.date32()),
              pa.field("bundle_hash", pa.string())]
    for field in kernel.output_schema:
        if not nested and pa.types.is_list(field.type):
            field = pa.field(field.name, pa.string())
        fields.append(field)
    if experiment:
        fields.append(pa.field("experiment.arm", pa.string()))
    # names the table where a store has tables (SQLite: "decisions" unless the URI names one)
    return pa.schema(fields, metadata={"postloan.table": "decisions"})


def _configured_store(config) -> bool:
    from ..plugins import load_config
    return bool((load_config(config).get("ledger") or {}).get("store"))


def _experiment(config):
    """The configuration's ``[experiment]`` (None without one)."""
    from ..evaluation.arms import Experiment
    from ..plugins import load_config
    return Experiment.from_config(load_config(config))


def _book_counters(config) -> str:
    from ..plugins import load_config
    return (load_config(config).get("ledger") or {}).get("book_counters", "fallback")


def _decisions(kernel, batches, as_of, schema, nested: bool, source: str, progress, conflicts: dict, ledger=None,
               now=None, book_counters: str = "fallback", experiment=None, act=None):
    """Decision batches, one per book batch (the book's first batch is checked against the
    bundle before the first decision is made), each book batch joined with its accounts'
    state (from ``ledger`` where given); ``conflicts`` counts, per ``hit: unique`` ruleset,
    the rows more than one rule fired for; with an ``experiment``, each account's arm is an
    input (``experiment_arm``) and the last decision column (``experiment.arm``). ``act``,
    when given, is called with each book batch (joined) and its decisions."""
    import pyarrow as pa

    from ..evaluation.arms import add_arm
    from ..ledger.join import with_state
    as_of_value = pa.scalar(as_of, pa.date32())
    bundle_hash = pa.scalar(kernel.bundle_hash, pa.string())
    for batch in batches:
        n = batch.num_rows
        joined = add_arm(with_state(batch, as_of, now, ledger, book_counters), experiment)
        batch = pa.RecordBatch.from_arrays([c.combine_chunks() for c in joined.columns], schema=joined.schema)
        kernel.check_columns(batch.schema, source=source)
        decided = next(kernel.decide_batches([batch], as_of))
        if act is not None:
            act(batch, decided)
        for ruleset, rows in kernel.unique_conflicts(decided).items():
            conflicts[ruleset] = conflicts.get(ruleset, 0) + rows
        ids = batch.column("account_id").cast(pa.string()) if "account_id" in batch.schema.names \
            else pa.nulls(n, pa.string())
        columns = [ids, pa.repeat(as_of_value, n), pa.repeat(bundle_hash, n)]
        columns += decided.columns if nested else [_flat(c) for c in decided.columns]
        if experiment is not None:
            columns.append(batch.column("experiment_arm").cast(pa.string()))
        progress.update(n)
        yield pa.RecordBatch.from_arrays(columns, schema=schema)


def read_ahead(iterable, depth: int = 2):
    """Iterate ``iterable`` in a background thread, up to ``depth`` items ahead: the next
    batches are read, decompressed and validated (Arrow releases the GIL) while this one is
    decided and written. An exception is raised here, where the item would have been; a
    consumer that stops early stops the thread."""
    import queue
    import threading
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in iterable:
                while not stop.is_set():
                    try:
                        items.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put((done, None))
        except BaseException as e:       # handed to the consumer, raised there
            items.put((done, e))
    thread = threading.Thread(target=produce, name="postloan-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = items.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():         # unblock a producer waiting on a full queue
            try:
                items.get_nowait()
            except queue.Empty:
                thread.join(0.05)


def _flat(column):
    """A list of rule ids as one text cell (ids joined by RULE_SEPARATOR); other columns as
    they are."""
    import pyarrow as pa
    import pyarrow.compute as pc
    if not pa.types.is_list(column.type):
        return column
    return pc.binary_join(column.cast(pa.list_(pa.string())), RULE_SEPARATOR)
