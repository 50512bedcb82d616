"""Decision runs kept beside the ledger's events (kernel.evaluation.records.RunStore), on
both stores: a run replaces a run of the same date whole, parts stream back in order, the
outcome events come back typed, and the report's figures are the same on SQLite and
PostgreSQL."""
from __future__ import annotations

import datetime as dt

import pyarrow as pa

from kernel.evaluation.kpis import Settings
from kernel.evaluation.records import ACTION, SNAPSHOT, RunStore
from kernel.evaluation.run import figures_from_store
from kernel.ledger import Ledger

UTC = dt.timezone.utc
D0 = dt.date(2026, 11, 1)


def _snapshots(k: int, accounts: list[str], dpd: int) -> pa.Table:
    day, at = D0 + dt.timedelta(days=k), dt.datetime.combine(D0 + dt.timedelta(days=k), dt.time(2), UTC)
    rows = [{"account_id": a, "as_of": day, "decided_at": at, "arm": "CHAMPION" if i % 2 else "CHALLENGER",
             "dpd": dpd, "bucket": "M1" if dpd else "M0", "bucket_30d_ago": "M0", "tier": "MILD",
             "outstanding_principal": 1000.0, "contract_date": dt.date(2025, 1, 5)} for i, a in enumerate(accounts)]
    return pa.Table.from_pylist([{f.name: r.get(f.name) for f in SNAPSHOT} for r in rows], schema=SNAPSHOT)


def _actions(k: int, account: str) -> pa.Table:
    at = dt.datetime.combine(D0 + dt.timedelta(days=k), dt.time(2), UTC)
    return pa.Table.from_pylist([{"account_id": account, "as_of": D0 + dt.timedelta(days=k), "decided_at": at,
                                  "action": "PHONE", "outcome": "BLOCK", "earliest_at": at}], schema=ACTION)


def test_runs_are_kept_replaced_and_read_back(ledger_url, monkeypatch):
    import kernel.evaluation.records as records
    monkeypatch.setattr(records, "PART_ROWS", 3)             # several parts per run
    ledger = Ledger(ledger_url)
    runs = RunStore(ledger)
    accounts = [f"A{i}" for i in range(7)]
    runs.record_run(D0, _snapshots(0, accounts, 3), _actions(0, "A1"))
    runs.record_run(D0 + dt.timedelta(days=1), _snapshots(1, accounts, 4), _actions(1, "A2"))
    runs.record_run(D0, _snapshots(0, accounts[:5], 5))      # replaces the first run whole
    assert runs.runs() == [D0, D0 + dt.timedelta(days=1)]
    snaps = runs.read("snapshots")
    assert snaps.num_rows == 12 and snaps["dpd"].to_pylist() == [5] * 5 + [4] * 7
    assert runs.read("actions")["account_id"].to_pylist() == ["A2"]
    at = dt.datetime(2026, 11, 2, 10, tzinfo=UTC)
    ledger.ingest(pa.table({"event_id": ["e1", "e2"], "account_id": ["A1", "A1"], "kind": ["CONTACT_ATTEMPT", "PAYMENT"],
                            "at": pa.array([at, at], pa.timestamp("us", tz="UTC")), "channel": ["PHONE", None],
                            "outcome": ["RIGHT_PARTY", None], "amount": [None, 250.0], "agent": ["bob", None]}),
                  now=at + dt.timedelta(minutes=1))
    events = runs.events()
    assert events.to_pylist()[0]["kind"] == "CONTACT_ATTEMPT" and events["amount"].to_pylist() == [None, 250.0]
    assert events["agent"].to_pylist() == ["bob", None] and events["outcome"].to_pylist() == ["RIGHT_PARTY", None]
    # a second RunStore on the same ledger (another process) sees the same layout
    assert RunStore(ledger_url).runs() == runs.runs()
    figures = figures_from_store(ledger, Settings())
    assert figures["kpis"]["rpc_rate"]["by_arm"]["CHAMPION"]["k"] == 1
    assert figures["kpis"]["collected.CNY"]["by_arm"]["CHAMPION"]["value"] == 250.0
    assert figures["kpis"]["block_rate"]["by_arm"]["CHALLENGER"]["k"] == 1
    ledger.close()
