"""A Decide with a ledger the wire way: the Account's wire bytes staged into the kernel's
record inputs (:class:`~kernel.server.wire.KernelInputs`), then the ledger's state written
over the inputs of the columns it replaces (:class:`~kernel.ledger.join.StateInputs`, the
precedence of docs/data-contract.md) — no record of the book built, none joined with the
state. The ledger is asked with a record of the few columns it reads (the account, its time
zone and the contact-time gate's registered columns), built from the same parse — of the
parsed Account message, or of a decision-only request's bytes (no protobuf parse at all)."""
from __future__ import annotations

import threading

import numpy as np

from ..ledger.join import StateInputs
from ..ledger.store import REGISTRY_COLUMNS
from .wire import KernelInputs, WireDecoder, _builder


class LedgerInputs:
    """What :meth:`kernel.server.engine.Engine.decide_account` needs for a Decide with a
    ledger: the book's staging (``inputs``), the state's (``state``), :meth:`registry` and
    :meth:`request_registry`. :meth:`for_kernel` gives None when the wire way cannot serve
    the kernel (an input that is not a field of the Account, a state column the writer does
    not take)."""

    def __init__(self, inputs: KernelInputs, state: StateInputs, registry_build, request_registry_build):
        self.inputs, self.state = inputs, state
        self._registry_build, self._request_registry_build = registry_build, request_registry_build
        self._local = threading.local()            # each thread's kept state bytes (keep_state)

    @classmethod
    def for_kernel(cls, decoder: WireDecoder, kernel, book_counters: str) -> "LedgerInputs | None":
        inputs = KernelInputs.for_kernel(decoder, kernel)
        if inputs is None:
            return None
        state = StateInputs.for_layout(kernel.record_layout[0], book_counters)
        if state is None:
            return None
        slots = {c.name: i for i, c in enumerate(decoder.columns)}
        names = ("account_id", *REGISTRY_COLUMNS)
        if not all(name in slots for name in names):
            return None
        columns = tuple(decoder.columns[slots[name]] for name in names)
        where = {j: decoder.where[slots[name]] for j, name in enumerate(names)}
        _, build = _builder(columns, where)
        # (the parse's seen: a flag per slot, then per slot its text's start and end)
        texts = {j: len(decoder.columns) + 2 * slots[name] for j, name in enumerate(names)}
        _, request_build = _builder(columns, where, texts)
        return cls(inputs, state, build, request_build)

    def registry(self, message) -> dict:
        """The record's account id, time zone and registered columns (the values the record
        :meth:`KernelInputs.record` builds would hold) from the parse :meth:`KernelInputs.stage`
        just made of ``message`` (True): what :meth:`Ledger.registered_state_values` reads."""
        _, values, floats = self.inputs.decoder.thread_buffers()
        return self._registry_build(message, values.tolist(), floats.tolist())

    def request_registry(self, data: bytes) -> dict:
        """:meth:`registry` of the request whose bytes ``data`` :meth:`KernelInputs.stage_request`
        just staged (not None), its texts read off those bytes."""
        seen, values, floats = self.inputs.decoder.thread_buffers()
        return self._request_registry_build(self.inputs.request_account(data), seen, values.tolist(),
                                            floats.tolist())

    def kept_state(self, data: bytes, ledger) -> tuple | None:
        """The state bytes :meth:`keep_state` kept for the Account of the request ``data`` —
        ``(account bytes, from, until, positions, bytes)`` for
        :meth:`~kernel.server.wire_decide.RequestDecider.decide_kept`, which writes them when
        the request's Account is those bytes and its now in ``[from, until)`` — while they
        hold otherwise: the ledger remembers the account's registration as it was when they
        were kept, and nothing was committed to the store since (:meth:`Ledger.version_now`):
        then the state read and written afresh would write these bytes. None: nothing kept."""
        kept = getattr(self._local, "kept", None)
        if not kept or len(data) < 3 or data[0] != _ACCOUNT_TAG:
            return None
        length, at = data[1], 2               # (the Account's length: a varint, first field)
        if length >= 0x80:
            length, at = (length & 0x7F) | data[2] << 7, 3
            if data[2] >= 0x80:
                return None
        entry = kept.get(data[at:at + length])
        if entry is None or ledger.remembered(entry[0]) is not entry[1] or ledger.version_now() != entry[2]:
            return None
        return entry[3:]

    def keep_state(self, ledger, registry: dict, account: bytes, at_us: int, values: dict, size: int) -> None:
        """Keep the bytes :attr:`state` writes for ``values`` — the ledger's just read for the
        request's Account ``account`` (bytes) of ``registry`` as of ``at_us`` — with the span
        and the store's version over which the ledger would read them again
        (:meth:`Ledger.kept_state_span`; nothing kept when it cannot say: an account asked
        once, a car with a GPS state)."""
        account_id = registry["account_id"]
        span = ledger.kept_state_span(account_id, registry["time_zone"], at_us, values)
        if span is None:
            return
        patch = self.state.patch(values, size)
        if patch is None:
            return
        local = self._local
        kept = getattr(local, "kept", None)
        if kept is None or len(kept) >= _KEPT_ACCOUNTS:
            kept = local.kept = {}
            local.positions = {}
        at, written = patch
        at = local.positions.setdefault(at.tobytes(), at)     # (one array per set of columns written)
        version, start, end = span
        # (a writable copy of the Account's bytes: a read-only array would be another type to
        # the compiled call, compiled a second time on a cold cache)
        kept[account] = (account_id, ledger.remembered(account_id), version, np.frombuffer(account, np.uint8).copy(),
                         start, end, at, written)


#: the tag of DecideRequest's Account (field 1, length-delimited)
_ACCOUNT_TAG = 0x0A
#: requests' Accounts whose state bytes a thread keeps (then it starts over): ≈ 1 KB each
_KEPT_ACCOUNTS = 1024
