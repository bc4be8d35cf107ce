"""The SQLite state store: one file (default ``.syncform/state.db``), WAL, versioned migrations.

- The file is created with owner-only permissions (0600), its directory 0700 when syncform creates
  it (or when it is the ``.syncform`` directory): the state names integrations, record ids and the
  last synced values of records, which are a customer's data.
- Migrations: ``schema_version`` holds the versions applied; each entry of ``MIGRATIONS``
  (``engine.state.core.SCHEMA`` in SQLite's types) runs once, in order, in one transaction. A database written by a newer syncform raises ``MigrationError``
  instead of being half-understood.
- ``transaction()`` opens ``BEGIN IMMEDIATE`` (the write lock is taken up front, so two writers never
  deadlock on an upgrade); nested ``transaction()`` calls join the outer one; the serial is bumped at
  most once per outer transaction that changed deployed state.
- The SQL both stores share is ``engine.state.core.SQLStore``'s; this module keeps the file, the
  connection, the operation lock and the link upsert.
- The operation lock is a row (id, who, host, pid, operation, since) taken with ``BEGIN IMMEDIATE``,
  so two processes cannot both see it free. A holder that is a dead process on this same host is
  taken over (the new ``LockInfo.note`` says so); otherwise the caller waits a bounded time and gets
  ``LockedError`` naming the holder, its operation and since when.
"""

from __future__ import annotations

import getpass
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from itertools import chain, islice
from pathlib import Path
from typing import Any

from engine.errors import StateError
from engine.state.base import Link, LinkRow, LockInfo
from engine.state.core import LINK_COLS, LOCK_SELECT, SQLStore, encode_bases, iso, migrations, utcnow

BUSY_TIMEOUT_MS = 5000
_CHUNK = 500  # ids per IN (...) query, below SQLite's variable limit

MIGRATIONS: tuple[str, ...] = migrations("sqlite")  # engine.state.core.SCHEMA in SQLite's types

# rows per statement of ``insert_rows``: rows of up to 19 parameters stay under the 999 of SQLite before 3.32
ROWS_PER_INSERT = 50
_MANY: dict[str, str] = {}


def insert_rows(db: sqlite3.Connection, sql: str, rows: Iterable[Sequence[Any]]) -> None:
    """``db.executemany(sql, rows)`` for ``sql`` an ``INSERT ... VALUES (?, ...)`` of one row, as
    statements of ``ROWS_PER_INSERT`` rows each, the rest one by one: one statement per row, as
    ``executemany`` runs them, costs ~1 µs more a row (binding, stepping and resetting each). Rows go in
    order, taken from ``rows`` as they come (an ``OR REPLACE`` row still replaces the rows before it)."""
    many = _MANY.get(sql)
    if many is None:
        head, _, one = sql.rpartition(" VALUES ")
        many = _MANY[sql] = f"{head} VALUES " + ", ".join([one] * ROWS_PER_INSERT)
    it = iter(rows)
    execute = db.execute
    while True:
        chunk = list(islice(it, ROWS_PER_INSERT))
        if len(chunk) < ROWS_PER_INSERT:
            if chunk:
                db.executemany(sql, chunk)
            return
        execute(many, list(chain.from_iterable(chunk)))


def _ts(dt: datetime | None) -> str | None:
    return None if dt is None else iso(dt)


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


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
        # exist_ok: another syncform process (a second apply, the sandbox's data directory) may create
        # it between the check and here
        parent.mkdir(parents=True, mode=0o700, exist_ok=True)
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


def _wal(db: sqlite3.Connection) -> None:
    """Switch a state file to WAL. A second syncform process creating the same new state at the same
    moment holds the lock this needs, and SQLite answers 'database is locked' here without waiting for
    the busy timeout: wait for it, up to that timeout, instead of failing the command."""
    import time

    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class SQLiteStore(SQLStore):
    """``StateStore`` on one SQLite file. Thread-safe: one connection guarded by a re-entrant lock."""

    DIALECT = "sqlite"
    MIGRATIONS = MIGRATIONS

    def __init__(self, path: str | os.PathLike[str], *, url: str | None = None,
                 clock: Callable[[], datetime] | None = None):
        self.path = str(path)
        self.url = url or f"sqlite:///{self.path}"
        self._clock = clock or utcnow
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
                _wal(self._db)
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{self.path}: not a syncform state database ({exc})") from None
        self._migrate()

    # --- the dialect (see engine.state.core.SQLStore) ------------------------------------------------
    @property
    def _where(self) -> str:
        return self.path

    def _x(self, sql: str, args: Any = (), *, doing: str = "") -> Any:
        return self._db.execute(sql, args)

    def _q1(self, sql: str, args: Any = ()) -> Any:
        with self._mutex:
            return self._db.execute(sql, args).fetchone()

    def _qa(self, sql: str, args: Any = ()) -> list[Any]:
        with self._mutex:
            return self._db.execute(sql, args).fetchall()

    def _insert_id(self, sql: str, args: Any) -> int:
        return int(self._db.execute(sql, args).lastrowid)

    _ts = staticmethod(_ts)
    _dt = staticmethod(_dt)

    def _in(self, column: str, ids: list[str]) -> Iterator[tuple[str, list[Any]]]:
        for i in range(0, len(ids), _CHUNK):  # below SQLite's limit of variables per statement
            chunk = ids[i:i + _CHUNK]
            yield f"{column} IN ({','.join('?' * len(chunk))})", chunk

    def _begin(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")  # the write lock up front: two writers never deadlock on an upgrade
        except sqlite3.OperationalError as exc:
            raise StateError(f"state {self.path} is busy ({exc}); another syncform is writing it, "
                             "try again") from None

    def _commit(self) -> None:
        self._db.execute("COMMIT")

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    # --- lifecycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        with self._mutex:
            try:
                self._db.close()
            except sqlite3.Error:
                pass

    def integrity_check(self) -> str:
        """``"ok"`` when SQLite finds the file sound, else its first complaint."""
        return self._q1("PRAGMA integrity_check")[0]

    # --- lock ----------------------------------------------------------------------------------------
    def lock_info(self) -> LockInfo | None:
        row = self._q1(LOCK_SELECT)
        return self._lockinfo(row) if row else None

    def acquire_lock(self, operation: str, *, timeout: float = 10.0) -> LockInfo:
        host = socket.gethostname()
        deadline = time.monotonic() + max(0.0, timeout)
        delay = 0.05
        while True:
            with self.transaction():
                row = self._db.execute(LOCK_SELECT).fetchone()
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
                raise self._locked_by(holder, timeout, "is gone for good")
            time.sleep(min(delay, deadline - now))
            delay = min(delay * 2, 0.5)

    def release_lock(self, lock_id: str) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM lock WHERE slot = 1 AND id = ?", (lock_id,))

    def force_unlock(self, lock_id: str) -> None:
        with self.transaction():
            self._check_unlock(self._db.execute(LOCK_SELECT).fetchone(), lock_id)
            self._db.execute("DELETE FROM lock WHERE slot = 1")

    # --- links -----------------------------------------------------------------------------------------
    _UPSERT = f"INSERT OR REPLACE INTO links (integration, module, {LINK_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"

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
            insert_rows(self._db, self._UPSERT, rows)

    def put_link_rows(self, integration: str, module: str, rows: Iterable[LinkRow], *,
                      synced_at: datetime | None = None) -> None:
        """``put_links`` of (left_id, right_id, left_values, right_values, left_hash, right_hash) rows, all
        synced at ``synced_at`` (default: now)."""
        stamp = _ts(synced_at or self._clock())
        out = []
        append = out.append
        for lid, rid, lv, rv, lh, rh in rows:
            if lv.__class__ is not str or rv.__class__ is not str:  # else: their stored texts already
                lv, rv = encode_bases(lv, rv)
            append((integration, module, lid, rid, lv, rv, lh, rh, stamp))
        if not out:
            return
        with self.transaction():
            insert_rows(self._db, self._UPSERT, out)

    # a row rewritten in place: its two ids are those of the link already there (else it changes nothing)
    _REWRITE = ("UPDATE links SET left_values = ?, right_values = ?, left_hash = ?, right_hash = ?, synced_at = ? "
                "WHERE integration = ? AND module = ? AND left_id = ? AND right_id = ?")

    def update_link_rows(self, integration: str, module: str, rows: Sequence[LinkRow], *,
                         synced_at: datetime | None = None) -> None:
        """``put_link_rows`` of rows that most likely rewrite a link with the same two ids (the updates of
        linked pairs). Such a row is updated in place: its table row only, where the upsert's delete and
        insert also rewrite both id indexes (a 1 % edit's rows sit all over them: each costs page
        writes). When any row found no link of its two ids (a new pair, a relink), the batch is put by
        the upsert, which rewrites the rows just updated to the same values."""
        if not rows:
            return
        stamp = _ts(synced_at or self._clock())
        out = []
        append = out.append
        for lid, rid, lv, rv, lh, rh in rows:
            if lv.__class__ is not str or rv.__class__ is not str:
                lv, rv = encode_bases(lv, rv)
            append((lv, rv, lh, rh, stamp, integration, module, lid, rid))
        with self.transaction():
            if self._db.executemany(self._REWRITE, out).rowcount == len(out):
                return
            insert_rows(self._db, self._UPSERT, [(integration, module, r[7], r[8], *r[:5]) for r in out])
