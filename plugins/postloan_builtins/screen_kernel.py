"""The script screen over many scripts, compiled: one pass over an Arrow string array's bytes.

:func:`postloan_builtins.compliance._screen_one` states the screen in plain Python (the
reference the tests hold this pass to); this reads many scripts at once (:func:`scan`), or one
request's script (:func:`scan_text`), and gives the same bits. Every literal the screen looks for — the
notices and threats (exact bytes), the Chinese debt terms, the English debt terms and
whole words (ASCII letters folded, a word boundary before, and after a whole word), the
identity and voicemail markers (exact) and the words that make an English pattern worth
running — is a byte pattern, found at each position through a table keyed by the
position's first two bytes (a character of three bytes — Chinese — first by its code point,
ASCII by its first three bytes: most start no pattern, though they share their first two
bytes with one that does). Positions are byte offsets: they order a script's terms and
markers exactly as character offsets do. The English patterns themselves (``reply STOP``,
``this call is recorded`` …) run afterwards, only on the scripts holding their word.
"""
from __future__ import annotations

from kernel.codegen.cache import configure_numba_cache

configure_numba_cache()          # before any kernel here is defined: one cache folder per code version

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402


def _inner(fn):
    """``@njit(cache=True)`` for a function only compiled code calls: without the CPython and
    C-callable wrappers Numba otherwise builds (and compiles) for every function."""
    return njit(fn, cache=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)

#: what a pattern is
P_LITERAL, P_DEBT, P_DEBT_PREFIX, P_DEBT_WORD, P_IDENTITY, P_VOICEMAIL, P_WORD = range(7)


def _code_point(b0, b1, b2):
    """The code point of a character of three UTF-8 bytes (lead byte 0xE0–0xEF)."""
    return (b0 & 0x0F) << 12 | (b1 & 0x3F) << 6 | (b2 & 0x3F)


def _trigram(l0, l1, l2):
    """Three bytes, ASCII letters lowered, as 15 bits (each byte's low five: a letter's own,
    other bytes may share one — a position let through in vain, never one passed over)."""
    return (l0 & 0x1F) << 10 | (l1 & 0x1F) << 5 | (l2 & 0x1F)


#: where the three-byte ASCII starts' bits begin in the first characters' bitmap, and its size
TRIGRAMS = 1 << 16
FIRST_CHARS_BYTES = (TRIGRAMS + (1 << 15)) >> 3


def build_table(patterns: list[tuple[bytes, bool, int, int]], marks: tuple[int, int, int, int]) -> np.ndarray:
    """The patterns ``(bytes, folded, kind, bit)`` — as flat arrays, two tables (exact,
    folded) from a position's first two bytes to the patterns starting with them, and a bit
    per character of three UTF-8 bytes and per first three ASCII bytes that start a pattern —
    and the bits ``marks`` sets (a script, a debt term, one before the caller's identity, a voicemail
    that holds none), packed in one byte array (:func:`_tables` unpacks it in compiled code):
    a call hands Numba one array instead of thirteen (each costs its unboxing, a request's
    script pays them per call)."""
    flat = np.frombuffer(b"".join(p for p, _, _, _ in patterns), np.uint8).copy()
    lengths = np.array([len(p) for p, _, _, _ in patterns], np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    kinds = np.array([k for _, _, k, _ in patterns], np.int64)
    bits = np.array([b for _, _, _, b in patterns], np.int64)
    tables = []
    for folded in (False, True):
        keyed: dict[int, list[int]] = {}
        for j, (p, f, _, _) in enumerate(patterns):
            if f == folded:
                assert len(p) >= 2, p
                keyed.setdefault(p[0] << 8 | p[1], []).append(j)
        first = np.zeros(65537, np.int64)
        for key, js in keyed.items():
            first[key + 1] = len(js)
        first = np.cumsum(first)
        index = np.zeros(max(1, int(first[-1])), np.int64)
        fill = first[:-1].copy()
        for key in sorted(keyed):
            for j in keyed[key]:
                index[fill[key]] = j
                fill[key] += 1
        seen = np.zeros(8192, np.uint8)         # a bit per key: most positions stop at this (8 KB) test
        for key in keyed:
            seen[key >> 3] |= 1 << (key & 7)
        tables.extend((seen, first.astype(np.int32), index.astype(np.int32)))
    # a bit per character of three UTF-8 bytes (its code point: all of U+0800–U+FFFF, 8 KB) that
    # starts an exact pattern: a Chinese character shares its first two bytes with 63 others,
    # and most positions of Chinese text pass the two-byte test only to fail every candidate;
    # then a bit per first three ASCII bytes, letters folded (:func:`_trigram`, 4 KB), that start
    # a pattern: English words share their first two letters with a term far more often
    first_chars = np.zeros(FIRST_CHARS_BYTES, np.uint8)
    lower = bytes.maketrans(bytes(range(65, 91)), bytes(range(97, 123)))
    for p, f, _, _ in patterns:
        if not f and 0xE0 <= p[0] < 0xF0:
            bit = _code_point(p[0], p[1], p[2])
        elif p[0] < 0x80 and len(p) >= 3:
            bit = TRIGRAMS + _trigram(*p[:3].translate(lower))
        elif p[0] < 0x80:                       # a pattern of two ASCII bytes: every trigram passes
            first_chars[TRIGRAMS >> 3:] = 0xFF
            continue
        else:
            continue
        first_chars[bit >> 3] |= 1 << (bit & 7)
    return _packed((flat, starts, lengths, kinds, bits, *tables, first_chars, np.array(marks, np.int64)))


#: the arrays :func:`build_table` packs, in order (:func:`_tables` gives them back)
N_TABLES = 13


def _packed(arrays: tuple) -> np.ndarray:
    """``arrays`` in one byte array: a head of int64 (start, end) byte offsets, one pair per
    array, then each array's bytes from an offset that is a multiple of 8 (its items aligned)."""
    assert len(arrays) == N_TABLES
    at = head = 16 * N_TABLES
    bounds = []
    for a in arrays:
        at = -(-at // 8) * 8
        bounds += [at, at + a.nbytes]
        at += a.nbytes
    out = np.zeros(at, np.uint8)
    out[:head].view(np.int64)[:] = bounds
    for a, lo in zip(arrays, bounds[::2]):
        out[lo:lo + a.nbytes] = np.ascontiguousarray(a).view(np.uint8)
    return out


@njit(cache=True, inline="always")
def _tables(t):
    """:func:`build_table`'s arrays out of its byte array (views: nothing copied)."""
    h = t[:16 * N_TABLES].view(np.int64)
    return (t[h[0]:h[1]], t[h[2]:h[3]].view(np.int64), t[h[4]:h[5]].view(np.int64), t[h[6]:h[7]].view(np.int64),
            t[h[8]:h[9]].view(np.int64), t[h[10]:h[11]], t[h[12]:h[13]].view(np.int32),
            t[h[14]:h[15]].view(np.int32), t[h[16]:h[17]], t[h[18]:h[19]].view(np.int32),
            t[h[20]:h[21]].view(np.int32), t[h[22]:h[23]], t[h[24]:h[25]].view(np.int64))


_code_point_compiled = _inner(_code_point)
_trigram_compiled = _inner(_trigram)


@_inner
def _lower(b):
    return b + 32 if 65 <= b <= 90 else b


@_inner
def _word(b):
    return 48 <= b <= 57 or 65 <= b <= 90 or 97 <= b <= 122 or b == 95


@_inner
def _matches_at(data, p, end, flat, start, length, folded):
    """Whether the pattern (``length`` ≥ 2 bytes from ``flat[start]``) is at ``p``, its first
    two bytes known to be there (the table's key). Its last byte is tried first: a candidate
    shares the key's two bytes, and in Chinese text most differ by their last character."""
    if p + length > end:
        return False
    last = p + length - 1
    b = data[last]
    if folded:
        b = _lower(b)
    if b != flat[start + length - 1]:
        return False
    for i in range(2, length - 1):
        b = data[p + i]
        if folded:
            b = _lower(b)
        if b != flat[start + i]:
            return False
    return True


@_inner
def _found(state, kind, bit, p, n, data, lo, end):
    """The state after pattern (``kind``, ``bit``) of ``n`` bytes matched at ``p``."""
    bits, words, first_debt, last_debt, identity, voicemail = state
    if kind == P_LITERAL:
        bits |= bit
    elif kind == P_WORD:
        words |= bit
    elif kind == P_IDENTITY:
        if identity < 0:
            identity = p
    elif kind == P_VOICEMAIL:
        if voicemail < 0:
            voicemail = p
    else:
        if kind != P_DEBT:                      # an English term starts a word …
            if p > lo and _word(data[p - 1]):
                return state
            if kind == P_DEBT_WORD and p + n < end and _word(data[p + n]):
                return state                    # … and a whole word ends one
        if first_debt < 0:
            first_debt = p
        last_debt = p
    return bits, words, first_debt, last_debt, identity, voicemail


@_inner
def _scan_one(data, lo, end, flat, starts, lengths, kinds, bits_of, exact_seen, exact_first, exact_index, fold_seen,
              fold_first, fold_index, first_chars, marks):
    """(bits, the English checks worth running) of the script ``data[lo:end]``."""
    state = (marks[0], 0, -1, -1, -1, -1)      # bits, words, first and last debt term, identity, voicemail
    for p in range(lo, end - 1):
        b0 = data[p]
        if 0x80 <= b0 < 0xC0:                   # inside a character: no pattern starts here
            continue
        b1 = data[p + 1]
        if b0 < 0x80:                           # ASCII: the folded patterns, then the exact ones
            if p + 2 < end:                     # do a pattern's first three bytes start here?
                bit = TRIGRAMS + _trigram_compiled(_lower(b0), _lower(b1), _lower(data[p + 2]))
                if not first_chars[bit >> 3] & (1 << (bit & 7)):
                    continue
            key = (_lower(b0) << 8) | _lower(b1)
            a, z = 0, 0
            if fold_seen[key >> 3] & (1 << (key & 7)):
                a, z = fold_first[key], fold_first[key + 1]
            for q in range(a, z):
                j = fold_index[q]
                if _matches_at(data, p, end, flat, starts[j], lengths[j], True):
                    state = _found(state, kinds[j], bits_of[j], p, lengths[j], data, lo, end)
        if 0xE0 <= b0 < 0xF0:                   # a character of three bytes: does a pattern start with it?
            if p + 2 >= end:
                continue
            point = _code_point_compiled(b0, b1, data[p + 2])
            if not first_chars[point >> 3] & (1 << (point & 7)):
                continue
        key = (b0 << 8) | b1
        if not exact_seen[key >> 3] & (1 << (key & 7)):
            continue
        a, z = exact_first[key], exact_first[key + 1]
        for q in range(a, z):
            j = exact_index[q]
            if _matches_at(data, p, end, flat, starts[j], lengths[j], False):
                state = _found(state, kinds[j], bits_of[j], p, lengths[j], data, lo, end)
    bits, words, first_debt, last_debt, identity, voicemail = state
    if first_debt >= 0:
        bits |= marks[1]
        if identity < 0 or first_debt < identity:
            bits |= marks[2]
    if voicemail >= 0 and last_debt <= voicemail:
        bits |= marks[3]
    return bits, words


@njit(cache=True, nogil=True)
def scan_range(data, offsets, valid, tables, lo, hi, bits, words):
    """Scripts ``lo`` to ``hi``: each one's bits and English words (0 for a null script), by
    the screen's packed ``tables`` (:func:`build_table`). Holds no GIL: :func:`scan_many`
    runs ranges of a batch on several threads."""
    flat, starts, lengths, kinds, bits_of, exact_seen, exact_first, exact_index, fold_seen, fold_first, fold_index, \
        first_chars, marks = _tables(tables)
    for i in range(lo, hi):
        if not valid[i]:
            bits[i] = 0
            words[i] = 0
            continue
        bits[i], words[i] = _scan_one(data, offsets[i], offsets[i + 1], flat, starts, lengths, kinds, bits_of,
                                      exact_seen, exact_first, exact_index, fold_seen, fold_first, fold_index,
                                      first_chars, marks)


@njit(cache=True)
def scan(data, offsets, valid, tables, bits, words):
    """Every script's bits and English words (``bits``, ``words``; 0 for a null script):
    :func:`scan_range` over all of them (``lo`` an int64, not the literal 0: the one compiled
    :func:`scan_range` is also the one :func:`scan_many` calls)."""
    scan_range(data, offsets, valid, tables, np.int64(0), offsets.shape[0] - 1, bits, words)


#: ranges a batch of scripts is cut into by :func:`scan_many` (claimed in turn by the threads)
PARTS = 64


def scan_many(data, offsets, valid, tables, bits, words):
    """:func:`scan` for a batch's megabytes of text: :func:`scan_range` over :data:`PARTS`
    ranges of scripts, claimed in turn by the calling thread and the compiled kernel's pool
    threads (:func:`kernel.codegen.driver._share`). One compiled function serves both: no
    ``parallel=True`` copy, whose parfor passes cost seconds of a cold compile."""
    from functools import partial

    from kernel.codegen.driver import _share
    n = offsets.shape[0] - 1
    parts = max(1, min(PARTS, n))
    _share([partial(scan_range, data, offsets, valid, tables, n * k // parts, n * (k + 1) // parts, bits, words)
            for k in range(parts)])


@njit(cache=True)
def scan_text(data, tables):
    """(bits, the English checks worth running) of one script's UTF-8 bytes ``data`` — a
    request's script: :func:`scan`'s pass (:func:`_scan_one`) without the arrays around it."""
    flat, starts, lengths, kinds, bits_of, exact_seen, exact_first, exact_index, fold_seen, fold_first, fold_index, \
        first_chars, marks = _tables(tables)
    return _scan_one(data, np.int64(0), data.shape[0], flat, starts, lengths, kinds, bits_of, exact_seen, exact_first,
                     exact_index, fold_seen, fold_first, fold_index, first_chars, marks)
