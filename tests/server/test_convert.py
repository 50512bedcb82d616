"""The Decide response encoder against the same messages built field by field by protobuf."""
import datetime as dt
import math

from hypothesis import given, settings, strategies as st

from kernel.server import convert
from kernel.server._proto.postloan.v1 import contract_pb2, decision_pb2

AS_OF = dt.date(2026, 11, 28)


def reference(decisions: dict, as_of: dt.date, bundle_hash: str, actions=()) -> decision_pb2.DecideResponse:
    """What the encoder must match: every column set through convert.set_value (a null
    column is an empty Value), rule columns in ``rules``."""
    decision = decision_pb2.Decision(account_id=str(decisions["account_id"]), bundle_hash=bundle_hash,
                                     as_of=convert.date_message(as_of))
    for name, value in decisions.items():
        if name != "account_id":
            target = decision.rules[name[:-5]] if name.endswith(".rule") else decision.values[name]
            convert.set_value(target, value)
    return decision_pb2.DecideResponse(decision=decision, actions=list(actions))


scalars = st.one_of(st.none(), st.booleans(), st.integers(-(1 << 63), (1 << 63) - 1), st.floats(),
                    st.text(max_size=20), st.lists(st.text(max_size=8), max_size=4), st.dates())
records = st.fixed_dictionaries({"account_id": st.text(max_size=12)}, optional={
    name: scalars for name in ("tier.tier", "tier.rule", "model.score", "alerts.count", "alerts.rule", "x.y")})


@settings(max_examples=300, deadline=None)
@given(records, st.dates(min_value=dt.date(1, 1, 1)), st.booleans())
def test_the_encoded_response_parses_to_the_reference_message(decisions, as_of, with_action):
    encoder = convert.DecideResponseEncoder("b" * 64)
    actions = [contract_pb2.Action(account_id="AC1", action=2, priority=1.5, script="你好")] if with_action else []
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
