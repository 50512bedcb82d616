"""The gRPC service against a bare grpcio server of the same shape, in one run.

* Decide p50 / p99 against ``grpc_echo_peer.py`` (same method path, same request and response
  bytes, same thread pool, own process; no kernel, no interceptors). Goal: p50 ≤ 1.3× echo.
* DecideBatch accounts/s with 10,000-account batches, against the same batch decided in
  process (the pipeline without the network): the ratio is what gRPC + Arrow IPC cost.
* A load at concurrency 64 for POSTLOAN_BENCH_LOAD_SECONDS (30 by default): zero errors.

Both servers run as separate processes started here; the calls alternate in blocks so that
noise on the shared machine hits both alike.

    pytest bench/bench_grpc.py --benchmark-enable -s
    pytest bench/bench_grpc.py --benchmark-disable          # smoke: few calls, 2-second load
"""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from kernel.client import CallError, Client
from kernel.server import convert
from kernel.server._proto.postloan.v1 import decision_pb2, decision_pb2_grpc
from kernel.synth import generate

AS_OF = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 2, 30, tzinfo=dt.timezone.utc)      # 10:30 in Beijing: actions allowed
HERE = Path(__file__).resolve().parent


def _smoke(benchmark) -> bool:
    return getattr(benchmark, "disabled", False)


def _spawn(args: list[str], ready: str, env=None) -> tuple[subprocess.Popen, int]:
    """Start a server process; return it and the port it reports."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{args[:4]} exited with {proc.wait()}")
        if ready in line:
            port = json.loads(line)["address"].rsplit(":", 1)[1] if line.startswith("{") else line.split()[-1]
            threading.Thread(target=proc.stdout.read, daemon=True).start()   # drain
            return proc, int(port)
    raise RuntimeError(f"{args[:4]} did not start")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def book():
    return generate(10_000, seed=5, as_of=AS_OF)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    audit = tmp_path_factory.mktemp("audit") / "audit.log"
    proc, port = _spawn([sys.executable, "-m", "kernel", "serve", "--port", "0", "--threads", "16",
                         "--audit-log", str(audit)], '"listening"')
    client = Client(f"127.0.0.1:{port}", timeout=120)
    try:
        client.wait_until_serving(600)
        yield client, port
    finally:
        client.close()
        _stop(proc)


@pytest.fixture(scope="module")
def echo(service, book, tmp_path_factory):
    """The echo peer, answering with the real service's response for the benchmark account."""
    _, port = service
    import grpc
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        response = decision_pb2_grpc.DecisionServiceStub(channel).Decide(_request(book))
    path = tmp_path_factory.mktemp("echo") / "response.bin"
    path.write_bytes(response.SerializeToString())
    proc, echo_port = _spawn([sys.executable, str(HERE / "grpc_echo_peer.py"), "--port", "0", "--threads", "16",
                              "--response", str(path)], "port ")
    client = Client(f"127.0.0.1:{echo_port}", timeout=30)
    try:
        yield client
    finally:
        client.close()
        _stop(proc)


def _account(book) -> dict:
    """The benchmark account: the first delinquent one, so the call plans and checks actions."""
    import pyarrow.compute as pc
    return book.filter(pc.greater(book["dpd"], 10)).slice(0, 1).to_pylist()[0]


def _request(book) -> decision_pb2.DecideRequest:
    return decision_pb2.DecideRequest(account=convert.ACCOUNT.encode(_account(book)),
                                      as_of=convert.date_message(AS_OF), now=convert.timestamp_message(NOW))


def _latencies(call, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def test_decide_latency_against_echo(benchmark, service, echo, book):
    client, _ = service
    record = _account(book)
    decide = lambda: client.decide(record, AS_OF, now=NOW)            # noqa: E731
    bare = lambda: echo.decide(record, AS_OF, now=NOW)                # noqa: E731  same client work
    first = decide()
    assert first == bare() and first["actions"], "the echo must answer exactly what the service does"
    blocks, per_block = (2, 20) if _smoke(benchmark) else (20, 250)
    ours, peer = [], []
    _latencies(decide, per_block), _latencies(bare, per_block)       # warm both connections
    for _ in range(blocks):
        ours += _latencies(decide, per_block)
        peer += _latencies(bare, per_block)
    p = lambda xs, q: float(np.percentile(xs, q)) * 1e6               # noqa: E731  µs
    figures = {"decide_p50_us": p(ours, 50), "decide_p99_us": p(ours, 99), "echo_p50_us": p(peer, 50),
               "echo_p99_us": p(peer, 99), "calls_each": len(ours)}
    figures["p50_ratio"] = figures["decide_p50_us"] / figures["echo_p50_us"]
    figures["p99_ratio"] = figures["decide_p99_us"] / figures["echo_p99_us"]
    benchmark.extra_info.update(figures)
    print("\nDecide vs bare echo:", json.dumps({k: round(v, 2) for k, v in figures.items()}))
    benchmark.pedantic(decide, rounds=1 if _smoke(benchmark) else 200, iterations=1)


def test_decide_batch_throughput(benchmark, service, book, tmp_path):
    from kernel.pipeline import Pipeline
    from kernel.runtime import Kernel

    client, _ = service
    rows = 1_000 if _smoke(benchmark) else 10_000
    batch = book.slice(0, rows)
    decisions = client.decide_batch(batch, AS_OF, now=NOW)
    assert decisions.num_rows == rows
    pipeline = Pipeline(Kernel.load(), audit_path=tmp_path / "audit.log")
    pipeline.run(batch, AS_OF, NOW)                                    # compile / warm in process
    repeats = 1 if _smoke(benchmark) else 8
    remote = local = 0.0
    for _ in range(repeats):                                           # alternate: noise hits both
        start = time.perf_counter()
        client.decide_batch(batch, AS_OF, now=NOW, with_actions=True)
        remote += (time.perf_counter() - start) / repeats
        start = time.perf_counter()
        pipeline.run(batch, AS_OF, NOW)
        local += (time.perf_counter() - start) / repeats
    figures = {"accounts_per_call": rows, "grpc_accounts_per_s": rows / remote,
               "in_process_accounts_per_s": rows / local, "grpc_over_in_process": remote / local}
    benchmark.extra_info.update(figures)
    print("\nDecideBatch:", json.dumps({k: round(v, 2) for k, v in figures.items()}))
    benchmark.pedantic(lambda: client.decide_batch(batch, AS_OF, now=NOW, with_actions=True), rounds=1 if _smoke(benchmark) else 5,
                       iterations=1)


def test_load_at_concurrency_64(benchmark, service, book):
    _, port = service
    seconds = 2.0 if _smoke(benchmark) else float(os.environ.get("POSTLOAN_BENCH_LOAD_SECONDS", 30))
    records = book.slice(0, 256).to_pylist()
    clients = [Client(f"127.0.0.1:{port}", timeout=30) for _ in range(4)]   # 4 channels, 16 callers each
    errors, latencies, lock = [], [], threading.Lock()
    stop_at = time.monotonic() + seconds

    def caller(i: int) -> None:
        client, mine, k = clients[i % len(clients)], [], i
        while time.monotonic() < stop_at:
            start = time.perf_counter()
            try:
                client.decide(records[k % len(records)], AS_OF, now=NOW)
            except CallError as e:
                with lock:
                    errors.append(e.code.name)
            mine.append(time.perf_counter() - start)
            k += 64
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(64)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    for c in clients:
        c.close()
    figures = {"seconds": elapsed, "concurrency": 64, "calls": len(latencies), "errors": len(errors),
               "calls_per_s": len(latencies) / elapsed, "p50_ms": float(np.percentile(latencies, 50)) * 1e3,
               "p99_ms": float(np.percentile(latencies, 99)) * 1e3}
    benchmark.extra_info.update(figures)
    print("\nLoad:", json.dumps({k: round(v, 2) for k, v in figures.items()}))
    assert errors == [], f"{len(errors)} failed calls: {sorted(set(errors))}"
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


def test_where_decide_time_goes(benchmark, book, tmp_path):
    """In process, per stage of one Decide (µs): decode, kernel, pipeline, response."""
    from kernel.server.engine import load_engine

    engine = load_engine(None, audit_path=str(tmp_path / "audit.log"))
    account = convert.ACCOUNT.encode(_account(book))
    columns = engine.columns(account)
    n = 20 if _smoke(benchmark) else 500

    def per_call(fn) -> float:
        fn()
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - start) / n * 1e6

    decided = engine.pipeline.run_columns(columns, AS_OF, NOW)
    message, actions, _ = engine.decide_one(columns, AS_OF, NOW)
    response = decision_pb2.DecideResponse(decision=message, actions=actions)
    request_bytes = _request(book).SerializeToString()
    figures = {
        "parse_request_us": per_call(lambda: decision_pb2.DecideRequest.FromString(request_bytes)),
        "account_to_columns_us": per_call(lambda: engine.columns(account)),
        "kernel_decide_columns_us": per_call(lambda: engine.kernel.decide_columns(columns, AS_OF)),
        "pipeline_after_kernel_us": per_call(lambda: engine.pipeline.act(columns, engine.kernel.decide_columns(
            columns, AS_OF), AS_OF, NOW)) - 0.0,
        "audit_append_us": per_call(lambda: engine.pipeline.audit.append({"bench": True}, {}, {})),
        "decide_one_total_us": per_call(lambda: engine.decide_one(columns, AS_OF, NOW)),
        "serialize_response_us": per_call(response.SerializeToString),
        "actions": len(decided.action_columns["action"]),
    }
    figures["pipeline_after_kernel_us"] -= figures["kernel_decide_columns_us"]
    benchmark.extra_info.update(figures)
    print("\nWhere Decide's time goes:", json.dumps({k: round(v, 1) for k, v in figures.items()}))
    benchmark.pedantic(lambda: engine.decide_one(columns, AS_OF, NOW), rounds=1 if _smoke(benchmark) else 100,
                       iterations=1)
