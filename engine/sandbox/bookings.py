"""Zoho Bookings v1 (``/bookings/v1/json/{endpoint}``).

Envelope ``{"response":{"returnvalue":{...},"status":"success"}}``; business failures are HTTP 200
with ``returnvalue.status == "failure"`` and ``returnvalue.message``. Dates ``dd-MMM-yyyy HH:mm:ss``
in the appointment's time zone (default UTC). Writes take form fields (urlencoded or multipart) with
nested JSON as strings; a JSON body or a ``data`` field holding JSON is accepted too.

Bookings has no customer list API: ``fetchappointment`` with ``need_customer_more_info=true``
carries each appointment's customer, and the sandbox-only ``GET /_sandbox/customers`` lists them
for tests.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from typing import Any

from engine.sandbox import timefmt, validate
from engine.sandbox.core import Context
from engine.sandbox.http import ApiError, Request, Response, json_response
from engine.sandbox.store import Row

APP = "zoho_bookings"
STATUSES = {"UPCOMING": "upcoming", "CANCEL": "cancel", "ONGOING": "ongoing", "PENDING": "pending",
            "COMPLETED": "completed", "NO_SHOW": "noshow", "PENDING_PAYMENT": "pending_payment",
            "PAYMENT_FAILURE": "payment_failure"}
ACTIONS = {"completed": "completed", "cancel": "cancel", "noshow": "noshow"}
SERVICES = (("Consultation", 30, 50.0), ("Follow-up", 15, 0.0), ("Workshop", 60, 120.0))
STAFF = (("Dr. Asha Rao", "asha.rao@sandbox-clinic.example.com"),
         ("Liam Carter", "liam.carter@sandbox-clinic.example.com"),
         ("Yuki Sato", "yuki.sato@sandbox-clinic.example.com"))
DAY_START, DAY_END = 9, 17
MAX_PER_PAGE = 100


def ok(value: Any) -> Response:
    return json_response(200, {"response": {"returnvalue": value, "status": "success"}})


def failure(message: str) -> Response:
    return json_response(200, {"response": {"returnvalue": {"status": "failure", "message": message},
                                            "status": "success"}})


class Failure(Exception):
    pass


def _tz(name: str | None) -> tuple[timezone | Any, str]:
    if not name or name.upper() in ("UTC", "GMT"):
        return timezone.utc, "UTC"
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name), name
    except Exception:  # noqa: BLE001 - any unknown zone name is a business failure
        raise Failure(f"invalid timezone {name!r}") from None


def ensure_setup(ctx: Context) -> dict[str, list[Row]]:
    """The sandbox's one workspace with its services and staff."""
    ws = ctx.store.query(APP, "workspaces", order="seq")
    if not ws:
        now = ctx.now_db()
        with ctx.store.transaction():
            wid = ctx.store.new_id(APP)
            ctx.store.insert(APP, "workspaces", wid, {"name": "Sandbox Clinic"}, now)
            staff_ids = []
            for name, email in STAFF:
                sid = ctx.store.new_id(APP)
                staff_ids.append(sid)
                ctx.store.insert(APP, "staffs", sid, {"name": name, "email": email, "workspace_id": wid}, now)
            for i, (name, minutes, price) in enumerate(SERVICES):
                assigned = staff_ids if i == 0 else staff_ids[i - 1:i + 1]
                ctx.store.insert(APP, "services", ctx.store.new_id(APP),
                                 {"name": name, "duration": minutes, "price": price, "currency": "USD",
                                  "workspace_id": wid, "assigned_staffs": assigned}, now)
    return {m: ctx.store.query(APP, m, order="seq") for m in ("workspaces", "services", "staffs")}


def _customer_out(row: Row) -> dict[str, Any]:
    d = row.data
    return {"id": row.id, "name": d.get("name"), "first_name": d.get("first_name"), "last_name": d.get("last_name"),
            "email": d.get("email"), "phone": d.get("phone"), "contact_number": d.get("phone"),
            "type": d.get("type", "Guest"), "created_time": timefmt.bookings(row.created),
            "modified_time": timefmt.bookings(row.modified)}


def list_customers(ctx: Context) -> list[dict[str, Any]]:
    return [_customer_out(r) for r in ctx.store.query(APP, "customers", order="id")]


class BookingsApi:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def handle(self, req: Request, parts: list[str]) -> Response:
        if len(parts) != 1:
            raise ApiError(404, {"code": "INVALID_URL_PATTERN", "details": {},
                                 "message": "Please check if the URL trying to access is a correct one",
                                 "status": "error"})
        ep = parts[0]
        handlers = {"workspaces": ("GET", self.workspaces), "services": ("GET", self.services),
                    "staffs": ("GET", self.staffs), "resources": ("GET", self.resources),
                    "availableslots": ("GET", self.slots), "appointment": ("POST", self.book),
                    "getappointment": ("GET", self.get), "rescheduleappointment": ("POST", self.reschedule),
                    "updateappointment": ("POST", self.update_status), "fetchappointment": ("POST", self.fetch),
                    "addcustomer": ("POST", self.add_customer), "updatecustomer": ("POST", self.update_customer)}
        if ep not in handlers:
            raise ApiError(404, {"code": "INVALID_URL_PATTERN", "details": {},
                                 "message": "Please check if the URL trying to access is a correct one",
                                 "status": "error"})
        method, fn = handlers[ep]
        if req.method != method and not (ep == "fetchappointment" and req.method == "GET"):
            raise ApiError(400, {"code": "INVALID_REQUEST_METHOD", "details": {},
                                 "message": "The http request method type is not a valid one", "status": "error"})
        ensure_setup(self.ctx)
        try:
            return fn(req)
        except Failure as e:
            return failure(str(e))

    # params -----------------------------------------------------------------------------------
    def _params(self, req: Request) -> dict[str, Any]:
        p: dict[str, Any] = dict(req.form())
        raw = p.get("data")
        if isinstance(raw, str) and raw.strip().startswith("{"):
            try:
                inner = json.loads(raw)
            except ValueError:
                raise Failure("data is not valid JSON") from None
            if isinstance(inner, dict):
                p = {**p, **inner}
        return p

    @staticmethod
    def _json_param(p: dict[str, Any], name: str) -> Any:
        v = p.get(name)
        if isinstance(v, str):
            try:
                return json.loads(v)
            except ValueError:
                raise Failure(f"{name} must be JSON") from None
        return v

    # config -------------------------------------------------------------------------------------
    def workspaces(self, req: Request) -> Response:
        self.ctx.stats.call(APP, "workspaces", "list")
        rows = self.ctx.store.query(APP, "workspaces", order="seq")
        return ok({"data": [{"id": r.id, "name": r.data["name"]} for r in rows]})

    def _service(self, r: Row) -> dict[str, Any]:
        d = r.data
        return {"id": r.id, "name": d["name"], "duration": f"{d['duration']} mins", "price": d["price"],
                "currency": d["currency"], "assigned_staffs": d["assigned_staffs"], "service_type": "APPOINTMENT",
                "workspace_id": d["workspace_id"]}

    def services(self, req: Request) -> Response:
        self.ctx.stats.call(APP, "services", "list")
        wid = req.query.get("workspace_id")
        rows = [r for r in self.ctx.store.query(APP, "services", order="seq")
                if not wid or r.data["workspace_id"] == wid]
        return ok({"data": [self._service(r) for r in rows]})

    def staffs(self, req: Request) -> Response:
        self.ctx.stats.call(APP, "staffs", "list")
        wid, sid = req.query.get("workspace_id"), req.query.get("service_id")
        services = self.ctx.store.query(APP, "services", order="seq")
        out = []
        for r in self.ctx.store.query(APP, "staffs", order="seq"):
            assigned = [s.id for s in services if r.id in s.data["assigned_staffs"]]
            if (wid and r.data["workspace_id"] != wid) or (sid and sid not in assigned):
                continue
            out.append({"id": r.id, "name": r.data["name"], "email": r.data["email"], "assigned_services": assigned})
        return ok({"data": out})

    def resources(self, req: Request) -> Response:
        self.ctx.stats.call(APP, "resources", "list")
        return ok({"data": []})

    # slots --------------------------------------------------------------------------------------
    def _busy(self, staff_id: str, skip: str | None = None) -> list[tuple[datetime, datetime]]:
        out = []
        for r in self.ctx.store.query(APP, "appointments", order="id"):
            d = r.data
            if r.id == skip or d.get("staff_id") != staff_id or d.get("status") in ("cancel",):
                continue
            out.append((timefmt.from_db(d["start_time"]), timefmt.from_db(d["end_time"])))
        return out

    def _service_row(self, sid: str | None) -> Row:
        row = self.ctx.store.get(APP, "services", sid or "")
        if row is None:
            raise Failure("Invalid service_id" if sid else "service_id is mandatory")
        return row

    def _staff_row(self, sid: str | None, service: Row) -> Row:
        row = self.ctx.store.get(APP, "staffs", sid or "")
        if row is None:
            raise Failure("Invalid staff_id" if sid else "staff_id is mandatory")
        if row.id not in service.data["assigned_staffs"]:
            raise Failure("The staff is not assigned to this service")
        return row

    def slots(self, req: Request) -> Response:
        self.ctx.stats.call(APP, "availableslots", "list")
        q = req.query
        service = self._service_row(q.get("service_id"))
        staff = self._staff_row(q.get("staff_id"), service)
        day = timefmt.parse_bookings_date(q.get("selected_date") or "")
        if day is None:
            raise Failure("selected_date must be dd-MMM-yyyy, e.g. 30-Apr-2019")
        tz, tzname = _tz(q.get("timezone"))
        minutes = service.data["duration"]
        busy = self._busy(staff.id)
        out = []
        t = datetime(day.year, day.month, day.day, DAY_START, tzinfo=tz)
        end = datetime(day.year, day.month, day.day, DAY_END, tzinfo=tz)
        now = self.ctx.now()
        while t + timedelta(minutes=minutes) <= end:
            s, e = t.astimezone(timezone.utc), (t + timedelta(minutes=minutes)).astimezone(timezone.utc)
            if s >= now and not any(s < be and bs < e for bs, be in busy):
                out.append(f"{t:%H:%M}")
            t += timedelta(minutes=minutes)
        if not out:
            return ok({"response": False, "data": [], "time_zone": tzname, "message": "Slots not available"})
        return ok({"response": True, "data": out, "time_zone": tzname})

    # appointments -------------------------------------------------------------------------------
    def _appointment(self, row: Row, *, more_info: bool = False) -> dict[str, Any]:
        d = row.data
        tz, _ = _tz(d.get("time_zone"))
        out = {"booking_id": row.id, "service_id": d["service_id"], "service_name": d.get("service_name"),
               "staff_id": d["staff_id"], "staff_name": d.get("staff_name"), "workspace_id": d.get("workspace_id"),
               "start_time": timefmt.bookings(d["start_time"], tz), "end_time": timefmt.bookings(d["end_time"], tz),
               "duration": f"{d.get('duration')} mins", "time_zone": d.get("time_zone", "UTC"),
               "customer_name": d.get("customer_name"), "customer_email": d.get("customer_email"),
               "customer_contact_no": d.get("customer_contact_no"), "cost": d.get("cost"),
               "currency": "USD", "status": d.get("status"), "notes": d.get("notes"),
               "booked_on": timefmt.bookings(row.created, tz), "summary_url": None}
        if d.get("additional_fields"):
            out["additional_fields"] = d["additional_fields"]
        if more_info:
            c = self.ctx.store.get(APP, "customers", d.get("customer_id") or "", include_deleted=True)
            out["customer_more_info"] = _customer_out(c) if c else None
        return out

    def _customer(self, details: Any) -> Row:
        if not isinstance(details, dict):
            raise Failure("customer_details is mandatory: JSON {name, email, phone_number}")
        name, email = details.get("name"), details.get("email")
        phone = details.get("phone_number") or details.get("contact_number")
        if not name or not email:
            raise Failure("customer_details needs name and email")
        if not validate.EMAIL.match(str(email).strip()):
            raise Failure("Invalid email address")
        for r in self.ctx.store.query(APP, "customers", order="id"):
            if validate.norm(r.data.get("email")) == validate.norm(email):
                return r
        return self._insert_customer({"name": name, "email": email, "phone": phone})

    def _insert_customer(self, values: dict[str, Any]) -> Row:
        data = {k: v for k, v in values.items() if v not in (None, "")}
        if "name" not in data and (data.get("first_name") or data.get("last_name")):
            data["name"] = " ".join(x for x in (data.get("first_name"), data.get("last_name")) if x)
        data["type"] = "Guest"
        row = self.ctx.store.insert(APP, "customers", self.ctx.store.new_id(APP), data, self.ctx.now_db())
        self.ctx.stats.wrote(APP, "customers", "create", 1)
        return row

    def _check_slot(self, staff: Row, start: datetime, minutes: int, skip: str | None = None) -> None:
        end = start + timedelta(minutes=minutes)
        if any(start < be and bs < end for bs, be in self._busy(staff.id, skip)):
            raise Failure("Slot not available")

    def book(self, req: Request) -> Response:
        self.ctx.stats.call(APP, "appointments", "create")
        p = self._params(req)
        service = self._service_row(p.get("service_id"))
        staff = self._staff_row(p.get("staff_id") or p.get("resource_id") or p.get("group_id"), service)
        tz, tzname = _tz(p.get("timezone"))
        start = timefmt.parse_bookings(p.get("from_time") or "", tz)
        if start is None:
            raise Failure("from_time must be dd-MMM-yyyy HH:mm:ss, e.g. 30-Apr-2019 22:00:00")
        customer_details = self._json_param(p, "customer_details")
        rej = self.ctx.rejection(APP, "appointments", {**p, **(customer_details if isinstance(customer_details, dict)
                                                               else {})})
        if rej:
            self.ctx.stats.fault("rejected")
            raise Failure(rej.message)
        with self.ctx.store.transaction():
            minutes = service.data["duration"]
            self._check_slot(staff, start, minutes)
            customer = self._customer(customer_details)
            extra = self._json_param(p, "additional_fields")
            num = self.ctx.store.next_number("booking")
            data = {"service_id": service.id, "service_name": service.data["name"], "staff_id": staff.id,
                    "staff_name": staff.data["name"], "workspace_id": service.data["workspace_id"],
                    "start_time": timefmt.to_db(start), "end_time": timefmt.to_db(start + timedelta(minutes=minutes)),
                    "duration": minutes, "time_zone": tzname, "customer_id": customer.id,
                    "customer_name": customer.data.get("name"), "customer_email": customer.data.get("email"),
                    "customer_contact_no": customer.data.get("phone"), "cost": service.data["price"],
                    "status": "upcoming", "notes": p.get("notes"),
                    "additional_fields": extra if isinstance(extra, dict) else None}
            row = self.ctx.store.insert(APP, "appointments", f"#SB-{num:05d}", data, self.ctx.now_db())
        self.ctx.stats.wrote(APP, "appointments", "create", 1)
        return ok(self._appointment(row))

    def _booking(self, bid: str | None) -> Row:
        if not bid:
            raise Failure("booking_id is mandatory")
        row = self.ctx.store.get(APP, "appointments", bid.strip())
        if row is None:
            raise Failure("Invalid booking_id")
        return row

    def get(self, req: Request) -> Response:
        self.ctx.stats.call(APP, "appointments", "get")
        return ok(self._appointment(self._booking(req.query.get("booking_id"))))

    def reschedule(self, req: Request) -> Response:
        self.ctx.stats.call(APP, "appointments", "update")
        p = self._params(req)
        with self.ctx.store.transaction():
            row = self._booking(p.get("booking_id"))
            d = dict(row.data)
            if d["status"] not in ("upcoming", "pending"):
                raise Failure(f"A {d['status']} appointment cannot be rescheduled")
            if not p.get("staff_id") and not p.get("start_time"):
                raise Failure("staff_id or start_time is mandatory")
            service = self._service_row(d["service_id"])
            staff = self._staff_row(p.get("staff_id") or d["staff_id"], service)
            tz, _ = _tz(d.get("time_zone"))
            start = timefmt.from_db(d["start_time"])
            if p.get("start_time"):
                parsed = timefmt.parse_bookings(p["start_time"], tz)
                if parsed is None:
                    raise Failure("start_time must be dd-MMM-yyyy HH:mm:ss")
                start = parsed
            self._check_slot(staff, start, d["duration"], skip=row.id)
            d.update({"staff_id": staff.id, "staff_name": staff.data["name"], "start_time": timefmt.to_db(start),
                      "end_time": timefmt.to_db(start + timedelta(minutes=d["duration"]))})
            row = self.ctx.store.update(row, d, self.ctx.now_db())
        self.ctx.stats.wrote(APP, "appointments", "update", 1)
        return ok(self._appointment(row))

    def update_status(self, req: Request) -> Response:
        self.ctx.stats.call(APP, "appointments", "update")
        p = self._params(req)
        action = (p.get("action") or "").lower()
        if action not in ACTIONS:
            raise Failure("action must be one of completed, cancel, noshow")
        with self.ctx.store.transaction():
            row = self._booking(p.get("booking_id"))
            if row.data["status"] == "cancel":
                raise Failure("The appointment is already cancelled")
            row = self.ctx.store.update(row, {**row.data, "status": ACTIONS[action]}, self.ctx.now_db())
        self.ctx.stats.wrote(APP, "appointments", "update", 1)
        return ok(self._appointment(row))

    def fetch(self, req: Request) -> Response:
        self.ctx.stats.call(APP, "appointments", "list")
        p = self._params(req)
        rows = self.ctx.store.query(APP, "appointments", order="id")
        for key, op in (("from_time", "ge"), ("to_time", "le")):
            if p.get(key):
                t = timefmt.parse_bookings(p[key])
                if t is None:
                    raise Failure(f"{key} must be dd-MMM-yyyy HH:mm:ss")
                bound = timefmt.to_db(t)
                rows = [r for r in rows if (r.data["start_time"] >= bound if op == "ge"
                                            else r.data["start_time"] <= bound)]
        if p.get("status"):
            st = STATUSES.get(str(p["status"]).upper())
            if st is None:
                raise Failure(f"status must be one of {', '.join(STATUSES)}")
            rows = [r for r in rows if r.data["status"] == st]
        for key in ("service_id", "staff_id"):
            if p.get(key):
                rows = [r for r in rows if r.data.get(key) == p[key]]
        for key, field in (("customer_name", "customer_name"), ("customer_email", "customer_email"),
                           ("customer_phone_number", "customer_contact_no"), ("phone_number", "customer_contact_no")):
            if p.get(key):
                want = str(p[key]).strip().casefold()
                rows = [r for r in rows if want in str(r.data.get(field) or "").casefold()]
        try:
            page = int(p.get("page") or 1)
            per_page = int(p.get("per_page") or 50)
        except (TypeError, ValueError):
            raise Failure("page and per_page must be numbers") from None
        if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
            raise Failure(f"per_page must be between 1 and {MAX_PER_PAGE}, page at least 1")
        more_info = str(p.get("need_customer_more_info", "")).lower() == "true"
        chunk = rows[(page - 1) * per_page: page * per_page]
        return ok({"response": [self._appointment(r, more_info=more_info) for r in chunk],
                   "next_page_available": len(rows) > page * per_page, "page": page})

    # customers ----------------------------------------------------------------------------------
    def _customer_values(self, item: Any) -> dict[str, Any]:
        if not isinstance(item, dict):
            raise Failure("each customer must be a JSON object")
        values = {"name": item.get("name"), "first_name": item.get("first_name"),
                  "last_name": item.get("last_name"), "email": item.get("email"),
                  "phone": item.get("contact_number") or item.get("phone")}
        if not values["name"] and not (values["first_name"] or values["last_name"]):
            raise Failure("name (or first_name and last_name) is mandatory")
        if values["email"] and not validate.EMAIL.match(str(values["email"]).strip()):
            raise Failure("Invalid email address")
        if values["phone"] and not validate.PHONE.match(str(values["phone"]).strip()):
            raise Failure("Invalid contact_number")
        return values

    def add_customer(self, req: Request) -> Response:
        self.ctx.stats.call(APP, "customers", "create")
        p = self._params(req)
        raw = self._json_param(p, "customerMap") if p.get("customerMap") is not None else self._json_param(p, "data")
        if raw is None and p.get("name"):
            raw = {k: p.get(k) for k in ("name", "first_name", "last_name", "email", "contact_number")}
        items = raw if isinstance(raw, list) else [raw]
        if not items or items == [None]:
            raise Failure("customerMap is mandatory")
        if len(items) > 10:
            raise Failure("At most 10 customers can be added per call")
        out = []
        with self.ctx.store.transaction():
            for item in items:
                try:
                    values = self._customer_values(item)
                    rej = self.ctx.rejection(APP, "customers", values)
                    if rej:
                        self.ctx.stats.fault("rejected")
                        raise Failure(rej.message)
                except Failure as e:
                    out.append({"status": "failure", "message": str(e)})
                    continue
                row = self._insert_customer(values)
                out.append({**_customer_out(row), "status": "success"})
        if all(o["status"] == "failure" for o in out):
            return failure(out[0]["message"] if len(out) == 1 else "No customer was added")
        return ok({"data": out, "status": "success"})

    def update_customer(self, req: Request) -> Response:
        self.ctx.stats.call(APP, "customers", "update")
        p = self._params(req)
        raw = self._json_param(p, "customerMap") if p.get("customerMap") is not None else self._json_param(p, "data")
        if raw is None and p.get("id"):
            raw = {k: p.get(k) for k in ("id", "name", "first_name", "last_name", "email", "contact_number")
                   if p.get(k) is not None}
        if not isinstance(raw, dict) or not raw.get("id"):
            raise Failure("id of the customer is mandatory")
        with self.ctx.store.transaction():
            row = self.ctx.store.get(APP, "customers", str(raw["id"]))
            if row is None:
                raise Failure("Invalid customer id")
            merged = {**{k: row.data.get(k) for k in ("name", "first_name", "last_name", "email")},
                      "contact_number": row.data.get("phone"), **{k: v for k, v in raw.items() if k != "id"}}
            values = self._customer_values(merged)
            rej = self.ctx.rejection(APP, "customers", {**row.data, **values})
            if rej:
                self.ctx.stats.fault("rejected")
                raise Failure(rej.message)
            data = {**row.data, **{k: v for k, v in values.items() if v is not None}}
            row = self.ctx.store.update(row, data, self.ctx.now_db())
            for a in self.ctx.store.query(APP, "appointments", order="id"):
                if a.data.get("customer_id") == row.id:
                    self.ctx.store.update(a, {**a.data, "customer_name": data.get("name"),
                                              "customer_email": data.get("email"),
                                              "customer_contact_no": data.get("phone")}, a.modified)
        self.ctx.stats.wrote(APP, "customers", "update", 1)
        return ok({**_customer_out(row), "status": "success"})


def seed_bookings(ctx: Context, *, count: int, seed: int, module: str | None) -> dict[str, int]:
    from engine.sandbox.seed import NOTES, slot_person

    setup = ensure_setup(ctx)
    services, staffs = setup["services"], setup["staffs"]
    created = {"customers": 0, "appointments": 0}
    now = ctx.now()
    with ctx.store.transaction():
        if module in (None, "customers"):
            start = ctx.store.count(APP, "customers") + ctx.store.count(APP, "customers", deleted=True)
            for j in range(start, start + count):
                p = slot_person(APP, seed, j)
                r = random.Random(f"{seed}:{APP}:customers:{j}")
                at = now - timedelta(days=r.randint(0, 400), seconds=r.randint(0, 86399))
                ctx.store.insert(APP, "customers", ctx.store.new_id(APP),
                                 {"name": f"{p['first']} {p['last']}", "first_name": p["first"],
                                  "last_name": p["last"], "email": p["email"], "phone": p["phone"],
                                  "type": "Guest"}, timefmt.to_db(at))
                created["customers"] += 1
        customers = ctx.store.query(APP, "customers", order="seq")
        if module in (None, "appointments") and customers:
            taken: set[tuple[str, str]] = {(a.data["staff_id"], a.data["start_time"])
                                           for a in ctx.store.query(APP, "appointments")}
            for j in range(count):
                r = random.Random(f"{seed}:{APP}:appointments:{j}")
                c = customers[r.randrange(len(customers))]
                svc = services[r.randrange(len(services))]
                staff_id = svc.data["assigned_staffs"][r.randrange(len(svc.data["assigned_staffs"]))]
                staff = next(s for s in staffs if s.id == staff_id)
                for _ in range(50):
                    day = (now + timedelta(days=r.randint(-60, 60))).date()
                    start = datetime(day.year, day.month, day.day, r.randint(DAY_START, DAY_END - 2),
                                     r.choice((0, 30)), tzinfo=timezone.utc)
                    key = (staff.id, timefmt.to_db(start))
                    if key not in taken:
                        break
                taken.add(key)
                minutes = svc.data["duration"]
                if start < now:
                    status = r.choices(("completed", "noshow", "cancel"), (8, 1, 1))[0]
                else:
                    status = "upcoming" if r.random() < 0.9 else "cancel"
                booked = min(now, start) - timedelta(days=r.randint(1, 30))
                num = ctx.store.next_number("booking")
                ctx.store.insert(APP, "appointments", f"#SB-{num:05d}", {
                    "service_id": svc.id, "service_name": svc.data["name"], "staff_id": staff.id,
                    "staff_name": staff.data["name"], "workspace_id": svc.data["workspace_id"],
                    "start_time": timefmt.to_db(start), "end_time": timefmt.to_db(start + timedelta(minutes=minutes)),
                    "duration": minutes, "time_zone": "UTC", "customer_id": c.id,
                    "customer_name": c.data.get("name"), "customer_email": c.data.get("email"),
                    "customer_contact_no": c.data.get("phone"), "cost": svc.data["price"], "status": status,
                    "notes": r.choice(NOTES) if r.random() < 0.3 else None}, timefmt.to_db(booked))
                created["appointments"] += 1
    for m, n in created.items():
        ctx.stats.wrote(APP, m, "seed", n)
    return {m: n for m, n in created.items() if module in (None, m)}
