"""The Decide response encoder against the same messages built field by field by protobuf."""
import datetime as dt
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
    script = columns["script"].to_pylist()
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
