"""The sync engine: record plan (match, map, merge, deletes) and its executor (batches, journal).

Public surface::

    sync_integration(integration, *, store, left, right, modules=None, full=False, dry_run=False,
                     clock=None, progress=None) -> SyncReport
    preview(integration, *, store, left, right, modules=None, full=False, clock=None) -> SyncReport
    retry_failures(integration, *, store, left, right, ids=None, clock=None) -> SyncReport

See ``docs/sync.md`` for the behaviour, ``engine.sync.plan`` for the record plan.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.sync.report import SyncReport

# A sync allocates a few small objects per record (values, ops, links) that live for one page; with
# CPython's default thresholds (700 allocations) the collector runs every few records and, once
# pages of records are held, rescans them each time: 15-25 % of the planner's CPU. A run raises the
# first threshold so a collection happens every ~50k allocations (a page or two), which keeps cycles
# collected while the sync lasts, and restores the caller's thresholds after.
GC_THRESHOLD = (50_000, 20, 20)


@contextmanager
def _collector_for_a_run() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def sync_integration(integration: Any, **kwargs: Any) -> "SyncReport":
    from engine.sync.engine import sync_integration as _run

    with _collector_for_a_run():
        return _run(integration, **kwargs)


def preview(integration: Any, **kwargs: Any) -> "SyncReport":
    """What a sync would do, without writing anything: counts per module and side, masked samples."""
    from engine.sync.engine import sync_integration as _run

    kwargs["dry_run"] = True
    with _collector_for_a_run():
        return _run(integration, **kwargs)


def retry_failures(integration: Any, **kwargs: Any) -> "SyncReport":
    from engine.sync.engine import retry_failures as _retry

    with _collector_for_a_run():
        return _retry(integration, **kwargs)


__all__ = ["preview", "retry_failures", "sync_integration"]
