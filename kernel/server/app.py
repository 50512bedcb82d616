"""The server: lifecycle, health, reflection, TLS, limits, hot reload and graceful shutdown.

    server = DecisionServer(ServerConfig(bundle=None, port=0))   # the shipped bundle, a free port
    port = server.start()          # serving health (NOT_SERVING) and reflection at once
    server.wait_ready()            # the kernel is compiled and warm: health SERVING
    ...
    server.stop()                  # drain: health NOT_SERVING, new calls UNAVAILABLE, admitted ones finish

The bundle compiles on a background thread, so health answers (NOT_SERVING) from the first
moment; ``ReloadBundle`` / SIGHUP compile a new bundle on the reload thread and swap one
reference, so calls in flight finish on the engine they started with. SIGHUP also reloads
the token file (a revoked token stops working without a restart).
"""
from __future__ import annotations

import concurrent.futures as cf
import functools
import ipaddress
import logging
import os
import signal
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ..errors import PostloanError
from . import tls
from ._proto.postloan.v1 import decision_pb2, decision_pb2_grpc, ledger_pb2, ledger_pb2_grpc
from .auth import TokenFileError, TokenStore
from .engine import Engine, load_engine
from .interceptors import CallInterceptor
from .logs import blank_quoted, log
from .metrics import Metrics
from .status import FieldError

DECISION_SERVICE = decision_pb2.DESCRIPTOR.services_by_name["DecisionService"].full_name
ADMIN_SERVICE = decision_pb2.DESCRIPTOR.services_by_name["BundleAdmin"].full_name
LEDGER_SERVICE = ledger_pb2.DESCRIPTOR.services_by_name["Ledger"].full_name
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
MiB = 1 << 20
DRAIN_QUIET_SECONDS = 1.0       # a drain ends this long after the last call admitted or refused


class ServerError(PostloanError):
    """The server cannot start: the address is taken, a TLS file is bad, the bundle fails."""


class ReloadInProgress(PostloanError):
    """Another reload is compiling; try again when it is done."""


class BundleRejected(PostloanError):
    """A bundle could not be read or compiled; the current one keeps serving. The message
    names files and positions, never their content."""

    def __init__(self, message: str, diagnostics=()):
        super().__init__(message)
        self.diagnostics = list(diagnostics)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def unsafe_settings(config: "ServerConfig") -> list[str]:
    """What about ``config`` exposes the service or its secrets (logged as warnings at
    start-up; docs/grpc-guide.md, "Security")."""
    found = []
    if not is_loopback(config.host) and not config.tls_cert:
        found.append(f"serving {config.host} without TLS: bearer tokens and account data cross the network in "
                     f"clear text (use --tls-cert and --tls-key)")
    if not config.token_file and (config.allow_unauthenticated or not is_loopback(config.host)):
        found.append(f"serving {config.host} without --token-file (--allow-unauthenticated): anyone who can reach "
                     f"the port may call every method, BundleAdmin included")
    for path, what, mask in ((config.tls_key, "TLS private key", stat.S_IROTH | stat.S_IWOTH),
                             (config.token_file, "token file", stat.S_IWOTH)):
        try:
            mode = os.stat(path).st_mode if path else 0
        except OSError:
            continue                  # a missing file is reported by whoever reads it
        if mode & mask:
            found.append(f"the {what} {path} is {'readable' if mask & stat.S_IROTH else 'writable'} by every "
                         f"user of this machine (chmod 600)")
    if config.metrics_port is not None and not is_loopback(config.metrics_host):
        found.append(f"metrics are served on {config.metrics_host}:{config.metrics_port} without authentication")
    return found


def _wait_in_slices(event: threading.Event, timeout: float | None) -> bool:
    """``event.wait(timeout)`` in slices of a quarter second. A signal (SIGTERM) that Linux
    delivers to one of gRPC's threads only sets a flag: its Python handler runs when the
    main thread next runs bytecode, which a single untimed wait would postpone forever."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
        if event.wait(max(left, 0.0)):
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False


class _TrackedPool(cf.ThreadPoolExecutor):
    """The RPC thread pool, remembering the calls it holds (running or queued), so that a
    graceful stop waits for exactly the calls admitted before it began."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._held: set[cf.Future] = set()
        self._held_lock = threading.Lock()

    def submit(self, fn, /, *args, **kwargs):
        future = super().submit(fn, *args, **kwargs)
        with self._held_lock:
            self._held.add(future)
        future.add_done_callback(self._release)         # at once if already done
        return future

    def _release(self, future) -> None:
        with self._held_lock:
            self._held.discard(future)

    def held(self) -> set[cf.Future]:
        with self._held_lock:
            return set(self._held)


@dataclass
class ServerConfig:
    bundle: str | None = None            # bundle directory; None: the shipped bundle
    host: str = "127.0.0.1"
    port: int = 50051                    # 0: any free port
    threads: int = 16                    # RPC handler threads
    max_concurrent_rpcs: int = 512       # beyond: RESOURCE_EXHAUSTED
    max_message_bytes: int = 64 * MiB    # requests and responses (DecideBatch)
    max_batch_rows: int = 200_000        # beyond: RESOURCE_EXHAUSTED
    max_batch_bytes: int = 256 * MiB     # DecideBatch's stream once decoded; beyond: RESOURCE_EXHAUSTED
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None     # set: mutual TLS
    token_file: str | None = None        # None: no authentication (loopback only)
    allow_unauthenticated: bool = False  # a non-loopback host without tokens (warned about)
    bundle_roots: list = field(default_factory=list)   # ReloadBundle paths must lie inside; []: the bundle's parent
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
    config: str | None = None            # the configuration file (TOML); None: $POSTLOAN_CONFIG, else the defaults
    extra_options: list = field(default_factory=list)     # grpc server options; they override the above


class DecisionServer:
    def __init__(self, config: ServerConfig, *, loader: Callable[..., Engine] | None = None):
        self.config = config
        self._loader = loader or load_engine
        self.metrics = Metrics()
        self.health = health.HealthServicer(experimental_non_blocking=True)
        for service in ("", DECISION_SERVICE, ADMIN_SERVICE):
            self.health.set(service, NOT_SERVING)
        self._draining = threading.Event()
        # drain, auth and telemetry: one interceptor (its ``tokens`` is what SIGHUP replaces)
        self.interceptor = CallInterceptor(self.metrics, self._draining,
                                           TokenStore.load(config.token_file) if config.token_file else None,
                                           config.access_log)
        self._pool: _TrackedPool | None = None
        self.engine: Engine | None = None       # swapped atomically (one reference assignment)
        self.ledger = None                      # the server's, not the bundle's: it survives reloads
        if config.store:
            from ..ledger import Ledger
            from ..plugins import load_config
            self.ledger = Ledger(config.store, load_config(config.config))
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
            *c.extra_options,          # first: gRPC takes the first value of an option given twice
            ("grpc.max_receive_message_length", c.max_message_bytes),
            ("grpc.max_send_message_length", c.max_message_bytes),
            ("grpc.so_reuseport", 1 if c.reuse_port else 0),
        ]
        self._pool = _TrackedPool(c.threads, thread_name_prefix="postloan-rpc")
        server = grpc.server(
            self._pool,
            interceptors=[self.interceptor],
            options=options,
            maximum_concurrent_rpcs=c.max_concurrent_rpcs,
        )
        _add_service(decision_pb2_grpc.add_DecisionServiceServicer_to_server, DecisionServicer(self), server,
                     raw_responses=("Decide",), raw_requests=("Decide",))
        _add_service(decision_pb2_grpc.add_BundleAdminServicer_to_server, BundleAdminServicer(self), server)
        _add_service(ledger_pb2_grpc.add_LedgerServicer_to_server, LedgerServicer(self), server)
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
        if c.supervisor_pid is None:           # (with --workers, the supervisor warns once)
            for warning in unsafe_settings(c):
                log(logging.WARNING, "unsafe setting", warning=warning)
        if not c.listen_when_ready:
            self._compiler.submit(self._initial_load)
        return port

    @property
    def tokens(self) -> TokenStore | None:
        return self.interceptor.tokens

    def _initial_load(self) -> None:
        try:
            self._install(self._loader(self.config.bundle, **self._audit_options()))
        except BaseException as e:   # noqa: BLE001 — reported through wait_ready() and the log
            self.load_error = e
            log(logging.ERROR, "bundle failed to load", bundle=self.config.bundle or "(shipped)",
                error=blank_quoted(str(e)), exc_info=not isinstance(e, PostloanError))
        finally:
            self._ready.set()

    def _audit_options(self) -> dict:
        c = self.config
        options = {"audit_path": c.audit_path, "audit_sync": c.audit_sync, "audit_interval_ms": c.audit_interval_ms,
                   "ledger": self.ledger}
        if c.config is not None:          # (a custom loader without a config parameter keeps working)
            options["config"] = c.config
        return options

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
        if not _wait_in_slices(self._ready, timeout):
            raise ServerError(f"the bundle was not ready within {timeout} s")
        if self.engine is None:
            error = self.load_error
            raise error if isinstance(error, PostloanError) else ServerError(f"the bundle failed to load: {error}")
        return self.engine

    def bundle_roots(self) -> list[Path]:
        """Where reloaded bundles may lie (their files too, symlinks resolved):
        ``bundle_roots`` (``--bundle-root``), else the served bundle's parent folder (the
        shipped bundle: the folder holding its rulesets/ and models/)."""
        from ..bundle import default_bundle_paths

        if self.config.bundle_roots:
            return [Path(os.path.realpath(r)) for r in self.config.bundle_roots]
        if self.config.bundle:
            return [Path(os.path.realpath(self.config.bundle)).parent]
        return sorted({Path(os.path.realpath(p)).parent for p in default_bundle_paths()})

    def _check_bundle_path(self, target: str) -> None:
        """Refuse (FieldError on ``path``) a bundle outside the roots or with a file that
        resolves outside them; read nothing of the files."""
        from ..bundle import bundle_files

        if "\x00" in target:
            raise FieldError("path", "contains a NUL character")
        roots = self.bundle_roots()

        def inside(p: Path) -> bool:
            return any(p == root or p.is_relative_to(root) for root in roots)

        where = ", ".join(str(r) for r in roots)
        real = Path(os.path.realpath(target))
        if not inside(real):
            raise FieldError("path", f"{target} is outside the server's bundle roots ({where}; --bundle-root)")
        try:
            files = bundle_files(target)
        except OSError as e:
            raise BundleRejected(f"{target}: cannot list the bundle: {e.strerror or type(e).__name__}") from None
        for f in files:                 # bundle_files resolves symlinks: where each file really is
            if not inside(Path(f)):
                raise FieldError("path", f"a file of {target} resolves outside the server's bundle roots ({where}): "
                                         f"bundles may not link out of them")

    def reload(self, path: str | None = None) -> tuple[Engine, Engine | None]:
        """Compile ``path`` (default: the current bundle's directory) off the serving path and
        swap it in. Raises the compile error and keeps the current bundle if it fails. A path
        outside :meth:`bundle_roots`, or a bundle with a file resolving outside them, is
        refused before anything is read (FieldError)."""
        if not self._reload_lock.acquire(blocking=False):
            raise ReloadInProgress("another bundle reload is in progress; retry when it finishes")
        try:
            current = self.engine
            target = path or (current.source if current else self.config.bundle)
            try:
                if target is not None:          # None: the shipped bundle, part of the installation
                    self._check_bundle_path(str(target))
                engine = self._compiler.submit(self._loader, target, **self._audit_options()).result()
            except PostloanError:
                self.metrics.reloads.labels("rejected").inc()
                raise
            except Exception as e:         # noqa: BLE001 — unreadable files, /proc…: a rejection, not a bug
                self.metrics.reloads.labels("rejected").inc()
                detail = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
                raise BundleRejected(f"{target}: cannot load the bundle: {detail}") from None
            previous = self._install(engine)
            self.metrics.reloads.labels("ok").inc()
            return engine, previous
        finally:
            self._reload_lock.release()

    def stop(self, grace: float | None = None) -> None:
        """Graceful shutdown (a drain): health turns NOT_SERVING and keeps answering; new calls
        to the postloan services are refused UNAVAILABLE (nothing done: safe to retry); every
        call admitted before finishes within ``grace`` seconds (then the rest are cancelled);
        then the server stops.

        gRPC's own ``Server.stop(grace)`` is called only once the admitted calls are done: it
        cancels (CANCELLED) calls that reached the server but were not yet handed to a
        thread, and answers health checks UNAVAILABLE."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        grace = self.config.grace_seconds if grace is None else grace
        deadline = time.monotonic() + grace
        self.health.enter_graceful_shutdown()
        self._draining.set()
        admitted = self._pool.held() if self._pool is not None else set()
        log(logging.INFO, "shutting down", grace_seconds=grace, calls_in_flight=len(admitted))
        if self._server is not None:
            _done, unfinished = cf.wait(admitted, timeout=grace)
            if unfinished:
                log(logging.WARNING, "grace expired; cancelling calls still in flight", calls=len(unfinished))
            # A call's thread is done once its response is handed to the transport, not once the
            # client has read it: closing the connection at once can reset it under a large
            # response still in flight (the client sees UNAVAILABLE). And calls that reached
            # gRPC before the drain but were still queued in its transport are refused as they
            # come up; gRPC's stop would cancel them instead. Stop once neither has happened for
            # a moment (or the grace is over).
            admitted_done = time.monotonic() if admitted else 0.0
            while time.monotonic() < deadline and time.monotonic() - max(
                    admitted_done, self.interceptor.last_refusal) < DRAIN_QUIET_SECONDS:
                time.sleep(0.02)
            self._server.stop(max(0.0, deadline - time.monotonic())).wait()
        if self.engine is not None:               # "interval" audit records: on disk before the process ends
            try:
                self.engine.pipeline.audit.flush()
            except (OSError, PostloanError) as e:
                log(logging.ERROR, "audit log sync failed on shutdown", error=getattr(e, "strerror", None) or str(e))
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
        self._compiler.shutdown(wait=False, cancel_futures=True)
        if self.ledger is not None:
            self.ledger.close()
        log(logging.INFO, "stopped")
        self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :meth:`stop` has finished; False on timeout."""
        return _wait_in_slices(self._done, timeout)

    def install_signal_handlers(self) -> None:
        """SIGTERM / SIGINT: graceful shutdown. SIGHUP: reload the token file and the bundle
        from disk."""
        def terminate(signum, _frame):
            threading.Thread(target=self.stop, name="postloan-stop", daemon=True).start()

        def hangup(signum, _frame):
            self.reload_tokens()
            threading.Thread(target=self._reload_logged, name="postloan-sighup", daemon=True).start()

        signal.signal(signal.SIGTERM, terminate)
        signal.signal(signal.SIGINT, terminate)
        signal.signal(signal.SIGHUP, hangup)

    def reload_tokens(self) -> bool:
        """Read the token file again (SIGHUP): tokens added or removed take effect for the next
        call. A file that no longer parses is logged and the current tokens stay. False when
        nothing was reloaded."""
        path = self.config.token_file
        if not path:
            return False
        try:
            store = TokenStore.load(path)
        except TokenFileError as e:
            log(logging.ERROR, "token file rejected; the current tokens stay", error=str(e))
            return False
        self.interceptor.tokens = store
        log(logging.INFO, "tokens reloaded", token_file=path, clients=len(store))
        return True

    def _reload_logged(self) -> None:
        outcome: tuple = (None, None, None)
        try:
            engine, previous = self.reload()
            outcome = (engine, previous, None)
            log(logging.INFO, "reloaded on SIGHUP", bundle_hash=engine.bundle_hash,
                previous_bundle_hash=previous.bundle_hash if previous else None)
        except BaseException as e:  # noqa: BLE001 — the old bundle keeps serving
            outcome = (None, None, e)
            log(logging.ERROR, "reload on SIGHUP rejected; the current bundle keeps serving",
                error=blank_quoted(str(e)), exc_info=not isinstance(e, PostloanError))
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


class UndecodableRequest:
    """Stands for a request whose bytes protobuf could not parse. grpcio answers a request
    its deserializer fails on with INTERNAL; bad input is INVALID_ARGUMENT, so the servicers
    receive this instead and say so (``service._handled``)."""

    def __init__(self, message: str, error: str):
        self.message, self.error = message, error


def _lenient(deserializer, message: str):
    def deserialize(data: bytes):
        try:
            return deserializer(data)
        except Exception as e:         # noqa: BLE001 — protobuf's DecodeError and whatever else parsing raises
            return UndecodableRequest(message, type(e).__name__)
    return deserialize


class RawRequest:
    """A request's wire bytes as gRPC received them (the methods of ``raw_requests``): the
    servicer reads what it can straight from them and parses them only when it must
    (:meth:`parsed`)."""

    __slots__ = ("data", "_parse", "_message", "_parsed")

    def __init__(self, data: bytes, parse, message: str):
        self.data, self._parse, self._message, self._parsed = data, parse, message, None

    def parsed(self):
        """The request message, or :class:`UndecodableRequest` (what a lenient deserializer
        gives), parsed once."""
        if self._parsed is None:
            self._parsed = _lenient(self._parse, self._message)(self.data)
        return self._parsed

    @property
    def account(self):
        """The request's Account, if it parses (the error log scrubs its values)."""
        return getattr(self.parsed(), "account", None)


def _add_service(add_to_server, servicer, server: grpc.Server, raw_responses: tuple[str, ...] = (),
                 raw_requests: tuple[str, ...] = ()) -> None:
    """A generated ``add_*_to_server``, except that each request is parsed leniently
    (:class:`UndecodableRequest`), the requests of ``raw_requests`` are handed over as their
    bytes (:class:`RawRequest`: Decide's, read straight into the kernel when it can) and the
    answers of ``raw_responses`` — already wire bytes (Decide's, :meth:`Engine.decide_response`)
    — are sent as they are."""
    captured = _CapturedHandlers()
    add_to_server(servicer, captured)
    service = descriptor_pool.Default().FindServiceByName(captured.service)
    handlers = {}
    for name, handler in captured.handlers.items():
        message = service.methods_by_name[name].input_type.full_name
        parse = handler.request_deserializer
        if name in raw_requests:
            parse = functools.partial(RawRequest, parse=parse, message=message)
        handler = handler._replace(request_deserializer=_lenient(parse, message))
        if name in raw_responses:
            handler = handler._replace(response_serializer=None)
        handlers[name] = handler
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(captured.service, handlers),))
    server.add_registered_method_handlers(captured.service, handlers)
