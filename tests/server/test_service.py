"""The service with the shipped bundle, over a real loopback connection: every method, the
error codes, equality with the in-process kernel and pipeline, hot reload under load,
graceful shutdown, logs without personal data, and --workers."""
from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from auth_tokens import TOKENS
from kernel import schema
from kernel.client import CallError, Client

AS_OF = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 2, 30, tzinfo=dt.timezone.utc)      # 10:30 in Beijing: calls allowed
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def served(token_file, tmp_path_factory):
    """One server on the shipped bundle for the module (compiled once, then shared)."""
    from kernel.server.app import DecisionServer, ServerConfig

    audit = tmp_path_factory.mktemp("audit") / "audit.log"
    server = DecisionServer(ServerConfig(port=0, token_file=token_file, audit_path=str(audit), max_batch_rows=3000,
                                         grace_seconds=5, bundle_roots=[str(tmp_path_factory.getbasetemp())]))
    server.start()
    server.wait_ready(900)
    yield server
    server.stop(0)


@pytest.fixture(scope="module")
def scoring(served):
    with Client(f"127.0.0.1:{served.port}", token=TOKENS["scoring"]) as client:
        yield client


@pytest.fixture(scope="module")
def admin(served):
    with Client(f"127.0.0.1:{served.port}", token=TOKENS["admin"], timeout=900) as client:
        yield client


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    """The kernel and pipeline loaded independently of the server, in this process."""
    from kernel.pipeline import Pipeline
    from kernel.runtime import Kernel

    kernel = Kernel.load()
    return kernel, Pipeline(kernel, audit_path=tmp_path_factory.mktemp("audit-ref") / "audit.log")


@pytest.fixture(scope="module")
def sample(small_book):
    """40 accounts: the first 24 and 16 delinquent ones (so that actions and tiers vary)."""
    late = pc.indices_nonzero(pc.greater(small_book["dpd"], 0)).to_numpy()[:16]
    rows = np.concatenate([np.arange(24), late]).astype(np.int64)
    return small_book.take(pa.array(rows))


def _same_engine_loader(served):
    return lambda path, **audit: served.engine


# -- every method ------------------------------------------------------------------------------------
def test_decide_equals_the_kernel_and_pipeline_in_process(scoring, in_process, sample):
    kernel, pipeline = in_process
    expected = kernel.decide(sample, AS_OF).to_pylist()
    tiers = set()
    for i, record in enumerate(sample.to_pylist()):
        row = scoring.decide(record, AS_OF, now=NOW)
        assert row["account_id"] == record["account_id"] and row["as_of"] == AS_OF
        assert row["bundle_hash"] == kernel.bundle_hash
        for name, value in expected[i].items():
            assert row[name] == value, (record["account_id"], name)
        actions = pipeline.run(sample.slice(i, 1), AS_OF, NOW).actions.to_pylist()
        assert row["actions"] == actions, record["account_id"]
        tiers.add(row["collection_tier.tier"])
    assert len(tiers) >= 3, tiers


def test_decide_without_actions_gives_the_same_decision_and_audits_it(scoring, served, sample):
    """actions = false: the decision and scores only, equal to the full call's; nothing is
    planned, and the audit record holds the decision with no actions."""
    from kernel.audit import read_audit
    late = [r for r in sample.to_pylist() if r["dpd"] > 30][:3]
    for record in late:
        full = scoring.decide(record, AS_OF, now=NOW)
        bare = scoring.decide(record, AS_OF, now=NOW, actions=False)
        assert full.pop("actions") and "actions" not in bare
        assert bare == full
        audit = list(read_audit(served.engine.pipeline.audit.path))[-1]
        assert audit.decisions["account_id"].to_pylist() == [record["account_id"]]
        assert audit.meta["actions"] == 0 and audit.actions.num_rows == 0


def test_decide_batch_equals_the_kernel_and_pipeline_in_process(scoring, in_process, small_book):
    kernel, pipeline = in_process
    book = small_book.slice(0, 2000)
    decisions, actions = scoring.decide_batch(book, AS_OF, now=NOW, with_actions=True)
    expected = pipeline.run(book, AS_OF, NOW)
    assert decisions.select(kernel.decide(book, AS_OF).schema.names).equals(kernel.decide(book, AS_OF))
    assert decisions.equals(expected.decisions)
    assert actions.equals(expected.actions) and actions.num_rows > 0
    assert scoring.decide_batch(book.slice(0, 10), AS_OF).num_rows == 10


def test_explain_matches_the_kernel(scoring, in_process, sample):
    kernel, _ = in_process
    record = sample.to_pylist()[30]
    explained = scoring.explain(record, AS_OF)
    expected = kernel.explain(sample.slice(30, 1), AS_OF)[0]
    assert explained["account_id"] == record["account_id"]
    assert {r["ruleset"] for r in explained["rulesets"]} == set(expected)
    for trace in explained["rulesets"]:
        reference = expected[trace["ruleset"]]
        assert trace["rule"] == reference["rule"]
        assert trace["inputs"] == reference["inputs"]
    models = [n.name for n in kernel.bundle.nodes if n.kind == "model"]
    assert {name.split(".")[0] for name in explained["model_scores"]} == set(models)


def test_valuate_a_vehicle(scoring, served, small_book):
    record = small_book.slice(0, 1).to_pylist()[0]
    vehicle = {name: record[name] for name in schema.columns("vehicles")}
    result = scoring.valuate(vehicle, "CN", AS_OF, region=record["region"], purchase_date=record["contract_date"])
    assert result["vin"] == record["vin"]
    assert 0 < result["valuation"] < record["purchase_price"]
    assert result["channel"] and result["details"]["method"] == served.engine.pipeline.valuation_name
    with pytest.raises(CallError) as err:
        scoring.valuate({**vehicle, "condition_grade": None}, "CN", AS_OF)
    assert err.value.field == "vehicle.condition_grade"


def test_the_warm_up_values_a_car(tmp_path):
    """Valuate scores a car with a model compiled on its first use (seconds on a cold cache,
    past a client's deadline on a busy machine): load_engine's warm-up pays that, not the
    first Valuate call."""
    from postloan_builtins import valuation

    from kernel.server.engine import load_engine
    valuation._compile.cache_clear()
    load_engine(None, audit_path=str(tmp_path / "audit.log"))
    assert valuation._compile.cache_info().currsize == 1


def test_get_bundle(admin, in_process):
    kernel, _ = in_process
    info = admin.get_bundle()
    assert info["bundle_hash"] == kernel.bundle_hash
    assert set(info["versions"]) == set(kernel.nodes)
    assert set(info["inputs"]) == set(kernel.inputs)
    assert "collection_tier.tier" in info["outputs"]


# -- error codes ------------------------------------------------------------------------------------
def test_invalid_arguments_name_the_field(scoring, small_book):
    record = small_book.slice(0, 1).to_pylist()[0]
    cases = [({**record, "dpd": None}, "account.dpd"),
             ({**record, "product": None}, "account.product"),
             ({**record, "contract_date": None}, "account.contract_date")]
    for bad, field in cases:
        with pytest.raises(CallError) as err:
            scoring.decide(bad, AS_OF)
        assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT and err.value.field == field
    with pytest.raises(CallError) as err:
        scoring.decide({**record, "dpd": None, "vin": None, "age": None}, AS_OF)
    assert [f for f, _ in err.value.violations] == ["account.vin", "account.dpd", "account.age"]
    from kernel.server import convert
    from kernel.server._proto.postloan.v1 import decision_pb2
    request = decision_pb2.DecideRequest(account=convert.ACCOUNT.encode(record))
    request.account.contract_date.month = 13
    with pytest.raises(grpc.RpcError) as raw:
        scoring._decisions.Decide(request, metadata=scoring._metadata, timeout=10)
    assert raw.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "account.contract_date" in raw.value.details()
    request = decision_pb2.DecideRequest(account=convert.ACCOUNT.encode(record))
    request.account.gps_status = 99                  # a member a newer client knows and this server does not
    with pytest.raises(grpc.RpcError) as raw:
        scoring._decisions.Decide(request, metadata=scoring._metadata, timeout=10)
    assert raw.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "account.gps_status" in raw.value.details()
    request.account.gps_status = 1
    request.account.product = -1                    # not the last member, as a negative index would give
    for call, message in ((scoring._decisions.Decide, request),
                          (scoring._decisions.Explain, decision_pb2.ExplainRequest(account=request.account))):
        with pytest.raises(grpc.RpcError) as raw:
            call(message, metadata=scoring._metadata, timeout=10)
        assert raw.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "account.product" in raw.value.details()
    with pytest.raises(CallError) as err:
        scoring.decide_batch(small_book.slice(0, 5).drop_columns(["dpd"]), AS_OF)
    assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT and err.value.field == "accounts.dpd"
    request = decision_pb2.DecideBatchRequest(accounts=b"not arrow")
    with pytest.raises(grpc.RpcError) as raw:
        scoring._decisions.DecideBatch(request, metadata=scoring._metadata, timeout=10)
    assert raw.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_an_unknown_time_zone_is_invalid_argument_naming_the_field(scoring, small_book):
    """Decide (decision-only and with actions), Explain and DecideBatch answer an account
    whose time_zone zoneinfo does not know alike: INVALID_ARGUMENT naming the field (and the
    row in a batch) and quoting the zone — not a FAILED_PRECONDITION from a planned action's
    local time, a policy's PLUGIN_ERROR block, or a decision (no action, no local time)."""
    record = small_book.slice(0, 1).to_pylist()[0]
    for zone in ("Mars/Olympus", "UTC+8", ""):
        for call in (lambda: scoring.decide({**record, "time_zone": zone}, AS_OF, actions=False),
                     lambda: scoring.decide({**record, "time_zone": zone}, AS_OF, actions=True),
                     lambda: scoring.explain({**record, "time_zone": zone}, AS_OF)):
            with pytest.raises(CallError) as err:
                call()
            assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT and err.value.field == "account.time_zone"
            assert "not an IANA time zone" in str(err.value) and (not zone or repr(zone) in str(err.value))
    book = small_book.slice(0, 5)
    zones = book["time_zone"].to_pylist()
    zones[3] = "Mars/Olympus"
    with pytest.raises(CallError) as err:
        scoring.decide_batch(book.set_column(book.schema.get_field_index("time_zone"), "time_zone", pa.array(zones)),
                             AS_OF)
    assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT and err.value.field == "accounts.time_zone"
    assert "row 3: 'Mars/Olympus' is not an IANA time zone" in str(err.value)
    assert scoring.decide({**record, "time_zone": "America/New_York"}, AS_OF)["account_id"] == record["account_id"]


def test_oversized_batch_and_deadlines(scoring, small_book):
    with pytest.raises(CallError) as err:
        scoring.decide_batch(small_book.slice(0, 3001), AS_OF)
    assert err.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert err.value.violations[0][0] == "max_batch_rows"
    with pytest.raises(CallError) as err:
        scoring.decide_batch(small_book.slice(0, 3000), AS_OF, timeout=0.001)
    assert err.value.code is grpc.StatusCode.DEADLINE_EXCEEDED


def test_concurrency_limit_and_graceful_shutdown_with_a_call_in_flight(start_server, served, small_book):
    server = start_server(loader=_same_engine_loader(served), max_concurrent_rpcs=1, grace_seconds=60)
    server.wait_ready(60)
    target = f"127.0.0.1:{server.port}"
    book = pa.concat_tables([small_book] * 8)            # 40,000 accounts: in flight for a while
    outcome, finished = {}, {}

    def batch():
        with Client(target, timeout=120) as client:
            while "rows" not in outcome:
                try:
                    outcome["rows"] = client.decide_batch(book, AS_OF, now=NOW).num_rows
                except CallError as e:       # a health probe below held the only slot: try again
                    assert e.code is grpc.StatusCode.RESOURCE_EXHAUSTED
            finished["at"] = time.monotonic()

    caller = threading.Thread(target=batch)
    caller.start()
    with Client(target) as client:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:              # until the batch holds the only slot
            try:
                client.health()
            except CallError as e:
                assert e.code is grpc.StatusCode.RESOURCE_EXHAUSTED
                break
            time.sleep(0.02)
        with pytest.raises(CallError) as err:
            client.decide(book.slice(0, 1).to_pylist()[0], AS_OF)
        assert err.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        stop_at = time.monotonic()
        server.stop()                                     # returns once in-flight calls are done
    caller.join(60)
    assert outcome["rows"] == len(book), "the in-flight call must complete"
    assert finished["at"] > stop_at, "the call was still in flight when shutdown began"
    with Client(target) as client:
        with pytest.raises(CallError) as err:
            client.health(timeout=2)
        assert err.value.code is grpc.StatusCode.UNAVAILABLE


def test_health_goes_serving_when_warm_and_not_serving_on_shutdown(start_server, served):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    release = threading.Event()

    def slow_loader(path, **audit):
        release.wait(30)
        return served.engine

    server = start_server(loader=slow_loader)
    statuses = []
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(
            service="postloan.v1.DecisionService"))
        statuses.append(next(watch).status)
        release.set()
        statuses.append(next(watch).status)
        threading.Thread(target=server.stop).start()
        statuses.append(next(watch).status)
    S = health_pb2.HealthCheckResponse
    assert statuses == [S.NOT_SERVING, S.SERVING, S.NOT_SERVING]


# -- hot reload ----------------------------------------------------------------------------------------
def _copy_bundle(served, tmp_path: Path, name: str) -> Path:
    """A copy of the served bundle's files (same content, so the same hash and compiled code)."""
    target = tmp_path / name
    target.mkdir()
    for f in served.engine.kernel.bundle.files:
        shutil.copy(f, target / f.name)
    return target


def test_hot_reload_under_load_fails_no_call(served, admin, small_book, tmp_path):
    good = _copy_bundle(served, tmp_path, "good")
    broken = _copy_bundle(served, tmp_path, "broken")
    ruleset = broken / "collection_tier.yaml"
    ruleset.write_text(ruleset.read_text().replace("hit: first", "hit: first\nbogus_key: 1", 1))
    before = served.engine.bundle_hash
    records = small_book.slice(0, 64).to_pylist()
    failures, calls, stop = [], [0], threading.Event()

    def load(i):
        with Client(f"127.0.0.1:{served.port}", token=TOKENS["scoring"], timeout=60) as client:
            k = i
            while not stop.is_set():
                try:
                    client.decide(records[k % len(records)], AS_OF, now=NOW)
                    calls[0] += 1
                except CallError as e:
                    failures.append(e)
                k += 1

    threads = [threading.Thread(target=load, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        swapped = admin.reload_bundle(str(good))
        with pytest.raises(CallError) as err:
            admin.reload_bundle(str(broken))
        assert err.value.code is grpc.StatusCode.FAILED_PRECONDITION
        assert any("collection_tier.yaml" in subject for subject, _ in err.value.violations)
        again = admin.reload_bundle()                     # SIGHUP's path: reload the current one from disk
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert failures == [] and calls[0] > 20
    assert swapped["previous_bundle_hash"] == before and swapped["bundle"]["path"] == str(good)
    assert again["bundle"]["path"] == str(good) and not again["changed"]
    assert swapped["bundle"]["bundle_hash"] == again["bundle"]["bundle_hash"]
    assert served.engine.bundle_hash == swapped["bundle"]["bundle_hash"]


def test_explain_carries_the_winning_rows_note(served, admin, scoring, small_book, tmp_path):
    """A decision-table row's `note:` reaches the caller of Explain beside its rule id."""
    noted = _copy_bundle(served, tmp_path, "noted")
    path = noted / "dpd_bucket.yaml"
    note = "1–30 days past due: SMS and voice bot"
    path.write_text(path.read_text().replace('- ["[1..30]",    M1, 1]',
                                             f'- {{note: "{note}", cells: ["[1..30]", M1, 1]}}', 1))
    record = dict(small_book.slice(0, 1).to_pylist()[0], dpd=12)
    try:
        admin.reload_bundle(str(noted))
        traces = {t["ruleset"]: t for t in scoring.explain(record, AS_OF)["rulesets"]}
        assert traces["dpd_bucket"]["rule"] == "row2" and traces["dpd_bucket"]["notes"] == {"row2": note}
        assert traces["collection_tier"]["notes"] == {}
    finally:
        admin.reload_bundle(str(_copy_bundle(served, tmp_path, "plain")))


# -- logs and metrics ---------------------------------------------------------------------------------
def test_logs_hold_no_personal_data(start_server, served, token_file, small_book):
    from kernel.server import logs

    stream = io.StringIO()
    logger = logging.getLogger("postloan")
    saved = logger.level, logger.propagate
    handler = logs.configure("DEBUG", stream)
    try:
        server = start_server(loader=_same_engine_loader(served), token_file=token_file, access_log=True)
        server.wait_ready(60)
        records = small_book.slice(100, 5).to_pylist()
        with Client(f"127.0.0.1:{server.port}", token=TOKENS["scoring"]) as client:
            for record in records:
                client.decide(record, AS_OF, now=NOW)
                client.explain(record, AS_OF)
                with pytest.raises(CallError):
                    client.decide({**record, "dpd": None}, AS_OF)
            client.decide_batch(small_book.slice(100, 5), AS_OF, with_actions=True)
        with Client(f"127.0.0.1:{server.port}", token="wrong") as client:
            with pytest.raises(CallError):
                client.decide(records[0], AS_OF)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
    text = stream.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    assert sum(1 for entry in lines if entry["event"] == "rpc") >= 10          # calls were logged
    assert any(entry.get("code") == "INVALID_ARGUMENT" for entry in lines)
    for record in records:
        for name in schema.pii_columns("book"):
            value = record[name]
            if value is not None:
                assert str(value) not in text, f"{name} leaked into the log"


def test_scrub_blanks_request_pii():
    from kernel.server import convert
    from kernel.server.logs import REDACTED, pii_values, scrub

    account = convert.ACCOUNT.encode({"name": "张三", "phone": "13800000000", "gps_lat": 23.12297, "dpd": 4})
    message = scrub("KeyError: '张三' at 13800000000 (23.12297)", pii_values(account))
    assert "张三" not in message and "13800000000" not in message and "23.12297" not in message
    assert message.count(REDACTED) == 3


def test_metrics_count_decisions_by_tier(start_server, served, small_book):
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = start_server(loader=_same_engine_loader(served), metrics_port=port)
    server.wait_ready(60)
    with Client(f"127.0.0.1:{server.port}") as client:
        tiers = [client.decide(r, AS_OF, now=NOW)["collection_tier.tier"] for r in small_book.slice(0, 20).to_pylist()]
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for tier in set(tiers):
        assert f'postloan_decisions_total{{tier="{tier}"}} {float(tiers.count(tier))}' in text
    assert 'postloan_grpc_calls_total{code="OK",method="Decide"} 20.0' in text


# -- workers -------------------------------------------------------------------------------------------
def _listening_sockets(port: int) -> int:
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if os.path.exists(table):
            for line in open(table).read().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":   # 0A = LISTEN
                    count += 1
    return count


def test_workers_share_one_port_reload_on_sighup_and_stop_on_sigterm(in_process, small_book, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = tmp_path / "serve.log"
    log_file = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "kernel", "serve", "--port", str(port), "--workers", "2"],
                            stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        with Client(f"127.0.0.1:{port}") as client:
            client.wait_until_serving(300)
        deadline = time.monotonic() + 300
        while _listening_sockets(port) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _listening_sockets(port) == 2
        record = small_book.slice(0, 1).to_pylist()[0]
        for _ in range(4):                               # new channels land on either worker
            with Client(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]) as client:
                client.wait_until_serving(300)
                assert client.decide(record, AS_OF, now=NOW)["bundle_hash"] == in_process[0].bundle_hash
        with Client(f"127.0.0.1:{port}", timeout=300) as client:      # reaches one worker; all must reload
            assert client.reload_bundle()["bundle"]["bundle_hash"] == in_process[0].bundle_hash
            with pytest.raises(CallError) as err:
                client.reload_bundle("/somewhere/else")
            assert err.value.code is grpc.StatusCode.FAILED_PRECONDITION and "with --workers" in err.value.message

        def reloads(expected: int) -> int:
            deadline = time.monotonic() + 120
            while log_path.read_text().count('"reloaded on SIGHUP"') < expected and time.monotonic() < deadline:
                time.sleep(0.1)
            return log_path.read_text().count('"reloaded on SIGHUP"')

        assert reloads(2) == 2, log_path.read_text()[-2000:]       # the other worker too
        proc.send_signal(signal.SIGHUP)                  # forwarded: each worker reloads from disk
        assert reloads(4) == 4, log_path.read_text()[-2000:]
        with Client(f"127.0.0.1:{port}") as client:
            assert client.decide(record, AS_OF, now=NOW)["account_id"] == record["account_id"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log_file.close()
    assert _listening_sockets(port) == 0


def test_serve_refuses_an_open_address_without_tokens(capsys):
    from kernel.cli import main

    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "refusing to serve 0.0.0.0 without --token-file" in capsys.readouterr().err
    assert main(["serve", "--workers", "2", "--port", "0"]) == 2
    assert "--workers needs a fixed --port" in capsys.readouterr().err


def test_audit_sync_flags_reach_the_engine_and_shutdown_syncs(start_server, served, tmp_path, capsys):
    import argparse
    from kernel.cli import main, serve
    from kernel.pipeline import Pipeline
    from kernel.synth import generate

    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    config = serve.server_config(parser.parse_args(["--audit-sync", "interval", "--audit-sync-interval-ms", "25"]))
    assert (config.audit_sync, config.audit_interval_ms) == ("interval", 25.0)
    assert serve.server_config(parser.parse_args([])).audit_sync is None          # the configuration's [audit] sync
    for flags, message in ((["--audit-sync", "sometimes"], "invalid choice: 'sometimes'"),
                           (["--audit-sync-interval-ms", "0"], "expected milliseconds in (0, 60000], got '0'")):
        with pytest.raises(SystemExit) as exit_:
            main(["serve", *flags])
        assert exit_.value.code == 2 and message in capsys.readouterr().err

    # the options the server gives its loader (load_engine: the pipeline's AuditLog)
    engine = served.engine
    pipeline = Pipeline(engine.kernel, plugins=engine.pipeline.plugins, config=engine.pipeline.config,
                        audit_path=tmp_path / "audit.log", audit_sync="interval", audit_interval_ms=60_000)
    seen = {}

    def loader(path, **audit):
        seen.update(audit)
        return type(engine)(engine.kernel, pipeline, path="(test)", loaded_at=engine.loaded_at, compile_seconds=0.0)

    server = start_server(loader=loader, audit_sync="interval", audit_interval_ms=60_000,
                          audit_path=str(tmp_path / "audit.log"))
    server.wait_ready(60)
    assert seen == {"audit_path": str(tmp_path / "audit.log"), "audit_sync": "interval", "audit_interval_ms": 60_000,
                    "ledger": None}
    with Client(f"127.0.0.1:{server.port}") as client:
        client.decide(generate(1, seed=3, as_of=AS_OF).to_pylist()[0], AS_OF, now=NOW)
    deadline = time.monotonic() + 10                                               # the writer thread writes it
    while pipeline.audit.written < 1 and time.monotonic() < deadline:
        time.sleep(0.002)
    assert (pipeline.audit.written, pipeline.audit.synced) == (1, 0)              # written, not yet synced
    server.stop(0)
    assert pipeline.audit.synced == 1                                              # synced on shutdown


def test_numba_threads_split_across_workers():
    from kernel.server.workers import threads_per_worker, worker_environment

    assert threads_per_worker(1, cores=8) == 8
    assert threads_per_worker(2, cores=8) == 4
    assert threads_per_worker(3, cores=2) == 1          # never 0, never more than the cores allow
    assert worker_environment(2, None)["NUMBA_NUM_THREADS"] == str(threads_per_worker(2))


def test_workers_exit_when_the_supervisor_is_killed(tmp_path):
    """SIGKILL leaves the supervisor no chance to stop its workers: Linux must (no orphan keeps the port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "kernel", "serve", "--port", str(port), "--workers", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _listening_sockets(port) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _listening_sockets(port) == 2
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 30
    while _listening_sockets(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _listening_sockets(port) == 0
