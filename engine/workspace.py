"""The library's front door: a ``Session`` (specs, state, app clients) and what the CLI calls.

    with open_session(root=".") as s:
        p = plan(s)                       # a Plan value (engine.plan.model)
        result = apply_plan(s, p)         # lock, freshness, one transaction, then the syncs

The CLI parses and renders; everything that decides lives here and below.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import StalePlanError, StateError, SyncformError, UsageError, did_you_mean

if TYPE_CHECKING:
    from engine.apply.interpreter import ApplyResult
    from engine.plan.model import Plan
    from engine.spec.model import Connection, Workspace
    from engine.state.base import StateStore


class Session:
    """Specs, the state store and app clients of one working directory. Open with ``open_session``."""

    def __init__(self, *, root: str | os.PathLike[str] = ".", state_url: str = "sqlite:///.syncform/state.db",
                 variables: Mapping[str, Any] | None = None, var_files: Sequence[str] = (),
                 clock: Callable[[], datetime] | None = None, transport: Any = None):
        self.root = Path(root)
        self.state_url = state_url
        self.variables = dict(variables or {})
        self.var_files = tuple(var_files)
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.transport = transport  # an httpx transport for every client (tests), else each app's own
        self.warnings: tuple[Any, ...] = ()
        self._specs: dict[tuple[str, ...], Workspace] = {}
        self._store: StateStore | None = None
        self._clients: dict[str, Any] = {}

    # --- specs -------------------------------------------------------------------------------------
    def specs(self, paths: Sequence[str] = (), *, reload: bool = False) -> "Workspace":
        from engine.spec import load_workspace

        key = tuple(str(p) for p in paths)
        if reload or key not in self._specs:
            ws, warnings = load_workspace(key, variables=self.variables, var_files=self.var_files, root=self.root)
            self._specs[key] = ws
            self.warnings = tuple(warnings)
        return self._specs[key]

    # --- state -------------------------------------------------------------------------------------
    def store(self) -> "StateStore":
        if self._store is None:
            from engine.state import open_store

            self._store = open_store(self.state_url, base=self.root)
        return self._store

    # --- apps --------------------------------------------------------------------------------------
    def connection(self, name: str) -> "Connection":
        """The connection called ``name``: from the loaded specs, else from the deployed state."""
        for ws in self._specs.values():
            conn = ws.connection(name)
            if conn is not None:
                return conn
        from engine.spec.serialize import connection_from_dict

        known: set[str] = set()
        for d in self.store().list_deployed():
            for c in d.spec.get("connections", ()):
                if c["name"] == name:
                    return connection_from_dict(c)
                known.add(c["name"])
        for ws in self._specs.values():
            known |= {c.name for c in ws.connections}
        raise UsageError(f'no connection "{name}" in the specs or the deployed state{did_you_mean(name, known)}')

    def client(self, connection_name: str) -> Any:
        if connection_name not in self._clients:
            from engine.apps.registry import open_client

            conn = self.connection(connection_name)
            kwargs = {"transport": self.transport} if self.transport is not None else {}
            self._clients[connection_name] = open_client(conn, workdir=self.root, **kwargs)
        return self._clients[connection_name]

    def close(self) -> None:
        for c in self._clients.values():
            try:
                c.close()
            except Exception:  # closing is best effort
                pass
        self._clients.clear()
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_session(*, root: str | os.PathLike[str] = ".", state_url: str = "sqlite:///.syncform/state.db",
                 variables: Mapping[str, Any] | None = None, var_files: Sequence[str] = (),
                 clock: Callable[[], datetime] | None = None, transport: Any = None) -> Session:
    return Session(root=root, state_url=state_url, variables=variables, var_files=var_files, clock=clock,
                   transport=transport)


def who() -> str:
    import socket

    from engine.state.sqlite import _whoami

    return f"{_whoami()}@{socket.gethostname()}"


def git_commit(root: str | os.PathLike[str]) -> str | None:
    """The commit the specs come from: ``GITHUB_SHA`` in Actions, else ``git rev-parse HEAD``."""
    import subprocess

    if os.environ.get("GITHUB_SHA"):
        return os.environ["GITHUB_SHA"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=str(root), capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


# --- plan ------------------------------------------------------------------------------------------

def _desired(session: Session, paths: Sequence[str]) -> dict[str, dict[str, Any]]:
    from engine.spec.serialize import deployed_spec

    ws = session.specs(paths)
    by_name: dict[str, list[Connection]] = {}
    for c in ws.connections:
        by_name.setdefault(c.name, []).append(c)

    def used(i: Any) -> list[Connection]:  # only the integration's own: not all of them per integration
        return [c for n in dict.fromkeys((i.left.connection, i.right.connection)) for c in by_name.get(n, ())]

    return {i.name: deployed_spec(i, used(i)) for i in ws.integrations}


def _redactor(session: Session, desired: Mapping[str, Mapping[str, Any]]) -> Callable[[Any], Any]:
    from engine.plan.redact import redactor

    return redactor(_secrets(session, _connections_of(session, desired)))


def _secrets(session: Session, connections: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """Every value the plan must not contain: behind the connections' references, and named secrets
    among the template variables and the environment."""
    from engine.plan.redact import named_secrets, secret_values

    var_files = [Path(v) if Path(v).is_absolute() else session.root / v for v in session.var_files]
    return tuple(sorted(set(secret_values(connections, session.root))
                        | set(named_secrets(session.variables, var_files=var_files))))


def _connections_of(session: Session, desired: Mapping[str, Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    from engine.spec.serialize import connection_to_dict

    conns: list[Mapping[str, Any]] = [c for spec in desired.values() for c in spec.get("connections", ())]
    for ws in session._specs.values():
        conns += [connection_to_dict(c) for c in ws.connections]
    return conns


# --- the specs cache: a plan without live refresh skips re-validating unchanged specs ----------------
#
# Loading and validating specs is most of a `plan --no-refresh`. The result (the redacted desired
# specs and the warnings) is kept in .syncform/cache/ keyed by a hash of everything the loader reads:
# the spec files, variable files, --var values, and syncform's own spec code and catalogs. Values are
# stored already redacted, and only while the secrets behind the references are unchanged.

_CODE_FINGERPRINT: str | None = None


def _code_fingerprint() -> str:
    global _CODE_FINGERPRINT
    if _CODE_FINGERPRINT is None:
        import hashlib

        import engine

        base = Path(engine.__file__).parent
        h = hashlib.sha256(_version().encode())
        for pattern in ("spec/*.py", "catalog/*.py", "catalog/data/*.json", "plan/redact.py"):
            for f in sorted(base.glob(pattern)):
                st = f.stat()  # any edit of the loader, validator or catalogs changes size or mtime
                h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
        _CODE_FINGERPRINT = h.hexdigest()
    return _CODE_FINGERPRINT


def _specs_key(session: Session, paths: Sequence[str]) -> str | None:
    import hashlib
    import json

    from engine.spec import loader

    files, diags = loader.discover(tuple(str(p) for p in paths), session.root)
    if diags:
        return None  # let the loader report it
    h = hashlib.sha256(_code_fingerprint().encode())
    h.update(json.dumps([list(map(str, paths)), sorted(session.variables.items())], default=str).encode())
    try:
        for f in files:
            h.update(str(f).encode() + b"\0" + f.read_bytes())
        for v in session.var_files:
            vf = Path(v) if Path(v).is_absolute() else session.root / v
            h.update(str(v).encode() + b"\0" + (vf.read_bytes() if vf.is_file() else b"<missing>"))
    except OSError:
        return None
    return h.hexdigest()


def _secrets_digest(values: Sequence[str], salt: str) -> str:
    """A salted, deliberately slow digest (scrypt, ~25 ms) of the secrets behind the references: the
    cache must notice a rotated secret, and a copied cache file must not let anyone test guesses of
    a secret cheaply or look it up in a precomputed table."""
    import hashlib

    return "scrypt:" + hashlib.scrypt("\0".join(values).encode(), salt=bytes.fromhex(salt),
                                      n=2 ** 13, r=8, p=1, dklen=32).hex()


def _cached_desired(session: Session, paths: Sequence[str]) -> tuple[dict[str, dict[str, Any]], Callable[[Any], Any]]:
    """Redacted desired specs and the redactor, from the cache when the inputs are unchanged."""
    import json

    from engine.errors import Diagnostic
    from engine.plan.redact import redactor

    key = _specs_key(session, paths)
    cache = session.root / ".syncform" / "cache" / "specs.json"
    if key is not None and cache.is_file():
        try:
            data = json.loads(cache.read_text("utf-8"))
            if data.get("key") == key:
                secrets = _secrets(session, data["connections"])
                if data.get("secrets") == _secrets_digest(secrets, data["salt"]):
                    session.warnings = tuple(Diagnostic(**d) for d in data.get("warnings", ()))
                    return data["desired"], redactor(secrets)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged cache is only a miss
    session.specs(paths, reload=True)  # the files differ from what the cache saw: never reuse an older load
    desired = _desired(session, paths)
    conns = _connections_of(session, desired)
    secrets = _secrets(session, conns)
    redact = redactor(secrets)
    desired = {name: redact(spec) for name, spec in desired.items()}
    if key is not None:
        salt = os.urandom(16).hex()
        _write_private(cache, json.dumps({
            "key": key, "salt": salt, "secrets": _secrets_digest(secrets, salt), "desired": desired,
            "connections": [dict(c) for c in conns], "warnings": [w.as_dict() for w in session.warnings]}))
    return desired, redact


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, in a directory only its owner can enter."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path.parent, 0o700)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError:
        pass  # no cache, no harm


def _live(session: Session, notes: list[str]) -> Callable[[Mapping[str, Any], str], Any]:
    cache: dict[tuple[str, str], Any] = {}

    def fields(conn: Mapping[str, Any], module: str) -> Any:
        key = (conn["name"], module)
        if key not in cache:
            try:
                cache[key] = session.client(conn["name"]).fields(module)
            except (NotImplementedError, ImportError) as exc:
                notes.append(f"live fields of {conn['name']} {module} not refreshed ({type(exc).__name__})")
                cache[key] = None
        return cache[key]

    return fields


def plan(session: Session, paths: Sequence[str] = (), *, refresh: bool = True, prune: bool | None = None,
         now: datetime | None = None, plan_id: str | None = None) -> "Plan":
    """Diff the specs under ``paths`` against the state (and, with ``refresh``, the live apps).

    ``prune`` (default: only when planning the whole repository, i.e. no ``paths``) plans the removal
    of deployed integrations the specs no longer declare.
    """
    from dataclasses import replace

    from engine.plan.diff import build_plan

    if refresh:
        desired = _desired(session, paths)
        redact: Callable[[Any], Any] | None = _redactor(session, desired)
    else:
        desired, _ = _cached_desired(session, paths)
        redact = None  # the cached desired specs are redacted already: no second pass over them
    store = session.store()
    deployed = {d.name: d for d in store.list_deployed()}
    notes: list[str] = []
    p = build_plan(desired, deployed, lineage=store.lineage(), serial=store.serial(),
                   live=_live(session, notes) if refresh else None, prune=(not paths) if prune is None else prune,
                   paths=tuple(str(x) for x in paths), now=now or session.clock(), plan_id=plan_id,
                   redact=redact, version=_version())
    if notes:
        p = replace(p, notes=p.notes + tuple(notes))
    return p


def _version() -> str:
    from engine import __version__  # importlib.metadata costs a tenth of a second per process

    return __version__


def preview(session: Session, p: "Plan") -> list[dict[str, Any]]:
    """The record-level impact of the plan's syncs, from the sync engine's dry run (nothing is written).

    One entry per integration and kind of pass (``full`` for backfills and full resyncs): the sync
    report as a dict (counts per module and direction, masked samples)."""
    try:
        import engine.sync as sync
    except ImportError:
        sync = None  # type: ignore[assignment]
    fn = getattr(sync, "preview", None) if sync is not None else None
    if fn is None:
        raise UsageError("--preview is not available yet: this build's sync engine has no dry-run preview")
    from engine.spec.serialize import integration_from_dict

    specs = {s.integration: s.payload["spec"] for s in p.steps if s.type == "put_integration" and s.payload}
    out: list[dict[str, Any]] = []
    for name in sorted({s.integration for s in p.steps if s.is_sync}):
        spec = specs.get(name)
        if spec is None:
            deployed = session.store().get_deployed(name)
            spec = deployed.spec if deployed else None
        if spec is None:
            continue
        integration = integration_from_dict(spec["integration"])
        for full in (False, True):
            modules = [s.module for s in p.steps if s.is_sync and s.integration == name
                       and (s.type in ("backfill", "full_resync")) == full]
            if not modules:
                continue
            report = fn(integration, store=session.store(), left=session.client(integration.left.connection),
                        right=session.client(integration.right.connection), modules=modules, full=full,
                        clock=session.clock)
            d = report.as_dict() if hasattr(report, "as_dict") else {"integration": name, "report": str(report)}
            out.append({**d, "full": full})
    return out


# --- apply -----------------------------------------------------------------------------------------

def verify_specs(session: Session, p: "Plan") -> None:
    """Refuse a saved plan whose specs have changed since it was made (the plan would not be what's in git)."""
    from engine.plan.diff import build_plan

    if p.origin != "specs":
        return  # a destroy plan does not come from the specs
    desired = _desired(session, p.paths)
    check = build_plan(desired, {}, lineage="", serial=0, redact=_redactor(session, desired))
    if check.spec_hash != p.spec_hash:
        raise StalePlanError(
            f"the specs changed since the plan {p.id} was made (spec hash {p.spec_hash[:19]} then, "
            f"{check.spec_hash[:19]} now); run plan again and review the new plan")


def apply_plan(session: Session, p: "Plan", *, sync: bool = True, check_specs: bool = False,
               lock_timeout: float = 10.0, progress: Callable[[str], None] | None = None,
               operation: str = "apply", lock: Any = None) -> "ApplyResult":
    """Apply ``p``. ``lock``: a lock the caller took before planning (see ``locked``), kept afterwards."""
    from engine.apply.interpreter import Applier

    if check_specs:
        verify_specs(session, p)
    applier = Applier(p, store=session.store(), clients=session.client, sync=sync, who=who(),
                      commit=git_commit(session.root), clock=session.clock, progress=progress,
                      lock_timeout=lock_timeout, operation=operation, lock=lock)
    return applier.run()


@contextmanager
def locked(session: Session, operation: str, *, timeout: float = 10.0) -> Iterator[Any]:
    """Hold the state lock across plan → show → ask → apply, as ``terraform apply`` does, so that no
    other apply can land between the plan and its approval."""
    store = session.store()
    lock = store.acquire_lock(operation, timeout=timeout)
    try:
        yield lock
    finally:
        store.release_lock(lock.id)


def apply(session: Session, source: "Plan | str | os.PathLike[str] | None" = None, paths: Sequence[str] = (), *,
          sync: bool = True, refresh: bool = True, lock_timeout: float = 10.0,
          progress: Callable[[str], None] | None = None) -> "ApplyResult":
    """Apply, auto-approved (a library does not ask): a ``Plan``, a saved plan file (refused when the
    specs changed since), or, with no source, a fresh plan of ``paths``."""
    if source is None:
        return apply_plan(session, plan(session, paths, refresh=refresh), sync=sync, lock_timeout=lock_timeout,
                          progress=progress)
    if isinstance(source, (str, os.PathLike)):
        from engine.plan.model import load_plan

        return apply_plan(session, load_plan(str(source)), sync=sync, check_specs=True, lock_timeout=lock_timeout,
                          progress=progress)
    return apply_plan(session, source, sync=sync, lock_timeout=lock_timeout, progress=progress)


# --- status, pause, resume, destroy ------------------------------------------------------------------

def status(session: Session, name: str | None = None, *, compare: bool = True) -> dict[str, Any]:
    """What is deployed. With ``compare``, each integration also says whether it matches the specs
    (``in-sync``, ``out-of-sync``, ``not-in-specs``; ``unknown`` when the specs do not load), from a
    plan without live refresh (Argo CD's Synced/OutOfSync)."""
    store = session.store()
    deployed = store.list_deployed()
    if name is not None:
        deployed = [d for d in deployed if d.name == name]
        if not deployed:
            raise StateError(f'integration "{name}" is not deployed'
                             f"{did_you_mean(name, [d.name for d in store.list_deployed()])}")
    lock = store.lock_info()
    out: dict[str, Any] = {
        "state": store.url, "lineage": store.lineage(), "serial": store.serial(),
        "lock": None if lock is None else {"id": lock.id, "who": lock.who, "host": lock.host, "pid": lock.pid,
                                           "operation": lock.operation, "since": lock.since.isoformat()},
        "integrations": [],
    }
    in_specs: dict[str, str] = {}
    if compare and deployed:
        try:
            p = plan(session, refresh=False, prune=True)
        except (SyncformError, OSError) as exc:
            out["specs_error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        else:
            for c in p.changes:
                top = c.address.split(".", 1)[0]
                if c.address == top and c.action == "delete":
                    in_specs[top] = "not-in-specs"
                elif c.action != "no-op" and in_specs.get(top) != "not-in-specs":
                    in_specs[top] = "out-of-sync"
                else:
                    in_specs.setdefault(top, "in-sync")
    for d in deployed:
        spec = d.spec.get("integration", {})
        runs = store.list_runs(d.name)
        failures = store.list_failures(d.name)
        modules = []
        for m in spec.get("modules", ()):
            last = next((r for r in runs if r.module == m["name"]), None)
            modules.append({
                "name": m["name"], "left": m["left"], "right": m["right"], "direction": m.get("direction"),
                "enabled": m.get("enabled", True), "links": store.count_links(d.name, m["name"]),
                "cursors": {side: store.get_cursor(d.name, m["name"], side) for side in ("left", "right")},
                "last_run": None if last is None else {"started": last.started.isoformat(), "status": last.status,
                                                       "created": last.created, "updated": last.updated,
                                                       "deleted": last.deleted, "failed": last.failed},
                "failures": sum(1 for f in failures if f.module == m["name"]),
            })
        out["integrations"].append({
            "name": d.name, "paused": d.paused, "spec_hash": d.spec_hash,
            "sync_status": in_specs.get(d.name, "unknown") if compare else None,
            "applied_at": d.applied_at.isoformat() if d.applied_at else None,
            "left": spec.get("left"), "right": spec.get("right"), "modules": modules,
        })
    return out


def deployed(session: Session, name: str) -> Any:
    """The deployed integration ``name`` (``engine.state.base.Deployed``); StateError naming the close ones."""
    return _require(session.store(), name)


def _require(store: "StateStore", name: str) -> Any:
    d = store.get_deployed(name)
    if d is None:
        raise StateError(f'integration "{name}" is not deployed'
                         f"{did_you_mean(name, [x.name for x in store.list_deployed()])}")
    return d


def pause(session: Session, name: str, *, lock_timeout: float = 10.0) -> bool:
    """Pause ``name``; False when it already was. Links and cursors are kept: nothing is lost meanwhile."""
    store = session.store()
    lock = store.acquire_lock("pause", timeout=lock_timeout)
    try:
        d = _require(store, name)
        if d.paused:
            return False
        with store.transaction():
            store.set_paused(name, True)
            store.set_meta(f"paused-by-cli:{name}", "1")
        return True
    finally:
        store.release_lock(lock.id)


def resume(session: Session, name: str, *, lock_timeout: float = 10.0) -> bool:
    """Resume ``name``; False when it was not paused. The next sync picks up what changed meanwhile."""
    store = session.store()
    lock = store.acquire_lock("resume", timeout=lock_timeout)
    try:
        d = _require(store, name)
        if d.spec.get("integration", {}).get("paused"):
            raise UsageError(f"{name} is paused by its spec (paused: true): set paused: false and apply")
        if not d.paused:
            return False
        with store.transaction():
            store.set_paused(name, False)
            store.set_meta(f"paused-by-cli:{name}", "")
        return True
    finally:
        store.release_lock(lock.id)


def destroy_plan(session: Session, name: str, *, now: datetime | None = None) -> "Plan":
    """The plan that stops and forgets ``name`` (records stay in both apps)."""
    from engine.plan.diff import build_plan

    store = session.store()
    d = _require(store, name)
    from dataclasses import replace

    p = build_plan({}, {name: d}, lineage=store.lineage(), serial=store.serial(), prune=True,
                   now=now or session.clock(), version=_version())
    return replace(p, origin="destroy")


def destroy(session: Session, name: str, *, lock_timeout: float = 10.0) -> "ApplyResult":
    """Stop and forget ``name`` now (auto-approved); records stay in both apps."""
    return apply_plan(session, destroy_plan(session, name), sync=False, lock_timeout=lock_timeout,
                      operation="destroy")


# --- reconcile ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ReconcileRun:
    number: int
    plan: "Plan | None"  # None when the pass failed before planning
    result: "ApplyResult | None"  # None when there was nothing to do
    error: str | None = None  # with an interval, a failed pass is reported and the loop goes on


def reconcile(session: Session, paths: Sequence[str] = (), *, prune: bool = False, sync: bool = True,
              refresh: bool = False, interval: float | None = None, max_runs: int | None = None,
              sleep: Callable[[float], None] = time.sleep, lock_timeout: float = 10.0, allow_empty: bool = False,
              progress: Callable[[str], None] | None = None) -> Iterator[ReconcileRun]:
    """Make everything deployed equal the specs, auto-approved; yields one ``ReconcileRun`` per pass.

    Deployed integrations gone from the specs are removed only with ``prune``, and never all of them at
    once unless ``allow_empty`` (a checkout without specs must not wipe the deployment; Argo CD's
    ``allowEmpty``). Without ``interval`` it runs once; with it, it runs every ``interval`` seconds
    (re-reading the specs) until ``max_runs``.
    """
    from engine.errors import SyncformError

    runs = 0
    while True:
        runs += 1
        try:
            with locked(session, "reconcile", timeout=lock_timeout) as lock:
                p = plan(session, paths, refresh=refresh, prune=prune) if runs == 1 else _replan(session, paths,
                                                                                                  refresh, prune)
                _guard_empty(p, allow_empty)
                result = (apply_plan(session, p, sync=sync, progress=progress, operation="reconcile", lock=lock)
                          if p.has_changes else None)
        except SyncformError as exc:
            if interval is None:
                raise
            # a locked state, a spec broken by a merge, an app down: say so, try again next pass
            yield ReconcileRun(runs, None, None, error=f"{type(exc).__name__}: {exc}")
        else:
            yield ReconcileRun(runs, p, result)
        if interval is None or (max_runs is not None and runs >= max_runs):
            return
        sleep(interval)


def _guard_empty(p: "Plan", allow_empty: bool) -> None:
    removals = [s.integration for s in p.steps if s.type == "remove_integration"]
    if removals and not p.scope and not allow_empty:
        raise UsageError(f"the specs declare no integration, so --prune would remove all {len(removals)} deployed "
                         f"({', '.join(removals[:5])}{', …' if len(removals) > 5 else ''}); refusing. If that is "
                         "really wanted, pass --allow-empty (or syncform destroy NAME one by one)")


def _replan(session: Session, paths: Sequence[str], refresh: bool, prune: bool) -> "Plan":
    session.specs(paths, reload=True)
    return plan(session, paths, refresh=refresh, prune=prune)
