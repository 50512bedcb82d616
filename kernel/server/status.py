"""gRPC status codes with google.rpc details, the way grpc's own errors example does it.

Each ``abort_*`` ends the RPC (raises). Clients read the details with
``grpc_status.rpc_status.from_call(err)`` (``kernel.client`` turns them into
:class:`kernel.client.CallError` with ``.field`` / ``.violations``).
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


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str, *details) -> None:
    packed = []
    for detail in details:
        any_detail = any_pb2.Any()
        any_detail.Pack(detail)
        packed.append(any_detail)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=packed)
    context.abort_with_status(rpc_status.to_status(status))


def abort_invalid(context, violations: Iterable[tuple[str, str]], message: str | None = None) -> None:
    """INVALID_ARGUMENT with a BadRequest naming each offending field."""
    violations = list(violations)
    bad = error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in violations])
    _abort(context, grpc.StatusCode.INVALID_ARGUMENT,
           message or "; ".join(f"{f}: {d}" for f, d in violations), bad)


def abort_precondition(context, message: str, violations: Iterable[tuple[str, str, str]]) -> None:
    """FAILED_PRECONDITION with a PreconditionFailure: (type, subject, description) each."""
    failure = error_details_pb2.PreconditionFailure(violations=[
        error_details_pb2.PreconditionFailure.Violation(type=t, subject=s, description=d)
        for t, s, d in violations])
    _abort(context, grpc.StatusCode.FAILED_PRECONDITION, message, failure)


def abort_quota(context, subject: str, message: str) -> None:
    """RESOURCE_EXHAUSTED with a QuotaFailure naming the limit."""
    failure = error_details_pb2.QuotaFailure(violations=[
        error_details_pb2.QuotaFailure.Violation(subject=subject, description=message)])
    _abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, message, failure)


def abort_plain(context, code: grpc.StatusCode, message: str) -> None:
    _abort(context, code, message)
