"""The stores: URLs and their errors, migrations, transactions and snapshots, duplicate
classification — on SQLite and PostgreSQL alike (``ledger_url`` runs each test on both)."""
from __future__ import annotations

import datetime as dt
import threading
import time

import pyarrow as pa
import pytest

from kernel.ledger import Ledger, StoreError, open_store
from kernel.ledger import store as store_module
from kernel.ledger.store import mask_url
from kernel.schema import ENUMS

UTC = dt.timezone.utc
T = dt.datetime(2026, 11, 28, 2, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")


def events(rows: list[dict]) -> pa.Table:
    names = sorted({k for r in rows for k in r})
    types = {"at": TS, "promise_date": pa.date32(), "expiry_date": pa.date32(), "amount": pa.float64(),
             "lat": pa.float64(), "lon": pa.float64()}
    return pa.table({n: pa.array([r.get(n) for r in rows], types.get(n, pa.string())) for n in names})


def pay(event_id: str, amount: float = 100.0, account: str = "A") -> dict:
    return {"event_id": event_id, "account_id": account, "kind": "PAYMENT", "at": T - dt.timedelta(hours=1),
            "amount": amount}


# -- URLs and errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("url, says", [
    ("postgresql://u:hunter2@127.0.0.1:1/db", "cannot connect (connection failed"),
    ("postgresql://u:hunter2@127.0.0.1:5432/db?no_such_option=1", "not a PostgreSQL URL"),
    ("postgresql://u:hunter2@127.0.0.1:port/db", "invalid integer value"),
    ("postgres://u@127.0.0.1:1/db?password=hunter2", "cannot connect"),
    ("mysql://u:hunter2@host/db", "unknown store"),
    ("sqlite://host/ledger.db", "a SQLite URL has no host"),
])
def test_a_bad_url_is_a_store_error_naming_it_with_the_password_masked(url, says):
    with pytest.raises(StoreError) as caught:
        open_store(url)
    message = str(caught.value)
    assert says in message
    assert "hunter2" not in message
    if url.startswith("postgres"):
        assert message.startswith(url.split("://")[0] + "://u")
        assert "***" in message


@pytest.mark.parametrize("url, masked", [
    ("postgresql://u:p%40ss%3Aw@db:5432/ledger", "postgresql://u:***@db:5432/ledger"),
    ("postgresql://u@db/ledger?sslmode=require&password=pw", "postgresql://u@db/ledger?sslmode=require&password=***"),
    ("postgresql:///ledger?host=/run/postgresql", "postgresql:///ledger?host=/run/postgresql"),
    ("sqlite:////var/lib/ledger.db", "sqlite:////var/lib/ledger.db"),
])
def test_mask_url(url, masked):
    assert mask_url(url) == masked


def test_without_psycopg_a_postgresql_url_says_which_extra_to_install(monkeypatch):
    from kernel.ledger import postgres
    monkeypatch.setattr(postgres, "psycopg", None)
    with pytest.raises(StoreError, match=r"^postgresql://u:\*\*\*@db/x: a PostgreSQL ledger needs psycopg 3: "
                                         r"python -m pip install 'postloan\[postgres\]'"):
        open_store("postgresql://u:pw@db/x")


def test_a_wrong_password_or_database_is_a_store_error(postgres_server):
    with pytest.raises(StoreError, match=r"password authentication failed") as caught:
        open_store(postgres_server.url(password="wrong-hunter2"))
    assert "hunter2" not in str(caught.value) and f"127.0.0.1:{postgres_server.port}/postgres" in str(caught.value)
    with pytest.raises(StoreError, match=r'/no_such_db: cannot connect .*database "no_such_db" does not exist'):
        open_store(postgres_server.url("no_such_db"))


def test_a_store_holding_other_tables_is_refused(ledger_url, ledger_sql):
    ledger_sql(ledger_url, "CREATE TABLE customers (id INTEGER)")
    with pytest.raises(StoreError, match="holds tables but is not a postloan ledger"):
        open_store(ledger_url)


def _backend_pid(store) -> int:
    with store.reading() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return cur.fetchone()[0]


def test_a_connection_lost_while_idle_is_replaced(postgres_server, ledger_sql):
    url = postgres_server.url(postgres_server.create_database("idle"))
    with Ledger(url) as ledger:
        ledger.ingest(events([pay("e1")]), now=T)
        first = _backend_pid(ledger.store)
        ledger_sql(postgres_server.url(), "SELECT pg_terminate_backend(?)", (first,))
        assert ledger.ingest(events([pay("e2")]), now=T).accepted == 1     # (a server restart looks the same)
        assert ledger.store.count_events() == 2
        assert _backend_pid(ledger.store) != first


def test_a_connection_lost_in_a_transaction_is_a_store_error_and_the_next_call_reconnects(postgres_server,
                                                                                          ledger_sql):
    url = postgres_server.url(postgres_server.create_database("lost"))
    with Ledger(url) as ledger:
        store = ledger.store
        with pytest.raises(StoreError, match=r"^postgresql://postloan:\*\*\*@127\.0\.0\.1:\d+/t\d+_\w+: .*"
                                             r"terminat.*\(the transaction was rolled back\)"):
            with store.transaction() as cur:
                store.insert_events(cur, _rows([pay("e1")]), 0)
                cur.execute("SELECT pg_backend_pid()")
                ledger_sql(postgres_server.url(), "SELECT pg_terminate_backend(?)", (cur.fetchone()[0],))
                cur.execute("SELECT 1")
        assert store.count_events() == 0                                    # not committed, reconnected
        assert ledger.ingest(events([pay("e1")]), now=T).accepted == 1


def _rows(rows: list[dict]):
    from kernel.ledger.events import normalize
    checked, rejected = normalize(events(rows), now_us=int(T.timestamp() * 1e6), max_future_us=0,
                                  max_promise_days=90)
    assert not rejected
    return checked


def test_a_transaction_inside_another_in_one_thread_is_refused(ledger_url):
    store = open_store(ledger_url)
    try:
        with store.transaction():
            with pytest.raises(StoreError, match=r"transaction"):
                with store.transaction():
                    pass
    finally:
        store.close()


# -- durability settings ------------------------------------------------------------------------

def test_commits_are_durable_before_they_return(ledger_url, ledger_sql):
    if ledger_url.startswith("postgresql"):
        # a database whose default would acknowledge before the WAL is flushed
        database = ledger_url.rsplit("/", 1)[1]
        ledger_sql(ledger_url, f'ALTER DATABASE "{database}" SET synchronous_commit = off')
        assert ledger_sql(ledger_url, "SHOW synchronous_commit") == [("off",)]
    store = open_store(ledger_url)
    try:
        with store.transaction() as cur:
            if ledger_url.startswith("sqlite"):
                assert cur.execute("PRAGMA synchronous").fetchone()[0] == 2          # FULL
                assert cur.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            else:
                cur.execute("SHOW synchronous_commit")
                assert cur.fetchone()[0] == "on"
                cur.execute("SHOW transaction_isolation")
                assert cur.fetchone()[0] == "read committed"
    finally:
        store.close()


# -- migrations ---------------------------------------------------------------------------------

def test_a_new_store_is_created_at_the_current_schema(ledger_url, ledger_sql):
    with Ledger(ledger_url) as ledger:
        assert ledger.store.version() == store_module.SCHEMA_VERSION
    kinds = ledger_sql(ledger_url, "SELECT code, name FROM event_kinds ORDER BY code")
    assert [name for _, name in kinds] == list(ENUMS["event_kind"])
    assert ledger_sql(ledger_url, "SELECT COUNT(*) FROM ledger_schema") == [(1,)]


def test_a_newer_schema_is_refused(ledger_url, ledger_sql):
    with Ledger(ledger_url) as ledger:
        ledger.ingest(events([pay("e1")]), now=T)
    ledger_sql(ledger_url, "UPDATE ledger_schema SET version = ?", (store_module.SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match=rf"schema is version {store_module.SCHEMA_VERSION + 1}, newer than this "
                                         rf"postloan knows \({store_module.SCHEMA_VERSION}\); upgrade postloan"):
        open_store(ledger_url)
    # refused, not touched
    assert ledger_sql(ledger_url, "SELECT version FROM ledger_schema") == [(store_module.SCHEMA_VERSION + 1,)]


def _next_migration(monkeypatch) -> int:
    """This test's own next migration (never shipped): a column and a table."""
    version = store_module.SCHEMA_VERSION + 1
    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS + [(version, [
        "ALTER TABLE events ADD COLUMN note TEXT",
        "CREATE TABLE probe (id INTEGER PRIMARY KEY, weight {real})",
        "INSERT INTO probe (id, weight) VALUES (1, 0.5)",
    ])])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", version)
    return version


def test_a_store_at_an_older_schema_is_upgraded_on_open(ledger_url, ledger_sql, monkeypatch):
    with Ledger(ledger_url) as ledger:                         # today's schema
        ledger.ingest(events([pay("e1"), pay("e2", 5.0, "B")]), now=T)
        before = ledger.store.dump_tables()["events"]
    with monkeypatch.context() as m:
        version = _next_migration(m)
        with Ledger(ledger_url) as ledger:                     # a postloan one migration ahead
            assert ledger.store.version() == version
            assert [r[:12] for r in ledger.store.dump_tables()["events"]] == before
            assert [r[12] for r in ledger.store.dump_tables()["events"]] == [None, None]
        assert ledger_sql(ledger_url, "SELECT id, weight FROM probe") == [(1, 0.5)]
        with Ledger(ledger_url) as ledger:                     # opening again migrates nothing
            assert ledger.store.version() == version
        assert ledger_sql(ledger_url, "SELECT COUNT(*) FROM probe") == [(1,)]
    # today's postloan now meets a newer schema: refused
    with pytest.raises(StoreError, match=f"schema is version {version}, newer"):
        open_store(ledger_url)


def test_a_failing_migration_changes_nothing(ledger_url, ledger_sql, monkeypatch):
    with Ledger(ledger_url) as ledger:
        ledger.ingest(events([pay("e1")]), now=T)
    version = store_module.SCHEMA_VERSION + 1
    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS + [(version, [
        "CREATE TABLE probe (id INTEGER)",
        "ALTER TABLE no_such_table ADD COLUMN x INTEGER",
    ])])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", version)
    with pytest.raises(StoreError, match="no_such_table"):
        open_store(ledger_url)
    assert ledger_sql(ledger_url, "SELECT version FROM ledger_schema") == [(version - 1,)]
    if ledger_url.startswith("sqlite"):
        assert ledger_sql(ledger_url, "SELECT name FROM sqlite_master WHERE name = 'probe'") == []
    else:
        assert ledger_sql(ledger_url, "SELECT to_regclass('probe')") == [(None,)]


OPEN_AT_ONCE = """
import sys
from kernel.ledger.store import open_store
print("ready", flush=True)
sys.stdin.readline()
store = open_store(sys.argv[1])
print(store.version(), flush=True)
store.close()
"""


def test_processes_opening_a_new_store_at_once_create_it_once(ledger_url, ledger_sql, spawn):
    children = [spawn(OPEN_AT_ONCE, ledger_url) for _ in range(2)]
    for child in children:
        assert child.stdout.readline() == "ready\n"
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    for child in children:
        out, _ = child.communicate(timeout=120)
        assert (child.returncode, out) == (0, f"{store_module.SCHEMA_VERSION}\n")
    assert ledger_sql(ledger_url, "SELECT COUNT(*) FROM event_kinds") == [(len(ENUMS["event_kind"]),)]
    assert ledger_sql(ledger_url, "SELECT COUNT(*) FROM ledger_schema") == [(1,)]


# -- transactions and reads ---------------------------------------------------------------------

RESERVE = """
import sys, time
from kernel.ledger.store import open_store
store = open_store(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
with store.transaction(lock_account="A") as cur:
    cur.execute("SELECT COUNT(*) FROM reservations WHERE account_id = 'A'")
    seen = cur.fetchone()[0]
    time.sleep(0.3)                       # wide open for another process to read the same count
    if seen == 0:
        store.add_reservation(cur, "r-" + sys.argv[2], "A", 0, 1, 2, 3)
print(seen, flush=True)
store.close()
"""


def test_transactions_locking_the_same_account_run_one_after_another_across_processes(ledger_url, ledger_sql, spawn):
    open_store(ledger_url).close()
    children = [spawn(RESERVE, ledger_url, i) for i in range(2)]
    for child in children:
        assert child.stdout.readline() == "ready\n"
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    seen = sorted(int(child.communicate(timeout=120)[0]) for child in children)
    assert seen == [0, 1]                     # the second read what the first committed
    assert ledger_sql(ledger_url, "SELECT COUNT(*) FROM reservations") == [(1,)]


def test_sqlite_account_locking_transactions_share_one_connection_in_turn(tmp_path):
    """SQLite: the account-locking transactions (the gate's) of a process's threads run on one
    connection per durability, one thread at a time — a second thread's waits for the first's
    commit and reads what it wrote; one inside another in the same thread is refused (the outer
    still commits); other transactions keep their thread's own connection; a closed store opens
    a new one."""
    store = open_store(tmp_path / "ledger.db")
    try:
        seen = {}

        def second():
            with store.transaction(lock_account="B") as cur:
                cur.execute("SELECT COUNT(*) FROM reservations")
                seen["count"], seen["conn"] = cur.fetchone()[0], cur.connection

        with store.transaction(lock_account="A") as cur:
            first = cur.connection
            store.add_reservation(cur, "r1", "A", 0, 1, 2, 3)
            other = threading.Thread(target=second)
            other.start()
            time.sleep(0.2)
            assert "count" not in seen                       # waiting for this one's commit
            with pytest.raises(StoreError, match="transaction"):
                with store.transaction(lock_account="A"):
                    pass
        other.join(30)
        assert seen == {"count": 1, "conn": first}
        with store.transaction(lock_account="A", synced=False) as cur:
            assert cur.connection is not first               # one per durability
        with store.transaction() as cur:
            assert cur.connection is not first               # this thread's own
        store.close()
        with store.transaction(lock_account="A") as cur:
            assert cur.connection is not first
            cur.execute("SELECT COUNT(*) FROM reservations")
            assert cur.fetchone()[0] == 1
    finally:
        store.close()


def test_a_lock_on_one_account_does_not_hold_up_another(postgres_server):
    url = postgres_server.url(postgres_server.create_database("locks"))
    store = open_store(url)
    try:
        held, release = threading.Event(), threading.Event()

        def hold():
            with store.transaction(lock_account="A"):
                held.set()
                release.wait(30)

        holder = threading.Thread(target=hold)
        holder.start()
        assert held.wait(30)
        t0 = time.perf_counter()
        with store.transaction(lock_account="B"):
            pass
        other = time.perf_counter() - t0
        release.set()
        holder.join()
        assert other < 5.0
    finally:
        release.set()
        store.close()


def test_a_read_sees_one_snapshot(ledger_url):
    with Ledger(ledger_url) as ledger:
        ledger.ingest(events([pay("e1")]), now=T)
        with ledger.store.reading() as cur:
            cur.execute("SELECT COUNT(*) FROM events")
            first = cur.fetchone()[0]
            writer = threading.Thread(target=lambda: ledger.ingest(events([pay("e2"), pay("e3")]), now=T))
            writer.start()
            writer.join(60)
            cur.execute("SELECT COUNT(*) FROM events")
            again = cur.fetchone()[0]
        assert (first, again) == (1, 1)
        assert ledger.store.count_events() == 3


# -- duplicates and conflicts --------------------------------------------------------------------

def insert_paths(ledger_url, make_ledger_url, monkeypatch):
    """(store URL) per way of inserting: on PostgreSQL COPY and executemany, each on a fresh
    store; SQLite has one."""
    if ledger_url.startswith("sqlite"):
        yield ledger_url
        return
    from kernel.ledger.postgres import PostgresStore
    for i, method in enumerate(("copy", "executemany")):
        monkeypatch.setattr(PostgresStore, "ingest_method", method)
        yield ledger_url if i == 0 else make_ledger_url()


def test_ids_repeated_within_a_batch_and_against_the_store_are_told_apart(ledger_url, make_ledger_url, monkeypatch):
    for url in insert_paths(ledger_url, make_ledger_url, monkeypatch):
        _repeats_told_apart(url)


def _repeats_told_apart(url):
    with Ledger(url) as ledger:
        assert ledger.ingest(events([pay("old", 10.0)]), now=T).accepted == 1
        result = ledger.ingest(events([
            pay("new", 1.0),        # 0 lands
            pay("new", 1.0),        # 1 a repeat of row 0: duplicate
            pay("new", 2.0),        # 2 same id, other content: conflict with row 0
            pay("old", 10.0),       # 3 duplicate of the stored event
            pay("old", 11.0),       # 4 conflict with the stored event
            pay("other", 3.0),      # 5 lands
        ]), now=T + dt.timedelta(minutes=1))
        assert (result.accepted, result.duplicate) == (2, 2)
        assert [(r.row, r.event_id) for r in result.rejected] == [(2, "new"), (4, "old")]
        stored = {row[0]: row[5] for row in ledger.store.dump_tables()["events"]}
        assert stored == {"new": 1.0, "old": 10.0, "other": 3.0}
        again = ledger.ingest(events([pay("other", 3.0), pay("new", 1.0), pay("fresh", 4.0)]), now=T)
        assert (again.accepted, again.duplicate, again.rejected) == (1, 2, [])


def test_a_large_batch_lands_whole_and_replays_as_duplicates(ledger_url, make_ledger_url, monkeypatch):
    for url in insert_paths(ledger_url, make_ledger_url, monkeypatch):
        _large_batch(url)


def _large_batch(ledger_url):
    n = 20_000
    table = pa.table({"event_id": [f"e{i:06d}" for i in range(n)], "account_id": [f"A{i % 997}" for i in range(n)],
                      "kind": ["PAYMENT"] * n, "at": pa.array([T - dt.timedelta(seconds=i) for i in range(n)], TS),
                      "amount": pa.array([float(i % 50) + 0.25 for i in range(n)])})
    with Ledger(ledger_url) as ledger:
        assert ledger.ingest(table, now=T).accepted == n
        before = ledger.store.dump_tables()
        replay = ledger.ingest(table, now=T + dt.timedelta(hours=1))
        assert (replay.accepted, replay.duplicate) == (0, n)
        assert ledger.store.dump_tables() == before
        assert before["events"][123][:6] == ("e000123", "A123", 0, before["events"][123][3], before["events"][123][4],
                                             23.25)


def test_a_version_1_ledger_gets_the_later_event_kinds_named(tmp_path):
    """A ledger made before the issue-12 kinds were appended has their names after the upgrade
    (the view events_named shows them)."""
    import sqlite3
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with Ledger(url):
        pass
    con = sqlite3.connect(tmp_path / "old.db")
    con.execute("DELETE FROM event_kinds WHERE code >= 28")           # as a version-1 ledger had them
    con.execute("UPDATE ledger_schema SET version = 1")
    con.commit()
    con.close()
    with Ledger(url) as ledger:
        assert ledger.store.version() == store_module.SCHEMA_VERSION
    con = sqlite3.connect(tmp_path / "old.db")
    assert [n for _, n in con.execute("SELECT code, name FROM event_kinds ORDER BY code")] == list(ENUMS["event_kind"])
    con.close()


def test_a_batch_of_new_events_is_stored_as_a_replayed_one_is(ledger_url, make_ledger_url, monkeypatch):
    """A batch whose ids are all new is inserted by a leaner statement (columns empty in every
    row as the statement's NULLs, the rest bound with their nulls); a batch with a stored id
    by the general path. Both store the same rows, column for column."""
    day = dt.timedelta(days=1)
    rows = [pay("p1", 12.5, "A"), pay("p2", 7.0, "B"),
            {"event_id": "c1", "account_id": "A", "kind": "CONTACT_ATTEMPT", "at": T - day, "channel": "PHONE",
             "outcome": "RIGHT_PARTY", "agent": "alice"},
            {"event_id": "c2", "account_id": "B", "kind": "CONTACT_ATTEMPT", "at": T - 2 * day, "channel": "SMS",
             "outcome": "DELIVERED"},
            {"event_id": "t1", "account_id": "A", "kind": "PROMISE_TO_PAY", "at": T - day, "amount": 300.0,
             "promise_date": (T + 3 * day).date(), "agent": "bob"},
            {"event_id": "i1", "account_id": "B", "kind": "INSURANCE_RENEWED", "at": T - day,
             "expiry_date": (T + 300 * day).date()}]
    table = events(rows)
    for url in insert_paths(ledger_url, make_ledger_url, monkeypatch):
        with Ledger(url) as fresh:
            assert fresh.ingest(table, now=T).accepted == len(rows)
            fast = fresh.store.dump_tables()["events"]
        with Ledger(make_ledger_url()) as replayed:
            assert replayed.ingest(table.slice(2, 1), now=T).accepted == 1          # c1 stored first
            result = replayed.ingest(table, now=T)
            assert (result.accepted, result.duplicate, result.rejected) == (len(rows) - 1, 1, [])
            general = replayed.store.dump_tables()["events"]
        assert sorted(fast) == sorted(general)
        by_id = {r[0]: r for r in fast}
        assert by_id["p1"][5] == 12.5 and by_id["c1"][5] is None and by_id["c1"][11] == "alice"
        assert by_id["c2"][11] is None and by_id["i1"][9] is not None and by_id["p1"][9] is None


def test_the_store_knows_an_account_by_any_of_its_four_traces(ledger_url):
    from kernel.synth import generate
    at_us = int(T.timestamp() * 1e6)
    book = generate(1, seed=3)
    registered = book["account_id"][0].as_py()
    with Ledger(ledger_url) as ledger:
        ledger.register(book)
        ledger.ingest(events([pay("e1", account="PAID"),
                              {"event_id": "g1", "account_id": "PINGED", "kind": "GPS_PING", "at": T,
                               "lat": 31.2, "lon": 121.5}]))
        with ledger.store.transaction(lock_account="RESERVED") as cur:
            ledger.store.add_reservation(cur, "r" * 32, "RESERVED", 1, at_us, at_us + 60_000_000, at_us)
        for account in (registered, "PAID", "PINGED", "RESERVED"):
            assert ledger.knows(account), account
        assert not ledger.knows("NEVER") and not ledger.knows("")
