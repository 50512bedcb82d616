"""One account's scripts written and screened in compiled code: the UTF-8 bytes of each script
of a request, then the screen's pass over them, in one call.

:meth:`postloan_builtins.collection.TieredStrategy._render_one` compiles a combination of
templates once into a *program* (:func:`program`): each template as segments — a literal's
bytes (the strategy's constants written in), then a slot or none, said only where its clause
is — and each slot as what it shows: an amount (a float, written as ``¥1,234.56``), a count
(an int64, written as ``12`` or ``12 days``) or a text the Python reader worked out (the
name, the vehicle, a date, a label). A request hands its values as one byte array
(:func:`render`'s ``values``: the floats, the ints and clause flags, then the texts joined by
NUL); the scripts come back in ``out``, each followed by the screen's bits (the pass of
:mod:`.screen_kernel`, the policies' table), so that the policies read a request's scripts
without scanning them again (:func:`postloan_builtins.compliance.remember_screened`).

The Python renderer (:func:`postloan_builtins.collection._account_renderer`) stays the
reference: tests/plugins/test_compiled_scripts.py holds this one to it byte for byte, and it
writes what this declines (an amount that is not finite or too large for cents in 64 bits:
:data:`DECLINED`).
"""
from __future__ import annotations

from kernel.codegen.cache import configure_numba_cache

configure_numba_cache()          # before any kernel here is defined: one cache folder per code version

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

from kernel.localtime import NULL_TIME  # noqa: E402

from .screen_kernel import _scan_one, _tables  # noqa: E402

#: what a slot shows
SLOT_MONEY, SLOT_COUNT, SLOT_TEXT = range(3)
#: a slot's row in the program: kind, its value's index, the unit's singular and plural
#: (literal start and length, a leading space included; −1: no unit)
SLOT_WIDTH = 6
#: a segment's row: script, literal start, literal length, slot (−1: none), clause (−1: always)
SEGMENT_WIDTH = 5
#: the program's head: floats, ints (counts, then clause flags), texts, scripts, slots, segments;
#: then the slots' rows, the segments' rows, and per script whether it is screened (0/1)
HEAD = 6
#: :func:`render`'s answers besides the bytes written
DECLINED, OUT_TOO_SMALL = -1, -2
#: per script in ``result``: end byte, end character, screen bits (−1: not screened), English words
RESULT_WIDTH = 4

#: "—", the text of a missing value
_MISSING = np.frombuffer("—".encode(), np.uint8).copy()
#: 2**63 as a float: cents at or above it do not fit in an int64
_CENTS_LIMIT = 9.223372036854775808e18


def program(floats: int, ints: int, texts: int, slots: list, segments: list, screened: list) -> np.ndarray:
    """A combination of templates as :func:`render` reads it: the head, the slots' rows
    (:data:`SLOT_WIDTH`), the segments' rows (:data:`SEGMENT_WIDTH`), and for each script
    whether the screen reads it, in one int64 array."""
    rows = [floats, ints, texts, len(screened), len(slots), len(segments)]
    for slot in slots:
        assert len(slot) == SLOT_WIDTH
        rows.extend(slot)
    for segment in segments:
        assert len(segment) == SEGMENT_WIDTH
        rows.extend(segment)
    rows.extend(int(bool(s)) for s in screened)
    return np.array(rows, np.int64)


@njit(cache=True, inline="always")
def _copy(out, at, source, lo, n):
    out[at:at + n] = source[lo:lo + n]       # a slice's copy: ≈ 30 % less than a loop of bytes
    return at + n


@njit(cache=True, inline="always")
def _digits(value):
    """How many decimal digits a whole number ≥ 0 has."""
    n = 1
    while value >= 10:
        value //= 10
        n += 1
    return n


@njit(cache=True, inline="always")
def _money_length(v, symbol_length):
    """The bytes :func:`_write_money` writes for ``v`` (−1: declined — not finite, or cents
    beyond 64 bits: the Python renderer raises or writes it)."""
    if v != v:
        return _MISSING.shape[0]
    x = abs(v) * 100.0
    if not x < _CENTS_LIMIT:                 # infinite, or cents beyond an int64
        return -1
    cents = np.int64(np.rint(x))             # round half to even, as Python's round()
    n = _digits(cents // 100)
    return (1 if v < 0 and cents > 0 else 0) + symbol_length + n + (n - 1) // 3 + 3


@njit(cache=True, inline="always")
def _write_money(out, at, v, values, symbol_lo, symbol_length):
    """``v`` as collection._money_text writes it: ``-¥1,234.56`` (the sign where the cents
    are not 0, a comma every three digits, two decimals), "—" for NaN."""
    if v != v:
        return _copy(out, at, _MISSING, 0, _MISSING.shape[0])
    cents = np.int64(np.rint(abs(v) * 100.0))
    if v < 0 and cents > 0:
        out[at] = 45                         # -
        at += 1
    at = _copy(out, at, values, symbol_lo, symbol_length)
    whole = cents // 100
    n = _digits(whole)
    end = at + n + (n - 1) // 3
    p = end - 1
    k = 0
    while True:
        out[p] = 48 + whole % 10
        whole //= 10
        p -= 1
        k += 1
        if k == n:
            break
        if k % 3 == 0:
            out[p] = 44                      # ,
            p -= 1
    out[end] = 46                            # .
    out[end + 1] = 48 + (cents % 100) // 10
    out[end + 2] = 48 + cents % 10
    return end + 3


@njit(cache=True, inline="always")
def _write_count(out, at, v, literals, unit_lo, unit_length):
    """``v`` as str() writes it, then its unit (already chosen, with its space); "—" for null."""
    if v == NULL_TIME:
        return _copy(out, at, _MISSING, 0, _MISSING.shape[0])
    if v < 0:
        out[at] = 45
        at += 1
        v = -v
    n = _digits(v)
    for k in range(n):
        out[at + n - 1 - k] = 48 + v % 10
        v //= 10
    at += n
    if unit_lo >= 0:
        at = _copy(out, at, literals, unit_lo, unit_length)
    return at


@njit(cache=True)
def render(code, literals, values, tables, out, result):
    """Every script of the program ``code`` (:func:`program`) for one account's ``values``
    (the floats, the ints, then the texts joined by NUL — the first text the currency symbol)
    into ``out``, each one's end (bytes and characters) and — where the program says it is
    screened — its screen's bits and English words into ``result`` (:data:`RESULT_WIDTH` in a row per script), by the screen's packed ``tables``.
    Returns the bytes written, :data:`DECLINED` (an amount the Python renderer writes or
    refuses, a text holding NUL) or :data:`OUT_TOO_SMALL` (nothing written: a larger ``out`` is needed)."""
    floats, ints, texts, scripts, n_slots, n_segments = code[0], code[1], code[2], code[3], code[4], code[5]
    slots = code[HEAD:HEAD + n_slots * SLOT_WIDTH].reshape((n_slots, SLOT_WIDTH))
    at = HEAD + n_slots * SLOT_WIDTH
    segments = code[at:at + n_segments * SEGMENT_WIDTH].reshape((n_segments, SEGMENT_WIDTH))
    screened = code[at + n_segments * SEGMENT_WIDTH:]
    amounts = values[:8 * floats].view(np.float64)
    counts = values[8 * floats:8 * (floats + ints)].view(np.int64)
    # the texts' bounds: a NUL between two (one held by a text itself: declined)
    bounds = np.empty(texts + 1, np.int64)
    bounds[0] = 8 * (floats + ints)
    t = 1
    for p in range(bounds[0], values.shape[0]):
        if values[p] == 0:
            if t == texts:
                return DECLINED
            bounds[t] = p + 1
            t += 1
    if t != texts:
        return DECLINED
    bounds[texts] = values.shape[0] + 1
    symbol_lo, symbol_length = bounds[0], bounds[1] - 1 - bounds[0]
    # each slot's length, said or not (an amount declined is declined wherever it stands)
    lengths = np.empty(n_slots, np.int64)
    for s in range(n_slots):
        kind, index = slots[s, 0], slots[s, 1]
        if kind == SLOT_MONEY:
            lengths[s] = _money_length(amounts[index], symbol_length)
        elif kind == SLOT_TEXT:
            lengths[s] = bounds[index + 1] - 1 - bounds[index]
        else:
            lengths[s] = 24 + max(slots[s, 3], slots[s, 5])
    need = 0
    for g in range(n_segments):
        clause, slot = segments[g, 4], segments[g, 3]
        if clause >= 0 and counts[clause] == 0:
            continue
        need += segments[g, 2]
        if slot >= 0:
            if lengths[slot] < 0:
                return DECLINED
            need += lengths[slot]
    if need > out.shape[0]:
        return OUT_TOO_SMALL
    flat, starts, sizes, kinds, bits_of, exact_seen, exact_first, exact_index, fold_seen, fold_first, fold_index, \
        marks = _tables(tables)
    at = 0
    chars = 0
    g = 0
    for k in range(scripts):
        lo = at
        while g < n_segments and segments[g, 0] == k:
            clause, slot = segments[g, 4], segments[g, 3]
            if clause < 0 or counts[clause] != 0:
                at = _copy(out, at, literals, segments[g, 1], segments[g, 2])
                if slot >= 0:
                    kind, index = slots[slot, 0], slots[slot, 1]
                    if kind == SLOT_MONEY:
                        at = _write_money(out, at, amounts[index], values, symbol_lo, symbol_length)
                    elif kind == SLOT_TEXT:
                        at = _copy(out, at, values, bounds[index], lengths[slot])
                    else:
                        v = counts[index]
                        singular = v == 1 or v == -1
                        at = _write_count(out, at, v, literals, slots[slot, 2] if singular else slots[slot, 4],
                                          slots[slot, 3] if singular else slots[slot, 5])
            g += 1
        for p in range(lo, at):
            chars += (out[p] & 0xC0) != 0x80     # a character's first byte
        bits, words = -1, 0
        if screened[k]:
            bits, words = _scan_one(out, lo, at, flat, starts, sizes, kinds, bits_of, exact_seen, exact_first,
                                    exact_index, fold_seen, fold_first, fold_index, marks)
        result[RESULT_WIDTH * k] = at
        result[RESULT_WIDTH * k + 1] = chars
        result[RESULT_WIDTH * k + 2] = bits
        result[RESULT_WIDTH * k + 3] = words
    return at
