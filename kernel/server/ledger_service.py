"""The Ledger servicer: IngestEvents, CheckContact, GetState over the server's ledger.

The ledger is the server's (``--store``), not the bundle's: it survives bundle reloads. The
gate judges with the serving engine's compliance policies."""
from __future__ import annotations

import datetime as dt
import time

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ..ledger import EventsError
from ..ledger.gate import GateError, check_contact_values
from ..ledger.ledger import instant_us
from . import convert, ipc, status
from ._proto.postloan.v1 import contract_pb2, ledger_pb2, ledger_pb2_grpc
from .interceptors import CALL
from .service import _Base, _handled
from .status import FieldError, QuotaError

UTC = dt.timezone.utc
#: rejected rows listed in an IngestEvents answer (all are counted)
MAX_REJECTIONS = 1000
_CHANNELS = {number: name for name, number in contract_pb2.ContactChannel.items()}
#: a CheckContact channel's number → the gate's name of it (the channel's name without its
#: prefix; 0, unset, has none)
_GATE_CHANNELS = {number: name.removeprefix("CONTACT_CHANNEL_") for number, name in _CHANNELS.items() if number}
_OUTCOMES = {name: contract_pb2.ComplianceOutcome.Value(f"COMPLIANCE_OUTCOME_{name}") for name in ("KEEP", "DEFER", "BLOCK")}


def _timestamp(value: dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    out = Timestamp()
    _set_instant(out, value)
    return out


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def _set_instant(field: Timestamp, value: dt.datetime) -> None:
    """Store the aware datetime ``value`` into the Timestamp ``field`` of a message being built
    (``Timestamp.FromDatetime``'s value, by integer arithmetic on the timedelta from the
    epoch: seconds floor, nanos in [0, 10⁹))."""
    delta = value - _EPOCH
    field.seconds = delta.days * 86_400 + delta.seconds
    field.nanos = delta.microseconds * 1_000


def _set_instant_us(field: Timestamp, us: int) -> None:
    """:func:`_set_instant` of an instant given as µs since the epoch (the gate's unit)."""
    seconds, micros = divmod(us, 1_000_000)
    field.seconds = seconds
    field.nanos = micros * 1_000


class LedgerServicer(_Base, ledger_pb2_grpc.LedgerServicer):
    def _ledger(self, context):
        ledger = self._server.ledger
        if ledger is None:
            status.abort_precondition(context, "this server has no ledger: start it with --store URL",
                                      [("LEDGER", "", "no --store")])
        return ledger

    @_handled
    def IngestEvents(self, request_iterator, context):
        from ..ledger import IngestResult
        from ..ledger.events import Rejection
        ledger = self._ledger(context)
        config = self._server.config
        limit = config.max_batch_rows
        total = IngestResult()
        offset = 0
        for message in request_iterator:
            if offset >= limit:
                raise QuotaError("max_batch_rows", f"more than {limit:,} events in one call; split them over calls")
            # validated in full before use, the rows and decoded bytes bounded as it is read
            table = ipc.read_table(message.events, "events", field="events", max_rows=limit - offset,
                                   max_bytes=config.max_batch_bytes)
            try:
                one = ledger.ingest(table)
            except EventsError as e:
                raise FieldError("events", f"rows {offset}–{offset + table.num_rows - 1}: {e}") from None
            total.accepted += one.accepted
            total.duplicate += one.duplicate
            total.rejected.extend(Rejection(r.row + offset, r.event_id, r.reason) for r in one.rejected)
            offset += table.num_rows
        return ledger_pb2.IngestEventsResponse(
            accepted=total.accepted, duplicate=total.duplicate, rejected=len(total.rejected),
            rejections=[ledger_pb2.RejectedEvent(row=r.row, event_id=r.event_id or "", reason=r.reason)
                        for r in total.rejected[:MAX_REJECTIONS]])

    @_handled
    def CheckContact(self, request, context):
        ledger = self._ledger(context)
        engine = self._engine(context)
        account_id = request.account_id
        if not account_id:
            raise FieldError("account_id", "required")
        CALL.account_id = account_id
        name = _GATE_CHANNELS.get(request.channel)
        if name is None:
            raise FieldError("channel", "required: one of " + ", ".join(n for k, n in _CHANNELS.items() if k))
        now = time.time_ns() // 1_000               # µs since the epoch: the gate's own unit
        at = instant_us(convert.timestamp_value(request.at, "at")) if request.HasField("at") else now
        try:
            outcome, reason, next_allowed, policy, reservation, expires, _ = check_contact_values(
                ledger, engine.pipeline.judge, account_id, name, at, now)
        except GateError as e:
            field, _, detail = str(e).partition(": ")
            if field in ("channel", "at", "account_id"):
                raise FieldError(field, detail) from None
            raise FieldError("request", str(e)) from None
        # only the fields the verdict sets (an unset string or Timestamp reads as empty)
        response = ledger_pb2.CheckContactResponse(outcome=_OUTCOMES[outcome])
        if reservation is not None:
            response.reservation_id = reservation
        if expires is not None:
            _set_instant_us(response.expires_at, expires)
        if reason:
            response.reason_code = reason
        if policy:
            response.policy = policy
        if next_allowed is not None:
            _set_instant_us(response.next_allowed_at, next_allowed)
        return response

    @_handled
    def GetState(self, request, context):
        ledger = self._ledger(context)
        if not request.account_id:
            raise FieldError("account_id", "required")
        CALL.account_id = request.account_id
        at = convert.timestamp_value(request.at, "at") if request.HasField("at") else dt.datetime.now(UTC)
        if not ledger.knows(request.account_id):
            # an empty state would read as "nothing happened": say the ledger does not know it
            status.abort_plain(context, grpc.StatusCode.NOT_FOUND,
                               f"account_id: the ledger has no registration, event, GPS position or "
                               f"reservation of account {request.account_id!r}")
        zone = (ledger.registered([request.account_id]).get(request.account_id) or {}).get("time_zone")
        table = ledger.state(at=at, accounts=[request.account_id], zones={request.account_id: zone} if zone else None)
        row = table.to_pylist()[0]
        response = ledger_pb2.GetStateResponse(account_id=request.account_id, at=_timestamp(at))
        for name, value in row.items():
            if name in ("account_id", "state_at"):
                continue
            convert.set_value(response.state[name], value)
        return response
