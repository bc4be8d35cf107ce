"""The SQLite state store: one file (default ``.syncform/state.db``), WAL, versioned migrations.

- The file is created with owner-only permissions (0600), its directory 0700 when syncform creates
  it (or when it is the ``.syncform`` directory): the state names integrations, record ids and the
  last synced values of records, which are a customer's data.
- Migrations: ``schema_version`` holds the versions applied; each entry of ``MIGRATIONS`` runs once, in
  order, in its own transaction. A database written by a newer syncform raises ``MigrationError``
  instead of being half-understood.
- ``transaction()`` opens ``BEGIN IMMEDIATE`` (the write lock is taken up front, so two writers never
  deadlock on an upgrade); nested ``transaction()`` calls join the outer one; the serial is bumped at
  most once per outer transaction that changed deployed state.
- The operation lock is a row (id, who, host, pid, operation, since) taken with ``BEGIN IMMEDIATE``,
  so two processes cannot both see it free. A holder that is a dead process on this same host is
  taken over (the new ``LockInfo.note`` says so); otherwise the caller waits a bounded time and gets
  ``LockedError`` naming the holder, its operation and since when.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.errors import LockedError, MigrationError, StateError
from engine.state.base import Deployed, Failure, JournalEntry, Link, LockInfo, RunRecord
from engine.state.core import decode_bases, decode_json, encode_bases, encode_journal, encode_json

BUSY_TIMEOUT_MS = 5000
_CHUNK = 500  # ids per IN (...) query, below SQLite's variable limit

MIGRATIONS: tuple[str, ...] = (
    # 1: the initial schema
    """
    CREATE TABLE store_info (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        lineage TEXT NOT NULL,
        serial INTEGER NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE deployed (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        spec_hash TEXT NOT NULL,
        paused INTEGER NOT NULL DEFAULT 0,
        applied_at TEXT
    );
    CREATE TABLE applies (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        who TEXT NOT NULL,
        spec_hash TEXT NOT NULL,
        git_commit TEXT,
        serial INTEGER NOT NULL,
        summary TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE lock (
        slot INTEGER PRIMARY KEY CHECK (slot = 1),
        id TEXT NOT NULL,
        who TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        operation TEXT NOT NULL,
        since TEXT NOT NULL
    );
    CREATE TABLE links (
        integration TEXT NOT NULL,
        module TEXT NOT NULL,
        left_id TEXT NOT NULL,
        right_id TEXT NOT NULL,
        left_values TEXT NOT NULL DEFAULT '{}',
        right_values TEXT NOT NULL DEFAULT '{}',
        left_hash TEXT NOT NULL DEFAULT '',
        right_hash TEXT NOT NULL DEFAULT '',
        synced_at TEXT,
        PRIMARY KEY (integration, module, left_id),
        UNIQUE (integration, module, right_id)
    );
    CREATE TABLE cursors (
        integration TEXT NOT NULL,
        module TEXT NOT NULL,
        side TEXT NOT NULL,
        kind TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (integration, module, side, kind)
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        integration TEXT NOT NULL,
        module TEXT NOT NULL,
        direction TEXT NOT NULL,
        started TEXT NOT NULL,
        ended TEXT,
        created INTEGER NOT NULL DEFAULT 0,
        updated INTEGER NOT NULL DEFAULT 0,
        deleted INTEGER NOT NULL DEFAULT 0,
        linked INTEGER NOT NULL DEFAULT 0,
        conflicts INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        api_calls INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'running',
        message TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX runs_by_integration ON runs (integration, started);
    CREATE TABLE failures (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        integration TEXT NOT NULL,
        module TEXT NOT NULL,
        side TEXT NOT NULL,
        record_id TEXT NOT NULL,
        code TEXT NOT NULL,
        message TEXT NOT NULL,
        app_code TEXT NOT NULL DEFAULT '',
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 1,
        resolved INTEGER NOT NULL DEFAULT 0,
        UNIQUE (integration, module, side, record_id, code)
    );
    CREATE TABLE journal (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        integration TEXT NOT NULL,
        module TEXT NOT NULL,
        target TEXT NOT NULL,
        operation TEXT NOT NULL,
        payload TEXT NOT NULL,
        created TEXT NOT NULL
    );
    CREATE INDEX journal_by_module ON journal (integration, module);
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _ts(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).isoformat(timespec="microseconds")


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _json(value: Any) -> str:
    return encode_json(value)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _whoami() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): the uid is still a name
        return f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def _prepare_file(path: Path) -> None:
    """Create the directory (0700) and the empty database file (0600) before SQLite opens it."""
    parent = path.parent
    if not parent.exists():
        parent.mkdir(parents=True, mode=0o700)
        os.chmod(parent, 0o700)  # mkdir's mode is filtered by the umask
    elif parent.name == ".syncform":
        try:
            os.chmod(parent, 0o700)
        except OSError:
            pass
    if not path.exists():
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            os.close(fd)
        except FileExistsError:
            pass
    try:
        os.chmod(path, 0o600)
    except OSError:
        pass


class SQLiteStore:
    """``StateStore`` on one SQLite file. Thread-safe: one connection guarded by a re-entrant lock."""

    def __init__(self, path: str | os.PathLike[str], *, url: str | None = None,
                 clock: Callable[[], datetime] | None = None):
        self.path = str(path)
        self.url = url or f"sqlite:///{self.path}"
        self._clock = clock or _utcnow
        self._mutex = threading.RLock()
        self._depth = 0
        self._bump_pending = False
        memory = self.path == ":memory:"
        if not memory:
            _prepare_file(Path(self.path))
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                       timeout=BUSY_TIMEOUT_MS / 1000)
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if not memory:
                self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{self.path}: not a syncform state database ({exc})") from None
        self._migrate()

    # --- lifecycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        with self._mutex:
            try:
                self._db.close()
            except sqlite3.Error:
                pass

    def __enter__(self) -> "SQLiteStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        known = len(MIGRATIONS)
        with self.transaction():
            self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                             "applied_at TEXT NOT NULL)")
            row = self._db.execute("SELECT MAX(version) FROM schema_version").fetchone()
            current = row[0] or 0
            if current > known:
                raise MigrationError(
                    f"{self.path}: the state schema is version {current}, newer than this syncform knows "
                    f"(up to {known}); upgrade syncform to use this state")
            for version in range(current + 1, known + 1):
                # executescript would COMMIT our transaction: run the statements one by one instead
                for statement in MIGRATIONS[version - 1].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                if version == 1:
                    self._db.execute("INSERT INTO store_info (id, lineage, serial, created_at) VALUES (1, ?, 0, ?)",
                                     (str(uuid.uuid4()), _ts(self._clock())))
                self._db.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                                 (version, _ts(self._clock())))

    def schema_version(self) -> int:
        return self._q1("SELECT MAX(version) FROM schema_version")[0]

    def integrity_check(self) -> str:
        """``"ok"`` when SQLite finds the file sound, else its first complaint."""
        return self._q1("PRAGMA integrity_check")[0]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._mutex:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StateError(f"state {self.path} is busy ({exc}); another syncform is writing it, "
                                 "try again") from None
            self._depth = 1
            self._bump_pending = False
            try:
                yield
                if self._bump_pending:
                    self._db.execute("UPDATE store_info SET serial = serial + 1 WHERE id = 1")
                self._db.execute("COMMIT")
            except BaseException:
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise
            finally:
                self._depth = 0
                self._bump_pending = False

    def _q1(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        with self._mutex:
            return self._db.execute(sql, args).fetchone()

    def _qa(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[Any]:
        with self._mutex:
            return self._db.execute(sql, args).fetchall()

    def lineage(self) -> str:
        return self._q1("SELECT lineage FROM store_info WHERE id = 1")[0]

    def serial(self) -> int:
        return self._q1("SELECT serial FROM store_info WHERE id = 1")[0]

    # --- deployed integrations ----------------------------------------------------------------------
    @staticmethod
    def _deployed(row: Any) -> Deployed:
        return Deployed(name=row[0], spec=json.loads(row[1]), spec_hash=row[2], paused=bool(row[3]),
                        applied_at=_dt(row[4]))

    def list_deployed(self) -> list[Deployed]:
        rows = self._qa("SELECT name, spec, spec_hash, paused, applied_at FROM deployed ORDER BY name")
        return [self._deployed(r) for r in rows]

    def get_deployed(self, name: str) -> Deployed | None:
        row = self._q1("SELECT name, spec, spec_hash, paused, applied_at FROM deployed WHERE name = ?", (name,))
        return self._deployed(row) if row else None

    def put_deployed(self, deployed: Deployed) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO deployed (name, spec, spec_hash, paused, applied_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, spec_hash = excluded.spec_hash, "
                "paused = excluded.paused, applied_at = excluded.applied_at",
                (deployed.name, _json(dict(deployed.spec)), deployed.spec_hash, int(deployed.paused),
                 _ts(deployed.applied_at or self._clock())))
            self._bump_pending = True

    def remove_deployed(self, name: str) -> None:
        with self.transaction():
            for table in ("deployed",):
                self._db.execute(f"DELETE FROM {table} WHERE name = ?", (name,))
            for table in ("links", "cursors", "journal", "failures"):
                self._db.execute(f"DELETE FROM {table} WHERE integration = ?", (name,))
            self._bump_pending = True

    def set_paused(self, name: str, paused: bool) -> None:
        with self.transaction():
            cur = self._db.execute("UPDATE deployed SET paused = ? WHERE name = ?", (int(paused), name))
            if cur.rowcount == 0:
                raise StateError(f'integration "{name}" is not deployed'
                                 f"{_did_you_mean(name, [d.name for d in self.list_deployed()])}")
            self._bump_pending = True

    def record_apply(self, *, who: str, spec_hash: str, commit: str | None, summary: str) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO applies (at, who, spec_hash, git_commit, serial, summary) "
                "VALUES (?, ?, ?, ?, (SELECT serial FROM store_info WHERE id = 1) + ?, ?)",
                (_ts(self._clock()), who, spec_hash, commit, int(self._bump_pending), summary))

    def apply_history(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._qa("SELECT id, at, who, spec_hash, git_commit, serial, summary FROM applies "
                        "ORDER BY id DESC LIMIT ?", (limit,))
        return [{"id": r[0], "at": _dt(r[1]), "who": r[2], "spec_hash": r[3], "commit": r[4],
                 "serial": r[5], "summary": r[6]} for r in rows]

    # --- lock ----------------------------------------------------------------------------------------
    @staticmethod
    def _lockinfo(row: Any, note: str = "") -> LockInfo:
        return LockInfo(id=row[0], who=row[1], host=row[2], pid=row[3], operation=row[4],
                        since=_dt(row[5]), note=note)

    def lock_info(self) -> LockInfo | None:
        row = self._q1("SELECT id, who, host, pid, operation, since FROM lock WHERE slot = 1")
        return self._lockinfo(row) if row else None

    def acquire_lock(self, operation: str, *, timeout: float = 10.0) -> LockInfo:
        host = socket.gethostname()
        deadline = time.monotonic() + max(0.0, timeout)
        delay = 0.05
        while True:
            with self.transaction():
                row = self._db.execute("SELECT id, who, host, pid, operation, since FROM lock WHERE slot = 1").fetchone()
                note = ""
                if row is not None and row[2] == host and not _pid_alive(row[3]):
                    held = self._lockinfo(row)
                    note = (f"took over lock {held.id} left by {held.who}@{held.host} (pid {held.pid}, "
                            f'"{held.operation}" since {_ts(held.since)}): that process is gone')
                    self._db.execute("DELETE FROM lock WHERE slot = 1")
                    row = None
                if row is None:
                    info = LockInfo(id=str(uuid.uuid4()), who=_whoami(), host=host, pid=os.getpid(),
                                    operation=operation, since=self._clock(), note=note)
                    self._db.execute("INSERT INTO lock (slot, id, who, host, pid, operation, since) "
                                     "VALUES (1, ?, ?, ?, ?, ?, ?)",
                                     (info.id, info.who, info.host, info.pid, info.operation, _ts(info.since)))
                    return info
                holder = self._lockinfo(row)
            now = time.monotonic()
            if now >= deadline:
                raise LockedError(
                    f'state is locked by {holder.who}@{holder.host} (pid {holder.pid}) running '
                    f'"{holder.operation}" since {_ts(holder.since)} (lock id {holder.id}); waited '
                    f"{timeout:g}s. Try again when it is done; if that process is gone for good, "
                    f'run "syncform state unlock {holder.id}"',
                    holder={"id": holder.id, "who": holder.who, "host": holder.host, "pid": holder.pid,
                            "operation": holder.operation, "since": _ts(holder.since)})
            time.sleep(min(delay, deadline - now))
            delay = min(delay * 2, 0.5)

    def release_lock(self, lock_id: str) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM lock WHERE slot = 1 AND id = ?", (lock_id,))

    def force_unlock(self, lock_id: str) -> None:
        with self.transaction():
            row = self._db.execute("SELECT id, who, host, pid, operation, since FROM lock WHERE slot = 1").fetchone()
            if row is None:
                raise StateError(f"state is not locked; nothing to unlock (asked for lock {lock_id})")
            if row[0] != lock_id:
                holder = self._lockinfo(row)
                raise StateError(f"lock {lock_id} is not the current lock; the state is locked by "
                                 f'{holder.who}@{holder.host} (pid {holder.pid}, "{holder.operation}") '
                                 f"with lock id {holder.id}")
            self._db.execute("DELETE FROM lock WHERE slot = 1")

    # --- links -----------------------------------------------------------------------------------------
    _LINK_COLS = "left_id, right_id, left_values, right_values, left_hash, right_hash, synced_at"

    @staticmethod
    def _link(row: Any) -> Link:
        left, right = decode_bases(row[2], row[3])
        return Link(row[0], row[1], left, right, row[4], row[5], _dt(row[6]))

    def get_link(self, integration: str, module: str, *, left_id: str | None = None,
                 right_id: str | None = None) -> Link | None:
        if (left_id is None) == (right_id is None):
            raise ValueError("get_link: give exactly one of left_id, right_id")
        column, value = ("left_id", left_id) if left_id is not None else ("right_id", right_id)
        row = self._q1(f"SELECT {self._LINK_COLS} FROM links WHERE integration = ? AND module = ? AND {column} = ?",
                       (integration, module, value))
        return self._link(row) if row else None

    def get_links(self, integration: str, module: str, *, side: str, ids: Iterable[str]) -> dict[str, Link]:
        column = _side_column(side)
        wanted = list(dict.fromkeys(ids))
        found: dict[str, Link] = {}
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i:i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for row in self._qa(f"SELECT {self._LINK_COLS} FROM links WHERE integration = ? AND module = ? "
                                f"AND {column} IN ({marks})", [integration, module, *chunk]):
                link = self._link(row)
                found[link.left_id if side == "left" else link.right_id] = link
        return found

    def iter_links(self, integration: str, module: str) -> Iterator[Link]:
        rows = self._qa(f"SELECT {self._LINK_COLS} FROM links WHERE integration = ? AND module = ? "
                        "ORDER BY left_id", (integration, module))
        return iter([self._link(r) for r in rows])

    def count_links(self, integration: str, module: str) -> int:
        return self._q1("SELECT COUNT(*) FROM links WHERE integration = ? AND module = ?", (integration, module))[0]

    def put_links(self, integration: str, module: str, links: Iterable[Link]) -> None:
        """Upsert. A link replaces any link of the same left id *or* the same right id (a relink)."""
        rows = []
        append = rows.append
        now = last = stamp = None
        for ln in links:
            left, right = encode_bases(ln.left_values, ln.right_values)
            at = ln.synced_at
            if at is None:
                at = now = now or self._clock()
            if at is not last:  # a batch's links share their time: format it once
                last, stamp = at, _ts(at)
            append((integration, module, ln.left_id, ln.right_id, left, right, ln.left_hash, ln.right_hash, stamp))
        if not rows:
            return
        with self.transaction():
            self._db.executemany(
                f"INSERT OR REPLACE INTO links (integration, module, {self._LINK_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows)

    def delete_links(self, integration: str, module: str, *, side: str, ids: Iterable[str]) -> None:
        column = _side_column(side)
        wanted = list(ids)
        with self.transaction():
            for i in range(0, len(wanted), _CHUNK):
                chunk = wanted[i:i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                self._db.execute(f"DELETE FROM links WHERE integration = ? AND module = ? AND {column} IN ({marks})",
                                 [integration, module, *chunk])

    def forget_module(self, integration: str, module: str) -> None:
        with self.transaction():
            for table in ("links", "cursors", "journal"):
                self._db.execute(f"DELETE FROM {table} WHERE integration = ? AND module = ?", (integration, module))

    # --- cursors -------------------------------------------------------------------------------------
    def get_cursor(self, integration: str, module: str, side: str, kind: str = "changed") -> str | None:
        row = self._q1("SELECT value FROM cursors WHERE integration = ? AND module = ? AND side = ? AND kind = ?",
                       (integration, module, side, kind))
        return row[0] if row else None

    def set_cursor(self, integration: str, module: str, side: str, value: str, kind: str = "changed") -> None:
        _side_column(side)
        with self.transaction():
            self._db.execute("INSERT INTO cursors (integration, module, side, kind, value) VALUES (?, ?, ?, ?, ?) "
                             "ON CONFLICT (integration, module, side, kind) DO UPDATE SET value = excluded.value",
                             (integration, module, side, kind, value))

    # --- history and failures ------------------------------------------------------------------------
    _RUN_COLS = ("id, integration, module, direction, started, ended, created, updated, deleted, linked, "
                 "conflicts, failed, api_calls, status, message")

    @staticmethod
    def _run(row: Any) -> RunRecord:
        return RunRecord(id=row[0], integration=row[1], module=row[2], direction=row[3], started=_dt(row[4]),
                         ended=_dt(row[5]), created=row[6], updated=row[7], deleted=row[8], linked=row[9],
                         conflicts=row[10], failed=row[11], api_calls=row[12], status=row[13], message=row[14])

    def start_run(self, run: RunRecord) -> int:
        with self.transaction():
            cur = self._db.execute(
                "INSERT INTO runs (integration, module, direction, started, ended, created, updated, deleted, "
                "linked, conflicts, failed, api_calls, status, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run.integration, run.module, run.direction, _ts(run.started), _ts(run.ended), run.created,
                 run.updated, run.deleted, run.linked, run.conflicts, run.failed, run.api_calls,
                 "running" if run.status == "ok" and run.ended is None else run.status, run.message))
            return int(cur.lastrowid)

    def finish_run(self, run: RunRecord) -> None:
        if run.id is None:
            raise ValueError("finish_run: the run has no id (start_run returns it)")
        with self.transaction():
            self._db.execute(
                "UPDATE runs SET ended = ?, created = ?, updated = ?, deleted = ?, linked = ?, conflicts = ?, "
                "failed = ?, api_calls = ?, status = ?, message = ? WHERE id = ?",
                (_ts(run.ended or self._clock()), run.created, run.updated, run.deleted, run.linked, run.conflicts,
                 run.failed, run.api_calls, run.status, run.message, run.id))

    def list_runs(self, integration: str | None = None, *, since: datetime | None = None) -> list[RunRecord]:
        sql, args = f"SELECT {self._RUN_COLS} FROM runs WHERE 1 = 1", []
        if integration is not None:
            sql += " AND integration = ?"
            args.append(integration)
        if since is not None:
            sql += " AND started >= ?"
            args.append(_ts(since))
        return [self._run(r) for r in self._qa(sql + " ORDER BY started DESC, id DESC", args)]

    def prune_runs(self, before: datetime) -> int:
        with self.transaction():
            return self._db.execute("DELETE FROM runs WHERE started < ?", (_ts(before),)).rowcount

    _FAIL_COLS = ("id, integration, module, side, record_id, code, message, app_code, first_seen, last_seen, "
                  "attempts, resolved")

    @staticmethod
    def _failure(row: Any) -> Failure:
        return Failure(id=row[0], integration=row[1], module=row[2], side=row[3], record_id=row[4], code=row[5],
                       message=row[6], app_code=row[7], first_seen=_dt(row[8]), last_seen=_dt(row[9]),
                       attempts=row[10], resolved=bool(row[11]))

    def add_failure(self, failure: Failure) -> None:
        _side_column(failure.side)
        now = failure.last_seen or failure.first_seen or self._clock()
        with self.transaction():
            self._db.execute(
                "INSERT INTO failures (integration, module, side, record_id, code, message, app_code, first_seen, "
                "last_seen, attempts, resolved) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0) "
                "ON CONFLICT (integration, module, side, record_id, code) DO UPDATE SET "
                "attempts = failures.attempts + 1, last_seen = excluded.last_seen, message = excluded.message, "
                "app_code = excluded.app_code, resolved = 0",
                (failure.integration, failure.module, failure.side, failure.record_id, failure.code, failure.message,
                 failure.app_code, _ts(failure.first_seen or now), _ts(now), max(1, failure.attempts)))

    def list_failures(self, integration: str | None = None, *, include_resolved: bool = False) -> list[Failure]:
        sql, args = f"SELECT {self._FAIL_COLS} FROM failures WHERE 1 = 1", []
        if integration is not None:
            sql += " AND integration = ?"
            args.append(integration)
        if not include_resolved:
            sql += " AND resolved = 0"
        return [self._failure(r) for r in self._qa(sql + " ORDER BY last_seen DESC, id DESC", args)]

    def resolve_failures(self, integration: str, module: str, side: str, record_ids: Iterable[str]) -> None:
        wanted = list(record_ids)
        with self.transaction():
            for i in range(0, len(wanted), _CHUNK):
                chunk = wanted[i:i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                self._db.execute(f"UPDATE failures SET resolved = 1 WHERE integration = ? AND module = ? AND side = ? "
                                 f"AND record_id IN ({marks})", [integration, module, side, *chunk])

    # --- journal -------------------------------------------------------------------------------------
    def journal_add(self, entry: JournalEntry) -> int:
        with self.transaction():
            cur = self._db.execute(
                "INSERT INTO journal (integration, module, target, operation, payload, created) VALUES (?, ?, ?, ?, ?, ?)",
                (entry.integration, entry.module, entry.target, entry.operation,
                 encode_journal(entry.payload), _ts(entry.created or self._clock())))
            return int(cur.lastrowid)

    def journal_add_many(self, entries: Iterable[JournalEntry]) -> list[int]:
        with self.transaction():
            return [self.journal_add(e) for e in entries]

    def journal_done(self, entry_id: int) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM journal WHERE id = ?", (entry_id,))

    def journal_pending(self, integration: str, module: str | None = None) -> list[JournalEntry]:
        sql, args = ("SELECT id, integration, module, target, operation, payload, created FROM journal "
                     "WHERE integration = ?"), [integration]
        if module is not None:
            sql += " AND module = ?"
            args.append(module)
        return [JournalEntry(id=r[0], integration=r[1], module=r[2], target=r[3], operation=r[4],
                             payload=tuple(decode_json(r[5])), created=_dt(r[6]))
                for r in self._qa(sql + " ORDER BY id", args)]

    # --- meta ----------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._q1("SELECT value FROM meta WHERE key = ?", (key,))
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                             "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))


def _side_column(side: str) -> str:
    if side not in ("left", "right"):
        raise ValueError(f'side must be "left" or "right", not "{side}"')
    return f"{side}_id"


def _did_you_mean(name: str, choices: list[str]) -> str:
    from engine.errors import did_you_mean

    return did_you_mean(name, choices)
