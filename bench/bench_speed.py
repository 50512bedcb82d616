"""Speed where people wait (issue 16), each figure against a peer measured in the same run.

- the rule author's edit loop, on a copy of the shipped bundle with a warm cache: one rule of
  ``collection_tier`` changed (and the example that pins its value), then ``postloan test``
  (goal ≤ 2 s) and ``postloan decide`` on 10,000 accounts (goal ≤ 5 s: only the changed node
  compiles), each a fresh process as the author runs them; peers: the same ``decide`` with
  nothing changed, and starting Python with numba and pyarrow;
- the cold compile of the whole shipped bundle (an empty cache; goal ≤ 10 s) against the warm
  load of the same bundle in a fresh process and against the same cold compile with spawned
  (not forked) helper processes, alternating, and the shipped models' block functions (each a
  straight-line block of its own: ``kernel.models.straight``) against the interpreter of every
  op compiled for the same models, in the same run; and the ruleset nodes compiled as the kernel
  compiles them (``kernel.codegen.pipeline``, no wrappers) against the same sources through
  Numba's default pipeline, in the same run;
- the whole decision of 500,000 generated accounts (output as Arrow) against onnxruntime
  scoring the heaviest shipped model alone on the same rows with the same threads (goal
  ≥ 1.5×), and where the decision's time goes, stage by stage, on one thread.

``Decide`` against a bare grpcio echo is ``bench_grpc.py::test_decide_latency_against_echo``;
the whole of issue 16 in one run:

    pytest bench/bench_speed.py bench/bench_grpc.py -k "speed or against_echo or where_decide" \
        --benchmark-enable -s

Under ``--benchmark-disable`` (the smoke run) every measurement runs once on small sizes, and
the cold compile is of one small ruleset.

The processes of the edit loop write Python's bytecode cache (under a temporary
``PYTHONPYCACHEPREFIX``) even where ``PYTHONDONTWRITEBYTECODE`` is set, as an installed
package does: without it every start compiles the project's modules again (≈ 0.6 s here).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
from numba import njit

from kernel.codegen.helpers import call_native

ROOT = Path(__file__).resolve().parents[1]
AS_OF = dt.date(2026, 11, 28)
#: the one-rule change: mild_warned's priority, and the example that pins its value
EDIT = (("priority: 1.3 + 0.4", "priority: 1.35 + 0.4"), ("priority: 1.324}", "priority: 1.374}"))


def _env(cache: Path, pycache: Path) -> dict:
    env = {**os.environ, "POSTLOAN_CACHE_DIR": str(cache), "PYTHONPYCACHEPREFIX": str(pycache),
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])}
    env.pop("NUMBA_CACHE_DIR", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _timed_run(args: list[str], env: dict, ok=(0,)) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    assert done.returncode in ok, f"{args}: exit {done.returncode}\n{done.stderr[-2000:]}"
    return took


def _postloan(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from kernel.cli import main; sys.exit(main())", *args]


def test_speed_edit_loop(benchmark, tmp_path):
    import pyarrow.parquet as pq

    from kernel.synth import generate

    smoke = benchmark.disabled
    bundle, cache = tmp_path / "bundle", tmp_path / "cache"
    shutil.copytree(ROOT / "rulesets", bundle / "rulesets")
    shutil.copytree(ROOT / "models", bundle / "models")
    book = tmp_path / "book.parquet"
    pq.write_table(generate(1_000 if smoke else 10_000, seed=3, as_of=AS_OF), book)
    env = _env(cache, tmp_path / "pycache")
    decide = _postloan("decide", "--in", str(book), "--out", str(tmp_path / "decisions.parquet"), "--bundle",
                       str(bundle), "--as-of", AS_OF.isoformat(), "--quiet")
    test = _postloan("test", str(bundle))
    _timed_run(decide, env)                                            # compiles everything, once
    rounds = 1 if smoke else 3
    unchanged = min(_timed_run(decide, env) for _ in range(rounds))
    bare = min(_timed_run([sys.executable, "-c", "import numba, pyarrow, numpy"], env) for _ in range(rounds))
    tests_before = min(_timed_run(test, env) for _ in range(rounds))

    tests_after, decide_after = [], []
    path = bundle / "rulesets" / "collection_tier.yaml"
    original = path.read_text(encoding="utf-8")
    for k in range(rounds):                 # a new value each round: each edit compiles afresh
        text = original
        for old, new in EDIT:
            assert text.count(old) == 1
            text = text.replace(old, new.replace("35", f"3{5 + k}").replace("374", f"3{74 + 10 * k}"))
        path.write_text(text, encoding="utf-8")
        sources = len(list((cache / "kernels").glob("pl_*.py")))
        tests_after.append(_timed_run(test, env))                     # exit 0: the examples pass
        decide_after.append(_timed_run(decide, env))
        # only the changed node compiled: one new generated module, nothing else
        assert len(list((cache / "kernels").glob("pl_*.py"))) == sources + 1
    figures = {
        "accounts": pq.read_metadata(book).num_rows,
        "test_after_edit_s": min(tests_after), "test_after_edit_max_s": max(tests_after),
        "test_unchanged_s": tests_before,
        "decide_after_edit_s": min(decide_after), "decide_after_edit_max_s": max(decide_after),
        "decide_unchanged_s": unchanged, "recompile_share": (min(decide_after) - unchanged) / min(decide_after),
        "python_numba_pyarrow_s": bare,
    }
    benchmark.extra_info.update({k: round(v, 3) for k, v in figures.items()})
    print(f"\nedit loop ({figures['accounts']:,} accounts): postloan test {min(tests_after):.2f}–{max(tests_after):.2f} s "
          f"(goal 2 s; unchanged {tests_before:.2f} s); postloan decide after the edit "
          f"{min(decide_after):.2f}–{max(decide_after):.2f} s (goal 5 s) against {unchanged:.2f} s unchanged "
          f"({min(decide_after) / unchanged:.2f}×); starting Python with numba and pyarrow {bare:.2f} s")
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


_LOAD = textwrap.dedent("""\
    import json, sys, time
    start = time.perf_counter(); cpu = time.process_time()
    import kernel
    imported = time.perf_counter()
    reported = []
    k = kernel.Kernel.load(sys.argv[1] if len(sys.argv) > 1 else None, progress=lambda *a: reported.append(a))
    done = time.perf_counter()
    import resource
    helpers = resource.getrusage(resource.RUSAGE_CHILDREN)          # the compile helpers, waited for
    print(json.dumps({"import_s": imported - start, "load_s": done - imported, "cpu_s": time.process_time() - cpu,
                      "helpers_cpu_s": helpers.ru_utime + helpers.ru_stime,
                      "nodes": len(k.nodes), "reported": [r[2] for r in reported]}))
""")


def _write_bytecode(tmp_path: Path) -> None:
    """Write the libraries' bytecode (numba, llvmlite, onnx, pyarrow…) into the runs' fresh
    ``PYTHONPYCACHEPREFIX`` by one untimed process that imports what a cold compile does, as
    an installed package has it: otherwise the first cold run also compiles every library
    module to bytecode (≈ 2–3 s here), which no user's cold compile pays."""
    script = ("import kernel, sys; kernel.Kernel.load(None, compile=False); "
              "kernel.Kernel.load(sys.argv[1], progress=False)")
    subprocess.run([sys.executable, "-c", script, str(ROOT / "tests" / "rules" / "golden" / "warnings" / "gaps.yaml")],
                   env=_env(tmp_path / "bytecode", tmp_path / "pycache"), cwd=ROOT, capture_output=True, check=True)


def _load(cache: Path, bundle: str | None, **extra_env: str) -> dict:
    env = {**_env(cache, cache.parent / "pycache"), **extra_env}
    out = subprocess.run([sys.executable, "-c", _LOAD] + ([bundle] if bundle else []), env=env, capture_output=True,
                         text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_speed_cold_compile(benchmark, tmp_path):
    """The cold compile as it runs by default (helpers forked from the parent once the jobs
    are known, on Linux), against the warm load and, alternating in the same minutes, the
    cold compile with spawned helpers (a fresh Python each, started before the bundle is
    read: ``POSTLOAN_COMPILE_START=spawn``), each in a fresh process and an empty cache."""
    bundle = str(ROOT / "tests" / "rules" / "golden" / "warnings" / "gaps.yaml") if benchmark.disabled else None
    colds, spawned = [], []
    _write_bytecode(tmp_path)
    for k in range(1 if benchmark.disabled else 2):
        colds.append(_load(tmp_path / f"cache{k}", bundle))
        spawned.append(_load(tmp_path / f"spawn{k}", bundle, POSTLOAN_COMPILE_START="spawn"))
    cold = min(colds, key=lambda c: c["load_s"])
    warm = _load(tmp_path / "cache0", bundle)
    assert warm["reported"] == [] and len(cold["reported"]) >= cold["nodes"]
    cpu = lambda c: c["cpu_s"] + c["helpers_cpu_s"]  # parent and helpers together
    figures = {"nodes": cold["nodes"], "cold_load_s": cold["load_s"], "cold_process_cpu_s": cold["cpu_s"],
               "cold_helpers_cpu_s": cold["helpers_cpu_s"],
               "cold_load_max_s": max(c["load_s"] for c in colds),
               "cold_cpu_s": min(cpu(c) for c in colds), "spawn_cpu_s": min(cpu(c) for c in spawned),
               "spawn_load_s": min(c["load_s"] for c in spawned),
               "spawn_helpers_cpu_s": min(c["helpers_cpu_s"] for c in spawned),
               "warm_load_s": warm["load_s"], "cold_over_warm": cold["load_s"] / warm["load_s"]}
    benchmark.extra_info.update({k: round(v, 3) for k, v in figures.items()})
    show = lambda runs, key: "–".join(f"{v:.1f}" for v in sorted({round(r[key], 1) for r in runs}))
    print(f"\ncold compile of {cold['nodes']} nodes: Kernel.load {show(colds, 'load_s')} s (process CPU "
          f"{show(colds, 'cpu_s')} s, helper processes {show(colds, 'helpers_cpu_s')} s; goal 10 s); "
          f"spawned helpers, same minutes: {show(spawned, 'load_s')} s (process CPU {show(spawned, 'cpu_s')} s, "
          f"helpers {show(spawned, 'helpers_cpu_s')} s); CPU of parent and helpers {figures['cold_cpu_s']:.1f} s "
          f"against {figures['spawn_cpu_s']:.1f} s ({figures['cold_cpu_s'] / figures['spawn_cpu_s']:.2f}×); "
          f"warm Kernel.load {warm['load_s']:.2f} s ({cold['load_s'] / warm['load_s']:.0f}×); "
          f"compiled: {', '.join(cold['reported'])}")
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


_DEMO = textwrap.dedent("""\
    import contextlib, io, json, sys, time
    from numba.core import event
    compiled, depth = {}, []

    class Compiles(event.Listener):                 # CPU of each top-level Numba compile
        def on_start(self, ev):
            depth.append(time.process_time())

        def on_end(self, ev):
            start = depth.pop()
            if not depth:
                fn = ev.data["dispatcher"].py_func
                name = f"{fn.__module__}.{fn.__name__}"
                compiled[name] = compiled.get(name, 0.0) + time.process_time() - start
    event.register("numba:compile", Compiles())
    from kernel.cli import main
    start, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(sys.argv[1:])
    print(json.dumps({"code": code, "wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu,
                      "compiled": compiled}))
""")


def _demo(tree: Path, cache: Path, accounts: int, out: Path) -> dict:
    """``postloan demo`` of ``tree`` (the book of ``accounts``, one day) in a fresh process on
    ``cache``: its wall and CPU seconds and the CPU of each top-level Numba compile."""
    env = {**_env(cache, cache.parent / "pycache"),
           "PYTHONPATH": os.pathsep.join([str(tree), str(tree / "plugins")])}
    args = ["demo", "--accounts", str(accounts), "--days", "1", "--quiet", "--report", str(out / "report.html"),
            "--audit", str(out / "audit.log")]
    done = subprocess.run([sys.executable, "-c", _DEMO, *args], env=env, capture_output=True, text=True, check=False,
                          cwd=tree)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 0
    return result


def _plugins(result: dict) -> float:
    """CPU seconds of a demo's compiles outside the bundle (the plugins', the ledger's, the
    synthetic book's: a bundle's generated nodes live in ``postloan_kernel_*`` modules)."""
    return sum(v for k, v in result["compiled"].items() if not k.startswith("postloan_kernel_"))


def test_speed_first_demo_plugins(benchmark, tmp_path):
    """The first ``postloan demo`` a user runs, apart from the bundle: the bundle compiled
    first into an empty cache (its cold ``Kernel.load``, the peer), then the demo on that cache
    twice — the first compiles every kernel of the plugins, the ledger and the synthetic book
    on first use, the second loads them all — and the CPU of each Numba compile. With
    ``$BENCH_PEER_TREE`` (another checkout, e.g. the unchanged main) the same runs of that tree
    alternate with this one's, each on a cache of its own."""
    accounts = 2_000 if benchmark.disabled else 20_000
    trees = {"tree": ROOT}
    if os.environ.get("BENCH_PEER_TREE"):
        trees["peer"] = Path(os.environ["BENCH_PEER_TREE"]).resolve()
    _write_bytecode(tmp_path)
    figures: dict = {}
    for name, tree in trees.items():               # each tree's bundle first: the demos then alternate
        cache = tmp_path / f"cache_{name}"
        env = {**_env(cache, tmp_path / "pycache"), "PYTHONPATH": os.pathsep.join([str(tree), str(tree / "plugins")])}
        out = subprocess.run([sys.executable, "-c", _LOAD], env=env, capture_output=True, text=True, check=True,
                             cwd=tree)
        bundle = json.loads(out.stdout.strip().splitlines()[-1])
        figures[name] = {"bundle_load_s": bundle["load_s"], "bundle_cpu_s": bundle["cpu_s"] + bundle["helpers_cpu_s"]}
    for run in ("cold", "warm"):
        for name, tree in trees.items():
            figures[name][run] = _demo(tree, tmp_path / f"cache_{name}", accounts, tmp_path)
    lines = []
    for name, f in figures.items():
        cold, warm = f["cold"], f["warm"]
        f["plugins_compile_cpu_s"] = _plugins(cold)
        f["cold_minus_warm_s"] = cold["wall_s"] - warm["wall_s"]
        f["cold_minus_warm_cpu_s"] = cold["cpu_s"] - warm["cpu_s"]
        assert _plugins(warm) < 0.5, warm["compiled"]                # the second demo loads them all
        top = sorted(cold["compiled"].items(), key=lambda kv: -kv[1])[:5]
        lines.append(f"{name} ({trees[name]}): bundle cold {f['bundle_load_s']:.1f} s (CPU {f['bundle_cpu_s']:.1f} s); "
                     f"demo of {accounts:,} accounts cold {cold['wall_s']:.1f} s (CPU {cold['cpu_s']:.1f} s) against "
                     f"warm {warm['wall_s']:.1f} s (CPU {warm['cpu_s']:.1f} s): +{f['cold_minus_warm_s']:.1f} s, "
                     f"compiles outside the bundle {f['plugins_compile_cpu_s']:.1f} s of CPU "
                     f"({f['plugins_compile_cpu_s'] / f['bundle_cpu_s']:.2f}× the bundle's cold compile); the most: "
                     + ", ".join(f"{k.rsplit('.', 1)[-1]} {v:.1f}" for k, v in top))
    if "peer" in figures:
        ratio = figures["tree"]["plugins_compile_cpu_s"] / figures["peer"]["plugins_compile_cpu_s"]
        figures["tree_over_peer_plugins_cpu"] = ratio
        lines.append(f"compiles outside the bundle, this tree against the peer: {ratio:.2f}× the CPU")
    benchmark.extra_info.update(json.loads(json.dumps(figures, default=str)))
    print("\n" + "\n".join(lines))
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


_INTERPRETER = textwrap.dedent("""\
    import json, sys, time
    import numba
    import numpy as np
    from numba import types
    import kernel
    from kernel.models import kernels
    every = sys.argv[1] == "every"
    cpu = {}
    for path in sys.argv[2:]:
        model = kernel.compile_model(path)
        params = tuple(np.ascontiguousarray(p) for p in model.block.params)
        signature = (types.Array(types.float32, 2, "C"), numba.typeof(params), types.Array(types.float64, 2, "C"))
        fn = kernels.interpreter().block if every else model.block.fn
        start = time.process_time()
        fn.compile(signature)
        cpu[model.name] = time.process_time() - start
    print(json.dumps(cpu))
""")


def test_speed_model_interpreters(benchmark, tmp_path):
    """The shipped models' block functions (straight-line blocks: no interpreter), compiled into
    an empty cache, against the interpreter of every op compiled for the same models in the
    same run: CPU seconds of Numba's compile, each in a fresh process."""
    models = [str(ROOT / "models" / f"{name}.onnx") for name in (("rv_model",) if benchmark.disabled
                                                                  else ("pd_model", "rv_model"))]
    cpu = {}
    for kind in ("own", "every"):
        env = _env(tmp_path / kind, tmp_path / "pycache")
        out = subprocess.run([sys.executable, "-c", _INTERPRETER, kind, *models], env=env, capture_output=True,
                             text=True, check=True, cwd=ROOT)
        cpu[kind] = json.loads(out.stdout.strip().splitlines()[-1])
    own, every = sum(cpu["own"].values()), sum(cpu["every"].values())
    benchmark.extra_info.update({"own_cpu_s": {k: round(v, 3) for k, v in cpu["own"].items()},
                                 "every_op_cpu_s": round(every, 3), "every_over_own": every / own})
    print(f"\nmodel block functions, empty cache: each model's own {own:.1f} s of CPU ("
          + ", ".join(f"{k} {v:.1f} s" for k, v in cpu["own"].items())
          + f"); the interpreter of every op for the same models {every:.1f} s ({every / own:.1f}×)")
    assert every > own
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


_NODES = textwrap.dedent("""\
    import json, sys, time
    from pathlib import Path
    from kernel.codegen import cache, emit
    signature = emit.node_signature()
    cpu = {}
    for path in sys.argv[1:]:
        module = cache.import_source(Path(path))
        start = time.process_time()
        module.node.compile(signature)
        cpu[Path(path).stem] = time.process_time() - start
    print(json.dumps(cpu))
""")


def test_speed_node_pipeline(benchmark, tmp_path):
    """The shipped bundle's ruleset nodes compiled as the kernel compiles them (the lean
    pipeline of ``kernel.codegen.pipeline``, no CPython or C wrapper) against the same generated
    sources through Numba's default pipeline with both wrappers (``@njit(**OPTS)``, what every
    node used before): each kind in a fresh process with an empty cache, the two alternating,
    CPU seconds of the compiles (the first node's includes the helpers it calls, alike in both)."""
    from kernel.bundle import Bundle
    from kernel.codegen import emit
    from kernel.codegen.plan import RulesetNode
    from kernel.runtime import build_plan

    plan = build_plan(Bundle.load(None))
    generated = emit.generate(plan)
    sources = [s for s, n in zip(generated.nodes, plan.nodes) if isinstance(n, RulesetNode)]
    if benchmark.disabled:
        sources = sources[:2]
    decorator = "@njit(**NODE_OPTS)"
    files: dict = {"lean": [], "default": []}
    for n, node in enumerate(sources):
        assert node.source.count(decorator) == 1
        default = node.source.replace(decorator, "from kernel.codegen.helpers import OPTS\n\n\n@njit(**OPTS)")
        for kind, text in (("lean", node.source), ("default", default)):
            path = tmp_path / kind / f"pl_{kind}_{n}.py"
            path.parent.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
            files[kind].append(str(path))
    cpu: dict = {"lean": [], "default": []}
    for r in range(1 if benchmark.disabled else 2):
        for kind in ("default", "lean") if r % 2 == 0 else ("lean", "default"):
            env = _env(tmp_path / f"cache_{kind}_{r}", tmp_path / "pycache")
            out = subprocess.run([sys.executable, "-c", _NODES, *files[kind]], env=env, capture_output=True, text=True,
                                 check=True, cwd=ROOT)
            cpu[kind].append(sum(json.loads(out.stdout.strip().splitlines()[-1]).values()))
    lean, default = min(cpu["lean"]), min(cpu["default"])
    benchmark.extra_info.update({"nodes": len(sources), "lean_cpu_s": [round(x, 2) for x in cpu["lean"]],
                                 "default_cpu_s": [round(x, 2) for x in cpu["default"]],
                                 "lean_over_default": lean / default})
    print(f"\n{len(sources)} ruleset nodes compiled, empty cache: lean pipeline, no wrappers "
          f"{', '.join(f'{x:.1f}' for x in cpu['lean'])} s of CPU; Numba's default pipeline with both wrappers "
          f"{', '.join(f'{x:.1f}' for x in cpu['default'])} s ({1 - lean / default:.0%} less CPU, best against best)")
    assert lean < default
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


@njit(nogil=True)
def _call_node(address, arguments):
    """Call a compiled node (it has no CPython wrapper) through its address."""
    call_native(address, arguments)


def _best(fn, rounds: int) -> float:
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _cpu(fn, rounds: int) -> float:
    """Best CPU time of ``fn`` on the calling thread (what one stage costs, unshared)."""
    best = float("inf")
    for _ in range(rounds):
        start = time.thread_time()
        fn()
        best = min(best, time.thread_time() - start)
    return best


def stage_breakdown(k, batches: list, as_of, rounds: int = 3) -> dict:
    """Seconds of one thread's CPU per stage of ``Kernel.decide`` over ``batches``, in the
    order they run: the input addresses (casts, dictionary tables), the plain-string enum
    and category columns encoded (brand, model…), the compiled pass (every node and the
    packing of the bitmaps; each node is also timed alone over all rows, keys indented), the
    fired-rule lists of collect rulesets, the Arrow arrays and the table."""
    from kernel.codegen import cache, emit
    from kernel.codegen.driver import _Job, as_of_days
    compiled = k._compiled
    days = as_of_days(as_of)
    n = sum(b.num_rows for b in batches)
    allocated = compiled._allocate_batches([b.num_rows for b in batches])
    strings: list = []
    jobs = []

    def inputs():
        strings.clear()
        jobs.clear()
        for batch, (outputs, packed) in zip(batches, allocated):
            columns: list = []
            jobs.append(_Job(batch.num_rows, compiled._batch_inputs(batch, batch.num_rows, columns), outputs, packed))
            strings.extend((jobs[-1], slot, arr) for slot, arr in columns)

    def encode():
        for job, slot, arr in strings:
            compiled._point_at_codes(slot, compiled._string_codes(slot, arr), job.inputs["PTR"], job.inputs["keep"])

    figures = {"input addresses and casts": _cpu(inputs, rounds)}
    figures["string enums and categories encoded"] = _cpu(encode, rounds)
    compiled._run(jobs, days, parallel=False)                           # every output filled once
    nodes = [m for m in compiled._keep[:len(compiled.plan.nodes)]]
    signature = tuple(emit.node_signature())
    for index, (node, module) in enumerate(zip(compiled.plan.nodes, nodes)):
        # a node has no CPython wrapper: it is called through its address, as the driver does
        address = cache.native_address(module.node.overloads[signature])

        def one(index=index, address=address):
            for job in jobs:
                _call_node(address, (0, job.n, days, *compiled._args(job.inputs, job.outputs)[:9],
                                     *compiled._fixed_args[:3], compiled.node_map, index))
        kind = "model" if hasattr(node, "block_fn") else "ruleset"
        figures[f"  {kind} {node.name} (alone)"] = _cpu(one, rounds)
    # the nodes above each ran alone over all rows; in the decision they run block by block,
    # with the packing of the bitmaps, in one compiled pass: that pass is the stage
    figures["compiled block: every node, packing (one pass)"] = _cpu(
        lambda: compiled._run(jobs, days, parallel=False), rounds)
    fired: list = []
    figures["collect rule lists"] = _cpu(lambda: fired.__setitem__(slice(None), compiled._fired_lists(jobs)), rounds)

    def arrow():
        parts = [pa.RecordBatch.from_arrays([a for _, a in compiled._arrow_outputs(job.outputs, job.packed, job.nulls,
                                                                                   job.n, fired[i])],
                                            schema=k.output_schema) for i, job in enumerate(jobs)]
        pa.Table.from_batches(parts, schema=k.output_schema)
    figures["Arrow arrays and table"] = _cpu(arrow, rounds)
    return {"rows": n, "stages": figures}


def test_speed_bundle_against_heaviest_model(benchmark):
    import numba
    import onnxruntime as ort

    import kernel
    from kernel.codegen.driver import THREADS
    from kernel.models.features import feature_matrix
    from kernel.synth import generate

    rows = 20_000 if benchmark.disabled else int(os.environ.get("POSTLOAN_BENCH_ROWS", "500000"))
    rounds = 1 if benchmark.disabled else 5
    k = kernel.Kernel.load()
    book = generate(rows, seed=5, as_of=AS_OF)
    decided = k.decide(book, AS_OF)
    full = book
    for name in decided.column_names:               # models may read upstream outputs (vehicle age)
        if name not in full.column_names:
            full = full.append_column(name, decided.column(name))
    peers = {}
    for name in ("pd_model", "rv_model"):
        model = kernel.compile_model(str(ROOT / "models" / f"{name}.onnx"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = THREADS
        with open(model.source, "rb") as fh:
            session = ort.InferenceSession(fh.read(), options, providers=["CPUExecutionProvider"])
        feeds = model._feeds(feature_matrix(full, model.inputs))
        peers[name] = (session, feeds)
    # alternate the kernel and each peer, round by round: the machine's noise hits all alike
    ours, theirs = [], {name: [] for name in peers}
    for _ in range(rounds):
        ours.append(_best(lambda: k.decide(book, AS_OF), 1))
        for name, (session, feeds) in peers.items():
            theirs[name].append(_best(lambda s=session, f=feeds: s.run(None, f), 1))
    heaviest = max(theirs, key=lambda name: min(theirs[name]))
    whole, peer = min(ours), min(theirs[heaviest])
    # the machine is shared: CPU time (all threads) is the steadier comparison; the peer on one
    # thread without spinning, onnxruntime's least CPU per row
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    with open(ROOT / "models" / f"{heaviest}.onnx", "rb") as fh:
        lean = ort.InferenceSession(fh.read(), options, providers=["CPUExecutionProvider"])
    feeds = peers[heaviest][1]
    our_cpu, peer_cpu = [], []
    for _ in range(rounds):
        start = time.process_time()
        k.decide(book, AS_OF)
        our_cpu.append(time.process_time() - start)
        start = time.process_time()
        lean.run(None, feeds)
        peer_cpu.append(time.process_time() - start)
    batches = book.to_batches(max_chunksize=1 << 20)
    breakdown = stage_breakdown(k, batches, AS_OF, rounds=1 if benchmark.disabled else 3)
    single = sum(v for key, v in breakdown["stages"].items() if not key.startswith(" "))
    figures = {"rows": rows, "threads": THREADS, "numba_threads": numba.get_num_threads(), "heaviest": heaviest,
               "bundle_rows_per_s": rows / whole, "peer_rows_per_s": rows / peer, "ratio": peer / whole,
               "ratio_per_round": [p / w for p, w in zip(theirs[heaviest], ours)],
               **{f"{name}_onnxruntime_rows_per_s": rows / min(t) for name, t in theirs.items()},
               "one_thread_cpu_s": single, "wall_s": whole,
               "cpu_ns_per_row": min(our_cpu) / rows * 1e9, "peer_cpu_ns_per_row": min(peer_cpu) / rows * 1e9,
               "cpu_ratio": min(peer_cpu) / min(our_cpu),
               "stages_ns_per_row": {key: v / rows * 1e9 for key, v in breakdown["stages"].items()}}
    benchmark.extra_info.update(json.loads(json.dumps(figures, default=float)))
    print(f"\nshipped bundle, {rows:,} accounts to Arrow: {rows / whole:,.0f} accounts/s; onnxruntime scoring "
          f"{heaviest} alone ({THREADS} threads): {rows / peer:,.0f} rows/s -> {peer / whole:.2f}× "
          f"(rounds {min(figures['ratio_per_round']):.2f}–{max(figures['ratio_per_round']):.2f}×; goal 1.5×); "
          + ", ".join(f"{n} alone {rows / min(t):,.0f} rows/s" for n, t in theirs.items()))
    print(f"CPU time per row: the whole decision {figures['cpu_ns_per_row']:.0f} ns (all threads), onnxruntime "
          f"{heaviest} on one thread without spinning {figures['peer_cpu_ns_per_row']:.0f} ns -> "
          f"{figures['cpu_ratio']:.2f}×")
    print(f"one thread's CPU per stage (ns a row; sum {single / rows * 1e9:.0f} ns, "
          f"wall on {THREADS} threads {whole / rows * 1e9:.0f} ns):")
    for key, v in breakdown["stages"].items():
        print(f"  {key:50s} {v / rows * 1e9:7.1f}  ({v / single:5.1%})")
    benchmark.pedantic(lambda: k.decide(book, AS_OF), rounds=1, iterations=1)
