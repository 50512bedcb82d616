"""``--workers N``: N server processes on one port (SO_REUSEPORT), under one supervisor.

Every worker binds the same port; the Linux kernel spreads new connections over the
sockets bound to it, so the GIL of one process no longer caps the machine. A worker binds
only once its bundle is compiled and warm, so no connection lands on a worker that cannot
answer. Each worker gets ``cores // N`` Numba threads (at least 1) so that workers ×
threads ≤ cores. The
supervisor forwards SIGTERM / SIGINT (graceful stop) and SIGHUP (reload) to every worker,
exposes the workers' summed metrics, and exits when they have all exited. A worker that
dies while serving (a crash, a kill) is restarted, logged, after a backoff that doubles
with each quick death (:class:`Backoff`); one that keeps failing to start makes the
supervisor stop the others and exit.
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
from dataclasses import asdict

from .app import ServerConfig, unsafe_settings
from .logs import log

START_FAILURES_ALLOWED = 5      # consecutive start-up failures (exit 2) of one worker before giving up


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    cores = cores or len(os.sched_getaffinity(0))
    return max(1, cores // workers)


def worker_environment(workers: int, metrics_dir: str | None) -> dict:
    env = dict(os.environ)
    env["NUMBA_NUM_THREADS"] = str(threads_per_worker(workers))
    if metrics_dir:
        env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    return env


class Backoff:
    """Seconds to wait before restarting a worker: ``first``, doubling with each death that
    follows a run shorter than ``stable`` seconds, at most ``cap``; a longer run resets it."""

    def __init__(self, first: float = 0.5, cap: float = 30.0, stable: float = 60.0):
        self.first, self.cap, self.stable = first, cap, stable
        self.delay = first

    def after(self, ran_seconds: float) -> float:
        if ran_seconds >= self.stable:
            self.delay = self.first
        delay = self.delay
        self.delay = min(self.cap, self.delay * 2)
        return delay


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def run_workers(config: ServerConfig, workers: int, log_level: str = "INFO") -> int:
    """Start ``workers`` processes serving ``config`` on one port; restart any that dies
    while serving; return when they have all exited after a stop signal."""
    from .metrics import serve_multiprocess

    for warning in unsafe_settings(config):
        log(logging.WARNING, "unsafe setting", warning=warning)
    metrics_dir = tempfile.mkdtemp(prefix="postloan-metrics-") if config.metrics_port is not None else None
    worker_config = dict(asdict(config), reuse_port=True, metrics_port=None, listen_when_ready=True)
    env = worker_environment(workers, metrics_dir)
    command = [sys.executable, "-m", "kernel.server.workers", json.dumps(worker_config), log_level, str(os.getpid())]

    def spawn() -> tuple[subprocess.Popen, float]:
        return subprocess.Popen(command, env=env), time.monotonic()

    slots = [spawn() for _ in range(workers)]
    backoffs = [Backoff() for _ in range(workers)]
    start_failures = [0] * workers
    restart_at: list[float | None] = [None] * workers
    stopping = []
    http = None
    if metrics_dir:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        http = serve_multiprocess(config.metrics_port, config.metrics_host)

    def forward(signum, _frame):
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping.append(signum)
        for proc, _ in slots:
            if proc.poll() is None:
                proc.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    try:
        while True:
            now = time.monotonic()
            for i in range(workers):
                proc, started = slots[i]
                if restart_at[i] is not None:             # dead, waiting out its backoff
                    if not stopping and now >= restart_at[i]:
                        restart_at[i] = None
                        slots[i] = spawn()
                        log(logging.INFO, "worker restarted", worker=i, pid=slots[i][0].pid)
                    continue
                code = proc.poll()
                if code is None or stopping:
                    continue
                _forget_metrics(metrics_dir, proc.pid)      # it died while serving
                start_failures[i] = start_failures[i] + 1 if code == 2 else 0
                if start_failures[i] >= START_FAILURES_ALLOWED:
                    log(logging.ERROR, "worker keeps failing to start; stopping the others", worker=i,
                        failures=start_failures[i])
                    forward(signal.SIGTERM, None)
                    continue
                delay = backoffs[i].after(now - started)
                log(logging.ERROR, "worker died; restarting", worker=i, pid=proc.pid, how=_describe_exit(code),
                    ran_seconds=round(now - started, 1), restart_in_seconds=delay)
                restart_at[i] = now + delay
            if stopping and all(restart_at[i] is not None or slots[i][0].poll() is not None for i in range(workers)):
                break
            time.sleep(0.1)
        codes = [proc.returncode for proc, _ in slots]
        failed = sum(code not in (0, -signal.SIGTERM, -signal.SIGINT) for code in codes)
        if failed:
            print(f"postloan serve: {failed} of {workers} workers exited with an error (above)", file=sys.stderr)
        return max(codes, default=0)
    finally:
        if http is not None:
            http.shutdown()
        if metrics_dir:
            import shutil
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _forget_metrics(metrics_dir: str | None, pid: int) -> None:
    """A dead worker's live gauges leave the sums (its counters stay: they happened)."""
    if metrics_dir:
        from prometheus_client import multiprocess
        multiprocess.mark_process_dead(pid, metrics_dir)


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGTERM this worker when the supervisor dies, even by SIGKILL, so that no
    orphan keeps the port."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)      # PR_SET_PDEATHSIG
    except (OSError, AttributeError):       # not Linux: the supervisor's own handlers still apply
        return
    if os.getppid() != parent:             # the supervisor died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(config_json: str, log_level: str, parent: int) -> int:
    from ..errors import PostloanError
    from . import logs
    from .app import DecisionServer

    logs.configure(log_level)
    server = DecisionServer(ServerConfig(**{**json.loads(config_json), "supervisor_pid": parent}))
    server.install_signal_handlers()
    _die_with_parent(parent)
    try:
        server.start()                      # compiles first, then binds (listen_when_ready)
    except PostloanError as e:
        print(f"postloan serve (worker {os.getpid()}): error: {e}", file=sys.stderr)
        server.stop(0)
        return 2
    server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
