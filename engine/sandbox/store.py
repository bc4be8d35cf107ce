"""SQLite storage of the sandbox: one ``records`` table for every app and module, values as JSON.

Rows are never removed by a delete: ``deleted`` holds the deletion time (UTC, second precision) and
``deleted_type`` ``recycle`` or ``permanent``, which is what the apps' deleted-records feeds and
recycle bins list. One connection guarded by a re-entrant lock serves every thread of the threaded
server; file databases use WAL.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    app TEXT NOT NULL,
    module TEXT NOT NULL,
    id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    created TEXT NOT NULL,
    modified TEXT NOT NULL,
    deleted TEXT,
    deleted_type TEXT,
    deleted_by TEXT,
    data TEXT NOT NULL,
    PRIMARY KEY (app, module, id)
);
CREATE INDEX IF NOT EXISTS records_modified ON records (app, module, deleted, modified, id);
CREATE INDEX IF NOT EXISTS records_seq ON records (app, module, deleted, seq);
-- COQL pages (order by id, offset, optionally modified >= ?) walk this index alone, no table lookups
CREATE INDEX IF NOT EXISTS records_id_modified ON records (app, module, deleted, id, modified);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS keys (
    app TEXT NOT NULL, module TEXT NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL, id TEXT NOT NULL,
    PRIMARY KEY (app, module, field, value, id)
);
CREATE INDEX IF NOT EXISTS keys_by_id ON keys (app, module, id);
"""

# Id bases per app: CRM and Bigin ids are 19-digit strings, Desk ids 16-digit strings.
ID_BASE = {
    "bigin": 4_876_876_000_000_000_000,
    "zoho_crm": 5_725_767_000_000_000_000,
    "zoho_desk": 1_892_000_000_000_000,
    "zoho_bookings": 3_913_000_000_000_000_000,
}


@dataclass(frozen=True, slots=True)
class Row:
    app: str
    module: str
    id: str
    seq: int
    created: str
    modified: str
    deleted: str | None
    deleted_type: str | None
    deleted_by: str | None
    data: dict[str, Any]


def _row(r: tuple) -> Row:
    return Row(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], json.loads(r[9]))


_COLS = "app, module, id, seq, created, modified, deleted, deleted_type, deleted_by, data"


class Store:
    def __init__(self, db_path: str) -> None:
        self.path = db_path
        self.lock = threading.RLock()
        self._depth = 0
        self.conn = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        if db_path != ":memory:" and not db_path.startswith("file::memory:"):
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic write (re-entrant: an inner transaction joins the outer one)."""
        with self.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self.conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                self.conn.execute("ROLLBACK")
                raise
            self._depth = 0
            self.conn.execute("COMMIT")

    @contextmanager
    def big_cache(self, mib: int = 256) -> Iterator[None]:
        """A page cache of ``mib`` MiB for a bulk write (a 1M-record seed touches index pages all over;
        with SQLite's 2 MB default they are evicted and re-read), back to the previous size after."""
        with self.lock:
            before = self.conn.execute("PRAGMA cache_size").fetchone()[0]
            self.conn.execute(f"PRAGMA cache_size=-{int(mib) * 1024}")
            try:
                yield
            finally:
                self.conn.execute(f"PRAGMA cache_size={int(before)}")

    # ids and counters -------------------------------------------------------------------------
    def _counter(self, key: str, start: int) -> int:
        with self.lock:
            cur = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            value = int(cur[0]) + 1 if cur else start
            self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(value)))
            return value

    def _reserve(self, key: str, count: int) -> int:
        """Take ``count`` consecutive values of a counter at once; returns the first (what ``count``
        calls of ``_counter`` would have returned one by one)."""
        with self.lock:
            cur = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            first = int(cur[0]) + 1 if cur else 1
            if count > 0:
                self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                  (key, str(first + count - 1)))
            return first

    def new_id(self, app: str) -> str:
        n = self._counter(f"id:{app}", 1)
        return str(ID_BASE[app] + 1000 + n * 3)

    def new_ids(self, app: str, count: int) -> list[str]:
        """``count`` new ids at once: the same ids ``count`` calls of ``new_id`` would return."""
        first = self._reserve(f"id:{app}", count)
        base = ID_BASE[app] + 1000
        return [str(base + n * 3) for n in range(first, first + count)]

    def next_seqs(self, count: int) -> int:
        """The first of ``count`` consecutive sequence numbers taken at once."""
        return self._reserve("seq", count)

    def next_seq(self) -> int:
        return self._counter("seq", 1)

    def next_number(self, key: str) -> int:
        return self._counter(f"num:{key}", 1)

    def get_meta(self, key: str) -> str | None:
        with self.lock:
            r = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            return r[0] if r else None

    def set_meta(self, key: str, value: str) -> None:
        with self.lock:
            self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # records ----------------------------------------------------------------------------------
    def insert(self, app: str, module: str, rid: str, data: dict[str, Any], now: str,
               modified: str | None = None) -> Row:
        """``now`` is the creation time; ``modified`` defaults to it (seeding back-dates both)."""
        modified = modified or now
        with self.lock:
            seq = self.next_seq()
            self.conn.execute(
                f"INSERT INTO records ({_COLS}) VALUES (?,?,?,?,?,?,NULL,NULL,NULL,?)",
                (app, module, rid, seq, now, modified, json.dumps(data, separators=(",", ":"))),
            )
            return Row(app, module, rid, seq, now, modified, None, None, None, data)

    def insert_many(self, rows: Iterable[tuple[str, str, str, int, str, str, str]]) -> None:
        """Bulk insert of new records: ``(app, module, id, seq, created, modified, data JSON)`` each, seq
        from ``next_seqs`` (seeding; the caller holds a transaction)."""
        with self.lock:
            self.conn.executemany(
                f"INSERT INTO records ({_COLS}) VALUES (?,?,?,?,?,?,NULL,NULL,NULL,?)", rows)

    def add_keys(self, rows: Iterable[tuple[str, str, str, str, str]]) -> None:
        """Bulk ``set_keys`` of new records: ``(app, module, field, normalised value, id)`` each, empty
        values left out by the caller."""
        with self.lock:
            self.conn.executemany("INSERT OR IGNORE INTO keys (app, module, field, value, id) VALUES (?,?,?,?,?)",
                                  rows)

    def ids(self, app: str, module: str) -> list[str]:
        """Ids of the live records of a module in creation order (``query(...)`` without the data)."""
        with self.lock:
            return [r[0] for r in self.conn.execute(
                "SELECT id FROM records WHERE app=? AND module=? AND deleted IS NULL ORDER BY seq", (app, module))]

    def update(self, row: Row, data: dict[str, Any], now: str) -> Row:
        with self.lock:
            seq = self.next_seq()
            self.conn.execute(
                "UPDATE records SET data=?, modified=?, seq=? WHERE app=? AND module=? AND id=?",
                (json.dumps(data, separators=(",", ":")), now, seq, row.app, row.module, row.id),
            )
            return Row(row.app, row.module, row.id, seq, row.created, now, None, None, None, data)

    def mark_deleted(self, row: Row, now: str, kind: str = "recycle", by: str | None = None) -> None:
        with self.lock:
            self.conn.execute(
                "UPDATE records SET deleted=?, deleted_type=?, deleted_by=?, seq=? "
                "WHERE app=? AND module=? AND id=?",
                (now, kind, by, self.next_seq(), row.app, row.module, row.id),
            )
            self.conn.execute("DELETE FROM keys WHERE app=? AND module=? AND id=?", (row.app, row.module, row.id))

    # unique-field index (normalised values of live records) ------------------------------------
    def set_keys(self, app: str, module: str, rid: str, keys: dict[str, str]) -> None:
        with self.lock:
            self.conn.execute("DELETE FROM keys WHERE app=? AND module=? AND id=?", (app, module, rid))
            self.conn.executemany("INSERT OR IGNORE INTO keys (app, module, field, value, id) VALUES (?,?,?,?,?)",
                                  [(app, module, f, v, rid) for f, v in keys.items() if v])

    def find_keys(self, app: str, module: str, field: str, value: str) -> list[str]:
        with self.lock:
            return [r[0] for r in self.conn.execute(
                "SELECT id FROM keys WHERE app=? AND module=? AND field=? AND value=? ORDER BY id",
                (app, module, field, value))]

    def get(self, app: str, module: str, rid: str, *, include_deleted: bool = False) -> Row | None:
        with self.lock:
            r = self.conn.execute(
                f"SELECT {_COLS} FROM records WHERE app=? AND module=? AND id=?"
                + ("" if include_deleted else " AND deleted IS NULL"),
                (app, module, rid),
            ).fetchone()
        return _row(r) if r else None

    def find_any_module(self, app: str, rid: str) -> Row | None:
        with self.lock:
            r = self.conn.execute(
                f"SELECT {_COLS} FROM records WHERE app=? AND id=? AND deleted IS NULL", (app, rid)
            ).fetchone()
        return _row(r) if r else None

    def query(self, app: str, module: str, *, where: str = "", params: Iterable[Any] = (),
              order: str = "seq", limit: int | None = None, offset: int = 0,
              deleted: bool = False) -> list[Row]:
        sql = f"SELECT {_COLS} FROM records WHERE app=? AND module=? AND deleted IS " + (
            "NOT NULL" if deleted else "NULL")
        if where:
            sql += f" AND ({where})"
        sql += f" ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        with self.lock:
            rows = self.conn.execute(sql, (app, module, *params)).fetchall()
        return [_row(r) for r in rows]

    def count(self, app: str, module: str, *, where: str = "", params: Iterable[Any] = (),
              deleted: bool = False) -> int:
        sql = "SELECT COUNT(*) FROM records WHERE app=? AND module=? AND deleted IS " + (
            "NOT NULL" if deleted else "NULL")
        if where:
            sql += f" AND ({where})"
        with self.lock:
            return int(self.conn.execute(sql, (app, module, *params)).fetchone()[0])

    def all(self, app: str, module: str) -> list[Row]:
        return self.query(app, module)

    def reset(self, app: str | None = None) -> None:
        with self.lock:
            if app is None:
                self.conn.execute("DELETE FROM records")
                self.conn.execute("DELETE FROM meta")
                self.conn.execute("DELETE FROM keys")
            else:
                self.conn.execute("DELETE FROM records WHERE app=?", (app,))
                self.conn.execute("DELETE FROM keys WHERE app=?", (app,))
                self.conn.execute("DELETE FROM meta WHERE key LIKE ?", (f"seeded:{app}",))
