"""Small hand-made evaluation datasets: snapshots, actions and events written row by row."""
from __future__ import annotations

import datetime as dt

import pyarrow as pa

from kernel.evaluation.records import ACTION, EVENT, SNAPSHOT, Part

UTC = dt.timezone.utc
D0 = dt.date(2026, 11, 1)


def day(k: int) -> dt.date:
    return D0 + dt.timedelta(days=k)


def at(k: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day(k), dt.time(hour, minute), tzinfo=UTC)


def bucket(dpd: int) -> str:
    return "M0" if dpd <= 0 else f"M{min((dpd - 1) // 30 + 1, 7)}"


def snap(account, k, dpd, arm="CHAMPION", outstanding=10_000.0, then=None, **extra) -> dict:
    tier = "NONE" if dpd <= 0 else "MILD" if dpd <= 10 else "MEDIUM" if dpd <= 30 else "SEVERE"
    channel = {"NONE": "NONE", "MILD": "SMS_VOICE", "MEDIUM": "PHONE", "SEVERE": "FIELD_VISIT"}[tier]
    row = {"account_id": account, "as_of": day(k), "decided_at": at(k, 2), "arm": arm, "dpd": dpd,
           "dpd_30d_ago": 0, "bucket": bucket(dpd), "bucket_30d_ago": then or "M0",
           "outstanding_principal": outstanding, "overdue_amount": 0.0, "contract_date": dt.date(2024, 5, 10),
           "country": "CN", "currency": "CNY", "tier": tier, "channel": channel, "segment": "PRIME", "overdue_reason": "NONE",
           "ew_level": "NONE", "ew_score": 0.0, "pd": 0.01}
    for name in ("insurance_expiring", "insurance_lapsed", "gps_offline", "geofence_exit", "violations",
                 "gps_offline_then_exit", "repossess", "dispose"):
        row[name] = False
    row.update(extra)
    return row


def event(account, kind, when, **extra) -> dict:
    return {"account_id": account, "kind": kind, "at": when, **extra}


def action(account, k, kind, outcome="KEEP") -> dict:
    return {"account_id": account, "as_of": day(k), "decided_at": at(k, 2), "action": kind, "outcome": outcome,
            "earliest_at": at(k, 2)}


def table(rows, schema) -> pa.Table:
    return pa.Table.from_pylist([{f.name: r.get(f.name) for f in schema} for r in rows], schema=schema)


def part(snapshots, actions, events) -> Part:
    return Part(table(snapshots, SNAPSHOT), table(actions, ACTION), table(events, EVENT))
