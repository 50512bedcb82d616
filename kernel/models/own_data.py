"""Training the bundle's models on a lender's own data (``postloan train --pd-data FILE
--rv-data FILE``).

A file is read through the connector plugins (Parquet, Arrow IPC, CSV, SQLite… by extension),
its columns checked — every missing or mistyped column named in one error — and the same
pipelines as the shipped models are fitted; the ONNX models and their cards are written into a
bundle folder (initialised with the shipped rulesets when it holds none), which
``postloan check`` then validates.

**PD data** — one row per account and snapshot: the feature columns (by default
:data:`kernel.models.training.PD_NUMERIC` and ``PD_CATEGORY``, book columns of the data
contract with its types; ``--pd-features`` names another list of contract columns) and the
label column (default ``default_6m``: 1/true when the account reached 61+ DPD within 6 months
after the snapshot). Rows already in default at their snapshot (``dpd`` > 60, where the file
has ``dpd``) are left out. With a ``snapshot_date`` column the latest snapshots (about a fifth
of the rows) are the out-of-time test and the model is chosen on an in-time holdout of the
rest; without one, a seeded 70/30 split, said so in the card.

**RV data** — one row per car sold: ``brand``, ``model``, ``energy_type``, ``condition_grade``,
``region``, ``currency``, ``mileage_km``, ``purchase_price``, ``model_year``, ``sale_date``
(the age is computed as the bundle's ``vehicle_profile.age_years`` computes it: year of the
sale − model year, at least 0) and the label ``sale_price`` (in the car's currency).
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import schema
from ..errors import PostloanError
from . import training as t

PD_LABEL_COLUMN = "default_6m"
RV_LABEL_COLUMN = "sale_price"
SNAPSHOT_COLUMN = "snapshot_date"
RV_COLUMNS = ("brand", "model", "energy_type", "condition_grade", "region", "currency", "mileage_km",
              "purchase_price", "model_year", "sale_date")
#: fewest rows, and fewest of each label class, a PD file must hold to be split and measured
MIN_PD_ROWS, MIN_PD_CLASS = 200, 20
MIN_RV_ROWS = 200


# ---- reading and checking ------------------------------------------------------------------
def read_table(path: str, fmt: str | None = None) -> pa.Table:
    """The whole file through its connector (``fmt`` names one), with the column types it
    carries (CSV: as Arrow infers them; checked column by column afterwards)."""
    from .. import plugins
    manager = plugins.default_manager()
    conn = manager.connector_for(str(path), fmt)
    try:
        batches = list(conn.read(str(path), schema=pa.schema([]), batch_size=65_536))
        table = pa.Table.from_batches(batches) if batches else None
    except (OSError, pa.ArrowException, UnicodeDecodeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise PostloanError(f"{path}: not a readable {conn.name} file ({first})") from None
    if table is None:
        raise PostloanError(f"{path}: holds no rows or columns")
    names = table.column_names
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice is not None:
        raise PostloanError(f"{path}: column {twice!r} appears more than once")
    return table


def _kind_of(name: str) -> str:
    """numeric, category, date or label: what a training column must hold."""
    if name in (PD_LABEL_COLUMN,):
        return "label"
    if name in ("sale_date", SNAPSHOT_COLUMN):
        return "date"
    col = schema.columns().get(name)
    if col is not None and (col.enum or pa.types.is_string(col.type)):
        return "category"
    return "numeric"


def _type_problem(kind: str, typ: pa.DataType) -> str | None:
    base = typ.value_type if pa.types.is_dictionary(typ) else typ
    if kind == "numeric":
        ok = pa.types.is_integer(base) or pa.types.is_floating(base) or pa.types.is_boolean(base) \
            or pa.types.is_decimal(base)
        return None if ok else f"expected numbers, got {base}"
    if kind == "category":
        return None if (pa.types.is_string(base) or pa.types.is_large_string(base)) else f"expected text, got {base}"
    if kind == "date":
        ok = pa.types.is_date(base) or pa.types.is_timestamp(base) or pa.types.is_string(base)
        return None if ok else f"expected a date (YYYY-MM-DD), got {base}"
    if kind == "label":
        ok = pa.types.is_boolean(base) or pa.types.is_integer(base) or pa.types.is_floating(base)
        return None if ok else f"expected 0/1 or true/false, got {base}"
    return None


def check_columns(table: pa.Table, needed: dict[str, str], path: str, what: str) -> None:
    """Every column of ``needed`` (name → kind) present with a usable type; one error naming
    every missing and every mistyped column."""
    missing = [n for n in needed if n not in table.column_names]
    mistyped = []
    for name, kind in needed.items():
        if name in table.column_names:
            problem = _type_problem(kind, table.schema.field(name).type)
            if problem:
                mistyped.append(f"{name!r} ({problem})")
    if missing or mistyped:
        parts = []
        if missing:
            parts.append("missing column" + ("s" if len(missing) > 1 else "") + " " + ", ".join(repr(m) for m in missing))
        if mistyped:
            parts.append("mistyped column" + ("s" if len(mistyped) > 1 else "") + " " + ", ".join(mistyped))
        raise PostloanError(f"{path}: {what}: " + "; ".join(parts) + " (docs/models.md, \"Training on your own data\")")


#: the largest magnitude a model's float32 input holds
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_finite(table: pa.Table, names, path: str) -> None:
    """Numeric columns hold numbers a model can use: empty (NaN, imputed) or finite within
    float32 (the models' input type); an infinite or huge value is an error naming its row."""
    for name in names:
        x = _numbers(table, name)
        bad = np.isinf(x) | (np.abs(np.nan_to_num(x)) > _FLOAT32_MAX)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise PostloanError(f"{path}: column {name!r} row {row}: {x[row]:g} is not a finite number a model "
                                f"can use (at most {_FLOAT32_MAX:.3g} in size)")


def _numbers(table: pa.Table, name: str) -> np.ndarray:
    col = table.column(name)
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    return np.asarray(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), np.float64)


def _texts(table: pa.Table, name: str) -> np.ndarray:
    col = table.column(name)
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    return np.array(col.to_pylist(), dtype=object)


def _dates(table: pa.Table, name: str, path: str) -> np.ndarray:
    """days since the epoch; a value that is not a date, or none, is an error naming its row."""
    col = table.column(name)
    if col.null_count:
        row = int(np.flatnonzero(~np.asarray(pc.is_valid(col).to_numpy(zero_copy_only=False), bool))[0])
        raise PostloanError(f"{path}: column {name!r} row {row}: the date is empty")
    if pa.types.is_string(col.type):
        values = col.to_pylist()
        out = np.zeros(len(values), np.int64)
        for i, v in enumerate(values):
            try:
                out[i] = (dt.date.fromisoformat(v) - dt.date(1970, 1, 1)).days
            except (TypeError, ValueError):
                raise PostloanError(f"{path}: column {name!r} row {i}: expected a date as YYYY-MM-DD") from None
        return out
    if pa.types.is_timestamp(col.type):
        col = pc.cast(col, pa.date32())
    return np.asarray(pc.cast(col, pa.int32()).to_numpy(zero_copy_only=False), np.int64)


def _label(table: pa.Table, name: str, path: str) -> np.ndarray:
    col = table.column(name)
    if col.null_count:
        row = int(np.flatnonzero(~np.asarray(pc.is_valid(col).to_numpy(zero_copy_only=False), bool))[0])
        raise PostloanError(f"{path}: column {name!r} row {row}: the label is empty")
    y = _numbers(table, name)
    bad = ~np.isin(y, (0.0, 1.0))
    if bad.any():
        raise PostloanError(f"{path}: column {name!r} row {int(np.flatnonzero(bad)[0])}: the label must be 0 or 1 "
                            f"(true or false)")
    return y.astype(np.int64)


# ---- the bundle folder ---------------------------------------------------------------------
def prepare_bundle(out: str) -> Path:
    """``out`` as a bundle folder: created if need be; one without rulesets gets the shipped
    bundle's rulesets and models (then replaced by what is trained)."""
    from ..bundle import default_bundle_paths
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise PostloanError(f"{out}: not a directory")
    folder.mkdir(parents=True, exist_ok=True)
    if not any(folder.glob("*.yaml")):
        for path in default_bundle_paths():
            path = Path(path)
            sources = sorted(path.glob("*.yaml")) + sorted(path.glob("*.onnx")) if path.is_dir() else [path]
            for src in sources:
                if src.suffix in (".yaml", ".onnx") and not (folder / src.name).exists():
                    shutil.copyfile(src, folder / src.name)
    return folder


# ---- PD -------------------------------------------------------------------------------------
def pd_features(table_columns, given: list[str] | None) -> tuple[list[str], list[str]]:
    """(numeric, category) feature names: ``given`` (contract columns) or the shipped model's."""
    names = list(given) if given else list(t.PD_NUMERIC) + list(t.PD_CATEGORY)
    contract = schema.columns()
    unknown = [n for n in names if n not in contract]
    if unknown:
        raise PostloanError(f"--pd-features: {', '.join(repr(u) for u in unknown)} "
                            f"{'is not a book column' if len(unknown) == 1 else 'are not book columns'} of the data "
                            f"contract (a bundle's model reads the book: docs/data-contract.md)")
    numeric = [n for n in names if _kind_of(n) == "numeric"]
    return numeric, [n for n in names if _kind_of(n) == "category"]


def train_pd_file(path: str, seed: int, features: list[str] | None = None, label: str = PD_LABEL_COLUMN,
                  fmt: str | None = None, today: dt.date | None = None):
    """Fit the PD pipelines on a lender's file; returns (shipped candidate, candidates, card)."""
    from .compiled import ModelInput
    from .features import feature_matrix

    table = read_table(path, fmt)
    numeric, category = pd_features(table.column_names, features)
    needed = {n: "numeric" for n in numeric} | {n: "category" for n in category} | {label: "label"}
    check_columns(table, needed, path, "PD training data")
    check_finite(table, numeric, path)
    if "dpd" in table.column_names and _type_problem("numeric", table.schema.field("dpd").type) is None:
        in_default = np.nan_to_num(_numbers(table, "dpd")) > t.PD_IN_DEFAULT_DPD
    else:
        in_default = np.zeros(table.num_rows, bool)
    y_all = _label(table, label, path)
    has_dates = SNAPSHOT_COLUMN in table.column_names
    dates = _dates(table, SNAPSHOT_COLUMN, path) if has_dates else None
    keep = ~in_default
    table, y = table.filter(pa.array(keep)), y_all[keep]
    if table.num_rows < MIN_PD_ROWS or min(int(y.sum()), int((1 - y).sum())) < MIN_PD_CLASS:
        raise PostloanError(f"{path}: {table.num_rows:,} rows not in default with {int(y.sum()):,} defaults: at least "
                            f"{MIN_PD_ROWS} rows and {MIN_PD_CLASS} of each label are needed to fit and measure a model")
    cats = {}
    for n in category:
        col = schema.columns()[n]
        if col.enum:
            cats[n] = list(schema.ENUMS[col.enum])
        else:
            cats[n] = sorted({v for v in _texts(table, n) if v is not None})
    inputs = [ModelInput(n, "numeric") for n in numeric] + [ModelInput(n, "category", tuple(cats[n])) for n in category]
    X = feature_matrix(table, inputs)
    sizes = [len(cats[n]) for n in category]
    if has_dates:
        d = dates[keep]
        order = np.sort(np.unique(d))
        cut = order[max(int(np.searchsorted(np.cumsum([np.sum(d == v) for v in order]), 0.8 * len(d))), 0)]
        cut = order[-1] if cut == order[0] and len(order) > 1 else cut
        test = d >= cut
        if len(order) < 2 or test.all() or not test.any() or y[test].min() == y[test].max():
            raise PostloanError(f"{path}: column {SNAPSHOT_COLUMN!r}: an out-of-time test needs at least two snapshot "
                                f"dates, with defaults and non-defaults in the latest")
        candidates = t._fit_classifiers(X[~test], y[~test], len(numeric), sizes, seed, test_share=0.2,
                                        oot=(X[test], y[test]))
        split = (f"trained on the snapshots before {dt.date(1970, 1, 1) + dt.timedelta(days=int(cut))} "
                 f"({int((~test).sum()):,} rows; the pipeline chosen on a 20 % in-time holdout), tested out of time on "
                 f"the snapshots from then ({int(test.sum()):,} rows)")
    else:
        candidates = t._fit_classifiers(X, y, len(numeric), sizes, seed, test_share=0.3)
        for c in candidates:
            c.extra["oot"] = c.metrics
        split = (f"a seeded 70/30 split of {table.num_rows:,} rows — the file has no {SNAPSHOT_COLUMN!r} column, "
                 "so there is no out-of-time test: the figures below are in time")
    best = max(candidates, key=lambda c: c.metrics["auc"])
    meta = {
        "description": "Probability that an auto loan not in default reaches default within 6 months "
                       f"(trained on {os.path.basename(path)}).",
        "features": t._features_meta(numeric, cats),
        "outputs": [{"name": "probability", "source": "probabilities", "column": 1, "type": "float"},
                    {"name": "label", "source": "label", "column": 0, "type": "int"}],
        "version": t.MODEL_VERSION, "algorithm": best.kind, "label": f"{label}: {t.PD_LABEL}",
        "training_data": f"{os.path.basename(path)}: {split}; {int(in_default.sum()):,} rows in default left out",
        "metrics": {c.kind: {"in_time": t._short(c.metrics), "out_of_time": t._short(c.extra["oot"])}
                    for c in candidates},
        "training_date": (today or t._today()).isoformat(), "seed": str(seed),
    }
    best.onnx = t._to_onnx(best.extra["model"], X.shape[1], meta)
    best.name = "pd_model"
    card = own_pd_card(path, best, candidates, numeric, category, split, int(in_default.sum()), has_dates, label)
    return best, candidates, card


def own_pd_card(path, best, candidates, numeric, category, split, defaulted, oot: bool, label) -> str:
    m = best.extra["oot"]
    title = "Out-of-time figures" if oot else "Held-out figures (in time: the file has no snapshot_date)"
    return "\n".join([
        "# pd_model — probability of default within 6 months, trained on your data", "",
        f"Shipped: **{best.kind}** trained on `{os.path.basename(path)}` with `postloan train --pd-data`.", "",
        f"Label: `{label}` — {t.PD_LABEL}. {defaulted:,} rows already in default (dpd > {t.PD_IN_DEFAULT_DPD}) left "
        "out; the bundle scores such accounts 1 by rule (`early_warning.pd`).", "",
        f"Data: {split}.", "",
        "Features: numeric " + ", ".join(f"`{n}`" for n in numeric) + "; categories "
        + (", ".join(f"`{n}`" for n in category) or "none") + ".", "",
        f"## {title}", t._HEADER, *[t._metrics_row(c.kind, c.extra["oot"]) for c in candidates], "",
        "## Calibration (reliability curve)",
        f"Brier score {m['brier']:.4f}; expected calibration error {m['ece']:.4f}.", "",
        *t._calibration_table(m), "",
    ])


# ---- RV -------------------------------------------------------------------------------------
def train_rv_file(path: str, seed: int, label: str = RV_LABEL_COLUMN, fmt: str | None = None,
                  today: dt.date | None = None):
    """Fit the RV pipeline (trees on log price, Exp in the graph) on a lender's sales."""
    from .compiled import ModelInput
    from .features import feature_matrix
    import time

    table = read_table(path, fmt)
    needed = {n: _kind_of(n) for n in RV_COLUMNS} | {label: "numeric"}
    needed["model_year"] = "numeric"
    check_columns(table, needed, path, "RV training data")
    check_finite(table, ["mileage_km", "purchase_price", "model_year"], path)
    price = _numbers(table, label)
    bad = ~(np.isfinite(price) & (price > 0))
    if bad.any():
        raise PostloanError(f"{path}: column {label!r} row {int(np.flatnonzero(bad)[0])}: a sale price must be a "
                            f"positive number")
    if table.num_rows < MIN_RV_ROWS:
        raise PostloanError(f"{path}: {table.num_rows:,} sales: at least {MIN_RV_ROWS} are needed to fit and measure a model")
    sale_day = _dates(table, "sale_date", path)
    sale_year = (sale_day.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970)
    data = {n: _texts(table, n) for n in t.RV_CATEGORY + ("currency",)}
    data.update({"mileage_km": _numbers(table, "mileage_km"), "purchase_price": _numbers(table, "purchase_price"),
                 t.RV_AGE: np.maximum(sale_year - _numbers(table, "model_year"), 0)})
    cats = {n: (list(schema.ENUMS[schema.columns()[n].enum]) if schema.columns()[n].enum
                else sorted({v for v in data[n] if v is not None})) for n in t.RV_CATEGORY}
    inputs = [ModelInput(n, "numeric") for n in t.RV_NUMERIC] + [ModelInput(n, "category", tuple(cats[n]))
                                                                 for n in t.RV_CATEGORY]
    X = feature_matrix(data, inputs)
    train, test = t._split(table.num_rows, seed)
    start = time.perf_counter()
    model = t._boosted(seed, regression=True).fit(X[train], np.log(price[train]))
    smear = float(np.mean(np.exp(np.log(price[train]) - model.predict(X[train]))))
    pred = np.exp(model.predict(X[test])) * smear
    metrics = t.regression_metrics(price[test], pred)
    currency = data["currency"][test]
    metrics["by_currency"] = {c: t.regression_metrics(price[test][currency == c], pred[currency == c])
                              for c in sorted({x for x in currency if x is not None})}
    meta = {
        "description": f"Expected wholesale price of a repossessed car (trained on {os.path.basename(path)}).",
        "features": t._features_meta(t.RV_NUMERIC, {n: cats[n] for n in t.RV_CATEGORY}),
        "outputs": [{"name": "price", "source": "price", "column": 0, "type": "float"}],
        "version": t.RV_VERSION, "algorithm": "gradient-boosted trees on log(price) (regression)",
        "label": f"{label} (in the car's currency)",
        "training_data": f"{os.path.basename(path)}: {table.num_rows:,} sales, seeded 70/30 split",
        "metrics": {**metrics, "smearing": round(smear, 6)}, "training_date": (today or t._today()).isoformat(),
        "seed": str(seed),
    }
    result = t.Trained("rv_model", "gradient-boosted trees on log(price)", metrics,
                       seconds=round(time.perf_counter() - start, 1), extra={"smearing": smear})
    result.onnx = t._to_onnx(model, X.shape[1], meta, edit=lambda proto: t._exp_output(proto, "price", np.log(smear)))
    card = "\n".join([
        "# rv_model — wholesale price of a repossessed car, trained on your data", "",
        f"Trained on `{os.path.basename(path)}` with `postloan train --rv-data` ({table.num_rows:,} sales, a seeded "
        "70/30 split): gradient-boosted trees on log(price), `Exp` in the graph (never a negative price). Age is "
        f"`{t.RV_AGE}`: year of `sale_date` − `model_year`, as the bundle computes it on the decision date.", "",
        "| cars | MAE | MAPE | R² | rows |", "|---|---|---|---|---|",
        *[f"| {c} | {b['mae']:,.0f} {c} | {b['mape']:.2%} | {b['r2']:.4f} | {b['rows']:,} |"
          for c, b in metrics["by_currency"].items()], "",
    ])
    return result, card
