"""Structured JSON logs that never carry personal data.

One JSON object per line. The server logs only what it chooses to (method, status code,
duration, client name, account id, bundle hash) — never a request, a response or a
record. Exceptions are logged as their type and stack frames (file, line, function)
without their message; where a message is useful it goes through :func:`scrub`, which
blanks out the PII values of the request being served (``kernel.schema.pii_columns()``).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
import traceback

from .. import schema

LOGGER = "postloan.server"
REDACTED = "<redacted>"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        doc.update(getattr(record, "fields", None) or {})
        if record.exc_info and record.exc_info[0] is not None:
            doc["error_type"] = record.exc_info[0].__name__
            doc["stack"] = [f"{f.filename}:{f.lineno} in {f.name}"
                            for f in traceback.extract_tb(record.exc_info[2])]
        return json.dumps(doc, ensure_ascii=False, default=str)


class _Stderr(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when a record is emitted, not as it was when logging
    was configured (an embedding program or a test harness may have replaced it since)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def configure(level: str | int = "INFO", stream=None, logger_name: str = "postloan") -> logging.Handler:
    """Send the ``postloan`` loggers to ``stream`` (default stderr) as JSON lines."""
    handler = logging.StreamHandler(stream) if stream is not None else _Stderr()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(logger_name)
    for old in [h for h in logger.handlers if isinstance(h.formatter, JsonFormatter)]:
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return handler


def log(level: int, event: str, exc_info=None, **fields) -> None:
    logging.getLogger(LOGGER).log(level, event, exc_info=exc_info, extra={"fields": fields})


_PII_FIELDS = tuple(sorted(schema.pii_columns("book")))


def pii_values(message) -> list[str]:
    """The PII values a request message carries (as text), longest first, for :func:`scrub`."""
    values = []
    if message is None:
        return values
    for name in _PII_FIELDS:
        if name in message.DESCRIPTOR.fields_by_name and message.HasField(name):
            value = getattr(message, name)
            values.extend([str(value), repr(value)] if isinstance(value, float) else [str(value)])
    return sorted({v for v in values if v}, key=len, reverse=True)


def scrub(text: str, values: list[str]) -> str:
    for value in values:
        text = text.replace(value, REDACTED)
    return text


_QUOTED = re.compile(r"`[^`\n]*`|\"[^\"\n]*\"|'[^'\n]*'")


def blank_quoted(text: str) -> str:
    """``text`` with every quoted span blanked (`…`, "…", '…'): where a message quotes what it
    read — a request's value in an unexpected exception, a file's first characters or a YAML
    key in a compiler error — the quote goes, the rest of the message stays."""
    return _QUOTED.sub(lambda m: m.group(0)[0] + "…" + m.group(0)[0], text)
