"""The contract suite: every client against the real sandbox, in-process and over loopback HTTP.

Each test runs twice (the ``sandbox`` fixture). Counts of calls are checked on both sides: the
client's own ``stats()`` and the sandbox's ``/_sandbox/stats``.
"""

from __future__ import annotations

import logging
import math

import pytest

from engine.apps.base import AppClient
from engine.errors import AuthError

N = 10_000


def contacts(n: int, prefix: str = "c", *, email: bool = True) -> list[dict]:
    """``n`` contacts; ``email=False`` for bulk tests (the sandbox's unique-Email check scans the table)."""
    return [{"Last_Name": f"{prefix}{i}", "First_Name": "Ann", "Phone": f"+1 555 {i:07d}",
             **({"Email": f"{prefix}{i}@example.com"} if email else {})} for i in range(n)]


def read_all(client, module="Contacts", since=None, fields=("Last_Name", "Email", "Phone")):
    return [r for page in client.list_changed(module, since, fields=fields) for r in page]


def test_clients_implement_the_protocol(sandbox):
    for app in ("bigin", "zoho_crm"):
        assert isinstance(sandbox.client(app), AppClient)


def test_10000_records_take_exactly_100_batches_and_50_pages(sandbox):
    client = sandbox.client("bigin")
    results = client.create_many("Contacts", contacts(N, email=False))
    assert len(results) == N and all(r.ok and r.id for r in results)
    assert client.stats()[("Contacts", "create")] == math.ceil(N / 100) == sandbox.calls("bigin", "Contacts", "create")
    assert sandbox.stats()["records_written"]["bigin"]["Contacts"]["create"] == N
    got = read_all(client)
    assert [r.id for r in got] == [r.id for r in results]  # oldest first, every record once
    assert [r.values["Last_Name"] for r in got] == [f"c{i}" for i in range(N)]
    assert client.stats()[("Contacts", "list")] == math.ceil(N / 200) == sandbox.calls("bigin", "Contacts", "list")


def test_20_percent_429_retries_and_the_data_is_exact(sandbox):
    sandbox.faults(rate_429=0.2, seed=11)
    client = sandbox.client("bigin")
    results = client.create_many("Contacts", contacts(N, email=False))
    assert all(r.ok for r in results), [r for r in results if not r.ok][:1]
    got = read_all(client)
    assert sorted(r.id for r in got) == sorted(r.id for r in results)
    stats = sandbox.stats()
    assert stats["calls"]["bigin"]["Contacts"] == {"create": 100, "list": 50}
    assert stats["records_written"]["bigin"]["Contacts"]["create"] == N
    assert stats["faults"]["429"] > 0
    assert sum(client.retry_stats().values()) == stats["faults"]["429"] == len(sandbox.sleeps)
    assert client.stats()[("Contacts", "create")] == 100 and client.stats()[("Contacts", "list")] == 50


def test_a_5xx_burst_is_absorbed(sandbox):
    client = sandbox.client("bigin")
    client.create_many("Contacts", contacts(500, email=False))
    sandbox.faults(rate_5xx=1.0)
    sandbox.on_sleep.append(lambda n: n == 3 and sandbox.faults())  # the burst ends after 3 failures
    got = read_all(client)
    assert len(got) == 500 and sandbox.stats()["faults"]["5xx"] == 3
    assert client.stats()[("Contacts", "list")] == 3


def test_a_token_expiring_mid_run_is_refreshed_once(sandbox):
    client = sandbox.client("bigin")
    client.create_many("Contacts", contacts(1_000, email=False))
    pages = client.list_changed("Contacts", None, fields=["Last_Name"])
    got = list(next(pages))
    sandbox.faults(expire_tokens=True)
    got += [r for p in pages for r in p]
    assert len({r.id for r in got}) == 1_000
    assert client.http.tokens.refreshes == 2
    assert sandbox.stats()["faults"].get("401") == 1


def test_rejected_records_inside_a_batch_come_back_typed(sandbox):
    client = sandbox.client("bigin")
    client.create_many("Contacts", [{"Last_Name": "Taken", "Email": "taken@example.com"}])
    sandbox.faults(reject=[{"app": "bigin", "module": "Contacts", "field": "Last_Name", "value": "Reject me",
                            "code": "INVALID_DATA"}])
    results = client.create_many("Contacts", [
        {"Last_Name": "Fine"}, {"First_Name": "No last name"}, {"Last_Name": "Dup", "Email": "TAKEN@example.com"},
        {"Last_Name": "Reject me"}, {"Last_Name": "Also fine"}])
    assert [r.ok for r in results] == [True, False, False, False, True]
    assert (results[1].code, results[1].field) == ("MANDATORY_NOT_FOUND", "Last_Name")
    assert (results[2].code, results[2].field) == ("DUPLICATE_DATA", "Email")
    assert results[3].code == "INVALID_DATA" and not any(r.transient for r in results)
    assert {r.values["Last_Name"] for r in read_all(client)} == {"Taken", "Fine", "Also fine"}


def test_incremental_reads_updates_deletes_search_and_metadata(sandbox):
    client = sandbox.client("zoho_crm")
    created = client.create_many("Contacts", contacts(5, "m"))
    ids = [r.id for r in created]
    cursor = max(r.modified for r in read_all(client))
    assert read_all(client, since=cursor + __import__("datetime").timedelta(seconds=1)) == []
    up = client.update_many("Contacts", [(ids[0], {"Last_Name": "Changed"})])
    assert up[0].ok and up[0].id == ids[0]
    changed = {r.id: r for r in read_all(client, since=up[0].modified)}  # same-second writes come too
    assert changed[ids[0]].values["Last_Name"] == "Changed" and changed[ids[0]].modified == up[0].modified
    assert [r.id for r in client.search("Contacts", "Email", "m3@example.com")] == [ids[3]]
    assert client.search("Contacts", "Email", "nobody@example.com") == []
    assert [r.id for r in client.get_many("Contacts", [ids[4], ids[1]])] == [ids[4], ids[1]]
    deleted = client.delete_many("Contacts", [ids[2], "1111111111111111111"])
    assert deleted[0].ok and not deleted[1].ok
    feed = [d.id for p in client.list_deleted("Contacts", None) for d in p]
    assert feed == [ids[2]]
    fields = {f["api_name"]: f for f in client.fields("Contacts")}
    assert fields["Last_Name"]["mandatory"] and fields["Email"]["type"] == "email"
    users = client.users()
    assert users and {"id", "email", "name"} <= set(users[0])


def test_count_associates_counts_a_records_notes(sandbox):
    client = sandbox.client("bigin")
    [c] = client.create_many("Contacts", [{"Last_Name": "Parent"}])
    assert client.count_associates("Contacts", c.id) == 0
    notes = client.create_many("Notes", [{"Note_Content": f"n{i}", "Parent_Id": {"module": {"api_name": "Contacts"},
                                                                                  "id": c.id}} for i in range(3)])
    assert all(n.ok for n in notes), notes
    assert client.count_associates("Contacts", c.id) == 3


def test_bad_sandbox_credentials_are_an_auth_error_without_secrets(sandbox, monkeypatch, caplog):
    from engine.apps.registry import open_client
    from engine.spec.model import Connection, SandboxOptions, SecretRef

    monkeypatch.setenv("X_ID", "sandbox")
    monkeypatch.setenv("X_SECRET", "sandbox")
    monkeypatch.setenv("X_REFRESH", "wrong-refresh-token-123")
    conn = Connection(name="bad-creds", app="bigin", sandbox=SandboxOptions(), base_url=sandbox.base_url,
                      auth=(("client_id", SecretRef("env", "X_ID")), ("client_secret", SecretRef("env", "X_SECRET")),
                            ("refresh_token", SecretRef("env", "X_REFRESH"))))
    caplog.set_level(logging.DEBUG)
    client = open_client(conn, workdir=sandbox.workdir, transport=sandbox.transport, sleep=sandbox.sleep)
    try:
        with pytest.raises(AuthError) as err:
            client.users()
    finally:
        client.close()
    assert "bad-creds" in str(err.value) and "invalid_code" in str(err.value)
    texts = [str(err.value), repr(err.value)] + [r.getMessage() for r in caplog.records]
    assert not any("wrong-refresh-token-123" in t for t in texts)


def test_no_token_or_secret_in_any_log_record_or_error(sandbox, caplog):
    caplog.set_level(logging.DEBUG)
    client = sandbox.client("bigin")
    sandbox.faults(rate_429=0.3, seed=5)
    client.create_many("Contacts", contacts(300, "s"))
    sandbox.faults(expire_tokens=True)
    read_all(client)
    sandbox.faults(rate_5xx=1.0)
    with pytest.raises(Exception) as err:
        client.users()
    secrets = {"sandbox-refresh", *sandbox.transport.auth_headers}
    assert len(sandbox.transport.auth_headers) >= 2  # two access tokens were used
    texts = [r.getMessage() for r in caplog.records] + [str(err.value), repr(err.value), repr(client),
                                                        repr(client.http), repr(client.http.tokens)]
    assert any("retry" in t for t in texts)
    leaks = [(s, t) for t in texts for s in secrets if s in t]
    assert leaks == []
