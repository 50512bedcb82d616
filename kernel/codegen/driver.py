"""Running a compiled kernel: Arrow batches (or NumPy columns) in, decision columns out.

Batch path: every input column reaches the kernel as addresses of its Arrow buffers (values,
validity bitmap and bit offset) — no copy unless its Arrow type needs a cast (say int32 →
int64); dictionary-encoded enums pass their index buffer plus a 256-entry table mapping
dictionary positions to the declared member order, computed once per batch; plain string
enums are encoded once per batch. Outputs come back as Arrow arrays over the kernel's own
output buffers (no copy): while a block of rows is in cache the kernel also packs the validity
bitmaps of the outputs that can be null, the bool outputs' bitmaps and the winning-rule
columns' validity, and counts the nulls, so building the Arrow arrays takes no pass over the
data. Large batches are split into row chunks that the calling thread and the pool's threads
claim in turn (the compiled kernel holds no GIL); small ones run in the calling thread.

Columns path (:meth:`CompiledKernel.run_columns`): one or a few accounts as NumPy arrays,
copied into one small 2-D array per storage type; the compiled call is the same.
"""
from __future__ import annotations

import datetime as dt
import functools
import itertools
import os
import struct
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..rules import ir
from ..rules.columns import COLLECT_RULE_TYPE, InputError, expected_text
from ..rules.reference import UNIQUE_CONFLICT
from .cache import native_address
from .emit import BLOCK_ROWS, RECORD_TABLE, Packing
from .inputs import as_of_days, check_input_schema
from .plan import ARG_GROUPS, OUTPUT_GROUP, Plan

__all__ = ["PARALLEL_MIN_ROWS", "THREADS", "CompiledKernel", "as_of_days", "check_input_schema"]

#: batches at least this long are split into row chunks decided on several threads
PARALLEL_MIN_ROWS = 4096
#: bounds of a row chunk: small enough that the threads finish together, large enough that a
#: chunk's dispatch (about a microsecond) does not matter
CHUNK_ROWS_MIN, CHUNK_ROWS_MAX = 2048, 65536
#: threads deciding one large batch (``$POSTLOAN_THREADS``, default: every CPU)
THREADS = max(1, int(os.environ.get("POSTLOAN_THREADS") or os.cpu_count() or 1))
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="postloan-kernel")
        return _POOL


_NP = {"OI64": np.int64, "OF64": np.float64, "OI32": np.int32, "OI8": np.int8, "OU8": np.uint8,
       "OV": np.uint8, "OM": np.uint64}
_OUTPUT_ORDER = ("OI64", "OF64", "OI32", "OI8", "OU8", "OV", "OM")
_EPOCH = dt.date(1970, 1, 1)
#: the Arrow type the kernel reads for each kind of input (other types are cast once per batch)
_ARROW_OF = {"int": pa.int64(), "float": pa.float64(), "date": pa.date32()}
_WIDTH = {"int": 8, "float": 8, "date": 4}


class CompiledKernel:
    """A loaded fused kernel plus everything needed to call it."""

    def __init__(self, plan: Plan, block, tables: dict, functions: np.ndarray, node_map: np.ndarray,
                 packing: Packing, model_params: list = (), keep: list = (), record=None):
        """``block``: the driver's compiled ``block``; ``functions``: each node's address;
        ``node_map``: each node's ``M`` (rows); ``keep``: what the addresses point into (the
        node modules, the models' block functions) and ``model_params`` what their maps do;
        ``record``: the driver's ``record`` (the record path; without it that path calls ``block``)."""
        self.plan = plan
        self.block = block
        self.tables = tables
        self.functions = functions
        self.node_map = node_map
        self.model_params = tuple(model_params)
        self.packing = packing
        self._keep = tuple(keep)
        self._fixed_args = tuple(self.tables[g] for g in ("TI64", "TF64", "TU64")) + (functions, node_map,
                                                                                        packing.steps())
        self._no_pack = (np.zeros((0, 0), np.uint8), np.zeros(0, np.int64), 0)
        # The compiled block's own entry point, for one record: it skips the dispatcher's type
        # resolution (≈ 8 µs for 20 arguments), which the record path's arguments — always the
        # exact arrays of the block's one signature — do not need.
        overloads = getattr(block, "overloads", None) or {}
        self._block_entry = next(iter(overloads.values())).entry_point if len(overloads) == 1 else block
        overloads = getattr(record, "overloads", None) or {}
        self._record_entry = next(iter(overloads.values())).entry_point if len(overloads) == 1 else record
        #: the native address of ``record`` (Numba's calling convention: ``void(as_of, R)``), for
        #: compiled code that calls it itself (kernel.codegen.helpers.call_native); None without one
        self.record_address = native_address(next(iter(overloads.values()))) if len(overloads) == 1 else None
        self._arrow = None                   # the Arrow path's layout, built on first use
        self._never_null = np.array([v for v in range(plan.counts["OV"]) if v not in packing.valid], dtype=np.int64)
        self._schema_seen: pa.Schema | None = None
        self._dictionaries: dict = {}
        ones = np.full(1024, 255, dtype=np.uint8)
        self._ones = (ones, ones.ctypes.data)      # one tuple: a concurrent call reads a matching pair
        # codes 0..126 are members (when the enum has them), 255 (-1 as uint8) is null
        self._identity = np.arange(256, dtype=np.int64).astype(np.int8)
        self._identity[128:] = -1
        self._identity_at = self._identity.ctypes.data
        self.input_slots = plan.input_columns()
        self._local = threading.local()
        self._layout = self._small_layout()
        self._record_slots = tuple((slot.name, kind, row, vrow, slot) for slot, kind, row, vrow in self._layout[2])
        self._out = None
        self._group_cache = None
        self._member_index = {slot.valid: {m: i for i, m in enumerate(slot.type.members)}
                              for slot in self.input_slots if slot.type.kind in ("enum", "category")}

    # ------------------------------------------------------------------ column requirements
    def required_columns(self) -> list[tuple[str, ir.Type]]:
        return [(s.name, s.type) for s in self.input_slots]

    def check_schema(self, schema: pa.Schema) -> None:
        seen = self._schema_seen
        if seen is not None and (schema is seen or schema.equals(seen)):
            return                       # the batches of one table share their schema
        check_input_schema(self.input_slots, schema)
        self._schema_seen = schema

    # ------------------------------------------------------------------ the batch path
    def run_batch(self, batch: pa.RecordBatch, as_of) -> list[tuple[str, pa.Array]]:
        """Decide one record batch; returns ``(column name, array)`` in plan order."""
        if isinstance(batch, pa.Table):
            batch = batch.combine_chunks().to_batches()[0] if batch.num_rows else \
                pa.RecordBatch.from_pylist([], schema=batch.schema)
        return self.run_batches([batch], as_of)[0]

    def run_batches(self, batches: list, as_of) -> list[list[tuple[str, pa.Array]]]:
        """Decide several record batches (a table's chunks) in one go: every batch's row chunks
        are claimed from one queue by the calling thread and the pool, so a table of many small
        batches keeps every core busy without a hand-over per batch."""
        days = as_of_days(as_of)
        batches = list(batches)
        for batch in batches:
            self.check_schema(batch.schema)
        jobs, strings = [], []
        for batch, (outputs, packed) in zip(batches, self._allocate_batches([b.num_rows for b in batches])):
            columns: list = []
            jobs.append(_Job(batch.num_rows, self._batch_inputs(batch, batch.num_rows, columns), outputs, packed))
            strings.extend((jobs[-1], slot, arr) for slot, arr in columns)
        tasks = [functools.partial(self._string_codes, slot, arr) for _, slot, arr in strings]
        large = sum(job.n for job in jobs) >= PARALLEL_MIN_ROWS
        for (job, slot, _), codes in zip(strings, _share(tasks) if large else [t() for t in tasks]):
            self._point_at_codes(slot, codes, job.inputs["PTR"], job.inputs["keep"])
        self._run(jobs, days)
        fired = self._fired_lists(jobs)
        return [self._arrow_outputs(job.outputs, job.packed, job.nulls, job.n, fired[k]) for k, job in enumerate(jobs)]

    def _fired_lists(self, jobs: list) -> list[dict]:
        """Per job, the fired-rule lists (offsets, rule indices) of each collect ruleset, as
        ``{OM row: (offsets, indices)}``: computed on every thread at once for large batches."""
        from .helpers import fired_lists
        rows = [(r.value, r.words, len(r.ids)) for r in self.plan.rules.values() if r.collect]
        tasks = [(k, row, functools.partial(fired_lists, job.outputs["OM"][row:row + words], rules))
                 for k, job in enumerate(jobs) for row, words, rules in rows]
        parallel = sum(job.n for job in jobs) >= PARALLEL_MIN_ROWS
        results = _share([task for _, _, task in tasks]) if parallel else [task() for _, _, task in tasks]
        fired: list[dict] = [{} for _ in jobs]
        for (k, row, _), result in zip(tasks, results):
            fired[k][row] = result
        return fired

    def _ones_address(self, n: int, keep: list) -> int:
        """Address of an all-valid bitmap of at least ``n`` bits (columns without nulls). The
        bitmap pointed at goes into ``keep``: a concurrent call may replace the shared one by a
        larger one, and this call's must live until its kernel has run."""
        need = (n + 7) // 8 + 8
        ones = self._ones
        if ones[0].size < need:
            grown = np.full(max(need, 2 * ones[0].size), 255, dtype=np.uint8)
            ones = self._ones = (grown, grown.ctypes.data)
        keep.append(ones[0])
        return ones[1]

    def _batch_inputs(self, batch: pa.RecordBatch, n: int, strings: list | None = None) -> dict:
        """The addresses the kernel reads ``batch`` through. With ``strings`` (a list), plain
        string enum columns are left to the caller to encode — (slot, array) appended — so
        that several columns and batches are encoded on every thread at once."""
        size = max(self.plan.counts["PTR"], 1)
        ptr, off = [0] * size, [0] * size         # filled as Python ints, converted once
        keep = [self._identity]                  # every buffer the addresses point into
        ones = self._ones_address(n, keep)
        for slot in self.input_slots:
            arr = batch.column(slot.name)
            kind = slot.type.kind
            arrow = _ARROW_OF.get(kind)
            if arrow is not None and arr.type != arrow:
                arr = arr.cast(arrow, safe=kind == "int")
            keep.append(arr)
            bufs = arr.buffers()
            if bufs[0] is None or arr.null_count == 0:
                ptr[slot.valid] = ones
            else:
                ptr[slot.valid], off[slot.valid] = bufs[0].address, arr.offset
            if kind in ("enum", "category"):
                if strings is not None and not pa.types.is_dictionary(arr.type):
                    strings.append((slot, arr))
                else:
                    self._enum_input(slot, arr, ptr, keep)
            elif kind == "bool":
                ptr[slot.value], off[slot.value] = bufs[1].address, arr.offset
            else:
                ptr[slot.value] = bufs[1].address + arr.offset * _WIDTH[kind]
        return {"PTR": np.array(ptr, dtype=np.int64), "OFF": np.array(off, dtype=np.int64), "keep": keep}

    def _enum_input(self, slot, arr: pa.Array, ptr: np.ndarray, keep: list) -> None:
        """Point the kernel at an enum column's codes and at the table from code to member."""
        if pa.types.is_dictionary(arr.type):
            dictionary = arr.dictionary
            if not pa.types.is_string(dictionary.type):
                dictionary = dictionary.cast(pa.string())
            codes, table = self._dictionary_codes(slot, arr, dictionary)
            if table is not None:
                keep.append(table)
                ptr[slot.remap] = table.ctypes.data
                ptr[slot.value] = arr.indices.buffers()[1].address + arr.offset
                return
            positions = arr.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
            lookup = np.asarray(codes + [-1], dtype=np.int64)
            coded = lookup[np.clip(positions, 0, len(codes))]
        else:
            self._point_at_codes(slot, self._string_codes(slot, arr), ptr, keep)
            return
        self._point_at_codes(slot, np.asarray(coded, dtype=np.int64).astype(np.uint8), ptr, keep)

    def _string_codes(self, slot, arr: pa.Array) -> np.ndarray:
        """A plain string column's member indices as uint8 (255: null, or a category the
        model never saw); an enum value outside the members is an InputError."""
        coded = pc.index_in(arr, value_set=pa.array(slot.type.members, pa.string()))
        if coded.null_count != arr.null_count and slot.type.kind == "enum":
            self._reject_unknown(slot, arr)
        return coded.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.uint8)

    def _point_at_codes(self, slot, codes: np.ndarray, ptr, keep: list) -> None:
        codes = np.ascontiguousarray(codes)
        keep.append(codes)
        ptr[slot.value] = codes.ctypes.data
        ptr[slot.remap] = self._identity_at

    def _dictionary_codes(self, slot, arr: pa.Array, dictionary: pa.Array) -> tuple[list, np.ndarray | None]:
        """Member index of each dictionary entry, and for int8 indices the kernel's 256-entry
        table. The batches of one table usually share their dictionaries: the last one seen per
        column is remembered, so the table is built once, not per batch."""
        seen = self._dictionaries.get(slot.valid)
        if seen is not None and (seen[0] is dictionary or seen[0].equals(dictionary)):
            codes = seen[1]
        else:
            index = self._member_index[slot.valid]
            entries = dictionary.to_pylist()
            codes = [index.get(v, -1) if v is not None else -1 for v in entries]
            if slot.type.kind == "enum" and any(v is not None and c < 0 for v, c in zip(entries, codes)):
                self._reject_unknown(slot, arr)
            table = None
            if len(codes) <= 128:
                table = np.full(256, -1, dtype=np.int8)
                table[:len(codes)] = codes
            seen = (dictionary, codes, table)
            self._dictionaries[slot.valid] = seen
        return codes, (seen[2] if arr.type.index_type == pa.int8() else None)

    @staticmethod
    def _reject_unknown(slot, arr) -> None:
        from ..rules.columns import enum_codes_of
        enum_codes_of(slot.name, arr, slot.type)
        raise AssertionError("unreachable: enum_codes_of raises")  # pragma: no cover

    def _allocate_batches(self, sizes: list[int]) -> list[tuple[dict, np.ndarray]]:
        """Output arrays and packed bitmaps of several batches, carved out of one allocation:
        a few large allocations get huge pages (NumPy asks for them from 4 MiB), where one per
        output of each 65,536-row batch took a page fault every 4 KiB (about 0.2 ms a batch)."""
        groups = [(g, self.plan.counts[g], np.dtype(_NP[g])) for g in _OUTPUT_ORDER]
        layout, total = [], 0
        for n in sizes:
            parts = []
            for g, count, dtype in groups + [("packed", self.packing.rows, None)]:
                size = count * ((n + 7) // 8 if dtype is None else n * dtype.itemsize)
                parts.append((g, count, dtype, total, size))
                total += -(-size // 64) * 64          # every array starts on a cache line
            layout.append((n, parts))
        memory = np.empty(max(total, 1), dtype=np.uint8)
        result = []
        for n, parts in layout:
            outputs, packed = {}, None
            for g, count, dtype, offset, size in parts:
                view = memory[offset:offset + size]
                if dtype is None:
                    packed = view.reshape(count, (n + 7) // 8)
                else:
                    outputs[g] = view.view(dtype).reshape(count, n)
            result.append((outputs, packed))
        return result

    def _allocate(self, n: int, never_null_valid: bool = True) -> dict:
        """Output arrays for ``n`` rows. The kernel stores no validity for outputs that are
        never null: with ``never_null_valid`` their OV rows are set to 1 here (the columns path
        reads them; the Arrow path does not)."""
        counts = self.plan.counts
        out = {}
        for g in ("OI64", "OF64", "OI32", "OI8", "OU8", "OV", "OM"):
            out[g] = np.empty((counts[g], n), dtype=_NP[g])
        if never_null_valid and self._never_null.size:
            out["OV"][self._never_null] = 1
        return out

    def _args(self, inputs: dict, outputs: dict) -> tuple:
        return (inputs["PTR"], inputs["OFF"], outputs["OI64"], outputs["OF64"], outputs["OI32"], outputs["OI8"],
                outputs["OU8"], outputs["OV"], outputs["OM"]) + self._fixed_args

    def _call(self, n: int, days: int, inputs: dict, outputs: dict, parallel: bool,
              packed: np.ndarray | None = None) -> np.ndarray | None:
        """Run the compiled ``block`` on rows ``0..n``. With ``packed`` (the batch path) it also
        packs bitmaps into ``packed`` and returns the null counts (:class:`~.emit.Packing`)."""
        if packed is None:
            self.block(0, n, days, *self._args(inputs, outputs), *self._no_pack)
            return None
        job = _Job(n, inputs, outputs, packed)
        self._run([job], days, parallel)
        return job.nulls

    def _run(self, jobs: list, days: int, parallel: bool = True) -> None:
        """Run ``block`` over every job's rows, packing bitmaps; sets each job's null counts.

        Few rows run in the calling thread. Otherwise each job is cut into row chunks (whole
        blocks, so each chunk's bitmaps start on a byte; small enough that the threads finish
        together) which the calling thread and THREADS - 1 pool threads claim in turn: the
        compiled block holds no GIL, and the caller never waits for a pool thread that has not
        started."""
        block = self.block
        counters = self.packing.counters
        total = sum(job.n for job in jobs)
        if not parallel or total < PARALLEL_MIN_ROWS or THREADS == 1:
            for job in jobs:
                job.nulls = np.zeros(counters, dtype=np.int64)
                if job.n:
                    block(0, job.n, days, *self._args(job.inputs, job.outputs), job.packed, job.nulls, 1)
            return
        step = min(CHUNK_ROWS_MAX, max(CHUNK_ROWS_MIN, total // (16 * THREADS)))
        step = -(-step // BLOCK_ROWS) * BLOCK_ROWS
        work = []
        for job in jobs:
            starts = range(0, job.n, step)
            job.counts = np.zeros((len(starts), counters), dtype=np.int64)
            args = self._args(job.inputs, job.outputs) + (job.packed,)
            work.extend(functools.partial(block, start, min(job.n, start + step), days, *args, job.counts[k], 1)
                        for k, start in enumerate(starts))
        _share(work)
        for job in jobs:
            job.nulls = job.counts.sum(axis=0)

    # ------------------------------------------------------------------ outputs
    def _arrow_outputs(self, outputs: dict, packed: np.ndarray, nulls: np.ndarray, n: int,
                       fired: dict) -> list[tuple[str, pa.Array]]:
        """Arrow arrays over the kernel's buffers: values rows as they are, bitmaps packed by
        the kernel (a validity bitmap only where this batch has nulls)."""
        buffers = {g: pa.py_buffer(a) for g, a in outputs.items()}
        bitmaps = pa.py_buffer(packed)
        stride = packed.shape[1]
        nulls = nulls.tolist()
        result = []
        if self._arrow is None:              # (building its dictionaries costs a warm start 0.3 s)
            self._arrow = _arrow_layout(self.plan, self.packing)
        for column, kind, arrow_type, group, row, width, valid, bits, extra in self._arrow:
            validity, null_count = None, 0
            if valid is not None:
                null_count = nulls[valid[1]]
                if null_count:
                    validity = bitmaps.slice(valid[0] * stride, stride)
            if kind == "collect":
                result.append((column, _collect_ids(*fired[row], extra, n)))
                continue
            if kind == "bool":
                values = bitmaps.slice(bits * stride, stride)
            else:
                values = buffers[group].slice(row * n * width, n * width)
            if kind == "dictionary":
                indices = pa.Array.from_buffers(arrow_type, n, [validity, values], null_count)
                result.append((column, pa.DictionaryArray.from_arrays(indices, extra, safe=False)))
            else:
                result.append((column, pa.Array.from_buffers(arrow_type, n, [validity, values], null_count)))
        return result

    # ------------------------------------------------------------------ the columns path
    # ------------------------------------------------------------------ the columns path
    def _small_layout(self):
        """Where each input lives in the staging arrays of the columns path: per column its
        (kind, value row, validity row), and per PTR entry its (staging array, row)."""
        kinds = {"i64": 0, "f64": 0, "i32": 0, "u8": 0, "bits": 0}
        where, columns = {}, []
        for slot in self.input_slots:
            kind = {"int": "i64", "float": "f64", "date": "i32", "enum": "u8", "category": "u8",
                    "bool": "bits"}[slot.type.kind]
            row, vrow = kinds[kind], None
            kinds[kind] += 1
            vrow = kinds["bits"]
            kinds["bits"] += 1
            where[slot.value] = (kind, row)
            where[slot.valid] = ("bits", vrow)
            if slot.remap >= 0:
                where[slot.remap] = ("identity", 0)
            columns.append((slot, kind, row, vrow))
        return kinds, where, columns

    def _staging(self, n: int) -> _Staging:
        """Staging arrays for ``n`` rows; reused per thread for small ``n`` (the addresses the
        kernel reads are computed once: taking an array's address costs microseconds)."""
        local = self._local
        cache = getattr(local, "staging", None)
        if cache is None:
            cache = local.staging = {}
        st = cache.get(n)
        if st is None:
            kinds, where, _ = self._layout
            st = _Staging(n, kinds, where, self._identity, self.plan.counts["PTR"])
            if n <= SMALL_REUSE_ROWS:
                cache[n] = st
        return st

    def run_columns(self, columns: dict, as_of, n: int | None = None) -> dict:
        """Decide a few accounts given as NumPy arrays (see ``Kernel.decide_columns``).

        Columns are staged by storage type in bulk (one NumPy conversion per type, not per
        column); a type group holding anything unusual (nulls as None or masks, other dtypes)
        goes through a column-by-column path that validates and converts each value."""
        if n is None:
            n = _length(columns, self.input_slots)
        days = as_of_days(as_of)
        st = self._staging(n)
        st.bits.fill(255)
        for kind, group in self._groups.items():
            try:
                values = [columns[slot.name] for slot, _, _, _ in group]
            except KeyError:
                slot = next(s for s, _, _, _ in group if s.name not in columns)
                raise InputError(f"missing column `{slot.name}` (the rules read it as {slot.type})",
                                 slot.name) from None
            for (slot, _, row, vrow), v in self._stage_group(kind, group, values, n, st):
                self._small_input(slot, kind, row, vrow, v, n, st)
        outputs = self._allocate(n)
        if n:
            self._call(n, days, {"PTR": st.ptr, "OFF": st.off}, outputs, parallel=False)
        return self._numpy_outputs(outputs, n)

    @property
    def _groups(self) -> dict:
        if self._group_cache is None:
            groups: dict = {}
            for entry in self._layout[2]:
                groups.setdefault(entry[1], []).append(entry)
            self._group_cache = groups
        return self._group_cache

    _BULK_KINDS = {"f64": "fiu", "i64": "iu", "i32": "M", "bits": "b", "u8": "OU"}

    def _stage_group(self, kind: str, group: list, values: list, n: int, st) -> list:
        """Stage the columns of one storage type that are plain arrays of a natural dtype in
        bulk (one NumPy conversion for all of them); returns the others, for the careful
        column-by-column path."""
        allowed = self._BULK_KINDS[kind]
        nbytes = (n + 7) // 8
        if kind == "u8":
            rest = []
            for entry, v in zip(group, values):
                if type(v) is not np.ndarray or v.shape != (n,) or v.dtype.kind not in allowed:
                    rest.append((entry, v))
                    continue
                slot, _, row, vrow = entry
                index = self._member_index[slot.valid]
                codes = st.u8[row]
                for j, item in enumerate(v.tolist()):
                    code = index.get(item)
                    if code is None:
                        codes[j] = 255
                        if item is None:
                            st.bits[vrow, j >> 3] &= np.uint8(255 ^ (1 << (j & 7)))
                        elif slot.type.kind != "category":     # unknown to a model: index -1
                            raise InputError(f"column `{slot.name}` row {j}: {item!r} is not one of "
                                             f"{', '.join(slot.type.members)}", slot.name)
                    else:
                        codes[j] = code
            return rest
        # the common case: every column a plain array of a natural dtype, converted at once
        # (plain arrays only: np.array would drop a masked array's mask; the block's dtype
        # then tells whether every column had a natural dtype)
        if all(type(v) is np.ndarray for v in values):
            try:
                block = np.array(values)
            except ValueError:             # ragged: some column has the wrong length
                block = None
            if block is not None and block.shape == (len(values), n) and block.dtype.kind in allowed:
                self._store_block(kind, group, block, n, nbytes, st, whole=True)
                return []
        bulk, rest = [], []
        for entry, v in zip(group, values):
            if type(v) is np.ndarray and v.shape == (n,) and v.dtype.kind in allowed:
                bulk.append((entry, v))
            else:
                rest.append((entry, v))
        if bulk:
            self._store_block(kind, [entry for entry, _ in bulk], np.array([v for _, v in bulk]), n, nbytes, st)
        return rest

    @staticmethod
    def _store_block(kind: str, entries: list, block: np.ndarray, n: int, nbytes: int, st,
                     whole: bool = False) -> None:
        """Store a [columns, n] block; ``whole``: the entries are the whole group, whose value
        rows are 0..k-1 in order (bool values interleave with validity rows: never whole)."""
        rows = slice(0, len(entries)) if whole and kind != "bits" else [entry[2] for entry in entries]
        if kind == "f64":
            st.f64[rows] = block
        elif kind == "i64":
            st.i64[rows] = block
        elif kind == "i32":
            days = block.astype("datetime64[D]").astype(np.int64)
            nat = days == np.iinfo(np.int64).min
            if nat.any():
                days[nat] = 0
                st.bits[[entry[3] for entry in entries], :nbytes] = np.packbits(~nat, axis=1, bitorder="little")
            st.i32[rows] = days
        else:
            st.bits[rows, :nbytes] = np.packbits(block, axis=1, bitorder="little")

    def run_record(self, record, as_of) -> dict:
        """Decide one account given as a mapping of Python scalars (see ``Kernel.decide_record``):
        each value stored straight into the staging arrays, each output read back as a scalar.

        Both directions are straight-line code generated once per bundle (:func:`_record_code`:
        one statement per input and per output, the staging rows as constants); a value of a
        type that code does not take as it is (an int for a float column, a datetime for a
        date…) sends the record to the careful path (:meth:`_stage_record`), which converts it
        or names the column."""
        rec = self.record_buffers()
        if not rec.stage(record):
            rec.bits[:] = rec.all_valid
            self._stage_record(record, rec)
        return self.run_staged(rec, as_of)

    def record_buffers(self) -> "_RecordBuffers":
        """This thread's record path buffers (made on its first call)."""
        rec = getattr(self._local, "record", None)
        if rec is None:
            rec = self._local.record = _RecordBuffers(self)
            rec.stage, rec.read = _record_code(self._record_slots, self._member_index, self._out_layout, rec,
                                               frozenset(self._never_null.tolist()))
        return rec

    def run_staged(self, rec: "_RecordBuffers", as_of) -> dict:
        """Decide the record staged in ``rec`` (this thread's :meth:`record_buffers`, every
        input and validity byte written): :meth:`run_record`'s answer."""
        # (a plain date, the usual case, without as_of_days' four type tests: the same number)
        days = as_of.toordinal() - _EPOCH_ORDINAL if type(as_of) is dt.date else as_of_days(as_of)
        if rec.table is not None:
            self._record_entry(days, rec.table_at)
        else:
            self._block_entry(0, 1, days, *rec.args)
        return rec.read()

    def read_outputs(self, outputs: bytes) -> dict:
        """:meth:`run_staged`'s answer from a copy of a record buffer's outputs' bytes
        (``record_buffers().buffer`` up to ``inputs_at``, after a run; any thread's)."""
        return self.record_buffers().read(outputs)

    @functools.cached_property
    def record_outputs(self) -> tuple[tuple, ...]:
        """Where each decision column :meth:`run_staged` gives lies in a thread's record
        buffer (``record_buffers().buffer``, the same offsets in every thread), in the
        decisions' order: per column ``(name, kind, value byte, validity byte, labels)`` —
        kind ``float`` (f64), ``int`` (i64), ``bool`` (one byte, 1/0), ``date`` (i32 days since
        1970), ``enum`` (i8 member code, −1 null; labels the members), ``rule`` (i32 code of
        the rule fired, −1 none; labels the rule ids, then ``!unique``) or ``collect`` (the
        fired rules' mask words, u64; labels ``(words, ids)``); validity byte −1 for rules and
        collect, whose values are never null (a never-null output's validity byte is always 1)."""
        at = _RecordBuffers.output_offsets(self.plan.counts)
        out_v = at["OV"][0]
        group_of = {"rule": "OI32", "date": "OI32", "enum": "OI8", "bool": "OU8", "float": "OF64"}
        columns = []
        for column, kind, index, row, vrow in self._out_layout["record"]:
            if kind == "collect":
                start, words, ids = index
                columns.append((column, kind, at["OM"][0] + 8 * start, -1, (words, tuple(ids))))
                continue
            group = group_of.get(kind, "OI64")
            value = at[group][0] + at[group][1] * row
            columns.append((column, kind if kind in group_of else "int", value,
                            -1 if kind == "rule" else out_v + vrow, tuple(index) if kind in ("rule", "enum") else None))
        return tuple(columns)

    @functools.cached_property
    def record_layout(self) -> tuple[tuple, range]:
        """Where each input lives in a thread's record buffer (``record_buffers().inputs``,
        the same offsets in every thread): per input column ``(name, storage, value byte,
        validity byte, type, member index)`` — storage ``f64``/``i64``/``i32``/``u8`` (a
        member's or category's code, 255 for a category the model does not know) or ``bits``
        (a bool: one byte, 1 or 0); a validity byte is 255 when set, 0 when null; member
        index ``{member: code}`` for enums and categories, else None — and the bytes of the
        bitmaps (validity and bools), all 255 before a record is written. The way in for a
        caller that writes the record's inputs itself (:meth:`run_staged` then decides it)."""
        kinds, _, _ = self._layout
        at = _RecordBuffers.input_offsets(kinds)
        width = {"f64": 8, "i64": 8, "i32": 4, "u8": 1, "bits": 1}
        columns = tuple((name, kind, at[kind] + row * width[kind], at["bits"] + vrow, slot.type,
                         self._member_index.get(slot.valid))
                        for name, kind, row, vrow, slot in self._record_slots)
        return columns, range(at["bits"], at["bits"] + kinds["bits"])

    def _stage_record(self, record, rec) -> None:
        """The careful path into the staging arrays: every value checked and converted, or
        InputError naming its column."""
        values, bits = rec.values, rec.bits
        member_index = self._member_index
        for name, kind, row, vrow, slot in self._record_slots:
            try:
                v = record[name]
            except KeyError:
                raise InputError(f"missing column `{name}` (the rules read it as {slot.type})", name) from None
            # The common exact types first (a memoryview store); anything else below.
            t = type(v)
            if kind == "f64" and t is float:
                if v == v:
                    values["f64"][row] = v
                else:
                    bits[vrow] = 0                         # NaN: null
                continue
            if kind == "i64" and t is int and -_I64 <= v < _I64:
                values["i64"][row] = v
                continue
            if v is None or v != v:                        # None, or NaN: null
                bits[vrow] = 0
                continue
            try:
                if kind == "f64":
                    if isinstance(v, (str, bytes, dt.date)):
                        raise TypeError
                    rec.f64[row] = v
                elif kind == "i64":
                    if isinstance(v, (str, bytes, dt.date)) or (isinstance(v, float) and not v.is_integer()):
                        raise TypeError
                    rec.i64[row] = v
                elif kind == "u8":
                    code = member_index[slot.valid].get(v)
                    if code is None:
                        if slot.type.kind != "category":
                            raise InputError(f"column `{name}`: {v!r} is not one of "
                                             f"{', '.join(slot.type.members)}", name)
                        code = 255                         # unknown to the model: index -1
                    values["u8"][row] = code
                elif kind == "bits":
                    if not isinstance(v, (bool, np.bool_)):
                        raise TypeError
                    bits[row] = 1 if v else 0
                else:
                    rec.i32[row] = _day_number(v)
            except (TypeError, ValueError, OverflowError):
                raise InputError(f"column `{name}` holds {v!r}, expected {expected_text(slot.type)}",
                                 name) from None

    def _small_input(self, slot, kind, row, vrow, values, n: int, st) -> None:
        t = slot.type.kind
        mask = None
        if isinstance(values, np.ma.MaskedArray):
            mask = np.ma.getmaskarray(values)
            values = values.filled(0 if t not in ("enum", "category") else "")
        values = np.asarray(values)
        if values.shape != (n,):
            raise InputError(f"column `{slot.name}` has shape {values.shape}, expected ({n},)", slot.name)
        if values.dtype == object:
            nulls = np.array([v is None for v in values], dtype=bool)
            if nulls.any():
                mask = nulls if mask is None else (mask | nulls)
                fill = {"int": 0, "float": 0.0, "bool": False, "date": 0, "enum": None, "category": None}[t]
                values = np.array([fill if v is None else v for v in values], dtype=object)
        try:
            if t == "int":
                if values.dtype.kind == "f":        # NaN is null; other values must be whole
                    nan = np.isnan(values)
                    if (values[~nan] != np.round(values[~nan])).any():
                        raise TypeError
                    if nan.any():
                        mask = nan if mask is None else (mask | nan)
                        values = np.where(nan, 0, values)
                elif values.dtype.kind not in "iub" and values.dtype != object:
                    raise TypeError
                st.i64[row] = values
            elif t == "float":
                if values.dtype.kind not in "iufb" and values.dtype != object:
                    raise TypeError
                st.f64[row] = values
            elif t == "date":
                st.i32[row] = _dates(values)
                if values.dtype.kind == "M":
                    nat = np.isnat(values)
                    if nat.any():
                        mask = nat if mask is None else (mask | nat)
            elif t == "bool":
                if values.dtype.kind != "b" and values.dtype != object:
                    raise TypeError
                packed = np.packbits(values.astype(bool), bitorder="little")
                st.bits[row, :packed.size] = packed
            else:
                index = self._member_index[slot.valid]
                codes = st.u8[row]
                for j, v in enumerate(values.tolist()):
                    if v is None or (mask is not None and mask[j]):
                        codes[j] = 255
                        continue
                    code = index.get(v)
                    if code is None and slot.type.kind == "category":
                        codes[j] = 255
                        continue
                    if code is None:
                        raise InputError(f"column `{slot.name}` row {j}: {v!r} is not one of "
                                         f"{', '.join(slot.type.members)}", slot.name)
                    codes[j] = code
        except (TypeError, ValueError, OverflowError):
            raise InputError(f"column `{slot.name}` holds {values.dtype} values, expected "
                             f"{expected_text(slot.type)}", slot.name) from None
        if mask is not None and mask.any():
            packed = np.packbits(~mask, bitorder="little")
            st.bits[vrow, :packed.size] = packed

    def _numpy_outputs(self, outputs: dict, n: int) -> dict:
        """Output arrays as returned by ``decide_columns``: converted per storage type in bulk,
        each column a row view."""
        lay = self._out_layout
        ov = outputs["OV"]
        all_valid = bool(ov.all())
        valid = ov.view(np.bool_)
        floats = outputs["OF64"]
        if not all_valid and lay["float_rows"].size:
            floats[~valid[lay["float_valid"]]] = np.nan
        codes = np.empty((lay["label_rows"], n), dtype=np.int64)
        if lay["enum_rows"].size:
            enum_codes = outputs["OI8"][lay["enum_rows"]]
            codes[lay["enum_label"]] = enum_codes if all_valid else np.where(valid[lay["enum_valid"]], enum_codes, -1)
        if lay["rule_rows"].size:
            codes[lay["rule_label"]] = outputs["OI32"][lay["rule_rows"]]
        codes += lay["label_offset"][:, None]
        codes[codes < lay["label_offset"][:, None]] = -1
        labels = lay["labels"][codes]
        views = {"float": floats, "label": labels, "int": outputs["OI64"], "bool": outputs["OU8"].view(np.bool_),
                 "date": outputs["OI32"].astype("datetime64[D]") if lay["has_dates"] else None}
        masks = outputs["OM"].tolist() if lay["has_collect"] else None
        result = {}
        for column, kind, index, vindex in lay["columns"]:
            if kind == "collect":
                result[column] = _collect_lists(masks, index, n)
                continue
            values = views[kind][index]
            if not all_valid and vindex is not None and kind in ("int", "bool", "date"):
                ok = valid[vindex]
                if not ok.all():
                    if kind == "date":
                        values[~ok] = np.datetime64("NaT")
                    else:
                        values = np.ma.masked_array(values, mask=~ok)
            result[column] = values
        return result

    @property
    def _out_layout(self) -> dict:
        if self._out is None:
            self._out = _output_layout(self.plan)
        return self._out


SMALL_REUSE_ROWS = 64


class _Job:
    """One batch on its way through the kernel: its inputs' addresses (and the buffers they
    point into), output arrays, packed bitmaps and, once run, null counts."""
    __slots__ = ("n", "inputs", "outputs", "packed", "counts", "nulls")

    def __init__(self, n: int, inputs: dict, outputs: dict, packed: np.ndarray):
        self.n, self.inputs, self.outputs, self.packed = n, inputs, outputs, packed
        self.counts = self.nulls = None


class _Staging:
    """Input arrays of the columns path and the addresses the kernel reads them through."""

    def __init__(self, n: int, kinds: dict, where: dict, identity: np.ndarray, n_ptr: int):
        self.i64 = np.zeros((max(kinds["i64"], 1), n), np.int64)
        self.f64 = np.zeros((max(kinds["f64"], 1), n), np.float64)
        self.i32 = np.zeros((max(kinds["i32"], 1), n), np.int32)
        self.u8 = np.zeros((max(kinds["u8"], 1), n), np.uint8)
        self.bits = np.full((max(kinds["bits"], 1), (n + 7) // 8 + 8), 255, np.uint8)
        self.identity = identity
        self.ptr = np.zeros(max(n_ptr, 1), dtype=np.int64)
        self.off = np.zeros_like(self.ptr)
        arrays = {"i64": self.i64, "f64": self.f64, "i32": self.i32, "u8": self.u8, "bits": self.bits,
                  "identity": identity[None, :]}
        for index, (kind, row) in where.items():
            array = arrays[kind]
            self.ptr[index] = array.ctypes.data + row * array.strides[0]


class _RecordBuffers:
    """One thread's record path (one account), reused from call to call: every input and every
    output of the kernel in one small contiguous buffer (a few cache lines; after an idle gap
    each line the call touches is a miss), the addresses the kernel reads the inputs through,
    and the kernel's argument tuple over them.

    Layout, each part aligned to 8 bytes: the outputs first — ``OI64``, ``OF64``, ``OM`` (8-byte
    items), ``OI32``, ``OI8``, ``OU8``, ``OV`` — as ``(count, 1)`` arrays, so that one
    :class:`struct.Struct` ``unpack_from`` turns all of them into Python scalars in a single C
    call; then the inputs' values by storage type (``f64``, ``i64``, ``i32``, ``u8``) and one
    byte per input bitmap (``bits``: validity and bool values; with one row the kernel reads bit
    0 of one byte), reset to 255 (all valid) by one slice store before each record."""

    OUTPUTS = (("OI64", "q"), ("OF64", "d"), ("OM", "Q"), ("OI32", "i"), ("OI8", "b"), ("OU8", "?"), ("OV", "?"))
    INPUTS = (("f64", "d", np.float64), ("i64", "q", np.int64), ("i32", "i", np.int32), ("u8", "B", np.uint8),
              ("bits", "B", np.uint8))

    @classmethod
    def output_offsets(cls, counts: dict) -> dict:
        """Each output group's (byte offset from the buffer's start, item size), and ``end``:
        the outputs' size (packed, no padding: one ``struct`` format reads them all)."""
        out, total = {}, 0
        for g, code in cls.OUTPUTS:
            size = struct.calcsize("<" + code)
            out[g] = (total, size)
            total += counts[g] * size
        out["end"] = (total, 0)
        return out

    @classmethod
    def input_offsets(cls, kinds: dict) -> dict:
        """Each input storage kind's byte offset from the inputs' start (which is 8-aligned;
        each part is too), and ``end``: the inputs' size."""
        out, total = {}, 0
        for kind, _, dtype in cls.INPUTS:
            total = -(-total // 8) * 8
            out[kind] = total
            total += kinds[kind] * np.dtype(dtype).itemsize
        out["end"] = total
        return out

    def __init__(self, kernel: "CompiledKernel"):
        counts = kernel.plan.counts
        kinds, where, _ = kernel._layout
        parts, fmt = {}, ["<"]
        offsets = self.output_offsets(counts)
        for g, code in self.OUTPUTS:
            parts[g] = (offsets[g][0], counts[g], code)
            fmt.append(f"{counts[g]}{code}")
        total = offsets["end"][0]
        self.out_format = "".join(fmt)
        self.out_index = {}            # output group -> index of its first value in the unpacked tuple
        k = 0
        for g, _ in self.OUTPUTS:
            self.out_index[g] = k
            k += counts[g]
        start = -(-total // 8) * 8
        offsets = self.input_offsets(kinds)
        for kind, code, _ in self.INPUTS:
            parts[kind] = (start + offsets[kind], kinds[kind], code)
        total = start + offsets["end"]
        self.memory = np.zeros(max(total, 8) + 64, np.uint8)
        shift = -self.memory.ctypes.data % 64               # the buffer starts on a cache line
        #: the outputs' bytes (offsets: :attr:`CompiledKernel.record_outputs`), then the inputs'
        self.buffer = buffer = self.memory[shift:shift + total]
        #: the inputs' bytes (offsets: :attr:`CompiledKernel.record_layout`), from ``inputs_at`` in ``buffer``
        self.inputs, self.inputs_at = buffer[start:], start
        view = memoryview(buffer)
        outputs = {}
        for g, _ in self.OUTPUTS:
            at, count, _ = parts[g]
            outputs[g] = buffer[at:at + count * np.dtype(_NP[g]).itemsize].view(_NP[g]).reshape(count, 1)
        if kernel._never_null.size:
            outputs["OV"][kernel._never_null] = 1        # never written by the kernel
        self.outputs = outputs
        arrays, self.values = {}, {}
        for kind, code, dtype in self.INPUTS:
            at, count, _ = parts[kind]
            size = count * np.dtype(dtype).itemsize
            arrays[kind] = buffer[at:at + size].view(dtype)
            self.values[kind] = view[at:at + size].cast(code)
        self.f64, self.i64, self.i32, self.u8 = (arrays[k] for k in ("f64", "i64", "i32", "u8"))
        self.bits = self.values["bits"]
        self.all_valid = b"\xff" * kinds["bits"]
        self.out_view = view[:parts["bits"][0]]
        ptr = np.zeros(max(kernel.plan.counts["PTR"], 1), dtype=np.int64)
        for index, (kind, row) in where.items():
            if kind == "identity":
                ptr[index] = kernel._identity_at
            else:
                ptr[index] = arrays[kind].ctypes.data + row * arrays[kind].itemsize
        self.ptr, self.off = ptr, np.zeros_like(ptr)
        self.args = kernel._args({"PTR": ptr, "OFF": self.off}, outputs) + kernel._no_pack
        # the driver's ``record`` takes every array through this table (emit.RECORD_TABLE):
        # addresses and shapes of the arrays of ``args`` (which keep them alive)
        self.table = self.table_at = None
        if kernel._record_entry is not None:
            arrays = dict(zip(ARG_GROUPS, self.args), FN=kernel.functions, MAP=kernel.node_map)
            fields = []
            for name, _, count in RECORD_TABLE:
                array = arrays[name]
                assert array.flags.c_contiguous and array.ndim == count - 1, name
                fields += [array.ctypes.data, *array.shape]
            self.table = np.array(fields, dtype=np.int64)
            self.table_at = self.table.ctypes.data


def _record_code(slots, member_index: dict, layout: dict, rec: "_RecordBuffers", never_null=()):
    """(stage, read) for the record path, generated for one driver's layout over one thread's
    buffers. ``stage(record)`` resets the input bitmaps and stores each input of the exact
    common type (float, int in range, a member, bool, ``datetime.date``, None) and returns
    True, or returns False at the first value it does not take as it is (the caller then
    stages the record carefully); a missing column is False too. ``read()`` gives
    ``{decision column: scalar}`` as :meth:`_record_outputs` does: every output unpacked into
    locals by one ``Struct.unpack_from`` over the record's buffer (or ``read(view)``: over a
    copy of its outputs' bytes), then one dict display."""
    env = {"F": rec.values["f64"], "I": rec.values["i64"], "U": rec.values["u8"], "B": rec.bits,
           "D": rec.values["i32"], "I64": _I64, "date": dt.date, "EPOCH_ORD": _EPOCH_ORDINAL,
           "ALL_VALID": rec.all_valid, "fromordinal": dt.date.fromordinal}
    lines = ["def stage(r):", "    B[:] = ALL_VALID", "    try:"]
    for i, (name, kind, row, vrow, slot) in enumerate(slots):
        lines.append(f"        v = r[{name!r}]")
        if kind == "f64":
            lines += ["        if type(v) is float:", f"            if v == v: F[{row}] = v",
                      f"            else: B[{vrow}] = 0"]
        elif kind == "i64":
            lines += ["        if type(v) is int and -I64 <= v < I64:", f"            I[{row}] = v"]
        elif kind == "u8":
            env[f"M{i}"] = member_index[slot.valid]
            lines += [f"        c = M{i}.get(v) if type(v) is str else None", "        if c is not None:",
                      f"            U[{row}] = c"]
        elif kind == "bits":
            lines += ["        if v is True:", f"            B[{row}] = 1", "        elif v is False:", f"            B[{row}] = 0"]
        elif kind == "i32":
            lines += ["        if type(v) is date:", f"            D[{row}] = v.toordinal() - EPOCH_ORD"]
        else:
            raise ValueError(f"{name}: no record staging for storage {kind}")
        lines += ["        elif v is None:", f"            B[{vrow}] = 0", "        else:", "            return False"]
    lines += ["    except KeyError:", "        return False", "    return True", ""]
    at = rec.out_index
    used: set[int] = set()

    def local(group: str, k: int) -> str:
        used.add(at[group] + k)
        return f"x{at[group] + k}"
    entries = []
    for j, (column, kind, index, value_index, vindex) in enumerate(layout["record"]):
        if kind == "collect":
            start, words, ids = index
            env[f"C{j}"] = _FiredCache(ids, words)
            masks = ", ".join(local("OM", start + w) for w in range(words))
            entries.append(f"[*C{j}[{masks}]]")          # a new list per call: the caller's to change
            continue
        if kind == "rule":
            env[f"R{j}"] = tuple(index) + (None,)            # code −1 (no rule fired): the None at the end
            entries.append(f"R{j}[{local('OI32', value_index)}]")
            continue
        if kind == "enum":
            env[f"E{j}"] = tuple(index) + (None,)            # (code −1 under a null: None)
            value = f"E{j}[{local('OI8', value_index)}]"
        elif kind == "bool":
            value = local("OU8", value_index)
        elif kind == "float":
            value = local("OF64", value_index)
        elif kind == "date":
            value = f"fromordinal({local('OI32', value_index)} + EPOCH_ORD)"
        else:
            value = local("OI64", value_index)
        entries.append(value if vindex in never_null else f"({value} if {local('OV', vindex)} else None)")
    total = sum(rec.outputs[g].shape[0] for g, _ in rec.OUTPUTS)
    names = ", ".join(f"x{k}" if k in used else "_" for k in range(total))
    env["unpack"], env["VIEW"] = struct.Struct(rec.out_format).unpack_from, rec.out_view
    lines += ["def read(view=VIEW):", f"    ({names}{',' if total == 1 else ''}) = unpack(view)" if total else "    pass"]
    lines.append("    return {" + ", ".join(f"{c[0]!r}: {e}" for c, e in zip(layout["record"], entries)) + "}")
    exec(compile("\n".join(lines) + "\n", "<record path>", "exec"), env)
    return env["stage"], env["read"]


def _output_layout(plan) -> dict:
    """How to turn a kernel's output arrays into decide_columns' columns, precomputed."""
    columns, labels, label_offset = [], [], []
    float_rows, float_valid, enum_rows, enum_valid, enum_label, rule_rows, rule_label = ([] for _ in range(7))
    for node in plan.nodes:
        for (node_name, out_name), slot in plan.outputs.items():
            if node_name != node.name:
                continue
            k = slot.type.kind
            if k == "float":
                float_rows.append(slot.value)
                float_valid.append(slot.valid)
                columns.append((slot.column, "float", slot.value, slot.valid))
            elif k == "enum":
                enum_rows.append(slot.value)
                enum_valid.append(slot.valid)
                enum_label.append(len(label_offset))
                columns.append((slot.column, "label", len(label_offset), slot.valid))
                label_offset.append(len(labels))
                labels.extend(slot.type.members)
            else:
                columns.append((slot.column, k, slot.value, slot.valid))
        rslot = plan.rules.get(node.name)
        if rslot is None:
            continue
        if rslot.collect:
            columns.append((f"{node.name}.rule", "collect", (rslot.value, rslot.words, rslot.ids), None))
        else:
            rule_rows.append(rslot.value)
            rule_label.append(len(label_offset))
            columns.append((f"{node.name}.rule", "label", len(label_offset), None))
            label_offset.append(len(labels))
            labels.extend(list(rslot.ids) + [UNIQUE_CONFLICT])
    record = []        # (column, kind, labels or rule ids, value row, validity row)
    for node in plan.nodes:
        for (node_name, out_name), slot in plan.outputs.items():
            if node_name == node.name:
                record.append((slot.column, slot.type.kind, slot.type.members, slot.value, slot.valid))
        rslot = plan.rules.get(node.name)
        if rslot is not None and rslot.collect:
            record.append((f"{node.name}.rule", "collect", (rslot.value, rslot.words, rslot.ids), None, None))
        elif rslot is not None:
            record.append((f"{node.name}.rule", "rule", tuple(rslot.ids) + (UNIQUE_CONFLICT,), rslot.value, None))
    table = np.empty(len(labels) + 1, dtype=object)
    table[:len(labels)] = labels
    table[-1] = None                          # code -1 (null) indexes the last entry
    as_array = lambda x: np.asarray(x, dtype=np.int64)
    return {"columns": columns, "labels": table, "label_offset": as_array(label_offset),
            "label_rows": len(label_offset), "float_rows": as_array(float_rows),
            "float_valid": as_array(float_valid), "enum_rows": as_array(enum_rows),
            "enum_valid": as_array(enum_valid), "enum_label": as_array(enum_label),
            "rule_rows": as_array(rule_rows), "rule_label": as_array(rule_label),
            "record": record, "has_dates": any(c[1] == "date" for c in columns), "has_collect": any(c[1] == "collect" for c in columns)}


def _collect_lists(masks: list, where, n: int) -> np.ndarray:
    """Fired-rule masks (rows of words, as Python ints) → an object array of id lists."""
    start, words, ids = where
    out = np.empty(n, dtype=object)
    for r in range(n):
        out[r] = _fired_ids([masks[start + w][r] for w in range(words)], ids)
    return out


class _FiredCache(dict):
    """A collect ruleset's fired rule ids per mask (one word, or a tuple of words): the record
    path looks a row's mask up here — one dict probe — instead of walking its bits each call.
    Computed by :func:`_fired_ids` on first sight; emptied past :data:`FIRED_CACHE_SIZE` masks
    (a ruleset of many rules could otherwise fill it with every combination it ever saw)."""

    def __init__(self, ids, words: int):
        super().__init__()
        self.ids, self.words = tuple(ids), words

    def __missing__(self, masks) -> tuple:
        fired = tuple(_fired_ids([masks] if self.words == 1 else list(masks), self.ids))
        if len(self) >= FIRED_CACHE_SIZE:
            self.clear()
        self[masks] = fired
        return fired


FIRED_CACHE_SIZE = 4096


def _fired_ids(words: list, ids) -> list:
    """The ids of the rules whose bits are set in one row's mask words (64 rules a word)."""
    fired = []
    for w, m in enumerate(words):
        while m:
            low = m & -m
            fired.append(ids[w * 64 + low.bit_length() - 1])
            m ^= low
    return fired


def _length(columns: dict, slots) -> int:
    for slot in slots:
        if slot.name in columns:
            return len(columns[slot.name])
    for v in columns.values():
        return len(v)
    return 1


_I64 = 1 << 63


def _day_number(v) -> int:
    """Days since 1970-01-01 of a date, datetime, datetime64 or ISO string."""
    if isinstance(v, dt.datetime):
        v = v.date()
    if isinstance(v, dt.date):
        return v.toordinal() - _EPOCH_ORDINAL
    if isinstance(v, np.datetime64):
        return int(v.astype("datetime64[D]").astype(np.int64))
    if isinstance(v, str):
        return dt.date.fromisoformat(v).toordinal() - _EPOCH_ORDINAL
    raise TypeError


_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def _dates(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "M":
        days = values.astype("datetime64[D]").astype(np.int64)
        return np.where(np.isnat(values), 0, days)
    if values.dtype.kind in "iu":
        return values
    return np.array([0 if v is None else (v.date() if isinstance(v, dt.datetime) else v).toordinal()
                     - _EPOCH.toordinal() for v in values], dtype=np.int64)


def _arrow_layout(plan: Plan, packing: Packing) -> list[tuple]:
    """Per decision column, in plan order, how the batch path builds its Arrow array:
    ``(column, kind, Arrow type of the values, output group, row, item width, (bitmap row,
    null counter) or None, bool bitmap row, dictionary or collect rule ids)``."""
    layout = []
    values_type = {"int": pa.int64(), "float": pa.float64(), "date": pa.date32(), "enum": pa.int8(),
                   "bool": pa.bool_()}
    for node in plan.nodes:
        for (node_name, _), slot in plan.outputs.items():
            if node_name != node.name:
                continue
            k = slot.type.kind
            group = OUTPUT_GROUP[k]
            valid = packing.valid.get(slot.valid)
            if k == "enum":
                layout.append((slot.column, "dictionary", pa.int8(), group, slot.value, 1, valid, None,
                               pa.array(slot.type.members, pa.string())))
            else:
                layout.append((slot.column, k, values_type[k], group, slot.value, np.dtype(_NP[group]).itemsize,
                               valid, packing.bools.get(slot.value), None))
        rslot = plan.rules.get(node.name)
        if rslot is None:
            continue
        column = f"{node.name}.rule"
        if rslot.collect:
            layout.append((column, "collect", None, "OM", rslot.value, rslot.words, None, None,
                           pa.array(list(rslot.ids), pa.string())))
        else:
            ids = list(rslot.ids) + ([UNIQUE_CONFLICT] if node.ir.hit == "unique" else [])
            layout.append((column, "dictionary", pa.int32(), "OI32", rslot.value, 4, packing.rules[rslot.value],
                           None, pa.array(ids, pa.string())))
    return layout


def _collect_ids(offsets: np.ndarray, indices: np.ndarray, dictionary: pa.Array, n: int) -> pa.Array:
    """A collect ruleset's fired rules (``fired_lists``' offsets and rule indices) as the list
    of fired rule ids in file order (``COLLECT_RULE_TYPE``), over those buffers without a copy."""
    codes = pa.Array.from_buffers(pa.int32(), len(indices), [None, pa.py_buffer(indices)], 0)
    values = pa.DictionaryArray.from_arrays(codes, dictionary, safe=False)
    return pa.Array.from_buffers(COLLECT_RULE_TYPE, n, [None, pa.py_buffer(offsets)], 0, children=[values])


def _share(tasks: list) -> list:
    """Run zero-argument callables (that release the GIL) on the calling thread and the
    pool's threads, claimed in turn; their results in order."""
    results = [None] * len(tasks)
    claims = itertools.count()

    def run() -> None:
        while (k := next(claims)) < len(tasks):
            results[k] = tasks[k]()
    helpers = [_pool().submit(run) for _ in range(min(THREADS, len(tasks)) - 1)]
    try:
        run()
    finally:
        for f in helpers:
            if not f.cancel():
                f.result()
    return results
