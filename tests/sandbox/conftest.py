"""Sandbox fixtures: an in-process app (httpx WSGI transport) and the same app served on loopback."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from engine.sandbox import SandboxApp, make_server

TOKEN_PARAMS = {"grant_type": "refresh_token", "client_id": "sandbox", "client_secret": "sandbox",
                "refresh_token": "sandbox-refresh"}


class Clock:
    """An injectable clock: starts at a fixed instant, moves only when told."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 30, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def token_for(client: httpx.Client) -> str:
    r = client.post("/oauth/v2/token", params=TOKEN_PARAMS)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def authorize(client: httpx.Client) -> httpx.Client:
    client.headers["Authorization"] = f"Zoho-oauthtoken {token_for(client)}"
    client.headers["orgId"] = "60001234"
    return client


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(clock: Clock) -> SandboxApp:
    a = SandboxApp(":memory:", clock=clock)
    yield a
    a.close()


@pytest.fixture
def anon(app: SandboxApp) -> httpx.Client:
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://sandbox.test") as c:
        yield c


@pytest.fixture
def server(app: SandboxApp):
    """The threaded server of ``syncform sandbox serve`` on a free loopback port, serving ``app``
    (same clock); yields (base URL, app)."""
    srv = make_server("127.0.0.1", 0, None, app=app)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", app
    srv.shutdown()
    srv.server_close()
    t.join(5)


@pytest.fixture(params=["wsgi", "loopback"])
def client(request, anon):
    """An authorised client (with orgId): every contract test runs in-process (httpx WSGI transport)
    and over real HTTP against the threaded server on loopback."""
    if request.param == "wsgi":
        yield authorize(anon)
        return
    base, _ = request.getfixturevalue("server")
    with httpx.Client(base_url=base, timeout=10) as c:
        yield authorize(c)


@pytest.fixture
def any_client(client):
    return client
