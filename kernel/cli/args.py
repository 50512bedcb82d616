"""Argument types shared by the verbs: each rejects a bad value with a one-line message."""
from __future__ import annotations

import argparse
import datetime as dt
import os


def positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


#: the dates a decision or a synthetic book may be "as of": a book reaches decades before its
#: date and years after it, and local times are computed with Python's datetime, which ends in
#: 9999 — an as-of date near either end gave books with impossible dates and failing policies
EARLIEST_DATE, LATEST_DATE = dt.date(1970, 1, 1), dt.date(2199, 12, 31)


def date(text: str) -> dt.date:
    try:
        value = dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise argparse.ArgumentTypeError(f"{text}: expected a date from {EARLIEST_DATE} to {LATEST_DATE}")
    return value


def existing_file(text: str) -> str:
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text}: is a directory, expected a file")
    if not os.access(text, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text}: not readable")
    return text


def existing_path(text: str) -> str:
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"{text}: no such file or directory")
    return text


def output_file(text: str) -> str:
    """A file to write: ``-`` (standard output), a special file such as /dev/stdout or a
    FIFO (written in place), or a regular file whose directory exists and is writable."""
    from ..files import STDOUT, is_special_output
    if not text:
        raise argparse.ArgumentTypeError("expected a file name, got an empty one")
    if text == STDOUT or is_special_output(text):
        return text
    parent = os.path.dirname(os.path.abspath(text))
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text}: is a directory, expected a file name")
    if not os.path.isdir(parent):
        raise argparse.ArgumentTypeError(f"{text}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise argparse.ArgumentTypeError(f"{text}: directory {parent} is not writable")
    return text


def shown_output(target: str) -> str:
    """An output as a summary line names it: ``-`` is standard output."""
    from ..files import STDOUT
    return "standard output" if target == STDOUT else target


def instant(text: str) -> "dt.datetime":
    """An ISO 8601 date-time; without a zone it is taken as UTC."""
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date-time as YYYY-MM-DDTHH:MM[:SS][+HH:MM], got {text!r}") from None
    value = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if not EARLIEST_DATE <= value.date() <= LATEST_DATE:
        raise argparse.ArgumentTypeError(f"{text}: expected a date-time from {EARLIEST_DATE} to {LATEST_DATE}")
    return value


def shown_path(path: str, given: str | None = None) -> str:
    """A file of a bundle as the user would write it: absolute where they gave the bundle's
    path (``given``) as absolute, else relative to the working directory when inside it."""
    if given is not None and os.path.isabs(given):
        return str(path)
    try:
        relative = os.path.relpath(path)
    except ValueError:               # another drive (Windows)
        return str(path)
    return relative if not relative.startswith(os.pardir) else str(path)
