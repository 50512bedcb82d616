"""postloan train: train the shipped models and write them with their model cards."""
from __future__ import annotations

from . import args as a

HELP = "train the PD and residual-value models (deterministic by seed) into models/"
DESCRIPTION = """Train the bundle's ONNX models and write each with its model card:

  pd_model.onnx / pd_model.md   probability of serious delinquency (M2+), early warning;
                                a logistic scorecard and gradient-boosted trees are compared
                                on a held-out split (AUC, KS, calibration), the better shipped;
                                the same pipelines are checked on German credit (real data)
  rv_model.onnx / rv_model.md   wholesale price of a repossessed car (simulated auctions)

example:
  postloan train --out models/ --seed 0"""


def add_arguments(p) -> None:
    p.add_argument("--out", type=a.existing_path, default="models", help="output directory (default models/)")
    p.add_argument("--seed", type=a.non_negative_int, default=0, help="random seed (default 0)")
    p.add_argument("--pd-rows", type=_rows, default=None,
                   help=f"synthetic accounts for the PD model (default 100000, at least {MIN_ROWS})")
    p.add_argument("--rv-rows", type=_rows, default=None,
                   help=f"simulated auctions for the RV model (default 40000, at least {MIN_ROWS})")


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

    if not os.path.isdir(args.out):
        raise PostloanError(f"{args.out}: not a directory")
    warnings.filterwarnings("ignore", module="sklearn")
    pd_rows, rv_rows = args.pd_rows or t.PD_ROWS, args.rv_rows or t.RV_ROWS
    best, candidates = t.train_pd(args.seed, pd_rows)
    for c in candidates:
        print(f"pd_model  {c.kind:24s} AUC {c.metrics['auc']:.4f}  KS {c.metrics['ks']:.4f}  "
              f"Brier {c.metrics['brier']:.4f}  ECE {c.metrics['ece']:.4f}  ({c.seconds:.0f} s)")
    german = t.train_german_credit(args.seed)
    for c in german:
        print(f"german    {c.kind:24s} AUC {c.metrics['auc']:.4f}  KS {c.metrics['ks']:.4f}")
    rv = t.train_rv(args.seed, rv_rows)
    print(f"rv_model  MAE {rv.metrics['mae']:,.0f} CNY  MAPE {rv.metrics['mape']:.2%}  R² {rv.metrics['r2']:.4f}")
    for name, blob, card in (("pd_model", best.onnx, t.pd_card(best, candidates, german, args.seed, pd_rows)),
                             ("rv_model", rv.onnx, t.rv_card(rv, args.seed, rv_rows))):
        _write(os.path.join(args.out, f"{name}.onnx"), blob, binary=True)
        _write(os.path.join(args.out, f"{name}.md"), card)
        print(f"wrote {os.path.join(args.out, name)}.onnx ({len(blob) / 1024:.0f} KiB) and its card")
    return 0


def _write(path: str, data, binary: bool = False) -> None:
    """Written beside ``path`` and renamed into place: a symlink keeps pointing at the new file."""
    from ..files import open_output
    with open_output(path) as fh:
        fh.write(data if binary else data.encode("utf-8"))
