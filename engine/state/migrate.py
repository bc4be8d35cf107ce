"""Move a whole state from one store to another (``syncform state migrate --from URL --to URL``).

Everything moves: the deployed integrations, the lineage and serial (so saved plans stay valid against
the new store), the history of applies, the links, cursors, sync runs, failure log, journal of write
batches in flight and the meta keys, with their ids. The operation lock itself does not: both stores
are locked for the duration (``"state migrate"``), so no apply or sync writes the source meanwhile.

The target must be empty (a freshly created store); the source is left as it was. After the import the
target is exported again and compared with what was read from the source, value for value.

Both SQLite and PostgreSQL stores are supported, in either direction (and SQLite to SQLite, PostgreSQL
to PostgreSQL); their tables are the same, only the column types differ (text timestamps and integer
flags in SQLite, ``timestamptz`` and ``boolean`` in PostgreSQL), and a dump holds neutral Python values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.errors import StateError

# table -> ((column, kind), ...), key columns (rows are kept sorted by them). Kinds: text, int, bool, ts.
TABLES: tuple[tuple[str, tuple[tuple[str, str], ...], tuple[str, ...]], ...] = (
    ("deployed", (("name", "text"), ("spec", "text"), ("spec_hash", "text"), ("paused", "bool"),
                  ("applied_at", "ts")), ("name",)),
    ("applies", (("id", "int"), ("at", "ts"), ("who", "text"), ("spec_hash", "text"), ("git_commit", "text"),
                 ("serial", "int"), ("summary", "text")), ("id",)),
    ("links", (("integration", "text"), ("module", "text"), ("left_id", "text"), ("right_id", "text"),
               ("left_values", "text"), ("right_values", "text"), ("left_hash", "text"), ("right_hash", "text"),
               ("synced_at", "ts")), ("integration", "module", "left_id")),
    ("cursors", (("integration", "text"), ("module", "text"), ("side", "text"), ("kind", "text"),
                 ("value", "text")), ("integration", "module", "side", "kind")),
    ("runs", (("id", "int"), ("integration", "text"), ("module", "text"), ("direction", "text"),
              ("started", "ts"), ("ended", "ts"), ("created", "int"), ("updated", "int"), ("deleted", "int"),
              ("linked", "int"), ("conflicts", "int"), ("failed", "int"), ("api_calls", "int"),
              ("status", "text"), ("message", "text")), ("id",)),
    ("failures", (("id", "int"), ("integration", "text"), ("module", "text"), ("side", "text"),
                  ("record_id", "text"), ("code", "text"), ("message", "text"), ("app_code", "text"),
                  ("first_seen", "ts"), ("last_seen", "ts"), ("attempts", "int"), ("resolved", "bool")), ("id",)),
    ("journal", (("id", "int"), ("integration", "text"), ("module", "text"), ("target", "text"),
                 ("operation", "text"), ("payload", "text"), ("created", "ts")), ("id",)),
    ("meta", (("key", "text"), ("value", "text")), ("key",)),
)
_IDENTITY_TABLES = ("applies", "runs", "failures", "journal")


@dataclass(frozen=True, slots=True)
class StateDump:
    """A whole state as neutral values: ``tables[name]`` is a tuple of rows in ``TABLES`` column order."""

    lineage: str
    serial: int
    created_at: datetime | None
    tables: Mapping[str, tuple[tuple[Any, ...], ...]]

    def counts(self) -> dict[str, int]:
        return {name: len(self.tables.get(name, ())) for name, _, _ in TABLES}


@dataclass(frozen=True, slots=True)
class MigrationReport:
    source: str  # URLs as shown to people (passwords redacted)
    target: str
    lineage: str
    serial: int
    counts: Mapping[str, int]


# --- values ---------------------------------------------------------------------------------------

def _to_neutral(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "ts":
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)
    if kind == "bool":
        return bool(value)
    if kind == "int":
        return int(value)
    return value


def _to_sqlite(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "ts":
        return value.astimezone(timezone.utc).isoformat(timespec="microseconds")
    if kind == "bool":
        return int(bool(value))
    return value


# --- backends -------------------------------------------------------------------------------------

class _Backend:
    """Raw table access to one store (the stores' public API has no bulk export)."""

    def __init__(self, store: Any):
        from engine.state.sqlite import SQLiteStore

        self.store = store
        if isinstance(store, SQLiteStore):
            self.kind = "sqlite"
            return
        try:
            from engine.state.postgres import PostgresStore
        except ImportError:  # pragma: no cover
            PostgresStore = None  # type: ignore[assignment,misc]
        if PostgresStore is not None and isinstance(store, PostgresStore):
            self.kind = "postgres"
            return
        raise StateError(f"cannot migrate state {getattr(store, 'url', store)!s}: only SQLite and PostgreSQL stores "
                         f"are supported (got {type(store).__name__})")

    def read(self) -> AbstractContextManager[None]:
        """A consistent view for the whole export."""
        if self.kind == "postgres":
            return self.store.snapshot()
        return self.store.transaction()  # BEGIN IMMEDIATE: nobody writes meanwhile

    def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        if self.kind == "sqlite":
            return [tuple(r) for r in self.store._db.execute(sql).fetchall()]
        return [tuple(r) for r in self.store._qa(sql)]

    def insert(self, table: str, columns: tuple[tuple[str, str], ...], rows: tuple[tuple[Any, ...], ...]) -> None:
        names = ", ".join(c for c, _ in columns)
        if self.kind == "sqlite":
            marks = ", ".join("?" * len(columns))
            self.store._db.executemany(
                f"INSERT INTO {table} ({names}) VALUES ({marks})",
                [tuple(_to_sqlite(v, k) for v, (_, k) in zip(row, columns)) for row in rows])
        else:
            marks = ", ".join(["%s"] * len(columns))
            self.store._executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", [tuple(r) for r in rows])

    def set_info(self, lineage: str, serial: int, created_at: datetime | None) -> None:
        if self.kind == "sqlite":
            self.store._db.execute("UPDATE store_info SET lineage = ?, serial = ?, created_at = COALESCE(?, created_at) "
                                   "WHERE id = 1", (lineage, serial, _to_sqlite(created_at, "ts")))
        else:
            self.store._execute("UPDATE store_info SET lineage = %s, serial = %s, "
                                "created_at = COALESCE(%s, created_at) WHERE id = 1", (lineage, serial, created_at))

    def after_import(self) -> None:
        """Make generated ids continue after the imported ones."""
        if self.kind != "postgres":
            return  # SQLite's AUTOINCREMENT follows the largest id inserted
        for table in _IDENTITY_TABLES:
            self.store._execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)")


def export_state(store: Any) -> StateDump:
    """Read the whole state of ``store`` (SQLite or PostgreSQL) in one consistent view."""
    backend = _Backend(store)
    with backend.read():
        info = backend.fetch("SELECT lineage, serial, created_at FROM store_info WHERE id = 1")
        if not info:
            raise StateError(f"state {store.url} has no store_info row: it is not a syncform state")
        lineage, serial, created_at = info[0]
        tables: dict[str, tuple[tuple[Any, ...], ...]] = {}
        for name, columns, key in TABLES:
            rows = backend.fetch(f"SELECT {', '.join(c for c, _ in columns)} FROM {name}")
            neutral = [tuple(_to_neutral(v, k) for v, (_, k) in zip(row, columns)) for row in rows]
            positions = [i for i, (c, _) in enumerate(columns) if c in key]
            neutral.sort(key=lambda r: tuple(r[i] for i in positions))
            tables[name] = tuple(neutral)
    return StateDump(lineage=str(lineage), serial=int(serial), created_at=_to_neutral(created_at, "ts"),
                     tables=tables)


def import_state(store: Any, dump: StateDump) -> None:
    """Write ``dump`` into ``store``, which must hold no state yet (its lock may be held: it is kept)."""
    backend = _Backend(store)
    with store.transaction():
        filled = {name: n for name, n in
                  ((name, len(backend.fetch(f"SELECT 1 FROM {name} LIMIT 1"))) for name, _, _ in TABLES) if n}
        if filled:
            raise StateError(f"target state {store.url} is not empty (it has {', '.join(sorted(filled))}); "
                             "migrate into a new, empty state (a new SQLite file, or a new PostgreSQL database or "
                             "?schema=)")
        for name, columns, _ in TABLES:
            rows = dump.tables.get(name, ())
            if rows:
                backend.insert(name, columns, rows)
        backend.set_info(dump.lineage, dump.serial, dump.created_at)
        backend.after_import()


def _differences(a: StateDump, b: StateDump) -> list[str]:
    out = []
    if (a.lineage, a.serial) != (b.lineage, b.serial):
        out.append(f"lineage/serial {a.lineage}/{a.serial} became {b.lineage}/{b.serial}")
    for name, _, _ in TABLES:
        if a.tables.get(name, ()) != b.tables.get(name, ()):
            out.append(f"{name} ({len(a.tables.get(name, ()))} rows read, {len(b.tables.get(name, ()))} written)")
    return out


def _sqlite_path(url: str, base: str | Path | None) -> str | None:
    scheme, _, rest = url.partition("://")
    if scheme.lower() != "sqlite" or not rest.startswith("/"):
        return None
    location = rest[1:]
    if location == ":memory:":
        return None
    return location if location.startswith("/") else str(Path(base or ".") / location)


def _shown(url: str) -> str:
    from engine.state.postgres import redact_url

    return redact_url(url)


@contextmanager
def _locked(store: Any, timeout: float) -> Iterator[None]:
    lock = store.acquire_lock("state migrate", timeout=timeout)
    try:
        yield
    finally:
        store.release_lock(lock.id)


def migrate_state(source_url: str, target_url: str, *, base: str | Path | None = None, lock_timeout: float = 10.0,
                  progress: Callable[[str], None] | None = None, **options: Any) -> MigrationReport:
    """Copy the whole state at ``source_url`` into the new, empty state at ``target_url``.

    ``base`` is the directory relative SQLite paths are taken from. Raises ``StateError`` when the source
    does not exist, the target is not empty, either is locked longer than ``lock_timeout`` seconds
    (``LockedError``), or the copy read back differs from the source.
    """
    from engine.state import open_store

    say = progress or (lambda _msg: None)
    src_path = _sqlite_path(source_url, base)
    if src_path is not None and not Path(src_path).exists():
        raise StateError(f"no state at {source_url} ({src_path} does not exist); nothing to migrate")
    dst_path = _sqlite_path(target_url, base)
    if src_path is not None and dst_path is not None and Path(src_path).resolve() == Path(dst_path).resolve():
        raise StateError(f"--from and --to name the same state ({source_url})")
    source = open_store(source_url, base=base, **options)
    try:
        target = open_store(target_url, base=base, **options)
        try:
            if source.lineage() == target.lineage():
                raise StateError(f"{_shown(source_url)} and {_shown(target_url)} are the same state, or one is "
                                 f"already a copy of the other (lineage {source.lineage()}); migrate into a new, "
                                 "empty state")
            with _locked(source, lock_timeout), _locked(target, lock_timeout):
                say(f"reading {source.url}")
                dump = export_state(source)
                say(f"writing {target.url}")
                import_state(target, dump)
                check = export_state(target)
                diff = _differences(dump, check)
                if diff:
                    raise StateError(f"the state written to {target.url} does not read back as the source: "
                                     f"{'; '.join(diff)}")
            return MigrationReport(source=source.url, target=target.url, lineage=dump.lineage, serial=dump.serial,
                                   counts=dump.counts())
        finally:
            target.close()
    finally:
        source.close()
