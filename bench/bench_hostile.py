"""Memory bounds under hostile input (issue 10): the resident set of a ``postloan serve``
process, alone in its process, while it refuses each kind of hostile request many times.

For each kind, after one request of it and one of its peer (memory pools and buffers warm):
the RSS growth over the run (what stays: a leak or an unbounded cache) and the peak over the
RSS before the run (what a refusal costs at most), against the bounds the guide states
(docs/grpc-guide.md, "Memory under hostile input"); the peer, measured just before in the
same run, is the same number of valid calls of the same method. The peak is read from
``VmHWM`` after resetting it (``/proc/PID/clear_refs``), so each measurement's peak is its own.

    pytest bench/bench_hostile.py --benchmark-enable -s      # the full counts
    pytest bench/bench_hostile.py --benchmark-disable -s     # smoke: a tenth of them

The hostile payloads are the regression fixtures of tests/server (built by hostile.py).
"""
from __future__ import annotations

import datetime as dt
import json
import random
import string
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "server"))

from hostile import book, fixture, ipc_bytes  # noqa: E402
from kernel.client import Client  # noqa: E402
from kernel.server import convert  # noqa: E402
from kernel.server._proto.postloan.v1 import decision_pb2  # noqa: E402

AS_OF = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 2, 30, tzinfo=dt.timezone.utc)
MiB = 1 << 20


def _smoke(benchmark) -> bool:
    return getattr(benchmark, "disabled", False)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``postloan serve`` with a 16 MiB message limit (so that an answer can be too large) and
    an audit log; yields (port, pid)."""
    audit = tmp_path_factory.mktemp("audit") / "audit.log"
    proc = subprocess.Popen([sys.executable, "-m", "kernel", "serve", "--port", "0", "--threads", "16",
                             "--max-message-mb", "16", "--audit-log", str(audit), "--audit-sync", "interval"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    port = None
    while port is None:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"postloan serve exited with {proc.wait()}")
        if '"listening"' in line:
            port = int(json.loads(line)["address"].rsplit(":", 1)[1])
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    with Client(f"127.0.0.1:{port}") as client:
        client.wait_until_serving(300)
    yield port, proc.pid
    proc.terminate()
    proc.wait(60)


def _kib(pid: int, key: str) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def _measure(pid: int, run) -> tuple[float, float]:
    """(RSS growth, peak over the RSS before) of ``run()``, MiB."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")
    before = _kib(pid, "VmRSS")
    run()
    time.sleep(0.2)
    return (_kib(pid, "VmRSS") - before) / 1024, (_kib(pid, "VmHWM") - before) / 1024


def _call(channel, method: str, data: bytes) -> str:
    service = "BundleAdmin" if method in ("GetBundle", "ReloadBundle") else "DecisionService"
    try:
        channel.unary_unary(f"/postloan.v1.{service}/{method}")(data, timeout=120)
        return "OK"
    except grpc.RpcError as e:
        return e.code().name


def _batch(data: bytes, with_actions: bool = False) -> bytes:
    return decision_pb2.DecideBatchRequest(accounts=data, with_actions=with_actions, as_of=convert.date_message(AS_OF),
                                           now=convert.timestamp_message(NOW)).SerializeToString()


# kind -> (requests at full count, bound on RSS growth MiB, bound on the peak MiB, what it is)
KINDS = {
    "unknown_methods": (40_000, 16, 64, "random method names, no token (before: +160 MiB for 40,000)"),
    "zstd_bomb_rows": (40, 16, 32, "0.03 MiB zstd declaring 2²⁷ rows (before: +900 MiB each)"),
    "zstd_bomb_bytes": (40, 16, 32, "2,000 rows × 512 KiB of zstd-compressed text"),
    "malformed_arrow": (400, 16, 64, "offsets past the data, dictionary index out of range, invalid UTF-8"),
    "megabyte_account_id": (100, 16, 64, "Decide with a 1 MiB account_id"),
    "one_field_decide": (4_000, 16, 64, "Decide with only account_id: 72 violations, bounded details"),
    # a ≈ 20 MiB answer over the 16 MiB limit: decided, refused before it is audited; its peak is
    # that of any batch this size (the peer: a valid 40,000-account batch), and nothing stays
    "answer_too_large": (6, 64, 512, "DecideBatch of 60,000 accounts with actions, answer over --max-message-mb"),
}


def _requests(kind: str, count: int, rng: random.Random):
    if kind == "unknown_methods":
        for _ in range(count):
            name = "".join(rng.choices(string.ascii_letters, k=rng.randint(8, 120)))
            yield f"unknown/{name}", b""
    elif kind in ("zstd_bomb_rows", "zstd_bomb_bytes"):
        data = _batch(fixture(kind))
        for _ in range(count):
            yield "DecideBatch", data
    elif kind == "malformed_arrow":
        payloads = [_batch(fixture(n), True) for n in ("bad_offsets", "dictionary_index_out_of_range", "invalid_utf8",
                                                       "mutated_not_implemented", "mutated_unknown_dictionary")]
        for i in range(count):
            yield "DecideBatch", payloads[i % len(payloads)]
    elif kind == "megabyte_account_id":
        account = convert.ACCOUNT.encode(book(1).to_pylist()[0])
        account.account_id = "A" * MiB
        data = decision_pb2.DecideRequest(account=account).SerializeToString()
        for _ in range(count):
            yield "Decide", data
    elif kind == "one_field_decide":
        data = decision_pb2.DecideRequest(account={"account_id": "AC0000000000"}).SerializeToString()
        for _ in range(count):
            yield "Decide", data
    elif kind == "answer_too_large":
        data = _batch(ipc_bytes(book(60_000, seed=2), "zstd"), with_actions=True)
        for _ in range(count):
            yield "DecideBatch", data


def _peer_requests(kind: str, count: int):
    """The same number of valid calls of the same method (for unknown methods: Decide)."""
    if kind in ("zstd_bomb_rows", "zstd_bomb_bytes", "malformed_arrow", "answer_too_large"):
        rows = 40_000 if kind == "answer_too_large" else 50
        data = _batch(ipc_bytes(book(rows, seed=4), "zstd"), with_actions=True)
        method = "DecideBatch"
    else:
        data = decision_pb2.DecideRequest(account=convert.ACCOUNT.encode(book(1).to_pylist()[0]),
                                          as_of=convert.date_message(AS_OF)).SerializeToString()
        method = "Decide"
    for _ in range(count):
        yield method, data


def test_rss_under_hostile_requests(benchmark, server):
    port, pid = server
    smoke = _smoke(benchmark)
    rng = random.Random(10)
    rows = []
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 64 * MiB),
                                                             ("grpc.max_receive_message_length", 64 * MiB)]) as channel:
        for _, data in _peer_requests("one_field_decide", 50):        # warm every path first
            _call(channel, "Decide", data)
        for kind, (full, growth_bound, peak_bound, what) in KINDS.items():
            count = max(2, full // 10) if smoke else full
            outcomes: dict[str, int] = {}

            def hostile():
                for method, data in _requests(kind, count, rng):
                    code = _call(channel, method, data)
                    outcomes[code] = outcomes.get(code, 0) + 1

            def peer():
                for method, data in _peer_requests(kind, count):
                    _call(channel, method, data)

            for method, data in [*_requests(kind, 1, rng), *_peer_requests(kind, 1)]:
                _call(channel, method, data)        # once each first: pools and buffers warm, not counted
            peer_growth, peer_peak = _measure(pid, peer)
            started = time.perf_counter()
            growth, peak = _measure(pid, hostile)
            seconds = time.perf_counter() - started
            rows.append({"kind": kind, "requests": count, "outcomes": outcomes, "rss_growth_mib": round(growth, 1),
                         "peak_mib": round(peak, 1), "peer_rss_growth_mib": round(peer_growth, 1),
                         "peer_peak_mib": round(peer_peak, 1), "growth_bound_mib": growth_bound,
                         "peak_bound_mib": peak_bound, "ms_per_request": round(seconds / count * 1e3, 2)})
            assert "INTERNAL" not in outcomes and "UNKNOWN" not in outcomes, (kind, outcomes)
    benchmark.extra_info["kinds"] = rows
    print(f"\nserver RSS under hostile requests (pid {pid}), MiB:")
    print(f"  {'kind':22s} {'requests':>8s} {'growth':>7s} {'peak':>7s} {'bound':>9s}  {'peer growth/peak':>16s}  outcomes")
    for r in rows:
        print(f"  {r['kind']:22s} {r['requests']:8,d} {r['rss_growth_mib']:7.1f} {r['peak_mib']:7.1f} "
              f"{r['growth_bound_mib']:>4d}/{r['peak_bound_mib']:<4d}  {r['peer_rss_growth_mib']:7.1f}/{r['peer_peak_mib']:<7.1f}  "
              f"{r['outcomes']}")
    for r in rows:
        assert r["rss_growth_mib"] < r["growth_bound_mib"], r
        assert r["peak_mib"] < r["peak_bound_mib"], r
    bomb = _batch(fixture("zstd_bomb_rows"))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        benchmark.pedantic(lambda: _call(channel, "DecideBatch", bomb), rounds=1 if smoke else 50, iterations=1)
