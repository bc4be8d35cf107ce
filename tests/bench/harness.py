"""Benchmark plumbing: sandbox servers on loopback, seeding, specs, deploy, the measured worker run,
the sandbox's call counters, edits and ground-truth checks.

Each side of an integration gets its own ``syncform sandbox serve`` subprocess with its own data
directory (a real app's concurrency limit is per app), so the calls of a side are that server's
``/_sandbox/stats``. Setup (seeding, deploying, edits) happens before the counters are reset and is
never counted.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
FIELDS = ("First_Name", "Last_Name", "Email", "Phone", "Mobile", "Title")
SEED_CHUNK = 20_000


def _env() -> dict[str, str]:
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(REPO)}
    env.pop("SYNCFORM_STATE", None)
    return env


class Server:
    """``syncform sandbox serve --port 0 --data DIR`` in a subprocess."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.log = open(data_dir / "serve.log", "w")
        self.proc = subprocess.Popen([PY, "-m", "engine", "sandbox", "serve", "--port", "0", "--data", str(data_dir)],
                                     cwd=data_dir, env=_env(), stdout=subprocess.PIPE, stderr=self.log, text=True)
        port = None
        deadline = time.monotonic() + 30
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith("port "):
                port = int(line.split()[1])
                break
        if port is None:
            self.close()
            raise RuntimeError(f"sandbox server did not start; see {data_dir / 'serve.log'}")
        self.base = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.base, timeout=600)

    @property
    def db(self) -> Path:
        return self.data_dir / "sandbox.db"

    def seed(self, app: str, module: str, count: int, seed: int = 1) -> None:
        left = count
        while left > 0:
            n = min(SEED_CHUNK, left)
            r = self.http.post("/_sandbox/seed", json={"app": app, "module": module, "count": n, "seed": seed})
            r.raise_for_status()
            left -= n

    def faults(self, body: dict[str, Any]) -> None:
        self.http.post("/_sandbox/faults", json=body).raise_for_status()

    def stats(self, reset: bool = False) -> dict[str, Any]:
        r = self.http.get("/_sandbox/stats", params={"reset": "true"} if reset else None)
        r.raise_for_status()
        return r.json()

    def reset_stats(self) -> None:
        self.http.post("/_sandbox/stats/reset").raise_for_status()

    def contacts(self, app: str) -> list[dict[str, Any]]:
        """Ground truth straight from the sandbox's SQLite file (read-only; no API call)."""
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT id, data FROM records WHERE app=? AND module='Contacts' AND deleted IS NULL",
                               (app,)).fetchall()
        finally:
            con.close()
        return [{"id": i, **json.loads(d)} for i, d in rows]

    def cpu_s(self) -> float:
        """CPU time (user + sys) the server process has used so far (from /proc)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:
            self.http.close()
        except Exception:
            pass
        self.log.close()


def spec_text(left: Server, right: Server, *, direction: str) -> str:
    fields = "\n".join(f"        - {{left: {f}, right: {f}}}" for f in FIELDS)
    return f"""\
apiVersion: syncform/v1
kind: Connection
metadata: {{name: left}}
spec: {{app: bigin, base_url: "{left.base}", sandbox: true, max_concurrency: 10}}
---
apiVersion: syncform/v1
kind: Connection
metadata: {{name: right}}
spec: {{app: zoho_crm, base_url: "{right.base}", sandbox: true, max_concurrency: 10}}
---
apiVersion: syncform/v1
kind: Integration
metadata: {{name: bench}}
spec:
  left: {{app: bigin, connection: left}}
  right: {{app: zoho_crm, connection: right}}
  modules:
    - name: contacts
      left: Contacts
      right: Contacts
      direction: {direction}
      match: [{{left: Email, right: Email}}]
      initial_sync: {{created_within: 3650d}}
      fields:
{fields}
"""


def cli(workdir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "engine", "--state", state_url(workdir), *args], cwd=workdir, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def state_url(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'state.db'}"


@dataclass
class Measured:
    """One measured worker run."""

    wall_s: float
    cpu_s: float          # the whole process (user + sys), start-up and imports included
    sync_cpu_s: float     # the sync call alone
    sync_wall_s: float
    maxrss_kb: int
    rss_before_kb: int
    report: dict[str, Any]
    calls: dict[str, dict[str, int]]      # side -> "Module/op" -> n, from each server's /_sandbox/stats
    written: dict[str, dict[str, int]]    # side -> "Module/op" -> records written
    faults: dict[str, dict[str, int]]
    returncode: int
    extra: dict[str, Any] = field(default_factory=dict)

    def side_calls(self, side: str, op: str | None = None) -> int:
        return sum(n for k, n in self.calls.get(side, {}).items() if op is None or k.endswith("/" + op))

    def total_calls(self) -> int:
        return sum(self.side_calls(s) for s in ("left", "right"))

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for m in self.report.get("modules", ()):
            for d, c in m["counts"].items():
                acc = out.setdefault(d, {})
                for k, v in c.items():
                    acc[k] = acc.get(k, 0) + v
        return out


def _flatten(stats_calls: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for _app, mods in (stats_calls or {}).items():
        for mod, ops in mods.items():
            for op, n in ops.items():
                out[f"{mod}/{op}"] = out.get(f"{mod}/{op}", 0) + n
    return out


def measure(workdir: Path, left: Server, right: Server, *, profile: Path | None = None,
            trace_memory: bool = False, timeout: float = 3600) -> Measured:
    """Run the worker (the sync of ``bench``) in a child process; the servers' counters start at zero."""
    left.reset_stats()
    right.reset_stats()
    server_cpu0 = left.cpu_s() + right.cpu_s()
    out = workdir / "worker.json"
    if out.exists():
        out.unlink()
    cmd = [PY, "-m", "tests.bench.worker", "--root", str(workdir), "--state", state_url(workdir), "--name", "bench",
           "--out", str(out)]
    if profile is not None:
        cmd += ["--profile", str(profile)]
    if trace_memory:
        cmd.append("--tracemalloc")
    with open(workdir / "worker.log", "w") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=log, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    if not out.exists():
        raise RuntimeError(f"the worker failed (exit {proc.returncode}); see {workdir / 'worker.log'}:\n"
                           + (workdir / "worker.log").read_text()[-3000:])
    res = json.loads(out.read_text())
    server_cpu = left.cpu_s() + right.cpu_s() - server_cpu0
    sl, sr = left.stats(reset=True), right.stats(reset=True)
    return Measured(wall_s=wall, cpu_s=ru.ru_utime + ru.ru_stime, sync_cpu_s=res["sync_cpu_s"],
                    sync_wall_s=res["sync_wall_s"], maxrss_kb=res.get("hwm_kb") or ru.ru_maxrss, rss_before_kb=res["rss_before_kb"],
                    report=res["report"],
                    calls={"left": _flatten(sl.get("calls", {})), "right": _flatten(sr.get("calls", {}))},
                    written={"left": _flatten(sl.get("records_written", {})),
                             "right": _flatten(sr.get("records_written", {}))},
                    faults={"left": {k: v for k, v in (sl.get("faults") or {}).items() if v},
                            "right": {k: v for k, v in (sr.get("faults") or {}).items() if v}},
                    returncode=proc.returncode,
                    extra={"server_cpu_s": round(server_cpu, 2), "top_alloc": res.get("top_alloc"), "traced_peak_bytes": res.get("traced_peak_bytes")})


def deploy(workdir: Path) -> None:
    r = cli(workdir, "apply", "--auto-approve", "--no-sync")
    if r.returncode != 0:
        raise RuntimeError(f"apply failed:\n{r.stdout}\n{r.stderr}")


def norm_email(v: Any) -> str:
    return str(v or "").strip().lower()


def edit_one_percent(workdir: Path, left: Server, right: Server, n: int, tag: str) -> tuple[dict[str, str], dict[str, str]]:
    """Edit 1 % of the linked records on each side (disjoint pairs: no conflicts), through the API.

    Returns ({left email: new Title}, {right email: new Title}) for the check after the sync."""
    from engine.apps.registry import open_client
    from engine.spec.model import Connection, SandboxOptions
    from engine.state import open_store

    store = open_store(state_url(workdir))
    try:
        links = sorted(store.iter_links("bench", "contacts"), key=lambda lk: lk.left_id)
    finally:
        store.close()
    links = [lk for lk in links if not lk.left_id.startswith("~") and not lk.right_id.startswith("~")]
    k = max(1, n // 100)
    step = max(1, len(links) // (2 * k))
    picks = links[::step][: 2 * k]
    left_edits, right_edits = picks[0::2], picks[1::2]
    lmail = {c["id"]: norm_email(c.get("Email")) for c in left.contacts("bigin")}
    rmail = {c["id"]: norm_email(c.get("Email")) for c in right.contacts("zoho_crm")}
    expect_right: dict[str, str] = {}
    expect_left: dict[str, str] = {}
    for side, server, app, edits, ids, mails, expect in (
            ("left", left, "bigin", left_edits, "left_id", lmail, expect_right),
            ("right", right, "zoho_crm", right_edits, "right_id", rmail, expect_left)):
        conn = Connection(name=side, app=app, sandbox=SandboxOptions(), base_url=server.base)
        client = open_client(conn, workdir=workdir)
        try:
            ups = []
            for i, lk in enumerate(edits):
                rid = getattr(lk, ids)
                title = f"{tag} {side} {i}"
                ups.append((rid, {"Title": title}))
                expect[mails[rid]] = title
            res = client.update_many("Contacts", ups)
            bad = [r for r in res if not r.ok]
            if bad:
                raise RuntimeError(f"setup edit failed: {bad[:3]}")
        finally:
            client.close()
    return expect_right, expect_left


def check_titles(left: Server, right: Server, expect_right: dict[str, str], expect_left: dict[str, str]) -> str:
    rt = {norm_email(c.get("Email")): c.get("Title") for c in right.contacts("zoho_crm")}
    lt = {norm_email(c.get("Email")): c.get("Title") for c in left.contacts("bigin")}
    miss = [e for e, t in expect_right.items() if rt.get(e) != t] + [e for e, t in expect_left.items() if lt.get(e) != t]
    return "ok" if not miss else f"FAIL: {len(miss)} edits not propagated"


def check_union(left: Server, right: Server, expected: int) -> str:
    """Both sides hold the same contacts (by normalised e-mail), each once, ``expected`` of them."""
    le = [norm_email(c.get("Email")) for c in left.contacts("bigin")]
    re_ = [norm_email(c.get("Email")) for c in right.contacts("zoho_crm")]
    problems = []
    if len(set(le)) != len(le):
        problems.append(f"{len(le) - len(set(le))} duplicates left")
    if len(set(re_)) != len(re_):
        problems.append(f"{len(re_) - len(set(re_))} duplicates right")
    if set(le) != set(re_):
        problems.append(f"{len(set(le) ^ set(re_))} contacts on one side only")
    if len(set(le)) != expected:
        problems.append(f"{len(set(le))} contacts, expected {expected}")
    return "ok" if not problems else "FAIL: " + "; ".join(problems)


def pages(n: int, per: int) -> int:
    return math.ceil(n / per) if n > 0 else 0
