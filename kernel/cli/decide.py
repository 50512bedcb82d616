"""postloan decide: decide a whole book (Parquet in, Parquet out), streaming by batches."""
from __future__ import annotations

from . import args as a

HELP = "decide every account of a Parquet book with a bundle; write the decisions to Parquet"
DESCRIPTION = """Decide every account of a book (Parquet, the data contract's book columns) with a bundle
(default: the shipped bundle) and write one decision row per account: account_id, as_of,
bundle_hash, then every decision column (<ruleset>.<output>, <model>.<output>, <ruleset>.rule).
The book is read and written in batches, so memory stays bounded whatever its size.

A column the bundle reads that is missing or has the wrong type is rejected before anything
is written, naming the column (exit status 2).

example:
  postloan decide --in book.parquet --out decisions.parquet --as-of 2026-11-28"""


def add_arguments(p) -> None:
    p.add_argument("--in", dest="input", type=a.existing_file, required=True, help="the book (Parquet)")
    p.add_argument("--out", type=a.output_file, required=True, help="the decisions (Parquet)")
    p.add_argument("--as-of", type=a.date, default=None, help="decision date YYYY-MM-DD (default: today)")
    p.add_argument("--bundle", type=a.existing_path, default=None,
                   help="bundle folder or file (default: the shipped bundle, or $POSTLOAN_BUNDLE)")
    p.add_argument("--batch-rows", type=a.positive_int, default=65_536, help="rows per batch (default 65536)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    import datetime as dt
    import os
    import time

    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..errors import PostloanError
    from ..runtime import Kernel
    from .progress import bar

    as_of = args.as_of or dt.date.today()
    try:
        book = pq.ParquetFile(args.input)
    except (pa.ArrowInvalid, OSError) as e:
        raise PostloanError(f"{args.input}: not a readable Parquet file ({e})") from None
    kernel = Kernel.load(args.bundle)
    schema = book.schema_arrow
    kernel.check_columns(schema, source=args.input)
    prefix = [pa.field("account_id", pa.string()), pa.field("as_of", pa.date32()),
              pa.field("bundle_hash", pa.string())]
    out_schema = pa.schema(prefix + list(kernel.output_schema))
    has_id = "account_id" in schema.names
    rows = book.metadata.num_rows
    tmp = args.out + ".partial"
    start = time.perf_counter()
    try:
        with pq.ParquetWriter(tmp, out_schema) as writer, \
                bar(rows, "deciding", unit="acct", disable=args.quiet) as progress:
            for batch in book.iter_batches(batch_size=args.batch_rows, columns=_wanted(kernel, schema)):
                decided = next(kernel.decide_batches([batch], as_of))
                n = batch.num_rows
                ids = batch.column("account_id").cast(pa.string()) if has_id else pa.nulls(n, pa.string())
                fixed = [ids, pa.array([as_of] * n, pa.date32()),
                         pa.DictionaryArray.from_arrays(pa.array([0] * n, pa.int8()),
                                                        pa.array([kernel.bundle_hash])).cast(pa.string())]
                writer.write_batch(pa.RecordBatch.from_arrays(fixed + decided.columns, schema=out_schema))
                progress.update(n)
        os.replace(tmp, args.out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    seconds = time.perf_counter() - start
    print(f"decided {rows:,} accounts into {args.out} in {seconds:.1f} s "
          f"({rows / max(seconds, 1e-9):,.0f} accounts/s; bundle {kernel.bundle_hash[:12]})")
    return 0


def _wanted(kernel, schema) -> list[str]:
    names = list(kernel.inputs)
    if "account_id" in schema.names:
        names.append("account_id")
    return names
