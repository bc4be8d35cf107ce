"""The one interface the sync engine uses to talk to any app.

Every app client (``engine.apps.zoho`` for Bigin and CRM, ``engine.apps.desk``,
``engine.apps.bookings``) implements ``AppClient``. Records cross this seam as ``Record`` values
whose ``values`` are keyed by the field api names of the app's catalog (Desk custom fields as
``cf.cf_name``), in the app's own wire formats (the sync engine converts types). Lookups read back as
``{"id": ..., "name": ...}`` dicts and are written as ``{"id": ...}``.

Errors: request-level failures raise ``engine.errors.AppError`` subclasses (transient or terminal,
after the client's own bounded retries); per-record failures of a batch come back as
``WriteResult(ok=False, ...)`` and never raise.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Record:
    id: str
    values: Mapping[str, Any]
    modified: datetime  # timezone-aware, UTC
    created: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeletedRecord:
    id: str
    deleted_at: datetime


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The outcome of one record in a batch write, in input order."""

    ok: bool
    id: str | None = None  # the record's id (the new id for a create)
    code: str = ""  # the app's own code on failure: INVALID_DATA, MANDATORY_NOT_FOUND, DUPLICATE_DATA...
    message: str = ""
    field: str | None = None  # the offending field's api name, when the app names one
    transient: bool = False  # worth retrying as is (429/5xx for this record)
    modified: datetime | None = None
    # dataclasses.field: the attribute ``field`` above shadows the name inside this class body
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ListFilter:
    """Which records a module syncs: a CRM/Bigin view, Desk departments, a creation floor."""

    view: str | None = None
    departments: tuple[str, ...] = ()
    created_after: datetime | None = None


@runtime_checkable
class AppClient(Protocol):
    app: str

    def list_changed(self, module: str, since: datetime | None, *, fields: Sequence[str] = (),
                     filter: ListFilter | None = None) -> Iterator[list[Record]]:
        """Pages of records modified at or after ``since`` (all when None), oldest first where the
        app can sort so. Reads to the end (page tokens past 2,000 for CRM/Bigin)."""
        ...

    def list_deleted(self, module: str, since: datetime | None) -> Iterator[list[DeletedRecord]]:
        ...

    def get_many(self, module: str, ids: Sequence[str]) -> list[Record]:
        ...

    def create_many(self, module: str, records: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        """Batched by the app's limit (100 for CRM/Bigin); one result per input, in order."""
        ...

    def update_many(self, module: str, updates: Sequence[tuple[str, Mapping[str, Any]]]) -> list[WriteResult]:
        ...

    def delete_many(self, module: str, ids: Sequence[str]) -> list[WriteResult]:
        ...

    def search(self, module: str, field: str, value: Any) -> list[Record]:
        """Records whose ``field`` equals ``value`` (used to resolve pending creates after a crash)."""
        ...

    def fields(self, module: str) -> list[dict[str, Any]]:
        """Live field metadata, in the catalog's field shape (api_name, type, mandatory, encrypted...)."""
        ...

    def count_associates(self, module: str, record_id: str) -> int:
        """How many associates (seed 001: tickets, contacts, attachments...) a record has."""
        ...

    def users(self) -> list[dict[str, Any]]:
        """The app's users: ``[{"id", "email", "name"}]``, for owner mapping."""
        ...

    def close(self) -> None:
        ...


@dataclass(frozen=True, slots=True)
class CallStats:
    """API calls a client made, per (module, operation). The benchmarks compare these to the floor."""

    calls: Mapping[tuple[str, str], int] = field(default_factory=dict)
