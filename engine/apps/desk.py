"""Zoho Desk (``/api/v1``) client: contacts, accounts, products, tickets.

Facts it relies on (``zoho-apis.md`` §3):

- every call carries the ``orgId`` header;
- lists page with ``from``/``limit`` (≤ 100) and carry no paging metadata: read until a page has fewer
  than ``limit`` items or the answer is 204. Pages are de-duplicated by id, so a server whose ``from``
  is 1-based instead of 0-based loses nothing;
- **list_changed** with a cursor uses ``GET /{module}/search?modifiedTimeRange=since,until&sortBy=
  modifiedTime``; search reaches ``from`` ≤ 999, so past 1,000 hits the window restarts at the last
  modified time read. Products have no search endpoint: their list is read whole (``sortBy=modifiedTime``)
  and filtered here. ``ListFilter.departments`` (names) are resolved to ids with ``GET /departments``;
  products outside them are skipped, and products created by this client get those ``departmentIds``
  (Desk requires them) unless the record brings its own;
- writes are one record per call (Desk has no batch create or update): ``POST /{module}`` and
  ``PATCH /{module}/{id}``, run concurrently up to the connection's limit; deletes move records to the
  trash by 100 (``POST /{module}/moveToTrash``); **list_deleted** reads ``GET /recycleBin?module=``;
- custom fields travel as ``cf.cf_name`` keys on this side of the seam and as the ``cf`` object on
  the wire;
- failures: ``{"errorCode", "message", "errors":[{"fieldName":"/lastName","errorType":"missing"}]}``;
  per-record results take ``errorType`` missing / duplicate as MANDATORY_NOT_FOUND / DUPLICATE_DATA
  (the Zoho codes the sync engine knows) and keep Desk's ``errorCode`` in ``details``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from engine.apps._common import (ClientBase, as_utc, batch_failed, dedupe_ids, desk_time, make_record,
                                 parse_time)
from engine.apps.base import DeletedRecord, ListFilter, Record, WriteResult
from engine.apps.http import HttpLayer, chunks, parallel
from engine.errors import ProtocolError, TerminalAppError, TransientAppError, did_you_mean

log = logging.getLogger("engine.apps.desk")

LIMIT = 100
SEARCH_FROM_MAX = 999
TRASH_BATCH = 100
MODULES = ("contacts", "accounts", "products", "tickets")
SEARCHABLE = {  # module -> fields its /search endpoint filters by (zoho-apis.md §3)
    "contacts": ("email", "phone", "firstName", "lastName", "fullName", "accountName"),
    "accounts": ("accountName", "email", "phone", "website"),
    "tickets": ("ticketNumber", "email", "phone", "subject", "departmentId", "status", "priority",
                "productName", "contactName", "accountName"),
}
ASSOCIATES = {  # seed 001: what blocks delete-if-no-associates, as far as the API lists them
    "contacts": ("tickets",),
    "accounts": ("tickets", "contacts"),
}
ERROR_TYPES = {"missing": "MANDATORY_NOT_FOUND", "duplicate": "DUPLICATE_DATA", "invalid": "INVALID_DATA"}


class DeskClient(ClientBase):
    """``AppClient`` for Zoho Desk."""

    app = "zoho_desk"

    def __init__(self, http: HttpLayer, *, org_id: str, api_path: str = "/api/v1"):
        super().__init__(http)
        self.org_id = str(org_id)
        self.base = http.hosts.desk + api_path
        self._headers = {"orgId": self.org_id}
        self._departments: dict[str, str] | None = None
        self._product_departments: list[str] | None = None
        self._lock = threading.Lock()

    # -- reading -------------------------------------------------------------------------------------

    def list_changed(self, module: str, since: datetime | None, *, fields: Sequence[str] = (),
                     filter: ListFilter | None = None) -> Iterator[list[Record]]:
        self._check(module)
        since = as_utc(since)
        floor = as_utc(filter.created_after) if filter is not None else None
        departments: set[str] | None = None
        if filter is not None and filter.departments:
            ids = self.department_ids(filter.departments)
            departments = set(ids)
            if module == "products":
                self._product_departments = ids
        if since is not None and module in SEARCHABLE:
            pages = self._search_window(module, since)
        else:
            pages = self._list(module, f"{self.base}/{module}", {"sortBy": "modifiedTime"}, "list",
                               first=_first(module))
        for page in pages:
            records = [self._record(module, "list", raw) for raw in page]
            records = [r for r in records if (since is None or r.modified >= since)
                       and (floor is None or r.created is None or r.created >= floor)
                       and (departments is None or _in_departments(r, departments))]
            if records:
                yield records

    def list_deleted(self, module: str, since: datetime | None) -> Iterator[list[DeletedRecord]]:
        self._check(module)
        since = as_utc(since)
        for page in self._list(module, f"{self.base}/recycleBin", {"module": module}, "deleted"):
            out = []
            for item in page:
                if not isinstance(item, dict) or not item.get("id"):
                    raise self.protocol(module, "deleted", "a recycle-bin item without an id")
                item_module = item.get("module") or item.get("moduleName")
                if isinstance(item_module, str) and item_module.lower() not in (module, module.rstrip("s")):
                    continue
                when = parse_time(item.get("deletedTime") or item.get("deleted_time")
                                  or item.get("modifiedTime"))
                if when is None:
                    raise self.protocol(module, "deleted", f"recycle-bin item {item['id']} has no deletedTime")
                if since is None or when >= since:
                    out.append(DeletedRecord(id=str(item.get("entityId") or item["id"]), deleted_at=when))
            if out:
                yield out

    def get_many(self, module: str, ids: Sequence[str]) -> list[Record]:
        self._check(module)

        def get(rid: str) -> Record | None:
            response = self.http.request("GET", f"{self.base}/{module}/{rid}", module=module, op="get",
                                         headers=self._headers)
            if response.status_code in (204, 404):
                return None
            return self._record(module, "get", self._body(response, module, "get"))

        return [r for r in parallel(get, dedupe_ids(ids), self.http.max_concurrency) if r is not None]

    def search(self, module: str, field: str, value: Any) -> list[Record]:
        self._check(module)
        wanted = _norm(value)
        if module == "products" and field == "productName":
            pages = self._list(module, f"{self.base}/products/searchDuplicates", {"productName": value},
                               "search", first=0)
        elif field in SEARCHABLE.get(module, ()):
            pages = self._list(module, f"{self.base}/{module}/search", {field: value}, "search",
                               first=0, max_from=SEARCH_FROM_MAX)
        else:  # no server-side filter for this field: read the module and compare here
            pages = self._list(module, f"{self.base}/{module}", {}, "search", first=_first(module))
        out: dict[str, Record] = {}
        for page in pages:
            for raw in page:
                rec = self._record(module, "search", raw)
                if _norm(rec.values.get(field)) == wanted:
                    out[rec.id] = rec
        return list(out.values())

    def fields(self, module: str) -> list[dict[str, Any]]:
        """``GET /organizationFields?module=`` in the catalog's shape (the catalog when not served)."""
        self._check(module)
        response = self.http.request("GET", f"{self.base}/organizationFields", module=module, op="fields",
                                     params={"module": module}, headers=self._headers)
        if response.status_code == 404:
            from engine.catalog import catalog

            mod = catalog(self.app).module(module)
            return [{"api_name": f.api_name, "label": f.label, "type": f.type, "length": f.length,
                     "mandatory": f.mandatory, "read_only": f.read_only, "unique": f.unique,
                     "encrypted": f.encrypted, "picklist": list(f.picklist), "lookup": f.lookup}
                    for f in (mod.fields if mod else ())]
        body = self._body(response, module, "fields")
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise self.protocol(module, "fields", "the answer has no data[] list")
        return [_desk_field(f) for f in data if isinstance(f, dict)]

    def count_associates(self, module: str, record_id: str) -> int:
        """Tickets of a contact; tickets and contacts of an account (seed 001); products: none listed."""
        self._check(module)
        total = 0
        for child in ASSOCIATES.get(module, ()):
            url = f"{self.base}/{module}/{record_id}/{child}"
            for page in self._list(module, url, {}, "associates"):
                total += len(page)
        return total

    def users(self) -> list[dict[str, Any]]:
        out = []
        for page in self._list("agents", f"{self.base}/agents", {}, "list"):
            for a in page:
                if isinstance(a, dict) and a.get("id"):
                    name = a.get("name") or " ".join(str(x) for x in (a.get("firstName"), a.get("lastName")) if x)
                    out.append({"id": str(a["id"]), "email": a.get("emailId") or a.get("email") or "",
                                "name": name})
        return out

    def department_ids(self, names: Sequence[str]) -> list[str]:
        """Department names (or ids) → ids, via ``GET /departments`` (cached per client)."""
        with self._lock:
            if self._departments is None:
                found: dict[str, str] = {}
                for page in self._list("departments", f"{self.base}/departments", {}, "list"):
                    for d in page:
                        if isinstance(d, dict) and d.get("id"):
                            found[str(d.get("name") or d["id"])] = str(d["id"])
                self._departments = found
        ids = []
        known = self._departments
        for name in names:
            if name in known:
                ids.append(known[name])
            elif name in known.values():
                ids.append(name)
            else:
                raise TerminalAppError(f"{self.http.where('products', 'list')}: no department named {name!r}"
                                       f"{did_you_mean(name, list(known))}", app=self.app, code="INVALID_DEPARTMENT")
        return ids

    # -- writing -------------------------------------------------------------------------------------

    def create_many(self, module: str, records: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        self._check(module)
        defaults: list[str] | None = None
        if module == "products" and any("departmentIds" not in r for r in records):
            defaults = self._product_departments or list(self.department_ids_all())

        def create(values: Mapping[str, Any]) -> WriteResult:
            body = to_wire(values)
            if module == "products" and "departmentIds" not in body:
                body["departmentIds"] = defaults
            return self._one("POST", f"{self.base}/{module}", module, "create", body, None)

        return parallel(create, list(records), self.http.max_concurrency)

    def update_many(self, module: str, updates: Sequence[tuple[str, Mapping[str, Any]]]) -> list[WriteResult]:
        self._check(module)

        def update(item: tuple[str, Mapping[str, Any]]) -> WriteResult:
            rid, values = item
            return self._one("PATCH", f"{self.base}/{module}/{rid}", module, "update", to_wire(values), str(rid))

        return parallel(update, list(updates), self.http.max_concurrency)

    def delete_many(self, module: str, ids: Sequence[str]) -> list[WriteResult]:
        self._check(module)
        key = module.rstrip("s") + "Ids"  # contactIds, accountIds, productIds, ticketIds
        results: list[WriteResult] = []
        for _, batch in chunks([str(i) for i in ids], TRASH_BATCH):
            try:
                response = self.http.request("POST", f"{self.base}/{module}/moveToTrash", module=module,
                                             op="delete", json={key: list(batch)}, headers=self._headers)
            except TransientAppError as exc:
                results.extend(batch_failed(exc, len(batch)))
                continue
            if response.status_code in (200, 204):
                results.extend(WriteResult(ok=True, id=rid, code="SUCCESS") for rid in batch)
            elif response.status_code in (400, 404, 422) and len(batch) > 1:
                # moveToTrash is all-or-nothing: one bad id fails the call; isolate it record by record
                results.extend(r for rid in batch for r in self.delete_many(module, [rid]))
            elif response.status_code in (400, 404, 422):
                err = self.http.error(response, module, "delete")
                errors = err.details.get("errors") if isinstance(err.details.get("errors"), list) else []
                first = errors[0] if errors and isinstance(errors[0], dict) else {}
                message = str(first.get("errorMessage") or "") or str(err)
                results.append(WriteResult(ok=False, id=batch[0], code=err.code, message=message,
                                           details=err.details))
            else:
                raise self.http.error(response, module, "delete")
        return results

    def department_ids_all(self) -> list[str]:
        self.department_ids(())
        return list((self._departments or {}).values())

    # -- internals -----------------------------------------------------------------------------------

    def _one(self, method: str, url: str, module: str, op: str, body: dict[str, Any],
             rid: str | None) -> WriteResult:
        try:
            response = self.http.request(method, url, module=module, op=op, json=body, headers=self._headers)
        except TransientAppError as exc:
            return batch_failed(exc, 1)[0]
        status = response.status_code
        if status in (200, 201):
            raw = self._body(response, module, op)
            rec = self._record(module, op, raw)
            return WriteResult(ok=True, id=rec.id, code="SUCCESS", modified=rec.modified)
        if status in (400, 404, 409, 422):
            err = self.http.error(response, module, op)
            errors = err.details.get("errors") if isinstance(err.details.get("errors"), list) else []
            first = errors[0] if errors and isinstance(errors[0], dict) else {}
            field = str(first.get("fieldName") or "").lstrip("/").replace("/", ".") or None
            code = ERROR_TYPES.get(str(first.get("errorType") or ""), err.code)
            message = str(first.get("errorMessage") or "") or str(err)
            return WriteResult(ok=False, id=rid, code=code, message=message, field=field,
                               details={"errorCode": err.code, **err.details})
        raise self.http.error(response, module, op)

    def _list(self, module: str, url: str, params: Mapping[str, Any], op: str, *, first: int = 1,
              max_from: int | None = None) -> Iterator[list[Any]]:
        """Raw pages of ``data[]`` with from/limit until a short page or 204, de-duplicated by id.

        ``first`` is the index of the first record: 0 for products and search, 1 elsewhere (Desk's
        own defaults)."""
        start = first
        seen: set[str] = set()
        while True:
            if max_from is not None and start > max_from:
                return
            query = {**params, "from": start, "limit": LIMIT}
            response = self.http.request("GET", url, module=module, op=op, params=query, headers=self._headers)
            if response.status_code == 204:
                return
            body = self._body(response, module, op)
            items = body.get("data") if isinstance(body, dict) else body
            if not isinstance(items, list):
                raise self.protocol(module, op, "the answer has no data[] list")
            fresh = [i for i in items if not (isinstance(i, dict) and str(i.get("id")) in seen)]
            seen.update(str(i.get("id")) for i in items if isinstance(i, dict))
            if fresh:
                yield fresh
            if len(items) < LIMIT or not fresh:  # a short page, or an endpoint that ignores paging
                return
            start += len(items)

    def _search_window(self, module: str, since: datetime) -> Iterator[list[Any]]:
        """``modifiedTimeRange`` search in windows of ≤ 1,000 hits, oldest first."""
        seen: set[str] = set()
        start = since
        # a generous upper bound: the app's clock (a sandbox's may be injected) can run ahead of ours
        until = max(datetime.now(timezone.utc), since) + timedelta(days=3650)
        while True:
            params = {"modifiedTimeRange": f"{desk_time(start)},{desk_time(until)}", "sortBy": "modifiedTime"}
            read = 0
            last: datetime | None = None
            for page in self._list(module, f"{self.base}/{module}/search", params, "list", first=0,
                                   max_from=SEARCH_FROM_MAX):
                read += len(page)
                fresh = [i for i in page if str(i.get("id")) not in seen]
                seen.update(str(i.get("id")) for i in page)
                for i in page:
                    t = parse_time(i.get("modifiedTime"))
                    if t is not None and (last is None or t > last):
                        last = t
                if fresh:
                    yield fresh
            if read < SEARCH_FROM_MAX + 1:
                return
            if last is None or last <= start:
                raise ProtocolError(self.http.redact(
                    f"{self.http.where(module, 'list')}: more than 1,000 records share one modifiedTime; "
                    f"run a full sync (--full) to read them"), app=self.app, code="SEARCH_WINDOW")
            start = last

    def _body(self, response: httpx.Response, module: str, op: str) -> Any:
        if response.status_code not in (200, 201):
            raise self.http.error(response, module, op)
        body = self.http.json(response, module, op)
        if not isinstance(body, (dict, list)):
            raise self.protocol(module, op, f"the answer is {type(body).__name__}")
        return body

    def _record(self, module: str, op: str, raw: Any) -> Record:
        if not isinstance(raw, dict) or not raw.get("id"):
            raise self.protocol(module, op, "a record without an id")
        modified = parse_time(raw.get("modifiedTime"))
        if modified is None:
            raise self.protocol(module, op, f"record {raw['id']} has no modifiedTime")
        return make_record(str(raw["id"]), from_wire(raw), modified, parse_time(raw.get("createdTime")))

    def _check(self, module: str) -> None:
        if module not in MODULES:
            raise TerminalAppError(f"zoho_desk connection {self.connection!r}: unknown module {module!r}"
                                   f"{did_you_mean(module, MODULES)}", app=self.app, code="INVALID_MODULE")


def from_wire(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A Desk record with its ``cf`` object flattened to ``cf.cf_name`` keys."""
    out = {k: v for k, v in raw.items() if k not in ("cf", "customFields")}
    cf = raw.get("cf")
    if isinstance(cf, dict):
        for name, value in cf.items():
            out[f"cf.{name}"] = value
    return out


def to_wire(values: Mapping[str, Any]) -> dict[str, Any]:
    """``cf.cf_name`` keys gathered into the ``cf`` object Desk expects."""
    out: dict[str, Any] = {}
    cf: dict[str, Any] = {}
    for key, value in values.items():
        if key.startswith("cf."):
            cf[key[3:]] = value
        elif key == "cf" and isinstance(value, dict):
            cf.update(value)
        else:
            out[key] = value
    if cf:
        out["cf"] = cf
    return out


def _first(module: str) -> int:
    """Index of the first record in a list: products count from 0, the other modules from 1."""
    return 0 if module == "products" else 1


def _in_departments(rec: Record, departments: set[str]) -> bool:
    ids = rec.values.get("departmentIds")
    if isinstance(ids, list):
        return any(str(i) in departments for i in ids)
    one = rec.values.get("departmentId")
    return one is None or str(one) in departments


def _norm(value: Any) -> str:
    return str(value).strip().lower() if value is not None else ""


def _desk_field(f: Mapping[str, Any]) -> dict[str, Any]:
    allowed = f.get("allowedValues") or []
    return {
        "api_name": f.get("apiName") or f.get("api_name"),
        "label": f.get("displayLabel") or f.get("apiName"),
        "type": f.get("type") or "Text",
        "length": f.get("maxLength"),
        "mandatory": bool(f.get("isMandatory")),
        "read_only": bool(f.get("isReadOnly")),
        "unique": bool(f.get("isUnique")),
        "encrypted": bool(f.get("isEncryptedField")),
        "picklist": [str(v.get("value")) if isinstance(v, dict) else str(v) for v in allowed],
        "lookup": None,
        "custom": bool(f.get("isCustomField")),
    }
