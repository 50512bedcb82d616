"""The runtime: a loaded, compiled, warm bundle that decides batches of accounts.

>>> import datetime, kernel
>>> k = kernel.Kernel.load()                                   # the shipped bundle
>>> decisions = k.decide(book, as_of=datetime.date(2026, 11, 28))   # doctest: +SKIP

A :class:`Kernel` is immutable: reloading a bundle builds a new one, which a server swaps in
atomically (one reference assignment). Every method may be called from several threads.
"""
from __future__ import annotations

import datetime as dt
from typing import Iterable, Iterator, Mapping

import numpy as np
import pyarrow as pa

from .bundle import Bundle
from .rules import ir
from .rules.columns import COLLECT_RULE_TYPE, RULE_TYPE, InputError, arrow_type, rule_array, to_python
from .rules.reference import UNIQUE_CONFLICT, evaluate_rules, names_read

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
    - ``warnings``: the checker's warnings (shadowed rules, gaps…);
    - ``unique_rulesets``: the rulesets with ``hit: unique`` (see :meth:`unique_conflicts`).
    """

    __slots__ = ("_bundle", "_compiled", "_schema", "bundle_hash", "version", "nodes", "inputs", "outputs",
                 "output_types", "warnings", "unique_rulesets", "_unique_rule_columns")

    def __init__(self, bundle: Bundle, compiled, plan=None):
        object.__setattr__(self, "_bundle", bundle)
        object.__setattr__(self, "_compiled", compiled if compiled is not None else _Uncompiled(plan))
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
            # a model's categorical feature reads a string column: shown as type `string`
            "inputs": {name: (ir.Type("string") if t.kind == "category" else t)
                       for name, t in self._compiled.required_columns()},
            "outputs": {f.name: f.type for f in schema},
            "output_types": types,
            "warnings": tuple(bundle.warnings),
            "unique_rulesets": tuple(n.name for n in bundle.nodes if n.kind == "ruleset" and n.ruleset.ir.hit == "unique"),
        }
        values["_unique_rule_columns"] = tuple((name, f"{name}.rule") for name in values["unique_rulesets"])
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
    def load(cls, path=None, *, limits=None, progress=None, compile: bool = True) -> "Kernel":
        """Load, check and compile a bundle: ``path`` None is the shipped bundle
        (``$POSTLOAN_BUNDLE`` overrides), else a folder, a file or a list of them. ``limits``
        (a :class:`kernel.files.FileLimits`) caps each file's size before it is read
        (default: from the environment). Raises :class:`~kernel.errors.BundleError` or
        :class:`~kernel.rules.RulesetError` listing every problem. The kernel returned is
        compiled and warm. ``progress``: None shows "compiling node n of N: <name>" on a
        terminal while nodes compile, False shows nothing, a callable ``(done, total, name)``
        is called instead (:func:`kernel.codegen.compile_plan`). ``compile=False`` compiles
        nothing: the kernel decides with ``engine="reference"`` only (what ``postloan test``
        needs; the compiled entry points then raise :class:`~kernel.errors.BundleError`)."""
        from .codegen import compile_plan
        if not compile:
            bundle = Bundle.load(path, limits=limits)
            return cls(bundle, None, build_plan(bundle, blocks=False))
        from .codegen import parallel
        # a cold cache: helper processes start now and warm up while the bundle is read
        helpers = parallel.prestart()
        try:
            bundle = Bundle.load(path, limits=limits)
            plan = build_plan(bundle)
        except BaseException:
            for helper in helpers:
                helper.kill()
            raise
        compiled = compile_plan(plan, progress=progress, helpers=helpers)
        kernel = cls(bundle, compiled)
        kernel._warm()
        return kernel

    def _warm(self) -> None:
        """Run both kernel variants once so that the first real request pays no first-call costs
        (thread pool start-up, lazy initialisation)."""
        self._compiled.run_columns({name: _null_column(t, 1) for name, t in self.inputs.items()},
                                   dt.date(2000, 1, 1), 1)

    # ------------------------------------------------------------------------------ deciding
    def check_columns(self, schema: pa.Schema, source: str | None = None) -> None:
        """Raise :class:`~kernel.rules.InputError` naming the first column the bundle reads that
        ``schema`` lacks or types wrongly."""
        try:
            self._compiled.check_schema(schema)
        except InputError as e:
            if source:
                raise InputError(f"{source}: {e}", e.column) from None
            raise

    def decide(self, data, as_of=None, engine: str = "compiled") -> pa.Table:
        """Decide every row of a pyarrow Table or RecordBatch (or an iterable of batches):
        every output of every node plus each ruleset's ``.rule``, row for row. ``as_of`` is the
        decision date (default: today). A missing or mistyped column raises InputError.
        ``engine="reference"`` runs the reference interpreter (and onnxruntime for models)
        instead: slow, for differential tests and explanations."""
        if engine == "reference":
            return self._reference(data, as_of)
        if engine != "compiled":
            raise ValueError(f"engine must be 'compiled' or 'reference', got {engine!r}")
        if isinstance(data, pa.RecordBatch):
            batches: Iterable = [data]
        elif isinstance(data, pa.Table):
            self._compiled.check_schema(data.schema)
            batches = data.to_batches(max_chunksize=BATCH_ROWS) or [pa.RecordBatch.from_pylist([], schema=data.schema)]
        else:
            return pa.Table.from_batches(list(self.decide_batches(data, as_of)), schema=self._schema)
        # a table's batches in one go: their row chunks share the threads
        parts = [pa.RecordBatch.from_arrays([a for _, a in cols], schema=self._schema)
                 for cols in self._compiled.run_batches(batches, as_of)]
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

    def decide_record(self, record, as_of=None) -> dict:
        """One account given as a mapping of Python scalars (``{"dpd": 15, "gps_status": "ONLINE",
        "insurance_expiry_date": date(...), "bureau_score": None, ...}``; None or NaN is null);
        returns ``{decision column: scalar}`` (enum members and rule ids as ``str``, dates as
        ``datetime.date``, collect rule lists as lists, null as None). The fastest path for one
        gRPC request: no arrays are built on either side."""
        return self._compiled.run_record(record, as_of)

    # The record path in two halves, for a caller that writes the kernel's inputs itself (the
    # gRPC server, from an Account's wire bytes): :attr:`record_layout` says where each input
    # goes in :meth:`record_inputs`, and :meth:`decide_staged` decides what was written there.
    @property
    def record_layout(self) -> tuple[tuple, range]:
        """Per input column ``(name, storage, value byte, validity byte, type, member
        index)`` in :meth:`record_inputs`, and the bitmaps' bytes (see
        :attr:`kernel.codegen.driver.CompiledKernel.record_layout`)."""
        return self._compiled.record_layout

    def record_inputs(self) -> np.ndarray:
        """This thread's record inputs (uint8), where :meth:`decide_staged` reads them."""
        return self._compiled.record_buffers().inputs

    # ... and for compiled code that also runs the kernel and reads its outputs itself (the
    # gRPC server's decision-only Decide, kernel.server.wire_decide.RequestDecider): where each
    # decision lies, the kernel's native entry, this thread's buffer, a copy's decisions.
    @property
    def record_outputs(self) -> tuple[tuple, ...]:
        """Per decision column, in :meth:`decide_staged`'s order, ``(name, kind, value byte,
        validity byte, labels)`` in :meth:`record_buffer` (see
        :attr:`kernel.codegen.driver.CompiledKernel.record_outputs`)."""
        return self._compiled.record_outputs

    @property
    def record_address(self) -> int | None:
        """The native address of the kernel's one-record function ``record(as_of days, R)`` (R:
        :meth:`record_buffer`'s table address); None when the kernel has none."""
        return self._compiled.record_address

    def record_buffer(self) -> tuple:
        """This thread's record buffer (uint8: the outputs' bytes, then the inputs' from
        ``inputs_at``), ``inputs_at``, and the address of its table for ``record`` (None: the
        kernel has no ``record``)."""
        rec = self._compiled.record_buffers()
        return rec.buffer, rec.inputs_at, rec.table_at

    def read_outputs(self, outputs: bytes) -> dict:
        """:meth:`decide_staged`'s answer from a copy of the outputs' bytes of a record buffer
        the kernel has run on (any thread's: the offsets are the same)."""
        return self._compiled.read_outputs(outputs)

    def decide_staged(self, as_of=None) -> dict:
        """:meth:`decide_record`'s answer for the record written into this thread's
        :meth:`record_inputs` (every input's value and validity byte, bitmaps reset first)."""
        compiled = self._compiled
        return compiled.run_staged(compiled.record_buffers(), as_of)

    def unique_conflicts(self, decisions) -> dict[str, int]:
        """Per ``hit: unique`` ruleset, how many rows of ``decisions`` more than one of its
        rules fired for: such a row's outputs are null and its ``<ruleset>.rule`` is
        ``"!unique"`` (the checker rejects overlaps it can prove; the others show up here).
        ``decisions`` is what :meth:`decide` (either engine), :meth:`decide_columns` or
        :meth:`decide_record` returned; rulesets without such rows are left out."""
        found = {}
        if isinstance(decisions, dict):          # one account's (decide_record's): rule ids read straight
            for name, column in self._unique_rule_columns:
                rule = decisions.get(column)
                if rule is not None and type(rule) is not str:
                    break                        # not a scalar id: counted below
                if rule == UNIQUE_CONFLICT:
                    found[name] = 1
            else:
                return found
            found = {}
        for name in self.unique_rulesets:
            column = decisions.get(f"{name}.rule") if isinstance(decisions, Mapping) else (
                decisions.column(f"{name}.rule") if f"{name}.rule" in decisions.schema.names else None)
            n = _conflict_rows(column) if column is not None else 0
            if n:
                found[name] = n
        return found

    # ------------------------------------------------------------------------------ explaining
    def explain(self, data, as_of=None) -> list[dict]:
        """Per row, per ruleset: the winning rule (``rule``; a list under collect), the values
        of the inputs that rule reads (``inputs``) and the ruleset's outputs, computed by the
        reference interpreter. Accepts a Table/RecordBatch or a dict of columns as for
        :meth:`decide_columns`; meant for a few rows."""
        return [explained for explained, _ in self._reference_rows(data, as_of)]

    def _reference(self, data, as_of, model_outputs: pa.Table | None = None) -> pa.Table:
        """The reference engines' decisions; ``model_outputs`` (a decision table) substitutes
        its model columns for onnxruntime's, to test the rules exactly downstream of models
        whose compiled and onnxruntime scores differ in the last bits."""
        rows = [values for _, values in self._reference_rows(data, as_of, model_outputs)]
        arrays = []
        for field in self._schema:
            column = [row[field.name] for row in rows]
            if field.name.endswith(".rule"):
                arrays.append(rule_array(column, self._bundle.node(field.name[:-5]).ruleset.ir))
            else:
                from .rules.columns import from_python
                arrays.append(from_python(column, self.output_types[field.name]))
        return pa.Table.from_arrays(arrays, schema=self._schema)

    def _reference_rows(self, data, as_of, model_outputs: pa.Table | None = None):
        """(explanation, {decision column: internal value}) per row, by the reference engines:
        node by node in evaluation order, rulesets row by row, models a column at a time."""
        from .codegen.inputs import as_of_days
        if isinstance(data, dict):
            data = _table_of_columns(data, self.inputs)
        if isinstance(data, pa.RecordBatch):
            data = pa.Table.from_batches([data])
        self._compiled.check_schema(data.schema)
        days = as_of_days(as_of)
        n = data.num_rows
        values = {name: _reference_column(name, data.column(name), t) for name, t in self.inputs.items()}
        decided = [dict() for _ in range(n)]
        explained = [dict() for _ in range(n)]
        for node in self._bundle.nodes:
            sources = self._bundle.sources[node.name]
            if node.kind == "model":
                if model_outputs is not None:
                    outs = {out: model_outputs.column(f"{node.name}.{out}").to_pylist() for out in node.outputs}
                else:
                    outs = _reference_model_outputs(self._bundle, node, sources, values, n)
                for out, column in outs.items():
                    values[f"{node.name}.{out}"] = column
                    for r in range(n):
                        decided[r][f"{node.name}.{out}"] = column[r]
                continue
            rs = node.ruleset.ir
            keys = {name: (src[1] if src[0] == "column" else f"{src[1]}.{src[2]}") for name, src in sources.items()}
            columns = {o.name: [None] * n for o in rs.outputs}
            for r in range(n):
                local = {name: values[key][r] for name, key in keys.items()}
                result = evaluate_rules(rs, local, days)
                for o in rs.outputs:
                    columns[o.name][r] = decided[r][f"{node.name}.{o.name}"] = result[o.name]
                decided[r][f"{node.name}.rule"] = result["rule"]
                explained[r][node.name] = _explanation(rs, local, result, node.ruleset.checked.rule_notes)
            for o in rs.outputs:
                values[f"{node.name}.{o.name}"] = columns[o.name]
        return list(zip(explained, decided))


def _explanation(rs, local: dict, result: dict, notes: dict | None = None) -> dict:
    winners = result["rule"] if isinstance(result["rule"], list) else (
        [result["rule"]] if result["rule"] not in (None, UNIQUE_CONFLICT) else [])
    read: dict = {}
    for rule in rs.rules:
        if rule.id in winners:
            for e in [rule.when] + [x for _, x in rule.then]:
                for name in names_read(e):
                    read[name] = _plain(local.get(name), rs.input_type(name))
    out = {"rule": result["rule"], "version": rs.version, "inputs": read,
           "outputs": {o.name: _plain(result[o.name], o.type) for o in rs.outputs}}
    noted = {w: notes[w] for w in winners if notes and w in notes}
    if noted:                                   # the table rows' `note:` (issue 15)
        out["note"] = noted[winners[0]] if not isinstance(result["rule"], list) else noted
    return out


def _conflict_rows(column) -> int:
    """Rows whose winning rule is ``"!unique"``: one rule id (a scalar, from ``decide_record``),
    an array of ids, or an Arrow column (dictionary-encoded as both engines give it, or text)."""
    if isinstance(column, str) or column is None:
        return int(column == UNIQUE_CONFLICT)
    if isinstance(column, np.ndarray):
        return int(np.count_nonzero(column == UNIQUE_CONFLICT))
    import pyarrow.compute as pc
    total = 0
    for chunk in (column.chunks if isinstance(column, pa.ChunkedArray) else [column]):
        if pa.types.is_dictionary(chunk.type):
            ids = chunk.dictionary.to_pylist()          # a ruleset's rule ids: a short list
            if UNIQUE_CONFLICT in ids:
                total += pc.sum(pc.equal(chunk.indices, ids.index(UNIQUE_CONFLICT))).as_py() or 0
        else:
            total += pc.sum(pc.equal(chunk, UNIQUE_CONFLICT)).as_py() or 0
    return total


def build_plan(bundle: Bundle, blocks: bool = True):
    """The bundle's plan. ``blocks=False`` leaves the models' block functions out (their
    ``block_fn`` is None, ``source_hash`` empty): a plan for the reference engine, which
    compiles nothing, and so imports neither Numba nor the models' kernels."""
    from .codegen import ModelNode, Plan, RulesetNode
    nodes = []
    for node in bundle.nodes:
        sources = bundle.sources[node.name]
        if node.kind == "ruleset":
            nodes.append(RulesetNode(node.ruleset.ir, sources))
        else:
            nodes.append(_model_plan_node(bundle, node, sources, ModelNode, blocks))
    return Plan.build(nodes)


def _contract_enum(column: str):
    from .schema import ENUMS, columns
    col = columns("input")[column]
    return ir.enum_type(ENUMS[col.enum]) if col.enum else None


def _book_column(name: str):
    from .schema import columns
    return columns("input")[name]


def bundle_output_type(bundle: Bundle, src) -> ir.Type:
    return bundle.node(src[1]).outputs[src[2]]


def _model_plan_node(bundle, node, sources, ModelNode, blocks: bool = True):
    from .bundle import BundleError
    model = node.model
    if getattr(model, "backend", None) != "numba":     # no block (asked without making one: Numba's import)
        raise BundleError(f"{node.file}: model `{node.name}` runs on onnxruntime "
                          f"({getattr(model, 'fallback_reason', 'unsupported operators')}); "
                          f"only Numba-compiled models can be fused into a bundle yet")
    features = []
    for feature in model.inputs:
        src = sources[feature.name]
        if feature.kind == "category":
            cats = tuple(feature.categories)
            if src[0] == "column" and _contract_enum(src[1]) is None:
                # a string column: read as the model's category index, -1 when unknown
                features.append((src, "category", cats, ir.Type("category", cats)))
            else:
                t = _contract_enum(src[1]) if src[0] == "column" else bundle_output_type(bundle, src)
                features.append((src, "category", cats, t))
        else:
            if src[0] == "column":
                from .bundle import _contract_type
                # read in the column's own type (an int column without a cast per batch); the
                # node converts each value to float32
                t = _contract_type(_book_column(src[1]))
                t = t if t in (ir.BOOL, ir.INT) else ir.FLOAT
            else:
                t = bundle_output_type(bundle, src)
            features.append((src, "numeric", (), t))
    if not blocks:
        return ModelNode(node.name, tuple(features), tuple((n, t) for n, t in node.outputs.items()),
                         None, (), "")
    import hashlib
    import inspect
    code = inspect.getsource(inspect.getmodule(model.block.fn))
    digest = hashlib.sha256(code.encode()).hexdigest()[:16]
    return ModelNode(node.name, tuple(features), tuple((n, t) for n, t in node.outputs.items()),
                     model.block.fn, model.block.params, digest)


def _reference_column(name: str, column, t: ir.Type) -> list:
    if t.kind == "string":                # a string column a model reads: keep the strings
        return column.cast(pa.string()).to_pylist()
    return to_python(name, column, t)


def _reference_model_outputs(bundle: Bundle, node, sources, values: dict, n: int) -> dict:
    """A model's outputs for every row, computed by onnxruntime (``run_matrix``)."""
    model = node.model
    X = np.full((n, len(model.inputs)), np.nan, dtype=np.float32)
    for j, feature in enumerate(model.inputs):
        src = sources[feature.name]
        key = src[1] if src[0] == "column" else f"{src[1]}.{src[2]}"
        column = values[key]
        if feature.kind == "category":
            index = {c: k for k, c in enumerate(feature.categories)}
            members = _enum_members(bundle, src)
            for r, v in enumerate(column):
                if v is None:
                    continue
                if members is not None:           # an enum: internal code → member name
                    v = members[v]
                X[r, j] = index.get(v, -1)
        else:
            X[:, j] = [np.nan if v is None else v for v in column]
    out = model.run_matrix(X) if n else np.zeros((0, len(node.outputs)))
    result = {}
    for k, (name, t) in enumerate(node.outputs.items()):
        col = out[:, k]
        result[name] = [None if np.isnan(v) else (int(v) if t.kind == "int" else float(v)) for v in col]
    return result


def _enum_members(bundle: Bundle, src):
    if src[0] == "output":
        t = bundle_output_type(bundle, src)
        return t.members if t.kind == "enum" else None
    t = _contract_enum(src[1])
    return None if t is None else t.members


def _plain(value, t: ir.Type):
    if value is None:
        return None
    if t.kind in ("enum", "date"):
        return ir.format_value(value, t)
    return value


def _null_column(t: ir.Type, n: int) -> np.ndarray:
    if t.kind == "float":
        return np.full(n, np.nan)
    if t.kind in ("enum", "string"):
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
        if t.kind in ("enum", "string"):
            arr = pa.array([None if (mask is not None and mask[j]) else v for j, v in enumerate(data.tolist())],
                           pa.string())
        elif t.kind == "date" and data.dtype.kind != "M":
            arr = pa.array(list(data), pa.date32(), mask=mask)
        else:
            arr = pa.array(data, mask=mask)
        arrays.append(arr)
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


class _Uncompiled:
    """The compiled side of a kernel loaded with ``compile=False``: it knows the plan's input
    columns (to check a book's schema for the reference engine) and refuses to decide."""

    def __init__(self, plan):
        self.input_slots = plan.input_columns()

    def required_columns(self):
        return [(s.name, s.type) for s in self.input_slots]

    def check_schema(self, schema: pa.Schema) -> None:
        from .codegen.inputs import check_input_schema
        check_input_schema(self.input_slots, schema)

    def __getattr__(self, name):
        from .errors import BundleError
        raise BundleError("this kernel was loaded without compiling (Kernel.load(compile=False)): "
                          "decide with engine='reference', or load it again to compile")
