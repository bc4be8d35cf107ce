"""The configuration plan: a frozen value with one canonical JSON form (``schemas/plan.v1.schema.json``).

A ``Plan`` says what changes in the deployed integrations (``changes``, sorted by address), what
the apps changed under us (``drift``), and what apply will do, in order (``steps``: first the state
steps, committed in one transaction, then the sync steps). Apply interprets ``steps``; it never
re-diffs. Every renderer (text, Markdown, JSON) starts from ``Plan.to_dict()``.

A plan is bound to the state it was made against (``lineage`` + ``serial``) and to the specs it was
made from (``spec_hash``); ``plan_hash`` lets a saved plan file prove it was not edited.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FORMAT_VERSION = "1"
ACTIONS: tuple[str, ...] = ("create", "update", "delete", "no-op")
CATEGORIES: tuple[str, ...] = ("breaking", "data", "metadata")

# step type -> whether it changes deployed state (run in the one transaction) or runs a sync
STATE_STEPS: tuple[str, ...] = ("put_integration", "forget_module", "remove_integration")
SYNC_STEPS: tuple[str, ...] = ("initial_sync", "backfill", "full_resync", "catch_up")
STEP_TYPES: tuple[str, ...] = STATE_STEPS + SYNC_STEPS


@dataclass(frozen=True, slots=True)
class Change:
    address: str
    action: str  # create | update | delete | no-op
    before: Any
    after: Any
    category: str  # breaking | data | metadata
    destructive: bool
    reason: str

    @property
    def symbol(self) -> str:
        if self.action == "update" and self.category == "breaking":
            return "-/+"
        return {"create": "+", "update": "~", "delete": "-", "no-op": " "}[self.action]

    def to_dict(self) -> dict[str, Any]:
        return {"address": self.address, "action": self.action, "category": self.category,
                "destructive": self.destructive, "reason": self.reason, "before": self.before,
                "after": self.after}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Change":
        return cls(address=d["address"], action=d["action"], before=d.get("before"), after=d.get("after"),
                   category=d["category"], destructive=bool(d["destructive"]), reason=d.get("reason", ""))


@dataclass(frozen=True, slots=True)
class Drift:
    """A difference between what the deployed spec relies on and what the live app now has."""

    address: str
    side: str  # left | right
    app: str
    module: str  # the app's module api name
    field: str
    problem: str  # deleted | type-changed | encrypted
    expected: Any
    actual: Any
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"address": self.address, "side": self.side, "app": self.app, "module": self.module,
                "field": self.field, "problem": self.problem, "expected": self.expected, "actual": self.actual,
                "message": self.message}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Drift":
        return cls(**{k: d.get(k) for k in ("address", "side", "app", "module", "field", "problem", "expected",
                                            "actual", "message")})


@dataclass(frozen=True, slots=True)
class Step:
    """One thing apply does. ``payload`` carries what a state step writes (a deployed spec)."""

    type: str
    integration: str
    module: str | None = None
    fields: tuple[str, ...] = ()
    reason: str = ""
    payload: Mapping[str, Any] | None = None

    @property
    def is_sync(self) -> bool:
        return self.type in SYNC_STEPS

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.type, "integration": self.integration, "module": self.module,
                             "fields": list(self.fields), "reason": self.reason}
        if self.payload is not None:
            d["payload"] = self.payload
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Step":
        return cls(type=d["type"], integration=d["integration"], module=d.get("module"),
                   fields=tuple(d.get("fields") or ()), reason=d.get("reason", ""), payload=d.get("payload"))


@dataclass(frozen=True, slots=True)
class Summary:
    add: int = 0
    change: int = 0
    destroy: int = 0
    unchanged_integrations: int = 0
    unchanged_modules: int = 0

    def line(self) -> str:
        return f"Plan: {self.add} to add, {self.change} to change, {self.destroy} to destroy."


@dataclass(frozen=True, slots=True)
class Plan:
    id: str
    lineage: str
    serial: int
    spec_hash: str
    created_at: str  # ISO 8601, UTC
    changes: tuple[Change, ...]
    steps: tuple[Step, ...] = ()
    drift: tuple[Drift, ...] = ()
    notes: tuple[str, ...] = ()
    refresh: bool = True
    prune: bool = True
    paths: tuple[str, ...] = ()
    scope: tuple[str, ...] = ()  # integrations the specs declared
    prior: tuple[tuple[str, str | None], ...] = ()  # name -> deployed spec hash the plan was made against
    origin: str = "specs"  # specs: made from the repository's specs | destroy: `syncform destroy NAME`
    format_version: str = FORMAT_VERSION
    syncform_version: str = ""

    # --- what a reader asks ---------------------------------------------------------------------
    @property
    def summary(self) -> Summary:
        acts = [c.action for c in self.changes]
        no_op = [c for c in self.changes if c.action == "no-op"]
        return Summary(add=acts.count("create"), change=acts.count("update"), destroy=acts.count("delete"),
                       unchanged_integrations=sum(1 for c in no_op if "." not in c.address),
                       unchanged_modules=sum(1 for c in no_op if c.address.count(".") == 1))

    @property
    def has_changes(self) -> bool:
        return any(c.action != "no-op" for c in self.changes) or bool(self.steps)

    @property
    def empty(self) -> bool:
        return not self.has_changes and not self.drift

    def to_dict(self) -> dict[str, Any]:
        from engine.spec.serialize import spec_hash

        s = self.summary
        body = {
            "format_version": self.format_version,
            "id": self.id,
            "syncform_version": self.syncform_version,
            "created_at": self.created_at,
            "lineage": self.lineage,
            "serial": self.serial,
            "spec_hash": self.spec_hash,
            "refresh": self.refresh,
            "prune": self.prune,
            "paths": list(self.paths),
            "scope": list(self.scope),
            "prior": {name: h for name, h in self.prior},
            "origin": self.origin,
            "summary": {"add": s.add, "change": s.change, "destroy": s.destroy,
                        "unchanged_integrations": s.unchanged_integrations,
                        "unchanged_modules": s.unchanged_modules, "drift": len(self.drift)},
            "changes": [c.to_dict() for c in self.changes],
            "drift": [d.to_dict() for d in self.drift],
            "steps": [st.to_dict() for st in self.steps],
            "notes": list(self.notes),
        }
        body["plan_hash"] = spec_hash({k: v for k, v in body.items() if k != "plan_hash"})
        return body

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, verify: bool = True) -> "Plan":
        from engine.errors import StateError
        from engine.spec.serialize import spec_hash

        version = d.get("format_version")
        if version != FORMAT_VERSION:
            raise StateError(f"plan format_version {version!r} is not supported by this syncform "
                             f"(it reads {FORMAT_VERSION!r}); make the plan again with this version")
        if verify:
            expected = spec_hash({k: v for k, v in d.items() if k != "plan_hash"})
            if d.get("plan_hash") != expected:
                raise StateError("the plan file was modified after it was made (plan_hash does not match); "
                                 "make the plan again instead of editing it")
        return cls(id=d["id"], lineage=d["lineage"], serial=int(d["serial"]), spec_hash=d["spec_hash"],
                   created_at=d["created_at"], changes=tuple(Change.from_dict(c) for c in d.get("changes", ())),
                   steps=tuple(Step.from_dict(s) for s in d.get("steps", ())),
                   drift=tuple(Drift.from_dict(x) for x in d.get("drift", ())), notes=tuple(d.get("notes", ())),
                   refresh=bool(d.get("refresh", True)), prune=bool(d.get("prune", True)),
                   paths=tuple(d.get("paths", ())), scope=tuple(d.get("scope", ())),
                   prior=tuple(sorted((d.get("prior") or {}).items())), origin=d.get("origin", "specs"),
                   format_version=version, syncform_version=d.get("syncform_version", ""))


def load_plan(path: str) -> Plan:
    import json

    from engine.errors import StateError

    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise StateError(f"{path}: no such plan file") from None
    except (OSError, ValueError) as exc:
        raise StateError(f"{path}: not a syncform plan file ({exc})") from None
    if not isinstance(data, dict) or "format_version" not in data:
        raise StateError(f"{path}: not a syncform plan file (no format_version)")
    return Plan.from_dict(data)


def save_plan(plan: Plan, path: str) -> None:
    import json
    import os
    from pathlib import Path

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # owner-only, whatever the umask
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(plan.to_dict(), indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, target)
