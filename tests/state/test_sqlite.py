"""What is specific to the SQLite store: the file, its permissions, migrations, URLs, processes."""

from __future__ import annotations

import os
import socket
import sqlite3
import stat
import subprocess
import sys
import textwrap

import pytest

from engine.errors import LockedError, MigrationError, StateError
from engine.state import open_store
from engine.state.base import JournalEntry, Link
from engine.state.sqlite import MIGRATIONS, SQLiteStore


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_file_is_owner_only_and_wal(tmp_path):
    store = open_store("sqlite:///.syncform/state.db", base=tmp_path)
    db = tmp_path / ".syncform" / "state.db"
    assert _mode(db) == 0o600
    assert _mode(db.parent) == 0o700
    assert store._q1("PRAGMA journal_mode")[0] == "wal"
    assert store.integrity_check() == "ok"
    store.close()


def test_absolute_and_relative_urls(tmp_path, monkeypatch):
    absolute = tmp_path / "abs" / "s.db"
    open_store(f"sqlite:///{absolute}").close()  # sqlite:////tmp/... (four slashes)
    assert absolute.exists()
    monkeypatch.chdir(tmp_path)
    open_store("sqlite:///rel/s.db").close()
    assert (tmp_path / "rel" / "s.db").exists()


@pytest.mark.parametrize("url, expected", [
    ("mysql://db/state", 'unsupported state URL scheme "mysql"; supported: postgres://, postgresql://, sqlite://'),
    ("postgresql://db/state?schema=no-such!", 'schema "no-such!" is not a plain identifier'),
    (".syncform/state.db", "has no scheme"),
    ("sqlite://relative.db", "expected sqlite:///relative/path.db"),
])
def test_bad_urls_say_what_is_supported(url, expected):
    with pytest.raises(StateError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        open_store(url)


def test_a_file_that_is_not_a_database_is_refused(tmp_path):
    bad = tmp_path / "state.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError, match="not a syncform state database"):
        SQLiteStore(bad)


def test_migrations_run_once_and_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    lineage = store.lineage()
    assert store.schema_version() == len(MIGRATIONS)
    store.close()
    store = SQLiteStore(path)  # reopening migrates nothing and keeps the lineage
    assert store.lineage() == lineage
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, 'x')", (len(MIGRATIONS) + 1,))
    with pytest.raises(MigrationError, match=f"version {len(MIGRATIONS) + 1}, newer than this syncform"):
        SQLiteStore(path)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_dead_holder_on_this_host_is_taken_over_and_said_so(tmp_path):
    store = SQLiteStore(tmp_path / "s.db")
    pid = _dead_pid()
    with store.transaction():
        store._db.execute("INSERT INTO lock (slot, id, who, host, pid, operation, since) VALUES "
                          "(1, 'old-lock', 'ci', ?, ?, 'apply', '2026-01-01T00:00:00+00:00')",
                          (socket.gethostname(), pid))
    got = store.acquire_lock("reconcile", timeout=0)
    assert got.id != "old-lock" and got.pid == os.getpid()
    assert "took over lock old-lock" in got.note and f"pid {pid}" in got.note and "gone" in got.note


def test_a_holder_on_another_host_is_never_taken_over(tmp_path):
    store = SQLiteStore(tmp_path / "s.db")
    with store.transaction():
        store._db.execute("INSERT INTO lock (slot, id, who, host, pid, operation, since) VALUES "
                          "(1, 'remote', 'ci', 'build-7', ?, 'apply', '2026-01-01T00:00:00+00:00')",
                          (_dead_pid(),))
    with pytest.raises(LockedError, match="ci@build-7"):
        store.acquire_lock("apply", timeout=0)


def test_another_process_waits_for_the_lock_then_gets_it(tmp_path):
    """A second process waits while the first holds the lock, and gets it once released."""
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    held = store.acquire_lock("apply")
    script = textwrap.dedent(f"""
        import sys
        from engine.state.sqlite import SQLiteStore
        from engine.errors import LockedError
        s = SQLiteStore({str(path)!r})
        try:
            s.acquire_lock("apply", timeout=0.2)
            print("GOT-EARLY")
        except LockedError as e:
            print("LOCKED", e.holder["id"])
        sys.stdout.flush()
        sys.stdin.readline()              # the parent releases, then says go
        info = s.acquire_lock("apply", timeout=30)
        print("GOT", info.operation)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    first = proc.stdout.readline().split()
    assert first == ["LOCKED", held.id]
    store.release_lock(held.id)
    out, _ = proc.communicate("go\n", timeout=60)
    assert out.strip() == "GOT apply"
    assert proc.returncode == 0


# A version-1 state as the previous syncform wrote it (its DDL and its rows, typed in here so that a
# change of engine.state.core.SCHEMA cannot silently change what "the previous version" means).
_V1_DDL = """
CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);
CREATE TABLE store_info (id INTEGER PRIMARY KEY CHECK (id = 1), lineage TEXT NOT NULL, serial INTEGER NOT NULL,
    created_at TEXT NOT NULL);
CREATE TABLE deployed (name TEXT PRIMARY KEY, spec TEXT NOT NULL, spec_hash TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0, applied_at TEXT);
CREATE TABLE applies (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, who TEXT NOT NULL,
    spec_hash TEXT NOT NULL, git_commit TEXT, serial INTEGER NOT NULL, summary TEXT NOT NULL DEFAULT '');
CREATE TABLE lock (slot INTEGER PRIMARY KEY CHECK (slot = 1), id TEXT NOT NULL, who TEXT NOT NULL,
    host TEXT NOT NULL, pid INTEGER NOT NULL, operation TEXT NOT NULL, since TEXT NOT NULL);
CREATE TABLE links (integration TEXT NOT NULL, module TEXT NOT NULL, left_id TEXT NOT NULL, right_id TEXT NOT NULL,
    left_values TEXT NOT NULL DEFAULT '{}', right_values TEXT NOT NULL DEFAULT '{}',
    left_hash TEXT NOT NULL DEFAULT '', right_hash TEXT NOT NULL DEFAULT '', synced_at TEXT,
    PRIMARY KEY (integration, module, left_id), UNIQUE (integration, module, right_id));
CREATE TABLE cursors (integration TEXT NOT NULL, module TEXT NOT NULL, side TEXT NOT NULL, kind TEXT NOT NULL,
    value TEXT NOT NULL, PRIMARY KEY (integration, module, side, kind));
CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, integration TEXT NOT NULL, module TEXT NOT NULL,
    direction TEXT NOT NULL, started TEXT NOT NULL, ended TEXT, created INTEGER NOT NULL DEFAULT 0,
    updated INTEGER NOT NULL DEFAULT 0, deleted INTEGER NOT NULL DEFAULT 0, linked INTEGER NOT NULL DEFAULT 0,
    conflicts INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0, api_calls INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'running', message TEXT NOT NULL DEFAULT '');
CREATE INDEX runs_by_integration ON runs (integration, started);
CREATE TABLE failures (id INTEGER PRIMARY KEY AUTOINCREMENT, integration TEXT NOT NULL, module TEXT NOT NULL,
    side TEXT NOT NULL, record_id TEXT NOT NULL, code TEXT NOT NULL, message TEXT NOT NULL,
    app_code TEXT NOT NULL DEFAULT '', first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1, resolved INTEGER NOT NULL DEFAULT 0,
    UNIQUE (integration, module, side, record_id, code));
CREATE TABLE journal (id INTEGER PRIMARY KEY AUTOINCREMENT, integration TEXT NOT NULL, module TEXT NOT NULL,
    target TEXT NOT NULL, operation TEXT NOT NULL, payload TEXT NOT NULL, created TEXT NOT NULL);
CREATE INDEX journal_by_module ON journal (integration, module);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO schema_version VALUES (1, '2026-01-02T03:04:05.000000+00:00');
INSERT INTO store_info VALUES (1, 'lineage-of-v1', 4, '2026-01-02T03:04:05.000000+00:00');
INSERT INTO deployed VALUES ('crm', '{"modules":[{"name":"contacts"}],"name":"crm"}', 'h1', 1,
    '2026-01-02T03:04:05.000000+00:00');
INSERT INTO links VALUES ('crm', 'contacts', 'l1', 'r1', '{"Email":"a@x.io","n":1}', '{"Email":"a@x.io","n":1.0}',
    'lh', 'rh', '2026-01-02T03:04:05.000000+00:00');
INSERT INTO links VALUES ('crm', 'contacts', 'l2', 'r2', '{"Email": "b@x.io"}', ' {"Email": "b@x.io"} ', '', '',
    '2026-01-02T03:04:05.000000+00:00');
INSERT INTO journal VALUES (7, 'crm', 'contacts', 'right', 'create',
    '[{"keys":[["Email","c@x.io"]],"source_id":"l3","values":{"Email":"c@x.io"}}]', '2026-01-02T03:04:05.000000+00:00');
INSERT INTO failures VALUES (3, 'crm', 'contacts', 'left', 'l9', 'INVALID_VALUE', 'bad', '',
    '2026-01-02T03:04:05.000000+00:00', '2026-01-02T03:04:05.000000+00:00', 2, 0);
"""


def test_a_state_written_by_the_previous_version_opens_and_keeps_working(tmp_path):
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:
        db.executescript(_V1_DDL)
    store = SQLiteStore(path)
    assert (store.lineage(), store.serial(), store.schema_version()) == ("lineage-of-v1", 4, len(MIGRATIONS))
    assert store.get_deployed("crm").paused is True
    links = store.get_links("crm", "contacts", side="left", ids=["l1", "l2"])
    assert links["l1"].right_values == {"Email": "a@x.io", "n": 1.0} and type(links["l1"].right_values["n"]) is float
    assert links["l2"].left_values == links["l2"].right_values == {"Email": "b@x.io"}  # spaced JSON reads too
    assert [e.payload[0]["source_id"] for e in store.journal_pending("crm")] == ["l3"]
    assert [(f.record_id, f.attempts) for f in store.list_failures("crm")] == [("l9", 2)]
    store.put_links("crm", "contacts", [Link("l1", "r9", {"Email": "a@x.io"}, {"Email": "a@x.io"})])  # a relink
    assert store.get_link("crm", "contacts", right_id="r1") is None
    assert store.journal_add_many([JournalEntry(None, "crm", "contacts", "right", "update", ())]) == [8]
    store.close()
    assert SQLiteStore(path).count_links("crm", "contacts") == 2
