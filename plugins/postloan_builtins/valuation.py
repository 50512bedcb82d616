"""Built-in valuation methods and disposal channels.

- ``depreciation_curve``: brand's yearly depreciation (data/depreciation.toml), age,
  mileage and condition;
- ``rv_model``: the residual-value ONNX model, through :func:`kernel.compile_model`;
- the disposal channels of data/disposal_channels.toml (auction platforms, dealers, leasing
  companies, dismantlers), among which the pipeline's selector picks the best per car.
"""
from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path
from typing import Any, Mapping

import numpy as np

import kernel
from kernel.errors import PostloanError
from kernel.hookspecs import Batch, DisposalChannel, ValuationMethod
from kernel.pipeline import vehicle_age_years
from kernel.plugins import read_toml

__all__ = ["DepreciationCurve", "ResidualValueModel", "load_channels", "DATA_DIR"]

DATA_DIR = Path(__file__).with_name("data")
_EPOCH = dt.date(1970, 1, 1)
_GRADES = ("A", "B", "C", "D", "E")


def _number(value: Any, where: str, lo: float = 0.0, hi: float = float("inf")) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise PostloanError(f"{where}: expected a number in [{lo}, {hi}], got {value!r}")
    return float(value)


class DepreciationCurve(ValuationMethod):
    """value = purchase_price × (1 − rate[brand]) ^ (age now − age when bought)
    × mileage factor × condition factor (see data/depreciation.toml)."""

    name = "depreciation_curve"

    def __init__(self, path: str | Path | None = None):
        path = Path(path or DATA_DIR / "depreciation.toml")
        data = read_toml(path, "depreciation")
        where = str(path)
        self.default_rate = _number(data.get("default_rate"), f"{where}: default_rate", 0, 1)
        brands = data.get("brands", {})
        if not isinstance(brands, Mapping):
            raise PostloanError(f"{where}: [brands] must be a table of brand = yearly rate")
        self.rates = {b: _number(r, f"{where}: brands.{b}", 0, 1) for b, r in brands.items()}
        mileage = data.get("mileage", {})
        self.expected_km = _number(mileage.get("expected_km_per_year"), f"{where}: mileage.expected_km_per_year")
        self.adjust = _number(mileage.get("adjust_per_10000_km"), f"{where}: mileage.adjust_per_10000_km", 0, 1)
        self.min_factor = _number(mileage.get("min_factor"), f"{where}: mileage.min_factor", 0, 1)
        self.max_factor = _number(mileage.get("max_factor"), f"{where}: mileage.max_factor", self.min_factor, 10)
        condition = data.get("condition", {})
        missing = [g for g in _GRADES if g not in condition]
        if missing:
            raise PostloanError(f"{where}: [condition] lacks grade {missing[0]}")
        self.condition = np.array([_number(condition[g], f"{where}: condition.{g}", 0, 1) for g in _GRADES] + [np.nan])

    def value(self, batch: Batch, rows: np.ndarray) -> np.ndarray:
        names, index = batch.categories("brand")
        rate_of = np.array([self.rates.get(b, self.default_rate) for b in names] + [self.default_rate])
        rate = rate_of[index[rows]]
        model_year = batch.int("model_year")[rows]
        age_now = vehicle_age_years(model_year, np.full(rows.size, (batch.as_of - _EPOCH).days))
        age_bought = np.clip(vehicle_age_years(model_year, batch.days("contract_date")[rows]), 0, age_now)
        excess_km = batch.float("mileage_km")[rows] - self.expected_km * age_now
        mileage = np.clip(1 - self.adjust * excess_km / 10_000, self.min_factor, self.max_factor)
        condition = self.condition[batch.enum("condition_grade")[rows]]
        return batch.float("purchase_price")[rows] * (1 - rate) ** (age_now - age_bought) * mileage * condition



@functools.lru_cache(maxsize=4)
def _compile(path: str):
    """Compile a model once per process (a pipeline is rebuilt on every configuration reload)."""
    return kernel.compile_model(path)


class ResidualValueModel(ValuationMethod):
    """The residual-value ONNX model (``models/rv_model.onnx``: wholesale price of the car).

    When the bundle contains the model, its fused kernel has already scored every account:
    the decision column ``rv_model.price`` is used as is. Otherwise the model is compiled
    with :func:`kernel.compile_model` on first use and scored on the feature matrix built
    from the batch's columns (categories by their index in the model's list, −1 when unknown;
    missing numbers as NaN)."""

    name = "rv_model"

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else Path(kernel.__file__).resolve().parent.parent / "models" / "rv_model.onnx"
        self._model = None
        self._column = 0

    def _compiled(self):
        if self._model is None:
            if not self.path.is_file():
                raise PostloanError(f"{self.path}: residual-value model not found ([valuation] rv_model_file)")
            model = _compile(str(self.path))
            outputs = [o.name for o in model.outputs]
            if "price" not in outputs:
                raise PostloanError(f"{self.path}: the model has no output 'price' (outputs: {', '.join(outputs)})")
            self._column = outputs.index("price")
            self._model = model
        return self._model

    def value(self, batch: Batch, rows: np.ndarray) -> np.ndarray:
        if batch.has("rv_model.price"):          # the bundle's fused kernel already scored it
            return batch.float("rv_model.price")[rows]
        model = self._compiled()
        X = np.empty((rows.size, model.n_features), np.float32)
        for j, feature in enumerate(model.inputs):
            if feature.kind == "category":
                names, index = batch.categories(feature.name)
                position = {c: i for i, c in enumerate(feature.categories)}
                code_of = np.array([position.get(n, -1) for n in names] + [-1], np.float32)
                X[:, j] = code_of[index[rows]]
            elif not batch.has(feature.name) and "." in feature.name:
                X[:, j] = upstream_output(batch, rows, feature.name)
            else:
                X[:, j] = batch.float(feature.name)[rows]
        return np.asarray(model.score(X), np.float64)[:, self._column]


def upstream_output(batch: Batch, rows: np.ndarray, name: str) -> np.ndarray:
    """A ruleset output a model reads (``vehicle_profile.age_years``) for rows of a batch no
    bundle decided (a Valuate call): that ruleset of the shipped bundle, run by the reference
    interpreter (the compiled kernel's meaning, without a compilation) on the rows' columns,
    the ones the batch lacks as nulls. float64, NaN for null."""
    from kernel.rules.columns import to_python
    from kernel.rules.reference import evaluate_rules

    node, _, output = name.partition(".")
    ruleset = _bundle_ruleset(node)
    if ruleset is None:
        raise PostloanError(f"the residual-value model reads {name!r}, which this batch lacks and no ruleset "
                            f"{node!r} of the bundle computes")
    inputs = {spec.name: (to_python(spec.name, _arrow_rows(batch.raw(spec.name), rows), spec.type)
                          if batch.has(spec.name) else [None] * rows.size) for spec in ruleset.ir.inputs}
    days = (batch.as_of - _EPOCH).days
    values = [evaluate_rules(ruleset.ir, {k: v[r] for k, v in inputs.items()}, days)[output] for r in range(rows.size)]
    return np.array([np.nan if v is None else v for v in values], np.float64)


@functools.lru_cache(maxsize=None)
def _bundle_ruleset(node: str):
    from kernel.bundle import bundle_files
    for path in bundle_files(None):
        if path.suffix in (".yaml", ".yml") and path.stem == node:
            return kernel.compile_ruleset(path)
    return None


def _arrow_rows(column, rows: np.ndarray):
    """Rows of a batch column (Arrow or NumPy) as an Arrow array."""
    import pyarrow as pa
    if isinstance(column, np.ndarray):
        return pa.array(column[rows])
    return column.take(pa.array(rows))


_CHANNEL_KEYS = {"name", "kind", "description", "price_factor", "success_rate", "fee_rate", "fee_fixed",
                 "transport_cost", "expected_days", "holding_cost_per_day", "max_age_years", "max_mileage_km",
                 "conditions", "countries", "relist_cost", "relist_price_drop", "capital_cost_per_year"}


def load_channels(path: str | Path | None = None) -> list[DisposalChannel]:
    """Disposal channels from a TOML data file (see data/disposal_channels.toml); each is
    checked by :class:`DisposalChannel` itself (kinds, ranges, grades, countries)."""
    path = Path(path or DATA_DIR / "disposal_channels.toml")
    data = read_toml(path, "disposal channels")
    holding = _number(data.get("holding_cost_per_day", 0.0), f"{path}: holding_cost_per_day")
    capital = _number(data.get("capital_cost_per_year", 0.0), f"{path}: capital_cost_per_year", 0.0, 1.0)
    drop = _number(data.get("relist_price_drop", 0.0), f"{path}: relist_price_drop", 0.0, 1.0)
    specs = data.get("channel", [])
    if not isinstance(specs, list) or not all(isinstance(spec, Mapping) for spec in specs):
        raise PostloanError(f"{path}: channels are [[channel]] tables")
    channels = []
    for i, spec in enumerate(specs):
        where = f"{path}: channel {spec.get('name', i + 1)!r}"
        unknown = sorted(set(spec) - _CHANNEL_KEYS)
        if unknown:
            raise PostloanError(f"{where}: unknown key {unknown[0]!r} (keys: {', '.join(sorted(_CHANNEL_KEYS))})")
        if not isinstance(spec.get("name"), str) or not spec["name"]:
            raise PostloanError(f"{where}: a channel needs a name")
        try:
            channels.append(DisposalChannel(**{"holding_cost_per_day": holding, "capital_cost_per_year": capital,
                                               "relist_price_drop": drop, **spec}))
        except TypeError:                    # a required field is missing
            missing = [k for k in ("kind", "price_factor", "success_rate") if k not in spec]
            raise PostloanError(f"{where}: missing {missing[0] if missing else 'a field'}") from None
        except PostloanError as e:           # DisposalChannel's own check, named by file
            raise PostloanError(f"{path}: {e}") from None
    return channels


@kernel.hookimpl
def postloan_valuation_methods(config):
    settings = config.get("valuation", {})
    return [DepreciationCurve(settings.get("depreciation_file")), ResidualValueModel(settings.get("rv_model_file"))]


@kernel.hookimpl
def postloan_disposal_channels(config):
    return load_channels(config.get("disposal", {}).get("channels_file"))
