"""``syncform sandbox serve`` and ``for_connection``; no token is ever written to disk or a log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from engine.sandbox import SandboxApp, for_connection, make_server
from engine.spec.model import Connection, SandboxOptions
from tests.sandbox.conftest import TOKEN_PARAMS, authorize


def test_cli_serve_port_0_prints_port_and_stops_on_ctrl_c(tmp_path):
    env = {**os.environ, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "engine", "sandbox", "serve", "--port", "0", "--data",
                             str(tmp_path / "data"), "--verbose"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        deadline = time.monotonic() + 30
        while port is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("port "):
                port = int(line.split()[1])
        assert port, proc.stderr.read()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            r = c.post("/oauth/v2/token", params=TOKEN_PARAMS)
            token = r.json()["access_token"]
            assert r.json()["api_domain"] == f"http://127.0.0.1:{port}"
            c.headers["Authorization"] = f"Zoho-oauthtoken {token}"
            assert c.post("/bigin/v2/Contacts", json={"data": [{"Last_Name": "Served"}]}).status_code == 201
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopped" in out
    assert "/bigin/v2/Contacts" in err  # verbose access log: method, path, status
    for text in (out, err):
        assert token not in text and "sandbox-refresh" not in text and "client_secret" not in text
    blob = b"".join(p.read_bytes() for p in (tmp_path / "data").iterdir())
    assert token.encode() not in blob and b"Served" in blob


def test_file_database_persists_and_never_holds_tokens(tmp_path, clock):
    db = str(tmp_path / "s.db")
    app = SandboxApp(db, clock=clock)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://s") as c:
        authorize(c)
        token = c.headers["Authorization"].split()[1]
        c.post("/crm/v8/Accounts", json={"data": [{"Account_Name": "Kept"}]})
    app.close()
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert token.encode() not in blob
    again = SandboxApp(db, clock=clock)
    assert [r.data["Account_Name"] for r in again.ctx.store.query("zoho_crm", "Accounts")] == ["Kept"]
    again.close()


def test_for_connection_caches_and_seeds_once(tmp_path):
    conn = Connection(name="bigin-demo", app="bigin", sandbox=SandboxOptions(seed=15))
    app = for_connection(conn, tmp_path)
    assert for_connection(conn, tmp_path) is app
    assert (tmp_path / ".syncform" / "sandbox" / "bigin-demo.db").exists()
    assert len(app.ctx.store.query("bigin", "Contacts")) == 15
    for_connection(conn, tmp_path)
    assert len(app.ctx.store.query("bigin", "Contacts")) == 15
    empty = for_connection(Connection(name="crm-empty", app="zoho_crm", sandbox=SandboxOptions()), tmp_path)
    assert empty.ctx.store.query("zoho_crm", "Contacts") == []


def test_loopback_server_thread(server):
    base, _ = server
    with httpx.Client(base_url=base, timeout=10) as c:
        authorize(c)
        assert c.get("/crm/v8/Contacts", params={"fields": "Email"}).status_code == 204
        assert c.get("/nope").status_code == 404


def test_make_server_binds_loopback_port_zero():
    srv = make_server("127.0.0.1", 0, None)
    try:
        assert srv.server_address[0] == "127.0.0.1" and srv.server_address[1] > 0
    finally:
        srv.server_close()
        srv.sandbox_app.close()


def test_http11_keep_alive_reuses_connections(server):
    """Every answer is HTTP/1.1 with a Content-Length (204 too), so a pooled client keeps its connections:
    60 calls from 3 threads open at most 3 connections, counted in /_sandbox/stats."""
    from concurrent.futures import ThreadPoolExecutor

    base, app = server
    with httpx.Client(base_url=base, timeout=10, limits=httpx.Limits(max_connections=3)) as c:
        authorize(c)
        c.get("/_sandbox/stats", params={"reset": "true"})
        empty = c.get("/crm/v8/Contacts", params={"fields": "Email"})
        assert empty.status_code == 204 and empty.http_version == "HTTP/1.1"
        assert empty.headers["content-length"] == "0"
        created = c.post("/bigin/v2/Contacts", json={"data": [{"Last_Name": "Kept"}]})
        assert created.status_code == 201 and int(created.headers["content-length"]) == len(created.content)

        def call(i: int) -> int:
            return c.get("/bigin/v2/Contacts", params={"fields": "Last_Name"}).status_code

        with ThreadPoolExecutor(3) as pool:
            assert set(pool.map(call, range(60))) == {200}
        stats = c.get("/_sandbox/stats").json()
    assert stats["calls"]["bigin"]["Contacts"]["list"] == 60
    assert 1 <= stats["connections"] <= 3


def test_faults_apply_per_request_on_kept_connections(server):
    """max_concurrency counts requests in flight, not connections; a 429 answer keeps the connection."""
    from concurrent.futures import ThreadPoolExecutor

    base, app = server
    with httpx.Client(base_url=base, timeout=10, limits=httpx.Limits(max_connections=6)) as c:
        authorize(c)
        c.post("/_sandbox/faults", json={"latency_ms": 150, "max_concurrency": 2}).raise_for_status()
        with ThreadPoolExecutor(6) as pool:
            codes = list(pool.map(lambda i: c.get("/bigin/v2/Contacts", params={"fields": "Email"}).status_code,
                                  range(6)))
        assert codes.count(429) >= 1 and set(codes) <= {204, 429}
        c.post("/_sandbox/faults", json={"rate_429": 1.0, "seed": 1}).raise_for_status()
        before = c.get("/_sandbox/stats").json()["connections"]
        assert [c.get("/bigin/v2/Contacts", params={"fields": "Email"}).status_code for _ in range(5)] == [429] * 5
        c.delete("/_sandbox/faults").raise_for_status()
        assert c.get("/bigin/v2/Contacts", params={"fields": "Email"}).status_code == 204
        assert c.get("/_sandbox/stats").json()["connections"] == before


def test_server_close_ends_idle_keep_alive_connections():
    """A client holding an idle connection does not keep the server (or its threads) alive."""
    srv = make_server("127.0.0.1", 0, None)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    c = httpx.Client(base_url=f"http://127.0.0.1:{srv.server_address[1]}", timeout=5)
    try:
        assert c.get("/_sandbox/stats").status_code == 200  # the connection stays open, idle
        start = time.monotonic()
        srv.shutdown()
        srv.server_close()
        t.join(5)
        assert not t.is_alive() and time.monotonic() - start < 3
        deadline = time.monotonic() + 3
        while srv.open_connections and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not srv.open_connections
    finally:
        c.close()
        srv.sandbox_app.close()
