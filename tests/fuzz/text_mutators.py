"""Seeded mutators shared by the fuzz suites: text edits that keep most of a file's shape
(so that cases get past the parser) plus the hostile shapes that break parsers — deep
nesting, long repetition, YAML aliases, extreme numbers, control characters."""
from __future__ import annotations

import random
import re

#: repeated many times, these reach the limits of recursive parsers and checkers
REPEATABLE = ["[", "{", "- ", "(", "not ", "-", "1+", "x if true else ", "a.", "[[", "{a=", "a = [", "- - ",
              "? ", "&a ", "*a, ", "'", "\\", "\t", " ", "\n"]
COUNTS = [2, 3, 10, 64, 65, 100, 101, 1000, 5000, 30000]
EXTREME_NUMBERS = ["0", "-0", "1e400", "-1e400", "1e-400", "9" * 40, "-" + "9" * 40, "9223372036854775807",
                   "9223372036854775808", "-9223372036854775809", "0x7fffffffffffffffff", "0o777", "0b101", ".nan",
                   "nan", "inf", "-inf", "1_000", "1__0", "01", "00", "+1", "1.", ".5", "5e", "1e", "NaN", "Infinity"]
CONTROL = ["\x00", "\x07", "\x1b", "\r", "\r\n", "\u2028", "\ufeff", "\u200b", "\x85", "\x7f"]
NUMBER = re.compile(r"(?<![\w.])-?\d+(\.\d+)?([eE][-+]?\d+)?(?![\w.])")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def mutate(text: str, rng: random.Random, noise: list[str], rounds: tuple[int, int] = (1, 4)) -> str:
    """``text`` with a few random edits, each drawn from ``rng``."""
    for _ in range(rng.randint(*rounds)):
        text = rng.choice(_EDITS)(text, rng, noise)
    return text


def _insert(text, rng, noise):
    at = rng.randint(0, len(text))
    return text[:at] + rng.choice(noise) + text[at:]


def _delete(text, rng, noise):
    at = rng.randint(0, len(text))
    return text[:at] + text[at + rng.randint(1, 24):]


def _replace(text, rng, noise):
    at = rng.randint(0, len(text))
    return text[:at] + rng.choice(noise) + text[at + rng.randint(1, 12):]


def _lines(text, rng, noise):
    lines = text.splitlines(keepends=True)
    if not lines:
        return text
    i = rng.randrange(len(lines))
    op = rng.randrange(5)
    if op == 0:
        lines.insert(i, lines[i])
    elif op == 1:
        lines.pop(i)
    elif op == 2:
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif op == 3:                                  # indentation shifted
        lines[i] = " " * rng.choice([1, 2, 4]) + lines[i] if rng.random() < 0.5 else lines[i].lstrip(" ")
    else:                                          # indentation by a tab
        lines[i] = "\t" + lines[i].lstrip(" ")
    return "".join(lines)


def _repeat(text, rng, noise):
    """A token repeated many times, sometimes closed (``[[[…]]]``) so that it parses."""
    token, count = rng.choice(REPEATABLE), rng.choice(COUNTS)
    closing = {"[": "]", "{": "}", "(": ")", "[[": "]]", "{a=": "}", "a = [": "]"}.get(token, "")
    body = token * count + ("1" + closing * count if closing and rng.random() < 0.6 else "")
    at = rng.randint(0, len(text))
    return text[:at] + body + text[at:]


def _number(text, rng, noise):
    found = list(NUMBER.finditer(text))
    if not found:
        return _insert(text, rng, EXTREME_NUMBERS)
    m = rng.choice(found)
    return text[:m.start()] + rng.choice(EXTREME_NUMBERS) + text[m.end():]


def _name(text, rng, noise):
    """A name replaced by another name of the same file (a wrong but plausible reference)."""
    found = list(NAME.finditer(text))
    if len(found) < 2:
        return text
    m, other = rng.choice(found), rng.choice(found)
    return text[:m.start()] + other.group(0) + text[m.end():]


def _control(text, rng, noise):
    at = rng.randint(0, len(text))
    return text[:at] + rng.choice(CONTROL) + text[at:]


def _long(text, rng, noise):
    at = rng.randint(0, len(text))
    return text[:at] + rng.choice(["x", "中", "9", " ", "#"]) * rng.choice([1000, 100_000]) + text[at:]


_EDITS = [_insert, _insert, _delete, _replace, _lines, _lines, _repeat, _number, _name, _control, _long]


def flip_bytes(data: bytes, rng: random.Random) -> bytes:
    """Raw bytes changed: invalid UTF-8, NULs, a BOM, a truncation."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(4)
        at = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data[at:at] = bytes([rng.choice([0x00, 0xff, 0xfe, 0xc3, 0x80, 0xed, 0xa0])])
        elif op == 2:
            data[0:0] = b"\xef\xbb\xbf"
        else:
            del data[at:]
    return bytes(data)
