"""``--workers N``: N server processes on one port (SO_REUSEPORT), under one supervisor.

Every worker binds the same port; the Linux kernel spreads new connections over the
sockets bound to it, so the GIL of one process no longer caps the machine. A worker binds
only once its bundle is compiled and warm, so no connection lands on a worker that cannot
answer. Each worker gets ``cores // N`` Numba threads (at least 1) so that workers ×
threads ≤ cores. The
supervisor forwards SIGTERM / SIGINT (graceful stop) and SIGHUP (reload) to every worker,
exposes the workers' summed metrics, and exits when they have all exited.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict

from .app import ServerConfig


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    cores = cores or len(os.sched_getaffinity(0))
    return max(1, cores // workers)


def worker_environment(workers: int, metrics_dir: str | None) -> dict:
    env = dict(os.environ)
    env["NUMBA_NUM_THREADS"] = str(threads_per_worker(workers))
    if metrics_dir:
        env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    return env


def run_workers(config: ServerConfig, workers: int, log_level: str = "INFO") -> int:
    """Start ``workers`` processes serving ``config`` on one port; return when they exit."""
    from .metrics import serve_multiprocess

    metrics_dir = tempfile.mkdtemp(prefix="postloan-metrics-") if config.metrics_port is not None else None
    worker_config = dict(asdict(config), reuse_port=True, metrics_port=None, listen_when_ready=True)
    env = worker_environment(workers, metrics_dir)
    procs = [subprocess.Popen([sys.executable, "-m", "kernel.server.workers", json.dumps(worker_config), log_level,
                               str(os.getpid())], env=env) for _ in range(workers)]
    http = None
    if metrics_dir:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        http = serve_multiprocess(config.metrics_port, config.metrics_host)

    def forward(signum, _frame):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    try:
        codes = []
        for p in procs:
            while True:
                try:
                    codes.append(p.wait())
                    break
                except InterruptedError:   # pragma: no cover — PEP 475 retries; kept for clarity
                    continue
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
