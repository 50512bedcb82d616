"""The server: lifecycle, health, reflection, TLS, limits, hot reload and graceful shutdown.

    server = DecisionServer(ServerConfig(bundle=None, port=0))   # the shipped bundle, a free port
    port = server.start()          # serving health (NOT_SERVING) and reflection at once
    server.wait_ready()            # the kernel is compiled and warm: health SERVING
    ...
    server.stop()                  # health NOT_SERVING, refuse new calls, let in-flight ones finish

The bundle compiles on a background thread, so health answers (NOT_SERVING) from the first
moment; ``ReloadBundle`` / SIGHUP compile a new bundle on the reload thread and swap one
reference, so calls in flight finish on the engine they started with.
"""
from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import signal
import threading
from dataclasses import dataclass, field
from typing import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ..errors import PostloanError
from . import tls
from ._proto.postloan.v1 import decision_pb2, decision_pb2_grpc, ledger_pb2, ledger_pb2_grpc
from .auth import TokenStore
from .engine import Engine, load_engine
from .interceptors import AuthInterceptor, TelemetryInterceptor
from .logs import log
from .metrics import Metrics

DECISION_SERVICE = decision_pb2.DESCRIPTOR.services_by_name["DecisionService"].full_name
ADMIN_SERVICE = decision_pb2.DESCRIPTOR.services_by_name["BundleAdmin"].full_name
LEDGER_SERVICE = ledger_pb2.DESCRIPTOR.services_by_name["Ledger"].full_name
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
MiB = 1 << 20


class ServerError(PostloanError):
    """The server cannot start: the address is taken, a TLS file is bad, the bundle fails."""


class ReloadInProgress(PostloanError):
    """Another reload is compiling; try again when it is done."""


@dataclass
class ServerConfig:
    bundle: str | None = None            # bundle directory; None: the shipped bundle
    host: str = "127.0.0.1"
    port: int = 50051                    # 0: any free port
    threads: int = 16                    # RPC handler threads
    max_concurrent_rpcs: int = 512       # beyond: RESOURCE_EXHAUSTED
    max_message_bytes: int = 64 * MiB    # requests and responses (DecideBatch)
    max_batch_rows: int = 200_000        # beyond: RESOURCE_EXHAUSTED
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None     # set: mutual TLS
    token_file: str | None = None        # None: no authentication (loopback only)
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    grace_seconds: float = 10.0          # in-flight calls get this long on shutdown
    reuse_port: bool = False             # SO_REUSEPORT, for --workers
    supervisor_pid: int | None = None    # set in --workers processes: reloads go through the supervisor
    # Compile before binding: a --workers process must not take connections it cannot answer
    # (the Linux kernel spreads them over every socket on the port, ready or not).
    listen_when_ready: bool = False
    access_log: bool = False             # one JSON line per call (failed calls are always logged)
    audit_path: str | None = None        # the pipeline's audit log
    audit_sync: str | None = None        # "always" / "interval"; None: the configuration's [audit] sync
    audit_interval_ms: float | None = None   # "interval": sync every so often; None: [audit] interval_ms
    store: str | None = None             # the case ledger (sqlite:///…, postgresql://…); None: no Ledger service
    extra_options: list = field(default_factory=list)


class DecisionServer:
    def __init__(self, config: ServerConfig, *, loader: Callable[..., Engine] | None = None):
        self.config = config
        self._loader = loader or load_engine
        self.metrics = Metrics()
        self.health = health.HealthServicer(experimental_non_blocking=True)
        for service in ("", DECISION_SERVICE, ADMIN_SERVICE):
            self.health.set(service, NOT_SERVING)
        self.tokens = TokenStore.load(config.token_file) if config.token_file else None
        self.engine: Engine | None = None       # swapped atomically (one reference assignment)
        self.ledger = None                      # the server's, not the bundle's: it survives reloads
        if config.store:
            from ..ledger import Ledger
            from ..plugins import load_config
            self.ledger = Ledger(config.store, load_config())
        self.load_error: BaseException | None = None
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._done = threading.Event()
        self._reload_lock = threading.Lock()
        self._sighup_reloads = threading.Condition()
        self._sighup_count = 0
        self._sighup_outcome: tuple = (None, None, None)   # (engine, previous, error) of the last one
        # One thread compiles bundles, off the RPC threads.
        self._compiler = cf.ThreadPoolExecutor(1, thread_name_prefix="postloan-reload")
        self._server: grpc.Server | None = None
        self._metrics_http = None
        self.port: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> int:
        """Bind and start serving; compile the bundle in the background (with
        ``listen_when_ready``: first, then bind). Returns the port."""
        from .ledger_service import LedgerServicer
        from .service import BundleAdminServicer, DecisionServicer

        c = self.config
        if c.listen_when_ready:
            self._initial_load()
            self.wait_ready(0)
            if self._stopped.is_set():
                raise ServerError("stopped while the bundle was compiling")
        options = [
            ("grpc.max_receive_message_length", c.max_message_bytes),
            ("grpc.max_send_message_length", c.max_message_bytes),
            ("grpc.so_reuseport", 1 if c.reuse_port else 0),
            *c.extra_options,
        ]
        server = grpc.server(
            cf.ThreadPoolExecutor(c.threads, thread_name_prefix="postloan-rpc"),
            interceptors=[TelemetryInterceptor(self.metrics, c.access_log), AuthInterceptor(self.tokens)],
            options=options,
            maximum_concurrent_rpcs=c.max_concurrent_rpcs,
        )
        _add_decision_service(DecisionServicer(self), server)
        decision_pb2_grpc.add_BundleAdminServicer_to_server(BundleAdminServicer(self), server)
        ledger_pb2_grpc.add_LedgerServicer_to_server(LedgerServicer(self), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (DECISION_SERVICE, ADMIN_SERVICE, LEDGER_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        address = f"[{c.host}]:{c.port}" if ":" in c.host else f"{c.host}:{c.port}"
        try:
            if c.tls_cert or c.tls_key:
                if not (c.tls_cert and c.tls_key):
                    raise ServerError("TLS needs both --tls-cert and --tls-key")
                port = server.add_secure_port(address, tls.server_credentials(c.tls_cert, c.tls_key, c.tls_client_ca))
            elif c.tls_client_ca:
                raise ServerError("--tls-client-ca (mutual TLS) needs --tls-cert and --tls-key")
            else:
                port = server.add_insecure_port(address)
        except RuntimeError as e:
            raise ServerError(f"cannot listen on {address}: {e} (is the port in use?)") from None
        if not port:
            raise ServerError(f"cannot listen on {address} (is the port in use?)")
        server.start()
        self._server, self.port = server, port
        self.health.set(ADMIN_SERVICE, SERVING)
        if c.metrics_port is not None:
            self._metrics_http = self.metrics.serve(c.metrics_port, c.metrics_host)
        host = f"[{c.host}]" if ":" in c.host else c.host
        log(logging.INFO, "listening", address=f"{host}:{port}", tls=bool(c.tls_cert),
            mutual_tls=bool(c.tls_client_ca), auth=self.tokens is not None, pid=os.getpid())
        if not c.listen_when_ready:
            self._compiler.submit(self._initial_load)
        return port

    def _initial_load(self) -> None:
        try:
            self._install(self._loader(self.config.bundle, **self._audit_options()))
        except BaseException as e:   # noqa: BLE001 — reported through wait_ready() and the log
            self.load_error = e
            log(logging.ERROR, "bundle failed to load", bundle=self.config.bundle or "(shipped)",
                error=str(e), exc_info=not isinstance(e, PostloanError))
        finally:
            self._ready.set()

    def _audit_options(self) -> dict:
        c = self.config
        return {"audit_path": c.audit_path, "audit_sync": c.audit_sync, "audit_interval_ms": c.audit_interval_ms,
                "ledger": self.ledger}

    def _install(self, engine: Engine) -> Engine | None:
        previous, self.engine = self.engine, engine
        self.load_error = None
        self.metrics.bundle.labels(engine.bundle_hash).set(engine.loaded_at.timestamp())
        if previous is not None and previous.bundle_hash != engine.bundle_hash:
            self.metrics.bundle.remove(previous.bundle_hash)
        if not self._stopped.is_set():
            self.health.set(DECISION_SERVICE, SERVING)
            self.health.set("", SERVING)
        log(logging.INFO, "bundle serving", bundle_hash=engine.bundle_hash,
            path=engine.path, compile_seconds=round(engine.compile_seconds, 3))
        return previous

    def wait_ready(self, timeout: float | None = None) -> Engine:
        """Block until the first bundle is compiled and warm; raise its error if it failed."""
        if not self._ready.wait(timeout):
            raise ServerError(f"the bundle was not ready within {timeout} s")
        if self.engine is None:
            error = self.load_error
            raise error if isinstance(error, PostloanError) else ServerError(f"the bundle failed to load: {error}")
        return self.engine

    def reload(self, path: str | None = None) -> tuple[Engine, Engine | None]:
        """Compile ``path`` (default: the current bundle's directory) off the serving path and
        swap it in. Raises the compile error and keeps the current bundle if it fails."""
        if not self._reload_lock.acquire(blocking=False):
            raise ReloadInProgress("another bundle reload is in progress; retry when it finishes")
        try:
            current = self.engine
            target = path or (current.source if current else self.config.bundle)
            try:
                engine = self._compiler.submit(self._loader, target, **self._audit_options()).result()
            except BaseException:
                self.metrics.reloads.labels("rejected").inc()
                raise
            previous = self._install(engine)
            self.metrics.reloads.labels("ok").inc()
            return engine, previous
        finally:
            self._reload_lock.release()

    def stop(self, grace: float | None = None) -> None:
        """Graceful shutdown: health NOT_SERVING, refuse new calls, let in-flight calls finish
        within ``grace`` seconds (then cancel them)."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        grace = self.config.grace_seconds if grace is None else grace
        self.health.enter_graceful_shutdown()
        log(logging.INFO, "shutting down", grace_seconds=grace)
        if self._server is not None:
            self._server.stop(grace).wait()
        if self.engine is not None:               # "interval" audit records: on disk before the process ends
            try:
                self.engine.pipeline.audit.flush()
            except OSError as e:
                log(logging.ERROR, "audit log sync failed on shutdown", error=e.strerror)
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
        self._compiler.shutdown(wait=False, cancel_futures=True)
        if self.ledger is not None:
            self.ledger.close()
        log(logging.INFO, "stopped")
        self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :meth:`stop` has finished; False on timeout."""
        return self._done.wait(timeout)

    def install_signal_handlers(self) -> None:
        """SIGTERM / SIGINT: graceful shutdown. SIGHUP: reload the bundle from disk."""
        def terminate(signum, _frame):
            threading.Thread(target=self.stop, name="postloan-stop", daemon=True).start()

        def hangup(signum, _frame):
            threading.Thread(target=self._reload_logged, name="postloan-sighup", daemon=True).start()

        signal.signal(signal.SIGTERM, terminate)
        signal.signal(signal.SIGINT, terminate)
        signal.signal(signal.SIGHUP, hangup)

    def _reload_logged(self) -> None:
        outcome: tuple = (None, None, None)
        try:
            engine, previous = self.reload()
            outcome = (engine, previous, None)
            log(logging.INFO, "reloaded on SIGHUP", bundle_hash=engine.bundle_hash,
                previous_bundle_hash=previous.bundle_hash if previous else None)
        except BaseException as e:  # noqa: BLE001 — the old bundle keeps serving
            outcome = (None, None, e)
            log(logging.ERROR, "reload on SIGHUP rejected; the current bundle keeps serving", error=str(e),
                exc_info=not isinstance(e, PostloanError))
        with self._sighup_reloads:
            self._sighup_count += 1
            self._sighup_outcome = outcome
            self._sighup_reloads.notify_all()

    def reload_everywhere(self, path: str | None = None, timeout: float = 900.0) -> tuple[Engine, Engine | None]:
        """ReloadBundle's entry point. Alone, :meth:`reload`. As one of ``--workers``, every
        worker must swap, not only the one this call reached: ask the supervisor (SIGHUP, which
        it forwards to all workers, this one included) and report this worker's reload. The
        workers reload their bundle directory from disk, so a new path cannot be given then."""
        if self.config.supervisor_pid is None:
            return self.reload(path)
        current = self.engine.source if self.engine else self.config.bundle
        if path and (current is None or os.path.realpath(path) != os.path.realpath(current)):
            raise ServerError(f"with --workers, every worker serves {current or 'the shipped bundle'}: update that "
                              f"directory and reload without a path (or send SIGHUP to the supervisor)")
        with self._sighup_reloads:
            seen = self._sighup_count
        os.kill(self.config.supervisor_pid, signal.SIGHUP)
        with self._sighup_reloads:
            if not self._sighup_reloads.wait_for(lambda: self._sighup_count > seen, timeout):
                raise ServerError(f"the workers' reload did not finish within {timeout:.0f} s")
            engine, previous, error = self._sighup_outcome
        if error is not None:
            raise error
        return engine, previous


class _CapturedHandlers:
    """Stands in for a server to capture what a generated ``add_*_to_server`` registers."""

    def __init__(self):
        self.service, self.handlers = "", {}

    def add_generic_rpc_handlers(self, handlers) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
        self.service, self.handlers = service, dict(handlers)


def _add_decision_service(servicer, server: grpc.Server) -> None:
    """``add_DecisionServiceServicer_to_server``, except that Decide's answer — the
    DecideResponse's wire bytes (:meth:`Engine.decide_response`) — is sent as it is."""
    captured = _CapturedHandlers()
    decision_pb2_grpc.add_DecisionServiceServicer_to_server(servicer, captured)
    handlers = captured.handlers
    handlers["Decide"] = handlers["Decide"]._replace(response_serializer=None)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(captured.service, handlers),))
    server.add_registered_method_handlers(captured.service, handlers)
