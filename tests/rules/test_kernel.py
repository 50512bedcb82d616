"""The shipped bundle through Kernel: compiled decisions equal the reference engines, the
one-account path equals the batch path, bad batches are rejected naming the column."""
import datetime as dt
import threading

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from kernel.rules import InputError

from .conftest import AS_OF


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float):
        return abs(a - b) <= 1e-5 * max(1.0, abs(b))
    return a == b


def test_compiled_equals_reference_on_a_book(shipped_kernel, small_book):
    k = shipped_kernel
    book = small_book.slice(0, 1200)
    compiled = k.decide(book, AS_OF)
    assert compiled.num_rows == 1200 and compiled.schema == k.output_schema
    # the rules exactly, fed the compiled model scores
    reference = k._reference(book, AS_OF, model_outputs=compiled)
    for name in compiled.column_names:
        got, want = compiled.column(name).to_pylist(), reference.column(name).to_pylist()
        assert got == want, f"{name}: first difference at row {next(i for i in range(len(got)) if got[i] != want[i])}"
    # the models against onnxruntime, within float32 rounding
    ort = k.decide(book.slice(0, 300), AS_OF, engine="reference")
    for node in (n for n in k.bundle.nodes if n.kind == "model"):
        for out in node.outputs:
            name = f"{node.name}.{out}"
            got, want = compiled.column(name).to_pylist()[:300], ort.column(name).to_pylist()
            assert all(_close(g, w) for g, w in zip(got, want)), name


def test_parallel_and_serial_paths_agree(shipped_kernel, small_book):
    whole = shipped_kernel.decide(small_book, AS_OF)                 # 5,000 rows: prange
    parts = [shipped_kernel.decide(small_book.slice(s, 700), AS_OF) for s in range(0, 5000, 700)]
    assert pa.concat_tables(parts).to_pylist() == whole.to_pylist()


def test_decide_columns_matches_decide(shipped_kernel, small_book):
    k = shipped_kernel
    rows = small_book.slice(100, 3)
    expected = k.decide(rows, AS_OF).to_pylist()
    for r in range(3):
        columns = {}
        for name, t in k.inputs.items():
            col = rows.column(name).slice(r, 1)
            if t.kind in ("enum", "string"):
                columns[name] = np.array(col.cast(pa.string()).to_pylist(), dtype=object)
            elif t.kind == "date":
                columns[name] = np.array(col.to_pylist(), dtype="datetime64[D]")
            else:
                columns[name] = col.to_numpy(zero_copy_only=False)
        got = k.decide_columns(columns, AS_OF)
        assert set(got) == set(k.outputs)
        for name, want in expected[r].items():
            value = got[name][0]
            if isinstance(value, np.datetime64):
                value = None if np.isnat(value) else value.astype(dt.date)
            elif isinstance(value, np.generic):
                value = value.item()
            if isinstance(want, float) and np.isnan(value):
                value = None
            assert value == want, (name, value, want)


def test_decide_columns_of_several_accounts_and_nulls(shipped_kernel):
    k = shipped_kernel
    n = 4
    columns = {}
    for name, t in k.inputs.items():
        if t.kind == "float":
            columns[name] = np.array([np.nan, 1.0, 2.0, 3.0])
        elif t.kind == "int":
            columns[name] = np.ma.masked_array(np.arange(n), mask=[True, False, False, False])
        elif t.kind == "bool":
            columns[name] = np.array([None, True, False, True], dtype=object)
        elif t.kind == "date":
            columns[name] = np.array(["NaT", "2026-01-01", "2026-06-30", "2027-01-01"], dtype="datetime64[D]")
        elif t.kind == "enum":
            columns[name] = np.array([None] + [t.members[0]] * 3, dtype=object)
        else:
            columns[name] = np.array([None, "x", "y", "z"], dtype=object)
    got = k.decide_columns(columns, AS_OF)
    table = pa.table({name: _arrow(columns[name], k.inputs[name]) for name in k.inputs})
    want = k.decide(table, AS_OF).to_pylist()
    for name in k.outputs:
        col = got[name]
        values = [None if np.ma.is_masked(v) else v for v in (col.tolist() if not isinstance(col, np.ma.MaskedArray)
                                                              else col.tolist(fill_value=None))]
        for r in range(n):
            w = want[r][name]
            v = values[r]
            if isinstance(v, float) and np.isnan(v):
                v = None
            if isinstance(v, (np.datetime64, dt.datetime)):
                v = v.date() if isinstance(v, dt.datetime) else v.astype(dt.date)
            assert v == w, (name, r, v, w)


def _arrow(values, t):
    if isinstance(values, np.ma.MaskedArray):
        return pa.array(values.data, mask=values.mask)
    if t.kind == "date":
        return pa.array(values).cast(pa.date32())
    if values.dtype == object:
        return pa.array(list(values), pa.bool_() if t.kind == "bool" else pa.string())
    return pa.array(values)


def test_explain_names_the_winning_rule_and_what_it_read(shipped_kernel, small_book):
    k = shipped_kernel
    severe = small_book.filter(pc.greater(small_book.column("dpd"), 90)).slice(0, 1)
    [explained] = k.explain(severe, AS_OF)
    decided = k.decide(severe, AS_OF).to_pylist()[0]
    bucket = explained["dpd_bucket"]
    assert bucket["rule"] == decided["dpd_bucket.rule"]
    assert bucket["inputs"]["dpd"] == severe.column("dpd")[0].as_py()
    assert bucket["outputs"]["bucket"] == decided["dpd_bucket.bucket"]
    assert set(explained) == {n.name for n in k.bundle.nodes if n.kind == "ruleset"}


def test_bad_batches_are_rejected_naming_the_column(shipped_kernel, small_book):
    k = shipped_kernel
    with pytest.raises(InputError, match="missing column `dpd`") as info:
        k.decide(small_book.drop_columns(["dpd"]), AS_OF)
    assert info.value.column == "dpd"
    wrong = small_book.set_column(small_book.schema.get_field_index("dpd"), "dpd",
                                  small_book.column("dpd").cast(pa.string()))
    with pytest.raises(InputError, match=r"column `dpd` has type string, expected int"):
        k.decide(wrong, AS_OF)
    i = small_book.schema.get_field_index("gps_status")
    bad = pa.array(["ONLINE", "SOMEWHERE"] + ["ONLINE"] * (small_book.num_rows - 2))
    with pytest.raises(InputError, match=r"column `gps_status` row 1: 'SOMEWHERE' is not one of"):
        k.decide(small_book.set_column(i, "gps_status", bad), AS_OF)
    with pytest.raises(InputError, match="missing column"):
        k.decide_columns({"dpd": np.array([1])}, AS_OF)


def test_other_arrow_types_are_accepted(shipped_kernel, small_book):
    book = small_book.slice(0, 500)
    i = book.schema.get_field_index("dpd")
    j = book.schema.get_field_index("gps_status")
    narrowed = book.set_column(i, "dpd", book.column("dpd").cast(pa.int16())) \
                   .set_column(j, "gps_status", book.column("gps_status").cast(pa.string()))
    assert shipped_kernel.decide(narrowed, AS_OF).equals(shipped_kernel.decide(book, AS_OF))


def test_concurrent_callers_get_the_same_answers(shipped_kernel, small_book):
    expected = shipped_kernel.decide(small_book, AS_OF)
    results = [None] * 3

    def run(i):
        results[i] = shipped_kernel.decide(small_book, AS_OF)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.equals(expected) for r in results)


def test_kernel_is_immutable_and_describes_itself(shipped_kernel):
    k = shipped_kernel
    with pytest.raises(AttributeError):
        k.version = {}
    assert len(k.bundle_hash) == 64
    assert "dpd_bucket.bucket" in k.outputs and "dpd_bucket.rule" in k.outputs
    assert k.inputs["dpd"].kind == "int"
    assert k.nodes.index("dpd_bucket") < k.nodes.index("collection_tier")


def test_decide_record_matches_decide(shipped_kernel, small_book):
    k = shipped_kernel
    rows = small_book.slice(200, 20)
    expected = k.decide(rows, AS_OF).to_pylist()
    for r in range(20):
        record = {name: rows.column(name)[r].as_py() for name in k.inputs}
        got = k.decide_record(record, AS_OF)
        assert got == expected[r]
    record["dpd"] = None                         # nulls: None (or NaN for floats)
    record["gps_offline_hours"] = float("nan")
    nulls = pa.table({name: pa.array([record[name]], type=rows.schema.field(name).type) for name in k.inputs})
    assert k.decide_record(record, AS_OF) == k.decide(nulls, AS_OF).to_pylist()[0]
    with pytest.raises(InputError, match="column `dpd` holds 'x', expected int"):
        k.decide_record({**record, "dpd": "x"}, AS_OF)
    with pytest.raises(InputError, match="column `gps_status`: 'LOST' is not one of"):
        k.decide_record({**record, "gps_status": "LOST"}, AS_OF)
    with pytest.raises(InputError, match="missing column `dpd`"):
        k.decide_record({n: v for n, v in record.items() if n != "dpd"}, AS_OF)
    assert k.decide_record(record, AS_OF) == k.decide(nulls, AS_OF).to_pylist()[0]     # nothing left behind


def test_decide_record_takes_values_of_other_types_through_the_careful_path(shipped_kernel, small_book):
    """The generated record path takes exact types as they are; an int for a float column,
    a datetime for a date, NumPy scalars go through the careful path, to the same decisions."""
    k = shipped_kernel
    rows = small_book.slice(0, 200)
    expected = k.decide(rows, AS_OF).to_pylist()
    types = k.inputs
    for r in range(0, 200, 7):
        record = {name: rows.column(name)[r].as_py() for name in types}
        assert k.decide_record(record, AS_OF) == expected[r]
        other = {}
        for name, value in record.items():
            kind = types[name].kind
            if kind == "float" and isinstance(value, float) and value.is_integer():
                value = int(value)
            elif kind == "int" and isinstance(value, int):
                value = np.int64(value)
            elif kind == "bool" and isinstance(value, bool):
                value = np.bool_(value)
            elif kind == "date" and value is not None:
                value = dt.datetime(value.year, value.month, value.day, 12)
            other[name] = value
        assert k.decide_record(other, AS_OF) == expected[r]


def test_decide_record_runs_the_record_entry_and_its_lists_are_the_callers(shipped_kernel, small_book, monkeypatch):
    """The record path calls the driver's ``record`` entry (the arrays from one address table)
    and reads collect rule lists from a per-mask cache: each call's lists are its own (changing
    one changes no later answer), and a cache emptied when full still answers right."""
    from kernel.codegen import driver
    k = shipped_kernel
    rows = small_book.slice(400, 60)
    expected = k.decide(rows, AS_OF).to_pylist()
    records = [{name: rows.column(name)[r].as_py() for name in k.inputs} for r in range(60)]
    calls = []
    real = k._compiled._record_entry
    monkeypatch.setattr(k._compiled, "_block_entry", None)          # block's entry must not be needed
    monkeypatch.setattr(k._compiled, "_record_entry", lambda *a: calls.append(a) or real(*a))
    monkeypatch.setattr(driver, "FIRED_CACHE_SIZE", 2)              # emptied again and again
    lists = [c for c in expected[0] if isinstance(expected[0][c], list)]
    assert lists, "the shipped bundle has collect rulesets"
    for _ in range(2):
        for record, want in zip(records, expected):
            got = k.decide_record(record, AS_OF)
            assert got == want
            for column in lists:
                got[column].append("changed by the caller")
    assert len(calls) == 120


def test_decide_record_on_several_threads_at_once(shipped_kernel, small_book):
    """Each thread stages into its own record buffer (the compiled call releases the GIL, so
    threads do overlap in it): four threads deciding different accounts all get their own."""
    k = shipped_kernel
    rows = small_book.slice(600, 40)
    expected = k.decide(rows, AS_OF).to_pylist()
    records = [{name: rows.column(name)[r].as_py() for name in k.inputs} for r in range(40)]
    wrong = []

    def work(offset: int) -> None:
        for _ in range(25):
            for r in range(offset, 40, 4):
                if k.decide_record(records[r], AS_OF) != expected[r]:
                    wrong.append(r)
    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []


def test_a_call_keeps_the_all_valid_bitmap_it_points_at_when_another_grows_it(shipped_kernel):
    """The kernel's shared all-valid bitmap is replaced by a larger one when a bigger batch
    comes; a call already pointing at the old one must hold it until its kernel has run (a
    concurrent call growing it could otherwise free memory the first call still reads)."""
    driver = shipped_kernel._compiled
    keep: list = []
    address = driver._ones_address(10, keep)
    driver._ones_address(driver._ones[0].size * 8 * 4, [])       # another call grows the bitmap
    assert driver._ones[1] != address                               # the shared one was replaced
    held = [a for a in keep if isinstance(a, np.ndarray) and a.ctypes.data == address]
    assert held and np.all(held[0] == 255)                          # and the call still holds its own


def test_decide_record_generated_staging_is_the_careful_path_on_generated_accounts(shipped_kernel, small_book):
    """The generated staging takes values of the exact common types and sends any other to the
    careful path: on accounts with nulls, NaN, infinities, values of other types and bad values,
    every answer (or error) is the careful path's alone."""
    k = shipped_kernel
    ck = k._compiled
    rows = small_book.slice(0, 300)
    rng = np.random.default_rng(5)
    types = k.inputs
    k.decide_record({name: rows.column(name)[0].as_py() for name in types}, AS_OF)
    rec = ck._local.record
    fast = rec.stage

    def decided(record, careful: bool):
        rec.stage = (lambda r: False) if careful else fast
        try:
            return k.decide_record(record, AS_OF)
        except InputError as e:
            return ("error", str(e))
        finally:
            rec.stage = fast

    swaps = {"float": [None, float("nan"), float("inf"), -float("inf"), 3, True, np.float64(2.5), np.float32(0.1),
                       "1.5", dt.date(2026, 1, 1), 10 ** 400],
             "int": [None, 7.0, 7.5, np.int64(-3), True, 2 ** 63, -2 ** 63, "x"],
             "enum": [None, "NOT_A_MEMBER", 3, b"x"], "category": [None, "NOT_A_MEMBER"],
             "string": [None, "NOT_A_MEMBER", 3],
             "bool": [None, np.bool_(True), 1], "date": [None, dt.datetime(2026, 3, 1, 9), "2026-01-01"]}
    errors = 0
    for r in range(300):
        record = {name: rows.column(name)[r].as_py() for name in types}
        for name in rng.choice(list(types), size=int(rng.integers(0, 4)), replace=False):
            choices = swaps[types[name].kind]
            record[name] = choices[int(rng.integers(len(choices)))]
        want = decided(record, careful=True)
        errors += isinstance(want, tuple)
        assert decided(record, careful=False) == want, record
    assert 0 < errors < 200
