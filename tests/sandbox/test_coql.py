"""COQL (``POST /coql``) and CRM's record count (``GET /{M}/actions/count``), as the vendors document them."""

from __future__ import annotations

import pytest

from tests.sandbox.test_zoho import create_many


def coql(client, query: str, app: str = "bigin"):
    path = "/bigin/v2/coql" if app == "bigin" else "/crm/v8/coql"
    return client.post(path, json={"select_query": query})


@pytest.fixture
def people(client):
    recs = [{"First_Name": "Ann" if i % 2 else "Bob", "Last_Name": f"Lee {i}", "Email": f"p{i}@example.com",
             "Loyalty_Points": i} for i in range(450)]
    return create_many(client, "/bigin/v2/Contacts", recs)


def test_pages_by_offset_in_id_order_with_more_records(client, people):
    r = coql(client, "select Last_Name, Email from Contacts where id is not null limit 200 offset 400")
    body = r.json()
    assert r.status_code == 200 and body["info"] == {"count": 50, "more_records": False}
    assert [d["id"] for d in body["data"]] == sorted(people)[400:]
    assert set(body["data"][0]) == {"Last_Name", "Email", "id"}
    first = coql(client, "select Last_Name from Contacts limit 0, 200").json()  # `limit offset, count`
    assert [d["id"] for d in first["data"]] == sorted(people)[:200] and first["info"]["more_records"] is True
    assert coql(client, "select Last_Name from Contacts limit 200 offset 450").status_code == 204


def test_where_and_or_parentheses_comparators(client, people):
    q = ("select Last_Name from Contacts where ((First_Name = 'Ann' and Loyalty_Points between 10 and 20) "
         "or (Loyalty_Points in (0, 1, 2) and Email is not null)) order by Loyalty_Points desc")
    got = [d["Last_Name"] for d in coql(client, q).json()["data"]]
    assert got == [f"Lee {i}" for i in (19, 17, 15, 13, 11, 2, 1, 0)]
    n = coql(client, "select Last_Name from Contacts where Loyalty_Points >= 440 and Loyalty_Points != 445")
    assert len(n.json()["data"]) == 9
    lower = sorted(people)[399]
    assert len(coql(client, f"select Email from Contacts where id > {lower}").json()["data"]) == 50
    assert coql(client, "select Email from Contacts where Title is null").json()["info"]["count"] == 200


def test_count_aggregate_and_crm_record_count(client, people):
    body = coql(client, "select COUNT(id) from Contacts where Loyalty_Points < 100").json()
    assert body["data"] == [{"COUNT(id)": 100}]
    create_many(client, "/crm/v8/Contacts", [{"Last_Name": f"C{i}"} for i in range(30)])
    assert client.get("/crm/v8/Contacts/actions/count").json() == {"count": 30}
    later = client.get("/crm/v8/Contacts/actions/count",
                       params={"criteria": "(Modified_Time:greater_equal:2099-01-01T00:00:00+00:00)"})
    assert later.json() == {"count": 0}
    assert client.get("/bigin/v2/Contacts/actions/count").status_code == 404  # Bigin documents none


def test_lookups_and_owners_come_back_as_ids_only(client, people):
    d = coql(client, "select Owner, Account_Name, Modified_Time from Contacts limit 1").json()["data"][0]
    assert set(d["Owner"]) == {"id"} and d["Account_Name"] is None
    assert d["Modified_Time"].endswith("+00:00")
    j = coql(client, "select Owner.email, Account_Name.Account_Name from Contacts limit 1").json()["data"][0]
    assert "@" in j["Owner.email"] and j["Account_Name.Account_Name"] is None  # Lookup.Field: joined
    r = coql(client, "select Email from Contacts where Account_Name.Account_Name = 'x'")
    assert r.status_code == 400 and r.json()["code"] == "INVALID_QUERY"  # joins in the select column only


@pytest.mark.parametrize("query, code", [
    ("select Email, from Contacts", "SYNTAX_ERROR"),
    ("select Email from Contacts where Email = ", "SYNTAX_ERROR"),
    ("select Email from Contacts where (Email = 'a'", "SYNTAX_ERROR"),
    ("select Nope from Contacts", "INVALID_QUERY"),
    ("select Email from Nowhere", "INVALID_QUERY"),
    ("", "INVALID_QUERY"),
    ("select Email from Contacts limit 201", "LIMIT_EXCEEDED"),
    ("select Email from Contacts limit 200 offset 9801", "LIMIT_EXCEEDED"),
    ("select Email from Contacts limit 9800, 400", "LIMIT_EXCEEDED"),
])
def test_errors_in_the_vendors_envelope(client, query, code):
    r = coql(client, query)
    body = r.json()
    assert r.status_code == 400 and body["code"] == code and body["status"] == "error" and body["message"]


def test_crm_v7_and_later_allow_2000_per_call_and_100000_by_offset(client):
    assert coql(client, "select Email from Contacts limit 2000 offset 98000", "zoho_crm").status_code == 204
    r = client.post("/crm/v6/coql", json={"select_query": "select Email from Contacts limit 2000"})
    assert r.status_code == 400 and r.json()["code"] == "LIMIT_EXCEEDED"


def test_a_coql_call_counts_as_a_read(client, app, people):
    app.ctx.stats.reset()
    coql(client, "select Email from Contacts")
    coql(client, "select COUNT(id) from Contacts")
    assert app.stats["calls"]["bigin"]["Contacts"] == {"coql": 2}
