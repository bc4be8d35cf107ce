"""``syncform apps [APP [MODULE]]``: browse the field catalogs the specs are checked against."""

from __future__ import annotations

import json
from typing import Any

import click

_PICKLIST_SHOWN = 3


@click.command("apps")
@click.argument("app", required=False)
@click.argument("module", required=False)
@click.option("--json", "as_json", is_flag=True, default=False, help="Print JSON instead of a table.")
def apps(app: str | None, module: str | None, as_json: bool) -> int:
    """List apps; the modules of APP; or the fields of APP MODULE.

    \b
    syncform apps                    every app and how many modules it has
    syncform apps bigin              Bigin's modules: fields, parent, associates
    syncform apps zoho_desk contacts the fields of Desk contacts: type, flags, lookups, picklists
    """
    from engine.catalog import APPS, catalog
    from engine.errors import UsageError, did_you_mean

    if app is None:
        data: Any = [_app_summary(catalog(a)) for a in APPS]
        _emit(data, as_json, lambda: _table(
            ["APP", "LABEL", "MODULES", "MODULE NAMES"],
            [[d["app"], d["label"], str(d["modules"]), ", ".join(d["module_names"])] for d in data]))
        return 0
    if app not in APPS:
        raise UsageError(f'unknown app "{app}"{did_you_mean(app, APPS)}')
    cat = catalog(app)
    if module is None:
        mods = [_module_summary(m) for m in cat.modules.values()]
        _emit({"app": cat.app, "label": cat.label, "modules": mods}, as_json, lambda: _table(
            ["MODULE", "LABEL", "FIELDS", "PARENT", "SYNC", "ASSOCIATES"],
            [[m["api_name"], m["label"], str(m["fields"]), m["parent"] or "-", _sync_notes(m),
              ", ".join(m["associates"]) or "-"] for m in mods]))
        return 0
    mod = cat.module(module)
    if mod is None:
        raise UsageError(f'unknown module "{module}" of {app}{did_you_mean(module, list(cat.modules))}')
    detail = _module_detail(mod)
    _emit({"app": cat.app, **detail}, as_json, lambda: _table(
        ["API NAME", "LABEL", "TYPE", "FLAGS", "LOOKUP", "PICKLIST"],
        [[f["api_name"], f["label"], _type_cell(f), _flags(f), f["lookup"] or "-", _picklist(f["picklist"])]
         for f in detail["fields"]]))
    return 0


def _emit(data: Any, as_json: bool, table: Any) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        click.echo(table())


def _app_summary(cat: Any) -> dict[str, Any]:
    return {"app": cat.app, "label": cat.label, "modules": len(cat.modules),
            "module_names": list(cat.modules)}


def _module_summary(m: Any) -> dict[str, Any]:
    return {"api_name": m.api_name, "label": m.label, "fields": len(m.fields), "parent": m.parent,
            "parent_field": m.parent_field, "child": m.child, "auto_fields": m.auto_fields,
            "requires_departments": m.requires_departments, "associates": list(m.associates)}


def _module_detail(m: Any) -> dict[str, Any]:
    detail = _module_summary(m)
    detail.update(id_field=m.id_field, modified_field=m.modified_field, created_field=m.created_field,
                  fields=[{"api_name": f.api_name, "label": f.label, "type": f.type, "kind": f.kind,
                           "length": f.length, "mandatory": f.mandatory, "read_only": f.read_only,
                           "unique": f.unique, "encrypted": f.encrypted, "lookup": f.lookup,
                           "picklist": list(f.picklist)} for f in m.fields])
    return detail


def _sync_notes(m: dict[str, Any]) -> str:
    notes = [n for n, on in (("child", m["child"]), ("auto fields", m["auto_fields"]),
                             ("departments required", m["requires_departments"])) if on]
    return ", ".join(notes) or "-"


def _type_cell(f: dict[str, Any]) -> str:
    return f'{f["type"]}({f["length"]})' if f["length"] else f["type"]


def _flags(f: dict[str, Any]) -> str:
    flags = [name for key, name in (("mandatory", "mandatory"), ("read_only", "read-only"),
                                    ("unique", "unique"), ("encrypted", "encrypted")) if f[key]]
    return ", ".join(flags) or "-"


def _picklist(values: list[str]) -> str:
    if not values:
        return "-"
    shown = ", ".join(values[:_PICKLIST_SHOWN])
    rest = len(values) - _PICKLIST_SHOWN
    return f"{shown}, … (+{rest})" if rest > 0 else shown


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)
