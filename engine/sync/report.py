"""What a sync run (or its dry run) did: counts per module and direction, samples, API calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.sync.normalize import mask_value

COUNT_KINDS = ("created", "updated", "deleted", "linked", "unlinked", "conflicts", "failed", "skipped")
OP_TO_COUNT = {"create": "created", "update": "updated", "delete": "deleted", "link": "linked",
               "unlink": "unlinked", "conflict": "conflicts", "fail": "failed", "skip": "skipped"}
DIRECTIONS = ("left-to-right", "right-to-left")
SAMPLES_PER_KIND = 3


@dataclass(slots=True)
class ModuleReport:
    module: str
    counts: dict[str, dict[str, int]] = field(
        default_factory=lambda: {d: {k: 0 for k in COUNT_KINDS} for d in DIRECTIONS})
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    api_calls: int = 0
    status: str = "ok"  # ok | failed | halted | paused
    message: str = ""
    initial: bool = False

    def add(self, direction: str, kind: str, n: int = 1) -> None:
        self.counts[direction][kind] += n

    def sample(self, kind: str, item: dict[str, Any]) -> None:
        lst = self.samples.setdefault(kind, [])
        if len(lst) < SAMPLES_PER_KIND:
            lst.append(item)

    def total(self, kind: str) -> int:
        return sum(self.counts[d][kind] for d in DIRECTIONS)

    def as_dict(self) -> dict[str, Any]:
        return {"module": self.module, "status": self.status, "message": self.message, "initial": self.initial,
                "api_calls": self.api_calls, "counts": {d: dict(c) for d, c in self.counts.items()},
                "samples": {k: list(v) for k, v in sorted(self.samples.items())}}


@dataclass(slots=True)
class SyncReport:
    integration: str
    dry_run: bool = False
    paused: bool = False
    modules: list[ModuleReport] = field(default_factory=list)
    api_calls: dict[str, int] = field(default_factory=lambda: {"left": 0, "right": 0})
    halted_deletes: int = 0  # deletes held back by guards.max_deletes
    message: str = ""

    def module(self, name: str) -> ModuleReport | None:
        return next((m for m in self.modules if m.module == name), None)

    def total(self, kind: str) -> int:
        return sum(m.total(kind) for m in self.modules)

    @property
    def writes(self) -> int:
        return sum(self.total(k) for k in ("created", "updated", "deleted"))

    @property
    def ok(self) -> bool:
        return all(m.status in ("ok", "halted") for m in self.modules)

    def summary(self) -> str:
        """One line: what the run did (or, dry, would do)."""
        if self.paused:
            return f"{self.integration} is paused; nothing exchanged"
        verb = "would be " if self.dry_run else ""
        parts = [f"{self.total(k)} {verb}{k}" for k in ("created", "updated", "deleted", "linked", "failed")
                 if self.total(k)] or ["no changes"]
        if self.total("conflicts"):
            parts.append(f"{self.total('conflicts')} conflicts")
        bad = [f"{m.module} {m.status}: {m.message}" for m in self.modules if m.status != "ok"]
        return ", ".join(parts) + (f" ({'; '.join(bad)})" if bad else "")

    def as_dict(self) -> dict[str, Any]:
        return {"integration": self.integration, "dry_run": self.dry_run, "paused": self.paused,
                "message": self.message, "halted_deletes": self.halted_deletes,
                "api_calls": dict(self.api_calls), "modules": [m.as_dict() for m in self.modules]}


def sample_of(op: Any, kinds: dict[str, str] | None = None) -> dict[str, Any]:
    """A display sample of one op, sensitive values partly masked."""
    kinds = kinds or {}
    item: dict[str, Any] = {"target": op.target}
    if op.source_id:
        item["source_id"] = op.source_id
    if op.target_id:
        item["target_id"] = op.target_id
    if op.values:
        item["values"] = {k: mask_value(k, v, kinds.get(k)) for k, v in sorted(op.values.items())}
    if op.code:
        item["code"] = op.code
    if op.message:
        item["message"] = str(mask_value("message", op.message)) if "@" in op.message else op.message
    if op.fields:
        item["fields"] = list(op.fields)
    return item
