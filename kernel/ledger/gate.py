"""The contact-time gate: what a dialer asks before it dials.

``check_contact(ledger, judge, account_id, channel, at)`` answers KEEP (go ahead: the attempt
is *reserved*), DEFER (not now: the next allowed time) or BLOCK (not at all: the reason), from
the account's state as of ``at`` and the compliance policies that govern it — the same
policies that judge planned actions (``judge`` is :meth:`kernel.pipeline.Pipeline.judge`).

A KEEP reserves the attempt in the same transaction that read the state, under a lock on the
account: two dialers racing for the last allowed call get exactly one KEEP. Until the dialer
reports what happened (a CONTACT_ATTEMPT event carrying the ``reservation_id``) the
reservation counts as an attempt that reached the debtor — the cautious reading, for every
count and for the rules that follow a conversation; once reported, the event counts instead;
a reservation never reported keeps counting so (outcome UNREPORTED) after it expires.

The gate reads the book columns the policies need from the ledger's account registry
(:data:`kernel.ledger.store.REGISTRY_COLUMNS`, registered by every ledger-backed decision or
``postloan ingest --book``); an account it has never seen is blocked (GATE_UNKNOWN_ACCOUNT):
the gate fails closed.
"""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import Callable

from ..errors import PostloanError
from ..hookspecs import NULL_TIME, Record
from ..localtime import known_zone
from .events import CHANNEL
from .join import _RECORD_COLUMNS, _merge_code, gate_record_code
from .ledger import _patterns_lookback_us, instant_us, stored_zone_error
from .state import derive_one, of_settings
from .store import REGISTRY_COLUMNS

__all__ = ["ContactVerdict", "check_contact", "check_contact_values", "GATED_CHANNELS", "UNKNOWN_ACCOUNT", "GateError"]

#: contact channel → the action the compliance policies judge
GATED_CHANNELS = {"PHONE": "PHONE", "SMS": "SMS", "VOICE_BOT": "VOICE_BOT", "FIELD_VISIT": "FIELD_VISIT",
                  "THIRD_PARTY": "THIRD_PARTY_CONTACT"}
UNKNOWN_ACCOUNT = "GATE_UNKNOWN_ACCOUNT"
_UTC = dt.timezone.utc
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)


class GateError(PostloanError):
    """The question itself is wrong (an unknown channel, a time out of range)."""


@dataclass(frozen=True)
class ContactVerdict:
    """The gate's answer. ``reservation_id`` and ``expires_at`` are set on KEEP; the dialer
    reports the attempt's outcome as a CONTACT_ATTEMPT event carrying ``reservation_id``."""

    outcome: str                       # KEEP, DEFER, BLOCK
    reason_code: str | None = None
    next_allowed_at: dt.datetime | None = None
    policy: str | None = None
    reservation_id: str | None = None
    expires_at: dt.datetime | None = None
    errors: tuple[str, ...] = ()


def _instant(us: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=us)


#: (the gate's merge of the state columns a judge reads, whether it reads an alert, the gate's
#: record of them straight from the fold's outputs or None), by the columns it reads
_STATE_OF: dict = {}
_BOOK = frozenset(REGISTRY_COLUMNS)
_EVERY_COLUMN = (_merge_code(_RECORD_COLUMNS, _BOOK), True, None)


def _state_of(judge: Callable, action: str) -> tuple[Callable, bool, Callable | None]:
    """How the gate puts the account's derived state into its record, of the columns
    ``judge`` reads to judge ``action``: a pipeline's :meth:`~kernel.pipeline.Pipeline.judge`
    says which (``judge_columns_of``: the policies that judge the action, and the routing
    keys), and a state column those policies never read is not converted (the same generated
    conversion as :func:`~kernel.ledger.join.record_state`, of fewer columns, stored straight
    into the record: ``merge_into(record, state)``, a registered book column kept where the
    state's value is null); every column otherwise. With it, whether they read a temporal
    pattern's ``alert_*`` column: when none does, the pattern pass is left out of the state
    (``derive_one(patterns=False)``) and the record is made in one step from the fold's
    outputs (:func:`~kernel.ledger.join.gate_record_code`: the same record, no dictionary of
    the state's values in between)."""
    columns_of = getattr(getattr(judge, "__self__", None), "judge_columns_of", None)
    reads = columns_of(action) if columns_of is not None else None
    if not isinstance(reads, frozenset):
        return _EVERY_COLUMN
    found = _STATE_OF.get(reads)
    if found is None:
        if len(_STATE_OF) >= 16:
            _STATE_OF.clear()
        columns = tuple((n, c) for n, c in _RECORD_COLUMNS if n in reads)
        patterns = any(n.startswith("alert_") for n in reads)
        found = _STATE_OF[reads] = (_merge_code(columns, _BOOK), patterns,
                                    None if patterns else gate_record_code(columns, REGISTRY_COLUMNS))
    return found


def account_record(store, cur, account_id: str, at_us: int, settings,
                   state_of: tuple[Callable, bool, Callable | None] = _EVERY_COLUMN) -> dict | None:
    """The record the gate judges: the account's registered book columns and its state as of
    ``at_us`` read in the open transaction ``cur`` (``state_of``: the state's merge into the
    record, whether the pattern pass is wanted and the record straight from the fold's
    outputs, :func:`_state_of`), or None for an account never registered
    (:meth:`~kernel.ledger.store.Store.gate_rows`: the registration and the rows in one
    statement). Where the ledger does not say (a null state value), a registered book column
    keeps the book's value."""
    merge_into, patterns, build = state_of
    registered, rows, gps, offline = store.gate_rows(
        cur, account_id, at_us, at_us - _gate_constants(settings)[1],
        at_us - _patterns_lookback_us(settings) if patterns else None)
    if registered is None:
        return None
    if not known_zone(registered[_ZONE]):
        raise stored_zone_error(account_id, registered[_ZONE])
    if build is not None:                   # (Pipeline.judge reads the Record uncopied)
        return build(account_id, registered, *derive_one(rows, registered[_ZONE], at_us, settings, gps, offline,
                                                         ordered=True, patterns=False, outputs=True))
    record = Record(zip(_RECORD_KEYS, (account_id, *registered)))
    merge_into(record, derive_one(rows, record["time_zone"], at_us, settings, gps, offline, ordered=True,
                                  patterns=patterns))
    return record


@of_settings
def _gate_constants(settings) -> tuple[int, int, int]:
    """The gate's settings in µs, worked out once per settings: the allowed clock skew, the
    rows' look-back (``lookback_us``) and a reservation's length."""
    return int(settings.max_clock_skew_seconds * 1e6), settings.lookback_us, int(settings.reservation_minutes * 60e6)


_RECORD_KEYS = ("account_id", *REGISTRY_COLUMNS)
_ZONE = REGISTRY_COLUMNS.index("time_zone")


def check_contact(ledger, judge: Callable, account_id: str, channel: str, at: dt.datetime | int, *,
                  now: dt.datetime | int | None = None) -> ContactVerdict:
    """Judge a contact attempt of ``account_id`` by ``channel`` at ``at`` (an aware datetime,
    or µs since the epoch) and reserve it on KEEP. ``now`` (the same; default: the clock)
    bounds ``at``: not before now minus the allowed clock skew, not more than 7 days ahead.

    The reservation id is 128 random bits from the operating system as 32 hex digits (the
    form and length of ``uuid4().hex``, without the uuid object around it)."""
    outcome, reason, next_allowed, policy, reservation, expires, errors = check_contact_values(
        ledger, judge, account_id, channel, instant_us(at), instant_us(now))
    return ContactVerdict(outcome, reason, None if next_allowed is None else _instant(next_allowed), policy,
                          reservation, None if expires is None else _instant(expires), errors)


def check_contact_values(ledger, judge: Callable, account_id: str, channel: str, at_us: int, now_us: int) -> tuple:
    """:func:`check_contact` of µs instants, answered as plain values: ``(outcome,
    reason_code, next_allowed_us, policy, reservation_id, expires_at_us, errors)``, None where
    the verdict has none — what the gRPC service writes into its answer, without the verdict
    object and the datetimes it would take apart again."""
    if channel not in GATED_CHANNELS:
        raise GateError(f"channel {channel!r}: the gate judges {', '.join(GATED_CHANNELS)}")
    if not isinstance(account_id, str) or not account_id or len(account_id) > 64:
        raise GateError("account_id: expected 1 to 64 characters")
    s = ledger.settings
    skew, _, reservation_us = _gate_constants(s)
    if at_us < now_us - skew:
        raise GateError("at: in the past (a gate reserves attempts about to happen)")
    if at_us > now_us + 7 * 86_400_000_000:
        raise GateError("at: more than 7 days ahead")
    store = ledger.store
    action = GATED_CHANNELS[channel]
    state_of = _state_of(judge, action)
    with store.transaction(lock_account=account_id, synced=s.sync_reservations) as cur:
        record = account_record(store, cur, account_id, at_us, s, state_of)
        if record is None:
            return "BLOCK", UNKNOWN_ACCOUNT, None, "gate", None, None, ()
        outcome, reason, next_allowed, policy, errors = judge(record, action, _instant(at_us))
        if outcome != "KEEP":
            return (outcome, reason, None if next_allowed == NULL_TIME else next_allowed, policy, None, None,
                    tuple(errors))
        reservation = os.urandom(16).hex()
        expires = at_us + reservation_us
        store.add_reservation(cur, reservation, account_id, CHANNEL[channel], at_us, expires, now_us)
    return "KEEP", None, None, None, reservation, expires, tuple(errors)
