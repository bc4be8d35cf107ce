"""Desired (specs) against deployed (state) against live (the apps' field catalogs) → ``Plan``.

Categories (SQLMesh-like, decided here once so that apply never guesses):

- *breaking*: match keys, direction, module target (or the account a connection points at) changed.
  The module's links are forgotten and rebuilt by a full sync (``forget_module`` + ``full_resync``).
- *data*: a field mapping added or changed (that field is backfilled: ``backfill``), a module added
  (``initial_sync``) or switched back on (``catch_up``), a filter/parent/owner changed (``full_resync``).
- *metadata*: descriptions, conflict policy, delete preferences, guards, pause, calendar, credentials
  references: recorded in state, no sync.
- *destructive* (a flag on top): an integration or module removed, a delete preference loosened
  (toward deleting more).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from engine.plan.model import Change, Drift, Plan, Step
from engine.state.base import Deployed

# How much a delete preference deletes: moving up this order is "loosened" (destructive).
_DELETE_ORDER = {"unlink": 0, "delete-if-no-associates": 1, "delete": 2}

LiveFields = Callable[[Mapping[str, Any], str], "Sequence[Mapping[str, Any]] | None"]


def _fkey(f: Mapping[str, Any]) -> str:
    return "+".join(f.get("right") or f.get("left") or ())


def _module_order(modules: Sequence[Mapping[str, Any]]) -> list[str]:
    """Parents before children, otherwise spec order."""
    names = [m["name"] for m in modules]
    parent = {m["name"]: m.get("parent") for m in modules}

    def depth(n: str, seen: frozenset[str] = frozenset()) -> int:
        p = parent.get(n)
        return 0 if not p or p not in parent or n in seen else 1 + depth(p, seen | {n})

    return sorted(names, key=lambda n: (depth(n), names.index(n)))


def _side_text(side: Mapping[str, Any]) -> str:
    return f'{side["app"]}/{side["connection"]}'


class _Builder:
    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.state_steps: list[Step] = []
        self.sync_steps: list[Step] = []
        self.notes: list[str] = []

    def change(self, address: str, action: str, before: Any, after: Any, category: str, reason: str,
               destructive: bool = False) -> None:
        self.changes.append(Change(address, action, before, after, category, destructive, reason))


def build_plan(desired: Mapping[str, Mapping[str, Any]], deployed: Mapping[str, Deployed], *, lineage: str,
               serial: int, live: LiveFields | None = None, prune: bool = True, paths: Sequence[str] = (),
               now: datetime | None = None, plan_id: str | None = None, redact: Callable[[Any], Any] | None = None,
               version: str = "") -> Plan:
    """``desired``: name → ``engine.spec.serialize.deployed_spec(...)`` of every integration in the specs;
    ``deployed``: name → what the state holds; ``live(connection_dict, module)`` → live field dicts (or None
    to skip); ``prune``: plan the removal of deployed integrations missing from ``desired``."""
    from engine.spec.serialize import spec_hash

    redact = redact or (lambda x: x)
    desired = {name: redact(spec) for name, spec in desired.items()}
    b = _Builder()
    drift: list[Drift] = []
    for name in sorted(set(desired) | set(deployed)):
        want, have = desired.get(name), deployed.get(name)
        if want is not None and have is None:
            _create_integration(b, name, want)
        elif want is None and have is not None:
            if prune:
                _remove_integration(b, name, have)
            else:
                b.notes.append(f'{name} is deployed but not in these specs: left alone (plan without PATH, '
                               f'or reconcile --prune, to remove it)')
        elif want is not None and have is not None:
            _update_integration(b, name, want, have)
        if want is not None and live is not None:
            drift.extend(_drift(name, want, live, deployed=have is not None))
    b.changes.sort(key=lambda c: c.address)
    drift.sort(key=lambda d: (d.address, d.side))
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return Plan(
        id=plan_id or str(uuid.uuid4()),
        lineage=lineage,
        serial=serial,
        spec_hash=spec_hash({n: desired[n] for n in sorted(desired)}),
        created_at=moment.isoformat(timespec="seconds").replace("+00:00", "Z"),
        changes=tuple(b.changes),
        steps=tuple(b.state_steps + b.sync_steps),
        drift=tuple(drift),
        notes=tuple(b.notes),
        refresh=live is not None,
        prune=prune,
        paths=tuple(paths),
        scope=tuple(sorted(desired)),
        prior=tuple((n, deployed[n].spec_hash if n in deployed else None)
                    for n in sorted(set(desired) | set(deployed))),
        syncform_version=version,
    )


# --- integrations ------------------------------------------------------------------------------------

def _put(b: _Builder, name: str, want: Mapping[str, Any], reason: str) -> None:
    from engine.spec.serialize import spec_hash

    b.state_steps.append(Step("put_integration", name, reason=reason,
                              payload={"spec": want, "spec_hash": spec_hash(want)}))


def _sync_step(b: _Builder, want: Mapping[str, Any], step: Step) -> None:
    if want["integration"].get("paused"):
        note = f"{want['integration']['name']} is paused: {step.type.replace('_', ' ')} of {step.module} waits for resume"
        if note not in b.notes:
            b.notes.append(note)
        return
    b.sync_steps.append(step)


def _create_integration(b: _Builder, name: str, want: Mapping[str, Any]) -> None:
    spec = want["integration"]
    modules = spec["modules"]
    b.change(name, "create", None, _integration_summary(want), "data",
             f"new integration {_side_text(spec['left'])} ↔ {_side_text(spec['right'])} with "
             f"{len(modules)} module(s)")
    for m in modules:
        b.change(f"{name}.{m['name']}", "create", None, _module_summary(m), "data",
                 "new module: initial sync" if m.get("enabled", True) else "new module, switched off: no sync")
    _put(b, name, want, "deploy the new integration")
    for mod in _module_order(modules):
        m = next(x for x in modules if x["name"] == mod)
        if m.get("enabled", True):
            _sync_step(b, want, Step("initial_sync", name, mod, reason="new module"))


def _remove_integration(b: _Builder, name: str, have: Deployed) -> None:
    spec = have.spec.get("integration", {})
    b.change(name, "delete", _integration_summary(have.spec), None, "breaking",
             "not in the specs any more: stops syncing and forgets its links; records stay in both apps",
             destructive=True)
    for m in spec.get("modules", ()):
        b.change(f"{name}.{m['name']}", "delete", _module_summary(m), None, "breaking",
                 "integration removed: links forgotten", destructive=True)
    b.state_steps.append(Step("remove_integration", name, reason="not in the specs any more"))


def _integration_summary(spec: Mapping[str, Any]) -> dict[str, Any]:
    i = spec.get("integration", {})
    return {"left": i.get("left"), "right": i.get("right"), "description": i.get("description", ""),
            "paused": i.get("paused", False), "modules": [m["name"] for m in i.get("modules", ())]}


def _module_summary(m: Mapping[str, Any]) -> dict[str, Any]:
    return {"left": m["left"], "right": m["right"], "direction": m.get("direction"),
            "match": [f'{k["left"]}={k["right"]}' for k in m.get("match", ())],
            "fields": len(m.get("fields", ())), "enabled": m.get("enabled", True)}


_INTEGRATION_ATTRS: tuple[tuple[str, str, str], ...] = (
    # (key, category, reason)
    ("description", "metadata", "description changed"),
    ("owner", "data", "integrating user changed: owns new records whose owner has no match"),
    ("paused", "metadata", "pause state changed"),
    ("guards", "metadata", "guards changed"),
    ("history_days", "metadata", "sync history retention changed"),
)


def _update_integration(b: _Builder, name: str, want: Mapping[str, Any], have: Deployed) -> None:
    from engine.spec.serialize import spec_hash

    old_spec = dict(have.spec)
    before_len = len(b.changes)
    forget: list[str] = []
    full: list[str] = []
    backfill: dict[str, list[str]] = {}
    initial: list[str] = []
    catch_up: list[str] = []
    new, old = want["integration"], old_spec.get("integration", {})

    for key, category, reason in _INTEGRATION_ATTRS:
        if new.get(key) != old.get(key):
            b.change(f"{name}.{key}", "update", old.get(key), new.get(key), category, reason)
    if new.get("paused") is False and old.get("paused") is True:
        catch_up.extend(m["name"] for m in new["modules"] if m.get("enabled", True))

    # sides and connections: pointing at another app, account or data centre invalidates every link
    side_moved = False
    for side in ("left", "right"):
        if new[side] != old.get(side):
            side_moved = True
            b.change(f"{name}.{side}", "update", old.get(side), new[side], "breaking",
                     f"{side} side now {_side_text(new[side])}: every module's links are rebuilt and a full sync follows")
    old_conns = {c["name"]: c for c in old_spec.get("connections", ())}
    for conn in want.get("connections", ()):
        before = old_conns.get(conn["name"])
        if before is None or before == conn:
            continue
        where = {k for k in ("app", "datacenter", "base_url", "org_id", "sandbox") if before.get(k) != conn.get(k)}
        if where:
            side_moved = True
            b.change(f"{name}.connection[{conn['name']}]", "update", {k: before.get(k) for k in sorted(where)},
                     {k: conn.get(k) for k in sorted(where)}, "breaking",
                     f"connection {conn['name']} now points elsewhere ({', '.join(sorted(where))}): links rebuilt, "
                     "full sync")
        rest = {k for k in conn if k not in where and before.get(k) != conn.get(k)}
        if rest:
            b.change(f"{name}.connection[{conn['name']}].settings", "update", {k: before.get(k) for k in sorted(rest)},
                     {k: conn.get(k) for k in sorted(rest)}, "metadata",
                     f"connection {conn['name']} settings changed ({', '.join(sorted(rest))})")

    old_mods = {m["name"]: m for m in old.get("modules", ())}
    new_mods = {m["name"]: m for m in new["modules"]}
    for mname in sorted(set(old_mods) | set(new_mods)):
        addr = f"{name}.{mname}"
        nm, om = new_mods.get(mname), old_mods.get(mname)
        if nm is not None and om is None:
            b.change(addr, "create", None, _module_summary(nm), "data",
                     "new module: initial sync" if nm.get("enabled", True) else "new module, switched off: no sync")
            if nm.get("enabled", True):
                initial.append(mname)
            continue
        if nm is None and om is not None:
            b.change(addr, "delete", _module_summary(om), None, "breaking",
                     "module removed: stops syncing and forgets its links; records stay in both apps", destructive=True)
            forget.append(mname)
            continue
        assert nm is not None and om is not None
        if side_moved:
            forget.append(mname)
            full.append(mname)
        count = len(b.changes)
        _diff_module(b, addr, nm, om, forget, full, backfill, catch_up)
        if len(b.changes) == count and not side_moved:
            b.change(addr, "no-op", None, None, "metadata", "unchanged")

    changed = any(c.action != "no-op" for c in b.changes[before_len:])
    if not changed and spec_hash(want) != have.spec_hash and spec_hash(want) != spec_hash(old_spec):
        # normalisation moved (e.g. a newer syncform) without a user-visible difference: refresh silently
        b.change(f"{name}.spec", "update", have.spec_hash, spec_hash(want), "metadata", "normalised spec refreshed")
        changed = True
    if not changed:
        b.change(name, "no-op", None, None, "metadata", "unchanged")
        return
    _put(b, name, want, "record the new deployed spec")
    for mname in _module_order(old.get("modules", ())):
        if mname in forget:
            b.state_steps.append(Step("forget_module", name, mname,
                                      reason="module removed" if mname not in new_mods else "links rebuilt"))
    for mname in _module_order(new["modules"]):
        if mname in initial:
            _sync_step(b, want, Step("initial_sync", name, mname, reason="new module"))
        elif mname in full:
            _sync_step(b, want, Step("full_resync", name, mname, reason="breaking change: links rebuilt"))
        elif mname in backfill:
            _sync_step(b, want, Step("backfill", name, mname, fields=tuple(sorted(set(backfill[mname]))),
                                     reason="field mappings added or changed"))
        elif mname in catch_up:
            _sync_step(b, want, Step("catch_up", name, mname, reason="switched back on"))


def _diff_module(b: _Builder, addr: str, nm: Mapping[str, Any], om: Mapping[str, Any], forget: list[str],
                 full: list[str], backfill: dict[str, list[str]], catch_up: list[str]) -> None:
    mname = nm["name"]

    def breaking(sub: str, key: str, reason: str) -> None:
        b.change(f"{addr}{sub}", "update", om.get(key), nm.get(key), "breaking", reason)
        if mname not in forget:
            forget.append(mname)
        if mname not in full:
            full.append(mname)

    if (nm["left"], nm["right"]) != (om["left"], om["right"]):
        b.change(addr, "update", {"left": om["left"], "right": om["right"]},
                 {"left": nm["left"], "right": nm["right"]}, "breaking",
                 "module target changed: links are rebuilt and a full sync follows")
        forget.append(mname) if mname not in forget else None
        full.append(mname) if mname not in full else None
    if nm.get("direction") != om.get("direction"):
        breaking(".direction", "direction", "direction changed: links are rebuilt and a full sync follows")
    if nm.get("match") != om.get("match"):
        breaking(".match", "match", "match keys changed: links are rebuilt and a full sync follows")

    old_del, new_del = om.get("on_delete") or {}, nm.get("on_delete") or {}
    if old_del != new_del:
        loosened = [s for s in ("left", "right")
                    if _DELETE_ORDER.get(new_del.get(s), 0) > _DELETE_ORDER.get(old_del.get(s), 0)]
        reason = "delete preference changed"
        if loosened:
            reason = ("delete preference loosened: a delete on the " + " and ".join(loosened)
                      + " now deletes more on the other side")
        b.change(f"{addr}.on_delete", "update", old_del, new_del, "metadata", reason, destructive=bool(loosened))

    for key, reason in (("conflict", "conflict policy changed"), ("calendar", "calendar options changed"),
                        ("initial_sync", "initial sync window changed (applies to the next initial sync)"),
                        ("defaults", "standard field pairs switched")):
        if nm.get(key) != om.get(key):
            b.change(f"{addr}.{key}", "update", om.get(key), nm.get(key), "metadata", reason)
    for key, reason in (("filter", "record selection changed: a full pass picks up newly selected records "
                                   "(records synced by the earlier selection stay)"),
                        ("parent", "parent module changed: a full pass")):
        if nm.get(key) != om.get(key):
            b.change(f"{addr}.{key}", "update", om.get(key), nm.get(key), "data", reason)
            if mname not in full:
                full.append(mname)
    if nm.get("enabled", True) != om.get("enabled", True):
        on = nm.get("enabled", True)
        b.change(f"{addr}.enabled", "update", om.get("enabled", True), on, "data" if on else "metadata",
                 "switched back on: changes made meanwhile are synced" if on else
                 "switched off: stops syncing, keeps its links")
        if on:
            catch_up.append(mname)

    _diff_fields(b, addr, "", nm.get("fields", ()), om.get("fields", ()), mname, backfill)
    old_svc = {s["name"]: s.get("fields", ()) for s in om.get("services", ())}
    new_svc = {s["name"]: s.get("fields", ()) for s in nm.get("services", ())}
    for svc in sorted(set(old_svc) | set(new_svc)):
        _diff_fields(b, addr, f".service[{svc}]", new_svc.get(svc, ()), old_svc.get(svc, ()), mname, backfill)


def _diff_fields(b: _Builder, addr: str, prefix: str, new: Sequence[Mapping[str, Any]],
                 old: Sequence[Mapping[str, Any]], mname: str, backfill: dict[str, list[str]]) -> None:
    olds = {_fkey(f): f for f in old}
    news = {_fkey(f): f for f in new}
    for key in sorted(set(olds) | set(news)):
        a = f"{addr}{prefix}.field[{key}]"
        nf, of = news.get(key), olds.get(key)
        if of is None:
            b.change(a, "create", None, _field_view(nf), "data", "new mapping: this field is backfilled")
            backfill.setdefault(mname, []).append(key)
        elif nf is None:
            b.change(a, "delete", _field_view(of), None, "data",
                     "mapping removed: the field stops syncing; values already synced stay")
        elif _field_view(nf) != _field_view(of):
            b.change(a, "update", _field_view(of), _field_view(nf), "data",
                     "mapping changed: this field is backfilled")
            backfill.setdefault(mname, []).append(key)
        elif nf != of:  # only the `default` origin flag moved: not a behaviour change
            b.change(a, "update", {"default": of.get("default")}, {"default": nf.get("default")}, "metadata",
                     "now written out in the spec" if not nf.get("default") else "now a standard pair")


def _field_view(f: Mapping[str, Any]) -> dict[str, Any]:
    """What a reader needs of a field mapping; empty parts left out."""
    view: dict[str, Any] = {"left": "+".join(f.get("left") or ()) or None,
                            "right": "+".join(f.get("right") or ()) or None}
    for k in ("direction", "value", "template"):
        if f.get(k) is not None:
            view[k] = f[k]
    if f.get("values"):
        view["values"] = {a: c for a, c in f["values"]}
    return view


# --- drift ------------------------------------------------------------------------------------------

def _drift(name: str, want: Mapping[str, Any], live: LiveFields, *, deployed: bool = True) -> list[Drift]:
    from engine.catalog import catalog, type_kind

    spec = want["integration"]
    conns = {c["name"]: c for c in want.get("connections", ())}
    found: list[Drift] = []
    for m in spec["modules"]:
        if not m.get("enabled", True):
            continue
        for side in ("left", "right"):
            app = spec[side]["app"]
            conn = conns.get(spec[side]["connection"]) or {"name": spec[side]["connection"], "app": app}
            mapped: dict[str, str] = {}
            # per-service custom fields (Bookings) belong to each service's booking form, not to the
            # module's field catalog: they are not checked here
            for f in m.get("fields", ()):
                for fname in f.get(side) or ():
                    mapped.setdefault(fname, f"{name}.{m['name']}.field[{_fkey(f)}]")
            for k in m.get("match", ()):
                mapped.setdefault(k[side], f"{name}.{m['name']}.match")
            if not mapped:
                continue
            fields = live(conn, m[side])
            if fields is None:
                continue
            by_name = {f.get("api_name"): f for f in fields}
            try:
                known = catalog(app).module(m[side])
            except KeyError:
                known = None
            for fname, address in sorted(mapped.items()):
                lf = by_name.get(fname)
                cf = known.field(fname) if known is not None else None
                where = f"{side} field {fname} of {app} {m[side]}"
                if lf is None:
                    found.append(Drift(address, side, app, m[side], fname, "deleted", cf.type if cf else "present",
                                       None, f"{where} {'no longer exists' if deployed else 'does not exist'} in the app: "
                                       "the mapping cannot sync; remove it from the spec or "
                                       f"{'restore' if deployed else 'create'} the field"))
                    continue
                if lf.get("encrypted") and not (cf and cf.encrypted):
                    found.append(Drift(address, side, app, m[side], fname, "encrypted", False, True,
                                       f"{where} became encrypted in the app: it can no longer be searched or "
                                       "matched; remove it from the match keys or the mapping"))
                ltype = str(lf.get("type") or lf.get("data_type") or "")
                if cf is not None and ltype and type_kind(ltype) != cf.kind:
                    found.append(Drift(address, side, app, m[side], fname, "type-changed", cf.type, ltype,
                                       f"{where} changed type from {cf.type} to {ltype}: values may no longer "
                                       "convert; check the mapping"))
    return found
