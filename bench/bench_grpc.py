"""The gRPC service against a bare grpcio server of the same shape, in one run.

* Decide p50 / p99 against ``grpc_echo_peer.py`` (same method path, same request and response
  bytes, same thread pool, own process; no kernel, no interceptors), in three modes, each with
  its ratio (goal: p50 ≤ 1.3× echo):
  (a) decision + actions, audit ``--audit-sync always`` (each record fdatasync'd);
  (b) decision + actions, audit ``--audit-sync interval``;
  (c) decision only (``DecideRequest.actions = false``), audit interval — and, for the
      record, (c′) decision only with audit always.
  (a)/(b) are compared with an echo answering the full response, (c) with one answering the
  decision-only response.
* Decide (c) decision only and (b) with actions, audit interval: the server process's CPU
  time per call, every thread's, against the echo's (``test_decide_cpu_against_echo``) — less noisy than the
  latency on a shared machine, and it counts the work off the call's path (the audit
  writer thread's) that takes a core and the GIL from the calls.
* Decide with actions against decision-only in one server (``server_cost_peer.py --steps``):
  the actions' extra CPU by thread and gRPC step (``test_where_decide_actions_server_cost_goes``).
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
import signal
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
#: the server processes this module started, (pid, port) by name ("service", "service_interval",
#: "echo_full", "echo_decision"): their CPU time is read from /proc
SERVERS: dict[str, tuple[int, int]] = {}


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


def _serve(tmp_path_factory, *flags: str):
    audit = tmp_path_factory.mktemp("audit") / "audit.log"
    proc, port = _spawn([sys.executable, "-m", "kernel", "serve", "--port", "0", "--threads", "16",
                         "--audit-log", str(audit), *flags], '"listening"')
    client = Client(f"127.0.0.1:{port}", timeout=120)
    try:
        client.wait_until_serving(600)
    except BaseException:
        client.close()
        _stop(proc)
        raise
    return proc, client, port


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """postloan serve with the default audit durability (sync always)."""
    proc, client, port = _serve(tmp_path_factory)
    SERVERS["service"] = proc.pid, port
    try:
        yield client, port
    finally:
        client.close()
        _stop(proc)


@pytest.fixture(scope="module")
def service_interval(tmp_path_factory):
    """postloan serve --audit-sync interval."""
    proc, client, port = _serve(tmp_path_factory, "--audit-sync", "interval")
    SERVERS["service_interval"] = proc.pid, port
    try:
        yield client
    finally:
        client.close()
        _stop(proc)


@pytest.fixture(scope="module")
def echo(service, book, tmp_path_factory):
    """Echo peers answering with the real service's responses for the benchmark account:
    ``"full"`` (decision and actions) and ``"decision"`` (actions = false)."""
    _, port = service
    import grpc
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = decision_pb2_grpc.DecisionServiceStub(channel)
        responses = {"full": stub.Decide(_request(book)), "decision": stub.Decide(_request(book, actions=False))}
    procs, clients = [], {}
    try:
        for name, response in responses.items():
            path = tmp_path_factory.mktemp("echo") / f"{name}.bin"
            path.write_bytes(response.SerializeToString())
            proc, echo_port = _spawn([sys.executable, str(HERE / "grpc_echo_peer.py"), "--port", "0", "--threads",
                                      "16", "--response", str(path)], "port ")
            procs.append(proc)
            SERVERS[f"echo_{name}"] = proc.pid, echo_port
            clients[name] = Client(f"127.0.0.1:{echo_port}", timeout=30)
        yield clients
    finally:
        for client in clients.values():
            client.close()
        for proc in procs:
            _stop(proc)


def _account(book) -> dict:
    """The benchmark account: the first delinquent one, so the call plans and checks actions."""
    import pyarrow.compute as pc
    return book.filter(pc.greater(book["dpd"], 10)).slice(0, 1).to_pylist()[0]


def _request(book, actions: bool = True) -> decision_pb2.DecideRequest:
    request = decision_pb2.DecideRequest(account=convert.ACCOUNT.encode(_account(book)),
                                         as_of=convert.date_message(AS_OF), now=convert.timestamp_message(NOW))
    if not actions:
        request.actions = False
    return request


def _latencies(call, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


#: test_where_decide_time_goes: the gap before each call, about the rest of a lone caller's round trip
IDLE_GAP_S = 0.0006

#: (mode, which echo it is compared with)
MODES = {"a_actions_sync_always": "full", "b_actions_sync_interval": "full",
         "c_decision_only_sync_interval": "decision", "c_decision_only_sync_always": "decision"}


def test_decide_latency_against_echo(benchmark, service, service_interval, echo, book):
    client, _ = service
    record = _account(book)
    calls = {
        "a_actions_sync_always": lambda: client.decide(record, AS_OF, now=NOW),
        "b_actions_sync_interval": lambda: service_interval.decide(record, AS_OF, now=NOW),
        "c_decision_only_sync_interval": lambda: service_interval.decide(record, AS_OF, now=NOW, actions=False),
        "c_decision_only_sync_always": lambda: client.decide(record, AS_OF, now=NOW, actions=False),
        "echo_full": lambda: echo["full"].decide(record, AS_OF, now=NOW),                    # same client work
        "echo_decision": lambda: echo["decision"].decide(record, AS_OF, now=NOW, actions=False),
    }
    first = calls["a_actions_sync_always"]()
    assert first == calls["echo_full"]() == calls["b_actions_sync_interval"]() and first["actions"], \
        "the echo must answer exactly what the service does"
    assert calls["c_decision_only_sync_interval"]() == calls["echo_decision"]() == \
        {k: v for k, v in first.items() if k != "actions"}
    blocks, per_block = (2, 20) if _smoke(benchmark) else (80, 50)    # short blocks: noise hits every mode alike
    times: dict[str, list] = {name: [] for name in calls}
    for call in calls.values():                                      # warm every connection
        _latencies(call, per_block)
    for _ in range(blocks):                                          # alternate: noise hits all alike
        for name, call in calls.items():
            times[name] += _latencies(call, per_block)
    p = lambda xs, q: float(np.percentile(xs, q)) * 1e6               # noqa: E731  µs
    figures: dict = {"calls_each": len(times["echo_full"])}
    for name in calls:
        figures[f"{name}_p50_us"], figures[f"{name}_p99_us"] = p(times[name], 50), p(times[name], 99)
    for mode, peer in MODES.items():
        figures[f"{mode}_p50_ratio"] = figures[f"{mode}_p50_us"] / figures[f"echo_{peer}_p50_us"]
        figures[f"{mode}_p99_ratio"] = figures[f"{mode}_p99_us"] / figures[f"echo_{peer}_p99_us"]
    benchmark.extra_info.update(figures)
    print("\nDecide vs bare echo (µs):")
    for mode, peer in MODES.items():
        print(f"  {mode:32s} p50 {figures[f'{mode}_p50_us']:7.0f} ({figures[f'{mode}_p50_ratio']:.2f}× echo)  "
              f"p99 {figures[f'{mode}_p99_us']:7.0f} ({figures[f'{mode}_p99_ratio']:.2f}× echo)")
    for peer in ("full", "decision"):
        print(f"  {'echo_' + peer:32s} p50 {figures[f'echo_{peer}_p50_us']:7.0f}            "
              f"p99 {figures[f'echo_{peer}_p99_us']:7.0f}")
    benchmark.pedantic(calls["a_actions_sync_always"], rounds=1 if _smoke(benchmark) else 200, iterations=1)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc), every thread's."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _thread_cpu_seconds(pid: int, os_name: str) -> float:
    """User + system CPU time so far of the threads of process ``pid`` the operating system
    knows as ``os_name`` (``/proc/PID/task/*/comm``)."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if (task / "comm").read_text().strip() != os_name:
                continue
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:                      # the thread ended
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the servers' CPU time from /proc")
def test_decide_cpu_against_echo(benchmark, service_interval, echo, book):
    """Audit interval, (c) decision only and (b) with actions: the CPU time the server process
    spends per call — every thread's: the RPC threads, gRPC's, the audit log's writer —
    against the echo's answering the same bytes, in alternating blocks of 50 calls (each
    block's CPU counted to its mode). Less noisy than the latency on a shared machine (it
    does not count the time a thread waits for a core) and it counts the work off the call's
    path that takes a core and the GIL from the calls (the audit writer's) — and, for the
    service, the audit writer thread's own share."""
    import grpc
    from kernel.audit import WRITER_THREAD_OS_NAME
    requests = {"decision": _request(book, actions=False).SerializeToString(), "full": _request(book).SerializeToString()}
    channels, stubs = [], {}
    for name in ("service_interval", "echo_decision", "echo_full"):
        channel = grpc.insecure_channel(f"127.0.0.1:{SERVERS[name][1]}")
        channels.append(channel)
        stubs[name] = channel.unary_unary("/postloan.v1.DecisionService/Decide")
    # (mode, server, request)
    modes = [("c_decision_only", "service_interval", "decision"), ("echo_decision", "echo_decision", "decision"),
             ("b_actions", "service_interval", "full"), ("echo_full", "echo_full", "full")]
    try:
        parse = decision_pb2.DecideResponse.FromString       # (the echo's map entries are in protobuf's order)
        for peer in ("decision", "full"):
            assert parse(stubs["service_interval"](requests[peer], timeout=30)) == \
                parse(stubs[f"echo_{peer}"](requests[peer], timeout=30))
        blocks, per_block = (2, 20) if _smoke(benchmark) else (60, 50)
        times: dict[str, list] = {mode: [] for mode, _, _ in modes}
        cpu = dict.fromkeys(times, 0.0)
        writer = dict.fromkeys(times, 0.0)
        for _, server, request in modes:
            for _ in range(per_block):
                stubs[server](requests[request])
        for _ in range(blocks):
            for mode, server, request in modes:
                call, data, pid = stubs[server], requests[request], SERVERS[server][0]
                before, writer_before = _cpu_seconds(pid), _thread_cpu_seconds(pid, WRITER_THREAD_OS_NAME)
                times[mode] += _latencies(lambda call=call, data=data: call(data), per_block)
                cpu[mode] += _cpu_seconds(pid) - before
                writer[mode] += _thread_cpu_seconds(pid, WRITER_THREAD_OS_NAME) - writer_before
    finally:
        for channel in channels:
            channel.close()
    figures = {}
    for mode in times:
        figures[f"{mode}_cpu_us_per_call"] = cpu[mode] / len(times[mode]) * 1e6
        figures[f"{mode}_audit_writer_cpu_us_per_call"] = writer[mode] / len(times[mode]) * 1e6
        figures[f"{mode}_p50_us"] = float(np.percentile(times[mode], 50)) * 1e6
    for mode, peer in (("c_decision_only", "echo_decision"), ("b_actions", "echo_full")):
        figures[f"{mode}_cpu_ratio"] = figures[f"{mode}_cpu_us_per_call"] / figures[f"{peer}_cpu_us_per_call"]
        figures[f"{mode}_p50_ratio"] = figures[f"{mode}_p50_us"] / figures[f"{peer}_p50_us"]
    benchmark.extra_info.update(figures)
    print("\nDecide, server CPU per call (µs):")
    for mode in times:
        ratio = f"  ({figures[mode + '_cpu_ratio']:.2f}× echo; p50 {figures[mode + '_p50_ratio']:.2f}×)" \
            if mode + "_cpu_ratio" in figures else ""
        writer_share = f"; audit writer thread {figures[mode + '_audit_writer_cpu_us_per_call']:.0f}" \
            if "echo" not in mode else ""
        print(f"  {mode:18s} CPU {figures[mode + '_cpu_us_per_call']:7.0f}  p50 {figures[mode + '_p50_us']:7.0f}{ratio}"
              f"{writer_share}")
    assert figures["c_decision_only_cpu_us_per_call"] > 0
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


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
    """In process, per stage of one Decide (µs): parse, Account → record, kernel, the stage
    after it, the audit record (build, encode; append per sync mode — with "interval" the append
    only queues the record for the log's writer thread, which builds, encodes and writes it off
    the call's path), the response's bytes; and the whole of Engine.decide_response (audit interval) with
    and without actions, back to back (the writer thread then takes its turns on the GIL
    between calls). Then the decision-only call as Decide makes it (Engine.decide_account)
    with a gap before each call in which the thread sleeps or spins (:data:`IDLE_GAP_S`):
    what idling between calls does to the same work."""
    from kernel.hookspecs import Record
    from kernel.audit import AuditLog, encode_record
    from kernel.server.engine import load_engine

    # sync "interval": decide_response's total would otherwise be mostly the fdatasync's variance;
    # the append in each mode is measured on its own below
    engine = load_engine(None, audit_path=str(tmp_path / "audit.log"), audit_sync="interval")
    pipeline, kernel = engine.pipeline, engine.kernel
    account = convert.ACCOUNT.encode(_account(book))
    record = engine.record(account)
    decided = kernel.decide_record(record, AS_OF)
    n = 20 if _smoke(benchmark) else 500

    def per_call(fn) -> float:
        fn()
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - start) / n * 1e6

    result = pipeline.stage(Record(record), Record(decided), AS_OF, NOW)
    audit = pipeline.audit_record(result, AS_OF, NOW)
    always = AuditLog(tmp_path / "always.log")
    interval = AuditLog(tmp_path / "interval.log", sync="interval")
    response = decision_pb2.DecideResponse.FromString(engine.decide_response(record, AS_OF, NOW)[0])
    ran = pipeline.run_record(record, AS_OF, NOW)
    encoder, decisions = engine.encoder, ran.decision_record
    request = _request(book)
    request_bytes = request.SerializeToString()
    figures = {
        "parse_request_us": per_call(lambda: decision_pb2.DecideRequest.FromString(request_bytes)),
        # the request's instant as Decide reads it, and protobuf's own conversion (its peer)
        "request_now_us": per_call(lambda: convert.timestamp_value(request.now, "now")),
        "protobuf_to_datetime_us": per_call(lambda: request.now.ToDatetime(tzinfo=dt.timezone.utc)),
        "account_to_record_us": per_call(lambda: engine.record(account)),
        "kernel_decide_record_us": per_call(lambda: kernel.decide_record(record, AS_OF)),
        "stage_with_actions_us": per_call(lambda: pipeline.stage(Record(record), Record(decided), AS_OF, NOW)),
        "stage_decision_only_us": per_call(lambda: pipeline.stage(Record(record), Record(decided), AS_OF, NOW,
                                                                  actions=False)),
        # with sync "interval" the writer thread builds (and encodes) the record, off the call's path
        "audit_record_build_us": per_call(lambda: pipeline.audit_record(result, AS_OF, NOW)),
        "audit_encode_us": per_call(lambda: encode_record(*audit)),
        "audit_append_sync_always_us": per_call(lambda: always.append(*audit)),
        "audit_append_sync_interval_us": per_call(lambda: interval.append(*audit)),
        "response_with_actions_us": per_call(lambda: encoder.response(decisions, AS_OF, ran.action_columns)),
        "response_decision_only_us": per_call(lambda: encoder.response(decisions, AS_OF)),
        "decide_response_us": per_call(lambda: engine.decide_response(record, AS_OF, NOW)),
        "decide_response_decision_only_us": per_call(lambda: engine.decide_response(record, AS_OF, NOW, False)),
        "actions": len(response.actions),
    }
    # The same decision-only call (Account → record, decide_response) with a gap of 0.6 ms before
    # each — about what a lone caller leaves the server between calls (the round trip's other
    # parts) — in which the thread sleeps (the core idles or runs other processes, as the
    # server's does) or spins (the core stays on this thread); p50 of each call's own time.
    def gapped(gap: str) -> float:
        times = []
        for _ in range(n):
            if gap == "sleep":
                time.sleep(IDLE_GAP_S)
            elif gap == "spin":
                until = time.perf_counter() + IDLE_GAP_S
                while time.perf_counter() < until:
                    pass
            start = time.perf_counter_ns()
            engine.decide_account(account, AS_OF, NOW, False)
            times.append(time.perf_counter_ns() - start)
        return float(np.median(times)) / 1e3

    for gap in ("none", "sleep", "spin"):
        figures[f"record_and_decide_decision_only_gap_{gap}_us"] = gapped(gap)

    def p50(fn) -> float:
        """p50 of each call's own time (µs): the mean above is at the mercy of other jobs'
        preemptions on a loaded machine, the median much less."""
        times = []
        for _ in range(n):
            start = time.perf_counter_ns()
            fn()
            times.append(time.perf_counter_ns() - start)
        return float(np.median(times)) / 1e3

    # Decide's decision-only call both ways in alternating blocks: the wire's way (what Decide
    # does: Engine.decide_account) and the record's (Account → record, decide_response); p50
    # of each call's wall time and the calling thread's CPU time per call (less at the mercy
    # of other jobs than the wall time)
    decision_only = _request(book, actions=False).SerializeToString()

    def parsed():                   # Decide before the request pass: parse, the dates, the Account's way
        message = decision_pb2.DecideRequest.FromString(decision_only)
        return engine.decide_account(message.account, convert.date_value(message.as_of, "as_of"),
                                     convert.timestamp_value(message.now, "now"), message.actions)

    def request():                  # Decide's way from the request's bytes (Engine.decide_request)
        return engine.decide_request(decision_only)

    assert request() == parsed()
    ways = {"wire": lambda: engine.decide_account(account, AS_OF, NOW, False),
            "record": lambda: engine.decide_response(engine.record(account), AS_OF, NOW, False),
            "parsed": parsed, "request": request}
    walls: dict = {way: [] for way in ways}
    cpus: dict = {way: [] for way in ways}
    for _ in range(20):
        for way, fn in ways.items():
            cpu = time.thread_time_ns()
            for _ in range(max(n // 20, 1)):
                start = time.perf_counter_ns()
                fn()
                walls[way].append(time.perf_counter_ns() - start)
            cpus[way].append((time.thread_time_ns() - cpu) / max(n // 20, 1))
    for way in ways:
        figures[f"decision_only_{way}_p50_us"] = float(np.median(walls[way])) / 1e3
        figures[f"decision_only_{way}_cpu_us"] = float(np.median(cpus[way])) / 1e3
    figures["decision_only_wire_over_record"] = figures["decision_only_wire_p50_us"] / figures["decision_only_record_p50_us"]
    figures["decision_only_request_over_parsed"] = \
        figures["decision_only_request_p50_us"] / figures["decision_only_parsed_p50_us"]

    # the steps test_where_server_time_goes times inside the server's handler, here hot
    stated = pipeline.record_with_state(record, AS_OF, NOW)
    decided_stated = kernel.decide_record(stated, AS_OF)
    hot = {"record": lambda: engine.record(account), "state_join": lambda: pipeline.record_with_state(record, AS_OF, NOW),
           "kernel": lambda: kernel.decide_record(stated, AS_OF),
           "stage": lambda: pipeline.stage(stated, Record(decided_stated), AS_OF, NOW, actions=False),
           "audit_append": lambda: interval.append(*audit),
           "response": lambda: encoder.response(decisions, AS_OF),
           # the wire's way: the Account's bytes into the kernel's inputs, the kernel on them
           "wire_to_kernel": lambda: engine.kernel_inputs.stage(account),
           # Decide's way: the request's bytes to the response's (the kernel run inside)
           "request_to_response": lambda: engine.request_decider.decide(decision_only),
           "kernel_staged": lambda: kernel.decide_staged(AS_OF)}
    for step, fn in hot.items():
        fn()
        figures[f"hot_step_{step}_p50_us"] = p50(fn)
    figures["after_idle_over_hot"] = figures["record_and_decide_decision_only_gap_sleep_us"] / \
        figures["record_and_decide_decision_only_gap_none_us"]
    figures["after_spin_over_hot"] = figures["record_and_decide_decision_only_gap_spin_us"] / \
        figures["record_and_decide_decision_only_gap_none_us"]
    # how this machine's cores idle (a halted virtual CPU comes back with cold caches)
    for name, path in (("cpuidle_driver", "/sys/devices/system/cpu/cpuidle/current_driver"),
                       ("guest_halt_poll_ns", "/sys/module/haltpoll/parameters/guest_halt_poll_ns")):
        try:
            figures[name] = Path(path).read_text().strip()
        except OSError:
            figures[name] = None
    benchmark.extra_info.update(figures)
    print("\nWhere Decide's time goes:", json.dumps({k: round(v, 2 if "over" in k else 1) if isinstance(v, (int, float)) else v
                                                 for k, v in figures.items()}))
    benchmark.pedantic(lambda: engine.decide_response(record, AS_OF, NOW), rounds=1 if _smoke(benchmark) else 100,
                       iterations=1)


def test_where_server_time_goes(benchmark, book, tmp_path):
    """Decide decision-only (audit interval), one call at a time: where the server's wall time
    goes beyond the in-process cost. Six processes (``grpc_trace_peer.py``) stamp each call
    with ``perf_counter_ns`` — the same clock as the client's — when gRPC hands the request
    to the deserializer and at the servicer's entry and exit: ``service`` (``postloan
    serve`` as it serves), ``bare`` (the same without the interceptor, the tracked pool and
    the concurrency limit), ``service_1thread`` (the service with one RPC thread instead of
    16: every call on the same thread, its thread-local buffers and stack), the bare grpcio
    ``echo``, ``echo_loaded`` (the echo in a process holding the warm engine) and
    ``echo_working`` (that echo doing the service's work on each request first), in
    alternating blocks; the servicers also time each step inside the handler. Per call:
    *in* (client send → deserializer), *to_handler* (deserializer → servicer: parse, thread
    hand-off, interceptor), *handler* (the servicer: the in-process cost, paid in the
    server with cold caches), *out* (servicer exit → client has the answer), and each
    process's CPU per call (every thread's, the audit writer's included)."""
    import grpc

    request = _request(book, actions=False).SerializeToString()
    procs, stubs, channels = {}, {}, []

    def start(name: str, *extra: str, shape: str | None = None) -> None:
        out = tmp_path / f"{name}.json"
        proc, port = _spawn([sys.executable, str(HERE / "grpc_trace_peer.py"), shape or name, "--out", str(out),
                             *extra], "port ")
        procs[name] = (proc, out)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        channels.append(channel)
        stubs[name] = channel.unary_unary("/postloan.v1.DecisionService/Decide")

    try:
        start("service")
        response = stubs["service"](request, timeout=120)
        (tmp_path / "response.bin").write_bytes(response)
        start("bare")
        start("service_1thread", "--threads", "1", shape="service")
        start("echo", "--response", str(tmp_path / "response.bin"))
        start("echo_loaded", "--response", str(tmp_path / "response.bin"))
        start("echo_working", "--response", str(tmp_path / "response.bin"))
        assert stubs["bare"](request, timeout=120) == stubs["service_1thread"](request, timeout=120) == response \
            == stubs["echo"](request, timeout=30) == stubs["echo_loaded"](request, timeout=30) \
            == stubs["echo_working"](request, timeout=30)
        blocks, per_block = (2, 10) if _smoke(benchmark) else (40, 50)
        sent: dict[str, list] = {shape: [] for shape in stubs}
        cpu = dict.fromkeys(stubs, 0.0)
        for shape, stub in stubs.items():                  # warm, then start the stamps over
            for _ in range(per_block):
                stub(request)
            procs[shape][0].send_signal(signal.SIGUSR1)
        time.sleep(1.0)
        ns = time.perf_counter_ns
        for _ in range(blocks):
            for shape, stub in stubs.items():
                pid = procs[shape][0].pid
                before = _cpu_seconds(pid)
                for _ in range(per_block):
                    start_ns = ns()
                    stub(request)
                    sent[shape].append((start_ns, ns()))
                cpu[shape] += _cpu_seconds(pid) - before
        time.sleep(0.2)                                    # (the audit writer's last wake-up)
        for proc, _ in procs.values():
            proc.send_signal(signal.SIGUSR1)
        time.sleep(1.0)
        dumps = {shape: json.loads(out.read_text()) for shape, (_, out) in procs.items()}
        stamps = {shape: np.array(dump["calls"], np.int64) for shape, dump in dumps.items()}
    finally:
        for channel in channels:
            channel.close()
        for proc, _ in procs.values():
            _stop(proc)
    figures: dict = {"calls_each": len(sent["echo"]), "load_average_1m": os.getloadavg()[0]}
    for shape in stubs:
        client, server = np.array(sent[shape], np.int64), stamps[shape]
        assert server.shape == (len(client), 3), f"{shape}: {server.shape} stamps for {len(client)} calls"
        parts = {"rtt": client[:, 1] - client[:, 0], "in": server[:, 0] - client[:, 0],
                 "to_handler": server[:, 1] - server[:, 0], "handler": server[:, 2] - server[:, 1],
                 "out": client[:, 1] - server[:, 2]}
        for part, values in parts.items():
            figures[f"{shape}_{part}_p50_us"] = float(np.median(values)) / 1e3
        figures[f"{shape}_cpu_us_per_call"] = cpu[shape] / len(client) * 1e6
        if dumps[shape]["audit"]:            # the audit writer: records per wake-up and write
            records, writes = dumps[shape]["audit"]
            figures[f"{shape}_audit_records_per_write"] = records / max(writes, 1)
        for step, durations in dumps[shape]["steps"].items():
            if not durations:              # a step this call does not take (Decide's wire way: no record)
                continue
            assert len(durations) == len(client), f"{shape}: {len(durations)} {step} times for {len(client)} calls"
            figures[f"{shape}_step_{step}_p50_us"] = float(np.median(durations)) / 1e3
    for shape in ("service", "bare", "service_1thread", "echo_loaded", "echo_working"):
        figures[f"{shape}_p50_ratio"] = figures[f"{shape}_rtt_p50_us"] / figures["echo_rtt_p50_us"]
        figures[f"{shape}_beyond_handler_us"] = figures[f"{shape}_rtt_p50_us"] - figures[f"{shape}_handler_p50_us"] \
            - figures["echo_rtt_p50_us"]
    benchmark.extra_info.update(figures)
    print("\nWhere the server's time goes, Decide decision-only (p50 µs per segment):")
    for shape in stubs:
        ratio = f"  ({figures[shape + '_p50_ratio']:.2f}× echo)" if shape != "echo" else ""
        print(f"  {shape:15s} " + "  ".join(f"{part} {figures[f'{shape}_{part}_p50_us']:6.0f}"
                                           for part in ("rtt", "in", "to_handler", "handler", "out"))
              + f"  CPU/call {figures[shape + '_cpu_us_per_call']:6.0f}{ratio}")
    for shape in ("service", "bare", "service_1thread"):
        prefix = f"{shape}_step_"
        print(f"  {shape:15s} inside the handler: " + "  ".join(
            f"{name[len(prefix):-7]} {value:5.1f}" for name, value in figures.items() if name.startswith(prefix))
            + f"; audit records per write {figures[shape + '_audit_records_per_write']:.1f}")
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


def test_where_decide_actions_server_cost_goes(benchmark, book, tmp_path):
    """What a Decide with actions costs the server beyond a decision-only one (audit
    interval): one ``server_cost_peer.py`` process serving both, asked in alternating turns
    for a sustained ``seconds`` (one call at a time). Per call: the process's CPU by thread —
    gRPC's polling thread, the RPC threads, the audit writer, gRPC's C threads — from /proc
    (ns), and the threads' CPU in gRPC's server steps (``step _call_behavior`` is the
    servicer, interceptor included; ``step _status`` sends the answer); medians over the
    rounds, and the actions' extra over decision-only for each."""
    import grpc

    from bench_ledger import cost_round, cost_table
    requests = {"decision_only": _request(book, actions=False).SerializeToString(),
                "with_actions": _request(book).SerializeToString()}
    out = tmp_path / "steps.json"
    proc, port = _spawn([sys.executable, str(HERE / "server_cost_peer.py"), "service", "--steps", "--out", str(out),
                         "--", "serve", "--port", "0", "--threads", "16", "--audit-log", str(tmp_path / "audit.log"),
                         "--audit-sync", "interval"], '"listening"')
    seconds, rounds = (0.3, 1) if _smoke(benchmark) else (2.0, 6)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    call = channel.unary_unary("/postloan.v1.DecisionService/Decide")
    per_round: dict[str, list[dict]] = {mode: [] for mode in requests}
    try:
        Client(f"127.0.0.1:{port}", timeout=120).wait_until_serving(600)
        for r in range(rounds):
            for mode in (list(requests) if r % 2 == 0 else list(requests)[::-1]):
                data = requests[mode]
                per_round[mode].append(cost_round(proc, out, lambda: call(data, timeout=30), seconds))
    finally:
        channel.close()
        _stop(proc)
    cost_table(benchmark, "Decide with actions against decision-only, where the server's cost goes", per_round,
               {"actions_extra": ("with_actions", "decision_only")})
