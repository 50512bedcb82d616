"""The ledger in PostgreSQL: several processes and machines share one store.

``open_store("postgresql://user:password@host:5432/db")`` (or ``postgres://…``; any libpq URL,
e.g. ``postgresql:///db?host=/run/postgresql`` for a Unix socket) gives a
:class:`PostgresStore`. It keeps the tables and migrations of :class:`~kernel.ledger.store.Store`
in the connection's current schema (``public`` unless the URL sets ``options=-csearch_path=…``)
and needs the ``postgres`` extra (psycopg 3).

- **one connection per thread** (and per process: a forked child opens its own);
- **acknowledged only when committed**: a write returns after PostgreSQL's ``COMMIT``
  returned, with ``synchronous_commit`` at least ``on`` (a server or database default of
  ``off`` is raised to ``on`` for the ledger's sessions; ``remote_write`` / ``remote_apply``
  are kept);
- **writes** run at READ COMMITTED; ``transaction(lock_account=A)`` first takes the
  transaction-scoped advisory lock ``pg_advisory_xact_lock(hashtextextended(A, 0))``, so
  transactions that lock the same account run one after another across processes and
  machines, each seeing what the previous one committed (the gate's read-check-reserve);
  ingests lock the cars whose GPS state they fold and the reservations their contact
  attempts report (``FOR UPDATE``), in a fixed order, so concurrent ingests neither lose an
  update nor deadlock;
- **reads** (``reading()``) run in one REPEATABLE READ, READ ONLY transaction: every
  statement of a read sees the same snapshot;
- **migrations** run in one transaction under an advisory lock: two processes opening a new
  store at once migrate it once; a schema newer than this postloan is refused;
- **ingest** copies a batch into a temporary table (``COPY``) and moves it with one
  ``INSERT … SELECT … ON CONFLICT (event_id) DO NOTHING`` in event-id order (two ingests of
  overlapping batches wait for each other instead of deadlocking); duplicates are told from
  conflicts exactly as on SQLite, with ``RETURNING`` so a concurrent ingest of the same ids
  is counted once across both;
- **backup / restore**: ``pg_dump --format=custom`` of the ledger's tables, restored by
  ``pg_restore`` through ``psql --single-transaction`` (all or nothing); the client programs
  are looked up in ``$POSTLOAN_PG_BIN``, next to pgserver's server, on ``PATH`` and in
  ``/usr/lib/postgresql/*/bin``, taking the first whose major version is at least the
  server's.

Every failure (bad URL, server down, authentication, a lost connection, a failed commit)
is a :class:`~kernel.ledger.store.StoreError` naming the URL with its password masked.
"""
from __future__ import annotations

import glob
import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from . import store as _store
from .events import KIND
from .store import _EVENT_COLUMNS, Store, StoreError, _fsync_dir, mask_url

try:                                    # the ``postgres`` extra
    import psycopg
    from psycopg import conninfo as _conninfo
except ImportError:                     # pragma: no cover - exercised where psycopg is absent
    psycopg = None

__all__ = ["PostgresStore", "mask_url", "client_bin_dirs", "find_client"]

#: advisory-lock key space (two int4 keys: distinct from the one-bigint account locks)
_LOCK_CLASS = 0x706C6467                 # "pldg"
_LOCK_MIGRATE = 1
#: held by every ingest from its first event insert to its commit: events get their
#: insertion sequence numbers (``seq``) in commit order, so a reader that saw number k has
#: seen every number below it (kernel.ledger.book reads what was appended since k)
_LOCK_EVENTS = 2
#: the session's temporary table a batch is copied into
_TEMP = "postloan_ingest"
ENV_PG_BIN = "POSTLOAN_PG_BIN"


def client_bin_dirs() -> list[Path]:
    """Folders that may hold PostgreSQL's programs, in the order they are tried:
    ``$POSTLOAN_PG_BIN``, pgserver's bundled server, the folder of ``pg_ctl`` / ``pg_dump``
    on ``PATH``, ``/usr/lib/postgresql/*/bin`` (newest first)."""
    out: list[Path] = []

    def add(p) -> None:
        p = Path(p)
        if p.is_dir() and p not in out:
            out.append(p)

    if os.environ.get(ENV_PG_BIN):
        add(os.environ[ENV_PG_BIN])
    spec = importlib.util.find_spec("pgserver")          # found without importing it (its import is slow)
    if spec is not None and spec.origin:
        add(Path(spec.origin).parent / "pginstall" / "bin")
    for name in ("pg_ctl", "pg_dump"):
        found = shutil.which(name)
        if found:
            real = Path(found).resolve()
            if real.name == name:                        # not Debian's pg_wrapper
                add(real.parent)
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: _major_of_dir(p), reverse=True):
        add(d)
    return out


def _major_of_dir(path: str) -> int:
    m = re.search(r"/postgresql/(\d+)", path)
    return int(m.group(1)) if m else 0


def program_major(program: Path) -> int | None:
    """The major version of a PostgreSQL program (``pg_dump --version``), None if it does not run."""
    try:
        out = subprocess.run([str(program), "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"\) (\d+)", out) or re.search(r"(\d+)(?:\.\d+)?", out)
    return int(m.group(1)) if m else None


def find_client(names: Sequence[str], at_least: int = 0) -> dict[str, Path] | None:
    """The first folder of :func:`client_bin_dirs` holding every program of ``names``, of
    major version ≥ ``at_least``: name → path; None when no folder has them."""
    for d in client_bin_dirs():
        paths = {n: d / n for n in names}
        if not all(p.is_file() and os.access(p, os.X_OK) for p in paths.values()):
            continue
        major = program_major(paths[names[0]])
        if major is not None and major >= at_least:
            return paths
    return None


def _ledger_objects() -> tuple[list[str], list[str]]:
    """(views, tables) every migration creates, plus ``ledger_schema``."""
    views, tables = [], ["ledger_schema"]
    for _, statements in _store.MIGRATIONS:          # at call time: tests add migrations
        for s in statements:
            s = s[1] if isinstance(s, tuple) else s
            m = re.match(r"\s*CREATE\s+(TABLE|VIEW)\s+(\w+)", s, re.I)
            if m:
                (tables if m.group(1).upper() == "TABLE" else views).append(m.group(2))
    return views, tables


class PostgresStore(Store):
    """The ledger in a PostgreSQL database (see the module's documentation)."""

    mark = "%s"
    real = "DOUBLE PRECISION"
    dialect = "postgresql"
    seq = "seq"
    max_params = 30_000
    #: libpq's connect timeout unless the URL sets one (s)
    connect_timeout = 10
    #: ``"copy"`` (COPY into a temporary table, then INSERT … SELECT) or ``"executemany"``
    ingest_method = "copy"

    def __init__(self, url: str):
        self.url = mask_url(url)
        self._errors = (psycopg.Error,) if psycopg is not None else ()
        if psycopg is None:
            raise StoreError(f"{self.url}: a PostgreSQL ledger needs psycopg 3: "
                             f"python -m pip install 'postloan[postgres]'")
        try:
            params = _conninfo.conninfo_to_dict(url)
        except psycopg.Error as e:
            raise StoreError(f"{self.url}: not a PostgreSQL URL ({self._message(e, url)})") from None
        self._secret = params.get("password") or None
        self._raw = url
        self._params = params
        self._local = threading.local()
        self._all: list = []
        self._lock = threading.Lock()
        self._open()

    def _older_payments(self, where: str) -> str:
        # PostgreSQL has no bare columns beside MAX(): DISTINCT ON keeps each account's latest
        return (f"(SELECT DISTINCT ON (account_id) account_id, {KIND['PAYMENT']} AS kind, at, amount, "
                f"NULL::integer AS promise_date, NULL::smallint AS channel, NULL::smallint AS outcome, "
                f"NULL::integer AS expiry_date FROM events WHERE kind = {KIND['PAYMENT']} AND at < ? {where} "
                f"ORDER BY account_id, at DESC)")

    # -- connections -------------------------------------------------------------------------
    def _message(self, error: BaseException, raw: str | None = None) -> str:
        """A driver error in one line, the password never in it."""
        text = re.sub(r"\s+", " ", str(error)).strip() or type(error).__name__
        for secret in (getattr(self, "_secret", None), raw):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _connection(self):
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is not None and (conn.closed or local.pid != os.getpid()):
            conn = None                                 # (a forked child never touches its parent's)
        if conn is None:
            kwargs = {} if "connect_timeout" in self._params else {"connect_timeout": self.connect_timeout}
            try:
                conn = psycopg.connect(self._raw, autocommit=True, **kwargs)
                setting = conn.execute("SHOW synchronous_commit").fetchone()[0]
                if setting == "off":                     # acknowledged only once durable
                    conn.execute("SET synchronous_commit = on")
            except psycopg.Error as e:
                raise StoreError(f"{self.url}: cannot connect ({self._message(e)})") from None
            local.conn, local.pid, local.temp = conn, os.getpid(), False
            with self._lock:
                self._all.append((os.getpid(), conn))
        return conn

    def _discard(self, conn) -> None:
        """Forget a connection whose state is unknown (it is reopened on next use)."""
        try:
            conn.close()
        except Exception:                               # noqa: BLE001 - closing a broken connection
            pass
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None

    def _end(self, conn, cur, statement: str) -> None:
        if statement == "ROLLBACK":
            self._local.temp = False                    # the temporary table may have gone with it
        try:
            cur.execute(statement)
        except psycopg.Error:
            self._discard(conn)

    def _begin(self, statement: str, what: str):
        """A cursor in a new transaction. A connection found dead when the transaction starts
        (the server restarted, an idle timeout) is replaced once: nothing was sent on it yet."""
        for attempt in (0, 1):
            conn = self._connection()
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                raise StoreError(f"{self.url}: a transaction is already open in this thread")
            cur = conn.cursor()
            try:
                cur.execute(statement)
                return conn, cur
            except psycopg.OperationalError as e:
                dead = conn.broken
                self._discard(conn)
                if attempt or not dead:
                    raise StoreError(f"{self.url}: cannot start {what} ({self._message(e)})") from None
            except psycopg.Error as e:
                self._discard(conn)
                raise StoreError(f"{self.url}: cannot start {what} ({self._message(e)})") from None
        raise AssertionError("unreachable")

    @contextmanager
    def transaction(self, lock_account: str | None = None, synced: bool = True) -> Iterator:
        # unsynced: the commit returns before its WAL record is flushed (set in the same round
        # trip as BEGIN: two statements without parameters go as one simple query)
        conn, cur = self._begin("BEGIN" if synced else "BEGIN; SET LOCAL synchronous_commit = off", "a transaction")
        try:
            if lock_account is not None:
                cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (lock_account,))
            yield cur
        except psycopg.Error as e:
            self._end(conn, cur, "ROLLBACK")
            raise StoreError(f"{self.url}: {self._message(e)} (the transaction was rolled back)") from None
        except BaseException:
            self._end(conn, cur, "ROLLBACK")
            raise
        try:
            cur.execute("COMMIT")
        except psycopg.Error as e:
            self._discard(conn)
            raise StoreError(f"{self.url}: commit failed ({self._message(e)}); the write may or may not have "
                             f"landed (ingest is idempotent: send it again)") from None

    def gate_rows(self, cur, account: str, until: int, since: int, offline_since: int | None
                  ) -> tuple[tuple | None, list[tuple], tuple | None, list[tuple[int, int]]]:
        """:meth:`Store.gate_rows` in one statement, one round trip: the account's registration
        with :meth:`account_rows`' statement joined to it laterally (the registration's columns
        on every row; one row of nulls after them when the account has no rows; no row at all:
        never registered)."""
        sql = self._gate_sql
        if sql is None:
            registry = ", ".join(f"a.{c}" for c in _store.REGISTRY_COLUMNS)
            sql = self._gate_sql = self._sql(
                f"SELECT {registry}, u.* FROM accounts AS a LEFT JOIN LATERAL ({self._account_select()}) AS u "
                f"ON TRUE WHERE a.account_id = ? ORDER BY {_store._ROWS_ORDER}")
        cur.execute(sql, (account, until, since, account, until, since, account, account, until,
                          until + 1 if offline_since is None else offline_since, until, since, account, account))
        rows = cur.fetchall()
        if not rows:
            return None, [], None, []
        width = len(_store.REGISTRY_COLUMNS)
        registered = _store._registered_values(rows[0][:width])
        events = [] if rows[0][width] is None else [r[width:] for r in rows]
        return (registered, *_store._split_account_rows(events, until, offline_since))

    _gate_sql: str | None = None

    @contextmanager
    def reading(self) -> Iterator:
        conn, cur = self._begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "a read")
        try:
            yield cur
        except psycopg.Error as e:
            self._end(conn, cur, "ROLLBACK")
            raise StoreError(f"{self.url}: {self._message(e)}") from None
        except BaseException:
            self._end(conn, cur, "ROLLBACK")
            raise
        self._end(conn, cur, "COMMIT")

    def close(self) -> None:
        """Close this process's connections (a forked child leaves its parent's alone)."""
        me = os.getpid()
        with self._lock:
            for pid, conn in self._all:
                if pid == me:
                    try:
                        conn.close()
                    except Exception:                   # noqa: BLE001
                        pass
            self._all.clear()
        self._local = threading.local()

    # -- schema ------------------------------------------------------------------------------
    def _open(self) -> None:
        with self.transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_LOCK_CLASS, _LOCK_MIGRATE))
            cur.execute("SELECT current_schema()")
            self.schema = cur.fetchone()[0]
            if self.schema is None:
                raise StoreError(f"{self.url}: no schema to create the ledger in (check search_path)")
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (self.schema,))
            tables = {r[0] for r in cur.fetchall()}
            current = 0
            if "ledger_schema" in tables:
                cur.execute("SELECT version FROM ledger_schema")
                current = int(cur.fetchone()[0])
            elif tables:
                raise StoreError(f"{self.url}: schema {self.schema} holds tables but is not a postloan ledger")
            self._check_version(current)
            self._migrate(cur, current)

    def version(self) -> int:
        with self.reading() as cur:
            cur.execute("SELECT version FROM ledger_schema")
            return int(cur.fetchone()[0])

    # -- events ------------------------------------------------------------------------------
    def insert_events(self, cur, rows, recorded_at: int):
        # numbers of the events' sequence are drawn under the events lock, held to the commit:
        # they become visible in the order they were drawn (module documentation)
        if rows.n:
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_LOCK_CLASS, _LOCK_EVENTS))
        return super().insert_events(cur, rows, recorded_at)

    def _insert_fresh(self, cur, rows, ids: list, recorded_at: int) -> bool:
        if self.ingest_method == "executemany":
            return super()._insert_fresh(cur, rows, ids, recorded_at)
        return False                                    # COPY: the general path is the fast one here

    def _insert_unique(self, cur, params: list[tuple]) -> set | None:
        if self.ingest_method == "executemany":
            return super()._insert_unique(cur, params)
        if not self._local.temp:
            # the event columns only (not the sequence, which the move into events draws)
            cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_TEMP} ON COMMIT DELETE ROWS AS "
                        f"SELECT {', '.join(_EVENT_COLUMNS)} FROM events WITH NO DATA")
            self._local.temp = True
        else:
            cur.execute(f"DELETE FROM pg_temp.{_TEMP}")       # an earlier insert of the same transaction
        cols = ", ".join(_EVENT_COLUMNS)
        with cur.copy(f"COPY pg_temp.{_TEMP} ({cols}) FROM STDIN") as copy:
            for row in params:
                copy.write_row(row)
        move = (f"INSERT INTO events ({cols}) SELECT {cols} FROM pg_temp.{_TEMP} ORDER BY event_id "
                f"ON CONFLICT (event_id) DO NOTHING")
        cur.execute("SAVEPOINT ingest")
        cur.execute(move)
        if cur.rowcount == len(params):                 # the common case: every id is new
            cur.execute("RELEASE SAVEPOINT ingest")
            return None
        # Some ids are stored already (a replay, or another process just stored them): insert
        # again, this time told exactly which rows this transaction stored.
        cur.execute("ROLLBACK TO SAVEPOINT ingest")
        cur.execute(move + " RETURNING event_id")
        inserted = {r[0] for r in cur.fetchall()}
        cur.execute("RELEASE SAVEPOINT ingest")
        return inserted

    def _events_by_id(self, cur, ids: list[str]) -> dict[str, tuple]:
        cur.execute(f"SELECT {', '.join(_EVENT_COLUMNS)} FROM events WHERE event_id = ANY(%s)", (list(ids),))
        return {row[0]: tuple(row) for row in cur.fetchall()}

    def reservations_by_id(self, cur, ids: list[str]) -> dict[str, tuple]:
        """As the base, and locks the rows (``FOR UPDATE``, in id order) so that two ingests
        reporting the same reservation see each other's report."""
        cur.execute("SELECT reservation_id, account_id, channel, reported_by FROM reservations "
                    "WHERE reservation_id = ANY(%s) ORDER BY reservation_id FOR UPDATE", (list(ids),))
        return {rid: (account, channel, reported) for rid, account, channel, reported in cur.fetchall()}

    def gps_rows(self, cur, accounts: Sequence[str]) -> dict[str, tuple[int, int]]:
        """As the base, after locking the cars (the account advisory locks, in key order) so
        that two ingests folding pings of the same car run one after the other."""
        accounts = list(accounts)
        if accounts:
            cur.execute("SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtextextended(a, 0) AS k "
                        "FROM unnest(%s::text[]) AS a ORDER BY 1) AS keys", (accounts,))
        cur.execute("SELECT account_id, first_ping_at, last_ping_at FROM gps_last WHERE account_id = ANY(%s)",
                    (accounts,))
        return {a: (int(f), int(last)) for a, f, last in cur.fetchall()}

    # -- backup ------------------------------------------------------------------------------
    def _server_major(self) -> int:
        with self.reading() as cur:
            cur.execute("SHOW server_version_num")
            return int(cur.fetchone()[0]) // 10000

    def _client(self, names: Sequence[str], what: str) -> dict[str, Path]:
        major = self._server_major()
        found = find_client(names, major)
        if found is None:
            raise StoreError(f"{self.url}: {what} needs PostgreSQL's {' and '.join(names)} (version {major} or newer): "
                             f"none found in ${ENV_PG_BIN}, pgserver, PATH or /usr/lib/postgresql/*/bin")
        return found

    def _env(self) -> tuple[str, dict]:
        """A conninfo without the password, and the environment carrying it (not the command line)."""
        params = {k: v for k, v in self._params.items() if k != "password"}
        env = dict(os.environ)
        if self._secret is not None:
            env["PGPASSWORD"] = self._secret
        env.setdefault("PGCONNECT_TIMEOUT", str(self.connect_timeout))
        return _conninfo.make_conninfo("", **params), env

    def _run(self, argv: list, what: str, stdout=None, env=None) -> bytes:
        """Run a PostgreSQL program; its output (unless sent to ``stdout``), or a StoreError
        with its message."""
        try:
            done = subprocess.run([str(a) for a in argv], stdout=stdout if stdout is not None else subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env)
        except OSError as e:
            raise StoreError(f"{self.url}: {what}: cannot run {argv[0]} ({e.strerror or e})") from None
        if done.returncode != 0:
            err = done.stderr.decode("utf-8", "replace").strip() or f"exit status {done.returncode}"
            raise StoreError(f"{self.url}: {what} failed ({self._message(err)})")
        return done.stdout or b""

    def backup(self, target: str | os.PathLike) -> None:
        """A consistent copy of the ledger's tables in the file ``target`` (``pg_dump``'s
        custom format; written next to it, then renamed, so ``target`` is whole or absent)."""
        tools = self._client(["pg_dump"], "backup")
        target = Path(target)
        if not target.parent.is_dir():
            raise StoreError(f"{self.url}: backup: the folder of {target} does not exist")
        tmp = target.with_name(target.name + ".part")
        dsn, env = self._env()
        views, tables = _ledger_objects()
        names = [a for n in views + tables for a in ("--table", f'"{self.schema}"."{n}"')]
        try:
            self._run([tools["pg_dump"], "--format=custom", "--no-owner", "--no-privileges", "--file", tmp,
                       *names, "--dbname", dsn], "backup (pg_dump)", env=env)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, target)
            _fsync_dir(target.parent)
        except OSError as e:
            raise StoreError(f"{self.url}: backup to {target} failed ({e.strerror or e})") from None
        finally:
            tmp.unlink(missing_ok=True)

    def restore(self, source: str | os.PathLike) -> None:
        """Replace the ledger's content with the backup ``source`` (made by :meth:`backup` or
        ``pg_dump --format=custom``), all or nothing, then bring it to this schema version."""
        source = Path(source)
        if not source.is_file():
            raise StoreError(f"{self.url}: restore: {source} is not a file")
        tools = self._client(["pg_restore", "psql"], "restore")
        listing = self._run([tools["pg_restore"], "--list", source], f"restore: reading {source}").decode()
        found = [re.search(rf"TABLE DATA (\S+) {name}\b", listing) for name in ("ledger_schema", "events")]
        if not all(found):
            raise StoreError(f"{self.url}: restore: {source} is not a backup of a postloan ledger")
        if found[1].group(1) != self.schema:            # pg_restore writes into the schema dumped
            raise StoreError(f"{self.url}: restore: {source} holds a ledger of schema {found[1].group(1)}; this "
                             f"ledger is in schema {self.schema}")
        version = self._run([tools["pg_restore"], "--data-only", "--table", "ledger_schema", "--file", "-", source],
                            f"restore: reading {source}").decode()
        m = re.search(r"^COPY \S+ \(version\) FROM stdin;\n(\d+)\n", version, re.M)
        if m is None:
            raise StoreError(f"{self.url}: restore: {source} has no schema version (not a postloan ledger backup)")
        self._check_version(int(m.group(1)))
        views, tables = _ledger_objects()
        dsn, env = self._env()
        with tempfile.TemporaryDirectory(prefix="postloan-restore-") as tmp:
            script = Path(tmp) / "restore.sql"
            with open(script, "w") as out:
                out.write(f"SELECT pg_advisory_xact_lock({_LOCK_CLASS}, {_LOCK_MIGRATE});\n"
                          "SELECT set_config('synchronous_commit', 'on', true) "
                          "WHERE current_setting('synchronous_commit') = 'off';\n")
                for v in views:
                    out.write(f'DROP VIEW IF EXISTS "{self.schema}"."{v}";\n')
                for t in tables:
                    out.write(f'DROP TABLE IF EXISTS "{self.schema}"."{t}" CASCADE;\n')
            with open(script, "ab") as out:
                self._run([tools["pg_restore"], "--no-owner", "--no-privileges", "--file", "-", source],
                          f"restore: reading {source}", stdout=out)
            self._run([tools["psql"], "--no-psqlrc", "--quiet", "--single-transaction", "--set", "ON_ERROR_STOP=1",
                       "--file", script, "--dbname", dsn], "restore (psql)", env=env)
        self.close()            # this process's sessions may hold plans of the dropped tables: reopen
        self._open()            # and bring an older backup up to date

