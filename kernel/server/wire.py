"""An ``Account`` (or ``Vehicle``) read straight from its wire bytes: the fast way in of
:class:`kernel.server.engine.AccountRecord`.

One compiled pass (:func:`_parse`, Numba, compiled once and cached) walks the message's
bytes and checks every field against the contract — required fields set, numbers, dates and
instants within their ranges, floats finite, text within its length, enum codes members, a
time zone one zoneinfo lists (:func:`_listed`) — writing each field's value into one thread's
reused arrays; a function generated once per
table (:func:`_builder`: one dict display, the contract's column order) then turns those into
the record :class:`~kernel.server.engine.AccountRecord` gives — enums as member names, dates
as ``datetime.date``, instants as aware UTC ``datetime``, nulls as None. Per call that is a
handful of C-level steps and one Python expression instead of a ``HasField``, an attribute
read and a range check in Python for each of the book's 88 fields.

The bytes are the message's own serialization (protobuf has parsed the request already and
writes each set field once; unknown fields are skipped). Anything the pass cannot vouch for
— a required field unset, a value out of range, an undecodable date, a field of a known
number with another wire type, a field twice, bytes it cannot read — makes it answer None,
and the caller reads the message field by field instead (the careful path, which also words
the refusal): never a record the careful path would not give
(``tests/server/test_convert.py`` pins the two together).
"""
from __future__ import annotations

import datetime as dt
import functools
import sys
import threading

from ..codegen.cache import configure_numba_cache

configure_numba_cache()          # before the function below is defined (see its docstring)

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
from numba import njit  # noqa: E402

from .. import schema  # noqa: E402
from ..localtime import listed_zones  # noqa: E402

# field kinds (column 0 of the plan)
_UNKNOWN, _INT, _DOUBLE, _BOOL, _ENUM, _TEXT, _DATE, _INSTANT = range(8)
#: the wire type each kind arrives with
_WIRE = {_INT: 0, _DOUBLE: 1, _BOOL: 0, _ENUM: 0, _TEXT: 2, _DATE: 2, _INSTANT: 2}
# plan columns: kind, slot (the field's place in the contract's order), required, lo, hi
# (ints: bounds; enums: member count + 1; text: characters; dates: ordinals; instants: µs),
# wire type, its place in the values handed back (ints, enum codes, bools, dates and instants
# in one int64 array, doubles in another; −1 for text, read off the message), and, for a
# nullable field, its set flag's place after the values (−1 otherwise), and 1 for a text that
# must name an IANA time zone (schema.Column.zone)
_PLAN_WIDTH = 9
EPOCH_UTC = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
# protobuf's Timestamp: 0001-01-01T00:00:00Z … 9999-12-31T23:59:59.999999999Z
_SECONDS_LO, _SECONDS_HI = -62_135_596_800, 253_402_300_799


@njit(cache=True)
def _varint(buf, pos, end):
    """(value as int64 — two's complement, as protobuf's int64 —, next position); position
    −1 when the bytes end first or the varint runs past ten bytes."""
    value = np.int64(0)
    shift = 0
    while pos < end and shift < 64:
        b = np.int64(buf[pos])
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
    return value, -1


@njit(cache=True)
def _skip(buf, pos, end, wire):
    """The position after a field of ``wire`` type at ``pos`` (−1: unreadable)."""
    if wire == 0:
        _, pos = _varint(buf, pos, end)
        return pos
    if wire == 1:
        return pos + 8 if pos + 8 <= end else -1
    if wire == 5:
        return pos + 4 if pos + 4 <= end else -1
    if wire == 2:
        length, pos = _varint(buf, pos, end)
        if pos < 0 or length < 0 or pos + length > end:
            return -1
        return pos + length
    return -1                        # groups (3, 4) and the reserved 6, 7: not in these messages


@njit(cache=True)
def _days_in_month(year, month):
    if month == 2:
        return 29 if (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)) else 28
    if month == 4 or month == 6 or month == 9 or month == 11:
        return 30
    return 31


@njit(cache=True)
def _ordinal(year, month, day):
    """``datetime.date(year, month, day).toordinal()`` (a valid date)."""
    y = year - 1
    days = y * 365 + y // 4 - y // 100 + y // 400
    for m in range(1, month):
        days += _days_in_month(year, m)
    return days + day


#: :func:`_moment`'s answer for bytes that are not a valid date or instant
_NO_MOMENT = np.iinfo(np.int64).min
#: the largest key protobuf reads (a field number below 2**29); a larger one fails its parse
_KEY_MAX = 0xFFFFFFFF


@njit(cache=True)
def _key(buf, pos, end):
    """A field's (number, wire type, next position) as protobuf reads its key; position −1
    when the key is unreadable or one protobuf refuses (zero, or above :data:`_KEY_MAX`)."""
    key, pos = _varint(buf, pos, end)
    if pos < 0 or key < 8 or key > _KEY_MAX:
        return 0, 0, -1
    return key >> 3, key & 7, pos


@njit(cache=True)
def _moment(buf, pos, stop, kind):
    """The ``google.type.Date`` (``kind`` _DATE: its proleptic ordinal) or
    ``google.protobuf.Timestamp`` (_INSTANT: µs since 1970, nanos truncated) in
    ``buf[pos:stop]``; :data:`_NO_MOMENT` for bytes that are not a valid one. Fields are
    read as protobuf reads them: the last one of a number wins, unknown ones skipped, int32
    fields truncated."""
    a = np.int64(0)
    b = np.int64(0)
    c = np.int64(0)
    while pos < stop:
        field, wire, pos = _key(buf, pos, stop)
        if pos < 0:
            return _NO_MOMENT
        if wire != 0 or field > 3:
            pos = _skip(buf, pos, stop, wire)
            if pos < 0:
                return _NO_MOMENT
            continue
        v, pos = _varint(buf, pos, stop)
        if pos < 0:
            return _NO_MOMENT
        if not (kind == _INSTANT and field == 1):
            v = np.int64(np.int32(v & 0xFFFFFFFF))          # int32 fields
        if field == 1:
            a = v
        elif field == 2:
            b = v
        else:
            c = v
    if kind == _DATE:
        if a < 1 or a > 9999 or b < 1 or b > 12 or c < 1 or c > _days_in_month(a, b):
            return _NO_MOMENT
        return _ordinal(a, b, c)
    if a < _SECONDS_LO or a > _SECONDS_HI or b < 0 or b > 999_999_999:
        return _NO_MOMENT
    return a * 1_000_000 + b // 1000


@njit(cache=True)
def _utf8_chars(buf, pos, stop):
    """The characters of ``buf[pos:stop]``, −1 when it is not valid UTF-8 (strict: no
    overlong forms, no surrogates, nothing past U+10FFFF — what protobuf accepts in a string
    field, or less)."""
    chars = 0
    while pos < stop:
        b = buf[pos]
        if b < 0x80:
            pos += 1
        else:
            if 0xC2 <= b <= 0xDF:
                n, lo, hi = 1, 0x80, 0xBF
            elif 0xE0 <= b <= 0xEF:
                n = 2
                lo = 0xA0 if b == 0xE0 else 0x80
                hi = 0x9F if b == 0xED else 0xBF
            elif 0xF0 <= b <= 0xF4:
                n = 3
                lo = 0x90 if b == 0xF0 else 0x80
                hi = 0x8F if b == 0xF4 else 0xBF
            else:
                return -1
            if pos + n >= stop:                  # the sequence runs past the text
                return -1
            second = buf[pos + 1]
            if second < lo or second > hi:
                return -1
            for i in range(pos + 2, pos + n + 1):
                if (buf[i] & 0xC0) != 0x80:
                    return -1
            pos += n + 1
        chars += 1
    return chars


@njit(cache=True)
def _listed(buf, pos, stop, zones):
    """Whether ``buf[pos:stop]`` is a row of ``zones`` (:func:`zone_table`: names sorted,
    zero-padded): a binary search, a dozen rows compared."""
    n = stop - pos
    width = zones.shape[1]
    if n == 0 or n > width:
        return False
    for k in range(pos, stop):        # a NUL would match a shorter name's padding
        if buf[k] == 0:
            return False
    lo, hi = 0, zones.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        order = 0                     # the row against the text: −1 before it, 1 after
        for k in range(width):
            a = zones[mid, k]
            b = buf[pos + k] if k < n else 0
            if a != b:
                order = -1 if a < b else 1
                break
        if order == 0:
            return True
        if order < 0:
            lo = mid + 1
        else:
            hi = mid
    return False


@functools.cache
def zone_table() -> np.ndarray:
    """The zones zoneinfo lists (:func:`kernel.localtime.listed_zones`) as the rows of one
    uint8 array, each name's UTF-8 zero-padded to the longest, in byte order: what
    :func:`_listed` searches. A zone zoneinfo opens but does not list sends the message to
    the careful path, which accepts it (:func:`kernel.localtime.known_zone`)."""
    names = [z.encode() for z in listed_zones()]
    width = max(map(len, names), default=1)
    return np.frombuffer(b"".join(sorted(n.ljust(width, b"\0") for n in names)) or b"\0", np.uint8) \
        .reshape(-1, width).copy()


#: the zone table of a message without a time zone (nothing is looked up in it)
_NO_ZONES = np.zeros((1, 1), np.uint8)


@njit(cache=True)
def _parse(buf, plan, floats_lo_hi, zones, seen, values, floats):
    """Read one message's bytes by ``plan`` (int64 [field number + 1, 9]) and check every
    field: each set field's value into ``values`` (int64: ints, enum codes, bools 0/1, date
    ordinals, instants in µs — then the set flags of the nullable fields) or ``floats``
    (float64: doubles); ``seen`` (int64 [3 × slots]): per slot 1 once the field is read,
    then per slot the start and end of its text's bytes in ``buf`` (0, 0 when unset). True when the record may be
    built from them, False when the careful path must read the message (see the module's
    docstring)."""
    for s in range(seen.shape[0]):
        seen[s] = 0
    for i in range(values.shape[0]):
        values[i] = 0
    # a double's 8 bytes go through one float64 and its bytes, made once per call: a view of
    # each double's own bytes costs a new array each (the pass took twice as long)
    double = np.empty(1, np.float64)
    double_bytes = double.view(np.uint8)
    end = buf.shape[0]
    pos = 0
    while pos < end:
        number, wire, pos = _key(buf, pos, end)
        if pos < 0:
            return False
        if number >= plan.shape[0] or plan[number, 0] == _UNKNOWN:
            pos = _skip(buf, pos, end, wire)
            if pos < 0:
                return False
            continue
        kind = plan[number, 0]
        s = plan[number, 1]
        if wire != plan[number, 5] or seen[s] != 0:        # another wire type, or twice
            return False
        seen[s] = 1
        out = plan[number, 6]
        if plan[number, 7] >= 0:
            values[plan[number, 7]] = 1
        if wire == 0:
            v, pos = _varint(buf, pos, end)
            if pos < 0:
                return False
            if kind == _BOOL:
                v = 1 if v != 0 else 0
            elif kind == _ENUM:
                if v == 0:
                    if plan[number, 2] != 0:
                        return False           # a required enum at 0
                elif v < 0 or v >= plan[number, 4]:
                    return False
            elif not (plan[number, 3] <= v <= plan[number, 4]):
                return False
            values[out] = v
        elif wire == 1:
            if pos + 8 > end:
                return False
            for k in range(8):
                double_bytes[k] = buf[pos + k]
            x = double[0]
            if not (floats_lo_hi[out, 0] <= x <= floats_lo_hi[out, 1]):      # NaN fails too
                return False
            floats[out] = x
            pos += 8
        else:
            length, pos = _varint(buf, pos, end)
            if pos < 0 or length < 0 or pos + length > end:
                return False
            stop = pos + length
            if kind == _TEXT:
                # valid UTF-8 (protobuf refuses a string field that is not) within its characters
                chars = _utf8_chars(buf, pos, stop)
                if chars < plan[number, 3] or chars > plan[number, 4]:
                    return False
                if plan[number, 8] != 0 and not _listed(buf, pos, stop, zones):
                    return False
                slots = seen.shape[0] // 3
                seen[slots + 2 * s] = pos
                seen[slots + 2 * s + 1] = stop
            else:                                 # google.type.Date / google.protobuf.Timestamp
                v = _moment(buf, pos, stop, kind)
                if v == _NO_MOMENT or not (plan[number, 3] <= v <= plan[number, 4]):
                    return False
                values[out] = v
            pos = stop
    for number in range(plan.shape[0]):       # every required field set (an enum: not 0)
        if plan[number, 0] != _UNKNOWN and plan[number, 2] != 0 and seen[plan[number, 1]] == 0:
            return False
    return True


def _kind(col: schema.Column, field) -> int:
    t = col.type
    if col.enum:
        kind, proto = _ENUM, field.TYPE_ENUM
    elif pa.types.is_date(t):
        kind, proto = _DATE, field.TYPE_MESSAGE
    elif pa.types.is_timestamp(t):
        kind, proto = _INSTANT, field.TYPE_MESSAGE
    elif col.is_text:
        kind, proto = _TEXT, field.TYPE_STRING
    elif pa.types.is_boolean(t):
        kind, proto = _BOOL, field.TYPE_BOOL
    elif pa.types.is_integer(t):
        kind, proto = _INT, field.TYPE_INT64
    elif pa.types.is_floating(t):
        kind, proto = _DOUBLE, field.TYPE_DOUBLE
    else:
        raise TypeError(f"{col.name}: no wire decoding for {t}")
    if field.type != proto or getattr(field, "is_repeated", False):
        raise TypeError(f"{col.name}: the message's field is not what the contract's {t} is sent as")
    return kind


def _micros(value: dt.datetime) -> int:
    delta = value - EPOCH_UTC
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class WireDecoder:
    """The record of a message of ``columns`` read from its bytes (None: the careful path
    must read it). Built once per table; each thread reuses its own arrays."""

    def __init__(self, columns: tuple[schema.Column, ...], descriptor):
        self.columns, self.descriptor = columns, descriptor
        fields = descriptor.fields_by_name
        top = max(fields[c.name].number for c in columns)
        plan = np.zeros((top + 1, _PLAN_WIDTH), np.int64)
        kinds = [_kind(col, fields[col.name]) for col in columns]
        doubles = [i for i, k in enumerate(kinds) if k == _DOUBLE]
        ints = [i for i, k in enumerate(kinds) if k not in (_DOUBLE, _TEXT)]
        nullable = [i for i, col in enumerate(columns) if col.nullable]
        # where each column's value and set flag land in the arrays handed back
        self.where = {i: (doubles.index(i) if kinds[i] == _DOUBLE else ints.index(i) if i in ints else -1,
                          len(ints) + nullable.index(i) if i in nullable else -1) for i in range(len(columns))}
        bounds = np.zeros((max(len(doubles), 1), 2), np.float64)
        for slot, (col, kind) in enumerate(zip(columns, kinds)):
            field = fields[col.name]
            out, found = self.where[slot]
            lo, hi = 0, 0
            if kind == _ENUM:
                hi = len(schema.ENUMS[col.enum]) + 1          # codes 1 … members
            elif kind == _TEXT:
                lo, hi = col.min_length, col.length_limit
            elif kind == _DATE:
                lo, hi = (d.toordinal() for d in col.value_range)
            elif kind == _INSTANT:
                lo, hi = (_micros(d) for d in col.value_range)
            elif kind in (_INT, _BOOL):
                low, high = (col.value_range or (None, None)) if kind == _INT else (None, None)
                lo = -(1 << 63) if low is None else low
                hi = (1 << 63) - 1 if high is None else high
            else:
                low, high = col.value_range or (None, None)
                bounds[out] = (-sys.float_info.max if low is None else low,
                               sys.float_info.max if high is None else high)
            plan[field.number] = (kind, slot, 0 if col.nullable else 1, lo, hi, _WIRE[kind], out, found,
                                  int(kind == _TEXT and col.zone))
        self.plan, self.bounds = plan, bounds
        self.zones = zone_table() if any(col.zone for col in columns) else _NO_ZONES
        self.sizes = (len(columns), len(ints) + len(nullable), max(len(doubles), 1))
        self.source, self.build = _builder(columns, self.where)
        self._local = threading.local()
        self._buffers()                    # compiles (or loads) _parse here, not in the first call

    def thread_buffers(self) -> tuple:
        """This thread's arrays the pass writes (seen, values, floats), made on its first call."""
        try:
            return self._local.buffers
        except AttributeError:
            return self._buffers()

    def _buffers(self):
        slots, n_values, n_floats = self.sizes
        buffers = self._local.buffers = (np.zeros(3 * slots, np.int64), np.zeros(n_values, np.int64),
                                         np.zeros(n_floats, np.float64))
        _parse(np.frombuffer(b"", np.uint8), self.plan, self.bounds, self.zones, *buffers)
        return buffers

    def __call__(self, message) -> dict | None:
        if message.DESCRIPTOR is not self.descriptor:
            return None
        seen, values, floats = self.thread_buffers()
        if not _parse(np.frombuffer(message.SerializeToString(), np.uint8), self.plan, self.bounds, self.zones,
                      seen, values, floats):
            return None
        return self.build(message, values.tolist(), floats.tolist())


class _Days(dict):
    """``datetime.date`` by proleptic ordinal, each made once (at most :data:`LIMIT` kept:
    about 45 years of days)."""

    LIMIT = 1 << 14

    def day(self, ordinal: int) -> dt.date:
        value = dt.date.fromordinal(ordinal)
        if len(self) < self.LIMIT:
            self[ordinal] = value
        return value


def _builder(columns: tuple[schema.Column, ...], where: dict, text_slots: dict | None = None):
    """(source, function): the record from the parsed arrays as lists (``v``: values then
    set flags, ``f``: doubles) and the message (text is read off it) — or, ``text_slots``
    given (column → where its text's start lies in the pass's ``seen``, its end next), the
    record from ``build(m, s, v, f)``, ``m`` the message's bytes and ``s`` the pass's
    ``seen``: each text decoded where the pass found it (UTF-8 it checked; unset: the empty
    text, as the message's attribute). A copy of a template holding every column as None, then one store per column (a nullable one only when set):
    cheaper than a dict display of 88 entries, which grows its table as it goes. A date is
    taken from a memo of the dates seen (:class:`_Days`: a dict lookup costs less than
    ``date.fromordinal``, and a book's dates repeat from account to account); an instant is
    built with ``timedelta``'s positional arguments (keywords cost more to parse)."""
    env: dict = {"DAYS": _Days(), "timedelta": dt.timedelta, "EPOCH_UTC": EPOCH_UTC,
                 "BOOL": (False, True), "TEMPLATE": dict.fromkeys(c.name for c in columns)}
    lines = ["def build(m, v, f):" if text_slots is None else "def build(m, s, v, f):", "    r = TEMPLATE.copy()"]
    for i, col in enumerate(columns):
        t = col.type
        out, found = where[i]
        if col.enum:
            env[f"M{i}"] = (None,) + schema.ENUMS[col.enum]       # code 0: null
            lines.append(f"    r[{col.name!r}] = M{i}[v[{out}]]")
            continue
        if pa.types.is_date(t):
            expr = f"DAYS.get(v[{out}]) or DAYS.day(v[{out}])"
        elif pa.types.is_timestamp(t):
            expr = f"EPOCH_UTC + timedelta(0, 0, v[{out}])"
        elif col.is_text and text_slots is None:
            expr = f"m.{col.name}"
        elif col.is_text:
            expr = f"m[s[{text_slots[i]}]:s[{text_slots[i] + 1}]].decode()"
        elif pa.types.is_boolean(t):
            expr = f"BOOL[v[{out}]]"
        elif pa.types.is_integer(t):
            expr = f"v[{out}]"
        else:
            expr = f"f[{out}]"
        lines.append(f"    r[{col.name!r}] = {expr}" if found < 0 else f"    if v[{found}]:\n        r[{col.name!r}] = {expr}")
    lines.append("    return r")
    source = "\n".join(lines) + "\n"
    exec(compile(source, f"<wire record of {len(columns)} fields>", "exec"), env)
    return source, env["build"]


# -- an Account's wire bytes straight into the kernel's record inputs ----------------------------
# route kinds: where a kernel input comes from in the parsed arrays and how it is stored
_TO_I64, _TO_F64, _TO_DAYS, _TO_BOOL, _TO_CODE, _TO_TEXT = range(6)
_ROUTE_WIDTH = 6          # kind, source (values / floats), set flag (−1: never null), value byte,
#                           validity byte, first entry of the column's code map (enums)
#: (wire kind, kernel storage, kernel type kind) → route kind: the pairs read straight
_ROUTES = {(_INT, "i64", "int"): _TO_I64, (_DOUBLE, "f64", "float"): _TO_F64, (_DATE, "i32", "date"): _TO_DAYS,
           (_BOOL, "bits", "bool"): _TO_BOOL, (_ENUM, "u8", "enum"): _TO_CODE, (_TEXT, "u8", "category"): _TO_TEXT}


@njit(cache=True)
def _store(target, at, value, width):
    """``value``'s ``width`` low bytes into ``target[at:]``, little-endian (the machine's
    order, which the kernel reads; a view of those bytes costs a new array each)."""
    for k in range(width):
        target[at + k] = (value >> (8 * k)) & 0xFF


@njit(cache=True)
def _member(buf, start, stop, names, blob, first):
    """The code of the category member whose UTF-8 bytes are ``buf[start:stop]``: ``names``
    rows from ``first`` on (start, end in ``blob``, code) up to the row of code −1; 255 when
    the model does not know it."""
    length = stop - start
    r = first
    while names[r, 2] >= 0:
        at = names[r, 0]
        if names[r, 1] - at == length:
            i = 0
            while i < length and blob[at + i] == buf[start + i]:
                i += 1
            if i == length:
                return names[r, 2]
        r += 1
    return 255


@njit(cache=True)
def _parse_into(buf, plan, floats_lo_hi, zones, seen, values, floats, route, codes, names, blob, target, bits_lo,
                bits_hi):
    """:func:`_parse`, then each kernel input by ``route`` (int64 [inputs, 6]) written into
    ``target`` (this thread's record inputs, uint8) in the kernel's encoding — the value the
    record :func:`_builder` makes would be staged as by the kernel's record path: an int or
    double as it is, a date as days since 1970-01-01, a bool as 1/0, an enum as the kernel's
    member code (``codes``: −1 for a member the kernel does not know: False), a category's
    text as its code (:func:`_member`; 255 for one the model does not know), a null as its
    validity byte 0 (the bitmaps' bytes ``bits_lo:bits_hi`` reset to 255 first). False: the
    caller must take the record's way (the careful path, or the kernel's own checks)."""
    if not _parse(buf, plan, floats_lo_hi, zones, seen, values, floats):
        return False
    for i in range(bits_lo, bits_hi):
        target[i] = 255
    slots = seen.shape[0] // 3
    double = np.empty(1, np.float64)          # a double's bytes (see _parse)
    double_bytes = double.view(np.uint8)
    for r in range(route.shape[0]):
        kind = route[r, 0]
        source = route[r, 1]
        found = route[r, 2]
        at = route[r, 3]
        if kind == _TO_CODE:
            code = values[source]
            if code == 0:                       # the builder's None (an enum's code 0)
                target[route[r, 4]] = 0
                continue
            mapped = codes[route[r, 5] + code]
            if mapped < 0:
                return False
            target[at] = mapped
            continue
        if kind == _TO_TEXT:                    # (an unset one's value byte too: its text is "")
            target[at] = _member(buf, seen[slots + 2 * source], seen[slots + 2 * source + 1], names, blob,
                                 route[r, 5])
        if found >= 0 and values[found] == 0:   # a nullable field not set: null
            target[route[r, 4]] = 0
            continue
        if kind == _TO_I64:
            _store(target, at, values[source], 8)
        elif kind == _TO_F64:
            double[0] = floats[source]
            for k in range(8):
                target[at + k] = double_bytes[k]
        elif kind == _TO_DAYS:
            _store(target, at, values[source] - _EPOCH_ORDINAL, 4)
        elif kind == _TO_BOOL:
            target[at] = values[source]
    return True


# -- a decision-only DecideRequest's bytes straight into the kernel's record inputs -------------
#: DecideRequest's fields by number, as the request pass reads them (decision.proto)
DECIDE_REQUEST_FIELDS = {"account": 1, "as_of": 2, "now": 3, "actions": 4}
# the request pass's answers in ``head`` (int64): the Account's bytes, as_of (ordinal) and now
# (µs; both _NO_MOMENT when unset), actions (−1 unset, 0, 1), the account id's bytes
_ACCOUNT_START, _ACCOUNT_STOP, _AS_OF, _NOW, _ACTIONS, _ID_START, _ID_STOP = range(7)


@njit(cache=True)
def _parse_request_into(buf, limits, id_slot, head, plan, floats_lo_hi, zones, seen, values, floats, route, codes,
                        names, blob, target, bits_lo, bits_hi, with_actions):
    """A DecideRequest's bytes read as protobuf reads them — its as_of (a valid date within
    ``limits[0:2]``, ordinals), now (a valid instant within ``limits[2:4]``, µs) and actions
    into ``head`` — and, when actions is false (decision-only; any, ``with_actions``) and an
    Account is set, that Account through :func:`_parse_into`; then where the text of slot
    ``id_slot`` (the account id) lies in ``buf`` into ``head`` (:data:`_ID_START`,
    :data:`_ID_STOP`). True when the kernel's inputs are written; False when the caller must
    parse the request: a call with actions (unless ``with_actions``), no Account, a field
    twice (protobuf would merge or replace), a known field of another wire type, bytes the
    pass cannot read or vouch for."""
    head[_ACCOUNT_START] = -1
    head[_ACCOUNT_STOP] = -1
    head[_AS_OF] = _NO_MOMENT
    head[_NOW] = _NO_MOMENT
    head[_ACTIONS] = -1
    end = buf.shape[0]
    pos = 0
    while pos < end:
        number, wire, pos = _key(buf, pos, end)
        if pos < 0:
            return False
        if number > 4:                                   # unknown: skipped, as protobuf does
            pos = _skip(buf, pos, end, wire)
            if pos < 0:
                return False
            continue
        if number == 4:                                  # actions (bool)
            if wire != 0 or head[_ACTIONS] >= 0:
                return False
            v, pos = _varint(buf, pos, end)
            if pos < 0:
                return False
            head[_ACTIONS] = 1 if v != 0 else 0
            continue
        if wire != 2:
            return False
        length, pos = _varint(buf, pos, end)
        if pos < 0 or length < 0 or pos + length > end:
            return False
        stop = pos + length
        if number == 1:                                  # account
            if head[_ACCOUNT_START] >= 0:
                return False
            head[_ACCOUNT_START] = pos
            head[_ACCOUNT_STOP] = stop
        else:                                            # as_of (2), now (3)
            at = _AS_OF if number == 2 else _NOW
            if head[at] != _NO_MOMENT:
                return False
            v = _moment(buf, pos, stop, _DATE if number == 2 else _INSTANT)
            bound = 2 * (number - 2)
            if v == _NO_MOMENT or v < limits[bound] or v > limits[bound + 1]:
                return False
            head[at] = v
        pos = stop
    start = head[_ACCOUNT_START]
    if (head[_ACTIONS] != 0 and not with_actions) or start < 0:
        return False
    if not _parse_into(buf[start:head[_ACCOUNT_STOP]], plan, floats_lo_hi, zones, seen, values, floats, route,
                       codes, names, blob, target, bits_lo, bits_hi):
        return False
    slots = seen.shape[0] // 3
    head[_ID_START] = start + seen[slots + 2 * id_slot]
    head[_ID_STOP] = start + seen[slots + 2 * id_slot + 1]
    return True


class KernelInputs:
    """An Account's wire bytes written straight into the kernel's record inputs (no record
    dict, no second encoding): :meth:`stage` gives True when the kernel may decide them
    (:meth:`kernel.Kernel.decide_staged`) — every input written as
    :meth:`kernel.Kernel.decide_record` would stage the record :class:`WireDecoder` builds —
    or False when the caller must take the record's way (the bytes the wire pass cannot
    vouch for, a member the kernel does not know). :meth:`record` then builds that record
    from the same parse, for what still needs it. Made by :meth:`for_kernel`, which gives
    None when some input of the kernel is not a field of the message read straight."""

    def __init__(self, decoder: WireDecoder, kernel, route: np.ndarray, codes: np.ndarray, names: np.ndarray,
                 blob: np.ndarray, bits: range):
        self.decoder, self.kernel = decoder, kernel
        self.route, self.codes, self.bits = route, codes, bits
        self.names, self.blob = names, blob        # the categories' members: (start, end in blob, code)
        slots = {c.name: i for i, c in enumerate(decoder.columns)}
        self.id_slot = slots.get("account_id", -1)
        #: whether a DecideRequest's bytes may be read by the request pass (kernel.server.wire_decide)
        self.reads_requests = self.id_slot >= 0 and decoder.descriptor is _decide_request_account()
        self._local = threading.local()            # each thread's request head (stage_request)
        # (the parse's seen: a flag per slot, then per slot its text's start and end)
        _, self._request_build = _builder(decoder.columns, decoder.where,
                                          {i: len(decoder.columns) + 2 * i for i in range(len(decoder.columns))})

    @classmethod
    def for_kernel(cls, decoder: WireDecoder, kernel) -> "KernelInputs | None":
        columns = decoder.columns
        by_name = {c.name: i for i, c in enumerate(columns)}
        kinds = {decoder.plan[n, 1]: decoder.plan[n, 0] for n in range(decoder.plan.shape[0])
                 if decoder.plan[n, 0] != _UNKNOWN}
        layout, bits = kernel.record_layout
        route, codes, names, blob = [], [], [], bytearray()
        for name, storage, at, valid_at, t, index in layout:
            slot = by_name.get(name)
            if slot is None:
                return None
            kind = _ROUTES.get((int(kinds[slot]), storage, t.kind))
            if kind is None:
                return None
            source, found = decoder.where[slot]
            first = 0
            if kind == _TO_CODE:
                first = len(codes)
                members = schema.ENUMS[columns[slot].enum]
                codes += [-1] + [index.get(m, -1) for m in members]        # wire code c: member c − 1
            elif kind == _TO_TEXT:                 # its members' bytes, then the row ending them
                source, first = slot, len(names)
                for member, code in index.items():
                    if type(member) is str:
                        names.append((len(blob), len(blob) + len(member.encode()), code))
                        blob += member.encode()
                names.append((0, 0, -1))
            route.append((kind, source, found, at, valid_at, first))
        return cls(decoder, kernel, np.array(route, np.int64).reshape(-1, _ROUTE_WIDTH),
                   np.array(codes or [0], np.int64), np.array(names or [(0, 0, -1)], np.int64).reshape(-1, 3),
                   np.frombuffer(bytes(blob) or b"\0", np.uint8), bits)

    def stage(self, message) -> bool:
        decoder = self.decoder
        if message.DESCRIPTOR is not decoder.descriptor:
            return False
        seen, values, floats = decoder.thread_buffers()
        target = self.kernel.record_inputs()
        return _parse_into(np.frombuffer(message.SerializeToString(), np.uint8), decoder.plan, decoder.bounds,
                           decoder.zones, seen, values, floats, self.route, self.codes, self.names, self.blob, target,
                           self.bits.start, self.bits.stop)

    def stage_request(self, data: bytes) -> tuple | None:
        """:meth:`stage` for a decision-only DecideRequest given as its wire bytes (actions
        false), without protobuf's parse: (account id, as_of, now) — as_of and now None when
        unset — once its Account is written into the kernel's inputs as :meth:`stage` writes
        the parsed message's. None: the caller parses the request and takes the message's
        way — a call with actions, or bytes the pass cannot vouch for (that way words a
        refusal)."""
        if not self.reads_requests:
            return None
        decoder = self.decoder
        seen, values, floats = decoder.thread_buffers()
        head = self.thread_head()
        if not _parse_request_into(np.frombuffer(data, np.uint8), _REQUEST_LIMITS, self.id_slot, head, decoder.plan,
                                   decoder.bounds, decoder.zones, seen, values, floats, self.route, self.codes,
                                   self.names, self.blob, self.kernel.record_inputs(), self.bits.start,
                                   self.bits.stop, False):
            return None
        return self.staged_request(data)

    def staged_request(self, data: bytes) -> tuple:
        """:meth:`stage_request`'s answer for the request ``data`` whose Account this thread's
        request pass just staged (here, or in :mod:`kernel.server.wire_decide`'s call)."""
        found = self._local.head.tolist()
        account_id = data[found[_ID_START]:found[_ID_STOP]].decode()
        as_of, now = found[_AS_OF], found[_NOW]
        return (account_id, None if as_of == _NO_MOMENT else dt.date.fromordinal(as_of),
                None if now == _NO_MOMENT else EPOCH_UTC + dt.timedelta(0, 0, now))

    def thread_head(self) -> np.ndarray:
        """This thread's request head: where the request pass notes what it found (positions
        in the request; after :meth:`stage_request`, what it found)."""
        try:
            return self._local.head
        except AttributeError:
            head = self._local.head = np.zeros(_ID_STOP + 1, np.int64)
            return head

    def request_account(self, data: bytes) -> bytes:
        """The Account's bytes within the request ``data`` that :meth:`stage_request` just
        took (not None): what the parse's text positions count from."""
        head = self._local.head
        return data[head[_ACCOUNT_START]:head[_ACCOUNT_STOP]]

    def record(self, message) -> dict:
        """The record of the message :meth:`stage` just took (True), from the same parse."""
        _, values, floats = self.decoder._local.buffers
        return self.decoder.build(message, values.tolist(), floats.tolist())

    def request_record(self, data: bytes) -> dict:
        """:meth:`record` of the request whose bytes ``data`` this thread's request pass just
        staged, its texts decoded off those bytes where the pass found them (no protobuf
        parse: the pass checked their UTF-8)."""
        seen, values, floats = self.decoder._local.buffers
        return self._request_build(self.request_account(data), seen.tolist(), values.tolist(), floats.tolist())


#: the request pass's bounds: a request's as_of and now within the contract's ranges
#: (ordinals, µs), else the message's way words the refusal
_REQUEST_LIMITS = np.array([schema.DATE_RANGE[0].toordinal(), schema.DATE_RANGE[1].toordinal(),
                            _micros(schema.INSTANT_RANGE[0]), _micros(schema.INSTANT_RANGE[1])], np.int64)


def _decide_request_account():
    """The Account descriptor of DecideRequest, when its fields are the numbers and types the
    request pass reads (else None: the pass is not used)."""
    from ._proto.postloan.v1 import decision_pb2

    fields = decision_pb2.DecideRequest.DESCRIPTOR.fields_by_name
    if {name: f.number for name, f in fields.items()} != DECIDE_REQUEST_FIELDS:
        return None
    types = (fields["as_of"].message_type.full_name, fields["now"].message_type.full_name, fields["actions"].type)
    if types != ("google.type.Date", "google.protobuf.Timestamp", fields["actions"].TYPE_BOOL):
        return None
    return fields["account"].message_type
