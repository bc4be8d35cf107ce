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
