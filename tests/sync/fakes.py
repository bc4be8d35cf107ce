"""An in-memory AppClient test double (a seam, not a monkeypatch): records, a deleted feed, a clock,
per-record rejections, request-level outages, and call counts per (module, operation)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from engine.apps.base import DeletedRecord, ListFilter, Record, WriteResult
from engine.errors import TransientAppError

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 1) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@dataclass
class FakeApp:
    app: str
    clock: Clock
    page_size: int = 200
    batch: int = 100
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # module -> id -> values
    meta: dict[tuple[str, str], tuple[datetime, datetime]] = field(default_factory=dict)  # (module,id) -> (created, modified)
    deleted: dict[str, list[DeletedRecord]] = field(default_factory=dict)
    calls: dict[tuple[str, str], int] = field(default_factory=dict)
    reject: dict[str, tuple[str, str]] = field(default_factory=dict)  # field value -> (code, message)
    fail_reads_after: int | None = None  # list pages served before a TransientAppError
    associates: dict[str, int] = field(default_factory=dict)
    users_: list[dict[str, Any]] = field(default_factory=list)
    crash_after_writes: int | None = None  # raise KeyboardInterrupt-like error after N write batches
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1000))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- test helpers --
    def put(self, module: str, values: Mapping[str, Any], *, rid: str | None = None,
            created: datetime | None = None) -> str:
        rid = rid or f"{self.app[:1]}{next(self._ids)}"
        now = self.clock.tick(0.001)
        self.records.setdefault(module, {})[rid] = dict(values)
        self.meta[(module, rid)] = (created or now, now)
        return rid

    def edit(self, module: str, rid: str, **values: Any) -> None:
        self.records[module][rid].update(values)
        c, _ = self.meta[(module, rid)]
        self.meta[(module, rid)] = (c, self.clock.tick(0.001))

    def remove(self, module: str, rid: str) -> None:
        del self.records[module][rid]
        self.deleted.setdefault(module, []).append(DeletedRecord(rid, self.clock.tick(0.001)))

    def all(self, module: str) -> dict[str, dict[str, Any]]:
        return self.records.get(module, {})

    def _count(self, module: str, op: str) -> None:
        with self._lock:
            self.calls[(module, op)] = self.calls.get((module, op), 0) + 1

    def stats(self) -> dict[tuple[str, str], int]:
        return dict(self.calls)

    def writes(self) -> int:
        return sum(n for (m, op), n in self.calls.items() if op in ("create", "update", "delete"))

    def _rec(self, module: str, rid: str) -> Record:
        c, m = self.meta[(module, rid)]
        return Record(id=rid, values=dict(self.records[module][rid]), modified=m, created=c)

    # -- AppClient --
    def list_changed(self, module: str, since: datetime | None, *, fields: Sequence[str] = (),
                     filter: ListFilter | None = None) -> Iterator[list[Record]]:
        def matching() -> list[str]:
            ids = [rid for rid in self.records.get(module, {})
                   if (since is None or self.meta[(module, rid)][1] >= since)
                   and (filter is None or filter.created_after is None
                        or self.meta[(module, rid)][0] >= filter.created_after)]
            ids.sort(key=lambda i: self.meta[(module, i)][1])
            return ids

        # offset paging over the live sort order, as the real APIs do: a record written between two
        # page requests moves to the end and shifts the pages still to come
        n = 0
        while True:
            if self.fail_reads_after is not None and n >= self.fail_reads_after:
                raise TransientAppError("503 service unavailable", app=self.app, code="INTERNAL_ERROR", status=503)
            self._count(module, "list")
            ids = matching()[n * self.page_size:(n + 1) * self.page_size]
            if not ids:
                return
            yield [self._rec(module, r) for r in ids]
            if len(ids) < self.page_size:
                return
            n += 1

    def list_deleted(self, module: str, since: datetime | None) -> Iterator[list[DeletedRecord]]:
        self._count(module, "deleted")
        out = [d for d in self.deleted.get(module, []) if since is None or d.deleted_at >= since]
        if out:
            yield out

    def get_many(self, module: str, ids: Sequence[str]) -> list[Record]:
        self._count(module, "get")
        return [self._rec(module, i) for i in ids if i in self.records.get(module, {})]

    def search(self, module: str, field: str, value: Any) -> list[Record]:
        self._count(module, "search")
        want = str(value).strip().lower()
        return [self._rec(module, r) for r, v in self.records.get(module, {}).items()
                if str(v.get(field) or "").strip().lower() == want]

    def _crash_check(self) -> None:
        if self.crash_after_writes is not None:
            if self.crash_after_writes <= 0:
                raise SystemExit("killed")
            self.crash_after_writes -= 1

    def _rejected(self, values: Mapping[str, Any]) -> WriteResult | None:
        for v in values.values():
            if isinstance(v, str) and v in self.reject:
                code, msg = self.reject[v]
                return WriteResult(ok=False, code=code, message=msg)
        return None

    def create_many(self, module: str, records: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        out = []
        for i in range(0, len(records), self.batch):
            self._count(module, "create")
            for values in records[i:i + self.batch]:
                bad = self._rejected(values)
                if bad:
                    out.append(bad)
                    continue
                rid = self.put(module, values)
                out.append(WriteResult(ok=True, id=rid, modified=self.meta[(module, rid)][1]))
            self._crash_check()
        return out

    def update_many(self, module: str, updates: Sequence[tuple[str, Mapping[str, Any]]]) -> list[WriteResult]:
        out = []
        for i in range(0, len(updates), self.batch):
            self._count(module, "update")
            for rid, values in updates[i:i + self.batch]:
                bad = self._rejected(values)
                if bad or rid not in self.records.get(module, {}):
                    out.append(bad or WriteResult(ok=False, code="INVALID_DATA", message="no such record"))
                    continue
                self.edit(module, rid, **values)
                out.append(WriteResult(ok=True, id=rid))
            self._crash_check()
        return out

    def delete_many(self, module: str, ids: Sequence[str]) -> list[WriteResult]:
        out = []
        for i in range(0, len(ids), self.batch):
            self._count(module, "delete")
            for rid in ids[i:i + self.batch]:
                if rid in self.records.get(module, {}):
                    self.remove(module, rid)
                out.append(WriteResult(ok=True, id=rid))
        return out

    def fields(self, module: str) -> list[dict[str, Any]]:
        return []

    def count_associates(self, module: str, record_id: str) -> int:
        self._count(module, "associates")
        return self.associates.get(record_id, 0)

    def users(self) -> list[dict[str, Any]]:
        self._count("users", "list")
        return list(self.users_)

    def close(self) -> None:
        pass
