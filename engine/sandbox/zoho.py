"""Bigin v2 (``/bigin/v2``) and Zoho CRM (``/crm/v2`` … ``/crm/v8``) records, as documented.

Both share envelopes and error codes; differences handled here: ``fields`` is required for Bigin and
CRM v8 lists; CRM v2 ``info`` has only per_page/count/page/more_records; Notes' ``Parent_Id`` is
``{module:{api_name}, id}`` from v8 (and in Bigin) and ``Parent_Id`` + ``$se_module`` before.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

from engine.catalog import ModuleCatalog
from engine.sandbox import timefmt, validate
from engine.sandbox.core import Context, display_name
from engine.sandbox.http import ApiError, Request, Response, json_response
from engine.sandbox.store import ID_BASE, Row

_SIMPLE_EQ = re.compile(r"^\(?\((\w+):equals:([^()\\,]*)\)\)?$")
MAX_WRITE = 100
MAX_PER_PAGE = 200
DISCRETE_LIMIT = 2000
SYSTEM_UNIQUE = {"Contacts": "Email", "Leads": "Email", "Accounts": "Account_Name", "Deals": "Deal_Name",
                 "Pipelines": "Deal_Name", "Products": "Product_Name", "Campaigns": "Campaign_Name",
                 "Cases": "Subject"}
PEOPLE = {"Contacts", "Leads"}
SORTABLE = {"id": "id", "Created_Time": "created", "Modified_Time": "modified"}
_TIME_CRITERIA = re.compile(r"^\(?\((Modified_Time|Created_Time):(greater_equal|greater_than|less_equal|less_than|"
                            r"equals):([^()]+)\)\)?$")


def err(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> ApiError:
    return ApiError(status, {"code": code, "details": details or {}, "message": message, "status": "error"})


def _int_param(req: Request, name: str, default: int, lo: int = 1) -> int:
    raw = req.query.get(name)
    if raw in (None, ""):
        return default
    try:
        v = int(raw)
    except ValueError:
        raise err(400, "INVALID_DATA", f"{name} must be a number", {"param_name": name}) from None
    if v < lo:
        raise err(400, "INVALID_DATA", f"{name} must be at least {lo}", {"param_name": name})
    return v


def field_id(app: str, module: str, name: str) -> str:
    h = int(hashlib.sha256(f"{app}:{module}:{name}".encode()).hexdigest()[:12], 16) % 10**12
    return str(4_000_000_000_000_000_000 + 10**12 + h)[:19] if app == "bigin" else \
        str(5_000_000_000_000_000_000 + 10**12 + h)[:19]


def module_id(app: str, module: str) -> str:
    return field_id(app, "$modules", module)


_MODULE_CACHE: dict[tuple[str, int], tuple[ModuleCatalog, Any]] = {}


def _cached(what: str, mod: ModuleCatalog, build: Any) -> Any:
    """``build(mod)``, computed once per catalog module (catalogs live as long as the process)."""
    key = (what, id(mod))
    hit = _MODULE_CACHE.get(key)
    if hit is None or hit[0] is not mod:
        hit = _MODULE_CACHE[key] = (mod, build(mod))
    return hit[1]


def _unique_fields(mod: ModuleCatalog) -> tuple[str, ...]:
    names = [f.api_name for f in mod.fields if f.unique]
    sys_u = SYSTEM_UNIQUE.get(mod.api_name)
    if sys_u and mod.field(sys_u) and sys_u not in names:
        names.insert(0, sys_u)
    return tuple(names)


def unique_fields(mod: ModuleCatalog) -> tuple[str, ...]:
    """The system unique field first (Contacts Email, Accounts Account_Name...), then custom ones."""
    return _cached("unique", mod, _unique_fields)


_NON_DIGITS = re.compile(r"\D")


def digits(v: Any) -> str:
    return _NON_DIGITS.sub("", str(v or ""))


def _indexed_fields(mod: ModuleCatalog) -> tuple[str, ...]:
    names = unique_fields(mod)
    return names + tuple(f.api_name for f in mod.fields if f.kind in ("email", "phone") and f.api_name not in names)


def indexed_fields(mod: ModuleCatalog) -> tuple[str, ...]:
    """Fields whose normalised values are indexed: unique fields, e-mail and phone fields."""
    return _cached("indexed", mod, _indexed_fields)


def field_kinds(mod: ModuleCatalog) -> dict[str, str]:
    """api name -> kind (text, lookup, owner, datetime...) of the module's fields."""
    return _cached("kinds", mod, lambda m: {f.api_name: f.kind for f in m.fields})


def _index_plan(mod: ModuleCatalog) -> tuple[tuple[str, bool], ...]:
    kinds = field_kinds(mod)
    return tuple((n, kinds.get(n) == "phone") for n in indexed_fields(mod))


def index_keys(ctx: Context, app: str, mod: ModuleCatalog, row: Row) -> None:
    """Record the normalised values of ``row``'s indexed fields (duplicate checks and searches use
    them); phone fields are indexed by their digits."""
    data = row.data
    keys = {n: digits(data.get(n)) if phone else validate.norm(data.get(n))
            for n, phone in _cached("index_plan", mod, _index_plan)}
    ctx.store.set_keys(app, mod.api_name, row.id, keys)


class _BatchKeys:
    """Normalised unique values of the records written so far in one batch: a duplicate inside the
    batch is found by a dict lookup, not by normalising every earlier record again."""

    __slots__ = ("names", "seen")

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.seen: dict[tuple[str, str], list[str]] = {}

    def add(self, rid: str, data: dict[str, Any]) -> None:
        for name in self.names:
            want = validate.norm(data.get(name))
            if want:
                self.seen.setdefault((name, want), []).append(rid)

    def find(self, name: str, want: str, skip: str | None) -> str | None:
        for rid in self.seen.get((name, want), ()):
            if rid != skip:
                return rid
        return None


_SPECIAL_KINDS = frozenset({"lookup", "owner", "datetime"})


class ZohoApi:
    """One request to the Bigin or CRM API."""

    def __init__(self, ctx: Context, app: str, version: int) -> None:
        self.ctx = ctx
        self.app = app
        self.version = version
        self.v8_shape = app == "bigin" or version >= 8

    # entry ------------------------------------------------------------------------------------
    def handle(self, req: Request, parts: list[str]) -> Response:
        if not parts:
            raise err(404, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one")
        head = parts[0]
        m = req.method
        if head == "settings" and len(parts) >= 2:
            if parts[1] == "fields" and m == "GET":
                return self.settings_fields(req, parts[2] if len(parts) > 2 else None)
            if parts[1] == "modules" and m == "GET":
                return self.settings_modules(parts[2] if len(parts) > 2 else None)
            if parts[1] == "custom_views" and m == "GET":
                return self.custom_views(req, parts[2] if len(parts) > 2 else None)
        if head == "users" and m == "GET":
            return self.users(req, parts[1] if len(parts) > 1 else None)
        if head == "coql":
            if m != "POST":
                raise err(400, "INVALID_REQUEST_METHOD", "The http request method type is not a valid one")
            return self.coql(req)
        if head in ("settings", "users", "org", "actions", "bulk"):
            raise err(404, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one")
        mod = self.module(head)
        if len(parts) == 1:
            if m == "GET":
                return self.list(req, mod)
            if m == "POST":
                return self.create(req, mod)
            if m == "PUT":
                return self.update(req, mod, None)
            if m == "DELETE":
                return self.delete(req, mod, None)
        elif len(parts) == 2:
            sub = parts[1]
            if sub == "deleted" and m == "GET":
                return self.deleted(req, mod)
            if sub == "actions" and m == "GET":
                raise err(404, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one")
            if sub == "search" and m == "GET":
                return self.search(req, mod)
            if sub == "upsert" and m == "POST":
                return self.upsert(req, mod)
            if m == "GET":
                return self.get(req, mod, sub)
            if m == "PUT":
                return self.update(req, mod, sub)
            if m == "DELETE":
                return self.delete(req, mod, sub)
        elif len(parts) == 3 and parts[1] == "actions" and parts[2] == "count":
            if self.app != "zoho_crm":  # Bigin documents no record count of a module
                raise err(404, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one")
            if m != "GET":
                raise err(400, "INVALID_REQUEST_METHOD", "The http request method type is not a valid one")
            return self.record_count(req, mod)
        elif len(parts) == 3 and parts[2] == "Notes":
            if m == "GET":
                return self.related_notes(req, mod, parts[1])
            if m == "POST":
                return self.create(req, self.module("Notes"), parent=(mod.api_name, parts[1]))
        elif len(parts) == 3 and m == "GET":
            return self.related(req, mod, parts[1], parts[2])
        elif len(parts) == 4 and parts[2] == "Notes":
            notes = self.module("Notes")
            if m == "GET":
                return self.get(req, notes, parts[3])
            if m == "PUT":
                return self.update(req, notes, parts[3])
            if m == "DELETE":
                return self.delete(req, notes, parts[3])
        else:
            raise err(404, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one")
        raise err(400, "INVALID_REQUEST_METHOD", "The http request method type is not a valid one")

    def module(self, name: str) -> ModuleCatalog:
        mod = self.ctx.module(self.app, name)
        if mod is None:
            raise err(400, "INVALID_MODULE", "the module name given seems to be invalid", {})
        return mod

    # rendering --------------------------------------------------------------------------------
    def _user_ref(self, uid: str | None, *, email: bool = True) -> dict[str, Any]:
        u = self.ctx.user(self.app, uid)
        return {"name": u.name, "id": u.id, "email": u.email} if email else {"name": u.name, "id": u.id}

    def render(self, mod: ModuleCatalog, row: Row, fields: list[str] | None = None,
               keep: frozenset[str] | None = None) -> dict[str, Any]:
        """The record as the API answers it; with ``fields``, only those (and ``id``). ``keep`` is
        ``frozenset(fields) | {"id"}``, computed once by callers that render a page."""
        if fields is not None and keep is None:
            keep = frozenset(fields) | {"id"}
        d = row.data
        kinds = field_kinds(mod)
        out: dict[str, Any] = {}
        want_se = keep is None or "$se_module" in keep
        for k, v in d.items():
            if k[:1] == "_" or (keep is not None and k not in keep and not (want_se and k in ("Parent_Id", "What_Id"))):
                continue
            kind = kinds.get(k)
            if kind not in _SPECIAL_KINDS and k != "Parent_Id":
                out[k] = v
                continue
            if k == "Parent_Id" and isinstance(v, dict):
                parent = self.ctx.store.get(self.app, v.get("module", ""), v.get("id", ""), include_deleted=True)
                name = self.ctx.display_name(parent)
                if self.v8_shape:
                    out[k] = {"module": {"api_name": v.get("module"), "id": module_id(self.app, v.get("module", ""))},
                              "id": v.get("id"), "name": name}
                else:
                    out[k] = {"name": name, "id": v.get("id")}
                    out["$se_module"] = v.get("module")
                continue
            if kind == "lookup" and isinstance(v, dict):
                target = v.get("module") or mod.field(k).lookup  # type: ignore[union-attr]
                row2 = (self.ctx.store.get(self.app, target, v["id"], include_deleted=True) if target
                        else self.ctx.store.find_any_module(self.app, v["id"]))
                out[k] = {"name": self.ctx.display_name(row2), "id": v["id"]}
                if v.get("module") and k == "What_Id":
                    out["$se_module"] = v["module"]
                continue
            if kind == "owner":
                out[k] = self._user_ref(v)
                continue
            if kind == "datetime" and isinstance(v, str):
                out[k] = timefmt.zoho(v)
                continue
            out[k] = v
        if True:  # the system fields, each only when it is answered
            if mod.api_name in PEOPLE and (keep is None or "Full_Name" in keep):
                out["Full_Name"] = display_name(mod.api_name, d)
            if "Owner" not in out and (keep is None or "Owner" in keep):
                out["Owner"] = self._user_ref(d.get("Owner"))
            if keep is None or "Created_Time" in keep:
                out["Created_Time"] = timefmt.zoho(row.created)
            if keep is None or "Modified_Time" in keep:
                out["Modified_Time"] = timefmt.zoho(row.modified)
            if keep is None or "Created_By" in keep:
                out["Created_By"] = self._user_ref(d.get("_created_by"))
            if keep is None or "Modified_By" in keep:
                out["Modified_By"] = self._user_ref(d.get("_modified_by"))
            if keep is None or "$approval_state" in keep:
                out["$approval_state"] = "approved"
            out["id"] = row.id
        for name in kinds:  # the API answers every (requested) field, null when empty
            if name not in out and (keep is None or name in keep):
                out[name] = None
        if keep is not None and not keep.issuperset(out):
            out = {k: v for k, v in out.items() if k in keep}
        return out

    def _fields_param(self, req: Request, *, required: bool) -> list[str] | None:
        raw = req.query.get("fields")
        if raw is None or not raw.strip():
            if required:
                raise err(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                          {"param_name": "fields"})
            return None
        names = [x.strip() for x in raw.split(",") if x.strip()]
        if len(names) > 50:
            raise err(400, "LIMIT_EXCEEDED", "the given fields exceeds the maximum limit of 50",
                      {"limit": 50, "param_name": "fields"})
        return names

    # reads ------------------------------------------------------------------------------------
    def list(self, req: Request, mod: ModuleCatalog) -> Response:
        fields = self._fields_param(req, required=self.v8_shape)
        per_page = _int_param(req, "per_page", MAX_PER_PAGE)
        if per_page > MAX_PER_PAGE:
            raise err(400, "LIMIT_EXCEEDED", "per_page exceeds the maximum of 200",
                      {"limit": MAX_PER_PAGE, "param_name": "per_page"})
        sort_by = req.query.get("sort_by") or "id"
        if sort_by not in SORTABLE:
            raise err(400, "INVALID_DATA", "sort_by must be one of id, Created_Time, Modified_Time",
                      {"param_name": "sort_by", "supported_values": list(SORTABLE)})
        sort_order = (req.query.get("sort_order") or ("desc" if "sort_by" in req.query and sort_by != "id"
                                                       else "asc")).lower()
        if sort_order not in ("asc", "desc"):
            raise err(400, "INVALID_DATA", "sort_order must be asc or desc", {"param_name": "sort_order"})
        where, params = [], []
        since_raw = req.headers.get("if-modified-since")
        if since_raw:
            since = timefmt.parse_http_date(since_raw)
            if since is None:
                raise err(400, "INVALID_DATA", "If-Modified-Since must be an ISO datetime with an offset",
                          {"header_name": "If-Modified-Since"})
            where.append("modified >= ?")
            params.append(timefmt.to_db(since))
        if req.query.get("ids"):
            ids = [x.strip() for x in req.query["ids"].split(",") if x.strip()]
            if len(ids) > MAX_WRITE:
                raise err(400, "LIMIT_EXCEEDED", "ids exceeds the maximum of 100",
                          {"limit": MAX_WRITE, "param_name": "ids"})
            where.append("id IN (%s)" % ",".join("?" * len(ids)))
            params.extend(ids)
        if req.query.get("cvid"):
            vw, vp = self._view_filter(mod, req.query["cvid"])
            if vw:
                where.append(vw)
                params.extend(vp)
        token = req.query.get("page_token")
        col = SORTABLE[sort_by]
        after: list[Any] | None = None
        if token:
            offset, after = self._decode_token(token)
            page = offset // per_page + 1
        else:
            page = _int_param(req, "page", 1)
            if page * per_page > DISCRETE_LIMIT:
                raise err(400, "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                          "You can only get the first 2000 records without using page_token param",
                          {"limit": DISCRETE_LIMIT})
            offset = (page - 1) * per_page
        order = f"{col} {sort_order.upper()}, id {sort_order.upper()}"
        w = " AND ".join(where)
        # a page token continues after the last row it followed (sort value, id), not at an offset: a
        # record edited or deleted on an earlier page never shifts the pages still to come
        # (the plain bound ahead of the OR lets SQLite seek into its index instead of scanning it from
        # the start on every page: quadratic over a 1M-record read)
        gt, ge = (">", ">=") if sort_order == "asc" else ("<", "<=")
        kw, kp = (w, params) if after is None else (
            " AND ".join([*where, f"{col} {ge} ?", f"({col} {gt} ? OR ({col} = ? AND id {gt} ?))"]),
            [*params, after[0], after[0], after[0], after[1]])
        with self.ctx.store.lock:
            rows = self.ctx.store.query(self.app, mod.api_name, where=kw, params=kp, order=order,
                                        limit=per_page + 1, offset=0 if after is not None else offset)
            total_any = self.ctx.store.count(self.app, mod.api_name, where=w, params=params) \
                if since_raw and not token else None
        self.ctx.stats.call(self.app, mod.api_name, "list")
        if since_raw and total_any == 0:
            return json_response(304, None)
        more = len(rows) > per_page
        rows = rows[:per_page]
        if not rows:
            return json_response(204, None)
        keep = frozenset(fields) | {"id"} if fields is not None else None
        data = [self.render(mod, r, fields, keep) for r in rows]
        info: dict[str, Any] = {"per_page": per_page, "count": len(data), "page": page, "more_records": more}
        if self.app == "bigin" or self.version >= 3:
            last = rows[-1]
            next_token = self._encode_token(offset + per_page, [getattr(last, col), last.id]) if more else None
            info.update({"sort_by": sort_by, "sort_order": sort_order, "next_page_token": next_token,
                         "previous_page_token": self._encode_token(max(0, offset - per_page)) if offset else None,
                         "page_token_expiry": timefmt.zoho(timefmt.plus(self.ctx.now(), days=1)) if more else None,
                         "call": False, "email": False})
        return json_response(200, {"data": data, "info": info})

    def coql(self, req: Request) -> Response:
        """``POST /coql {"select_query": …}`` (``engine.sandbox.coql``): records ordered by id unless the
        query says otherwise, 200 per call; ``select COUNT(id)`` for an aggregate count. A READ in stats."""
        from engine.sandbox import coql

        try:
            body = req.json()
        except ValueError:
            raise err(400, "INVALID_DATA", "the request body is not valid JSON", {}) from None
        text = body.get("select_query") if isinstance(body, dict) else None

        def fields_of(name: str) -> dict[str, str] | None:
            mod = self.ctx.module(self.app, name)
            return None if mod is None else {f.api_name: f.type for f in mod.fields}

        big = self.app == "zoho_crm" and self.version >= 7
        try:
            q = coql.parse(text, fields_of, max_limit=2000 if big else 200, max_rows=100_000 if big else 10_000)
        except coql.CoqlError as e:
            raise err(400, e.code, e.message, e.details) from None
        mod = self.module(q.module)
        self.ctx.stats.call(self.app, mod.api_name, "coql")
        if q.count:
            n = self.ctx.store.count(self.app, mod.api_name, where=q.where, params=q.params)
            return json_response(200, {"data": [{"COUNT(id)": n}], "info": {"count": 1, "more_records": False}})
        # the page's ids first (an index walk: no record is decoded or sorted whole), then its records
        inner = f"SELECT id FROM records WHERE app=? AND module=? AND deleted IS NULL" + (
            f" AND ({q.where})" if q.where else "") + f" ORDER BY {q.order} LIMIT {q.limit + 1} OFFSET {q.offset}"
        rows = self.ctx.store.query(self.app, mod.api_name, where=f"id IN ({inner})",
                                    params=(self.app, mod.api_name, *q.params), order=q.order)
        more = len(rows) > q.limit
        rows = rows[:q.limit]
        if not rows:
            return json_response(204, None)
        keep = frozenset(q.columns) | {"id"}
        kinds = field_kinds(mod)
        joins = [c for c in q.columns if "." in c]
        data = []
        for r in rows:
            rec = self.render(mod, r, [c for c in q.columns if "." not in c], keep)
            for k, v in rec.items():  # lookups and owners: {"id": …} only (a name needs Lookup.Field)
                if isinstance(v, dict) and kinds.get(k) in ("lookup", "owner") and "id" in v:
                    rec[k] = {"id": v["id"]}
            for col in joins:
                rec[col] = self._joined(mod, r, col)
            data.append(rec)
        return json_response(200, {"data": data, "info": {"count": len(data), "more_records": more}})

    def _joined(self, mod: ModuleCatalog, row: Row, col: str) -> Any:
        """COQL ``Lookup.Field``: the field of the record a lookup points to (``Full_Name`` for people)."""
        head, name = col.split(".", 1)
        v = row.data.get(head)
        if head == "Owner" or field_kinds(mod).get(head) == "owner":
            u = self.ctx.user(self.app, v if isinstance(v, str) else None)
            return {"full_name": u.name, "email": u.email, "id": u.id}.get(name)
        if not isinstance(v, dict) or not v.get("id"):
            return None
        f = mod.field(head)
        target = v.get("module") or (f.lookup if f is not None else None)
        other = self.ctx.store.get(self.app, target, v["id"], include_deleted=True) if target else None
        if other is None:
            return None
        if name == "id":
            return other.id
        if name == "Full_Name" and other.module in PEOPLE:
            return display_name(other.module, other.data)
        return other.data.get(name)

    def record_count(self, req: Request, mod: ModuleCatalog) -> Response:
        """CRM ``GET /{M}/actions/count[?criteria=…|cvid=…]``: ``{"count": n}``. A READ in stats."""
        where, params = "", []
        criteria = req.query.get("criteria")
        pred = None
        if req.query.get("cvid"):
            where, params = self._view_filter(mod, req.query["cvid"])
        if criteria:
            m = _TIME_CRITERIA.match(criteria.strip())
            if m:  # the incremental count: answered by the index, as the app would
                dt = timefmt.parse_iso(m.group(3))
                if dt is None:
                    raise err(400, "INVALID_QUERY", "invalid datetime in criteria", {"param_name": "criteria"})
                col = SORTABLE[m.group(1)]
                op = {"greater_equal": ">=", "greater_than": ">", "less_equal": "<=", "less_than": "<",
                      "equals": "="}[m.group(2)]
                where = " AND ".join(x for x in (where, f"{col} {op} ?") if x)
                params = [*params, timefmt.to_db(dt)]
            else:
                pred = parse_criteria(criteria, mod)
        self.ctx.stats.call(self.app, mod.api_name, "count")
        if pred is None:
            n = self.ctx.store.count(self.app, mod.api_name, where=where, params=params)
        else:
            n = sum(1 for r in self.ctx.store.query(self.app, mod.api_name, where=where, params=params)
                    if pred(self._flat(mod, r)))
        return json_response(200, {"count": n})

    def _encode_token(self, offset: int, after: list[Any] | None = None) -> str:
        exp = int(timefmt.plus(self.ctx.now(), days=1).timestamp())
        d: dict[str, Any] = {"o": offset, "e": exp}
        if after is not None:
            d["k"] = after
        raw = json.dumps(d, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _decode_token(self, token: str) -> tuple[int, list[Any] | None]:
        try:
            d = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            offset, exp = int(d["o"]), int(d["e"])
            after = d.get("k")
            if after is not None and not (isinstance(after, list) and len(after) == 2):
                raise ValueError(after)
        except (ValueError, KeyError, TypeError):
            raise err(400, "INVALID_DATA", "the page_token given seems to be invalid",
                      {"param_name": "page_token"}) from None
        if exp < self.ctx.now().timestamp():
            raise err(400, "EXPIRED_VALUE", "the page_token has expired", {"param_name": "page_token"})
        return offset, after

    def get(self, req: Request, mod: ModuleCatalog, rid: str) -> Response:
        fields = self._fields_param(req, required=False)
        row = self.ctx.store.get(self.app, mod.api_name, rid)
        self.ctx.stats.call(self.app, mod.api_name, "get")
        if row is None:
            return json_response(204, None)
        return json_response(200, {"data": [self.render(mod, row, fields)]})

    def related_notes(self, req: Request, mod: ModuleCatalog, rid: str) -> Response:
        notes = self.module("Notes")
        if self.ctx.store.get(self.app, mod.api_name, rid) is None:
            raise err(400, "INVALID_DATA", "the related id given seems to be invalid", {"id": rid})
        rows = [r for r in self.ctx.store.query(self.app, "Notes", order="id")
                if (r.data.get("Parent_Id") or {}).get("id") == rid]
        self.ctx.stats.call(self.app, "Notes", "list")
        return self._page(req, notes, rows)

    def related(self, req: Request, mod: ModuleCatalog, rid: str, related: str) -> Response:
        """``GET /{M}/{id}/{Related}``: records of another module whose lookups point at the record
        (a contact's Pipelines/Deals, Tasks, Events, Calls; an account's Contacts...)."""
        target = self.ctx.module(self.app, related)
        if target is None:
            raise err(400, "INVALID_DATA", "the related list name given seems to be invalid",
                      {"param_name": "related_list"})
        if self.ctx.store.get(self.app, mod.api_name, rid) is None:
            raise err(400, "INVALID_DATA", "the related id given seems to be invalid", {"id": rid})
        fields = self._fields_param(req, required=False)
        lookups = [f.api_name for f in target.fields if f.kind == "lookup" and f.lookup in (mod.api_name, None)]
        rows = [r for r in self.ctx.store.query(self.app, target.api_name, order="id")
                if any(isinstance(r.data.get(n), dict) and r.data[n].get("id") == rid for n in lookups)]
        self.ctx.stats.call(self.app, target.api_name, "related")
        return self._page(req, target, rows, fields)

    def _page(self, req: Request, mod: ModuleCatalog, rows: list[Row], fields: list[str] | None = None,
              cap: int | None = None) -> Response:
        per_page = _int_param(req, "per_page", MAX_PER_PAGE)
        if per_page > MAX_PER_PAGE:
            raise err(400, "LIMIT_EXCEEDED", "per_page exceeds the maximum of 200",
                      {"limit": MAX_PER_PAGE, "param_name": "per_page"})
        page = _int_param(req, "page", 1)
        if cap is not None:
            rows = rows[:cap]
        chunk = rows[(page - 1) * per_page: page * per_page]
        if not chunk:
            return json_response(204, None)
        more = len(rows) > page * per_page
        return json_response(200, {"data": [self.render(mod, r, fields) for r in chunk],
                                   "info": {"per_page": per_page, "count": len(chunk), "page": page,
                                            "more_records": more}})

    def deleted(self, req: Request, mod: ModuleCatalog) -> Response:
        kind = (req.query.get("type") or "all").lower()
        if kind not in ("all", "recycle", "permanent"):
            raise err(400, "INVALID_DATA", "type must be all, recycle or permanent", {"param_name": "type"})
        where, params = [], []
        if kind != "all":
            where.append("deleted_type = ?")
            params.append(kind)
        since_raw = req.headers.get("if-modified-since")
        if since_raw:
            since = timefmt.parse_http_date(since_raw)
            if since is None:
                raise err(400, "INVALID_DATA", "If-Modified-Since must be an ISO datetime with an offset",
                          {"header_name": "If-Modified-Since"})
            where.append("deleted >= ?")
            params.append(timefmt.to_db(since))
        per_page = _int_param(req, "per_page", MAX_PER_PAGE)
        if per_page > MAX_PER_PAGE:
            raise err(400, "LIMIT_EXCEEDED", "per_page exceeds the maximum of 200",
                      {"limit": MAX_PER_PAGE, "param_name": "per_page"})
        page = _int_param(req, "page", 1)
        rows = self.ctx.store.query(self.app, mod.api_name, where=" AND ".join(where), params=params,
                                    order="deleted DESC, id DESC", limit=per_page + 1,
                                    offset=(page - 1) * per_page, deleted=True)
        self.ctx.stats.call(self.app, mod.api_name, "deleted")
        if not rows:
            return json_response(304 if since_raw and page == 1 else 204, None)
        more = len(rows) > per_page
        data = []
        for r in rows[:per_page]:
            data.append({"id": r.id, "display_name": display_name(mod.api_name, r.data), "type": r.deleted_type,
                         "deleted_time": timefmt.zoho(r.deleted or r.modified),
                         "deleted_by": self._user_ref(r.deleted_by, email=False),
                         "created_by": self._user_ref(r.data.get("_created_by"), email=False)})
        return json_response(200, {"data": data, "info": {"per_page": per_page, "count": len(data), "page": page,
                                                          "more_records": more}})

    def search(self, req: Request, mod: ModuleCatalog) -> Response:
        fields = self._fields_param(req, required=False)
        q = req.query
        store = self.ctx.store
        if q.get("criteria"):
            pred = parse_criteria(q["criteria"], mod)
            m = _SIMPLE_EQ.match(q["criteria"].strip())
            if m and m.group(1) in indexed_fields(mod):
                ids = store.find_keys(self.app, mod.api_name, m.group(1), validate.norm(m.group(2)))
                rows = [r for r in (store.get(self.app, mod.api_name, i) for i in ids) if r]
            else:
                rows = store.query(self.app, mod.api_name, order="id")
            rows = [r for r in rows if pred(self._flat(mod, r))]
        elif q.get("email"):
            want = validate.norm(q["email"])
            ids = {i for n in indexed_fields(mod) if (f := mod.field(n)) and f.kind == "email"
                   for i in store.find_keys(self.app, mod.api_name, n, want)}
            rows = [r for r in (store.get(self.app, mod.api_name, i) for i in sorted(ids)) if r]
        elif q.get("phone"):
            want = digits(q["phone"])
            ids = {i for n in indexed_fields(mod) if (f := mod.field(n)) and f.kind == "phone"
                   for i in store.find_keys(self.app, mod.api_name, n, want)} if want else set()
            rows = [r for r in (store.get(self.app, mod.api_name, i) for i in sorted(ids)) if r]
        elif q.get("word"):
            rows = store.query(self.app, mod.api_name, order="id")
            want = q["word"].strip().casefold()
            rows = [r for r in rows if any(isinstance(v, str) and want in v.casefold()
                                           for k, v in r.data.items() if not k.startswith("_"))]
        else:
            raise err(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                      {"param_name": "criteria"})
        self.ctx.stats.call(self.app, mod.api_name, "search")
        return self._page(req, mod, rows, fields, cap=DISCRETE_LIMIT)

    def _flat(self, mod: ModuleCatalog, row: Row) -> dict[str, Any]:
        d = {k: v for k, v in row.data.items() if not k.startswith("_")}
        for k, v in list(d.items()):
            if isinstance(v, dict):
                d[k] = v.get("id")
        d["id"] = row.id
        d["Created_Time"] = row.created
        d["Modified_Time"] = row.modified
        if mod.api_name in PEOPLE:
            d["Full_Name"] = display_name(mod.api_name, row.data)
        return d

    # metadata ---------------------------------------------------------------------------------
    def _module_param(self, req: Request, op: str) -> ModuleCatalog:
        """The module named by the required ``module`` query parameter of a settings call, counted."""
        name = req.query.get("module")
        if not name:
            raise err(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                      {"param_name": "module"})
        mod = self.module(name)
        self.ctx.stats.call(self.app, mod.api_name, op)
        return mod

    def settings_fields(self, req: Request, sub: str | None) -> Response:
        mod = self._module_param(req, "fields")
        out = []
        for f in mod.fields:
            if sub and field_id(self.app, mod.api_name, f.api_name) != sub:
                continue
            out.append(self.field_meta(mod, f))
        if sub and not out:
            raise err(400, "INVALID_DATA", "the field id given seems to be invalid", {"id": sub})
        return json_response(200, {"fields": out})

    def field_meta(self, mod: ModuleCatalog, f: Any) -> dict[str, Any]:
        json_type = {"integer": "integer", "decimal": "double", "boolean": "boolean", "lookup": "jsonobject",
                     "owner": "jsonobject", "multiselect": "jsonarray"}.get(f.kind, "string")
        data_type = f.type if self.app in ("bigin", "zoho_crm") else f.kind
        d: dict[str, Any] = {
            "id": field_id(self.app, mod.api_name, f.api_name), "api_name": f.api_name,
            "field_label": f.label, "display_label": f.label, "data_type": data_type, "json_type": json_type,
            "length": f.length or (255 if f.kind == "text" else 0), "system_mandatory": f.mandatory,
            "read_only": f.read_only, "field_read_only": f.read_only,
            "custom_field": f.api_name.endswith("__c") or f.api_name.startswith("cf"),
            "visible": True, "unique": {"casesensitive": False} if f.unique else {},
            "crypt": {"mode": "decryption", "status": 1, "encrypt_case": "default"} if f.encrypted else None,
            "pick_list_values": [{"display_value": v, "actual_value": v, "sequence_number": i + 1,
                                  "id": field_id(self.app, mod.api_name, f"{f.api_name}:{v}")}
                                 for i, v in enumerate(f.picklist)],
            "lookup": ({"module": {"api_name": f.lookup, "id": module_id(self.app, f.lookup)}} if f.lookup else {}),
            "decimal_place": 2 if f.kind == "decimal" else None,
            "operation_type": {"api_create": not f.read_only, "api_update": not f.read_only, "api_read": True,
                               "web_create": not f.read_only, "web_update": not f.read_only, "web_read": True},
        }
        return d

    def settings_modules(self, api: str | None) -> Response:
        cat = self.ctx.catalog(self.app)
        self.ctx.stats.call(self.app, "$settings", "modules")
        mods = []
        for name, m in cat.modules.items():
            if api and name != api:
                continue
            mods.append({"api_name": name, "module_name": name, "singular_label": m.label.rstrip("s"),
                         "plural_label": m.label, "id": module_id(self.app, name), "api_supported": True,
                         "creatable": True, "editable": True, "deletable": True, "viewable": True,
                         "generated_type": "default", "visible": True})
        if api and not mods:
            raise err(400, "INVALID_MODULE", "the module name given seems to be invalid")
        return json_response(200, {"modules": mods})

    def views(self, mod: ModuleCatalog) -> list[dict[str, Any]]:
        """The module's system views: All, My, Recently Created, Recently Modified."""
        label = mod.label
        out = []
        for system, name, cond in (("ALLVIEWS", f"All {label}", "all"), ("MYVIEWS", f"My {label}", "mine"),
                                   ("RECENTLYCREATED", f"Recently Created {label}", "created"),
                                   ("RECENTLYMODIFIED", f"Recently Modified {label}", "modified")):
            out.append({"id": field_id(self.app, f"$views:{mod.api_name}", system), "name": name,
                        "display_value": name, "system_name": system, "system_defined": True,
                        "default": system == "ALLVIEWS", "category": "public_views", "favorite": None,
                        "module": {"api_name": mod.api_name, "id": module_id(self.app, mod.api_name)},
                        "_filter": cond})
        return out

    def custom_views(self, req: Request, vid: str | None) -> Response:
        mod = self._module_param(req, "views")
        views = [{k: v for k, v in x.items() if not k.startswith("_")} for x in self.views(mod)]
        if vid is not None:
            one = [v for v in views if v["id"] == vid]
            if not one:
                raise err(400, "INVALID_DATA", "the given custom view id seems to be invalid", {"id": vid})
            return json_response(200, {"custom_views": one})
        return json_response(200, {"custom_views": views, "info": {
            "per_page": 200, "default": views[0]["id"], "count": len(views), "page": 1, "more_records": False}})

    def _view_filter(self, mod: ModuleCatalog, cvid: str) -> tuple[str, list[Any]]:
        for v in self.views(mod):
            if v["id"] == cvid:
                week_ago = timefmt.to_db(timefmt.plus(self.ctx.now(), days=-7))
                return {"all": ("", []),
                        "mine": ("json_extract(data, '$.Owner') = ?", [self.ctx.users(self.app)[0].id]),
                        "created": ("created >= ?", [week_ago]),
                        "modified": ("modified >= ?", [week_ago])}[v["_filter"]]
        raise err(400, "INVALID_DATA", "the given custom view id seems to be invalid", {"param_name": "cvid"})

    def users(self, req: Request, uid: str | None) -> Response:
        kind = req.query.get("type") or "AllUsers"
        users = list(self.ctx.users(self.app))
        if kind == "CurrentUser":
            users = users[:1]
        if uid:
            users = [u for u in users if u.id == uid]
        self.ctx.stats.call(self.app, "$users", "list")
        if not users:
            return json_response(204, None)
        return json_response(200, {"users": [
            {"id": u.id, "first_name": u.first_name, "last_name": u.last_name, "full_name": u.name,
             "email": u.email, "status": "active", "confirm": True, "role": {"name": u.role, "id": u.id},
             "profile": {"name": "Administrator" if i == 0 else "Standard", "id": u.id},
             "time_zone": "UTC", "locale": "en_US"} for i, u in enumerate(users)],
            "info": {"per_page": 200, "count": len(users), "page": 1, "more_records": False}})

    # writes -----------------------------------------------------------------------------------
    def _items(self, req: Request) -> list[Any]:
        try:
            body = req.json()
        except ValueError:
            raise err(400, "INVALID_DATA", "the request body is not valid JSON", {}) from None
        if not isinstance(body, dict) or "data" not in body:
            raise err(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                      {"param_name": "data"})
        items = body["data"]
        if not isinstance(items, list) or not items:
            raise err(400, "INVALID_DATA", "data must be a non-empty JSON array", {"param_name": "data"})
        if len(items) > MAX_WRITE:
            raise err(400, "LIMIT_EXCEEDED", "the number of records exceeds the maximum of 100",
                      {"limit": MAX_WRITE, "api_name": "data"})
        return items

    def _exists(self, target: str | None, rid: str) -> bool:
        if target:
            return self.ctx.store.get(self.app, target, rid) is not None
        return self.ctx.store.find_any_module(self.app, rid) is not None

    def _error(self, e: validate.FieldError, i: int) -> dict[str, Any]:
        details = {"api_name": e.field, "json_path": f"$.data[{i}].{e.field}", **e.details}
        return {"code": e.code, "details": details, "message": e.message, "status": "error"}

    def _unique_fields(self, mod: ModuleCatalog) -> tuple[str, ...]:
        return unique_fields(mod)

    def _find_dup(self, mod: ModuleCatalog, name: str, value: Any, skip: str | None,
                  batch: _BatchKeys) -> str | None:
        want = validate.norm(value)
        if not want:
            return None
        rid = batch.find(name, want, skip)
        if rid is not None:
            return rid
        f = mod.field(name)
        if name in indexed_fields(mod) and not (f is not None and f.kind == "phone"):
            for rid in self.ctx.store.find_keys(self.app, mod.api_name, name, want):
                if rid != skip:
                    return rid
            return None
        for r in self.ctx.store.query(self.app, mod.api_name, where="json_extract(data, ?) IS NOT NULL",
                                      params=[f'$."{name}"']):
            if r.id != skip and validate.norm(r.data.get(name)) == want:
                return r.id
        return None

    def index(self, mod: ModuleCatalog, row: Row) -> None:
        index_keys(self.ctx, self.app, mod, row)

    def _dup_error(self, mod: ModuleCatalog, name: str, rid: str, i: int, row: Row | None = None) -> dict[str, Any]:
        row = row or self.ctx.store.get(self.app, mod.api_name, rid)
        owner = self.ctx.user(self.app, row.data.get("Owner") if row else None)
        return {"code": "DUPLICATE_DATA",
                "details": {"api_name": name, "json_path": f"$.data[{i}].{name}",
                            "duplicate_record": {"id": rid, "Owner": {"name": owner.name, "id": owner.id,
                                                                      "zuid": owner.id},
                                                 "module": {"api_name": mod.api_name,
                                                            "id": module_id(self.app, mod.api_name)}},
                            "id": rid, "more_records": False},
                "message": "duplicate data", "status": "error"}

    def _prepare(self, mod: ModuleCatalog, item: Any, i: int, *, creating: bool,
                 existing: Row | None, parent: tuple[str, str] | None) -> tuple[dict[str, Any] | None, dict | None]:
        """Validate one item; returns (values to store, error result)."""
        if not isinstance(item, dict):
            return None, {"code": "INVALID_DATA", "details": {"json_path": f"$.data[{i}]"},
                          "message": "each record must be a JSON object", "status": "error"}
        users = {u.id for u in self.ctx.users(self.app)}
        extra: tuple[str, ...] = ()
        item = dict(item)
        parent_ref = None
        if mod.api_name == "Notes":
            if parent:
                parent_ref = {"module": parent[0], "id": parent[1]}
            elif "Parent_Id" in item:
                p = item.pop("Parent_Id")
                pmod = item.pop("$se_module", None) or item.pop("se_module", None)
                if isinstance(p, dict):
                    pm = p.get("module")
                    pmod = (pm.get("api_name") if isinstance(pm, dict) else pm) or pmod
                    p = p.get("id")
                if not isinstance(p, str) or not pmod or self.ctx.store.get(self.app, pmod, p) is None:
                    return None, self._error(validate.FieldError(
                        "INVALID_DATA", "Parent_Id", "the related id given seems to be invalid"), i)
                parent_ref = {"module": pmod, "id": p}
            elif creating:
                return None, self._error(validate.FieldError("MANDATORY_NOT_FOUND", "Parent_Id",
                                                             "required field not found"), i)
        se_module = item.get("$se_module") if "What_Id" in item else None
        clean, e = validate.check(mod, item, creating=creating, exists=self._exists, user_ids=users,
                                  extra_mandatory=extra)
        if e:
            return None, self._error(e, i)
        if se_module and isinstance(clean.get("What_Id"), dict):
            clean["What_Id"]["module"] = se_module
        if parent_ref:
            clean["Parent_Id"] = parent_ref
        rej = self.ctx.rejection(self.app, mod.api_name, {**(existing.data if existing else {}), **item}) \
            if self.ctx.faults.rejections else None
        if rej:
            self.ctx.stats.fault("rejected")
            return None, self._error(validate.FieldError(rej.code, rej.field or "id", rej.message), i)
        return clean, None

    def _write_status(self, results: list[dict[str, Any]], ok_status: int) -> int:
        ok = sum(1 for r in results if r["status"] == "success")
        return ok_status if ok == len(results) else (400 if ok == 0 else 207)

    def _details(self, row: Row) -> dict[str, Any]:
        return {"Modified_Time": timefmt.zoho(row.modified),
                "Modified_By": self._user_ref(row.data.get("_modified_by"), email=False),
                "Created_Time": timefmt.zoho(row.created), "id": row.id,
                "Created_By": self._user_ref(row.data.get("_created_by"), email=False),
                "$approval_state": "approved"}

    def _insert(self, mod: ModuleCatalog, clean: dict[str, Any], now: str) -> Row:
        data = dict(clean)
        admin = self.ctx.users(self.app)[0].id
        data.setdefault("Owner", admin)
        data["_created_by"] = data["_modified_by"] = admin
        row = self.ctx.store.insert(self.app, mod.api_name, self.ctx.store.new_id(self.app), data, now)
        self.index(mod, row)
        return row

    def _apply_update(self, mod: ModuleCatalog, row: Row, clean: dict[str, Any], now: str) -> Row:
        data = {**row.data, **clean}
        data["_modified_by"] = self.ctx.users(self.app)[0].id
        old = row.data
        row = self.ctx.store.update(row, data, now)
        if any(old.get(n) != data.get(n) for n, _ in _cached("index_plan", mod, _index_plan)):
            self.index(mod, row)  # the indexed values changed (an update of other fields keeps its keys)
        return row

    def create(self, req: Request, mod: ModuleCatalog, parent: tuple[str, str] | None = None) -> Response:
        items = self._items(req)
        if parent and self.ctx.store.get(self.app, parent[0], parent[1]) is None:
            raise err(400, "INVALID_DATA", "the related id given seems to be invalid", {"id": parent[1]})
        results: list[dict[str, Any]] = []
        uniques = self._unique_fields(mod)
        store = self.ctx.store
        with store.transaction():
            now = self.ctx.now_db()
            batch = _BatchKeys(uniques)
            # Ids and sequence numbers of the batch are taken at once and the rows and their keys
            # written with one executemany each, at the end (the transaction holds the store's lock, so
            # the ids are the ones record-by-record inserts would get; the unused ones are given back).
            # Duplicates inside the batch are found in ``batch``, not in the database.
            first_id = store._reserve(f"id:{self.app}", len(items))
            first_seq = store._reserve("seq", len(items))
            pending: dict[str, Row] = {}
            admin = self.ctx.users(self.app)[0].id
            id_base = ID_BASE[self.app] + 1000
            try:
                for i, item in enumerate(items):
                    clean, error = self._prepare(mod, item, i, creating=True, existing=None, parent=parent)
                    if error is None and clean is not None:
                        for name in uniques:
                            dup = self._find_dup(mod, name, clean.get(name), None, batch)
                            if dup:
                                error = self._dup_error(mod, name, dup, i, pending.get(dup))
                                break
                    if error is not None:
                        results.append(error)
                        continue
                    data = dict(clean or {})
                    data.setdefault("Owner", admin)
                    data["_created_by"] = data["_modified_by"] = admin
                    n = len(pending)
                    row = Row(self.app, mod.api_name, str(id_base + (first_id + n) * 3), first_seq + n, now, now,
                              None, None, None, data)
                    pending[row.id] = row
                    batch.add(row.id, row.data)
                    results.append({"code": "SUCCESS", "details": self._details(row), "message": "record added",
                                    "status": "success"})
                store.insert_many([(r.app, r.module, r.id, r.seq, r.created, r.modified,
                                    json.dumps(r.data, separators=(",", ":"))) for r in pending.values()])
                plan = _cached("index_plan", mod, _index_plan)
                store.add_keys([(self.app, mod.api_name, name, key, r.id) for r in pending.values()
                                for name, phone in plan
                                if (key := digits(r.data.get(name)) if phone else validate.norm(r.data.get(name)))])
            finally:
                store.set_meta(f"id:{self.app}", str(first_id + len(pending) - 1))
                store.set_meta("seq", str(first_seq + len(pending) - 1))
            written = len(pending)
        self.ctx.stats.call(self.app, mod.api_name, "create")
        self.ctx.stats.wrote(self.app, mod.api_name, "create", written)
        return json_response(self._write_status(results, 201), {"data": results})

    def update(self, req: Request, mod: ModuleCatalog, rid: str | None) -> Response:
        items = self._items(req)
        if rid is not None and len(items) != 1:
            raise err(400, "INVALID_DATA", "updating one record by id takes exactly one item in data", {})
        results: list[dict[str, Any]] = []
        uniques = self._unique_fields(mod)
        written = 0
        with self.ctx.store.transaction():
            now = self.ctx.now_db()
            batch = _BatchKeys(uniques)
            # the batch's records in one query; a record updated earlier in the batch is taken from here
            wanted = list(dict.fromkeys(str(x) for x in ([rid] if rid else
                                                         [it.get("id") for it in items if isinstance(it, dict)])
                                        if x not in (None, "")))
            rows = {r.id: r for r in self.ctx.store.query(
                self.app, mod.api_name, where="id IN (%s)" % ",".join("?" * len(wanted)), params=wanted,
                order="id")} \
                if wanted else {}
            for i, item in enumerate(items):
                item_id = rid or (item.get("id") if isinstance(item, dict) else None)
                if not item_id:
                    results.append(self._error(validate.FieldError("MANDATORY_NOT_FOUND", "id",
                                                                   "required field not found"), i))
                    continue
                row = rows.get(str(item_id))
                if row is None:
                    results.append({"code": "INVALID_DATA", "details": {"api_name": "id", "json_path":
                                    f"$.data[{i}].id", "id": str(item_id)},
                                    "message": "the related id given seems to be invalid", "status": "error"})
                    continue
                clean, error = self._prepare(mod, item, i, creating=False, existing=row, parent=None)
                if error is None and clean is not None:
                    for name in uniques:
                        if name in clean:
                            dup = self._find_dup(mod, name, clean.get(name), row.id, batch)
                            if dup:
                                error = self._dup_error(mod, name, dup, i)
                                break
                if error is not None:
                    results.append(error)
                    continue
                row = rows[row.id] = self._apply_update(mod, row, clean or {}, now)
                batch.add(row.id, row.data)
                written += 1
                results.append({"code": "SUCCESS", "details": self._details(row), "message": "record updated",
                                "status": "success"})
        self.ctx.stats.call(self.app, mod.api_name, "update")
        self.ctx.stats.wrote(self.app, mod.api_name, "update", written)
        return json_response(self._write_status(results, 200), {"data": results})

    def upsert(self, req: Request, mod: ModuleCatalog) -> Response:
        items = self._items(req)
        body = req.json()
        dcf = body.get("duplicate_check_fields")
        if dcf is not None and (not isinstance(dcf, list) or not all(isinstance(x, str) for x in dcf)):
            raise err(400, "INVALID_DATA", "duplicate_check_fields must be an array of field api names",
                      {"param_name": "duplicate_check_fields"})
        for name in dcf or []:
            if mod.field(name) is None:
                raise err(400, "INVALID_DATA", f"duplicate_check_fields: unknown field {name}",
                          {"api_name": name, "param_name": "duplicate_check_fields"})
        check_fields = list(dcf) if dcf else self._unique_fields(mod)
        uniques = self._unique_fields(mod)
        results: list[dict[str, Any]] = []
        counts = {"insert": 0, "update": 0}
        with self.ctx.store.transaction():
            now = self.ctx.now_db()
            batch = _BatchKeys(tuple(dict.fromkeys((*uniques, *check_fields))))
            for i, item in enumerate(items):
                match_id, match_field = None, None
                if isinstance(item, dict):
                    for name in check_fields:
                        if not validate.empty(item.get(name)):
                            match_id = self._find_dup(mod, name, item.get(name), None, batch)
                            if match_id:
                                match_field = name
                                break
                existing = self.ctx.store.get(self.app, mod.api_name, match_id) if match_id else None
                clean, error = self._prepare(mod, item, i, creating=existing is None, existing=existing,
                                             parent=None)
                if error is None and clean is not None:
                    for name in uniques:
                        if name in clean:
                            dup = self._find_dup(mod, name, clean[name], existing.id if existing else None, batch)
                            if dup:
                                error = self._dup_error(mod, name, dup, i)
                                break
                if error is not None:
                    results.append(error)
                    continue
                if existing is not None:
                    row = self._apply_update(mod, existing, clean or {}, now)
                    action, msg = "update", "record updated"
                else:
                    row = self._insert(mod, clean or {}, now)
                    action, msg = "insert", "record added"
                counts[action] += 1
                batch.add(row.id, row.data)
                res = {"code": "SUCCESS", "duplicate_field": match_field, "action": action,
                       "details": self._details(row), "message": msg, "status": "success"}
                results.append(res)
        self.ctx.stats.call(self.app, mod.api_name, "upsert")
        self.ctx.stats.wrote(self.app, mod.api_name, "create", counts["insert"])
        self.ctx.stats.wrote(self.app, mod.api_name, "update", counts["update"])
        return json_response(self._write_status(results, 200), {"data": results})

    def delete(self, req: Request, mod: ModuleCatalog, rid: str | None) -> Response:
        if rid is None:
            raw = req.query.get("ids")
            if not raw:
                raise err(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                          {"param_name": "ids"})
            ids = [x.strip() for x in raw.split(",") if x.strip()]
        else:
            ids = [rid]
        if len(ids) > MAX_WRITE:
            raise err(400, "LIMIT_EXCEEDED", "the number of ids exceeds the maximum of 100",
                      {"limit": MAX_WRITE, "param_name": "ids"})
        results = []
        n = 0
        with self.ctx.store.transaction():
            now = self.ctx.now_db()
            for i in ids:
                row = self.ctx.store.get(self.app, mod.api_name, i)
                rej = self.ctx.rejection(self.app, mod.api_name, {"id": i}) if row else None
                if row is None or rej:
                    results.append({"code": rej.code if rej else "INVALID_DATA", "details": {"id": i},
                                    "message": rej.message if rej else "the related id given seems to be invalid",
                                    "status": "error"})
                    continue
                self.ctx.store.mark_deleted(row, now, "recycle", self.ctx.users(self.app)[0].id)
                n += 1
                results.append({"code": "SUCCESS", "details": {"id": i}, "message": "record deleted",
                                "status": "success"})
        self.ctx.stats.call(self.app, mod.api_name, "delete")
        self.ctx.stats.wrote(self.app, mod.api_name, "delete", n)
        return json_response(self._write_status(results, 200), {"data": results})

# criteria ---------------------------------------------------------------------------------------
_TOKEN = re.compile(r"\s*(\(|\)|and\b|or\b)", re.I)
OPS = ("equals", "not_equal", "starts_with", "in", "greater_than", "greater_equal", "less_than",
       "less_equal", "between")


def _split_unescaped(s: str, sep: str) -> list[str]:
    out, cur, esc = [], "", False
    for ch in s:
        if esc:
            cur += ch
            esc = False
        elif ch == "\\":
            esc = True
        elif ch == sep:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out


def _unescape(s: str) -> str:
    """Drop the backslashes of ``\\(``, ``\\)``, ``\\,``, ``\\:`` and ``\\\\``."""
    out, esc = [], False
    for ch in s:
        if esc or ch != "\\":
            out.append(ch)
            esc = False
        else:
            esc = True
    return "".join(out)


def _unescaped_positions(s: str, sep: str) -> list[int]:
    out, esc = [], False
    for i, ch in enumerate(s):
        if esc:
            esc = False
        elif ch == "\\":
            esc = True
        elif ch == sep:
            out.append(i)
    return out


def parse_criteria(text: str, mod: ModuleCatalog):
    """``((Last_Name:equals:Smith)and(Email:starts_with:j))`` → a predicate over flattened values.
    Text comparisons are case-insensitive; ≤10 conditions."""
    s = text.strip()
    pos = 0
    count = [0]

    def bad(msg: str) -> ApiError:
        return err(400, "INVALID_QUERY", f"invalid criteria: {msg}",
                   {"reason": msg, "api_name": "criteria"})

    def parse_expr():
        nonlocal pos
        left = parse_term()
        while True:
            m = re.match(r"\s*(and|or)\s*", s[pos:], re.I)
            if not m:
                return left
            pos += m.end()
            right = parse_term()
            op = m.group(1).lower()
            left = (lambda a, b: (lambda d: a(d) and b(d)))(left, right) if op == "and" else \
                (lambda a, b: (lambda d: a(d) or b(d)))(left, right)

    def parse_term():
        nonlocal pos
        while pos < len(s) and s[pos].isspace():
            pos += 1
        if pos >= len(s) or s[pos] != "(":
            raise bad("expected '('")
        # a condition is (F:op:value) with no unescaped '(' inside; a group starts with '(('
        j = pos + 1
        while j < len(s) and s[j].isspace():
            j += 1
        if j < len(s) and s[j] == "(":
            pos = j
            e = parse_expr()
            while pos < len(s) and s[pos].isspace():
                pos += 1
            if pos >= len(s) or s[pos] != ")":
                raise bad("unbalanced parentheses")
            pos += 1
            return e
        k, esc = pos + 1, False
        while k < len(s):
            if esc:
                esc = False
            elif s[k] == "\\":
                esc = True
            elif s[k] == ")":
                break
            k += 1
        if k >= len(s):
            raise bad("unbalanced parentheses")
        cond = s[pos + 1:k]
        pos = k + 1
        count[0] += 1
        if count[0] > 10:
            raise bad("at most 10 conditions")
        return condition(cond)

    def condition(cond: str):
        cuts = _unescaped_positions(cond, ":")
        if len(cuts) < 2:
            raise bad(f"condition {cond!r} must be field:operator:value")
        fname, op = cond[:cuts[0]].strip(), cond[cuts[0] + 1:cuts[1]].strip().lower()
        raw = cond[cuts[1] + 1:]
        if op not in OPS:
            raise bad(f"unknown operator {op}")
        if fname not in ("id", "Created_Time", "Modified_Time", "Full_Name") and mod.field(fname) is None:
            raise bad(f"unknown field {fname}")
        values = ([v.strip() for v in _split_unescaped(raw, ",")] if op in ("in", "between")
                  else [_unescape(raw)])
        f = mod.field(fname)
        kind = f.kind if f else ("datetime" if fname.endswith("_Time") else "text")

        def conv(v: Any) -> Any:
            if v is None:
                return None
            if kind in ("integer", "decimal"):
                try:
                    return float(v)
                except (TypeError, ValueError):
                    return None
            if kind == "datetime":
                dt = timefmt.parse_iso(v) if isinstance(v, str) and "T" in v and not re.match(
                    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$", v) else None
                return timefmt.to_db(dt) if dt else str(v)
            if kind == "boolean":
                return str(v).lower()
            return str(v).strip().casefold()

        wants = [conv(v) for v in values]

        def pred(d: dict[str, Any]) -> bool:
            have = conv(d.get(fname))
            if op == "equals":
                return have == wants[0]
            if op == "not_equal":
                return have != wants[0]
            if op == "starts_with":
                return isinstance(have, str) and have.startswith(str(wants[0]))
            if op == "in":
                return have in wants
            if have is None or wants[0] is None:
                return False
            try:
                if op == "greater_than":
                    return have > wants[0]
                if op == "greater_equal":
                    return have >= wants[0]
                if op == "less_than":
                    return have < wants[0]
                if op == "less_equal":
                    return have <= wants[0]
                if op == "between":
                    return len(wants) == 2 and wants[0] <= have <= wants[1]
            except TypeError:
                return False
            return False

        return pred

    expr = parse_expr()
    while pos < len(s) and s[pos].isspace():
        pos += 1
    if pos != len(s):
        raise bad("unexpected text after the criteria")
    return expr
