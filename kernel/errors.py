"""The base of every error postloan raises on purpose (bad input, bad bundle, bad plugin).

The CLI turns any :class:`PostloanError` into one line on stderr and exit code 2 (or 1 where
the verb documents it); the gRPC server maps them to status codes. Anything else escaping is
a bug.
"""
from __future__ import annotations


class PostloanError(Exception):
    """An error whose message is meant for the user: it names the file, field, rule or plugin."""

    exit_code = 2


class BundleError(PostloanError):
    """A bundle cannot be loaded: a file is missing or unreadable, names dangle, or form a cycle."""
