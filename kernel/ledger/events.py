"""Events: the kinds, the columns each kind takes, and the checks a row must pass to land.

A batch of events is an Arrow table with the contract's ``events`` columns
(:data:`kernel.schema.EVENTS`). :func:`normalize` checks it row by row, vectorized: a row
that breaks a rule is *rejected* with its reason (the row number and a sentence that names
the column, never a value), while the good rows of the same batch go on to the store. A batch
whose *shape* is wrong (a required column missing, a column of the wrong type, a column the
contract does not know) is refused whole with :class:`EventsError`.

Which typed columns a kind takes is declared once, in :data:`KINDS`; a column a kind does not
take must be null (a mapping mistake upstream shows at once instead of being dropped).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import PostloanError
from ..hookspecs import NULL_TIME, US_PER_DAY
from ..schema import ENUMS, EVENTS

__all__ = ["KINDS", "Kind", "EventRows", "Rejection", "EventsError", "normalize", "KIND", "CHANNEL", "OUTCOME",
           "MAX_ID_LENGTH", "STICKY_KINDS", "CALL_CHANNELS", "CONNECTED_OUTCOMES"]

KIND = {name: code for code, name in enumerate(ENUMS["event_kind"])}
CHANNEL = {name: code for code, name in enumerate(ENUMS["contact_channel"])}
OUTCOME = {name: code for code, name in enumerate(ENUMS["contact_outcome"])}

#: contact channels that are telephone calls
CALL_CHANNELS = ("PHONE", "VOICE_BOT")
#: outcomes counted as reaching the debtor (UNREPORTED: the cautious reading)
CONNECTED_OUTCOMES = ("RIGHT_PARTY", "UNREPORTED")
#: channels consent and opt-out are tracked for (a null channel means all of them)
CONSENT_CHANNELS = ("PHONE", "SMS", "VOICE_BOT", "EMAIL")

#: longest text a text column may hold (characters)
#: the identifiers' and labels' most characters, as the contract declares them (docs/data-contract.md)
MAX_ID_LENGTH = {c.name: c.length_limit for c in EVENTS if c.name in ("event_id", "account_id", "reservation_id", "agent")}
#: the earliest instant an event may carry
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
_EARLIEST_US = int((EARLIEST - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)).total_seconds()) * 1_000_000
#: the largest amount an event may carry (money in the loan's currency)
MAX_AMOUNT = 1e12


@dataclass(frozen=True)
class Kind:
    """What one event kind carries: the typed columns it needs and those it may have."""

    name: str
    doc: str
    needs: tuple[str, ...] = ()
    may: tuple[str, ...] = ()
    #: its state never ages out: the store reads it whatever the look-back
    sticky: bool = False


_K = Kind
#: Every kind, in the contract's order (docs/ledger.md renders this table).
KINDS: dict[str, Kind] = {k.name: k for k in (
    _K("PAYMENT", "A payment received.", needs=("amount",)),
    _K("CONTACT_ATTEMPT", "A contact attempt and its outcome (a conversation is RIGHT_PARTY).",
       needs=("channel", "outcome"), may=("reservation_id",)),
    _K("PROMISE_TO_PAY", "The debtor promised to pay amount by promise_date.", needs=("amount", "promise_date")),
    _K("DISPUTE_OPENED", "The debtor disputes the debt (异议).", sticky=True),
    _K("DISPUTE_RESOLVED", "The oldest open dispute is resolved.", sticky=True),
    _K("COMPLAINT_OPENED", "A complaint about collection was received.", sticky=True),
    _K("COMPLAINT_CLOSED", "The oldest open complaint is closed.", sticky=True),
    _K("CEASE_REQUESTED", "The debtor asked in writing to stop communication.", sticky=True),
    _K("ATTORNEY_REPRESENTED", "The debtor is represented by an attorney for this debt.", sticky=True),
    _K("BANKRUPTCY_FILED", "The debtor filed for bankruptcy (automatic stay).", sticky=True),
    _K("BANKRUPTCY_CLOSED", "The bankruptcy case closed or was dismissed.", sticky=True),
    _K("DECEASED", "The debtor is reported deceased.", sticky=True),
    _K("CONSENT_GRANTED", "Consent to a channel (null channel: every channel) was given.", may=("channel",), sticky=True),
    _K("CONSENT_REVOKED", "Consent to a channel (null: every channel) was withdrawn.", may=("channel",), sticky=True),
    _K("OPT_OUT", "The debtor opted out of a channel (null: every channel).", may=("channel",), sticky=True),
    _K("HARDSHIP_DECLARED", "A hardship arrangement starts.", sticky=True),
    _K("HARDSHIP_ENDED", "The hardship arrangement ends.", sticky=True),
    _K("GPS_PING", "A tracker ping; reduced to GPS state on ingest, never stored as an event.", may=("lat", "lon")),
    _K("GPS_TAMPER", "The tracker reported tampering or removal."),
    _K("GEOFENCE_EXIT", "The car left its geofence."),
    _K("INSURANCE_RENEWED", "The motor insurance was renewed until expiry_date.", needs=("expiry_date",), sticky=True),
    _K("VIOLATION", "A traffic violation was recorded."),
    _K("DEMAND_NOTICE_SENT", "A formal written demand notice (催告函) was sent.", sticky=True),
    _K("REPOSSESSION_ORDERED", "Repossession was ordered.", sticky=True),
    _K("REPOSSESSED", "The car was repossessed.", sticky=True),
    _K("DISPOSAL_NOTICE_SENT", "The notice of disposition was sent.", sticky=True),
    _K("REDEEMED", "The debtor redeemed the car.", sticky=True),
    _K("VEHICLE_SOLD", "The repossessed car was sold for amount.", needs=("amount",), sticky=True),
    _K("COMPLAINT_EXTENDED", "The handling deadline of the oldest open complaint was extended (the complainant told why).",
       sticky=True),
    _K("EMPLOYER_PROHIBITS_CONTACT", "The debtor said the employer prohibits contact at work.", sticky=True),
    _K("WORK_HOURS_INCONVENIENT", "The debtor said contact during working hours is inconvenient.", sticky=True),
    _K("MILITARY_SERVICE_STARTED", "The debtor entered active military service (SCRA).", sticky=True),
    _K("MILITARY_SERVICE_ENDED", "The debtor's active military service ended.", sticky=True),
    _K("COURT_ORDER_GRANTED", "A court authorised repossession or enforcement (a judgment, an SCRA order, a ruling "
       "realising the security interest).", sticky=True),
    _K("ARBITRAL_AWARD_GRANTED", "An arbitral award for the debt was made.", sticky=True),
    _K("SURRENDER_AGREED", "The debtor agreed in writing to hand the car over.", sticky=True),
    _K("CURE_NOTICE_SENT", "A notice of the right to cure the default was sent.", sticky=True),
    _K("GPS_CONSENT_GRANTED", "The debtor gave separate consent to GPS tracking of the car.", sticky=True),
    _K("GPS_CONSENT_REVOKED", "The debtor withdrew consent to GPS tracking.", sticky=True),
    _K("MORTGAGE_REGISTERED", "The car's mortgage was registered for the lender (机动车抵押登记).", sticky=True),
    _K("CONTRACT_NOTARISED", "The loan contract was notarised with enforcement effect (赋强公证).", sticky=True),
    _K("ARBITRATION_AGREED", "The parties agreed to arbitration (a clause or a later agreement).", sticky=True),
)}
assert tuple(KINDS) == ENUMS["event_kind"], "KINDS must follow the contract's event_kind order"
for _k in KINDS.values():
    for _a in ("agent",):
        assert _a not in _k.needs
del _k, _a

#: kinds whose state never ages out (read whatever the look-back)
STICKY_KINDS = tuple(k.name for k in KINDS.values() if k.sticky)

#: typed columns that depend on the kind (``agent`` may be given for any kind)
TYPED = ("amount", "promise_date", "channel", "outcome", "lat", "lon", "expiry_date", "reservation_id")
_REQUIRED = ("event_id", "account_id", "kind", "at")
_CONTRACT = {c.name: c for c in EVENTS}


class EventsError(PostloanError):
    """A batch of events cannot be read at all (its shape is wrong); nothing of it landed."""


@dataclass(frozen=True)
class Rejection:
    """A row that did not land: its row number in the input, its event id (None when it has
    none) and why."""

    row: int
    event_id: str | None
    reason: str


@dataclass
class EventRows:
    """Checked events as NumPy columns (null: NaN, :data:`NULL_TIME` or −1 codes, None)."""

    event_id: np.ndarray          # object (str)
    account_id: np.ndarray        # object (str)
    kind: np.ndarray              # int8 code
    at: np.ndarray                # int64 µs UTC
    amount: np.ndarray            # float64
    promise_date: np.ndarray      # int64 days since the epoch
    channel: np.ndarray           # int8 code
    outcome: np.ndarray           # int8 code
    lat: np.ndarray               # float64
    lon: np.ndarray               # float64
    expiry_date: np.ndarray       # int64 days
    reservation_id: np.ndarray    # object
    agent: np.ndarray             # object
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))   # input row of each

    @property
    def n(self) -> int:
        return int(self.kind.shape[0])

    def take(self, index: np.ndarray) -> "EventRows":
        return EventRows(**{name: getattr(self, name)[index] for name in _ROW_FIELDS})

    @classmethod
    def empty(cls) -> "EventRows":
        return cls(np.zeros(0, object), np.zeros(0, object), np.zeros(0, np.int8), np.zeros(0, np.int64),
                   np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int8), np.zeros(0, np.int8), np.zeros(0),
                   np.zeros(0), np.zeros(0, np.int64), np.zeros(0, object), np.zeros(0, object), np.zeros(0, np.int64))


_ROW_FIELDS = ("event_id", "account_id", "kind", "at", "amount", "promise_date", "channel", "outcome", "lat", "lon",
               "expiry_date", "reservation_id", "agent", "rows")


def _column(batch: pa.RecordBatch | pa.Table, name: str):
    arr = batch.column(name)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    return arr


def _text(arr: pa.Array, name: str) -> np.ndarray:
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) or pa.types.is_null(arr.type)):
        raise EventsError(f"column {name!r} has type {arr.type}, expected text")
    return arr.cast(pa.string()).to_numpy(zero_copy_only=False)


def _plain_text(arr: pa.Array) -> pa.Array:
    """A text column as plain strings (dictionaries decoded); already checked by :func:`_text`."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return arr.cast(pa.string())


def _codes(arr: pa.Array, name: str, members: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """int8 codes (−1: null) and a mask of values that are not members."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_null(arr.type):
        return np.full(len(arr), -1, np.int8), np.zeros(len(arr), bool)
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        raise EventsError(f"column {name!r} has type {arr.type}, expected text (one of {', '.join(members)})")
    idx = pc.index_in(arr.cast(pa.string()), value_set=pa.array(members, pa.string()))
    codes = pc.fill_null(idx, -1).to_numpy(zero_copy_only=False).astype(np.int8)
    unknown = (codes < 0) & ~arr.is_null().to_numpy(zero_copy_only=False)
    return codes, unknown


def _times(arr: pa.Array, name: str) -> np.ndarray:
    if pa.types.is_null(arr.type):
        return np.full(len(arr), NULL_TIME, np.int64)
    if not pa.types.is_timestamp(arr.type):
        raise EventsError(f"column {name!r} has type {arr.type}, expected a timestamp (UTC)")
    # a naive timestamp is read as UTC (docs/ledger.md); any unit is accepted
    us = arr.cast(pa.timestamp("us", tz=arr.type.tz), safe=False).cast(pa.int64())
    return pc.fill_null(us, NULL_TIME).to_numpy(zero_copy_only=False)


def _dates(arr: pa.Array, name: str) -> np.ndarray:
    if pa.types.is_null(arr.type):
        return np.full(len(arr), NULL_TIME, np.int64)
    if not pa.types.is_date(arr.type):
        raise EventsError(f"column {name!r} has type {arr.type}, expected a date")
    days = arr.cast(pa.date32()).cast(pa.int32()).cast(pa.int64())
    return pc.fill_null(days, NULL_TIME).to_numpy(zero_copy_only=False)


def _floats(arr: pa.Array, name: str) -> np.ndarray:
    if pa.types.is_null(arr.type):
        return np.full(len(arr), np.nan)
    if not (pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type) or pa.types.is_decimal(arr.type)):
        raise EventsError(f"column {name!r} has type {arr.type}, expected a number")
    return pc.fill_null(arr.cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)


def normalize(batch: pa.RecordBatch | pa.Table, *, now_us: int, max_future_us: int,
              max_promise_days: int) -> tuple[EventRows, list[Rejection]]:
    """Check ``batch`` row by row: the rows that pass as :class:`EventRows` (their input row
    numbers in ``.rows``) and a :class:`Rejection` for each row that does not.

    ``now_us`` is the ingest's instant: an event may not happen more than ``max_future_us``
    after it (clock skew). A promise's date may lie at most ``max_promise_days`` after it was
    made. Raises :class:`EventsError` when the batch's columns are wrong."""
    names = batch.schema.names
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise EventsError(f"column {dup!r} appears twice")
    unknown = [n for n in names if n not in _CONTRACT]
    if unknown:
        raise EventsError(f"column {unknown[0]!r} is not an event column (columns: {', '.join(_CONTRACT)})")
    missing = [n for n in _REQUIRED if n not in names]
    if missing:
        raise EventsError(f"missing column {missing[0]!r} (events need {', '.join(_REQUIRED)})")
    n = batch.num_rows
    get = {name: _column(batch, name) for name in names}
    null = pa.nulls(n)

    def col(name):
        return get.get(name, null)

    event_id = _text(col("event_id"), "event_id")
    account_id = _text(col("account_id"), "account_id")
    kind, bad_kind = _codes(col("kind"), "kind", ENUMS["event_kind"])
    channel, bad_channel = _codes(col("channel"), "channel", ENUMS["contact_channel"])
    outcome, bad_outcome = _codes(col("outcome"), "outcome", ENUMS["contact_outcome"])
    at = _times(col("at"), "at")
    if "recorded_at" in get:
        _times(col("recorded_at"), "recorded_at")          # its type is checked; its value is the store's
    amount = _floats(col("amount"), "amount")
    lat, lon = _floats(col("lat"), "lat"), _floats(col("lon"), "lon")
    promise_date, expiry_date = _dates(col("promise_date"), "promise_date"), _dates(col("expiry_date"), "expiry_date")
    reservation_id, agent = _text(col("reservation_id"), "reservation_id"), _text(col("agent"), "agent")

    reason = np.full(n, None, dtype=object)
    bad = np.zeros(n, bool)

    def reject(mask: np.ndarray, why: str) -> None:
        """The first reason a row breaks is the one it is rejected with."""
        if not mask.any():
            return
        mask = mask & ~bad
        reason[mask] = why
        bad[mask] = True

    lengths = {name: pc.fill_null(pc.utf8_length(_plain_text(col(name))), 0).to_numpy(zero_copy_only=False)
               for name in MAX_ID_LENGTH if name in get}
    for name in ("event_id", "account_id"):
        reject(lengths[name] == 0, f"{name} is empty")
    for name, length in lengths.items():
        reject(length > MAX_ID_LENGTH[name], f"{name} is longer than {MAX_ID_LENGTH[name]} characters")
    reject(bad_kind | (kind < 0), f"kind is not an event kind ({len(KINDS)} kinds: see docs/ledger.md)")
    reject(at == NULL_TIME, "at is empty")
    reject((at != NULL_TIME) & (at < _EARLIEST_US), f"at is before {EARLIEST.date().isoformat()}")
    reject((at != NULL_TIME) & (at > now_us + max_future_us), "at is in the future (beyond the allowed clock skew)")
    reject(bad_channel, "channel is not a contact channel (" + ", ".join(ENUMS["contact_channel"]) + ")")
    reject(bad_outcome, "outcome is not a contact outcome (" + ", ".join(ENUMS["contact_outcome"]) + ")")

    given = {"amount": ~np.isnan(amount), "promise_date": promise_date != NULL_TIME, "channel": channel >= 0,
             "outcome": outcome >= 0, "lat": ~np.isnan(lat), "lon": ~np.isnan(lon),
             "expiry_date": expiry_date != NULL_TIME,
             "reservation_id": lengths.get("reservation_id", np.zeros(n, np.int64)) > 0}
    for name, spec in KINDS.items():
        mine = kind == KIND[name]
        if not mine.any():
            continue
        for needed in spec.needs:
            reject(mine & ~given[needed], f"{name} needs {needed}")
        for other in TYPED:
            if other not in spec.needs and other not in spec.may:
                reject(mine & given[other], f"{other} is not a column of {name} (leave it empty)")

    finite = np.isfinite(amount)
    reject(given["amount"] & ~finite, "amount is not a finite number")
    positive_kinds = (kind == KIND["PAYMENT"]) | (kind == KIND["PROMISE_TO_PAY"])
    reject(given["amount"] & positive_kinds & (amount <= 0), "amount must be above 0")
    reject(given["amount"] & (amount < 0), "amount must not be negative")
    reject(given["amount"] & (amount > MAX_AMOUNT), f"amount is above {MAX_AMOUNT:,.0f}")
    at_day = np.where(at != NULL_TIME, at // US_PER_DAY, 0)
    # a promise's date is a date where the debtor lives: a day of slack either side of UTC's
    promises = given["promise_date"]
    reject(promises & (promise_date < at_day - 1), "promise_date is before the promise was made")
    reject(promises & (promise_date > at_day + 1 + max_promise_days),
           f"promise_date is more than {max_promise_days} days after the promise was made")
    reject(given["expiry_date"] & (expiry_date < at_day - 1), "expiry_date is before the renewal")
    reject(given["lat"] != given["lon"], "a GPS_PING gives both lat and lon, or neither")
    reject(given["lat"] & ((np.abs(lat) > 90) | ~np.isfinite(lat)), "lat is outside -90…90")
    reject(given["lon"] & ((np.abs(lon) > 180) | ~np.isfinite(lon)), "lon is outside -180…180")
    consent_kinds = np.isin(kind, [KIND[k] for k in ("CONSENT_GRANTED", "CONSENT_REVOKED", "OPT_OUT")])
    tracked = np.isin(channel, [CHANNEL[c] for c in CONSENT_CHANNELS])
    reject(consent_kinds & given["channel"] & ~tracked,
           "consent and opt-out are kept for " + ", ".join(CONSENT_CHANNELS) + " (or every channel: leave channel empty)")
    reject((kind == KIND["CONTACT_ATTEMPT"]) & (outcome == OUTCOME["UNREPORTED"]),
           "outcome UNREPORTED is the ledger's own (an expired reservation); report what happened")

    # the good rows in (account, at) order: a store's account index grows in order, twice
    # as fast as in arrival order
    order = pc.sort_indices(pa.table({"a": _plain_text(col("account_id")), "t": col("at")}),
                            [("a", "ascending"), ("t", "ascending")]).to_numpy() if n > 1 else np.arange(n)
    good = order[~bad[order]]
    rows = EventRows(event_id, account_id, kind, at, amount, promise_date, channel, outcome, lat, lon, expiry_date,
                     reservation_id, agent, np.arange(n, dtype=np.int64)).take(good)
    rejected = [Rejection(int(i), event_id[i] if isinstance(event_id[i], str) and len(event_id[i]) <= MAX_ID_LENGTH["event_id"]
                          else None, reason[i]) for i in np.flatnonzero(bad)]
    return rows, rejected
