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
from collections.abc import Iterator
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
FIELDS = ("First_Name", "Last_Name", "Email", "Phone", "Mobile", "Title")
SEED_CHUNK = 100_000  # the sandbox's cap per seed request


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

    def seed(self, app: str, module: str, count: int, seed: int = 1) -> float:
        """``count`` demo records through ``POST /_sandbox/seed`` (at most SEED_CHUNK per request);
        returns the records per second of wall time."""
        left = count
        t0 = time.perf_counter()
        while left > 0:
            n = min(SEED_CHUNK, left)
            r = self.http.post("/_sandbox/seed", json={"app": app, "module": module, "count": n, "seed": seed})
            r.raise_for_status()
            left -= n
        return count / max(1e-9, time.perf_counter() - t0)

    def faults(self, body: dict[str, Any]) -> None:
        self.http.post("/_sandbox/faults", json=body).raise_for_status()

    def stats(self, reset: bool = False) -> dict[str, Any]:
        r = self.http.get("/_sandbox/stats", params={"reset": "true"} if reset else None)
        r.raise_for_status()
        return r.json()

    def reset_stats(self) -> None:
        self.http.post("/_sandbox/stats/reset").raise_for_status()

    def connect(self) -> sqlite3.Connection:
        """A read-only connection to the sandbox's SQLite file (ground truth, no API call), with
        ``norm(v)`` = ``norm_email(v)`` as an SQL function. Callers stream rows: at 1M records the
        harness must not hold a side in memory."""
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        con.create_function("norm", 1, norm_email, deterministic=True)
        return con

    def contacts(self, app: str, fields: tuple[str, ...] = ("Email",)) -> Iterator[tuple[Any, ...]]:
        """``(id, *fields)`` of every live contact, streamed from the sandbox's SQLite file."""
        cols = ", ".join(f"json_extract(data, '$.{f}')" for f in fields)
        con = self.connect()
        try:
            yield from con.execute(f"SELECT id, {cols} FROM records WHERE app=? AND module='Contacts' "
                                   "AND deleted IS NULL", (app,))
        finally:
            con.close()

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
    transport_cpu_s: float | None  # of sync_cpu_s, spent in the HTTP client layer (None: not measured)
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
                    sync_wall_s=res["sync_wall_s"], transport_cpu_s=res.get("transport_cpu_s"), maxrss_kb=res.get("hwm_kb") or ru.ru_maxrss, rss_before_kb=res["rss_before_kb"],
                    report=res["report"],
                    calls={"left": _flatten(sl.get("calls", {})), "right": _flatten(sr.get("calls", {}))},
                    written={"left": _flatten(sl.get("records_written", {})),
                             "right": _flatten(sr.get("records_written", {}))},
                    faults={"left": {k: v for k, v in (sl.get("faults") or {}).items() if v},
                            "right": {k: v for k, v in (sr.get("faults") or {}).items() if v}},
                    returncode=proc.returncode,
                    extra={"server_cpu_s": round(server_cpu, 2), "main_thread_cpu_s": res.get("main_thread_cpu_s"), "top_alloc": res.get("top_alloc"), "traced_peak_bytes": res.get("traced_peak_bytes"),
                           "sections_s": res.get("sections_s")})


def deploy(workdir: Path) -> None:
    r = cli(workdir, "apply", "--auto-approve", "--no-sync")
    if r.returncode != 0:
        raise RuntimeError(f"apply failed:\n{r.stdout}\n{r.stderr}")


def norm_email(v: Any) -> str:
    return str(v or "").strip().lower()


def _state_links(workdir: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{workdir / 'state.db'}?mode=ro", uri=True)


def edit_one_percent(workdir: Path, left: Server, right: Server, n: int, tag: str) -> tuple[dict[str, str], dict[str, str]]:
    """Edit 1 % of the linked records on each side (disjoint pairs: no conflicts), through the API.

    The links are streamed from the state's SQLite file (ordered by left id, as ``iter_links``) and
    only the picked ones kept. Returns ({left email: new Title}, {right email: new Title}) for the
    check after the sync."""
    from engine.apps.registry import open_client
    from engine.spec.model import Connection, SandboxOptions

    where = ("integration='bench' AND module='contacts' AND left_id NOT LIKE '~%' AND right_id NOT LIKE '~%'")
    con = _state_links(workdir)
    try:
        total = con.execute(f"SELECT COUNT(*) FROM links WHERE {where}").fetchone()[0]
        k = max(1, n // 100)
        step = max(1, total // (2 * k))
        picks: list[tuple[str, str]] = []
        for i, pair in enumerate(con.execute(f"SELECT left_id, right_id FROM links WHERE {where} ORDER BY left_id")):
            if i % step == 0:
                picks.append(pair)
                if len(picks) == 2 * k:
                    break
    finally:
        con.close()
    left_edits, right_edits = picks[0::2], picks[1::2]
    expect_right: dict[str, str] = {}
    expect_left: dict[str, str] = {}
    for side, server, app, edits, col, expect in (
            ("left", left, "bigin", left_edits, 0, expect_right),
            ("right", right, "zoho_crm", right_edits, 1, expect_left)):
        mails = emails_of(server, app, [pair[col] for pair in edits])
        conn = Connection(name=side, app=app, sandbox=SandboxOptions(), base_url=server.base)
        client = open_client(conn, workdir=workdir)
        try:
            ups = []
            for i, pair in enumerate(edits):
                rid = pair[col]
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


def emails_of(server: Server, app: str, ids: list[str]) -> dict[str, str]:
    """{id: normalised e-mail} of the given records (by primary key, 500 at a time)."""
    out: dict[str, str] = {}
    con = server.connect()
    try:
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            out.update(con.execute(
                f"SELECT id, norm(json_extract(data, '$.Email')) FROM records WHERE app=? AND module='Contacts' "
                f"AND id IN ({','.join('?' * len(part))})", (app, *part)).fetchall())
    finally:
        con.close()
    return out


def check_titles(left: Server, right: Server, expect_right: dict[str, str], expect_left: dict[str, str]) -> str:
    """The edited Titles arrived on the other side (the contacts are streamed; only the expected kept)."""
    miss = 0
    for server, app, expect in ((right, "zoho_crm", expect_right), (left, "bigin", expect_left)):
        seen: dict[str, Any] = {}
        for _id, email, title in server.contacts(app, ("Email", "Title")):
            e = norm_email(email)
            if e in expect:
                seen[e] = title
        miss += sum(1 for e, t in expect.items() if seen.get(e) != t)
    return "ok" if not miss else f"FAIL: {miss} edits not propagated"


def email_sets(left: Server, right: Server, scratch: Path) -> dict[str, int]:
    """Counts over the normalised e-mails of both sides' contacts, computed by SQLite in a scratch
    file (bounded memory at any N): rows and distinct values per side, values on one side only, union."""
    if scratch.exists():
        scratch.unlink()
    con = sqlite3.connect(f"file:{scratch}", uri=True)
    try:
        con.create_function("norm", 1, norm_email, deterministic=True)
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        out: dict[str, int] = {}
        for alias, server, app in (("l", left, "bigin"), ("r", right, "zoho_crm")):
            con.execute(f"ATTACH DATABASE 'file:{server.db}?mode=ro' AS src{alias}")
            con.execute(f"CREATE TABLE e{alias} AS SELECT norm(json_extract(data, '$.Email')) AS e FROM "
                        f"src{alias}.records WHERE app='{app}' AND module='Contacts' AND deleted IS NULL")
            con.execute(f"DETACH DATABASE src{alias}")
            con.execute(f"CREATE INDEX e{alias}_e ON e{alias} (e)")
            out[f"{alias}_rows"] = con.execute(f"SELECT COUNT(*) FROM e{alias}").fetchone()[0]
            out[f"{alias}_distinct"] = con.execute(f"SELECT COUNT(DISTINCT e) FROM e{alias}").fetchone()[0]
        out["l_only"] = con.execute("SELECT COUNT(DISTINCT e) FROM el WHERE e NOT IN (SELECT e FROM er)").fetchone()[0]
        out["r_only"] = con.execute("SELECT COUNT(DISTINCT e) FROM er WHERE e NOT IN (SELECT e FROM el)").fetchone()[0]
        out["union"] = out["l_distinct"] + out["r_only"]
        return out
    finally:
        con.close()
        scratch.unlink(missing_ok=True)


def check_union(left: Server, right: Server, expected: int, scratch: Path) -> str:
    """Both sides hold the same contacts (by normalised e-mail), each once, ``expected`` of them."""
    c = email_sets(left, right, scratch)
    problems = []
    if c["l_rows"] != c["l_distinct"]:
        problems.append(f"{c['l_rows'] - c['l_distinct']} duplicates left")
    if c["r_rows"] != c["r_distinct"]:
        problems.append(f"{c['r_rows'] - c['r_distinct']} duplicates right")
    if c["l_only"] or c["r_only"]:
        problems.append(f"{c['l_only'] + c['r_only']} contacts on one side only")
    if c["l_distinct"] != expected:
        problems.append(f"{c['l_distinct']} contacts, expected {expected}")
    return "ok" if not problems else "FAIL: " + "; ".join(problems)


def count_contacts(server: Server, app: str) -> tuple[int, int]:
    """(contacts, distinct normalised e-mails) of one side, counted by SQLite."""
    con = server.connect()
    try:
        return con.execute("SELECT COUNT(*), COUNT(DISTINCT norm(json_extract(data, '$.Email'))) FROM records "
                           "WHERE app=? AND module='Contacts' AND deleted IS NULL", (app,)).fetchone()
    finally:
        con.close()


def pages(n: int, per: int) -> int:
    return math.ceil(n / per) if n > 0 else 0
