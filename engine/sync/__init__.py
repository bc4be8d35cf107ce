"""The sync engine: record plan (match, map, merge, deletes) and its executor (batches, journal).

Public surface::

    sync_integration(integration, *, store, left, right, modules=None, full=False, dry_run=False,
                     clock=None, progress=None) -> SyncReport
    preview(integration, *, store, left, right, modules=None, full=False, clock=None) -> SyncReport
    retry_failures(integration, *, store, left, right, ids=None, clock=None) -> SyncReport

See ``docs/sync.md`` for the behaviour, ``engine.sync.plan`` for the record plan.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.sync.report import SyncReport


def sync_integration(integration: Any, **kwargs: Any) -> "SyncReport":
    from engine.sync.engine import sync_integration as _run

    return _run(integration, **kwargs)


def preview(integration: Any, **kwargs: Any) -> "SyncReport":
    """What a sync would do, without writing anything: counts per module and side, masked samples."""
    from engine.sync.engine import sync_integration as _run

    kwargs["dry_run"] = True
    return _run(integration, **kwargs)


def retry_failures(integration: Any, **kwargs: Any) -> "SyncReport":
    from engine.sync.engine import retry_failures as _retry

    return _retry(integration, **kwargs)


__all__ = ["preview", "retry_failures", "sync_integration"]
