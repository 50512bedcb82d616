"""Helpers for the plugin tests: small hand-made accounts and action batches.

Decision columns given to the strategy and the policies here are *input data* built by
hand (what the shipped rulesets would produce); nothing of the product is replaced.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
from kernel.hookspecs import ACTION, ActionBatch, Batch

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DIR = ROOT / "plugins" / "example_holidays"
UTC = dt.timezone.utc

#: a debtor with nothing special: reachable, consenting, no complaints, no calls yet today
ACCOUNT_DEFAULTS = {
    "account_id": "AC0000000001", "country": "CN", "region": "CN-GD", "product": "NEW_CAR_LOAN",
    "time_zone": "Asia/Shanghai", "phone_valid": True, "has_third_party_contact": True,
    "consent_automated_contact": True, "contact_opt_out": False, "connected_calls_today": 0,
    "call_attempts_today": 0, "consecutive_failed_attempts": 0, "calls_7d": 0, "sms_today": 0,
    "open_complaints": 0, "last_conversation_at": None, "litigation_clause": True,
    "contact_records_kept": True, "demand_notices_sent": 2, "promise_date": None,
    "contract_date": dt.date(2024, 3, 15), "dpd": 45, "last_payment_date": dt.date(2026, 10, 14), "gps_status": "ONLINE",
}


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def us(moment: dt.datetime) -> int:
    """An aware datetime as microseconds since the epoch."""
    return (moment - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(microseconds=1)


def columns_of(accounts: list[dict]) -> dict[str, np.ndarray]:
    """NumPy columns for hand-made accounts (missing keys take ACCOUNT_DEFAULTS)."""
    keys = list(dict.fromkeys(list(ACCOUNT_DEFAULTS) + [k for a in accounts for k in a]))
    cols = {}
    for key in keys:
        values = [a.get(key, ACCOUNT_DEFAULTS.get(key)) for a in accounts]
        if all(v is None or (isinstance(v, dt.date) and not isinstance(v, dt.datetime)) for v in values) and \
                key not in ("last_conversation_at",) and any(v is not None for v in values):
            cols[key] = np.array([np.datetime64("NaT", "D") if v is None else np.datetime64(v, "D") for v in values])
        elif key in ("last_conversation_at",) or (any(isinstance(v, dt.datetime) for v in values)
                                                    and all(v is None or isinstance(v, dt.datetime) for v in values)):
            cols[key] = np.array([np.datetime64("NaT", "us") if v is None else
                                  np.datetime64(v.astimezone(UTC).replace(tzinfo=None), "us") for v in values])
        elif all(isinstance(v, bool) for v in values):
            cols[key] = np.array(values, bool)
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            cols[key] = np.array(values, np.int64)
        elif all(isinstance(v, float) for v in values):
            cols[key] = np.array(values, np.float64)
        else:
            cols[key] = np.array(values, dtype=object)
    return cols


def make_actions(accounts: list[dict], planned: list[tuple], now: dt.datetime,
                 scripts: list[str | None] | None = None, as_of: dt.date = dt.date(2026, 11, 28)) -> ActionBatch:
    """An ActionBatch: ``planned`` holds (account index, action name[, earliest_at datetime])."""
    import pyarrow as pa
    batch = Batch(len(accounts), as_of, now, [columns_of(accounts)])
    rows = np.array([p[0] for p in planned], np.int64)
    action = np.array([ACTION[p[1]] for p in planned], np.int8)
    earliest = np.array([us(p[2]) if len(p) > 2 else us(now) for p in planned], np.int64)
    script = None if scripts is None else pa.array(scripts, pa.string())
    return ActionBatch(batch, rows, action, earliest, script=script)


def numpy_columns(table: pa.Table) -> dict[str, np.ndarray]:
    """Rows as the gRPC server hands them to the pipeline: NumPy columns, text as ``str``."""
    out = {}
    for name in table.schema.names:
        col = table[name]
        out[name] = np.array(col.to_pylist(), dtype=object) \
            if pa.types.is_dictionary(col.type) or pa.types.is_string(col.type) else col.to_numpy()
    return out
