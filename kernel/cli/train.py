"""postloan train: train the shipped models and write them with their model cards."""
from __future__ import annotations

from . import args as a

HELP = "train the PD and residual-value models (deterministic by seed) into models/"
DESCRIPTION = """Train the bundle's ONNX models and write each with its model card:

  pd_model.onnx / pd_model.md   probability of reaching 61+ DPD within 6 months (default),
                                trained on earlier synthetic snapshots, tested out of time on a
                                later one (AUC, Gini, KS, Brier, reliability curve); a logistic
                                scorecard and gradient-boosted trees compared, the better
                                shipped; the same pipelines checked on German credit (real data)
  rv_model.onnx / rv_model.md   wholesale price of a repossessed car (simulated auctions)

With --pd-data and/or --rv-data, the models are trained on a lender's own files instead (any
connector format by extension: Parquet, Arrow IPC, CSV, SQLite…) and written with their cards
into the bundle folder --out (created if need be; a folder without rulesets first gets the
shipped bundle's rulesets and models). `postloan check DIR` then validates the bundle.

  PD data  one row per account and snapshot: the feature columns (the shipped model's, or
           --pd-features a,b,c: book columns of the data contract), the label (--pd-label,
           default default_6m: 1 when the account reached 61+ DPD within 6 months), and
           optionally snapshot_date (the latest snapshots become the out-of-time test) and
           dpd (rows already 61+ DPD are left out)
  RV data  one row per car sold: brand, model, energy_type, condition_grade, region, currency,
           mileage_km, purchase_price, model_year, sale_date and the label (--rv-label,
           default sale_price, in the car's currency)

A missing or mistyped column is named — every one of them, in one line (exit status 2).

examples:
  postloan train --out models/ --seed 0
  postloan train --pd-data history.parquet --rv-data auctions.csv --out my_bundle/
  postloan check my_bundle/"""


def add_arguments(p) -> None:
    p.add_argument("--out", default=None,
                   help="output directory (default models/; with --pd-data/--rv-data: the bundle folder to write, "
                        "required)")
    p.add_argument("--seed", type=a.non_negative_int, default=0, help="random seed (default 0)")
    p.add_argument("--pd-rows", type=_rows, default=None,
                   help=f"synthetic accounts for the PD model (default 100000, at least {MIN_ROWS})")
    p.add_argument("--rv-rows", type=_rows, default=None,
                   help=f"simulated auctions for the RV model (default 40000, at least {MIN_ROWS})")
    p.add_argument("--pd-data", type=a.existing_file, default=None, metavar="FILE",
                   help="train the PD model on this file (a lender's history) instead of synthetic snapshots")
    p.add_argument("--rv-data", type=a.existing_file, default=None, metavar="FILE",
                   help="train the RV model on this file (a lender's car sales) instead of simulated auctions")
    p.add_argument("--pd-label", default="default_6m", help="label column of --pd-data (default default_6m)")
    p.add_argument("--rv-label", default="sale_price", help="label column of --rv-data (default sale_price)")
    p.add_argument("--pd-features", default=None, metavar="A,B,…",
                   help="feature columns of --pd-data (book columns; default: the shipped model's)")
    p.add_argument("--format", default=None, metavar="CONNECTOR",
                   help="connector for the data files whose name says none (default: by extension)")


#: fewer rows leave the 30 % held-out split without delinquent accounts: AUC, KS and the
#: calibration table of the model card would be NaN, and the "better" model picked on them
MIN_ROWS = 1000


def _rows(text: str) -> int:
    import argparse
    value = a.positive_int(text)
    if value < MIN_ROWS:
        raise argparse.ArgumentTypeError(f"expected at least {MIN_ROWS:,} rows (a held-out split needs delinquent "
                                         f"accounts to measure the model on), got {value}")
    return value


def run(args) -> int:
    import os
    import warnings

    from ..errors import PostloanError
    from ..models import training as t

    warnings.filterwarnings("ignore", module="sklearn")
    if args.pd_data or args.rv_data:
        return _own_data(args)
    args.out = args.out or "models"
    if not os.path.isdir(args.out):
        raise PostloanError(f"{args.out}: not a directory")
    pd_rows, rv_rows = args.pd_rows or t.PD_ROWS, args.rv_rows or t.RV_ROWS
    best, candidates = t.train_pd(args.seed, pd_rows)
    for c in candidates:
        o = c.extra["oot"]
        print(f"pd_model  {c.kind:24s} out of time: AUC {o['auc']:.4f}  Gini {o['gini']:.4f}  KS {o['ks']:.4f}  "
              f"Brier {o['brier']:.4f}  ECE {o['ece']:.4f}  (in time AUC {c.metrics['auc']:.4f}; {c.seconds:.0f} s)")
    german = t.train_german_credit(args.seed)
    for c in german:
        print(f"german    {c.kind:24s} AUC {c.metrics['auc']:.4f}  KS {c.metrics['ks']:.4f}  ({t.GERMAN_FOLDS}-fold CV)")
    rv = t.train_rv(args.seed, rv_rows)
    print(f"rv_model  MAPE {rv.metrics['mape']:.2%}  " + "  ".join(
        f"{c}: MAE {b['mae']:,.0f} {c}, R² {b['r2']:.4f}" for c, b in rv.metrics["by_currency"].items()))
    for name, blob, card in (("pd_model", best.onnx, t.pd_card(best, candidates, german, args.seed, pd_rows)),
                             ("rv_model", rv.onnx, t.rv_card(rv, args.seed, rv_rows))):
        _write(os.path.join(args.out, f"{name}.onnx"), blob, binary=True)
        _write(os.path.join(args.out, f"{name}.md"), card)
        print(f"wrote {os.path.join(args.out, name)}.onnx ({len(blob) / 1024:.0f} KiB) and its card")
    return 0


def _own_data(args) -> int:
    import os

    from ..errors import PostloanError
    from ..models import own_data as od

    if not args.out:
        raise PostloanError("--out DIR is required with --pd-data/--rv-data: the bundle folder to write")
    if os.path.exists(args.out) and not os.path.isdir(args.out):   # before any fitting, not after
        raise PostloanError(f"{args.out}: --out is not a directory (the bundle folder to write)")
    written = []
    if args.pd_data:
        features = [f.strip() for f in args.pd_features.split(",") if f.strip()] if args.pd_features else None
        best, candidates, card = od.train_pd_file(args.pd_data, args.seed, features, args.pd_label, args.format)
        for c in candidates:
            o = c.extra["oot"]
            print(f"pd_model  {c.kind:24s} AUC {o['auc']:.4f}  Gini {o['gini']:.4f}  KS {o['ks']:.4f}  "
                  f"Brier {o['brier']:.4f}  ({c.seconds:.0f} s)")
        written.append(("pd_model", best.onnx, card))
    if args.rv_data:
        rv, card = od.train_rv_file(args.rv_data, args.seed, args.rv_label, args.format)
        print(f"rv_model  MAPE {rv.metrics['mape']:.2%}  " + "  ".join(
            f"{c}: MAE {b['mae']:,.0f} {c}" for c, b in rv.metrics["by_currency"].items()))
        written.append(("rv_model", rv.onnx, card))
    folder = od.prepare_bundle(args.out)
    for name, blob, card in written:
        _write(os.path.join(folder, f"{name}.onnx"), blob, binary=True)
        _write(os.path.join(folder, f"{name}.md"), card)
        print(f"wrote {os.path.join(folder, name)}.onnx ({len(blob) / 1024:.0f} KiB) and its card")
    print(f"the bundle: {folder} (validate it with `postloan check {folder}`)")
    return 0


def _write(path: str, data, binary: bool = False) -> None:
    """Written beside ``path`` and renamed into place: a symlink keeps pointing at the new file."""
    from ..files import open_output
    with open_output(path) as fh:
        fh.write(data if binary else data.encode("utf-8"))
