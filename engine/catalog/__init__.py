"""App catalogs: the modules and fields of each app, as the real APIs spell them.

Data lives in ``engine/catalog/data/<app>.json`` (one per app, validated by
``engine/catalog/catalog.schema.json`` in ``tests/catalog``) and ``engine/catalog/data/pairs.json`` (the standard field pairs of
each app pair, the vendors' "pre-mapped" defaults used by ``defaults: true``).

Catalog file shape::

    {
      "app": "bigin", "label": "Bigin",
      "modules": {
        "Contacts": {
          "label": "Contacts",
          "id_field": "id", "modified_field": "Modified_Time", "created_field": "Created_Time",
          "parent": null,                       # api name of the parent module (Notes: polymorphic -> null)
          "child": false,                       # activities/notes/appointments: synced only under a parent
          "auto_fields": false,                 # activities/notes: fields mapped automatically, no field list
          "requires_departments": false,        # Desk products
          "associates": ["Tickets", ...],       # seed 001: what blocks delete-if-no-associates
          "parent_field": null,                 # child modules: the field naming the parent (Who_Id, Parent_Id)
          "fields": [
            {"api_name": "Last_Name", "label": "Last Name", "type": "text", "length": 80,
             "mandatory": true, "read_only": false, "unique": false, "encrypted": false,
             "picklist": ["A", "B"], "lookup": "Accounts"}
          ]
        }
      }
    }

``modified_field``/``created_field`` are null where the app keeps no such timestamp (Bookings).
Type compatibility of two fields: ``engine.catalog.compat.compatibility`` (docs/type-compatibility.md).

``type`` is the app's own data type (``text``, ``email``, ``integer``, ``picklist``, ... for CRM and
Bigin; Desk and Bookings types likewise as those apps name them). ``kind`` of a field (see
``type_kind``) is the app-independent family used for compatibility and conversion.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

APPS: tuple[str, ...] = ("bigin", "zoho_crm", "zoho_desk", "zoho_bookings")

# App type -> app-independent kind. Kinds: text, longtext, email, phone, url, integer, decimal,
# boolean, date, datetime, picklist, multiselect, lookup, owner, id, other.
TYPE_KINDS: dict[str, str] = {
    # CRM / Bigin data_type values
    "text": "text", "textarea": "longtext", "mediumtext": "longtext", "email": "email",
    "phone": "phone", "website": "url", "autonumber": "text", "integer": "integer",
    "bigint": "integer", "long": "integer", "double": "decimal", "percent": "decimal",
    "currency": "decimal", "decimal": "decimal", "boolean": "boolean", "date": "date",
    "datetime": "datetime", "picklist": "picklist", "multiselectpicklist": "multiselect",
    "lookup": "lookup", "ownerlookup": "owner", "userlookup": "owner", "id": "id",
    # Desk field types
    "Text": "text", "Textarea": "longtext", "Email": "email", "Phone": "phone", "URL": "url",
    "Number": "integer", "Decimal": "decimal", "Currency": "decimal", "Percent": "decimal",
    "Boolean": "boolean", "Date": "date", "DateTime": "datetime", "Picklist": "picklist",
    "Multiselect": "multiselect", "LookUp": "lookup", "Owner": "owner",
    # Bookings form field types (seed 000)
    "SingleLine": "text", "MultiLine": "longtext", "Dropdown": "picklist", "Checkbox": "multiselect",
    "Radio": "picklist", "DateTimeBookings": "datetime",
}


@dataclass(frozen=True, slots=True)
class Field:
    api_name: str
    label: str
    type: str
    length: int | None = None
    mandatory: bool = False
    read_only: bool = False
    unique: bool = False
    encrypted: bool = False
    picklist: tuple[str, ...] = ()
    lookup: str | None = None

    @property
    def kind(self) -> str:
        return type_kind(self.type)


@dataclass(frozen=True, slots=True)
class ModuleCatalog:
    api_name: str
    label: str
    fields: tuple[Field, ...]
    id_field: str = "id"
    modified_field: str | None = "Modified_Time"   # None: the app keeps no such timestamp (Bookings)
    created_field: str | None = "Created_Time"
    parent: str | None = None
    child: bool = False
    auto_fields: bool = False
    requires_departments: bool = False
    associates: tuple[str, ...] = ()
    parent_field: str | None = None                 # the field of a child naming its parent (Who_Id, Parent_Id)
    _by_name: dict[str, Field] = field(default_factory=dict, compare=False, repr=False)

    def field(self, api_name: str) -> Field | None:
        if not self._by_name:
            self._by_name.update({f.api_name: f for f in self.fields})
        return self._by_name.get(api_name)

    def field_names(self) -> tuple[str, ...]:
        return tuple(f.api_name for f in self.fields)


@dataclass(frozen=True, slots=True)
class AppCatalog:
    app: str
    label: str
    modules: dict[str, ModuleCatalog]

    def module(self, api_name: str) -> ModuleCatalog | None:
        return self.modules.get(api_name)


def type_kind(app_type: str) -> str:
    kind = TYPE_KINDS.get(app_type)
    if kind is None:  # lower-cased only when the type is not listed as written
        kind = TYPE_KINDS.get(app_type.lower(), "other")
    return kind


def _field(d: dict[str, Any]) -> Field:
    return Field(
        api_name=d["api_name"], label=d.get("label", d["api_name"]), type=d["type"],
        length=d.get("length"), mandatory=bool(d.get("mandatory")), read_only=bool(d.get("read_only")),
        unique=bool(d.get("unique")), encrypted=bool(d.get("encrypted")),
        picklist=tuple(d.get("picklist") or ()), lookup=d.get("lookup"),
    )


def catalog_from_dict(data: dict[str, Any]) -> AppCatalog:
    modules = {}
    for api, m in data["modules"].items():
        modules[api] = ModuleCatalog(
            api_name=api, label=m.get("label", api), fields=tuple(_field(f) for f in m["fields"]),
            id_field=m.get("id_field", "id"), modified_field=m.get("modified_field", "Modified_Time"),
            created_field=m.get("created_field", "Created_Time"), parent=m.get("parent"),
            child=bool(m.get("child")), auto_fields=bool(m.get("auto_fields")),
            requires_departments=bool(m.get("requires_departments")),
            associates=tuple(m.get("associates") or ()), parent_field=m.get("parent_field"),
        )
    return AppCatalog(app=data["app"], label=data.get("label", data["app"]), modules=modules)


def _read(name: str) -> Any:
    path = Path(__file__).with_name("data") / name
    if path.is_file():  # installed as files (editable or a wheel): no importlib.resources to import (~4 ms)
        return json.loads(path.read_text("utf-8"))
    from importlib import resources

    return json.loads(resources.files("engine.catalog").joinpath("data", name).read_text("utf-8"))


@cache
def catalog(app: str) -> AppCatalog:
    """The catalog of ``app``. Raises KeyError for an unknown app (callers check ``APPS`` first)."""
    if app not in APPS:
        raise KeyError(app)
    return catalog_from_dict(_read(f"{app}.json"))


@cache
def _pairs() -> dict[str, Any]:
    return _read("pairs.json")


def default_pairs(left_app: str, left_module: str, right_app: str,
                  right_module: str) -> tuple[tuple[str, str], ...]:
    """The standard (left field, right field) pairs for a module pair, in either orientation.

    ``pairs.json`` is ``{"zoho_desk/bigin": {"contacts/Contacts": [["firstName", "First_Name"], ...]}}``;
    a lookup for ``bigin/zoho_desk`` flips the stored pairs.
    """
    data = _pairs()
    key, mod = f"{left_app}/{right_app}", f"{left_module}/{right_module}"
    if key in data and mod in data[key]:
        return tuple((a, b) for a, b in data[key][mod])
    rkey, rmod = f"{right_app}/{left_app}", f"{right_module}/{left_module}"
    if rkey in data and rmod in data[rkey]:
        return tuple((b, a) for a, b in data[rkey][rmod])
    return ()


def standard_module_pairs(left_app: str, right_app: str) -> tuple[tuple[str, str], ...]:
    """The (left module, right module) pairs ``pairs.json`` knows for an app pair, in either orientation."""
    data = _pairs()
    if f"{left_app}/{right_app}" in data:
        return tuple(tuple(k.split("/", 1)) for k in data[f"{left_app}/{right_app}"])  # type: ignore[misc]
    if f"{right_app}/{left_app}" in data:
        return tuple((b, a) for a, b in (k.split("/", 1) for k in data[f"{right_app}/{left_app}"]))
    return ()
