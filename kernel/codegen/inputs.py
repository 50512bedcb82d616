"""The decision date and the input schema's check, shared by the compiled kernel
(:mod:`kernel.codegen.driver`) and the reference engine: kept apart from the driver so that
deciding on the reference engine (``postloan test``) imports neither Numba nor the compiled
kernel's helpers."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from ..rules.columns import InputError, accepts, expected_text

_EPOCH = dt.date(1970, 1, 1)


def as_of_days(as_of) -> int:
    if as_of is None:
        as_of = dt.date.today()
    if isinstance(as_of, dt.datetime):
        as_of = as_of.date()
    if isinstance(as_of, str):
        as_of = dt.date.fromisoformat(as_of)
    if isinstance(as_of, np.datetime64):
        return int(as_of.astype("datetime64[D]").astype(np.int64))
    if not isinstance(as_of, dt.date):
        raise InputError(f"as_of must be a date, got {as_of!r}", "as_of")
    return (as_of - _EPOCH).days


def check_input_schema(slots, schema: pa.Schema) -> None:
    """Raise :class:`InputError` naming the first column of ``slots`` (the plan's input
    columns) that ``schema`` lacks or types wrongly."""
    names = set(schema.names)
    for slot in slots:
        if slot.name not in names:
            raise InputError(f"missing column `{slot.name}` (the rules read it as {slot.type})", slot.name)
        at = schema.field(slot.name).type
        if not accepts(slot.type, at):
            raise InputError(f"column `{slot.name}` has type {at}, expected {expected_text(slot.type)}",
                             slot.name)
