"""The scenarios of issue 6 and their floors (reference/sync-anchors.md §e).

Sync scenarios (Bigin Contacts = left, Zoho CRM Contacts = right, match on Email, 6 mapped fields):

- ``oneway``   first one-way copy of N seeded records into an empty target;
- ``twoway``   first two-way sync of N records per side seeded with the same seed (60 % shared people);
- ``echo``     the rerun right after it (our own writes come back: reads, never writes);
- ``noop``     a rerun with nothing changed;
- ``edit1pct`` 1 % of the linked records edited on each side (disjoint), then a sync.

Floors per side (P = 200 per read, B = 100 per write):
  oneway   left ⌈N/P⌉ reads; right 1 read (target empty) + ⌈W/B⌉ creates
  twoway   ⌈N/P⌉ reads per side; ⌈creates/B⌉ + ⌈updates/B⌉ writes into each side
  echo     per side max(1, ⌈w_in/P⌉) changed + 1 deleted read; 0 writes
  noop     per side 1 changed + 1 deleted read; 0 writes
  edit1pct per side max(1, ⌈c/P⌉) changed + 1 deleted read; ⌈c_other/B⌉ updates
Target: calls ≤ floor + 1 per module and side (one module here).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.bench import harness as h
from tests.bench.sections import per_record

# A scheduled sync does not rerun within seconds: the engine re-reads the newest second of the previous
# read until it is SETTLE (5 s) old (engine/sync/engine.py), so echo, noop and edit1pct start 6 s after
# the run before them. (Run at once after a bulk write, the next run re-reads that whole second: up to
# 2,000 of our own writes at 10k, i.e. ~10 extra pages per side; see docs/benchmarks.md.)
SETTLE_WAIT = 6.0
READ_OPS = ("list", "get", "search", "deleted", "fields", "coql", "count")
WRITE_OPS = ("create", "update", "upsert", "delete")


@dataclass
class Row:
    scenario: str
    n: int
    latency_ms: int
    concurrency: int
    calls: dict[str, dict[str, int]]   # side -> {"reads", "writes"}
    floor: dict[str, dict[str, int]]
    writes: int                         # records written (both sides)
    records: int                        # records the run had to process (denominator of CPU/record)
    wall_s: float
    cpu_s: float
    sync_cpu_s: float
    maxrss_mb: float
    check: str
    faults: dict[str, Any] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)
    transport_cpu_s: float | None = None  # of sync_cpu_s, in the HTTP client layer (None: not measured)

    @property
    def key(self) -> str:
        return f"{self.scenario}|{self.n}|{self.latency_ms}|{self.concurrency}"

    def total_calls(self) -> int:
        return sum(c["reads"] + c["writes"] for c in self.calls.values())

    def total_floor(self) -> int:
        return sum(c["reads"] + c["writes"] for c in self.floor.values())

    def calls_ok(self) -> bool:
        return all(self.calls[s]["reads"] + self.calls[s]["writes"] <= self.floor[s]["reads"] + self.floor[s]["writes"] + 1
                   for s in ("left", "right"))

    def limit_s(self) -> float | None:
        if not self.latency_ms:
            return None
        return self.total_calls() * self.latency_ms / 1000 / max(1, self.concurrency)

    def cpu_us_per_record(self) -> float | None:
        return self.sync_cpu_s / self.records * 1e6 if self.records else None

    def local_us_per_record(self) -> float | None:
        """syncform's own work: sync CPU minus the HTTP client layer's, per record."""
        if not self.records or self.transport_cpu_s is None:
            return None
        return (self.sync_cpu_s - self.transport_cpu_s) / self.records * 1e6

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _split(m: h.Measured, side: str) -> dict[str, int]:
    calls = m.calls.get(side, {})
    return {"reads": sum(n for k, n in calls.items() if k.rsplit("/", 1)[-1] in READ_OPS),
            "writes": sum(n for k, n in calls.items() if k.rsplit("/", 1)[-1] in WRITE_OPS)}


def _row(name: str, n: int, lat: int, conc: int, m: h.Measured, floor: dict[str, dict[str, int]], records: int,
         check: str) -> Row:
    counts = m.counts()
    writes = sum(c.get(k, 0) for c in counts.values() for k in ("created", "updated", "deleted"))
    faults = {s: f for s, f in m.faults.items() if f}
    if m.returncode != 0:
        check = f"exit {m.returncode}; " + check
    return Row(scenario=name, n=n, latency_ms=lat, concurrency=conc,
               calls={s: _split(m, s) for s in ("left", "right")}, floor=floor, writes=writes, records=records,
               wall_s=round(m.wall_s, 3), cpu_s=round(m.cpu_s, 3), sync_cpu_s=round(m.sync_cpu_s, 3),
               maxrss_mb=round(m.maxrss_kb / 1024, 1), check=check, faults=faults,
               transport_cpu_s=None if m.transport_cpu_s is None else round(m.transport_cpu_s, 3),
               detail={"counts": counts, "calls": m.calls, "sync_wall_s": round(m.sync_wall_s, 3),
                       "top_alloc": m.extra.get("top_alloc"), "traced_peak_bytes": m.extra.get("traced_peak_bytes"),
                       "server_cpu_s": m.extra.get("server_cpu_s"), "main_thread_cpu_s": m.extra.get("main_thread_cpu_s"),
                       "rss_before_mb": round(m.rss_before_kb / 1024, 1),
                       **({"sections_us": per_record(Counter(m.extra["sections_s"]), records)}
                          if m.extra.get("sections_s") else {})})


def _fl(reads: int, writes: int) -> dict[str, int]:
    return {"reads": reads, "writes": writes}


class Env:
    """Two sandbox servers (left: Bigin, right: Zoho CRM) and a working directory with the spec."""

    def __init__(self, root: Path, name: str, direction: str) -> None:
        self.dir = root / name
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        self.left = h.Server(self.dir / "sandbox-left")
        self.right = h.Server(self.dir / "sandbox-right")
        (self.dir / "integrations").mkdir()
        (self.dir / "integrations" / "bench.yaml").write_text(h.spec_text(self.left, self.right, direction=direction))

    def faults(self, lat: int, conc: int) -> None:
        body = {"latency_ms": lat, "max_concurrency": conc} if lat else {}
        self.left.faults(body)
        self.right.faults(body)

    def measure(self, lat: int, conc: int, profile_dir: Path | None, tag: str, trace: bool = False) -> h.Measured:
        self.faults(lat, conc)
        try:
            prof = profile_dir / f"{tag}.prof" if profile_dir else None
            return h.measure(self.dir, self.left, self.right, profile=prof, trace_memory=trace)
        finally:
            self.faults(0, conc)

    def close(self) -> None:
        self.left.close()
        self.right.close()


def run_oneway(root: Path, n: int, lat: int, conc: int, *, profile_dir: Path | None = None,
               log: Any = print, trace: bool = False) -> list[Row]:
    env = Env(root, f"oneway-{n}-{lat}", "left-to-right")
    try:
        t = time.perf_counter()
        rate = env.left.seed("bigin", "Contacts", n)
        seeded = time.monotonic()
        log(f"  seeded {n} records: {rate:,.0f} records/s")
        h.deploy(env.dir)
        log(f"  setup oneway N={n}: {time.perf_counter() - t:.1f} s")
        _settle(seeded)
        m = env.measure(lat, conc, profile_dir, f"oneway-{n}-{lat}", trace)
        created = m.counts().get("left-to-right", {}).get("created", 0)
        rows, distinct = h.count_contacts(env.right, "zoho_crm")
        check = "ok" if rows == n and distinct == n else f"FAIL: {rows} records on the right, {distinct} distinct, expected {n}"
        floor = {"left": _fl(h.pages(n, 200), 0), "right": _fl(1, h.pages(created, 100))}
        return [_row("oneway", n, lat, conc, m, floor, n, check)]
    finally:
        env.close()


def expected_union(env: Env) -> int:
    return h.email_sets(env.left, env.right, env.dir / "check.db")["union"]


def run_twoway_chain(root: Path, n: int, lat: int, conc: int, *, profile_dir: Path | None = None,
                     log: Any = print, trace: bool = False) -> list[Row]:
    env = Env(root, f"twoway-{n}-{lat}", "two-way")
    rows: list[Row] = []
    try:
        t = time.perf_counter()
        with ThreadPoolExecutor(2) as ex:  # two servers, two processes: seeded side by side
            rates = list(ex.map(lambda a: a[0].seed(a[1], "Contacts", n), ((env.left, "bigin"), (env.right, "zoho_crm"))))
        seeded = time.monotonic()
        log(f"  seeded {n} records per side at once: {rates[0]:,.0f} + {rates[1]:,.0f} records/s "
            f"({2 * n / (time.perf_counter() - t):,.0f} records/s together)")
        union = expected_union(env)
        h.deploy(env.dir)
        log(f"  setup twoway N={n}: {time.perf_counter() - t:.1f} s (union {union})")
        _settle(seeded)

        m = env.measure(lat, conc, profile_dir, f"twoway-{n}-{lat}", trace)
        c = m.counts()
        into_r = c.get("left-to-right", {})
        into_l = c.get("right-to-left", {})
        floor = {"left": _fl(h.pages(n, 200), h.pages(into_l.get("created", 0), 100) + h.pages(into_l.get("updated", 0), 100)),
                 "right": _fl(h.pages(n, 200), h.pages(into_r.get("created", 0), 100) + h.pages(into_r.get("updated", 0), 100))}
        rows.append(_row("twoway", n, lat, conc, m, floor, 2 * n, h.check_union(env.left, env.right, union, env.dir / "check.db")))
        log(f"  twoway: {rows[-1].total_calls()} calls, {rows[-1].wall_s} s")
        w_in_l = into_l.get("created", 0) + into_l.get("updated", 0)
        w_in_r = into_r.get("created", 0) + into_r.get("updated", 0)

        time.sleep(SETTLE_WAIT)
        m = env.measure(lat, conc, profile_dir, f"echo-{n}-{lat}", trace)
        floor = {"left": _fl(max(1, h.pages(w_in_l, 200)) + 1, 0), "right": _fl(max(1, h.pages(w_in_r, 200)) + 1, 0)}
        rows.append(_row("echo", n, lat, conc, m, floor, w_in_l + w_in_r,
                         "ok" if _writes(m) == 0 else f"FAIL: {_writes(m)} writes on the echo"))
        log(f"  echo: {rows[-1].total_calls()} calls, {rows[-1].wall_s} s")

        time.sleep(SETTLE_WAIT)
        m = env.measure(lat, conc, profile_dir, f"noop-{n}-{lat}", trace)
        rows.append(_row("noop", n, lat, conc, m, {"left": _fl(2, 0), "right": _fl(2, 0)}, 0,
                         "ok" if _writes(m) == 0 else f"FAIL: {_writes(m)} writes on an unchanged rerun"))
        log(f"  noop: {rows[-1].total_calls()} calls, {rows[-1].wall_s} s")

        expect_r, expect_l = h.edit_one_percent(env.dir, env.left, env.right, n, f"e{lat}")
        time.sleep(SETTLE_WAIT)
        m = env.measure(lat, conc, profile_dir, f"edit1pct-{n}-{lat}", trace)
        cl, cr = len(expect_r), len(expect_l)
        floor = {"left": _fl(max(1, h.pages(cl, 200)) + 1, h.pages(cr, 100)),
                 "right": _fl(max(1, h.pages(cr, 200)) + 1, h.pages(cl, 100))}
        check = h.check_titles(env.left, env.right, expect_r, expect_l)
        if _writes(m) != cl + cr:
            check += f"; {_writes(m)} records written, expected {cl + cr}"
        rows.append(_row("edit1pct", n, lat, conc, m, floor, cl + cr, check))
        log(f"  edit1pct: {rows[-1].total_calls()} calls, {rows[-1].wall_s} s")
        return rows
    finally:
        env.close()


def _settle(since: float) -> None:
    """The first run starts SETTLE_WAIT after the seeding ended. Seeded records are stamped up to the
    seeding's own second (modified = min(now, ...)); read within SETTLE of it, that second is re-read by
    the next run (~2 extra pages per side on the 10k echo once seeding took 1 s instead of 8)."""
    left = SETTLE_WAIT - (time.monotonic() - since)
    if left > 0:
        time.sleep(left)


def _writes(m: h.Measured) -> int:
    return sum(n for side in m.written.values() for k, n in side.items() if not k.endswith("/seed"))


# --- validate + plan of many integrations ------------------------------------------------------------
# the repository comes from tests/bench/gen.py (shared with scripts/bench_plan.py and bench_validate.py)
REPEAT = 3


@dataclass
class PlanRow:
    integrations: int
    steps: dict[str, dict[str, float]]   # step -> wall_s, cpu_s, maxrss_mb, rc
    summary: str

    @property
    def key(self) -> str:
        return f"plan|{self.integrations}"

    def validate_plus_plan(self) -> float:
        return self.steps["validate"]["wall_s"] + self.steps["plan (cold)"]["wall_s"]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _timed_cli(workdir: Path, *args: str) -> tuple[dict[str, float], str]:
    import os
    import subprocess

    # GNU time reports the child's peak RSS; ru_maxrss of a child forked from this (large) process
    # would include this process's size at fork time (it survives exec)
    timer = ["/usr/bin/time", "-f", "%M", "-o", str(workdir / "cli.rss")] if Path("/usr/bin/time").exists() else []
    t0 = time.perf_counter()
    with open(workdir / "cli.out", "w") as out:
        proc = subprocess.Popen([*timer, h.PY, "-m", "engine", "--state", h.state_url(workdir), *args], cwd=workdir,
                                env=h._env(), stdout=out, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    text = (workdir / "cli.out").read_text()
    rss_kb = ru.ru_maxrss
    if timer:
        try:
            rss_kb = int((workdir / "cli.rss").read_text().split()[-1])
        except (OSError, ValueError, IndexError):
            pass
    return ({"wall_s": round(wall, 3), "cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
             "maxrss_mb": round(rss_kb / 1024, 1), "rc": rc}, text)


def run_plan(root: Path, k: int, *, log: Any = print) -> PlanRow:
    from tests.bench.gen import write_repo

    d = root / f"plan-{k}"
    if d.exists():
        shutil.rmtree(d)
    write_repo(d, k)
    steps: dict[str, dict[str, float]] = {}
    cache = d / ".syncform" / "cache"

    def best(*args: str, cold: bool = False) -> tuple[dict[str, float], str]:
        """Best wall time of REPEAT fresh processes (the machine is shared: the minimum is the signal)."""
        runs = []
        for _ in range(REPEAT):
            if cold and cache.exists():
                shutil.rmtree(cache)
            runs.append(_timed_cli(d, *args))
        return min(runs, key=lambda r: r[0]["wall_s"])

    steps["validate"], out = best("validate", cold=True)
    if steps["validate"]["rc"] != 0:
        raise RuntimeError(f"validate failed:\n{out[-2000:]}")
    steps["plan (cold)"], out = best("plan", "--no-refresh", cold=True)
    summary = next((ln.strip() for ln in out.splitlines() if ln.startswith("Plan:") or ln.startswith("No changes")), "")
    steps["plan (warm)"], _ = best("plan", "--no-refresh")
    steps["apply --no-sync"], _ = _timed_cli(d, "apply", "--auto-approve", "--no-sync")
    steps["plan, no changes"], out2 = best("plan", "--no-refresh")
    log(f"  plan {k}: " + ", ".join(f"{s} {v['wall_s']} s" for s, v in steps.items()))
    return PlanRow(integrations=k, steps=steps, summary=summary)


def tempdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="syncform-bench-"))
