"""postloan ledger: look after the case ledger (info, backup, restore, purge)."""
from __future__ import annotations

from . import args as a

HELP = "the case ledger's upkeep: info, backup, restore, purge old positions"
DESCRIPTION = """Look after the case ledger (docs/ledger.md):

  info     where it is, its schema version and how many events, reservations, cars and
           registered accounts it holds
  backup   a consistent copy of the ledger while it is in use: SQLite's online backup, or
           pg_dump's custom format for PostgreSQL (docs/ledger-stores.md)
  restore  replace the ledger's content with a backup file (checked first; all or nothing;
           an older backup is brought up to the current schema)
  purge    forget GPS positions older than [ledger] gps_position_hours now (ingest also
           does this at most once a minute)

examples:
  postloan ledger info
  postloan ledger backup --out ledger-2026-11-28.db
  postloan ledger restore --in ledger-2026-11-28.db --store sqlite:///restored.db"""


def add_arguments(p) -> None:
    p.add_argument("action", choices=("info", "backup", "restore", "purge"), help="what to do")
    p.add_argument("--store", default=None, metavar="URL", help="the ledger (default: [ledger] store, else the "
                                                                "embedded SQLite ledger)")
    p.add_argument("--out", type=a.output_file, default=None, help="backup: the file to write")
    p.add_argument("--in", dest="input", type=a.existing_file, default=None, help="restore: the backup file")
    p.add_argument("--config", type=a.existing_file, default=None, help="configuration file (default $POSTLOAN_CONFIG)")


def run(args) -> int:
    import time

    from ..errors import PostloanError
    from .ingest import open_ledger

    if args.action == "backup" and not args.out:
        raise PostloanError("backup needs --out FILE")
    if args.action == "restore" and not args.input:
        raise PostloanError("restore needs --in FILE")
    with open_ledger(args.store, args.config, existing=args.action != "restore") as ledger:
        if args.action == "info":
            counts = ledger.counts()
            print(f"{ledger.url}: schema version {ledger.store.version()}; " +
                  ", ".join(f"{v:,} {k}" for k, v in counts.items()))
        elif args.action == "backup":
            start = time.perf_counter()
            ledger.backup(args.out)
            print(f"backed {ledger.url} up to {args.out} in {time.perf_counter() - start:.1f} s")
        elif args.action == "restore":
            ledger.restore(args.input)
            print(f"restored {ledger.url} from {args.input}: " + ", ".join(f"{v:,} {k}" for k, v in ledger.counts().items()))
        else:
            forgotten = ledger.store.purge_positions(
                time.time_ns() // 1000 - int(ledger.settings.gps_position_hours * 3_600e6))
            print(f"forgot {forgotten:,} GPS positions older than {ledger.settings.gps_position_hours:g} hours")
    return 0
