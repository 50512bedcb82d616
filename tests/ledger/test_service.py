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


def test_the_state_of_an_account_the_ledger_never_heard_of_is_not_found(served):
    with Client(f"127.0.0.1:{served.port}") as client:
        with pytest.raises(CallError) as e:
            client.state("NEVER-SEEN-0001")
        assert e.value.code.name == "NOT_FOUND" and "NEVER-SEEN-0001" in str(e.value)
        # one event is enough for the ledger to know the account (registered or not)
        now = dt.datetime.now(UTC)
        client.ingest(pa.table({"event_id": ["known-1"], "account_id": ["SEEN-ONCE-0001"], "kind": ["PAYMENT"],
                                "at": pa.array([now], TS), "amount": [10.0]}))
        assert client.state("SEEN-ONCE-0001")["ledger_events"] == 1


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

    from kernel.server.ledger_service import _set_instant_us, _timestamp
    rng = random.Random(7)
    epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
    for us in [0, -1, 1, -1_000_000, 999_999] + [rng.randrange(-62_135_596_800_000_000, 253_402_300_799_000_000)
                                                   for _ in range(20_000)]:
        value = epoch + dt.timedelta(microseconds=us)
        expected = Timestamp()
        expected.FromDatetime(value)
        assert _timestamp(value) == expected, value
        from_us = Timestamp()                       # the gate's instants, written from µs
        _set_instant_us(from_us, us)
        assert from_us == expected, us
    assert _timestamp(None) is None


def test_an_unreadable_message_in_an_ingest_stream_is_invalid_argument(served):
    import grpc
    with grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        ingest = channel.stream_unary("/postloan.v1.Ledger/IngestEvents")
        with pytest.raises(grpc.RpcError) as e:
            ingest(iter([b"\x0a\xff\xff\xff\xff\x0f"]), timeout=30)
    assert e.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "message 0: not a valid postloan.v1.IngestEventsRequest message" in e.value.details()


_FIRST_CALLS = r"""
import datetime as dt, sys
from numba.core import event
from kernel.ledger import Ledger
from kernel.ledger.gate import GATED_CHANNELS, check_contact
from kernel.server.engine import load_engine
from kernel.synth import generate
ledger = Ledger(sys.argv[1])
book = generate(20, seed=8)
ledger.register(book)
ids = book["account_id"].to_pylist()
engine = load_engine(None, audit_path=sys.argv[2], ledger=ledger)
now = dt.datetime.now(dt.timezone.utc)
with event.install_recorder("numba:compiler_lock") as taken:
    for hours in (0, 8, 16):
        for k, channel in enumerate(GATED_CHANNELS):
            check_contact(ledger, engine.pipeline.judge, ids[(k + hours) % 20], channel, now + dt.timedelta(hours=hours),
                          now=now)
    ledger.state(at=now, accounts=ids[:2])
print(len(taken.buffer))
"""


def test_the_warm_up_readies_the_gate_so_the_first_dialer_pays_nothing(tmp_path):
    """A server with --store is SERVING only once the gate's compiled parts are loaded: the
    first CheckContact of each channel (KEEP, DEFER, BLOCK) and GetState load or compile no
    Numba function (each would take Numba's compiler lock: 1.4–1.9 s on an empty cache), in a
    fresh process so that no other test has loaded them before."""
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-c", _FIRST_CALLS, f"sqlite:///{tmp_path / 'ledger.db'}",
                           str(tmp_path / "audit.log")], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "0", "a first gate call loaded or compiled a Numba function"


def test_an_unknown_time_zone_is_refused_by_decide_and_named_when_a_stored_registration_holds_one(served):
    """With a ledger too a Decide of an account whose time_zone zoneinfo does not know is
    INVALID_ARGUMENT naming the field, and registers nothing; an account whose stored
    registration holds such a zone (an older ledger) makes CheckContact and GetState answer
    FAILED_PRECONDITION naming the account and the zone — until a Decide registers it again."""
    now = dt.datetime.now(UTC)
    account = generate(3, seed=9).to_pylist()[1]
    account.update(account_id="TZ-0001", country="US", time_zone="Mars/Olympus", phone_valid=True)
    with Client(f"127.0.0.1:{served.port}") as client:
        for actions in (False, True):
            with pytest.raises(CallError) as e:
                client.decide(account, now.date(), now=now, actions=actions)
            assert e.value.code.name == "INVALID_ARGUMENT" and e.value.field == "account.time_zone"
            assert "'Mars/Olympus' is not an IANA time zone" in str(e.value)
        assert client.check_contact("TZ-0001", "PHONE", now)["reason_code"] == "GATE_UNKNOWN_ACCOUNT"
        client.decide({**account, "time_zone": "America/New_York"}, now.date(), now=now)
        ledger = served.engine.pipeline.ledger
        stored = ledger.store.registered(["TZ-0001"])["TZ-0001"][1:]
        ledger.store.register([("TZ-0001", "Mars/Olympus", *(int(v) if type(v) is bool else v for v in stored))], 0)
        for ask in (lambda: client.check_contact("TZ-0001", "PHONE", now), lambda: client.state("TZ-0001")):
            with pytest.raises(CallError) as e:
                ask()
            assert e.value.code.name == "FAILED_PRECONDITION"
            assert "account 'TZ-0001': its registered time_zone: 'Mars/Olympus' is not an IANA" in str(e.value)
        ledger._registered.clear()              # (this process remembered the good registration)
        client.decide({**account, "time_zone": "America/New_York"}, now.date(), now=now)
        assert "ledger_events" in client.state("TZ-0001")
