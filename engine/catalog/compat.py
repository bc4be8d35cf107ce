"""Type compatibility of a field mapping: can values of ``src`` be written into ``dst``?

``compatibility(src, dst, src_app=..., dst_app=...)`` answers one of

* ``"ok"``           every value converts without loss;
* ``"lossy"``        the mapping works but some values are truncated, rounded or rejected one by one
                     (validation warns; sync records a per-record failure when a value is rejected);
* ``"incompatible"`` the mapping cannot work (validation error),

with a reason a user can read. The rules, in order (documented in ``docs/type-compatibility.md``):

1. an encrypted field on either side cannot be mapped or synced (seed 000, "Encrypted field");
2. a record id may be copied into a text field, never written as an id;
3. Zoho Bookings -> Bigin: Bookings form field types follow seed 000's table exactly;
4. otherwise the matrix by kind (``engine.catalog.type_kind``) in ``MATRIX``; pairs it does not list
   are incompatible;
5. an ``ok`` mapping becomes ``lossy`` when the destination is shorter than the source, or when a
   source picklist has values the destination picklist lacks.

Read-only and mandatory flags are not type questions: callers check ``Field.read_only`` for the side
they write (a read-only field may still be the source of a one-way mapping).
"""

from __future__ import annotations

from engine.catalog import Field, standard_module_pairs

OK, LOSSY, INCOMPATIBLE = "ok", "lossy", "incompatible"

# Seed 000 (Bookings -> Bigin): Bookings form field type -> the Bigin data types it may map to.
BOOKINGS_TO_BIGIN: dict[str, tuple[str, ...]] = {
    "SingleLine": ("text", "textarea"),
    "MultiLine": ("text", "textarea"),
    "Email": ("email",),
    "Dropdown": ("picklist",),
    "Date": ("date",),
    "Checkbox": ("multiselectpicklist",),
    "Radio": ("text", "textarea"),
}
BIGIN_TYPE_LABELS: dict[str, str] = {
    "text": "Single line", "textarea": "Multi-line", "email": "Email", "picklist": "Picklist",
    "date": "Date", "multiselectpicklist": "Multi-select",
}

_TEXTS = ("text", "longtext")

# (source kind, destination kind) -> (verdict, reason). Same kind is ok (lookups: see _lookup).
MATRIX: dict[tuple[str, str], tuple[str, str]] = {
    ("text", "longtext"): (OK, "single-line text fits a multi-line field"),
    ("longtext", "text"): (LOSSY, "multi-line text is flattened and truncated to the single-line field's length"),
    ("integer", "decimal"): (OK, "whole numbers are valid decimals"),
    ("decimal", "integer"): (LOSSY, "decimals are rounded to whole numbers"),
    **{(k, t): (OK, f"{k} values are plain text") for k in ("email", "phone", "url") for t in _TEXTS},
    **{(t, k): (LOSSY, f"text that is not a valid {k} is rejected record by record")
       for k in ("email", "phone", "url") for t in _TEXTS},
    **{("picklist", t): (OK, "the chosen value is copied as text") for t in _TEXTS},
    **{(t, "picklist"): (LOSSY, "text that is not one of the picklist values is rejected record by record")
       for t in _TEXTS},
    ("picklist", "multiselect"): (OK, "a single choice is a valid multi-select value"),
    ("multiselect", "longtext"): (OK, "the chosen values are joined into text"),
    ("multiselect", "text"): (LOSSY, "the chosen values are joined and truncated to the field's length"),
    ("datetime", "date"): (LOSSY, "the time of day is dropped"),
    ("date", "datetime"): (OK, "a date becomes midnight of that day"),
    **{(k, t): (OK, f"{k} values are written as ISO text") for k in ("date", "datetime") for t in _TEXTS},
    **{("boolean", t): (OK, "true/false is written as text") for t in _TEXTS},
    **{(k, t): (OK, "numbers are written as text") for k in ("integer", "decimal") for t in _TEXTS},
    **{(t, "integer"): (INCOMPATIBLE, "a text value cannot be written to an integer field "
                        '(Zoho: "Text value is given for an Integer field")') for t in _TEXTS},
    **{(t, "decimal"): (INCOMPATIBLE, "a text value cannot be written to a number field "
                        '(Zoho: "Text value is given for an Integer field")') for t in _TEXTS},
}

_LENGTH_KINDS = frozenset({"text", "longtext", "email", "phone", "url", "integer", "decimal"})


def compatibility(src: Field, dst: Field, *, src_app: str, dst_app: str) -> tuple[str, str]:
    """Whether values of ``src`` (in ``src_app``) can be written to ``dst`` (in ``dst_app``), and why."""
    if src.encrypted or dst.encrypted:
        side = src if src.encrypted else dst
        return INCOMPATIBLE, f"{side.api_name} is encrypted; encrypted fields cannot be mapped or synced"
    sk, dk = src.kind, dst.kind
    if dk == "id":
        return INCOMPATIBLE, "record ids are assigned by the app and cannot be written"
    if sk == "id":
        if dk in _TEXTS:
            return OK, "the record id is copied as text"
        return INCOMPATIBLE, f"a record id can only be copied into a text field, not {_kind_name(dk)}"
    if src_app == "zoho_bookings" and dst_app == "bigin" and src.type in BOOKINGS_TO_BIGIN:
        return _bookings_to_bigin(src, dst)
    if sk in ("lookup", "owner") or dk in ("lookup", "owner"):
        return _lookup(src, dst, src_app, dst_app)
    if sk == "other" or dk == "other":
        if src.type == dst.type:
            return OK, f"same type ({src.type})"
        return INCOMPATIBLE, f"{src.type} fields cannot be mapped to {dst.type} fields"
    if sk == dk:
        verdict, reason = OK, f"same kind ({_kind_name(sk)})"
    else:
        verdict, reason = MATRIX.get((sk, dk), (
            INCOMPATIBLE, f"{_kind_name(sk)} fields cannot be mapped to {_kind_name(dk)} fields"))
    if verdict == OK:
        verdict, reason = _refine(src, dst, reason)
    return verdict, reason


def _bookings_to_bigin(src: Field, dst: Field) -> tuple[str, str]:
    allowed = BOOKINGS_TO_BIGIN[src.type]
    if dst.type in allowed:
        return OK, f"Bookings {src.type} maps to Bigin {BIGIN_TYPE_LABELS[dst.type]} (seed 000 table)"
    names = " or ".join(BIGIN_TYPE_LABELS[t] for t in allowed)
    return INCOMPATIBLE, (f"Bookings {src.type} fields map only to Bigin {names} fields, "
                          f"not {dst.type} (seed 000 compatibility table)")


def _lookup(src: Field, dst: Field, src_app: str, dst_app: str) -> tuple[str, str]:
    sk, dk = src.kind, dst.kind
    if sk == "owner" and dk == "owner":
        return OK, ("owners are matched by user; records whose owner has no match go to the "
                    "integration's owner")
    if sk != "lookup" or dk != "lookup":
        return INCOMPATIBLE, (f"{_kind_name(sk)} fields can only be mapped to {_kind_name(sk)} fields, "
                              f"not {_kind_name(dk)}")
    if src.lookup is None and dst.lookup is None:
        return OK, "polymorphic parent reference, translated through the links of the parent modules"
    if src.lookup is None or dst.lookup is None:
        return INCOMPATIBLE, "a polymorphic reference cannot be mapped to a lookup of one module"
    if corresponding_modules(src_app, src.lookup, dst_app, dst.lookup):
        return OK, f"lookup to {src.lookup} is translated through the {src.lookup}/{dst.lookup} links"
    return INCOMPATIBLE, (f"lookup to {src.lookup} cannot be mapped to a lookup to {dst.lookup}: "
                          "the modules do not correspond")


def corresponding_modules(src_app: str, src_module: str, dst_app: str, dst_module: str) -> bool:
    """Whether two modules hold the same records: a standard module pair, or the same module."""
    if src_app == dst_app:
        return src_module == dst_module
    if (src_module, dst_module) in standard_module_pairs(src_app, dst_app):
        return True
    return src_module.lower() == dst_module.lower()


def _refine(src: Field, dst: Field, reason: str) -> tuple[str, str]:
    """Downgrade an ok mapping to lossy for a shorter destination or missing picklist values."""
    if (src.length and dst.length and dst.length < src.length
            and src.kind in _LENGTH_KINDS and dst.kind in _LENGTH_KINDS):
        unit = "digits" if dst.kind in ("integer", "decimal") else "characters"
        return LOSSY, f"values longer than {dst.length} {unit} are truncated (source allows {src.length})"
    if src.kind in ("picklist", "multiselect") and dst.kind in ("picklist", "multiselect") \
            and src.picklist and dst.picklist:
        missing = [v for v in src.picklist if v not in dst.picklist]
        if missing:
            shown = ", ".join(missing[:5]) + (", …" if len(missing) > 5 else "")
            return LOSSY, f"picklist values missing on the destination are rejected: {shown}"
    return OK, reason


_KIND_NAMES = {"longtext": "multi-line text", "multiselect": "multi-select", "url": "URL", "id": "record id"}


def _kind_name(kind: str) -> str:
    return _KIND_NAMES.get(kind, kind)
