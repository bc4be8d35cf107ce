"""The Zoho (Bigin/CRM) client and the HTTP layer against documented envelopes (httpx.MockTransport)."""

from __future__ import annotations

import logging
import math
import random
from datetime import timedelta

import httpx
import pytest

from engine.apps.base import AppClient, ListFilter
from engine.apps.registry import open_client
from engine.errors import AuthError, ProtocolError, RateLimitedError, TerminalAppError, TransientAppError
from engine.spec.model import Connection, SecretRef
from tests.apps.fakes import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, T0, FakeZoho

AUTH = (("client_id", SecretRef("env", "T_CLIENT_ID")), ("client_secret", SecretRef("env", "T_CLIENT_SECRET")),
        ("refresh_token", SecretRef("env", "T_REFRESH")))


@pytest.fixture
def fake() -> FakeZoho:
    return FakeZoho()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make(fake, sleeps, tmp_path, monkeypatch):
    monkeypatch.setenv("T_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("T_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("T_REFRESH", REFRESH_TOKEN)
    clients = []

    def make(app: str = "bigin", **kw):
        conn = Connection(name="bigin-prod", app=app, base_url="http://zoho.test", auth=AUTH,
                          max_concurrency=kw.pop("max_concurrency", 4))
        c = open_client(conn, workdir=tmp_path, transport=kw.pop("transport", fake.transport),
                        sleep=sleeps.append, rng=random.Random(1), **kw)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def test_client_implements_the_protocol(make):
    assert isinstance(make(), AppClient)


def test_reading_10000_records_takes_50_pages_switching_to_page_token(fake, make):
    fake.add("Contacts", 10_000)
    client = make(max_concurrency=1)  # the list path (a parallel read is COQL: tests/apps/test_contract.py)
    pages = list(client.list_changed("Contacts", None, fields=["Last_Name", "Email"]))
    ids = [r.id for p in pages for r in p]
    assert len(ids) == len(set(ids)) == 10_000
    assert client.stats()[("Contacts", "list")] == math.ceil(10_000 / 200) == fake.stats[("Contacts", "list")]
    tokened = [r for r in fake.requests if "page_token" in r.url.params]
    assert len(tokened) == 40 and all("page" not in r.url.params for r in tokened)
    first = next(r for r in fake.requests if r.url.path.endswith("/Contacts"))
    assert first.url.params["sort_by"] == "Modified_Time" and first.url.params["sort_order"] == "asc"
    assert set(first.url.params["fields"].split(",")) >= {"Last_Name", "Email", "Modified_Time"}
    assert first.headers["authorization"].startswith("Zoho-oauthtoken ")


def test_list_changed_sends_if_modified_since_and_304_means_nothing(fake, make):
    fake.add("Contacts", 5)
    client = make(max_concurrency=1)  # the list path (a parallel read is COQL: tests/apps/test_contract.py)
    since = T0 + timedelta(seconds=3)
    got = [r for p in client.list_changed("Contacts", since, fields=["Last_Name"]) for r in p]
    assert [r.modified >= since for r in got] == [True] * 3
    req = fake.requests[-1]
    assert req.headers["if-modified-since"] == "2026-01-01T00:00:03+00:00"
    assert list(client.list_changed("Contacts", T0 + timedelta(days=1), fields=["Last_Name"])) == []
    assert fake.answered[304] == 1


def test_list_changed_applies_the_creation_floor(fake, make):
    fake.add("Contacts", 4)
    client = make(max_concurrency=1)  # the list path (a parallel read is COQL: tests/apps/test_contract.py)
    got = [r for p in client.list_changed("Contacts", None, fields=["Last_Name"],
                                          filter=ListFilter(created_after=T0 + timedelta(seconds=3))) for r in p]
    assert len(got) == 2


def test_default_fields_come_from_the_catalog_and_stay_within_50(fake, make):
    fake.add("Contacts", 1)
    client = make(max_concurrency=1)  # the list path (a parallel read is COQL: tests/apps/test_contract.py)
    list(client.list_changed("Contacts", None))
    fields = fake.requests[-1].url.params["fields"].split(",")
    assert 2 < len(fields) <= 50 and "Last_Name" in fields and "id" not in fields


def test_more_than_50_explicit_fields_is_a_clear_error(make):
    with pytest.raises(TerminalAppError, match="at most 50"):
        list(make().list_changed("Contacts", None, fields=[f"F{i}" for i in range(60)]))


def test_writing_10000_records_takes_100_batches_with_results_in_order(fake, make):
    client = make()
    results = client.create_many("Contacts", [{"Last_Name": f"N{i}"} for i in range(10_000)])
    assert len(results) == 10_000 and all(r.ok and r.id for r in results)
    assert client.stats()[("Contacts", "create")] == 100 == fake.stats[("Contacts", "create")]
    assert [fake.records["Contacts"][r.id]["Last_Name"] for r in results[:3]] == ["N0", "N1", "N2"]
    assert results[0].modified is not None


def test_20_percent_429_is_retried_and_the_data_is_exact(fake, make, sleeps):
    fake.rate_429 = 0.2
    client = make(max_concurrency=1)  # the list path (a parallel read is COQL: tests/apps/test_contract.py)
    results = client.create_many("Contacts", [{"Last_Name": f"N{i}"} for i in range(2_000)])
    assert all(r.ok for r in results)
    assert len(fake.records["Contacts"]) == 2_000
    got = {r.id for p in client.list_changed("Contacts", None, fields=["Last_Name"]) for r in p}
    assert got == set(fake.records["Contacts"])
    assert fake.answered[429] > 0 and len(sleeps) == fake.answered[429]
    assert client.stats()[("Contacts", "create")] == 20 and client.stats()[("Contacts", "list")] == 10
    assert sum(client.retry_stats().values()) == fake.answered[429]
    assert all(0 <= s <= 30 for s in sleeps)


def test_retry_after_is_honoured(fake, make, sleeps):
    fake.rate_429, fake.retry_after = 1.0, "7"
    client = make()
    with pytest.raises(RateLimitedError) as err:
        client.get_many("Contacts", ["1"])
    assert err.value.retry_after == 7.0 and err.value.transient
    assert sleeps == [7.0] * 5  # 6 attempts, 5 waits


def test_backoff_grows_with_full_jitter(fake, make, sleeps):
    fake.fail_5xx = 100
    with pytest.raises(TransientAppError, match="INTERNAL_ERROR"):
        make().users()
    assert len(sleeps) == 5
    caps = [min(30, 0.5 * 2 ** i) for i in range(5)]
    assert all(0 <= s <= c for s, c in zip(sleeps, caps))


def test_a_5xx_burst_is_absorbed(fake, make):
    fake.add("Contacts", 450)
    fake.fail_5xx = 3
    client = make(max_concurrency=1)  # the list path (a parallel read is COQL: tests/apps/test_contract.py)
    got = [r for p in client.list_changed("Contacts", None, fields=["Last_Name"]) for r in p]
    assert len(got) == 450 and fake.answered[503] == 3


def test_batch_still_failing_after_retries_yields_transient_results_per_record(fake, make):
    client = make()
    fake.fail_5xx = 6  # exactly the attempts of the first batch
    results = client.create_many("Contacts", [{"Last_Name": f"N{i}"} for i in range(150)])
    assert [r.transient for r in results[:100]] == [True] * 100 and not any(r.ok for r in results[:100])
    assert all(r.ok for r in results[100:]) and len(fake.records["Contacts"]) == 50
    assert results[0].code == "INTERNAL_ERROR"


def test_token_expiring_mid_run_is_refreshed_once(fake, make):
    fake.add("Contacts", 1_000)
    client = make(max_concurrency=1)  # the list path (a parallel read is COQL: tests/apps/test_contract.py)
    pages = client.list_changed("Contacts", None, fields=["Last_Name"])
    got = [r for r in next(pages)]
    fake.expire_tokens()
    got += [r for p in pages for r in p]
    assert len(got) == 1_000 and fake.issued == 2
    assert client.stats()[("Contacts", "list")] == 5


def test_a_refused_refresh_token_is_an_auth_error_naming_the_connection(fake, make, caplog):
    fake.token_error = "invalid_code"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthError) as err:
        make().users()
    text = str(err.value)
    assert "bigin-prod" in text and "invalid_code" in text and "refresh_token" in text
    for secret in (CLIENT_SECRET, REFRESH_TOKEN):
        assert secret not in text and secret not in repr(err.value)


def test_rejected_records_inside_a_batch_come_back_typed(fake, make):
    fake.add("Contacts", 1, Email="taken@example.com")
    client = make()
    results = client.create_many("Contacts", [{"Last_Name": "Ok"}, {"First_Name": "NoLast"},
                                              {"Last_Name": "Dup", "Email": "taken@example.com"}])
    assert [r.ok for r in results] == [True, False, False]
    assert (results[1].code, results[1].field, results[1].transient) == ("MANDATORY_NOT_FOUND", "Last_Name", False)
    assert (results[2].code, results[2].field) == ("DUPLICATE_DATA", "Email")


def test_all_rejected_batch_is_400_with_per_record_results(fake, make):
    results = make().create_many("Contacts", [{"First_Name": "a"}, {"First_Name": "b"}])
    assert [r.code for r in results] == ["MANDATORY_NOT_FOUND"] * 2 and fake.answered[400] == 1


def test_update_delete_search_get_and_deleted_feed(fake, make):
    ids = fake.add("Contacts", 3)
    client = make()
    up = client.update_many("Contacts", [(ids[0], {"Email": "a(b)@x.com"}), ("404", {"Last_Name": "x"})])
    assert up[0].ok and up[0].id == ids[0] and not up[1].ok and up[1].id == "404"
    assert [r.id for r in client.search("Contacts", "Email", "A(B)@x.com")] == [ids[0]]
    assert client.search("Contacts", "Email", "nobody@x.com") == []
    assert [r.id for r in client.get_many("Contacts", [ids[2], ids[1], ids[2]])] == [ids[2], ids[1]]
    dl = client.delete_many("Contacts", [ids[1], "404"])
    assert [r.ok for r in dl] == [True, False] and dl[0].id == ids[1]
    deleted = [d for p in client.list_deleted("Contacts", None) for d in p]
    assert [d.id for d in deleted] == [ids[1]] and deleted[0].deleted_at.tzinfo is not None


def test_fields_are_normalised_to_the_catalog_shape(make):
    fields = {f["api_name"]: f for f in make().fields("Contacts")}
    assert fields["Last_Name"]["mandatory"] and fields["Last_Name"]["length"] == 80
    assert fields["Email"]["encrypted"] and fields["Email"]["type"] == "email"
    assert fields["Account_Name"]["lookup"] == "Accounts"
    assert fields["Lead_Source"]["picklist"] == ["Web"]


def test_users(make):
    assert make().users() == [{"id": "u1", "email": "a@x.com", "name": "Ann A"}]


def test_crm_uses_v8_by_default_and_a_configured_version(fake, make):
    fake.base = "/crm/v8"
    make("zoho_crm").users()
    assert fake.requests[-1].url.path == "/crm/v8/users"
    fake.base = "/crm/v2"
    make("zoho_crm", api_path="/crm/v2").users()
    assert fake.requests[-1].url.path == "/crm/v2/users"


def test_malformed_json_is_a_protocol_error(make):
    def handler(request):
        if request.url.path == "/oauth/v2/token":
            return httpx.Response(200, json={"access_token": "1000.tok.zzzzzzzz", "expires_in": 3600})
        return httpx.Response(200, content=b"<html>oops")

    with pytest.raises(ProtocolError, match="not JSON"):
        make(transport=httpx.MockTransport(handler)).users()


def test_connection_errors_are_retried_then_transient(make, sleeps):
    def handler(request):
        raise httpx.ConnectError("connection refused")

    with pytest.raises(TransientAppError, match="connection failed"):
        make(transport=httpx.MockTransport(handler)).users()
    assert len(sleeps) == 5


def test_no_secret_in_logs_errors_or_reprs(fake, make, caplog):
    caplog.set_level(logging.DEBUG)
    fake.add("Contacts", 300)
    fake.rate_429 = 0.3
    client = make(max_concurrency=1)  # the list path (a parallel read is COQL: tests/apps/test_contract.py)
    list(client.list_changed("Contacts", None, fields=["Last_Name"]))
    fake.expire_tokens()
    client.create_many("Contacts", [{"Last_Name": "x"}])
    fake.rate_429, fake.fail_5xx = 0, 100
    with pytest.raises(TransientAppError) as err:
        client.users()
    tokens = [r.headers["authorization"].split(" ", 1)[1] for r in fake.requests if "authorization" in r.headers]
    secrets = {CLIENT_SECRET, REFRESH_TOKEN, *tokens}
    assert len(secrets) >= 4
    texts = [r.getMessage() for r in caplog.records] + [str(err.value), repr(err.value), repr(client),
                                                        repr(client.http), repr(client.http.tokens)]
    assert any("retry" in t for t in texts)  # the retries were logged ...
    for text in texts:
        for s in secrets:
            assert s not in text  # ... without a secret


def test_concurrent_requests_never_exceed_the_connection_limit(fake, make):
    import threading

    state = {"now": 0, "max": 0}
    lock = threading.Lock()
    release = threading.Event()

    def handler(request):
        if request.url.path == "/oauth/v2/token":
            return fake.handle(request)
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
            if state["now"] >= 2:
                release.set()
        release.wait(5)
        with lock:
            state["now"] -= 1
        return httpx.Response(200, json={"users": [], "info": {"more_records": False}})

    client = make(transport=httpx.MockTransport(handler), max_concurrency=2)
    from engine.apps.http import parallel

    parallel(lambda _: client.users(), list(range(12)), workers=8)
    assert state["max"] == 2


def test_a_view_id_goes_as_cvid_and_a_name_needs_custom_views(fake, make):
    fake.add("Contacts", 2)
    client = make()
    list(client.list_changed("Contacts", None, fields=["Last_Name"], filter=ListFilter(view="4000000000123")))
    assert fake.requests[-1].url.params["cvid"] == "4000000000123"
    with pytest.raises(TerminalAppError, match="numeric id") as err:
        list(client.list_changed("Contacts", None, filter=ListFilter(view="My Contacts")))
    assert err.value.code == "INVALID_VIEW"
