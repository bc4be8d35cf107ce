"""Bigin (``/bigin/v2``) and Zoho CRM (``/crm/v8`` by default) records API client.

Both apps share one API shape (``zoho-apis.md`` §1–2), so one class serves both:

- **list_changed**, in parallel (the default when the connection allows more than one request at a
  time): COQL ``POST /coql {"select_query": "select … from M where … order by id asc limit 200 offset
  k"}``, 200 records per call; page 0 first, and when it says ``more_records``, the count (CRM ``GET
  /{M}/actions/count``, Bigin ``select COUNT(id)``) and every other page at once, bounded by the
  connection's concurrency; past 10,000 records (the documented OFFSET reach) the next chunk is
  ``id > <last id of the chunk>``, whose last page is asked first. Calls: ⌈N/200⌉ + 1.
  Lookups and owners, which COQL answers as ``{"id"}``, get their name (and an owner's e-mail) joined
  in (``Account_Name.Account_Name``, ``Owner.full_name``, ``Owner.email``): the list's shape.
- **list_changed**, serially (one request at a time, a ``view``, or a mapped field COQL cannot answer
  in the list's shape: multi-module lookups, reminders, recurrence, fields the catalog lacks): ``GET /{M}?fields=…&sort_by=Modified_Time&sort_order=asc&per_page=200``
  with ``If-Modified-Since`` when a cursor is given; ``page`` 1–10, then ``page_token``
  (``info.next_page_token``) past 2,000 records; 204 / 304 end the read. ``fields`` defaults to the
  catalog's fields (≤ 50).
- **writes**: batches of ≤ 100 (``POST``/``PUT /{M}``, ``DELETE /{M}?ids=``), one ``WriteResult`` per
  input in input order, parsed from ``data[]`` (201 / 207 / 400 alike). A batch whose request fails
  transiently after the HTTP layer's retries yields ``WriteResult(ok=False, transient=True)`` for
  each of its records; a terminal request-level error (bad module, auth) raises.
- **get_many**: ``GET /{M}?ids=…`` by 100; **search**: ``GET /{M}/search?criteria=(F:equals:V)``;
  **list_deleted**: ``GET /{M}/deleted?type=all``; **fields**: ``GET /settings/fields?module=M``
  normalised to the catalog shape; **count_associates**: the record's notes
  (``GET /{M}/{id}/Notes``); **users**: ``GET /users?type=AllUsers``.
"""

from __future__ import annotations

import collections
import itertools
import logging
import operator
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from engine.apps._common import (_UTC, ClientBase, EPOCH, _fromisoformat, as_utc, batch_failed, dedupe_ids,
                                 make_record, make_result, parse_time, zoho_time)
from engine.apps.base import DeletedRecord, ListFilter, Record, WriteResult
from engine.apps.http import HttpLayer, chunks
from engine.errors import TerminalAppError, TransientAppError

log = logging.getLogger("engine.apps.zoho")

PER_PAGE = 200
PAGE_LIMIT = 2000  # records reachable with page/per_page alone
BATCH = 100
MAX_FIELDS = 50
TRANSIENT_CODES = frozenset({"TOO_MANY_REQUESTS", "INTERNAL_ERROR", "RECORD_LOCKED"})
ALWAYS_FIELDS = ("Modified_Time", "Created_Time")
# field types COQL answers as the list does (lookups and owners come back as {"id"} only; multi-select
# lookups, subforms and uploads cannot be selected: those modules read the list)
COQL_TYPES = frozenset({"text", "textarea", "email", "phone", "website", "integer", "bigint", "long", "double",
                        "currency", "percent", "decimal", "boolean", "date", "datetime", "picklist",
                        "multiselectpicklist", "autonumber"})
COQL_SYSTEM = frozenset({"id", "Modified_Time", "Created_Time", "Full_Name"})
COQL_NOT_JOINED = frozenset({"What_Id", "Who_Id", "Parent_Id"})  # multi-module lookups: the list's shape differs
# the field a lookup's name is (the list answers lookups as {"name", "id"})
LOOKUP_DISPLAY = {"Contacts": "Full_Name", "Leads": "Full_Name", "Accounts": "Account_Name", "Deals": "Deal_Name",
                  "Pipelines": "Deal_Name", "Products": "Product_Name", "Vendors": "Vendor_Name",
                  "Campaigns": "Campaign_Name", "Price_Books": "Price_Book_Name", "Cases": "Subject",
                  "Tasks": "Subject", "Calls": "Subject", "Events": "Event_Title", "Quotes": "Subject",
                  "Sales_Orders": "Subject", "Purchase_Orders": "Subject", "Invoices": "Subject"}


class ZohoClient(ClientBase):
    """``AppClient`` for Bigin and Zoho CRM."""

    def __init__(self, http: HttpLayer, *, app: str = "bigin", api_path: str | None = None):
        super().__init__(http)
        if app not in ("bigin", "zoho_crm"):
            raise ValueError(f"ZohoClient serves bigin and zoho_crm, not {app!r}")
        self.app = app
        self.base = http.hosts.api + (api_path or ("/bigin/v2" if app == "bigin" else "/crm/v8"))
        self._field_cache: dict[str, list[dict[str, Any]]] = {}
        self._cvids: dict[tuple[str, str], str] = {}
        # module -> True once a list_changed read of it ran in parallel (pages not in Modified_Time order;
        # a record deleted meanwhile may shift an offset page: the engine re-reads that window). Set,
        # never cleared here: the reader pops it before it reads.
        self.last_read_parallel: dict[str, bool] = {}
        # modules whose record count the app refused (a 4xx): their reads go on a page at a time
        self.count_refused: set[str] = set()
        self._readers: Any = None  # the parallel reads' threads, started by the first, kept until close()
        self._readers_lock = threading.Lock()

    def _read_pool(self) -> Any:
        """The threads parallel reads run their pages on: as many as the connection allows requests at
        once, started with the first read and kept for the client's life (starting ten threads per
        module read cost more CPU than its pages' hand-offs)."""
        with self._readers_lock:
            if self._readers is None:
                from concurrent.futures import ThreadPoolExecutor

                self._readers = ThreadPoolExecutor(max_workers=self.http.max_concurrency,
                                                   thread_name_prefix="syncform-coql")
            return self._readers

    def close(self) -> None:
        with self._readers_lock:
            pool, self._readers = self._readers, None
        if pool is not None:
            # pages already asked for still run (a read in progress gets its answers or their errors, and
            # never waits for a page that was dropped); the threads end once the queue is empty
            pool.shutdown(wait=False)
        super().close()

    # -- reading -------------------------------------------------------------------------------------

    def list_changed(self, module: str, since: datetime | None, *, fields: Sequence[str] = (),
                     filter: ListFilter | None = None) -> Iterator[list[Record]]:
        """Pages of the records changed since ``since`` (all when None).

        In parallel (``_ParallelRead``): COQL page 0 (``order by id``, 200 per call); when it says
        ``more_records``, the count and every other page (offsets up to 10,000, then the next id chunk),
        up to the connection's concurrency at once; a full read asks the count with page 0. Pages come
        in the order they arrive, not by Modified_Time, and ``last_read_parallel[module]`` becomes True
        once a read fans out. A view (cvid) read, a module mapping a field COQL cannot answer in the
        list's shape (``coql_columns``) or a connection limited to one request at a time reads the
        list's pages one after the other, as before."""
        since = as_utc(since)
        names = self._list_fields(module, fields)
        floor = as_utc(filter.created_after) if filter is not None else None
        view = filter.view if filter is not None else None
        plan = self.coql_columns(module, names) if not view and self.http.max_concurrency > 1 else None
        if plan is not None:
            yield from _ParallelRead(self, module, since, plan, floor).pages()
            return
        params: dict[str, Any] = {"fields": ",".join(names),
                                  "sort_by": "Modified_Time", "sort_order": "asc", "per_page": PER_PAGE}
        if view:
            params["cvid"] = self._cvid(module, view)
        headers = {"If-Modified-Since": zoho_time(since)} if since is not None else {}
        for page in self._pages(module, "list", f"{self.base}/{module}", params, headers):
            records = self._records(module, "list", page)
            if since is not None or floor is not None:
                records = [r for r in records if (since is None or r.modified >= since)
                           and (floor is None or r.created is None or r.created >= floor)]
            if records:
                yield records

    def coql_columns(self, module: str, names: Sequence[str]) -> "_Columns | None":
        """The COQL select column that answers ``names`` in the list's shape, or None when COQL cannot
        (a field type it cannot select or answers otherwise, a lookup to a module of unknown display
        field, more than 50 columns): lookups come back as ``{"id"}``, so their name is joined in
        (``Account_Name.Account_Name``), owners' name and e-mail too (``Owner.full_name``, ``Owner.email``)."""
        try:
            from engine.catalog import catalog

            mod = catalog(self.app).module(module)
        except (KeyError, OSError, ValueError):
            return None
        if mod is None:
            return None
        columns: list[str] = []
        joins: list[tuple[str, str, str | None]] = []  # (field, name column, e-mail column)
        for name in names:
            if name == "id":
                continue
            columns.append(name)
            if name in COQL_SYSTEM:
                continue
            f = mod.field(name)
            if f is None or name in COQL_NOT_JOINED:
                return None
            if f.type in COQL_TYPES:
                continue
            if f.type == "ownerlookup":
                joins.append((name, f"{name}.full_name", f"{name}.email"))
            elif f.type == "lookup" and f.lookup in LOOKUP_DISPLAY:
                joins.append((name, f"{name}.{LOOKUP_DISPLAY[f.lookup]}", None))
            else:
                return None
        for _, name_col, email_col in joins:
            columns.extend(c for c in (name_col, email_col) if c)
        if len(columns) > MAX_FIELDS:
            return None
        return _Columns(tuple(columns), tuple(joins))

    def list_deleted(self, module: str, since: datetime | None) -> Iterator[list[DeletedRecord]]:
        since = as_utc(since)
        headers = {"If-Modified-Since": zoho_time(since)} if since is not None else {}
        params = {"type": "all", "per_page": PER_PAGE}
        for page in self._pages(module, "deleted", f"{self.base}/{module}/deleted", params, headers):
            out = []
            for item in page:
                if not isinstance(item, dict) or "id" not in item:
                    raise self.protocol(module, "deleted", "a deleted item without an id")
                when = parse_time(item.get("deleted_time")) or EPOCH
                if since is None or when >= since:
                    out.append(DeletedRecord(id=str(item["id"]), deleted_at=when))
            if out:
                yield out

    def get_many(self, module: str, ids: Sequence[str]) -> list[Record]:
        wanted = dedupe_ids(ids)
        fields = ",".join(self._list_fields(module, ()))
        found: dict[str, Record] = {}
        for _, batch in chunks(wanted, BATCH):
            response = self.http.request("GET", f"{self.base}/{module}", module=module, op="get",
                                         params={"ids": ",".join(batch), "fields": fields})
            if response.status_code in (204, 304):
                continue
            body = self._body(response, module, "get", ok=(200,))
            for rec in self._records(module, "get", self._data(body, module, "get")):
                if rec.id in batch:
                    found[rec.id] = rec
        return [found[i] for i in wanted if i in found]

    def search(self, module: str, field: str, value: Any) -> list[Record]:
        criteria = f"({field}:equals:{_escape(value)})"
        params = {"criteria": criteria, "per_page": PER_PAGE}
        out: list[Record] = []
        for page in self._pages(module, "search", f"{self.base}/{module}/search", params, {}):
            out.extend(self._records(module, "search", page))
        return out

    def fields(self, module: str) -> list[dict[str, Any]]:
        if module not in self._field_cache:
            response = self.http.request("GET", f"{self.base}/settings/fields", module=module, op="fields",
                                         params={"module": module})
            body = self._body(response, module, "fields", ok=(200,))
            raw = body.get("fields") if isinstance(body, dict) else None
            if not isinstance(raw, list):
                raise self.protocol(module, "fields", "the answer has no fields[] list")
            self._field_cache[module] = [normalise_field(f) for f in raw if isinstance(f, dict)]
        return [dict(f) for f in self._field_cache[module]]

    def count_associates(self, module: str, record_id: str) -> int:
        """The record's notes (the related list the apps serve for every module)."""
        total = 0
        url = f"{self.base}/{module}/{record_id}/Notes"
        params = {"fields": "Note_Title,Note_Content", "per_page": PER_PAGE}
        for page in self._pages(module, "associates", url, params, {}):
            total += len(page)
        return total

    def users(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        params = {"type": "AllUsers", "per_page": PER_PAGE}
        for page in self._pages("users", "list", f"{self.base}/users", params, {}, key="users"):
            for u in page:
                if isinstance(u, dict) and "id" in u:
                    name = u.get("full_name") or " ".join(
                        str(x) for x in (u.get("first_name"), u.get("last_name")) if x) or u.get("name") or ""
                    out.append({"id": str(u["id"]), "email": u.get("email") or "", "name": name})
        return out

    # -- writing -------------------------------------------------------------------------------------

    def create_many(self, module: str, records: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        # the records go to the JSON encoder as they are (a Mapping that is not a dict is copied once)
        items = [r if r.__class__ is dict else dict(r) for r in records]
        return self._write("POST", module, "create", items, [None] * len(items))

    def update_many(self, module: str, updates: Sequence[tuple[str, Mapping[str, Any]]]) -> list[WriteResult]:
        items = [{**values, "id": str(rid)} for rid, values in updates]
        return self._write("PUT", module, "update", items, [str(rid) for rid, _ in updates])

    def delete_many(self, module: str, ids: Sequence[str]) -> list[WriteResult]:
        results: list[WriteResult] = []
        ids = [str(i) for i in ids]
        for _, batch in chunks(ids, BATCH):
            try:
                response = self.http.request("DELETE", f"{self.base}/{module}", module=module, op="delete",
                                             params={"ids": ",".join(batch), "wf_trigger": "false"})
            except TransientAppError as exc:
                results.extend(batch_failed(exc, len(batch)))
                continue
            results.extend(self._results(response, module, "delete", list(batch)))
        return results

    def _write(self, method: str, module: str, op: str, items: list[dict[str, Any]],
               ids: list[str | None]) -> list[WriteResult]:
        results: list[WriteResult] = []
        for offset, batch in chunks(items, BATCH):
            try:
                response = self.http.request(method, f"{self.base}/{module}", module=module, op=op,
                                             json={"data": batch, "trigger": []})
            except TransientAppError as exc:
                results.extend(batch_failed(exc, len(batch)))
                continue
            results.extend(self._results(response, module, op, ids[offset:offset + len(batch)]))
        return results

    def _results(self, response: httpx.Response, module: str, op: str,
                 ids: list[str | None]) -> list[WriteResult]:
        status = response.status_code
        body = self.http.json(response, module, op) if response.content else None
        data = body.get("data") if isinstance(body, dict) else None
        if status not in (200, 201, 202, 207) and not (status == 400 and isinstance(data, list)):
            raise self.http.error(response, module, op)
        if not isinstance(data, list) or len(data) != len(ids):
            raise self.protocol(module, op, f"expected data[] with {len(ids)} results, got "
                                f"{len(data) if isinstance(data, list) else type(data).__name__}")
        # one pass: a success whose id, code, message and time are what the apps send takes the short
        # way (a batch's records share their Modified_Time: it is parsed once); any other item, _result
        out: list[WriteResult] = []
        append = out.append
        new = make_result
        last_text: Any = None
        last_time: datetime | None = None
        for item, given in zip(data, ids):
            try:
                if item["status"] == "success":
                    details = item["details"]
                    rid, code, message, text = details["id"], item["code"], item["message"], details["Modified_Time"]
                    if details.__class__ is dict and rid.__class__ is str and code.__class__ is str \
                            and message.__class__ is str:
                        if text != last_text:
                            last_text, last_time = text, parse_time(text)
                        append(new(True, rid, code, message, None, False, last_time, details))
                        continue
            except (KeyError, TypeError, IndexError):
                pass  # not the usual shape: the general parser says what it is
            append(self._result(item, given, module, op))
        return out

    def _result(self, item: Any, given_id: str | None, module: str, op: str) -> WriteResult:
        if not isinstance(item, dict):
            raise self.protocol(module, op, "a data[] item is not an object")
        details = item.get("details")  # the usual success was read by _results already
        details = details if isinstance(details, dict) else {}
        code = str(item.get("code") or "")
        message = str(item.get("message") or "")
        if str(item.get("status", "")).lower() == "success":
            rid = details.get("id", given_id)
            return WriteResult(ok=True, id=str(rid) if rid is not None else None, code=code, message=message,
                               modified=parse_time(details.get("Modified_Time")), details=details)
        rid = details.get("id") if op != "create" else None
        field = details.get("api_name")
        return WriteResult(ok=False, id=given_id or (str(rid) if rid else None), code=code or "ERROR",
                           message=message, field=str(field) if field else None,
                           transient=code in TRANSIENT_CODES, details=details)

    # -- internals -----------------------------------------------------------------------------------

    def _pages(self, module: str, op: str, url: str, params: dict[str, Any], headers: Mapping[str, str],
               *, key: str = "data") -> Iterator[list[Any]]:
        """Raw ``data[]`` pages to the end: ``page`` up to 2,000 records, then ``page_token``."""
        page, token = 1, None
        per_page = int(params.get("per_page", PER_PAGE))
        while True:
            query = dict(params)
            if token is not None:
                query["page_token"] = token
            else:
                query["page"] = page
            response = self.http.request("GET", url, module=module, op=op, params=query, headers=headers)
            if response.status_code in (204, 304):
                return
            body = self._body(response, module, op, ok=(200,))
            items = body.get(key) if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise self.protocol(module, op, f"the answer has no {key}[] list")
            yield items
            info = body.get("info") if isinstance(body.get("info"), dict) else {}
            if not info.get("more_records") or not items:
                return
            page += 1
            if token is not None or page * per_page > PAGE_LIMIT:
                token = info.get("next_page_token")
                if not token:
                    raise self.protocol(module, op, f"more_records past {PAGE_LIMIT} records but no "
                                        "next_page_token")

    def _body(self, response: httpx.Response, module: str, op: str, *, ok: tuple[int, ...]) -> Any:
        if response.status_code not in ok:
            raise self.http.error(response, module, op)
        body = self.http.json(response, module, op)
        if not isinstance(body, dict):
            raise self.protocol(module, op, f"the answer is {type(body).__name__}, not an object")
        return body

    def _data(self, body: Any, module: str, op: str) -> list[Any]:
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise self.protocol(module, op, "the answer has no data[] list")
        return data

    def _records(self, module: str, op: str, page: list[Any]) -> list[Record]:
        """A page of decoded records as ``Record`` values; each record's dict, fresh from the JSON
        decoder and owned by nobody else, becomes its ``values`` without a copy.

        One pass for a page of well-formed records (a string id, the two times in the apps' own
        format, UTC offsets needing no conversion); anything else (a missing or odd id or time) sends
        the whole page through the general loop, which parses what it can and names what is wrong."""
        try:
            return _fast_records(page)
        except _SLOW:
            return self._records_general(module, op, page)

    def _records_general(self, module: str, op: str, page: list[Any]) -> list[Record]:
        out = []
        append = out.append
        for raw in page:
            if raw.__class__ is not dict:
                raise self.protocol(module, op, "a record without an id")
            rid = raw.get("id")
            modified = parse_time(raw.get("Modified_Time"))
            if rid.__class__ is not str or not rid or modified is None:
                append(self._record(module, op, raw))  # the slow path names what is wrong
                continue
            append(Record(rid, raw, modified, parse_time(raw.get("Created_Time"))))
        return out

    def _record(self, module: str, op: str, raw: Any) -> Record:
        if not isinstance(raw, dict) or raw.get("id") in (None, ""):
            raise self.protocol(module, op, "a record without an id")
        modified = parse_time(raw.get("Modified_Time"))
        if modified is None:
            raise self.protocol(module, op, f"record {raw['id']} has no Modified_Time")
        return Record(id=str(raw["id"]), values=raw, modified=modified,
                      created=parse_time(raw.get("Created_Time")))

    def _list_fields(self, module: str, fields: Sequence[str]) -> list[str]:
        names = [f for f in fields if f and f != "id"]
        if not names:
            names = self._default_fields(module)
        names = list(dict.fromkeys([*ALWAYS_FIELDS, *names]))
        if len(names) > MAX_FIELDS:
            if fields:
                raise TerminalAppError(
                    f"{self.http.where(module, 'list')}: {len(names)} fields requested, the API takes at most "
                    f"{MAX_FIELDS} per call; map fewer fields", app=self.app, code="LIMIT_EXCEEDED")
            log.warning("%s: %s has %d fields; reading the first %d", self.connection, module, len(names),
                        MAX_FIELDS)
            names = names[:MAX_FIELDS]
        return names

    def _default_fields(self, module: str) -> list[str]:
        try:
            from engine.catalog import catalog

            mod = catalog(self.app).module(module)
        except (KeyError, OSError, ValueError):
            mod = None
        if mod is not None and mod.fields:
            return [f.api_name for f in mod.fields if f.api_name != "id"]
        return [f["api_name"] for f in self.fields(module) if f.get("api_name") != "id"]

    def _cvid(self, module: str, view: str) -> str:
        if view.isdigit():
            return view
        key = (module, view)
        if key not in self._cvids:
            response = self.http.request("GET", f"{self.base}/settings/custom_views", module=module,
                                         op="views", params={"module": module})
            views = []
            if response.status_code == 404:
                raise TerminalAppError(
                    f"{self.http.where(module, 'list')}: view {view!r} cannot be resolved: this endpoint does not "
                    f"serve /settings/custom_views; give the view's numeric id instead", app=self.app,
                    code="INVALID_VIEW", status=404)
            if response.status_code != 204:
                body = self._body(response, module, "views", ok=(200,))
                views = body.get("custom_views") or []
            names: dict[str, str] = {}
            for v in views:
                if isinstance(v, dict) and "id" in v:
                    for label in (v.get("name"), v.get("display_value"), v.get("system_name")):
                        if label:
                            names[str(label)] = str(v["id"])
            if view not in names:
                from engine.errors import did_you_mean

                raise TerminalAppError(f"{self.http.where(module, 'list')}: no view named {view!r}"
                                       f"{did_you_mean(view, list(names))}", app=self.app, code="INVALID_VIEW")
            self._cvids[key] = names[view]
        return self._cvids[key]


_SLOW = (KeyError, TypeError, ValueError, AttributeError)
_record_id = operator.attrgetter("id")


def _fast_records(page: list[Any]) -> list[Record]:
    """``ZohoClient._records`` for a page whose records all have a non-empty string id, a
    ``Modified_Time`` and a ``Created_Time`` (or null) that ``datetime.fromisoformat`` reads; raises
    one of ``_SLOW`` otherwise (the caller then takes the general path, which gives the same records
    where this one succeeds)."""
    new, fromiso, utc = make_record, _fromisoformat, _UTC
    out = []
    append = out.append
    for raw in page:
        rid = raw["id"]
        if rid.__class__ is not str or not rid:
            raise ValueError(rid)
        modified = fromiso(raw["Modified_Time"])
        if modified.tzinfo is not utc:  # an org's own offset (-07:00): the same instant in UTC
            modified = modified.replace(tzinfo=utc) if modified.tzinfo is None else modified.astimezone(utc)
        created = raw.get("Created_Time")
        if created is not None:
            created = fromiso(created)
            if created.tzinfo is not utc:
                created = created.replace(tzinfo=utc) if created.tzinfo is None else created.astimezone(utc)
        append(new(rid, raw, modified, created))
    return out


def _escape(value: Any) -> str:
    text = "true" if value is True else "false" if value is False else str(value)
    for ch in ("\\", "(", ")", ","):
        text = text.replace(ch, "\\" + ch)
    return text


def normalise_field(f: Mapping[str, Any]) -> dict[str, Any]:
    """A ``settings/fields`` item in the catalog's field shape."""
    lookup = f.get("lookup") if isinstance(f.get("lookup"), dict) else {}
    lookup_module = (lookup.get("module") or {}).get("api_name") if isinstance(lookup.get("module"), dict) \
        else lookup.get("module")
    unique = f.get("unique")
    picklist = [str(p.get("actual_value", p.get("display_value"))) for p in f.get("pick_list_values") or []
                if isinstance(p, dict)]
    out: dict[str, Any] = {
        "api_name": f.get("api_name"),
        "label": f.get("field_label") or f.get("display_label") or f.get("api_name"),
        "type": f.get("data_type") or "text",
        "length": f.get("length"),
        "mandatory": bool(f.get("system_mandatory") or f.get("mandatory")),
        "read_only": bool(f.get("read_only") or f.get("field_read_only")),
        "unique": bool(unique) if not isinstance(unique, dict) else bool(unique),
        "encrypted": bool(f.get("crypt")) or bool(f.get("encrypted")),
        "picklist": picklist,
        "lookup": lookup_module or None,
    }
    if f.get("custom_field") is not None:
        out["custom"] = bool(f.get("custom_field"))
    return out


# --------------------------------------------------------------------------------------------------
# Parallel reads (COQL)

COQL_PAGE = 200        # records per COQL call (Bigin and CRM ≤ v6 allow no more; v7+ would take 2,000)
COQL_WINDOW = 10_000   # records reachable by OFFSET within one where clause (LIMIT 200 OFFSET 9800)


def _coql_time(dt: datetime) -> str:
    return f"'{zoho_time(dt)}'"


@dataclass(frozen=True, slots=True)
class _Columns:
    """A parallel read's select column and the lookups whose names it joins in."""

    select: tuple[str, ...]
    joins: tuple[tuple[str, str, str | None], ...]  # (field, its name's column, its e-mail's column)


class _Chunk:
    """Up to ``COQL_WINDOW`` records of one id range: ``id > lower`` (None: from the first record)."""

    __slots__ = ("index", "lower", "upper", "seen", "pending", "last_offset")

    def __init__(self, index: int, lower: int | None):
        self.index = index
        self.lower = lower
        self.upper: int | None = None     # the id of the chunk's last record, once its last page is read
        self.seen: set[str] = set()       # ids yielded (an insert shifts a page: duplicates are dropped)
        self.pending = 0                  # pages submitted and not yet consumed
        self.last_offset = -1             # highest offset scheduled


class _ParallelRead:
    """One parallel read of a Bigin/CRM module: count + COQL pages at offsets, up to the connection's
    concurrency in flight, chunked by id past 10,000 records (each chunk's last page is asked first,
    so the next chunk's lower id bound is known early). Pages are yielded as they arrive."""

    def __init__(self, client: ZohoClient, module: str, since: datetime | None, columns: _Columns,
                 floor: datetime | None):
        self.c = client
        self.module = module
        self.since = since
        self.names = list(columns.select)
        self.joins = columns.joins
        self.floor = floor
        self.workers = client.http.max_concurrency

    # -- requests ------------------------------------------------------------------------------
    def _where(self, modified_from: datetime | None, lower: int | None) -> str:
        conds = []
        if modified_from is not None:
            conds.append(f"Modified_Time >= {_coql_time(modified_from)}")
        if self.floor is not None:
            conds.append(f"Created_Time >= {_coql_time(self.floor)}")
        if lower is not None:
            conds.append(f"id > {lower}")
        if not conds:
            return "id is not null"
        out = conds[0]
        for cond in conds[1:]:  # the apps want two criteria per bracket: ((A and B) and C)
            out = f"({out} and {cond})"
        return out

    def _coql(self, query: str, op: str) -> tuple[list[Any], bool]:
        response = self.c.http.request("POST", f"{self.c.base}/coql", module=self.module, op=op,
                                       json={"select_query": query})
        if response.status_code == 204:
            return [], False
        body = self.c._body(response, self.module, op, ok=(200,))
        data = self.c._data(body, self.module, op)
        info = body.get("info") if isinstance(body.get("info"), dict) else {}
        return data, bool(info.get("more_records"))

    def page(self, where: str, offset: int) -> tuple[list[Record], bool, set[str]]:
        """One COQL page: its records, whether more follow, and the set of their ids (made here, by the
        thread that read the page while its records are fresh in its core's cache: the consumer's
        duplicate check is then two set operations on stored hashes)."""
        query = (f"select {', '.join(self.names)} from {self.module} where {where} "
                 f"order by id asc limit {COQL_PAGE} offset {offset}")
        data, more = self._coql(query, "coql")
        for raw in data if self.joins else ():  # lookups in the list's shape: {"name", "id"[, "email"]}
            if raw.__class__ is not dict:
                continue
            for field, name_col, email_col in self.joins:
                ref = raw.get(field)
                name = raw.pop(name_col, None)
                email = raw.pop(email_col, None) if email_col else None
                if isinstance(ref, dict) and ref.get("id") is not None:
                    raw[field] = {"name": name, "id": ref["id"], **({"email": email} if email_col else {})}
        records = self.c._records(self.module, "coql", data)
        return records, more, set(map(_record_id, records))

    def count(self, modified_from: datetime | None) -> int:
        """Records matching the read: CRM ``GET /{M}/actions/count`` (with ``criteria`` for an
        incremental read); Bigin (no documented module count) ``select COUNT(id)`` in COQL."""
        c = self.c
        if c.app == "zoho_crm" and self.floor is None:
            params = {"criteria": f"(Modified_Time:greater_equal:{zoho_time(modified_from)})"} \
                if modified_from is not None else None
            response = c.http.request("GET", f"{c.base}/{self.module}/actions/count", module=self.module,
                                      op="count", params=params)
            if response.status_code == 204:
                return 0
            body = c._body(response, self.module, "count", ok=(200,))
            value = body.get("count")
        else:
            data, _ = self._coql(f"select COUNT(id) from {self.module} where {self._where(modified_from, None)}",
                                 "count")
            value = next(iter(data[0].values()), 0) if data and isinstance(data[0], dict) else 0
        try:
            return max(0, int(value))
        except (TypeError, ValueError):
            raise c.protocol(self.module, "count", f"the count is {value!r}, not a number") from None

    def _counted(self, future: Any, *, needed: bool = True) -> int:
        """The count's answer; 0 when the app refused it (a 4xx, e.g. an org whose COQL has no
        aggregates: Bigin documents none): the read then goes on a page at a time, and the client
        asks no count for this module again. An unneeded count's other errors are dropped."""
        from engine.errors import AppError, TerminalAppError

        try:
            return future.result()
        except AppError as e:
            refused = isinstance(e, TerminalAppError) and e.status is not None and 400 <= e.status < 500 \
                and e.status not in (401, 429)
            if not refused:
                if needed:
                    raise
                return 0
            log.warning("%s %s: the record count was refused (%s %s); reading its pages one at a time",
                        self.c.app, self.module, e.status, e.code or "")
            self.c.count_refused.add(self.module)
            return 0

    def _page_to(self, arrived: Any, key: int, where: str, offset: int) -> None:
        """``page`` on a read thread, its answer (or its exception) put on ``arrived``."""
        try:
            answer = self.page(where, offset)
        except BaseException as exc:  # noqa: BLE001 - raised again by the reader, in its thread
            arrived.put((key, None, exc))
        else:
            arrived.put((key, answer, None))

    def _changed(self, records: list[Record]) -> list[Record]:
        """The query's times have whole seconds: the records changed at or after ``since`` itself."""
        since = self.since
        return records if since is None or since.microsecond == 0 else [r for r in records if r.modified >= since]

    # -- the read ------------------------------------------------------------------------------
    def pages(self) -> Iterator[list[Record]]:
        """Page 0 first (an incremental read with few changes stays one call: a no-op answers 204);
        when it says more_records, the count, then every other page, ``workers`` at a time. A full
        read asks the count together with page 0 (one round trip less; one call more when the module
        holds ≤ 200 records)."""
        import queue as queues
        from concurrent.futures import Future

        pool = self.c._read_pool()
        # a page's answer comes back on ``arrived`` as (key, (records, more, ids), None) or (key, None,
        # the exception): one C-level queue read per page, instead of waiting on every future in flight
        arrived: queues.SimpleQueue[tuple[int, Any, BaseException | None]] = queues.SimpleQueue()
        inflight: dict[int, tuple[_Chunk, int, bool, Future]] = {}
        queue: collections.deque[tuple[_Chunk, int, bool]] = collections.deque()
        keys = itertools.count()
        try:
            counts = self.module not in self.c.count_refused
            count_future = pool.submit(self.count, None) if self.since is None and counts else None
            chunk0 = _Chunk(0, None)
            records, more, chunk0.seen = self.page(self._where(self.since, None), 0)
            kept = self._changed(records)
            if not more or not records:
                if count_future is not None:  # asked with page 0: it ends within the read, unused
                    self._counted(count_future, needed=False)
                if kept:
                    yield kept
                return
            if count_future is None and counts:  # asked before page 0 is handed over: the caller's work overlaps it
                count_future = pool.submit(self.count, self.since)
            if kept:
                yield kept
            self.c.last_read_parallel[self.module] = True
            total = self._counted(count_future) if count_future is not None else 0
            # page 0 said more_records; with no count the pages go one at a time (read on while full)
            total = max(total, COQL_PAGE + 1)

            def schedule(chunk: _Chunk, expected: int, first: int = 0) -> None:
                """Queue a chunk's pages from ``first``: its last page first when a chunk follows."""
                size = min(expected, COQL_WINDOW)
                offsets = list(range(first, size, COQL_PAGE)) or ([first] if first < COQL_WINDOW else [])
                boundary = expected > COQL_WINDOW
                last = COQL_WINDOW - COQL_PAGE
                if boundary and offsets and offsets[-1] == last:
                    offsets = [last, *offsets[:-1]]
                for off in offsets:
                    queue.append((chunk, off, boundary and off == last))
                    chunk.pending += 1
                    chunk.last_offset = max(chunk.last_offset, off)

            schedule(chunk0, total, COQL_PAGE)
            budget = self.workers + 2  # pages on the wire or waiting to be consumed: memory stays flat
            while inflight or queue:
                while queue and len(inflight) < budget:
                    chunk, off, boundary = queue.popleft()
                    key = next(keys)
                    inflight[key] = (chunk, off, boundary, pool.submit(
                        self._page_to, arrived, key, self._where(self.since, chunk.lower), off))
                key, answer, error = arrived.get()
                chunk, off, boundary, _ = inflight.pop(key)
                if error is not None:
                    raise error
                records, more, ids = answer
                chunk.pending -= 1
                nxt: _Chunk | None = None
                if boundary and len(records) == COQL_PAGE:
                    chunk.upper = int(records[-1].id)  # the next chunk: ids past this chunk's last one
                    nxt = _Chunk(chunk.index + 1, chunk.upper)
                    schedule(nxt, max(total - COQL_WINDOW * nxt.index, 1))
                elif off == chunk.last_offset and len(records) == COQL_PAGE and more and chunk.upper is None:
                    # records came in meanwhile (the count was lower): read on, a page at a time
                    if off + COQL_PAGE < COQL_WINDOW:
                        schedule(chunk, off + 2 * COQL_PAGE, off + COQL_PAGE)
                    else:
                        chunk.upper = int(records[-1].id)
                        nxt = _Chunk(chunk.index + 1, chunk.upper)
                        schedule(nxt, 1)
                upper, seen = chunk.upper, chunk.seen
                if (upper is None or boundary) and len(ids) == len(records) and seen.isdisjoint(ids):
                    seen |= ids  # the common case, per page: no id read before, none past the chunk
                    out = records
                else:
                    out = []
                    for r in records:
                        if r.id in seen:
                            continue  # an insert shifted the pages: read twice, kept once
                        if upper is not None and not boundary and int(r.id) > upper:
                            continue  # deletes shifted it past this chunk: the next chunk reads it
                        seen.add(r.id)
                        out.append(r)
                if nxt is not None and chunk.upper is not None:
                    # pages of this chunk read before its bound was known may hold the next's first ids
                    nxt.seen = {i for i in seen if int(i) > chunk.upper}
                if chunk.pending == 0:
                    chunk.seen = set()
                out = self._changed(out)
                if out:
                    yield out
        finally:
            for *_, fut in inflight.values():
                fut.cancel()  # pages not started are not asked; those on the wire end unread
