"""postloan ingest: store events in the ledger."""
from __future__ import annotations

from . import args as a

HELP = "store events (payments, contact attempts, promises, disputes, GPS pings…) in the case ledger"
DESCRIPTION = """Store a file of events in the case ledger (docs/ledger.md): the contract's events columns
(event_id, account_id, kind, at, and the columns each kind takes), in any connector's format
by extension (.parquet, .arrow, .csv, .sqlite…) or --format.

Each row lands, is a duplicate of a stored event (the same event_id and content: replaying a
file changes nothing), or is rejected with its reason (row number and a sentence naming the
column); the good rows of a batch land whatever the bad ones. A file whose columns are wrong
is refused whole. Each batch is one transaction, durable when this command reports it.

With --book, the book's accounts are registered too: the contact-time gate reads their
country, region, product, time zone, consent and number status from the registry.

Exit status: 0 when every row landed or was a duplicate, 1 when some rows were rejected (they
are listed, and written with their reasons to --rejects), 2 on bad input.

examples:
  postloan ingest --in events.parquet
  postloan ingest --in dialer-2026-11-28.csv --store postgresql://ledger@db/postloan --rejects rejected.csv
  postloan ingest --in events.parquet --book book.parquet --store sqlite:///ledger.db"""

#: rejected rows listed on stderr (all are in --rejects)
SHOWN = 20


def add_arguments(p) -> None:
    p.add_argument("--in", dest="input", type=a.existing_file, required=True, help="the events file")
    p.add_argument("--store", default=None, metavar="URL",
                   help="the ledger: sqlite:///FILE or postgresql://… (default: [ledger] store, else "
                        "sqlite:///$POSTLOAN_DATA_DIR/ledger.db)")
    p.add_argument("--format", default=None, metavar="CONNECTOR", help="connector of --in (default: by extension)")
    p.add_argument("--book", type=a.existing_file, default=None, help="register this book's accounts for the gate")
    p.add_argument("--rejects", type=a.output_file, default=None,
                   help="write the rejected rows (row, event_id, reason) to this file (format by extension)")
    p.add_argument("--batch-rows", type=a.positive_int, default=65_536, help="rows per transaction (default 65536)")
    p.add_argument("--config", type=a.existing_file, default=None, help="configuration file (default $POSTLOAN_CONFIG)")


def open_ledger(store, config, *, existing: bool = False):
    """The ledger at ``store`` (else the configuration's ``[ledger] store``, else the embedded
    default); ``existing``: a SQLite ledger that is not there is an error, not created."""
    from ..ledger import Ledger
    from ..ledger.store import open_store
    from ..plugins import load_config
    merged = load_config(config)
    return Ledger(config=merged, store=open_store(store or (merged.get("ledger") or {}).get("store"),
                                                  existing=existing))


def run(args) -> int:
    import sys
    import time

    import pyarrow as pa

    from .. import plugins
    from ..schema import arrow_schema

    manager = plugins.default_manager()
    conn = manager.connector_for(args.input, args.format)
    start = time.perf_counter()
    with open_ledger(args.store, args.config) as ledger:
        if args.book:
            registered = 0
            for batch in plugins.read_batches(args.book, required=["account_id", "time_zone"], manager=manager):
                registered += ledger.register(batch)
            print(f"registered {registered:,} accounts of {args.book}", file=sys.stderr)
        batches = conn.read(str(args.input), schema=arrow_schema("events"), batch_size=args.batch_rows)
        result = ledger.ingest(batches)
    seconds = time.perf_counter() - start
    print(f"{args.input}: {result.rows:,} rows in {seconds:.1f} s into {ledger.url}: {result.accepted:,} stored, "
          f"{result.duplicate:,} already stored, {len(result.rejected):,} rejected")
    for r in result.rejected[:SHOWN]:
        print(f"  row {r.row}" + (f" ({r.event_id})" if r.event_id else "") + f": {r.reason}", file=sys.stderr)
    if len(result.rejected) > SHOWN:
        print(f"  … {len(result.rejected) - SHOWN:,} more" + (f" in {args.rejects}" if args.rejects else
                                                               " (--rejects FILE lists them all)"), file=sys.stderr)
    if args.rejects:
        table = pa.table({"row": pa.array([r.row for r in result.rejected], pa.int64()),
                          "event_id": pa.array([r.event_id for r in result.rejected], pa.string()),
                          "reason": pa.array([r.reason for r in result.rejected], pa.string())})
        plugins.write_batches(args.rejects, table.to_batches() or [table.to_batches(max_chunksize=1)],
                              schema=table.schema, manager=manager)
    return 1 if result.rejected else 0
