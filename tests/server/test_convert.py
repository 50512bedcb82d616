"""The Decide response encoder against the same messages built field by field by protobuf."""
import datetime as dt
import functools
import math

import numpy as np
import pyarrow as pa
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given, settings, strategies as st

from kernel import schema
from kernel.server import convert
from kernel.server._proto.postloan.v1 import contract_pb2, decision_pb2

AS_OF = dt.date(2026, 11, 28)


NULL_TIME = np.iinfo(np.int64).min


def reference_actions(columns: dict) -> list[contract_pb2.Action]:
    """The Action messages of the pipeline's action columns, built field by field."""
    script = columns["script"]
    script = script.to_pylist() if isinstance(script, pa.Array) else list(script)     # the pipeline's: a list
    out = []
    for i in range(len(columns["action"])):
        a = contract_pb2.Action(account_id=str(columns["account_id"][i]), action=int(columns["action"][i]) + 1,
                                priority=float(columns["priority"][i]), outcome=int(columns["outcome"][i]) + 1)
        for name in ("earliest_at", "next_allowed_at"):
            us = int(columns[name][i])
            if us != NULL_TIME:
                seconds, micros = divmod(us, 1_000_000)
                getattr(a, name).CopyFrom(Timestamp(seconds=seconds, nanos=micros * 1000))
        for name in ("script_id", "reason_code", "policy"):
            if columns[name][i] is not None:
                setattr(a, name, str(columns[name][i]))
        if columns["language"][i] is not None:
            a.language = schema.ENUMS["language"].index(columns["language"][i]) + 1
        if script[i] is not None:
            a.script = script[i]
        out.append(a)
    return out


def reference(decisions: dict, as_of: dt.date, bundle_hash: str, actions=None) -> decision_pb2.DecideResponse:
    """What the encoder must match: every column set through convert.set_value (a null
    column is an empty Value), rule columns in ``rules``; the actions built field by field."""
    decision = decision_pb2.Decision(account_id=str(decisions["account_id"]), bundle_hash=bundle_hash,
                                     as_of=convert.date_message(as_of))
    for name, value in decisions.items():
        if name != "account_id":
            target = decision.rules[name[:-5]] if name.endswith(".rule") else decision.values[name]
            convert.set_value(target, value)
    return decision_pb2.DecideResponse(decision=decision, actions=reference_actions(actions) if actions else [])


scalars = st.one_of(st.none(), st.booleans(), st.integers(-(1 << 63), (1 << 63) - 1), st.floats(),
                    st.text(max_size=20), st.lists(st.text(max_size=8), max_size=4), st.dates())
records = st.fixed_dictionaries({"account_id": st.text(max_size=12)}, optional={
    name: scalars for name in ("tier.tier", "tier.rule", "model.score", "alerts.count", "alerts.rule", "x.y")})


text = st.one_of(st.none(), st.text(max_size=10))
instants = st.one_of(st.just(int(NULL_TIME)), st.integers(-(1 << 62), 1 << 62))
action_rows = st.fixed_dictionaries({
    "account_id": st.text(max_size=12), "action": st.integers(0, len(schema.ENUMS["action_channel"]) - 1),
    "priority": st.floats(), "earliest_at": instants, "script": text, "script_id": text,
    "language": st.one_of(st.none(), st.sampled_from(schema.ENUMS["language"])),
    "outcome": st.integers(0, len(schema.ENUMS["compliance_outcome"]) - 1), "reason_code": text,
    "next_allowed_at": instants, "policy": text})


def action_columns(rows: list[dict]) -> dict:
    """The pipeline's form: codes as int8, instants as int64 µs, text as object arrays, the
    script as an Arrow string array."""
    def objects(name):
        out = np.empty(len(rows), dtype=object)
        out[:] = [r[name] for r in rows]
        return out
    return {"account_id": objects("account_id"), "action": np.array([r["action"] for r in rows], np.int8),
            "priority": np.array([r["priority"] for r in rows], np.float64),
            "earliest_at": np.array([r["earliest_at"] for r in rows], np.int64),
            "next_allowed_at": np.array([r["next_allowed_at"] for r in rows], np.int64),
            "outcome": np.array([r["outcome"] for r in rows], np.int8),
            "script": pa.array([r["script"] for r in rows], pa.string()),
            **{name: objects(name) for name in ("script_id", "language", "reason_code", "policy")}}


@settings(max_examples=300, deadline=None)
@given(records, st.dates(min_value=dt.date(1, 1, 1)), st.one_of(st.none(), st.lists(action_rows, max_size=3)))
def test_the_encoded_response_parses_to_the_reference_message(decisions, as_of, rows):
    encoder = convert.DecideResponseEncoder("b" * 64)
    actions = None if rows is None else action_columns(rows)
    for _ in range(2):                      # the second time through the memoized entries
        got = decision_pb2.DecideResponse.FromString(encoder.response(decisions, as_of, actions))
        assert got == reference(decisions, as_of, "b" * 64, actions)


def test_edge_values_keep_their_kind():
    decisions = {"account_id": "AC1", "a.nan": math.nan, "a.neg": -5, "a.zero": 0, "a.false": False,
                 "a.empty": [], "a.none": None, "a.inf": -math.inf, "a.text": "逾期", "a.rule": ["r1", "r2"]}
    got = decision_pb2.DecideResponse.FromString(convert.DecideResponseEncoder("h").response(decisions, AS_OF))
    values = got.decision.values
    assert values["a.nan"].WhichOneof("kind") is None and values["a.none"].WhichOneof("kind") is None
    assert values["a.neg"].int_value == -5 and values["a.zero"].WhichOneof("kind") == "int_value"
    assert values["a.false"].WhichOneof("kind") == "bool_value"
    assert values["a.empty"].WhichOneof("kind") == "string_list_value"         # an empty list is not a null
    assert values["a.inf"].float_value == -math.inf and values["a.text"].string_value == "逾期"
    assert list(got.decision.rules["a"].string_list_value.values) == ["r1", "r2"]
    assert got == reference(decisions, AS_OF, "h")


def _account_messages(seed: int, n: int):
    """``n`` synthetic accounts' messages, each a fresh copy (the book is generated once per
    (seed, n): generating even one account takes ≈ 0.4 s, too long for each hypothesis example)."""
    return [contract_pb2.Account.FromString(data) for data in _account_bytes(seed, n)]


@functools.lru_cache(maxsize=None)
def _account_bytes(seed: int, n: int) -> tuple[bytes, ...]:
    from kernel.synth import generate
    return tuple(convert.ACCOUNT.encode(r).SerializeToString() for r in generate(n, seed=seed, as_of=AS_OF).to_pylist())


def test_the_generated_account_decoder_gives_the_careful_paths_record():
    """The wire decoder (one compiled pass over the bytes, the record built by generated code)
    and the field-by-field path agree on every field of real accounts, nulls included, down
    to each value's type."""
    from kernel.server.engine import AccountRecord
    decode = AccountRecord()
    messages = _account_messages(21, 500)
    for message in messages:
        fast = decode._fast(message)
        careful = decode._decode_checked(message)
        assert fast is not None and fast == careful
        assert {k: type(v) for k, v in fast.items()} == {k: type(v) for k, v in careful.items()}
        assert list(fast) == [c.name for c in schema.BOOK]
    nulls = messages[0]
    for name in ("next_due_date", "bureau_score", "gps_last_ping_at", "on_time_ratio_12m", "currency"):
        nulls.ClearField(name)
    fast = decode._fast(nulls)
    assert fast == decode._decode_checked(nulls) and fast["bureau_score"] is None and fast["currency"] is None


@given(st.sampled_from(["dpd", "principal", "annual_rate", "age", "model_year", "gps_lat", "spending_change_3m",
                        "account_id", "region", "contract_date", "last_conversation_at", "product", "currency",
                        "term_months", "name"]),
       st.integers(0, 5))
@settings(max_examples=120, deadline=None)
def test_a_value_the_contract_refuses_is_refused_in_the_careful_paths_words(name, how):
    """Whatever the fast decoder cannot vouch for goes to the careful path: the same record
    when the value is fine after all, the same FieldError when it is not."""
    from kernel.server.engine import AccountRecord
    from kernel.server.status import FieldError
    decode = AccountRecord()
    message = _account_messages(3, 1)[0]
    field = message.DESCRIPTOR.fields_by_name[name]
    if field.type == field.TYPE_STRING:
        setattr(message, name, ["", "x" * 300, "ok", "y" * 64, "z" * 65, "é" * 17][how])
    elif field.type == field.TYPE_ENUM:
        setattr(message, name, [0, 1, 99, -1, 2, 0][how])
    elif field.type == field.TYPE_MESSAGE and name.endswith("_at"):
        getattr(message, name).CopyFrom(Timestamp(seconds=[0, -62_135_596_801, 253_402_300_800, -2_208_988_801,
                                                           7_258_118_400, 1][how], nanos=[0, 0, 0, 0, 0, 10**9][how]))
    elif field.type == field.TYPE_MESSAGE:
        getattr(message, name).year, getattr(message, name).month, getattr(message, name).day = \
            [(2026, 2, 30), (1899, 12, 31), (2200, 1, 1), (2026, 1, 1), (0, 0, 0), (2199, 12, 31)][how]
    elif field.type == field.TYPE_DOUBLE:
        setattr(message, name, [-1e-9, math.nan, math.inf, 0.5, 1e13, -1.0][how])
    else:
        setattr(message, name, [-1, 0, 1, 36_501, 2101, 1_000_000][how])
    try:
        expected = decode._decode_checked(message)
    except FieldError as e:
        expected = ("refused", e.args, str(e))
    try:
        got = decode(message)
    except FieldError as e:
        got = ("refused", e.args, str(e))
    assert got == expected
    assert decode._fast(message) in (None, expected)


def _decoded(decode, message):
    from kernel.server.status import FieldError
    try:
        return decode(message)
    except FieldError as e:
        return ("refused", e.args, str(e))


@given(st.integers(0, 2**32 - 1), st.lists(st.tuples(st.integers(0, 700), st.integers(0, 255)), min_size=1,
                                          max_size=6), st.booleans())
@settings(max_examples=400, deadline=None)
def test_the_wire_decoder_never_gives_a_record_the_careful_path_would_not(seed, flips, extra):
    """Bytes mangled at random (each message protobuf still parses: flipped bytes, a field of
    an unknown number or of a known number with another wire type): the wire decoder gives
    the careful path's record or hands the message over (None) — never another record."""
    from google.protobuf.message import DecodeError

    from kernel.server.engine import AccountRecord
    decode = AccountRecord()
    data = bytearray(_ACCOUNT_BYTES[seed % len(_ACCOUNT_BYTES)])
    for at, value in flips:
        data[at % len(data)] = value
    if extra:                        # an unknown field 200 (varint), then field 16 (dpd, an int) as a string
        data += bytes([0xC0, 0x0C, 0x05, 0x82, 0x01, 0x02]) + b"ab"
    try:
        message = contract_pb2.Account.FromString(bytes(data))
    except DecodeError:
        return
    fast = decode._fast(message)
    assert fast is None or fast == decode._decode_checked(message)
    assert _decoded(decode, message) == _decoded(decode, contract_pb2.Account.FromString(message.SerializeToString()))


_ACCOUNT_BYTES = [m.SerializeToString() for m in _account_messages(5, 40)]


def test_the_wire_decoder_reads_every_encoding_protobuf_accepts():
    """Negative numbers (ten-byte varints), unknown fields, empty and multi-byte text, dates
    and instants at the contract's edges, a required enum left at 0 (refused)."""
    from kernel.server.engine import AccountRecord
    from kernel.server.status import FieldError
    decode = AccountRecord()
    message = _account_messages(8, 1)[0]
    message.spending_change_3m = -0.5
    message.region = "广东省" * 5
    message.currency = 0
    message.promise_date.year, message.promise_date.month, message.promise_date.day = 2199, 12, 31
    message.last_conversation_at.CopyFrom(Timestamp(seconds=-2_208_988_800, nanos=999_999_999))
    unknown = contract_pb2.Account.FromString(message.SerializeToString() + bytes([0xC0, 0x0C, 0x05]))
    for m in (message, unknown):
        fast = decode._fast(m)
        assert fast is not None and fast == decode._decode_checked(m)
        assert fast["region"] == "广东省" * 5 and fast["currency"] is None
        assert fast["promise_date"] == dt.date(2199, 12, 31)
        assert fast["last_conversation_at"] == dt.datetime(1900, 1, 1, 0, 0, 0, 999_999, tzinfo=dt.timezone.utc)
    message.ClearField("dpd")
    assert decode._fast(message) is None
    message.dpd, message.product = -3, 0
    assert decode._fast(message) is None
    try:
        decode(message)
    except FieldError as e:
        assert {f for f, _ in e.violations} >= {"account.dpd", "account.product"}, e.violations
    else:
        raise AssertionError("refused")


def test_timestamp_value_is_protobufs_to_datetime():
    """A request's instant is read by arithmetic (not Timestamp.ToDatetime, ≈ 10× slower):
    the same aware UTC datetime for every valid Timestamp — edges of the range, nanos
    truncated toward zero to µs, before and after the epoch — and the same refusal otherwise."""
    import random

    import pytest

    from kernel.server.status import FieldError

    lo, hi = convert.TIMESTAMP_SECONDS
    rng = random.Random(16_3)
    cases = [(lo, 0), (hi, 999_999_999), (0, 0), (-1, 999_999_999), (-1, 1), (0, 999), (0, 1_000), (1, 999_999),
             (1_795_867_200, 123_456_789)]
    cases += [(rng.randint(lo, hi), rng.randint(0, 999_999_999)) for _ in range(2_000)]
    for seconds, nanos in cases:
        message = Timestamp(seconds=seconds, nanos=nanos)
        value = convert.timestamp_value(message, "now", bounded=False)
        expected = message.ToDatetime(tzinfo=dt.timezone.utc)
        assert value == expected and value.tzinfo is expected.tzinfo and value.utcoffset() == dt.timedelta(0), \
            (seconds, nanos)
    for seconds, nanos in ((lo - 1, 0), (hi + 1, 0), (0, -1), (0, 1_000_000_000)):
        with pytest.raises(FieldError, match="not a valid instant"):
            convert.timestamp_value(Timestamp(seconds=seconds, nanos=nanos), "now")


def test_records_of_many_column_orders_each_get_their_own_writer():
    """The encoder writes a record by a function generated for its columns' order: records
    of the same columns in other orders, and more orders than it keeps writers for, still
    encode to the reference message."""
    import random

    rng = random.Random(3)
    columns = {"tier.tier": "MILD", "tier.rule": ["r1"], "model.score": 0.25, "alerts.count": 3,
               "alerts.flag": True, "x.nan": math.nan, "x.none": None}
    encoder = convert.DecideResponseEncoder("h")
    orders = set()
    for _ in range(3 * encoder.WRITERS):
        names = list(columns) + ["account_id"]
        rng.shuffle(names)
        decisions = {name: "AC7" if name == "account_id" else columns[name] for name in names}
        orders.add(tuple(names))
        got = decision_pb2.DecideResponse.FromString(encoder.response(decisions, AS_OF))
        assert got == reference(decisions, AS_OF, "h")
    assert len(orders) > encoder.WRITERS and len(encoder._writers) <= encoder.WRITERS


def test_the_writers_give_the_general_ways_bytes_for_generated_accounts(tmp_path):
    """Real decisions of many generated accounts, with and without actions: each response's
    bytes are those of the general way (every entry through ``_entry``), and parse to the
    reference message built field by field. A writer is generated from the first record of
    its column order, so the later records test its expressions against values of other
    kinds (a null where a float was, another rule list, another tier…)."""
    from kernel.pipeline import Pipeline
    from kernel.runtime import Kernel
    from kernel.server.engine import AccountRecord
    from kernel.synth import generate

    kernel = Kernel.load()
    pipeline = Pipeline(kernel, audit_path=tmp_path / "audit.log")
    decode = AccountRecord()
    encoder = convert.DecideResponseEncoder(kernel.bundle_hash)
    now = dt.datetime(2026, 11, 28, 2, 30, tzinfo=dt.timezone.utc)
    planned = 0
    for row in generate(400, seed=29, as_of=AS_OF).to_pylist():
        record = decode(convert.ACCOUNT.encode(row))
        for with_actions in (True, False):
            result = pipeline.run_record(record, AS_OF, now, actions=with_actions)
            decisions, actions = result.decision_record, result.action_columns if with_actions else None
            got = encoder.response(decisions, AS_OF, actions)
            account, day = encoder._parts(decisions, AS_OF)[:2]
            general = b"".join(encoder.general_parts(decisions, account, day))
            expected = convert._delimited(convert._RESPONSE_TAGS["decision"], general) + b"".join(
                convert._delimited(convert._RESPONSE_TAGS["actions"], a)
                for a in (convert._action_payloads(actions) if actions is not None else ()))
            assert got == expected
            assert decision_pb2.DecideResponse.FromString(got) == reference(decisions, AS_OF, kernel.bundle_hash,
                                                                            actions)
            planned += with_actions and len(actions["action"]) > 0
    assert len(encoder._writers) == 1 and planned > 10, (len(encoder._writers), planned)
