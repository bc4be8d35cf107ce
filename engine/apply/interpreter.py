"""The apply interpreter: one ``visit_<step>`` per step type; it executes a plan, never re-derives it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from engine.errors import StalePlanError, StateError, SyncformError
from engine.plan.model import STATE_STEPS, SYNC_STEPS, Plan, Step
from engine.state.base import Deployed, StateStore


@dataclass(frozen=True, slots=True)
class StepResult:
    step: Step
    status: str  # done | skipped | failed
    message: str = ""
    report: Any = None


@dataclass(frozen=True, slots=True)
class ApplyResult:
    plan_id: str
    serial: int
    results: tuple[StepResult, ...]
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return all(r.status != "failed" for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {"plan_id": self.plan_id, "serial": self.serial, "ok": self.ok, "notes": list(self.notes),
                "steps": [{**{k: v for k, v in r.step.to_dict().items() if k != "payload"}, "status": r.status,
                           "message": r.message} for r in self.results]}


def check_fresh(plan: Plan, store: StateStore) -> None:
    """Refuse a plan made against another state, or against this state before it moved."""
    lineage, serial = store.lineage(), store.serial()
    if plan.lineage != lineage:
        raise StalePlanError(
            f"the plan {plan.id} was made against another state (lineage {plan.lineage}), not this one "
            f"({store.url}, lineage {lineage}); make the plan again against this state")
    if plan.serial == serial:
        return
    moved: list[str] = []
    if plan.serial < serial:
        for h in store.apply_history(limit=20):
            if h["serial"] > plan.serial:
                when = h["at"].isoformat(timespec="seconds") if h["at"] else "?"
                moved.append(f'{h["who"]} applied at {when} ({h["summary"] or "no summary"})')
    current = {d.name: d.spec_hash for d in store.list_deployed()}
    changed = sorted(name for name, h in plan.prior if current.get(name) != h)
    what = ""
    if changed:
        what += "; changed since: " + ", ".join(changed)
    if moved:
        what += "; " + "; ".join(moved)
    raise StalePlanError(
        f"the plan {plan.id} is stale: it was made at state serial {plan.serial}, the state is now at serial "
        f"{serial}{what}. Run plan again and review the new plan")


class Applier:
    """Interprets ``plan.steps``: state steps in one transaction, then sync steps."""

    def __init__(self, plan: Plan, *, store: StateStore, clients: Callable[[str], Any] | None = None,
                 sync: bool = True, who: str = "", commit: str | None = None,
                 clock: Callable[[], datetime] | None = None, progress: Callable[[str], None] | None = None,
                 lock_timeout: float = 10.0, operation: str = "apply", sync_fn: Callable[..., Any] | None = None,
                 lock: Any = None):
        self.plan = plan
        self.store = store
        self.clients = clients
        self.sync = sync
        self.who = who
        self.commit = commit
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.progress = progress or (lambda msg: None)
        self.lock_timeout = lock_timeout
        self.held = lock  # a LockInfo the caller already holds (plan-then-apply under one lock); kept on exit
        self.operation = operation
        self.notes: list[str] = []
        self._sync_fn: Any = sync_fn  # default: engine.sync.sync_integration (a seam for tests and embedders)
        self._visitors: dict[str, Callable[[Step], StepResult]] = {
            "put_integration": self.visit_put_integration,
            "forget_module": self.visit_forget_module,
            "remove_integration": self.visit_remove_integration,
            "initial_sync": self.visit_initial_sync,
            "backfill": self.visit_backfill,
            "full_resync": self.visit_full_resync,
            "catch_up": self.visit_catch_up,
        }

    def _visitor(self, step: Step) -> Callable[[Step], StepResult]:
        try:
            return self._visitors[step.type]
        except KeyError:
            from engine.errors import did_you_mean

            raise StateError(f'plan step "{step.type}" is unknown to this syncform'
                             f"{did_you_mean(step.type, list(self._visitors))}") from None

    def run(self) -> ApplyResult:
        plan, store = self.plan, self.store
        for step in plan.steps:  # refuse an unknown step before touching anything
            self._visitor(step)
        lock = self.held or store.acquire_lock(self.operation, timeout=self.lock_timeout)
        if lock.note:
            self.notes.append(lock.note)
        results: list[StepResult] = []
        try:
            check_fresh(plan, store)
            state_steps = [s for s in plan.steps if s.type in STATE_STEPS]
            sync_steps = [s for s in plan.steps if s.type in SYNC_STEPS]
            if state_steps:
                with store.transaction():
                    for step in state_steps:
                        results.append(self._visitor(step)(step))
                    s = plan.summary
                    store.record_apply(who=self.who, spec_hash=plan.spec_hash, commit=self.commit,
                                       summary=f"{s.add} added, {s.change} changed, {s.destroy} destroyed")
                self.progress(f"state committed (serial {store.serial()})")
            for step in sync_steps:
                results.append(self._visitor(step)(step))
        finally:
            if self.held is None:
                store.release_lock(lock.id)
        return ApplyResult(plan_id=plan.id, serial=store.serial(), results=tuple(results), notes=tuple(self.notes))

    # --- state steps: run inside the one transaction ------------------------------------------------
    def visit_put_integration(self, step: Step) -> StepResult:
        payload = step.payload or {}
        if "spec" not in payload:
            raise StateError(f"plan step put_integration {step.integration} has no spec; make the plan again")
        spec = payload["spec"]
        paused = bool(spec.get("integration", {}).get("paused", False))
        before = self.store.get_deployed(step.integration)
        if before is not None and before.paused and self.store.get_meta(f"paused-by-cli:{step.integration}"):
            paused = True  # paused with `syncform pause`: stays paused until `syncform resume`
        self.store.put_deployed(Deployed(name=step.integration, spec=spec, spec_hash=payload["spec_hash"],
                                         paused=paused, applied_at=self.clock()))
        return StepResult(step, "done", f"{step.integration}: deployed spec recorded")

    def visit_forget_module(self, step: Step) -> StepResult:
        self.store.forget_module(step.integration, step.module or "")
        return StepResult(step, "done", f"{step.integration}.{step.module}: links forgotten ({step.reason})")

    def visit_remove_integration(self, step: Step) -> StepResult:
        self.store.remove_deployed(step.integration)
        return StepResult(step, "done", f"{step.integration}: forgotten; records stay in both apps")

    # --- sync steps: after the commit -----------------------------------------------------------------
    def visit_initial_sync(self, step: Step) -> StepResult:
        return self._run_sync(step, full=False)

    def visit_backfill(self, step: Step) -> StepResult:
        return self._run_sync(step, full=True)

    def visit_full_resync(self, step: Step) -> StepResult:
        return self._run_sync(step, full=True)

    def visit_catch_up(self, step: Step) -> StepResult:
        return self._run_sync(step, full=False)

    def _sync_entry(self) -> Any:
        if self._sync_fn is None:
            try:
                from engine.sync import sync_integration
            except ImportError:
                self._sync_fn = False
            else:
                self._sync_fn = sync_integration
        return self._sync_fn

    def _run_sync(self, step: Step, *, full: bool) -> StepResult:
        what = f"{step.type.replace('_', ' ')} of {step.integration}.{step.module}"
        if not self.sync:
            return StepResult(step, "skipped", f"{what}: skipped (--no-sync); run syncform sync {step.integration}")
        entry = self._sync_entry()
        if not entry:
            return StepResult(step, "skipped", f"{what}: skipped, the sync engine is not part of this build")
        deployed = self.store.get_deployed(step.integration)
        if deployed is None:
            return StepResult(step, "failed", f"{what}: {step.integration} is not deployed")
        if deployed.paused:
            return StepResult(step, "skipped", f"{what}: skipped, {step.integration} is paused")
        if self.clients is None:
            return StepResult(step, "skipped", f"{what}: skipped, no app clients were given")
        from engine.spec.serialize import integration_from_dict

        integration = integration_from_dict(deployed.spec["integration"])
        self.progress(what)
        try:
            left = self.clients(integration.left.connection)
            right = self.clients(integration.right.connection)
            report = entry(integration, store=self.store, left=left, right=right, modules=[step.module],
                           full=full, clock=self.clock, progress=self._sync_progress(step.integration))
        except SyncformError as exc:
            return StepResult(step, "failed", f"{what}: {exc}")
        except ImportError as exc:  # a part of this build is missing (e.g. an app client not written yet)
            return StepResult(step, "failed", f"{what}: not available in this build ({exc})")
        except Exception as exc:  # the state is committed: report this step, run the others
            return StepResult(step, "failed", f"{what}: internal error ({type(exc).__name__}); "
                                              "rerun it with syncform sync --debug for details")
        ok = getattr(report, "ok", True)
        return StepResult(step, "done" if ok else "failed", f"{what}: {_report_text(report)}", report)

    def _sync_progress(self, integration: str) -> Callable[..., None]:
        """The sync engine reports (module, phase, done, total); say each phase once."""
        seen: set[tuple[str, str]] = set()

        def progress(module: str, phase: str, done: int = 0, total: int | None = None) -> None:
            if (module, phase) not in seen:
                seen.add((module, phase))
                self.progress(f"{integration}.{module}: {phase}")

        return progress


def _report_text(report: Any) -> str:
    """A one-line account of a SyncReport, read defensively (the sync engine owns its shape)."""
    for attr in ("summary", "describe"):
        fn = getattr(report, attr, None)
        if callable(fn):
            try:
                return str(fn())
            except Exception:  # pragma: no cover - a report that cannot describe itself
                break
    total = getattr(report, "total", None)
    if not callable(total):
        return "done"
    counts = [f"{total(k)} {k}" for k in ("created", "updated", "deleted", "linked", "failed")]
    message = getattr(report, "message", "") or ""
    for m in getattr(report, "modules", ()):
        if getattr(m, "message", ""):
            message = m.message
    return ", ".join(counts) + (f" ({message})" if message else "")
