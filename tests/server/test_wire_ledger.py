"""A Decide with a ledger the wire way (``Engine.decide_account`` through
``ledger_inputs``: the Account's bytes staged into the kernel's inputs, the ledger's state
written over them by ``join.StateInputs``) against the record's way (``Engine.record`` then
``Engine.decide_response``: the record joined with the state by ``join_state_record``): the
same response bytes, refusals, kernel decisions and audit records.

Generated books with ingested histories (``kernel.synth``), a sixth of the accounts unknown
to the ledger, a third with some of the book's replaced columns cleared (null where the
ledger has nothing); each account asked at several instants — a morning, around the next
local midnight (± 1 µs) and around its last rows' look-back and the patterns' look-backs
and silences — forwards (the rows cache's and the kept folds' way), under both
``[ledger] book_counters``; half the decision-only calls by their request's bytes
(``Engine.decide_request``: Decide's way, no protobuf
parse)."""
from __future__ import annotations

import datetime as dt
import random
import zoneinfo

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from kernel.hookspecs import US_PER_DAY
from kernel.server import convert

AS_OF = dt.date(2026, 11, 28)
MORNING = dt.datetime(2026, 11, 28, 1, 30, tzinfo=dt.timezone.utc)
ACCOUNTS = 420
UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def book_and_store(tmp_path_factory):
    """A generated book and its histories ingested into a SQLite ledger, but for every sixth
    account (unknown to the ledger)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from kernel.ledger import Ledger
    from kernel.synth import generate, generate_events

    book = generate(ACCOUNTS, seed=23, as_of=AS_OF)
    history = generate_events(ACCOUNTS, seed=23, as_of=AS_OF)
    unknown = book["account_id"].to_pylist()[::6]
    history = history.filter(pc.invert(pc.is_in(history["account_id"], value_set=pa.array(unknown))))
    store = f"sqlite:///{tmp_path_factory.mktemp('wire-ledger') / 'ledger.db'}"
    with Ledger(store) as ledger:
        ledger.ingest(history)
    return book, store, frozenset(unknown)


def _engines(store: str, folder, book_counters: str):
    """Two engines over one kernel, each pipeline with its own ledger (over the same store)
    and audit log: the record's way and the wire's."""
    from kernel.ledger import Ledger
    from kernel.pipeline import Pipeline
    from kernel.runtime import Kernel
    from kernel.server.engine import Engine

    kernel = Kernel.load(progress=False)
    config = {"ledger": {"book_counters": book_counters}}
    return [Engine(kernel, Pipeline(kernel, config=config, ledger=Ledger(store, config),
                                    audit_path=folder / f"{name}.log", audit_sync="interval"),
                   path="", loaded_at=MORNING, compile_seconds=0.0) for name in ("record", "wire")]


def _us(at: dt.datetime) -> int:
    return (at - EPOCH) // dt.timedelta(microseconds=1)


def _instants(ledger, account: str, zone: str) -> list[dt.datetime]:
    """The morning; the next local midnight ± 1 µs; the account's last rows leaving the
    look-back and the patterns' look-backs and silences after them, ± 1 µs (those within 40
    days): in order."""
    from kernel.ledger import state as S

    info = zoneinfo.ZoneInfo(zone)
    midnight = dt.datetime.combine(MORNING.astimezone(info).date() + dt.timedelta(days=1), dt.time(0), tzinfo=info)
    out = {_us(MORNING)} | {_us(midnight) + d for d in (-1, 0, 1)}
    s = ledger.settings
    at = _us(MORNING)
    rows, _, _ = ledger.store.account_rows(None, account, at, at - s.lookback_us, at - S.P.lookback_us(s))
    spans = [s.lookback_us] + [x for pair in S._program(s).patterns[:, (2, 4)].tolist() for x in pair if x >= 0]
    for row in rows[-2:]:
        for span in spans:
            out |= {row[1] + span + d for d in (-1, 0, 1)}
    return [EPOCH + dt.timedelta(microseconds=t) for t in sorted(out) if _us(MORNING) <= t <= _us(MORNING) + 40 * US_PER_DAY]


def _cleared(message, rng: random.Random):
    """Some of the book's columns the ledger's state replaces cleared (null in the book)."""
    for name in rng.sample(["insurance_expiry_date", "gps_offline_hours", "gps_status", "geofence_exits_30d",
                            "promises_broken_30d", "repossessed", "calls_7d"], rng.randint(1, 3)):
        if message.DESCRIPTOR.fields_by_name[name].has_presence:
            message.ClearField(name)
    return message


def _request_bytes(message, as_of: dt.date, now: dt.datetime) -> bytes:
    """A decision-only DecideRequest's bytes for ``message`` as of ``as_of`` at ``now``."""
    from kernel.server._proto.postloan.v1 import decision_pb2

    request = decision_pb2.DecideRequest(account=message, actions=False)
    request.as_of.CopyFrom(convert.date_message(as_of))
    request.now.CopyFrom(convert.timestamp_message(now))
    return request.SerializeToString()


def _outcome(call):
    from kernel.server.status import FieldError
    try:
        return call()
    except FieldError as e:
        return ("refused", e.args, str(e))


@pytest.mark.parametrize("book_counters", ["fallback", "ignore"])
def test_a_decide_with_a_ledger_the_wire_way_gives_the_records_bytes_and_audit_records(book_and_store, tmp_path,
                                                                                       book_counters):
    from kernel.audit import read_audit
    from kernel.hookspecs import Record

    book, store, unknown = book_and_store
    by_record, by_wire = _engines(store, tmp_path, book_counters)
    way = by_wire.ledger_inputs
    assert way is not None and by_wire.kernel_inputs is None
    assert by_wire.ledger_decider is not None         # (the kernel and the response's bytes: one compiled call)
    kernel, ledger = by_wire.kernel, by_wire.pipeline.ledger
    rng = random.Random(5)
    rows = book.to_pylist() if book_counters == "fallback" else book.slice(0, 140).to_pylist()
    calls = written = known = by_request = 0
    for i, row in enumerate(rows):
        message = convert.ACCOUNT.encode(row)
        if rng.random() < 0.33:
            message = _cleared(message, rng)
        for now in _instants(ledger, row["account_id"], row["time_zone"]):
            as_of = now.date()
            actions = rng.random() < 0.25
            expected = _outcome(lambda: by_record.decide_response(by_record.record(message), as_of, now, actions))
            # a decision-only call half the time by its request's bytes (Decide's way: no protobuf parse)
            answer = noted = None
            if not actions and rng.random() < 0.5:
                noted = []
                answer = by_wire.decide_request(_request_bytes(message, as_of, now), noted.append)
            if answer is not None:
                by_request += 1
                assert noted == [row["account_id"]]
                got = answer
            else:
                got = _outcome(lambda: by_wire.decide_account(message, as_of, now, actions))
            assert got == expected, (i, now, actions, answer is not None)
            if expected[0] == "refused":
                continue
            calls += 1
            # the staged inputs decide as the joined record does, value for value and type for type
            if not way.inputs.stage(message):            # (a member the kernel does not know)
                continue
            values = ledger.registered_state_values(way.registry(message), now)
            known += values["ledger_events"] > 0
            if way.state.write(kernel.record_inputs(), values):
                written += 1
                staged = Record(kernel.decide_staged(as_of))
                record = by_record.pipeline.join_state_values(by_record.record(message), as_of, values)
                reference = kernel.decide_record(record, as_of)
                assert staged == reference, (i, now)
                assert {k: type(v) for k, v in staged.items()} == {k: type(v) for k, v in reference.items()}
    assert written > 0.9 * calls > 2 * len(rows) and 0 < known < calls, (written, calls, known)
    assert by_request > 0.2 * calls, (by_request, calls)
    for engine in (by_record, by_wire):
        engine.pipeline.audit.flush()
    left = list(read_audit(by_record.pipeline.audit.path))
    right = list(read_audit(by_wire.pipeline.audit.path))
    assert len(left) == len(right) == calls
    for a, b in zip(left, right):
        assert a.meta == b.meta
        assert a.decisions.equals(b.decisions) and a.actions.equals(b.actions)
    for engine in (by_record, by_wire):
        engine.pipeline.audit.close()
        engine.pipeline.ledger.close()


def test_no_wire_way_with_a_ledger_where_the_writer_does_not_take_a_column():
    """An experiment (its arm) gives no wire way with a ledger either; a kernel reading a
    state-only column (the record's join derives it from the book), an instant or a state
    column stored otherwise than the writer writes it gives no state writer."""
    from types import SimpleNamespace

    from kernel.ledger.join import StateInputs
    from kernel.runtime import Kernel
    from kernel.server.engine import Engine

    kernel = Kernel.load(progress=False)
    pipeline = SimpleNamespace(ledger=object(), experiment=object(), book_counters="fallback")
    assert Engine(kernel, pipeline, path="", loaded_at=MORNING, compile_seconds=0.0).ledger_inputs is None
    layout = kernel.record_layout[0]
    assert StateInputs.for_layout(layout) is not None and StateInputs.for_layout(layout, "ignore") is not None
    assert StateInputs.for_layout(layout, "sometimes") is None
    t = SimpleNamespace(kind="int")
    for entry in (("promise_open", "bits", 0, 1, SimpleNamespace(kind="bool"), None),
                  ("last_conversation_at", "i64", 0, 1, t, None),
                  ("calls_7d", "f64", 0, 1, SimpleNamespace(kind="float"), None),
                  ("gps_status", "u8", 0, 1, SimpleNamespace(kind="category"), {})):
        assert StateInputs.for_layout(layout + (entry,)) is None, entry


@pytest.fixture(scope="module")
def kept_engines(tmp_path_factory):
    """A smaller generated book and history in a store of its own (the test below ingests
    into it), and the record's and the wire's engines over it; two accounts in three
    without GPS pings (a car's GPS state moves with the clock: its state bytes are never
    kept)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from kernel.ledger import Ledger
    from kernel.synth import generate, generate_events

    book = generate(60, seed=31, as_of=AS_OF)
    history = generate_events(60, seed=31, as_of=AS_OF)
    tracked = pa.array(book["account_id"].to_pylist()[::3])
    history = history.filter(pc.or_(pc.not_equal(history["kind"], "GPS_PING"),
                                    pc.is_in(history["account_id"], value_set=tracked)))
    store = f"sqlite:///{tmp_path_factory.mktemp('kept-state') / 'ledger.db'}"
    ids = book["account_id"].to_pylist()
    with Ledger(store) as ledger:
        ledger.ingest(history)
        # a call the morning of every account: "today"'s counters turn at its next local midnight
        ledger.ingest(pa.table({"event_id": [f"morning-{a}" for a in ids], "account_id": ids,
                                "kind": ["CONTACT_ATTEMPT"] * len(ids), "at": pa.array(
                                    [_us(MORNING) - 3_600_000_000] * len(ids), pa.timestamp("us", tz="UTC")),
                                "channel": ["PHONE"] * len(ids), "outcome": ["NO_ANSWER"] * len(ids)}),
                      now=_us(MORNING))
    engines = _engines(store, tmp_path_factory.mktemp("kept-audit"), "fallback")
    rows = book.to_pylist()
    ledger = engines[1].pipeline.ledger           # (each account's instants worth asking, before any test ingests)
    edges = {r["account_id"]: [_us(t) for t in _instants(ledger, r["account_id"], r["time_zone"])] for r in rows}
    yield rows, store, engines, edges
    for engine in engines:
        engine.pipeline.audit.close()
        engine.pipeline.ledger.close()


_KEPT_SPAN = 40 * US_PER_DAY


def _counting_kept(engine):
    """``engine``'s ledger decider with its ``decide_kept`` counting in a list the calls the
    kept state bytes answered (True) or not (False); undone by ``del decider.decide_kept``."""
    from kernel.server.wire_decide import STAGED

    decider, taken = engine.ledger_decider, []
    kept = decider.decide_kept

    def counted(*args):
        answer = kept(*args)
        taken.append(answer is not None and answer is not STAGED)
        return answer

    decider.decide_kept = counted
    return decider, taken


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_kept_state_bytes_answer_as_a_fresh_read_at_any_instant(kept_engines, data):
    """An account asked again by its request's bytes takes the state bytes kept for it
    (``LedgerInputs.kept_state``, written by the one compiled call) while their span and the
    store's version hold: at drawn instants (forwards, backwards), at each kept span's edges
    ± 1 µs and after another connection's ingest for the account, the response equals the
    record's way, and the kept bytes equal what the writer writes for a fresh read (a new
    ledger: no cache, no kept fold)."""
    import pyarrow as pa

    from kernel.ledger import Ledger

    rows, store, (by_record, by_wire), edges = kept_engines
    way, kernel = by_wire.ledger_inputs, by_wire.kernel
    row = rows[data.draw(st.integers(0, len(rows) - 1), label="account")]
    message, account = convert.ACCOUNT.encode(row), row["account_id"]
    start = _us(MORNING)
    queue = data.draw(st.lists(st.one_of(st.sampled_from(edges[account]),
                                         st.integers(start, start + _KEPT_SPAN)), min_size=2, max_size=8),
                      label="instants")
    ingest_at = data.draw(st.integers(0, len(queue)), label="ingest before")
    asked = 0
    decider, taken = _counting_kept(by_wire)
    try:
        while queue and asked < 40:
            if asked == ingest_at:            # another connection commits: every kept span ends
                with Ledger(store) as other:
                    other.ingest(pa.table({
                        "event_id": [f"kept-{account}-{asked}-{queue[0]}"], "account_id": [account],
                        "kind": ["CONTACT_ATTEMPT"], "at": pa.array([queue[0] - 1], pa.timestamp("us", tz="UTC")),
                        "channel": ["PHONE"], "outcome": ["NO_ANSWER"]}), now=queue[0])
            at = queue.pop(0)
            now = EPOCH + dt.timedelta(microseconds=at)
            asked_before = len(taken)
            got = by_wire.decide_request(_request_bytes(message, now.date(), now))
            assert got is not None
            assert got == by_record.decide_response(by_record.record(message), now.date(), now, False), (account, at)
            asked += 1
            entry = getattr(way._local, "kept", {}).get(message.SerializeToString())
            if len(taken) > asked_before and taken[-1]:
                with Ledger(store) as fresh:
                    values = fresh.state_values(account, row["time_zone"], at)
                at_, bytes_ = way.state.patch(values, kernel.record_inputs().shape[0])
                assert at_.tolist() == entry[6].tolist() and bytes_.tolist() == entry[7].tolist(), (account, at)
            if entry is not None and asked < 12:      # the span's edges, ± 1 µs
                queue[:0] = [t for t in (entry[4] - 1, entry[4], entry[4] + 1, entry[5] - 1, entry[5], entry[5] + 1)
                             if start <= t <= start + _KEPT_SPAN]
    finally:
        del decider.decide_kept
    _TAKEN.append(sum(taken))


#: per example of the test above, the questions the kept bytes answered
_TAKEN: list[int] = []


def test_an_account_asked_a_third_time_takes_its_kept_state_bytes(kept_engines, tmp_path):
    """The first question reads plainly, the second keeps the rows, their fold and the bytes
    written; the third, at the same moment with nothing committed since, is answered with
    those bytes by the one compiled call — and after the store's connections are reopened
    (another connection having committed), the state is read again before it is kept again."""
    import pyarrow as pa

    from kernel.ledger import Ledger

    rows, store, _, _ = kept_engines
    by_record, by_wire = _engines(store, tmp_path, "fallback")       # (nothing asked yet, nothing kept)
    ledger = by_wire.pipeline.ledger
    now = MORNING + dt.timedelta(hours=3)
    at = _us(now)
    # an account with events and no GPS rows (a car's state moves with the clock: never kept)
    row = next(r for r in rows if _plain(ledger, r["account_id"], at))
    message = convert.ACCOUNT.encode(row)
    decider, taken = _counting_kept(by_wire)
    try:
        for _ in range(3):
            assert by_wire.decide_request(_request_bytes(message, now.date(), now)) == \
                by_record.decide_response(by_record.record(message), now.date(), now, False)
        assert taken == [True]             # (the first two found nothing kept: no compiled call taken)
        # the store's connections closed and reopened: the kept bytes were the old connection's
        # (its counters say nothing of the new one's), whatever was committed meanwhile
        ledger.store.close()
        with Ledger(store) as other:
            other.ingest(pa.table({"event_id": [f"reopened-{row['account_id']}"], "account_id": [row["account_id"]],
                                   "kind": ["CONTACT_ATTEMPT"], "at": pa.array([at - 1], pa.timestamp("us", tz="UTC")),
                                   "channel": ["PHONE"], "outcome": ["RIGHT_PARTY"]}), now=at)
        for _ in range(3):
            assert by_wire.decide_request(_request_bytes(message, now.date(), now)) == \
                by_record.decide_response(by_record.record(message), now.date(), now, False)
    finally:
        del decider.decide_kept
        for engine in (by_record, by_wire):
            engine.pipeline.audit.close()
            engine.pipeline.ledger.close()
    assert taken == [True, True], taken     # (read twice again, kept, then taken)


def _plain(ledger, account: str, at: int) -> bool:
    """Whether ``account`` has events and no GPS rows as of ``at``."""
    events, gps, offline = ledger.store.account_rows(None, account, at, at - ledger.settings.lookback_us,
                                                     at - ledger.settings.lookback_us)
    return bool(events) and gps is None and not offline
