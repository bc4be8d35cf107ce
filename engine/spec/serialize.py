"""The desired model as plain JSON-able dicts, and back: what the state store keeps as "deployed".

- Marks (source positions) are dropped: the deployed spec does not depend on where a spec was written.
- Secrets only ever appear as references (``{"env": "NAME"}``); a ``SecretRef`` has no value to leak.
- Key order is stable (the order of the model's fields) and ``spec_hash`` hashes the canonical
  JSON (sorted keys, no whitespace), so an unchanged spec always hashes the same.
- ``*_from_dict(*_to_dict(x)) == x`` for every model value (marks compare equal by design).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from engine.spec.model import (
    Calendar,
    Connection,
    FieldMap,
    Integration,
    IntegrationSide,
    MatchKey,
    Module,
    ModuleFilter,
    SandboxOptions,
    SecretRef,
)


def canonical_json(d: Any) -> str:
    return json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def spec_hash(d: Any) -> str:
    """``sha256:<hex>`` of the canonical JSON of ``d`` (any JSON-able value)."""
    return "sha256:" + hashlib.sha256(canonical_json(d).encode("utf-8")).hexdigest()


# --- field maps -------------------------------------------------------------------------------------

def fieldmap_to_dict(f: FieldMap) -> dict[str, Any]:
    return {
        "left": list(f.left),
        "right": list(f.right),
        "direction": f.direction,
        "values": [list(pair) for pair in f.values],
        "value": _thaw(f.value),
        "template": f.template,
        "default": f.default,
    }


def fieldmap_from_dict(d: Mapping[str, Any]) -> FieldMap:
    return FieldMap(
        left=tuple(d.get("left") or ()),
        right=tuple(d.get("right") or ()),
        direction=d.get("direction"),
        values=tuple((str(a), str(b)) for a, b in d.get("values") or ()),
        value=_freeze(d.get("value")),
        template=d.get("template"),
        default=bool(d.get("default", False)),
    )


def _freeze(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    return v


def _thaw(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_thaw(x) for x in v]
    return v


# --- modules ----------------------------------------------------------------------------------------

def module_to_dict(m: Module) -> dict[str, Any]:
    return {
        "name": m.name,
        "left": m.left,
        "right": m.right,
        "direction": m.direction,
        "match": [{"left": k.left, "right": k.right} for k in m.match],
        "conflict": m.conflict,
        "on_delete": {"left": m.on_delete_left, "right": m.on_delete_right},
        "initial_sync": {"created_within_days": m.created_within_days},
        "defaults": m.defaults,
        "fields": [fieldmap_to_dict(f) for f in m.fields],
        "filter": None if m.filter is None else {"view": m.filter.view, "departments": list(m.filter.departments)},
        "parent": m.parent,
        "enabled": m.enabled,
        "services": [{"name": name, "fields": [fieldmap_to_dict(f) for f in fields]} for name, fields in m.services],
        "calendar": None if m.calendar is None else {
            "add_bookings": m.calendar.add_bookings,
            "send_invites": m.calendar.send_invites,
            "check_conflicts": m.calendar.check_conflicts,
        },
    }


def module_from_dict(d: Mapping[str, Any]) -> Module:
    flt = d.get("filter")
    cal = d.get("calendar")
    on_delete = d.get("on_delete") or {}
    return Module(
        name=d["name"],
        left=d["left"],
        right=d["right"],
        direction=d.get("direction", "two-way"),
        match=tuple(MatchKey(k["left"], k["right"]) for k in d.get("match") or ()),
        conflict=d.get("conflict", "latest"),
        on_delete_left=on_delete.get("left", "unlink"),
        on_delete_right=on_delete.get("right", "unlink"),
        created_within_days=int((d.get("initial_sync") or {}).get("created_within_days", 365)),
        defaults=bool(d.get("defaults", False)),
        fields=tuple(fieldmap_from_dict(f) for f in d.get("fields") or ()),
        filter=None if flt is None else ModuleFilter(view=flt.get("view"), departments=tuple(flt.get("departments") or ())),
        parent=d.get("parent"),
        enabled=bool(d.get("enabled", True)),
        services=tuple((s["name"], tuple(fieldmap_from_dict(f) for f in s.get("fields") or ()))
                       for s in d.get("services") or ()),
        calendar=None if cal is None else Calendar(**{k: bool(cal[k]) for k in ("add_bookings", "send_invites",
                                                                               "check_conflicts") if k in cal}),
    )


# --- integrations -----------------------------------------------------------------------------------

def integration_to_dict(i: Integration) -> dict[str, Any]:
    return {
        "name": i.name,
        "description": i.description,
        "left": {"app": i.left.app, "connection": i.left.connection},
        "right": {"app": i.right.app, "connection": i.right.connection},
        "owner": i.owner,
        "paused": i.paused,
        "guards": {"max_deletes": i.max_deletes},
        "history_days": i.history_days,
        "modules": [module_to_dict(m) for m in i.modules],
    }


def integration_from_dict(d: Mapping[str, Any]) -> Integration:
    return Integration(
        name=d["name"],
        description=d.get("description", ""),
        left=IntegrationSide(app=d["left"]["app"], connection=d["left"]["connection"]),
        right=IntegrationSide(app=d["right"]["app"], connection=d["right"]["connection"]),
        owner=d.get("owner"),
        paused=bool(d.get("paused", False)),
        max_deletes=(d.get("guards") or {}).get("max_deletes"),
        history_days=int(d.get("history_days", 7)),
        modules=tuple(module_from_dict(m) for m in d.get("modules") or ()),
    )


# --- connections ------------------------------------------------------------------------------------

def secret_ref_to_dict(ref: SecretRef) -> dict[str, str]:
    return {ref.kind: ref.ref}


def secret_ref_from_dict(d: Mapping[str, str]) -> SecretRef:
    if len(d) != 1 or next(iter(d)) not in ("env", "file"):
        raise ValueError(f"a secret reference is {{env: NAME}} or {{file: PATH}}, not {sorted(d)}")
    (kind, ref), = d.items()
    return SecretRef(kind, ref)  # type: ignore[arg-type]


def connection_to_dict(c: Connection) -> dict[str, Any]:
    return {
        "name": c.name,
        "app": c.app,
        "sandbox": None if c.sandbox is None else {"seed": c.sandbox.seed},
        "datacenter": c.datacenter,
        "base_url": c.base_url,
        "org_id": c.org_id,
        "auth": {key: secret_ref_to_dict(ref) for key, ref in c.auth},
        "max_concurrency": c.max_concurrency,
        "description": c.description,
    }


def connection_from_dict(d: Mapping[str, Any]) -> Connection:
    sandbox = d.get("sandbox")
    return Connection(
        name=d["name"],
        app=d["app"],
        sandbox=None if sandbox is None else SandboxOptions(seed=int(sandbox.get("seed", 0))),
        datacenter=d.get("datacenter", "us"),
        base_url=d.get("base_url"),
        org_id=d.get("org_id"),
        auth=tuple((key, secret_ref_from_dict(ref)) for key, ref in (d.get("auth") or {}).items()),
        max_concurrency=int(d.get("max_concurrency", 10)),
        description=d.get("description", ""),
    )


def deployed_spec(integration: Integration, connections: Sequence[Connection]) -> dict[str, Any]:
    """What the state keeps for one deployed integration: its spec plus the connections it uses
    (so that ``destroy`` and ``status`` still work once the specs are gone from the repository)."""
    used = {integration.left.connection, integration.right.connection}
    return {
        "integration": integration_to_dict(integration),
        "connections": [connection_to_dict(c) for c in sorted((c for c in connections if c.name in used),
                                                                key=lambda c: c.name)],
    }
