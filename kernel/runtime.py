"""The runtime: a loaded, compiled, warm bundle that decides batches of accounts.

>>> import datetime, kernel
>>> k = kernel.Kernel.load()                                   # the shipped bundle
>>> decisions = k.decide(book, as_of=datetime.date(2026, 11, 28))   # doctest: +SKIP

A :class:`Kernel` is immutable: reloading a bundle builds a new one, which a server swaps in
atomically (one reference assignment). Every method may be called from several threads.
"""
from __future__ import annotations

import datetime as dt
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa

from .bundle import Bundle
from .rules import ir
from .rules.columns import COLLECT_RULE_TYPE, RULE_TYPE, InputError, arrow_type, to_python
from .rules.reference import evaluate_rules, names_read

__all__ = ["Kernel"]

#: rows per call of the compiled kernel when deciding a large table (bounds memory)
BATCH_ROWS = 1 << 20


class Kernel:
    """A compiled bundle. Attributes (read-only):

    - ``bundle_hash``: content hash of the bundle's source files;
    - ``version``: ``{node name: version}`` of every ruleset and model;
    - ``nodes``: node names in evaluation order;
    - ``inputs``: ``{book column: language Type}`` the bundle reads;
    - ``outputs``: ``{decision column: Arrow type}``, every column ``decide`` returns, in order;
    - ``output_types``: ``{decision column: language Type}`` for value columns (not ``.rule``);
    - ``warnings``: the checker's warnings (shadowed rules, gaps…).
    """

    __slots__ = ("_bundle", "_compiled", "_schema", "bundle_hash", "version", "nodes", "inputs", "outputs",
                 "output_types", "warnings")

    def __init__(self, bundle: Bundle, compiled):
        object.__setattr__(self, "_bundle", bundle)
        object.__setattr__(self, "_compiled", compiled)
        fields, types = [], {}
        for node in bundle.nodes:
            for name, t in node.outputs.items():
                fields.append(pa.field(f"{node.name}.{name}", arrow_type(t)))
                types[f"{node.name}.{name}"] = t
            if node.kind == "ruleset":
                rule_type = COLLECT_RULE_TYPE if node.ruleset.ir.hit == "collect" else RULE_TYPE
                fields.append(pa.field(f"{node.name}.rule", rule_type))
        schema = pa.schema(fields)
        values = {
            "_schema": schema,
            "bundle_hash": bundle.hash,
            "version": {n.name: n.version for n in bundle.nodes},
            "nodes": tuple(n.name for n in bundle.nodes),
            "inputs": {name: t for name, t in compiled.required_columns()},
            "outputs": {f.name: f.type for f in schema},
            "output_types": types,
            "warnings": tuple(bundle.warnings),
        }
        for k, v in values.items():
            object.__setattr__(self, k, v)

    def __setattr__(self, name, value):
        raise AttributeError("a Kernel is immutable; load a new one to change the bundle")

    def __repr__(self) -> str:
        return f"<Kernel {self.bundle_hash[:12]} nodes={list(self.nodes)}>"

    @property
    def output_schema(self) -> pa.Schema:
        return self._schema

    @property
    def bundle(self) -> Bundle:
        return self._bundle

    # ------------------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path=None) -> "Kernel":
        """Load, check and compile a bundle: ``path`` None is the shipped bundle
        (``$POSTLOAN_BUNDLE`` overrides), else a folder, a file or a list of them. Raises
        :class:`~kernel.errors.BundleError` or :class:`~kernel.rules.RulesetError` listing every
        problem. The kernel returned is compiled and warm."""
        from .codegen import compile_plan
        bundle = Bundle.load(path)
        compiled = compile_plan(build_plan(bundle))
        kernel = cls(bundle, compiled)
        kernel._warm()
        return kernel

    def _warm(self) -> None:
        """Run both kernel variants once so that the first real request pays no first-call costs
        (thread pool start-up, lazy initialisation)."""
        self._compiled.run_columns({name: _null_column(t, 1) for name, t in self.inputs.items()},
                                   dt.date(2000, 1, 1), 1)

    # ------------------------------------------------------------------------------ deciding
    def decide(self, data, as_of=None) -> pa.Table:
        """Decide every row of a pyarrow Table or RecordBatch (or an iterable of batches):
        every output of every node plus each ruleset's ``.rule``, row for row. ``as_of`` is the
        decision date (default: today). A missing or mistyped column raises InputError."""
        if isinstance(data, pa.RecordBatch):
            batches: Iterable = [data]
        elif isinstance(data, pa.Table):
            self._compiled.check_schema(data.schema)
            batches = data.to_batches(max_chunksize=BATCH_ROWS) or [pa.RecordBatch.from_pylist([], schema=data.schema)]
        else:
            batches = data
        parts = list(self.decide_batches(batches, as_of))
        return pa.Table.from_batches(parts, schema=self._schema)

    def decide_batches(self, batches: Iterable[pa.RecordBatch], as_of=None) -> Iterator[pa.RecordBatch]:
        """Streaming form of :meth:`decide`: one decision batch per input batch."""
        for batch in batches:
            cols = self._compiled.run_batch(batch, as_of)
            yield pa.RecordBatch.from_arrays([a for _, a in cols], schema=self._schema)

    def decide_columns(self, columns: dict, as_of=None, n: int | None = None) -> dict:
        """The no-Arrow path for one or a few accounts: ``columns`` maps each input column to
        a NumPy array (ints, floats — NaN is null —, bools, ``datetime64`` dates, strings for
        enums; masked arrays or ``None`` in object arrays for nulls). Returns ``{decision
        column: array}``: floats with NaN for null, ints/bools (masked where null), dates as
        ``datetime64[D]`` (NaT), enums and rule ids as object arrays of ``str``/``None``,
        ``collect`` rule lists as object arrays of lists."""
        return self._compiled.run_columns(columns, as_of, n)

    # ------------------------------------------------------------------------------ explaining
    def explain(self, data, as_of=None) -> list[dict]:
        """Per row, per ruleset: the winning rule (``rule``; a list under collect) and the
        values of the inputs that rule reads (``inputs``), computed by the reference
        interpreter. Accepts a Table/RecordBatch or a dict of columns as for
        :meth:`decide_columns`; meant for a few rows."""
        from .codegen.driver import as_of_days
        if isinstance(data, dict):
            data = _table_of_columns(data, self.inputs)
        if isinstance(data, pa.RecordBatch):
            data = pa.Table.from_batches([data])
        self._compiled.check_schema(data.schema)
        days = as_of_days(as_of)
        cols = {name: to_python(name, data.column(name), t) for name, t in self.inputs.items()}
        rows = []
        for r in range(data.num_rows):
            row = {name: values[r] for name, values in cols.items()}
            env_types = dict(self.inputs)
            explained = {}
            for node in self._bundle.nodes:
                sources = self._bundle.sources[node.name]
                if node.kind == "model":
                    values = _reference_model(node, sources, row, env_types)
                    for out_name, v in values.items():
                        row[f"{node.name}.{out_name}"] = v
                        env_types[f"{node.name}.{out_name}"] = node.outputs[out_name]
                    continue
                rs = node.ruleset.ir
                local = {name: row.get(src[1] if src[0] == "column" else f"{src[1]}.{src[2]}")
                         for name, src in sources.items()}
                result = evaluate_rules(rs, local, days)
                for o in rs.outputs:
                    row[f"{node.name}.{o.name}"] = result[o.name]
                    env_types[f"{node.name}.{o.name}"] = o.type
                winners = result["rule"] if isinstance(result["rule"], list) else (
                    [result["rule"]] if result["rule"] not in (None, "!unique") else [])
                read: dict = {}
                for rule in rs.rules:
                    if rule.id in winners:
                        for e in [rule.when] + [x for _, x in rule.then]:
                            for name in names_read(e):
                                read[name] = ir.format_value(local.get(name), rs.input_type(name)) \
                                    if local.get(name) is not None else None
                explained[node.name] = {"rule": result["rule"], "version": rs.version, "inputs": read,
                                        "outputs": {o.name: _plain(result[o.name], o.type) for o in rs.outputs}}
            rows.append(explained)
        return rows


def build_plan(bundle: Bundle):
    from .codegen import ModelNode, Plan, RulesetNode
    nodes = []
    for node in bundle.nodes:
        sources = bundle.sources[node.name]
        if node.kind == "ruleset":
            nodes.append(RulesetNode(node.ruleset.ir, sources))
        else:
            nodes.append(_model_plan_node(node, sources, ModelNode))
    return Plan.build(nodes)


def _model_plan_node(node, sources, ModelNode):
    from .bundle import BundleError
    model = node.model
    if getattr(model, "block", None) is None:
        raise BundleError(f"{node.file}: model `{node.name}` runs on onnxruntime "
                          f"({getattr(model, 'fallback_reason', 'unsupported operators')}); "
                          f"only Numba-compiled models can be fused into a bundle yet")
    features = []
    for feature in model.inputs:
        src = sources[feature.name]
        kind = "category" if feature.kind == "category" else "numeric"
        features.append((src, kind, tuple(feature.categories)))
    import hashlib
    import inspect
    code = inspect.getsource(inspect.getmodule(model.block.fn))
    digest = hashlib.sha256(code.encode()).hexdigest()[:16]
    return ModelNode(node.name, tuple(features), tuple((n, t) for n, t in node.outputs.items()),
                     model.block.fn, model.block.params, digest)


def _reference_model(node, sources, row, env_types) -> dict:
    model = node.model
    x = np.empty((1, len(model.inputs)), np.float32)
    for j, feature in enumerate(model.inputs):
        src = sources[feature.name]
        key = src[1] if src[0] == "column" else f"{src[1]}.{src[2]}"
        v = row.get(key)
        if v is None:
            x[0, j] = np.nan
        elif feature.kind == "category":
            t = env_types[key]
            member = t.members[v] if t.kind == "enum" else v
            x[0, j] = feature.categories.index(member) if member in feature.categories else -1
        else:
            x[0, j] = v
    out = model.run_matrix(x)[0]
    return {name: (None if np.isnan(out[k]) else float(out[k])) for k, name in enumerate(node.outputs)}


def _plain(value, t: ir.Type):
    if value is None:
        return None
    if t.kind in ("enum", "date"):
        return ir.format_value(value, t)
    return value


def _null_column(t: ir.Type, n: int) -> np.ndarray:
    if t.kind == "float":
        return np.full(n, np.nan)
    if t.kind == "enum":
        return np.array([None] * n, dtype=object)
    dtype = {"int": np.int64, "bool": np.bool_, "date": "datetime64[D]"}[t.kind]
    return np.ma.masked_array(np.zeros(n, dtype=dtype), mask=np.ones(n, dtype=bool))


def _table_of_columns(columns: dict, inputs: dict) -> pa.Table:
    arrays, names = [], []
    for name, t in inputs.items():
        if name not in columns:
            raise InputError(f"missing column `{name}` (the rules read it as {t})", name)
        values = columns[name]
        mask = np.ma.getmaskarray(values) if isinstance(values, np.ma.MaskedArray) else None
        data = np.ma.getdata(values) if mask is not None else np.asarray(values)
        if t.kind == "enum":
            arr = pa.array([None if (mask is not None and mask[j]) else v for j, v in enumerate(data.tolist())],
                           pa.string())
        elif t.kind == "date" and data.dtype.kind != "M":
            arr = pa.array(list(data), pa.date32(), mask=mask)
        else:
            arr = pa.array(data, mask=mask)
        arrays.append(arr)
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)
