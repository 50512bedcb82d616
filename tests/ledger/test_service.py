"""The Ledger gRPC service end to end: a server with --store, a client, real calls."""
from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from kernel.client import CallError, Client
from kernel.server.app import DecisionServer, ServerConfig
from kernel.synth import generate

UTC = dt.timezone.utc
TS = pa.timestamp("us", tz="UTC")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    store = f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'ledger.db'}"
    server = DecisionServer(ServerConfig(port=0, store=store, audit_path=str(tmp_path_factory.mktemp("a") / "audit.log")))
    server.start()
    server.wait_ready(600)
    yield server
    server.stop(0)


def next_ten_am_in_new_york(now: dt.datetime) -> dt.datetime:
    import zoneinfo
    local = now.astimezone(zoneinfo.ZoneInfo("America/New_York"))
    ten = local.replace(hour=10, minute=0, second=0, microsecond=0)
    return (ten if ten > local else ten + dt.timedelta(days=1)).astimezone(UTC)


def test_decide_registers_then_the_gate_reserves_and_the_report_counts(served):
    now = dt.datetime.now(UTC)
    at = next_ten_am_in_new_york(now)
    account = generate(3, seed=5).to_pylist()[0]
    account.update(country="US", time_zone="America/New_York", phone_valid=True, contact_opt_out=False)
    account_id = account["account_id"]
    with Client(f"127.0.0.1:{served.port}") as client:
        assert client.check_contact(account_id, "PHONE", at)["reason_code"] == "GATE_UNKNOWN_ACCOUNT"
        client.decide(account, now.date(), now=now)                  # registers the account for the gate
        first = client.check_contact(account_id, "PHONE", at)
        assert first["outcome"] == "KEEP" and first["reservation_id"] and first["expires_at"] > at
        second = client.check_contact(account_id, "PHONE", at + dt.timedelta(hours=1))
        assert (second["outcome"], second["reason_code"]) == ("DEFER", "REGF_RECENT_CONVERSATION")
        assert second["policy"] and second["reservation_id"] is None and second["expires_at"] is None
        # Regulation F: no call for 7 days after the conversation (from 08:00 in New York on day 8)
        assert at + dt.timedelta(days=6) < second["next_allowed_at"] < at + dt.timedelta(days=8)
        events = pa.table({"event_id": ["svc-1", "svc-2"], "account_id": [account_id] * 2,
                           "kind": ["CONTACT_ATTEMPT", "NOT_A_KIND"], "at": pa.array([now, now], TS),
                           "channel": ["PHONE", None], "outcome": ["NO_ANSWER", None],
                           "reservation_id": [first["reservation_id"], None]})
        result = client.ingest(events)
        assert (result["accepted"], result["duplicate"], result["rejected"]) == (1, 0, 1)
        assert result["rejections"][0]["row"] == 1 and result["rejections"][0]["event_id"] == "svc-2"
        assert client.ingest(events)["duplicate"] == 1
        state = client.state(account_id)
        assert state["ledger_events"] == 1 and state["consecutive_failed_attempts"] == 1
        assert state["last_contact_attempt_at"] == now.replace(microsecond=now.microsecond)
        assert client.check_contact(account_id, "PHONE", at + dt.timedelta(hours=2))["outcome"] == "KEEP"


def test_bad_questions_are_invalid_argument(served):
    with Client(f"127.0.0.1:{served.port}") as client:
        with pytest.raises(CallError) as e:
            client.check_contact("", "PHONE")
        assert e.value.field == "account_id"
        with pytest.raises(CallError) as e:
            client.ingest(pa.table({"event_id": ["x"]}))
        assert e.value.code.name == "INVALID_ARGUMENT" and "missing column" in str(e.value)


def test_a_check_contact_at_in_the_past_names_the_field(served):
    with Client(f"127.0.0.1:{served.port}") as client:
        with pytest.raises(CallError) as e:
            client.check_contact("A1", "PHONE", dt.datetime.now(UTC) - dt.timedelta(hours=2))
        assert e.value.field == "at" and "in the past" in str(e.value)
        assert "at: at:" not in str(e.value), "the field is named once"


def test_an_empty_batch_decided_with_the_state_is_an_empty_answer(served):
    """A DecideBatch of no rows through a ledger-backed server: no rows back, not an internal
    error (the state join read an enum column of no chunks)."""
    book = generate(4, seed=9)
    with Client(f"127.0.0.1:{served.port}") as client:
        decided = client.decide_batch(book.slice(0, 0), dt.date(2026, 11, 28))
        assert decided.num_rows == 0
        assert client.decide_batch(book, dt.date(2026, 11, 28)).num_rows == 4


def test_the_responses_timestamps_are_what_timestamp_from_datetime_gives():
    """CheckContact's answer stores its instants by integer arithmetic (from a datetime, and
    from the gate's µs): the same seconds and nanos as protobuf's own
    ``Timestamp.FromDatetime``, over the whole range of years, before the epoch included
    (seeded)."""
    import random

    from google.protobuf.timestamp_pb2 import Timestamp

    from kernel.server._proto.postloan.v1 import ledger_pb2
    from kernel.server.ledger_service import _timestamp, check_contact_answer
    rng = random.Random(7)
    epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
    for us in [0, -1, 1, -1_000_000, 999_999] + [rng.randrange(-62_135_596_800_000_000, 253_402_300_799_000_000)
                                                   for _ in range(20_000)]:
        value = epoch + dt.timedelta(microseconds=us)
        expected = Timestamp()
        expected.FromDatetime(value)
        assert _timestamp(value) == expected, value
        # the gate's instants, written from µs straight into the answer's bytes
        answer = ledger_pb2.CheckContactResponse.FromString(check_contact_answer("DEFER", None, us, None, None, None))
        assert answer.next_allowed_at == expected and answer.HasField("next_allowed_at"), us
    assert _timestamp(None) is None


def test_the_check_contact_answer_is_the_bytes_protobuf_writes():
    """CheckContact's answer, written straight as wire bytes, is byte for byte what protobuf
    serializes of the message holding the verdict's fields — every combination of set and
    unset fields, texts beyond ASCII and of 128 bytes and more, instants before the epoch and
    on whole seconds (seeded)."""
    import random

    from kernel.server._proto.postloan.v1 import contract_pb2, ledger_pb2
    from kernel.server.ledger_service import check_contact_answer
    rng = random.Random(11)
    texts = [None, "", "CN_QUIET_HOURS", "règle_ü€", "x" * 127, "y" * 128, "z" * 300]
    instants = [None, 0, -1, 1, 1_000_000, -1_000_000, 999_999, 1_765_000_000_000_000, -62_135_596_800_000_000,
                253_402_300_799_999_999]
    for _ in range(5_000):
        outcome = rng.choice(("KEEP", "DEFER", "BLOCK"))
        reason, policy, reservation = rng.choice(texts), rng.choice(texts), rng.choice(texts)
        next_allowed = rng.choice(instants + [rng.randrange(-10**17, 10**17)])
        expires = rng.choice(instants + [rng.randrange(-10**17, 10**17)])
        expected = ledger_pb2.CheckContactResponse(
            outcome=contract_pb2.ComplianceOutcome.Value(f"COMPLIANCE_OUTCOME_{outcome}"))
        if reason:
            expected.reason_code = reason
        if policy:
            expected.policy = policy
        if reservation:
            expected.reservation_id = reservation
        for field, us in (("next_allowed_at", next_allowed), ("expires_at", expires)):
            if us is not None:
                seconds, micros = divmod(us, 1_000_000)
                getattr(expected, field).seconds = seconds
                getattr(expected, field).nanos = micros * 1_000
        got = check_contact_answer(outcome, reason, next_allowed, policy, reservation, expires)
        assert got == expected.SerializeToString(deterministic=True), (outcome, reason, next_allowed, policy,
                                                                        reservation, expires)


def test_the_check_contact_question_reads_as_protobuf_parses_it():
    """CheckContact reads the usual request straight from its bytes and parses any other in
    full: account_id, channel and ``at`` come out as protobuf parses them — ids of every length
    around the one-byte limit, beyond ASCII, empty; channels unset, known, unknown, past one
    byte; ``at`` set; fields out of order, repeated or unknown; bytes that do not parse
    (FieldError on ``request``)."""
    import random

    from kernel.server._proto.postloan.v1 import ledger_pb2
    from kernel.server.app import RawRequest
    from kernel.server.ledger_service import _check_contact_question
    from kernel.server.status import FieldError
    rng = random.Random(5)
    message = "postloan.v1.CheckContactRequest"

    def question(data: bytes):
        return _check_contact_question(RawRequest(data, ledger_pb2.CheckContactRequest.FromString, message))

    samples = []
    for account in ("", "A", "AC0000012345", "a" * 125, "b" * 126, "c" * 127, "d" * 128, "Zoë-7", "\x00\x7f"):
        for channel in (0, 1, 2, 5, 7, 127, 128, 300, 2**31 - 1):
            request = ledger_pb2.CheckContactRequest(account_id=account, channel=channel)
            samples.append(request.SerializeToString())
            request.at.seconds, request.at.nanos = rng.randrange(-10**10, 10**10), rng.randrange(10**9)
            samples.append(request.SerializeToString())
    plain = ledger_pb2.CheckContactRequest(account_id="AC1", channel=2).SerializeToString()
    samples += [b"\x10\x02\x0a\x03AC1", plain + b"\x0a\x03AC2", plain + b"\x10\x03", plain + b"\x18\x07",
                plain + b"\x22\x00", b"\x0a\x03AC1\x10\x82\x01", b"\x0a\x04AC1", b"\x0a\x02\xc3\x28\x10\x02", b"\xff",
                b"", b"\x0a\x03AC1\x10"]
    for data in samples:
        try:
            expected = ledger_pb2.CheckContactRequest.FromString(data)
        except Exception:              # noqa: BLE001 — protobuf's DecodeError: the servicer says INVALID_ARGUMENT
            with pytest.raises(FieldError) as caught:
                question(data)
            assert caught.value.violations[0][0] == "request", data
            continue
        account_id, channel, at = question(data)
        assert (account_id, channel) == (expected.account_id, expected.channel), data
        assert at == (expected.at if expected.HasField("at") else None), data
