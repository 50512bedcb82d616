"""The server shell without a bundle: health, reflection, auth, TLS, limits, shutdown.

A server pointed at a bundle that does not exist stays NOT_SERVING; every transport-level
feature must still behave (these tests need no compiled kernel)."""
import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from auth_tokens import TOKENS
from kernel.client import CallError, Client
from kernel.server.auth import TokenFileError, TokenStore, bearer_token, hash_token, token_line

MISSING_BUNDLE = "/nonexistent/postloan-bundle"
ACCOUNT = {"account_id": "AC1"}


def _failed_server(start_server, **config):
    server = start_server(bundle=MISSING_BUNDLE, **config)
    server._ready.wait(30)
    return server


def test_health_stays_not_serving_when_the_bundle_fails(start_server):
    server = _failed_server(start_server)
    with Client(f"127.0.0.1:{server.port}") as client:
        assert client.health() == "NOT_SERVING"
        assert client.health("postloan.v1.DecisionService") == "NOT_SERVING"
        assert client.health("postloan.v1.BundleAdmin") == "SERVING"
        with pytest.raises(CallError) as err:
            client.decide(ACCOUNT)
        assert err.value.code is grpc.StatusCode.UNAVAILABLE
        with pytest.raises(CallError) as err:
            client.get_bundle()
        assert err.value.code is grpc.StatusCode.UNAVAILABLE
        assert MISSING_BUNDLE in err.value.message
    assert server.load_error is not None


def test_reflection_lists_and_describes_the_services(start_server):
    from google.protobuf.descriptor_pool import DescriptorPool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    server = _failed_server(start_server)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        assert {"postloan.v1.DecisionService", "postloan.v1.BundleAdmin", "grpc.health.v1.Health",
                "grpc.reflection.v1alpha.ServerReflection"} <= services
        pool = DescriptorPool(database)
        service = pool.FindServiceByName("postloan.v1.DecisionService")
        assert [m.name for m in service.methods] == ["Decide", "DecideBatch", "Explain", "Valuate"]
        account = pool.FindMessageTypeByName("postloan.v1.Account")
        assert account.fields_by_name["dpd"].type == account.fields_by_name["dpd"].TYPE_INT64
        assert pool.FindMessageTypeByName("google.type.Date").fields_by_name["year"]


def test_tokens_and_roles(start_server, token_file):
    server = _failed_server(start_server, token_file=token_file)
    target = f"127.0.0.1:{server.port}"
    cases = [(None, "Decide", grpc.StatusCode.UNAUTHENTICATED),
             ("not-a-token", "Decide", grpc.StatusCode.UNAUTHENTICATED),
             (TOKENS["scoring"], "Decide", grpc.StatusCode.UNAVAILABLE),          # authorized; no bundle
             (TOKENS["scoring"], "GetBundle", grpc.StatusCode.PERMISSION_DENIED),
             (TOKENS["admin"], "GetBundle", grpc.StatusCode.UNAVAILABLE),
             (TOKENS["admin"], "Decide", grpc.StatusCode.UNAVAILABLE)]
    for token, method, code in cases:
        with Client(target, token=token) as client:
            with pytest.raises(CallError) as err:
                client.decide(ACCOUNT) if method == "Decide" else client.get_bundle()
            assert err.value.code is code, (token, method)
    with Client(target) as client:       # health needs no token (load balancers probe it)
        assert client.health() == "NOT_SERVING"


def test_token_store_hashes_and_file_errors(tmp_path):
    path = tmp_path / "tokens.txt"
    path.write_text(token_line("scoring", "dialer", "secret-1") + "\n")
    store = TokenStore.load(path)
    assert "secret-1" not in path.read_text()
    assert store.authenticate("secret-1").name == "dialer"
    assert store.authenticate("secret-2") is None
    assert hash_token("secret-1").hex() in path.read_text()
    assert bearer_token([("authorization", "Bearer abc")]) == "abc"
    assert bearer_token([("authorization", "Basic abc")]) is None
    for text, expected in [("root dialer sha256:" + "0" * 64, ":1: unknown role 'root'"),
                           ("scoring dialer plaintext-token", ":1: the hash must start with"),
                           ("# only a comment\nscoring dialer sha256:abc", ":2: sha256: must be followed"),
                           ("scoring a sha256:" + "0" * 64 + "\nadmin a sha256:" + "1" * 64, ":2: client name 'a'"),
                           ("", "no tokens")]:
        path.write_text(text)
        with pytest.raises(TokenFileError, match=expected):
            TokenStore.load(path)


def test_tls_and_mutual_tls(start_server, certs):
    tls = _failed_server(start_server, tls_cert=str(certs["server_cert"]), tls_key=str(certs["server_key"]))
    target = f"localhost:{tls.port}"
    with Client(target, tls=True, ca=certs["ca"]) as client:
        assert client.health() == "NOT_SERVING"
    with Client(target, tls=True, ca=certs["other_ca"]) as client:      # server not trusted
        with pytest.raises(CallError) as err:
            client.health(timeout=5)
        assert err.value.code is grpc.StatusCode.UNAVAILABLE
    with Client(target) as client:                                        # plaintext to a TLS port
        with pytest.raises(CallError):
            client.health(timeout=5)

    mtls = _failed_server(start_server, tls_cert=str(certs["server_cert"]), tls_key=str(certs["server_key"]),
                          tls_client_ca=str(certs["ca"]))
    target = f"localhost:{mtls.port}"
    with Client(target, tls=True, ca=certs["ca"], cert=certs["client_cert"], key=certs["client_key"]) as client:
        assert client.health() == "NOT_SERVING"
    with Client(target, tls=True, ca=certs["ca"]) as client:             # no client certificate
        with pytest.raises(CallError) as err:
            client.health(timeout=5)
        assert err.value.code is grpc.StatusCode.UNAVAILABLE


def test_bad_tls_files_are_named(start_server, certs, tmp_path):
    from kernel.server.tls import TLSConfigError

    not_pem = tmp_path / "key.txt"
    not_pem.write_text("hello")
    with pytest.raises(TLSConfigError, match="key.txt: TLS private key is not PEM"):
        start_server(tls_cert=str(certs["server_cert"]), tls_key=str(not_pem))
    with pytest.raises(TLSConfigError, match="server_cert.pem: no PRIVATE KEY block"):
        start_server(tls_cert=str(certs["server_cert"]), tls_key=str(certs["server_cert"]))


def test_oversized_message_is_refused(start_server):
    server = _failed_server(start_server, max_message_bytes=64 << 10)
    target = f"127.0.0.1:{server.port}"
    with Client(target) as client:
        with pytest.raises(CallError) as err:
            client.decide({"account_id": "A" * (100 << 10)})
        assert err.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_port_in_use_is_a_clear_error(start_server):
    from kernel.server.app import ServerError

    first = _failed_server(start_server)
    with pytest.raises(ServerError, match="cannot listen on 127.0.0.1"):
        start_server(port=first.port)


def test_shutdown_turns_health_not_serving_for_watchers(start_server):
    server = start_server(bundle=MISSING_BUNDLE, grace_seconds=1.0)
    server._ready.wait(30)
    seen = []
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(
            service="postloan.v1.BundleAdmin"))
        seen.append(next(watch).status)
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        seen.append(next(watch).status)
        stopper.join(10)
    assert seen == [health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING]
    assert server.wait(5)


def test_metrics_count_calls_by_method_and_code(start_server, token_file):
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        metrics_port = s.getsockname()[1]
    server = _failed_server(start_server, token_file=token_file, metrics_port=metrics_port)
    with Client(f"127.0.0.1:{server.port}") as client:
        for _ in range(3):
            with pytest.raises(CallError):
                client.decide(ACCOUNT)
        client.health()
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    assert 'postloan_grpc_calls_total{code="UNAUTHENTICATED",method="Decide"} 3.0' in text
    assert 'postloan_grpc_calls_total{code="OK",method="grpc.health.v1.Health/Check"} 1.0' in text
    assert 'postloan_grpc_call_seconds_count{method="Decide"} 3.0' in text
