"""postloan generate: write a synthetic loan book."""
from __future__ import annotations

from ..errors import PostloanError
from . import args as a

HELP = "write a synthetic loan book (deterministic by seed) to Parquet, CSV, Arrow IPC, SQLite…"
DESCRIPTION = """Write a synthetic auto-finance loan book: one row per account (accounts ⋈ customers ⋈
vehicles, see docs/data-contract.md), deterministic by seed, streamed in batches so that
memory stays bounded whatever the size.

The format follows the file's extension, as for `postloan decide` (.parquet, .arrow/.feather/
.arrows, .csv, .sqlite/.db, a connector plugin's, or a URI such as sqlite:///book.db?table=book),
or --format names a connector; `-` (standard output) and a name without an extension
(/dev/stdout) get Parquet. The file appears only once the book is complete; a symlink keeps
pointing at it, and special files (a FIFO, /dev/stdout) are written, never replaced. The
summary goes to stderr, so `--out -` pipes the book alone.

The book is a snapshot at 02:00 UTC on its as-of date (10:00 in Beijing, the evening before in
the US), recorded in the Parquet/Arrow schema metadata as postloan.snapshot_at. --events FILE
also writes the event history behind it (the ledger's events table, any connector format by
extension, Parquet without one), streamed after the book: ingested into a ledger
(kernel.ledger.Ledger.ingest), the state derived as of the snapshot equals the book's
counters (calls today, promises, the last payment, GPS, ...). --history recent (the default)
writes what the ledger reads back at the snapshot: contacts and promises of its look-back (183
days), the payments of 12 months and the last one, the tracker's alerts of 13 months; --history
full writes every payment, contact and promise since origination and the tracker's alerts month
by month since the first instalment (about 2.4 times the events: 54 an account against 23).
Both give the same state as of the snapshot (docs/models.md, "The event history").

examples:
  postloan generate --accounts 1000000 --seed 7 --out book.parquet
  postloan generate --accounts 100000 --out book.parquet --events events.parquet
  postloan generate --accounts 10000 --out book.parquet --events events.parquet --history full
  postloan generate --accounts 2000 --out book.csv
  postloan generate --accounts 2000 --out - --format csv | head"""


def add_arguments(p) -> None:
    p.add_argument("--accounts", type=a.positive_int, default=100_000, help="number of accounts (default 100000)")
    p.add_argument("--seed", type=a.non_negative_int, default=0, help="random seed (default 0)")
    p.add_argument("--as-of", type=a.date, default=None, help="snapshot date YYYY-MM-DD (default 2026-11-28)")
    p.add_argument("--out", type=_target, required=True,
                   help="output file (format by extension, Parquet without one), '-' for standard output, or a connector URI")
    p.add_argument("--events", type=a.output_file, default=None, metavar="FILE",
                   help="also write the event history behind the book (format by extension, Parquet without one)")
    p.add_argument("--history", choices=("recent", "full"), default=None,
                   help="with --events: 'recent' (default) writes what the ledger reads back at the snapshot, "
                        "'full' every payment, contact and promise since origination (about 2.4x the events)")
    p.add_argument("--format", default=None, metavar="CONNECTOR",
                   help="connector to write with, e.g. parquet, arrow, csv, sqlite (default: by extension)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _target(text: str) -> str:
    from urllib.parse import urlparse
    if len(urlparse(text).scheme) > 1:
        return text
    return a.output_file(text)


def run(args) -> int:
    import time

    from ..synth import DEFAULT_AS_OF
    from .progress import bar, say

    as_of = args.as_of or DEFAULT_AS_OF
    if args.history is not None and args.events is None:
        raise PostloanError("--history: only with --events FILE (the book is the same for either history)")
    if args.events is not None and _same_file(args.events, args.out):
        raise PostloanError(f"--events {args.events}: the same file as --out; write the events to another file")
    connector = _connector(args.out, args.format)
    start = time.perf_counter()
    with bar(args.accounts, "generating", unit="acct", disable=args.quiet) as progress:
        rows = _write(args.out, connector, args.accounts, args.seed, as_of, progress.update)
    seconds = time.perf_counter() - start
    # on stderr: `--out -` pipes the book alone
    say(f"wrote {rows:,} accounts to {a.shown_output(args.out)} in {seconds:.1f} s "
        f"({rows / max(seconds, 1e-9):,.0f} accounts/s)")
    if args.events is not None:
        _write_events(args, as_of)
    return 0


def _write_events(args, as_of) -> None:
    import time

    from ..synth import write_events
    from .progress import bar, say
    history = args.history or "recent"
    start = time.perf_counter()
    with bar(args.accounts, "events", unit="acct", disable=args.quiet) as progress:
        events = write_events(args.events, args.accounts, args.seed, as_of, progress=progress.update,
                              history=history)
    seconds = time.perf_counter() - start
    say(f"wrote {events:,} events of {args.accounts:,} accounts to {args.events} (history {history}) in "
        f"{seconds:.1f} s ({args.accounts / seconds:,.0f} accounts/s)")


def _same_file(a: str, b: str) -> bool:
    import os
    return "://" not in b and os.path.abspath(a) == os.path.abspath(b)


def _connector(out: str, name: str | None):
    """The connector plugin to write ``out`` with: ``name``, else the one its extension or
    scheme names; Parquet for standard output and names without an extension (/dev/stdout)."""
    import os

    from .. import plugins
    if name is None and not os.path.splitext(out)[1] and "://" not in out:
        name = "parquet"
    return plugins.default_manager().connector_for(out, name)


def _write(out: str, connector, accounts: int, seed: int, as_of, progress) -> int:
    from .. import plugins
    from ..synth import book_schema, iter_book

    def batches():
        for batch in iter_book(accounts, seed, as_of):
            yield batch
            progress(batch.num_rows)
    return plugins.write_batches(out, batches(), schema=book_schema(as_of), connector=connector)
