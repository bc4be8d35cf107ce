"""Harness of the reliability suite: the real CLI (subprocesses) against `syncform sandbox serve` on
loopback, an optional corrupting proxy in front of it, and readers of the apps' data.

Everything here drives syncform as a user does: specs on disk, `python -m engine ...`, the sandbox's
own endpoints for faults. The test process only reads the apps (through the real clients) to judge.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
FIELDS = ("First_Name", "Last_Name", "Email", "Mobile")


def env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, "") or default)
    except ValueError:
        return default


CRASH_POINTS = env_int("SYNCFORM_CRASH_POINTS", 0)  # 0 = the fast default per scenario
LONG = os.environ.get("SYNCFORM_RELIABILITY_LONG", "") not in ("", "0")
FIGURES: dict[str, int] = {}  # counted by the tests, printed by the session hook below


def count(key: str, n: int = 1) -> None:
    FIGURES[key] = FIGURES.get(key, 0) + n


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001
    if FIGURES:
        terminalreporter.write_sep("-", "reliability figures")
        for key in sorted(FIGURES):
            terminalreporter.write_line(f"{key}: {FIGURES[key]}")


# ---------------------------------------------------------------- the CLI


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCFORM_")}
    env.update({"NO_COLOR": "1", "PYTHONPATH": str(REPO)})
    env.update(extra or {})
    return env


def cli(workdir: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=workdir, env=cli_env(env),
                          capture_output=True, text=True, timeout=timeout, input=input)


def spawn(workdir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "engine", *args], cwd=workdir, env=cli_env(env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def no_traceback(res: subprocess.CompletedProcess[str] | tuple[str, str]) -> None:
    out, err = (res.stdout, res.stderr) if hasattr(res, "stdout") else res
    assert "Traceback" not in out + err, out + err
    assert 'File "' not in err, err


# ---------------------------------------------------------------- the sandbox on loopback


class Served:
    """`syncform sandbox serve` in a subprocess (a fixed port, so that a restart keeps the URL)."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        proc = subprocess.Popen([sys.executable, "-m", "engine", "sandbox", "serve", "--port", str(self.port),
                                 "--data", str(self.data_dir)], cwd=self.data_dir.parent, env=cli_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + 30
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("port "):
                self.port = int(line.split()[1])
                break
            if not line and proc.poll() is not None:
                raise RuntimeError("sandbox serve did not start")
        self.proc = proc
        for _ in range(100):
            try:
                httpx.get(f"{self.base}/_sandbox/stats", timeout=2)
                return
            except httpx.HTTPError:
                time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def faults(self, config: dict[str, Any]) -> None:
        httpx.post(f"{self.base}/_sandbox/faults", json=config, timeout=10).raise_for_status()

    def reset(self) -> None:
        httpx.post(f"{self.base}/_sandbox/reset", json={}, timeout=30).raise_for_status()

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.base}/_sandbox/stats", timeout=10).json()

    def revoke_refresh_token(self) -> None:
        httpx.post(f"{self.base}/oauth/v2/token/revoke", params={"token": "sandbox-refresh"},
                   timeout=10).raise_for_status()

    # -- the apps' data, read through the real clients (the judge, not the system under test)
    def client(self, app: str):
        from engine.apps.registry import open_client
        from engine.spec.model import Connection, SandboxOptions

        conn = Connection(name=f"judge-{app}", app=app, sandbox=SandboxOptions(), base_url=self.base)
        return open_client(conn, workdir=self.data_dir)

    def records(self, app: str, module: str = "Contacts", fields: tuple[str, ...] = FIELDS) -> list[dict[str, Any]]:
        with self.client(app) as c:
            out = []
            for page in c.list_changed(module, None, fields=fields):
                for rec in page:
                    out.append({"id": rec.id, **{f: rec.values.get(f) for f in fields}})
            return out

    def create(self, app: str, rows: list[dict[str, Any]], module: str = "Contacts") -> list[str]:
        ids = []
        with self.client(app) as c:
            for i in range(0, len(rows), 100):
                for res in c.create_many(module, rows[i:i + 100]):
                    assert res.ok, res
                    ids.append(res.id)
        return ids

    def update(self, app: str, rows: list[dict[str, Any]], module: str = "Contacts") -> None:
        with self.client(app) as c:
            for i in range(0, len(rows), 100):
                batch = [(r["id"], {k: v for k, v in r.items() if k != "id"}) for r in rows[i:i + 100]]
                for res in c.update_many(module, batch):
                    assert res.ok, res

    def delete(self, app: str, ids: list[str], module: str = "Contacts") -> None:
        with self.client(app) as c:
            for res in c.delete_many(module, ids):
                assert res.ok, res


@pytest.fixture(scope="module")
def _module_sandbox(tmp_path_factory):
    srv = Served(tmp_path_factory.mktemp("sandbox") / "data")
    yield srv
    srv.stop()


@pytest.fixture
def served(_module_sandbox):
    """One `sandbox serve` per test module (start-up is ~0.5 s), emptied before each test."""
    srv = _module_sandbox
    if srv.proc is None or srv.proc.poll() is not None:
        srv.start()
    srv.reset()  # records, stats, faults, revoked tokens
    yield srv


# ---------------------------------------------------------------- a corrupting proxy


class Proxy:
    """A loopback HTTP proxy in front of the sandbox. ``mutate(method, path, status, headers, body)``
    returns (status, headers, body) to send instead, or None to pass the answer through."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.mutate: Callable[[str, str, int, dict[str, str], bytes], tuple[int, dict[str, str], bytes] | None] | None = None
        self.request_hook: Callable[[str, str, dict[str, str], bytes], tuple[str, dict[str, str], bytes]] | None = None
        self.seen: list[tuple[str, str, int]] = []
        self.corrupted = 0
        proxy = self
        client = httpx.Client(timeout=60)
        self._client = client

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length",
                                                                                     "connection", "accept-encoding")}
                path = self.path
                if proxy.request_hook is not None:
                    path, headers, body = proxy.request_hook(self.command, path, headers, body)
                up = client.request(self.command, proxy.upstream + path, headers=headers, content=body)
                status, rh, rb = up.status_code, {k: v for k, v in up.headers.items()
                                                  if k.lower() in ("content-type", "retry-after")}, up.content
                if proxy.mutate is not None:
                    changed = proxy.mutate(self.command, path.split("?")[0], status, rh, rb)
                    if changed == "reset":  # drop the connection without an answer (the request landed)
                        proxy.corrupted += 1
                        proxy.seen.append((self.command, path.split("?")[0], 0))
                        self.close_connection = True
                        import socket as _socket

                        self.connection.shutdown(_socket.SHUT_RDWR)
                        return
                    if changed is not None:
                        proxy.corrupted += 1
                        status, rh, rb = changed
                proxy.seen.append((self.command, path.split("?")[0], status))
                self.send_response(status)
                for k, v in rh.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(rb)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(rb)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._client.close()


@pytest.fixture
def proxy(served):
    p = Proxy(served.base)
    yield p
    p.close()


# ---------------------------------------------------------------- specs on disk


def write_specs(workdir: Path, base_url: str, *, direction: str = "two-way", guards: str = "",
                on_delete: str = "", extra_conn: str = "", auth: str = "", description: str = "",
                conflict: str = "") -> Path:
    (workdir / "integrations").mkdir(parents=True, exist_ok=True)
    spec = f"""\
apiVersion: syncform/v1
kind: Connection
metadata: {{name: bigin}}
spec:
  app: bigin
  base_url: {base_url}
  sandbox: true
{auth}{extra_conn}---
apiVersion: syncform/v1
kind: Connection
metadata: {{name: crm}}
spec:
  app: zoho_crm
  base_url: {base_url}
  sandbox: true
{auth}---
apiVersion: syncform/v1
kind: Integration
metadata: {{name: bigin-crm}}
spec:
  {description}left: {{app: bigin, connection: bigin}}
  right: {{app: zoho_crm, connection: crm}}
{guards}  modules:
    - name: contacts
      left: Contacts
      right: Contacts
      direction: {direction}
      match: [{{left: Email, right: Email}}]
{on_delete}{conflict}      fields:
        - {{left: First_Name, right: First_Name}}
        - {{left: Last_Name, right: Last_Name}}
        - {{left: Email, right: Email}}
        - {{left: Mobile, right: Mobile}}
"""
    path = workdir / "integrations" / "specs.yaml"
    path.write_text(spec)
    return path


def people(prefix: str, n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"First_Name": f"{prefix}F{i}", "Last_Name": f"{prefix}L{i}", "Email": f"{prefix.lower()}{i}@example.com",
             "Mobile": f"+1555{i:07d}"} for i in range(start, start + n)]


def by_email(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        key = (r.get("Email") or "").lower()
        assert key not in out, f"duplicate record for {key}: {out[key]} and {r}"
        out[key] = {f: r.get(f) for f in FIELDS}
    return out


# ---------------------------------------------------------------- the state database


def state_path(workdir: Path) -> Path:
    return workdir / ".syncform" / "state.db"


def integrity_ok(workdir: Path) -> None:
    with sqlite3.connect(state_path(workdir)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []


def digest(path: Path) -> str | None:
    """The state's logical content (every table's rows), or None when it does not exist."""
    if not path.exists():
        return None
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        h = hashlib.sha256()
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"):
            h.update(name.encode())
            for row in db.execute(f'SELECT * FROM "{name}" ORDER BY 1'):
                h.update(json.dumps(row, default=str).encode())
        return h.hexdigest()


@dataclass
class Rng:
    seed: int

    def __post_init__(self) -> None:
        self.r = random.Random(self.seed)

    def uniform(self, a: float, b: float) -> float:
        return self.r.uniform(a, b)
