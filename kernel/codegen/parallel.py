"""Cold compiles spread over processes: the nodes of a plan compile independently (each is keyed
by its own content), and Numba's compiler is single-threaded and holds a global lock, so the
only way to use a second core is a second process. A helper process compiles its share into
Numba's cache on disk; the parent then loads those nodes from the cache as it would on any
warm start.

Used only when it pays: :data:`MIN_SECONDS` of estimated compile work left for the helpers
(starting one costs about a second: Python, NumPy, Numba). An edit that recompiles one ruleset
never starts one. ``$POSTLOAN_COMPILE_WORKERS`` sets how many helpers may run (default: one
per idle CPU beyond the caller's, at most 3; ``0`` compiles everything in the calling process).
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

log = logging.getLogger("kernel.codegen")

#: estimated seconds of compile work a helper must get before one is started
MIN_SECONDS = 3.0
#: estimated compile seconds per line of generated node source, and for a model interpreter
#: (measured on the shipped bundle: 0.9-2.9 s CPU per node of 100-500 lines; 3-5 s for each
#: model's interpreter, the first with the op functions they share)
SECONDS_PER_LINE, INTERPRETER_SECONDS = 0.005, 4.0

_ROOT = Path(__file__).resolve().parents[2]


def workers() -> int:
    """How many helper processes a cold compile may start: ``$POSTLOAN_COMPILE_WORKERS``, else
    one per idle CPU beyond the caller's own (by the one-minute load average), at most 3. On a
    machine whose cores are all busy a helper only competes with the parent: measured on the
    project's shared 2-core machine at a load of 4-6, one helper made the shipped bundle's cold
    compile 10-25 % slower, not faster. The idle share is rounded: on 2 cores a load under 0.5
    leaves the second core to a helper (``int`` truncated 1.5 idle cores to none: no helper
    ever started on such a machine)."""
    configured = os.environ.get("POSTLOAN_COMPILE_WORKERS")
    if configured is not None and configured.strip() != "":
        return max(0, int(configured))
    cpus = os.cpu_count() or 1
    try:
        idle = cpus - os.getloadavg()[0]
    except (AttributeError, OSError):          # no load average on this platform
        idle = cpus
    return max(0, min(3, cpus - 1, round(idle - 1)))


def is_cached(dispatcher) -> bool:
    """Whether Numba's on-disk cache has an index for ``dispatcher`` (a generated module is
    never rewritten, so an index found is this source's). A wrong guess costs only time: a
    job thought missing loads from the cache in the helper; one thought cached compiles in
    the parent."""
    try:
        return bool(dispatcher.overloads) or os.path.exists(dispatcher._cache._cache_file._index_path)
    except AttributeError:
        return False


def plan_jobs(jobs: list[tuple[str, float]], helpers: int) -> list[list[str]]:
    """Share ``jobs`` (key, estimated seconds) between the parent (bin 0) and up to
    ``helpers`` helper processes: longest first, each to the least-loaded bin. Helpers whose
    share is below :data:`MIN_SECONDS` are dropped (their jobs stay with the parent)."""
    bins: list[list] = [[0.0, []] for _ in range(helpers + 1)]
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


class Helper:
    """One helper process compiling ``jobs`` (JSON-able dicts, see :func:`main`)."""

    def __init__(self, jobs: list[dict]):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        self.keys = [job["key"] for job in jobs]
        # stderr to a file, not a pipe: a helper that writes more than a pipe holds (warnings,
        # a long traceback) before the parent reads would wait forever
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115 — closed in wait()
        self.process = subprocess.Popen([sys.executable, "-c", "from kernel.codegen.parallel import main; main()"],
                                        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.errors,
                                        env=env, cwd=str(_ROOT))
        self.process.stdin.write(json.dumps(jobs).encode())
        self.process.stdin.close()
        self.done = False

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
        if not self.done:
            self.process.kill()
            self.wait()


def main() -> None:
    """A helper process: read the jobs (JSON on stdin) and compile each into Numba's cache.
    ``{"kind": "node", "path": …}`` — a generated node module; ``{"kind": "function",
    "module": …, "name": …, "path": …, "args": [[dtype, ndim], …, [[dtype, ndim], …] for a tuple]}``
    — a function (a model interpreter, imported from ``path`` when its module is generated)
    for the array arguments described."""
    import numba
    import numpy as np

    from . import cache, emit
    cache.configure_numba_cache()
    jobs = json.loads(sys.stdin.read())
    signature = emit.node_signature()

    def dummy(arg):
        if isinstance(arg[0], list):
            return tuple(dummy(a) for a in arg)
        return np.zeros((1,) * arg[1], dtype=arg[0])

    for job in jobs:
        if job["kind"] == "node":
            module = cache.import_source(Path(job["path"]))
            cache.compile_function(module.node, signature)
        else:
            import importlib
            # a generated module (the model interpreter) by its file, a package's by its name
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
