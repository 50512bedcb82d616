"""Server interceptors: bearer-token auth with roles, and telemetry (metrics + JSON logs).

Both wrap a method's handler once and cache it per method (the handler a method resolves
to never changes), so a call pays one Python function layer per interceptor. Only methods
the server serves are cached: a name that resolves to nothing (anyone may send any) is
answered UNIMPLEMENTED and forgotten, so the caches never outgrow the API. What a call
learned on the way (the client's name, the account id) travels in :data:`CALL`, a
thread-local: gRPC runs a unary call's interceptors and handler on one thread.

:class:`DrainInterceptor` comes first: once the server is draining (graceful stop), it
answers every new call to the postloan services UNAVAILABLE at admission, while the calls
admitted before finish.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import grpc

from . import status
from .auth import ANONYMOUS_ADMIN, TokenStore, bearer_token
from .logs import log, pii_values, scrub
from .metrics import Metrics

CALL = threading.local()

OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


def required_role(method: str) -> str | None:
    """The role a method needs: None for the standard services, ``admin`` for BundleAdmin."""
    if method.startswith(OPEN_PREFIXES):
        return None
    if method.startswith("/postloan.v1.BundleAdmin/"):
        return "admin"
    return "scoring"


def _wrap_unary(handler: grpc.RpcMethodHandler, wrap: Callable) -> grpc.RpcMethodHandler:
    if handler.unary_unary is not None:
        return handler._replace(unary_unary=wrap(handler.unary_unary))
    if handler.unary_stream is not None:
        return handler._replace(unary_stream=wrap(handler.unary_stream))
    return handler   # client-streaming methods: only the standard services have them


class _CachingInterceptor(grpc.ServerInterceptor):
    def __init__(self):
        self._cache: dict[str, grpc.RpcMethodHandler | None] = {}
        self._lock = threading.Lock()

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        try:
            return self._cache[method]
        except KeyError:
            pass
        handler = continuation(handler_call_details)
        if handler is None:          # not a method of this server: nothing to remember
            return None
        wrapped = self.wrap(method, handler)
        with self._lock:
            self._cache[method] = wrapped
        return wrapped

    def cached_methods(self) -> int:
        return len(self._cache)

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        raise NotImplementedError


SHUTTING_DOWN = "the server is shutting down; this call was not started: retry (another instance)"


class DrainInterceptor(grpc.ServerInterceptor):
    """Refuses new calls to the postloan services with UNAVAILABLE once ``draining`` is set
    — decided when gRPC admits the call, in arrival order, so a call admitted before the
    drain began runs to the end. UNAVAILABLE tells a client nothing was done and a retry is
    safe. Health and reflection keep answering (health says NOT_SERVING)."""

    def __init__(self, draining: threading.Event, metrics: Metrics):
        self.draining = draining
        self.metrics = metrics
        self.last_refusal = 0.0             # time.monotonic() of the last call refused
        self._refusals: dict[str, grpc.RpcMethodHandler] = {}

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        if not self.draining.is_set() or method.startswith(OPEN_PREFIXES):
            return continuation(handler_call_details)
        self.last_refusal = time.monotonic()
        refusal = self._refusals.get(method)
        if refusal is None:
            handler = continuation(handler_call_details)
            if handler is None:
                return None
            short = method.rsplit("/", 1)[-1] if method.startswith("/postloan.") else method.lstrip("/")
            observe = self.metrics.observe_call

            def refuse(request, context):
                observe(short, grpc.StatusCode.UNAVAILABLE.name, 0.0)
                status.abort_plain(context, grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
            refusal = _wrap_unary(handler, lambda _behavior: refuse)
            self._refusals[method] = refusal
        return refusal


class AuthInterceptor(_CachingInterceptor):
    """Refuses calls without a valid bearer token (UNAUTHENTICATED) or with too weak a role
    (PERMISSION_DENIED). With no token store, every caller is an anonymous admin.
    ``tokens`` may be replaced while serving (SIGHUP reloads the token file): each call reads
    the current store."""

    def __init__(self, tokens: TokenStore | None):
        super().__init__()
        self.tokens = tokens

    def wrap(self, method, handler):
        role = required_role(method)
        if role is None:
            return handler
        interceptor = self

        def wrap(behavior):
            def authorized(request, context):
                tokens = interceptor.tokens
                if tokens is None:
                    CALL.client = ANONYMOUS_ADMIN.name
                    return behavior(request, context)
                token = bearer_token(context.invocation_metadata())
                if token is None:
                    status.abort_plain(context, grpc.StatusCode.UNAUTHENTICATED,
                                       "missing bearer token: send metadata 'authorization: Bearer <token>'")
                principal = tokens.authenticate(token)
                if principal is None:
                    status.abort_plain(context, grpc.StatusCode.UNAUTHENTICATED, "unknown or revoked token")
                CALL.client = principal.name
                if not principal.may(role):
                    status.abort_plain(context, grpc.StatusCode.PERMISSION_DENIED,
                                       f"{method.rsplit('/', 1)[-1]} needs role {role!r}; "
                                       f"client {principal.name!r} has {principal.role!r}")
                return behavior(request, context)
            return authorized

        return _wrap_unary(handler, wrap)


class TelemetryInterceptor(_CachingInterceptor):
    """Counts calls by method and code, times them, and logs each failed call (and, with
    ``access_log``, each call) as one JSON line — names and codes only, never payloads."""

    def __init__(self, metrics: Metrics, access_log: bool = False):
        super().__init__()
        self.metrics = metrics
        self.access_log = access_log

    def wrap(self, method, handler):
        if handler.unary_unary is None:
            return handler   # streams (health Watch, reflection) are not counted
        behavior = handler.unary_unary
        short = method.rsplit("/", 1)[-1] if method.startswith("/postloan.") else method.lstrip("/")
        observe, access_log = self.metrics.observe_call, self.access_log

        def timed(request, context):
            CALL.client = CALL.account_id = None
            start = time.perf_counter()
            failed = True
            try:
                response = behavior(request, context)
                failed = False
                return response
            finally:
                elapsed = time.perf_counter() - start
                code = context.code()
                if code is None:
                    code = grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK
                observe(short, code.name, elapsed)
                if code is not grpc.StatusCode.OK:
                    details = context.details()
                    if isinstance(details, bytes):
                        details = details.decode("utf-8", "replace")
                    # A plugin's error message might quote a value: blank the request's personal data.
                    subject = getattr(request, "account", None) or getattr(request, "vehicle", None)
                    log(logging.WARNING, "rpc failed", method=short, code=code.name, ms=round(elapsed * 1e3, 3),
                        client=CALL.client, account_id=CALL.account_id,
                        message=scrub(details or "", pii_values(subject)) if subject is not None else details)
                elif access_log:
                    log(logging.INFO, "rpc", method=short, code="OK", ms=round(elapsed * 1e3, 3),
                        client=CALL.client, account_id=CALL.account_id)

        return handler._replace(unary_unary=timed)
