"""Ledger fixtures: every ledger test runs once per store backend, each time on a fresh, empty store.

- ``ledger_url``: a fresh, empty store for the test, parametrized over ``sqlite`` (a file in
  the test's ``tmp_path``) and ``postgresql`` (a database of its own on the session's server),
  so a test that takes ``ledger_url`` runs against both: ``test_x[sqlite]``,
  ``test_x[postgresql]``;
- ``make_ledger_url``: a factory of more fresh stores of the same backend (a restore target,
  a second ledger);
- ``ledger_backend``: ``"sqlite"`` or ``"postgresql"``;
- ``postgres_server``: the session's throwaway PostgreSQL server (:class:`PgServer`).

The server is started once per session, on first use, by the tests themselves: initdb into a
temporary folder and ``pg_ctl start`` with the binaries pgserver ships (the ``test`` extra), or
else a system PostgreSQL (``pg_ctl``/``initdb`` on ``PATH`` or in ``/usr/lib/postgresql/*/bin``);
as root it runs as an unprivileged user, with the first installation that user can run —
pgserver's under a home folder of mode 700 it cannot, so a copy of it in ``/tmp`` is made as
the last resort; when there is none the ``postgresql`` variants are skipped with the reason. It listens on
127.0.0.1 on a free port and asks for a password (SCRAM) over TCP. Because its data is thrown
away it runs with ``fsync = off`` (a killed *client* — what the durability tests do — is
unaffected: what PostgreSQL acknowledged is in its WAL, written before the commit returns).

The server is stopped and its folder deleted when the session ends, and also when pytest
dies without running its finalizers (even ``kill -9``): a watchdog process, in its own
session, holds a pipe from pytest and stops the server when the pipe closes.
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

BACKENDS = ("sqlite", "postgresql")
PG_USER = "postloan"
PG_PASSWORD = "pg-test-secret"

_WATCHDOG = r"""
import shutil, subprocess, sys
pg_ctl, data, base, user, *copies = sys.argv[1:]
sys.stdin.buffer.read()                     # returns at EOF: pytest closed the pipe, or died
kw = {"user": user} if user else {}
subprocess.run([pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"], capture_output=True, **kw)
for folder in (base, *copies):
    shutil.rmtree(folder, ignore_errors=True)
"""


class PgServer:
    """A throwaway PostgreSQL server: ``url(db)`` for a database, ``create_database()`` /
    ``drop_database(name)`` for a test's own."""

    def __init__(self, bin_dir: Path, base: Path, port: int, user: str | None, watchdog: subprocess.Popen,
                 started_in: float):
        self.bin_dir, self.base, self.port, self.user = bin_dir, base, port, user
        self.watchdog = watchdog
        self.started_in = started_in
        self._names = itertools.count(1)

    def url(self, database: str = "postgres", *, password: str = PG_PASSWORD) -> str:
        return f"postgresql://{PG_USER}:{password}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str, params=None, database: str = "postgres"):
        import psycopg
        with psycopg.connect(self.url(database), autocommit=True) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else None

    def create_database(self, hint: str = "") -> str:
        name = f"t{next(self._names)}_{re.sub(r'[^a-z0-9]+', '_', hint.lower())}"[:63].rstrip("_")
        self.admin(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Close the watchdog's pipe: it stops the server and deletes its folder."""
        if self.watchdog.poll() is None:
            self.watchdog.stdin.close()
            try:
                self.watchdog.wait(60)
            except subprocess.TimeoutExpired:
                self.watchdog.kill()


def _server_bin_dirs() -> list[Path]:
    from kernel.ledger.postgres import client_bin_dirs
    return [d for d in client_bin_dirs() if all((d / p).is_file() for p in ("initdb", "pg_ctl", "postgres"))]


def _run_as(user: str | None) -> dict:
    return {"user": user} if user else {}


def _server_user(bin_dir: Path) -> tuple[str | None, str | None]:
    """The user to run the server as (None: this one) — PostgreSQL refuses to run as root —
    or (None, reason) when root has no user able to run it."""
    if os.geteuid() != 0:
        return None, None
    import pwd
    for name in ("postgres", "pgserver", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        try:
            ok = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True, user=name)
        except OSError:          # e.g. pgserver's binaries under a home folder that user may not enter
            continue
        if ok.returncode == 0:
            return name, None
    return None, f"running as root, and no unprivileged user (postgres, pgserver, nobody) can run {bin_dir}/postgres"


def _reachable_copies(bin_dirs: list[Path], made: list[Path]):
    """As root, copies of the installations (their whole folder: bin, lib, share) in a
    temporary folder every user may enter, each appended to ``made`` (the caller deletes
    them; the session's watchdog the one in use) — made only when asked for, i.e. when no
    installation as it lies can be run by an unprivileged user (pgserver's under a home
    folder of mode 700, and no system PostgreSQL)."""
    if os.geteuid() != 0:
        return
    for bin_dir in bin_dirs:
        install = bin_dir.parent                 # pgserver/pginstall: bin, lib, share
        package = install.parent
        copy = Path(tempfile.mkdtemp(prefix="postloan-pginstall-", dir="/tmp"))
        made.append(copy)
        os.chmod(copy, 0o755)
        shutil.copytree(install, copy / package.name / install.name, symlinks=True)
        # the wheel's shared libraries, found by the binaries' RPATH $ORIGIN/../../../pgserver.libs
        for libs in package.parent.glob(f"{package.name}.libs"):
            shutil.copytree(libs, copy / libs.name, symlinks=True)
        yield copy / package.name / install.name / bin_dir.name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(fsync: bool = False) -> PgServer:
    """Start a throwaway server; ``pytest.skip`` when this machine has no PostgreSQL (``fsync``:
    on for measurements of durable writes)."""
    t0 = time.perf_counter()
    if os.name != "posix":
        pytest.skip("the tests start their PostgreSQL server on POSIX systems only")
    bin_dirs = _server_bin_dirs()
    if not bin_dirs:
        pytest.skip("no PostgreSQL server binaries: install the test extra (pgserver) or PostgreSQL "
                    "(pg_ctl, initdb on PATH or in /usr/lib/postgresql/*/bin)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg 3 is not installed (the postgres extra)")
    # the first installation this process's user (or, as root, an unprivileged one) can run:
    # as root, pgserver's binaries under a home folder of mode 700 are out of the others' reach
    reasons, copies = [], []
    for bin_dir in [*bin_dirs, *_reachable_copies(bin_dirs, copies)]:
        user, why = _server_user(bin_dir)
        if not why:
            break
        reasons.append(why)
    else:
        for copy in copies:
            shutil.rmtree(copy, ignore_errors=True)
        pytest.skip("; ".join(reasons))
    for copy in copies[:-1]:                       # tried and left
        shutil.rmtree(copy, ignore_errors=True)
    copies = copies[-1:] if copies and bin_dir.is_relative_to(copies[-1]) else []
    root = tempfile.gettempdir() if len(tempfile.gettempdir()) < 60 else "/tmp"   # a Unix socket path is short
    base = Path(tempfile.mkdtemp(prefix="postloan-pg-", dir=root))
    watchdog = None
    try:
        if user:
            import pwd
            entry = pwd.getpwnam(user)
            os.chown(base, entry.pw_uid, entry.pw_gid)
        pwfile = base / "pwfile"
        pwfile.write_text(PG_PASSWORD + "\n")
        if user:
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        data = base / "data"
        done = subprocess.run([str(bin_dir / "initdb"), "-D", str(data), "-U", PG_USER, "--pwfile", str(pwfile),
                               "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C",
                               "--no-sync"], capture_output=True, text=True, **_run_as(user))
        if done.returncode:
            raise RuntimeError(f"initdb failed: {done.stderr.strip()}")
        # From here on the watchdog owns the cleanup, whatever happens to this process.
        watchdog = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(bin_dir / "pg_ctl"), str(data), str(base),
                                     user or "", *map(str, copies)], stdin=subprocess.PIPE, start_new_session=True)
        for attempt in range(3):
            port = _free_port()
            opts = (f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync={'on' if fsync else 'off'} "
                    f"-c full_page_writes={'on' if fsync else 'off'} "
                    f"-c shared_buffers=32MB -c max_connections=60")
            started = subprocess.run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w",
                                      "-t", "60", "-o", opts, "start"], capture_output=True, text=True,
                                     start_new_session=True, **_run_as(user))
            if started.returncode == 0:
                return PgServer(bin_dir, base, port, user, watchdog, time.perf_counter() - t0)
        log = (base / "log").read_text(errors="replace")[-2000:] if (base / "log").exists() else ""
        raise RuntimeError(f"pg_ctl start failed: {started.stderr.strip()}\n{log}")
    except BaseException:
        if watchdog is not None:
            watchdog.stdin.close()
            watchdog.wait(60)
        else:
            for folder in (base, *copies):
                shutil.rmtree(folder, ignore_errors=True)
        raise


@pytest.fixture(scope="session")
def postgres_server():
    """The session's PostgreSQL server (started on first use, stopped at the end)."""
    server = start_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=BACKENDS)
def ledger_backend(request) -> str:
    return request.param


@pytest.fixture
def make_ledger_url(ledger_backend, request, tmp_path):
    """``make_ledger_url()`` → the URL of another fresh, empty store of the test's backend."""
    made: list[str] = []
    server = request.getfixturevalue("postgres_server") if ledger_backend == "postgresql" else None
    counter = itertools.count(1)

    def make() -> str:
        if server is None:
            return f"sqlite:///{tmp_path / f'ledger{next(counter)}.db'}"
        name = server.create_database(request.node.name)
        made.append(name)
        return server.url(name)

    yield make
    for name in made:
        server.drop_database(name)


@pytest.fixture
def ledger_url(make_ledger_url) -> str:
    """A fresh, empty store (one per backend: see the module's documentation)."""
    return make_ledger_url()


@pytest.fixture
def ledger_sql():
    """``ledger_sql(url, sql, params=())`` runs one statement on the store at ``url`` outside
    postloan (a test's way to set up what postloan would refuse to write), committed; returns
    the rows of a query. ``?`` marks parameters on both backends."""
    def run(url: str, sql: str, params=()):
        if url.startswith("sqlite:///"):
            import sqlite3
            conn = sqlite3.connect(url[len("sqlite:///"):], isolation_level=None)
            try:
                cur = conn.execute(sql, params)
                return cur.fetchall() if cur.description else None
            finally:
                conn.close()
        import psycopg
        with psycopg.connect(url, autocommit=True) as conn:
            cur = conn.execute(sql.replace("?", "%s"), params or None)
            return cur.fetchall() if cur.description else None
    return run


@pytest.fixture
def spawn():
    """``spawn(code, *args)`` starts ``python -c code args…`` with pipes for stdin and stdout
    (text) and this checkout on its path; every child still running at the test's end is
    killed and reaped."""
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), str(root / "plugins")] +
                                        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    children: list[subprocess.Popen] = []

    def start(code: str, *args) -> subprocess.Popen:
        child = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True, env=env, cwd=root)
        children.append(child)
        return child

    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait()
        for pipe in (child.stdin, child.stdout):
            if pipe:
                pipe.close()
