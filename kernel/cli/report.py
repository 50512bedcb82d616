"""postloan report: the portfolio report, one self-contained HTML file."""
from __future__ import annotations

from . import args as a

HELP = "write the portfolio report (one self-contained HTML file) from a ledger's runs and events"
DESCRIPTION = """Write the portfolio report a post-loan manager reads first, as one HTML file that
opens offline (inline CSS, SVG and script; nothing fetched): the overdue rate and the DPD
distribution over time, the roll-rate matrix as a heatmap, vintage curves by months on book,
the early-warning list, vehicle alerts, the KPIs by champion/challenger arm with their
intervals and tests, and disposal outcomes (docs/evaluation.md).

The data is either a ledger (--store URL: the decision runs kept in it by `postloan demo` or
the simulator, and its events), or a dataset folder partitioned by account (--in DIR:
snapshots/, actions/ and events/, each holding part-NNNNN.parquet with the same accounts in
the same part). A folder is read partition by partition; with --dask it is read on a Dask
cluster (--dask local starts one on this machine; otherwise the scheduler's address), one
task per partition, and the report is the same file, byte for byte.

Windows, costs and the control arm: [evaluation] in the configuration (docs/evaluation.md).

--export DIR --partitions N writes a store's runs and events as such a folder.

examples:
  postloan report --store sqlite:///ledger.db --out report.html
  postloan report --store sqlite:///ledger.db --out report.html --export dataset/ --partitions 8
  postloan report --in dataset/ --out report.html --dask local"""


def add_arguments(p) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--store", default=None, metavar="URL", help="the ledger holding the runs and events")
    src.add_argument("--in", dest="input", type=a.existing_path, default=None, metavar="DIR",
                     help="a dataset folder partitioned by account (snapshots/, actions/, events/)")
    p.add_argument("--out", type=a.output_file, required=True, help="the HTML file to write")
    p.add_argument("--dask", default=None, metavar="ADDRESS",
                   help="read --in on a Dask cluster: a scheduler address (tcp://host:8786) or 'local'")
    p.add_argument("--dask-workers", type=a.positive_int, default=2, help="workers of --dask local (default 2)")
    p.add_argument("--title", default="postloan portfolio report", help="the report's title")
    p.add_argument("--export", default=None, metavar="DIR",
                   help="with --store: also write its runs and events as a dataset folder partitioned by account")
    p.add_argument("--partitions", type=a.positive_int, default=8, help="partitions of --export (default 8)")
    p.add_argument("--config", type=a.existing_file, default=None, help="configuration file (default $POSTLOAN_CONFIG)")


def run(args) -> int:
    import time

    from ..errors import PostloanError
    from ..evaluation.kpis import Settings
    from ..evaluation.report import write_report
    from ..evaluation.run import figures_from_folder, figures_from_store
    from ..plugins import load_config
    from .progress import say

    settings = Settings.from_config(load_config(args.config))
    start = time.perf_counter()
    if args.dask and args.store:
        raise PostloanError("--dask reads a dataset folder (--in DIR), not a store")
    if args.export and not args.store:
        raise PostloanError("--export writes a store's dataset: give --store URL")
    if args.store:
        _existing_sqlite(args.store)
        figures = figures_from_store(args.store, settings)
        if args.export:
            from ..evaluation.records import store_part, write_dataset
            write_dataset(args.export, store_part(args.store), args.partitions)
            say(f"wrote the dataset of {args.store.split('?')[0]} to {args.export} ({args.partitions} partitions)")
    else:
        from ..evaluation.distributed import dask_client
        with dask_client(args.dask, args.dask_workers) as client:
            figures = figures_from_folder(args.input, settings, client)
    size = write_report(figures, args.out, args.title)
    say(f"wrote {a.shown_output(args.out)} ({size / 1024:,.0f} KiB; runs up to {figures['end']}, "
        f"arms {', '.join(figures['arms']) or 'none'}) in {time.perf_counter() - start:.1f} s")
    return 0


def _existing_sqlite(url: str) -> None:
    """A SQLite ledger to report on must exist (opening one would create an empty ledger)."""
    import os
    from urllib.parse import unquote, urlparse

    from ..errors import PostloanError
    parsed = urlparse(url)
    if parsed.scheme in ("postgresql", "postgres"):
        return
    path = unquote(parsed.path[1:] if parsed.scheme == "sqlite" and parsed.path.startswith("/") else parsed.path) \
        if parsed.scheme == "sqlite" else url
    if path and not os.path.exists(path):
        raise PostloanError(f"{url}: no such ledger (the file {path} does not exist)")
