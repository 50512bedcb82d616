"""Decisions read the ledger's state: holds, cadence, counters replaced (docs/ledger.md)."""
from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from kernel.ledger import Ledger
from kernel.pipeline import Pipeline
from kernel.synth import generate

UTC = dt.timezone.utc
TS = pa.timestamp("us", tz="UTC")
AS_OF = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 2, 30, tzinfo=UTC)          # 10:30 in Beijing


@pytest.fixture(scope="module")
def kernel():
    from kernel.runtime import Kernel
    return Kernel.load()


@pytest.fixture(scope="module")
def book():
    b = generate(4_000, seed=21, as_of=AS_OF)
    cn = pc.equal(b["country"].cast(pa.string()), "CN")
    return b.filter(cn)


def actions_of(result, account):
    a = result.actions
    return [r["action"] for r in a.filter(pc.equal(a["account_id"], account)).to_pylist()]


def pick(result, channel):
    d = result.decisions
    return d.filter(pc.equal(d["collection_tier.channel"].cast(pa.string()), channel))["account_id"].to_pylist()


def table(rows):
    names = sorted({k for r in rows for k in r})
    types = {"at": TS, "promise_date": pa.date32(), "amount": pa.float64()}
    return pa.table({n: pa.array([r.get(n) for r in rows], types.get(n, pa.string())) for n in names})


def test_an_open_promise_stops_calls_until_its_date_and_a_dispute_stops_everything(kernel, book, tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    pipeline = Pipeline(kernel, audit_path=tmp_path / "audit.log", ledger=ledger, config={})
    before = pipeline.run(book, AS_OF, NOW)
    called = [a for a in pick(before, "PHONE") if "PHONE" in actions_of(before, a)]
    visited = [a for a in pick(before, "FIELD_VISIT") if "FIELD_VISIT" in actions_of(before, a)]
    promised, disputed, visited_yesterday = called[0], called[1], visited[0]
    ledger.ingest(table([
        {"event_id": "p", "account_id": promised, "kind": "PROMISE_TO_PAY", "at": NOW - dt.timedelta(hours=20),
         "amount": 1000.0, "promise_date": dt.date(2026, 12, 1)},
        {"event_id": "d", "account_id": disputed, "kind": "DISPUTE_OPENED", "at": NOW - dt.timedelta(days=2)},
        {"event_id": "v", "account_id": visited_yesterday, "kind": "CONTACT_ATTEMPT", "channel": "FIELD_VISIT",
         "outcome": "RIGHT_PARTY", "at": NOW - dt.timedelta(days=1)},
    ]), now=NOW)
    held = pipeline.run(book, AS_OF, NOW)
    assert actions_of(held, promised) == ["SMS"]                 # a reminder only
    assert actions_of(held, disputed) == []
    assert "FIELD_VISIT" not in actions_of(held, visited_yesterday)
    # after the promised date and its day of grace, unpaid: calls resume; a week after the visit, visits too
    later = dt.datetime(2026, 12, 5, 2, 30, tzinfo=UTC)
    resumed = pipeline.run(book, dt.date(2026, 12, 5), later)
    assert "PHONE" in actions_of(resumed, promised) or "FIELD_VISIT" in actions_of(resumed, promised)
    assert "FIELD_VISIT" in actions_of(resumed, visited_yesterday)
    assert actions_of(resumed, disputed) == []                   # still disputed
    ledger.close()


def test_counters_come_from_the_ledger_for_accounts_it_knows(kernel, book, tmp_path):
    """The book says three connected calls today for one account; the ledger, which knows it,
    says none: the ledger's count decides (and the other accounts keep their book's)."""
    account = book["account_id"][0].as_py()
    rigged = book.set_column(book.schema.get_field_index("connected_calls_today"), "connected_calls_today",
                             pa.array([3] + [0] * (book.num_rows - 1), pa.int64()))
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    pipeline = Pipeline(kernel, audit_path=tmp_path / "audit.log", ledger=ledger, config={})
    joined = pipeline.with_state(rigged, AS_OF, NOW)
    assert joined["connected_calls_today"][0].as_py() == 3                 # not known yet: the book's
    ledger.ingest(table([{"event_id": "x", "account_id": account, "kind": "PAYMENT", "at": NOW - dt.timedelta(days=3),
                          "amount": 10.0}]), now=NOW)
    joined = pipeline.with_state(rigged, AS_OF, NOW)
    assert joined["connected_calls_today"][0].as_py() == 0 and joined["ledger_events"][0].as_py() == 1
    assert joined["last_payment_amount"][0].as_py() == 10.0
    assert joined.column("connected_calls_today").to_pylist()[1:] == rigged.column("connected_calls_today").to_pylist()[1:]
    ignore = Pipeline(kernel, audit_path=tmp_path / "audit2.log", ledger=ledger, config={"ledger": {"book_counters": "ignore"}})
    assert ignore.with_state(rigged, AS_OF, NOW)["calls_7d"].to_pylist() == [0] * rigged.num_rows
    ledger.close()


def test_a_third_party_policy_reads_the_ledgers_state_through_the_action_batch(kernel, book, tmp_path):
    """Issue 15, point 8: the guide's NoSmsWhilePromised policy, against a real ledger: it sees
    the promise the ledger holds through ActionBatch.has / bool, and actions.batch is the
    accounts' Batch."""
    import re
    from pathlib import Path

    import kernel as kernel_module
    from kernel.hookspecs import Batch, CompliancePolicy, Verdicts
    from kernel.plugins import DEFAULT_CONFIG, PluginManager
    guide = (Path(__file__).resolve().parents[2] / "docs" / "plugin-guide.md").read_text("utf-8")
    code = re.search(r"```python\n(class NoSmsWhilePromised.*?)```", guide, re.S).group(1)
    scope = {"CompliancePolicy": CompliancePolicy, "Verdicts": Verdicts}
    exec(code, scope)                       # the guide's policy, as written there
    policy_class = scope["NoSmsWhilePromised"]
    seen = {}

    class Watched(policy_class):
        def check(self, actions):
            seen.update(batch=actions.batch, has=actions.has("promise_open"), missing=actions.has("no_such_column"))
            return super().check(actions)

    # first in the set: the first reason for a BLOCK is the one kept
    cn = ["acme.no_sms_while_promised"] + list(DEFAULT_CONFIG["compliance"]["sets"]["cn"])
    config = {"compliance": {"sets": {"cn": cn}}}
    pm = PluginManager(config)
    pm.register(type("P", (), {"postloan_compliance_policies": staticmethod(
        kernel_module.hookimpl(specname="postloan_compliance_policies")(lambda: [Watched()]))}), "acme")
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    pipeline = Pipeline(kernel, plugins=pm, audit_path=tmp_path / "audit.log", ledger=ledger)
    before = pipeline.run(book, AS_OF, NOW)
    def blocked(result):
        return {r["account_id"] for r in result.actions.to_pylist() if r["reason_code"] == "PROMISE_OPEN_NO_SMS"}
    texted = [r["account_id"] for r in before.actions.to_pylist() if r["action"] == "SMS"]
    promised = next(a for a in texted if a not in blocked(before))
    ledger.ingest(table([{"event_id": "p", "account_id": promised, "kind": "PROMISE_TO_PAY",
                          "at": NOW - dt.timedelta(hours=20), "amount": 1000.0,
                          "promise_date": dt.date(2026, 12, 1)}]), now=NOW)
    after = pipeline.run(book, AS_OF, NOW)
    rows = after.actions.to_pylist()
    mine = [r for r in rows if r["account_id"] == promised and r["action"] == "SMS"]
    assert mine and all((r["outcome"], r["reason_code"], r["policy"]) == ("BLOCK", "PROMISE_OPEN_NO_SMS",
                                                                          "acme.no_sms_while_promised") for r in mine)
    # the others it blocks are the accounts whose book already shows an open promise
    assert promised not in blocked(before) and blocked(after) == blocked(before) | {promised}
    assert isinstance(seen["batch"], Batch) and seen["has"] and not seen["missing"]
    ledger.close()
