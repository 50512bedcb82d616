"""The compiled response writer of Decide's decision-only way (``wire_decide._write_decision``)
on decision columns of every kind a kernel gives — floats (NaN, infinities), ints (negative:
ten-byte varints), bools, dates over the whole calendar, enums, rule ids (``!unique``
included), collect rule lists over more than one mask word — against
``DecideResponseEncoder.response`` for the record those outputs read as: the same bytes,
response by response; and what it reports (tier, unique conflicts, a valuation flag set).
The shipped bundle's columns are held against the record's way in test_wire_kernel."""
from __future__ import annotations

import datetime as dt
import math
import random
import struct

import numpy as np
import pytest

from kernel.server import convert
from kernel.server.wire_decide import _F_CONFLICTS, _F_START, _F_TIER, VALUED, _write_decision, response_tables

EPOCH = dt.date(1970, 1, 1)
FIRST_DAY, LAST_DAY = (dt.date(1, 1, 1) - EPOCH).days, (dt.date(9999, 12, 31) - EPOCH).days
TAIL = ("valuation.price", "disposal_channel.channel")
RULE_IDS = ("first", "second", "!unique")
MANY_IDS = tuple(f"r{i}" for i in range(70))           # two mask words
# (name, kind, labels): a stand-in kernel's decision columns
COLUMNS = (("a.score", "float", None), ("a.count", "int", None), ("a.flag", "bool", None),
           ("a.due", "date", None), ("a.level", "enum", ("LOW", "MID", "HIGH")), ("a.rule", "rule", RULE_IDS),
           ("t.tier", "enum", ("NONE", "MILD", "SEVERE")), ("b.rule", "collect", (2, MANY_IDS)),
           ("c.rule", "collect", (1, ("x", "y", "已"))), ("d.repossess", "bool", None), ("d.dispose", "bool", None),
           ("d.big", "int", None), ("d.ratio", "float", None), ("d.rule", "rule", ("only", "!unique")))
WIDTH = {"float": 8, "int": 8, "bool": 1, "date": 4, "enum": 1, "rule": 4}


def _outputs():
    """``Kernel.record_outputs`` of the stand-in: values first, then the validity bytes."""
    out, at = [], 0
    for name, kind, labels in COLUMNS:
        out.append([name, kind, at, -1, labels])
        at += 8 * labels[0] if kind == "collect" else WIDTH[kind]
    for column in out:
        if column[1] not in ("rule", "collect"):
            column[3] = at
            at += 1
    return tuple(tuple(c) for c in out), at


def _fill(buffer: np.ndarray, outputs, rng: random.Random, valued: bool) -> dict:
    """Random outputs into ``buffer``; the record they read as (``Kernel.read_outputs``' form)."""
    record = {}
    for name, kind, value_at, valid_at, labels in outputs:
        valid = rng.random() < 0.8
        if valid_at >= 0:
            buffer[valid_at] = 1 if valid else 0
        if kind == "float":
            x = rng.choice([rng.uniform(-1e6, 1e6), 0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324])
            buffer[value_at:value_at + 8] = np.frombuffer(struct.pack("<d", x), np.uint8)
            value = x
        elif kind == "int":
            x = rng.choice([rng.randint(-2**63, 2**63 - 1), rng.randint(-300, 300), 0, 127, 128, 2**63 - 1, -2**63])
            buffer[value_at:value_at + 8] = np.frombuffer(struct.pack("<q", x), np.uint8)
            value = x
        elif kind == "bool":
            x = rng.random() < (0.5 if valued or not name.startswith("d.") else 0.0)
            buffer[value_at] = 1 if x else 0
            value = x
        elif kind == "date":
            days = rng.choice([rng.randint(FIRST_DAY, LAST_DAY), FIRST_DAY, LAST_DAY, 0, -1, 59, 60, 11_016])
            buffer[value_at:value_at + 4] = np.frombuffer(struct.pack("<i", days), np.uint8)
            value = dt.date.fromordinal(EPOCH.toordinal() + days)
        elif kind in ("enum", "rule"):
            code = rng.randrange(-1, len(labels))
            width = WIDTH[kind]
            buffer[value_at:value_at + width] = np.frombuffer(struct.pack("<b" if width == 1 else "<i", code), np.uint8)
            value = labels[code] if code >= 0 else None
            valid = valid or kind == "rule"
        else:
            words, ids = labels
            fired = sorted(rng.sample(range(len(ids)), rng.randrange(len(ids) + 1)))
            masks = [sum(1 << (i - 64 * w) for i in fired if i // 64 == w) for w in range(words)]
            buffer[value_at:value_at + 8 * words] = np.frombuffer(struct.pack(f"<{words}Q", *masks), np.uint8)
            value, valid = [ids[i] for i in fired], True
        record[name] = value if valid else None
    return record


def test_the_compiled_response_is_the_encoders_for_every_kind_of_column():
    encoder = convert.DecideResponseEncoder("bundle-hash-0123")
    outputs, size = _outputs()
    tables = response_tables(outputs, encoder, TAIL, ("d.repossess", "d.dispose"), "t.tier", ("a", "d"), 64)
    assert tables is not None
    rng = random.Random(3)
    buffer = np.zeros(size, np.uint8)
    out = np.zeros(tables.size, np.uint8)
    facts = np.zeros(8, np.int64)
    written = flagged = conflicts = 0
    for i in range(600):
        valued = i % 3 == 0
        record = _fill(buffer, outputs, rng, valued)
        account_id = rng.choice(["", "A-1", "账户-" + "x" * rng.randrange(40), "é" * 16])
        request = np.frombuffer(b"..." + account_id.encode() + b"..", np.uint8)
        days = rng.randint(FIRST_DAY, LAST_DAY)
        n = _write_decision(buffer, tables.plan, tables.pieces, tables.blob, request, 3, 3 + len(account_id.encode()),
                            days, out, facts)
        if record["d.repossess"] or record["d.dispose"]:
            assert n == VALUED, i
            flagged += 1
            continue
        decisions = {**record, "account_id": account_id, **dict.fromkeys(TAIL)}      # the stage's order
        as_of = dt.date.fromordinal(EPOCH.toordinal() + days)
        start = int(facts[_F_START])
        assert out[start:start + n].tobytes() == encoder.response(decisions, as_of), i
        assert tables.tiers[facts[_F_TIER]] == record["t.tier"], i
        expected = {name for name in ("a", "d") if record[f"{name}.rule"] == "!unique"}
        assert {name for b, name in enumerate(tables.unique) if facts[_F_CONFLICTS] >> b & 1} == expected, i
        conflicts += bool(expected)
        written += 1
    assert written > 300 and flagged > 100 and conflicts > 50, (written, flagged, conflicts)


@pytest.mark.parametrize("bent", ["account_id", "tail", "flag"])
def test_outputs_the_writer_cannot_take(bent):
    """A kernel column named as the stage's (the account id, a valuation column) or a
    valuation flag that is not a bool column: no tables (Decide takes the record's way)."""
    outputs, _ = _outputs()
    if bent == "account_id":
        outputs = (("account_id", "int", 0, 1, None), *outputs)
    elif bent == "tail":
        outputs = ((TAIL[0], "float", 0, 1, None), *outputs)
    else:
        outputs = tuple(c if c[0] != "d.dispose" else (c[0], "int", *c[2:]) for c in outputs)
    encoder = convert.DecideResponseEncoder("h")
    assert response_tables(outputs, encoder, TAIL, ("d.repossess", "d.dispose"), "t.tier", (), 64) is None
