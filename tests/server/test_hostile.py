"""Issue 10 ("Hostile input"), the server's findings, each reproduced with its payload
(tests/server/fixtures/, built by hostile.py) against a live server: the answer is now a
documented status naming the field, the server stays up, nothing is audited that the caller
did not get, memory stays bounded, and no request's string reaches a message or a log."""
from __future__ import annotations

import collections
import contextlib
import datetime as dt
import io
import json
import logging
import os
import random
import shutil
import signal
import socket
import string
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import grpc
import pyarrow as pa
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from auth_tokens import TOKENS
from hostile import book, fixture, ipc_bytes, request_fixture
from kernel import schema
from kernel.client import CallError, Client
from kernel.server import convert
from kernel.server._proto.postloan.v1 import decision_pb2

AS_OF = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 2, 30, tzinfo=dt.timezone.utc)
ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20
DOCUMENTED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}


@pytest.fixture(scope="module")
def served(token_file, tmp_path_factory):
    from kernel.server.app import DecisionServer, ServerConfig

    audit = tmp_path_factory.mktemp("audit") / "audit.log"
    server = DecisionServer(ServerConfig(port=0, token_file=token_file, audit_path=str(audit), grace_seconds=5,
                                         bundle_roots=[str(tmp_path_factory.getbasetemp())]))
    server.start()
    server.wait_ready(900)
    yield server
    server.stop(0)


@pytest.fixture(scope="module")
def scoring(served):
    with Client(f"127.0.0.1:{served.port}", token=TOKENS["scoring"], timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def record():
    return book(1).to_pylist()[0]


def _loader(served):
    return lambda path, **audit: served.engine


def raw(server, method: str, data: bytes, token: str = TOKENS["scoring"], timeout: float = 60):
    """Send ``data`` as the request's wire bytes on a plain grpcio channel (its defaults: an
    8 KB metadata limit). Returns the RpcError, or None for OK."""
    service = "BundleAdmin" if method in ("GetBundle", "ReloadBundle") else "DecisionService"
    with grpc.insecure_channel(f"127.0.0.1:{server.port}",
                               options=[("grpc.max_send_message_length", 256 * MiB)]) as channel:
        call = channel.unary_unary(f"/postloan.v1.{service}/{method}")
        try:
            call(data, metadata=(("authorization", f"Bearer {token}"),), timeout=timeout)
        except grpc.RpcError as e:
            return e
    return None


def batch_request(data: bytes, with_actions: bool = False) -> bytes:
    return decision_pb2.DecideBatchRequest(accounts=data, with_actions=with_actions, as_of=convert.date_message(AS_OF),
                                           now=convert.timestamp_message(NOW)).SerializeToString()


def bad_request(error) -> list[tuple[str, str]]:
    """The BadRequest field violations of an INVALID_ARGUMENT."""
    assert error is not None and error.code() is grpc.StatusCode.INVALID_ARGUMENT, error
    status = rpc_status.from_call(error)
    out = []
    for detail in status.details:
        info = error_details_pb2.BadRequest()
        if detail.Unpack(info):
            out.extend((v.field, v.description) for v in info.field_violations)
    return out


def quota_subject(error) -> str:
    assert error is not None and error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, error
    info = error_details_pb2.QuotaFailure()
    assert rpc_status.from_call(error).details[0].Unpack(info)
    return info.violations[0].subject


def audited(server) -> int:
    from kernel.audit import read_audit
    path = server.engine.pipeline.audit.path
    return sum(1 for _ in read_audit(path)) if os.path.exists(path) else 0


@contextlib.contextmanager
def captured_log():
    from kernel.server import logs

    stream = io.StringIO()
    logger = logging.getLogger("postloan")
    saved = logger.level, logger.propagate
    handler = logs.configure("DEBUG", stream)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _status(name: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(name + ":"):
            return int(line.split()[1]) << 10
    raise KeyError(name)


@contextlib.contextmanager
def peak_growth():
    """Bytes this process's resident set grew at its peak inside the block (client and
    server both live here: an upper bound for the server's share)."""
    with open("/proc/self/clear_refs", "w") as f:          # resets the peak (VmHWM) to the current RSS
        f.write("5")
    before = _status("VmRSS")
    result = {}
    yield result
    result["peak"] = _status("VmHWM") - before


def alive(client: Client, record: dict) -> None:
    assert client.decide(record, AS_OF, now=NOW)["account_id"] == record["account_id"]


# -- 1. malformed Arrow: validated in full before any compute --------------------------------------
@pytest.mark.parametrize("name, field", [("bad_offsets", "accounts.region"),
                                         ("dictionary_index_out_of_range", "accounts.product"),
                                         ("invalid_utf8", "accounts.brand")])
def test_1_malformed_arrow_is_refused_and_the_server_stays_up(served, scoring, record, name, field):
    before = audited(served)
    violations = bad_request(raw(served, "DecideBatch", batch_request(fixture(name), with_actions=True)))
    assert violations[0][0] == field and "not valid Arrow data" in violations[0][1]
    assert audited(served) == before
    alive(scoring, record)


# -- 2. decompression bombs: declared sizes checked before decoding ----------------------------------
def test_2_decompression_bombs_are_refused_before_decoding(served, scoring, record):
    for name, subject in (("zstd_bomb_rows", "max_batch_rows"), ("zstd_bomb_bytes", "max_batch_bytes"),
                          ("mutated_huge_malloc", "max_batch_bytes")):
        with peak_growth() as growth:
            error = raw(served, "DecideBatch", batch_request(fixture(name)))
        assert quota_subject(error) == subject, name
        # before: the 2²⁷-row bomb was decoded whole (+900 MiB)
        assert growth["peak"] < 64 * MiB, (name, growth["peak"] / MiB)
    alive(scoring, record)


def test_2_the_decoded_size_cap_is_configurable(start_server, served):
    server = start_server(loader=_loader(served), max_batch_bytes=1 * MiB)
    server.wait_ready(60)
    error = raw(server, "DecideBatch", batch_request(ipc_bytes(book(2_000), "zstd")))
    assert quota_subject(error) == "max_batch_bytes"
    assert "1,048,576 bytes" in error.details()


# -- 3. unknown method names are not remembered ----------------------------------------------------
def test_3_unknown_methods_leave_no_trace(served):
    rng = random.Random(3)
    known = served.interceptor.cached_methods()
    with grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        for i in range(2_000):
            name = "".join(rng.choices(string.ascii_letters, k=rng.randint(1, 200)))
            path = f"/postloan.v1.DecisionService/{name}" if i % 2 else f"/{name}/{name}"
            with pytest.raises(grpc.RpcError) as err:
                channel.unary_unary(path)(b"", timeout=10)
            assert err.value.code() is grpc.StatusCode.UNIMPLEMENTED
    # at most every method the server serves, whatever was asked for
    assert served.interceptor.cached_methods() <= max(known, 9)


# -- 5. an answer too large to send is refused before it is audited ------------------------------------
def test_5_an_answer_over_the_message_limit_is_not_audited(start_server, served, small_book):
    # Requests up to 64 MiB, answers up to 1 MiB: a 3,000-account batch with actions answers ≈ 1 MB.
    server = start_server(loader=_loader(served), max_message_bytes=1 * MiB,
                          extra_options=[("grpc.max_receive_message_length", 64 * MiB)])
    server.wait_ready(60)
    before = audited(served)
    error = raw(server, "DecideBatch", batch_request(ipc_bytes(small_book.slice(0, 3_500)), with_actions=True))
    assert quota_subject(error) == "max_message_mb"
    assert "nothing was audited" in error.details() and "at most about" in error.details()
    assert audited(served) == before
    # decided up front from the decision columns' widths alone: far too many rows, no work done
    started = time.monotonic()
    error = raw(server, "DecideBatch", batch_request(ipc_bytes(pa.concat_tables([small_book] * 3))))
    assert quota_subject(error) == "max_message_mb" and "at least" in error.details()
    assert audited(served) == before
    assert raw(server, "DecideBatch", batch_request(ipc_bytes(small_book.slice(0, 500)), with_actions=True)) is None
    assert audited(served) == before + 1
    assert time.monotonic() - started < 60


# -- 6. strings have a maximum length ------------------------------------------------------------------
def test_6_a_megabyte_account_id_is_refused_and_never_logged_or_audited(served, scoring, record):
    huge = "A" * MiB
    table = book(3)
    long_names = table.set_column(table.schema.get_field_index("name"), "name", pa.array(["丁" * 129] * 3))
    before = audited(served)
    with pytest.raises(CallError):          # once before measuring: gRPC's first megabyte message
        scoring.decide({**record, "account_id": huge}, AS_OF, now=NOW)   # sizes its buffers
    with captured_log() as log, peak_growth() as growth:
        with pytest.raises(CallError) as err:
            scoring.decide({**record, "account_id": huge}, AS_OF, now=NOW)
        with pytest.raises(CallError) as batch_err:
            scoring.decide_batch(long_names, AS_OF)
    assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT and err.value.field == "account.account_id"
    assert "1,048,576 characters, more than the contract's 64" in err.value.message
    assert batch_err.value.field == "accounts.name" and "row 0" in batch_err.value.message
    assert "丁" * 129 not in batch_err.value.message
    assert huge[:100] not in log.getvalue() and "丁丁丁" not in log.getvalue()
    assert audited(served) == before
    assert growth["peak"] < 64 * MiB


def test_6_an_empty_account_id_names_no_account_and_is_refused(served, scoring, record):
    """proto3 sends an empty string as an unset field: the id that names nothing is refused by
    Decide (the wire pass leaves it to the careful path) and by DecideBatch, never decided
    and audited under ""."""
    table = book(3)
    blank = table.set_column(table.schema.get_field_index("account_id"), "account_id", pa.array(["a-1", "", "a-3"]))
    before = audited(served)
    with pytest.raises(CallError) as err:
        scoring.decide({**record, "account_id": ""}, AS_OF, now=NOW)
    with pytest.raises(CallError) as batch_err:
        scoring.decide_batch(blank, AS_OF)
    assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT and err.value.field == "account.account_id"
    assert "empty" in err.value.message
    assert batch_err.value.field == "accounts.account_id" and "row 1" in batch_err.value.message
    assert audited(served) == before


# -- 7. bad values are INVALID_ARGUMENT (INTERNAL means a bug) ---------------------------------------
ITEM_7 = [("now_seconds_plus_2e62", "now"), ("now_seconds_minus_2e62", "now"), ("now_nanos_1e9", "now"),
          ("now_nanos_negative", "now"), ("last_conversation_at_2e62", "account.last_conversation_at"),
          ("as_of_year_9999", "as_of"), ("valuate_country_7", "country"), ("valuate_country_minus_1", "country"),
          ("valuate_model_year_0", "vehicle.model_year"), ("valuate_model_year_minus_5", "vehicle.model_year"),
          ("valuate_model_year_99999", "vehicle.model_year"), ("valuate_mileage_nan", "vehicle.mileage_km"),
          ("reload_root", "path"), ("reload_dot_dot_etc", "path"), ("reload_nul", "path"),
          ("unparseable_decide", "request"), ("unparseable_reload", "request")]


@pytest.mark.parametrize("name, field", ITEM_7, ids=[n for n, _ in ITEM_7])
def test_7_bad_request_values_are_invalid_argument(served, name, field):
    method, data = request_fixture(name)
    token = TOKENS["admin"] if method == "ReloadBundle" else TOKENS["scoring"]
    violations = bad_request(raw(served, method, data, token=token))
    assert violations[0][0] == field


@pytest.mark.parametrize("name", ["duplicated_column", "mutated_not_implemented", "mutated_unknown_dictionary",
                                  "mutated_invalid_flatbuffer"])
def test_7_undecodable_streams_are_invalid_argument(served, name):
    error = raw(served, "DecideBatch", batch_request(fixture(name)))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, (name, error.code(), error.details())
    assert bad_request(error)[0][0].startswith("accounts")


def test_7_streams_the_fuzz_suite_found(served, scoring):
    """A half-float column (INTERNAL: no compare kernel), instants in a time zone nobody
    knows (normalized to UTC: decided), seconds that overflow microseconds (refused)."""
    violations = bad_request(raw(served, "DecideBatch", batch_request(fixture("half_float_column"))))
    assert violations[0][0] == "accounts.overdue_amount" and "halffloat" in violations[0][1]
    assert raw(served, "DecideBatch", batch_request(fixture("foreign_time_zone"), with_actions=True)) is None
    violations = bad_request(raw(served, "DecideBatch", batch_request(fixture("seconds_overflowing_microseconds"))))
    assert violations[0][0] == "accounts.last_conversation_at"


# -- 8. one validator for every entry point -----------------------------------------------------------
def test_8_decide_batch_checks_every_contract_column(served):
    violations = bad_request(raw(served, "DecideBatch", batch_request(fixture("missing_required_columns"))))
    assert [f for f, _ in violations] == ["accounts.customer_id", "accounts.vin", "accounts.time_zone",
                                          "accounts.consent_automated_contact"]
    violations = bad_request(raw(served, "DecideBatch", batch_request(fixture("bad_values"), with_actions=True)))
    found = {field: text for field, text in violations}
    assert "row 1: not a finite number" in found["accounts.principal"]
    assert "row 2: not a finite number" in found["accounts.overdue_amount"]
    assert "row 3: -100 is outside the contract's range" in found["accounts.installment_amount"]
    assert "row 4: -5 is outside the contract's range 0 – 36,500" in found["accounts.dpd"]
    assert "must not be null (first null at row 5)" in found["accounts.time_zone"]


def test_8_a_nullable_column_left_out_of_a_batch_is_null_as_in_decide(scoring, record):
    table = book(20)
    full = scoring.decide_batch(table, AS_OF, now=NOW)
    nulls = table.set_column(table.schema.get_field_index("bureau_score"), "bureau_score", pa.nulls(20, pa.int64()))
    assert scoring.decide_batch(table.drop_columns(["bureau_score", "promise_date"]), AS_OF, now=NOW).equals(
        scoring.decide_batch(nulls.set_column(nulls.schema.get_field_index("promise_date"), "promise_date",
                                              pa.nulls(20, pa.date32())), AS_OF, now=NOW))
    assert full.num_rows == 20


@pytest.mark.parametrize("column, value", [("dpd", -5), ("overdue_amount", float("inf")), ("principal", -1.0),
                                           ("time_zone", None), ("gps_lat", 95.0), ("region", "R" * 17)])
def test_8_decide_explain_and_decide_batch_agree(scoring, record, column, value):
    bad = {**record, column: value}
    for call in (lambda: scoring.decide(bad, AS_OF, now=NOW), lambda: scoring.explain(bad, AS_OF)):
        with pytest.raises(CallError) as err:
            call()
        assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT and err.value.field == f"account.{column}"
    table = pa.Table.from_pylist([record, bad], schema=book(1).schema)
    with pytest.raises(CallError) as err:
        scoring.decide_batch(table, AS_OF, now=NOW)
    assert err.value.field == f"accounts.{column}" and "row 1" in err.value.message


def test_8_postloan_decide_refuses_the_same_values(tmp_path, capsys):
    import pyarrow.parquet as pq
    from kernel.cli import main

    table = book(10)
    values = table["dpd"].to_pylist()
    values[6] = -5
    pq.write_table(table.set_column(table.schema.get_field_index("dpd"), "dpd", pa.array(values)),
                   tmp_path / "bad.parquet")
    assert main(["decide", "--in", str(tmp_path / "bad.parquet"), "--out", str(tmp_path / "out.parquet")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "column 'dpd' row 6: -5 is outside the contract's range" in err[0]


# -- 9. error details fit grpcio's default 8 KB of trailers -------------------------------------------
def test_9_the_guides_one_field_decide_is_invalid_argument_with_bounded_details(served):
    from kernel.server.status import MAX_VIOLATIONS, MORE

    method, data = request_fixture("decide_only_account_id")
    error = raw(served, method, data)                        # grpcio's defaults: 8 KB of metadata
    violations = bad_request(error)
    assert len(violations) == MAX_VIOLATIONS + 1 and violations[-1][0] == MORE
    required = sum(1 for c in schema.BOOK if not c.nullable) - 1
    assert violations[-1][1] == f"{required - MAX_VIOLATIONS} more not listed"
    assert violations[0] == ("account.customer_id", schema.REQUIRED)
    assert len(error.details()) <= 600 and "more (see the details)" in error.details()


def test_9_the_client_raises_only_its_own_error(scoring, record):
    for call, field in ((lambda: scoring.decide({"account_id": "AC1"}, AS_OF), "account.customer_id"),
                        (lambda: scoring.decide({**record, "dpd": "abc"}, AS_OF), "account.dpd"),
                        (lambda: scoring.decide({**record, "product": "BOAT"}, AS_OF), "account.product"),
                        (lambda: scoring.decide(record, "not a date"), "as_of"),
                        (lambda: scoring.valuate(record, "FR"), "country"),
                        (lambda: scoring.decide_batch(pa.table({"x": [1]}), AS_OF), "accounts.account_id")):
        with pytest.raises(CallError) as err:
            call()
        assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT and err.value.field == field
        assert "abc" not in err.value.message and "BOAT" not in err.value.message


# -- 10. SIGTERM drains ----------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_10_sigterm_drains_every_admitted_call_with_health_not_serving(tmp_path):
    port = _free_port()
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "kernel", "serve", "--port", str(port), "--grace", "30",
                                 "--threads", "16"], stdout=subprocess.DEVNULL, stderr=log_file)
    target = f"127.0.0.1:{port}"
    try:
        with Client(target) as client:
            client.wait_until_serving(300)
        accounts = book(300)
        outcomes, sent = [], threading.Barrier(65, timeout=120)

        def caller():
            with Client(target, timeout=120, channels=1) as client:
                sent.wait()
                try:
                    client.decide_batch(accounts, AS_OF, now=NOW, with_actions=True)
                    outcomes.append(("OK", ""))
                except CallError as e:
                    outcomes.append((e.code.name, e.message))

        callers = [threading.Thread(target=caller) for _ in range(64)]
        for t in callers:
            t.start()
        sent.wait()
        deadline = time.monotonic() + 120
        while not outcomes and time.monotonic() < deadline:     # the server is at work: most calls queued
            time.sleep(0.005)
        proc.send_signal(signal.SIGTERM)
        health, refused = [], None
        with Client(target, channels=1) as client:
            while proc.poll() is None:
                try:
                    health.append(client.health(timeout=2))
                except CallError as e:
                    health.append(e.code.name)
                if refused is None and health[-1] == "NOT_SERVING":
                    try:
                        client.decide(accounts.slice(0, 1).to_pylist()[0], AS_OF)
                    except CallError as e:
                        refused = e
                time.sleep(0.02)
        for t in callers:
            t.join(120)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    admitted = next(entry["calls_in_flight"] for entry in lines if entry["event"] == "shutting down")
    codes = [code for code, _ in outcomes]
    summary = (collections.Counter(outcomes), admitted)
    assert len(codes) == 64 and "CANCELLED" not in codes, summary
    assert codes.count("OK") >= admitted > 0, summary                     # every admitted call finished
    assert all(code == "OK" or (code == "UNAVAILABLE" and "not started" in message) for code, message in outcomes)
    assert "NOT_SERVING" in health and "SERVING" not in health[health.index("NOT_SERVING"):]
    assert refused is not None and refused.code is grpc.StatusCode.UNAVAILABLE and "shutting down" in refused.message


# -- 11. reloads only from the bundle roots, never quoting a file --------------------------------------
def test_11_reload_is_confined_to_the_roots_and_quotes_no_file(served, tmp_path):
    bundle = tmp_path / "bundle"
    for folder in ("rulesets", "models"):
        (bundle / folder).mkdir(parents=True)
    for f in served.engine.kernel.bundle.files:
        shutil.copy(f, bundle / ("models" if f.suffix == ".onnx" else "rulesets") / f.name)
    (bundle / "rulesets" / "x.yaml").symlink_to("/etc/passwd")
    before = served.engine.bundle_hash
    with Client(f"127.0.0.1:{served.port}", token=TOKENS["admin"], timeout=300) as admin:
        for path, words in (("../../etc", "outside the server's bundle roots"), ("/", "outside the server's bundle roots"),
                            (str(bundle), "resolves outside the server's bundle roots")):
            with pytest.raises(CallError) as err:
                admin.reload_bundle(path)
            assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT and err.value.field == "path"
            assert words in err.value.message and "root:x:0" not in err.value.message
        (bundle / "rulesets" / "x.yaml").unlink()
        (bundle / "rulesets" / "x.yaml").write_text(Path("/etc/passwd").read_text())      # content inside the root
        (bundle / "rulesets" / "y.yaml").write_text("secret_key: hunter2\nanother_secret: 1\n")
        with pytest.raises(CallError) as err:
            admin.reload_bundle(str(bundle))
        assert err.value.code is grpc.StatusCode.FAILED_PRECONDITION
        text = err.value.message + json.dumps(err.value.violations)
        assert "x.yaml" in text and "y.yaml" in text
        for secret in ("root:x:0", "secret_key", "hunter2", "another_secret", "/bin/bash"):
            assert secret not in text, secret
    assert served.engine.bundle_hash == before


# -- 12. no string from a request in a message or a log ------------------------------------------------
def test_12_a_shifted_column_is_named_by_row_not_quoted(served):
    names = book()["name"].to_pylist()
    with captured_log() as log:
        violations = bad_request(raw(served, "DecideBatch", batch_request(fixture("product_holds_names"))))
    assert violations[0][0] == "accounts.product" and "row 0: not one of NEW_CAR_LOAN" in violations[0][1]
    text = log.getvalue() + json.dumps(violations, ensure_ascii=False)
    assert '"rpc failed"' in log.getvalue() and "column 'product' row 0" in log.getvalue()
    assert not [n for n in names if n in text]


def test_12_quoted_spans_leave_messages_that_reach_logs_or_callers():
    """An unexpected exception's text (logged with INTERNAL) and a rejected bundle's
    diagnostics (answered to ReloadBundle) keep their words but lose what they quote."""
    from kernel.server.logs import blank_quoted

    assert blank_quoted("KeyError: '丁明'") == "KeyError: '…'"
    assert blank_quoted("a ruleset file is a mapping, got `root:x:0:0:root`") == \
        "a ruleset file is a mapping, got `…`"
    assert blank_quoted('unknown key "secret_key"; can\'t go on') == 'unknown key "…"; can\'t go on'


# -- 15. SIGHUP reloads the token file ------------------------------------------------------------------
def test_15_a_token_revoked_on_sighup_stops_working(start_server, served, token_file, tmp_path, record):
    tokens = tmp_path / "tokens.txt"
    shutil.copy(token_file, tokens)
    server = start_server(loader=_loader(served), token_file=str(tokens))
    server.wait_ready(60)
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    server.install_signal_handlers()
    try:
        with Client(f"127.0.0.1:{server.port}", token=TOKENS["scoring"]) as client:
            alive(client, record)
            with captured_log() as log:
                tokens.write_text("".join(line + "\n" for line in tokens.read_text().splitlines()
                                          if not line.startswith("scoring")))
                os.kill(os.getpid(), signal.SIGHUP)
                deadline = time.monotonic() + 30
                while server.tokens.names() != {"admin-client"} and time.monotonic() < deadline:
                    time.sleep(0.05)
                with pytest.raises(CallError) as err:
                    client.decide(record, AS_OF, now=NOW)
                assert err.value.code is grpc.StatusCode.UNAUTHENTICATED
                tokens.write_text("not a token file\n")
                assert not server.reload_tokens()                 # a broken file: the current tokens stay
            assert '"tokens reloaded"' in log.getvalue() and '"token file rejected' in log.getvalue()
        with Client(f"127.0.0.1:{server.port}", token=TOKENS["admin"]) as client:
            alive(client, record)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


# -- 16. one client spreads its calls over connections --------------------------------------------------
def _server_connections(port: int) -> set[int]:
    """Socket inodes of the established TCP connections whose local port is ``port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if os.path.exists(table):
            for line in open(table).read().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    inodes.add(int(fields[9]))
    return inodes


def test_16_a_client_opens_several_connections_and_uses_them_all(served, record):
    port = served.port
    before = len(_server_connections(port))
    with Client(f"127.0.0.1:{port}", token=TOKENS["scoring"]) as client:
        for _ in range(8):
            alive(client, record)
        from kernel.client import CHANNELS
        assert len(_server_connections(port)) - before == CHANNELS >= 2
    with Client(f"127.0.0.1:{port}", token=TOKENS["scoring"], channels=1) as client:
        alive(client, record)
        assert len(_server_connections(port)) - before <= 1


# -- 1 and 16 with --workers: a dead worker comes back; a client reaches both -----------------------------
def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _sockets_of(pid: int) -> set[int]:
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(int(target[8:-1]))
    return out


def test_1_16_workers_survive_hostile_streams_restart_when_killed_and_share_one_client(tmp_path, record):
    port = _free_port()
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "kernel", "serve", "--port", str(port), "--workers", "2"],
                                stdout=subprocess.DEVNULL, stderr=log_file)
    target = f"127.0.0.1:{port}"
    supervisor = types.SimpleNamespace(port=port)
    try:
        with Client(target) as client:
            client.wait_until_serving(300)
        deadline = time.monotonic() + 300
        while len(_children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        for _ in range(4):                    # before: two such calls killed both workers
            assert bad_request(raw(supervisor, "DecideBatch", batch_request(fixture("bad_offsets"))))
        victim = _children(proc.pid)[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 300
        while (log_path.read_text().count('"worker restarted"') < 1 or len(_children(proc.pid)) < 2) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        text = log_path.read_text()
        assert '"worker died; restarting"' in text and "killed by SIGKILL" in text and '"worker restarted"' in text
        workers = _children(proc.pid)
        assert victim not in workers and len(workers) == 2
        deadline, busy = time.monotonic() + 300, [False]
        while not all(busy) and time.monotonic() < deadline:      # the new worker listens once it is warm
            with Client(target, channels=8) as client:
                for _ in range(16):
                    alive(client, record)
                busy = [bool(_sockets_of(w) & _server_connections(port)) for w in workers]
        assert all(busy), "one Client with several channels reaches both workers"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- unsafe settings are warned about at start-up ----------------------------------------------------
def test_unsafe_settings_are_logged_at_start(start_server, certs, tmp_path):
    key = tmp_path / "server.key"
    shutil.copy(certs["server_key"], key)
    os.chmod(key, 0o644)
    with captured_log() as log:
        start_server(bundle="/nonexistent/bundle", host="0.0.0.0", allow_unauthenticated=True)
        start_server(bundle="/nonexistent/bundle", tls_cert=str(certs["server_cert"]), tls_key=str(key))
        start_server(bundle="/nonexistent/bundle")                  # loopback, no TLS: nothing unsafe
    warnings = [json.loads(line)["warning"] for line in log.getvalue().splitlines()
                if json.loads(line)["event"] == "unsafe setting"]
    assert len(warnings) == 3, warnings
    assert "serving 0.0.0.0 without TLS" in warnings[0]
    assert "without --token-file (--allow-unauthenticated)" in warnings[1]
    assert f"the TLS private key {key} is readable by every user" in warnings[2]
