"""The serving engine: one compiled, warm bundle (Kernel + Pipeline) and the conversions
between its columns and the API's messages. The server holds one Engine and swaps it whole
on reload, so a call never sees half of an old bundle and half of a new one."""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from .. import schema
from ..errors import PostloanError
from . import convert
from ._proto.postloan.v1 import decision_pb2
from .status import FieldError

UTC = dt.timezone.utc
NAT_D = np.datetime64("NaT", "D")
NAT_US = np.datetime64("NaT", "us")


def bundle_violations(error: BaseException) -> list[tuple[str, str, str]]:
    """PreconditionFailure entries (type, subject, description) for a rejected bundle: one per
    diagnostic (file:line:column) when the error carries them, else the error itself."""
    out = []
    for d in getattr(error, "diagnostics", None) or ():
        where = ":".join(str(x) for x in (getattr(d, "file", None), getattr(d, "line", None),
                                          getattr(d, "column", None)) if x not in (None, ""))
        rule = getattr(d, "rule", None)
        out.append(("BUNDLE", where + (f" rule {rule}" if rule else ""), getattr(d, "message", str(d))))
    return out or [("BUNDLE", type(error).__name__, str(error))]


# -- Account message → one-element NumPy columns ---------------------------------------------------
class AccountColumns:
    """Decodes an ``Account`` into the kernel's NumPy column forms, rejecting a missing
    non-nullable column with INVALID_ARGUMENT naming it. Values of one dtype are gathered
    into one array and handed out as one-element views (cheaper than one array each)."""

    def __init__(self, columns: tuple[schema.Column, ...] = schema.BOOK, prefix: str = "account."):
        self.prefix = prefix
        floats, ints, bools, codes, days, micros, texts = [], [], [], [], [], [], []
        for col in columns:
            t = col.type
            if col.enum:
                codes.append(col)
            elif pa.types.is_integer(t):
                (floats if col.nullable else ints).append(col)   # nullable ints travel as float64 + NaN
            elif pa.types.is_floating(t):
                floats.append(col)
            elif pa.types.is_boolean(t):
                bools.append(col)
            elif pa.types.is_date(t):
                days.append(col)
            elif pa.types.is_timestamp(t):
                micros.append(col)
            else:
                texts.append(col)
        self.floats = tuple((c.name, c.nullable) for c in floats)
        self.ints = tuple(c.name for c in ints)
        self.bools = tuple((c.name, c.nullable) for c in bools)
        self.codes = tuple((c.name, c.nullable) for c in codes)
        self.days = tuple((c.name, c.nullable) for c in days)
        self.micros = tuple((c.name, c.nullable) for c in micros)
        self.texts = tuple((c.name, c.nullable) for c in texts)

    def _missing(self, name: str):
        return FieldError(self.prefix + name, "required (the contract says it is never null)")

    def __call__(self, message) -> dict[str, np.ndarray]:
        has = message.HasField
        out: dict[str, np.ndarray] = {}
        values = []
        for name, nullable in self.floats:
            if has(name):
                values.append(getattr(message, name))
            elif nullable:
                values.append(np.nan)
            else:
                raise self._missing(name)
        arr = np.array(values, np.float64)
        for i, (name, _) in enumerate(self.floats):
            out[name] = arr[i:i + 1]
        values = []
        for name in self.ints:
            if not has(name):
                raise self._missing(name)
            values.append(getattr(message, name))
        arr = np.array(values, np.int64)
        for i, name in enumerate(self.ints):
            out[name] = arr[i:i + 1]
        values = []
        for name, nullable in self.bools:
            if has(name):
                values.append(getattr(message, name))
            elif nullable:
                values.append(False)
            else:
                raise self._missing(name)
        arr = np.array(values, np.bool_)
        for i, (name, _) in enumerate(self.bools):
            out[name] = arr[i:i + 1]
        values = []
        for name, nullable in self.codes:
            code = getattr(message, name)
            if code == 0 and not nullable:
                raise self._missing(name)
            values.append(code - 1)
        arr = np.array(values, np.int8)
        for i, (name, _) in enumerate(self.codes):
            out[name] = arr[i:i + 1]
        for name, nullable in self.days:
            if has(name):
                d = getattr(message, name)
                out[name] = np.array([convert.date_value(d, self.prefix + name)], "datetime64[D]")
            elif nullable:
                out[name] = np.array([NAT_D])
            else:
                raise self._missing(name)
        for name, nullable in self.micros:
            if has(name):
                ts = getattr(message, name)
                out[name] = np.array([ts.seconds * 1_000_000 + ts.nanos // 1000], "datetime64[us]")
            elif nullable:
                out[name] = np.array([NAT_US])
            else:
                raise self._missing(name)
        for name, nullable in self.texts:
            if has(name):
                out[name] = np.array([getattr(message, name)], object)
            elif nullable:
                out[name] = np.array([None], object)
            else:
                raise self._missing(name)
        return out


# -- the engine ---------------------------------------------------------------------------------------
@dataclass
class Engine:
    kernel: Any
    pipeline: Any
    path: str
    bundle_hash: str
    version: str
    loaded_at: dt.datetime
    compile_seconds: float
    inputs: tuple[str, ...]
    outputs: tuple[tuple[str, str], ...]
    account_columns: AccountColumns = field(default_factory=AccountColumns)


def load_engine(path: str | None, *, audit_path: str | None = None) -> Engine:
    """Compile the bundle at ``path`` (None: the shipped one) into a warm Engine."""
    try:
        from ..runtime import Kernel  # noqa: F401
        from ..pipeline import Pipeline  # noqa: F401
    except ImportError as e:
        raise PostloanError(f"cannot load bundle {path or '(shipped)'}: {e}") from None
    raise PostloanError("kernel.runtime and kernel.pipeline are not integrated with the server yet")
