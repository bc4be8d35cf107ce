"""What the SQLite and PostgreSQL stores share: the schema, the SQL of every method that is the same in
both (``SQLStore``, with dialect hooks), and the encoding of values (merge bases, journal payloads).

Encoding is on the hot path of a sync (every link written carries both merge bases as JSON, every write
batch is journalled before it is sent), so it avoids per-call set-up:

- ``encode_json`` is ``json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)`` to the
  letter (the same C encoder ``json.dumps`` uses, built once instead of per call): the stored text of a
  merge base is canonical, byte for byte what earlier versions wrote.
- ``encode_bases`` encodes a link's two merge bases, once when both hold the same plain values (a
  one-way copy, a field mapped to the same name): the second text is the first. A base handed over as
  a ``str`` is its text already: a sync encodes each create's values once, for its journal entry and
  its link (``engine.sync.executor.journal_creates``; the journal takes the text by ``journal_add_texts``).
- ``encode_payload`` is the journal's encoding: the same, without sorting keys (a payload is read back
  as a whole, never compared as text).
- ``encode_rows`` (not ASCII-escaped, unsorted) hands PostgreSQL a batch of rows or ids as one JSON
  text parameter, which the server unpacks: psycopg's own array adaptation costs ~1 us per element.
- ``decode_json`` / ``decode_bases`` read them back with the C scanner directly (``json.loads`` checks
  for white space around the value first), and decode a link's second base once when both texts are
  the same flat object.
"""

from __future__ import annotations

import json
import operator
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from json.scanner import make_scanner
from typing import Any

from engine.state.base import Deployed, Failure, JournalEntry, Link, LockInfo, RunRecord, make_link

try:
    from json.encoder import c_make_encoder as _c_make_encoder
except ImportError:  # pragma: no cover - CPython always has _json
    _c_make_encoder = None
from json.encoder import encode_basestring as _unicode, encode_basestring_ascii as _ascii

_scan = make_scanner(json.JSONDecoder())
_LEFT_ID = operator.attrgetter("left_id")
_RIGHT_ID = operator.attrgetter("right_id")
_NOTHING = object()


def _encoder(sort_keys: bool, ensure_ascii: bool = True) -> Any:
    if _c_make_encoder is not None:
        # the arguments json.JSONEncoder.iterencode passes for json.dumps(..., sort_keys, separators=(",", ":"),
        # default=str) without the circular-reference check (state values are trees of JSON values)
        make = _c_make_encoder(None, str, _ascii if ensure_ascii else _unicode, None, ":", ",", sort_keys, False, True)
        join = "".join

        def encode(value: Any) -> str:
            return join(make(value, 0))

        return encode
    return json.JSONEncoder(sort_keys=sort_keys, separators=(",", ":"), default=str,  # pragma: no cover
                            ensure_ascii=ensure_ascii).encode


encode_json = _encoder(True)
encode_payload = _encoder(False)
encode_rows = _encoder(False, ensure_ascii=False)  # a batch of rows handed to SQL as one JSON parameter


def plain_dict(value: Mapping[str, Any]) -> dict[str, Any]:
    """``value`` itself when it is a dict (no copy), else a dict of it: what the C encoder needs."""
    return value if type(value) is dict else dict(value)  # type: ignore[return-value]


def encode_bases(left: Mapping[str, Any] | str, right: Mapping[str, Any] | str) -> tuple[str, str]:
    """The stored JSON texts of a link's two merge bases (``encode_json`` of each). A base given as a
    ``str`` is taken as its stored text already (``encode_json`` of it, made by the caller: a merge base
    is a mapping, never a string)."""
    if left.__class__ is str or right.__class__ is str:
        return (left if left.__class__ is str else encode_json(plain_dict(left)),  # type: ignore[arg-type]
                right if right.__class__ is str else encode_json(plain_dict(right)))  # type: ignore[return-value,arg-type]
    lv = plain_dict(left)  # type: ignore[arg-type]
    text = encode_json(lv)
    if right is left:
        return text, text
    rv = plain_dict(right)
    if rv == lv:
        # equal dicts encode alike when every value is a string or None (1 == 1.0 == True do not)
        for v in lv.values():
            if v is not None and v.__class__ is not str:
                return text, encode_json(rv)
        return text, text
    return text, encode_json(rv)


def encode_journal(payload: Any) -> str:
    """The stored JSON text of a journal entry's payload (a sequence of per-record mappings)."""
    return encode_payload([p if type(p) is dict else dict(p) for p in payload])


def decode_json(text: str) -> Any:
    """``json.loads(text)`` for the texts the stores write (no white space around the value)."""
    try:
        value, end = _scan(text, 0)
    except (StopIteration, ValueError):
        return json.loads(text)  # white space first, or not JSON: json.loads says what is wrong
    if end != len(text):
        return json.loads(text)
    return value


def decode_bases(left: str, right: str) -> tuple[Any, Any]:
    """A link's two merge bases from their stored texts."""
    lv = decode_json(left)
    if right == left and left.count("{") == 1 and "[" not in left and type(lv) is dict:
        return lv, dict(lv)  # a flat object: a copy is the second decoding
    return lv, decode_json(right)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def utc(dt: datetime) -> datetime:
    """``dt`` in UTC (a naive one is taken as UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def iso(dt: datetime) -> str:
    """The stored text of a timestamp (SQLite): UTC, microseconds, ``+00:00``."""
    return utc(dt).isoformat(timespec="microseconds")


# --- the schema, in both dialects -----------------------------------------------------------------

# The schema's versions (applied in order, each once); {words} are the dialect's types (``DIALECT_TYPES``).
SCHEMA: tuple[str, ...] = (
    # 1: the initial schema
    """
    CREATE TABLE store_info (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        lineage TEXT NOT NULL,
        serial {bigint} NOT NULL,
        created_at {ts} NOT NULL
    );
    CREATE TABLE deployed (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        spec_hash TEXT NOT NULL,
        paused {bool} NOT NULL DEFAULT {false},
        applied_at {ts}
    );
    CREATE TABLE applies (
        id {serial},
        at {ts} NOT NULL,
        who TEXT NOT NULL,
        spec_hash TEXT NOT NULL,
        git_commit TEXT,
        serial {bigint} NOT NULL,
        summary TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE lock (
        slot INTEGER PRIMARY KEY CHECK (slot = 1),
        id TEXT NOT NULL,
        who TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        operation TEXT NOT NULL,
        since {ts} NOT NULL
    );
    CREATE TABLE links (
        integration TEXT NOT NULL,
        module TEXT NOT NULL,
        left_id TEXT NOT NULL,
        right_id TEXT NOT NULL,
        left_values TEXT NOT NULL DEFAULT '{{}}',
        right_values TEXT NOT NULL DEFAULT '{{}}',
        left_hash TEXT NOT NULL DEFAULT '',
        right_hash TEXT NOT NULL DEFAULT '',
        synced_at {ts},
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
        id {serial},
        integration TEXT NOT NULL,
        module TEXT NOT NULL,
        direction TEXT NOT NULL,
        started {ts} NOT NULL,
        ended {ts},
        created {bigint} NOT NULL DEFAULT 0,
        updated {bigint} NOT NULL DEFAULT 0,
        deleted {bigint} NOT NULL DEFAULT 0,
        linked {bigint} NOT NULL DEFAULT 0,
        conflicts {bigint} NOT NULL DEFAULT 0,
        failed {bigint} NOT NULL DEFAULT 0,
        api_calls {bigint} NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'running',
        message TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX runs_by_integration ON runs (integration, started);
    CREATE TABLE failures (
        id {serial},
        integration TEXT NOT NULL,
        module TEXT NOT NULL,
        side TEXT NOT NULL,
        record_id TEXT NOT NULL,
        code TEXT NOT NULL,
        message TEXT NOT NULL,
        app_code TEXT NOT NULL DEFAULT '',
        first_seen {ts} NOT NULL,
        last_seen {ts} NOT NULL,
        attempts {bigint} NOT NULL DEFAULT 1,
        resolved {bool} NOT NULL DEFAULT {false},
        UNIQUE (integration, module, side, record_id, code)
    );
    CREATE TABLE journal (
        id {serial},
        integration TEXT NOT NULL,
        module TEXT NOT NULL,
        target TEXT NOT NULL,
        operation TEXT NOT NULL,
        payload TEXT NOT NULL,
        created {ts} NOT NULL
    );
    CREATE INDEX journal_by_module ON journal (integration, module);
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
)

DIALECT_TYPES: dict[str, dict[str, str]] = {
    "sqlite": {"ts": "TEXT", "bool": "INTEGER", "false": "0", "bigint": "INTEGER",
               "serial": "INTEGER PRIMARY KEY AUTOINCREMENT"},
    "postgres": {"ts": "TIMESTAMPTZ", "bool": "BOOLEAN", "false": "FALSE", "bigint": "BIGINT",
                 "serial": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"},
}


def migrations(dialect: str) -> tuple[str, ...]:
    """``SCHEMA`` in the types of ``dialect`` ("sqlite" or "postgres")."""
    return tuple(version.format(**DIALECT_TYPES[dialect]) for version in SCHEMA)


# --- the store both dialects share -----------------------------------------------------------------

def side_column(side: str) -> str:
    if side not in ("left", "right"):
        raise ValueError(f'side must be "left" or "right", not "{side}"')
    return f"{side}_id"


LINK_COLS = "left_id, right_id, left_values, right_values, left_hash, right_hash, synced_at"
RUN_COLS = ("id, integration, module, direction, started, ended, created, updated, deleted, linked, "
            "conflicts, failed, api_calls, status, message")
FAIL_COLS = ("id, integration, module, side, record_id, code, message, app_code, first_seen, last_seen, "
             "attempts, resolved")
LOCK_SELECT = "SELECT id, who, host, pid, operation, since FROM lock WHERE slot = 1"


class SQLStore:
    """The ``StateStore`` methods whose SQL is the same in SQLite and PostgreSQL.

    Statements are written with ``?`` placeholders. A dialect (``SQLiteStore``, ``PostgresStore``) provides:

    - ``_x(sql, args=(), *, doing="")``: run one statement (inside ``self._mutex``), return its cursor;
      ``_q1`` / ``_qa``: one row / all rows of a query;
    - ``_insert_id(sql, args)``: run an ``INSERT`` into a table with a generated ``id``, return that id;
    - ``_ts(datetime)`` / ``_dt(stored)``: a timestamp as stored / as read back (aware, UTC);
    - ``_in(column, ids)``: ``(condition, args)`` pairs that together match ``column`` against ``ids``;
    - ``_begin()`` / ``_commit()`` / ``_rollback()``: an outer transaction's three steps;
    - ``_migration_lock()``: one migrator at a time (inside the migration's transaction);
    - ``_ORDER_C``: the collation clause that orders text by code point (SQLite's own order);
    - ``DIALECT``, ``MIGRATIONS`` (``migrations(DIALECT)``), ``_where`` (how messages name the state), ``_clock``;
    - ``put_links`` and the operation lock, which work differently in each.
    """

    DIALECT = ""  # a key of DIALECT_TYPES
    MIGRATIONS: tuple[str, ...] = ()
    _ORDER_C = ""
    _clock: Any
    _mutex: Any
    _depth: int
    _bump_pending: bool

    # --- dialect hooks (see the class docstring) -------------------------------------------------------
    @property
    def _where(self) -> str:
        raise NotImplementedError

    def _x(self, sql: str, args: Any = (), *, doing: str = "") -> Any:
        raise NotImplementedError

    def _q1(self, sql: str, args: Any = ()) -> Any:
        raise NotImplementedError

    def _qa(self, sql: str, args: Any = ()) -> list[Any]:
        raise NotImplementedError

    def _insert_id(self, sql: str, args: Any) -> int:
        raise NotImplementedError

    @staticmethod
    def _ts(dt: datetime | None) -> Any:
        raise NotImplementedError

    @staticmethod
    def _dt(value: Any) -> datetime | None:
        raise NotImplementedError

    def _in(self, column: str, ids: list[str]) -> Iterator[tuple[str, list[Any]]]:
        raise NotImplementedError

    def _begin(self) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _rollback(self) -> None:
        raise NotImplementedError

    def _migration_lock(self) -> None:
        pass

    # --- lifecycle ---------------------------------------------------------------------------------------
    def __enter__(self) -> "SQLStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # type: ignore[attr-defined]

    def _migrate(self) -> None:
        from engine.errors import MigrationError

        known = len(self.MIGRATIONS)
        with self.transaction():
            self._migration_lock()
            self._x("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                    f"applied_at {DIALECT_TYPES[self.DIALECT]['ts']} NOT NULL)")
            current = self._x("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
            if current > known:
                raise MigrationError(
                    f"{self._where}: the state schema is version {current}, newer than this syncform knows "
                    f"(up to {known}); upgrade syncform to use this state")
            for version in range(current + 1, known + 1):
                # one statement at a time (SQLite's executescript would COMMIT our transaction)
                for statement in self.MIGRATIONS[version - 1].split(";"):
                    if statement.strip():
                        self._x(statement, doing=f"migrating the schema to version {version}")
                if version == 1:
                    self._x("INSERT INTO store_info (id, lineage, serial, created_at) VALUES (1, ?, 0, ?)",
                            (str(uuid.uuid4()), self._ts(self._clock())))
                self._x("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                        (version, self._ts(self._clock())))

    def schema_version(self) -> int:
        return int(self._q1("SELECT MAX(version) FROM schema_version")[0])

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
            self._begin()
            self._depth = 1
            self._bump_pending = False
            try:
                yield
                if self._bump_pending:
                    self._x("UPDATE store_info SET serial = serial + 1 WHERE id = 1")
                self._commit()
            except BaseException:
                self._rollback()
                raise
            finally:
                self._depth = 0
                self._bump_pending = False

    def lineage(self) -> str:
        return self._q1("SELECT lineage FROM store_info WHERE id = 1")[0]

    def serial(self) -> int:
        return int(self._q1("SELECT serial FROM store_info WHERE id = 1")[0])

    # --- deployed integrations ------------------------------------------------------------------------
    def _deployed(self, row: Any) -> Deployed:
        return Deployed(name=row[0], spec=decode_json(row[1]), spec_hash=row[2], paused=bool(row[3]),
                        applied_at=self._dt(row[4]))

    def list_deployed(self) -> list[Deployed]:
        rows = self._qa(f"SELECT name, spec, spec_hash, paused, applied_at FROM deployed ORDER BY name{self._ORDER_C}")
        return [self._deployed(r) for r in rows]

    def get_deployed(self, name: str) -> Deployed | None:
        row = self._q1("SELECT name, spec, spec_hash, paused, applied_at FROM deployed WHERE name = ?", (name,))
        return self._deployed(row) if row else None

    def put_deployed(self, deployed: Deployed) -> None:
        with self.transaction():
            self._x("INSERT INTO deployed (name, spec, spec_hash, paused, applied_at) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, spec_hash = excluded.spec_hash, "
                    "paused = excluded.paused, applied_at = excluded.applied_at",
                    (deployed.name, encode_json(dict(deployed.spec)), deployed.spec_hash, bool(deployed.paused),
                     self._ts(deployed.applied_at or self._clock())))
            self._bump_pending = True

    def remove_deployed(self, name: str) -> None:
        with self.transaction():
            self._x("DELETE FROM deployed WHERE name = ?", (name,))
            for table in ("links", "cursors", "journal", "failures"):
                self._x(f"DELETE FROM {table} WHERE integration = ?", (name,))
            self._bump_pending = True

    def set_paused(self, name: str, paused: bool) -> None:
        with self.transaction():
            cur = self._x("UPDATE deployed SET paused = ? WHERE name = ?", (bool(paused), name))
            if cur.rowcount == 0:
                from engine.errors import StateError, did_you_mean

                raise StateError(f'integration "{name}" is not deployed'
                                 f"{did_you_mean(name, [d.name for d in self.list_deployed()])}")
            self._bump_pending = True

    def record_apply(self, *, who: str, spec_hash: str, commit: str | None, summary: str) -> None:
        with self.transaction():
            self._x("INSERT INTO applies (at, who, spec_hash, git_commit, serial, summary) "
                    "VALUES (?, ?, ?, ?, (SELECT serial FROM store_info WHERE id = 1) + ?, ?)",
                    (self._ts(self._clock()), who, spec_hash, commit, int(self._bump_pending), summary))

    def apply_history(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._qa("SELECT id, at, who, spec_hash, git_commit, serial, summary FROM applies "
                        "ORDER BY id DESC LIMIT ?", (limit,))
        return [{"id": r[0], "at": self._dt(r[1]), "who": r[2], "spec_hash": r[3], "commit": r[4],
                 "serial": r[5], "summary": r[6]} for r in rows]

    # --- lock (taking and releasing it is the dialect's) ---------------------------------------------
    def _lockinfo(self, row: Any, note: str = "") -> LockInfo:
        return LockInfo(id=row[0], who=row[1], host=row[2], pid=row[3], operation=row[4],
                        since=self._dt(row[5]), note=note)

    @staticmethod
    def _locked_by(holder: LockInfo, timeout: float, advice: str) -> Exception:
        """The ``LockedError`` for a caller that waited ``timeout`` seconds for ``holder``'s lock."""
        from engine.errors import LockedError

        since = iso(holder.since) if holder.since is not None else "?"
        return LockedError(
            f'state is locked by {holder.who}@{holder.host} (pid {holder.pid}) running '
            f'"{holder.operation}" since {since} (lock id {holder.id}); waited '
            f"{timeout:g}s. Try again when it is done; if that process {advice}, "
            f'run "syncform state unlock {holder.id}"',
            holder={"id": holder.id, "who": holder.who, "host": holder.host, "pid": holder.pid,
                    "operation": holder.operation, "since": since})

    def _check_unlock(self, row: Any, lock_id: str) -> None:
        """Raise ``StateError`` unless ``row`` (the lock row, or None) is the lock ``lock_id``."""
        from engine.errors import StateError

        if row is None:
            raise StateError(f"state is not locked; nothing to unlock (asked for lock {lock_id})")
        if row[0] != lock_id:
            holder = self._lockinfo(row)
            raise StateError(f"lock {lock_id} is not the current lock; the state is locked by "
                             f'{holder.who}@{holder.host} (pid {holder.pid}, "{holder.operation}") '
                             f"with lock id {holder.id}")

    # --- links ---------------------------------------------------------------------------------------
    def _link(self, row: Any) -> Link:
        left, right = decode_bases(row[2], row[3])
        return make_link(row[0], row[1], left, right, row[4], row[5], self._dt(row[6]))

    def _links(self, rows: Iterable[Any]) -> list[Link]:
        """``_link`` of each row (a sync reads a link per record): a batch's links share their time,
        parsed once."""
        dt = self._dt
        last: Any = _NOTHING
        at = None
        out: list[Link] = []
        add = out.append
        for lid, rid, left, right, lh, rh, synced in rows:
            if synced != last:
                last, at = synced, dt(synced)
            lv = decode_json(left)
            if right == left and lv.__class__ is dict and left.count("{") == 1 and "[" not in left:
                rv = dict(lv)  # a flat object: a copy is the second decoding
            else:
                rv = decode_json(right)
            add(make_link(lid, rid, lv, rv, lh, rh, at))
        return out

    def get_link(self, integration: str, module: str, *, left_id: str | None = None,
                 right_id: str | None = None) -> Link | None:
        if (left_id is None) == (right_id is None):
            raise ValueError("get_link: give exactly one of left_id, right_id")
        column, value = ("left_id", left_id) if left_id is not None else ("right_id", right_id)
        row = self._q1(f"SELECT {LINK_COLS} FROM links WHERE integration = ? AND module = ? AND {column} = ?",
                       (integration, module, value))
        return self._link(row) if row else None

    def get_links(self, integration: str, module: str, *, side: str, ids: Iterable[str]) -> dict[str, Link]:
        column = side_column(side)
        found: dict[str, Link] = {}
        for condition, args in self._in(column, list(dict.fromkeys(ids))):
            rows = self._qa(f"SELECT {LINK_COLS} FROM links WHERE integration = ? AND module = ? AND {condition}",
                            [integration, module, *args])
            links = self._links(rows)
            found.update(zip(map(_LEFT_ID if side == "left" else _RIGHT_ID, links), links))
        return found

    def iter_links(self, integration: str, module: str) -> Iterator[Link]:
        rows = self._qa(f"SELECT {LINK_COLS} FROM links WHERE integration = ? AND module = ? "
                        f"ORDER BY left_id{self._ORDER_C}", (integration, module))
        return iter(self._links(rows))

    def count_links(self, integration: str, module: str) -> int:
        return int(self._q1("SELECT COUNT(*) FROM links WHERE integration = ? AND module = ?", (integration, module))[0])

    def has_links(self, integration: str, module: str) -> bool:
        """Whether ``module`` has any link (one index probe, where ``count_links`` reads them all)."""
        return self._q1("SELECT 1 FROM links WHERE integration = ? AND module = ? LIMIT 1", (integration, module)) is not None

    def update_link_rows(self, integration: str, module: str, rows: Sequence[Any], *,
                         synced_at: datetime | None = None) -> None:
        """``put_link_rows`` of rows that most likely rewrite links already there (same two ids)."""
        self.put_link_rows(integration, module, rows, synced_at=synced_at)  # type: ignore[attr-defined]

    def delete_links(self, integration: str, module: str, *, side: str, ids: Iterable[str]) -> None:
        column = side_column(side)
        wanted = list(ids)
        if not wanted:
            return
        with self.transaction():
            for condition, args in self._in(column, wanted):
                self._x(f"DELETE FROM links WHERE integration = ? AND module = ? AND {condition}",
                        [integration, module, *args])

    def forget_module(self, integration: str, module: str) -> None:
        with self.transaction():
            for table in ("links", "cursors", "journal"):
                self._x(f"DELETE FROM {table} WHERE integration = ? AND module = ?", (integration, module))

    # --- cursors -------------------------------------------------------------------------------------
    def get_cursor(self, integration: str, module: str, side: str, kind: str = "changed") -> str | None:
        row = self._q1("SELECT value FROM cursors WHERE integration = ? AND module = ? AND side = ? AND kind = ?",
                       (integration, module, side, kind))
        return row[0] if row else None

    def set_cursor(self, integration: str, module: str, side: str, value: str, kind: str = "changed") -> None:
        side_column(side)
        with self.transaction():
            self._x("INSERT INTO cursors (integration, module, side, kind, value) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (integration, module, side, kind) DO UPDATE SET value = excluded.value",
                    (integration, module, side, kind, value))

    # --- history and failures ------------------------------------------------------------------------
    def _run(self, row: Any) -> RunRecord:
        dt = self._dt
        return RunRecord(id=row[0], integration=row[1], module=row[2], direction=row[3], started=dt(row[4]),
                         ended=dt(row[5]), created=row[6], updated=row[7], deleted=row[8], linked=row[9],
                         conflicts=row[10], failed=row[11], api_calls=row[12], status=row[13], message=row[14])

    def start_run(self, run: RunRecord) -> int:
        with self.transaction():
            return self._insert_id(
                "INSERT INTO runs (integration, module, direction, started, ended, created, updated, deleted, "
                "linked, conflicts, failed, api_calls, status, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run.integration, run.module, run.direction, self._ts(run.started), self._ts(run.ended), run.created,
                 run.updated, run.deleted, run.linked, run.conflicts, run.failed, run.api_calls,
                 "running" if run.status == "ok" and run.ended is None else run.status, run.message))

    def finish_run(self, run: RunRecord) -> None:
        if run.id is None:
            raise ValueError("finish_run: the run has no id (start_run returns it)")
        with self.transaction():
            self._x("UPDATE runs SET ended = ?, created = ?, updated = ?, deleted = ?, linked = ?, conflicts = ?, "
                    "failed = ?, api_calls = ?, status = ?, message = ? WHERE id = ?",
                    (self._ts(run.ended or self._clock()), run.created, run.updated, run.deleted, run.linked,
                     run.conflicts, run.failed, run.api_calls, run.status, run.message, run.id))

    def list_runs(self, integration: str | None = None, *, since: datetime | None = None) -> list[RunRecord]:
        sql, args = f"SELECT {RUN_COLS} FROM runs WHERE 1 = 1", []
        if integration is not None:
            sql += " AND integration = ?"
            args.append(integration)
        if since is not None:
            sql += " AND started >= ?"
            args.append(self._ts(since))
        return [self._run(r) for r in self._qa(sql + " ORDER BY started DESC, id DESC", args)]

    def prune_runs(self, before: datetime) -> int:
        with self.transaction():
            return self._x("DELETE FROM runs WHERE started < ?", (self._ts(before),)).rowcount

    def _failure(self, row: Any) -> Failure:
        return Failure(id=row[0], integration=row[1], module=row[2], side=row[3], record_id=row[4], code=row[5],
                       message=row[6], app_code=row[7], first_seen=self._dt(row[8]), last_seen=self._dt(row[9]),
                       attempts=row[10], resolved=bool(row[11]))

    def add_failure(self, failure: Failure) -> None:
        side_column(failure.side)
        now = failure.last_seen or failure.first_seen or self._clock()
        with self.transaction():
            self._x("INSERT INTO failures (integration, module, side, record_id, code, message, app_code, first_seen, "
                    "last_seen, attempts, resolved) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, FALSE) "
                    "ON CONFLICT (integration, module, side, record_id, code) DO UPDATE SET "
                    "attempts = failures.attempts + 1, last_seen = excluded.last_seen, message = excluded.message, "
                    "app_code = excluded.app_code, resolved = FALSE",
                    (failure.integration, failure.module, failure.side, failure.record_id, failure.code,
                     failure.message, failure.app_code, self._ts(failure.first_seen or now), self._ts(now),
                     max(1, failure.attempts)))

    def list_failures(self, integration: str | None = None, *, include_resolved: bool = False) -> list[Failure]:
        sql, args = f"SELECT {FAIL_COLS} FROM failures WHERE 1 = 1", []
        if integration is not None:
            sql += " AND integration = ?"
            args.append(integration)
        if not include_resolved:
            sql += " AND NOT resolved"
        return [self._failure(r) for r in self._qa(sql + " ORDER BY last_seen DESC, id DESC", args)]

    def resolve_failures(self, integration: str, module: str, side: str, record_ids: Iterable[str]) -> None:
        wanted = list(record_ids)
        if not wanted:
            return
        with self.transaction():
            for condition, args in self._in("record_id", wanted):
                self._x("UPDATE failures SET resolved = TRUE WHERE integration = ? AND module = ? AND side = ? "
                        f"AND {condition}", [integration, module, side, *args])

    def failing_ids(self, integration: str, module: str) -> dict[str, set[str]]:
        """The record ids with an unresolved failure in ``module``, per side: a sync resolves only those
        (most runs have none, and then need no ``resolve_failures`` at all)."""
        out: dict[str, set[str]] = {"left": set(), "right": set()}
        for side, record_id in self._qa("SELECT side, record_id FROM failures WHERE integration = ? AND module = ? "
                                        "AND NOT resolved", (integration, module)):
            out.setdefault(side, set()).add(record_id)
        return out

    # --- journal -------------------------------------------------------------------------------------
    def journal_add(self, entry: JournalEntry) -> int:
        with self.transaction():
            return self._insert_id(
                "INSERT INTO journal (integration, module, target, operation, payload, created) VALUES (?, ?, ?, ?, ?, ?)",
                (entry.integration, entry.module, entry.target, entry.operation, encode_journal(entry.payload),
                 self._ts(entry.created or self._clock())))

    def journal_add_many(self, entries: Iterable[JournalEntry]) -> list[int]:
        with self.transaction():
            return [self.journal_add(e) for e in entries]

    def journal_add_texts(self, integration: str, module: str, items: Iterable[tuple[str, str, str]], *,
                          created: datetime | None = None) -> list[int]:
        """``journal_add_many`` of entries whose payloads the caller encoded: ``items`` are (target,
        operation, payload text), the text a JSON array of per-record objects (what ``encode_journal``
        makes of a payload). One transaction; the ids in order."""
        stamp = self._ts(created or self._clock())
        sql = "INSERT INTO journal (integration, module, target, operation, payload, created) VALUES (?, ?, ?, ?, ?, ?)"
        with self.transaction():
            return [self._insert_id(sql, (integration, module, target, operation, text, stamp))
                    for target, operation, text in items]

    def journal_done(self, entry_id: int) -> None:
        with self.transaction():
            self._x("DELETE FROM journal WHERE id = ?", (entry_id,))

    def journal_pending(self, integration: str, module: str | None = None) -> list[JournalEntry]:
        sql, args = ("SELECT id, integration, module, target, operation, payload, created FROM journal "
                     "WHERE integration = ?"), [integration]
        if module is not None:
            sql += " AND module = ?"
            args.append(module)
        return [JournalEntry(id=r[0], integration=r[1], module=r[2], target=r[3], operation=r[4],
                             payload=tuple(decode_json(r[5])), created=self._dt(r[6]))
                for r in self._qa(sql + " ORDER BY id", args)]

    # --- meta ----------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._q1("SELECT value FROM meta WHERE key = ?", (key,))
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self._x("INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))
