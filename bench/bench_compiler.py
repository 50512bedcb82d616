"""The ruleset compiler and its fused kernel, each against a peer measured in the same run.

- shipped bundle: compiled decisions/s on 1,000,000 accounts against the same rules evaluated
  column-wise with NumPy (models through onnxruntime) — :mod:`numpy_peer`, checked to decide
  exactly like the kernel first;
- a 10,000-row decision table (int, float and enum conditions, overlapping rows, first hit):
  accounts/s through the bitset index (goal ≥ 1,000,000/s) against the NumPy scan of its rows;
- cold and warm compile of the shipped bundle (fresh processes, a fresh cache directory);
- one account through ``Kernel.decide_columns`` and ``Kernel.decide_record``: µs per call, and
  the bare compiled call,
  against onnxruntime scoring the PD model alone on one row.

    pytest bench/bench_compiler.py --benchmark-enable -s
    POSTLOAN_BENCH_ACCOUNTS=200000 pytest bench/bench_compiler.py --benchmark-enable -s

Under ``--benchmark-disable`` (the smoke run) every measurement runs once on small sizes.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import numpy_peer  # noqa: E402

import kernel  # noqa: E402
from kernel.codegen.driver import as_of_days  # noqa: E402

AS_OF = dt.date(2026, 11, 28)
ROOT = Path(__file__).resolve().parents[1]


def _accounts(benchmark) -> int:
    return 20_000 if benchmark.disabled else int(os.environ.get("POSTLOAN_BENCH_ACCOUNTS", 1_000_000))


@pytest.fixture(scope="module")
def shipped():
    return kernel.Kernel.load()


def _timed(fn, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def test_shipped_bundle_decisions_per_second(benchmark, shipped):
    from kernel.synth import generate
    n = _accounts(benchmark)
    book = generate(n, seed=7, as_of=AS_OF)
    days = as_of_days(AS_OF)
    sample = book.slice(0, min(n, 20_000))
    decided = shipped.decide(sample, AS_OF)
    assert numpy_peer.mismatches(shipped, numpy_peer.decide(shipped, sample, days, model_outputs=decided),
                                 decided) == [], "the NumPy peer must decide exactly like the kernel"
    rounds = 1 if benchmark.disabled else 3
    ours = _timed(lambda: shipped.decide(book, AS_OF), rounds)
    peer = _timed(lambda: numpy_peer.decide(shipped, book, days), 1)
    benchmark.pedantic(shipped.decide, args=(book, AS_OF), rounds=rounds, iterations=1)
    # the rulesets alone (model scores given as columns): the compiler's own share of the work
    rules_kernel, rules_table = _rules_only(shipped, book)
    rules = _timed(lambda: [rules_kernel.run_batch(b, AS_OF) for b in rules_table.to_batches()], rounds)
    rules_peer = _timed(lambda: numpy_peer.decide(shipped, book, days, model_outputs=rules_table), 1)
    benchmark.extra_info.update({
        "accounts": n, "kernel_accounts_per_s": round(n / ours), "numpy_peer_accounts_per_s": round(n / peer),
        "speedup_vs_numpy": round(peer / ours, 1), "nodes": len(shipped.nodes),
        "rules_only_accounts_per_s": round(n / rules), "rules_only_numpy_accounts_per_s": round(n / rules_peer),
        "rules_only_speedup_vs_numpy": round(rules_peer / rules, 1)})
    print(f"\nshipped bundle ({len(shipped.nodes)} nodes) on {n:,} accounts: {n / ours:,.0f} accounts/s; "
          f"NumPy + onnxruntime peer {n / peer:,.0f}/s; {peer / ours:.1f}× faster. The rulesets alone "
          f"(model scores as columns): {n / rules:,.0f} accounts/s, NumPy {n / rules_peer:,.0f}/s, "
          f"{rules_peer / rules:.1f}× faster")


def _rules_only(k, book: pa.Table):
    """The bundle's rulesets without its models: model outputs become input columns."""
    from kernel.codegen import Plan, RulesetNode, compile_plan
    decided = k.decide(book, AS_OF)
    nodes = []
    for node in k.bundle.nodes:
        if node.kind != "ruleset":
            continue
        sources = {}
        for name, src in k.bundle.sources[node.name].items():
            model = src[0] == "output" and k.bundle.node(src[1]).kind == "model"
            sources[name] = ("column", f"{src[1]}.{src[2]}") if model else src
        nodes.append(RulesetNode(node.ruleset.ir, sources))
    table = book
    for node in k.bundle.nodes:
        if node.kind == "model":
            for out in node.outputs:
                table = table.append_column(f"{node.name}.{out}", decided.column(f"{node.name}.{out}"))
    return compile_plan(Plan.build(nodes)), table


def _big_table(rows: int, seed: int) -> str:
    """A first-hit table over dpd (int), amount (float), product (enum): random overlapping
    ranges, so a match can sit anywhere among the rows."""
    rng = np.random.default_rng(seed)
    products = ["NEW_CAR_LOAN", "USED_CAR_LOAN", "FINANCE_LEASE"]
    lines = []
    for _ in range(rows):
        d_lo = int(rng.integers(0, 360))
        a_lo = int(rng.integers(0, 200)) * 1000
        chosen = [p for p in products if rng.random() < 0.5] or [products[int(rng.integers(0, 3))]]
        lines.append(f"    - ['[{d_lo}..{d_lo + int(rng.integers(0, 30))}]', "
                     f"'[{a_lo}..{a_lo + int(rng.integers(1, 40)) * 1000})', '{', '.join(chosen)}', "
                     f"{['MILD', 'MEDIUM', 'SEVERE'][int(rng.integers(0, 3))]}, {int(rng.integers(0, 100))}]")
    text = textwrap.dedent("""\
        ruleset: big_table
        version: "1"
        inputs: {dpd: int, overdue_amount: float, product: {enum: [NEW_CAR_LOAN, USED_CAR_LOAN, FINANCE_LEASE]}}
        outputs:
          tier: {enum: [NONE, MILD, MEDIUM, SEVERE], default: NONE}
          score: {type: int, default: 0}
        table:
          when: [dpd, overdue_amount, product]
          then: [tier, score]
          rows:
        """) + "\n".join(lines) + "\n"
    return text


def test_decision_table_of_10000_rows(benchmark):
    n = _accounts(benchmark)
    rows = 10_000
    start = time.perf_counter()
    rs = kernel.compile_ruleset(_big_table(rows, seed=3))
    checked = time.perf_counter() - start
    rng = np.random.default_rng(4)
    accounts = pa.table({
        "dpd": pa.array(rng.integers(0, 400, n)),
        "overdue_amount": pa.array(rng.integers(0, 240_000, n).astype(np.float64)),
        "product": pa.array(rng.choice(["NEW_CAR_LOAN", "USED_CAR_LOAN", "FINANCE_LEASE"], n)).dictionary_encode()})
    start = time.perf_counter()
    rs.evaluate(accounts.slice(0, 10), AS_OF)                   # codegen, index, Numba
    compiled = time.perf_counter() - start
    sample = accounts.slice(0, 2_000 if benchmark.disabled else 20_000)
    got = rs.evaluate(sample, AS_OF)
    env = numpy_peer.columns_of(sample, rs.inputs)
    peer_out = numpy_peer.evaluate_ruleset(rs.ir, env, as_of_days(AS_OF), sample.num_rows)
    ids = [r.id for r in rs.ir.rules]
    assert [None if c < 0 else ids[c] for c in peer_out["rule"]] == got.column("big_table.rule").to_pylist()
    rounds = 1 if benchmark.disabled else 3
    ours = _timed(lambda: rs.evaluate(accounts, AS_OF), rounds)
    peer = _timed(lambda: numpy_peer.evaluate_ruleset(rs.ir, env, as_of_days(AS_OF), sample.num_rows), 1)
    benchmark.pedantic(rs.evaluate, args=(accounts, AS_OF), rounds=rounds, iterations=1)
    matched = 1 - got.column("big_table.rule").null_count / sample.num_rows
    benchmark.extra_info.update({
        "rows": rows, "accounts": n, "accounts_per_s": round(n / ours),
        "numpy_scan_accounts_per_s": round(sample.num_rows / peer),
        "speedup_vs_numpy_scan": round((peer / sample.num_rows) / (ours / n), 1),
        "check_s": round(checked, 2), "compile_s": round(compiled, 2), "matched_share": round(matched, 3)})
    print(f"\n{rows:,}-row table: {n / ours:,.0f} accounts/s (goal 1,000,000); NumPy scan "
          f"{sample.num_rows / peer:,.0f}/s; parse+check {checked:.1f} s, compile {compiled:.1f} s; "
          f"{matched:.0%} of accounts match a row")


_LOAD = textwrap.dedent("""\
    import json, sys, time
    start = time.perf_counter()
    import kernel
    imported = time.perf_counter()
    k = kernel.Kernel.load(sys.argv[1] if len(sys.argv) > 1 else None)
    done = time.perf_counter()
    print(json.dumps({"import_s": imported - start, "load_s": done - imported, "nodes": len(k.nodes)}))
""")


def _load_in_fresh_process(cache: Path, bundle: str | None) -> dict:
    env = {**os.environ, "POSTLOAN_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _LOAD] + ([bundle] if bundle else []), env=env,
                         capture_output=True, text=True, check=True, cwd=ROOT)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - start
    return result


def test_cold_and_warm_compile(benchmark, tmp_path):
    # the smoke run compiles one small ruleset instead of the whole shipped bundle
    bundle = str(ROOT / "tests" / "rules" / "golden" / "warnings" / "gaps.yaml") if benchmark.disabled else None
    cold = _load_in_fresh_process(tmp_path / "cache", bundle)
    warm = benchmark.pedantic(_load_in_fresh_process, args=(tmp_path / "cache", bundle), rounds=1, iterations=1)
    warm = warm or _load_in_fresh_process(tmp_path / "cache", bundle)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import numba, pyarrow, numpy"], check=True)
    floor = time.perf_counter() - start
    benchmark.extra_info.update({
        "nodes": cold["nodes"], "cold_load_s": round(cold["load_s"], 2), "warm_load_s": round(warm["load_s"], 2),
        "warm_process_s": round(warm["process_s"], 2), "import_kernel_s": round(warm["import_s"], 2),
        "bare_python_numba_pyarrow_s": round(floor, 2)})
    print(f"\ncompile of {cold['nodes']} nodes: cold Kernel.load {cold['load_s']:.1f} s; warm Kernel.load "
          f"{warm['load_s']:.2f} s (whole process {warm['process_s']:.2f} s, of which starting Python with "
          f"numba and pyarrow {floor:.2f} s)")


def test_one_account_latency(benchmark, shipped):
    from kernel.synth import generate
    book = generate(64, seed=9, as_of=AS_OF)
    columns = {}
    for name, t in shipped.inputs.items():
        col = book.column(name).slice(0, 1)
        if t.kind in ("enum", "string"):
            columns[name] = np.array(col.cast(pa.string()).to_pylist(), dtype=object)
        elif t.kind == "date":
            columns[name] = np.array(col.to_pylist(), dtype="datetime64[D]")
        elif t.kind == "int":
            columns[name] = np.array(col.fill_null(0).to_pylist(), dtype=np.int64)
        else:
            columns[name] = col.to_numpy(zero_copy_only=False)
    calls = 200 if benchmark.disabled else 5000

    def per_call(fn) -> float:
        fn()
        samples = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(calls // 5):
                fn()
            samples.append((time.perf_counter() - start) / (calls // 5))
        return statistics.median(samples) * 1e6

    ours = per_call(lambda: shipped.decide_columns(columns, AS_OF))
    record = {name: book.column(name)[0].as_py() for name in shipped.inputs}
    as_record = per_call(lambda: shipped.decide_record(record, AS_OF))
    ck = shipped._compiled
    st = ck._staging(1)
    outs = ck._allocate(1)
    bare = per_call(lambda: ck._call(1, 20000, {"PTR": st.ptr, "OFF": st.off}, outs, parallel=False))
    pd_node = next((n for n in shipped.bundle.nodes if n.kind == "model" and n.name == "pd_model"), None)
    peer = None
    if pd_node is not None:
        X = np.zeros((1, len(pd_node.model.inputs)), np.float32)
        peer = per_call(lambda: pd_node.model.run_matrix(X))
    benchmark.pedantic(shipped.decide_columns, args=(columns, AS_OF), rounds=calls // 10, iterations=10)
    benchmark.extra_info.update({"decide_columns_us": round(ours, 1), "decide_record_us": round(as_record, 1),
                                 "compiled_call_us": round(bare, 1),
                                 "onnxruntime_pd_model_one_row_us": None if peer is None else round(peer, 1)})
    print(f"\none account: decide_columns {ours:.1f} µs, decide_record {as_record:.1f} µs "
          f"(the compiled call alone {bare:.1f} µs, "
          f"{len(shipped.inputs)} input columns, {len(shipped.outputs)} decision columns); "
          + (f"onnxruntime scoring the PD model alone on one row {peer:.1f} µs" if peer else ""))
