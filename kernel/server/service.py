"""The servicers: DecisionService and BundleAdmin. Business logic lives in the kernel and
the pipeline; this module validates requests, converts messages and maps errors to codes."""
from __future__ import annotations

import datetime as dt
import functools
import logging

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ..errors import PostloanError
from ..rules.columns import InputError
from ..schema import SchemaError, columns
from . import convert, ipc, status
from .app import RawRequest, UndecodableRequest
from ._proto.postloan.v1 import decision_pb2, decision_pb2_grpc
from .engine import DeadlineExceeded, Engine, precondition_violations
from .interceptors import CALL
from .logs import blank_quoted, log, pii_values, scrub
from .status import FieldError, QuotaError

ACCOUNT_ID_LIMIT = columns()["account_id"].length_limit

UTC = dt.timezone.utc


def _handled(method):
    """Map exceptions to status codes; log unexpected ones without personal data."""
    name = method.__name__

    @functools.wraps(method)
    def call(self, request, context):
        try:
            if isinstance(request, UndecodableRequest):
                raise _undecodable(request)
            if hasattr(request, "__next__"):      # a client stream: each message checked as it comes
                request = _decodable(request)
            return method(self, request, context)
        except FieldError as e:
            status.abort_invalid(context, e.violations)
        except SchemaError as e:
            prefix = "accounts." if name == "DecideBatch" else "account."
            violations = [(prefix + v.field, v.message) for v in e.violations] or [("request", str(e))]
            status.abort_invalid(context, violations, message=str(e))
        except InputError as e:
            column = e.column or "request"
            status.abort_invalid(context, [(f"accounts.{column}" if name == "DecideBatch" else f"account.{column}", str(e))])
        except QuotaError as e:
            status.abort_quota(context, e.subject, str(e))
        except DeadlineExceeded as e:
            status.abort_plain(context, grpc.StatusCode.DEADLINE_EXCEEDED, str(e))
        except PostloanError as e:
            status.abort_precondition(context, str(e), precondition_violations(e))
        except Exception as e:  # noqa: BLE001 — a bug: report INTERNAL, log the stack, no PII
            if context.code() is not None:    # already aborted on purpose
                raise
            account = getattr(request, "account", None) or getattr(request, "vehicle", None)
            # the exception's own words may quote a request's value: personal data scrubbed, quotes blanked
            log(logging.ERROR, "internal error", method=name, account_id=CALL.account_id,
                error=blank_quoted(scrub(str(e), pii_values(account))), exc_info=True)
            status.abort_plain(context, grpc.StatusCode.INTERNAL, f"internal error in {name}; see the server log")
    return call


def _undecodable(request: UndecodableRequest, which: str = "") -> FieldError:
    """The error of a message protobuf cannot read; ``which``: where it stands (a stream's)."""
    return FieldError("request", f"{which}not a valid {request.message} message (protobuf: {request.error})")


def _decodable(messages):
    """The messages of a client stream; FieldError at the first one protobuf cannot read."""
    for i, message in enumerate(messages):
        if isinstance(message, UndecodableRequest):
            raise _undecodable(message, f"message {i}: ")
        yield message


def _parsed(request):
    """A request handed over as its bytes (:class:`RawRequest`) parsed — FieldError when it
    does not — or the message as it came."""
    if type(request) is RawRequest:
        request = request.parsed()
        if isinstance(request, UndecodableRequest):
            raise _undecodable(request)
    return request


class _Base:
    def __init__(self, server):
        self._server = server

    def _engine(self, context) -> Engine:
        engine = self._server.engine
        if engine is None:
            status.abort_plain(context, grpc.StatusCode.UNAVAILABLE,
                               "no bundle is serving yet (compiling, or it failed to load: see GetBundle / the log)")
        return engine

    @staticmethod
    def _check_deadline(context, method: str) -> None:
        if context.time_remaining() <= 0:
            status.abort_plain(context, grpc.StatusCode.DEADLINE_EXCEEDED, f"{method}: the deadline passed before work began")

    @staticmethod
    def _as_of(request) -> dt.date:
        return convert.date_value(request.as_of, "as_of") if request.HasField("as_of") else convert.utc_today()

    @staticmethod
    def _now(request) -> dt.datetime:
        return convert.timestamp_value(request.now, "now") if request.HasField("now") else dt.datetime.now(UTC)


def _note_account(account) -> None:
    """The account id the call's log line names — only one the contract allows (no megabyte
    of junk in the log)."""
    _note_account_id(account.account_id)


def _note_account_id(account_id: str) -> None:
    CALL.account_id = account_id if 0 < len(account_id) <= ACCOUNT_ID_LIMIT else None


class DecisionServicer(_Base, decision_pb2_grpc.DecisionServiceServicer):
    @_handled
    def Decide(self, request, context):
        if type(request) is RawRequest:
            # decision-only: the request's bytes to the response's in one compiled call, when it can
            engine = self._server.engine
            answer = engine.decide_request(request.data, _note_account_id) if engine is not None else None
            if answer is not None:
                return self._counted(*answer)
            request = _parsed(request)
        engine = self._engine(context)
        if not request.HasField("account"):
            raise FieldError("account", "required")
        account = request.account
        _note_account(account)
        as_of, now = self._as_of(request), self._now(request)
        with_actions = request.actions if request.HasField("actions") else True
        return self._counted(*engine.decide_account(account, as_of, now, with_actions))

    def _counted(self, response: bytes, tier: str | None, conflicts: dict) -> bytes:
        self._server.metrics.count_decisions(tier or "NONE")
        if conflicts:
            self._server.metrics.count_unique_conflicts(conflicts)
        return response          # DecideResponse's wire bytes: the server sends them as they are

    @_handled
    def DecideBatch(self, request, context):
        engine = self._engine(context)
        self._check_deadline(context, "DecideBatch")
        config = self._server.config
        as_of, now = self._as_of(request), self._now(request)
        table = ipc.read_book(request.accounts, field="accounts", max_rows=config.max_batch_rows,
                              max_bytes=config.max_batch_bytes)
        answer = engine.decide_batch(table, as_of, now, request.with_actions, time_remaining=context.time_remaining,
                                     max_response_bytes=config.max_message_bytes)
        decisions = answer.decisions
        if answer.unique_conflicts:
            self._server.metrics.count_unique_conflicts(answer.unique_conflicts)
        if "collection_tier.tier" in decisions.schema.names:
            for item in decisions.column("collection_tier.tier").value_counts().to_pylist():
                self._server.metrics.count_decisions(item["values"] or "NONE", item["counts"])
        return decision_pb2.DecideBatchResponse(decisions=answer.decisions_ipc, actions=answer.actions_ipc,
                                                accounts=decisions.num_rows, bundle_hash=engine.bundle_hash)

    @_handled
    def Explain(self, request, context):
        engine = self._engine(context)
        if not request.HasField("account"):
            raise FieldError("account", "required")
        _note_account(request.account)
        as_of = self._as_of(request)
        return engine.explain_message(engine.columns(request.account), as_of)

    @_handled
    def Valuate(self, request, context):
        engine = self._engine(context)
        if not request.HasField("vehicle"):
            raise FieldError("vehicle", "required")
        CALL.account_id = None
        return engine.valuate_message(request, self._as_of(request), dt.datetime.now(UTC))


class BundleAdminServicer(_Base, decision_pb2_grpc.BundleAdminServicer):
    @_handled
    def GetBundle(self, request, context):
        engine = self._server.engine
        if engine is None:
            error = self._server.load_error
            status.abort_plain(context, grpc.StatusCode.UNAVAILABLE,
                               f"no bundle is serving: {blank_quoted(str(error))}" if error
                               else "the bundle is still compiling")
        return bundle_info(engine)

    @_handled
    def ReloadBundle(self, request, context):
        from .app import ReloadInProgress

        try:
            engine, previous = self._server.reload_everywhere(request.path or None,
                                                              timeout=max(context.time_remaining(), 1.0))
        except ReloadInProgress as e:
            status.abort_plain(context, grpc.StatusCode.ABORTED, str(e))
        except FieldError:
            raise                     # a path outside the bundle roots: INVALID_ARGUMENT
        except PostloanError as e:
            status.abort_precondition(
                context, f"bundle rejected, the current one keeps serving: {blank_quoted(str(e))} "
                         f"(`postloan check` on the server shows the full messages)",
                [(kind, subject, blank_quoted(text)) for kind, subject, text in precondition_violations(e)])
        return decision_pb2.ReloadBundleResponse(
            bundle=bundle_info(engine), previous_bundle_hash=previous.bundle_hash if previous else "",
            changed=previous is None or previous.bundle_hash != engine.bundle_hash,
            compile_seconds=engine.compile_seconds)


def bundle_info(engine: Engine) -> decision_pb2.BundleInfo:
    loaded_at = Timestamp()
    loaded_at.FromDatetime(engine.loaded_at)
    return decision_pb2.BundleInfo(
        bundle_hash=engine.bundle_hash, versions=engine.versions, path=engine.path, loaded_at=loaded_at,
        inputs=list(engine.inputs), outputs=[decision_pb2.OutputInfo(name=n, type=t) for n, t in engine.outputs])
