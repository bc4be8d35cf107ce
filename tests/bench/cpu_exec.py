"""The executor's own CPU per record (``python -m tests.bench.cpu`` phases ``exec-new`` and ``exec-match``).

The real ``Executor`` and write buffer (``engine.sync.executor``) carry a run's planned ops out against
a real SQLite state store, as ``ModuleRun._sync_changes`` does (ops added per 200-record page, the
buffer flushing whole batches, a final flush), with an ``AppClient`` that answers writes in memory
(an id per created record, no HTTP): what is measured is the journal, the batching, the hand-offs to
the write threads, the result handling, the links, failures and journal commit.

Two figures per phase: the calling thread's CPU (``thread_time``: what the sync's calling thread pays)
and the process's (``process_time``: the write threads' hand-offs and the in-memory client's answers on
top).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

PAGE = 200  # records per planned page, as the engine plans them


class MemoryClient:
    """An ``AppClient`` that answers writes in memory: a new id per create, ok per update and delete."""

    def __init__(self, app: str, prefix: str):
        from engine.apps.base import WriteResult

        self.app = app
        self.http = self  # Run.concurrency reads http.max_concurrency: the bench's connections allow 10
        self.max_concurrency = 10
        self._ok = WriteResult(ok=True)
        self._new = WriteResult
        self._ids = itertools.count(1)
        self._prefix = prefix
        self._lock = threading.Lock()
        self.calls: dict[tuple[str, str], int] = {}
        self.written = 0

    def _count(self, module: str, op: str, n: int) -> None:
        with self._lock:
            self.calls[(module, op)] = self.calls.get((module, op), 0) + 1
            self.written += n

    def stats(self) -> dict[tuple[str, str], int]:
        return dict(self.calls)

    def create_many(self, module: str, records: Sequence[Any]) -> list[Any]:
        self._count(module, "create", len(records))
        new, p = self._new, self._prefix
        with self._lock:
            first = next(self._ids)
            for _ in range(len(records) - 1):
                next(self._ids)
        return [new(ok=True, id=f"{p}{first + k}") for k in range(len(records))]

    def update_many(self, module: str, records: Sequence[Any]) -> list[Any]:
        self._count(module, "update", len(records))
        return [self._ok] * len(records)

    def delete_many(self, module: str, ids: Sequence[str]) -> list[Any]:
        self._count(module, "delete", len(ids))
        return [self._ok] * len(ids)


def module_run(integration: Any, store: Any, left: MemoryClient, right: MemoryClient) -> Any:
    """A real ``ModuleRun`` of ``integration``'s first module (its executor is built from it)."""
    from engine.sync.engine import ModuleRun, Run

    run = Run(integration, store=store, left=left, right=right, full=False, dry_run=False, clock=None, progress=None)
    return ModuleRun(run, integration.modules[0])


def carry_out(mr: Any, pages: Iterable[list[Any]]) -> None:
    """The ops of each planned page through the write buffer, as ``ModuleRun._sync_changes`` does."""
    from engine.sync.engine import _add
    from engine.sync.executor import BATCH, Executor, _Buffer

    ex = Executor(mr)
    try:
        buffer = _Buffer(ex, BATCH * max(mr.r.concurrency("left"), mr.r.concurrency("right")))
        for ops in pages:
            _add(buffer, ops)
        buffer.flush()
    finally:
        ex.close()


def measure(ops: list[Any], integration: Any, db: str, *, n: int) -> tuple[float, float, dict[str, Any]]:
    """(calling thread µs per record, process µs per record, what was committed) of carrying ``ops`` out
    (planned for ``n`` records) into a fresh state at ``db``."""
    from engine.state import open_store

    store = open_store(f"sqlite:///{db}")
    try:
        left, right = MemoryClient(integration.left.app, "l"), MemoryClient(integration.right.app, "r")
        mr = module_run(integration, store, left, right)
        pages = [ops[i:i + PAGE] for i in range(0, len(ops), PAGE)]
        t, p = time.thread_time(), time.process_time()
        carry_out(mr, pages)
        main, proc = (time.thread_time() - t) / n * 1e6, (time.process_time() - p) / n * 1e6
        name, module = integration.name, integration.modules[0].name
        got = {"links": store.count_links(name, module), "journal": len(store.journal_pending(name, module)),
               "written": left.written + right.written}
        return main, proc, got
    finally:
        store.close()


def read_links(db: str, integration: Any, *, n: int, page: int = PAGE) -> float:
    """CPU µs per record of reading the links of a state back as a run does: ``get_links`` per page of
    ``page`` ids, by right id (the right side's pages) and by left id (the left side's), each once."""
    from engine.state import open_store

    store = open_store(f"sqlite:///{db}")
    try:
        name, module = integration.name, integration.modules[0].name
        links = list(store.iter_links(name, module))
        t = time.process_time()
        for side in ("right", "left"):
            ids = [getattr(ln, f"{side}_id") for ln in links]
            for i in range(0, len(ids), page):
                got = store.get_links(name, module, side=side, ids=ids[i:i + page])
                assert len(got) == len(ids[i:i + page])
        return (time.process_time() - t) / n * 1e6
    finally:
        store.close()


def update_links(db: str, integration: Any, *, share: float = 0.02, batch: int = 100, upsert: bool = False) -> float:
    """CPU µs per link of rewriting ``share`` of a state's links (new merge bases, same ids) with
    ``update_link_rows`` (``upsert``: ``put_link_rows``), ``batch`` per transaction, as the
    executor commits a 1 % edit's updates: the rows sit at random places of the links table, so each
    costs page writes (the WAL takes whole pages) rather than an append."""
    import random

    from engine.state import open_store

    store = open_store(f"sqlite:///{db}")
    try:
        name, module = integration.name, integration.modules[0].name
        links = list(store.iter_links(name, module))
        picked = random.Random(6).sample(links, max(1, int(len(links) * share)))
        rows = [(ln.left_id, ln.right_id, {**ln.left_values, "Title": "Edited"}, {**ln.right_values, "Title": "Edited"},
                 ln.left_hash, ln.right_hash) for ln in picked]
        t = time.process_time()
        put = store.put_link_rows if upsert else store.update_link_rows
        for i in range(0, len(rows), batch):
            put(name, module, rows[i:i + batch])
        return (time.process_time() - t) / len(rows) * 1e6
    finally:
        store.close()
