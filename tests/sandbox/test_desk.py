"""Zoho Desk v1 as documented: orgId, from/limit, 204, the 422 error shape, moveToTrash, search."""

from __future__ import annotations

import re

import pytest


def make_contact(client, **values):
    r = client.post("/api/v1/contacts", json={"lastName": "Doe", **values})
    assert r.status_code == 200, r.text
    return r.json()


def test_org_id_is_required_as_header_or_query(client):
    del client.headers["orgId"]
    r = client.get("/api/v1/contacts")
    assert r.status_code == 400 and r.json()["errorCode"] and "orgId" in r.json()["message"]
    assert client.get("/api/v1/contacts", params={"orgId": "60001234"}).status_code == 204


def test_invalid_token_is_desk_401(anon):
    r = anon.get("/api/v1/contacts", headers={"orgId": "1", "Authorization": "Zoho-oauthtoken nope"})
    assert r.status_code == 401 and r.json()["errorCode"] == "INVALID_OAUTH"


def test_create_returns_full_record_with_desk_formats(any_client):
    c = any_client
    rec = c.post("/api/v1/contacts", json={"firstName": "Jade", "lastName": "Tywin", "email": "jade@zylker.com",
                                          "cf": {"cf_customer_type": "Premium"}}).json()
    assert re.fullmatch(r"\d+", rec["id"]) and rec["email"] == "jade@zylker.com"
    assert rec["cf"]["cf_customer_type"] == "Premium"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z", rec["createdTime"])
    got = c.get(f"/api/v1/contacts/{rec['id']}").json()
    assert got["lastName"] == "Tywin" and got["modifiedTime"] == rec["modifiedTime"]


@pytest.mark.parametrize("body,field,etype", [
    ({"firstName": "no last name"}, "/lastName", "missing"),
    ({"lastName": "X", "email": "not-an-email"}, "/email", "invalid"),
    ({"lastName": "X", "cf": {"cf_loyalty_points": "many"}}, "/cf/cf_loyalty_points", "invalid"),
    ({"lastName": "X", "accountId": "1892000000999999"}, "/accountId", "invalid"),
])
def test_validation_errors_are_422_desk_shape(client, body, field, etype):
    r = client.post("/api/v1/contacts", json=body)
    assert r.status_code == 422
    err = r.json()
    assert set(err) == {"errorCode", "message", "errors"}
    assert err["errors"][0]["fieldName"] == field and err["errors"][0]["errorType"] == etype


def test_patch_updates_and_moves_modified_time(client, clock):
    rec = make_contact(client, email="a@b.co")
    clock.advance(minutes=3)
    r = client.patch(f"/api/v1/contacts/{rec['id']}", json={"phone": "+1 555 0100"})
    assert r.status_code == 200 and r.json()["phone"] == "+1 555 0100" and r.json()["email"] == "a@b.co"
    assert r.json()["modifiedTime"] == "2026-03-02T09:33:00.000Z"
    assert client.patch("/api/v1/contacts/1892000000999999", json={"phone": "1"}).status_code == 404


def test_list_from_limit_and_204(client):
    ids = [make_contact(client, firstName=f"P{i}")["id"] for i in range(25)]
    page1 = client.get("/api/v1/contacts", params={"from": 1, "limit": 10}).json()["data"]
    page0 = client.get("/api/v1/contacts", params={"from": 0, "limit": 10}).json()["data"]
    assert [c["id"] for c in page1] == ids[:10] == [c["id"] for c in page0]
    rest = client.get("/api/v1/contacts", params={"from": 21, "limit": 10}).json()["data"]
    assert [c["id"] for c in rest] == ids[20:]
    assert client.get("/api/v1/contacts", params={"from": 26, "limit": 10}).status_code == 204
    assert client.get("/api/v1/contacts", params={"limit": 101}).status_code == 422


def test_sort_by_modified_time_desc(client, clock):
    a = make_contact(client)["id"]
    b = make_contact(client)["id"]
    clock.advance(minutes=1)
    client.patch(f"/api/v1/contacts/{a}", json={"title": "x"})
    r = client.get("/api/v1/contacts", params={"sortBy": "-modifiedTime"})
    assert [c["id"] for c in r.json()["data"]] == [a, b]


def test_products_require_department_ids(client):
    deps = client.get("/api/v1/departments").json()["data"]
    assert [d["name"] for d in deps] == ["Support", "Sales"]
    r = client.post("/api/v1/products", json={"productName": "Router"})
    assert r.status_code == 422 and r.json()["errors"][0]["fieldName"] == "/departmentIds"
    r = client.post("/api/v1/products", json={"productName": "Router", "departmentIds": [deps[0]["id"]],
                                             "unitPrice": "100.0"})
    assert r.status_code == 200 and r.json()["departmentIds"] == [deps[0]["id"]]
    listed = client.get("/api/v1/products", params={"from": 0, "limit": 10}).json()["data"]
    assert [p["productName"] for p in listed] == ["Router"]


def test_move_to_trash_204_and_recycle_bin(client, clock):
    a = make_contact(client)["id"]
    b = make_contact(client)["id"]
    clock.advance(minutes=10)
    r = client.post("/api/v1/contacts/moveToTrash", json={"contactIds": [a]})
    assert r.status_code == 204 and r.content == b""
    assert client.get(f"/api/v1/contacts/{a}").status_code == 404
    assert [c["id"] for c in client.get("/api/v1/contacts").json()["data"]] == [b]
    bin_ = client.get("/api/v1/recycleBin", params={"module": "contacts"}).json()["data"]
    assert bin_[0]["id"] == a and bin_[0]["deletedTime"] == "2026-03-02T09:40:00.000Z"
    r = client.post("/api/v1/contacts/moveToTrash", json={"contactIds": ["1892000000999999"]})
    assert r.status_code == 422


def test_search_email_phone_and_modified_time_range(client, clock):
    a = make_contact(client, email="Jade@Zylker.com", phone="+1 (555) 010-0200")["id"]
    clock.advance(minutes=40)
    b = make_contact(client, lastName="Other", email="o@x.com")["id"]
    r = client.get("/api/v1/contacts/search", params={"email": "jade@zylker.com"})
    assert r.json() == {"data": [r.json()["data"][0]], "count": 1} and r.json()["data"][0]["id"] == a
    assert client.get("/api/v1/contacts/search", params={"phone": "15550100200"}).json()["count"] == 1
    r = client.get("/api/v1/contacts/search",
                   params={"modifiedTimeRange": "2026-03-02T10:00:00.000Z,2026-03-02T11:00:00.000Z"})
    assert [c["id"] for c in r.json()["data"]] == [b]
    assert client.get("/api/v1/contacts/search", params={"lastName": "Oth*"}).json()["count"] == 1
    assert client.get("/api/v1/contacts/search", params={"email": "none@x.com"}).status_code == 204
    assert client.get("/api/v1/contacts/search", params={"modifiedTimeRange": "yesterday"}).status_code == 422


def test_tickets_and_contact_associates(client):
    dep = client.get("/api/v1/departments").json()["data"][0]["id"]
    cid = make_contact(client, email="t@x.com")["id"]
    assert client.get(f"/api/v1/contacts/{cid}/tickets").status_code == 204
    r = client.post("/api/v1/tickets", json={"subject": "Broken", "departmentId": dep, "contactId": cid})
    assert r.status_code == 200 and r.json()["status"] == "Open" and r.json()["ticketNumber"]
    r = client.post("/api/v1/tickets", json={"subject": "New person", "departmentId": dep,
                                            "contact": {"email": "new@x.com", "lastName": "New"}})
    assert r.status_code == 200
    assert client.get("/api/v1/contacts/search", params={"email": "new@x.com"}).json()["count"] == 1
    assert [t["subject"] for t in client.get(f"/api/v1/contacts/{cid}/tickets").json()["data"]] == ["Broken"]
    r = client.post("/api/v1/tickets", json={"subject": "No dept", "contactId": cid})
    assert r.status_code == 422 and r.json()["errors"][0]["fieldName"] == "/departmentId"
