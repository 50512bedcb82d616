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
NAT = np.iinfo(np.int64).min          # NaT as an int64
EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


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
        values = []
        for name, nullable in self.days:
            if has(name):
                d = getattr(message, name)
                try:
                    values.append(dt.date(d.year, d.month, d.day).toordinal() - EPOCH_ORDINAL)
                except ValueError as e:
                    raise FieldError(self.prefix + name, f"not a valid date ({d.year:04d}-{d.month:02d}-{d.day:02d}): {e}") from None
            elif nullable:
                values.append(NAT)
            else:
                raise self._missing(name)
        arr = np.array(values, np.int64).view("datetime64[D]")
        for i, (name, _) in enumerate(self.days):
            out[name] = arr[i:i + 1]
        values = []
        for name, nullable in self.micros:
            if has(name):
                ts = getattr(message, name)
                values.append(ts.seconds * 1_000_000 + ts.nanos // 1000)
            elif nullable:
                values.append(NAT)
            else:
                raise self._missing(name)
        arr = np.array(values, np.int64).view("datetime64[us]")
        for i, (name, _) in enumerate(self.micros):
            out[name] = arr[i:i + 1]
        values = []
        for name, nullable in self.texts:
            if has(name):
                values.append(getattr(message, name))
            elif nullable:
                values.append(None)
            else:
                raise self._missing(name)
        arr = np.array(values, object)
        for i, (name, _) in enumerate(self.texts):
            out[name] = arr[i:i + 1]
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
