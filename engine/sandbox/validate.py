"""Record validation driven by the field catalogs, as the apps validate a write.

``check(module, values, creating=..., ...)`` returns the cleaned values to store and the first error
(the apps report one error per record). Unknown fields are ignored, as the apps ignore api names they
do not know; read-only fields are ignored; encrypted fields are refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.catalog import Field, ModuleCatalog
from engine.sandbox import timefmt

EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
PHONE = re.compile(r"^[0-9+()\-.\s/x#*]{1,50}$")
URL = re.compile(r"^(https?://)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+(:\d+)?(/\S*)?$")
SYSTEM = {"id", "Created_Time", "Modified_Time", "Created_By", "Modified_By", "createdTime",
          "modifiedTime", "Full_Name", "$approval_state", "$se_module", "Tag", "webUrl"}


@dataclass(frozen=True, slots=True)
class FieldError:
    code: str  # INVALID_DATA | MANDATORY_NOT_FOUND | DUPLICATE_DATA | ...
    field: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    error_type: str = "invalid"  # Desk: invalid | duplicate | missing


def empty(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip()) or (isinstance(v, (list, dict)) and not v)


def _lookup_id(v: Any) -> str | None:
    if isinstance(v, dict):
        v = v.get("id")
    if isinstance(v, int) and not isinstance(v, bool):
        v = str(v)
    return v if isinstance(v, str) and v.strip() else None


_KINDS: dict[str, str] = {}  # catalog type -> kind (``Field.kind`` computes it on every access)
_MANDATORY: dict[int, tuple[ModuleCatalog, tuple[str, ...]]] = {}


def kind_of(f: Field) -> str:
    kind = _KINDS.get(f.type)
    if kind is None:
        kind = _KINDS[f.type] = f.kind
    return kind


def _mandatory(module: ModuleCatalog) -> tuple[str, ...]:
    hit = _MANDATORY.get(id(module))
    if hit is None or hit[0] is not module:
        hit = _MANDATORY[id(module)] = (module, tuple(f.api_name for f in module.fields
                                                      if f.mandatory and not f.read_only))
    return hit[1]


def _bad(f: Field, msg: str, **details: Any) -> tuple[None, FieldError]:
    return None, FieldError("INVALID_DATA", f.api_name, msg, details)


_TEXT_KINDS = frozenset({"text", "longtext", "email", "phone", "url", "picklist"})


def check_value(f: Field, v: Any, *, exists: Callable[[str | None, str], bool],
                user_ids: set[str]) -> tuple[Any, FieldError | None]:
    if v is None:
        return None, None
    kind = kind_of(f)
    if kind in _TEXT_KINDS:
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            return _bad(f, "invalid data", expected_data_type="string")
        v = str(v) if not isinstance(v, str) else v
        if f.length and len(v) > f.length:
            return _bad(f, f"the length of {f.api_name} exceeds the maximum of {f.length} characters",
                       maximum_length=f.length)
        if kind == "email" and v.strip() and not EMAIL.match(v.strip()):
            return _bad(f, "invalid email", expected_data_type="email")
        if kind == "phone" and v.strip() and not PHONE.match(v.strip()):
            return _bad(f, "invalid phone number", expected_data_type="phone")
        if kind == "url" and v.strip() and not URL.match(v.strip()):
            return _bad(f, "invalid website", expected_data_type="website")
        if kind == "picklist" and f.picklist and v not in f.picklist and v != "-None-":
            return _bad(f, f"invalid picklist value {v!r}; valid values: {', '.join(f.picklist)}",
                       expected_data_type="picklist")
        return v, None
    if kind == "integer":
        if isinstance(v, bool):
            return _bad(f, "invalid data", expected_data_type="integer")
        if isinstance(v, int):
            return v, None
        if isinstance(v, float) and v.is_integer():
            return int(v), None
        if isinstance(v, str) and re.fullmatch(r"-?\d{1,18}", v.strip()):
            return int(v.strip()), None
        return _bad(f, "invalid data", expected_data_type="integer")
    if kind == "decimal":
        if isinstance(v, bool):
            return _bad(f, "invalid data", expected_data_type="double")
        if isinstance(v, (int, float)):
            return v, None
        if isinstance(v, str):
            try:
                return float(v.strip()), None
            except ValueError:
                pass
        return _bad(f, "invalid data", expected_data_type="double")
    if kind == "boolean":
        if isinstance(v, bool):
            return v, None
        return _bad(f, "invalid data", expected_data_type="boolean")
    if kind == "date":
        if timefmt.parse_date(v) is None:
            return _bad(f, "invalid date; expected yyyy-MM-dd", expected_data_type="date")
        return v, None
    if kind == "datetime":
        dt = timefmt.parse_iso(v) if f.type != "DateTimeBookings" else timefmt.parse_bookings(v)
        if dt is None:
            return _bad(f, "invalid datetime; expected ISO 8601 with an offset, e.g. 2023-05-10T01:10:47-07:00",
                       expected_data_type="datetime")
        return timefmt.to_db(dt), None
    if kind == "multiselect":
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            return _bad(f, "invalid data", expected_data_type="jsonarray")
        if f.picklist:
            for x in v:
                if x not in f.picklist:
                    return _bad(f, f"invalid picklist value {x!r}", expected_data_type="multiselectpicklist")
        return v, None
    if kind == "lookup":
        rid = _lookup_id(v)
        if rid is None:
            return _bad(f, "invalid data", expected_data_type="jsonobject")
        if not exists(f.lookup, rid):
            return _bad(f, "the related id given seems to be invalid", id=rid)
        return {"id": rid}, None
    if kind == "owner":
        rid = _lookup_id(v)
        if rid is None or rid not in user_ids:
            return _bad(f, "invalid owner id", expected_data_type="jsonobject")
        return rid, None
    return v, None


def check(module: ModuleCatalog, values: dict[str, Any], *, creating: bool,
          exists: Callable[[str | None, str], bool], user_ids: set[str],
          extra_mandatory: tuple[str, ...] = ()) -> tuple[dict[str, Any], FieldError | None]:
    clean: dict[str, Any] = {}
    for name, v in values.items():
        f = module.field(name)
        if f is None or name in SYSTEM or f.read_only:
            continue
        if f.encrypted:
            return {}, FieldError("INVALID_DATA", name, f"{name} is an encrypted field and cannot be "
                                  "written through the API", {"api_name": name})
        cv, err = check_value(f, v, exists=exists, user_ids=user_ids)
        if err:
            return {}, err
        clean[name] = cv
    mandatory = _mandatory(module) + tuple(extra_mandatory)
    for name in mandatory:
        present = name in clean or (name in values and module.field(name) is None)
        value = clean.get(name, values.get(name))
        if (creating and (not present or empty(value))) or (not creating and name in values and empty(value)):
            return {}, FieldError("MANDATORY_NOT_FOUND", name, "required field not found", {},
                                  error_type="missing")
    return clean, None


def norm(v: Any) -> str:
    """Uniqueness compares case-insensitively (and ignoring surrounding spaces)."""
    if isinstance(v, dict):
        v = v.get("id")
    return str(v).strip().casefold() if v is not None else ""
