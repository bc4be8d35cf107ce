"""Zoho Bookings (``/bookings/v1/json/{endpoint}``) client: customers and appointments.

Facts it relies on (``zoho-apis.md`` §4), and what follows from them:

- envelope ``{"response":{"returnvalue":{…},"status":"success"}}``; a business failure is HTTP 200
  with ``returnvalue.status == "failure"`` and ``returnvalue.message``: a per-record failure for a
  write (code ``FAILURE``), a ``TerminalAppError`` for a read;
- writes are form-encoded with nested JSON sent as strings; dates are ``dd-MMM-yyyy HH:mm:ss`` in
  the appointment's ``time_zone``;
- **appointments** are read with ``POST fetchappointment`` (``page``/``per_page`` ≤ 100, until
  ``next_page_available`` is false). Bookings has no modification time and no change feed: every
  read returns all appointments (``ListFilter.created_after`` filters on ``booked_on``), ``modified``
  is ``booked_on``, and the sync engine's hash comparison keeps only real changes. Create books
  (``POST appointment``), update reschedules (``rescheduleappointment``: ``start_time``, ``staff_id``)
  and/or sets ``status`` (``updateappointment`` action completed/cancel/noshow), delete cancels.
  ``list_deleted`` reports cancelled appointments, ``deleted_at`` = when they were read (Bookings
  records no cancellation time);
- **customers** have no list endpoint: they are derived from ``fetchappointment`` with
  ``need_customer_more_info=true`` (a customer without any appointment is invisible to the API).
  Create → ``addcustomer`` (≤ 10 per call), update → ``updatecustomer`` (one per call). Bookings
  has no customer delete: ``delete_many`` answers ``NOT_SUPPORTED`` per record;
- ``fields`` come from the catalog (Bookings has no field metadata API); ``users`` are the staff.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import httpx

from engine.apps._common import ClientBase, EPOCH, as_utc, batch_failed, dedupe_ids, make_record
from engine.apps.base import DeletedRecord, ListFilter, Record, WriteResult
from engine.apps.http import HttpLayer, chunks, parallel
from engine.errors import TerminalAppError, TransientAppError, did_you_mean

log = logging.getLogger("engine.apps.bookings")

MODULES = ("customers", "appointments")
PER_PAGE = 100
ADD_CUSTOMERS = 10
DATE_FORMAT = "%d-%b-%Y %H:%M:%S"
ACTIONS = {"completed": "completed", "cancel": "cancel", "cancelled": "cancel", "noshow": "noshow",
           "no_show": "noshow"}
CUSTOMER_FIELDS = ("name", "first_name", "last_name", "email", "phone", "type")


def parse_bookings_time(value: Any, tz_name: str | None = None) -> datetime | None:
    """``30-Apr-2019 22:00:00`` in ``tz_name`` (UTC when absent or unknown) as aware UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        dt = datetime.strptime(value.strip(), DATE_FORMAT)
    except ValueError:
        return None
    return dt.replace(tzinfo=_zone(tz_name)).astimezone(timezone.utc)


def format_bookings_time(value: Any, tz_name: str | None = None) -> str:
    """A datetime (or an ISO string) as ``dd-MMM-yyyy HH:mm:ss`` in ``tz_name``; other strings as is."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(_zone(tz_name)).strftime(DATE_FORMAT)
    return str(value)


def _zone(name: str | None):  # noqa: ANN202
    if not name or name.upper() in ("UTC", "GMT"):
        return timezone.utc
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    except Exception:  # noqa: BLE001 - an unknown zone name reads as UTC
        return timezone.utc


class BookingsClient(ClientBase):
    """``AppClient`` for Zoho Bookings."""

    app = "zoho_bookings"

    def __init__(self, http: HttpLayer, *, api_path: str = "/bookings/v1/json"):
        super().__init__(http)
        self.base = http.hosts.api + api_path

    # -- reading -------------------------------------------------------------------------------------

    def list_changed(self, module: str, since: datetime | None, *, fields: Sequence[str] = (),
                     filter: ListFilter | None = None) -> Iterator[list[Record]]:
        self._check(module)
        since = as_utc(since)
        floor = as_utc(filter.created_after) if filter is not None else None
        if module == "appointments":
            for page in self._appointments(more_info=False):
                records = [self._appointment(a) for a in page]
                records = [r for r in records if floor is None or r.created is None or r.created >= floor]
                if records:
                    yield records
            return
        seen: set[str] = set()
        for page in self._appointments(more_info=True):
            records = []
            for a in page:
                rec = self._customer_of(a)
                if rec is None or rec.id in seen:
                    continue
                seen.add(rec.id)
                if (since is None or rec.modified >= since) and \
                        (floor is None or rec.created is None or rec.created >= floor):
                    records.append(rec)
            if records:
                yield records

    def list_deleted(self, module: str, since: datetime | None) -> Iterator[list[DeletedRecord]]:
        self._check(module)
        if module == "customers":
            return
        now = datetime.now(timezone.utc)
        for page in self._appointments(more_info=False, status="CANCEL"):
            out = [DeletedRecord(id=str(a["booking_id"]), deleted_at=now) for a in page
                   if isinstance(a, dict) and a.get("booking_id")]
            if out:
                yield out

    def get_many(self, module: str, ids: Sequence[str]) -> list[Record]:
        self._check(module)
        wanted = dedupe_ids(ids)
        if module == "customers":
            found = {r.id: r for page in self.list_changed("customers", None) for r in page}
            return [found[i] for i in wanted if i in found]

        def get(bid: str) -> Record | None:
            value = self._call("GET", "getappointment", "appointments", "get", params={"booking_id": bid})
            if _failed(value):
                return None
            return self._appointment(value)

        return [r for r in parallel(get, wanted, self.http.max_concurrency) if r is not None]

    def search(self, module: str, field: str, value: Any) -> list[Record]:
        self._check(module)
        want = _norm(value)
        if module == "appointments" and field == "booking_id":
            return self.get_many(module, [str(value)])
        narrow = {"email": "customer_email", "customer_email": "customer_email", "name": "customer_name",
                  "customer_name": "customer_name"}.get(field)
        extra = {narrow: str(value)} if narrow else {}
        out: dict[str, Record] = {}
        for page in self._appointments(more_info=module == "customers", **extra):
            for a in page:
                rec = self._customer_of(a) if module == "customers" else self._appointment(a)
                if rec is not None and _norm(rec.values.get(field)) == want:
                    out[rec.id] = rec
        return list(out.values())

    def fields(self, module: str) -> list[dict[str, Any]]:
        self._check(module)
        from engine.catalog import catalog

        mod = catalog(self.app).module(module)
        return [{"api_name": f.api_name, "label": f.label, "type": f.type, "length": f.length,
                 "mandatory": f.mandatory, "read_only": f.read_only, "unique": f.unique,
                 "encrypted": f.encrypted, "picklist": list(f.picklist), "lookup": f.lookup}
                for f in (mod.fields if mod else ())]

    def count_associates(self, module: str, record_id: str) -> int:
        """A customer's appointments; appointments have none."""
        self._check(module)
        if module != "customers":
            return 0
        total = 0
        for page in self._appointments(more_info=True):
            total += sum(1 for a in page if str((a.get("customer_more_info") or {}).get("id")) == str(record_id))
        return total

    def users(self) -> list[dict[str, Any]]:
        value = self._call("GET", "staffs", "staffs", "list")
        if _failed(value):
            raise self._failure(value, "staffs", "list")
        return [{"id": str(s["id"]), "email": s.get("email") or "", "name": s.get("name") or ""}
                for s in (value.get("data") or []) if isinstance(s, dict) and s.get("id")]

    # -- writing -------------------------------------------------------------------------------------

    def create_many(self, module: str, records: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        self._check(module)
        if module == "customers":
            results: list[WriteResult] = []
            for _, batch in chunks(list(records), ADD_CUSTOMERS):
                results.extend(self._add_customers(batch))
            return results
        return parallel(self._book, list(records), self.http.max_concurrency)

    def update_many(self, module: str, updates: Sequence[tuple[str, Mapping[str, Any]]]) -> list[WriteResult]:
        self._check(module)
        fn = self._update_customer if module == "customers" else self._update_appointment
        return parallel(fn, list(updates), self.http.max_concurrency)

    def delete_many(self, module: str, ids: Sequence[str]) -> list[WriteResult]:
        self._check(module)
        if module == "customers":
            return [WriteResult(ok=False, id=str(i), code="NOT_SUPPORTED",
                                message="Zoho Bookings has no API to delete a customer") for i in ids]
        return parallel(lambda bid: self._status(str(bid), "cancel", "delete"), [str(i) for i in ids],
                        self.http.max_concurrency)

    def _add_customers(self, batch: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        items = [_customer_wire(r) for r in batch]
        try:
            value = self._call("POST", "addcustomer", "customers", "create",
                               data={"customerMap": json.dumps(items)})
        except TransientAppError as exc:
            return batch_failed(exc, len(batch))
        if _failed(value):
            return [WriteResult(ok=False, code="FAILURE", message=str(value.get("message") or "failure"))
                    for _ in batch]
        data = value.get("data")
        if not isinstance(data, list) or len(data) != len(batch):
            raise self.protocol("customers", "create", f"expected {len(batch)} results in returnvalue.data")
        out = []
        for item in data:
            if isinstance(item, dict) and str(item.get("status", "success")).lower() == "success" and item.get("id"):
                out.append(WriteResult(ok=True, id=str(item["id"]), code="SUCCESS",
                                       modified=parse_bookings_time(item.get("modified_time"))))
            else:
                msg = str(item.get("message") or "failure") if isinstance(item, dict) else "failure"
                out.append(WriteResult(ok=False, code="FAILURE", message=msg, field=_field_of(msg)))
        return out

    def _update_customer(self, item: tuple[str, Mapping[str, Any]]) -> WriteResult:
        rid, values = item
        body = {**_customer_wire(values), "id": str(rid)}
        try:
            value = self._call("POST", "updatecustomer", "customers", "update",
                               data={"customerMap": json.dumps(body)})
        except TransientAppError as exc:
            return batch_failed(exc, 1)[0]
        if _failed(value):
            msg = str(value.get("message") or "failure")
            return WriteResult(ok=False, id=str(rid), code="FAILURE", message=msg, field=_field_of(msg))
        return WriteResult(ok=True, id=str(value.get("id") or rid), code="SUCCESS",
                           modified=parse_bookings_time(value.get("modified_time")))

    def _book(self, values: Mapping[str, Any]) -> WriteResult:
        v = dict(values)
        tz = v.get("time_zone") or v.get("timezone")
        form: dict[str, Any] = {"service_id": v.get("service_id"), "staff_id": v.get("staff_id"),
                                "from_time": format_bookings_time(v.get("start_time") or v.get("from_time"), tz),
                                "customer_details": json.dumps({
                                    "name": v.get("customer_name"), "email": v.get("customer_email"),
                                    "phone_number": v.get("customer_contact_no")})}
        if tz:
            form["timezone"] = tz
        if v.get("notes"):
            form["notes"] = v["notes"]
        if isinstance(v.get("additional_fields"), dict):
            form["additional_fields"] = json.dumps(v["additional_fields"])
        form = {k: x for k, x in form.items() if x is not None}
        try:
            value = self._call("POST", "appointment", "appointments", "create", data=form)
        except TransientAppError as exc:
            return batch_failed(exc, 1)[0]
        if _failed(value):
            msg = str(value.get("message") or "failure")
            return WriteResult(ok=False, code="FAILURE", message=msg, field=_field_of(msg))
        rec = self._appointment(value)
        return WriteResult(ok=True, id=rec.id, code="SUCCESS", modified=rec.modified)

    def _update_appointment(self, item: tuple[str, Mapping[str, Any]]) -> WriteResult:
        bid, values = str(item[0]), dict(item[1])
        form: dict[str, Any] = {"booking_id": bid}
        if values.get("staff_id"):
            form["staff_id"] = values["staff_id"]
        if values.get("start_time"):
            form["start_time"] = format_bookings_time(values["start_time"], values.get("time_zone"))
        status = str(values.get("status") or "").lower()
        action = ACTIONS.get(status)
        ignored = sorted(k for k in values if k not in ("staff_id", "start_time", "status", "time_zone"))
        if len(form) == 1 and action is None:
            return WriteResult(ok=False, id=bid, code="NOT_UPDATABLE",
                               message="Bookings can only reschedule (start_time, staff_id) or set the status "
                                       f"of an appointment; not {', '.join(ignored) or 'this'}",
                               details={"ignored": ignored})
        result = WriteResult(ok=True, id=bid, code="SUCCESS", details={"ignored": ignored} if ignored else {})
        if len(form) > 1:
            try:
                value = self._call("POST", "rescheduleappointment", "appointments", "update", data=form)
            except TransientAppError as exc:
                return batch_failed(exc, 1)[0]
            if _failed(value):
                msg = str(value.get("message") or "failure")
                return WriteResult(ok=False, id=bid, code="FAILURE", message=msg, field=_field_of(msg))
            result = WriteResult(ok=True, id=bid, code="SUCCESS", modified=self._appointment(value).modified,
                                 details=result.details)
        if action is not None:
            result = self._status(bid, action, "update")
        return result

    def _status(self, bid: str, action: str, op: str) -> WriteResult:
        try:
            value = self._call("POST", "updateappointment", "appointments", op,
                               data={"booking_id": bid, "action": action})
        except TransientAppError as exc:
            return batch_failed(exc, 1)[0]
        if _failed(value):
            return WriteResult(ok=False, id=bid, code="FAILURE", message=str(value.get("message") or "failure"))
        return WriteResult(ok=True, id=bid, code="SUCCESS")

    # -- internals -----------------------------------------------------------------------------------

    def _appointments(self, *, more_info: bool, **filters: Any) -> Iterator[list[dict[str, Any]]]:
        page = 1
        while True:
            form = {"page": page, "per_page": PER_PAGE, **filters}
            if more_info:
                form["need_customer_more_info"] = "true"
            value = self._call("POST", "fetchappointment", "appointments", "list", data=form)
            if _failed(value):
                raise self._failure(value, "appointments", "list")
            items = value.get("response")
            if items is None:
                items = value.get("data")
            if not isinstance(items, list):
                raise self.protocol("appointments", "list", "returnvalue has no response[] list")
            items = [a for a in items if isinstance(a, dict)]
            if items:
                yield items
            if not value.get("next_page_available") or not items:
                return
            page += 1

    # -- Bookings' own reads (not part of AppClient): services, staff, free slots ----------------------
    def services(self) -> list[dict[str, Any]]:
        """``GET services``: ``[{id, name, duration: "30 mins", ...}]``."""
        return list(self._call("GET", "services", "services", "list").get("data") or [])

    def staffs(self, service_id: str | None = None) -> list[dict[str, Any]]:
        """``GET staffs`` (of one service when given): ``[{id, name, email, ...}]``."""
        params = {"service_id": service_id} if service_id else None
        return list(self._call("GET", "staffs", "staffs", "list", params=params).get("data") or [])

    def available_slots(self, service_id: str, staff_id: str, day: Any) -> list[str]:
        """``GET availableslots`` for one day: the free start times as ``HH:mm`` strings."""
        answer = self._call("GET", "availableslots", "availableslots", "list",
                            params={"service_id": service_id, "staff_id": staff_id,
                                    "selected_date": day.strftime("%d-%b-%Y")})
        data = answer.get("data")
        return [str(x) for x in data] if isinstance(data, list) else []

    def _call(self, method: str, endpoint: str, module: str, op: str, *, params: Any = None,
              data: Any = None) -> dict[str, Any]:
        response = self.http.request(method, f"{self.base}/{endpoint}", module=module, op=op,
                                     params=params, data=data)
        return self._returnvalue(response, module, op)

    def _returnvalue(self, response: httpx.Response, module: str, op: str) -> dict[str, Any]:
        if response.status_code != 200:
            raise self.http.error(response, module, op)
        body = self.http.json(response, module, op)
        outer = body.get("response") if isinstance(body, dict) else None
        if not isinstance(outer, dict):
            raise self.protocol(module, op, "the answer has no response object")
        if str(outer.get("status", "success")).lower() != "success":
            value = outer.get("returnvalue") if isinstance(outer.get("returnvalue"), dict) else {}
            raise TerminalAppError(self.http.redact(f"{self.http.where(module, op)}: "
                                                    f"{value.get('message') or outer.get('message') or 'failure'}"),
                                   app=self.app, code="FAILURE", status=200)
        value = outer.get("returnvalue")
        if not isinstance(value, dict):
            raise self.protocol(module, op, "the answer has no returnvalue object")
        return value

    def _failure(self, value: Mapping[str, Any], module: str, op: str) -> TerminalAppError:
        return TerminalAppError(self.http.redact(f"{self.http.where(module, op)}: {value.get('message') or 'failure'}"),
                                app=self.app, code="FAILURE", status=200)

    def _appointment(self, raw: Mapping[str, Any]) -> Record:
        if not raw.get("booking_id"):
            raise self.protocol("appointments", "list", "an appointment without a booking_id")
        tz = raw.get("time_zone")
        booked = parse_bookings_time(raw.get("booked_on"), tz)
        values = {k: v for k, v in raw.items() if k != "customer_more_info"}
        return make_record(str(raw["booking_id"]), values, booked or EPOCH, booked)

    def _customer_of(self, appointment: Mapping[str, Any]) -> Record | None:
        info = appointment.get("customer_more_info")
        if not isinstance(info, dict) or not info.get("id"):
            return None
        values = {k: info.get(k) for k in CUSTOMER_FIELDS}
        values["id"] = str(info["id"])
        if values.get("phone") is None:
            values["phone"] = info.get("contact_number")
        modified = parse_bookings_time(info.get("modified_time")) or \
            parse_bookings_time(appointment.get("booked_on"), appointment.get("time_zone")) or EPOCH
        return make_record(str(info["id"]), values, modified, parse_bookings_time(info.get("created_time")))

    def _check(self, module: str) -> None:
        if module not in MODULES:
            raise TerminalAppError(f"zoho_bookings connection {self.connection!r}: unknown module {module!r}"
                                   f"{did_you_mean(module, MODULES)}", app=self.app, code="INVALID_MODULE")


def _failed(value: Mapping[str, Any]) -> bool:
    return str(value.get("status", "")).lower() == "failure"


def _customer_wire(values: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in values.items() if k not in ("id", "type", "phone") and v is not None}
    if values.get("phone") is not None:
        out["contact_number"] = values["phone"]
    return out


def _field_of(message: str) -> str | None:
    low = message.lower()
    for name, field in (("email", "email"), ("contact_number", "phone"), ("name", "name"),
                        ("from_time", "start_time"), ("start_time", "start_time"), ("service_id", "service_id"),
                        ("staff_id", "staff_id"), ("timezone", "time_zone")):
        if name in low:
            return field
    return None


def _norm(value: Any) -> str:
    return str(value).strip().lower() if value is not None else ""
