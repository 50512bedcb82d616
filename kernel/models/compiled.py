"""``compile_model``: load and check an ONNX model, lower it to a block program, or fall back.

The contract with the bundle planner (docs/architecture.md, "Model compiler → planner"):
``.name``, ``.inputs``, ``.outputs``, ``.backend``, ``.block`` (Numba backend),
``.run(inputs)`` and ``.run_matrix(X)``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from .errors import ModelError, Unsupported

log = logging.getLogger("kernel.models")

#: the ai.onnx opset range this build reads (onnxruntime 1.20+ runs all of it)
MIN_OPSET, MAX_ML_OPSET = 7, 5
_QUALIFIED = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
#: below this many rows a batch runs on the calling thread (a thread-pool launch costs ~17 µs)
SERIAL_ROWS = 2048
BLOCK_ROWS = 128


class _ELEM:
    """The ONNX element types ``_feeds`` tells apart: the numbers of ``onnx.TensorProto``'s
    ``DataType`` enum, fixed by the ONNX format (tests/models checks them against onnx)."""

    FLOAT, INT32, INT64, STRING, BOOL, DOUBLE = 1, 6, 7, 8, 9, 11


@dataclass(frozen=True)
class ModelInput:
    """One feature: a book column or an upstream output (``vehicle_profile.age_years``)."""

    name: str
    kind: str                          # "numeric" | "category"
    categories: tuple = ()             # category list: the block receives the index (-1 unknown)
    position: int = 0


@dataclass(frozen=True)
class ModelOutput:
    """A value the bundle exposes as ``<model>.<name>`` (column ``column`` of ``.block``'s out)."""

    name: str
    type: str                          # ruleset-language type: "float" | "int"
    source: str                        # the ONNX graph output it comes from
    index: int                         # column within that graph output (0 for 1-D)
    column: int = 0
    qualified: str = ""


@dataclass(frozen=True)
class Block:
    """The Numba entry point: ``fn(X, params, out)``, importable as ``module.qualname``."""

    fn: Any
    params: tuple
    module: str
    qualname: str = "block"


@dataclass
class _GraphOutput:
    name: str
    dtype: Any
    dims: tuple
    cols: list = field(default_factory=list)    # scratch columns, in order


class CompiledModel:
    """A model ready to score, on the Numba block kernel or on onnxruntime."""

    def __init__(self, name, source, proto, data, inputs, outputs, graph_inputs, graph_outputs,
                 program=None, reason=None, metadata=None):
        self.name = name
        self.source = source
        self.inputs: tuple[ModelInput, ...] = tuple(inputs)
        self.outputs: tuple[ModelOutput, ...] = tuple(outputs)
        self.metadata: dict = metadata or {}
        self.fallback_reason: str | None = reason
        self.backend = "numba" if program is not None else "onnxruntime"
        self._parsed = proto                      # None when rebuilt from the cache: parsed on demand
        self._data = data
        # the fallback runs on onnxruntime from the start; a compiled model needs a session
        # only as its reference, made on first use (compile_model has had onnxruntime check it)
        self._ort_session = _session(data, source) if program is None else None
        self._graph_inputs = graph_inputs          # [(name, width, elem_type, dims, categories per col)]
        self._graph_outputs: list[_GraphOutput] = graph_outputs
        self._block: Block | None = None
        self._block_params = None
        if program is not None:
            out_cols = np.array([_column_of(program, o) for o in self.outputs], np.int64)
            ipool = _aligned_pool(program.ipool)
            self._block_params = (program.prog, ipool, program.fpool, out_cols)
            all_cols = [c for g in graph_outputs for c in g.cols]
            self._run_params = (program.prog, ipool, program.fpool, np.array(all_cols, np.int64))

    @property
    def block(self) -> Block | None:
        """The Numba entry point (None on the onnxruntime backend): the interpreter of this
        model's ops (``kernels.interpreter``). Made on first use: it imports Numba, which
        checking a bundle (``postloan test``, ``postloan check``) never needs."""
        if self._block is None and self._block_params is not None:
            from . import kernels, straight
            # elementwise preprocessing and a linear model: one straight-line function;
            # anything else: the interpreter of the program's ops
            module = straight.block_module(self._block_params) or kernels.interpreter(self._block_params[0])
            self._block = Block(module.block, self._block_params, module.__name__)
        return self._block

    @property
    def _proto(self):
        """The ONNX graph (parsed again from the file's bytes for a model rebuilt from the
        cache, which never imported onnx)."""
        if self._parsed is None:
            self._parsed = _parse(self._data, self.source)
        return self._parsed

    @property
    def _session(self):
        if self._ort_session is None:
            self._ort_session = _session(self._data, self.source)
        return self._ort_session

    def __repr__(self) -> str:
        return (f"CompiledModel({self.name!r}, backend={self.backend!r}, inputs={len(self.inputs)}, "
                f"outputs={[o.qualified for o in self.outputs]})")

    @property
    def n_features(self) -> int:
        return len(self.inputs)

    # -- inputs ------------------------------------------------------------------------------
    def matrix(self, inputs) -> np.ndarray:
        """The float32 feature matrix ``[rows, n_features]`` from a 2-D array, or a dict of the
        graph's named inputs (strings are mapped to their category index, -1 when unknown)."""
        if isinstance(inputs, Mapping):
            parts = []
            for name, width, elem, _dims, cats in self._graph_inputs:
                if name not in inputs:
                    raise ModelError(self.source, f"input {name!r} is missing (inputs: "
                                     f"{', '.join(g[0] for g in self._graph_inputs)})")
                value = np.asarray(inputs[name])
                value = value.reshape(len(value), -1) if value.ndim != 2 else value
                if value.shape[1] != width:
                    raise ModelError(self.source, f"input {name!r} has {value.shape[1]} columns, expected {width}")
                if value.dtype.kind in "OUS":
                    codes = np.full(value.shape, -1, np.float32)
                    for j in range(width):
                        lookup = {c: i for i, c in enumerate(cats[j] or ())}
                        codes[:, j] = [lookup.get(v, -1) if isinstance(v, str) else -1 for v in value[:, j]]
                    parts.append(codes)
                else:
                    parts.append(value.astype(np.float32))
            X = np.concatenate(parts, axis=1) if parts else np.zeros((0, 0), np.float32)
        else:
            X = np.asarray(inputs, dtype=np.float32)
            if X.ndim == 1 and X.shape[0] == self.n_features:
                X = X.reshape(1, -1)
            if X.ndim != 2 or X.shape[1] != self.n_features:
                raise ModelError(self.source, f"expected a 2-D array of {self.n_features} feature columns, "
                                 f"got shape {X.shape}")
        return np.ascontiguousarray(X, dtype=np.float32)

    def _feeds(self, X: np.ndarray) -> dict:
        # TensorProto's element types as numbers (_ELEM): onnx's import (≈ 0.7 s) stays off
        # the reference engine's path (`postloan test` scores the models on onnxruntime)
        TensorProto = _ELEM
        feeds, col = {}, 0
        for name, width, elem, dims, cats in self._graph_inputs:
            part = X[:, col:col + width]
            col += width
            if elem == TensorProto.STRING:
                value = np.empty(part.shape, object)
                for j in range(width):
                    names = np.array(list(cats[j] or ()) + [""], object)
                    idx = part[:, j]
                    ok = np.isfinite(idx) & (idx >= 0) & (idx < len(names) - 1)
                    value[:, j] = names[np.where(ok, idx, len(names) - 1).astype(np.int64)]
            elif elem in (TensorProto.INT64, TensorProto.INT32):
                if not np.all(np.isfinite(part)):
                    raise ModelError(self.source, f"input {name!r} is an integer tensor: missing values "
                                     "cannot be passed to it")
                value = part.astype(np.int64 if elem == TensorProto.INT64 else np.int32)
            elif elem == TensorProto.BOOL:
                value = part != 0
            elif elem == TensorProto.DOUBLE:
                value = part.astype(np.float64)
            else:
                value = part
            feeds[name] = value.reshape((len(X),) + tuple(dims))
        return feeds

    # -- scoring ------------------------------------------------------------------------------
    def run(self, inputs) -> dict[str, np.ndarray]:
        """Score a batch: a 2-D float32 array of the features in order, or a dict of the graph's
        named inputs. Returns every graph output with onnxruntime's names, shapes and dtypes."""
        X = self.matrix(inputs)
        if self.backend == "onnxruntime":
            values = self._session.run(None, self._feeds(X))
            return {g.name: v for g, v in zip(self._graph_outputs, values)}
        params = self._run_params
        out = np.empty((len(X), len(params[3])), np.float64)
        _run(X, params, out)
        result, col = {}, 0
        for g in self._graph_outputs:
            width = len(g.cols)
            block = out[:, col:col + width]
            col += width
            result[g.name] = block.astype(g.dtype).reshape((len(X),) + g.dims)
        return result

    def run_matrix(self, X) -> np.ndarray:
        """The bundle outputs (``.outputs`` order) as float64 ``[rows, n_outputs]``, computed by
        onnxruntime: the reference for the compiled block and the onnxruntime backend's path."""
        X = self.matrix(X)
        values = dict(zip((g.name for g in self._graph_outputs), self._session.run(None, self._feeds(X))))
        out = np.empty((len(X), len(self.outputs)), np.float64)
        for j, o in enumerate(self.outputs):
            v = values[o.source].reshape(len(X), -1)
            out[:, j] = v[:, o.index]
        return out

    def score(self, X) -> np.ndarray:
        """The bundle outputs of a feature matrix on this model's backend: ``.block`` for Numba
        (what the fused kernel computes), ``run_matrix`` for onnxruntime."""
        X = self.matrix(X)
        if self.block is None:
            return self.run_matrix(X)
        out = np.empty((len(X), len(self.outputs)), np.float64)
        _run(X, self.block.params, out)
        return out


def _run(X, params, out) -> None:
    """Score every row of ``X`` on the interpreter of every op (compiled once for all models)."""
    from . import kernels
    every = kernels.interpreter()
    if len(X) < SERIAL_ROWS:
        every.run_serial(X, params, out, BLOCK_ROWS)
    else:
        every.run_parallel(X, params, out, BLOCK_ROWS)


def _aligned_pool(pool: np.ndarray) -> np.ndarray:
    """``pool``, or a copy of it, starting on a ``POOL_ALIGN``-byte boundary (NumPy and pickle
    align to 16 bytes only)."""
    from .program import POOL_ALIGN
    if pool.ctypes.data % POOL_ALIGN == 0:
        return pool
    room = np.empty(pool.nbytes + POOL_ALIGN, np.uint8)
    skip = -room.ctypes.data % POOL_ALIGN
    aligned = room[skip:skip + pool.nbytes].view(pool.dtype)
    aligned[:] = pool
    return aligned


def _column_of(program, output: ModelOutput) -> int:
    slot = program.values[output.source]
    return slot.col + output.index


# ---- loading and checking ---------------------------------------------------------------------
def _read(path_or_bytes, name, max_bytes: int | None):
    """The model file's bytes, where they came from and the model's default name."""
    from ..files import ENV_MAX_MODEL_BYTES, FileError, FileLimits, read_capped

    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data, source = bytes(path_or_bytes), f"<{name or 'model'} bytes>"
        default_name = name or "model"
    else:
        path = os.fspath(path_or_bytes)
        source = path
        default_name = name or os.path.splitext(os.path.basename(path))[0]
        try:
            data = read_capped(path, max_bytes or FileLimits.from_env().model_bytes, "model", ENV_MAX_MODEL_BYTES)
        except FileNotFoundError:
            raise ModelError(source, "no such file") from None
        except FileError as e:
            raise ModelError(source, e.problem) from None
        except OSError as e:
            raise ModelError(source, f"cannot read: {e.strerror or e}") from None
    if not data:
        raise ModelError(source, "empty file, expected an ONNX model")
    return data, source, default_name


def _parse(data: bytes, source):
    from google.protobuf.message import DecodeError

    from .onnx_proto import parse_model
    try:
        proto = parse_model(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise ModelError(source, f"not an ONNX model, or truncated ({type(e).__name__}: {e})") from None
    if not proto.HasField("graph") or not proto.graph.node:
        raise ModelError(source, "not an ONNX model, or truncated (no graph)")
    return proto


def _check_opsets(proto, source) -> None:
    from .onnx_proto import newest_opset
    for op in proto.opset_import:
        domain = op.domain or "ai.onnx"
        if domain == "ai.onnx":
            newest = newest_opset(op.version)        # None: every supported onnx reads it
            if newest is not None and op.version > newest:
                import onnx                          # imported by newest_opset already
                raise ModelError(source, f"opset {op.version} of ai.onnx is newer than this build reads "
                                 f"(onnx {onnx.__version__}: up to {newest})")
            if op.version < MIN_OPSET:
                raise ModelError(source, f"opset {op.version} of ai.onnx is older than supported ({MIN_OPSET}+)")
        elif domain == "ai.onnx.ml":
            if op.version > MAX_ML_OPSET:
                raise ModelError(source, f"opset {op.version} of ai.onnx.ml is newer than supported (up to {MAX_ML_OPSET})")
        else:
            raise ModelError(source, f"custom operator domain {domain!r} is not supported")


def _check_with_onnxruntime(data: bytes, source) -> None:
    """onnxruntime loads every model once, so a graph it rejects is an error even when the
    block compiles it. A model it accepted is remembered by content hash (and onnxruntime's
    version) in the cache, which keeps the session (≈ 30 ms a model) and onnxruntime's
    import off a warm start."""
    from importlib.metadata import version

    from ..codegen.cache import cache_dir
    folder = cache_dir() / "models"
    marker = folder / f"ort-{version('onnxruntime')}-{hashlib.sha256(data).hexdigest()[:32]}.ok"
    if marker.exists():
        return
    _session(data, source)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:                 # a read-only cache: check again next time
        pass


def _session(data, source):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 4          # fatal only: a failure's message is in our one-line error
    try:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(source, f"onnxruntime cannot load it: {first}") from None


def _metadata(proto, source) -> dict:
    meta = {}
    for prop in proto.metadata_props:
        value = prop.value
        if prop.key in ("features", "outputs", "metrics"):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as e:
                raise ModelError(source, f"metadata {prop.key!r} is not valid JSON ({e})") from None
        meta[prop.key] = value
    return meta


def _graph_inputs(proto, source):
    from .onnx_proto import TensorProto
    from .lower import NUMPY_OF

    inits = {i.name for i in proto.graph.initializer}
    result = []
    for value in proto.graph.input:
        if value.name in inits:
            continue
        tt = value.type.tensor_type
        if not value.type.HasField("tensor_type") or tt.elem_type not in NUMPY_OF:
            raise ModelError(source, f"input {value.name!r} is not a tensor of numbers, booleans or strings")
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        if len(dims) not in (1, 2) or (len(dims) == 2 and not dims[1]):
            raise ModelError(source, f"input {value.name!r} must have shape [N, width] with a fixed width "
                             f"(got {['?' if d is None else d for d in dims]})")
        width = dims[1] if len(dims) == 2 else 1
        result.append([value.name, width, tt.elem_type, tuple(dims[1:]), [None] * width])
    if not result:
        raise ModelError(source, "the graph has no inputs")
    _ = TensorProto
    return result


def _features(meta, graph_inputs, source, name) -> list[ModelInput]:
    from .onnx_proto import TensorProto
    from .. import schema

    n = sum(g[1] for g in graph_inputs)
    features = meta.get("features")
    if features is None:
        inputs, pos = [], 0
        for gname, width, elem, _dims, cats in graph_inputs:
            for j in range(width):
                label = gname if width == 1 else f"{gname}[{j}]"
                kind = "category" if elem == TensorProto.STRING else "numeric"
                inputs.append(ModelInput(label, kind, (), pos))
                pos += 1
        return inputs
    if not isinstance(features, list) or len(features) != n:
        count = len(features) if isinstance(features, list) else "no list of"
        raise ModelError(source, f"metadata 'features' lists {count} features but the graph's inputs "
                         f"have {n} columns")
    book = schema.columns("input")
    inputs = []
    for pos, f in enumerate(features):
        f = {"name": f} if isinstance(f, str) else f
        fname = f.get("name") if isinstance(f, dict) else None
        if not isinstance(fname, str):
            raise ModelError(source, f"feature #{pos + 1} has no name")
        kind = f.get("kind", "numeric")
        if kind not in ("numeric", "category"):
            raise ModelError(source, f"feature {fname!r}: kind must be 'numeric' or 'category', got {kind!r}")
        if fname in book:
            col = book[fname]
            ltype = schema.logical_type(col)
            if kind == "numeric" and ltype not in ("int", "float", "bool"):
                raise ModelError(source, f"feature {fname!r} is numeric but book column {fname!r} is "
                                 f"{ltype if isinstance(ltype, str) else 'an enum'}")
            if kind == "category" and not (isinstance(ltype, dict) or ltype == "string"):
                raise ModelError(source, f"feature {fname!r} is a category but book column {fname!r} is {ltype}")
        elif not _QUALIFIED.match(fname):
            close = _closest(fname, book)
            raise ModelError(source, f"feature {fname!r} (#{pos + 1}) is not a column of the data contract "
                             f"(kernel/schema.py) nor an upstream output '<node>.<output>'"
                             + (f"; did you mean {close!r}?" if close else ""))
        cats = tuple(str(c) for c in f.get("categories", ()))
        if kind == "category" and not cats:
            raise ModelError(source, f"feature {fname!r} is a category but lists no categories")
        inputs.append(ModelInput(fname, kind, cats, pos))
    # category lists also tell string inputs which index means which string
    pos = 0
    for g in graph_inputs:
        for j in range(g[1]):
            if inputs[pos].kind == "category":
                g[4][j] = inputs[pos].categories
            elif g[2] == TensorProto.STRING:
                raise ModelError(source, f"feature {inputs[pos].name!r} feeds a string input: its kind must be "
                                 "'category' with a category list")
            pos += 1
    _ = name
    return inputs


def _closest(word, names) -> str | None:
    import difflib
    found = difflib.get_close_matches(word, list(names), n=1)
    return found[0] if found else None


def _outputs(meta, proto, source, model_name) -> list[ModelOutput]:
    from .onnx_proto import TensorProto

    graph_out = {o.name: o for o in proto.graph.output}
    declared = meta.get("outputs")
    outputs: list[ModelOutput] = []
    if declared is not None:
        if not isinstance(declared, list):
            raise ModelError(source, "metadata 'outputs' must be a JSON list")
        for o in declared:
            oname, src = o.get("name"), o.get("source")
            if not isinstance(oname, str) or not _NAME.match(oname):
                raise ModelError(source, f"output name {oname!r} must match [a-z][a-z0-9_]*")
            if src not in graph_out:
                raise ModelError(source, f"output {oname!r}: the graph has no output {src!r} "
                                 f"(it has {', '.join(graph_out)})")
            outputs.append(ModelOutput(oname, o.get("type", "float"), src, int(o.get("column", 0))))
    else:
        for go in proto.graph.output:
            tt = go.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
            width = dims[1] if len(dims) >= 2 and dims[1] else 1
            is_int = tt.elem_type in (TensorProto.INT64, TensorProto.INT32)
            base = re.sub(r"[^a-z0-9_]", "_", go.name.lower()) or "output"
            if go.name == "probabilities" and width == 2:
                outputs.append(ModelOutput("probability", "float", go.name, 1))
            elif go.name == "probabilities":
                outputs.extend(ModelOutput(f"probability_{j}", "float", go.name, j) for j in range(width))
            elif width == 1:
                outputs.append(ModelOutput(base, "int" if is_int else "float", go.name, 0))
            else:
                outputs.extend(ModelOutput(f"{base}_{j}", "int" if is_int else "float", go.name, j)
                               for j in range(width))
    return [ModelOutput(o.name, o.type, o.source, o.index, column=j, qualified=f"{model_name}.{o.name}")
            for j, o in enumerate(outputs)]


def _graph_outputs(proto) -> list[_GraphOutput]:
    from .lower import NUMPY_OF
    result = []
    for go in proto.graph.output:
        tt = go.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else 0 for d in tt.shape.dim)[1:]
        result.append(_GraphOutput(go.name, NUMPY_OF.get(tt.elem_type, np.float32), dims))
    return result


def compile_model(path_or_bytes, name: str | None = None, *, max_bytes: int | None = None) -> CompiledModel:
    """Load, check and compile an ONNX model (a path or the file's bytes).

    Raises :class:`ModelError` naming the file for a file that is not a usable model, or one
    larger than ``max_bytes`` (checked before reading; default ``$POSTLOAN_MAX_MODEL_BYTES``,
    else :data:`kernel.files.DEFAULT_MAX_MODEL_BYTES`). A graph
    with an operator the Numba backend does not compile still loads: ``backend`` is then
    ``"onnxruntime"`` and the reason is logged (logger ``kernel.models``).
    """
    data, source, model_name = _read(path_or_bytes, name, max_bytes)
    if not _NAME.match(model_name):
        raise ModelError(source, f"model name {model_name!r} must match [a-z][a-z0-9_]* "
                         "(rulesets read its outputs as <model>.<output>)")
    key = _cache_key(data, model_name)
    cached = _load_compiled(key, source, data)
    if cached is not None:
        return cached
    proto = _parse(data, source)
    _check_opsets(proto, source)
    _check_with_onnxruntime(data, source)
    meta = _metadata(proto, source)
    graph_inputs = _graph_inputs(proto, source)
    inputs = _features(meta, graph_inputs, source, model_name)
    outputs = _outputs(meta, proto, source, model_name)
    graph_outputs = _graph_outputs(proto)
    program, reason = None, None
    try:
        program = _lower(proto, graph_inputs, graph_outputs, outputs)
    except Unsupported as e:
        reason = str(e)
        log.warning("model %s (%s) runs on onnxruntime: %s", model_name, source, reason)
    model = CompiledModel(model_name, source, proto, data, inputs, outputs, graph_inputs, graph_outputs,
                          program, reason, meta)
    if program is not None:
        _store_compiled(key, (model_name, inputs, outputs, graph_inputs, graph_outputs, program, meta))
    return model


# ---- the compiled-model cache ---------------------------------------------------------------------
# A warm start (a rule author's `postloan test`, `postloan decide` after an edit) used to parse
# every model with the onnx package, whose import alone takes about a second (ml_dtypes). A
# model that compiled is remembered by content: the same bytes, name, model compiler, data
# contract and onnxruntime version give the same CompiledModel, rebuilt from a pickle of plain
# Python values and NumPy arrays without importing onnx. A file that fails never gets an entry,
# so errors are always reported by the full path.
_COMPILER_FILES = ("compiled.py", "lower.py", "trees.py", "features.py", "errors.py")


def _cache_key(data: bytes, name: str) -> str:
    global _COMPILER_HASH
    if _COMPILER_HASH is None:
        from importlib.metadata import version
        digest = hashlib.sha256()
        here = os.path.dirname(__file__)
        for f in _COMPILER_FILES + ("../schema.py",):
            with open(os.path.join(here, f), "rb") as fh:
                digest.update(f.encode() + fh.read())
        digest.update(version("onnxruntime").encode() + np.__version__.encode())
        _COMPILER_HASH = digest.hexdigest()
    return hashlib.sha256(_COMPILER_HASH.encode() + b"\0" + name.encode() + b"\0" + data).hexdigest()[:40]


_COMPILER_HASH = None


def _cache_path(key: str):
    from ..codegen.cache import cache_dir
    return cache_dir() / "models" / f"compiled-{key}.pickle"


def _load_compiled(key: str, source, data: bytes) -> CompiledModel | None:
    import pickle
    try:
        with open(_cache_path(key), "rb") as f:
            name, inputs, outputs, graph_inputs, graph_outputs, program, meta = pickle.load(f)
    except Exception:            # missing, unreadable or from another version: compile again
        return None
    return CompiledModel(name, source, None, data, inputs, outputs, graph_inputs, graph_outputs, program, None, meta)


def _store_compiled(key: str, value) -> None:
    import pickle
    import tempfile
    path = _cache_path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:              # a read-only cache only costs speed
        pass


def _lower(proto, graph_inputs, graph_outputs, outputs):
    from .onnx_proto import TensorProto
    from .lower import Slot, TYPE_NAMES, lower

    slots, col = [], 0
    for name, width, elem, dims, cats in graph_inputs:
        kind = TYPE_NAMES.get(elem)
        if kind == "double":
            raise Unsupported(f"input {name!r} is double precision (the block computes in float32)")
        if kind == "category" and any(c is None for c in cats):
            # no metadata: the block cannot know which index means which string
            raise Unsupported(f"string input {name!r} without a category list in the metadata")
        slots.append((name, Slot(col, width, kind, dims if dims else (), tuple(cats))))
        col += width
    _ = TensorProto
    program = lower(proto.graph, slots, col)
    for g in graph_outputs:
        slot = program.values[g.name]
        if slot.kind == "category":
            raise Unsupported(f"output {g.name!r} is a string tensor")
        g.cols = list(range(slot.col, slot.col + slot.width))
        g.dims = slot.dims
    for o in outputs:
        slot = program.values[o.source]
        if o.index >= slot.width:
            raise Unsupported(f"output {o.name!r} reads column {o.index} of {o.source!r} "
                              f"which has {slot.width}")
    return program
