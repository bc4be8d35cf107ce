"""The contract harness: the same suite against the in-process sandbox and ``sandbox serve`` on loopback."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.spec.model import Connection, SandboxOptions


class RecordingTransport(httpx.BaseTransport):
    """Delegates to a real transport and remembers every Authorization header sent (for redaction tests)."""

    def __init__(self, inner: httpx.BaseTransport):
        self.inner = inner
        self.auth_headers: set[str] = set()
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("authorization")
        if auth:
            with self._lock:
                self.auth_headers.add(auth.split(" ", 1)[-1])
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


class Harness:
    """One sandbox, reachable in-process or over loopback; opens clients and drives /_sandbox."""

    def __init__(self, mode: str, workdir: Path):
        self.mode = mode
        self.workdir = workdir
        self.sleeps: list[float] = []
        self.on_sleep: list[Any] = []
        self._clients: list[Any] = []
        self._server = None
        if mode == "inprocess":
            from engine.apps.registry import SANDBOX_BASE_URL
            from engine.sandbox import SandboxApp

            self.app = SandboxApp(str(workdir / "sandbox.db"))
            self.inner: httpx.BaseTransport = httpx.WSGITransport(app=self.app)
            self.base_url: str | None = None
            self.admin = httpx.Client(transport=httpx.WSGITransport(app=self.app), base_url=SANDBOX_BASE_URL)
        else:
            from engine.sandbox import make_server

            self._server = make_server("127.0.0.1", 0, workdir / "data")
            port = self._server.server_address[1]
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            daemon=True)
            self._thread.start()
            self.base_url = f"http://127.0.0.1:{port}"
            self.inner = httpx.HTTPTransport()
            self.admin = httpx.Client(base_url=self.base_url)
        self.transport = RecordingTransport(self.inner)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        for hook in list(self.on_sleep):
            hook(len(self.sleeps))

    def client(self, app: str, *, name: str | None = None, max_concurrency: int = 4, **options: Any):
        from engine.apps.registry import open_client

        conn = Connection(name=name or f"{app}-contract", app=app, sandbox=SandboxOptions(seed=0),
                          base_url=self.base_url, max_concurrency=max_concurrency)
        c = open_client(conn, workdir=self.workdir, transport=self.transport, sleep=self.sleep,
                        rng=random.Random(3), **options)
        self._clients.append(c)
        return c

    def faults(self, **kw: Any) -> dict[str, Any]:
        r = self.admin.post("/_sandbox/faults", json=kw)
        assert r.status_code == 200, r.text
        return r.json()

    def stats(self, reset: bool = False) -> dict[str, Any]:
        r = self.admin.get("/_sandbox/stats", params={"reset": "true"} if reset else None)
        assert r.status_code == 200, r.text
        return r.json()

    def calls(self, app: str, module: str, op: str) -> int:
        return self.stats()["calls"].get(app, {}).get(module, {}).get(op, 0)

    def close(self) -> None:
        for c in self._clients:
            c.close()
        self.admin.close()
        self.transport.close()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.sandbox_app.close()
        else:
            self.app.close()


@pytest.fixture(params=["inprocess", "loopback"])
def sandbox(request, tmp_path) -> Iterator[Harness]:
    h = Harness(request.param, tmp_path)
    try:
        yield h
    finally:
        h.close()
