"""Cold compiles spread over processes: the nodes of a plan compile independently (each is keyed
by its own content), and Numba's compiler is single-threaded and holds a global lock, so the
only way to use a second core is a second process. A helper process compiles its share into
Numba's cache on disk; the parent then loads those nodes from the cache as it would on any
warm start.

Used only when it pays: :data:`MIN_SECONDS` of estimated compile work left for the helpers.
An edit that recompiles one ruleset never starts one. ``$POSTLOAN_COMPILE_WORKERS`` sets how
many helpers may run (default: one per idle CPU beyond the caller's, at most 3; ``0`` compiles
everything in the calling process).

How a helper starts (:func:`start_method`, ``$POSTLOAN_COMPILE_START``): ``fork`` (the default
where ``os.fork`` exists, on Linux) forks the parent — with a cold cache before the bundle is
read (:class:`EarlyFork`, by :func:`prestart`: it compiles the driver while the parent reads,
then claims jobs with it), otherwise once the jobs are known (:class:`ForkedHelper`: the child
inherits the imported modules, the generated nodes and Numba's initialized compiler, and
compiles at once); ``spawn`` starts a fresh Python (:class:`Helper`, started early by
:func:`prestart`), which pays ≈ 1.5 s of CPU for Python, NumPy, Numba and Numba's first
compile before its first job.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger("kernel.codegen")

#: estimated seconds of compile work a helper must get before one is started
MIN_SECONDS = 3.0
#: estimated CPU seconds of a node's compile: a fixed part and a part per "(" of its source
#: (a call or a grouping: Numba types and lowers a node's calls one by one, and a feature
#: gathered for a model costs several). Fitted to the shipped bundle's nine ruleset nodes and
#: two model nodes compiled one by one in one process (0.44-1.58 s; within ±0.2 s of each,
#: where the lines of source, the earlier measure, were off by up to 2x: 287 lines of the PD
#: node took 1.6 s, 344 of collection_tier 0.8 s)
NODE_SECONDS, SECONDS_PER_CALL = 0.15, 0.0045
#: a model's straight-line block (kernel.models.straight): per line of source, and the tree
#: functions it calls (compiled once per process: the RV block, 54 lines, took 2.3 s, the
#: PD block, 241 lines without trees, 1.1 s); a model on its interpreter: per interpreter
BLOCK_SECONDS_PER_LINE, TREES_SECONDS, INTERPRETER_SECONDS = 0.0045, 1.9, 4.0
#: the parent's own compile work after its share: loading the helpers' nodes from the cache
#: (and the driver, when no forked helper takes it)
PARENT_SECONDS = 0.8
#: the driver (``block`` and ``record``): 1.4-1.6 s of CPU; with forked helpers it is a job
#: like a node's, so it compiles while the nodes do rather than after them, in the parent
DRIVER_SECONDS = 1.5


def node_seconds(source: str) -> float:
    """Estimated CPU seconds of compiling a generated node of ``source``."""
    return NODE_SECONDS + SECONDS_PER_CALL * source.count("(")


def block_seconds(source: str | None) -> float:
    """Estimated CPU seconds of compiling a model's block function: a straight-line block's
    ``source``, or None for an interpreter."""
    if source is None:
        return INTERPRETER_SECONDS
    return BLOCK_SECONDS_PER_LINE * source.count("\n") + (TREES_SECONDS if "_trees_sum1(" in source else 0.0)

_ROOT = Path(__file__).resolve().parents[2]


def workers() -> int:
    """How many helper processes a cold compile may start: ``$POSTLOAN_COMPILE_WORKERS``, else
    one per idle CPU beyond the caller's own, at most 3. On a machine whose cores are all busy
    a helper only competes with the parent: measured on the project's shared 2-core machine at
    a load of 4-6, one helper made the shipped bundle's cold compile 10-25 % slower, not
    faster. The idle share is rounded: on 2 cores 1.5 idle cores leave the second core to a
    helper."""
    configured = os.environ.get("POSTLOAN_COMPILE_WORKERS")
    if configured is not None and configured.strip() != "":
        return max(0, int(configured))
    cpus = os.cpu_count() or 1
    return max(0, min(3, cpus - 1, round(idle_cpus(cpus) - 1)))


def idle_cpus(cpus: int) -> float:
    """How many of ``cpus`` are idle now: measured over :data:`IDLE_SAMPLE_SECONDS` from
    /proc/stat where there is one, else from the one-minute load average. The load average
    lags by a minute: right after other work (a benchmark, the tests, the caller's own
    imports) it still says the cores are busy — measured, a cold compile on an idle 2-core
    machine read a load of 1.3 and started no helper (27 s instead of 13 s)."""
    first = _cpu_ticks()
    if first is not None:
        time.sleep(IDLE_SAMPLE_SECONDS)
        second = _cpu_ticks()
        if second is not None and second[0] > first[0]:
            return cpus * (second[1] - first[1]) / (second[0] - first[0])
    try:
        return cpus - os.getloadavg()[0]
    except (AttributeError, OSError):          # no load average on this platform
        return cpus


#: how long :func:`idle_cpus` watches the CPUs (paid only when a compile is about to start)
IDLE_SAMPLE_SECONDS = 0.05


def _cpu_ticks() -> tuple[int, int] | None:
    """All CPUs' (total, idle + iowait) clock ticks since boot, or None without /proc/stat."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != b"cpu":
        return None
    ticks = [int(v) for v in fields[1:9]]      # user nice system idle iowait irq softirq steal
    return sum(ticks), ticks[3] + ticks[4]


def is_cached(dispatcher) -> bool:
    """Whether Numba's on-disk cache has an index for ``dispatcher`` (a generated module is
    never rewritten, so an index found is this source's). A wrong guess costs only time: a
    job thought missing loads from the cache in the helper; one thought cached compiles in
    the parent."""
    try:
        return bool(dispatcher.overloads) or os.path.exists(dispatcher._cache._cache_file._index_path)
    except AttributeError:
        return False


def plan_jobs(jobs: list[tuple[str, float]], helpers: int, parent_seconds: float = 0.0) -> list[list[str]]:
    """Share ``jobs`` (key, estimated seconds) between the parent (bin 0, already loaded
    with ``parent_seconds`` of its own) and up to ``helpers`` helper processes: longest first,
    each to the least-loaded bin. Helpers whose share is below :data:`MIN_SECONDS` are
    dropped (their jobs stay with the parent)."""
    bins: list[list] = [[0.0, []] for _ in range(helpers + 1)]
    bins[0][0] = parent_seconds
    for key, cost in sorted(jobs, key=lambda j: -j[1]):
        least = min(bins, key=lambda b: b[0])
        least[0] += cost
        least[1].append(key)
    shares = [bins[0][1]]
    for load, keys in bins[1:]:
        if load >= MIN_SECONDS and keys:
            shares.append(keys)
        else:
            shares[0].extend(keys)
    return shares


def looks_cold() -> bool:
    """Whether Numba's cache of this code version is still empty (its folder missing or
    empty): the first load after an install or an upgrade compiles every node, the case a
    helper started before the bundle is even read (:func:`prestart`) pays for."""
    from . import cache
    cache.configure_numba_cache()
    folder = os.environ["NUMBA_CACHE_DIR"]
    try:
        with os.scandir(folder) as entries:
            return next(entries, None) is None
    except OSError:
        return True


def start_method() -> str:
    """``"fork"`` or ``"spawn"``: ``$POSTLOAN_COMPILE_START`` when set, else ``fork`` on Linux
    in a process running one Python thread (elsewhere forking a process that has loaded LLVM
    is not a thing to rely on; and a server's other threads — gRPC's, a reload beside live
    requests — may hold locks a child would wait on forever: such a process spawns)."""
    import threading
    configured = (os.environ.get("POSTLOAN_COMPILE_START") or "").strip().lower()
    if configured in ("fork", "spawn"):
        return configured if configured == "spawn" or hasattr(os, "fork") else "spawn"
    alone = threading.active_count() == 1
    return "fork" if sys.platform.startswith("linux") and hasattr(os, "fork") and alone else "spawn"


def prestart() -> list:
    """Helper processes started before the caller reads and plans its bundle, when the cache
    looks cold (:func:`looks_cold`) and :func:`workers` allows any. The caller hands them to
    :func:`kernel.codegen.compile_plan`, which gives them jobs or lets them end.

    Forked helpers (:func:`start_method`) are :class:`EarlyFork` s: forked once Numba and the
    helpers every node calls are imported and Numba's first compile is done (:func:`warm_up`:
    the parent's first compile would pay it anyway, so the children inherit it instead of each
    paying it again), the first compiles the driver — the same module for every plan — while
    the parent parses, then claims jobs with the parent once they are known.
    Spawned ones are :class:`Helper` s: each imports Python, NumPy and Numba and initializes
    Numba's compiler (≈ 1.5 s of its own CPU) while the parent parses, then waits for a fixed
    share (:meth:`Helper.send`)."""
    if not looks_cold():
        return []
    count = workers()
    if not count:
        return []
    if start_method() == "fork":
        from . import helpers  # noqa: F401 — Numba and the node helpers: imported once, inherited
        warm_up()
        return [EarlyFork(driver=i == 0) for i in range(count)]
    return [Helper() for _ in range(count)]


class Helper:
    """One helper process compiling ``jobs`` (JSON-able dicts, see :func:`main`): given at
    once, or later by :meth:`send` (a helper started early waits for them, warmed up)."""

    def __init__(self, jobs: list[dict] | None = None):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        self.keys: list = []
        # stderr to a file, not a pipe: a helper that writes more than a pipe holds (warnings,
        # a long traceback) before the parent reads would wait forever
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115 — closed in wait()
        self.process = subprocess.Popen([sys.executable, "-c", "from kernel.codegen.parallel import main; main()"],
                                        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.errors,
                                        env=env, cwd=str(_ROOT))
        self.done = False
        self.sent = False
        if jobs is not None:
            self.send(jobs)

    def send(self, jobs: list[dict]) -> None:
        """Hand the helper its jobs (once); a helper that already died is reported by
        :meth:`wait`, and its jobs then compile in the parent."""
        self.keys = [job["key"] for job in jobs]
        self.sent = True
        try:
            self.process.stdin.write(json.dumps(jobs).encode())
            self.process.stdin.close()
        except OSError:                  # it exited early (a broken pipe): wait() says why
            pass

    def wait(self) -> None:
        """Wait for the helper; a failure is logged (the parent then compiles those jobs)."""
        if self.done:
            return
        code = self.process.wait()
        self.errors.seek(0)
        err = self.errors.read()
        self.errors.close()
        self.done = True
        if code != 0:
            log.warning("a compile helper process failed (exit %s); compiling its nodes here: %s", code,
                        err.decode(errors="replace")[-2000:])

    def kill(self) -> None:
        """End the helper now (jobs it had not finished compile in the parent); a helper ended
        here is not reported as failed."""
        if not self.done:
            self.process.kill()
            self.process.wait()
            if not self.sent:
                self.process.stdin.close()
            self.errors.close()
            self.done = True


class ForkedHelper:
    """A helper forked from the parent when its share is known: ``work()`` runs in the child,
    which compiles into Numba's cache as a spawned :class:`Helper` does, then exits (``os._exit``:
    none of the parent's exit handlers or buffers run twice). It needs no imports, no job
    description and no warm-up of its own: it has the parent's. Same interface as
    :class:`Helper` (``done``, :meth:`wait`, :meth:`kill`)."""

    def __init__(self, work):
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115 — closed in wait()/kill()
        self.done = False
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()                 # nothing buffered is written twice
            except (AttributeError, OSError, ValueError):
                pass
        from numba.core.compiler_lock import global_compiler_lock
        with global_compiler_lock:             # no thread of ours is inside Numba's compiler
            pid = os.fork()
        if pid == 0:                           # the child (its copy of the lock released as the parent's)
            code = 1
            try:
                os.dup2(self.errors.fileno(), 2)        # what native code prints, too
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                work()
                code = 0
            except BaseException:  # noqa: BLE001 — reported by the parent's wait()
                import traceback
                self.errors.write(traceback.format_exc().encode())
            finally:
                try:
                    self.errors.flush()
                finally:
                    os._exit(code)
        self.pid = pid
        self.returncode: int | None = None

    def wait(self) -> None:
        """Wait for the child; a failure is logged (the parent then compiles those jobs)."""
        if self.done:
            return
        _, status = os.waitpid(self.pid, 0)
        self.returncode = os.waitstatus_to_exitcode(status)
        self.errors.seek(0)
        err = self.errors.read()
        self.errors.close()
        self.done = True
        if self.returncode != 0:
            log.warning("a compile helper process failed (exit %s); compiling its nodes here: %s", self.returncode,
                        err.decode(errors="replace")[-2000:])

    def kill(self) -> None:
        """End the child now (jobs it had not finished compile in the parent), quietly."""
        if not self.done:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
            self.errors.close()
            self.done = True


class Claims:
    """Jobs shared between the parent and its forked helpers by claiming: each process walks
    its own share (:func:`plan_jobs`, longest first), then the others' unclaimed jobs from their
    short end, and compiles a job only when it creates the job's claim file first (``O_EXCL``:
    exactly one process gets each). A process that the estimates or the machine's other load
    left behind is relieved by the other, so the compile ends when the work does."""

    def __init__(self, shares: list[list], folder: str | None = None):
        """``folder``: the claims of a compile another process created (an early fork's)."""
        self.shares = shares
        self.dir = folder or tempfile.mkdtemp(prefix="postloan-claims-")

    def order(self, process: int) -> list:
        """The jobs in the order process ``process`` (0: the parent) tries to claim them."""
        others = [key for i, share in enumerate(self.shares) if i != process for key in reversed(share)]
        return [*self.shares[process], *others]

    def take(self, key) -> bool:
        """Claim ``key`` for this process: False when another process has it."""
        try:
            os.close(os.open(os.path.join(self.dir, "-".join(map(str, key))), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True

    def close(self) -> None:
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)


class Crew:
    """The forked helpers of one compile, waited for and ended together (:class:`Claims` does
    not say in advance which of them compiles a job); same interface as :class:`Helper`."""

    def __init__(self, helpers: list[ForkedHelper]):
        self.helpers = helpers

    @property
    def done(self) -> bool:
        return all(h.done for h in self.helpers)

    def wait(self) -> None:
        for helper in self.helpers:
            helper.wait()

    def kill(self) -> None:
        for helper in self.helpers:
            helper.kill()


def warm_up() -> None:
    """Numba's first compile in a process initializes its typing and target contexts, LLVM
    and the runtime (≈ 0.4-0.5 s of CPU): run before forking helpers, it is paid once. Once
    per process: the children and a second call have it already."""
    global _WARM
    if not _WARM:
        import numba
        numba.njit(lambda x: x + 1)(1)
        _WARM = True


_WARM = False


#: the write ends of the early forks' job pipes still open in this process: a later fork closes
#: its copies, so that each early fork sees the end of its own pipe when the parent closes it
_EARLY_PIPES: set[int] = set()


class EarlyFork:
    """A helper forked before the bundle is read (:func:`prestart`, a cold cache): while the
    parent reads, checks and plans the bundle (≈ 3 s of CPU on the shipped one, its other core
    idle until now), the first of them (``driver``) compiles the driver module
    (:func:`.emit.driver_source`: the same for every plan) into Numba's cache. Then it waits
    for :meth:`send`: the folder of the compile's :class:`Claims` and the jobs in the order
    this process claims them (JSON, as a spawned helper's, one line), compiles each job it
    claims into Numba's cache, and exits. Sent
    nothing (no jobs worth sharing), it exits after the driver. Same interface as
    :class:`Helper` (``done``, :meth:`wait`, :meth:`kill`)."""

    def __init__(self, driver: bool = True):
        read, write = os.pipe()
        try:
            self._forked = ForkedHelper(lambda: _early_work(read, write, driver))
        finally:
            os.close(read)
        self._pipe: int | None = write
        _EARLY_PIPES.add(write)
        self.driver = driver

    @property
    def done(self) -> bool:
        return self._forked.done

    @property
    def returncode(self) -> int | None:
        return self._forked.returncode

    def send(self, claims: str | None = None, jobs: list = ()) -> None:
        """Hand the child the claims folder and its jobs in claiming order (``[(key, job)]``,
        ``job`` as :func:`main` reads it); nothing: it ends after the driver."""
        if self._pipe is None:
            return
        message = (json.dumps({"claims": claims, "jobs": [[list(key), job] for key, job in jobs]}) + "\n").encode()
        try:
            view = memoryview(message)
            while view:
                view = view[os.write(self._pipe, view):]
        except OSError:                  # it exited early: wait() says why
            pass
        self._close()

    def wait(self) -> None:
        self.send()                      # nothing more for it, if nothing was sent
        self._forked.wait()

    def kill(self) -> None:
        self._close()
        self._forked.kill()

    def _close(self) -> None:
        if self._pipe is not None:
            _EARLY_PIPES.discard(self._pipe)
            os.close(self._pipe)
            self._pipe = None


def _early_work(read: int, write: int, driver: bool) -> None:
    """An :class:`EarlyFork` child's work (see there)."""
    os.close(write)
    for other in _EARLY_PIPES:           # the earlier forks' pipes: the parent's to close
        os.close(other)
    if driver:
        from . import cache, emit
        cache.import_source(cache.write_source(emit.driver_source()))
    with os.fdopen(read, "rb") as pipe:
        line = pipe.readline()
    if not line.strip():
        return
    message = json.loads(line)
    if not message["jobs"]:
        return
    claims = Claims([], message["claims"])
    for key, job in message["jobs"]:
        if claims.take(key):
            run_job(job)


def main() -> None:
    """A spawned helper process: read the jobs (JSON on stdin) and compile each into Numba's
    cache (:func:`run_job`)."""
    from . import cache
    cache.configure_numba_cache()
    from . import helpers  # noqa: F401 — what every node calls, defined before the jobs come
    # done here, while a parent that started this helper early still reads its bundle
    warm_up()
    for job in json.loads(sys.stdin.read()):
        run_job(job)


def run_job(job: dict) -> None:
    """Compile one job of a helper into Numba's cache. ``{"kind": "node", "path": …}`` — a
    generated node module; ``{"kind": "function", "module": …, "name": …, "path": …, "args":
    [[dtype, ndim], …, [[dtype, ndim], …] for a tuple]}`` — a function (a model's block
    function, imported from ``path`` when its module is generated) for the array arguments
    described."""
    import numba
    import numpy as np

    from . import cache, emit

    def dummy(arg):
        if isinstance(arg[0], list):
            return tuple(dummy(a) for a in arg)
        return np.zeros((1,) * arg[1], dtype=arg[0])

    if job["kind"] == "node":
        module = cache.import_source(Path(job["path"]))
        cache.compile_function(module.node, emit.node_signature())
    else:
        import importlib
        # a generated module (a straight-line block) by its file, a package's by its name
        module = cache.import_source(Path(job["path"])) if job.get("path") and job["module"].startswith(
            "postloan_kernel_") else importlib.import_module(job["module"])
        fn = getattr(module, job["name"])
        cache.compile_function(fn, tuple(numba.typeof(dummy(a)) for a in job["args"]))


def describe(value) -> list:
    """The ``args`` entry of a function job for one argument: ``[dtype, ndim]`` of an array,
    a list of those for a tuple of arrays."""
    if isinstance(value, tuple):
        return [describe(v) for v in value]
    return [value.dtype.str, value.ndim]
