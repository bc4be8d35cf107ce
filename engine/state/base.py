"""The StateStore protocol: one seam, a SQLite implementation now and PostgreSQL later.

What a store holds (DESIGN.md "What the state store holds"):

- per integration: the deployed spec (normalised JSON, no secrets), its spec hash, a ``lineage``
  (uuid fixed at creation of the store) and a ``serial`` bumped on every change of deployed state;
  paused flag;
- the lock (id, who, host, pid, operation, since);
- the history of applies (who, when, spec hash, git commit);
- per integration and module: the link table, change cursors per side, the sync history, the
  failure log, and the journal of write batches in flight.

Transactions: ``with store.transaction():`` groups calls into one atomic commit; calls outside a
transaction commit on their own. Every method returns fresh values (dicts/dataclasses), never live rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Deployed:
    name: str
    spec: Mapping[str, Any]  # normalised spec, JSON-able, secrets never included
    spec_hash: str
    paused: bool = False
    applied_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LockInfo:
    id: str
    who: str
    host: str
    pid: int
    operation: str
    since: datetime
    note: str = ""  # set when the lock was taken over from a dead holder (says whose)


@dataclass(frozen=True, slots=True)
class Link:
    """Two records known to be the same, with the merge base: the last synced mapped values."""

    left_id: str
    right_id: str
    left_values: Mapping[str, Any] = field(default_factory=dict)  # last synced, left app's field names
    right_values: Mapping[str, Any] = field(default_factory=dict)
    left_hash: str = ""
    right_hash: str = ""
    synced_at: datetime | None = None


def _link_maker() -> Any:
    new = object.__new__
    s0, s1, s2, s3, s4, s5, s6 = (Link.__dict__[name].__set__ for name in (
        "left_id", "right_id", "left_values", "right_values", "left_hash", "right_hash", "synced_at"))

    def make_link(left_id: str, right_id: str, left_values: Mapping[str, Any], right_values: Mapping[str, Any],
                  left_hash: str = "", right_hash: str = "", synced_at: datetime | None = None) -> Link:
        """``Link(left_id, right_id, ...)`` in half the time (the slots are set directly instead of through
        the frozen dataclass's ``__init__``): a sync makes one per link read and per record planned."""
        link = new(Link)
        s0(link, left_id)
        s1(link, right_id)
        s2(link, left_values)
        s3(link, right_values)
        s4(link, left_hash)
        s5(link, right_hash)
        s6(link, synced_at)
        return link

    return make_link


make_link = _link_maker()


# A link as ``put_link_rows`` takes it: (left_id, right_id, left_values, right_values, left_hash, right_hash);
# a merge base may come as its stored JSON text already (a ``str``: ``engine.state.core.encode_json`` of it)
LinkRow = tuple[str, str, Mapping[str, Any] | str, Mapping[str, Any] | str, str, str]


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: int | None
    integration: str
    module: str
    direction: str  # "left-to-right" | "right-to-left"
    started: datetime
    ended: datetime | None = None
    created: int = 0
    updated: int = 0
    deleted: int = 0
    linked: int = 0
    conflicts: int = 0
    failed: int = 0
    api_calls: int = 0
    status: str = "ok"  # ok | failed | halted | running
    message: str = ""


@dataclass(frozen=True, slots=True)
class Failure:
    id: int | None
    integration: str
    module: str
    side: str  # the side of the record that failed to sync: left | right
    record_id: str
    code: str  # ALREADY_LINKED, TYPE_MISMATCH, MANDATORY_MISSING, INVALID_VALUE, AMBIGUOUS_MATCH, REJECTED_BY_APP
    message: str
    app_code: str = ""
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    attempts: int = 1
    resolved: bool = False


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A write batch recorded before it is sent, so a killed run can resolve it on resume."""

    id: int | None
    integration: str
    module: str
    target: str  # side written: left | right
    operation: str  # create | update | delete
    payload: tuple[Mapping[str, Any], ...]  # per record: {"source_id", "values", "target_id"?, "keys"}
    created: datetime | None = None


class StateStore(Protocol):
    url: str

    # --- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None: ...
    def transaction(self) -> AbstractContextManager[None]: ...
    def lineage(self) -> str: ...
    def serial(self) -> int: ...

    # --- deployed integrations ------------------------------------------------------------------
    def list_deployed(self) -> list[Deployed]: ...
    def get_deployed(self, name: str) -> Deployed | None: ...
    def put_deployed(self, deployed: Deployed) -> None: ...  # bumps serial
    def remove_deployed(self, name: str) -> None: ...  # bumps serial; forgets links, cursors, journal
    def set_paused(self, name: str, paused: bool) -> None: ...  # bumps serial
    def record_apply(self, *, who: str, spec_hash: str, commit: str | None, summary: str) -> None: ...
    def apply_history(self, limit: int = 50) -> list[dict[str, Any]]: ...

    # --- lock ------------------------------------------------------------------------------------
    def acquire_lock(self, operation: str, *, timeout: float = 10.0) -> LockInfo: ...  # raises LockedError
    def release_lock(self, lock_id: str) -> None: ...
    def lock_info(self) -> LockInfo | None: ...
    def force_unlock(self, lock_id: str) -> None: ...  # raises StateError when the id does not match

    # --- links (per integration + module) --------------------------------------------------------
    def get_link(self, integration: str, module: str, *, left_id: str | None = None,
                 right_id: str | None = None) -> Link | None: ...
    def get_links(self, integration: str, module: str, *, side: str, ids: Iterable[str]) -> dict[str, Link]: ...
    def iter_links(self, integration: str, module: str) -> Iterator[Link]: ...
    def count_links(self, integration: str, module: str) -> int: ...
    def has_links(self, integration: str, module: str) -> bool: ...  # count_links(...) > 0, without counting
    def put_links(self, integration: str, module: str, links: Iterable[Link]) -> None: ...
    # the same upsert for rows (left_id, right_id, left_values, right_values, left_hash, right_hash), all
    # synced at ``synced_at``: what a sync commits per batch, without a Link value per row
    def put_link_rows(self, integration: str, module: str, rows: Iterable[LinkRow], *,
                      synced_at: datetime | None = None) -> None: ...
    # ``put_link_rows`` of rows that most likely rewrite a link already there with the same two ids (the
    # updates of a linked pair): the same result, cheaper where a store can rewrite a row in place
    def update_link_rows(self, integration: str, module: str, rows: Sequence[LinkRow], *,
                         synced_at: datetime | None = None) -> None: ...
    def delete_links(self, integration: str, module: str, *, side: str, ids: Iterable[str]) -> None: ...
    def forget_module(self, integration: str, module: str) -> None: ...  # links, cursors, journal

    # --- cursors ---------------------------------------------------------------------------------
    def get_cursor(self, integration: str, module: str, side: str, kind: str = "changed") -> str | None: ...
    def set_cursor(self, integration: str, module: str, side: str, value: str, kind: str = "changed") -> None: ...

    # --- history and failure log ------------------------------------------------------------------
    def start_run(self, run: RunRecord) -> int: ...
    def finish_run(self, run: RunRecord) -> None: ...  # run.id set
    def list_runs(self, integration: str | None = None, *, since: datetime | None = None) -> list[RunRecord]: ...
    def prune_runs(self, before: datetime) -> int: ...
    def add_failure(self, failure: Failure) -> None: ...  # upsert on (integration, module, side, record_id, code): attempts += 1
    def list_failures(self, integration: str | None = None, *, include_resolved: bool = False) -> list[Failure]: ...
    def resolve_failures(self, integration: str, module: str, side: str, record_ids: Iterable[str]) -> None: ...
    def failing_ids(self, integration: str, module: str) -> dict[str, set[str]]: ...  # side -> unresolved record ids

    # --- journal ----------------------------------------------------------------------------------
    def journal_add(self, entry: JournalEntry) -> int: ...
    def journal_add_many(self, entries: Iterable[JournalEntry]) -> list[int]: ...  # one transaction; ids in order
    # the same for payloads encoded by the caller: items (target, operation, JSON text of the payload)
    def journal_add_texts(self, integration: str, module: str, items: Iterable[tuple[str, str, str]], *,
                          created: datetime | None = None) -> list[int]: ...
    def journal_done(self, entry_id: int) -> None: ...
    def journal_pending(self, integration: str, module: str | None = None) -> list[JournalEntry]: ...

    # --- generic key/value (sandbox bookkeeping, misc) ---------------------------------------------
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
