"""postloan serve: the gRPC decision service."""
from __future__ import annotations

import argparse

from . import args as a

HELP = "serve decisions over gRPC (health, reflection, TLS, tokens, metrics, hot reload)"
DESCRIPTION = """Serve the decision kernel over gRPC (API postloan.v1, see docs/grpc-guide.md).

Health reports NOT_SERVING until the bundle is compiled and warm. SIGTERM / Ctrl-C: a drain —
health NOT_SERVING, new calls refused UNAVAILABLE, calls already admitted finish (--grace).
SIGHUP: reload the token file, recompile the bundle from disk and swap it in; a bundle that
fails is rejected and the old one keeps serving. Every limit: docs/grpc-guide.md, "Limits".

examples:
  postloan serve                                   # shipped bundle on 127.0.0.1:50051
  postloan serve --bundle ./my-bundle --workers 2 --metrics-port 9102
  postloan serve --host 0.0.0.0 --tls-cert server.pem --tls-key server.key \\
                 --tls-client-ca clients-ca.pem --token-file tokens.txt
  python -m kernel.server.auth new --role scoring --name dialer --token-file tokens.txt"""


def _port(text: str) -> int:
    value = a.non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port 0-65535, got {value}")
    return value


def _milliseconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 60_000:
        raise argparse.ArgumentTypeError(f"expected milliseconds in (0, 60000], got {text!r}")
    return value


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    digits, unit = (text[:-1], units[text[-1].upper()]) if text[-1:].upper() in units else (text, 1)
    try:
        value = int(digits) * unit
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive size (bytes, or 64K, 256M, 1G), got {text!r}")
    return value


def add_arguments(p) -> None:
    p.add_argument("--bundle", type=a.existing_path, default=None,
                   help="bundle directory (rulesets/ and models/); default: the shipped bundle")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=50051, help="port (default 50051; 0: any free port)")
    p.add_argument("--workers", type=a.positive_int, default=1,
                   help="server processes sharing the port via SO_REUSEPORT (default 1)")
    p.add_argument("--threads", type=a.positive_int, default=16, help="RPC threads per process (default 16)")
    p.add_argument("--tls-cert", type=a.existing_file, help="server certificate chain (PEM): enables TLS")
    p.add_argument("--tls-key", type=a.existing_file, help="server private key (PEM)")
    p.add_argument("--tls-client-ca", type=a.existing_file,
                   help="CA (PEM) that signs client certificates: enables mutual TLS")
    p.add_argument("--token-file", type=a.existing_file,
                   help="bearer tokens: lines 'role name sha256:<hex>' (roles scoring, admin)")
    p.add_argument("--allow-unauthenticated", action="store_true",
                   help="serve a non-loopback address without --token-file (not recommended)")
    p.add_argument("--metrics-port", type=_port, default=None, help="serve Prometheus metrics on this port")
    p.add_argument("--metrics-host", default="127.0.0.1", help="address of the metrics port (default 127.0.0.1)")
    p.add_argument("--max-batch-rows", type=a.positive_int, default=200_000,
                   help="largest DecideBatch accepted, in accounts (default 200000)")
    p.add_argument("--max-batch-bytes", type=_size, default=256 << 20, metavar="SIZE",
                   help="largest DecideBatch accepted once decoded (decompressed): bytes, or with a suffix "
                        "K, M, G (binary; default 256M)")
    p.add_argument("--max-message-mb", type=a.positive_int, default=64, help="largest message in MiB (default 64)")
    p.add_argument("--max-concurrent-rpcs", type=a.positive_int, default=512,
                   help="calls in progress per process before RESOURCE_EXHAUSTED (default 512)")
    p.add_argument("--grace", type=float, default=10.0, help="seconds in-flight calls get on shutdown (default 10)")
    p.add_argument("--bundle-root", action="append", type=a.existing_path, default=None, metavar="DIR",
                   help="ReloadBundle may load bundles only from inside DIR (repeatable; default: the folder "
                        "holding --bundle); no file of a bundle may link out of it")
    p.add_argument("--audit-log", type=a.output_file, default=None, help="append the pipeline's audit records here")
    p.add_argument("--audit-sync", choices=("always", "interval"), default=None,
                   help="always: each record synced to disk before the answer (default, or [audit] sync); "
                        "interval: written before the answer, synced in the background")
    p.add_argument("--audit-sync-interval-ms", type=_milliseconds, default=None,
                   help="with --audit-sync interval: sync every N ms (default 50, or [audit] interval_ms)")
    p.add_argument("--access-log", action="store_true", help="log every call (failed calls are always logged)")
    p.add_argument("--store", default=None, metavar="URL",
                   help="the case ledger (sqlite:///FILE or postgresql://…): decisions read each account's state "
                        "from it and the Ledger service (IngestEvents, CheckContact, GetState) is enabled")
    p.add_argument("--config", type=a.existing_file, default=None,
                   help="configuration file (default $POSTLOAN_CONFIG): plugins, strategy, policies, audit, ledger")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))


def server_config(args):
    """The ServerConfig the parsed flags describe."""
    from ..server.app import ServerConfig

    return ServerConfig(
        bundle=args.bundle, host=args.host, port=args.port, threads=args.threads,
        max_concurrent_rpcs=args.max_concurrent_rpcs, max_message_bytes=args.max_message_mb << 20,
        max_batch_rows=args.max_batch_rows, max_batch_bytes=args.max_batch_bytes, tls_cert=args.tls_cert, tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca, token_file=args.token_file, metrics_port=args.metrics_port,
        metrics_host=args.metrics_host, grace_seconds=args.grace, access_log=args.access_log,
        audit_path=args.audit_log, audit_sync=args.audit_sync, audit_interval_ms=args.audit_sync_interval_ms,
        allow_unauthenticated=args.allow_unauthenticated, bundle_roots=[str(r) for r in args.bundle_root or ()],
        store=args.store, config=args.config)


def run(args) -> int:
    from ..errors import PostloanError
    from ..server import logs
    from ..server.app import DecisionServer, is_loopback

    if not is_loopback(args.host) and not args.token_file and not args.allow_unauthenticated:
        raise PostloanError(f"refusing to serve {args.host} without --token-file: anyone who can reach it could "
                            "call it (pass --allow-unauthenticated to do so anyway)")
    if args.workers > 1 and args.port == 0:
        raise PostloanError("--workers needs a fixed --port (each worker binds the same one)")
    check_address(args.host, args.port, "--port")
    if args.metrics_port is not None:
        check_address(args.metrics_host, args.metrics_port, "--metrics-port")
    config = server_config(args)
    if args.workers > 1:
        from ..bundle import Bundle
        from ..server.workers import run_workers
        Bundle.load(args.bundle)        # a broken bundle: one error here, not one per worker
        logs.configure(args.log_level)
        return run_workers(config, args.workers, args.log_level)
    logs.configure(args.log_level)
    server = DecisionServer(config)
    server.install_signal_handlers()
    server.start()
    try:
        server.wait_ready()
    except PostloanError:
        server.stop(0)
        raise
    server.wait()
    return 0


def check_address(host: str, port: int, flag: str) -> None:
    """Bind ``host:port`` once, and let go, before the server does: a port in use, an address
    that is not this machine's or an unknown host is then one clear line (gRPC reports them
    as "Failed to bind" with a log line of its own). Any other failure is left to the server."""
    import errno
    import socket

    from ..errors import PostloanError

    where = f"cannot listen on {f'[{host}]' if ':' in host else host}:{port}"
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise PostloanError(f"{where}: unknown host {host!r} ({e.strerror})") from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as servers do: TIME_WAIT is no conflict
            try:
                probe.bind(address)
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    raise PostloanError(f"{where}: the port is in use by another process "
                                        f"(choose another {flag})") from None
                if e.errno == errno.EADDRNOTAVAIL:
                    raise PostloanError(f"{where}: {host} is not an address of this machine") from None
                if e.errno == errno.EACCES:
                    raise PostloanError(f"{where}: permission denied (ports below 1024 need privileges)") from None
