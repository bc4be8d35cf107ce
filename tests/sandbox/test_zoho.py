"""Bigin and CRM records, shaped like the public docs' examples."""

from __future__ import annotations

import re

import pytest

from engine.sandbox.core import users_of
from tests.sandbox.conftest import TOKEN_PARAMS

INVALID_TOKEN = {"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"}


def contacts(n: int, start: int = 0) -> list[dict]:
    return [{"First_Name": "Ann", "Last_Name": f"Lee {i}", "Email": f"ann{i}@example.com"} for i in range(start, start + n)]


def create_many(client, path: str, records: list[dict]) -> list[str]:
    ids = []
    for i in range(0, len(records), 100):
        r = client.post(path, json={"data": records[i:i + 100]})
        assert r.status_code == 201, r.text
        ids += [d["details"]["id"] for d in r.json()["data"]]
    return ids


# OAuth ------------------------------------------------------------------------------------------
def test_refresh_grant_in_query_or_form_returns_own_base_url(anon):
    r = anon.post("/oauth/v2/token", params=TOKEN_PARAMS)
    body = r.json()
    assert r.status_code == 200 and body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["api_domain"] == "http://sandbox.test"
    assert "refresh_token" not in body
    r2 = anon.post("/oauth/v2/token", data=TOKEN_PARAMS)
    assert r2.json()["access_token"] != body["access_token"]


def test_token_failures_are_http_200_with_error(anon):
    bad_secret = {**TOKEN_PARAMS, "client_secret": "nope"}
    assert anon.post("/oauth/v2/token", params=bad_secret).json() == {"error": "invalid_client"}
    bad_refresh = {**TOKEN_PARAMS, "refresh_token": "1000.revoked"}
    r = anon.post("/oauth/v2/token", params=bad_refresh)
    assert r.status_code == 200 and r.json() == {"error": "invalid_code"}


def test_revoked_refresh_token_gives_invalid_code(anon):
    assert anon.post("/oauth/v2/token/revoke", params={"token": "sandbox-refresh"}).json() == {"status": "success"}
    assert anon.post("/oauth/v2/token", params=TOKEN_PARAMS).json() == {"error": "invalid_code"}


@pytest.mark.parametrize("header", [None, "Zoho-oauthtoken 1000.bogus.token", "Bearer x"])
def test_missing_or_bad_token_is_401_exact_body(anon, header):
    headers = {"Authorization": header} if header else {}
    r = anon.get("/crm/v8/Contacts", params={"fields": "Last_Name"}, headers=headers)
    assert r.status_code == 401 and r.json() == INVALID_TOKEN


def test_access_token_expires_after_lifetime(client, clock):
    assert client.get("/bigin/v2/Contacts", params={"fields": "Last_Name"}).status_code == 204
    clock.advance(seconds=3601)
    r = client.get("/bigin/v2/Contacts", params={"fields": "Last_Name"})
    assert r.status_code == 401 and r.json() == INVALID_TOKEN


# create / read ------------------------------------------------------------------------------------
def test_create_then_read_back_lookup_owner_and_formats(any_client):
    c = any_client
    r = c.post("/bigin/v2/Accounts", json={"data": [{"Account_Name": "Zylker"}], "trigger": []})
    assert r.status_code == 201
    item = r.json()["data"][0]
    assert item["code"] == "SUCCESS" and item["message"] == "record added" and item["status"] == "success"
    acc = item["details"]["id"]
    assert re.fullmatch(r"\d{19}", acc)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", item["details"]["Created_Time"])
    r = c.post("/bigin/v2/Contacts", json={"data": [
        {"First_Name": "Patricia", "Last_Name": "Boyle", "Email": "p.boyle@zylker.com", "Account_Name": {"id": acc}}]})
    cid = r.json()["data"][0]["details"]["id"]
    got = c.get(f"/bigin/v2/Contacts/{cid}").json()["data"][0]
    assert got["Account_Name"] == {"name": "Zylker", "id": acc}
    assert set(got["Owner"]) == {"name", "id", "email"}
    assert got["Full_Name"] == "Patricia Boyle"
    listed = c.get("/bigin/v2/Contacts", params={"fields": "Last_Name,Email"}).json()
    assert listed["data"] == [{"Last_Name": "Boyle", "Email": "p.boyle@zylker.com", "id": cid}]
    assert listed["info"]["more_records"] is False and listed["info"]["count"] == 1


def test_get_unknown_id_is_204_and_unknown_module_400(client):
    assert client.get("/crm/v8/Contacts/5725767000000999999").status_code == 204
    r = client.get("/crm/v8/Contactz", params={"fields": "Last_Name"})
    assert r.status_code == 400 and r.json()["code"] == "INVALID_MODULE"


def test_fields_required_for_bigin_and_v8_but_not_v2(client):
    create_many(client, "/crm/v2/Contacts", contacts(1))
    for path in ("/bigin/v2/Contacts", "/crm/v8/Contacts"):
        r = client.get(path)
        assert r.status_code == 400 and r.json()["code"] == "REQUIRED_PARAM_MISSING"
        assert r.json()["details"] == {"param_name": "fields"}
    r = client.get("/crm/v2/Contacts")
    assert r.status_code == 200 and r.json()["data"][0]["Last_Name"] == "Lee 0"
    assert set(r.json()["info"]) == {"per_page", "count", "page", "more_records"}


def test_empty_list_is_204_without_body(client):
    r = client.get("/crm/v8/Deals", params={"fields": "Deal_Name"})
    assert r.status_code == 204 and r.content == b""


def test_more_than_50_fields_is_limit_exceeded(client):
    r = client.get("/crm/v8/Contacts", params={"fields": ",".join(f"F{i}" for i in range(51))})
    assert r.status_code == 400 and r.json()["details"] == {"limit": 50, "param_name": "fields"}


# batches ------------------------------------------------------------------------------------------
def test_batch_of_100_with_one_invalid_is_207_in_input_order(client):
    recs = contacts(100)
    recs[37] = {"First_Name": "No last name"}
    r = client.post("/bigin/v2/Contacts", json={"data": recs})
    assert r.status_code == 207
    data = r.json()["data"]
    assert len(data) == 100 and sum(d["status"] == "success" for d in data) == 99
    assert data[37] == {"code": "MANDATORY_NOT_FOUND", "details": {"api_name": "Last_Name",
                        "json_path": "$.data[37].Last_Name"}, "message": "required field not found",
                        "status": "error"}


def test_101_records_is_limit_exceeded_and_nothing_written(client, app):
    r = client.post("/bigin/v2/Contacts", json={"data": contacts(101)})
    assert r.status_code == 400 and r.json()["code"] == "LIMIT_EXCEEDED"
    assert client.get("/bigin/v2/Contacts", params={"fields": "Email"}).status_code == 204


def test_all_invalid_is_400(client):
    r = client.post("/crm/v8/Contacts", json={"data": [{"Email": "x@y.z"}, {"First_Name": "a"}]})
    assert r.status_code == 400 and [d["code"] for d in r.json()["data"]] == ["MANDATORY_NOT_FOUND"] * 2


@pytest.mark.parametrize("field,value", [("Loyalty_Points", "forty"), ("Email", "not-an-email"),
                                         ("Customer_Type", "Gold"), ("Email_Opt_Out", "yes")])
def test_invalid_types_are_invalid_data(client, field, value):
    r = client.post("/bigin/v2/Contacts", json={"data": [{"Last_Name": "X", field: value}]})
    assert r.status_code == 400
    d = r.json()["data"][0]
    assert d["code"] == "INVALID_DATA" and d["details"]["api_name"] == field
    assert d["details"]["json_path"] == f"$.data[0].{field}"


def test_bad_date_and_too_long_text_are_invalid_data(client):
    r = client.post("/crm/v8/Deals", json={"data": [{"Deal_Name": "D", "Stage": "Qualification",
                                                     "Closing_Date": "31/12/2026"}]})
    assert r.json()["data"][0]["details"]["api_name"] == "Closing_Date"
    r = client.post("/crm/v8/Contacts", json={"data": [{"Last_Name": "x" * 81}]})
    assert r.json()["data"][0]["code"] == "INVALID_DATA"


def test_encrypted_field_is_refused(client):
    r = client.post("/bigin/v2/Contacts", json={"data": [{"Last_Name": "X", "Tax_ID": "123"}]})
    assert r.status_code == 400 and r.json()["data"][0]["details"]["api_name"] == "Tax_ID"


def test_unique_email_is_case_insensitive_duplicate_data(client):
    [first] = create_many(client, "/bigin/v2/Contacts", [{"Last_Name": "A", "Email": "Ann@Example.com"}])
    r = client.post("/bigin/v2/Contacts", json={"data": [{"Last_Name": "B", "Email": "ann@example.COM"}]})
    d = r.json()["data"][0]
    assert r.status_code == 400 and d["code"] == "DUPLICATE_DATA" and d["message"] == "duplicate data"
    assert d["details"]["duplicate_record"]["id"] == first
    assert d["details"]["duplicate_record"]["module"]["api_name"] == "Contacts"


def test_update_by_id_in_item_and_in_path(client, clock):
    a, b = create_many(client, "/bigin/v2/Contacts", contacts(2))
    clock.advance(minutes=5)
    r = client.put("/bigin/v2/Contacts", json={"data": [{"id": a, "Title": "CTO"}, {"id": "4876876000000999999",
                                                                                        "Title": "x"}]})
    assert r.status_code == 207
    assert r.json()["data"][0]["message"] == "record updated"
    assert r.json()["data"][1]["code"] == "INVALID_DATA"
    r = client.put(f"/bigin/v2/Contacts/{b}", json={"data": [{"Last_Name": ""}]})
    assert r.status_code == 400 and r.json()["data"][0]["code"] == "MANDATORY_NOT_FOUND"
    got = client.get(f"/bigin/v2/Contacts/{a}").json()["data"][0]
    assert got["Title"] == "CTO" and got["Modified_Time"] == "2026-03-02T09:35:00+00:00"
    assert got["Created_Time"] == "2026-03-02T09:30:00+00:00"


def test_upsert_matches_on_duplicate_check_fields(client):
    [a] = create_many(client, "/crm/v8/Contacts", [{"Last_Name": "Old", "Email": "up@example.com"}])
    r = client.post("/crm/v8/Contacts/upsert", json={"data": [
        {"Last_Name": "New", "Email": "UP@example.com"}, {"Last_Name": "Fresh", "Email": "fresh@example.com"}],
        "duplicate_check_fields": ["Email"]})
    assert r.status_code == 200
    d = r.json()["data"]
    assert (d[0]["action"], d[0]["duplicate_field"], d[0]["details"]["id"]) == ("update", "Email", a)
    assert d[1]["action"] == "insert" and d[1]["message"] == "record added"
    assert client.get(f"/crm/v8/Contacts/{a}").json()["data"][0]["Last_Name"] == "New"


def test_delete_and_deleted_feed(client, clock):
    a, b, c = create_many(client, "/bigin/v2/Contacts", contacts(3))
    clock.advance(minutes=30)
    r = client.delete("/bigin/v2/Contacts", params={"ids": f"{a},{b},4876876000000999999"})
    assert r.status_code == 207
    assert r.json()["data"][0] == {"code": "SUCCESS", "details": {"id": a}, "message": "record deleted",
                                   "status": "success"}
    assert client.get(f"/bigin/v2/Contacts/{a}").status_code == 204
    feed = client.get("/bigin/v2/Contacts/deleted", params={"type": "all"})
    assert feed.status_code == 200
    items = feed.json()["data"]
    assert {i["id"] for i in items} == {a, b}
    assert items[0]["deleted_time"] == "2026-03-02T10:00:00+00:00" and items[0]["type"] == "recycle"
    assert set(items[0]) == {"id", "display_name", "type", "deleted_time", "deleted_by", "created_by"}
    later = client.get("/bigin/v2/Contacts/deleted", headers={"If-Modified-Since": "2026-03-02T10:30:00+00:00"})
    assert later.status_code == 304
    r = client.delete("/bigin/v2/Contacts", params={"ids": ",".join(str(i) for i in range(101))})
    assert r.status_code == 400 and r.json()["code"] == "LIMIT_EXCEEDED"


# paging & incremental ---------------------------------------------------------------------------
def test_paging_2500_records_needs_page_token_past_2000(client):
    create_many(client, "/bigin/v2/Contacts", contacts(2500))
    seen, page, token, pages = [], 1, None, 0
    while True:
        params = {"fields": "Email", "per_page": 200}
        if token:
            params["page_token"] = token
        else:
            params["page"] = page
        r = client.get("/bigin/v2/Contacts", params=params)
        assert r.status_code == 200
        body = r.json()
        pages += 1
        seen += [d["Email"] for d in body["data"]]
        if not body["info"]["more_records"]:
            break
        if page * 200 >= 2000:
            token = body["info"]["next_page_token"]
        page += 1
    assert pages == 13 and len(seen) == 2500 and len(set(seen)) == 2500
    r = client.get("/bigin/v2/Contacts", params={"fields": "Email", "page": 11, "per_page": 200})
    assert r.status_code == 400
    assert r.json() == {"code": "DISCRETE_PAGINATION_LIMIT_EXCEEDED", "details": {"limit": 2000},
                        "message": "You can only get the first 2000 records without using page_token param",
                        "status": "error"}


def test_a_page_token_follows_its_last_record_so_edits_on_read_pages_skip_nothing(client, clock):
    """Reading by Modified_Time while the records already read are edited (they move to the end):
    every record is still read once, the edited ones once more at the end."""
    ids = create_many(client, "/bigin/v2/Contacts", contacts(600))
    params = {"fields": "Email", "per_page": 200, "sort_by": "Modified_Time", "sort_order": "asc"}
    first = client.get("/bigin/v2/Contacts", params=params).json()
    clock.advance(seconds=5)
    read = [d["id"] for d in first["data"]]
    edited = read[:50]
    r = client.put("/bigin/v2/Contacts", json={"data": [{"id": i, "Title": "moved"} for i in edited]})
    assert r.status_code == 200
    token, seen = first["info"]["next_page_token"], list(read)
    while token:
        body = client.get("/bigin/v2/Contacts", params={**params, "page_token": token}).json()
        seen += [d["id"] for d in body["data"]]
        token = body["info"]["next_page_token"] if body["info"]["more_records"] else None
    assert set(seen) == set(ids) and len(seen) == 600 + len(edited)
    assert seen[-len(edited):] == edited


def test_per_page_over_200_is_refused(client):
    r = client.get("/bigin/v2/Contacts", params={"fields": "Email", "per_page": 201})
    assert r.status_code == 400


def test_if_modified_since_filters_and_304(client, clock):
    create_many(client, "/crm/v8/Contacts", contacts(3))
    clock.advance(minutes=50)
    [late] = create_many(client, "/crm/v8/Contacts", contacts(1, start=10))
    r = client.get("/crm/v8/Contacts", params={"fields": "Email"},
                   headers={"If-Modified-Since": "2026-03-02T10:00:00+00:00"})
    assert [d["id"] for d in r.json()["data"]] == [late]
    r = client.get("/crm/v8/Contacts", params={"fields": "Email"},
                   headers={"If-Modified-Since": "2026-03-02T11:20:00+01:00"})
    assert r.status_code == 200  # 10:20 UTC: the late record (10:20) counts as modified at or after
    r = client.get("/crm/v8/Contacts", params={"fields": "Email"},
                   headers={"If-Modified-Since": "2026-03-02T10:21:00+00:00"})
    assert r.status_code == 304 and r.content == b""


def test_sort_by_modified_time(client, clock):
    a, b = create_many(client, "/crm/v8/Contacts", contacts(2))
    clock.advance(minutes=1)
    client.put("/crm/v8/Contacts", json={"data": [{"id": a, "Title": "x"}]})
    r = client.get("/crm/v8/Contacts", params={"fields": "Email", "sort_by": "Modified_Time", "sort_order": "asc"})
    assert [d["id"] for d in r.json()["data"]] == [b, a]
    r = client.get("/crm/v8/Contacts", params={"fields": "Email", "sort_by": "Modified_Time", "sort_order": "desc"})
    assert [d["id"] for d in r.json()["data"]] == [a, b]


# search ------------------------------------------------------------------------------------------
def test_search_criteria_email_phone_word(client):
    create_many(client, "/bigin/v2/Contacts", [
        {"First_Name": "Ann", "Last_Name": "Smith", "Email": "ann@x.com", "Phone": "+1 (555) 010-0200"},
        {"First_Name": "Bob", "Last_Name": "Smithers", "Email": "bob@x.com"},
        {"First_Name": "Cy", "Last_Name": "Jones", "Email": "cy@y.com"}])
    def names(params):
        r = client.get("/bigin/v2/Contacts/search", params=params)
        return [] if r.status_code == 204 else sorted(d["Last_Name"] for d in r.json()["data"])
    assert names({"criteria": "(Last_Name:equals:smith)"}) == ["Smith"]
    assert names({"criteria": "((Last_Name:starts_with:Smith)and(Email:equals:bob@x.com))"}) == ["Smithers"]
    assert names({"criteria": "((Last_Name:equals:Jones)or(First_Name:equals:Ann))"}) == ["Jones", "Smith"]
    assert names({"email": "ANN@x.com"}) == ["Smith"]
    assert names({"phone": "15550100200"}) == ["Smith"]
    assert names({"word": "smith"}) == ["Smith", "Smithers"]
    assert names({"email": "nobody@x.com"}) == []
    r = client.get("/bigin/v2/Contacts/search", params={"criteria": "(Last_Name:like:x"})
    assert r.status_code == 400
    assert client.get("/bigin/v2/Contacts/search").json()["code"] == "REQUIRED_PARAM_MISSING"


# metadata ----------------------------------------------------------------------------------------
def test_settings_fields_from_catalog(client):
    from engine.catalog import catalog

    r = client.get("/bigin/v2/settings/fields", params={"module": "Contacts"})
    fields = {f["api_name"]: f for f in r.json()["fields"]}
    assert set(fields) == set(catalog("bigin").module("Contacts").field_names())
    assert fields["Last_Name"]["system_mandatory"] is True and fields["Last_Name"]["data_type"] == "text"
    assert fields["Email"]["unique"] and fields["Tax_ID"]["crypt"] is not None
    assert fields["Account_Name"]["lookup"]["module"]["api_name"] == "Accounts"
    assert client.get("/bigin/v2/settings/fields").json()["details"] == {"param_name": "module"}


def test_settings_modules_and_users(client):
    mods = [m["api_name"] for m in client.get("/bigin/v2/settings/modules").json()["modules"]]
    assert "Pipelines" in mods and "Deals" not in mods
    users = client.get("/crm/v8/users", params={"type": "AllUsers"}).json()["users"]
    assert users[0]["email"] == "admin@example.com" and re.fullmatch(r"\d{19}", users[0]["id"])


# notes -------------------------------------------------------------------------------------------
def test_notes_parent_shapes_v8_and_v2(client):
    [cid] = create_many(client, "/crm/v8/Contacts", contacts(1))
    r = client.post("/crm/v8/Notes", json={"data": [{"Note_Content": "Called", "Parent_Id": {
        "module": {"api_name": "Contacts"}, "id": cid}}]})
    assert r.status_code == 201
    nid = r.json()["data"][0]["details"]["id"]
    v8 = client.get(f"/crm/v8/Notes/{nid}").json()["data"][0]
    assert v8["Parent_Id"]["module"]["api_name"] == "Contacts" and v8["Parent_Id"]["id"] == cid
    v2 = client.get(f"/crm/v2/Notes/{nid}").json()["data"][0]
    assert v2["Parent_Id"] == {"name": "Ann Lee 0", "id": cid} and v2["$se_module"] == "Contacts"
    r = client.post(f"/crm/v2/Contacts/{cid}/Notes", json={"data": [{"Note_Content": "Second"}]})
    assert r.status_code == 201
    related = client.get(f"/crm/v8/Contacts/{cid}/Notes").json()["data"]
    assert sorted(n["Note_Content"] for n in related) == ["Called", "Second"]
    r = client.post("/crm/v2/Notes", json={"data": [{"Note_Content": "v2", "Parent_Id": cid, "se_module": "Contacts"}]})
    assert r.status_code == 201
    r = client.post("/crm/v8/Notes", json={"data": [{"Note_Content": "orphan"}]})
    assert r.json()["data"][0]["details"]["api_name"] == "Parent_Id"


def test_bigin_pipeline_body_from_the_docs_is_accepted(client):
    r = client.post("/bigin/v2/Pipelines", json={"data": [
        {"Deal_Name": "Renewal", "Sub_Pipeline": "Sales Pipeline Standard", "Stage": "Qualification"}]})
    assert r.status_code == 201, r.text
    r = client.post("/bigin/v2/Pipelines", json={"data": [{"Deal_Name": "No stage"}]})
    assert r.status_code == 400 and r.json()["data"][0]["code"] == "MANDATORY_NOT_FOUND"


def test_read_only_fields_are_ignored_and_ids_are_not_taken_from_the_body(client):
    r = client.post("/crm/v8/Contacts", json={"data": [{"Last_Name": "R", "id": "1", "Created_Time":
                                                        "2001-01-01T00:00:00+00:00", "Full_Name": "Zed"}]})
    rid = r.json()["data"][0]["details"]["id"]
    got = client.get(f"/crm/v8/Contacts/{rid}").json()["data"][0]
    assert rid != "1" and got["Created_Time"] == "2026-03-02T09:30:00+00:00" and got["Full_Name"] == "R"


def test_wrong_method_and_unknown_paths(client):
    r = client.patch("/crm/v8/Contacts")
    assert r.status_code == 400 and r.json()["code"] == "INVALID_REQUEST_METHOD"
    for path in ("/crm/v9/Contacts", "/bigin/v3/Contacts", "/nowhere"):
        r = client.get(path)
        assert r.status_code == 404 and r.json()["code"] == "INVALID_URL_PATTERN"


def test_at_most_30_live_access_tokens_oldest_dropped(anon):
    tokens = [anon.post("/oauth/v2/token", params=TOKEN_PARAMS).json()["access_token"] for _ in range(31)]
    def status(t):
        return anon.get("/crm/v8/users", headers={"Authorization": f"Zoho-oauthtoken {t}"}).status_code
    assert status(tokens[0]) == 401 and status(tokens[1]) == 200 and status(tokens[-1]) == 200


def test_custom_views_and_cvid_filtering(client, app, clock):
    views = client.get("/crm/v8/settings/custom_views", params={"module": "Contacts"}).json()["custom_views"]
    by_name = {v["name"]: v["id"] for v in views}
    assert {"All Contacts", "My Contacts", "Recently Created Contacts"} <= set(by_name)
    app.seed("zoho_crm", 10, seed=4, module="Contacts")  # back-dated over ~400 days, owners vary
    create_many(client, "/crm/v8/Contacts", [{"Last_Name": "Fresh"}])
    def count(view):
        r = client.get("/crm/v8/Contacts", params={"fields": "Last_Name", "cvid": by_name[view]})
        return 0 if r.status_code == 204 else len(r.json()["data"])
    assert count("All Contacts") == 11
    assert 1 <= count("Recently Created Contacts") < 11
    assert count("My Contacts") < 11
    r = client.get("/crm/v8/Contacts", params={"fields": "Last_Name", "cvid": "123"})
    assert r.status_code == 400 and r.json()["details"] == {"param_name": "cvid"}
    assert [v["name"] for v in client.get("/bigin/v2/settings/custom_views",
                                         params={"module": "Accounts"}).json()["custom_views"]][0] == "All Companies"


def test_related_lists_of_a_record(client):
    [acc] = create_many(client, "/bigin/v2/Accounts", [{"Account_Name": "Rel Co"}])
    [cid] = create_many(client, "/bigin/v2/Contacts", [{"Last_Name": "Rel", "Account_Name": {"id": acc}}])
    create_many(client, "/bigin/v2/Tasks", [{"Subject": "Call back", "Who_Id": {"id": cid}},
                                            {"Subject": "Visit", "What_Id": {"id": acc}, "$se_module": "Accounts"}])
    tasks = client.get(f"/bigin/v2/Contacts/{cid}/Tasks").json()["data"]
    assert [t["Subject"] for t in tasks] == ["Call back"]
    assert [t["Subject"] for t in client.get(f"/bigin/v2/Accounts/{acc}/Tasks").json()["data"]] == ["Visit"]
    assert [c["id"] for c in client.get(f"/bigin/v2/Accounts/{acc}/Contacts").json()["data"]] == [cid]
    assert client.get(f"/bigin/v2/Contacts/{cid}/Pipelines").status_code == 204


def test_requested_empty_fields_come_back_null(client):
    create_many(client, "/crm/v8/Contacts", [{"Last_Name": "Sparse"}])
    rec = client.get("/crm/v8/Contacts", params={"fields": "Last_Name,Phone,Account_Name"}).json()["data"][0]
    assert rec["Phone"] is None and rec["Account_Name"] is None and rec["Last_Name"] == "Sparse"


def test_page_token_expires_after_a_day(client, clock):
    from tests.sandbox.conftest import authorize

    create_many(client, "/bigin/v2/Contacts", contacts(3))
    r = client.get("/bigin/v2/Contacts", params={"fields": "Email", "per_page": 1})
    token = r.json()["info"]["next_page_token"]
    assert r.json()["info"]["page_token_expiry"] == "2026-03-03T09:30:00+00:00"
    assert client.get("/bigin/v2/Contacts", params={"fields": "Email", "per_page": 1,
                                                    "page_token": token}).status_code == 200
    clock.advance(hours=25)
    authorize(client)
    r = client.get("/bigin/v2/Contacts", params={"fields": "Email", "per_page": 1, "page_token": token})
    assert r.status_code == 400 and r.json()["code"] == "EXPIRED_VALUE"


def test_criteria_equals_finds_any_escaped_text_value(anon):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from tests.sandbox.conftest import authorize

    client = authorize(anon)

    def esc(text: str) -> str:
        for ch in ("\\", "(", ")", ","):
            text = text.replace(ch, "\\" + ch)
        return text

    names = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), min_size=1, max_size=60).filter(
        lambda s: s.strip() == s and s)

    @settings(max_examples=60, deadline=None, database=None)
    @given(names)
    def check(name: str) -> None:
        r = client.post("/bigin/v2/Accounts", json={"data": [{"Account_Name": name}]})
        assert r.status_code in (201, 400)
        found = client.get("/bigin/v2/Accounts/search", params={"criteria": f"(Account_Name:equals:{esc(name)})"})
        assert found.status_code == 200, (name, found.text)
        assert any(d["Account_Name"].casefold() == name.casefold() for d in found.json()["data"])

    check()


def test_criteria_in_operator_with_escaped_commas(client):
    create_many(client, "/crm/v8/Accounts", [{"Account_Name": "Smith, Jones & Co"}, {"Account_Name": "Plain"},
                                            {"Account_Name": "Other"}])
    r = client.get("/crm/v8/Accounts/search", params={"criteria": r"(Account_Name:in:Smith\, Jones & Co,Plain)"})
    assert sorted(d["Account_Name"] for d in r.json()["data"]) == ["Plain", "Smith, Jones & Co"]


USERS_CRM = [u.id for u in users_of("zoho_crm")]


def test_duplicates_inside_one_batch_name_the_earlier_record_and_ids_stay_dense(client):
    """A batch's records are written together at its end: a duplicate of an earlier record of the same
    batch is still DUPLICATE_DATA naming that record (and its owner), rejected records take no id, and
    every created record can be read back and found by its unique value."""
    recs = [{"Last_Name": "A", "Email": "Same@Example.com", "Owner": {"id": USERS_CRM[1]}},
            {"Last_Name": "B", "Email": "same@example.COM"},
            {"First_Name": "no last name"},
            {"Last_Name": "C", "Email": "c@example.com"}]
    r = client.post("/crm/v8/Contacts", json={"data": recs})
    assert r.status_code == 207
    a, dup, bad, c = r.json()["data"]
    assert a["status"] == "success" and c["status"] == "success" and bad["code"] == "MANDATORY_NOT_FOUND"
    assert dup["code"] == "DUPLICATE_DATA"
    assert dup["details"]["duplicate_record"]["id"] == a["details"]["id"]
    assert dup["details"]["duplicate_record"]["Owner"]["id"] == USERS_CRM[1]
    assert int(c["details"]["id"]) - int(a["details"]["id"]) == 3  # the next id, as one by one
    [next_id] = create_many(client, "/crm/v8/Contacts", [{"Last_Name": "D"}])
    assert int(next_id) - int(c["details"]["id"]) == 3
    found = client.get("/crm/v8/Contacts/search", params={"email": "c@example.com"}).json()["data"]
    assert [x["id"] for x in found] == [c["details"]["id"]]
    again = client.post("/crm/v8/Contacts", json={"data": [{"Last_Name": "E", "Email": "SAME@example.com"}]})
    assert again.json()["data"][0]["details"]["duplicate_record"]["id"] == a["details"]["id"]


def test_batch_update_reindexes_changed_unique_values_only(client):
    a, b = create_many(client, "/bigin/v2/Contacts", contacts(2))
    r = client.put("/bigin/v2/Contacts", json={"data": [{"id": a, "Title": "CTO"},
                                                        {"id": b, "Email": "moved@example.com"},
                                                        {"id": a, "Email": "moved@example.com"}]})
    assert r.status_code == 207
    ok1, ok2, dup = r.json()["data"]
    assert ok1["status"] == ok2["status"] == "success"
    assert dup["code"] == "DUPLICATE_DATA" and dup["details"]["duplicate_record"]["id"] == b
    assert [x["id"] for x in client.get("/bigin/v2/Contacts/search",
                                        params={"email": "moved@example.com"}).json()["data"]] == [b]
    assert client.get("/bigin/v2/Contacts/search", params={"email": "ann1@example.com"}).status_code == 204
    assert [x["id"] for x in client.get("/bigin/v2/Contacts/search",
                                        params={"email": "ann0@example.com"}).json()["data"]] == [a]
