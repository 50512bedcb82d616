import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from kernel.server._proto.postloan.v1 import contract_pb2 as _contract_pb2
from kernel.server._proto.postloan.v1 import decision_pb2 as _decision_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IngestEventsRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: bytes
    def __init__(self, events: _Optional[bytes] = ...) -> None: ...

class RejectedEvent(_message.Message):
    __slots__ = ("row", "event_id", "reason")
    ROW_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    row: int
    event_id: str
    reason: str
    def __init__(self, row: _Optional[int] = ..., event_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class IngestEventsResponse(_message.Message):
    __slots__ = ("accepted", "duplicate", "rejected", "rejections")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    REJECTIONS_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    duplicate: int
    rejected: int
    rejections: _containers.RepeatedCompositeFieldContainer[RejectedEvent]
    def __init__(self, accepted: _Optional[int] = ..., duplicate: _Optional[int] = ..., rejected: _Optional[int] = ..., rejections: _Optional[_Iterable[_Union[RejectedEvent, _Mapping]]] = ...) -> None: ...

class CheckContactRequest(_message.Message):
    __slots__ = ("account_id", "channel", "at")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    channel: _contract_pb2.ContactChannel
    at: _timestamp_pb2.Timestamp
    def __init__(self, account_id: _Optional[str] = ..., channel: _Optional[_Union[_contract_pb2.ContactChannel, str]] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CheckContactResponse(_message.Message):
    __slots__ = ("outcome", "reason_code", "next_allowed_at", "policy", "reservation_id", "expires_at")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_CODE_FIELD_NUMBER: _ClassVar[int]
    NEXT_ALLOWED_AT_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    outcome: _contract_pb2.ComplianceOutcome
    reason_code: str
    next_allowed_at: _timestamp_pb2.Timestamp
    policy: str
    reservation_id: str
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, outcome: _Optional[_Union[_contract_pb2.ComplianceOutcome, str]] = ..., reason_code: _Optional[str] = ..., next_allowed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., policy: _Optional[str] = ..., reservation_id: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetStateRequest(_message.Message):
    __slots__ = ("account_id", "at")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    at: _timestamp_pb2.Timestamp
    def __init__(self, account_id: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetStateResponse(_message.Message):
    __slots__ = ("account_id", "at", "state")
    class StateEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _decision_pb2.Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_decision_pb2.Value, _Mapping]] = ...) -> None: ...
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    at: _timestamp_pb2.Timestamp
    state: _containers.MessageMap[str, _decision_pb2.Value]
    def __init__(self, account_id: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[_Mapping[str, _decision_pb2.Value]] = ...) -> None: ...
