"""Generated kernels are content-addressed files, written once and reused; each node compiles on
its own, keyed by its own content and its inputs' types, so an edit recompiles only what it
changed — and a cached node can never decide with stale code."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa

import kernel
from kernel.codegen import Plan, RulesetNode, compile_plan
from kernel.rules import ir

from .test_bundle import ACTION, BUCKET, ruleset, write

ROOT = Path(__file__).resolve().parents[2]


def _forget_drivers(monkeypatch) -> None:
    """Drop the imported driver modules (the driver is every plan's), so the compile under
    test compiles or loads its own rather than finding one in ``sys.modules``."""
    for name, module in list(sys.modules.items()):
        if name.startswith("postloan_kernel_") and hasattr(module, "record"):
            monkeypatch.delitem(sys.modules, name)


def _plan(text):
    rs = kernel.compile_ruleset(text)
    return Plan.build([RulesetNode(rs.ir, {i.name: ("column", i.name) for i in rs.ir.inputs})])


def test_sources_are_written_once_and_named_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("POSTLOAN_CACHE_DIR", str(tmp_path))
    first = compile_plan(_plan(BUCKET))
    files = sorted((tmp_path / "kernels").glob("pl_*.py"))
    assert len(files) == 2                       # the node and the driver (the same for every plan)
    stamps = {f: os.stat(f).st_mtime_ns for f in files}
    again = compile_plan(_plan(BUCKET))          # same source: same files, untouched (Numba's cache key)
    assert {f: os.stat(f).st_mtime_ns for f in sorted((tmp_path / "kernels").glob("pl_*.py"))} == stamps
    assert again.functions.tolist() == first.functions.tolist()       # the same compiled node
    changed = compile_plan(_plan(BUCKET.replace("dpd > 30", "dpd > 31")))
    assert len(list((tmp_path / "kernels").glob("pl_*.py"))) == 3      # one new node; the driver is shared
    assert changed.functions.tolist() != first.functions.tolist()
    assert changed.block is first.block


def test_a_node_compiles_once_wherever_it_sits_in_a_plan(tmp_path, monkeypatch):
    """A node's code names no position of the plan: the same ruleset after other nodes (its
    columns and outputs at other indexes) is the same compiled function, and decides right."""
    monkeypatch.setenv("POSTLOAN_CACHE_DIR", str(tmp_path))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    alone = kernel.Kernel.load(write(tmp_path / "a", bucket=BUCKET))
    other = ruleset("early", "{times_overdue_12m: int, overdue_amount: float}", "{n: {type: int, default: 0}}",
                    "- id: many\n  when: times_overdue_12m > 2 and overdue_amount > 1\n  then: {n: 1}\n")
    both = kernel.Kernel.load(write(tmp_path / "b", a_early=other, bucket=BUCKET, z_action=ACTION))
    assert both.nodes == ("early", "bucket", "action")
    assert both._compiled.plan.column("dpd", ir.INT).value != alone._compiled.plan.column("dpd", ir.INT).value
    assert alone._compiled.functions[0] == both._compiled.functions[1]
    book = pa.table({"dpd": [0, 45, None], "overdue_amount": [500.0, 500.0, 50.0], "times_overdue_12m": [3, 0, 9]})
    assert both.decide(book, "2026-11-28").equals(both.decide(book, "2026-11-28", engine="reference"))
    assert both.decide(book, "2026-11-28").column("bucket.late").to_pylist() == [False, True, False]


_LOAD = textwrap.dedent("""\
    import json, sys
    import pyarrow as pa
    from kernel.runtime import Kernel
    reported = []
    k = Kernel.load(sys.argv[1], progress=lambda done, total, name: reported.append([done, total, name]))
    compiled = [name for _, _, name in reported]
    book = pa.table({"dpd": pa.array([0, 30, 31, 45, None], pa.int64()),
                     "overdue_amount": [500.0, 500.0, 500.0, 50.0, 500.0], "times_overdue_12m": [0, 3, 1, 5, 0]})
    decided = k.decide(book, "2026-11-28")
    print(json.dumps({"compiled": compiled, "progress": reported, "same_as_reference": decided.equals(k.decide(book, "2026-11-28",
                      engine="reference")), "call": decided.column("action.call").to_pylist()}))
""")


def _load_in_fresh_process(cache: Path, bundle: Path) -> dict:
    env = {**os.environ, "POSTLOAN_CACHE_DIR": str(cache), "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])}
    env.pop("NUMBA_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", _LOAD, str(bundle)], env=env, capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_an_edit_recompiles_only_what_it_changed(tmp_path):
    """Across processes (Numba's cache on disk): nothing compiles when nothing changed; a changed
    rule recompiles its ruleset only; a new ruleset placed first (every other node's columns
    and outputs move) compiles alone; an upstream output that becomes nullable (an input type
    of its reader) recompiles both. Every load decides like the reference engine."""
    cache, folder = tmp_path / "cache", tmp_path / "bundle"
    folder.mkdir()
    write(folder, action=ACTION, bucket=BUCKET)
    first = _load_in_fresh_process(cache, folder)
    assert sorted(first["compiled"]) == ["action", "bucket"] and first["same_as_reference"]
    assert first["progress"] == [[0, 2, "bucket"], [1, 2, "action"]]      # node n of N, in evaluation order
    assert first["call"] == [False, False, True, False, False]

    assert _load_in_fresh_process(cache, folder)["compiled"] == []

    write(folder, bucket=BUCKET.replace("dpd > 30", "dpd >= 30"))
    edited = _load_in_fresh_process(cache, folder)
    assert edited["progress"] == [[0, 2, "bucket"]] and edited["same_as_reference"]
    assert edited["call"] == [False, True, True, False, False]          # the new rule, not a stale one

    other = ruleset("early", "{times_overdue_12m: int}", "{n: {type: int, default: 0}}",
                    "- id: many\n  when: times_overdue_12m > 2\n  then: {n: 1}\n")
    write(folder, a_early=other)
    added = _load_in_fresh_process(cache, folder)
    assert added["progress"] == [[0, 3, "early"]]
    (folder / "a_early.yaml").unlink()

    nullable = BUCKET.replace("dpd >= 30", "dpd > 30").replace("{late: {type: bool, default: false}}",
                                                               "{late: {type: bool, default: null}}")
    write(folder, bucket=nullable)
    retyped = _load_in_fresh_process(cache, folder)
    assert sorted(retyped["compiled"]) == ["action", "bucket"] and retyped["same_as_reference"]

    write(folder, bucket=BUCKET)                 # back to the first version: all cached
    back = _load_in_fresh_process(cache, folder)
    assert back["compiled"] == [] and back["call"] == first["call"]


def test_checked_rulesets_are_cached_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("POSTLOAN_CACHE_DIR", str(tmp_path))
    path = tmp_path / "bucket.yaml"
    path.write_text(BUCKET, encoding="utf-8")
    kernel.compile_ruleset(path)
    assert len(list((tmp_path / "checked").glob("*.pickle"))) == 1
    assert kernel.compile_ruleset(path).ir == kernel.compile_ruleset(BUCKET).ir   # text given directly: cached too
    assert len(list((tmp_path / "checked").glob("*.pickle"))) == 2
    path.write_text(BUCKET.replace("dpd > 30", "dpd > 40"), encoding="utf-8")
    assert kernel.compile_ruleset(path).ir.rules[0].when.right.value == 40
    assert len(list((tmp_path / "checked").glob("*.pickle"))) == 3


class _Terminal:
    """A stand-in for stderr on a terminal: the progress bar draws only there."""

    def __init__(self):
        self.text = ""

    def isatty(self):
        return True

    def write(self, text):
        self.text += text

    def flush(self):
        pass


def test_progress_shows_the_compiling_node_on_a_terminal_only(monkeypatch):
    from kernel.codegen import _Progress
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    shown = _Progress(11)
    shown(0, 11, "dpd_bucket")
    shown(4, 11, "early_warning")
    shown.close()
    assert "compiling node 1 of 11: dpd_bucket" in terminal.text
    assert "compiling node 5 of 11: early_warning" in terminal.text
    quiet, terminal.text = _Progress(11, bar=False), ""               # --quiet
    quiet(0, 11, "dpd_bucket")
    quiet.close()
    assert terminal.text == ""


def test_a_cold_compile_shares_its_nodes_with_a_helper_process(tmp_path, monkeypatch):
    """A helper process compiles its share of the nodes into Numba's cache; this process then
    loads them from there (a cache hit, no compile here), reports them as compiling, and
    decides exactly like the reference engine. (A spawned helper: its share is fixed, where
    forked ones claim jobs as they go.)"""
    from kernel.codegen import parallel
    from kernel.runtime import Kernel
    monkeypatch.setenv("POSTLOAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("POSTLOAN_COMPILE_WORKERS", "1")
    monkeypatch.setenv("POSTLOAN_COMPILE_START", "spawn")
    monkeypatch.setattr(parallel, "MIN_SECONDS", 0.0)              # small nodes: worth a helper here
    monkeypatch.setattr(parallel, "PARENT_SECONDS", 0.0)           # and one of the two stays here
    folder = tmp_path / "bundle"
    folder.mkdir()
    # thresholds of this test only: no other test's module with the same source is in this process
    write(folder, bucket=BUCKET.replace("dpd > 30", "dpd > 29"),
          action=ACTION.replace("overdue_amount > 100", "overdue_amount > 99"))
    reported = []
    k = Kernel.load(folder, progress=lambda done, total, name: reported.append([done, total, name]))
    assert sorted(name for _, _, name in reported) == ["action", "bucket"]
    assert [done for done, _, _ in reported] == [0, 1] and {total for _, total, _ in reported} == {2}
    modules = k._compiled._keep[:2]
    hits = [sum(m.node.stats.cache_hits.values()) for m in modules]
    misses = [sum(m.node.stats.cache_misses.values()) for m in modules]
    assert sorted(hits) == [0, 1] and sorted(misses) == [0, 1]   # one compiled here, one by the helper
    book = pa.table({"dpd": pa.array([0, 29, 30, 45, None], pa.int64()),
                     "overdue_amount": [500.0, 500.0, 99.5, 50.0, 500.0], "times_overdue_12m": [0, 3, 1, 5, 0]})
    assert k.decide(book, "2026-11-28").equals(k.decide(book, "2026-11-28", engine="reference"))
    assert k.decide(book, "2026-11-28").column("action.call").to_pylist() == [False, False, True, False, False]


def test_jobs_are_shared_longest_first_and_small_shares_stay_home():
    from kernel.codegen.parallel import MIN_SECONDS, plan_jobs
    jobs = [("interpreter", 12.0), ("a", 2.5), ("b", 1.5), ("c", 1.5), ("d", 1.0), ("e", 0.5)]
    home, helper = plan_jobs(jobs, 1)
    assert sorted(home + helper) == sorted(j for j, _ in jobs)
    assert "interpreter" in home and helper == ["a", "b", "c", "d", "e"]         # 12 s against 7 s
    assert plan_jobs([("a", MIN_SECONDS / 4), ("b", MIN_SECONDS / 4)], 3) == [["a", "b"]]   # no helper pays
    assert plan_jobs(jobs, 0) == [[j for j, _ in sorted(jobs, key=lambda j: -j[1])]]


def test_the_parent_keeps_less_for_its_own_work_and_estimates_follow_the_calls():
    from kernel.codegen import parallel
    jobs = [("a", 2.0), ("b", 2.0), ("c", 1.0), ("d", 1.0)]
    assert parallel.plan_jobs(jobs, 1) == [["a", "c"], ["b", "d"]]
    home, helper = parallel.plan_jobs(jobs, 1, parent_seconds=1.5)  # the driver, loading the helper's nodes
    assert home == ["b"] and helper == ["a", "c", "d"]
    plain = "x = 1\n" * 10
    calls = "x = select(a, b(c), d)\n" * 10
    assert parallel.node_seconds(calls) > parallel.node_seconds(plain) == parallel.NODE_SECONDS
    trees = plain + "acc1, _ = _trees_sum1(S, prog[14:44], ip, fp)\n"
    assert parallel.block_seconds(trees) - parallel.block_seconds(plain) > parallel.TREES_SECONDS
    assert parallel.block_seconds(None) == parallel.INTERPRETER_SECONDS


def test_helpers_follow_the_cpus_idle_now_not_the_lagging_load_average(monkeypatch):
    """workers() counts the CPUs idle over a short sample of /proc/stat: a machine that has just
    gone quiet still shows a load average of 1+ for a minute, and must get its helper."""
    from kernel.codegen import parallel
    monkeypatch.delenv("POSTLOAN_COMPILE_WORKERS", raising=False)
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(parallel.os, "getloadavg", lambda: (1.3, 1.3, 1.3))   # the lagging minute
    monkeypatch.setattr(parallel.time, "sleep", lambda seconds: None)

    def sampled(*samples):
        ticks = iter(samples)
        monkeypatch.setattr(parallel, "_cpu_ticks", lambda: next(ticks))

    sampled((1000, 400), (1200, 590))          # 190 of 200 ticks idle: both cores free
    assert abs(parallel.idle_cpus(2) - 1.9) < 1e-9
    sampled((1000, 400), (1200, 590))
    assert parallel.workers() == 1
    sampled((1000, 400), (1200, 420))          # 20 of 200 idle: both busy
    assert parallel.workers() == 0
    monkeypatch.setattr(parallel, "_cpu_ticks", lambda: None)                  # no /proc/stat
    assert abs(parallel.idle_cpus(2) - (2 - 1.3)) < 1e-9 and parallel.workers() == 0
    monkeypatch.setenv("POSTLOAN_COMPILE_WORKERS", "2")
    assert parallel.workers() == 2


def test_cpu_ticks_read_this_machines_proc_stat():
    from kernel.codegen import parallel
    if not os.path.exists("/proc/stat"):
        return
    total, idle = parallel._cpu_ticks()
    assert 0 <= idle <= total


def test_a_failed_helper_is_reported_and_leaves_its_jobs_to_the_parent(tmp_path, caplog):
    from kernel.codegen import parallel
    helper = parallel.Helper([{"kind": "node", "path": str(tmp_path / "missing.py"), "key": ["node", 0]}])
    with caplog.at_level("WARNING", logger="kernel.codegen"):
        helper.wait()
    assert helper.done and helper.process.returncode != 0
    assert "compile helper process failed" in caplog.text and "missing.py" in caplog.text


def _decide_on_a_terminal(tmp_path, bundle: Path, *flags: str) -> str:
    """Run `postloan decide` in a fresh process whose stderr is a terminal (a pseudo-terminal
    of 120 columns) with an empty cache; returns what it drew there."""
    import fcntl
    import pty
    import struct
    import termios

    import pyarrow.parquet as pq
    tmp_path.mkdir()
    book = tmp_path / "book.parquet"
    pq.write_table(pa.table({"dpd": pa.array([0, 45], pa.int64()), "overdue_amount": [500.0, 500.0]}), book)
    main_fd, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "POSTLOAN_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])}
    env.pop("NUMBA_CACHE_DIR", None)
    process = subprocess.Popen([sys.executable, "-c", "import sys; from kernel.cli import main; sys.exit(main())",
                                "decide", "--in", str(book), "--out", str(tmp_path / "out.parquet"), "--bundle",
                                str(bundle), "--as-of", "2026-11-28", *flags],
                               stdout=subprocess.DEVNULL, stderr=terminal, env=env, cwd=ROOT)
    os.close(terminal)
    drawn = b""
    while True:
        try:
            chunk = os.read(main_fd, 65536)
        except OSError:                   # the process ended: the terminal is closed
            break
        if not chunk:
            break
        drawn += chunk
    os.close(main_fd)
    assert process.wait() == 0, drawn.decode(errors="replace")
    return drawn.decode(errors="replace")


def test_decide_shows_the_compiling_node_on_a_terminal_unless_quiet(tmp_path):
    folder = tmp_path / "bundle"
    folder.mkdir()
    write(folder, action=ACTION.replace("overdue_amount > 100", "overdue_amount > 98"),
          bucket=BUCKET.replace("dpd > 30", "dpd > 28"))
    shown = _decide_on_a_terminal(tmp_path / "a", folder)
    assert "compiling node 1 of 2: bucket" in shown and "compiling node 2 of 2: action" in shown
    quiet = _decide_on_a_terminal(tmp_path / "b", folder, "--quiet")
    assert "compiling" not in quiet and "decided 2 accounts" in quiet


def test_a_cold_cache_starts_its_helper_before_reading_the_bundle(tmp_path, monkeypatch):
    """With a cold cache the helper process starts before the bundle is read (it warms up
    while the parent parses), then gets its share of the nodes as a helper started later
    would; the decisions are the reference engine's."""
    from kernel import bundle as bundle_module
    from kernel.codegen import parallel
    from kernel.runtime import Kernel
    monkeypatch.setenv("POSTLOAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("POSTLOAN_COMPILE_WORKERS", "1")
    monkeypatch.setenv("POSTLOAN_COMPILE_START", "spawn")
    monkeypatch.setattr(parallel, "MIN_SECONDS", 0.0)
    monkeypatch.setattr(parallel, "PARENT_SECONDS", 0.0)
    monkeypatch.setattr(parallel, "looks_cold", lambda: True)
    started, seen_by_load = [], []
    real_helper, real_load = parallel.Helper, bundle_module.Bundle.load.__func__

    class Counted(real_helper):
        def __init__(self, jobs=None):
            started.append(jobs)
            super().__init__(jobs)

    def load(cls, *args, **kwargs):
        seen_by_load.append(len(started))
        return real_load(cls, *args, **kwargs)
    monkeypatch.setattr(parallel, "Helper", Counted)
    monkeypatch.setattr(bundle_module.Bundle, "load", classmethod(load))
    folder = tmp_path / "bundle"
    folder.mkdir()
    write(folder, bucket=BUCKET.replace("dpd > 30", "dpd > 28"),
          action=ACTION.replace("overdue_amount > 100", "overdue_amount > 98"))
    k = Kernel.load(folder, progress=False)
    assert started == [None] and seen_by_load == [1]       # one helper, started (jobless) before the read
    modules = k._compiled._keep[:2]
    hits = [sum(m.node.stats.cache_hits.values()) for m in modules]
    assert sorted(hits) == [0, 1]                           # its node compiled there, loaded here
    book = pa.table({"dpd": pa.array([0, 28, 29, None], pa.int64()),
                     "overdue_amount": [500.0, 500.0, 98.5, 500.0], "times_overdue_12m": [0, 3, 1, 0]})
    assert k.decide(book, "2026-11-28").equals(k.decide(book, "2026-11-28", engine="reference"))


def test_a_cold_cache_forks_its_helper_before_reading_the_bundle(tmp_path, monkeypatch, caplog):
    """With forked helpers (the default on Linux) and a cold cache, the helper is forked before
    the bundle is read: it compiles the driver (every plan's) while the parent reads, then claims
    the nodes with the parent; the parent loads the driver and the child's nodes from Numba's
    cache, and decides as the reference engine does. Numba's first compile is the parent's,
    before the fork: the child inherits it rather than paying it again."""
    from kernel import bundle as bundle_module
    from kernel.codegen import parallel
    from kernel.runtime import Kernel
    monkeypatch.setenv("POSTLOAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("POSTLOAN_COMPILE_WORKERS", "1")
    monkeypatch.setenv("POSTLOAN_COMPILE_START", "fork")       # the default here, whatever threads ran before
    monkeypatch.setattr(parallel, "MIN_SECONDS", 0.0)
    monkeypatch.setattr(parallel, "PARENT_SECONDS", 0.0)
    monkeypatch.setattr(parallel, "looks_cold", lambda: True)
    monkeypatch.setattr(parallel, "_WARM", False)             # as in a fresh process
    started, seen_by_load, spawned, warm_at_fork = [], [], [], []
    real_early, real_load = parallel.EarlyFork, bundle_module.Bundle.load.__func__

    class Counted(real_early):
        def __init__(self, driver=True):
            started.append(driver)
            warm_at_fork.append(parallel._WARM)
            super().__init__(driver)

    def load(cls, *args, **kwargs):
        seen_by_load.append(len(started))
        return real_load(cls, *args, **kwargs)
    monkeypatch.setattr(parallel, "EarlyFork", Counted)
    monkeypatch.setattr(parallel, "Helper", lambda *a, **k: spawned.append(a))
    monkeypatch.setattr(bundle_module.Bundle, "load", classmethod(load))
    _forget_drivers(monkeypatch)
    folder = tmp_path / "bundle"
    folder.mkdir()
    write(folder, bucket=BUCKET.replace("dpd > 30", "dpd > 25"),
          action=ACTION.replace("overdue_amount > 100", "overdue_amount > 95"))
    with caplog.at_level("WARNING", logger="kernel.codegen"):
        k = Kernel.load(folder, progress=False)
    assert started == [True] and seen_by_load == [1] and spawned == []   # forked before the read, driver first
    assert warm_at_fork == [True]                                       # Numba warmed up once, then forked
    assert "failed" not in caplog.text                                  # the child exited cleanly
    compiled = k._compiled
    assert sum(compiled.block.stats.cache_hits.values()) == 1           # the driver: compiled there, loaded here
    hits = [sum(m.node.stats.cache_hits.values()) for m in compiled._keep[:2]]
    assert 0 <= sum(hits) <= 2, hits                                    # the nodes: claimed by either
    book = pa.table({"dpd": pa.array([0, 25, 26, None], pa.int64()),
                     "overdue_amount": [500.0, 500.0, 95.5, 500.0], "times_overdue_12m": [0, 3, 1, 0]})
    assert k.decide(book, "2026-11-28").equals(k.decide(book, "2026-11-28", engine="reference"))
    record = {"dpd": 26, "overdue_amount": 95.5, "times_overdue_12m": 1}
    assert k.decide_record(record, "2026-11-28") == k.decide(pa.table(
        {n: [v] for n, v in record.items()}), "2026-11-28", engine="reference").to_pylist()[0]


def test_an_early_fork_given_nothing_ends_after_the_driver_and_a_failed_one_leaves_it_here(tmp_path, monkeypatch,
                                                                                        caplog):
    """An early fork whose compile has nothing worth sharing compiles the driver only (the
    parent waits for it and loads it from the cache); one that fails is reported, and the
    parent compiles the driver itself."""
    from kernel.codegen import emit, parallel
    monkeypatch.setenv("POSTLOAN_CACHE_DIR", str(tmp_path / "cache"))
    _forget_drivers(monkeypatch)
    plan = _plan(BUCKET.replace("dpd > 30", "dpd > 24"))
    helper = parallel.EarlyFork()
    with caplog.at_level("WARNING", logger="kernel.codegen"):
        compiled = compile_plan(plan, progress=False, helpers=[helper])   # one small node: not shared
    assert helper.done and helper.returncode == 0 and "failed" not in caplog.text
    assert sum(compiled.block.stats.cache_hits.values()) == 1
    batch = pa.record_batch({"dpd": pa.array([0, 24, 25, None], pa.int64())})
    decided = compiled.run_batch(batch, "2026-11-28")
    # a child that fails before its jobs: reported, and the parent compiles the driver itself
    monkeypatch.setenv("POSTLOAN_CACHE_DIR", str(tmp_path / "cache2"))
    _forget_drivers(monkeypatch)
    real_source = emit.driver_source

    def broken():
        raise RuntimeError("no driver here")
    emit.driver_source = broken                       # in the child only: restored before the parent needs it
    try:
        helper = parallel.EarlyFork()
    finally:
        emit.driver_source = real_source
    with caplog.at_level("WARNING", logger="kernel.codegen"):
        compiled = compile_plan(plan, progress=False, helpers=[helper])
    assert helper.done and helper.returncode == 1
    assert "compile helper process failed" in caplog.text and "no driver here" in caplog.text
    assert sum(compiled.block.stats.cache_misses.values()) == 1     # compiled here
    assert compiled.run_batch(batch, "2026-11-28") == decided


def test_a_cold_compile_forks_its_helper_once_the_jobs_are_known(tmp_path, monkeypatch):
    """A compile worth sharing with a cache that is not cold (helpers started before the read
    only for an empty one): the helper is forked with its share once the jobs are known,
    compiles it into Numba's cache in the child, and the parent loads it from there; the
    decisions are the reference engine's."""
    from kernel.codegen import parallel
    from kernel.runtime import Kernel
    monkeypatch.setenv("POSTLOAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("POSTLOAN_COMPILE_WORKERS", "1")
    monkeypatch.setenv("POSTLOAN_COMPILE_START", "fork")       # the default here, whatever threads ran before
    monkeypatch.setattr(parallel, "MIN_SECONDS", 0.0)
    monkeypatch.setattr(parallel, "PARENT_SECONDS", 0.0)
    monkeypatch.setattr(parallel, "looks_cold", lambda: False)
    assert parallel.start_method() == "fork" and parallel.prestart() == []
    forked, spawned = [], []
    real_forked = parallel.ForkedHelper

    class Counted(real_forked):
        def wait(self):
            super().wait()
            forked.append(self.returncode)

    monkeypatch.setattr(parallel, "ForkedHelper", Counted)
    monkeypatch.setattr(parallel, "Helper", lambda *a, **k: spawned.append(a))
    folder = tmp_path / "bundle"
    folder.mkdir()
    write(folder, bucket=BUCKET.replace("dpd > 30", "dpd > 27"),
          action=ACTION.replace("overdue_amount > 100", "overdue_amount > 97"))
    k = Kernel.load(folder, progress=False)
    assert forked and set(forked) == {0} and spawned == []       # one child (waited for once per job), exited cleanly
    # the three jobs (two nodes, the driver) claimed in turn: at least one compiled in the child
    # and loaded here from the cache, at least one compiled here
    hits = [sum(m.node.stats.cache_hits.values()) for m in k._compiled._keep[:2]]
    hits.append(sum(k._compiled.block.stats.cache_hits.values()))
    assert 1 <= sum(hits) <= 2, hits
    book = pa.table({"dpd": pa.array([0, 27, 28, None], pa.int64()),
                     "overdue_amount": [500.0, 500.0, 97.5, 500.0], "times_overdue_12m": [0, 3, 1, 0]})
    assert k.decide(book, "2026-11-28").equals(k.decide(book, "2026-11-28", engine="reference"))


def test_a_forked_helper_can_compile_the_driver_while_the_parent_compiles_nodes(tmp_path, monkeypatch):
    """The driver (``block`` and ``record``) is a job of a cold compile shared with forked
    helpers, like a node: given to the helper, it compiles there while the parent compiles the
    nodes, and the parent loads it from Numba's cache; the decisions are the reference's."""
    from kernel import codegen
    from kernel.codegen import parallel
    from kernel.runtime import Kernel
    monkeypatch.setenv("POSTLOAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("POSTLOAN_COMPILE_WORKERS", "1")
    monkeypatch.setenv("POSTLOAN_COMPILE_START", "fork")
    monkeypatch.setattr(parallel, "MIN_SECONDS", 0.0)
    monkeypatch.setattr(parallel, "looks_cold", lambda: False)       # forked once the jobs are known
    shared = []

    def driver_to_the_helper(jobs, helpers, parent_seconds=0.0):
        keys = [key for key, _ in jobs]
        shared.append(keys)
        return [[k for k in keys if k != codegen.DRIVER_JOB], [codegen.DRIVER_JOB]]

    monkeypatch.setattr(parallel, "plan_jobs", driver_to_the_helper)
    _forget_drivers(monkeypatch)
    folder = tmp_path / "bundle"
    folder.mkdir()
    write(folder, bucket=BUCKET.replace("dpd > 30", "dpd > 26"),
          action=ACTION.replace("overdue_amount > 100", "overdue_amount > 96"))
    k = Kernel.load(folder, progress=False)
    assert shared and codegen.DRIVER_JOB in shared[0]
    compiled = k._compiled
    assert sum(compiled.block.stats.cache_hits.values()) == 1        # compiled in the helper, loaded here
    book = pa.table({"dpd": pa.array([0, 26, 27, None], pa.int64()),
                     "overdue_amount": [500.0, 500.0, 96.5, 500.0], "times_overdue_12m": [0, 3, 1, 0]})
    assert k.decide(book, "2026-11-28").equals(k.decide(book, "2026-11-28", engine="reference"))
    record = {"dpd": 27, "overdue_amount": 96.5, "times_overdue_12m": 1}
    assert k.decide_record(record, "2026-11-28") == k.decide(pa.table(
        {n: [v] for n, v in record.items()}), "2026-11-28", engine="reference").to_pylist()[0]


def test_forked_helpers_claim_their_share_then_relieve_the_others():
    """Each process walks its own share, then the others' from their short end; a job is
    claimed by exactly one process, across a fork; a process that finished early takes the
    jobs the other has not started."""
    import os

    from kernel.codegen import parallel
    claims = parallel.Claims([[("node", 0)], [("model", 3), ("node", 1), ("node", 2)]])
    try:
        assert claims.order(0) == [("node", 0), ("node", 2), ("node", 1), ("model", 3)]
        assert claims.order(1) == [("model", 3), ("node", 1), ("node", 2), ("node", 0)]
        assert claims.take(("node", 0)) and not claims.take(("node", 0))
        pid = os.fork()
        if pid == 0:                          # the helper: its longest job only, then "slow"
            os._exit(0 if claims.take(("model", 3)) and not claims.take(("node", 0)) else 1)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        # the parent, done with its share, relieves the helper of what it has not claimed
        taken = [key for key in claims.order(0) if claims.take(key)]
        assert taken == [("node", 2), ("node", 1)]
    finally:
        claims.close()
    assert not os.path.exists(claims.dir)


def test_a_failed_forked_helper_is_reported_and_a_killed_one_is_not(caplog):
    from kernel.codegen import parallel

    def fails():
        raise RuntimeError("no such node: pl_missing")
    helper = parallel.ForkedHelper(fails)
    with caplog.at_level("WARNING", logger="kernel.codegen"):
        helper.wait()
    assert helper.done and helper.returncode == 1
    assert "compile helper process failed" in caplog.text and "pl_missing" in caplog.text
    caplog.clear()
    import time
    slow = parallel.ForkedHelper(lambda: time.sleep(60))
    with caplog.at_level("WARNING", logger="kernel.codegen"):
        slow.kill()
    assert slow.done and slow.returncode != 0 and "failed" not in caplog.text


def test_the_start_method_follows_the_environment(monkeypatch):
    from kernel.codegen import parallel
    monkeypatch.setenv("POSTLOAN_COMPILE_START", "spawn")
    assert parallel.start_method() == "spawn"
    monkeypatch.setenv("POSTLOAN_COMPILE_START", "fork")
    assert parallel.start_method() == "fork"
    monkeypatch.delenv("POSTLOAN_COMPILE_START")
    import threading
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    assert parallel.start_method() == ("fork" if sys.platform.startswith("linux") else "spawn")
    monkeypatch.setattr(threading, "active_count", lambda: 3)     # a server's threads: never forked
    assert parallel.start_method() == "spawn"


def test_an_early_helper_with_nothing_to_do_is_ended_quietly(tmp_path, caplog):
    """A helper started early for a cache that turns out warm (or a bundle that fails to
    load) is ended, not reported as a failed helper."""
    from kernel.codegen import parallel
    helper = parallel.Helper()
    plan = _plan(BUCKET.replace("dpd > 30", "dpd > 32"))
    compile_plan(plan, progress=False)                        # compiled (warm) ...
    with caplog.at_level("WARNING", logger="kernel.codegen"):
        compile_plan(plan, progress=False, helpers=[helper])  # ... so nothing to share
    assert helper.done and helper.process.returncode is not None
    assert "failed" not in caplog.text


def test_looks_cold_is_an_empty_cache_folder(tmp_path, monkeypatch):
    from kernel.codegen import parallel
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    assert parallel.looks_cold()                            # no folder yet
    (tmp_path / "numba").mkdir()
    assert parallel.looks_cold()
    (tmp_path / "numba" / "kernel_codegen_helpers").mkdir()
    assert not parallel.looks_cold()
