"""postloan state: export every account's state from the ledger."""
from __future__ import annotations

from . import args as a

HELP = "export each account's state (calls today, open promise, holds, consent, GPS…) from the ledger"
DESCRIPTION = """Derive every account's state from the case ledger's events as of a moment and write it,
one row per account, in the contract's state columns (docs/data-contract.md, "state"). Days
("today", "7 days") are the debtor's local days, in the time zone registered from the book
(--book gives it for accounts the ledger has not registered; otherwise UTC, and the count of
such accounts is reported).

examples:
  postloan state --out state.parquet
  postloan state --store postgresql://ledger@db/postloan --as-of 2026-11-28T02:00Z --out state.csv"""


def add_arguments(p) -> None:
    p.add_argument("--store", default=None, metavar="URL", help="the ledger (default: [ledger] store, else the "
                                                                "embedded SQLite ledger)")
    p.add_argument("--out", type=a.output_file, required=True, help="output file (format by extension)")
    p.add_argument("--as-of", type=a.instant, default=None, dest="at",
                   help="the moment, YYYY-MM-DDTHH:MM[+zone] (UTC without a zone; default now)")
    p.add_argument("--book", type=a.existing_file, default=None, help="a book giving accounts' time zones")
    p.add_argument("--format", default=None, metavar="CONNECTOR", help="connector of --out (default: by extension)")
    p.add_argument("--config", type=a.existing_file, default=None, help="configuration file (default $POSTLOAN_CONFIG)")


def run(args) -> int:
    import sys
    import time

    from .. import plugins
    from .ingest import open_ledger

    manager = plugins.default_manager()
    start = time.perf_counter()
    zones = {}
    if args.book:
        for batch in plugins.read_batches(args.book, required=["account_id", "time_zone"], manager=manager):
            zones.update(zip(batch.column("account_id").to_pylist(), batch.column("time_zone").to_pylist()))
    with open_ledger(args.store, args.config, existing=True) as ledger:
        table = ledger.state(at=args.at, zones=zones)
        unzoned = ledger.unzoned
    rows = plugins.write_batches(args.out, table.to_batches(), schema=table.schema, manager=manager,
                                 connector=manager.connector_for(args.out, args.format).name)
    if unzoned:
        print(f"warning: {unzoned:,} accounts have no known time zone: their days are counted in UTC "
              f"(give --book, or register the book with postloan ingest --book)", file=sys.stderr)
    print(f"wrote the state of {rows:,} accounts to {args.out} in {time.perf_counter() - start:.1f} s")
    return 0
