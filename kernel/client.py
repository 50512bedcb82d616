"""Python client of the postloan gRPC service.

    from kernel.client import Client
    with Client("127.0.0.1:50051", token=os.environ["POSTLOAN_TOKEN"]) as client:
        row = client.decide(record, as_of=datetime.date(2026, 11, 28))
        row["collection_tier.tier"], row["actions"]
        decisions = client.decide_batch(book)          # pyarrow.Table, row for row

``record`` is a dict of book columns (``kernel.schema.columns("book")``): dates as
``datetime.date`` or ISO strings, instants as ``datetime``, enumerations as their member
names, nulls as None. Failed calls raise :class:`CallError` carrying the status code and,
for INVALID_ARGUMENT, the offending ``field`` — and nothing else: a record the client
cannot encode is a CallError INVALID_ARGUMENT too, raised before anything is sent.

Load is spread over several connections: a Client opens ``channels`` channels (default
:data:`CHANNELS`), each with its own connection (``grpc.use_local_subchannel_pool``: grpcio
would otherwise share one connection between all channels to a target), and takes them in
turn. With ``postloan serve --workers N`` the Linux kernel spreads connections, not calls,
over the workers, so one connection would keep one worker busy and leave the others idle.
"""
from __future__ import annotations

import datetime as dt
import itertools
import threading
from typing import Any

import grpc
import pyarrow as pa

from .errors import PostloanError
from .server import convert
from .server._proto.postloan.v1 import decision_pb2, decision_pb2_grpc, ledger_pb2, ledger_pb2_grpc
from .server.tls import channel_credentials

MiB = 1 << 20
CHANNELS = 4                  # connections per Client: ≥ 2 per server worker spreads load well
MAX_METADATA_BYTES = 64 << 10  # trailers the client accepts (grpcio's default, 8 KB, drops larger error details)
DECISIONS, ADMIN, LEDGER = range(3)   # a channel's stubs, by service


class CallError(PostloanError):
    """A call failed. ``code`` is the grpc.StatusCode; ``field`` names the offending request
    field (INVALID_ARGUMENT); ``violations`` lists the detail entries (field/subject, description)."""

    def __init__(self, code: grpc.StatusCode, message: str, field: str | None = None,
                 violations: list[tuple[str, str]] | None = None):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.field = field
        self.violations = violations or []


def _call_error(error: grpc.RpcError) -> CallError:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    violations: list[tuple[str, str]] = []
    try:
        status = rpc_status.from_call(error) if hasattr(error, "trailing_metadata") else None
    except (ValueError, TypeError, AttributeError):
        # details that do not match the status (a proxy rewrote one of them): the code and message stand
        status = None
    for detail in status.details if status else ():
        for cls, items, key in ((error_details_pb2.BadRequest, "field_violations", "field"),
                                (error_details_pb2.PreconditionFailure, "violations", "subject"),
                                (error_details_pb2.QuotaFailure, "violations", "subject")):
            if detail.Is(cls.DESCRIPTOR):
                info = cls()
                if detail.Unpack(info):
                    violations.extend((getattr(v, key), v.description) for v in getattr(info, items))
    code = error.code() if isinstance(error.code(), grpc.StatusCode) else grpc.StatusCode.UNKNOWN
    bad_field = violations[0][0] if code is grpc.StatusCode.INVALID_ARGUMENT and violations else None
    return CallError(code, error.details() or "", bad_field, violations)


def _local_error(error: Exception, prefix: str) -> CallError:
    """A request the client cannot encode: INVALID_ARGUMENT, as the server would answer."""
    field = getattr(error, "field", None)
    if field is None:
        return CallError(grpc.StatusCode.INVALID_ARGUMENT, str(error))
    return CallError(grpc.StatusCode.INVALID_ARGUMENT, f"{prefix}{field}: {getattr(error, 'description', error)}",
                     prefix + field, [(prefix + field, getattr(error, "description", str(error)))])


class Client:
    """A connection to ``postloan serve``.

    ``token``: bearer token (role scoring for decisions, admin for bundle calls).
    ``tls``: False for plaintext (loopback), True for TLS; ``ca`` the CA certificate to trust
    (PEM path or bytes; default the system roots); ``cert`` / ``key`` the client's
    certificate and key for mutual TLS. ``timeout``: default deadline of each call, seconds.
    ``channels``: connections to open and use in turn (see the module's docstring; 1 gives
    grpcio's default of one connection shared with every other channel to the target).
    """

    def __init__(self, target: str = "127.0.0.1:50051", token: str | None = None, *, tls: bool = False,
                 ca=None, cert=None, key=None, server_name: str | None = None, timeout: float = 30.0,
                 max_message_bytes: int = 64 * MiB, options: list | None = None, channels: int = CHANNELS):
        if channels < 1:
            raise ValueError(f"channels must be at least 1, got {channels}")
        opts = [("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes),
                ("grpc.max_metadata_size", MAX_METADATA_BYTES), *(options or [])]
        if channels > 1:
            opts.append(("grpc.use_local_subchannel_pool", 1))
        if server_name:
            opts.append(("grpc.ssl_target_name_override", server_name))
        credentials = channel_credentials(ca, cert, key) if (tls or ca or cert) else None
        self._channels = [grpc.secure_channel(target, credentials, options=opts) if credentials is not None
                          else grpc.insecure_channel(target, options=opts) for _ in range(channels)]
        self._channel = self._channels[0]
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        self.timeout = timeout
        self._stubs = [(decision_pb2_grpc.DecisionServiceStub(c), decision_pb2_grpc.BundleAdminStub(c),
                        ledger_pb2_grpc.LedgerStub(c)) for c in self._channels]
        self._turn = itertools.cycle(range(channels))
        self._turn_lock = threading.Lock()
        self._decisions, self._admin, self._ledger = self._stubs[0]

    # -- plumbing ---------------------------------------------------------------------------
    def _next(self) -> tuple:
        with self._turn_lock:
            return self._stubs[next(self._turn)]

    def _call(self, method: str, request, timeout, service: int = 0):
        stub = self._next()[service]
        try:
            return getattr(stub, method)(request, timeout=self.timeout if timeout is None else timeout,
                                         metadata=self._metadata)
        except grpc.RpcError as e:
            raise _call_error(e) from e

    @staticmethod
    def _request(build, prefix: str, as_of=None, now=None):
        """``build()``'s request with its dates, or CallError INVALID_ARGUMENT naming what
        cannot be encoded (a record's field under ``prefix``, ``as_of``, ``now``)."""
        try:
            request = build()
        except (PostloanError, ValueError, TypeError, OverflowError, pa.ArrowException) as e:
            raise _local_error(e, prefix) from None
        for name, value, encode in (("as_of", as_of, convert.date_message), ("now", now, convert.timestamp_message)):
            if value is not None:
                try:
                    getattr(request, name).CopyFrom(encode(value))
                except (ValueError, TypeError, OverflowError, AttributeError):
                    raise CallError(grpc.StatusCode.INVALID_ARGUMENT, f"{name}: cannot encode a {type(value).__name__}",
                                    name, [(name, f"cannot encode a {type(value).__name__}")]) from None
        return request

    def close(self) -> None:
        for channel in self._channels:
            channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- decisions --------------------------------------------------------------------------
    def decide(self, record: dict, as_of: dt.date | str | None = None, *, now: dt.datetime | None = None,
               actions: bool = True, timeout: float | None = None) -> dict[str, Any]:
        """Decide one account. Returns the decision row (``account_id``, ``as_of``,
        ``bundle_hash``, every ``<ruleset>.<output>`` and ``<ruleset>.rule``) plus
        ``"actions"``: the action plan as a list of dicts (``kernel.schema`` ACTIONS columns).
        ``actions=False``: the decision and scores only (no ``"actions"`` key; the server
        plans and checks nothing)."""
        request = self._request(lambda: decision_pb2.DecideRequest(account=convert.ACCOUNT.encode(record)),
                                "account.", as_of, now)
        if not actions:
            request.actions = False
        response = self._call("Decide", request, timeout)
        row = convert.decision_dict(response.decision)
        if actions:
            row["actions"] = [convert.ACTION.decode(a) for a in response.actions]
        return row

    def decide_batch(self, table: pa.Table | pa.RecordBatch, as_of: dt.date | str | None = None, *,
                     now: dt.datetime | None = None, with_actions: bool = False, timeout: float | None = None):
        """Decide a whole table of book rows in one call: the decisions as a pyarrow.Table,
        row for row; with ``with_actions``, a pair (decisions, actions)."""
        request = self._request(lambda: decision_pb2.DecideBatchRequest(accounts=convert.to_ipc(table),
                                                                        with_actions=with_actions),
                                "accounts.", as_of, now)
        response = self._call("DecideBatch", request, timeout)
        try:
            decisions = convert.from_ipc(response.decisions, "decisions")
            actions = convert.from_ipc(response.actions, "actions") if with_actions else None
        except PostloanError as e:
            raise CallError(grpc.StatusCode.DATA_LOSS, f"the server's answer cannot be read: {e}") from None
        return (decisions, actions) if with_actions else decisions

    def explain(self, record: dict, as_of: dt.date | str | None = None, *, timeout: float | None = None) -> dict:
        """Per ruleset the winning rule, the inputs it read and its outputs; model scores."""
        request = self._request(lambda: decision_pb2.ExplainRequest(account=convert.ACCOUNT.encode(record)),
                                "account.", as_of)
        response = self._call("Explain", request, timeout)
        return {
            "account_id": response.account_id,
            "bundle_hash": response.bundle_hash,
            "rulesets": [{"ruleset": r.ruleset, "rule": convert.python_value(r.rule), "version": r.version,
                          "inputs": {k: convert.python_value(v) for k, v in r.inputs.items()},
                          "outputs": {k: convert.python_value(v) for k, v in r.outputs.items()},
                          "notes": dict(r.notes)}
                         for r in response.rulesets],
            "model_scores": dict(response.model_scores),
        }

    def valuate(self, vehicle: dict, country: str, as_of: dt.date | str | None = None, *,
                region: str | None = None, purchase_date: dt.date | str | None = None,
                timeout: float | None = None) -> dict:
        """Valuation of one vehicle (``kernel.schema`` VEHICLES columns; extra keys ignored) today
        and its recommended disposal channel in ``country`` (``"CN"``, ``"US"``). ``region``: where
        it would be sold (``"CN-GD"``); ``purchase_date``: when the owner bought it (default: new,
        in its model year)."""
        code = self._request(lambda: convert.enum_code("country", country), "")

        def build():
            request = decision_pb2.ValuateRequest(vehicle=convert.VEHICLE.encode(vehicle), region=region or "",
                                                  country=code)
            if purchase_date is not None:
                request.purchase_date.CopyFrom(convert.date_message(purchase_date))
            return request
        response = self._call("Valuate", self._request(build, "vehicle.", as_of), timeout)
        return {"vin": response.vin, "valuation": response.valuation if response.HasField("valuation") else None,
                "channel": response.channel or None,
                "details": {k: convert.python_value(v) for k, v in response.details.items()},
                "bundle_hash": response.bundle_hash}

    # -- admin ------------------------------------------------------------------------------
    # -- the case ledger (a server started with --store) --------------------------------------
    def ingest(self, events: pa.Table | pa.RecordBatch, *, rows_per_message: int = 65_536,
               timeout: float | None = None) -> dict:
        """Send events (the contract's events columns) to the ledger in one call, streamed in
        messages of ``rows_per_message`` rows: ``{"accepted", "duplicate", "rejected",
        "rejections": [{"row", "event_id", "reason"}, ...]}`` once the stored rows are durable."""
        table = events if isinstance(events, pa.Table) else pa.Table.from_batches([events])
        messages = (ledger_pb2.IngestEventsRequest(events=convert.to_ipc(table.slice(i, rows_per_message)))
                    for i in range(0, max(table.num_rows, 1), rows_per_message))
        r = self._call("IngestEvents", messages, timeout, service=LEDGER)
        return {"accepted": r.accepted, "duplicate": r.duplicate, "rejected": r.rejected,
                "rejections": [{"row": x.row, "event_id": x.event_id or None, "reason": x.reason} for x in r.rejections]}

    def check_contact(self, account_id: str, channel: str, at: dt.datetime | None = None, *,
                      timeout: float | None = None) -> dict:
        """The contact-time gate: ``{"outcome": KEEP | DEFER | BLOCK, "reason_code",
        "next_allowed_at", "policy", "reservation_id", "expires_at"}`` (absent values None).
        ``channel``: PHONE, SMS, VOICE_BOT, FIELD_VISIT or THIRD_PARTY."""
        from .server._proto.postloan.v1 import contract_pb2
        try:
            code = contract_pb2.ContactChannel.Value(f"CONTACT_CHANNEL_{channel}")
        except ValueError:
            raise CallError(grpc.StatusCode.INVALID_ARGUMENT, f"channel {channel!r} is not a contact channel",
                            field="channel") from None
        request = ledger_pb2.CheckContactRequest(account_id=account_id, channel=code)
        if at is not None:
            request.at.CopyFrom(convert.timestamp_message(at))
        r = self._call("CheckContact", request, timeout, service=LEDGER)
        return {"outcome": contract_pb2.ComplianceOutcome.Name(r.outcome).removeprefix("COMPLIANCE_OUTCOME_"),
                "reason_code": r.reason_code or None, "policy": r.policy or None,
                "next_allowed_at": convert.timestamp_value(r.next_allowed_at) if r.HasField("next_allowed_at") else None,
                "reservation_id": r.reservation_id or None,
                "expires_at": convert.timestamp_value(r.expires_at) if r.HasField("expires_at") else None}

    def state(self, account_id: str, at: dt.datetime | None = None, *, timeout: float | None = None) -> dict:
        """One account's state (the contract's state columns) as of ``at`` (default now)."""
        request = ledger_pb2.GetStateRequest(account_id=account_id)
        if at is not None:
            request.at.CopyFrom(convert.timestamp_message(at))
        r = self._call("GetState", request, timeout, service=LEDGER)
        return {name: convert.python_value(value) for name, value in r.state.items()}

    def get_bundle(self, *, timeout: float | None = None) -> dict:
        return _bundle_dict(self._call("GetBundle", decision_pb2.GetBundleRequest(), timeout, service=ADMIN))

    def reload_bundle(self, path: str | None = None, *, timeout: float | None = 600.0) -> dict:
        """Compile the bundle at ``path`` on the server (default: reload the current one from
        disk) and swap it in. A bundle that fails is rejected (CallError FAILED_PRECONDITION,
        its errors in ``violations``) and the old one keeps serving."""
        response = self._call("ReloadBundle", decision_pb2.ReloadBundleRequest(path=path or ""), timeout, service=ADMIN)
        return {"bundle": _bundle_dict(response.bundle), "previous_bundle_hash": response.previous_bundle_hash,
                "changed": response.changed, "compile_seconds": response.compile_seconds}

    def health(self, service: str = "", *, timeout: float | None = 5.0) -> str:
        """The standard health status: SERVING, NOT_SERVING, …"""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self._channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as e:
            raise _call_error(e) from e
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    def wait_until_serving(self, timeout: float = 120.0) -> None:
        """Block until health reports SERVING (the bundle is compiled and warm)."""
        import time
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.health(timeout=min(5.0, max(0.1, deadline - time.monotonic()))) == "SERVING":
                    return
            except CallError as e:
                if e.code is not grpc.StatusCode.UNAVAILABLE and e.code is not grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise
            if time.monotonic() >= deadline:
                raise CallError(grpc.StatusCode.DEADLINE_EXCEEDED, f"not SERVING within {timeout} s")
            time.sleep(0.05)


def _bundle_dict(info: decision_pb2.BundleInfo) -> dict:
    return {"bundle_hash": info.bundle_hash, "versions": dict(info.versions), "path": info.path,
            "loaded_at": convert.timestamp_value(info.loaded_at, "loaded_at", bounded=False) if info.HasField("loaded_at") else None,
            "inputs": list(info.inputs), "outputs": {o.name: o.type for o in info.outputs}}
