"""The Account's wire bytes straight into the kernel's inputs (``wire.KernelInputs``,
``Engine.decide_account``) against the record's way (``Engine.record`` then
``Engine.decide_response``): the same decisions, response bytes, refusals and audit records,
on generated accounts and on accounts bent where the wire pass must hand over."""
from __future__ import annotations

import datetime as dt
import random

import pytest

from kernel.server import convert
from kernel.server._proto.postloan.v1 import contract_pb2

AS_OF = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 9, 30, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    """Two engines over one kernel, each pipeline with its own audit log: the record's way
    and the wire's."""
    from kernel.pipeline import Pipeline
    from kernel.runtime import Kernel
    from kernel.server.engine import Engine

    kernel = Kernel.load(progress=False)
    folder = tmp_path_factory.mktemp("wire-kernel")
    made = [Engine(kernel, Pipeline(kernel, audit_path=folder / f"{name}.log", audit_sync="interval"),
                   path="", loaded_at=NOW, compile_seconds=0.0) for name in ("record", "wire")]
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


def _accounts(n: int, seed: int):
    from kernel.synth import generate
    rng = random.Random(seed)
    messages = [convert.ACCOUNT.encode(r) for r in generate(n, seed=seed, as_of=AS_OF).to_pylist()]
    return [(_bent(m, rng) if rng.random() < 0.3 else m) for m in messages]


def test_the_wire_way_gives_the_records_decisions_bytes_and_audit_records(engines):
    """2,000 generated accounts (30 % bent), decision-only and with actions: the same
    response bytes (or the same refusal) both ways, the kernel's decisions equal value for
    value and type for type, and the two audit logs the same records."""
    from kernel.audit import read_audit

    by_record, by_wire = engines
    direct = by_wire.kernel_inputs
    assert direct is not None
    kernel = by_wire.kernel
    taken = refused = 0
    for i, message in enumerate(_accounts(2000, seed=7)):
        actions = i % 4 == 0                    # the strategy's way costs more: a quarter of them
        expected = _outcome(lambda: by_record.decide_response(by_record.record(message), AS_OF, NOW, actions))
        got = _outcome(lambda: by_wire.decide_account(message, AS_OF, NOW, actions))
        assert got == expected, (i, actions)
        refused += expected[0] == "refused"
        if direct.stage(message):
            taken += 1
            staged = kernel.decide_staged(AS_OF)
            record = by_record.pipeline.record_with_state(by_record.record(message), AS_OF, NOW)
            reference = kernel.decide_record(record, AS_OF)
            assert staged == reference, i
            assert {k: type(v) for k, v in staged.items()} == {k: type(v) for k, v in reference.items()}
    assert taken > 1200 and refused > 50, (taken, refused)
    for engine in engines:
        engine.pipeline.audit.flush()
    left = list(read_audit(by_record.pipeline.audit.path))
    right = list(read_audit(by_wire.pipeline.audit.path))
    assert len(left) == len(right) == 2000 - refused
    for a, b in zip(left, right):
        assert a.meta == b.meta
        assert a.decisions.equals(b.decisions) and a.actions.equals(b.actions)


def test_unknown_members_and_categories_take_the_records_way(engines):
    """A category no model knows is staged as the kernel stages it (code 255); an enum member
    the kernel lacks hands the account over (the record's way raises or decides)."""
    by_record, by_wire = engines
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
