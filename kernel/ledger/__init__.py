"""The case ledger: what happened to each account (events), and the state derived from it.

A decision is one turn of a loop: decide → act → events → ledger → state → decide. The
ledger stores events once (idempotent by ``event_id``, durable before acknowledged), derives
per-account state as of any moment (calls today in the debtor's local day, the open promise,
holds, consent, the repossession stage…), feeds that state to every decision, and answers a
dialer's "may I call now?" (:mod:`kernel.ledger.gate`). docs/ledger.md is the guide.

Parts: :mod:`.events` (kinds and row checks), :mod:`.store` (SQLite / PostgreSQL),
:mod:`.gps` (pings reduced to state), :mod:`.fold` and :mod:`.state` (events → state),
:mod:`.patterns` (temporal patterns: sequences within windows, raising alerts),
:mod:`.reference` (the same state, row by row, for differential tests), :mod:`.durable_peer`
(the patterns in durable_rules, the tests' and benchmark's peer), :mod:`.join`
(book ⋈ state), :mod:`.gate` (the contact-time gate).
"""
from __future__ import annotations

from .events import KINDS, EventsError, Rejection
from .ledger import IngestResult, Ledger, LedgerError
from .state import StateSettings
from .store import StoreError, default_url, open_store

__all__ = ["Ledger", "LedgerError", "IngestResult", "Rejection", "EventsError", "KINDS", "StateSettings",
           "StoreError", "default_url", "open_store"]
