import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.type import date_pb2 as _date_pb2
from kernel.server._proto.postloan.v1 import contract_pb2 as _contract_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Value(_message.Message):
    __slots__ = ("bool_value", "int_value", "float_value", "string_value", "date_value", "timestamp_value", "string_list_value")
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    DATE_VALUE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_LIST_VALUE_FIELD_NUMBER: _ClassVar[int]
    bool_value: bool
    int_value: int
    float_value: float
    string_value: str
    date_value: _date_pb2.Date
    timestamp_value: _timestamp_pb2.Timestamp
    string_list_value: StringList
    def __init__(self, bool_value: _Optional[bool] = ..., int_value: _Optional[int] = ..., float_value: _Optional[float] = ..., string_value: _Optional[str] = ..., date_value: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., timestamp_value: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., string_list_value: _Optional[_Union[StringList, _Mapping]] = ...) -> None: ...

class StringList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("account_id", "as_of", "bundle_hash", "values", "rules")
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    class RulesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_HASH_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    as_of: _date_pb2.Date
    bundle_hash: str
    values: _containers.MessageMap[str, Value]
    rules: _containers.MessageMap[str, Value]
    def __init__(self, account_id: _Optional[str] = ..., as_of: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., bundle_hash: _Optional[str] = ..., values: _Optional[_Mapping[str, Value]] = ..., rules: _Optional[_Mapping[str, Value]] = ...) -> None: ...

class DecideRequest(_message.Message):
    __slots__ = ("account", "as_of", "now", "actions")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    NOW_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    account: _contract_pb2.Account
    as_of: _date_pb2.Date
    now: _timestamp_pb2.Timestamp
    actions: bool
    def __init__(self, account: _Optional[_Union[_contract_pb2.Account, _Mapping]] = ..., as_of: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., now: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actions: _Optional[bool] = ...) -> None: ...

class DecideResponse(_message.Message):
    __slots__ = ("decision", "actions")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    actions: _containers.RepeatedCompositeFieldContainer[_contract_pb2.Action]
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ..., actions: _Optional[_Iterable[_Union[_contract_pb2.Action, _Mapping]]] = ...) -> None: ...

class DecideBatchRequest(_message.Message):
    __slots__ = ("accounts", "as_of", "now", "with_actions")
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    NOW_FIELD_NUMBER: _ClassVar[int]
    WITH_ACTIONS_FIELD_NUMBER: _ClassVar[int]
    accounts: bytes
    as_of: _date_pb2.Date
    now: _timestamp_pb2.Timestamp
    with_actions: bool
    def __init__(self, accounts: _Optional[bytes] = ..., as_of: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., now: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., with_actions: _Optional[bool] = ...) -> None: ...

class DecideBatchResponse(_message.Message):
    __slots__ = ("decisions", "actions", "accounts", "bundle_hash")
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_HASH_FIELD_NUMBER: _ClassVar[int]
    decisions: bytes
    actions: bytes
    accounts: int
    bundle_hash: str
    def __init__(self, decisions: _Optional[bytes] = ..., actions: _Optional[bytes] = ..., accounts: _Optional[int] = ..., bundle_hash: _Optional[str] = ...) -> None: ...

class ExplainRequest(_message.Message):
    __slots__ = ("account", "as_of")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    account: _contract_pb2.Account
    as_of: _date_pb2.Date
    def __init__(self, account: _Optional[_Union[_contract_pb2.Account, _Mapping]] = ..., as_of: _Optional[_Union[_date_pb2.Date, _Mapping]] = ...) -> None: ...

class RulesetTrace(_message.Message):
    __slots__ = ("ruleset", "rule", "version", "inputs", "outputs", "notes")
    class InputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    class OutputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    class NotesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RULESET_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    ruleset: str
    rule: Value
    version: str
    inputs: _containers.MessageMap[str, Value]
    outputs: _containers.MessageMap[str, Value]
    notes: _containers.ScalarMap[str, str]
    def __init__(self, ruleset: _Optional[str] = ..., rule: _Optional[_Union[Value, _Mapping]] = ..., version: _Optional[str] = ..., inputs: _Optional[_Mapping[str, Value]] = ..., outputs: _Optional[_Mapping[str, Value]] = ..., notes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ExplainResponse(_message.Message):
    __slots__ = ("account_id", "bundle_hash", "rulesets", "model_scores")
    class ModelScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_HASH_FIELD_NUMBER: _ClassVar[int]
    RULESETS_FIELD_NUMBER: _ClassVar[int]
    MODEL_SCORES_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    bundle_hash: str
    rulesets: _containers.RepeatedCompositeFieldContainer[RulesetTrace]
    model_scores: _containers.ScalarMap[str, float]
    def __init__(self, account_id: _Optional[str] = ..., bundle_hash: _Optional[str] = ..., rulesets: _Optional[_Iterable[_Union[RulesetTrace, _Mapping]]] = ..., model_scores: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ValuateRequest(_message.Message):
    __slots__ = ("vehicle", "as_of", "purchase_date", "country", "region")
    VEHICLE_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_DATE_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    vehicle: _contract_pb2.Vehicle
    as_of: _date_pb2.Date
    purchase_date: _date_pb2.Date
    country: _contract_pb2.Country
    region: str
    def __init__(self, vehicle: _Optional[_Union[_contract_pb2.Vehicle, _Mapping]] = ..., as_of: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., purchase_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., country: _Optional[_Union[_contract_pb2.Country, str]] = ..., region: _Optional[str] = ...) -> None: ...

class ValuateResponse(_message.Message):
    __slots__ = ("vin", "valuation", "channel", "details", "bundle_hash")
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    VIN_FIELD_NUMBER: _ClassVar[int]
    VALUATION_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_HASH_FIELD_NUMBER: _ClassVar[int]
    vin: str
    valuation: float
    channel: str
    details: _containers.MessageMap[str, Value]
    bundle_hash: str
    def __init__(self, vin: _Optional[str] = ..., valuation: _Optional[float] = ..., channel: _Optional[str] = ..., details: _Optional[_Mapping[str, Value]] = ..., bundle_hash: _Optional[str] = ...) -> None: ...

class GetBundleRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class OutputInfo(_message.Message):
    __slots__ = ("name", "type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ...) -> None: ...

class BundleInfo(_message.Message):
    __slots__ = ("bundle_hash", "versions", "path", "loaded_at", "inputs", "outputs")
    class VersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BUNDLE_HASH_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    LOADED_AT_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    bundle_hash: str
    versions: _containers.ScalarMap[str, str]
    path: str
    loaded_at: _timestamp_pb2.Timestamp
    inputs: _containers.RepeatedScalarFieldContainer[str]
    outputs: _containers.RepeatedCompositeFieldContainer[OutputInfo]
    def __init__(self, bundle_hash: _Optional[str] = ..., versions: _Optional[_Mapping[str, str]] = ..., path: _Optional[str] = ..., loaded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., inputs: _Optional[_Iterable[str]] = ..., outputs: _Optional[_Iterable[_Union[OutputInfo, _Mapping]]] = ...) -> None: ...

class ReloadBundleRequest(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class ReloadBundleResponse(_message.Message):
    __slots__ = ("bundle", "previous_bundle_hash", "changed", "compile_seconds")
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_BUNDLE_HASH_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    COMPILE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    bundle: BundleInfo
    previous_bundle_hash: str
    changed: bool
    compile_seconds: float
    def __init__(self, bundle: _Optional[_Union[BundleInfo, _Mapping]] = ..., previous_bundle_hash: _Optional[str] = ..., changed: _Optional[bool] = ..., compile_seconds: _Optional[float] = ...) -> None: ...
