"""Zoho Bookings v1: the response.returnvalue envelope, dd-MMM-yyyy dates, failures as HTTP 200."""

from __future__ import annotations

import json
import re

BASE = "/bookings/v1/json"


def rv(r):
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["response"]["status"] == "success"
    return body["response"]["returnvalue"]


def setup(client):
    ws = rv(client.get(f"{BASE}/workspaces"))["data"][0]
    services = rv(client.get(f"{BASE}/services", params={"workspace_id": ws["id"]}))["data"]
    consult = next(s for s in services if s["name"] == "Consultation")
    staff = rv(client.get(f"{BASE}/staffs", params={"workspace_id": ws["id"]}))["data"]
    return ws, consult, staff


def book(client, service, staff_id, when="05-Mar-2026 10:00:00", email="ann@example.com"):
    return client.post(f"{BASE}/appointment", data={
        "service_id": service["id"], "staff_id": staff_id, "from_time": when, "timezone": "UTC",
        "customer_details": json.dumps({"name": "Ann Lee", "email": email, "phone_number": "+1 555 0100"})})


def test_workspaces_services_staff(any_client):
    ws, consult, staff = setup(any_client)
    assert ws["name"] == "Sandbox Clinic" and consult["duration"] == "30 mins"
    assert set(consult["assigned_staffs"]) <= {s["id"] for s in staff}


def test_available_slots_and_booking(client):
    _, consult, staff = setup(client)
    sid = consult["assigned_staffs"][0]
    slots = rv(client.get(f"{BASE}/availableslots", params={"service_id": consult["id"], "staff_id": sid,
                                                              "selected_date": "05-Mar-2026"}))
    assert slots["response"] is True and "10:00" in slots["data"] and slots["time_zone"] == "UTC"
    appt = rv(book(client, consult, sid))
    assert re.fullmatch(r"#[A-Z]{2}-\d{5}", appt["booking_id"])
    assert appt["start_time"] == "05-Mar-2026 10:00:00" and appt["end_time"] == "05-Mar-2026 10:30:00"
    assert appt["status"] == "upcoming" and appt["customer_email"] == "ann@example.com"
    slots = rv(client.get(f"{BASE}/availableslots", params={"service_id": consult["id"], "staff_id": sid,
                                                              "selected_date": "05-Mar-2026"}))
    assert "10:00" not in slots["data"]
    failed = rv(book(client, consult, sid, email="bob@example.com"))
    assert failed["status"] == "failure" and "not available" in failed["message"]
    bad_date = rv(client.get(f"{BASE}/availableslots", params={"service_id": consult["id"], "staff_id": sid,
                                                                 "selected_date": "2026-03-05"}))
    assert bad_date["status"] == "failure"


def test_get_reschedule_cancel(client):
    _, consult, _ = setup(client)
    sid = consult["assigned_staffs"][0]
    bid = rv(book(client, consult, sid))["booking_id"]
    got = rv(client.get(f"{BASE}/getappointment", params={"booking_id": bid}))
    assert got["booking_id"] == bid and got["booked_on"] == "02-Mar-2026 09:30:00"
    moved = rv(client.post(f"{BASE}/rescheduleappointment", data={"booking_id": bid,
                                                                 "start_time": "06-Mar-2026 14:00:00"}))
    assert moved["start_time"] == "06-Mar-2026 14:00:00"
    cancelled = rv(client.post(f"{BASE}/updateappointment", data={"booking_id": bid, "action": "cancel"}))
    assert cancelled["status"] == "cancel"
    again = rv(client.post(f"{BASE}/rescheduleappointment", data={"booking_id": bid,
                                                                 "start_time": "07-Mar-2026 14:00:00"}))
    assert again["status"] == "failure"
    assert rv(client.get(f"{BASE}/getappointment", params={"booking_id": "#XX-99999"}))["status"] == "failure"


def test_fetch_with_customer_info_and_paging(client):
    _, consult, _ = setup(client)
    sid = consult["assigned_staffs"][0]
    for h in range(10, 15):
        rv(book(client, consult, sid, when=f"05-Mar-2026 {h}:00:00", email=f"c{h}@example.com"))
    page = rv(client.post(f"{BASE}/fetchappointment", data={
        "from_time": "05-Mar-2026 00:00:00", "to_time": "05-Mar-2026 23:59:59", "per_page": "2", "page": "1",
        "need_customer_more_info": "true"}))
    assert len(page["response"]) == 2 and page["next_page_available"] is True and page["page"] == 1
    assert page["response"][0]["customer_more_info"]["email"] == "c10@example.com"
    last = rv(client.post(f"{BASE}/fetchappointment", data={"data": json.dumps({
        "from_time": "05-Mar-2026 00:00:00", "to_time": "05-Mar-2026 23:59:59", "per_page": 2, "page": 3})}))
    assert len(last["response"]) == 1 and last["next_page_available"] is False
    assert rv(client.post(f"{BASE}/fetchappointment", data={"per_page": "101"}))["status"] == "failure"


def test_add_and_update_customer_and_sandbox_listing(client):
    added = rv(client.post(f"{BASE}/addcustomer", data={"customerMap": json.dumps(
        [{"name": "Zed Q", "email": "zed@example.com", "contact_number": "+44 20 7946 0000"}])}))
    cust = added["data"][0]
    assert cust["type"] == "Guest" and cust["status"] == "success"
    upd = rv(client.post(f"{BASE}/updatecustomer", data={"data": json.dumps({"id": cust["id"], "name": "Zed Quinn"})}))
    assert upd["name"] == "Zed Quinn" and upd["email"] == "zed@example.com"
    listed = client.get("/_sandbox/customers").json()
    assert "not" in listed["note"] and [c["name"] for c in listed["data"]] == ["Zed Quinn"]
    bad = rv(client.post(f"{BASE}/addcustomer", data={"customerMap": json.dumps({"name": "X", "email": "nope"})}))
    assert bad["status"] == "failure"
    many = [{"name": f"N{i}"} for i in range(11)]
    assert rv(client.post(f"{BASE}/addcustomer", data={"customerMap": json.dumps(many)}))["status"] == "failure"


def test_multipart_form_data_as_curl_dash_f_sends_it(client):
    _, consult, _ = setup(client)
    r = client.post(f"{BASE}/appointment", files={
        "service_id": (None, consult["id"]), "staff_id": (None, consult["assigned_staffs"][0]),
        "from_time": (None, "30-Apr-2026 22:00:00"),
        "customer_details": (None, json.dumps({"name": "Multi Part", "email": "mp@example.com"}))})
    appt = rv(r)
    assert appt["start_time"] == "30-Apr-2026 22:00:00" and appt["customer_name"] == "Multi Part"
    assert appt["booked_on"] == "02-Mar-2026 09:30:00"
