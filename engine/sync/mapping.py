"""Field mapping: which fields flow which way, and how each value converts between two apps.

A ``ModuleMapper`` compiles one module's ``FieldMap``s (plus, for activities and notes, the fields the
two catalogs share) into two *flows*: left→right and right→left. A flow renders the target values of
one source record (``render``), raising ``MapError`` with a failure-log code when a value cannot be
converted. Values are compared per side in a normal form (``same``), so that the app's own formatting
(``2024-01-02T10:00:00.000Z`` vs ``2024-01-02T10:00:00+00:00``, ``+1 (555) 010-0001`` vs
``5550100001``) never looks like a change.

Conversion goes through a neutral Python value chosen by the catalog *kind* of each field: datetime
(aware, UTC), date, int, Decimal, bool, tuple of str (multi-select), str. Wire formats per app:
CRM/Bigin ISO with offset (``2023-05-10T01:10:47+00:00``), Desk ISO millis Z
(``2017-10-12T13:11:50.000Z``), Bookings ``dd-MMM-yyyy HH:mm:ss``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from operator import itemgetter
from typing import Any

from engine.spec.model import FieldMap, Integration, Module
from engine.sync.normalize import digits

# failure codes (the failure log's vocabulary)
ALREADY_LINKED = "ALREADY_LINKED"
TYPE_MISMATCH = "TYPE_MISMATCH"
MANDATORY_MISSING = "MANDATORY_MISSING"
INVALID_VALUE = "INVALID_VALUE"
AMBIGUOUS_MATCH = "AMBIGUOUS_MATCH"
REJECTED_BY_APP = "REJECTED_BY_APP"
CONFLICT_SKIPPED = "CONFLICT_SKIPPED"
PARENT_NOT_SYNCED = "PARENT_NOT_SYNCED"  # a skip, not a failure

# never synced between apps (seed 004: reminders and recurrence stay in the app that made them)
NEVER_SYNCED_TYPES = frozenset({"event_reminder", "RRULE", "ALARM", "multireminder"})
NEVER_SYNCED_NAMES = frozenset({"Remind_At", "Reminder", "Recurring_Activity", "reminder", "recurrence",
                                "Remind_Participants"})
SYSTEM_NAMES = frozenset({"id", "Created_Time", "Modified_Time", "Created_By", "Modified_By", "createdTime",
                          "modifiedTime", "Tag", "$se_module"})

BOOKINGS_DT = "%d-%b-%Y %H:%M:%S"
BOOKINGS_DATE = "%d-%b-%Y"


class MapError(Exception):
    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def other(side: str) -> str:
    return "right" if side == "left" else "left"


# --- catalog access (tolerant: a missing catalog means "text", never a crash) ----------------------

@dataclass(frozen=True, slots=True)
class FieldInfo:
    name: str
    kind: str = "text"
    type: str = "text"
    mandatory: bool = False
    read_only: bool = False
    encrypted: bool = False
    picklist: tuple[str, ...] = ()
    lookup: str | None = None


def module_catalog(app: str, module: str):
    try:
        from engine.catalog import catalog

        return catalog(app).module(module)
    except Exception:  # catalog data not present for this app: treat every field as text
        return None


def field_info(app: str, module: str, name: str) -> FieldInfo:
    mc = module_catalog(app, module)
    f = mc.field(name) if mc is not None else None
    if f is None:
        return FieldInfo(name=name, kind=_guess_kind(name))
    return FieldInfo(name=name, kind=f.kind, type=f.type, mandatory=f.mandatory, read_only=f.read_only,
                     encrypted=f.encrypted, picklist=f.picklist, lookup=f.lookup)


def parent_field(app: str, module: str) -> str | None:
    """The catalog's ``parent_field`` of a child module (Who_Id, Parent_Id, customer_email)."""
    try:
        from engine.catalog import _read

        return (_read(f"{app}.json")["modules"].get(module) or {}).get("parent_field")
    except Exception:
        return None


def _guess_kind(name: str) -> str:
    low = name.lower()
    if "email" in low:
        return "email"
    if low in ("owner", "ownerid"):
        return "owner"
    return "text"


# --- neutral values --------------------------------------------------------------------------------

def parse_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    s = str(value).strip()
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        for fmt in (BOOKINGS_DT, "%d-%b-%Y %H:%M", BOOKINGS_DATE, "%Y-%m-%d %H:%M:%S"):
            try:
                dt = datetime.strptime(s, fmt)
                break
            except ValueError:
                continue
        else:
            raise MapError(TYPE_MISMATCH, f'"{s}" is not a date-time') from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def parse_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    s = str(value).strip()
    for fmt in ("%Y-%m-%d", BOOKINGS_DATE):
        try:
            return datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    return parse_datetime(s).date()


def _to_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value if v not in (None, ""))
    s = str(value)
    for sep in (";", ","):
        if sep in s:
            return tuple(p.strip() for p in s.split(sep) if p.strip())
    return (s.strip(),) if s.strip() else ()


def _ref_id(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if isinstance(value, dict):
        v = value.get("id")
        return str(v) if v not in (None, "") else None
    return str(value)


def neutral(value: Any, kind: str) -> Any:
    """The app-independent value of ``value`` read from a field of ``kind``; None when empty."""
    if value is None or value == "" or value == [] or value == ():
        return None
    if kind == "datetime":
        return parse_datetime(value)
    if kind == "date":
        return parse_date(value)
    if kind == "integer":
        if isinstance(value, bool):
            return int(value)
        try:
            d = Decimal(str(value).strip())
        except InvalidOperation:
            raise MapError(TYPE_MISMATCH, f'text value "{value}" is given for an integer field') from None
        if d != d.to_integral_value():
            raise MapError(TYPE_MISMATCH, f"{value} is not a whole number")
        return int(d)
    if kind == "decimal":
        try:
            return Decimal(str(value).strip())
        except InvalidOperation:
            raise MapError(TYPE_MISMATCH, f'text value "{value}" is given for a number field') from None
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        s = str(value).strip().lower()
        if s in ("true", "yes", "1", "on", "y"):
            return True
        if s in ("false", "no", "0", "off", "n"):
            return False
        raise MapError(TYPE_MISMATCH, f'"{value}" is not a boolean')
    if kind == "multiselect":
        return _to_list(value) or None
    if kind in ("lookup", "owner"):
        return value  # resolved by the mapper (ids differ per app)
    if isinstance(value, (list, tuple)):
        return "; ".join(str(v) for v in value)
    if isinstance(value, dict):
        return value.get("name") or value.get("id")
    return value if isinstance(value, str) else str(value) if not isinstance(value, (int, float)) else value


def render(value: Any, kind: str, app: str, info: FieldInfo | None = None) -> Any:
    """The wire value of the neutral ``value`` for a field of ``kind`` in ``app``."""
    if value is None:
        return None
    if kind == "datetime":
        dt = value if isinstance(value, datetime) else parse_datetime(value) if not isinstance(value, date) \
            else datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
        dt = dt.astimezone(timezone.utc)
        if app == "zoho_desk":
            return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
        if app == "zoho_bookings":
            return dt.strftime(BOOKINGS_DT)
        return dt.replace(microsecond=0).isoformat()
    if kind == "date":
        d = value.date() if isinstance(value, datetime) else value if isinstance(value, date) else parse_date(value)
        return d.strftime(BOOKINGS_DATE) if app == "zoho_bookings" else d.isoformat()
    if kind == "integer":
        if isinstance(value, (datetime, date)):
            raise MapError(TYPE_MISMATCH, "a date is given for an integer field")
        return neutral(value, "integer")
    if kind == "decimal":
        if isinstance(value, (datetime, date)):
            raise MapError(TYPE_MISMATCH, "a date is given for a number field")
        d = neutral(value, "decimal")
        return int(d) if d == d.to_integral_value() and "." not in str(value) else float(d)
    if kind == "boolean":
        return neutral(value, "boolean")
    if kind == "multiselect":
        items = _to_list(value)
        if info and info.picklist:
            bad = [v for v in items if v not in info.picklist]
            if bad:
                raise MapError(INVALID_VALUE, f'"{bad[0]}" is not one of the values of {info.name}', info.name)
        return list(items)
    if kind == "picklist":
        s = "; ".join(value) if isinstance(value, tuple) else str(value)
        if info and info.picklist and s not in info.picklist:
            raise MapError(INVALID_VALUE, f'"{s}" is not one of the values of {info.name}', info.name)
        return s
    if isinstance(value, datetime):
        return render(value, "datetime", app)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return "; ".join(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


# kinds whose text values pass through neutral() and render() unchanged (see _convert's fast path)
_NOT_PLAIN = frozenset(("datetime", "date", "integer", "decimal", "boolean", "multiselect", "picklist", "lookup",
                        "owner"))


def comparable(value: Any, kind: str) -> Any:
    """A normal form for equality on one side: formatting differences are not changes."""
    try:
        n = neutral(value, kind)
    except MapError:
        return ("raw", str(value))
    if n is None:
        return None
    if kind == "email":
        return str(n).strip().lower()
    if kind == "phone":
        return digits(str(n))
    if kind == "datetime":
        return int(n.timestamp())
    if kind == "date":
        return n.isoformat()
    if kind in ("integer", "decimal"):
        return Decimal(n).normalize()
    if kind == "multiselect":
        return tuple(sorted(n))
    if kind in ("lookup", "owner"):
        return _ref_id(n)
    if isinstance(n, str):
        return n.strip()
    return n


# --- compiled field maps -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Flow:
    """One way of one field map: source fields (empty for constants/templates) → target fields."""

    src: tuple[str, ...]
    tgt: tuple[str, ...]
    fm: FieldMap
    service: str | None = None  # Bookings: applies only to appointments of this service


class ModuleMapper:
    """Compiled mapping of one module: two flows and the conversions they need."""

    def __init__(self, integration: Integration, module: Module, *,
                 resolve: Callable[[str, str, str], str | None] | None = None,
                 owners: Mapping[str, Callable[[Any], Any]] | None = None):
        self.integration = integration
        self.module = module
        self.apps = {"left": integration.left.app, "right": integration.right.app}
        self.mods = {"left": module.left, "right": module.right}
        self._resolve = resolve or (lambda side, mod, rid: None)
        self._owners = dict(owners or {})
        self._info: dict[tuple[str, str], FieldInfo] = {}
        self._env = None
        self._fields: dict[str, tuple[str, ...]] = {}
        self._plain: dict[tuple[str, str, str], bool] = {}
        # per-run compiled forms (chosen once per module run, not per record): see _compiled()
        self._comp: dict[str, tuple[tuple[Flow, frozenset[str], Callable[[Mapping[str, Any], dict[str, Any]], None]], ...]] = {}
        self._flat: dict[str, tuple[tuple[str, str, bool, Flow], ...] | None] = {}
        self._sets: dict[tuple[str, str], frozenset[str]] = {}
        self._mandatory: dict[str, tuple[str, ...] | None] = {}
        self._flat_unique: dict[str, bool] = {}
        self._getters: dict[str, tuple[tuple[str, ...], Callable[[Any], Any] | None]] = {}
        self._cmp: dict[tuple[str, str], Callable[[Any], Any]] = {}
        self.compiled: dict[Any, Any] = {}  # the planner's per-mapper caches (probe normalisers, key names)
        self.code_dir: str | None = None  # where generated planners are kept between runs (None: in-process only)
        maps = list(module.fields)
        if not maps:
            maps = self._auto_fields()
        self.flows: dict[str, list[Flow]] = {"left": [], "right": []}  # keyed by SOURCE side
        for fm in maps:
            self._add(fm, None)
        for service, fms in module.services:
            for fm in fms:
                self._add(fm, service)
        self.parent = integration.module(module.parent) if module.parent else None
        self.parent_fields = {side: parent_field(self.apps[side], self.mods[side]) for side in ("left", "right")} \
            if self.parent is not None else {"left": None, "right": None}
        if self.parent is not None:
            for side in ("left", "right"):
                tgt = self.parent_fields[other(side)]
                self.flows[side] = [fl for fl in self.flows[side] if tgt not in fl.tgt and
                                    self.parent_fields[side] not in fl.src]

    # -- compile --
    def info(self, side: str, name: str) -> FieldInfo:
        key = (side, name)
        if key not in self._info:
            self._info[key] = field_info(self.apps[side], self.mods[side], name)
        return self._info[key]

    def _add(self, fm: FieldMap, service: str | None) -> None:
        direction = fm.direction or self.module.direction
        if any(n in NEVER_SYNCED_NAMES for n in fm.left + fm.right):
            return
        if fm.template is not None or fm.value is not None or not fm.left or not fm.right:
            # constant or template: the receiving side is the one named, direction says which
            if fm.right and direction in ("left-to-right", "two-way") and not fm.left:
                self.flows["left"].append(Flow((), fm.right, fm, service))
            elif fm.left and direction in ("right-to-left", "two-way") and not fm.right:
                self.flows["right"].append(Flow((), fm.left, fm, service))
            elif fm.right and direction != "right-to-left":
                self.flows["left"].append(Flow((), fm.right, fm, service))
            return
        if direction in ("two-way", "left-to-right"):
            self.flows["left"].append(Flow(fm.left, fm.right, fm, service))
        if direction in ("two-way", "right-to-left"):
            self.flows["right"].append(Flow(fm.right, fm.left, fm, service))

    def _auto_fields(self) -> list[FieldMap]:
        """Activities and notes: fields mapped automatically (same api names), minus reminders/recurrence."""
        lm = module_catalog(self.apps["left"], self.mods["left"])
        rm = module_catalog(self.apps["right"], self.mods["right"])
        if lm is None or rm is None:
            return []
        out = []
        for f in lm.fields:
            g = rm.field(f.api_name)
            if g is None or f.read_only or g.read_only or f.encrypted or g.encrypted:
                continue
            if f.api_name in SYSTEM_NAMES or f.api_name in NEVER_SYNCED_NAMES:
                continue
            if f.type in NEVER_SYNCED_TYPES or g.type in NEVER_SYNCED_TYPES:
                continue
            out.append(FieldMap(left=(f.api_name,), right=(g.api_name,)))
        return out

    def lookup_module(self, side: str, name: str) -> str | None:
        """The integration module a lookup field of ``side`` points into (by catalog, else by name)."""
        inf = self.info(side, name)
        if inf.kind not in ("lookup", "other", "text") and inf.lookup is None:
            return None
        target = inf.lookup
        if target:
            for m in self.integration.modules:
                if getattr(m, side) == target:
                    return m.name
        if inf.kind != "lookup" and target is None:
            return None
        guesses = {"account": ("accounts", "Accounts", "companies"), "contact": ("contacts", "Contacts", "customers"),
                   "who_id": ("contacts", "Contacts"), "customer": ("customers",)}
        low = name.lower()
        for key, names in guesses.items():
            if key in low:
                for m in self.integration.modules:
                    if m.name in names or getattr(m, side) in names:
                        return m.name
        return None

    # -- fields to read --
    def fields(self, side: str) -> tuple[str, ...]:
        cached = self._fields.get(side)
        if cached is not None:
            return cached
        names: list[str] = []
        for fl in self.flows[side]:
            names.extend(fl.src)
        for fl in self.flows[other(side)]:
            names.extend(fl.tgt)
        for k in self.module.match:
            names.append(getattr(k, side))
        if self.parent_fields.get(side):
            names.append(self.parent_fields[side])
        if self.apps[side] == "zoho_bookings" and self.mods[side] == "appointments":
            names.extend(("service_name", "status"))
        seen: dict[str, None] = {}
        for n in names:
            seen.setdefault(n, None)
        self._fields[side] = tuple(seen)
        return self._fields[side]

    def field_set(self, side: str) -> frozenset[str]:
        """``fields(side)`` as a set (cached)."""
        key = ("fields", side)
        got = self._sets.get(key)
        if got is None:
            got = self._sets[key] = frozenset(self.fields(side))
        return got

    def sources(self, side: str) -> frozenset[str]:
        """Fields of ``side`` that some flow of ``side`` reads (a target field among them is two-way)."""
        key = ("sources", side)
        got = self._sets.get(key)
        if got is None:
            got = self._sets[key] = frozenset(n for fl in self.flows[side] for n in fl.src)
        return got

    def snapshot(self, side: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """The merge-base values of a record: every field this module reads on ``side``."""
        got = self._getters.get(side)
        if got is None:
            names = self.fields(side)
            got = self._getters[side] = (names, itemgetter(*names) if len(names) > 1 else None)
        names, getter = got
        if getter is not None:
            try:  # the usual record holds every field read: one C-level pass
                return dict(zip(names, getter(values)))
            except KeyError:
                pass
        return {n: values[n] for n in names if n in values}

    # -- compare --
    def same(self, side: str, name: str, a: Any, b: Any) -> bool:
        if a == b:  # equal values have equal normal forms: no need to normalise (the echo and no-op paths)
            return True
        norm = self._cmp.get((side, name)) or self._comparer(side, name)
        return norm(a) == norm(b)

    def empty(self, side: str, name: str, value: Any) -> bool:
        """The value is empty in normal form (None, "", [] ...)."""
        if value is None or value == "":
            return True
        if value.__class__ is str and self.info(side, name).kind not in _NOT_PLAIN:
            return False  # a non-empty text, e-mail or phone value never normalises to nothing
        return comparable(value, self.info(side, name).kind) is None

    def _comparer(self, side: str, name: str) -> Callable[[Any], Any]:
        """``comparable`` for one field, its kind chosen once; text takes the direct path."""
        kind = self.info(side, name).kind
        if kind == "email":
            def norm(v: Any) -> Any:
                return v.strip().lower() if v.__class__ is str and v else comparable(v, kind)
        elif kind == "phone":
            def norm(v: Any) -> Any:
                return digits(v) if v.__class__ is str and v else comparable(v, kind)
        elif kind not in _NOT_PLAIN:
            def norm(v: Any) -> Any:
                return v.strip() if v.__class__ is str and v else comparable(v, kind)
        else:
            def norm(v: Any) -> Any:
                return comparable(v, kind)
        self._cmp[(side, name)] = norm
        return norm

    def changed_fields(self, side: str, now: Mapping[str, Any], base: Mapping[str, Any] | None) -> set[str]:
        if base is None:
            return set(self.fields(side))
        out: set[str] = set()
        now_get, base_get = now.get, base.get
        cmp = self._cmp
        for n in self._fields.get(side) or self.fields(side):
            a, b = now_get(n), base_get(n)
            if a == b:  # most fields of a changed record: equal values, no normalising (as ``same``)
                continue
            norm = cmp.get((side, n)) or self._comparer(side, n)
            if norm(a) != norm(b):
                out.add(n)
        return out

    # -- render --
    def applies(self, fl: Flow, src_values: Mapping[str, Any]) -> bool:
        if fl.service is None:
            return True
        return str(src_values.get("service_name") or "") == fl.service

    def render_flow(self, src_side: str, fl: Flow, src_values: Mapping[str, Any]) -> dict[str, Any]:
        """Target values of one flow for one source record. Raises MapError."""
        tgt_side = other(src_side)
        tgt_app = self.apps[tgt_side]
        fm = fl.fm
        if not fl.src:
            if fm.template is not None:
                raw: Any = self._template(fm.template, src_values)
            else:
                raw = fm.value
            name = fl.tgt[0]
            inf = self.info(tgt_side, name)
            return {name: render(neutral(raw, inf.kind if inf.kind not in ("lookup", "owner") else "text"),
                                 inf.kind, tgt_app, inf)}
        if len(fl.src) == 1 and len(fl.tgt) == 2:  # name split
            full = src_values.get(fl.src[0])
            parts = str(full or "").split()
            first, last = (" ".join(parts[:-1]), parts[-1]) if len(parts) > 1 else ("", parts[0] if parts else "")
            return {fl.tgt[0]: first or None, fl.tgt[1]: last or None}
        if len(fl.src) >= 2 and len(fl.tgt) == 1:  # name join
            joined = " ".join(str(src_values.get(n)).strip() for n in fl.src if src_values.get(n) not in (None, ""))
            return {fl.tgt[0]: joined or None}
        out: dict[str, Any] = {}
        for s_name, t_name in zip(fl.src, fl.tgt):
            out[t_name] = self._convert(src_side, s_name, t_name, src_values.get(s_name), fl)
        return out

    def _convert(self, src_side: str, s_name: str, t_name: str, value: Any, fl: Flow) -> Any:
        if value.__class__ is str and not fl.fm.values:
            plain = self._plain.get((src_side, s_name, t_name))
            if plain is None:
                plain = self._plain[(src_side, s_name, t_name)] = \
                    self.info(src_side, s_name).kind not in _NOT_PLAIN and \
                    self.info(other(src_side), t_name).kind not in _NOT_PLAIN
            if plain:  # text to text: neutral() and render() would hand the string back unchanged
                return value if value != "" else None
        tgt_side = other(src_side)
        si, ti = self.info(src_side, s_name), self.info(tgt_side, t_name)
        tgt_app = self.apps[tgt_side]
        if ti.kind == "owner" or si.kind == "owner":
            mapper = self._owners.get(tgt_side)
            tid = mapper(value) if mapper else None
            if tid is None:
                return None
            return tid if tgt_app == "zoho_desk" else {"id": tid}
        if ti.kind == "lookup" or si.kind == "lookup":
            rid = _ref_id(value)
            if rid is None:
                return None
            mod = self.lookup_module(src_side, s_name)
            tid = self._resolve(src_side, mod, rid) if mod else None
            if tid is None and mod is None:  # polymorphic (What_Id, Parent_Id): whichever module links it
                for m in self.integration.modules:
                    if m.name != self.module.name and m.parent is None:
                        tid = self._resolve(src_side, m.name, rid)
                        if tid is not None:
                            mod = m.name
                            break
            if tid is None:
                return None
            tmod = self.integration.module(mod)
            if isinstance(value, dict) and "module" in value and tmod is not None:
                return {"module": {"api_name": getattr(tmod, tgt_side)}, "id": tid}
            return tid if tgt_app == "zoho_desk" else {"id": tid}
        n = neutral(value, si.kind)
        if n is not None and fl.fm.values:
            mapping = dict(fl.fm.values) if src_side == "left" else {b: a for a, b in fl.fm.values}
            if isinstance(n, tuple):
                n = tuple(mapping.get(v, v) for v in n)
            else:
                n = mapping.get(str(n), n)
        if n is not None and ti.kind in ("integer", "decimal") and isinstance(n, str):
            n = neutral(n, ti.kind)  # raises TYPE_MISMATCH for text into a number field
        if n is not None and ti.kind == "boolean" and isinstance(n, str):
            n = neutral(n, "boolean")
        try:
            return render(n, ti.kind, tgt_app, ti)
        except MapError as exc:
            raise MapError(exc.code, f"{s_name} → {t_name}: {exc.message}", t_name) from None

    def _template(self, template: str, src_values: Mapping[str, Any]) -> str:
        if self._env is None:
            self._env = _bounded_environment()
        try:
            ctx = {k.replace(".", "_"): v for k, v in src_values.items()}
            out: list[str] = []
            size = 0
            for chunk in self._env.from_string(template).generate(record=dict(src_values), **ctx):
                size += len(chunk)
                if size > MAX_TEMPLATE_OUTPUT:
                    raise MapError(INVALID_VALUE, f"template failed: its value is too large (more than "
                                                  f"{MAX_TEMPLATE_OUTPUT:,} characters)")
                out.append(chunk)
            return "".join(out)
        except MapError:
            raise
        except Exception as exc:  # jinja2 errors, sandbox violations
            raise MapError(INVALID_VALUE, f"template failed: {type(exc).__name__}: {exc}") from None

    def render_record(self, src_side: str, src_values: Mapping[str, Any],
                      only: set[str] | frozenset[str] | None = None) -> dict[str, Any]:
        """All target values of a source record (``only``: flows whose source fields are in this set;
        constants and templates follow any change). Raises MapError on the first bad value."""
        out: dict[str, Any] = {}
        if self.parent is not None:
            out.update(self.parent_values(src_side, src_values))
        self.render_into(src_side, src_values, out, only)
        return out

    def render_new(self, src_side: str, src_values: Mapping[str, Any]) -> dict[str, Any]:
        """``render_record`` without its empty values (None, "", []): the body of a create."""
        if self.parent is None:
            flat = self._flat.get(src_side, False)
            if flat is False:
                self._compiled(src_side)
                flat = self._flat[src_side]
            if flat is not None and self._flat_unique[src_side]:  # each target field written once
                out: dict[str, Any] = {}
                get = src_values.get
                for s_name, t_name, plain, fl in flat:
                    v = get(s_name)
                    if plain and (v is None or v.__class__ is str):
                        if v:
                            out[t_name] = v
                    else:
                        v = self._convert(src_side, s_name, t_name, v, fl)
                        if v is not None and v != "" and v != []:
                            out[t_name] = v
                return out
        return {k: v for k, v in self.render_record(src_side, src_values).items() if v not in (None, "", [])}

    def render_into(self, src_side: str, src_values: Mapping[str, Any], out: dict[str, Any],
                    only: set[str] | frozenset[str] | None = None) -> None:
        """``render_record`` without the parent reference, into ``out`` (flows in order, later ones win)."""
        if only is None:
            flat = self._flat.get(src_side, False)
            if flat is False:
                self._compiled(src_side)
                flat = self._flat[src_side]
            if flat is not None:  # every flow is field to field: one loop, no call per flow
                get = src_values.get
                for s_name, t_name, plain, fl in flat:
                    v = get(s_name)
                    if plain and (v is None or v.__class__ is str):
                        out[t_name] = v or None  # text to text: neutral() and render() hand it back ("" -> None)
                    else:
                        out[t_name] = self._convert(src_side, s_name, t_name, v, fl)
                return
        for fl, srcset, run in self._comp.get(src_side) or self._compiled(src_side):
            if fl.service is not None and not self.applies(fl, src_values):
                continue
            if only is not None:
                if srcset:
                    if srcset.isdisjoint(only):
                        continue
                elif not only:
                    continue
            run(src_values, out)

    def _compiled(self, src_side: str) -> tuple[tuple[Flow, frozenset[str], Callable[[Mapping[str, Any], dict[str, Any]], None]], ...]:
        """Each flow of ``src_side`` with its renderer, the per-field choices (plain text or converted)
        made once per module run."""
        got = self._comp.get(src_side)
        if got is not None:
            return got
        out = []
        flat: list[tuple[str, str, bool, Flow]] | None = []
        for fl in self.flows[src_side]:
            zipped = bool(fl.src) and not (len(fl.src) == 1 and len(fl.tgt) == 2) and \
                not (len(fl.src) >= 2 and len(fl.tgt) == 1)
            if not zipped or fl.service is not None:
                flat = None
            if zipped:
                pairs = tuple((s_name, t_name, self._is_plain(src_side, s_name, t_name, fl))
                              for s_name, t_name in zip(fl.src, fl.tgt))
                if flat is not None:
                    flat.extend((s_name, t_name, plain, fl) for s_name, t_name, plain in pairs)
                out.append((fl, frozenset(fl.src), self._pairs_renderer(src_side, fl, pairs)))
            else:
                out.append((fl, frozenset(fl.src), self._flow_renderer(src_side, fl)))
        self._flat[src_side] = tuple(flat) if flat is not None else None
        self._flat_unique[src_side] = flat is not None and len({t for _, t, _, _ in flat}) == len(flat)
        self._comp[src_side] = tuple(out)
        return self._comp[src_side]

    def _is_plain(self, src_side: str, s_name: str, t_name: str, fl: Flow) -> bool:
        """Text to text with no value map: neutral() and render() would hand a string back unchanged."""
        return not fl.fm.values and self.info(src_side, s_name).kind not in _NOT_PLAIN and \
            self.info(other(src_side), t_name).kind not in _NOT_PLAIN

    def _pairs_renderer(self, src_side: str, fl: Flow,
                        pairs: tuple[tuple[str, str, bool], ...]) -> Callable[[Mapping[str, Any], dict[str, Any]], None]:
        convert = self._convert

        def run(src_values: Mapping[str, Any], out: dict[str, Any]) -> None:
            get = src_values.get
            for s_name, t_name, plain in pairs:
                v = get(s_name)
                if plain and (v is None or v.__class__ is str):
                    out[t_name] = v or None
                else:
                    out[t_name] = convert(src_side, s_name, t_name, v, fl)

        return run

    def _flow_renderer(self, src_side: str, fl: Flow) -> Callable[[Mapping[str, Any], dict[str, Any]], None]:
        render_flow = self.render_flow

        def run(src_values: Mapping[str, Any], out: dict[str, Any]) -> None:
            out.update(render_flow(src_side, fl, src_values))

        return run

    def parent_values(self, src_side: str, src_values: Mapping[str, Any]) -> dict[str, Any]:
        """The child's reference to its parent on the other side; PARENT_NOT_SYNCED when there is none."""
        sf, tf = self.parent_fields[src_side], self.parent_fields[other(src_side)]
        if not sf or not tf or self.parent is None:
            return {}
        value = src_values.get(sf)
        ref = _ref_id(value) if not isinstance(value, str) or "@" not in value else value.strip().lower()
        if ref is None:
            raise MapError(PARENT_NOT_SYNCED, "the record has no parent record", sf)
        modules = [self.parent.name] + [m.name for m in self.integration.modules
                                         if m.name != self.parent.name and m.parent is None]
        for mod in modules:
            tid = self._resolve(src_side, mod, ref)
            if tid is not None:
                tmod = self.integration.module(mod)
                if isinstance(value, dict) and "module" in value and tmod is not None:
                    return {tf: {"module": {"api_name": getattr(tmod, other(src_side))}, "id": tid}}
                return {tf: tid if self.apps[other(src_side)] == "zoho_desk" else {"id": tid}}
        raise MapError(PARENT_NOT_SYNCED, f"its parent ({sf}) is not synced", sf)

    def mandatory_missing(self, tgt_side: str, values: Mapping[str, Any]) -> str | None:
        names = self._mandatory.get(tgt_side, False)
        if names is False:
            mc = module_catalog(self.apps[tgt_side], self.mods[tgt_side])
            targets = self._targets(tgt_side)
            names = self._mandatory[tgt_side] = None if mc is None else \
                tuple(f.api_name for f in mc.fields if f.mandatory and not f.read_only and f.api_name in targets)
        if not names:
            return None
        for name in names:
            if values.get(name) in (None, "", []):
                return name
        return None

    def _targets(self, tgt_side: str) -> set[str]:
        return {n for fl in self.flows[other(tgt_side)] for n in fl.tgt}


MAX_TEMPLATE_OUTPUT = 100_000  # characters a field template may produce for one record


def _bounded_environment() -> Any:
    """The sandbox of field templates: the spec files' own (no internals, ``*``/``**`` bounded so no
    value a spec could blow up to gigabytes per record)."""
    from engine.spec.loader import bounded_environment

    return bounded_environment(autoescape=False)
