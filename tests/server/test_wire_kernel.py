"""The Account's wire bytes straight into the kernel's inputs (``wire.KernelInputs``,
``Engine.decide_account``) — and a decision-only DecideRequest's bytes, unparsed, to the
response's bytes in one compiled call (``Engine.decide_request``: Decide's way) — against the
record's way (``Engine.record`` then ``Engine.decide_response``): the same decisions, response
bytes, refusals and audit records, on generated accounts and on accounts bent where the wire
pass must hand over; and request bytes mangled every way, which the request pass either
reads as protobuf does or hands over."""
from __future__ import annotations

import datetime as dt
import random

import pytest

from kernel.server import convert
from kernel.server._proto.postloan.v1 import contract_pb2, decision_pb2

AS_OF = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 9, 30, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    """Three engines over one kernel, each pipeline with its own audit log: the record's way,
    the wire's (the parsed Account's bytes) and the request's (its unparsed bytes)."""
    from kernel.pipeline import Pipeline
    from kernel.runtime import Kernel
    from kernel.server.engine import Engine

    kernel = Kernel.load(progress=False)
    folder = tmp_path_factory.mktemp("wire-kernel")
    made = [Engine(kernel, Pipeline(kernel, audit_path=folder / f"{name}.log", audit_sync="interval"),
                   path="", loaded_at=NOW, compile_seconds=0.0) for name in ("record", "wire", "request")]
    yield made
    for engine in made:
        engine.pipeline.audit.close()


def _outcome(call):
    from kernel.server.status import FieldError
    try:
        return call()
    except FieldError as e:
        return ("refused", e.args, str(e))


def _bent(message, rng: random.Random):
    """The message with one or two fields bent the ways the wire pass must take or hand over:
    a nullable field cleared, a category's text unknown to the models or empty, an enum at 0
    or past its members, a number out of the contract's range, a date out of range."""
    fields = contract_pb2.Account.DESCRIPTOR.fields_by_name
    for _ in range(rng.randint(1, 2)):
        how = rng.randrange(6)
        if how == 0:
            name = rng.choice([f.name for f in fields.values() if f.has_presence and f.message_type is None])
            message.ClearField(name)
        elif how == 1:
            setattr(message, rng.choice(["brand", "model", "region"]), rng.choice(["", "NOT-A-BRAND", "特斯拉"]))
        elif how == 2:
            name = rng.choice([f.name for f in fields.values() if f.enum_type is not None])
            setattr(message, name, rng.choice([0, 1, 2, 40]))
        elif how == 3:
            setattr(message, rng.choice(["dpd", "bureau_score", "age"]), rng.choice([-1, 0, 850, 10**6]))
        elif how == 4:
            message.monthly_income = rng.choice([-1.0, 0.0, 1e12])
        else:
            message.insurance_expiry_date.year = rng.choice([1, 1999, 2100, 9999])
    return message


def _request_bytes(message, actions: bool | None = False, as_of=AS_OF, now=NOW) -> bytes:
    request = decision_pb2.DecideRequest(account=message)
    if as_of is not None:
        request.as_of.CopyFrom(convert.date_message(as_of))
    if now is not None:
        request.now.CopyFrom(convert.timestamp_message(now))
    if actions is not None:
        request.actions = actions
    return request.SerializeToString()


def _by_request(engine, data: bytes):
    """Decide's way from a request's bytes: the compiled call, else None (Decide parses them)."""
    return engine.decide_request(data)


def _accounts(n: int, seed: int):
    from kernel.synth import generate
    rng = random.Random(seed)
    messages = [convert.ACCOUNT.encode(r) for r in generate(n, seed=seed, as_of=AS_OF).to_pylist()]
    return [(_bent(m, rng) if rng.random() < 0.3 else m) for m in messages]


def test_the_wire_way_gives_the_records_decisions_bytes_and_audit_records(engines):
    """2,000 generated accounts (30 % bent), decision-only and with actions: the same
    response bytes (or the same refusal) both ways, the kernel's decisions equal value for
    value and type for type, and the two audit logs the same records; the requests' bytes
    (decision-only and with actions) the same answers by the request pass (every account it
    does not hand over), into a third audit log holding the same records — the decision's
    bytes written by the compiled pass for the accounts no stage values (with actions, the
    actions' bytes after them), the others' by the stage that values them, all seen."""
    from kernel.audit import read_audit

    by_record, by_wire, by_request = engines
    direct = by_wire.kernel_inputs
    assert direct is not None and by_request.request_decider is not None
    kernel = by_wire.kernel
    taken = refused = from_bytes = valued = actions_from_bytes = 0
    for i, message in enumerate(_accounts(2000, seed=7)):
        actions = i % 4 == 0                    # the strategy's way costs more: a quarter of them
        expected = _outcome(lambda: by_record.decide_response(by_record.record(message), AS_OF, NOW, actions))
        got = _outcome(lambda: by_wire.decide_account(message, AS_OF, NOW, actions))
        assert got == expected, (i, actions)
        refused += expected[0] == "refused"
        data = _request_bytes(message, actions)
        decided = by_request.request_decider.decide(data, with_actions=True)  # (no audit record: the engine's)
        valued += decided is not None and decided[0] is None
        answer = _by_request(by_request, data)
        if answer is None:                      # handed over: Decide parses and takes the wire's way
            assert not by_request.kernel_inputs.stage(message), i
            answer = _outcome(lambda: by_request.decide_account(decision_pb2.DecideRequest.FromString(data).account,
                                                                AS_OF, NOW, actions))
        else:
            from_bytes += 1
            actions_from_bytes += actions
        assert answer == expected, (i, actions)
        if direct.stage(message):
            taken += 1
            staged = kernel.decide_staged(AS_OF)
            record = by_record.pipeline.record_with_state(by_record.record(message), AS_OF, NOW)
            reference = kernel.decide_record(record, AS_OF)
            assert staged == reference, i
            assert {k: type(v) for k, v in staged.items()} == {k: type(v) for k, v in reference.items()}
    assert taken > 1200 and refused > 50 and from_bytes > 1200 and 250 < actions_from_bytes and \
        5 < valued < from_bytes - 500, (taken, refused, from_bytes, actions_from_bytes, valued)
    for engine in engines:
        engine.pipeline.audit.flush()
    left = list(read_audit(by_record.pipeline.audit.path))
    for other in (by_wire, by_request):
        right = list(read_audit(other.pipeline.audit.path))
        assert len(left) == len(right) == 2000 - refused
        for a, b in zip(left, right):
            assert a.meta == b.meta
            assert a.decisions.equals(b.decisions) and a.actions.equals(b.actions)


def test_unknown_members_and_categories_take_the_records_way(engines):
    """A category no model knows is staged as the kernel stages it (code 255); an enum member
    the kernel lacks hands the account over (the record's way raises or decides)."""
    by_record, by_wire, _ = engines
    from kernel.synth import generate
    message = convert.ACCOUNT.encode(generate(1, seed=3, as_of=AS_OF).to_pylist()[0])
    message.brand, message.model = "NOT-A-BRAND", ""
    assert by_wire.kernel_inputs.stage(message)
    record = by_record.record(message)
    assert by_wire.kernel.decide_staged(AS_OF) == by_record.kernel.decide_record(record, AS_OF)
    assert by_wire.decide_account(message, AS_OF, NOW, False) == by_record.decide_response(record, AS_OF, NOW, False)
    message.gps_status = 99                                     # past the members: refused, words included
    assert not by_wire.kernel_inputs.stage(message)
    assert _outcome(lambda: by_wire.decide_account(message, AS_OF, NOW, False)) == \
        _outcome(lambda: by_record.decide_response(by_record.record(message), AS_OF, NOW, False))


def test_no_wire_way_where_the_kernel_does_not_read_the_book_as_it_is(engines):
    """With a ledger (its state replaces book values) or an experiment (its arm) the engine
    offers no wire way, nor for a kernel reading a column the message does not carry."""
    from types import SimpleNamespace

    from kernel.server.engine import Engine
    from kernel.server.wire import KernelInputs

    kernel = engines[0].kernel
    for ledger, experiment in ((object(), None), (None, object())):
        pipeline = SimpleNamespace(ledger=ledger, experiment=experiment)
        assert Engine(kernel, pipeline, path="", loaded_at=NOW, compile_seconds=0.0).kernel_inputs is None
    decoder = engines[0].account_record._fast
    assert KernelInputs.for_kernel(decoder, kernel) is not None
    layout, bits = kernel.record_layout
    for bent in (("not_in_the_book",) + layout[0][1:],          # a column the message lacks
                 (layout[0][0], "f64") + layout[0][2:]):        # an int read as a float
        stand_in = SimpleNamespace(record_layout=((bent, *layout[1:]), bits))
        assert KernelInputs.for_kernel(decoder, stand_in) is None


def _mangled(data: bytes, rng: random.Random) -> bytes:
    """A request's bytes changed one way protobuf may read, merge, skip or refuse: a byte
    flipped or set, the bytes cut, a field repeated, unknown fields (large numbers, groups),
    a text made invalid UTF-8 (overlong, surrogate, cut), a key past protobuf's largest."""
    how = rng.randrange(9)
    at = rng.randrange(len(data))
    if how == 0:
        return data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1:]
    if how == 1:
        return data[:at] + bytes([rng.randrange(256)]) + data[at + 1:]
    if how == 2:
        return data[:at]
    if how == 3:                 # a field again: the Account (merged), as_of, now or actions (replaced)
        extra = rng.choice([decision_pb2.DecideRequest(actions=rng.random() < 0.5),
                            decision_pb2.DecideRequest(as_of=convert.date_message(dt.date(2026, 1, 2))),
                            decision_pb2.DecideRequest(now=convert.timestamp_message(NOW)),
                            decision_pb2.DecideRequest(account=contract_pb2.Account(dpd=3))]).SerializeToString()
        return data + extra
    if how == 4:                 # unknown fields: varint, fixed, bytes, a group, a huge field number
        return data + rng.choice([b"\x28\x01", b"\xf8\xff\xff\xff\x0f\x01", b"\x31" + bytes(8),
                                  b"\x2a\x03abc", b"\x2b\x2c", b"\x2b", b"\xf8\xff\xff\xff\x1f\x01"])
    if how in (5, 6):            # the account id (the Account's first field) invalid or odd UTF-8
        message = decision_pb2.DecideRequest.FromString(data)
        bad = rng.choice([b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\xff",
                          b"\xc3\xa9", b"\xf0\x9f\x98\x80", b""])
        raw = message.account.SerializeToString()
        assert raw[0] == 0x0A            # field 1, length-delimited: account_id
        n = raw[1]
        text = raw[2:2 + n][:3] + bad
        account = bytes([0x0A, len(text)]) + text + raw[2 + n:]
        rest = message.SerializeToString()
        rest = rest[rest.index(raw) + len(raw):]
        return bytes([0x0A]) + _varint(len(account)) + account + rest
    if how == 7:                 # the date or instant out of range or invalid
        return data + rng.choice([decision_pb2.DecideRequest(as_of={"year": 1899, "month": 12, "day": 31}),
                                  decision_pb2.DecideRequest(as_of={"year": 2026, "month": 2, "day": 30}),
                                  decision_pb2.DecideRequest(now={"seconds": -10**12}),
                                  decision_pb2.DecideRequest(now={"nanos": -1})]).SerializeToString()[:]
    return data[:at] + data[at + 1:]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append(n & 0x7F | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def test_request_bytes_are_read_as_protobuf_reads_them_or_handed_over(engines):
    """Requests' bytes mangled (3,000, on 300 generated accounts; a third asking for actions,
    set or unset): whenever the request pass takes a request, protobuf parses the same bytes
    without error, to a request whose answer through the wire's way — with its audit record's
    as_of and now, and actions as protobuf reads them (unset: true) — is the one given, byte
    for byte; the audit record's as_of and now are the request's, or when unset the server's
    UTC day and clock at the call (each within the contract's range); the rest it hands over."""
    from kernel.audit import read_audit

    by_record, by_wire, by_request = engines
    audit = by_request.pipeline.audit
    audit.flush()
    before = sum(1 for _ in read_audit(audit.path))
    rng = random.Random(11)
    taken = []
    for i, message in enumerate(_accounts(300, seed=5)):
        for _ in range(10):
            asked = rng.choice([False, False, True, None])
            data = _mangled(_request_bytes(message, asked, *rng.choice([(AS_OF, NOW), (None, NOW), (AS_OF, None)])),
                            rng)
            called = dt.datetime.now(dt.timezone.utc)
            answer = by_request.decide_request(data)
            if answer is None:
                continue
            parsed = decision_pb2.DecideRequest.FromString(data)          # protobuf reads them too
            assert parsed.HasField("account"), i
            taken.append((i, parsed, answer, called, dt.datetime.now(dt.timezone.utc)))
    with_actions = sum(1 for _, parsed, _, _, _ in taken if not parsed.HasField("actions") or parsed.actions)
    assert len(taken) > 500 and with_actions > 150, (len(taken), with_actions)
    audit.flush()
    records = list(read_audit(audit.path))[before:]
    assert len(records) == len(taken)
    slack = dt.timedelta(milliseconds=1)                      # (two clocks' roundings)
    for (i, parsed, answer, called, returned), record in zip(taken, records):
        as_of = dt.date.fromisoformat(record.meta["as_of"])           # (the log keeps them as ISO text)
        now = dt.datetime.fromisoformat(record.meta["now"])
        if parsed.HasField("as_of"):
            assert as_of == convert.date_value(parsed.as_of, "as_of"), i
        else:
            assert as_of in (called.date(), returned.date()), i
        if parsed.HasField("now"):
            assert now == convert.timestamp_value(parsed.now, "now"), i
        else:
            assert called - slack <= now <= returned + slack, i
        actions = parsed.actions if parsed.HasField("actions") else True
        assert answer == _outcome(lambda: by_wire.decide_account(parsed.account, as_of, now, actions)), i
        assert record.decisions.column("account_id")[0].as_py() == parsed.account.account_id, i


def test_request_pass_hands_over_calls_with_actions_and_undecodable_bytes(engines):
    """A call with actions (set or unset: the default is true) unless the decider is asked to
    take them (Decide's way, which then says they were asked), no Account, or bytes protobuf
    refuses: the request pass hands it over."""
    _, _, by_request = engines
    from kernel.synth import generate
    message = convert.ACCOUNT.encode(generate(1, seed=3, as_of=AS_OF).to_pylist()[0])
    decider = by_request.request_decider
    assert decider.decide(_request_bytes(message, False)) is not None and not decider.actions_asked()
    for asked in (True, None):
        data = _request_bytes(message, asked)
        assert decider.decide(data) is None
        assert decider.decide(data, with_actions=True) is not None and decider.actions_asked()
        assert decider.decide(_request_bytes(message, False), with_actions=True) is not None
        assert not decider.actions_asked()
    for data in (decision_pb2.DecideRequest(actions=False).SerializeToString(), b"\xff\xff", b"\x0a\x05ab",
                 _request_bytes(message, False)[:-1], decision_pb2.DecideRequest(actions=True).SerializeToString()):
        assert decider.decide(data, with_actions=True) is None and by_request.decide_request(data) is None


@pytest.mark.parametrize("zone", ["Mars/Olympus", "UTC+8", "", "Asia/Shanghai\x00", "asia/shanghai", "Asia/Shanghai",
                                  "America/New_York", "Etc/GMT+8", "posixrules"])
def test_a_zone_zoneinfo_does_not_know_is_refused_by_every_way_in(engines, zone):
    """Each compiled way in (the Account's bytes into the kernel's inputs, the request's bytes
    decided in one call, the record read off the wire) hands an unknown time zone over, and
    the careful path refuses it naming account.time_zone — whether or not actions are planned;
    a zone zoneinfo knows is decided, by the compiled ways when zoneinfo lists it (posixrules:
    opened, not listed, so handed over and decided by the record's way)."""
    from kernel.localtime import known_zone, listed_zones
    from kernel.synth import generate

    by_record, by_wire, by_request = engines
    message = convert.ACCOUNT.encode(generate(1, seed=11, as_of=AS_OF).to_pylist()[0])
    message.time_zone = zone
    known, listed = known_zone(zone), zone in listed_zones()
    assert by_wire.kernel_inputs.stage(message) is listed
    assert (by_wire.account_record._fast(message) is not None) is listed
    data = _request_bytes(message, False)
    assert (by_request.request_decider.decide(data) is not None) is listed
    asking = _request_bytes(message, True)
    assert (by_request.request_decider.decide(asking, with_actions=True) is not None) is listed
    for actions in (False, True):
        expected = _outcome(lambda: by_record.decide_response(by_record.record(message), AS_OF, NOW, actions))
        assert _outcome(lambda: by_wire.decide_account(message, AS_OF, NOW, actions)) == expected
        if known:
            assert expected[0] != "refused"
        else:
            assert expected[0] == "refused" and expected[1][0].startswith("account.time_zone: ")
            assert "not an IANA time zone" in expected[2]
    answer = _by_request(by_request, data)
    assert (answer is not None) is listed
