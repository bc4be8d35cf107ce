"""The HTTP layer's pieces: data centres, Retry-After, the registry, Desk paging edge cases."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from engine.apps.http import DATACENTERS, RetryPolicy, hosts_for, parse_retry_after
from engine.apps.registry import open_client
from engine.errors import SecretError, UsageError
from engine.spec.model import Connection, SandboxOptions, SecretRef


@pytest.mark.parametrize("dc,accounts,api,desk", [
    ("us", "https://accounts.zoho.com", "https://www.zohoapis.com", "https://desk.zoho.com"),
    ("eu", "https://accounts.zoho.eu", "https://www.zohoapis.eu", "https://desk.zoho.eu"),
    ("au", "https://accounts.zoho.com.au", "https://www.zohoapis.com.au", "https://desk.zoho.com.au"),
    ("ca", "https://accounts.zohocloud.ca", "https://www.zohoapis.ca", "https://desk.zohocloud.ca"),
    ("cn", "https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn", "https://desk.zoho.com.cn"),
])
def test_data_centre_hosts(dc, accounts, api, desk):
    h = hosts_for(dc)
    assert (h.accounts, h.api, h.desk) == (accounts, api, desk)


def test_every_contract_data_centre_is_known():
    assert set(DATACENTERS) == {"us", "eu", "in", "au", "jp", "cn", "ca", "sa"}


def test_base_url_serves_accounts_api_and_desk():
    h = hosts_for("eu", "http://127.0.0.1:8765/")
    assert h.accounts == h.api == h.desk == "http://127.0.0.1:8765"


def test_unknown_data_centre_lists_the_valid_ones():
    with pytest.raises(UsageError, match="valid: au, ca, cn, eu, in, jp, sa, us"):
        hosts_for("ue")


def test_retry_after_seconds_and_http_date():
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    assert 25 <= parse_retry_after(format_datetime(when, usegmt=True)) <= 31


def test_retry_policy_caps_retry_after_and_jitters_below_the_exponential():
    p = RetryPolicy(base_delay=1, max_delay=8, max_retry_after=60)
    rng = random.Random(0)
    assert p.delay(1, rng, retry_after=500) == 60
    assert all(0 <= p.delay(a, rng) <= min(8, 2 ** (a - 1)) for a in range(1, 10) for _ in range(20))


def test_unknown_app_lists_the_valid_ones(tmp_path):
    with pytest.raises(UsageError) as err:
        open_client(Connection(name="x", app="zoho_crn", sandbox=SandboxOptions()), workdir=tmp_path)
    assert "zoho_crm" in str(err.value)


def test_real_connection_without_auth_names_the_missing_keys(tmp_path):
    conn = Connection(name="prod", app="bigin", auth=(("client_id", SecretRef("env", "X")),))
    with pytest.raises(SecretError, match="client_secret, refresh_token"):
        open_client(conn, workdir=tmp_path)


def test_desk_without_org_id_is_a_usage_error(tmp_path, monkeypatch):
    for k in ("A", "B", "C"):
        monkeypatch.setenv(k, "value-" + k)
    conn = Connection(name="desk", app="zoho_desk", auth=(("client_id", SecretRef("env", "A")),
                      ("client_secret", SecretRef("env", "B")), ("refresh_token", SecretRef("env", "C"))))
    with pytest.raises(UsageError, match="org_id"):
        open_client(conn, workdir=tmp_path)


def test_real_connection_calls_the_data_centre_hosts(tmp_path, monkeypatch):
    for k in ("A", "B", "C"):
        monkeypatch.setenv(k, "value-" + k * 8)
    seen = []

    def handler(request):
        seen.append(str(request.url.copy_with(query=None)))
        if request.url.path == "/oauth/v2/token":
            assert b"grant_type=refresh_token" in request.content and not request.url.query
            return httpx.Response(200, json={"access_token": "1000.aaaa.bbbb", "expires_in": 3600})
        assert request.headers["orgId"] == "777"
        return httpx.Response(200, json={"data": [{"id": "1", "name": "Support"}]})

    conn = Connection(name="desk", app="zoho_desk", datacenter="eu", org_id="777",
                      auth=(("client_id", SecretRef("env", "A")), ("client_secret", SecretRef("env", "B")),
                            ("refresh_token", SecretRef("env", "C"))))
    client = open_client(conn, workdir=tmp_path, transport=httpx.MockTransport(handler))
    assert client.department_ids(["Support"]) == ["1"]
    assert seen == ["https://accounts.zoho.eu/oauth/v2/token", "https://desk.zoho.eu/api/v1/departments"]


def test_tokens_are_refreshed_before_they_expire(tmp_path):
    from engine.apps.http import HttpLayer, hosts_for
    from engine.apps.zoho import ZohoClient

    now = [0.0]
    issued = []

    def handler(request):
        if request.url.path == "/oauth/v2/token":
            issued.append(1)
            return httpx.Response(200, json={"access_token": f"1000.tok{len(issued)}.xyzxyz", "expires_in": 3600})
        return httpx.Response(200, json={"users": [], "info": {"more_records": False}})

    http = HttpLayer(app="bigin", connection="c", hosts=hosts_for("us"), transport=httpx.MockTransport(handler),
                     credentials=("id", "secret-123456", "refresh-123456"), clock=lambda: now[0])
    client = ZohoClient(http, app="bigin")
    client.users()
    now[0] = 3000.0
    client.users()
    assert len(issued) == 1
    now[0] = 3545.0  # within the 60 s margin of expiry
    client.users()
    assert len(issued) == 2


def test_desk_search_past_1000_hits_moves_the_window(tmp_path):
    """Search reaches from ≤ 999; the client restarts at the last modifiedTime and reads everything once."""
    from engine.apps.desk import DeskClient
    from engine.apps.http import HttpLayer, hosts_for

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rows = [{"id": str(10_000 + i), "lastName": f"L{i}",
             "modifiedTime": (t0 + timedelta(seconds=i // 2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")}
            for i in range(2_500)]
    calls = []

    def handler(request):
        q = request.url.params
        assert request.url.path == "/api/v1/contacts/search"
        lo = q["modifiedTimeRange"].split(",")[0]
        start, limit = int(q["from"]), int(q["limit"])
        if start > 999:
            return httpx.Response(422, json={"errorCode": "INVALID_DATA", "message": "from"})
        calls.append(start)
        hits = [r for r in rows if r["modifiedTime"] >= lo]
        chunk = hits[start:start + limit]
        return httpx.Response(200, json={"data": chunk, "count": len(hits)}) if chunk else httpx.Response(204)

    http = HttpLayer(app="zoho_desk", connection="d", hosts=hosts_for("us"), transport=httpx.MockTransport(handler))
    client = DeskClient(http, org_id="1")
    got = [r.id for p in client.list_changed("contacts", t0) for r in p]
    assert sorted(got) == sorted(r["id"] for r in rows) and len(got) == len(set(got))
    assert max(calls) <= 999


def test_a_sandbox_connection_runs_in_process_with_its_seed(tmp_path):
    conn = Connection(name="demo-bigin", app="bigin", sandbox=SandboxOptions(seed=7))
    client = open_client(conn, workdir=tmp_path)
    try:
        got = [r for p in client.list_changed("Contacts", None, fields=["Last_Name", "Email"]) for r in p]
    finally:
        client.close()
    assert len(got) == 7 and all(r.values.get("Last_Name") for r in got)
    assert (tmp_path / ".syncform" / "sandbox" / "demo-bigin.db").exists()


def test_clients_against_the_real_sandbox_serve_cli(tmp_path):
    """The real ``syncform sandbox serve --port 0`` in a subprocess, reached over loopback."""
    import os
    import re
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "engine", "sandbox", "serve", "--port", "0", "--memory"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"})
    try:
        url = None
        for _ in range(20):
            line = proc.stdout.readline()
            m = re.search(r"listening on (http://\S+)", line)
            if m:
                url = m.group(1)
                break
        assert url, "sandbox serve did not print its address"
        bigin = open_client(Connection(name="cli-bigin", app="bigin", sandbox=SandboxOptions(), base_url=url),
                            workdir=tmp_path)
        desk = open_client(Connection(name="cli-desk", app="zoho_desk", sandbox=SandboxOptions(), base_url=url),
                           workdir=tmp_path)
        try:
            res = bigin.create_many("Contacts", [{"Last_Name": "Over", "Email": "over@example.com"}])
            assert res[0].ok
            assert [r.id for r in bigin.search("Contacts", "Email", "over@example.com")] == [res[0].id]
            [c] = desk.create_many("contacts", [{"lastName": "Loop", "email": "loop@example.com"}])
            assert c.ok and [r.id for r in desk.search("contacts", "email", "loop@example.com")] == [c.id]
        finally:
            bigin.close()
            desk.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_served_sandbox_connection_reuses_its_connections_and_counts_transport_cpu(tmp_path):
    """Over loopback the layer keeps its connections alive: 50 pages and 20 write batches with 3 in
    flight open at most 4 TCP connections (3 + the token endpoint), and the CPU spent in the layer is
    counted in ``transport_cpu_seconds()``."""
    import threading

    from engine.apps.http import parallel, transport_cpu_seconds
    from engine.sandbox import make_server

    srv = make_server("127.0.0.1", 0, None)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    conn = Connection(name="kept", app="bigin", sandbox=SandboxOptions(), max_concurrency=3,
                      base_url=f"http://127.0.0.1:{srv.server_address[1]}")
    client = open_client(conn, workdir=tmp_path)
    try:
        before = transport_cpu_seconds()
        batches = [[{"Last_Name": f"Kept {b}-{i}", "Email": f"kept{b}.{i}@example.com"} for i in range(5)]
                   for b in range(20)]
        results = [r for rs in parallel(lambda b: client.create_many("Contacts", b), batches, 3) for r in rs]
        assert len(results) == 100 and all(r.ok for r in results)
        for _ in range(50):
            assert len(next(iter(client.list_changed("Contacts", None, fields=["Last_Name"])))) == 100
        assert transport_cpu_seconds() > before
        stats = srv.sandbox_app.stats
        # a full read asks page 0 and the count together (COQL, Bigin's count is select COUNT(id))
        assert stats["calls"]["bigin"]["Contacts"] == {"create": 20, "coql": 100}
        assert 1 <= stats["connections"] <= 4
    finally:
        client.close()
        srv.shutdown()
        srv.server_close()
        srv.sandbox_app.close()


def test_transport_cpu_seconds_adds_up_across_threads():
    """Each thread's CPU inside the layer is added to one process-wide total, without losing updates."""
    import threading
    import time

    from engine.apps.http import HttpLayer, hosts_for, transport_cpu_seconds

    def handler(request: httpx.Request) -> httpx.Response:
        sum(range(20_000))  # some CPU inside the transport
        return httpx.Response(200, json={"data": [{"id": "1"}] * 50})

    layer = HttpLayer(app="bigin", connection="cpu", hosts=hosts_for("us"), transport=httpx.MockTransport(handler),
                      max_concurrency=4)
    own: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        start = time.thread_time()
        for _ in range(20):
            layer.json(layer.request("POST", "https://www.zohoapis.com/x", module="M", op="create",
                                     json={"data": [{"a": 1}]}), "M", "create")
        with lock:
            own.append(time.thread_time() - start)

    before = transport_cpu_seconds()
    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    layer.close()
    spent = transport_cpu_seconds() - before
    assert 0 < spent <= sum(own) + 1e-3
    assert spent >= 0.5 * sum(own)  # nearly all of each thread's time was spent in the layer
