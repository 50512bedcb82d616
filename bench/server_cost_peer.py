"""A diagnostic for bench_ledger.py ``test_where_check_contact_server_cost_goes``: a server
whose threads and gRPC steps can be told apart by their CPU time, with one of the differences
between ``postloan serve`` and the bare echo switched off at a time — a measurement only, not
a configuration anyone can serve.

Shapes, one process each:

* ``echo``: ``grpc_echo_peer.py`` answering ``--response``'s bytes at ``--method``;
* ``service``: ``postloan serve`` (the arguments after ``--``) with ``--variant`` flags,
  comma separated: ``constant_gate`` (CheckContact's gate answers a fixed KEEP: the server
  around the gate alone), ``no_interceptor`` (drain, auth and telemetry off), ``no_observe``
  (the interceptor without its Prometheus samples), ``plain_pool`` (grpcio's thread pool, not
  the tracked one), ``no_limit`` (no ``maximum_concurrent_rpcs``), ``gate_clock`` (each
  CheckContact's gate — ``check_contact_values`` — timed by its thread's CPU, and on
  ``SIGUSR2`` the same gate asked directly by the process's main thread, on the same ledger and
  pipeline: the accounts in ``--out``'s ``.direct`` file, after a 0.6 ms sleep each, after the
  sleep and ≈ 0.3 ms of CPU of other Python code — JSON, the size of gRPC's own work between two
  calls — each, and back to back).

With ``--steps`` each process adds up its threads' CPU time (``time.thread_time_ns``) in
gRPC's server steps (``grpc._server``: finding the handler and handing the call to the pool
on the polling thread; on the RPC thread: waiting for and parsing the request, the handler,
the answer's serialization, sending the status) — the wrappers cost a call ≈ 5–10 µs, the
same in every shape. ``SIGUSR1`` writes ``{"threads": {native id: name}, "steps": {step:
[ns, calls]}}`` to ``--out``.

    python bench/server_cost_peer.py echo --out e.json --response r.bin --method /postloan.v1.Ledger/CheckContact
    python bench/server_cost_peer.py service --out s.json --variant constant_gate -- serve --port 0 --store URL
"""
from __future__ import annotations

import argparse
import json
import runpy
import signal
import sys
import threading
import time
from pathlib import Path

STEPS: dict[str, list[int]] = {}
#: ``gate_clock``: each gate call's thread CPU (ns), by the way it was asked
GATE: dict[str, list[int]] = {"grpc": [], "direct_after_sleep": [], "direct_after_work": [], "direct_hot": []}
_OTHER_WORK = [{f"k{i}": [str(j) * 3 for j in range(20)]} for i in range(50)]
SERVER: list = []
HERE = Path(__file__).resolve().parent


def _time_steps() -> None:
    from grpc import _server as S
    clock = time.thread_time_ns

    def timed(name, fn):
        def step(*args, **kwargs):
            start = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                total = STEPS.setdefault(name, [0, 0])
                total[0] += clock() - start
                total[1] += 1
        return step

    for name in ("_find_method_handler", "_handle_with_method_handler", "_process_event_and_continue",
                 "_unary_response_in_pool", "_call_behavior", "_serialize_response", "_status"):
        setattr(S, name, timed(name, getattr(S, name)))
    unary_request = S._unary_request
    S._unary_request = lambda *args: timed("_unary_request", unary_request(*args))


def _on_dump(out: str) -> None:
    def dump(_signum, _frame):
        Path(out).write_text(json.dumps({"threads": {str(t.native_id): t.name for t in threading.enumerate()},
                                         "steps": STEPS, "gate": GATE}))
    signal.signal(signal.SIGUSR1, dump)

    def direct(_signum, _frame):
        # the gate as CheckContact asks it (an SMS, now), from this thread: no gRPC around it
        from kernel.server import ledger_service
        server = SERVER[0]
        accounts = json.loads(Path(out + ".direct").read_text())
        ledger, judge, gate = server.ledger, server.engine.pipeline.judge, ledger_service.check_contact_values
        clock = time.thread_time_ns
        for way, pause, work in (("direct_after_sleep", 0.0006, 0), ("direct_after_work", 0.0006, 300_000),
                                 ("direct_hot", 0.0, 0)):
            for account in accounts[way]:
                if pause:
                    time.sleep(pause)
                if work:                # other code's ≈ 0.3 ms of CPU, as gRPC's own between two calls
                    until = clock() + work
                    while clock() < until:
                        json.loads(json.dumps(_OTHER_WORK))
                now = time.time_ns() // 1_000
                start = clock()
                gate.__wrapped__(ledger, judge, account, "SMS", now, now)
                GATE[way].append(clock() - start)
        dump(_signum, _frame)
    signal.signal(signal.SIGUSR2, direct)


def _switch_off(flags: set[str]) -> None:
    import grpc

    from kernel.server import app, ledger_service, metrics
    if "constant_gate" in flags:
        def keep(ledger, judge, account_id, name, at, now):
            return "KEEP", None, None, None, "0123456789abcdef0123456789abcdef", now + 900_000_000, None
        ledger_service.check_contact_values = keep
    if "no_observe" in flags:
        metrics.Metrics.observe_call = lambda self, method, code, seconds: None
    if "plain_pool" in flags:
        app._TrackedPool = type("PlainPool", (app.cf.ThreadPoolExecutor,), {"held": lambda self: set()})
    if "gate_clock" in flags:
        gate, clock = ledger_service.check_contact_values, time.thread_time_ns

        def timed_gate(*args):
            start = clock()
            try:
                return gate(*args)
            finally:
                GATE["grpc"].append(clock() - start)
        timed_gate.__wrapped__ = gate
        ledger_service.check_contact_values = timed_gate
        start_server = app.DecisionServer.start

        def start(self):
            SERVER.append(self)
            return start_server(self)
        app.DecisionServer.start = start
    grpc_server = grpc.server

    def server(pool, interceptors=None, options=None, maximum_concurrent_rpcs=None, **kwargs):
        return grpc_server(pool, interceptors=None if "no_interceptor" in flags else interceptors, options=options,
                           maximum_concurrent_rpcs=None if "no_limit" in flags else maximum_concurrent_rpcs, **kwargs)
    app.grpc.server = server


def main() -> int:
    argv = sys.argv[1:]
    rest = argv[argv.index("--") + 1:] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("shape", choices=("echo", "service"))
    parser.add_argument("--out", required=True)
    parser.add_argument("--variant", default="")
    parser.add_argument("--steps", action="store_true")
    parser.add_argument("--response")
    parser.add_argument("--method")
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    if args.steps:
        _time_steps()
    _on_dump(args.out)
    if args.shape == "echo":
        sys.argv = [str(HERE / "grpc_echo_peer.py"), "--port", "0", "--response", args.response,
                    "--method", args.method]
        runpy.run_path(sys.argv[0], run_name="__main__")
        return 0
    _switch_off(set(filter(None, args.variant.split(","))))
    from kernel.cli import main as postloan
    sys.argv = ["postloan", *rest]
    return postloan()


if __name__ == "__main__":
    sys.exit(main())
