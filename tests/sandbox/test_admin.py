"""The sandbox's own endpoints: stats, reset, faults (reproducible by seed), seed."""

from __future__ import annotations

import threading

import httpx

from tests.sandbox.conftest import TOKEN_PARAMS, authorize


def statuses(client, n: int) -> list[int]:
    return [client.get("/bigin/v2/Contacts", params={"fields": "Email"}).status_code for _ in range(n)]


def test_stats_count_calls_and_records_per_app_module_operation(client):
    client.post("/bigin/v2/Contacts", json={"data": [{"Last_Name": f"L{i}"} for i in range(3)]})
    client.post("/bigin/v2/Contacts", json={"data": [{"First_Name": "no last name"}]})
    client.get("/bigin/v2/Contacts", params={"fields": "Last_Name"})
    client.get("/api/v1/contacts")
    s = client.get("/_sandbox/stats").json()
    assert s["calls"]["bigin"]["Contacts"] == {"create": 2, "list": 1}
    assert s["records_written"]["bigin"]["Contacts"] == {"create": 3}
    assert s["calls"]["zoho_desk"]["contacts"] == {"list": 1}
    assert s["total_calls"] == 4
    assert "Authorization" not in str(s) and client.headers["Authorization"].split()[1] not in str(s)
    client.post("/_sandbox/stats/reset")
    assert client.get("/_sandbox/stats").json()["total_calls"] == 0


def test_reset_wipes_records(client):
    client.post("/bigin/v2/Contacts", json={"data": [{"Last_Name": "X"}]})
    assert client.post("/_sandbox/reset").json() == {"status": "success"}
    assert client.get("/bigin/v2/Contacts", params={"fields": "Email"}).status_code == 204


def test_fault_rates_are_reproducible_by_seed(client):
    cfg = {"rate_429": 0.3, "rate_5xx": 0.2, "seed": 42}
    client.post("/_sandbox/faults", json=cfg)
    first = statuses(client, 40)
    client.post("/_sandbox/faults", json=cfg)
    second = statuses(client, 40)
    assert first == second
    assert {429, 500} <= set(first) and 204 in first
    r429 = next(i for i, s in enumerate(first) if s == 429)
    client.post("/_sandbox/faults", json=cfg)
    answers = [client.get("/crm/v8/Leads", params={"fields": "Email"}) for _ in range(r429 + 1)]
    assert answers[-1].json() == {"code": "TOO_MANY_REQUESTS", "details": {},
                                  "message": "The number of API requests has exceeded the limit", "status": "error"}
    stats = client.get("/_sandbox/stats").json()
    assert stats["faults"]["429"] == 2 * first.count(429) + 1
    client.post("/_sandbox/faults", json={})
    assert set(statuses(client, 10)) == {204}


def test_unknown_fault_key_is_refused(client):
    r = client.post("/_sandbox/faults", json={"rate_492": 0.5})
    assert r.status_code == 400 and "rate_492" in r.json()["error"]


def test_expire_tokens_makes_current_tokens_invalid_until_refresh(client):
    client.post("/_sandbox/faults", json={"expire_tokens": True})
    r = client.get("/bigin/v2/Contacts", params={"fields": "Email"})
    assert r.status_code == 401 and r.json()["code"] == "INVALID_TOKEN"
    authorize(client)
    assert client.get("/bigin/v2/Contacts", params={"fields": "Email"}).status_code == 204


def test_reject_rules_by_value_and_every_nth(client):
    client.post("/_sandbox/faults", json={"reject": [
        {"app": "bigin", "module": "Contacts", "field": "Last_Name", "value": "Bad", "code": "INVALID_DATA"},
        {"app": "zoho_crm", "module": "Contacts", "every_nth": 3, "code": "RECORD_LOCKED"}]})
    r = client.post("/bigin/v2/Contacts", json={"data": [{"Last_Name": "Good"}, {"Last_Name": "bad"}]})
    assert r.status_code == 207 and r.json()["data"][1]["code"] == "INVALID_DATA"
    r = client.post("/crm/v8/Contacts", json={"data": [{"Last_Name": f"L{i}"} for i in range(6)]})
    assert [d["code"] for d in r.json()["data"]] == ["SUCCESS", "SUCCESS", "RECORD_LOCKED"] * 2
    r = client.post("/api/v1/contacts", json={"lastName": "Bad"})
    assert r.status_code == 200  # the rule names bigin only


def test_max_concurrency_answers_429_beyond_the_limit(server):
    base, app = server
    app.ctx.faults.latency_ms = 0
    with httpx.Client(base_url=base, timeout=10) as c:
        authorize(c)
        c.post("/_sandbox/faults", json={"max_concurrency": 1, "latency_ms": 400})
        results: list[int] = []
        def call():
            with httpx.Client(base_url=base, timeout=10, headers=dict(c.headers)) as c2:
                results.append(c2.get("/bigin/v2/Contacts", params={"fields": "Email"}).status_code)
        threads = [threading.Thread(target=call) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert 429 in results and 204 in results
        assert c.get("/_sandbox/stats").json()["faults"]["concurrency_429"] == results.count(429)


def test_seed_is_deterministic_and_exact(client, app, clock):
    from engine.sandbox import SandboxApp

    r = client.post("/_sandbox/seed", json={"app": "bigin", "count": 30, "seed": 5})
    assert r.json()["created"]["Contacts"] == 30 and r.json()["created"]["Notes"] == 30
    other = SandboxApp(":memory:", clock=clock)
    other.seed("bigin", 30, seed=5)
    mine = [(x.id, x.data) for x in app.ctx.store.query("bigin", "Contacts")]
    theirs = [(x.id, x.data) for x in other.ctx.store.query("bigin", "Contacts")]
    assert mine == theirs
    r = client.post("/_sandbox/seed", json={"app": "bigin", "module": "Deals", "count": 1})
    assert r.status_code == 400 and "Deals" in r.json()["error"]


def test_seeded_apps_share_people_with_variations_and_near_duplicates(app):
    app.seed("bigin", 100, seed=3)
    app.seed("zoho_desk", 100, seed=3)
    bigin = app.ctx.store.query("bigin", "Contacts")
    desk = app.ctx.store.query("zoho_desk", "contacts")
    be = {r.data["Email"].strip().casefold() for r in bigin}
    de = {r.data["email"].strip().casefold() for r in desk}
    shared = be & de
    assert 50 <= len(shared) <= 65
    raw_b = {r.data["Email"] for r in bigin}
    raw_d = {r.data["email"] for r in desk}
    assert len(raw_b & raw_d) < len(shared)  # some shared people differ in case or spaces
    phones = {}
    for r in bigin:
        digits = "".join(ch for ch in r.data["Phone"] if ch.isdigit())[-10:]
        phones.setdefault(digits, set()).add(r.data["First_Name"])
    assert any(len(names) > 1 for names in phones.values())  # the same person under two names
    # every seeded record is valid by the catalog (the API would accept it back)
    r = app.ctx.store.query("bigin", "Pipelines")[0]
    assert r.data["Stage"] and r.data["Sub_Pipeline"] and r.data["Deal_Name"]


def test_timeout_fault_answers_504_after_the_delay_or_times_the_client_out(anon, server):
    c = authorize(anon)
    c.post("/_sandbox/faults", json={"timeout_rate": 1.0, "timeout_ms": 10})
    r = c.get("/crm/v8/Contacts", params={"fields": "Email"})
    assert r.status_code == 504 and r.json()["code"] == "INTERNAL_ERROR"
    base, _ = server
    c.post("/_sandbox/faults", json={"timeout_rate": 1.0, "timeout_ms": 1500})
    with httpx.Client(base_url=base, timeout=0.2, headers=dict(c.headers)) as slow:
        try:
            slow.get("/crm/v8/Contacts", params={"fields": "Email"})
            timed_out = False
        except httpx.TimeoutException:
            timed_out = True
    assert timed_out
    assert c.get("/_sandbox/stats").json()["faults"]["timeout"] == 2
    c.post("/_sandbox/faults", json={})


def test_faults_do_not_touch_oauth_or_sandbox_endpoints(anon):
    anon.post("/_sandbox/faults", json={"rate_429": 1.0, "seed": 1})
    assert anon.post("/oauth/v2/token", params=TOKEN_PARAMS).status_code == 200
    assert anon.get("/_sandbox/stats").status_code == 200


def test_seeding_twice_adds_new_records_without_duplicates(client, app):
    client.post("/_sandbox/seed", json={"app": "bigin", "count": 25, "seed": 2})
    client.post("/_sandbox/seed", json={"app": "bigin", "count": 25, "seed": 2})
    emails = [r.data["Email"].strip().casefold() for r in app.ctx.store.query("bigin", "Contacts")]
    names = [r.data["Account_Name"].casefold() for r in app.ctx.store.query("bigin", "Accounts")]
    assert len(emails) == 50 == len(set(emails)) and len(names) == 50 == len(set(names))
