"""Regenerate the gRPC API's contract messages and Python code.

``protos/postloan/v1/contract.proto`` (the ``Account``, ``Vehicle``, ``Action`` and ``Event`` messages
and the enumerations) is *generated from* :mod:`kernel.schema`, so the API can never drift
from the data contract; ``decision.proto`` and ``ledger.proto`` (the services) are written by hand. The Python
modules under ``kernel/server/_proto/postloan/v1/`` are produced by grpcio-tools and
committed, so a fresh clone needs no code generation; ``tests/server/test_proto.py`` fails
when either is out of date.

    python -m kernel.server._proto.regenerate          # rewrite contract.proto, run protoc
    python -m kernel.server._proto.regenerate --check  # exit 1 if anything is stale

Field numbers are wire format: a column keeps its number forever. New columns get the next
free number; a column dropped from the contract becomes ``reserved``.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

import pyarrow as pa

from ... import schema

ROOT = Path(__file__).resolve().parents[3]
PROTO_ROOT = ROOT / "protos"
PROTO_FILES = ("postloan/v1/contract.proto", "postloan/v1/decision.proto", "postloan/v1/ledger.proto")
OUT_DIR = Path(__file__).resolve().parent
PACKAGE_PREFIX = "kernel.server._proto."

# proto message name -> contract table it mirrors
MESSAGES = {"Account": "book", "Vehicle": "vehicles", "Action": "actions", "Event": "events"}
MESSAGE_DOCS = {
    "Account": "One account as the kernel decides on it: a row of the book (accounts ⋈ customers ⋈ vehicles).",
    "Vehicle": "One financed vehicle (the vehicles table), for valuation.",
    "Action": "One planned action (the actions table): what to do, when, and the compliance outcome.",
    "Event": "One event of the case ledger (the events table): what happened to an account, and when.",
}


def enum_type_name(enum_key: str) -> str:
    return "".join(part.capitalize() for part in enum_key.split("_"))


def enum_value_name(enum_key: str, member: str) -> str:
    return f"{enum_key.upper()}_{member.upper()}"


def proto_type(col: schema.Column) -> str:
    """The proto type carrying a contract column (every field has explicit presence)."""
    t = col.type
    if col.enum:
        return enum_type_name(col.enum)
    if pa.types.is_integer(t):
        return "int64"
    if pa.types.is_floating(t):
        return "double"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_date(t):
        return "google.type.Date"
    if pa.types.is_timestamp(t):
        return "google.protobuf.Timestamp"
    if pa.types.is_string(t):
        return "string"
    raise TypeError(f"no proto type for column {col.name} of type {t}")


def _existing_numbers(text: str) -> dict[str, dict[str, int]]:
    """Field numbers (and reserved names) already assigned in the committed contract.proto."""
    numbers: dict[str, dict[str, int]] = {}
    for match in re.finditer(r"^message (\w+) \{(.*?)^\}", text, re.S | re.M):
        fields = numbers.setdefault(match.group(1), {})
        for f in re.finditer(r"^\s+(?:optional )?[\w.]+ (\w+) = (\d+);", match.group(2), re.M):
            fields[f.group(1)] = int(f.group(2))
        for r in re.finditer(r"^\s+reserved (\d+); // was (\w+)", match.group(2), re.M):
            fields[r.group(2)] = -int(r.group(1))   # negative: retired, never reused
    return numbers


def _comment(text: str, indent: str) -> list[str]:
    return [f"{indent}// {line}" for line in text.splitlines()]


def contract_proto_text(previous: str = "") -> str:
    """The text of contract.proto for the current :mod:`kernel.schema`."""
    old = _existing_numbers(previous)
    out = [
        "// GENERATED from kernel/schema.py by `python -m kernel.server._proto.regenerate`. Do not edit.",
        "//",
        "// The data contract as protobuf: one field per contract column, same name, explicit",
        "// presence on every field. The server rejects a request that leaves out a column the",
        "// contract says is not nullable (INVALID_ARGUMENT naming the field); an unset nullable",
        "// field is a null. Dates are google.type.Date, instants google.protobuf.Timestamp,",
        "// enumerations proto enums whose value N is the contract's member N-1 (0 = unset).",
        'syntax = "proto3";',
        "",
        "package postloan.v1;",
        "",
        'import "google/protobuf/timestamp.proto";',
        'import "google/type/date.proto";',
        "",
    ]
    used_enums = sorted({c.enum for table in MESSAGES.values() for c in schema.TABLES[table] if c.enum})
    for key in used_enums:
        name = enum_type_name(key)
        out.append(f"// Members of the contract enumeration `{key}`, in the contract's order.")
        out.append(f"enum {name} {{")
        out.append(f"  {enum_value_name(key, 'unspecified')} = 0;")
        for i, member in enumerate(schema.ENUMS[key], start=1):
            out.append(f"  {enum_value_name(key, member)} = {i};")
        out.append("}")
        out.append("")
    for message, table in MESSAGES.items():
        numbers = dict(old.get(message, {}))
        next_number = max([abs(n) for n in numbers.values()] + [0]) + 1
        out.extend(_comment(MESSAGE_DOCS[message], ""))
        out.append(f"message {message} {{")
        cols = schema.TABLES[table]
        names = {c.name for c in cols}
        for col in cols:
            number = numbers.get(col.name)
            if number is None or number < 0:
                number, next_number = next_number, next_number + 1
                numbers[col.name] = number
            unit = f" [{col.unit}]" if col.unit and col.unit not in ("date", "instant") else ""
            flags = ("nullable" if col.nullable else "required") + (", PII" if col.pii else "")
            out.extend(_comment(f"{col.doc}{unit} ({flags})", "  "))
            prefix = "" if proto_type(col).startswith("google.") or col.enum else "optional "
            out.append(f"  {prefix}{proto_type(col)} {col.name} = {number};")
        for name, number in sorted(numbers.items(), key=lambda kv: abs(kv[1])):
            if name not in names:
                out.append(f"  reserved {abs(number)}; // was {name}")
        out.append("}")
        out.append("")
    return "\n".join(out)


def _protoc(out_dir: Path) -> None:
    import grpc_tools
    from grpc_tools import protoc

    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    import google.type.date_pb2 as date_pb2   # googleapis-common-protos ships google/type/date.proto
    googleapis = str(Path(date_pb2.__file__).resolve().parents[2])
    args = ["grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"-I{googleapis}",
            f"--python_out={out_dir}", f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}",
            *PROTO_FILES]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed: {' '.join(args)}")
    # protoc writes absolute imports ("from postloan.v1 import ..."); make them package imports.
    for path in (out_dir / "postloan" / "v1").glob("*.py*"):
        text = path.read_text()
        fixed = re.sub(r"^from postloan\.v1 import", f"from {PACKAGE_PREFIX}postloan.v1 import", text, flags=re.M)
        path.write_text(fixed)


def generated_files(out_dir: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((out_dir / "postloan" / "v1").glob("*_pb2*"))}


def stale() -> list[str]:
    """What is out of date: contract.proto against the schema, generated code against the protos."""
    problems = []
    contract = PROTO_ROOT / PROTO_FILES[0]
    current = contract.read_text() if contract.exists() else ""
    if _code(current) != _code(contract_proto_text(current)):
        problems.append(f"{contract.relative_to(ROOT)} does not match kernel/schema.py")
    with tempfile.TemporaryDirectory() as tmp:
        _protoc(Path(tmp))
        fresh, committed = generated_files(Path(tmp)), generated_files(OUT_DIR)
    for name in sorted(set(fresh) | set(committed)):
        if _strip_version(fresh.get(name)) != _strip_version(committed.get(name)):
            problems.append(f"kernel/server/_proto/postloan/v1/{name} is not what protoc generates")
    return problems


def _code(proto_text: str) -> list[str]:
    # Column docs reach the proto as comments; a reworded doc must not fail everyone's build.
    return [line for line in proto_text.splitlines() if line.strip() and not line.lstrip().startswith("//")]


def _strip_version(text: str | None) -> str | None:
    # The protobuf / grpcio-tools version stamps differ between releases; the code does not.
    if text is None:
        return None
    text = re.sub(r"^# Protobuf Python Version: .*$", "", text, flags=re.M)
    text = re.sub(r"_runtime_version\.ValidateProtobufRuntimeVersion\([^)]*\)", "", text, flags=re.S)
    text = re.sub(r"^GRPC_GENERATED_VERSION = .*$", "", text, flags=re.M)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="report stale files, change nothing")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale()
        for p in problems:
            print(f"stale: {p} (run python -m kernel.server._proto.regenerate)", file=sys.stderr)
        return 1 if problems else 0
    contract = PROTO_ROOT / PROTO_FILES[0]
    previous = contract.read_text() if contract.exists() else ""
    contract.write_text(contract_proto_text(previous))
    _protoc(OUT_DIR)
    print(f"wrote {contract.relative_to(ROOT)} and kernel/server/_proto/postloan/v1/*_pb2*.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
