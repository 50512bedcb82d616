"""The event history behind a synthetic book: what the ledger would have recorded.

For every account of :func:`kernel.synth.generate`'s book, the events (the contract's
``events`` table, :mod:`kernel.ledger.events`) from which :class:`kernel.ledger.Ledger`
derives, as of the book's snapshot instant (:func:`kernel.synth.snapshot_at`) and with the
default :class:`~kernel.ledger.StateSettings`, exactly the book's counters wherever a state
column replaces one: calls, connected calls, the failed streak and calls in 7 days, SMS today,
the last conversation, the last payment, promises made, kept and broken and the open one,
open complaints, consent to automated contact and the opt-out, the tracker's last ping, its
offline hours and status, geofence exits, violations, the insurance expiry, demand notices
and repossession — in either history (below). One exception: a last payment older than the
ledger's look-back (183 days by default) is written, but the ledger does not read it back, so
its state is null.

Two histories, from one simulation (the processes, their draws and the book are the same;
only what is written differs), chosen by ``history``:

- ``"full"``: the whole history from origination — every instalment payment
  (:mod:`kernel.synth.process`: one a month while current, the late ones of a delinquent
  account, none while it rolls), every contact and promise to pay of every delinquency
  episode (:mod:`kernel.synth.collection`: SMS and voice-bot calls at 1–10 DPD, agents'
  calls from 11, field visits every 14 days from 31, on every day the path shows the account
  overdue; promises from conversations, kept or broken by the path's own payments), the
  tracker's tamper alerts and geofence exits month by month since the first instalment —
  ≈ 54 events an account at seed 0 (≈ 32 contacts, 15 payments, 1.5 promises);
- ``"recent"`` (the default): what the ledger reads back as of the snapshot, and nothing it
  would not — the contacts and promises of the ledger's look-back (183 days with the default
  :class:`~kernel.ledger.StateSettings`:
  :func:`~kernel.synth.collection.lookback_us`), the payments of the last
  :data:`~kernel.synth.book.PAYMENT_MONTHS` months and the last one however old, the
  tracker's alerts of the year before the 30-day window — ≈ 23 events an account (≈ 2.3 M
  for the demo's 100,000 accounts). Every recent event is in the full history (same account,
  kind, instant and values; ids number an event within its own file), and both give the same
  state as of the snapshot (``tests/ledger/test_synth_history.py``).

Both carry, alike:

- the motor insurance from origination: the policy bought with the loan and each yearly
  renewal until one lapses (more often when the account was behind at the anniversary);
- the tracker: two pings before the snapshot (the last one the book's), today's tamper alert
  and geofence exits in the 30-day window. Earlier offline episodes are not written: the
  ledger reduces pings to offline periods between any two pings more than
  ``gps_gap_minutes`` (30) apart, so a sparse ping history would read as a tracker offline
  between every two of them; only pings every half hour could say "online", far more than
  a synthetic history should carry. Before the first ping written, the ledger's GPS state
  is unknown (null), never wrong;
- consent given at origination (a withdrawal or an opt-out after the last contact),
  disputes of accounts whose recorded overdue reason is DISPUTE (a quarter resolved since),
  complaints, demand notices, repossessions and the notice of disposal after most of them,
  traffic violations of 90 days.

Events come chunk by chunk, in the book's chunks (:data:`kernel.synth.CHUNK` accounts), each
from the book's draws plus its own generators seeded by ``(seed, chunk, 2)`` and, for the
tracker's earlier months, ``(seed, chunk, 8)`` (every month drawn whether written or not):
deterministic by seed in either history, independent of how the output is batched, bounded
in memory. An event's id is
``S<seed>-<as_of YYYYMMDD>-<account_id>-<k>``, ``k`` its place in the account's history.
"""
from __future__ import annotations

import datetime as dt
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..hookspecs import NULL_TIME
from ..schema import ENUMS, arrow_schema
from . import collection
from . import history as hist
from .collection import HISTORIES
from .book import CHUNK, DEFAULT_AS_OF, simulate, snapshot_metadata

__all__ = ["iter_events", "generate_events", "iter_book_and_events", "events_schema", "write_events", "HISTORIES"]

_KIND = {name: code for code, name in enumerate(ENUMS["event_kind"])}
_CHANNEL = {name: code for code, name in enumerate(ENUMS["contact_channel"])}
_OUTCOME = {name: code for code, name in enumerate(ENUMS["contact_outcome"])}
_AGENTS = ("payments", "dialer", "sms-gateway", "field-team", "tracker", "insurer", "traffic-police", "legal",
           "recovery-agency", "origination", "customer-service")
_AGENT = {name: code for code, name in enumerate(_AGENTS)}
_EVENTS_SCHEMA = arrow_schema("events")
#: a failed call's outcome: reachable numbers, then numbers that are no longer valid
_DISPUTE = ENUMS["overdue_reason"].index("DISPUTE")
_DAY = hist.US_DAY
#: a month's chance of a tamper alert and its mean geofence exits, behind and current
#: (the tracker's history before the 30-day window: kernel.synth.events._vehicle)
TAMPER_BEHIND, TAMPER_CURRENT = 0.03, 0.002
EXITS_BEHIND, EXITS_CURRENT = 0.25, 0.004
#: an episode falls in the 29 days after the month's due day
_EPISODE_DAYS = 29


def events_schema(as_of: dt.date = DEFAULT_AS_OF) -> pa.Schema:
    """The contract's events schema with the book's snapshot instant in its metadata."""
    meta = {**(_EVENTS_SCHEMA.metadata or {}), **{k.encode(): v.encode() for k, v in snapshot_metadata(as_of).items()}}
    return _EVENTS_SCHEMA.with_metadata(meta)


class _Rows:
    """Events being collected for one chunk, as parallel NumPy columns."""

    def __init__(self):
        self.parts: list[dict[str, np.ndarray]] = []

    def add(self, rows, at, kind: str, agent: str, *, channel=None, outcome=-1, amount=np.nan, promise_day=NULL_TIME,
            expiry_day=NULL_TIME, lat=np.nan, lon=np.nan) -> None:
        rows = np.asarray(rows, np.int64)
        n = rows.shape[0]
        if n == 0:
            return
        full = lambda v, dtype: np.broadcast_to(np.asarray(v, dtype), (n,))  # noqa: E731
        self.parts.append({
            "row": rows, "at": full(at, np.int64), "kind": full(_KIND[kind], np.int8),
            "channel": full(-1 if channel is None else _CHANNEL[channel], np.int8), "outcome": full(outcome, np.int8),
            "amount": full(amount, np.float64), "promise_day": full(promise_day, np.int64),
            "expiry_day": full(expiry_day, np.int64), "lat": full(lat, np.float64), "lon": full(lon, np.float64),
            "agent": full(_AGENT[agent], np.int8)})

    def columns(self) -> dict[str, np.ndarray]:
        names = ("row", "at", "kind", "channel", "outcome", "amount", "promise_day", "expiry_day", "lat", "lon", "agent")
        if not self.parts:
            return {k: np.zeros(0) for k in names}
        return {k: np.concatenate([p[k] for p in self.parts]) for k in names}


def _collection(ev: _Rows, h: dict) -> None:
    """Contacts and promises to pay of the collection process (:mod:`kernel.synth.collection`)."""
    c = h["collection"]
    at = c.at
    contact = c.kind == collection.CONTACT
    for channel, agent in (("PHONE", "dialer"), ("VOICE_BOT", "dialer"), ("SMS", "sms-gateway"),
                           ("FIELD_VISIT", "field-team")):
        pick = np.flatnonzero(contact & (c.channel == _CHANNEL[channel]))
        ev.add(c.row[pick], at[pick], "CONTACT_ATTEMPT", agent, channel=channel, outcome=c.outcome[pick])
    pick = np.flatnonzero(~contact)
    ev.add(c.row[pick], at[pick], "PROMISE_TO_PAY", "dialer", amount=h["promise_amount"][c.row[pick]],
           promise_day=c.promise_day[pick])


def _money(ev: _Rows, h: dict) -> None:
    """The instalment payments the history carries: all of them, or those of the last
    :data:`~kernel.synth.book.PAYMENT_MONTHS` months and the last one, however old."""
    rows, cols = np.nonzero(h["payment_at"] != NULL_TIME)          # the book placed those it carries
    ev.add(rows, h["payment_at"][rows, cols], "PAYMENT", "payments", amount=h["payment_amount"][rows, cols])


def _holds(ev: _Rows, rng, h: dict) -> None:
    """Open complaints, disputes, demand notices, repossessions."""
    clock, n, snapshot = h["clock"], h["dpd"].shape[0], h["clock"].snapshot
    dpd = h["dpd"]
    # complaints: opened in the last 60 days, after the contract
    span = np.clip((clock.today - h["contract_day"] - 1) * _DAY, hist.US_HOUR, 60 * _DAY).astype(np.float64)
    rows, j = hist.ragged(h["complaints"])
    at = snapshot - (span[rows] * (j + rng.uniform(0.05, 0.9, rows.shape[0])) / h["complaints"][rows]).astype(np.int64)
    ev.add(rows, hist.seconds(at), "COMPLAINT_OPENED", "customer-service")
    # disputes: accounts whose recorded reason is DISPUTE disputed the debt while overdue
    disputed = (h["reason"] == _DISPUTE) & (dpd > 0)
    x = rng.random(n) * np.minimum(np.maximum(dpd - 1, 0.5), 60)
    resolved = rng.random(n) < 0.25
    share = rng.uniform(0.3, 0.9, n)
    rows = np.flatnonzero(disputed)
    opened = hist.office_instant(clock, rows, x[rows])
    ev.add(rows, opened, "DISPUTE_OPENED", "customer-service")
    done = resolved[rows]
    ev.add(rows[done], hist.seconds(opened[done] + ((snapshot - opened[done]) * share[rows][done]).astype(np.int64)),
           "DISPUTE_RESOLVED", "customer-service")
    # demand notices: sent since the account reached 31 days past due
    notices = h["notices"]
    rows, j = hist.ragged(notices)
    x = np.maximum(dpd[rows] - 30.5, 0.5) * (j + rng.uniform(0.05, 0.9, rows.shape[0])) / notices[rows]
    ev.add(rows, hist.office_instant(clock, rows, x), "DEMAND_NOTICE_SENT", "legal")
    # repossession: ordered after 60 days past due, the car taken, the notice of disposal served
    reposs = h["repossessed"]
    ordered_x = (dpd - 60) * rng.uniform(0.3, 1.0, n)
    taken_share, notice_share = rng.uniform(0.1, 0.6, n), rng.uniform(0.1, 0.9, n)
    noticed = rng.random(n) < 0.7
    rows = np.flatnonzero(reposs)
    ordered = hist.office_instant(clock, rows, ordered_x[rows])
    taken = hist.seconds(ordered + ((snapshot - ordered) * taken_share[rows]).astype(np.int64))
    ev.add(rows, ordered, "REPOSSESSION_ORDERED", "recovery-agency")
    ev.add(rows, taken, "REPOSSESSED", "recovery-agency")
    served = noticed[rows]
    ev.add(rows[served], hist.seconds(taken[served] + ((snapshot - taken[served]) * notice_share[rows][served])
                                      .astype(np.int64)), "DISPOSAL_NOTICE_SENT", "legal")


def _vehicle(ev: _Rows, rng, h: dict) -> None:
    """Tracker pings and alerts, geofence exits, violations, the insurance policy."""
    clock, n, snapshot = h["clock"], h["dpd"].shape[0], h["clock"].snapshot
    gps, last_ping = h["gps"], h["last_ping"]
    device = np.flatnonzero(gps != 3)
    before_s = rng.uniform(60, 25 * 60, n).astype(np.int64)
    jitter_lat, jitter_lon = rng.normal(0, 0.002, n), rng.normal(0, 0.002, n)
    ev.add(device, last_ping[device] - before_s[device] * hist.US_SEC, "GPS_PING", "tracker",
           lat=np.round(h["lat"][device] + jitter_lat[device], 5), lon=np.round(h["lon"][device] + jitter_lon[device], 5))
    ev.add(device, last_ping[device], "GPS_PING", "tracker", lat=h["lat"][device], lon=h["lon"][device])
    tampered = np.flatnonzero(gps == 2)
    ev.add(tampered, last_ping[tampered], "GPS_TAMPER", "tracker")
    # exits: in the last 27 days (after the contract where it can be), before the last ping
    contract_at = clock.instant(np.arange(n), h["contract_day"] + 1, np.zeros(n, np.int64))
    lo = np.maximum(snapshot - 27 * _DAY, contract_at)
    lo = np.where(lo < last_ping - hist.US_MIN, lo, snapshot - 27 * _DAY)
    exits = h["exits"]
    rows, j = hist.ragged(exits)
    span = (last_ping - hist.US_MIN - lo)[rows].astype(np.float64)
    at = lo[rows] + (span * (j + rng.uniform(0.05, 0.9, rows.shape[0])) / exits[rows]).astype(np.int64)
    ev.add(rows, hist.seconds(at), "GEOFENCE_EXIT", "tracker")
    # the tracker's earlier episodes, month by month along the path before the 30-day window
    # (so the state's 30-day counts and the tracker's status are today's): a tamper alert and
    # trips out of the geofence, far more often in months the account was behind (a debtor
    # hiding the car or taking it away) — since the first instalment (history "full") or over
    # the year before the window ("recent"). Drawn from their own generator, every month's
    # whether written or not, so an episode is the same in both histories.
    path, due, days = h["path"], h["due"], h["days"]
    if days.shape[1]:
        rng_t = np.random.default_rng([h["seed"], h["chunk"], 8])
        cols = np.arange(days.shape[1])[None, :]
        d0 = clock.today[:, None]
        months = (gps != 3)[:, None] & (cols < due[:, None]) & (days + 1 + _EPISODE_DAYS <= d0 - 31)
        behind = path.missed > 0
        tamper = months & (rng_t.random(days.shape) < np.where(behind, TAMPER_BEHIND, TAMPER_CURRENT))
        trips = np.where(months, rng_t.poisson(np.where(behind, EXITS_BEHIND, EXITS_CURRENT)), 0)
        for kind, count in (("GPS_TAMPER", tamper.astype(np.int64)), ("GEOFENCE_EXIT", trips)):
            rows, c = np.nonzero(count)
            k = count[rows, c]
            rows, c = np.repeat(rows, k), np.repeat(c, k)
            day = days[rows, c] + 1 + rng_t.integers(0, _EPISODE_DAYS, rows.shape[0])
            u = rng_t.random(rows.shape[0])
            if h["history"] == "recent":
                keep = days[rows, c] + 1 >= clock.today[rows] - 365
                rows, day, u = rows[keep], day[keep], u[keep]
            ev.add(rows, hist.day_instant(clock, rows, day, u), kind, "tracker")
    # violations: in the 88 days before today, after the contract
    owned = np.clip(clock.today - h["contract_day"] - 1, 1, 88).astype(np.float64)
    v = h["violations"]
    rows, j = hist.ragged(v)
    x = owned[rows] * (j + rng.uniform(0.05, 0.9, rows.shape[0])) / v[rows]
    ev.add(rows, hist.office_instant(clock, rows, x), "VIOLATION", "traffic-police")
    # insurance: the policy bought with the loan (at the contract), then each renewal, up to
    # 20 days before the previous policy ran out
    policies = h["insurance_policies"] * h["insurance_known"]
    rows, j = hist.ragged(policies)
    contract = h["contract_day"][rows]
    day = np.where(j == 0, contract, contract + 365 * j - rng.integers(0, 21, rows.shape[0]))
    day = np.maximum(np.minimum(day, clock.today[rows] - 1), contract)
    ev.add(rows, hist.day_instant(clock, rows, day, rng.random(rows.shape[0]), 9 * hist.US_HOUR, 18 * hist.US_HOUR),
           "INSURANCE_RENEWED", "insurer", expiry_day=contract + 365 * (j + 1))


def _consent(ev: _Rows, rng, h: dict, last_contact: np.ndarray) -> None:
    """Consent to every channel at origination; a later withdrawal of automated contact or an
    opt-out of calls comes after the account's last contact."""
    clock, n, snapshot = h["clock"], h["dpd"].shape[0], h["clock"].snapshot
    rows = np.arange(n)
    granted = hist.day_instant(clock, rows, np.minimum(h["contract_day"], clock.today - 1), rng.random(n),
                               9 * hist.US_HOUR, 10 * hist.US_HOUR)
    ev.add(rows, granted, "CONSENT_GRANTED", "origination")
    later = np.where(last_contact != NULL_TIME, last_contact + (snapshot - last_contact) // 2,
                     granted + ((snapshot - granted) * rng.uniform(0.1, 0.9, n)).astype(np.int64))
    later = hist.seconds(np.maximum(later, granted + hist.US_SEC))
    channel = np.where(rng.random(n) < 0.5, "SMS", "VOICE_BOT")
    for name in ("SMS", "VOICE_BOT"):
        pick = np.flatnonzero(~h["consent"] & (channel == name))
        ev.add(pick, later[pick], "CONSENT_REVOKED", "customer-service", channel=name)
    pick = np.flatnonzero(h["opt_out"])
    ev.add(pick, np.minimum(later[pick] + hist.US_SEC, snapshot), "OPT_OUT", "customer-service", channel="PHONE")


def _order(row, at, kind, channel, outcome) -> np.ndarray:
    """The order by account, instant, kind, channel and outcome: one packed int64 key when
    the instants are whole seconds (they are: 14 bits of row, 36 of seconds, 13 of the
    rest), else a lexicographic sort."""
    tie = (kind.astype(np.int64) * 16 + channel + 1) * 16 + outcome + 1
    secs = at // hist.US_SEC
    if at.shape[0] and row.max() < 1 << 14 and (secs * hist.US_SEC == at).all() \
            and secs.max() - secs.min() < 1 << 36 and tie.max() < 1 << 13:
        return np.argsort((row.astype(np.int64) << 49) | ((secs - secs.min()) << 13) | tie, kind="stable")
    return np.lexsort((tie, at, row))


def _chunk_events(seed: int, chunk: int, as_of: dt.date, rows: int, book: pa.RecordBatch, h: dict) -> pa.RecordBatch:
    """The events of the first ``rows`` accounts of a simulated chunk, sorted by account and
    instant."""
    rng = np.random.default_rng([seed, chunk, 2])
    h = {**h, "seed": seed, "chunk": chunk}
    ev = _Rows()
    _collection(ev, h)
    _money(ev, h)
    _holds(ev, rng, h)
    _vehicle(ev, rng, h)
    _consent(ev, rng, h, h["collection"].last_contact_at)
    c = ev.columns()
    keep = c["row"] < rows
    order = _order(c["row"], c["at"], c["kind"], c["channel"], c["outcome"])
    order = order[keep[order]]
    c = {k: v[order] for k, v in c.items()}
    row = c["row"]
    m = row.shape[0]
    first = np.r_[0, np.flatnonzero(row[1:] != row[:-1]) + 1] if m else np.zeros(0, np.int64)
    k = np.arange(m) - np.repeat(first, np.diff(np.r_[first, m]))
    account = book.column("account_id").take(pa.array(row))
    event_id = pc.binary_join_element_wise(pa.scalar(f"S{seed}-{as_of:%Y%m%d}-"), account, pa.scalar("-"),
                                           pc.utf8_lpad(pa.array(k).cast(pa.string()), 3, "0"), "")
    ts = pa.timestamp("us", tz="UTC")
    date = lambda d: pa.array(np.where(d == NULL_TIME, 0, d).astype(np.int32), pa.date32(), mask=d == NULL_TIME)  # noqa: E731
    enum = lambda codes, name: pa.DictionaryArray.from_arrays(  # noqa: E731
        pa.array(codes.astype(np.int8), mask=codes < 0), pa.array(ENUMS[name]))
    cols = {
        "event_id": event_id, "account_id": account, "kind": enum(c["kind"], "event_kind"),
        "at": pa.array(c["at"], ts), "recorded_at": pa.nulls(m, ts),
        "amount": pa.array(c["amount"], pa.float64(), from_pandas=True),
        "promise_date": date(c["promise_day"]), "channel": enum(c["channel"], "contact_channel"),
        "outcome": enum(c["outcome"], "contact_outcome"),
        "lat": pa.array(c["lat"], pa.float64(), from_pandas=True), "lon": pa.array(c["lon"], pa.float64(), from_pandas=True),
        "expiry_date": date(c["expiry_day"]), "reservation_id": pa.nulls(m, pa.string()),
        "agent": pa.DictionaryArray.from_arrays(pa.array(c["agent"]), pa.array(_AGENTS)).cast(pa.string()),
    }
    schema = events_schema(as_of)
    return pa.RecordBatch.from_arrays([cols[f.name] for f in schema], schema=schema)


def _chunks(accounts: int) -> Iterator[tuple[int, int]]:
    if accounts < 0:
        raise ValueError("accounts: must not be negative")
    for chunk in range((accounts + CHUNK - 1) // CHUNK):
        yield chunk, min(CHUNK, accounts - chunk * CHUNK)


def _history(history: str) -> str:
    if history not in HISTORIES:
        raise ValueError(f"history: expected one of {', '.join(HISTORIES)}, got {history!r}")
    return history


def iter_book_and_events(accounts: int, seed: int = 0, as_of: dt.date = DEFAULT_AS_OF, *, history: str = "recent"
                         ) -> Iterator[tuple[pa.RecordBatch, pa.RecordBatch]]:
    """Yield ``(book batch, its events)`` per chunk: one simulation for both."""
    _history(history)
    for chunk, rows in _chunks(accounts):
        # a whole chunk is always drawn, so that a row never depends on the size of the book
        book, h = simulate(seed, chunk, CHUNK, as_of, history=history)
        events = _chunk_events(seed, chunk, as_of, rows, book, h)
        yield (book if rows == CHUNK else book.slice(0, rows)), events


def _events(accounts: int, seed: int, as_of: dt.date, history: str) -> Iterator[tuple[int, pa.RecordBatch]]:
    _history(history)
    for chunk, rows in _chunks(accounts):
        book, h = simulate(seed, chunk, CHUNK, as_of, people=False, history=history)
        yield rows, _chunk_events(seed, chunk, as_of, rows, book, h)


def iter_events(accounts: int, seed: int = 0, as_of: dt.date = DEFAULT_AS_OF, *,
                history: str = "recent") -> Iterator[pa.RecordBatch]:
    """Yield the events behind ``generate(accounts, seed, as_of)``, one batch per chunk of
    the book (sorted by account, then instant); ``history`` ``"recent"`` or ``"full"`` (the
    module's docstring says what each holds)."""
    for _, batch in _events(accounts, seed, as_of, history):
        yield batch


def generate_events(accounts: int, seed: int = 0, as_of: dt.date = DEFAULT_AS_OF, *,
                    history: str = "recent") -> pa.Table:
    """The whole event history in memory (use :func:`iter_events` or :func:`write_events`
    for large books)."""
    return pa.Table.from_batches(list(iter_events(accounts, seed, as_of, history=history)),
                                 schema=events_schema(as_of))


def write_events(uri: str, accounts: int, seed: int = 0, as_of: dt.date = DEFAULT_AS_OF, *,
                 connector: str | None = None, progress=None, history: str = "recent") -> int:
    """Stream the events behind the book to ``uri`` batch by batch (memory stays bounded),
    through the connector its extension names (``.parquet``, ``.arrow``, ``.csv``,
    ``.sqlite``…, or ``connector``; Parquet for a name without one); returns the events
    written. The file appears only once complete. ``progress(accounts)`` is called after
    each batch with the accounts it covered. ``history``: ``"recent"`` or ``"full"``."""
    import os

    from .. import plugins

    _history(history)
    if connector is None and not os.path.splitext(str(uri))[1] and "://" not in str(uri):
        connector = "parquet"

    def batches():
        for rows, batch in _events(accounts, seed, as_of, history):
            yield batch
            if progress is not None:
                progress(rows)
    return plugins.write_batches(str(uri), batches(), schema=events_schema(as_of), connector=connector)
