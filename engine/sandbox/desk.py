"""Zoho Desk v1 (``/api/v1``): contacts, accounts, products, tickets, departments, the recycle bin.

Every call needs the ``orgId`` header (or query parameter, as the official OpenAPI puts it); the
sandbox has one organisation and accepts any non-empty orgId. Lists take ``from``/``limit`` (≤100)
and answer 204 when empty; ``from`` is zero-based for products (as documented) and one-based
elsewhere, where ``from=0`` also means the first record. Writes answer the full record (200); errors
use Desk's shape ``{"errorCode","message","errors":[{fieldName,errorType,errorMessage}]}`` (422).
Custom fields travel in ``cf: {cf_x: ...}`` and are named ``cf.cf_x`` in the catalog.
"""

from __future__ import annotations

import re
from typing import Any

from engine.catalog import ModuleCatalog
from engine.sandbox import timefmt, validate
from engine.sandbox.core import Context, display_name
from engine.sandbox.http import ApiError, Request, Response, json_response
from engine.sandbox.store import Row

APP = "zoho_desk"
ORG_ID = "60001234"
MODULES = ("contacts", "accounts", "products", "tickets")
TRASH_KEYS = {"contacts": "contactIds", "accounts": "accountIds", "products": "productIds",
              "tickets": "ticketIds"}
MAX_LIMIT = 100
MAX_TRASH = 100
DEPARTMENTS = ("Support", "Sales")
SORT = {"contacts": ("firstName", "lastName", "phone", "email", "account", "createdTime", "modifiedTime"),
        "accounts": ("accountName", "createdTime", "modifiedTime"),
        "products": ("productName", "productCode", "unitPrice", "createdTime", "modifiedTime"),
        "tickets": ("createdTime", "modifiedTime", "dueDate", "ticketNumber", "subject")}
SEARCH_PARAMS = {
    "contacts": ("email", "phone", "firstName", "lastName", "fullName", "accountName", "mobile", "_all"),
    "accounts": ("accountName", "email", "phone", "website", "_all"),
    "products": ("productName", "productCode", "_all"),
    "tickets": ("ticketNumber", "subject", "departmentId", "status", "priority", "email", "phone", "contactId",
                "productName", "_all"),
}


def derr(status: int, code: str, message: str, errors: list[dict[str, str]] | None = None) -> ApiError:
    body: dict[str, Any] = {"errorCode": code, "message": message}
    if errors:
        body["errors"] = errors
    return ApiError(status, body)


def invalid(field: str, error_type: str, message: str, code: str = "INVALID_DATA") -> ApiError:
    return derr(422, code, "An invalid value has been passed for the field(s)." if error_type != "missing"
                else "Mandatory field(s) missing.",
                [{"fieldName": f"/{field}", "errorType": error_type, "errorMessage": message}])


def ensure_departments(ctx: Context) -> list[str]:
    rows = ctx.store.query(APP, "departments", order="seq")
    if rows:
        return [r.id for r in rows]
    now = ctx.now_db()
    ids = []
    with ctx.store.transaction():
        for name in DEPARTMENTS:
            rid = ctx.store.new_id(APP)
            ctx.store.insert(APP, "departments", rid, {"name": name, "description": f"{name} department",
                                                       "isEnabled": True, "isDefault": name == DEPARTMENTS[0]}, now)
            ids.append(rid)
    return ids


def index_keys(ctx: Context, mod: ModuleCatalog, row: Row) -> None:
    """Index e-mail (normalised) and phone (digits) values for searches."""
    keys = {}
    for f in mod.fields:
        if f.kind == "email":
            keys[f.api_name] = validate.norm(row.data.get(f.api_name))
        elif f.kind == "phone":
            keys[f.api_name] = re.sub(r"\D", "", str(row.data.get(f.api_name) or ""))
    if keys:
        ctx.store.set_keys(APP, mod.api_name, row.id, keys)


def _unflatten(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    cf: dict[str, Any] = {}
    for k, v in values.items():
        if k.startswith("cf."):
            cf[k[3:]] = v
        else:
            out[k] = v
    out["cf"] = cf
    return out


class DeskApi:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def handle(self, req: Request, parts: list[str]) -> Response:
        if parts == ["organizations"] and req.method == "GET":
            self.ctx.stats.call(APP, "$organizations", "list")
            return json_response(200, {"data": [{"id": ORG_ID, "companyName": "Sandbox Inc",
                                                 "portalName": "sandbox", "edition": "ENTERPRISE",
                                                 "isDefault": True}]})
        org = req.headers.get("orgid") or req.query.get("orgId")
        if not org or not org.strip():
            raise derr(400, "BAD_REQUEST", "The orgId header (or query parameter) is missing; send "
                                           "orgId: <organisation id> with every request.")
        ensure_departments(self.ctx)
        m = req.method
        head = parts[0] if parts else ""
        if head == "departments" and m == "GET":
            return self.departments(req, parts[1] if len(parts) > 1 else None)
        if head == "agents" and m == "GET":
            return self.agents()
        if head == "recycleBin" and m == "GET":
            return self.recycle_bin(req)
        if head not in MODULES:
            raise derr(404, "URL_NOT_FOUND", "The URL you requested could not be found on our server.")
        mod = self.module(head)
        if len(parts) == 1:
            if m == "GET":
                return self.list(req, mod)
            if m == "POST":
                return self.create(req, mod)
        elif len(parts) == 2:
            sub = parts[1]
            if sub == "moveToTrash" and m == "POST":
                return self.trash(req, mod)
            if sub == "search" and m == "GET":
                return self.search(req, mod)
            if sub == "count" and m == "GET":
                self.ctx.stats.call(APP, head, "count")
                return json_response(200, {"count": self.ctx.store.count(APP, head)})
            if sub == "contactsByIds" and head == "contacts" and m == "GET":
                return self.by_ids(req, mod)
            if sub == "searchDuplicates" and head == "products" and m == "GET":
                return self.product_duplicates(req, mod)
            if m == "GET":
                return self.get(mod, sub)
            if m == "PATCH":
                return self.update(req, mod, sub)
        elif len(parts) == 3 and m == "GET":
            return self.associates(req, mod, parts[1], parts[2])
        else:
            raise derr(404, "URL_NOT_FOUND", "The URL you requested could not be found on our server.")
        raise derr(405, "METHOD_NOT_ALLOWED", f"The method {m} is not allowed for the requested resource.")

    def module(self, name: str) -> ModuleCatalog:
        mod = self.ctx.module(APP, name)
        if mod is None:
            raise derr(404, "URL_NOT_FOUND", "The URL you requested could not be found on our server.")
        return mod

    # rendering --------------------------------------------------------------------------------
    def render(self, mod: ModuleCatalog, row: Row, fields: list[str] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"id": row.id}
        for f in mod.fields:
            if f.read_only or f.api_name == "id":
                continue
            v = row.data.get(f.api_name)
            if isinstance(v, str) and validate.kind_of(f) == "datetime":
                v = timefmt.desk(v)
            out[f.api_name] = v
        if mod.api_name == "products":
            out["departmentIds"] = row.data.get("departmentIds", [])
        if mod.api_name == "tickets":
            out["ticketNumber"] = row.data.get("ticketNumber")
            out["closedTime"] = None
        out = _unflatten(out)
        out["createdTime"] = timefmt.desk(row.created)
        out["modifiedTime"] = timefmt.desk(row.modified)
        out["webUrl"] = f"https://desk.zoho.com/support/sandbox/ShowHomePage.do#{mod.label}/dv/{row.id}"
        out["isTrashed"] = row.deleted is not None
        if mod.api_name == "contacts":
            out.update({"isDeleted": False, "isEndUser": False, "isSpam": False, "layoutId": None,
                        "zohoCRMContact": None})
            acc = row.data.get("accountId")
            arow = self.ctx.store.get(APP, "accounts", acc) if acc else None
            out["account"] = {"id": acc, "accountName": arow.data.get("accountName")} if arow else None
        owner = self.ctx.user(APP, row.data.get("ownerId"))
        out["owner"] = {"id": owner.id, "firstName": owner.first_name, "lastName": owner.last_name}
        if fields is not None:
            keep = set(fields) | {"id"}
            cf = {k: v for k, v in out["cf"].items() if f"cf.{k}" in keep or k in keep}
            out = {k: v for k, v in out.items() if k in keep}
            if cf:
                out["cf"] = cf
        return out

    # reads ------------------------------------------------------------------------------------
    def _paging(self, req: Request, mod: ModuleCatalog, *, default_limit: int) -> tuple[int, int]:
        def num(name: str, default: int) -> int:
            raw = req.query.get(name)
            if raw in (None, ""):
                return default
            try:
                return int(raw)
            except ValueError:
                raise invalid(name, "invalid", f"{name} must be a number") from None
        limit = num("limit", default_limit)
        if not 1 <= limit <= MAX_LIMIT:
            raise invalid("limit", "invalid", f"limit must be between 1 and {MAX_LIMIT}")
        start = num("from", 0 if mod.api_name == "products" else 1)
        if start < 0:
            raise invalid("from", "invalid", "from must not be negative")
        offset = start if mod.api_name == "products" else max(0, start - 1)
        return offset, limit

    def _sort(self, req: Request, mod: ModuleCatalog, rows: list[Row]) -> list[Row]:
        raw = req.query.get("sortBy")
        if not raw:
            return rows
        desc = raw.startswith("-")
        key = raw.lstrip("-")
        if key not in SORT.get(mod.api_name, ()):
            raise invalid("sortBy", "invalid", f"sortBy must be one of {', '.join(SORT.get(mod.api_name, ()))}"
                                               " (prefix - for descending)")
        if key == "createdTime":
            fn = lambda r: (r.created, r.id)  # noqa: E731
        elif key == "modifiedTime":
            fn = lambda r: (r.modified, r.id)  # noqa: E731
        elif key == "account":
            fn = lambda r: (str(r.data.get("accountId") or ""), r.id)  # noqa: E731
        else:
            fn = lambda r: (str(r.data.get(key) if r.data.get(key) is not None else "").casefold(), r.id)  # noqa: E731
        return sorted(rows, key=fn, reverse=desc)

    def _fields(self, req: Request) -> list[str] | None:
        raw = req.query.get("fields")
        if not raw:
            return None
        names = [x.strip() for x in raw.split(",") if x.strip()]
        if len(names) > 30:
            raise invalid("fields", "invalid", "at most 30 fields")
        return names

    def list(self, req: Request, mod: ModuleCatalog) -> Response:
        offset, limit = self._paging(req, mod, default_limit=10)
        fields = self._fields(req)
        sort = (req.query.get("sortBy") or "").lstrip("-")
        if not req.query.get("departmentId") and sort in ("", "createdTime", "modifiedTime"):
            direction = "DESC" if (req.query.get("sortBy") or "").startswith("-") else "ASC"
            order = {"": "id ASC", "createdTime": f"created {direction}, id {direction}",
                     "modifiedTime": f"modified {direction}, id {direction}"}[sort]
            chunk = self.ctx.store.query(APP, mod.api_name, order=order, limit=limit, offset=offset)
            self.ctx.stats.call(APP, mod.api_name, "list")
            if not chunk:
                return json_response(204, None)
            return json_response(200, {"data": [self.render(mod, r, fields) for r in chunk]})
        rows = self.ctx.store.query(APP, mod.api_name, order="id")
        if mod.api_name == "tickets" and req.query.get("departmentId"):
            rows = [r for r in rows if r.data.get("departmentId") == req.query["departmentId"]]
        if mod.api_name == "products" and req.query.get("departmentId"):
            rows = [r for r in rows if req.query["departmentId"] in (r.data.get("departmentIds") or [])]
        rows = self._sort(req, mod, rows)
        self.ctx.stats.call(APP, mod.api_name, "list")
        chunk = rows[offset:offset + limit]
        if not chunk:
            return json_response(204, None)
        return json_response(200, {"data": [self.render(mod, r, fields) for r in chunk]})

    def get(self, mod: ModuleCatalog, rid: str) -> Response:
        row = self.ctx.store.get(APP, mod.api_name, rid)
        self.ctx.stats.call(APP, mod.api_name, "get")
        if row is None:
            raise derr(404, "URL_NOT_FOUND", "The URL you requested could not be found on our server.")
        return json_response(200, self.render(mod, row))

    def by_ids(self, req: Request, mod: ModuleCatalog) -> Response:
        ids = [x.strip() for x in (req.query.get("ids") or "").split(",") if x.strip()]
        if not ids:
            raise invalid("ids", "missing", "ids is required")
        if len(ids) > 20:
            raise invalid("ids", "invalid", "at most 20 ids")
        rows = [r for r in (self.ctx.store.get(APP, mod.api_name, i) for i in ids) if r]
        self.ctx.stats.call(APP, mod.api_name, "get")
        if not rows:
            return json_response(204, None)
        return json_response(200, {"data": [self.render(mod, r) for r in rows]})

    def departments(self, req: Request, rid: str | None) -> Response:
        rows = self.ctx.store.query(APP, "departments", order="seq")
        self.ctx.stats.call(APP, "departments", "list")
        out = [{"id": r.id, "name": r.data["name"], "description": r.data.get("description"),
                "isEnabled": r.data.get("isEnabled", True), "isDefault": r.data.get("isDefault", False),
                "creatorId": self.ctx.users(APP)[0].id, "createdTime": timefmt.desk(r.created)} for r in rows]
        if rid is not None:
            one = [d for d in out if d["id"] == rid]
            if not one:
                raise derr(404, "URL_NOT_FOUND", "The URL you requested could not be found on our server.")
            return json_response(200, one[0])
        return json_response(200, {"data": out})

    def agents(self) -> Response:
        self.ctx.stats.call(APP, "agents", "list")
        return json_response(200, {"data": [
            {"id": u.id, "firstName": u.first_name, "lastName": u.last_name, "name": u.name, "emailId": u.email,
             "status": "ACTIVE", "roleId": u.id, "isConfirmed": True} for u in self.ctx.users(APP)]})

    def recycle_bin(self, req: Request) -> Response:
        module = req.query.get("module")
        if module is not None and module not in MODULES:
            raise invalid("module", "invalid", f"module must be one of {', '.join(MODULES)}")
        offset, limit = self._paging(req, self.module("contacts"), default_limit=50)
        rows: list[Row] = []
        for name in ([module] if module else MODULES):
            rows += self.ctx.store.query(APP, name, order="deleted DESC, id DESC", deleted=True)
        rows.sort(key=lambda r: (r.deleted or "", r.id), reverse=True)
        self.ctx.stats.call(APP, module or "$recycleBin", "deleted")
        chunk = rows[offset:offset + limit]
        if not chunk:
            return json_response(204, None)
        data = []
        for r in chunk:
            by = self.ctx.user(APP, r.deleted_by)
            data.append({"id": r.id, "entityId": r.id, "name": display_name(r.module, r.data), "module": r.module,
                         "deletedTime": timefmt.desk(r.deleted or r.modified),
                         "deletedBy": {"id": by.id, "name": by.name, "firstName": by.first_name,
                                       "lastName": by.last_name},
                         "departmentId": r.data.get("departmentId")})
        return json_response(200, {"data": data})

    def associates(self, req: Request, mod: ModuleCatalog, rid: str, sub: str) -> Response:
        if self.ctx.store.get(APP, mod.api_name, rid) is None:
            raise derr(404, "URL_NOT_FOUND", "The URL you requested could not be found on our server.")
        key = {"contacts": "contactId", "accounts": "accountId", "products": "productId"}.get(mod.api_name)
        if sub not in ("tickets", "contacts") or key is None or (sub == "contacts" and mod.api_name != "accounts"):
            raise derr(404, "URL_NOT_FOUND", "The URL you requested could not be found on our server.")
        target = self.module(sub)
        offset, limit = self._paging(req, target, default_limit=50)
        rows = [r for r in self.ctx.store.query(APP, sub, order="id") if r.data.get(key) == rid]
        self.ctx.stats.call(APP, sub, "list")
        chunk = rows[offset:offset + limit]
        if not chunk:
            return json_response(204, None)
        return json_response(200, {"data": [self.render(target, r) for r in chunk]})

    def search(self, req: Request, mod: ModuleCatalog) -> Response:
        q = req.query
        limit = int(q.get("limit") or 10) if (q.get("limit") or "10").isdigit() else -1
        start = int(q.get("from") or 0) if (q.get("from") or "0").isdigit() else -1
        if not 1 <= limit <= MAX_LIMIT:
            raise invalid("limit", "invalid", f"limit must be between 1 and {MAX_LIMIT}")
        if not 0 <= start <= 999:
            raise invalid("from", "invalid", "from must be between 0 and 999")
        rows = self._candidates(mod, q)
        used = False
        for p in SEARCH_PARAMS.get(mod.api_name, ()):
            if q.get(p) not in (None, ""):
                used = True
                rows = [r for r in rows if self._matches(mod, r, p, q[p])]
        for p, col in (("createdTimeRange", "created"), ("modifiedTimeRange", "modified")):
            if q.get(p):
                used = True
                parts = q[p].split(",")
                lo, hi = (timefmt.parse_iso(parts[0].strip()) if parts[0].strip() else None,
                          timefmt.parse_iso(parts[1].strip()) if len(parts) > 1 and parts[1].strip() else None)
                if len(parts) != 2 or (parts[0].strip() and lo is None) or (parts[1].strip() and hi is None):
                    raise invalid(p, "invalid", f"{p} must be two ISO datetimes separated by a comma, e.g. "
                                                "2017-11-05T00:00:00.000Z,2018-09-05T23:59:00.000Z")
                rows = [r for r in rows if (lo is None or getattr(r, col) >= timefmt.to_db(lo))
                        and (hi is None or getattr(r, col) <= timefmt.to_db(hi))]
        for k, v in q.items():
            if k.startswith("customField"):
                used = True
                api, _, val = v.partition(":")
                rows = [r for r in rows if _wild(r.data.get(f"cf.{api}"), val)]
        if not used:
            raise invalid("_all", "missing", "give at least one search parameter")
        rows = self._sort(req, mod, rows)
        self.ctx.stats.call(APP, mod.api_name, "search")
        chunk = rows[start:start + limit]
        if not chunk:
            return json_response(204, None)
        return json_response(200, {"data": [self.render(mod, r) for r in chunk], "count": len(rows)})

    def _candidates(self, mod: ModuleCatalog, q: dict[str, str]) -> list[Row]:
        """Rows that can match: from the e-mail/phone index when the search names one exactly."""
        store = self.ctx.store
        if q.get("email") and not q["email"].endswith("*") and q["email"] != "${empty}":
            ids = store.find_keys(APP, mod.api_name, "email", validate.norm(q["email"]))
        elif q.get("phone") and not q["phone"].endswith("*") and q["phone"] != "${empty}":
            want = re.sub(r"\D", "", q["phone"])
            ids = sorted({*store.find_keys(APP, mod.api_name, "phone", want),
                          *store.find_keys(APP, mod.api_name, "mobile", want)})
        else:
            return store.query(APP, mod.api_name, order="id")
        return [r for r in (store.get(APP, mod.api_name, i) for i in ids) if r]

    def product_duplicates(self, req: Request, mod: ModuleCatalog) -> Response:
        name = req.query.get("productName")
        if not name:
            raise invalid("productName", "missing", "productName is required")
        rows = [r for r in self.ctx.store.query(APP, "products", order="id")
                if validate.norm(r.data.get("productName")) == validate.norm(name)]
        self.ctx.stats.call(APP, "products", "search")
        if not rows:
            return json_response(204, None)
        return json_response(200, {"data": [self.render(mod, r) for r in rows]})

    def _matches(self, mod: ModuleCatalog, row: Row, param: str, value: str) -> bool:
        d = row.data
        if param == "_all":
            return any(isinstance(v, str) and _wild(v, value, contains=True) for v in d.values())
        if param == "fullName":
            return _wild(display_name(mod.api_name, d), value)
        if param == "accountName":
            acc = self.ctx.store.get(APP, "accounts", d.get("accountId") or "") if mod.api_name != "accounts" else row
            return acc is not None and _wild(acc.data.get("accountName"), value)
        if param == "productName" and mod.api_name == "tickets":
            prod = self.ctx.store.get(APP, "products", d.get("productId") or "")
            return prod is not None and _wild(prod.data.get("productName"), value)
        if param in ("phone", "mobile"):
            want = re.sub(r"\D", "", value)
            return bool(want) and any(re.sub(r"\D", "", str(d.get(k) or "")) == want for k in ("phone", "mobile"))
        return _wild(d.get(param), value)

    # writes -----------------------------------------------------------------------------------
    def _body(self, req: Request) -> dict[str, Any]:
        try:
            body = req.json()
        except ValueError:
            raise derr(422, "INVALID_DATA", "The request body is not valid JSON.") from None
        if body is None or body == {}:
            raise derr(422, "EMPTY_PAYLOAD", "The payload is empty.")
        if not isinstance(body, dict):
            raise derr(422, "INVALID_DATA", "The request body must be a JSON object.")
        return body

    def _values(self, mod: ModuleCatalog, body: dict[str, Any], *, creating: bool,
                existing: Row | None) -> dict[str, Any]:
        flat = {k: v for k, v in body.items() if k not in ("cf", "customFields")}
        cf = body.get("cf")
        if cf is not None:
            if not isinstance(cf, dict):
                raise invalid("cf", "invalid", "cf must be an object of custom fields")
            for k, v in cf.items():
                if mod.field(f"cf.{k}") is None:
                    raise invalid(f"cf/{k}", "invalid", f"unknown custom field {k}")
                flat[f"cf.{k}"] = v
        contact_obj = None
        if mod.api_name == "tickets" and creating and "contact" in flat and not flat.get("contactId"):
            contact_obj = flat.pop("contact")
            if not isinstance(contact_obj, dict) or not (contact_obj.get("email") or contact_obj.get("lastName")):
                raise invalid("contact", "invalid", "contact needs email or lastName")
            flat["contactId"] = "pending"
        users = {u.id for u in self.ctx.users(APP)}

        def exists(target: str | None, rid: str) -> bool:
            if rid == "pending" and contact_obj is not None:
                return True
            if target:
                return self.ctx.store.get(APP, target, rid) is not None
            return self.ctx.store.find_any_module(APP, rid) is not None

        clean, e = validate.check(mod, flat, creating=creating, exists=exists, user_ids=users)
        if e:
            name = e.field.replace("cf.", "cf/")
            raise invalid(name, e.error_type, e.message)
        for k, v in list(clean.items()):
            f = mod.field(k)
            if f is not None and f.kind == "lookup" and isinstance(v, dict):
                clean[k] = v["id"]
        if mod.api_name == "products":
            deps = body.get("departmentIds", None if creating else (existing.data.get("departmentIds")
                                                                     if existing else None))
            if creating and (not isinstance(deps, list) or not deps):
                raise invalid("departmentIds", "missing", "departmentIds is required for a product")
            if deps is not None:
                known = {r.id for r in self.ctx.store.query(APP, "departments")}
                if not isinstance(deps, list) or any(str(d) not in known for d in deps):
                    raise invalid("departmentIds", "invalid", "unknown department id")
                clean["departmentIds"] = [str(d) for d in deps]
        if contact_obj is not None:
            clean["contactId"] = self._contact_for_ticket(contact_obj)
        rej = self.ctx.rejection(APP, mod.api_name, {**(existing.data if existing else {}), **flat})
        if rej:
            self.ctx.stats.fault("rejected")
            raise invalid(rej.field or "id", "invalid", rej.message, code=rej.code)
        return clean

    def _contact_for_ticket(self, c: dict[str, Any]) -> str:
        email = c.get("email")
        if email:
            for r in self.ctx.store.query(APP, "contacts", order="id"):
                if validate.norm(r.data.get("email")) == validate.norm(email):
                    return r.id
        mod = self.module("contacts")
        values = {k: c[k] for k in ("firstName", "lastName", "email", "phone", "mobile") if c.get(k)}
        values.setdefault("lastName", str(email).split("@")[0] if email else "Unknown")
        clean, e = validate.check(mod, values, creating=True, exists=lambda t, i: True,
                                  user_ids={u.id for u in self.ctx.users(APP)})
        if e:
            raise invalid(f"contact/{e.field}", e.error_type, e.message)
        row = self._insert(mod, clean)
        return row.id

    def _insert(self, mod: ModuleCatalog, clean: dict[str, Any]) -> Row:
        data = dict(clean)
        data.setdefault("ownerId", self.ctx.users(APP)[0].id)
        if mod.api_name == "tickets":
            data["ticketNumber"] = str(100 + self.ctx.store.next_number("ticket"))
            data.setdefault("status", "Open")
        row = self.ctx.store.insert(APP, mod.api_name, self.ctx.store.new_id(APP), data, self.ctx.now_db())
        index_keys(self.ctx, mod, row)
        self.ctx.stats.wrote(APP, mod.api_name, "create", 1)
        return row

    def create(self, req: Request, mod: ModuleCatalog) -> Response:
        body = self._body(req)
        self.ctx.stats.call(APP, mod.api_name, "create")
        with self.ctx.store.transaction():
            clean = self._values(mod, body, creating=True, existing=None)
            row = self._insert(mod, clean)
        return json_response(200, self.render(mod, row))

    def update(self, req: Request, mod: ModuleCatalog, rid: str) -> Response:
        body = self._body(req)
        self.ctx.stats.call(APP, mod.api_name, "update")
        with self.ctx.store.transaction():
            row = self.ctx.store.get(APP, mod.api_name, rid)
            if row is None:
                raise derr(404, "URL_NOT_FOUND", "The URL you requested could not be found on our server.")
            clean = self._values(mod, body, creating=False, existing=row)
            row = self.ctx.store.update(row, {**row.data, **clean}, self.ctx.now_db())
            index_keys(self.ctx, mod, row)
        self.ctx.stats.wrote(APP, mod.api_name, "update", 1)
        return json_response(200, self.render(mod, row))

    def trash(self, req: Request, mod: ModuleCatalog) -> Response:
        body = self._body(req)
        key = TRASH_KEYS[mod.api_name]
        ids = body.get(key)
        if not isinstance(ids, list) or not ids:
            raise invalid(key, "missing", f"{key} must be a non-empty array of ids")
        if len(ids) > MAX_TRASH:
            raise invalid(key, "invalid", f"at most {MAX_TRASH} ids per call")
        self.ctx.stats.call(APP, mod.api_name, "delete")
        with self.ctx.store.transaction():
            rows = []
            for i in ids:
                row = self.ctx.store.get(APP, mod.api_name, str(i))
                if row is None:
                    raise invalid(key, "invalid", f"{i} is not an existing {mod.api_name[:-1]} id")
                rej = self.ctx.rejection(APP, mod.api_name, {"id": str(i)})
                if rej:
                    self.ctx.stats.fault("rejected")
                    raise invalid(key, "invalid", rej.message, code=rej.code)
                rows.append(row)
            now = self.ctx.now_db()
            for row in rows:
                self.ctx.store.mark_deleted(row, now, "recycle", self.ctx.users(APP)[0].id)
        self.ctx.stats.wrote(APP, mod.api_name, "delete", len(rows))
        return json_response(204, None)


def _wild(have: Any, want: str, *, contains: bool = False) -> bool:
    """Desk search: case-insensitive; ``x*`` is a prefix match, ``${empty}`` matches empty values."""
    if want == "${empty}":
        return have in (None, "")
    if have is None:
        return False
    h = str(have).strip().casefold()
    w = want.strip().casefold()
    if w.endswith("*"):
        return h.startswith(w[:-1])
    return w in h if contains else h == w
