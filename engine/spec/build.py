"""From schema-valid documents to the desired model (``engine.spec.model``), normalised.

See the model's docstring for the normalisation rules. The builder also records, for each model
object, the path of the YAML node it came from (``Origins``), so that semantic checks can point at
the offending token (a field name, a direction) rather than at the start of its entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.errors import Diagnostic
from engine.spec.loader import Document
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

AUTH_KEYS = ("client_id", "client_secret", "refresh_token")


@dataclass(eq=False, slots=True)
class Origin:
    """Where an Integration came from: its document and, per module, per final field, the YAML path."""

    doc: Document
    # (module index, field index in Module.fields) -> path of the user's entry, or None (defaults: true)
    field_paths: dict[tuple[int, int], tuple[Any, ...] | None] = field(default_factory=dict)
    # (module index, service name, field index) -> path
    service_paths: dict[tuple[int, str, int], tuple[Any, ...]] = field(default_factory=dict)


def _names(v: Any) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, list):
        return tuple(str(x) for x in v)
    return (str(v),)


def build_field(doc: Document, path: tuple[Any, ...], raw: dict[str, Any], module_direction: str,
                diags: list[Diagnostic]) -> FieldMap:
    mark = doc.at(path)
    left, right = _names(raw.get("left")), _names(raw.get("right"))
    direction = raw.get("direction")
    constant = "value" in raw
    template = raw.get("template")

    def err(sub: tuple[Any, ...], msg: str, code: str) -> None:
        m = doc.at(path + sub)
        diags.append(Diagnostic(m.file, m.line, m.col, "error", msg, code))

    if constant or template is not None:
        what = "value" if constant else "template"
        if constant and template is not None:
            err(("template",), "a field takes either value or template, not both", "value-and-template")
        if left and right:
            err((what,), f"a {what} replaces the source field: name only the field that receives it "
                "(left or right), not both", "value-two-sides")
        elif not left and not right:
            err((what,), f"name the field that receives the {what}: add left: FIELD or right: FIELD",
                "value-no-target")
        else:
            receiving = "left-to-right" if right else "right-to-left"
            if direction is not None and direction != receiving:
                err(("direction",), f"direction {direction} contradicts the field receiving the {what} "
                    f"({'right' if right else 'left'}): use {receiving} or drop direction", "value-direction")
            direction = receiving
        if template is not None:
            _check_template(doc, path + ("template",), template, diags)
    else:
        if not left or not right:
            missing = "left" if not left else "right"
            err((), f'a field mapping needs both left and right (missing "{missing}"), or a value/template',
                "field-side-missing")
        if direction == module_direction:
            direction = None
    values = tuple((str(k), str(v)) for k, v in (raw.get("values") or {}).items())
    return FieldMap(left=left, right=right, direction=direction, values=values,
                    value=raw.get("value") if constant else None, template=template, default=False, mark=mark)


def _check_template(doc: Document, path: tuple[Any, ...], source: str, diags: list[Diagnostic]) -> None:
    from jinja2 import TemplateSyntaxError

    from engine.spec.loader import _environment

    try:
        _environment().parse(source)
    except TemplateSyntaxError as exc:
        m = doc.at(path)
        diags.append(Diagnostic(m.file, m.line, m.col, "error", f"template syntax error: {exc.message}",
                                "template"))


def writes(fm: FieldMap, module_direction: str) -> set[tuple[str, str]]:
    """The (side, field) pairs a mapping writes."""
    d = fm.direction or module_direction
    out: set[tuple[str, str]] = set()
    if d in ("two-way", "left-to-right") and (fm.left or fm.value is not None or fm.template is not None):
        out |= {("right", f) for f in fm.right}
    if d in ("two-way", "right-to-left") and (fm.right or fm.value is not None or fm.template is not None):
        out |= {("left", f) for f in fm.left}
    return out


def _auto_fields(left_app: str, left_module: str, right_app: str, right_module: str) -> bool:
    """Both modules map their fields automatically (activities, notes): the standard pairs apply."""
    from engine.catalog import APPS, catalog

    try:
        mods = [catalog(a).module(m) if a in APPS else None
                for a, m in ((left_app, left_module), (right_app, right_module))]
    except (KeyError, OSError, ValueError):
        return False
    return all(m is not None and m.auto_fields for m in mods)


def build_module(doc: Document, path: tuple[Any, ...], raw: dict[str, Any], left_app: str, right_app: str,
                 origin: Origin, index: int, diags: list[Diagnostic]) -> Module:
    direction = raw.get("direction", "two-way")
    user: list[tuple[FieldMap, tuple[Any, ...]]] = []
    for j, f in enumerate(raw.get("fields") or []):
        p = path + ("fields", j)
        user.append((build_field(doc, p, f, direction, diags), p))
    fields: list[tuple[FieldMap, tuple[Any, ...] | None]] = []
    auto = _auto_fields(left_app, str(raw["left"]), right_app, str(raw["right"]))
    if raw.get("defaults") or auto:
        from engine.catalog import default_pairs

        try:
            pairs = default_pairs(left_app, str(raw["left"]), right_app, str(raw["right"]))
        except (KeyError, OSError, ValueError):  # catalog data missing or unknown app: reported elsewhere
            pairs = ()
        taken: set[tuple[str, str]] = set()
        for fm, _ in user:
            taken |= writes(fm, direction)
        dmark = doc.at(path + ("defaults",)) if raw.get("defaults") else doc.at(path)
        for lf, rf in pairs:
            fm = FieldMap(left=(lf,), right=(rf,), default=True, mark=dmark)
            if writes(fm, direction) & taken:
                continue
            fields.append((fm, None))
    fields += user
    for j, (_, p) in enumerate(fields):
        origin.field_paths[(index, j)] = p
    services: list[tuple[str, tuple[FieldMap, ...]]] = []
    for svc, entries in (raw.get("services") or {}).items():
        fms = []
        for j, f in enumerate(entries or []):
            p = path + ("services", svc, j)
            fms.append(build_field(doc, p, f, direction, diags))
            origin.service_paths[(index, str(svc), j)] = p
        services.append((str(svc), tuple(fms)))
    flt = None
    if "filter" in raw:
        f = raw["filter"] or {}
        view = f.get("view")
        if isinstance(view, list):
            view = view[0] if view else None
        flt = ModuleFilter(view=view, departments=tuple(str(d) for d in f.get("departments") or ()),
                           mark=doc.at(path + ("filter",)))
    cal = None
    if "calendar" in raw:
        c = raw["calendar"] or {}
        cal = Calendar(add_bookings=c.get("add_bookings", True), send_invites=c.get("send_invites", False),
                       check_conflicts=c.get("check_conflicts", True))
    on_delete = raw.get("on_delete") or {}
    within = str((raw.get("initial_sync") or {}).get("created_within", "365d"))
    return Module(
        name=raw["name"], left=str(raw["left"]), right=str(raw["right"]), direction=direction,
        match=tuple(MatchKey(left=str(m["left"]), right=str(m["right"]), mark=doc.at(path + ("match", k)))
                    for k, m in enumerate(raw.get("match") or [])),
        conflict=raw.get("conflict", "latest"),
        on_delete_left=on_delete.get("left", "unlink"), on_delete_right=on_delete.get("right", "unlink"),
        created_within_days=int(within.rstrip("d")), defaults=bool(raw.get("defaults", False)) or auto,
        fields=tuple(fm for fm, _ in fields), filter=flt, parent=raw.get("parent"),
        enabled=raw.get("enabled", True), services=tuple(services), calendar=cal, mark=doc.at(path),
    )


def _int_or_none(v: Any) -> int | None:
    return None if v is None else int(v)


def build_integration(doc: Document, diags: list[Diagnostic]) -> tuple[Integration, Origin]:
    v = doc.value
    spec = v["spec"]
    origin = Origin(doc=doc)
    left = IntegrationSide(app=str(spec["left"]["app"]), connection=str(spec["left"]["connection"]),
                           mark=doc.at(("spec", "left")))
    right = IntegrationSide(app=str(spec["right"]["app"]), connection=str(spec["right"]["connection"]),
                            mark=doc.at(("spec", "right")))
    modules = tuple(build_module(doc, ("spec", "modules", i), m, left.app, right.app, origin, i, diags)
                    for i, m in enumerate(spec["modules"]))
    integ = Integration(
        name=v["metadata"]["name"], left=left, right=right, modules=modules,
        description=str(v["metadata"].get("description", "")), owner=spec.get("owner"),
        paused=bool(spec.get("paused", False)), max_deletes=_int_or_none((spec.get("guards") or {}).get("max_deletes")),
        history_days=int(spec.get("history_days", 7)), mark=doc.at(("metadata", "name")),
    )
    return integ, origin


def build_connection(doc: Document) -> Connection:
    v = doc.value
    spec = v["spec"]
    sandbox = spec.get("sandbox")
    if sandbox is True:
        sb: SandboxOptions | None = SandboxOptions(seed=0)
    elif isinstance(sandbox, dict):
        sb = SandboxOptions(seed=int(sandbox.get("seed", 0)))
    else:
        sb = None
    auth_raw = spec.get("auth") or {}
    auth = []
    for k in AUTH_KEYS:
        ref = auth_raw.get(k)
        if isinstance(ref, dict) and ref:
            kind, value = next(iter(ref.items()))
            auth.append((k, SecretRef(kind=kind, ref=str(value))))
    return Connection(
        name=v["metadata"]["name"], app=str(spec["app"]), sandbox=sb, datacenter=spec.get("datacenter", "us"),
        base_url=spec.get("base_url"), org_id=spec.get("org_id"), auth=tuple(auth),
        max_concurrency=int(spec.get("max_concurrency", 10)),
        description=str(v["metadata"].get("description", "")), mark=doc.at(("metadata", "name")),
    )
