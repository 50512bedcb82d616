"""The case ledger against its peers, each in the same run (docs/ledger.md, "Performance").

* **Ingest**: ``Ledger.ingest`` (row checks, idempotency, durable commit per batch) against a
  bare ``executemany`` of the same rows into the same kind of store (same schema, same
  SQLite settings, the rows already built as Python tuples). Goals: ≥ 0.5× the bare insert
  and ≥ 100,000 events/s, in 50,000-row batches.
* **State for 1,000,000 accounts**: ``Ledger.state_columns`` for every account, against
  reading the same events back alone (the store's share of the time).
* **GPS at fleet scale**: 1,000,000 cars pinging once a minute (≈ 17,000 pings/s), two
  minutes of pings ingested one second's worth at a time; the sustained rate must stay above
  the arrival rate.
* **CheckContact** p50 against a bare grpcio echo answering the same bytes (goal ≤ 1.5×),
  and its anatomy in process: each step's p50 against the whole, hot and after a sleep; the
  gate's two compiled calls (the fold, the policies' verdict) against the same work taking
  its inputs as separate arguments, alternating call by call; and where the server's cost
  goes around the gate (``-k where_check_contact``): the service, the service with a
  constant gate and that one with each of its differences from the echo switched off, each
  thread's CPU a call against the echo's (``server_cost_peer.py``); and the gate's own CPU in
  the server against the same gate asked directly in the same process, after an idle gap,
  after other code's work and back to back (``-k gate_in_the_server``).
* **Decide with state** (``--store``) p50 against the same Decide without a ledger (goal
  ≤ 1.1×), both servers in their own processes, calls alternating in blocks: one account
  asked over and over (the store's cache of its rows answers), and 1,200 accounts asked once
  each (every call reads the store).

    pytest bench/bench_ledger.py --benchmark-enable -s
    pytest bench/bench_ledger.py --benchmark-disable        # smoke: small sizes
"""
from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import sys
import time
import zoneinfo
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from kernel.ledger import Ledger
from kernel.ledger.events import normalize
from kernel.ledger.store import NULL_TIME, SQLiteStore, _none

sys.path.insert(0, os.path.dirname(__file__))
from bench_grpc import HERE, _spawn, _stop  # noqa: E402

UTC = dt.timezone.utc
TS = pa.timestamp("us", tz="UTC")
DAY = 86_400_000_000


def _smoke(benchmark) -> bool:
    return getattr(benchmark, "disabled", False)


def events(n: int, accounts: int, now_us: int, seed: int = 0, prefix: str = "E") -> pa.Table:
    """A realistic mix of ``n`` events over ``accounts`` accounts in the 60 days before
    ``now_us``: 70 % contact attempts, 20 % payments, 10 % promises."""
    rng = np.random.default_rng(seed)
    kind = np.array(["CONTACT_ATTEMPT", "PAYMENT", "PROMISE_TO_PAY"])[rng.choice(3, n, p=[0.7, 0.2, 0.1])]
    at = now_us - rng.integers(0, 60 * DAY, n)
    contact, promise = kind == "CONTACT_ATTEMPT", kind == "PROMISE_TO_PAY"
    channel = np.where(contact, np.array(["PHONE", "SMS", "VOICE_BOT", "FIELD_VISIT"])[rng.integers(0, 4, n)], None)
    outcome = np.where(contact, np.array(["NO_ANSWER", "RIGHT_PARTY", "BUSY", "VOICEMAIL"])[rng.integers(0, 4, n)], None)
    amount = np.where(contact, np.nan, rng.integers(1, 100, n) * 50.0)
    promise_day = np.where(promise, at // DAY + rng.integers(1, 20, n), 0).astype(np.int32)
    ids = pa.array(np.char.add(prefix, np.arange(n).astype("U12")))
    account = pa.array(np.char.add("AC", rng.integers(0, accounts, n).astype("U10")))
    return pa.table({"event_id": ids, "account_id": account, "kind": pa.array(kind), "at": pa.array(at, TS),
                     "channel": pa.array(channel, pa.string()), "outcome": pa.array(outcome, pa.string()),
                     "amount": pa.array(amount, from_pandas=True),
                     "promise_date": pa.array(promise_day, pa.date32(), mask=~promise)})


def _bare_rows(table: pa.Table, now_us: int) -> list[tuple]:
    """The rows as the store keeps them, as Python tuples (the bare insert's input)."""
    rows, _ = normalize(table, now_us=now_us, max_future_us=0, max_promise_days=90)
    order = np.argsort(rows.rows)                      # back to arrival order
    rows = rows.take(order)
    n = rows.n
    return list(zip(rows.event_id.tolist(), rows.account_id.tolist(), rows.kind.tolist(), rows.at.tolist(),
                    [now_us] * n, _none(rows.amount, None), _none(rows.promise_date, NULL_TIME),
                    _none(rows.channel, -1), _none(rows.outcome, -1), [None] * n, [None] * n, [None] * n))


def _fresh(path) -> str:
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.remove(f"{path}{suffix}")
    return str(path)


def test_ingest_against_bare_executemany(benchmark, tmp_path):
    n = 20_000 if _smoke(benchmark) else 400_000
    batch = 50_000
    now = dt.datetime(2026, 11, 28, 2, tzinfo=UTC)
    now_us = int(now.timestamp()) * 1_000_000
    table = events(n, max(n // 4, 1), now_us)
    rows = _bare_rows(table, now_us)
    ours, bare = [], []
    for round_ in range(1 if _smoke(benchmark) else 3):            # alternate: noise hits both
        with Ledger(f"sqlite:///{_fresh(tmp_path / 'ours.db')}") as ledger:
            start = time.perf_counter()
            for b in table.to_batches(max_chunksize=batch):
                result = ledger.ingest(b, now=now)
                assert not result.rejected
            ours.append(n / (time.perf_counter() - start))
            assert ledger.store.count_events() == n
        store = SQLiteStore(_fresh(tmp_path / "bare.db"))
        conn = store._connection()
        start = time.perf_counter()
        for i in range(0, n, batch):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows[i:i + batch])
            conn.execute("COMMIT")
        bare.append(n / (time.perf_counter() - start))
        store.close()
    # the machine's load says how far the absolute rates are from an idle machine's (the ratio
    # is measured in the same run, alternating, and holds either way)
    figures = {"events": n, "batch_rows": batch, "ingest_events_per_s": float(np.median(ours)),
               "bare_executemany_events_per_s": float(np.median(bare)),
               "ratio": float(np.median(ours) / np.median(bare)), "load_average_1m": os.getloadavg()[0]}
    benchmark.extra_info.update(figures)
    print("\nIngest vs bare executemany:", json.dumps({k: round(v, 2) for k, v in figures.items()}))
    with Ledger(f"sqlite:///{_fresh(tmp_path / 'again.db')}") as ledger:
        first = table.slice(0, batch)
        benchmark.pedantic(lambda: ledger.ingest(first, now=now), rounds=1, iterations=1)


def test_state_for_a_million_accounts(benchmark, tmp_path):
    accounts = 10_000 if _smoke(benchmark) else 1_000_000
    n = accounts * 3
    now = dt.datetime(2026, 11, 28, 2, tzinfo=UTC)
    now_us = int(now.timestamp()) * 1_000_000
    path = _fresh(tmp_path / "state.db")
    store = SQLiteStore(path)                          # loaded by bare inserts: the setup is not measured
    conn = store._connection()
    step = 500_000
    for i in range(0, n, step):
        rows = _bare_rows(events(min(step, n - i), accounts, now_us, seed=i, prefix=f"S{i}_"), now_us)
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
    store.close()
    ids = np.char.add("AC", np.arange(accounts).astype("U10")).tolist()
    zones = ["Asia/Shanghai"] * accounts
    with Ledger(f"sqlite:///{path}") as ledger:
        ledger.state_columns(ids[:10], zones[:10], now)            # compile / warm
        start = time.perf_counter()
        state = ledger.state_columns(ids, zones, now)
        derive_s = time.perf_counter() - start
        start = time.perf_counter()
        read = ledger.store.read_events(None, now_us, now_us - ledger.settings.lookback_us)
        read_s = time.perf_counter() - start
    assert state["ledger_events"].sum() == read.n == n
    figures = {"accounts": accounts, "events": n, "state_seconds": derive_s, "accounts_per_s": accounts / derive_s,
               "read_events_alone_seconds": read_s, "read_share": read_s / derive_s}
    benchmark.extra_info.update(figures)
    print("\nState for every account:", json.dumps({k: round(v, 3) for k, v in figures.items()}))
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


def test_gps_pings_at_fleet_scale(benchmark, tmp_path):
    cars = 10_000 if _smoke(benchmark) else 1_000_000
    per_second = cars // 60
    start_us = int(dt.datetime(2026, 11, 28, 2, tzinfo=UTC).timestamp()) * 1_000_000
    rng = np.random.default_rng(3)
    car_ids = np.char.add("AC", np.arange(cars).astype("U10"))
    lat, lon = rng.uniform(22, 40, cars), rng.uniform(100, 122, cars)
    with Ledger(f"sqlite:///{_fresh(tmp_path / 'gps.db')}", {"ledger": {"gps_position_hours": 72.0}}) as ledger:
        rates = []
        for minute in range(2):                         # the second minute updates cars already known
            batches = []
            for second in range(60):
                cars_now = np.arange(second * per_second, (second + 1) * per_second)
                at = start_us + (minute * 60 + second) * 1_000_000
                batches.append(pa.table({
                    "event_id": pa.array(np.char.add(f"P{minute}_{second}_", cars_now.astype("U7"))),
                    "account_id": pa.array(car_ids[cars_now]), "kind": pa.array(["GPS_PING"] * len(cars_now)),
                    "at": pa.array(np.full(len(cars_now), at), TS), "lat": lat[cars_now], "lon": lon[cars_now]}))
            clock = dt.datetime.fromtimestamp(start_us / 1e6 + 3600, UTC)
            begin = time.perf_counter()
            for b in batches:
                ledger.ingest(b, now=clock)
            rates.append(per_second * 60 / (time.perf_counter() - begin))
        counts = ledger.counts()
    assert counts["cars pinging"] == per_second * 60
    figures = {"cars": cars, "arrival_pings_per_s": cars / 60, "first_minute_pings_per_s": rates[0],
               "second_minute_pings_per_s": rates[1], "keeps_up": min(rates) >= cars / 60}
    benchmark.extra_info.update(figures)
    print("\nGPS at fleet scale:", json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in figures.items()}))
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


# -- the service --------------------------------------------------------------------------------

def _business_zone() -> str:
    """A zone where it is now between 10:00 and 17:00 (the gate's KEEP path, whatever the hour)."""
    now = dt.datetime.now(UTC)
    for zone in ("Asia/Shanghai", "Europe/London", "America/New_York", "America/Los_Angeles", "Pacific/Auckland",
                 "Asia/Dubai", "America/Sao_Paulo", "Asia/Kolkata", "Europe/Moscow", "Pacific/Honolulu"):
        if 10 <= now.astimezone(zoneinfo.ZoneInfo(zone)).hour < 17:
            return zone
    return "UTC"


def _serve(tmp_path_factory, *flags):
    from kernel.client import Client
    audit = tmp_path_factory.mktemp("audit") / "audit.log"
    proc, port = _spawn([sys.executable, "-m", "kernel", "serve", "--port", "0", "--threads", "16",
                         "--audit-log", str(audit), "--audit-sync", "interval", *flags], '"listening"')
    client = Client(f"127.0.0.1:{port}", timeout=120)
    client.wait_until_serving(600)
    return proc, client, port


def _echo(tmp_path_factory, method: str, response: bytes):
    from kernel.client import Client
    path = tmp_path_factory.mktemp("echo") / "response.bin"
    path.write_bytes(response)
    proc, port = _spawn([sys.executable, str(HERE / "grpc_echo_peer.py"), "--port", "0", "--response", str(path),
                         "--method", method], "port ")
    return proc, Client(f"127.0.0.1:{port}", timeout=30)


def _p50(call, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


@pytest.fixture(scope="module")
def ledger_services(tmp_path_factory):
    """Two servers — one with --store (a ledger holding a history for the benchmark
    accounts), one without — and the accounts they serve."""
    from kernel.synth import generate
    zone = _business_zone()
    book = generate(2_000, seed=11)
    book = book.set_column(book.schema.get_field_index("time_zone"), "time_zone",
                           pa.array([zone] * book.num_rows))
    book = book.set_column(book.schema.get_field_index("country"), "country",
                           pa.array(["CN"] * book.num_rows).dictionary_encode())
    book = book.set_column(book.schema.get_field_index("consent_automated_contact"), "consent_automated_contact",
                           pa.array([True] * book.num_rows))
    store = f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'ledger.db'}"
    now_us = time.time_ns() // 1000
    with Ledger(store) as ledger:
        ledger.register(book)
        history = events(20_000, 1, now_us - 3600 * 1_000_000)
        ids = book["account_id"].to_pylist()
        history = history.set_column(1, "account_id", pa.array([ids[i % len(ids)] for i in range(history.num_rows)]))
        ledger.ingest(history)
    _PIDS["store"] = store
    with_store, client, port = _serve(tmp_path_factory, "--store", store)
    without, plain, _ = _serve(tmp_path_factory)
    _PIDS["with_store"], _PIDS["without"] = with_store.pid, without.pid
    try:
        yield book, client, plain, port
    finally:
        client.close()
        plain.close()
        _stop(with_store)
        _stop(without)


#: the ledger_services server's process id (its CPU time is read from /proc), and its store's URL
_PIDS: dict = {}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc), every thread's."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_check_contact_against_echo(benchmark, ledger_services, tmp_path_factory):
    """CheckContact's latency against the bare gRPC echo answering the same bytes, in
    alternating blocks of 50 calls, each call a different account; and the CPU time each server
    process spends per call (every thread's, from /proc) — less noisy than latency on the
    shared machine: it does not count the time a thread waits for a core."""
    import grpc

    from kernel.server._proto.postloan.v1 import contract_pb2, ledger_pb2, ledger_pb2_grpc
    book, client, _, port = ledger_services
    ids = book["account_id"].to_pylist()
    first = client.check_contact(ids[0], "SMS")
    assert first["outcome"] == "KEEP", first
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        answer = ledger_pb2_grpc.LedgerStub(channel).CheckContact(ledger_pb2.CheckContactRequest(
            account_id=ids[1], channel=contract_pb2.ContactChannel.Value("CONTACT_CHANNEL_SMS")))
    echo_proc, echo = _echo(tmp_path_factory, "/postloan.v1.Ledger/CheckContact", answer.SerializeToString())
    try:
        per_block, blocks = (10, 2) if _smoke(benchmark) else (50, 30)
        times: dict[str, list] = {"check_contact": [], "echo": []}
        cpu = dict.fromkeys(times, 0.0)
        pids = {"check_contact": _PIDS["with_store"], "echo": echo_proc.pid}
        k = 2
        for _ in range(blocks):
            block = ids[k:k + per_block] if k + per_block <= len(ids) else ids[:per_block]
            k += per_block
            for name, call in (("check_contact", client.check_contact), ("echo", echo.check_contact)):
                before = _cpu_seconds(pids[name])
                times[name] += _p50_each(lambda a: call(a, "SMS"), block)
                cpu[name] += _cpu_seconds(pids[name]) - before
    finally:
        echo.close()
        _stop(echo_proc)
    figures = {"calls_each": len(times["echo"]),
               "check_contact_p50_us": float(np.percentile(times["check_contact"], 50)) * 1e6,
               "echo_p50_us": float(np.percentile(times["echo"], 50)) * 1e6,
               "check_contact_p99_us": float(np.percentile(times["check_contact"], 99)) * 1e6,
               "echo_p99_us": float(np.percentile(times["echo"], 99)) * 1e6, "load_average_1m": os.getloadavg()[0]}
    figures["p50_ratio"] = figures["check_contact_p50_us"] / figures["echo_p50_us"]
    for name in times:
        figures[f"{name}_cpu_us_per_call"] = cpu[name] / len(times[name]) * 1e6
    figures["cpu_ratio"] = figures["check_contact_cpu_us_per_call"] / figures["echo_cpu_us_per_call"]
    benchmark.extra_info.update(figures)
    print("\nCheckContact vs echo:", json.dumps({k: round(v, 2) for k, v in figures.items()}))
    benchmark.pedantic(lambda: client.check_contact(ids[-1], "SMS"), rounds=1, iterations=1)


#: bench/server_cost_peer.py's shapes: (name, shape, --variant)
_COST_SHAPES = (("echo", "echo", ""), ("service", "service", ""), ("constant_gate", "service", "constant_gate"),
                ("no_interceptor", "service", "constant_gate,no_interceptor"),
                ("no_observe", "service", "constant_gate,no_observe"),
                ("plain_pool_no_limit", "service", "constant_gate,plain_pool,no_limit"))


def _threads_cpu_ns(pid: int) -> dict[str, int]:
    """Each thread's CPU time so far (ns, /proc/PID/task/*/schedstat: not tick-quantised)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[task.name] = int((task / "schedstat").read_text().split()[0])
        except OSError:
            pass                        # a thread that ended meanwhile
    return out


def _peer_dump(proc, out: Path, signal_name: str = "SIGUSR1", seconds: float = 5) -> dict:
    """SIGUSR1 to a server_cost_peer.py process: its thread names, step totals and gate times
    (SIGUSR2: the gate asked directly first)."""
    import signal
    before = out.stat().st_mtime_ns if out.exists() else 0
    proc.send_signal(getattr(signal, signal_name))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if out.exists() and out.stat().st_mtime_ns != before:
            try:
                return json.loads(out.read_text())
            except ValueError:          # written as we read it
                pass
        time.sleep(0.02)
    raise RuntimeError(f"{out} was not written")


def _thread_group(thread: str) -> str:
    """The group a server_cost_peer.py thread's CPU is counted in, by the thread's name."""
    return ("polling" if thread.startswith("Thread-") and "_serve" in thread else
            "rpc_threads" if thread.startswith(("postloan-rpc", "ThreadPoolExecutor")) else
            "audit_writer" if thread.startswith("postloan-audit") else
            thread if thread == "gRPC C threads" else "other")


def cost_round(proc, out: Path, ask, seconds: float) -> dict:
    """One round of a server_cost_peer.py process (``--steps --out out``) asked by ``ask()``,
    one call at a time for ``seconds`` after 100 warm calls: the p50 latency (µs) and, per
    call, the process's CPU by thread group (/proc) and its threads' CPU in each gRPC server
    step (``step _call_behavior`` is the servicer, interceptor included)."""
    for _ in range(100):
        ask()
    first = _peer_dump(proc, out)
    before = _threads_cpu_ns(proc.pid)
    latencies, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        ask()
        latencies.append(time.perf_counter() - t)
    after = _threads_cpu_ns(proc.pid)
    last = _peer_dump(proc, out)
    n = len(latencies)
    figures = {"p50_us": float(np.percentile(latencies, 50)) * 1e6, "cpu_us": 0.0}
    for tid, ns in after.items():
        group = _thread_group(last["threads"].get(tid, "gRPC C threads"))
        us = (ns - before.get(tid, 0)) / n / 1e3
        figures[group] = figures.get(group, 0.0) + us
        figures["cpu_us"] += us
    for step, (ns, count) in last["steps"].items():
        ns0, count0 = first["steps"].get(step, (0, 0))
        figures[f"step {step}"] = (ns - ns0) / max(count - count0, 1) / 1e3
    return figures


def test_where_check_contact_server_cost_goes(benchmark, ledger_services, tmp_path_factory):
    """What a CheckContact costs the *server* beyond the bare echo answering the same bytes,
    and which of the server's differences costs what: processes of ``server_cost_peer.py``
    (``_COST_SHAPES``: the echo, the service as it serves, the service whose gate answers a
    constant KEEP — the server around the gate alone —, and that one with one difference
    switched off at a time) on the ledger_services store, each asked in turn for a sustained
    ``seconds`` (one call at a time, each another account), in alternating order over the
    rounds. Per call: each process's CPU by thread — gRPC's polling thread, the RPC threads,
    gRPC's C threads — from /proc (ns), and each thread's CPU in gRPC's server steps (the
    peers time them all alike); medians over the rounds."""
    import grpc

    from kernel.server._proto.postloan.v1 import contract_pb2, ledger_pb2
    book, _, _, port = ledger_services
    ids = book["account_id"].to_pylist()
    sms = contract_pb2.ContactChannel.Value("CONTACT_CHANNEL_SMS")
    requests = [ledger_pb2.CheckContactRequest(account_id=a, channel=sms).SerializeToString() for a in ids]
    method = "/postloan.v1.Ledger/CheckContact"
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        answer = channel.unary_unary(method)(requests[1], timeout=30)
    folder = tmp_path_factory.mktemp("cost")
    (folder / "answer.bin").write_bytes(answer)
    seconds, rounds = (0.3, 1) if _smoke(benchmark) else (3.0, 6)
    procs, calls, channels = {}, {}, []
    try:
        for name, shape, variant in _COST_SHAPES:
            out = folder / f"{name}.json"
            if shape == "echo":
                extra = ["--response", str(folder / "answer.bin"), "--method", method]
                ready = "port "
            else:
                audit = folder / f"{name}-audit.log"
                extra = ["--variant", variant, "--", "serve", "--port", "0", "--threads", "16", "--audit-log",
                         str(audit), "--audit-sync", "interval", "--store", _PIDS["store"]]
                ready = '"listening"'
            proc, peer_port = _spawn([sys.executable, str(HERE / "server_cost_peer.py"), shape, "--steps", "--out",
                                      str(out), *extra], ready)
            procs[name] = (proc, out)
            channel = grpc.insecure_channel(f"127.0.0.1:{peer_port}")
            channels.append(channel)
            calls[name] = channel.unary_unary(method)
        for name, call in calls.items():                # every bundle compiled and warm
            deadline = time.monotonic() + 600
            while True:
                try:
                    call(requests[0], timeout=30)
                    break
                except grpc.RpcError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        asked = itertools.cycle(requests[2:] + requests[:2])     # (0 and 1 asked above)
        per_round: dict[str, list[dict]] = {name: [] for name in calls}
        for r in range(rounds):
            for name in (list(calls) if r % 2 == 0 else list(calls)[::-1]):
                call, (proc, out) = calls[name], procs[name]
                per_round[name].append(cost_round(proc, out, lambda: call(next(asked), timeout=30), seconds))
    finally:
        for channel in channels:
            channel.close()
        for proc, _ in procs.values():
            _stop(proc)
    cost_table(benchmark, "CheckContact, where the server's cost goes", per_round)


def cost_table(benchmark, title: str, per_round: dict[str, list[dict]], differences: dict | None = None) -> dict:
    """The medians over the rounds of :func:`cost_round`'s figures, by shape (and, for each
    ``name: (minuend, subtrahend)`` of ``differences``, one shape's medians less another's),
    with the load: recorded in the benchmark's extra info and printed under ``title``."""
    table = {name: {key: round(float(np.median([f.get(key, 0.0) for f in rows])), 1)
                    for key in sorted(set().union(*rows))} for name, rows in per_round.items()}
    for name, (minuend, subtrahend) in (differences or {}).items():
        table[name] = {key: round(table[minuend].get(key, 0.0) - value, 1) for key, value in table[subtrahend].items()}
    table["load_average_1m"] = os.getloadavg()[0]
    benchmark.extra_info.update(table)
    print(f"\n{title} (µs a call, medians of the rounds):")
    for name, figures in table.items():
        print(f"  {name}: {json.dumps(figures) if isinstance(figures, dict) else figures}")
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    return table


def test_check_contact_gate_in_the_server_against_direct(benchmark, ledger_services, tmp_path_factory):
    """The gate's CPU in the server against the same gate asked directly in the same process:
    a ``server_cost_peer.py`` service (``gate_clock``) on the ledger_services store times each
    CheckContact's ``check_contact_values`` by its RPC thread's CPU; on SIGUSR2 its main thread
    asks the very same gate (ledger, pipeline, settings, SQLite connection) for other accounts:
    after a 0.6 ms sleep each, after the sleep and ≈ 0.3 ms of CPU of unrelated Python (JSON:
    about what gRPC's own work takes between two calls), and back to back. Rounds alternate the
    order; p50 per round, each call another account. What differs between the ways is what ran
    between two calls (caches and predictors cold), not the server's settings, data or objects
    (docs/ledger.md, the fourteenth round)."""
    import grpc

    from kernel.server._proto.postloan.v1 import contract_pb2, ledger_pb2
    book, _, _, _ = ledger_services
    ids = book["account_id"].to_pylist()
    sms = contract_pb2.ContactChannel.Value("CONTACT_CHANNEL_SMS")
    method = "/postloan.v1.Ledger/CheckContact"
    folder = tmp_path_factory.mktemp("gate_clock")
    out = folder / "service.json"
    per_block, rounds = (20, 1) if _smoke(benchmark) else (150, 6)
    proc, port = _spawn([sys.executable, str(HERE / "server_cost_peer.py"), "service", "--out", str(out),
                         "--variant", "gate_clock", "--", "serve", "--port", "0", "--threads", "16", "--audit-log",
                         str(folder / "audit.log"), "--audit-sync", "interval", "--store", _PIDS["store"]], '"listening"')
    k = [0]

    def take(n: int) -> list[str]:
        block = [ids[(k[0] + i) % len(ids)] for i in range(n)]
        k[0] += n
        return block

    ways = ("grpc", "direct_after_sleep", "direct_after_work", "direct_hot")
    per_round: dict[str, list[float]] = {w: [] for w in ways}
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(method)
            deadline = time.monotonic() + 600
            while True:                                   # the bundle compiled and warm
                try:
                    call(ledger_pb2.CheckContactRequest(account_id=ids[0], channel=sms).SerializeToString(), timeout=30)
                    break
                except grpc.RpcError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            for a in take(50):
                call(ledger_pb2.CheckContactRequest(account_id=a, channel=sms).SerializeToString(), timeout=30)
            seen = {w: len(v) for w, v in _peer_dump(proc, out)["gate"].items()}
            for r in range(rounds):
                for step in (("grpc", "direct") if r % 2 == 0 else ("direct", "grpc")):
                    if step == "grpc":
                        requests = [ledger_pb2.CheckContactRequest(account_id=a, channel=sms).SerializeToString()
                                    for a in take(per_block)]
                        for request in requests:
                            call(request, timeout=30)
                        gate = _peer_dump(proc, out)["gate"]
                    else:
                        Path(str(out) + ".direct").write_text(json.dumps(
                            {w: take(per_block) for w in ways if w != "grpc"}))
                        gate = _peer_dump(proc, out, "SIGUSR2", 60)["gate"]
                    for w in ways:
                        fresh = gate[w][seen[w]:]
                        seen[w] = len(gate[w])
                        if fresh:
                            per_round[w].append(float(np.percentile(fresh, 50)) / 1e3)
    finally:
        _stop(proc)
    figures = {f"{w}_us": [round(v, 1) for v in per_round[w]] for w in ways}
    figures.update({f"{w}_median_us": round(float(np.median(per_round[w])), 1) for w in ways})
    for w in ways[1:]:
        figures[f"grpc_over_{w}"] = round(figures["grpc_median_us"] / figures[f"{w}_median_us"], 3)
    figures["load_average_1m"] = os.getloadavg()[0]
    benchmark.extra_info.update(figures)
    print("\nCheckContact's gate, thread CPU p50 a call (us):", json.dumps(figures))
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


def test_check_contact_anatomy(benchmark, pipeline, tmp_path):
    """Where an in-process CheckContact's time goes (no gRPC): p50 of each step the gate takes
    for one KEEP — the write transaction's begin, the read of the registration and the rows,
    the account's state (``derive_one``), the record, the policies (``judge``), the reservation
    id, the reservation's insert, the commit — timed on their own in the gate's order, and the
    whole ``Ledger.check_contact`` on other accounts, alternating; hot (back to back) and after
    a 0.6 ms sleep before each call (a server's core idles between calls: caches and branch
    predictors go cold). Each call is a different account of a book with ten events each, as
    in :func:`test_check_contact_against_echo`. "steps" is the p50 of each call's sum of its
    steps, "outside the steps" the whole's p50 minus it (the argument checks, the verdict, the
    calls between the steps).

    Runnable against another tree (its ``PYTHONPATH``): a store without ``gate_rows`` reads
    with ``registered_in`` + ``account_rows``, its two statements."""
    from kernel.ledger import gate as G
    from kernel.ledger.events import CHANNEL
    from kernel.ledger.ledger import _patterns_lookback_us, instant_us
    from kernel.ledger.state import derive_one
    from kernel.synth import generate
    calls = 40 if _smoke(benchmark) else 1_000
    accounts = 4 * calls + 50
    zone = _business_zone()
    book = generate(accounts, seed=11)
    book = book.set_column(book.schema.get_field_index("time_zone"), "time_zone", pa.array([zone] * book.num_rows))
    book = book.set_column(book.schema.get_field_index("country"), "country",
                           pa.array(["CN"] * book.num_rows).dictionary_encode())
    book = book.set_column(book.schema.get_field_index("consent_automated_contact"), "consent_automated_contact",
                           pa.array([True] * book.num_rows))
    judge = pipeline.judge
    ids = book["account_id"].to_pylist()
    with Ledger(f"sqlite:///{_fresh(tmp_path / 'anatomy.db')}") as ledger:
        ledger.register(book)
        now_us = time.time_ns() // 1000
        history = events(10 * accounts, 1, now_us - 3600 * 1_000_000)
        ledger.ingest(history.set_column(1, "account_id", pa.array([ids[i % accounts] for i in range(history.num_rows)])))
        s, store = ledger.settings, ledger.store
        try:                                      # (this tree: per action, the record straight from the fold)
            merge_into, patterns, build = G._state_of(judge, "SMS")
        except TypeError:                         # (an older tree: every action's columns, merged)
            (merge_into, patterns), build = G._state_of(judge), None
        gate_rows = getattr(store, "gate_rows", None)

        def read(cur, a, at_us):
            since, offline = at_us - s.lookback_us, at_us - _patterns_lookback_us(s) if patterns else None
            if gate_rows is not None:
                return gate_rows(cur, a, at_us, since, offline)
            return (store.registered_in(cur, a), *store.account_rows(cur, a, at_us, since, offline))

        def steps(a: str) -> tuple[str, list[float]]:
            clock = time.perf_counter
            at_us = time.time_ns() // 1000
            t0 = clock()
            tx = store.transaction(lock_account=a, synced=s.sync_reservations)
            cur = tx.__enter__()
            t1 = clock()
            registered, rows, gps, offline = read(cur, a, at_us)
            t2 = clock()
            if build is not None:
                state = derive_one(rows, registered[0], at_us, s, gps, offline, ordered=True, patterns=False,
                                   outputs=True)
                t3 = clock()
                record = build(a, registered, *state)
            else:
                state = derive_one(rows, registered[0], at_us, s, gps, offline, ordered=True, patterns=patterns)
                t3 = clock()
                record = dict(zip(G._RECORD_KEYS, (a, *registered)))
                merge_into(record, state)
            t4 = clock()
            outcome = judge(record, "SMS", G._instant(at_us))[0]
            t5 = clock()
            reservation = os.urandom(16).hex()
            t6 = clock()
            store.add_reservation(cur, reservation, a, CHANNEL["SMS"], at_us, at_us + 900_000_000, at_us)
            t7 = clock()
            tx.__exit__(None, None, None)
            t8 = clock()
            return outcome, [t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6, t8 - t7]

        names = ("begin", "read", "state", "record", "judge", "reservation_id", "reserve", "commit")
        for a in ids[:20]:                                          # warm every path
            ledger.check_contact(a, "SMS", dt.datetime.now(UTC), judge, now=dt.datetime.now(UTC))
            steps(a)
        k = 50
        figures: dict = {"calls_each": calls, "events_per_account": 10, "load_average_1m": os.getloadavg()[0]}
        for label, pause in (("hot", 0.0), ("after_sleep", 0.0006)):
            parts: dict[str, list] = {n: [] for n in names}
            whole, outcomes = [], {}
            for _ in range(calls):
                if pause:
                    time.sleep(pause)
                now = dt.datetime.now(UTC)
                start = time.perf_counter()
                ledger.check_contact(ids[k], "SMS", now, judge, now=now)
                whole.append(time.perf_counter() - start)
                if pause:
                    time.sleep(pause)
                outcome, times = steps(ids[k + 1])
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                for n, t in zip(names, times):
                    parts[n].append(t)
                k += 2
            p50 = {n: float(np.percentile(v, 50)) * 1e6 for n, v in parts.items()}
            # the p50 of each call's sum of steps (not the sum of the p50s: the tails do not add up)
            steps_p50 = float(np.percentile(np.sum([parts[n] for n in names], axis=0), 50)) * 1e6
            whole_p50 = float(np.percentile(whole, 50)) * 1e6
            figures[f"{label}_us"] = {**{n: round(v, 1) for n, v in p50.items()}, "steps": round(steps_p50, 1),
                                      "whole_check_contact": round(whole_p50, 1),
                                      "outside_the_steps": round(whole_p50 - steps_p50, 1)}
            figures[f"{label}_outcomes"] = outcomes
    benchmark.extra_info.update(figures)
    print("\nCheckContact in process, p50 per step (us):", json.dumps(figures))
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


def test_gate_compiled_calls_by_their_arguments(benchmark, pipeline):
    """The gate's two compiled calls as they are — the fold of one account's rows
    (``state._fold_rows``: seven arguments, the call's values in the thread's head array) and
    the policies' verdict on one SMS (``K.judge_one``: six, the request's values in one call
    buffer) — against the same work taking its inputs as separate arguments, as they did
    before the twelfth round (22 and 12: compiled here, calling the same inner functions),
    alternating call by call in one process; the outputs checked equal. What the ratio shows
    is Numba's dispatcher checking and unboxing each argument."""
    from numba import njit

    import postloan_builtins.compliance_kernels as K
    from kernel.batches import Batch
    from kernel.hookspecs import ACTION, Record
    from kernel.ledger import fold as F
    from kernel.ledger import state as S
    from kernel.synth import generate

    fold_inputs, fold = S._flat_columns, F.fold

    @njit
    def fold_by_arguments(flat, n, zone_starts, zone_offsets, starts, state_at, today, last_ping, grace_days,
                          tamper_days, offline_after_us, ints, floats, match_it, reads, patterns, steps, matchers,
                          conds, values, flags, completed):
        ok, kind, at, day, amount, promise, channel, outcome, expiry = fold_inputs(flat, n, zone_starts,
                                                                                 zone_offsets)
        if not ok:
            return False
        fold(starts, kind, at, day, amount, promise, channel, outcome, expiry, state_at, today, last_ping,
             grace_days, tamper_days, offline_after_us, ints, floats)
        return True

    run_arrays, zone_arrays, judge_planned, Inputs = K._run_arrays, K._zone_arrays, K.judge_planned, K.Inputs

    @njit
    def judge_by_arguments(run, action, at, X, A, D, zone, zones, now, as_of, needs, out):
        kernels, scopes, base, P = run_arrays(run)
        zst, zen, zts, zoff, zob = zone_arrays(zones)
        inp = Inputs(action, at, np.zeros(action.shape[0], np.int64), X, A, D, P, base, zone, zst, zen, zts, zoff,
                     zob, now, as_of)
        judge_planned(kernels, scopes, inp, needs & 1 != 0, needs & 2 != 0, needs & 4 != 0, out[0], out[1],
                      out[2], out[3])

    calls = 2_000 if _smoke(benchmark) else 50_000
    now_us = time.time_ns() // 1000
    # one account's eleven rows, in the store's form and the fold's order
    rows = sorted([(F.CONTACT, now_us - k * 3_600_000_000 * 7, None, None, F.PHONE if k % 2 else F.SMS,
                    F.RIGHT_PARTY if k % 3 == 0 else 0, None) for k in range(8)]
                  + [(F.PAYMENT, now_us - 40 * 3_600_000_000, 250.0, None, None, None, None),
                     (F.PROMISE, now_us - 80 * 3_600_000_000, 500.0, now_us // DAY + 3, None, None, None),
                     (F.PAYMENT, now_us - 20 * 3_600_000_000, 300.0, None, None, None, None)], key=S._order)
    settings = S.StateSettings()
    b = S._OneRow()
    zone = _business_zone()
    table = S._zone_table(zone, rows[0][1], rows[-1][1])
    flat = S.array("d", [S._NAN if v is None else v for row in rows for v in row])
    b.head[1:5] = (len(rows), now_us, S._local_day_of(zone, now_us), NULL_TIME)
    constants = S._fold_constants(settings)
    prog = S._program(settings)
    flags, completed = b.alerts(prog)
    old_ints, old_floats = F.empty_outputs(1)
    grace, tamper, offline = constants.tolist()

    def fold_now():
        return S._fold_rows(flat, table[2], table[3], b.head, constants, b.ints, b.floats)

    def fold_before():
        return fold_by_arguments(flat, len(rows), table[2], table[3], b.starts, b.state_at, b.today, b.last_ping,
                                 grace, tamper, offline, old_ints, old_floats, False, prog.reads, prog.patterns,
                                 prog.steps, prog.matchers, prog.conds, prog.values, flags, completed)

    assert fold_now() and fold_before()
    assert b.ints.tolist() == old_ints.tolist() and np.array_equal(b.floats, old_floats, equal_nan=True)

    # one SMS of a book account, judged by the pipeline's own run of compiled policies
    record = generate(1, seed=11).to_pylist()[0]
    record.update(time_zone=zone, country="CN")
    at = dt.datetime.now(UTC)
    code = ACTION["SMS"]
    batch = Batch(1, at.date(), at, [Record(record)], pipeline.config)
    judge_action, policies = pipeline.sets[pipeline._route_one(batch)].action_for(code)
    engine = judge_action.__self__
    run = engine._run_of(policies)
    call = run.buffers(1)
    run.read_one(batch.merged, call.values)
    call.values[call.at] = S.array("q", [batch.now_us])
    call.values[K.ONE_NOW] = batch.now_us
    call.values[K.ONE_AS_OF] = (batch.as_of - dt.date(1970, 1, 1)).days
    derived = run.derived_of(batch)
    zone_ids, zones = engine._zone_inputs_one(run, batch.merged, [batch.now_us], batch.now_us, call.values)
    codes = run.codes_of([code])
    X = np.array(call.call[:K.ONE_NOW]).reshape(-1, 1)
    at_us = np.array([batch.now_us], np.int64)
    facts = np.zeros((K.N_ACTION_FACTS, 1), np.int64)
    out = np.empty((4, 1), np.int64)
    as_of = (batch.as_of - dt.date(1970, 1, 1)).days

    def judge_now():
        K.judge_one(run.packed, codes, derived, zone_ids, zones, call.call)

    def judge_before():
        judge_by_arguments(run.packed, codes, at_us, X, facts, derived, zone_ids, zones, batch.now_us, as_of,
                           run.needs, out)

    judge_now()
    judge_before()
    assert call.out.tolist() == out.tolist()

    figures: dict = {"calls_each": calls, "rows": len(rows), "load_average_1m": os.getloadavg()[0]}
    clock = time.perf_counter_ns
    for name, now, before in (("fold", fold_now, fold_before), ("judge", judge_now, judge_before)):
        times: dict[str, list] = {"now": [], "before": []}
        for _ in range(calls):
            for which, fn in (("now", now), ("before", before)):
                start = clock()
                fn()
                times[which].append(clock() - start)
        p50 = {k: float(np.percentile(v, 50)) / 1000 for k, v in times.items()}
        figures[name] = {"now_us": round(p50["now"], 3), "before_us": round(p50["before"], 3),
                         "ratio": round(p50["now"] / p50["before"], 3)}
    benchmark.extra_info.update(figures)
    print("\nThe gate's compiled calls, p50 by their arguments:", json.dumps(figures))
    benchmark.pedantic(fold_now, rounds=1, iterations=1)


def _p50_each(call, accounts) -> list[float]:
    out = []
    for a in accounts:
        start = time.perf_counter()
        call(a)
        out.append(time.perf_counter() - start)
    return out


def _state_anatomy(store: str, records: list[dict], now: dt.datetime, smoke: bool) -> dict:
    """The in-process steps a Decide with ``--store`` adds, each one's p50 in µs: one account
    asked over and over (``one``), and accounts asked once each (``distinct``); ``hot`` back to
    back, ``cold`` after a 0.6 ms sleep before each step (the server's cores halt between
    calls: caches and clocks cool down). Steps: the registration check, the rows' read, the
    fold, the merge into the book's state (``book_only``: the book's state, which a Decide
    without a ledger reads as well); ``state``: the whole with-state path a Decide takes
    (``Ledger.registered_state_values``: for an account new to the process, its registration
    read with its rows; then ``join_state_record``), the book's join included (measured on
    accounts of its own)."""
    from kernel.ledger.join import book_state_record, merge_record
    from kernel.ledger.ledger import _patterns_lookback_us, instant_us
    from kernel.ledger.state import derive_one
    try:
        from kernel.ledger.store import KeptRows
        def kept(rows):
            return type(rows) is KeptRows
    except ImportError:                       # (a tree before KeptRows: every read remembered)
        def kept(rows):
            return True
    out = {}
    with Ledger(store) as ledger:
        try:
            from kernel.ledger.join import join_state_record

            def state_path(record):
                return join_state_record(record, now.date(), ledger.registered_state_values(record, now))
        except ImportError:                   # (a tree before registered_state_values: two reads)
            from kernel.ledger.join import join_record

            def state_path(record):
                ledger.register_record(record)
                return join_record(record, merge_record(book_state_record(record, now.date()),
                                                        ledger.state_values(record["account_id"],
                                                                            record["time_zone"], now)))
        s = ledger.settings
        at_us = instant_us(now)
        since, offline_since = at_us - s.lookback_us, at_us - _patterns_lookback_us(s)
        clock = time.perf_counter_ns

        def parts(record, pause):
            took = {}
            for name in ("register", "rows", "fold", "book_only", "merge"):
                if pause:
                    time.sleep(0.0006)
                t0 = clock()
                if name == "register":
                    ledger.register_record(record)
                elif name == "rows":
                    rows, gps, offline = ledger.store.account_rows_now(record["account_id"], at_us, since,
                                                                       offline_since)
                elif name == "fold":
                    values = derive_one(rows, record["time_zone"], at_us, s, gps, offline, ordered=True,
                                        remember=kept(rows))
                elif name == "book_only":
                    book = book_state_record(record, now.date())
                else:
                    merge_record(book, values)
                took[name] = clock() - t0
            return took

        def whole(record, pause):
            if pause:
                time.sleep(0.0006)
            t0 = clock()
            state_path(record)
            return {"state": clock() - t0}

        n = 30 if smoke else 140
        fresh = iter(records[1:])
        for _ in range(3):
            whole(records[0], False)                  # (compiled kernels loaded, caches filled)
        for pause in (False, True):
            for label, pick in (("one", lambda: records[0]), ("distinct", lambda: next(fresh))):
                runs = [parts(pick(), pause) for _ in range(n)]
                wholes = [whole(pick(), pause) for _ in range(n)]
                out[f"{label}_{'cold' if pause else 'hot'}"] = {
                    k: round(float(np.percentile([r[k] for r in rs], 50)) / 1000, 1)
                    for rs in (runs, wholes) for k in rs[0]}
    return out


def test_decide_with_state_against_without(benchmark, ledger_services):
    book, client, plain, _ = ledger_services
    now = dt.datetime.now(UTC)
    anatomy = _state_anatomy(_PIDS["store"], book.slice(1_400, 600).to_pylist(), now, _smoke(benchmark))
    print("\nDecide with state, in process (p50 µs):", json.dumps(anatomy))
    record = book.slice(5, 1).to_pylist()[0]
    with_state = lambda: client.decide(record, now.date(), now=now, actions=False)   # noqa: E731
    without = lambda: plain.decide(record, now.date(), now=now, actions=False)       # noqa: E731
    with_state(), without()
    per_block, blocks = (10, 2) if _smoke(benchmark) else (50, 60)
    times: dict[str, list] = {"with_state": [], "without": []}
    # each server's CPU time per call (every thread's, /proc): less noisy than latency on the
    # shared machine, it does not count the time a thread waits for a core
    pids = {"with_state": _PIDS["with_store"], "without": _PIDS["without"]}
    cpu = {name: 0.0 for name in ("with_state", "without", "distinct_with_state", "distinct_without")}

    def timed(name, run):
        before = _cpu_seconds(pids[name.removeprefix("distinct_")])
        times.setdefault(name, []).extend(run())
        cpu[name] += _cpu_seconds(pids[name.removeprefix("distinct_")]) - before

    for _ in range(blocks):
        timed("with_state", lambda: _p50(with_state, per_block))
        timed("without", lambda: _p50(without, per_block))
    # Each account once (a decision run's or a CRM's one question per account): the ledger's
    # cache of an account's rows never hits, every call reads the store.
    records = book.slice(100, 1_200 if not _smoke(benchmark) else 40).to_pylist()
    per_block = 10 if _smoke(benchmark) else 25
    for i in range(0, len(records), per_block):
        block = records[i:i + per_block]
        timed("distinct_with_state",
              lambda b=block: _p50_each(lambda r: client.decide(r, now.date(), now=now, actions=False), b))
        timed("distinct_without",
              lambda b=block: _p50_each(lambda r: plain.decide(r, now.date(), now=now, actions=False), b))
    figures = {"calls_each": len(times["without"]),
               "with_state_p50_us": float(np.percentile(times["with_state"], 50)) * 1e6,
               "without_p50_us": float(np.percentile(times["without"], 50)) * 1e6,
               "distinct_calls_each": len(times["distinct_without"]),
               "distinct_with_state_p50_us": float(np.percentile(times["distinct_with_state"], 50)) * 1e6,
               "distinct_without_p50_us": float(np.percentile(times["distinct_without"], 50)) * 1e6,
               "load_average_1m": os.getloadavg()[0]}
    figures["p50_ratio"] = figures["with_state_p50_us"] / figures["without_p50_us"]
    figures["distinct_p50_ratio"] = figures["distinct_with_state_p50_us"] / figures["distinct_without_p50_us"]
    for name, seconds in cpu.items():
        figures[f"{name}_cpu_us_per_call"] = seconds / len(times[name]) * 1e6
    figures["cpu_ratio"] = figures["with_state_cpu_us_per_call"] / figures["without_cpu_us_per_call"]
    figures["distinct_cpu_ratio"] = (figures["distinct_with_state_cpu_us_per_call"]
                                     / figures["distinct_without_cpu_us_per_call"])
    benchmark.extra_info.update(figures, anatomy=anatomy)
    print("\nDecide with state vs without:", json.dumps({k: round(v, 2) for k, v in figures.items()}))
    benchmark.pedantic(with_state, rounds=1 if _smoke(benchmark) else 100, iterations=1)
