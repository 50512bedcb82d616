"""gRPC status codes with google.rpc details, the way grpc's own errors example does it.

Each ``abort_*`` ends the RPC (raises). Clients read the details with
``grpc_status.rpc_status.from_call(err)`` (``kernel.client`` turns them into
:class:`kernel.client.CallError` with ``.field`` / ``.violations``).

Status and details travel in the trailers, and grpcio clients drop trailers over 8 KB by
default (the call then fails RESOURCE_EXHAUSTED instead): the details list the first
:data:`MAX_VIOLATIONS` entries, each description at most :data:`MAX_DESCRIPTION`
characters, then one entry saying how many more there were; the message repeats the first
few only. Bounded so, any error fits in ≈ 4 KB of trailers.
"""
from __future__ import annotations

from typing import Iterable

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from ..errors import PostloanError


class FieldError(PostloanError, ValueError):
    """A request field is missing or invalid; ``field`` is its path, e.g. ``account.dpd``."""

    def __init__(self, field: str, message: str, more: list[tuple[str, str]] = ()):
        self.violations = [(field, message), *more]
        super().__init__("; ".join(f"{f}: {d}" for f, d in self.violations))
        self.field = field
        self.description = message


class QuotaError(PostloanError):
    """A request exceeds a server limit (batch rows, message size)."""

    def __init__(self, subject: str, message: str):
        super().__init__(message)
        self.subject = subject


MAX_VIOLATIONS = 10          # detail entries per error (the rest are counted)
MAX_DESCRIPTION = 240        # characters per detail entry
MAX_MESSAGE = 600            # characters of the status message
IN_MESSAGE = 3               # violations the message repeats
MORE = "(more)"              # the field / subject of the entry counting the violations left out


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def bounded(entries: list[tuple], first: int = 0) -> list[tuple]:
    """The first MAX_VIOLATIONS entries (tuples whose last item is the description), each
    description clipped, then — when some were left out — one entry counting them (``(more)``
    in column ``first``)."""
    shown = [(*e[:-1], _clip(e[-1], MAX_DESCRIPTION)) for e in entries[:MAX_VIOLATIONS]]
    hidden = len(entries) - len(shown)
    if hidden > 0:
        width = len(entries[0])
        filler = [""] * width
        filler[first] = MORE
        filler[-1] = f"{hidden} more not listed"
        shown.append(tuple(filler))
    return shown


def summary(violations: list[tuple[str, str]]) -> str:
    """The status message for field violations: the first few, and how many more."""
    text = "; ".join(f"{f}: {d}" for f, d in violations[:IN_MESSAGE])
    if len(violations) > IN_MESSAGE:
        text += f"; and {len(violations) - IN_MESSAGE} more (see the details)"
    return _clip(text, MAX_MESSAGE)


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str, *details) -> None:
    packed = []
    for detail in details:
        any_detail = any_pb2.Any()
        any_detail.Pack(detail)
        packed.append(any_detail)
    message = _clip(message, MAX_MESSAGE)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=packed)
    context.abort_with_status(rpc_status.to_status(status))


def abort_invalid(context, violations: Iterable[tuple[str, str]], message: str | None = None) -> None:
    """INVALID_ARGUMENT with a BadRequest naming each offending field."""
    violations = list(violations)
    bad = error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in bounded(violations)])
    _abort(context, grpc.StatusCode.INVALID_ARGUMENT, message or summary(violations), bad)


def abort_precondition(context, message: str, violations: Iterable[tuple[str, str, str]]) -> None:
    """FAILED_PRECONDITION with a PreconditionFailure: (type, subject, description) each."""
    failure = error_details_pb2.PreconditionFailure(violations=[
        error_details_pb2.PreconditionFailure.Violation(type=t, subject=_clip(s, MAX_DESCRIPTION), description=d)
        for t, s, d in bounded(list(violations), first=1)])
    _abort(context, grpc.StatusCode.FAILED_PRECONDITION, message, failure)


def abort_quota(context, subject: str, message: str) -> None:
    """RESOURCE_EXHAUSTED with a QuotaFailure naming the limit."""
    failure = error_details_pb2.QuotaFailure(violations=[
        error_details_pb2.QuotaFailure.Violation(subject=subject, description=message)])
    _abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, message, failure)


def abort_plain(context, code: grpc.StatusCode, message: str) -> None:
    _abort(context, code, message)
