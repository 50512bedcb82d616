"""postloan generate: write a synthetic loan book."""
from __future__ import annotations

from ..errors import PostloanError
from . import args as a

HELP = "write a synthetic loan book (deterministic by seed) to Parquet"
DESCRIPTION = """Write a synthetic auto-finance loan book: one row per account (accounts ⋈ customers ⋈
vehicles, see docs/data-contract.md), deterministic by seed, streamed in batches so that
memory stays bounded whatever the size.

example:
  postloan generate --accounts 1000000 --seed 7 --out book.parquet"""


def add_arguments(p) -> None:
    p.add_argument("--accounts", type=a.positive_int, default=100_000, help="number of accounts (default 100000)")
    p.add_argument("--seed", type=a.non_negative_int, default=0, help="random seed (default 0)")
    p.add_argument("--as-of", type=a.date, default=None, help="snapshot date YYYY-MM-DD (default 2026-11-28)")
    p.add_argument("--out", type=a.output_file, required=True, help="output Parquet file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    import time

    from ..synth import DEFAULT_AS_OF, write_book
    from .progress import bar

    start = time.perf_counter()
    with bar(args.accounts, "generating", unit="acct", disable=args.quiet) as progress:
        try:
            rows = write_book(args.out, args.accounts, args.seed, args.as_of or DEFAULT_AS_OF,
                              progress=progress.update)
        except OSError as e:
            raise PostloanError(f"cannot write {args.out}: {e.strerror or e}") from None
    seconds = time.perf_counter() - start
    print(f"wrote {rows:,} accounts to {args.out} in {seconds:.1f} s ({rows / seconds:,.0f} accounts/s)")
    return 0
