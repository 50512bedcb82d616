"""A diagnostic for bench_grpc.py ``test_where_server_time_goes``: a server that stamps
each Decide call with ``time.perf_counter_ns()`` (CLOCK_MONOTONIC: the same clock in every
process of the machine, so the client's stamps and the server's line up).

Three shapes, one process each:

* ``service``: ``postloan serve`` as it serves (DecisionServer: the interceptor — drain,
  auth, metrics, logs —, the tracked thread pool, the concurrency limit, health and
  reflection, the audit log with ``--audit-sync``), 16 threads;
* ``bare``: the same server without the interceptor, with grpcio's plain thread pool and
  no concurrency limit (what those layers cost a call; the audit log is kept) — not a
  configuration anyone can serve, a measurement only;
* ``echo``: the bare grpcio echo of ``grpc_echo_peer.py`` (same options, same pool size);
* ``echo_loaded``: the same echo in a process that first loads and warms what ``service``
  holds (the kernel, the pipeline, the audit log's writer): whether a large process alone
  lengthens gRPC's own segments (*in*, *out*), without any handler work between them;
* ``echo_working``: ``echo_loaded`` whose handler, before answering its fixed bytes, does the
  service's work on the request (parse, ``Engine.decide_account``): the
  service's work without the service's gRPC plumbing (its handlers, parsing, layers).

``--threads N`` sets the RPC pool's size (16 by default, as ``postloan serve``).

Stamps per call: when gRPC hands the request bytes to the deserializer (the first Python
code of the call), and at the entry and exit of the servicer's ``Decide`` (the echo's
answer). ``service`` and ``bare`` also time each step inside the servicer (``STEPS``: the
Account → record conversion, the state join, the kernel, the stages after it, the audit
append, the response's bytes — the same steps ``test_where_decide_time_goes`` times in
process, here with the caches the server has between calls). ``SIGUSR1`` writes the stamps so
far to ``--out`` (JSON: ``{"calls": [...], "steps": {step: [ns, ...]}, "audit": [records
written, writes]}`` — the audit counts since the process started) and starts over.

    python bench/grpc_trace_peer.py service --out stamps.json [--audit-sync interval]   # prints "port N"
    python bench/grpc_trace_peer.py echo --out stamps.json --response decide_response.bin
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc

STAMPS: list[list[int]] = []        # per call: [deserializer, servicer entry, servicer exit]
STEPS: dict[str, list[int]] = {}    # per step inside the servicer: its duration in each call (ns)
_RECEIVED = [0]                     # the last deserializer stamp (the calls come one at a time)
ns = time.perf_counter_ns


def _dump(out: str) -> None:
    server = getattr(_service, "server", None)
    audit = server.engine.pipeline.audit if server is not None else None
    Path(out).write_text(json.dumps({"calls": STAMPS, "steps": STEPS,
                                     "audit": [audit.written, audit.writes] if audit is not None else None}))
    STAMPS.clear()
    for durations in STEPS.values():
        durations.clear()


def _time_steps() -> None:
    """Time each step of a Decide inside the servicer: the methods it calls, wrapped."""
    from kernel import audit, pipeline, runtime
    from kernel.server import convert, engine, wire
    try:
        from kernel.server import wire_decide
    except ImportError:                    # a tree without Decide's compiled way
        wire_decide = None

    steps = ((engine.AccountRecord, "__call__", "record"), (pipeline.Pipeline, "record_with_state", "state_join"),
             (runtime.Kernel, "decide_record", "kernel"), (pipeline.Pipeline, "stage", "stage"),
             (audit.AuditLog, "append_built", "audit_append"), (convert.DecideResponseEncoder, "response", "response"),
             # the wire's way (Engine.decide_account): the bytes into the kernel's inputs, the kernel
             (getattr(wire, "KernelInputs", None), "stage", "wire_to_kernel"),
             (getattr(wire, "KernelInputs", None), "stage_request", "request_to_kernel"),
             (runtime.Kernel, "decide_staged", "kernel_staged"),
             # Decide's compiled way: the request's bytes to the response's in one call
             (getattr(wire_decide, "RequestDecider", None), "decide", "request_to_response"))
    for cls, name, step in steps:
        if cls is None or not hasattr(cls, name):          # a tree without that step
            continue
        durations = STEPS.setdefault(step, [])

        def timed(*args, _method=getattr(cls, name), _durations=durations, **kwargs):
            start = ns()
            try:
                return _method(*args, **kwargs)
            finally:
                _durations.append(ns() - start)
        setattr(cls, name, timed)


def _echo(response: bytes, threads: int = 16, work=None) -> int:
    def deserialize(data: bytes) -> bytes:
        _RECEIVED[0] = ns()
        return data

    def answer(request: bytes, context) -> bytes:
        entry = ns()
        if work is not None:
            work(request)
        STAMPS.append([_RECEIVED[0], entry, ns()])
        return response

    handler = grpc.method_handlers_generic_handler(
        "postloan.v1.DecisionService", {"Decide": grpc.unary_unary_rpc_method_handler(answer, request_deserializer=deserialize)})
    server = grpc.server(futures.ThreadPoolExecutor(threads), options=[("grpc.max_receive_message_length", 64 << 20),
                                                                  ("grpc.max_send_message_length", 64 << 20),
                                                                  ("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    _echo.server = server                    # kept alive
    return port


def _loaded(audit_sync: str) -> None:
    """Load and warm what ``service`` holds, kept alive, serving nothing."""
    from kernel.server.engine import load_engine

    audit = Path(tempfile.mkdtemp(prefix="postloan-trace-")) / "audit.log"
    _loaded.engine = load_engine(None, audit_path=str(audit), audit_sync=audit_sync)


def _work(request: bytes) -> None:
    """``echo_working``'s handler work: what the service's Decide does with the request."""
    from kernel.server import convert
    from kernel.server._proto.postloan.v1 import decision_pb2

    engine = _loaded.engine
    if hasattr(engine, "decide_request"):     # Decide's way from the request's bytes
        if engine.decide_request(request) is not None:
            return
    elif hasattr(engine, "stage_request"):    # (a tree before it: the request pass, then the kernel)
        staged = engine.stage_request(request)
        if staged is not None:
            engine.decide_staged_request(request, *staged)
            return
    message = decision_pb2.DecideRequest.FromString(request)
    as_of = convert.date_value(message.as_of, "as_of")
    now = convert.timestamp_value(message.now, "now")
    actions = message.actions if message.HasField("actions") else True
    if hasattr(engine, "decide_account"):
        engine.decide_account(message.account, as_of, now, actions)
    else:
        engine.decide_response(engine.record(message.account), as_of, now, actions)


def _service(bare: bool, audit_sync: str, threads: int = 16) -> int:
    import concurrent.futures as cf

    from kernel.server import app, service
    from kernel.server.app import DecisionServer, ServerConfig

    lenient = app._lenient

    def stamped_lenient(deserializer, message):
        parse = lenient(deserializer, message)

        def deserialize(data: bytes):
            _RECEIVED[0] = ns()
            return parse(data)
        return deserialize

    app._lenient = stamped_lenient
    _time_steps()
    decide = service.DecisionServicer.Decide

    def stamped_decide(self, request, context):
        entry = ns()
        response = decide(self, request, context)
        STAMPS.append([_RECEIVED[0], entry, ns()])
        return response

    service.DecisionServicer.Decide = stamped_decide
    if bare:
        app._TrackedPool = cf.ThreadPoolExecutor
        make_server = app.grpc.server

        def bare_server(pool, interceptors=None, options=None, maximum_concurrent_rpcs=None):
            return make_server(pool, options=options)
        app.grpc.server = bare_server
    audit = Path(tempfile.mkdtemp(prefix="postloan-trace-")) / "audit.log"
    server = DecisionServer(ServerConfig(port=0, threads=threads, audit_path=str(audit), audit_sync=audit_sync))
    port = server.start()
    server.wait_ready()
    _service.server = server
    return port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("shape", choices=("service", "bare", "echo", "echo_loaded", "echo_working"))
    parser.add_argument("--threads", type=int, default=16, help="the RPC thread pool's size")
    parser.add_argument("--out", required=True, help="where SIGUSR1 writes the stamps (JSON)")
    parser.add_argument("--response", help="echo: the serialized response to answer")
    parser.add_argument("--audit-sync", default="interval", choices=("always", "interval"))
    args = parser.parse_args()
    if args.shape.startswith("echo"):
        if not args.response:
            parser.error("echo needs --response")
        if args.shape != "echo":
            _loaded(args.audit_sync)
        port = _echo(Path(args.response).read_bytes(), args.threads,
                     _work if args.shape == "echo_working" else None)
    else:
        port = _service(args.shape == "bare", args.audit_sync, args.threads)
    signal.signal(signal.SIGUSR1, lambda *_: _dump(args.out))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print(f"port {port}", flush=True)
    while not done.wait(0.25):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
