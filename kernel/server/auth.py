"""Bearer-token authentication with roles.

A token file lists who may call, one client per line::

    # role     client      sha256 of the token
    scoring    dialer      sha256:5e884898da28047151d0e56f8dc62927...
    admin      ops-oncall  sha256:...

Only hashes are stored, so the file is no secret; the tokens themselves are random
(``secrets.token_urlsafe(32)``, 256 bits), which is why a plain SHA-256 suffices (no salt,
no slow hash: nothing to guess). A presented token is hashed and compared with *every*
stored hash in constant time. Make a token with::

    python -m kernel.server.auth new --role scoring --name dialer --token-file tokens.txt

Roles: ``scoring`` may call DecisionService; ``admin`` may call everything.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import PostloanError

ROLES = ("scoring", "admin")
SCHEME = "sha256:"


class TokenFileError(PostloanError):
    """The token file is missing or malformed; the message names the file and line."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the client's name from the token file and its role."""

    name: str
    role: str

    def may(self, role: str) -> bool:
        return self.role == "admin" or self.role == role


ANONYMOUS_ADMIN = Principal("anonymous", "admin")   # auth disabled (loopback development only)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenStore:
    """The hashes of the tokens allowed to call, with their roles."""

    def __init__(self, entries: list[tuple[bytes, Principal]]):
        self._entries = tuple(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> set[str]:
        return {principal.name for _, principal in self._entries}

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TokenStore":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise TokenFileError(f"{path}: cannot read token file: {e.strerror or e}") from None
        entries, names = [], set()
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            where = f"{path}:{number}"
            if len(parts) != 3:
                raise TokenFileError(f"{where}: expected 'role name sha256:<64 hex digits>', got {len(parts)} fields")
            role, name, digest = parts
            if role not in ROLES:
                raise TokenFileError(f"{where}: unknown role {role!r}; roles are {', '.join(ROLES)}")
            if not digest.startswith(SCHEME):
                raise TokenFileError(f"{where}: the hash must start with {SCHEME!r} (store hashes, never tokens)")
            try:
                raw = bytes.fromhex(digest[len(SCHEME):])
            except ValueError:
                raw = b""
            if len(raw) != 32:
                raise TokenFileError(f"{where}: {SCHEME} must be followed by 64 hex digits")
            if name in names:
                raise TokenFileError(f"{where}: client name {name!r} appears twice")
            names.add(name)
            entries.append((raw, Principal(name, role)))
        if not entries:
            raise TokenFileError(f"{path}: no tokens (every call would be refused)")
        return cls(entries)

    def authenticate(self, token: str) -> Principal | None:
        """The principal holding ``token``, or None. Compares against every entry, in constant time each."""
        presented = hash_token(token)
        found = None
        for digest, principal in self._entries:
            if hmac.compare_digest(presented, digest):
                found = principal
        return found


def bearer_token(metadata) -> str | None:
    """The token of an ``authorization: Bearer <token>`` metadata entry, if any."""
    for key, value in metadata or ():
        if key == "authorization":
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_line(role: str, name: str, token: str) -> str:
    return f"{role} {name} {SCHEME}{hash_token(token).hex()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kernel.server.auth",
                                     description="Make a bearer token for postloan serve.")
    sub = parser.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new", help="print a new token and append its hash to the token file")
    new.add_argument("--role", choices=ROLES, required=True)
    new.add_argument("--name", required=True, help="client name (shown in logs)")
    new.add_argument("--token-file", required=True, help="file to append the hash to (created if missing)")
    args = parser.parse_args(argv)
    if not args.name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        parser.error(f"--name {args.name!r}: use letters, digits, '-', '_' or '.'")
    path = Path(args.token_file)
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    if any(line.split("#", 1)[0].strip() for line in existing.splitlines()):
        if args.name in TokenStore.load(path).names():   # also validates the existing file
            parser.error(f"{path}: client {args.name!r} already has a token")
    token = new_token()
    with open(path, "a", encoding="utf-8") as f:
        f.write(token_line(args.role, args.name, token) + "\n")
    print(token)
    print(f"appended the hash for {args.role} client {args.name!r} to {path}; the token above is shown only once",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
