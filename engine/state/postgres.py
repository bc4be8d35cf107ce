"""The PostgreSQL state store: the SQLite store's schema and semantics on a shared server (psycopg 3).

``open_store("postgresql://user@host:5432/db")`` (or ``postgres://``) opens it; libpq's usual
environment and files supply what the URL leaves out (``PGPASSWORD``, ``~/.pgpass``, ``PGSSLMODE``...).
An extra query parameter ``schema=NAME`` keeps the state in that schema (created when missing), so
one database can hold several independent states; without it the state lives in the connection's
current schema (normally ``public``).

- Schema and migrations are SQLite's, version for version: both are ``engine.state.core.SCHEMA`` in
  their own types (timestamps are ``timestamptz``, flags ``boolean``), and every method whose SQL is
  the same in both lives once, in ``engine.state.core.SQLStore``; this module keeps the connection,
  the operation lock and the link upsert. ``schema_version`` holds the
  versions applied; migrations run under a transaction-level advisory lock, so two processes opening
  a fresh database at once do not both create it. A newer schema raises ``MigrationError``.
- ``transaction()`` is one PostgreSQL transaction (READ COMMITTED); nested calls join the outer one;
  the serial is bumped at most once per outer transaction that changed deployed state. Outside a
  transaction every call commits on its own.
- The operation lock is a session-level advisory lock on a key fixed per state (database + schema),
  taken with ``pg_try_advisory_lock`` and retried until the timeout, PLUS the ``lock`` row naming the
  holder (id, who, host, pid, operation, since) so everyone sees who holds it. The advisory lock dies
  with the holder's database session, so a row whose advisory lock is free was left by a holder that
  is gone (any host): the next ``acquire_lock`` takes it over and says so in ``LockInfo.note``.
  ``force_unlock(id)`` needs the current lock id; when the holder's session is still connected it is
  ended (``pg_terminate_backend``) so that the advisory lock is really free.
- psycopg errors are translated once, here: connection refused/reset/lost, serialization failures,
  deadlocks, lock timeouts, too many connections and a server starting or shutting down raise
  ``TransientStateError`` (retry); bad credentials, a missing database or role, missing privileges
  raise ``StateError``. Messages name the server by its URL with any password replaced by ``***``.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from engine.errors import LockedError, StateError, TransientStateError
from engine.state.base import Link, LinkRow, LockInfo
from engine.state.core import LINK_COLS, LOCK_SELECT, SQLStore, encode_bases, encode_rows, iso, migrations, utc, utcnow

LOCK_KEY = 0x53594E43  # "SYNC": first half of the operation lock's advisory key
MIGRATION_KEY = 0x53594E4D  # "SYNM": first half of the migration lock's advisory key
CONNECT_TIMEOUT = 10
BUSY_TIMEOUT = 10.0  # seconds a statement waits for rows another transaction holds (lock_timeout), then transient
_ANALYZE_AFTER = 1000  # links written by one store before it first refreshes the planner's statistics

MIGRATIONS: tuple[str, ...] = migrations("postgres")  # engine.state.core.SCHEMA in PostgreSQL's types

# SQLSTATEs worth retrying: serialization failure, deadlock, lock not available, too many connections,
# insufficient resources, admin/crash shutdown, cannot connect now, connection exceptions (class 08).
_TRANSIENT_SQLSTATES = {"40001", "40P01", "55P03", "53300", "53000", "57P01", "57P02", "57P03"}
_TRANSIENT_WORDS = ("connection refused", "connection reset", "timeout expired", "timed out",
                    "server closed the connection", "terminating connection", "connection is lost",
                    "connection is closed", "consuming input failed", "could not receive data",
                    "could not send data", "the database system is starting up",
                    "the database system is shutting down", "the database system is in recovery mode",
                    "too many clients", "remaining connection slots", "no route to host",
                    "network is unreachable", "broken pipe", "ssl syscall error", "eof detected")
_PLACEHOLDERS: dict[str, str] = {}  # statement with ? placeholders -> with %s
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


# --- URLs -----------------------------------------------------------------------------------------

def redact_url(url: str, *, mask: str | None = "***") -> str:
    """The URL with its password (``user:pw@`` and ``password=`` parameters) replaced by ``***``
    (``mask=None``: removed). A URL without a password comes back unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"(//[^:/@]*):[^@]*@", (r"\1:" + mask + "@") if mask else r"\1@", url)
    netloc, query, changed = parts.netloc, parts.query, False
    if "@" in netloc:
        userinfo, _, hosts = netloc.rpartition("@")
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:{mask}@{hosts}" if mask else f"{user}@{hosts}"
            changed = True
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() == "password" for k, _ in pairs):
            if mask:
                pairs = [(k, mask if k.lower() == "password" else v) for k, v in pairs]
            else:
                pairs = [(k, v) for k, v in pairs if k.lower() != "password"]
            query = urlencode(pairs, safe="*/")
            changed = True
    if not changed:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _password_of(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        for k, v in parse_qsl(parts.query, keep_blank_values=True):
            if k.lower() == "password" and v:
                return v
        return parts.password
    except ValueError:
        return None


def split_url(url: str) -> tuple[str, str | None]:
    """(libpq connection URI without syncform's own parameters, the ``schema`` parameter or None)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("postgresql", "postgres"):
        raise StateError(f'state URL "{redact_url(url)}" is not a PostgreSQL URL (postgresql://user@host/db)')
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    schema = None
    kept = []
    for k, v in pairs:
        if k == "schema":
            schema = v
        else:
            kept.append((k, v))
    if schema is not None and not _SCHEMA_NAME.match(schema):
        raise StateError(f'state URL "{redact_url(url)}": schema "{schema}" is not a plain identifier '
                         "(letters, digits and _, not starting with a digit, at most 63 characters)")
    query = urlencode(kept, quote_via=quote)
    return urlunsplit(("postgresql", parts.netloc, parts.path, query, parts.fragment)), schema


# --- errors ---------------------------------------------------------------------------------------

def translate_error(exc: BaseException, url: str, *, doing: str = "") -> StateError:
    """The ``StateError`` (``TransientStateError`` when worth retrying) for a psycopg error.

    ``url`` is shown redacted; the password of the URL never appears in the message.
    """
    password = _password_of(url)
    shown = redact_url(url)
    sqlstate = getattr(exc, "sqlstate", None) or ""
    detail = " ".join(str(exc).split()) or type(exc).__name__
    if password:
        detail = detail.replace(password, "***")
    low = detail.lower()
    where = f"PostgreSQL state {shown}" + (f" ({doing})" if doing else "")
    if sqlstate in ("28P01", "28000") or "password authentication failed" in low or "no password supplied" in low \
            or "authentication failed" in low or "no pg_hba.conf entry" in low:
        return StateError(f"{where}: the server refused the credentials: {detail}. Check the user in the URL and "
                          "give the password with PGPASSWORD or ~/.pgpass (never in the URL)")
    if sqlstate == "3D000" or re.search(r'database ".*" does not exist', low):
        return StateError(f"{where}: {detail}. Create it (createdb) or fix the database name in the URL")
    if re.search(r'role ".*" does not exist', low):
        return StateError(f"{where}: {detail}. Fix the user in the URL")
    if sqlstate == "42501":
        return StateError(f"{where}: permission denied: {detail}. The state's role needs to create and write "
                          "tables in its schema")
    if sqlstate in ("40001", "40P01"):
        return TransientStateError(f"{where}: the transaction collided with another one ({detail}); try again")
    if sqlstate in _TRANSIENT_SQLSTATES or sqlstate.startswith("08"):
        return TransientStateError(f"{where}: {detail}; try again")
    if "could not translate host name" in low or "name or service not known" in low:
        return StateError(f"{where}: {detail}. Check the host in the URL")
    try:
        import psycopg
    except ImportError:  # pragma: no cover - only called when psycopg raised
        psycopg = None  # type: ignore[assignment]
    if any(w in low for w in _TRANSIENT_WORDS) or (psycopg is not None and isinstance(exc, psycopg.OperationalError)):
        return TransientStateError(f"{where}: {detail}; try again")
    return StateError(f"{where}: {detail}")


# --- values ---------------------------------------------------------------------------------------

def _ts(dt: datetime | None) -> datetime | None:
    return None if dt is None else utc(dt)


def _dt(value: datetime | None) -> datetime | None:
    return value.astimezone(timezone.utc) if value is not None else None


def _iso(dt: datetime | None) -> str:
    return dt.isoformat(timespec="microseconds") if dt is not None else "?"


def _whoami() -> str:
    from engine.state.sqlite import _whoami as whoami

    return whoami()


class PostgresStore(SQLStore):
    """``StateStore`` on one PostgreSQL connection. Thread-safe: the connection is guarded by a lock."""

    DIALECT = "postgres"
    MIGRATIONS = MIGRATIONS
    _ORDER_C = ' COLLATE "C"'  # SQLite's order (by code point), whatever the database's collation

    def __init__(self, url: str, *, clock: Callable[[], datetime] | None = None, schema: str | None = None,
                 connect_timeout: float = CONNECT_TIMEOUT, busy_timeout: float = BUSY_TIMEOUT, base: Any = None):
        self._raw_url = url
        self.url = redact_url(url)
        self._conninfo, url_schema = split_url(url)
        self.schema = schema or url_schema
        if self.schema is not None and not _SCHEMA_NAME.match(self.schema):
            raise StateError(f'schema "{self.schema}" is not a plain identifier')
        self._connect_timeout = connect_timeout
        self._busy_timeout = busy_timeout
        self._clock = clock or utcnow
        self._mutex = threading.RLock()
        self._depth = 0
        self._bump_pending = False
        self._links_written = 0
        self._next_analyze = _ANALYZE_AFTER
        self._held_lock: str | None = None  # id of the operation lock this store's session holds
        self._lost_lock: str | None = None
        self._conn: Any = None
        self._key2 = 0
        self._connect()
        try:
            self._migrate()
        except BaseException:
            self.close()
            raise

    # --- connection --------------------------------------------------------------------------------
    def _connect(self) -> None:
        try:
            import psycopg
            from psycopg.conninfo import conninfo_to_dict
        except ImportError:
            raise StateError("PostgreSQL state needs psycopg 3: pip install 'syncform[postgres]' "
                             "(or pip install 'psycopg[binary]')") from None
        try:
            params = conninfo_to_dict(self._conninfo)
        except psycopg.Error as exc:
            raise StateError(f'state URL "{self.url}" is not a valid PostgreSQL URL: '
                             f"{translate_error(exc, self._raw_url)}") from None
        extra: dict[str, Any] = {}
        if "connect_timeout" not in params:
            extra["connect_timeout"] = max(1, int(self._connect_timeout))
        if "application_name" not in params:
            extra["application_name"] = "syncform"
        try:
            # prepare_threshold=None: no server-side prepared statements. Their generic plans look links up
            # through the wrong index once a module has thousands (measured 10x slower), and poolers in
            # transaction mode cannot carry them anyway.
            conn = psycopg.connect(self._conninfo, autocommit=True, prepare_threshold=None, **extra)
        except psycopg.Error as exc:
            raise translate_error(exc, self._raw_url, doing="connecting") from None
        try:
            conn.execute("SET TIME ZONE 'UTC'")
            if conn.execute("SELECT current_setting('lock_timeout')").fetchone()[0] in ("0", ""):
                # like SQLite's busy timeout: a writer stuck behind another transaction's rows gives up
                # (TransientStateError) instead of waiting forever; a URL's own options=-c lock_timeout=... wins
                conn.execute("SELECT set_config('lock_timeout', %s, false)",
                             (f"{max(1, int(self._busy_timeout * 1000))}ms",))
            if self.schema is not None:
                exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)).fetchone()
                if not exists:
                    from psycopg import sql

                    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
                conn.execute("SELECT set_config('search_path', %s, false)", (f'"{self.schema}"',))
            current = conn.execute("SELECT current_schema()").fetchone()[0]
        except psycopg.Error as exc:
            conn.close()
            raise translate_error(exc, self._raw_url, doing="preparing the session") from None
        if current is None:
            conn.close()
            raise StateError(f"PostgreSQL state {self.url}: no schema to keep the state in (the search_path names "
                             "none that exists); add ?schema=NAME to the URL")
        self.schema = current
        # the second half of the advisory keys: fixed per schema (advisory locks are per database already)
        self._key2 = zlib.crc32(current.encode()) & 0x7FFFFFFF
        self._conn = conn

    def _ensure_connection(self) -> Any:
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        if self._held_lock is not None or self._lost_lock is not None:
            lost = self._held_lock or self._lost_lock
            self._held_lock, self._lost_lock = None, lost
            raise self._lock_lost(lost or "")
        if self._depth:
            raise TransientStateError(f"PostgreSQL state {self.url}: the connection was lost inside a transaction "
                                      "(nothing of it was committed); try again")
        self._connect()
        return self._conn

    def _execute(self, sql: Any, args: Any = None, *, doing: str = "") -> Any:
        import psycopg

        if sql.__class__ is str and "?" in sql:  # the shared SQL of engine.state.core: ? -> %s
            sql = _PLACEHOLDERS.get(sql) or _PLACEHOLDERS.setdefault(sql, sql.replace("?", "%s"))
        with self._mutex:
            conn = self._ensure_connection()
            try:
                return conn.execute(sql, args)
            except psycopg.Error as exc:
                error = translate_error(exc, self._raw_url, doing=doing)
                if conn.closed and self._held_lock is not None:
                    self._lost_lock, self._held_lock = self._held_lock, None
                    raise self._lock_lost(self._lost_lock, str(error)) from None
                raise error from None

    def _lock_lost(self, lock_id: str, why: str = "") -> TransientStateError:
        return TransientStateError(
            f"PostgreSQL state {self.url}: the connection was lost while this process held lock {lock_id}, so "
            "the lock is gone and another process may hold it now; stop and run the operation again"
            + (f" ({why})" if why else ""))

    def _executemany(self, sql: str, rows: list[Any]) -> None:
        import psycopg

        if not rows:
            return
        with self._mutex:
            conn = self._ensure_connection()
            try:
                with conn.cursor() as cur:
                    cur.executemany(sql, rows)
            except psycopg.Error as exc:
                error = translate_error(exc, self._raw_url)
                if conn.closed and self._held_lock is not None:
                    self._lost_lock, self._held_lock = self._held_lock, None
                    raise self._lock_lost(self._lost_lock, str(error)) from None
                raise error from None

    def _q1(self, sql: Any, args: Any = None) -> Any:
        with self._mutex:
            return self._execute(sql, args).fetchone()

    def _qa(self, sql: Any, args: Any = None) -> list[Any]:
        with self._mutex:
            return self._execute(sql, args).fetchall()

    # --- lifecycle -----------------------------------------------------------------------------------
    def close(self) -> None:
        with self._mutex:
            if self._conn is not None:
                try:
                    self._conn.close()
                except Exception:
                    pass

    # --- the dialect (see engine.state.core.SQLStore) ---------------------------------------------------
    @property
    def _where(self) -> str:
        return self.url

    def _x(self, sql: str, args: Any = (), *, doing: str = "") -> Any:
        return self._execute(sql, args or None, doing=doing)

    def _insert_id(self, sql: str, args: Any) -> int:
        return int(self._q1(sql + " RETURNING id", args)[0])

    _ts = staticmethod(_ts)
    _dt = staticmethod(_dt)

    def _in(self, column: str, ids: list[str]) -> Iterator[tuple[str, list[Any]]]:
        if ids:  # one JSON text, not a psycopg array (see put_links); ARRAY(...) keeps "= ANY" on the index
            yield f"{column} = ANY(ARRAY(SELECT json_array_elements_text(?::json)))", [encode_rows(ids)]

    def _begin(self) -> None:
        self._execute("BEGIN", doing="starting a transaction")

    def _commit(self) -> None:
        self._execute("COMMIT", doing="committing")

    def _rollback(self) -> None:
        try:
            if self._conn is not None and not self._conn.closed:
                self._conn.execute("ROLLBACK")
        except Exception:
            pass

    def _migration_lock(self) -> None:
        # one migrator at a time per state; the others wait here, then find the schema done
        self._execute("SELECT pg_advisory_xact_lock(%s, %s)", (MIGRATION_KEY, self._key2))

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read-only REPEATABLE READ transaction: every query inside sees the same moment (exports)."""
        with self._mutex:
            if self._depth:
                raise StateError("snapshot() cannot run inside a transaction")
            self._execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            self._depth = 1
            try:
                yield
            finally:
                self._depth = 0
                try:
                    if self._conn is not None and not self._conn.closed:
                        self._conn.execute("ROLLBACK")
                except Exception:
                    pass

    # --- lock --------------------------------------------------------------------------------------
    def _advisory_holder(self) -> dict[str, Any] | None:
        """The database session holding the operation lock's advisory lock, or None when it is free."""
        row = self._q1(
            "SELECT l.pid, a.usename, host(a.client_addr), a.application_name, a.backend_start "
            "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s::bigint::oid "
            "AND l.objid = %s::bigint::oid AND l.objsubid = 2 "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (LOCK_KEY, self._key2))
        if row is None:
            return None
        return {"backend_pid": row[0], "user": row[1] or "?", "client": row[2] or "local socket",
                "application": row[3] or "", "connected_since": _dt(row[4])}

    def lock_info(self) -> LockInfo | None:
        row = self._q1(LOCK_SELECT)
        if row is None:
            return None
        if self._held_lock == row[0]:
            return self._lockinfo(row)
        if self._advisory_holder() is None:
            return self._lockinfo(row, note="its holder's database session is gone; the next operation takes "
                                            "the lock over")
        return self._lockinfo(row)

    def acquire_lock(self, operation: str, *, timeout: float = 10.0) -> LockInfo:
        host = socket.gethostname()
        deadline = time.monotonic() + max(0.0, timeout)
        delay = 0.05
        while True:
            with self._mutex:
                got = False
                if self._held_lock is None:
                    got = bool(self._q1("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_KEY, self._key2))[0])
                if got:
                    try:
                        with self.transaction():
                            row = self._q1(LOCK_SELECT + " FOR UPDATE")
                            note = ""
                            if row is not None:  # we got the advisory lock: whoever wrote this row is gone
                                held = self._lockinfo(row)
                                note = (f"took over lock {held.id} left by {held.who}@{held.host} (pid {held.pid}, "
                                        f'"{held.operation}" since {_iso(held.since)}): its database session is gone')
                                self._execute("DELETE FROM lock WHERE slot = 1")
                            info = LockInfo(id=str(uuid.uuid4()), who=_whoami(), host=host, pid=os.getpid(),
                                            operation=operation, since=_ts(self._clock()), note=note)
                            self._execute("INSERT INTO lock (slot, id, who, host, pid, operation, since) "
                                          "VALUES (1, %s, %s, %s, %s, %s, %s)",
                                          (info.id, info.who, info.host, info.pid, info.operation, info.since))
                    except BaseException:
                        self._advisory_unlock()
                        raise
                    self._held_lock = info.id
                    self._lost_lock = None
                    return info
                row = self._q1(LOCK_SELECT)
                holder = self._lockinfo(row) if row is not None else None
                session = self._advisory_holder() if holder is None else None
            now = time.monotonic()
            if now >= deadline:
                if holder is not None:
                    raise self._locked_by(holder, timeout, "is stuck")
                if session is not None:
                    raise LockedError(
                        f"state is locked by database session {session['backend_pid']} ({session['user']} from "
                        f"{session['client']}, application \"{session['application']}\") that has not named "
                        f"itself in the lock row yet; waited {timeout:g}s. Try again",
                        holder={"id": "", "who": session["user"], "host": session["client"], "pid": 0,
                                "operation": "", "since": _iso(session["connected_since"]),
                                "backend_pid": session["backend_pid"]})
                # the holder let go between our two looks: try once more
                deadline = now + 0.5
            time.sleep(max(0.0, min(delay, deadline - time.monotonic())))
            delay = min(delay * 2, 0.5)

    def _advisory_unlock(self) -> None:
        try:
            self._execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_KEY, self._key2))
        except StateError:
            pass  # the session is gone, and its advisory lock with it

    def release_lock(self, lock_id: str) -> None:
        with self._mutex:
            if self._lost_lock == lock_id:
                self._lost_lock = None
                try:
                    self._execute("DELETE FROM lock WHERE slot = 1 AND id = %s", (lock_id,))
                except StateError:
                    pass
                return
            with self.transaction():
                self._execute("DELETE FROM lock WHERE slot = 1 AND id = %s", (lock_id,))
            if self._held_lock == lock_id:
                self._held_lock = None
                self._advisory_unlock()

    def force_unlock(self, lock_id: str) -> None:
        with self._mutex:
            with self.transaction():
                self._check_unlock(self._q1(LOCK_SELECT + " FOR UPDATE"), lock_id)
                self._execute("DELETE FROM lock WHERE slot = 1")
            if self._held_lock == lock_id:
                self._held_lock = None
                self._advisory_unlock()
                return
            session = self._advisory_holder()
            if session is None:
                return
            # the holder is still connected (a stuck process): end its session so the lock is really free
            try:
                ended = self._q1("SELECT pg_terminate_backend(%s)", (session["backend_pid"],))[0]
            except StateError as exc:
                ended, why = False, str(exc)
            else:
                why = ""
            if not ended:
                raise StateError(
                    f"removed lock {lock_id}, but database session {session['backend_pid']} ({session['user']} "
                    f"from {session['client']}) still holds its advisory lock and could not be ended{': ' + why if why else ''}; "
                    f"stop that process, or have an administrator run SELECT pg_terminate_backend({session['backend_pid']})")
            deadline = time.monotonic() + 10
            while self._advisory_holder() is not None and time.monotonic() < deadline:
                time.sleep(0.05)

    # --- links -------------------------------------------------------------------------------------
    def put_links(self, integration: str, module: str, links: Iterable[Link]) -> None:
        """Upsert. A link replaces any link of the same left id *or* the same right id (a relink).

        Within one call later links win, as SQLite's row-by-row ``INSERT OR REPLACE`` does.
        """
        now = None
        rows = []
        for ln in links:
            at = ln.synced_at
            if at is None:
                at = now = now or self._clock()
            rows.append((ln.left_id, ln.right_id, ln.left_values, ln.right_values, ln.left_hash, ln.right_hash, at))
        self._upsert_links(integration, module, rows)

    def put_link_rows(self, integration: str, module: str, rows: Iterable[LinkRow], *,
                      synced_at: datetime | None = None) -> None:
        """``put_links`` of (left_id, right_id, left_values, right_values, left_hash, right_hash) rows, all
        synced at ``synced_at`` (default: now)."""
        at = synced_at or self._clock()
        self._upsert_links(integration, module, [(*r, at) for r in rows])

    def _upsert_links(self, integration: str, module: str, rows: list[tuple[Any, ...]]) -> None:
        """Rows (left_id, right_id, left_values, right_values, left_hash, right_hash, synced_at), later
        ones winning."""
        by_left: dict[str, tuple[Any, ...]] = {}
        right_owner: dict[str, str] = {}
        lefts: set[str] = set()  # every id of the batch, superseded ones too: each insert of the row-by-row
        rights: set[str] = set()  # replace removes the stored links it collides with
        for ln in rows:
            lid, rid = ln[0], ln[1]
            lefts.add(lid)
            rights.add(rid)
            old = by_left.pop(lid, None)
            if old is not None:
                right_owner.pop(old[1], None)
            other = right_owner.pop(rid, None)
            if other is not None:
                by_left.pop(other, None)
            by_left[lid] = ln
            right_owner[rid] = lid
        if not by_left:
            return
        last = stamp = None
        out = []
        for lid, rid, lv, rv, lh, rh, at in by_left.values():
            if at is not last:  # a batch's links share their time: format it once
                last, stamp = at, iso(at)
            left, right = encode_bases(lv, rv)
            out.append((lid, rid, left, right, lh, rh, stamp))
        with self.transaction():
            # The batch goes as JSON text, one parameter per list, unpacked by the server: psycopg's array
            # adaptation costs the client ~1 us per element (~60 us per link in text form, where it escapes
            # every quote of the merge bases). ARRAY(...) is computed once, so "= ANY" still goes through
            # the index; two deletes, each through its own unique index (an OR of both would scan the module)
            self._execute("DELETE FROM links WHERE integration = %s AND module = %s "
                          "AND left_id = ANY(ARRAY(SELECT json_array_elements_text(%s::json)))",
                          (integration, module, encode_rows(sorted(lefts))))
            self._execute("DELETE FROM links WHERE integration = %s AND module = %s "
                          "AND right_id = ANY(ARRAY(SELECT json_array_elements_text(%s::json)))",
                          (integration, module, encode_rows(sorted(rights))))
            self._execute(
                f"INSERT INTO links (integration, module, {LINK_COLS}) SELECT %s, %s, r->>0, r->>1, r->>2, r->>3, "
                "r->>4, r->>5, (r->>6)::timestamptz FROM json_array_elements(%s::json) AS r",
                (integration, module, encode_rows(out)))
            self._links_written += len(by_left)
            if self._links_written >= self._next_analyze:
                # fresh statistics after a bulk load (at 1,000, 10,000, 100,000... links written by this store):
                # without them the planner may look links up by left id through the right-id index and scan
                # the whole module (100x slower) until autovacuum gets round to it
                self._execute("ANALYZE links")
                self._next_analyze *= 10
