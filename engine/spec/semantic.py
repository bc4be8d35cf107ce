"""Semantic checks of a workspace: everything the JSON Schema cannot know.

Each check adds Diagnostics (``file:line:col: error|warning: message``) pointing at the offending token
of the user's file; all are collected, never stopping at the first. Unknown names get "did you mean".

Checks: unknown app, connection, module or field; a connection of another app; type compatibility
(``engine.catalog.compat``: incompatible is an error, lossy a warning); writing a read-only field;
mapping an encrypted field; a mandatory field of a side that receives creates left unmapped; two
mappings writing one field; match keys that are not mapped fields; a field direction contradicting its
module's; a child module without its parent; field lists on modules whose fields are mapped
automatically; Desk products without departments; more than one view per module; a name split into
anything but two text fields; options that apply to other modules only; duplicate names; loops
(two-way integrations forming a cycle over the same records), and hubs (a connection synced two-way
with two others on the same module: a warning saying why it is safe here).
"""

from __future__ import annotations

from typing import Any

from engine.errors import Diagnostic, did_you_mean
from engine.spec.build import Origin, writes
from engine.spec.loader import Document
from engine.spec.model import Connection, FieldMap, Integration, Mark, Module

class _Out:
    def __init__(self) -> None:
        self.diags: list[Diagnostic] = []
        self.lossy_defaults: list[tuple[Mark, str]] = []

    def error(self, mark: Mark, message: str, code: str) -> None:
        self.diags.append(Diagnostic(mark.file, mark.line, mark.col, "error", message, code))

    def warning(self, mark: Mark, message: str, code: str) -> None:
        self.diags.append(Diagnostic(mark.file, mark.line, mark.col, "warning", message, code))


def _catalog(app: str) -> Any:
    from engine.catalog import APPS, catalog

    if app not in APPS:
        return None
    try:
        return catalog(app)
    except (KeyError, OSError, ValueError):
        return None


def check(integrations: list[tuple[Integration, Origin]], connections: list[tuple[Connection, Document]],
          broken_connections: set[str] | frozenset[str] = frozenset()) -> list[Diagnostic]:
    """Every semantic diagnostic. ``broken_connections``: names of connections whose documents failed
    the schema (already reported; integrations using them are not told the name is unknown)."""
    out = _Out()
    conns: dict[str, Connection] = {}
    for conn, doc in connections:
        _check_connection(conn, doc, out)
        if conn.name in conns:
            first = conns[conn.name].mark
            out.error(conn.mark, f'duplicate connection name "{conn.name}" (also at {first})', "duplicate-name")
        else:
            conns[conn.name] = conn
    seen: dict[str, Integration] = {}
    for integ, origin in integrations:
        if integ.name in seen:
            out.error(integ.mark, f'duplicate integration name "{integ.name}" (also at {seen[integ.name].mark})',
                      "duplicate-name")
        else:
            seen[integ.name] = integ
        _check_integration(integ, origin, conns, out, broken_connections)
    _check_loops([i for i, _ in integrations], out)
    return out.diags


# ------------------------------------------------------------------------------------- connections
def _check_connection(conn: Connection, doc: Document, out: _Out) -> None:
    from engine.catalog import APPS

    if conn.app not in APPS:
        out.error(doc.at(("spec", "app")), f'unknown app "{conn.app}"{did_you_mean(conn.app, APPS)}', "unknown-app")
    if conn.org_id is not None and conn.app != "zoho_desk":
        out.error(doc.key_at(("spec", "org_id")), "org_id applies only to zoho_desk connections", "org-id")
    if conn.base_url and "@" in conn.base_url.split("://", 1)[-1].split("/", 1)[0]:
        out.error(doc.at(("spec", "base_url")), "base_url holds credentials (user:password@): secrets must be "
                  "references, {env: NAME} or {file: PATH}, in auth", "inline-secret")
    for key, ref in conn.auth:
        if ref.kind == "file" and (ref.ref.startswith(("/", "\\", "~")) or ".." in ref.ref.replace("\\", "/").split("/")):
            out.error(doc.at(("spec", "auth", key, "file")),
                      f'secret file "{ref.ref}" is outside the repository: give a path relative to the repository '
                      "root, without .. (and keep the file out of git)", "secret-path")
    if conn.sandbox is None and not conn.auth:
        out.error(doc.key_at(("spec",)), f'connection "{conn.name}" needs either sandbox: (the built-in local app) '
                  "or auth: {client_id, client_secret, refresh_token}", "no-auth")


# ------------------------------------------------------------------------------------- integrations
def _check_integration(integ: Integration, origin: Origin, conns: dict[str, Connection], out: _Out,
                       broken: set[str] | frozenset[str] = frozenset()) -> None:
    from engine.catalog import APPS

    doc = origin.doc
    apps: dict[str, Any] = {}
    for side_name, side in (("left", integ.left), ("right", integ.right)):
        if side.app not in APPS:
            out.error(doc.at(("spec", side_name, "app")),
                      f'unknown app "{side.app}"{did_you_mean(side.app, APPS)}', "unknown-app")
        else:
            apps[side_name] = _catalog(side.app)
        conn = conns.get(side.connection)
        if conn is None and side.connection in broken:
            pass
        elif conn is None:
            out.error(doc.at(("spec", side_name, "connection")),
                      f'unknown connection "{side.connection}"{did_you_mean(side.connection, list(conns))}',
                      "unknown-connection")
        elif conn.app != side.app and side.app in APPS:
            out.error(doc.at(("spec", side_name, "connection")),
                      f'connection "{conn.name}" is a {conn.app} connection, not {side.app} (defined at {conn.mark})',
                      "connection-app")
    names: dict[str, Module] = {}
    for i, m in enumerate(integ.modules):
        if m.name in names:
            out.error(doc.at(("spec", "modules", i, "name")),
                      f'duplicate module name "{m.name}" (also at {names[m.name].mark})', "duplicate-module")
        else:
            names[m.name] = m
    for i, m in enumerate(integ.modules):
        _check_module(integ, origin, i, m, apps, names, out)


def _module_catalogs(integ: Integration, origin: Origin, i: int, m: Module, apps: dict[str, Any],
                     out: _Out) -> dict[str, Any]:
    doc = origin.doc
    found: dict[str, Any] = {}
    for side_name, api in (("left", m.left), ("right", m.right)):
        cat = apps.get(side_name)
        if cat is None:
            continue
        mod = cat.module(api)
        if mod is None:
            out.error(doc.at(("spec", "modules", i, side_name)),
                      f'unknown {cat.app} module "{api}"{did_you_mean(api, list(cat.modules))}', "unknown-module")
        else:
            found[side_name] = mod
    return found


def _field_token(origin: Origin, mod_index: int, field_index: int, side: str, k: int | None, fm: FieldMap
                 ) -> Mark:
    path = origin.field_paths.get((mod_index, field_index))
    if path is None:
        return fm.mark
    names = fm.left if side == "left" else fm.right
    if len(names) > 1 and k is not None:
        return origin.doc.at(path + (side, k))
    return origin.doc.at(path + (side,))


def _suffix(fm: FieldMap) -> str:
    return " (from defaults: true)" if fm.default else ""


def _check_module(integ: Integration, origin: Origin, i: int, m: Module, apps: dict[str, Any],
                  names: dict[str, Module], out: _Out) -> None:
    from engine.catalog.compat import INCOMPATIBLE, LOSSY, compatibility

    doc = origin.doc
    mpath = ("spec", "modules", i)
    mods = _module_catalogs(integ, origin, i, m, apps, out)
    app_of = {"left": integ.left.app, "right": integ.right.app}
    raw = doc.get(mpath) or {}

    # --- parent / child
    child = any(getattr(mods.get(s), "child", False) for s in ("left", "right"))
    if m.parent is not None:
        if m.parent not in names:
            out.error(doc.at(mpath + ("parent",)), f'unknown parent module "{m.parent}" in integration '
                      f'"{integ.name}"{did_you_mean(m.parent, [n for n in names if n != m.name])}', "unknown-parent")
        elif m.parent == m.name:
            out.error(doc.at(mpath + ("parent",)), "a module cannot be its own parent", "unknown-parent")
        else:
            parent = names[m.parent]
            if parent.parent is not None:
                out.error(doc.at(mpath + ("parent",)), f'parent module "{m.parent}" is itself a child module: '
                          "name a top-level module such as contacts or accounts", "parent-is-child")
    elif child:
        which = " / ".join(f"{getattr(integ, s).app} {getattr(m, s)}" for s in ("left", "right")
                           if getattr(mods.get(s), "child", False))
        top = [n for n, mm in names.items() if mm.parent is None and n != m.name]
        hint = f" (e.g. parent: {top[0]})" if top else " and add that parent module to this integration"
        out.error(doc.at(mpath),
                  f'module "{m.name}" ({which}) syncs only under a parent record: add parent: naming the module '
                  f"of this integration that syncs its parent{hint}", "child-without-parent")

    # --- automatic field mapping
    auto = bool(mods) and all(getattr(mods.get(s), "auto_fields", False) for s in ("left", "right"))
    if auto and raw.get("fields"):
        out.error(doc.key_at(mpath + ("fields",)), f'module "{m.name}": fields of {m.left}/{m.right} are mapped '
                  "automatically (the apps share them); remove the field list", "auto-fields")

    # --- filter: departments and views
    needs_dept = [s for s in ("left", "right") if getattr(mods.get(s), "requires_departments", False)]
    depts = m.filter.departments if m.filter else ()
    if needs_dept and not depts:
        out.error(doc.at(mpath), f'module "{m.name}": Zoho Desk products sync per department: add '
                  "filter: {departments: [NAME, ...]}", "departments-missing")
    if depts and not needs_dept and mods:
        out.error(doc.at(mpath + ("filter", "departments")), "departments apply only to Zoho Desk products; "
                  "other modules take filter: {view: NAME}", "departments-elsewhere")
    view = doc.get(mpath + ("filter", "view"))
    if isinstance(view, list):
        if len(view) > 1:
            out.error(doc.at(mpath + ("filter", "view", 1)), f'module "{m.name}": only one view per module '
                      f"(got {len(view)}); switching views later never deletes what an earlier view synced",
                      "several-views")
        elif not view:
            out.error(doc.at(mpath + ("filter", "view")), "view must name one list view", "several-views")

    # --- Bookings-only options
    bookings_appts = any(getattr(mods.get(s), "api_name", "") == "appointments" and app_of[s] == "zoho_bookings"
                         for s in ("left", "right"))
    if mods and not bookings_appts:
        for opt in ("services", "calendar"):
            if opt in raw:
                out.error(doc.key_at(mpath + (opt,)), f"{opt} applies only to Zoho Bookings appointments",
                          "bookings-only")

    # --- fields
    fields_writes: dict[tuple[str, str], tuple[Any, ...]] = {}  # -> _field_token's arguments
    mapped = {"left": set(), "right": set()}  # type: dict[str, set[str]]
    out.lossy_defaults = []
    for j, fm in enumerate(m.fields):
        _check_field(integ, origin, i, j, m, fm, mods, app_of, fields_writes, out, compatibility, INCOMPATIBLE,
                     LOSSY)
        mapped["left"].update(fm.left)
        mapped["right"].update(fm.right)
    if out.lossy_defaults:  # one warning for the standard pairs: they share the `defaults: true` token
        items = out.lossy_defaults
        out.warning(items[0][0], f'module "{m.name}": {len(items)} standard pair{"s" if len(items) > 1 else ""} '
                    f"of defaults: true may lose data: {'; '.join(text for _, text in items)}. Override a pair "
                    "in fields to change it", "lossy-types")
    for svc, fms in m.services:
        for j, fm in enumerate(fms):
            path = origin.service_paths.get((i, svc, j))
            _check_service_field(origin, path, m, fm, mods, out)

    # --- match keys
    for k, key in enumerate(m.match):
        for side, name in (("left", key.left), ("right", key.right)):
            mod = mods.get(side)
            if mod is not None and mod.field(name) is None:
                out.error(doc.at(mpath + ("match", k, side)), f'unknown field "{name}" in {app_of[side]} {getattr(m, side)}'
                          f"{did_you_mean(name, mod.field_names())}", "unknown-field")
                continue
            if auto:
                continue
            if name not in mapped[side] and not _derived_from_split(name, mapped[side]):
                out.error(doc.at(mpath + ("match", k, side)), f'match key {side} "{name}" is not a mapped field of module "{m.name}": '
                          "match keys must be mapped fields (add it to fields)", "match-not-mapped")

    # --- mandatory fields of a side receiving creates
    if not auto and m.enabled:
        receivers = [s for s, d in (("right", "left-to-right"), ("left", "right-to-left"))
                     if m.direction in ("two-way", d)]
        for side in receivers:
            mod = mods.get(side)
            if mod is None:
                continue
            written = {f for s, f in fields_writes if s == side}
            missing = [f.api_name for f in mod.fields if f.mandatory and not f.read_only
                       and f.api_name not in written and f.api_name != getattr(mod, "parent_field", None)
                       and f.kind != "id"]
            if missing:
                out.error(doc.at(mpath), f'module "{m.name}": {app_of[side]} {getattr(m, side)} receives new records '
                          f"but its mandatory field{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                          f"{'are' if len(missing) > 1 else 'is'} not mapped: map "
                          f"{'them' if len(missing) > 1 else 'it'} (or a value: for it)", "mandatory-unmapped")


def _derived_from_split(name: str, mapped: set[str]) -> bool:
    """Full_Name is computed by the app from First_Name and Last_Name."""
    return name == "Full_Name" and {"First_Name", "Last_Name"} <= mapped


def _check_field(integ: Integration, origin: Origin, i: int, j: int, m: Module, fm: FieldMap, mods: dict[str, Any],
                 app_of: dict[str, str], fields_writes: dict[tuple[str, str], tuple[Any, ...]], out: _Out,
                 compatibility: Any, INCOMPATIBLE: str, LOSSY: str) -> None:
    doc = origin.doc
    path = origin.field_paths.get((i, j))
    sfx = _suffix(fm)

    # direction against the module's
    if fm.direction is not None and fm.direction != m.direction and path is not None \
            and fm.value is None and fm.template is None:
        if m.direction != "two-way":
            out.error(doc.at(path + ("direction",)), f"field direction {fm.direction} contradicts module "
                      f'"{m.name}" direction {m.direction}: a field may only narrow a two-way module', "field-direction")
    if (fm.value is not None or fm.template is not None) and fm.direction and m.direction != "two-way" \
            and fm.direction != m.direction and path is not None:
        out.error(doc.at(path + ("left" if fm.left else "right",)), f'module "{m.name}" syncs {m.direction}: the '
                  f"{'left' if fm.left else 'right'} side never receives values", "field-direction")

    # known fields
    known: dict[tuple[str, int], Any] = {}
    for side in ("left", "right"):
        mod = mods.get(side)
        if mod is None:
            continue
        for k, name in enumerate(getattr(fm, side)):
            f = mod.field(name)
            if f is None:
                token = _field_token(origin, i, j, side, k, fm)
                if app_of[side] == "zoho_desk" and name.startswith("cf."):
                    out.warning(token, f'custom field "{name}" is not in the zoho_desk catalog of {mod.api_name}; '
                                "plan checks it against the live app", "unknown-custom-field")
                else:
                    out.error(token, f'unknown field "{name}" in {app_of[side]} {mod.api_name}'
                              f"{did_you_mean(name, mod.field_names())}{sfx}", "unknown-field")
                continue
            known[(side, k)] = f
            if f.encrypted:
                out.error(_field_token(origin, i, j, side, k, fm), f"{name} is encrypted in {app_of[side]}: encrypted fields cannot be mapped or "
                          "synced; map another field or remove the encryption", "encrypted-field")

    # writes: read-only targets and duplicates
    for side, name in sorted(writes(fm, m.direction)):
        k = getattr(fm, side).index(name)
        f = known.get((side, k))
        token = _field_token(origin, i, j, side, k, fm) if (f is not None and f.read_only) \
            or (side, name) in fields_writes else None
        if f is not None and f.read_only:
            other = "left-to-right" if side == "right" else "right-to-left"
            hint = f" (sync it one way, direction: {_flip(other)}, or drop it)" if m.direction == "two-way" \
                else ""
            out.error(token, f"{name} is read-only in {app_of[side]} {getattr(m, side)} and cannot be written"
                      f"{hint}{sfx}", "read-only")
        if (side, name) in fields_writes:
            first = fields_writes[(side, name)]
            out.error(token, f"{name} is written by two mappings (also at {_field_token(*first)}){sfx}",
                      "written-twice")
        else:  # where it is written: made into a mark only if a second mapping writes it too
            fields_writes[(side, name)] = (origin, i, j, side, k, fm)

    # split / join
    if len(fm.left) > 1 and len(fm.right) > 1:
        out.error(fm.mark if path is None else doc.at(path), "map one field to two (name split) or two to one "
                  "(join), not lists on both sides", "name-split")
    for many_side, one_side in (("right", "left"), ("left", "right")):
        many = getattr(fm, many_side)
        if len(many) > 1 and len(getattr(fm, one_side)) <= 1:
            fields = [known.get((many_side, k)) for k in range(len(many))]
            one = known.get((one_side, 0))
            if len(many) != 2:
                out.error(_field_token(origin, i, j, many_side, None, fm),
                          f"a name split or join uses exactly two text fields (first and last name), got {len(many)}",
                          "name-split")
            bad = [f.api_name for f in fields + [one] if f is not None and f.kind not in ("text", "longtext")]
            if bad:
                out.error(_field_token(origin, i, j, many_side, None, fm),
                          f"a name split or join works on text fields only: {', '.join(bad)} "
                          f"{'is' if len(bad) == 1 else 'are'} not text", "name-split")

    # picklist value maps
    if fm.values and len(fm.left) == 1 and len(fm.right) == 1:
        lf, rf = known.get(("left", 0)), known.get(("right", 0))
        picklists = [f for f in (lf, rf) if f is not None and f.kind in ("picklist", "multiselect")]
        token = doc.at(path + ("values",)) if path is not None else fm.mark
        if lf is not None and rf is not None and not picklists:
            out.error(token, f"values maps picklist values, but neither {lf.api_name} nor {rf.api_name} is a picklist",
                      "values-not-picklist")
        for side, f, pos in (("left", lf, 0), ("right", rf, 1)):
            if f is None or not f.picklist:
                continue
            unknown = [pair[pos] for pair in fm.values if pair[pos] not in f.picklist]
            if unknown:
                out.warning(token, f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not among the "
                            f"picklist values of {app_of[side]} {f.api_name} ({', '.join(f.picklist[:8])}"
                            f"{', …' if len(f.picklist) > 8 else ''})", "values-unknown")

    # field templates: record.X must be a field of the source module
    if fm.template is not None and path is not None:
        src_side = "left" if fm.right else "right"
        mod = mods.get(src_side)
        if mod is not None:
            for name in _template_fields(fm.template):
                if mod.field(name) is None:
                    out.error(doc.at(path + ("template",)), f'template reads record.{name}, which is not a field of '
                              f"{app_of[src_side]} {mod.api_name}{did_you_mean(name, mod.field_names())}",
                              "unknown-field")

    # type compatibility (one field to one field)
    if len(fm.left) == 1 and len(fm.right) == 1 and fm.value is None and fm.template is None:
        lf, rf = known.get(("left", 0)), known.get(("right", 0))
        if lf is not None and rf is not None and not lf.encrypted and not rf.encrypted:
            d = fm.direction or m.direction
            pairs = []
            if d in ("two-way", "left-to-right"):
                pairs.append((lf, rf, app_of["left"], app_of["right"], "right"))
            if d in ("two-way", "right-to-left"):
                pairs.append((rf, lf, app_of["right"], app_of["left"], "left"))
            for src, dst, sa, da, dst_side in pairs:
                if dst.read_only:
                    continue
                verdict, reason = compatibility(src, dst, src_app=sa, dst_app=da)
                if verdict == LOSSY and fm.values and src.picklist and dst.picklist:
                    # a values: map translates picklist values; only values it leaves unmapped are lost
                    table = dict(fm.values) if dst_side == "right" else {b: a for a, b in fm.values}
                    missing = [v for v in src.picklist if table.get(v, v) not in dst.picklist]
                    if not missing:
                        continue
                    if reason.startswith("picklist values missing"):
                        reason = f"picklist values missing on the destination are rejected: {', '.join(missing[:5])}"
                if verdict != INCOMPATIBLE and verdict != LOSSY:
                    continue
                token = _field_token(origin, i, j, dst_side, 0, fm)
                if verdict == INCOMPATIBLE:
                    out.error(token, f"{sa} {src.api_name} ({src.type}) cannot be written to {da} {dst.api_name} "
                              f"({dst.type}): {reason}{sfx}", "incompatible-types")
                elif verdict == LOSSY and fm.default:
                    out.lossy_defaults.append((token, f"{src.api_name} -> {dst.api_name} ({reason})"))
                elif verdict == LOSSY:
                    out.warning(token, f"{sa} {src.api_name} ({src.type}) to {da} {dst.api_name} ({dst.type}) "
                                f"may lose data: {reason}", "lossy-types")


def _template_fields(source: str) -> list[str]:
    """The ``record.X`` / ``record["X"]`` names a field template reads (empty if it does not parse)."""
    from jinja2 import nodes
    from jinja2.exceptions import TemplateSyntaxError

    from engine.spec.loader import _environment

    try:
        ast = _environment().parse(source)
    except TemplateSyntaxError:
        return []
    names = []
    skip: set[int] = set()
    for node in ast.find_all(nodes.Getattr):  # record.cf.cf_x is Desk's custom field "cf.cf_x"
        inner = node.node
        if isinstance(inner, nodes.Getattr) and inner.attr == "cf" and isinstance(inner.node, nodes.Name) \
                and inner.node.name == "record":
            names.append(f"cf.{node.attr}")
            skip.add(id(inner))
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        if id(node) in skip:
            continue
        if isinstance(target, nodes.Name) and target.name == "record":
            if isinstance(node, nodes.Getattr):
                names.append(node.attr)
            elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                names.append(node.arg.value)
    return sorted(set(names))


def _check_service_field(origin: Origin, path: tuple[Any, ...] | None, m: Module, fm: FieldMap,
                         mods: dict[str, Any], out: _Out) -> None:
    """Per-service custom fields: the Bookings side names a form field (not in the catalog); the
    other side's field must exist and be writable."""
    if path is None:
        return
    doc = origin.doc
    for side in ("left", "right"):
        mod = mods.get(side)
        if mod is None or mod.api_name == "appointments":
            continue
        for k, name in enumerate(getattr(fm, side)):
            token = doc.at(path + (side,)) if len(getattr(fm, side)) == 1 else doc.at(path + (side, k))
            f = mod.field(name)
            if f is None:
                out.error(token, f'unknown field "{name}" in {mod.api_name}{did_you_mean(name, mod.field_names())}',
                          "unknown-field")
            elif f.encrypted:
                out.error(token, f"{name} is encrypted: encrypted fields cannot be mapped or synced",
                          "encrypted-field")
            elif f.read_only and (side, name) in writes(fm, m.direction):
                out.error(token, f"{name} is read-only in {mod.api_name} and cannot be written", "read-only")


def _flip(direction: str) -> str:
    return {"left-to-right": "right-to-left", "right-to-left": "left-to-right"}.get(direction, direction)


# ------------------------------------------------------------------------------------- loops
def _check_loops(integrations: list[Integration], out: _Out) -> None:
    """Two-way module syncs are edges between (connection, module) nodes; a cycle is a loop.

    Union-find over the edges in a stable order: an edge joining two nodes already connected closes a
    cycle, made of that edge and the tree path between its ends. A node with two-way edges to two or
    more other connections and no cycle is a hub: safe here, and said so in a warning.
    """
    edges: list[tuple[tuple[str, str], tuple[str, str], Integration, Module]] = []
    for integ in sorted(integrations, key=lambda x: x.name):
        if integ.paused:
            pass  # a paused integration still resumes into a loop: count it
        for m in integ.modules:
            if not m.enabled or m.direction != "two-way":
                continue
            a = (integ.left.connection, m.left)
            b = (integ.right.connection, m.right)
            if a == b:
                out.error(m.mark, f'module "{m.name}" of integration "{integ.name}" syncs {m.left} of connection '
                          f'"{a[0]}" with itself', "self-loop")
                continue
            edges.append((a, b, integ, m))
    parent: dict[tuple[str, str], tuple[str, str]] = {}
    tree: dict[tuple[str, str], list[tuple[tuple[str, str], Integration]]] = {}

    def find(x: tuple[str, str]) -> tuple[str, str]:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    in_cycle: set[tuple[str, str]] = set()
    for a, b, integ, m in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
            tree.setdefault(a, []).append((b, integ))
            tree.setdefault(b, []).append((a, integ))
            continue
        path = _tree_path(tree, a, b)
        names = [it.name for _, it in path] + [integ.name]
        nodes = [a] + [n for n, _ in path]
        in_cycle.update(nodes)
        ring = " -> ".join(f"{c} {mod}" for c, mod in nodes + [a])
        uniq = sorted(set(names))
        out.error(m.mark, f"loop: integrations {', '.join(uniq)} sync the same records two-way in a cycle "
                  f"({ring}): a new record would reach each app by two paths and be created twice, and edits "
                  "could circle back over newer ones. Make one of them one-way or drop the module from one of them "
                  "(the vendors forbid such loops, seed 001)", "loop")

    # hubs: a node with two-way edges to two or more distinct other connections, outside any cycle
    by_node: dict[tuple[str, str], list[tuple[tuple[str, str], Integration, Module]]] = {}
    for a, b, integ, m in edges:
        by_node.setdefault(a, []).append((b, integ, m))
        by_node.setdefault(b, []).append((a, integ, m))
    for node, links in sorted(by_node.items()):
        others = {o[0] for o, _, _ in links}
        if len(others) < 2 or node in in_cycle:
            continue
        links = sorted(links, key=lambda x: x[1].name)
        listed = " and ".join(f'"{o[0]}" ({it.name})' for o, it, _ in links)
        out.warning(links[0][2].mark, f'connection "{node[0]}" syncs {node[1]} two-way with {listed}. This is safe '
                    "here: syncform compares each value with the last synced one (the merge base), so a change "
                    "relayed through it stops instead of echoing back (Zoho's own integrations forbid this; "
                    "seed 001)", "hub")


def _tree_path(tree: dict[Any, list[tuple[Any, Integration]]], start: Any, goal: Any
               ) -> list[tuple[Any, Integration]]:
    """The path start -> goal in the spanning forest, as (next node, integration of the edge) steps."""
    prev: dict[Any, tuple[Any, Integration] | None] = {start: None}
    queue = [start]
    while queue:
        x = queue.pop(0)
        if x == goal:
            break
        for y, integ in tree.get(x, []):
            if y not in prev:
                prev[y] = (x, integ)
                queue.append(y)
    steps: list[tuple[Any, Integration]] = []
    x = goal
    while prev.get(x) is not None:
        p, integ = prev[x]  # type: ignore[misc]
        steps.append((x, integ))
        x = p
    return list(reversed(steps))
