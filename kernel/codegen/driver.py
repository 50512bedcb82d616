"""Running a compiled kernel: Arrow batches (or NumPy columns) in, decision columns out.

Batch path: each input column is handed to the kernel as views of its Arrow buffers (values,
validity bitmap, bit offset) — no copy unless its Arrow type needs a cast (say int32 → int64);
dictionary-encoded enums pass their index buffer plus a 256-entry table mapping dictionary
positions to the declared member order, computed once per batch; plain string enums are
encoded once per batch. Outputs come back as Arrow arrays over the kernel's own output
buffers (no copy). Large batches run the ``prange`` kernel; small ones (and concurrent
callers, see :data:`PARALLEL_LOCK`) run the serial kernel in the calling thread, which holds
no GIL.

Columns path (:meth:`CompiledKernel.run_columns`): one or a few accounts as NumPy arrays,
packed into one 2-D array per type, so the compiled call takes the same dozen arguments
however many columns the bundle reads.
"""
from __future__ import annotations

import datetime as dt
import threading

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..rules import ir
from ..rules.columns import COLLECT_RULE_TYPE, RULE_TYPE, InputError, accepts, expected_text
from ..rules.reference import UNIQUE_CONFLICT
from .plan import OUTPUT_GROUP, Plan

__all__ = ["CompiledKernel", "PARALLEL_MIN_ROWS", "PARALLEL_LOCK", "as_of_days"]

#: batches at least this long use the parallel kernel
PARALLEL_MIN_ROWS = 4096
#: Numba's default threading layer (workqueue) must not be entered by two threads at once;
#: a caller that finds it busy runs the serial kernel instead of waiting
PARALLEL_LOCK = threading.Lock()

_NP = {"OI64": np.int64, "OF64": np.float64, "OI32": np.int32, "OI8": np.int8, "OU8": np.uint8,
       "OV": np.uint8, "OM": np.uint64}
_EPOCH = dt.date(1970, 1, 1)


def as_of_days(as_of) -> int:
    if as_of is None:
        as_of = dt.date.today()
    if isinstance(as_of, dt.datetime):
        as_of = as_of.date()
    if isinstance(as_of, str):
        as_of = dt.date.fromisoformat(as_of)
    if isinstance(as_of, np.datetime64):
        return int(as_of.astype("datetime64[D]").astype(np.int64))
    if not isinstance(as_of, dt.date):
        raise InputError(f"as_of must be a date, got {as_of!r}", "as_of")
    return (as_of - _EPOCH).days


def _readonly(a: np.ndarray) -> np.ndarray:
    if not a.flags.aligned or not a.flags.c_contiguous:
        a = np.ascontiguousarray(a).copy()
    a.flags.writeable = False
    return a


def _view(buf: pa.Buffer, dtype, offset: int, length: int) -> np.ndarray:
    arr = np.frombuffer(buf, dtype=dtype, count=offset + length)[offset:]
    return arr if arr.flags.aligned else _readonly(arr.copy())


class CompiledKernel:
    """A loaded fused kernel plus everything needed to call it."""

    def __init__(self, plan: Plan, module, tables: dict, model_params: list):
        self.plan = plan
        self.module = module
        self.groups = tuple(module.GROUPS)
        self.tables = tables
        self.model_params = tuple(model_params)
        self._ones = _readonly(np.full(1024, 255, dtype=np.uint8))
        self._identity = {}
        self.input_slots = plan.input_columns()
        n_enum = plan.counts["RM"]
        self._small_rm = np.full((max(n_enum, 1), 256), -1, dtype=np.int8)
        for slot in self.input_slots:
            if slot.type.kind == "enum":
                self._small_rm[slot.remap, :len(slot.type.members)] = np.arange(len(slot.type.members))
        self._member_index = {slot.name: {m: i for i, m in enumerate(slot.type.members)}
                              for slot in self.input_slots if slot.type.kind == "enum"}

    # ------------------------------------------------------------------ column requirements
    def required_columns(self) -> list[tuple[str, ir.Type]]:
        return [(s.name, s.type) for s in self.input_slots]

    def check_schema(self, schema: pa.Schema) -> None:
        names = set(schema.names)
        for slot in self.input_slots:
            if slot.name not in names:
                raise InputError(f"missing column `{slot.name}` (the rules read it as {slot.type})", slot.name)
            at = schema.field(slot.name).type
            if not accepts(slot.type, at):
                raise InputError(f"column `{slot.name}` has type {at}, expected {expected_text(slot.type)}",
                                 slot.name)

    # ------------------------------------------------------------------ the batch path
    def run_batch(self, batch: pa.RecordBatch, as_of) -> list[tuple[str, pa.Array]]:
        """Decide one record batch; returns ``(column name, array)`` in plan order."""
        if isinstance(batch, pa.Table):
            batch = batch.combine_chunks().to_batches()[0] if batch.num_rows else \
                pa.RecordBatch.from_pylist([], schema=batch.schema)
        self.check_schema(batch.schema)
        n = batch.num_rows
        days = as_of_days(as_of)
        inputs = self._batch_inputs(batch, n)
        outputs = self._allocate(n)
        if n:
            self._call(n, days, inputs, outputs, layout="batch")
        return self._arrow_outputs(outputs, n)

    def _bits(self, n: int, offset: int = 0) -> np.ndarray:
        need = (offset + n + 7) // 8 + 1
        if self._ones.size < need:
            self._ones = _readonly(np.full(max(need, 2 * self._ones.size), 255, dtype=np.uint8))
        return self._ones

    def _batch_inputs(self, batch: pa.RecordBatch, n: int) -> dict:
        counts = self.plan.counts
        groups = {g: [None] * counts[g] for g in ("I64", "F64", "I32", "I8", "RM", "BM")}
        offsets = np.zeros(max(counts["BM"], 1), dtype=np.int64)
        for slot in self.input_slots:
            arr = batch.column(slot.name)
            kind = slot.type.kind
            if kind == "int" and arr.type != pa.int64():
                arr = arr.cast(pa.int64())
            elif kind == "float" and arr.type != pa.float64():
                arr = arr.cast(pa.float64(), safe=False)
            elif kind == "date" and arr.type != pa.date32():
                arr = arr.cast(pa.date32(), safe=False)
            elif kind == "enum":
                arr = self._enum_input(slot, arr, groups)
            bufs = arr.buffers()
            validity = bufs[0]
            if validity is None or arr.null_count == 0:
                groups["BM"][slot.valid] = self._bits(n)
                offsets[slot.valid] = 0
            else:
                groups["BM"][slot.valid] = _view(validity, np.uint8, 0, (arr.offset + n + 7) // 8)
                offsets[slot.valid] = arr.offset
            if kind == "bool":
                groups["BM"][slot.value] = _view(bufs[1], np.uint8, 0, (arr.offset + n + 7) // 8)
                offsets[slot.value] = arr.offset
            elif kind != "enum":
                dtype = {"int": np.int64, "float": np.float64, "date": np.int32}[kind]
                group = {"int": "I64", "float": "F64", "date": "I32"}[kind]
                groups[group][slot.value] = _view(bufs[1], dtype, arr.offset, n)
        out = {g: tuple(v) for g, v in groups.items()}
        out["OFF"] = offsets
        return out

    def _enum_input(self, slot, arr: pa.Array, groups: dict) -> pa.Array:
        """Put an enum column's codes in I8 and its remap table in RM; returns the array whose
        validity bitmap applies."""
        members = slot.type.members
        remap = np.full(256, -1, dtype=np.int8)
        if pa.types.is_dictionary(arr.type):
            dictionary = arr.dictionary.cast(pa.string()) if not pa.types.is_string(arr.dictionary.type) \
                else arr.dictionary
            index = self._member_index[slot.name]
            entries = dictionary.to_pylist()
            codes = [index.get(v, -1) if v is not None else -1 for v in entries]
            unknown = [j for j, (v, c) in enumerate(zip(entries, codes)) if v is not None and c < 0]
            if unknown:
                self._reject_unknown(slot, arr)
            if arr.type.index_type == pa.int8() and len(codes) <= 128:
                remap[:len(codes)] = codes
                groups["RM"][slot.remap] = remap
                groups["I8"][slot.value] = _view(arr.indices.buffers()[1], np.uint8, arr.offset, len(arr))
                return arr
            table = np.asarray(codes, dtype=np.int64)
            idx = arr.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
            coded = np.where(idx < len(table), table[np.clip(idx, 0, max(len(table) - 1, 0))], -1) \
                if len(table) else np.full(len(arr), -1)
            return self._coded(slot, arr, coded, groups)
        coded_arr = pc.index_in(arr, value_set=pa.array(members, pa.string()))
        if coded_arr.null_count != arr.null_count:
            self._reject_unknown(slot, arr)
        coded = coded_arr.fill_null(-1).to_numpy(zero_copy_only=False)
        return self._coded(slot, arr, coded, groups)

    def _coded(self, slot, arr, coded: np.ndarray, groups: dict) -> pa.Array:
        n_members = len(slot.type.members)
        if slot.remap not in self._identity:
            remap = np.full(256, -1, dtype=np.int8)
            remap[:n_members] = np.arange(n_members)
            self._identity[slot.remap] = remap
        groups["RM"][slot.remap] = self._identity[slot.remap]
        groups["I8"][slot.value] = _readonly(np.asarray(coded, dtype=np.int64).astype(np.uint8))
        return arr

    @staticmethod
    def _reject_unknown(slot, arr) -> None:
        from ..rules.columns import enum_codes_of
        enum_codes_of(slot.name, arr, slot.type)
        raise AssertionError("unreachable: enum_codes_of raises")  # pragma: no cover

    def _allocate(self, n: int) -> dict:
        counts = self.plan.counts
        out = {}
        for g in ("OI64", "OF64", "OI32", "OI8", "OU8", "OV", "OM"):
            if counts[g]:
                out[g] = np.empty((counts[g], n), dtype=_NP[g])
        return out

    def _call(self, n: int, days: int, inputs: dict, outputs: dict, layout: str) -> None:
        args = []
        for g in self.groups:
            if g in outputs:
                args.append(outputs[g])
            elif g in self.tables:
                args.append(self.tables[g])
            else:
                args.append(inputs[g])
        args.extend(self.model_params)
        if layout == "batch" and n >= PARALLEL_MIN_ROWS and PARALLEL_LOCK.acquire(blocking=False):
            try:
                blocks = (n + self.module.BLOCK_ROWS - 1) // self.module.BLOCK_ROWS
                self.module.run_parallel(n, blocks, days, *args)
            finally:
                PARALLEL_LOCK.release()
        else:
            self.module.block(0, n, days, *args)

    # ------------------------------------------------------------------ outputs
    def _arrow_outputs(self, outputs: dict, n: int) -> list[tuple[str, pa.Array]]:
        result = []
        valid_rows = outputs.get("OV")
        for node in self.plan.nodes:
            for (node_name, out_name), slot in self.plan.outputs.items():
                if node_name != node.name:
                    continue
                values = outputs[OUTPUT_GROUP[slot.type.kind]][slot.value]
                valid = valid_rows[slot.valid]
                result.append((slot.column, _to_arrow(values, valid, slot.type, n)))
            rslot = self.plan.rules.get(node.name)
            if rslot is not None:
                result.append((f"{node.name}.rule", self._rule_column(rslot, outputs, n, node)))
        return result

    def _rule_column(self, rslot, outputs, n, node) -> pa.Array:
        if rslot.collect:
            masks = outputs["OM"][rslot.value:rslot.value + rslot.words]
            return _collect_ids(masks, rslot.ids, n)
        codes = outputs["OI32"][rslot.value]
        ids = list(rslot.ids) + ([UNIQUE_CONFLICT] if node.ir.hit == "unique" else [])
        valid = codes >= 0
        if not valid.all():
            codes = np.where(valid, codes, 0).astype(np.int32)
            mask = pa.py_buffer(np.packbits(valid, bitorder="little"))
        else:
            mask = None
        indices = pa.Array.from_buffers(pa.int32(), n, [mask, pa.py_buffer(codes)])
        return pa.DictionaryArray.from_arrays(indices, pa.array(ids, pa.string()))

    # ------------------------------------------------------------------ the columns path
    def run_columns(self, columns: dict, as_of, n: int | None = None) -> dict:
        """Decide a few accounts given as NumPy arrays (see ``Kernel.decide_columns``)."""
        if n is None:
            n = _length(columns, self.input_slots)
        days = as_of_days(as_of)
        counts = self.plan.counts
        nbytes = (n + 7) // 8 + 1
        inputs = {
            "I64": np.zeros((max(counts["I64"], 1), n), np.int64),
            "F64": np.zeros((max(counts["F64"], 1), n), np.float64),
            "I32": np.zeros((max(counts["I32"], 1), n), np.int32),
            "I8": np.zeros((max(counts["I8"], 1), n), np.uint8),
            "RM": self._small_rm,
            "BM": np.full((max(counts["BM"], 1), nbytes), 255, np.uint8),
            "OFF": np.zeros(max(counts["BM"], 1), np.int64),
        }
        for slot in self.input_slots:
            try:
                values = columns[slot.name]
            except KeyError:
                raise InputError(f"missing column `{slot.name}` (the rules read it as {slot.type})",
                                 slot.name) from None
            self._small_input(slot, values, n, inputs)
        outputs = self._allocate(n)
        if n:
            self._call(n, days, inputs, outputs, layout="small")
        return self._numpy_outputs(outputs, n)

    def _small_input(self, slot, values, n: int, inputs: dict) -> None:
        kind = slot.type.kind
        mask = None
        if isinstance(values, np.ma.MaskedArray):
            mask = np.ma.getmaskarray(values)
            values = values.filled(0 if kind != "enum" else "")
        values = np.asarray(values)
        if values.shape != (n,):
            raise InputError(f"column `{slot.name}` has shape {values.shape}, expected ({n},)", slot.name)
        if values.dtype == object:
            nulls = np.array([v is None for v in values], dtype=bool)
            if nulls.any():
                mask = nulls if mask is None else (mask | nulls)
                fill = {"int": 0, "float": 0.0, "bool": False, "date": 0, "enum": None}[kind]
                values = np.array([fill if v is None else v for v in values], dtype=object)
        try:
            if kind == "int":
                if values.dtype.kind not in "iub" and values.dtype != object:
                    raise TypeError
                inputs["I64"][slot.value] = values
            elif kind == "float":
                if values.dtype.kind not in "iufb" and values.dtype != object:
                    raise TypeError
                inputs["F64"][slot.value] = values
            elif kind == "date":
                inputs["I32"][slot.value] = _dates(values)
                if values.dtype.kind == "M":
                    nat = np.isnat(values)
                    if nat.any():
                        mask = nat if mask is None else (mask | nat)
            elif kind == "bool":
                if values.dtype.kind != "b" and values.dtype != object:
                    raise TypeError
                inputs["BM"][slot.value, :] = 0
                packed = np.packbits(values.astype(bool), bitorder="little")
                inputs["BM"][slot.value, :packed.size] = packed
            else:
                index = self._member_index[slot.name]
                codes = np.empty(n, dtype=np.uint8)
                for j, v in enumerate(values.tolist()):
                    if v is None or (mask is not None and mask[j]):
                        codes[j] = 255
                        continue
                    code = index.get(v)
                    if code is None:
                        raise InputError(f"column `{slot.name}` row {j}: {v!r} is not one of "
                                         f"{', '.join(slot.type.members)}", slot.name)
                    codes[j] = code
                inputs["I8"][slot.value] = codes
        except (TypeError, ValueError, OverflowError):
            raise InputError(f"column `{slot.name}` holds {values.dtype} values, expected "
                             f"{expected_text(slot.type)}", slot.name) from None
        if mask is not None and mask.any():
            inputs["BM"][slot.valid, :] = 0
            packed = np.packbits(~mask, bitorder="little")
            inputs["BM"][slot.valid, :packed.size] = packed

    def _numpy_outputs(self, outputs: dict, n: int) -> dict:
        result = {}
        valid_rows = outputs.get("OV")
        for (node_name, out_name), slot in self.plan.outputs.items():
            values = outputs[OUTPUT_GROUP[slot.type.kind]][slot.value]
            valid = valid_rows[slot.valid].astype(bool)
            result[slot.column] = _numpy_value(values, valid, slot.type)
        for node in self.plan.nodes:
            rslot = self.plan.rules.get(node.name)
            if rslot is None:
                continue
            if rslot.collect:
                arr = _collect_ids(outputs["OM"][rslot.value:rslot.value + rslot.words], rslot.ids, n)
                result[f"{node.name}.rule"] = np.array(arr.to_pylist() + [None], dtype=object)[:-1]
            else:
                ids = list(rslot.ids) + [UNIQUE_CONFLICT]
                codes = outputs["OI32"][rslot.value]
                result[f"{node.name}.rule"] = np.array([ids[c] if c >= 0 else None for c in codes.tolist()],
                                                       dtype=object)
        return result


def _length(columns: dict, slots) -> int:
    for slot in slots:
        if slot.name in columns:
            return len(columns[slot.name])
    for v in columns.values():
        return len(v)
    return 1


def _dates(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "M":
        days = values.astype("datetime64[D]").astype(np.int64)
        return np.where(np.isnat(values), 0, days)
    if values.dtype.kind in "iu":
        return values
    return np.array([0 if v is None else (v.date() if isinstance(v, dt.datetime) else v).toordinal()
                     - _EPOCH.toordinal() for v in values], dtype=np.int64)


def _to_arrow(values: np.ndarray, valid: np.ndarray, t: ir.Type, n: int) -> pa.Array:
    all_valid = bool(valid.all()) if n else True
    mask = None if all_valid else pa.py_buffer(np.packbits(valid.astype(bool), bitorder="little"))
    k = t.kind
    if k == "bool":
        return pa.Array.from_buffers(pa.bool_(), n, [mask, pa.py_buffer(np.packbits(values != 0, bitorder="little"))])
    if k == "enum":
        if not all_valid:
            values = np.where(valid != 0, values, 0).astype(np.int8)
        indices = pa.Array.from_buffers(pa.int8(), n, [mask, pa.py_buffer(values)])
        return pa.DictionaryArray.from_arrays(indices, pa.array(t.members, pa.string()))
    arrow = {"int": pa.int64(), "float": pa.float64(), "date": pa.date32()}[k]
    return pa.Array.from_buffers(arrow, n, [mask, pa.py_buffer(values)])


def _collect_ids(masks: np.ndarray, ids, n: int) -> pa.Array:
    """Fired-rule bit masks ([words, n] uint64) → list<string> of rule ids in file order."""
    if n == 0:
        return pa.array([], COLLECT_RULE_TYPE)
    bits = np.unpackbits(np.ascontiguousarray(masks.T).view(np.uint8).reshape(n, -1), axis=1, bitorder="little")
    rows, cols = np.nonzero(bits[:, :len(ids)])
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=n), out=offsets[1:])
    values = pa.array(list(ids), pa.string()).take(pa.array(cols.astype(np.int32)))
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _numpy_value(values: np.ndarray, valid: np.ndarray, t: ir.Type):
    k = t.kind
    if k == "float":
        return np.where(valid, values, np.nan)
    if k == "enum":
        members = t.members
        return np.array([members[c] if ok else None for c, ok in zip(values.tolist(), valid.tolist())] + [None],
                        dtype=object)[:-1]
    if k == "date":
        out = values.astype("datetime64[D]")
        out[~valid] = np.datetime64("NaT")
        return out
    out = values.astype(bool) if k == "bool" else values.copy()
    if valid.all():
        return out
    return np.ma.masked_array(out, mask=~valid)
