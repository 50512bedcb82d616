"""postloan-example-holidays: a compliance policy, a strategy step and a connector, as a third
party writes them.

The plugin is this module: postloan finds it through the entry point
``example.holidays = postloan_example_holidays`` and calls the hooks marked
``@kernel.hookimpl``. Everything works on whole batches with NumPy and Arrow.
"""
from __future__ import annotations

import datetime as dt
import json
import os
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa

import kernel
from kernel.errors import PostloanError
from kernel.files import open_output
from kernel.hookspecs import ActionBatch, CompliancePolicy, Connector, Plan, StrategyStep, Verdicts

PLUGIN_NAME = "example.holidays"
CONTACT = ("SMS", "VOICE_BOT", "PHONE", "FIELD_VISIT", "THIRD_PARTY_CONTACT")
#: Spring Festival 2027 (example data: set your own dates in the configuration)
DEFAULT_DATES = ("2027-02-06", "2027-02-07", "2027-02-08", "2027-02-09", "2027-02-10", "2027-02-11", "2027-02-12")


class NoContactOnHolidays(CompliancePolicy):
    """No collection contact on a listed public holiday (the debtor's local date); deferred to
    08:00 local on the next day that is not a holiday."""

    name = "holidays.no_contact"
    reason_codes = {"HOLIDAY_NO_CONTACT": "A public holiday in the debtor's local date; deferred to the next working day 08:00."}

    def __init__(self, dates: Iterable[str]):
        try:
            days = sorted({(dt.date.fromisoformat(d) - dt.date(1970, 1, 1)).days for d in dates})
        except (TypeError, ValueError):
            raise PostloanError(f'[plugin."{PLUGIN_NAME}"] dates: expected a list of YYYY-MM-DD dates') from None
        self.holidays = np.array(days, np.int64)
        # the first non-holiday after each holiday (runs of holidays skip together)
        following = np.empty_like(self.holidays)
        for i in range(len(days) - 1, -1, -1):
            nxt = days[i] + 1
            following[i] = following[i + 1] if i + 1 < len(days) and days[i + 1] == nxt else nxt
        self.following = following

    def check(self, actions: ActionBatch) -> Verdicts:
        verdicts = Verdicts(actions.n)
        if self.holidays.size == 0:
            return verdicts
        day = actions.local_day
        pos = np.clip(np.searchsorted(self.holidays, day), 0, self.holidays.size - 1)
        holiday = self.holidays[pos] == day
        contact = actions.is_action(*CONTACT)
        resume = actions.local_time_on_day(self.following[pos], 8 * 60)
        return verdicts.defer(contact & holiday, "HOLIDAY_NO_CONTACT", resume)


class Day5Call(StrategyStep):
    """A phone call on the 5th day past due for MILD accounts the PD model rates high, on top
    of whatever the active strategy planned (its SMS and voice bot): composed with the
    strategy through ``[pipeline] steps``, the call's script rendered by the strategy's own
    templates (``plan.add`` → ``plan.render``)."""

    name = "example.day5_call"

    def __init__(self, min_pd: float = 0.2):
        if isinstance(min_pd, bool) or not isinstance(min_pd, (int, float)) or not 0 <= min_pd <= 1:
            raise PostloanError(f'[plugin."{PLUGIN_NAME}"] day5_min_pd: expected a probability in [0, 1], got {min_pd!r}')
        self.min_pd = float(min_pd)

    def apply(self, plan: Plan) -> None:
        batch = plan.batch
        wanted = (batch.int("dpd") == 5) & (batch.enum("collection_tier.tier", ("NONE", "MILD", "MEDIUM", "SEVERE")) == 1) \
            & (batch.float("pd_model.probability") >= self.min_pd) & batch.bool("phone_valid")
        # only where the strategy acts at all (no hold) and has not planned a call already
        wanted &= plan.planned("SMS", "VOICE_BOT") & ~plan.planned("PHONE")
        rows = np.flatnonzero(wanted)
        if rows.size:
            plan.add(rows, "PHONE", priority=batch.float("collection_tier.priority")[rows] + 0.5)


class JsonLinesConnector(Connector):
    """Newline-delimited JSON, one object per row. Dates and instants are ISO 8601 text."""

    name = "jsonl"
    suffixes = (".jsonl", ".ndjson")
    nested = True                   # a list column is a JSON array: collect rulesets' fired rules stay lists

    def read(self, uri: str, *, schema: pa.Schema, batch_size: int) -> Iterator[pa.RecordBatch]:
        if not os.path.isfile(uri):
            raise PostloanError(f"{uri}: no such file")
        types = {f.name: (f.type.value_type if pa.types.is_dictionary(f.type) else f.type) for f in schema}
        with open(uri, encoding="utf-8") as f:
            rows: list[dict] = []
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise PostloanError(f"{uri}: line {number}: not JSON ({e.msg})") from None
                if len(rows) == batch_size:
                    yield _batch(rows, types)
                    rows = []
            if rows:
                yield _batch(rows, types)

    def write(self, uri: str, batches: Iterable[pa.RecordBatch], *, schema: pa.Schema) -> int:
        count = 0
        # written beside the target and renamed into place (through a symlink); `-` and
        # special files such as a FIFO are written as they are, never replaced
        with open_output(uri) as f:
            for batch in batches:
                f.write("".join(json.dumps(row, ensure_ascii=False, default=_iso) + "\n"
                                for row in batch.to_pylist()).encode("utf-8"))
                count += batch.num_rows
        return count


def _iso(value):
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _batch(rows: list[dict], types: dict) -> pa.RecordBatch:
    names = list(rows[0])
    arrays = []
    for name in names:
        values = [r.get(name) for r in rows]
        target = types.get(name)
        if target is not None and (pa.types.is_date(target) or pa.types.is_timestamp(target)):
            arrays.append(pa.array(values, pa.string()).cast(target))
        else:
            arrays.append(pa.array(values, target))
    return pa.RecordBatch.from_arrays(arrays, names=names)


@kernel.hookimpl
def postloan_compliance_policies(config):
    settings = config.get("plugin", {}).get(PLUGIN_NAME, {})
    return [NoContactOnHolidays(settings.get("dates", DEFAULT_DATES))]


@kernel.hookimpl
def postloan_strategy_steps(config):
    settings = config.get("plugin", {}).get(PLUGIN_NAME, {})
    return [Day5Call(settings.get("day5_min_pd", 0.2))]


@kernel.hookimpl
def postloan_connectors():
    return [JsonLinesConnector()]
