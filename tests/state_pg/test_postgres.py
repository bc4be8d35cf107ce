"""What is specific to the PostgreSQL store: URLs and passwords, typed connection errors, the schema
mirroring SQLite's, migrations, the lock row seen from other sessions, reconnecting."""

from __future__ import annotations

import socket
import sqlite3
import threading

import pytest

from engine.errors import MigrationError, StateError, TransientStateError
from engine.state import open_store
from engine.state.postgres import redact_url, split_url, translate_error


# --- without a server ------------------------------------------------------------------------------

@pytest.mark.parametrize("url, shown", [
    ("postgresql://ci:s3cret@db.example:5432/state", "postgresql://ci:***@db.example:5432/state"),
    ("postgresql://db/state?password=s3cret&sslmode=require", "postgresql://db/state?password=***&sslmode=require"),
    ("postgres://ci@db/state?schema=team_a", "postgres://ci@db/state?schema=team_a"),
    ("sqlite:///.syncform/state.db", "sqlite:///.syncform/state.db"),
])
def test_urls_are_shown_without_their_password(url, shown):
    assert redact_url(url) == shown
    assert "s3cret" not in redact_url(url, mask=None)


def test_the_schema_parameter_is_syncforms_not_libpqs():
    conninfo, schema = split_url("postgres://ci@db:5/state?sslmode=require&schema=team_a")
    assert schema == "team_a" and "schema" not in conninfo and "sslmode=require" in conninfo
    with pytest.raises(StateError, match='schema "a-b" is not a plain identifier'):
        split_url("postgresql://db/state?schema=a-b")


@pytest.mark.parametrize("sqlstate, transient", [
    ("40001", True), ("40P01", True), ("55P03", True), ("53300", True), ("57P01", True), ("08006", True),
    ("28P01", False), ("3D000", False), ("42501", False), ("42P01", False),
])
def test_errors_are_typed_by_sqlstate(sqlstate, transient):
    psycopg = pytest.importorskip("psycopg")
    cls = psycopg.errors.lookup(sqlstate)
    err = translate_error(cls("boom for pw hunter2"), "postgresql://u:hunter2@h/db")
    assert isinstance(err, StateError)
    assert isinstance(err, TransientStateError) is transient and err.transient is transient
    assert "hunter2" not in str(err) and "postgresql://u:***@h/db" in str(err)


def test_a_refused_connection_is_transient_and_hides_the_password():
    pytest.importorskip("psycopg")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TransientStateError) as err:
        open_store(f"postgresql://ci:hunter2@127.0.0.1:{port}/state")
    assert "hunter2" not in str(err.value) and f"ci:***@127.0.0.1:{port}" in str(err.value)
    assert "refused" in str(err.value).lower()


# --- on the test server ----------------------------------------------------------------------------

def test_a_wrong_password_is_terminal_and_never_echoed(pg_url):
    url = pg_url.replace("://syncform@", "://syncform_pw:not-the-password@")
    try:
        store = open_store(url)
    except TransientStateError as exc:  # pragma: no cover - a misconfigured server
        pytest.fail(f"an authentication failure must not be transient: {exc}")
    except StateError as exc:
        message = str(exc)
        assert "not-the-password" not in message and "syncform_pw:***@" in message
        assert "refused the credentials" in message and "PGPASSWORD" in message
        assert not exc.transient
        return
    store.close()
    pytest.skip("this server let syncform_pw in without checking its password (scripts/pg-test-server.sh's does)")


def test_the_password_comes_from_pgpassword(pg_url, monkeypatch):
    url = pg_url.replace("://syncform@", "://syncform_pw@") + "?schema=pw_" + format(abs(hash(pg_url)) % 10**6)
    monkeypatch.setenv("PGPASSWORD", "syncform-test-only")
    try:
        store = open_store(url)
    except StateError as exc:
        pytest.skip(f"no syncform_pw role with the test password on this server ({exc})")
    try:
        store.set_meta("k", "v")
        assert store.get_meta("k") == "v" and store.url == url
    finally:
        store._execute(f'DROP SCHEMA "{store.schema}" CASCADE')
        store.close()


def test_a_missing_database_is_terminal_and_says_how_to_fix_it(pg_url):
    base, _, _ = pg_url.rpartition("/")
    with pytest.raises(StateError) as err:
        open_store(f"{base}/no_such_state_db")
    assert not err.value.transient
    assert 'database "no_such_state_db" does not exist' in str(err.value) and "createdb" in str(err.value)


def test_postgres_scheme_alias_and_schema_isolation(pg_url, pg_schema_url):
    a = open_store(pg_schema_url)
    b = open_store(pg_schema_url.replace("postgresql://", "postgres://", 1))
    assert a.lineage() == b.lineage()
    a.put_deployed(__import__("engine.state.base", fromlist=["Deployed"]).Deployed("x", {}, "h"))
    assert [d.name for d in b.list_deployed()] == ["x"]
    other_url = pg_schema_url.rsplit("=", 1)[0] + "=" + a.schema + "_other"
    other = open_store(other_url)
    try:
        assert other.lineage() != a.lineage() and other.list_deployed() == []
        lock = a.acquire_lock("apply")
        assert other.acquire_lock("apply", timeout=0).operation == "apply"  # each state its own lock
        a.release_lock(lock.id)
    finally:
        other._execute(f'DROP SCHEMA "{other.schema}" CASCADE')
        other.close()
        a.close()
        b.close()


def test_the_schema_mirrors_sqlites_table_for_table_column_for_column(tmp_path, pg_schema_url):
    from engine.state import postgres, sqlite

    assert len(postgres.MIGRATIONS) == len(sqlite.MIGRATIONS), "add the new SQLite migration to postgres.py"
    lite = sqlite.SQLiteStore(tmp_path / "s.db")
    pg = open_store(pg_schema_url)
    try:
        lite_tables = {r[0] for r in lite._qa("SELECT name FROM sqlite_master WHERE type = 'table' "
                                              "AND name NOT LIKE 'sqlite_%'")}
        pg_tables = {r[0] for r in pg._qa("SELECT table_name FROM information_schema.tables "
                                          "WHERE table_schema = current_schema()")}
        assert pg_tables == lite_tables
        for table in sorted(lite_tables):
            lite_cols = [(r[1], bool(r[3]), r[5] > 0) for r in lite._qa(f"PRAGMA table_info({table})")]
            pg_cols = [(r[0], r[1] == "NO") for r in pg._qa(
                "SELECT column_name, is_nullable FROM information_schema.columns WHERE table_schema = "
                "current_schema() AND table_name = %s ORDER BY ordinal_position", (table,))]
            assert [c[0] for c in pg_cols] == [c[0] for c in lite_cols], table
            for (name, lite_notnull, pk), (_, pg_notnull) in zip(lite_cols, pg_cols):
                assert pg_notnull == (lite_notnull or pk), f"{table}.{name} NOT NULL differs"
        assert pg.schema_version() == lite.schema_version()
    finally:
        lite.close()
        pg.close()


def test_a_newer_schema_is_refused(pg_schema_url):
    from engine.state.postgres import MIGRATIONS

    store = open_store(pg_schema_url)
    lineage = store.lineage()
    store.close()
    again = open_store(pg_schema_url)  # reopening migrates nothing and keeps the lineage
    assert again.lineage() == lineage
    again._execute("INSERT INTO schema_version (version, applied_at) VALUES (%s, now())", (len(MIGRATIONS) + 1,))
    again.close()
    with pytest.raises(MigrationError, match=f"version {len(MIGRATIONS) + 1}, newer than this syncform"):
        open_store(pg_schema_url)


def test_everyone_sees_who_holds_the_lock_and_a_stale_row_is_said_to_be_stale(pg_schema_url):
    a, b = open_store(pg_schema_url), open_store(pg_schema_url)
    try:
        held = a.acquire_lock("apply")
        seen = b.lock_info()
        assert (seen.id, seen.who, seen.host, seen.pid, seen.operation) == (
            held.id, held.who, socket.gethostname(), held.pid, "apply")
        assert seen.note == ""
        rows = b._qa("SELECT id, who, host, pid, operation FROM lock")
        assert rows == [(held.id, held.who, held.host, held.pid, "apply")]
        # a row nobody's session backs (written by hand, or left by a holder whose session died)
        a.release_lock(held.id)
        b._execute("INSERT INTO lock (slot, id, who, host, pid, operation, since) "
                   "VALUES (1, 'old', 'ci', 'build-7', 4242, 'apply', now())")
        assert "session is gone" in b.lock_info().note
        got = a.acquire_lock("sync", timeout=0)
        assert "took over lock old left by ci@build-7 (pid 4242" in got.note
        a.release_lock(got.id)
    finally:
        a.close()
        b.close()


def test_a_deadlock_is_a_transient_error_and_rolls_back(pg_schema_url):
    a, b = open_store(pg_schema_url), open_store(pg_schema_url)
    a.set_meta("x", "0")
    a.set_meta("y", "0")
    barrier = threading.Barrier(2, timeout=30)
    outcomes: dict[str, object] = {}

    def run(store, name, first, second):
        try:
            with store.transaction():
                store.set_meta(first, name)
                barrier.wait()
                store.set_meta(second, name)
            outcomes[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - recorded and asserted below
            outcomes[name] = exc

    threads = [threading.Thread(target=run, args=(a, "a", "x", "y")),
               threading.Thread(target=run, args=(b, "b", "y", "x"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        errors = [v for v in outcomes.values() if v != "ok"]
        assert len(errors) == 1 and isinstance(errors[0], TransientStateError), outcomes
        assert "collided" in str(errors[0]) and errors[0].transient
        winner = next(k for k, v in outcomes.items() if v == "ok")
        assert (a.get_meta("x"), a.get_meta("y")) == (winner, winner)  # the loser left nothing behind
        b.set_meta("after", "fine")  # both stores are usable afterwards
        assert a.get_meta("after") == "fine"
    finally:
        a.close()
        b.close()


def test_a_dropped_connection_is_transient_then_reconnects(pg_url, pg_schema_url):
    import psycopg

    store = open_store(pg_schema_url)
    store.set_meta("k", "v")
    backend = store._q1("SELECT pg_backend_pid()")[0]
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
    with pytest.raises(TransientStateError):
        store.get_meta("k")
    assert store.get_meta("k") == "v"  # the next call connects again
    store.close()


def test_sqlite_is_untouched_by_all_this(tmp_path):
    """The SQLite store does not import psycopg (it stays optional for SQLite users)."""
    import subprocess
    import sys

    code = ("import sys; from engine.state import open_store; "
            f"s = open_store('sqlite:///{tmp_path}/s.db'); s.set_meta('a', 'b'); "
            "print('psycopg' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    assert sqlite3.connect(tmp_path / "s.db").execute("SELECT value FROM meta").fetchone() == ("b",)


def test_a_session_holding_the_advisory_lock_without_a_row_is_named(pg_url, pg_schema_url):
    import psycopg

    from engine.errors import LockedError
    from engine.state.postgres import LOCK_KEY

    store = open_store(pg_schema_url)
    with psycopg.connect(pg_url, autocommit=True, application_name="someone-else") as other:
        other.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_KEY, store._key2))
        backend = other.execute("SELECT pg_backend_pid()").fetchone()[0]
        with pytest.raises(LockedError) as err:
            store.acquire_lock("apply", timeout=0.2)
        assert f"database session {backend}" in str(err.value) and '"someone-else"' in str(err.value)
        assert err.value.holder["backend_pid"] == backend and set(err.value.holder) >= {
            "id", "who", "host", "pid", "operation", "since"}
    assert store.acquire_lock("apply", timeout=5).operation == "apply"  # its session ended: free
    store.close()


def test_a_writer_stuck_behind_another_transaction_gives_up_transiently(pg_schema_url):
    a = open_store(pg_schema_url)
    b = open_store(pg_schema_url, busy_timeout=0.3)
    a.set_meta("k", "0")
    try:
        with a.transaction():
            a.set_meta("k", "a")  # holds the row until the block ends
            with pytest.raises(TransientStateError, match="lock timeout|canceling statement"):
                b.set_meta("k", "b")
        assert b.get_meta("k") == "a"
        b.set_meta("k", "b")
        assert a.get_meta("k") == "b"
    finally:
        a.close()
        b.close()


def test_without_psycopg_the_error_says_what_to_install():
    import subprocess
    import sys

    code = ("import sys; sys.modules['psycopg'] = None\n"
            "from engine.state import open_store\n"
            "from engine.errors import StateError\n"
            "try:\n    open_store('postgresql://ci:hunter2@127.0.0.1:1/state')\n"
            "except StateError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'syncform[postgres]'" in out and "hunter2" not in out
