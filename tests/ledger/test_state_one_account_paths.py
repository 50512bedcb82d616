"""One account's state by its two fast paths, held to the batch path (``Ledger.state_columns``).

- An account read once: ``derive_one`` without ``remember`` feeds the fold and the pattern
  matcher the rows as one flat buffer, in one compiled call (``state._fold_flat``; without the
  pattern pass, ``state._fold_rows``).
- An account asked again while its rows stand (SQLite's rows cache): ``derive_one`` keeps the
  values it folded for those rows and hands them back the same local day until the first
  instant the pattern pass may turn (``state._folded_until``) — no GPS state as of the moment.

Generated books and histories (``kernel.synth``: contacts, payments, promises kept and broken,
disputes, holds, GPS and repossession), their accounts asked at instants around every edge —
each local midnight, each row's look-back and each pattern's look-back and silence ± 1 µs —
forwards (the cache's way) and out of order.
"""
from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from kernel.hookspecs import US_PER_DAY
from kernel.ledger import Ledger
from kernel.ledger import fold as F
from kernel.ledger import state as S
from kernel.ledger.ledger import instant_us
from kernel.ledger.state import derive_one
from kernel.synth import generate, generate_events

ACCOUNTS = 420
AS_OF = dt.date(2026, 11, 28)
SNAPSHOT_US = instant_us(dt.datetime(2026, 11, 28, 23, 59, tzinfo=dt.timezone.utc))


@pytest.fixture(scope="module")
def book_and_events():
    return generate(ACCOUNTS, seed=41, as_of=AS_OF), generate_events(ACCOUNTS, seed=41, as_of=AS_OF)


def _same(a, b, where) -> None:
    for name, value in a.items():
        other = b[name]
        assert value == other or (value != value and other != other), (name, value, other, where)


def _batch(ledger: Ledger, account: str, zone: str, at: int) -> dict:
    columns = ledger.state_columns([account], [zone], at)
    return {name: values[0].item() if hasattr(values[0], "item") else values[0] for name, values in columns.items()}


def _edges(rows: list[tuple], zone: str, at: int, settings) -> list[int]:
    """Instants after ``at`` at which some column may turn, ± 1 µs: the next local midnights,
    the last five rows' look-back and each pattern's look-back and silence after them."""
    info = zoneinfo.ZoneInfo(zone)
    local = (dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=at)).astimezone(info)
    out = []
    for d in range(3):
        midnight = dt.datetime.combine(local.date() + dt.timedelta(days=d), dt.time(0), tzinfo=info)
        m = instant_us(midnight.astimezone(dt.timezone.utc))
        out += [m - 1, m, m + 1]
    for lookback, silence in S._program(settings).patterns[:, (2, 4)].tolist():
        for row in rows[-5:]:
            out += [row[1] + lookback + x for x in (0, 1, 2)]
            if silence >= 0:
                out += [row[1] + silence + x for x in (-1, 0, 1)]
    return sorted(t for t in set(out) if at < t <= at + 120 * US_PER_DAY)


def _partial_payments(rng, accounts: int):
    """Histories that raise ``promise_partial_silence``: a promise, a smaller payment within
    days, some contacts that are not conversations, then silence — its edges (the silence
    reaching its length, the promise leaving the look-back) fall inside a local day."""
    rows = []
    for a in range(accounts):
        promised = SNAPSHOT_US - int(rng.integers(35, 60)) * US_PER_DAY + int(rng.integers(0, US_PER_DAY))
        paid = promised + int(rng.integers(1, 20)) * US_PER_DAY + int(rng.integers(0, US_PER_DAY))
        account = f"PX{a:05d}"
        day = promised // US_PER_DAY
        mine = [dict(kind="PROMISE_TO_PAY", at=promised, amount=100.0, promise_date=day + 10),
                dict(kind="PAYMENT", at=paid, amount=float(rng.integers(10, 100)))]
        mine += [dict(kind="CONTACT_ATTEMPT", at=paid + int(rng.integers(1, 5 * US_PER_DAY)), channel="PHONE",
                      outcome="NO_ANSWER") for _ in range(int(rng.integers(0, 4)))]
        rows += [dict(row, account_id=account) for row in mine]
    for i, row in enumerate(rows):
        row["event_id"] = f"PX-{i}"
    names = ("event_id", "account_id", "kind", "at", "channel", "outcome", "amount", "promise_date")
    types = {"at": pa.timestamp("us", tz="UTC"), "amount": pa.float64(), "promise_date": pa.date32()}
    return pa.table({n: pa.array([r.get(n) for r in rows], types.get(n, pa.string())) for n in names})


def test_a_first_read_by_the_flat_buffer_equals_the_batch_path(book_and_events, tmp_path):
    """Every account read once (the flat buffer, one compiled call) at three instants equals
    the batch path, and equals the columns' way (``remember``, cleared between)."""
    book, history = book_and_events
    calls = []
    with Ledger(f"sqlite:///{tmp_path / 'flat.db'}") as ledger:
        ledger.register(book)
        ledger.ingest(history)
        s = ledger.settings
        ids, zones = book["account_id"].to_pylist(), book["time_zone"].to_pylist()
        for k, (account, zone) in enumerate(zip(ids, zones)):
            for at in (SNAPSHOT_US, SNAPSHOT_US + (k % 37) * US_PER_DAY + k * 977_777, SNAPSHOT_US - 20 * US_PER_DAY):
                rows, gps, offline = ledger.store.account_rows(None, account, at, at - s.lookback_us,
                                                               at - S.P.lookback_us(s))
                one = derive_one(rows, zone, at, s, gps, offline, ordered=True)
                S._INPUTS.clear()
                columns_way = derive_one(rows, zone, at, s, gps, offline, ordered=True, remember=True)
                _same(one, _batch(ledger, account, zone, at), (account, at))
                _same(one, columns_way, (account, at))
                calls.append(gps is not None)
    assert ACCOUNTS <= sum(calls) < len(calls)     # (cars with GPS state and without)


def test_a_flat_buffer_it_cannot_vouch_for_takes_the_columns_way():
    """A value no float64 holds exactly (an instant past 2⁵³ µs) is refused by the compiled
    calls (with the pattern pass and without), and derive_one answers by the columns' way."""
    s = S.StateSettings()
    big = 2 ** 53 + 1
    rows = [(F.CONTACT, big, None, None, F.PHONE, F.RIGHT_PARTY, None)]
    b = S._BUFFERS.__dict__.get("one") or S._OneRow()
    prog = S._program(s)
    flags, completed = b.alerts(prog)
    table = S._zone_table("UTC", big, big)
    flat = S.array("d", [S._NAN if v is None else v for row in rows for v in row])
    b.head[1] = len(rows)
    constants = S._fold_constants(s)
    assert not S._fold_flat(flat, table[2], table[3], b.head, constants, b.ints, b.floats, prog.reads, prog.patterns,
                            prog.steps, prog.matchers, prog.conds, prog.values, flags, completed)
    assert not S._fold_rows(flat, table[2], table[3], b.head, constants, b.ints, b.floats)
    one = derive_one(rows, "UTC", big + 5, s, ordered=True)
    S._INPUTS.clear()
    assert one["last_conversation_at"] == big and one["connected_calls_today"] == 1
    _same(one, derive_one(rows, "UTC", big + 5, s, ordered=True, remember=True), "big")
    fewer = derive_one(rows, "UTC", big + 5, s, ordered=True, patterns=False)
    _same(fewer, {name: one[name] for name in fewer}, "big, no pattern pass")


def test_an_account_asked_again_is_folded_once_a_day_and_window_and_equals_the_batch_path(book_and_events, tmp_path,
                                                                                          monkeypatch):
    """Each account asked over and over (``Ledger.state_values``: the rows cache's kept rows)
    at instants around each edge, forwards and then out of order: every answer equals the
    batch path's; the fold ran far fewer times than it was asked (the kept values answered)."""
    book, history = book_and_events
    folds, counting = [], []
    fold = F.fold
    monkeypatch.setattr(F, "fold", lambda *a: (counting and folds.append(1), fold(*a))[1])
    asked = 0
    rng = np.random.default_rng(7)
    # (no pings: a car's GPS state is folded every time, the accounts without are the kept ones)
    history = history.filter(pc.not_equal(history["kind"], "GPS_PING"))
    with Ledger(f"sqlite:///{tmp_path / 'kept.db'}") as ledger:
        ledger.register(book)
        ledger.ingest(history)
        crafted = _partial_payments(rng, 150)
        ledger.ingest(crafted)
        s = ledger.settings
        ids, zones = book["account_id"].to_pylist(), book["time_zone"].to_pylist()
        extra = sorted(set(crafted["account_id"].to_pylist()))
        ids, zones = ids + extra, zones + [("Asia/Shanghai", "America/New_York", "UTC")[i % 3] for i in range(len(extra))]
        alerts = 0
        for k, (account, zone) in enumerate(zip(ids, zones)):
            start = SNAPSHOT_US + (k % 11) * 7 * US_PER_DAY + k * 1_234_567
            if account in extra:                                # (before the silence completes)
                start = SNAPSHOT_US - 30 * US_PER_DAY + k * 1_234_567
            rows, gps, _ = ledger.store.account_rows(None, account, start, start - s.lookback_us,
                                                     start - S.P.lookback_us(s))
            edges = _edges(rows, zone or "UTC", start, s)
            moments = [start, start + 1, start + 3_600_000_000] + (edges if account in extra else edges[:6] + [
                edges[i] for i in sorted(rng.permutation(len(edges))[:8])])
            if k % 3 == 0:                                      # out of order too
                moments += [moments[i] for i in rng.permutation(len(moments))[:6]]
            for at in moments:
                assert gps is None
                counting.append(1)
                asked += 2
                for _ in range(2):                              # (the second hits when the first filled)
                    got = ledger.state_values(account, zone, at)
                counting.clear()
                _same(got, _batch(ledger, account, zone, at), (account, at))
                alerts += got["alert_promise_partial_silence"]
    assert asked >= 10 * ACCOUNTS and len(folds) < asked / 2, (len(folds), asked)
    assert alerts >= 100             # (the crafted silences completed while asked)


def test_instant_us_is_the_moments_exact_microseconds_since_the_epoch():
    """``instant_us`` (every Decide with state and CheckContact converts its moment): an aware
    datetime in any zone, at the range's ends and around the epoch, as its exact µs since
    1970 UTC (calendar's count of whole seconds, then the µs); a datetime subclass and ints
    alike; a naive datetime or a zone without an offset refused, naming the value."""
    import calendar
    import random

    from kernel.ledger.ledger import LedgerError

    class Moment(dt.datetime):
        pass

    def reference(value):
        return calendar.timegm(value.utctimetuple()) * 1_000_000 + value.microsecond

    utc = dt.timezone.utc
    rng = random.Random(3)
    zones = [utc, dt.timezone(dt.timedelta(hours=-9, minutes=-30)), zoneinfo.ZoneInfo("Asia/Shanghai"),
             zoneinfo.ZoneInfo("America/New_York"), zoneinfo.ZoneInfo("Pacific/Auckland")]
    moments = [dt.datetime(1, 1, 2, tzinfo=utc), dt.datetime(9999, 12, 30, 23, 59, 59, 999_999, tzinfo=utc),
               dt.datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=utc), dt.datetime(1970, 1, 1, tzinfo=utc)]
    moments += [dt.datetime(1970, 1, 1, tzinfo=utc) + dt.timedelta(microseconds=rng.randrange(-2 ** 55, 2 ** 55))
                for _ in range(300)]
    for moment in moments:
        for zone in zones:
            local = moment.astimezone(zone)
            assert instant_us(local) == reference(moment), local
            assert instant_us(Moment.fromisoformat(local.isoformat())) == reference(moment), local
    assert instant_us(1_700_000_000_123_456) == 1_700_000_000_123_456
    assert instant_us(np.int64(-5)) == -5 and type(instant_us(np.int64(-5))) is int

    class NoOffset(dt.tzinfo):
        def utcoffset(self, _):
            return None

    for bad in (dt.datetime(2026, 11, 28, 2), dt.datetime(2026, 11, 28, 2, tzinfo=NoOffset()), "2026-11-28"):
        with pytest.raises(LedgerError, match="time-zone-aware"):
            instant_us(bad)
