"""Structured fuzzing of the gRPC service (issue 10): seeded random requests for every RPC —
random field values, mutated request bytes, mutated and malformed Arrow IPC streams — sent to
a live ``postloan serve`` process (one with a case ledger for the Ledger service). A case may
only end in a documented outcome (OK, INVALID_ARGUMENT, RESOURCE_EXHAUSTED; a rejected reload
FAILED_PRECONDITION; GetState of an unknown account NOT_FOUND), and the process must stay up
and serving. Any other outcome is a finding, reported with the seed
that reproduces it (``--fuzz-seed S --fuzz-cases 1``).

Case counts: the defaults fit CI (≈ 1 minute here); ``--fuzz-cases N`` runs longer."""
from __future__ import annotations

import collections
import datetime as dt
import math
import random
import signal
import socket
import subprocess
import sys

import grpc
import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from auth_tokens import TOKENS
from hostile import book
from kernel import schema
from kernel.client import Client
from kernel.server import convert
from kernel.server._proto.postloan.v1 import contract_pb2, decision_pb2, ledger_pb2

AS_OF = dt.date(2026, 11, 28)
DOCUMENTED = {"OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"}
RELOAD_OUTCOMES = DOCUMENTED | {"FAILED_PRECONDITION"}
LEDGER_METHODS = ("CheckContact", "GetState", "IngestEvents")

INTS = [0, 1, -1, 2, 7, 99, 100_000, -100_000, 1 << 31, -(1 << 31), (1 << 62), -(1 << 62), (1 << 63) - 1, -(1 << 63)]
FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-300, 1e12, 1e300, -1e300, math.inf, -math.inf, math.nan, 2.0 ** 53]
TEXTS = ["", " ", "x", "A" * 64, "A" * 65, "丁明", "\u202e\u0000\n\t", "'; DROP TABLE", "😀" * 40, "é" * 300,
         "\ud7ff", "CN-GD", "Asia/Shanghai", "Mars/Olympus_Mons"]
#: time zones zoneinfo knows and names it does not (cased wrong, an offset, a path, a file that is no zone)
ZONES = ["Asia/Shanghai", "America/New_York", "UTC", "Etc/GMT-14", "posixrules", "Mars/Olympus_Mons", "UTC+8",
         "+08:00", "asia/shanghai", "Asia/Shanghai/", "Asia/../UTC", "/etc/localtime", "zone.tab", "Asia", "",
         "Asia/Shanghai\x00", "America/New_York " * 4]


# -- the server under test ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def live(tmp_path_factory, token_file_path):
    """A ``postloan serve`` process (tokens, an audit log, small caps so that limits are
    reached): (target, process)."""
    yield from _serve(tmp_path_factory.mktemp("fuzz-server"), token_file_path)


@pytest.fixture(scope="module")
def live_ledger(tmp_path_factory, token_file_path):
    """The same with a case ledger (``--store``): (target, process, its log's path)."""
    tmp = tmp_path_factory.mktemp("fuzz-ledger")
    for target, proc in _serve(tmp, token_file_path, "--store", f"sqlite:///{tmp / 'ledger.db'}"):
        yield target, proc, tmp / "serve.log"


def _serve(tmp, token_file_path: str, *flags: str):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "kernel", "serve", "--port", str(port), "--token-file", token_file_path,
                             "--audit-log", str(tmp / "audit.log"), "--max-batch-rows", "5000",
                             "--max-batch-bytes", "8M", "--max-message-mb", "16", "--bundle-root", str(tmp), *flags],
                            stdout=subprocess.DEVNULL, stderr=log)
    target = f"127.0.0.1:{port}"
    try:
        with Client(target) as client:
            client.wait_until_serving(300)
        yield target, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def token_file_path(tmp_path_factory):
    from kernel.server.auth import token_line
    path = tmp_path_factory.mktemp("fuzz-tokens") / "tokens.txt"
    path.write_text("".join(token_line(role, f"{role}-client", token) + "\n" for role, token in TOKENS.items()))
    return str(path)


@pytest.fixture(scope="module")
def records():
    return book(64, seed=7).to_pylist()


class Caller:
    """Sends a request's bytes to a method; returns the status code's name and details."""

    def __init__(self, target: str):
        self.channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20),
                                                              ("grpc.max_receive_message_length", 64 << 20)])

    def __call__(self, method: str, data: bytes, timeout: float = 60) -> tuple[str, str]:
        service = "BundleAdmin" if method in ("GetBundle", "ReloadBundle") else \
            "Ledger" if method in LEDGER_METHODS else "DecisionService"
        token = TOKENS["admin"] if service == "BundleAdmin" else TOKENS["scoring"]
        path = f"/postloan.v1.{service}/{method}"
        try:
            if method == "IngestEvents":             # client streaming: the messages' bytes
                self.channel.stream_unary(path)(iter(data), metadata=(("authorization", f"Bearer {token}"),),
                                                timeout=timeout)
                return "OK", ""
            self.channel.unary_unary(path)(data, metadata=(("authorization", f"Bearer {token}"),), timeout=timeout)
            return "OK", ""
        except grpc.RpcError as e:
            return e.code().name, e.details() or ""


def _run(live, cases, generate, allowed=lambda method: DOCUMENTED):
    """Run ``cases`` (seed, …) through ``generate(rng) -> (method, bytes)`` (a streaming
    method's: a list of messages' bytes); assert the outcomes and that the server is up and
    answering; print the tally."""
    target, proc = live[:2]
    caller = Caller(target)
    tally, findings = collections.Counter(), []
    for seed in cases:
        method, data = generate(random.Random(seed))
        code, details = caller(method, data)
        tally[f"{method} {code}"] += 1
        if code not in allowed(method):
            findings.append(f"seed {seed}: {method} → {code}: {details[:200]}")
        assert proc.poll() is None, f"the server died at seed {seed} ({method}): exit {proc.returncode}"
    with Client(target, token=TOKENS["scoring"]) as client:
        assert client.health() == "SERVING"
    print(f"\n{len(cases)} cases: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.items())))
    assert not findings, f"{len(findings)} undocumented outcomes:\n" + "\n".join(findings[:20])
    return tally


def _cases(fuzz_cases, fuzz_seed, default):
    return range(fuzz_seed, fuzz_seed + fuzz_cases(default))


# -- random field values ------------------------------------------------------------------------------
def _hostile_value(rng: random.Random, field, record_value):
    """A value for a message field: the real one, or one of the hostile ones of its type."""
    if record_value is not None and rng.random() < 0.55:
        return record_value
    fd = field
    if fd.type == fd.TYPE_INT64:
        return rng.choice(INTS + [rng.randint(-10**6, 10**6)])
    if fd.type == fd.TYPE_DOUBLE:
        return rng.choice(FLOATS + [rng.uniform(-1e6, 1e6)])
    if fd.type == fd.TYPE_BOOL:
        return rng.random() < 0.5
    if fd.type == fd.TYPE_STRING:
        if fd.name == "time_zone" and rng.random() < 0.5:
            return _zone(rng)
        text = rng.choice(TEXTS)
        return text * rng.choice([1, 1, 1, 50, 3000]) if rng.random() < 0.2 else text
    if fd.type == fd.TYPE_ENUM:
        return rng.choice([0, 1, 2, 3, 9, 99, -1, -(1 << 31), (1 << 31) - 1])
    return None


def _zone(rng: random.Random) -> str:
    """A time zone of :data:`ZONES`, a third of the time bent: a character changed, cut or added."""
    zone = rng.choice(ZONES)
    if zone and rng.random() < 0.33:
        at = rng.randrange(len(zone))
        zone = zone[:at] + rng.choice(["", "x", "/", "_", "é", zone[at].swapcase()]) + zone[at + 1:]
    return zone


def _fill(rng: random.Random, message, record: dict) -> None:
    """Every field of ``message`` from ``record``, and then: half the time one to three
    fields hostile (the rest of the request valid, so the case reaches deep), else every
    field at random (left out, real or hostile)."""
    fields = message.DESCRIPTOR.fields
    if rng.random() < 0.5:
        codec = convert.ACCOUNT if isinstance(message, contract_pb2.Account) else convert.VEHICLE
        message.CopyFrom(codec.encode(record))
        for field in rng.sample(list(fields), rng.randint(1, 3)):
            _fill_field(rng, message, field, {}, roll=rng.random() * 0.9 + 0.1)
        return
    for field in fields:
        _fill_field(rng, message, field, record, roll=rng.random())


def _fill_field(rng: random.Random, message, field, record: dict, roll: float) -> None:
    if roll < 0.1:
        message.ClearField(field.name)               # left out: a null, or a missing required field
        return
    if field.type == field.TYPE_MESSAGE:
        target = getattr(message, field.name)
        if field.message_type.name == "Date":
            if record.get(field.name) is not None and roll < 0.6:
                target.CopyFrom(convert.date_message(record[field.name]))
            else:
                target.year = rng.choice([0, 1, 1899, 1900, 2026, 2199, 2200, 9999, 10000, -1, (1 << 31) - 1])
                target.month, target.day = rng.choice([0, 1, 2, 12, 13, -1]), rng.choice([0, 1, 28, 29, 31, 32, -1])
        elif field.message_type.name == "Timestamp":
            target.seconds = rng.choice(INTS + [1_800_000_000, -62_135_596_801, 253_402_300_800])
            target.nanos = rng.choice([0, 1, 999_999_999, 1_000_000_000, -1, (1 << 31) - 1])
        return
    value = _hostile_value(rng, field, record.get(field.name))
    if value is None:
        return
    if field.type == field.TYPE_ENUM and isinstance(value, str):
        value = schema.ENUMS[schema.columns()[field.name].enum].index(value) + 1
    try:
        setattr(message, field.name, value)
    except (ValueError, TypeError):
        pass                                      # a value protobuf itself refuses to hold


def _mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    """Flip, overwrite, cut, repeat or insert bytes of a serialized message or stream."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        if not data:
            break
        op = rng.random()
        at = rng.randrange(len(data))
        if op < 0.35:
            data[at] = rng.randrange(256)
        elif op < 0.6:
            value = rng.choice([0, 1, 0x7F, 0x80, 0xFF, 0x7FFF_FFFF, 0xFFFF_FFFF, 1 << 40, (1 << 63) - 1, 1 << 62])
            data[at:at + 8] = value.to_bytes(8, "little")
        elif op < 0.75:
            del data[at:at + rng.randint(1, 64)]
        elif op < 0.9:
            chunk = data[at:at + rng.randint(1, 64)]
            data[at:at] = chunk * rng.randint(1, 4)
        else:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return bytes(data)


def _dates(rng, request) -> None:
    if rng.random() < 0.8:
        request.as_of.CopyFrom(convert.date_message(AS_OF))
    elif rng.random() < 0.5:
        request.as_of.year, request.as_of.month, request.as_of.day = rng.choice(INTS[:6]), rng.choice([0, 13]), 1
    if hasattr(request, "now") and rng.random() < 0.3:
        request.now.seconds = rng.choice(INTS + [1_800_000_000])
        request.now.nanos = rng.choice([0, 5, 1_000_000_000, -1])


def test_every_rpc_with_random_field_values(live, records, fuzz_cases, fuzz_seed):
    """Decide, Explain and Valuate with random values in every field (or fields left out),
    GetBundle and ReloadBundle with random paths; a quarter of the requests also have their
    bytes mutated (what protobuf cannot even parse)."""
    vehicle_fields = set(schema.columns("vehicles"))

    def generate(rng: random.Random):
        record = rng.choice(records)
        kind = rng.random()
        if kind < 0.45:
            method, request = "Decide", decision_pb2.DecideRequest()
            _fill(rng, request.account, record)
            if rng.random() < 0.3:
                request.actions = rng.random() < 0.5
        elif kind < 0.7:
            method, request = "Explain", decision_pb2.ExplainRequest()
            _fill(rng, request.account, record)
        elif kind < 0.92:
            method, request = "Valuate", decision_pb2.ValuateRequest()
            _fill(rng, request.vehicle, {k: v for k, v in record.items() if k in vehicle_fields})
            request.country = rng.choice([1, 1, 2, 0, 3, 7, -1, (1 << 31) - 1])
            request.region = "CN-GD" if rng.random() < 0.5 else rng.choice(TEXTS) * rng.choice([1, 1, 100])
            if rng.random() < 0.5:
                request.purchase_date.CopyFrom(convert.date_message(record["contract_date"]))
        elif kind < 0.97:
            method, request = "ReloadBundle", decision_pb2.ReloadBundleRequest(
                path=rng.choice(["/", "..", "../../etc", "/proc/self", "\x00", "a" * 5000, "rulesets", "/dev/zero",
                                 "~", "/tmp/../etc/passwd", "", "é/\ud7ff"]))
        else:
            method, request = "GetBundle", decision_pb2.GetBundleRequest()
        if method in ("Decide", "Explain", "Valuate"):
            _dates(rng, request)
        data = request.SerializeToString()
        return method, (_mutate_bytes(rng, data) if rng.random() < 0.25 else data)

    _run(live, _cases(fuzz_cases, fuzz_seed, 3000), generate,
         allowed=lambda method: RELOAD_OUTCOMES if method == "ReloadBundle" else DOCUMENTED)


def test_decide_with_random_time_zones(live, records, fuzz_cases, fuzz_seed):
    """Decide (decision-only or with actions) and Explain of valid accounts but for a random
    time zone: OK exactly when zoneinfo knows the zone, else INVALID_ARGUMENT naming
    account.time_zone — never FAILED_PRECONDITION from an action's local time, and never a
    decision for a zone nothing could count local days in."""
    from kernel.localtime import known_zone

    caller = Caller(live[0])
    tally, findings = collections.Counter(), []
    for seed in _cases(fuzz_cases, fuzz_seed, 300):
        rng = random.Random(seed)
        zone = _zone(rng)
        account = convert.ACCOUNT.encode({**rng.choice(records), "time_zone": zone})
        if rng.random() < 0.75:
            method, request = "Decide", decision_pb2.DecideRequest(account=account, actions=rng.random() < 0.5)
        else:
            method, request = "Explain", decision_pb2.ExplainRequest(account=account)
        request.as_of.CopyFrom(convert.date_message(AS_OF))
        code, details = caller(method, request.SerializeToString())
        known = known_zone(zone)
        tally[f"{method} {'known' if known else 'unknown'} {code}"] += 1
        if (code, known) != ("OK", True) and not (code == "INVALID_ARGUMENT" and not known
                                                  and details.startswith("account.time_zone: ")):
            findings.append(f"seed {seed}: {method} of zone {zone!r} → {code}: {details[:200]}")
        assert live[1].poll() is None, f"the server died at seed {seed}"
    print("\n" + ", ".join(f"{k} {v}" for k, v in sorted(tally.items())))
    assert not findings, f"{len(findings)} wrong answers:\n" + "\n".join(findings[:20])
    assert {k.split()[1] for k in tally} == {"known", "unknown"}


# -- Arrow IPC streams --------------------------------------------------------------------------------
def _corrupt_array(rng: random.Random, arr: pa.Array) -> pa.Array:
    """The same array with one of its buffers bent: offsets past the data or backwards,
    dictionary indices out of range, a validity bitmap too short, bytes that are not UTF-8."""
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    n = len(arr)
    if n == 0:
        return arr
    if pa.types.is_dictionary(arr.type):
        indices = np.frombuffer(arr.indices.buffers()[1], np.int8)[arr.indices.offset:arr.indices.offset + n].copy()
        indices[rng.randrange(n)] = rng.choice([len(arr.dictionary), 127, -1, -128])
        return pa.DictionaryArray.from_buffers(arr.type, n, [arr.buffers()[0], pa.py_buffer(indices.tobytes())],
                                               arr.dictionary)
    if pa.types.is_string(arr.type):
        validity, offsets, data = arr.buffers()
        bent = np.frombuffer(offsets, np.int32).copy()
        choice = rng.random()
        if choice < 0.4:
            bent[rng.randrange(1, n + 1)] = rng.choice([1 << 30, 10_000_000, -5, bent[-1] + 1])
        elif choice < 0.7 and data is not None and data.size:
            raw = bytearray(data.to_pybytes())
            raw[rng.randrange(len(raw))] = rng.choice([0xFF, 0xC0, 0x80, 0xED])
            data = pa.py_buffer(bytes(raw))
        else:
            bent[0] = rng.choice([1, 100, -1])
        return pa.Array.from_buffers(pa.string(), n, [validity, pa.py_buffer(bent.tobytes()), data])
    buffers = arr.buffers()
    values = buffers[1]
    if values is None:
        return arr
    if rng.random() < 0.5:                           # a data buffer shorter than the length says
        return pa.Array.from_buffers(arr.type, n, [buffers[0], values.slice(0, values.size // 2)])
    return pa.Array.from_buffers(arr.type, n, [pa.py_buffer(b"\xff"), values], null_count=rng.choice([0, n, -1]))


def _hostile_column(rng: random.Random, table: pa.Table) -> pa.Table:
    names = [n for n in table.schema.names if table.schema.names.count(n) == 1]
    if not names:
        return table
    name = rng.choice(names)
    i = table.schema.get_field_index(name)
    field = table.schema.field(name)
    n = table.num_rows
    roll = rng.random()
    if roll < 0.3:
        return table.set_column(i, name, _corrupt_array(rng, table[name]))
    if roll < 0.45:
        return table.drop_columns([name])
    if roll < 0.55:
        return table.append_column(name, table[name])                           # duplicated
    if roll < 0.65:
        return table.set_column(i, name, pa.nulls(n, pa.string() if pa.types.is_dictionary(field.type) else field.type))
    if roll < 0.72:                                                           # a near type: narrower, wider, other unit
        t = field.type
        if pa.types.is_timestamp(t):
            near = pa.timestamp(rng.choice(["s", "ms", "us", "ns"]), tz=rng.choice([None, "UTC", "Asia/Shanghai",
                                                                                   "Mars/Olympus_Mons", "+08:00"]))
        elif pa.types.is_date(t):
            near = pa.date64()
        elif pa.types.is_integer(t) or pa.types.is_floating(t):
            near = rng.choice([pa.float16(), pa.float32(), pa.int8(), pa.int32(), pa.uint64(), pa.uint8()])
        elif pa.types.is_dictionary(t):
            near = rng.choice([pa.string(), pa.large_string(), pa.dictionary(pa.int32(), pa.string())])
        else:
            near = rng.choice([pa.large_string(), pa.dictionary(pa.int8(), pa.string()), pa.binary()])
        return table.set_column(i, name, table[name].cast(near, safe=False))
    if roll < 0.8:                                                            # the wrong type
        other = rng.choice([pa.array([rng.choice(TEXTS)] * n), pa.array([rng.choice(FLOATS)] * n),
                            pa.array([rng.choice(INTS)] * n, pa.int64()), pa.array([True] * n),
                            pa.array([[1, 2]] * n), pa.nulls(n)])
        return table.set_column(i, name, other)
    values = table[name].to_pylist()                                          # hostile values, right type
    t = field.type
    row = rng.randrange(n)
    if pa.types.is_floating(t):
        values[row] = rng.choice(FLOATS)
    elif pa.types.is_integer(t):
        values[row] = rng.choice(INTS)
    elif pa.types.is_string(t) or pa.types.is_dictionary(t):
        values[row] = rng.choice(TEXTS) * rng.choice([1, 1, 500])
        t = pa.string()
    elif pa.types.is_date(t):
        values[row] = dt.date(rng.choice([1, 1800, 2199, 2200, 9999]), 1, 1)
    elif pa.types.is_timestamp(t):
        values[row] = dt.datetime(rng.choice([1, 1899, 2250]), 1, 1, tzinfo=dt.timezone.utc)
    try:
        return table.set_column(i, name, pa.array(values, t))
    except (pa.ArrowException, OverflowError, ValueError):
        return table


def _stream(rng: random.Random, table: pa.Table) -> bytes:
    compression = rng.choice([None, None, "zstd", "lz4"])
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema, options=ipc.IpcWriteOptions(compression=compression)) as writer:
        for batch in table.to_batches(max_chunksize=rng.choice([1, 7, 64, 10_000])):
            writer.write(batch)
    return sink.getvalue().to_pybytes()


def test_decide_batch_with_mutated_and_malformed_streams(live, fuzz_cases, fuzz_seed):
    """DecideBatch with streams built from a seeded book and then damaged: columns corrupted
    at the buffer level, dropped, duplicated, nulled, of the wrong type or holding hostile
    values; compressed or not; then (half the time) their bytes mutated."""
    base = book(400, seed=3)

    def generate(rng: random.Random):
        start = rng.randrange(0, 380)
        table = base.slice(start, rng.choice([1, 2, 5, 20]))
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            try:
                table = _hostile_column(rng, table)
            except (pa.ArrowException, ValueError, TypeError, KeyError, OverflowError):
                break                          # pyarrow would not build (or read back) that damage here
        try:
            data = _stream(rng, table)
        except pa.ArrowException:                    # a column the writer itself refuses: send its bytes mutated
            data = _stream(rng, base.slice(start, 2))
        if rng.random() < 0.5:
            data = _mutate_bytes(rng, data)
        request = decision_pb2.DecideBatchRequest(accounts=data, with_actions=rng.random() < 0.5)
        _dates(rng, request)
        return "DecideBatch", request.SerializeToString()

    _run(live, _cases(fuzz_cases, fuzz_seed, 1500), generate)


# -- the ledger's service ---------------------------------------------------------------------------
#: a GPS ping's position: personal data that must never reach the server's log
PING_LAT, PING_LON = 31.2304567, 121.4737012


def test_the_ledger_rpcs_with_random_field_values(live_ledger, records, fuzz_cases, fuzz_seed):
    """CheckContact, GetState and IngestEvents (a stream of Arrow IPC messages) with random
    values — accounts the ledger knows and hostile texts, every channel number, hostile
    instants, events with random kinds, amounts and positions —, a quarter of the requests
    with their bytes mutated. Outcomes: the documented ones, and NOT_FOUND for the state of an
    account the ledger never heard of. The server's log then holds no ping's position."""
    target = live_ledger[0]
    with Client(target, token=TOKENS["scoring"]) as client:
        for record in records[:8]:                   # registered: the gate judges them
            client.decide(record, AS_OF)
    ids = [r["account_id"] for r in records[:8]]
    kinds = list(schema.ENUMS["event_kind"]) + ["", "NOT_A_KIND", "payment"]

    def instant(rng, request, name):
        if rng.random() < 0.5:
            target = getattr(request, name)
            target.seconds = rng.choice(INTS + [1_800_000_000, -62_135_596_801, 253_402_300_800])
            target.nanos = rng.choice([0, 1, 999_999_999, 1_000_000_000, -1])

    def events(rng) -> list[bytes]:
        n = rng.choice([0, 1, 3, 40])
        now = dt.datetime.now(dt.timezone.utc)
        table = pa.table({
            "event_id": [rng.choice(TEXTS + [f"e{rng.randrange(10**9)}"] * 6) for _ in range(n)],
            "account_id": [rng.choice(ids + TEXTS) for _ in range(n)],
            "kind": [rng.choice(kinds) for _ in range(n)],
            "at": pa.array([now - dt.timedelta(seconds=rng.choice([0, 60, 86_400 * 400, -86_400]))
                            for _ in range(n)], pa.timestamp("us", tz="UTC")),
            "amount": [rng.choice(FLOATS + [None]) for _ in range(n)],
            "lat": [PING_LAT] * n, "lon": [PING_LON] * n,
            "channel": [rng.choice(["PHONE", "SMS", "CARRIER_PIGEON", None]) for _ in range(n)]})
        messages = [ledger_pb2.IngestEventsRequest(events=convert.to_ipc(table)).SerializeToString()]
        if rng.random() < 0.25:
            messages = [_mutate_bytes(rng, m) for m in messages]
        return messages * rng.choice([1, 1, 2])

    def generate(rng: random.Random):
        kind = rng.random()
        if kind < 0.3:
            return "IngestEvents", events(rng)
        if kind < 0.75:
            method, request = "CheckContact", ledger_pb2.CheckContactRequest(
                account_id=rng.choice(ids * 3 + TEXTS), channel=rng.choice([0, 1, 2, 3, 4, 5, 6, 99, -1]))
        else:
            method, request = "GetState", ledger_pb2.GetStateRequest(account_id=rng.choice(ids * 2 + TEXTS))
        instant(rng, request, "at")
        data = request.SerializeToString()
        return method, (_mutate_bytes(rng, data) if rng.random() < 0.25 else data)

    tally = _run(live_ledger, _cases(fuzz_cases, fuzz_seed, 400), generate,
                 allowed=lambda method: DOCUMENTED | {"NOT_FOUND"} if method == "GetState" else DOCUMENTED)
    assert tally["IngestEvents OK"] and tally["CheckContact OK"] and tally["GetState OK"]
    logged = live_ledger[2].read_text(errors="replace")
    assert str(PING_LAT) not in logged and str(PING_LON) not in logged
