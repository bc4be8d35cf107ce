"""CPU per record of the app client layer and of the sandbox server, through real HTTP on loopback.

    .venv/bin/python scripts/bench_client.py [--n 10000] [--workers 4] [--profile read|create|update DIR]

Starts ``syncform sandbox serve --port 0`` in a subprocess (file database, as the benchmarks use),
seeds N Bigin contacts, then through ``engine.apps.registry.open_client`` (a ``base_url`` connection):

- **read**: ``list_changed("Contacts")`` of the N Bigin contacts (N/200 pages);
- **create**: N CRM contacts in batches of 100, ``--workers`` batches in flight;
- **update**: the same N CRM contacts, one field changed each.

For each it prints the client's CPU (this process, all threads: ``time.process_time``), the part
spent in the HTTP layer (``engine.apps.http.transport_cpu_seconds``, when present), calls, TCP
connections the client opened, and the server process's CPU (``/proc/PID/stat``), each per record.
``--profile OP DIR`` writes a cProfile of that operation's client side to ``DIR/client-OP.prof``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FIELDS = ["First_Name", "Last_Name", "Email", "Phone", "Mobile", "Title"]


class Connects:
    """Counts TCP connections httpcore opens in this process."""

    def __init__(self) -> None:
        import httpcore._backends.sync as sync

        self.n = 0
        self._lock = threading.Lock()
        original = sync.SyncBackend.connect_tcp
        counter = self

        def connect_tcp(self, *args, **kwargs):  # noqa: ANN001, ANN202
            with counter._lock:
                counter.n += 1
            return original(self, *args, **kwargs)

        sync.SyncBackend.connect_tcp = connect_tcp


def server_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(data: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "engine", "sandbox", "serve", "--port", "0", "--data", str(data)],
                            cwd=data, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("port "):
            return proc, f"http://127.0.0.1:{int(line.split()[1])}"
    raise RuntimeError("sandbox server did not start")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=4, help="write batches in flight (default 4)")
    ap.add_argument("--profile", nargs=2, metavar=("OP", "DIR"), help="cProfile the client side of OP")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)

    import httpx

    from engine.apps import http as apps_http
    from engine.apps.http import parallel
    from engine.apps.registry import open_client
    from engine.spec.model import Connection, SandboxOptions

    transport_cpu = getattr(apps_http, "transport_cpu_seconds", None)
    connects = Connects()
    n = args.n
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-client-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        proc, base = start_server(data)
        try:
            admin = httpx.Client(base_url=base, timeout=600)
            left = n
            while left > 0:
                admin.post("/_sandbox/seed", json={"app": "bigin", "module": "Contacts",
                                                   "count": min(left, 100_000), "seed": 1}).raise_for_status()
                left -= 100_000
            admin.close()

            def client(app: str):
                conn = Connection(name=f"bench-{app}", app=app, sandbox=SandboxOptions(), base_url=base,
                                  max_concurrency=max(args.workers, 1))
                return open_client(conn, workdir=Path(tmp))

            bigin, crm = client("bigin"), client("zoho_crm")
            bigin.users()  # warm up: token, imports
            crm.create_many("Contacts", [{"Last_Name": "Warm", "Email": "warm@example.com"}])
            created: list[str] = []

            def read() -> int:
                return sum(len(p) for p in bigin.list_changed("Contacts", None, fields=FIELDS))

            recs = [{"First_Name": f"F{i}", "Last_Name": f"Bench{i}", "Email": f"bench{i}@example.com",
                     "Phone": f"+1 555 {i:07d}", "Mobile": f"+1 556 {i:07d}", "Title": "Tester"} for i in range(n)]
            batches = [recs[i:i + 100] for i in range(0, n, 100)]

            def create() -> int:
                results = [r for rs in parallel(lambda b: crm.create_many("Contacts", b), batches, args.workers)
                           for r in rs]
                bad = [r for r in results if not r.ok]
                if bad:
                    raise SystemExit(f"create failed: {bad[0]}")
                created.extend(r.id for r in results)
                return len(results)

            def update() -> int:
                ups = [(rid, {"Title": f"Lead {i}"}) for i, rid in enumerate(created)]
                chunks = [ups[i:i + 100] for i in range(0, len(ups), 100)]
                results = [r for rs in parallel(lambda b: crm.update_many("Contacts", b), chunks, args.workers)
                           for r in rs]
                if not all(r.ok for r in results):
                    raise SystemExit("update failed")
                return len(results)

            for op, fn in (("read", read), ("create", create), ("update", update)):
                calls0 = sum(bigin.stats().values()) + sum(crm.stats().values())
                c0, s0, t0, w0 = connects.n, server_cpu(proc.pid), transport_cpu() if transport_cpu else 0.0, \
                    time.perf_counter()
                prof = cProfile.Profile(time.process_time) if args.profile and args.profile[0] == op else None
                p0 = time.process_time()
                if prof is not None:
                    prof.enable()
                count = fn()
                if prof is not None:
                    prof.disable()
                cpu = time.process_time() - p0
                wall = time.perf_counter() - w0
                calls = sum(bigin.stats().values()) + sum(crm.stats().values()) - calls0
                tcpu = (transport_cpu() - t0) if transport_cpu else float("nan")
                out[op] = {"records": count, "calls": calls, "connections": connects.n - c0,
                           "client_us_per_record": cpu / count * 1e6,
                           "transport_us_per_record": tcpu / count * 1e6,
                           "client_ms_per_call": cpu / calls * 1e3,
                           "server_us_per_record": (server_cpu(proc.pid) - s0) / count * 1e6,
                           "wall_s": wall}
                if prof is not None:
                    d = Path(args.profile[1])
                    d.mkdir(parents=True, exist_ok=True)
                    prof.dump_stats(d / f"client-{op}.prof")
                    pstats.Stats(prof).sort_stats("tottime").print_stats(25)
            bigin.close()
            crm.close()
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=20)
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print(f"N={n}, {args.workers} write batches in flight; µs per record (CPU), calls, TCP connections opened")
        print(f"{'op':8} {'client':>8} {'http':>8} {'ms/call':>8} {'server':>8} {'calls':>6} {'conns':>6} {'wall s':>7}")
        for op, r in out.items():
            print(f"{op:8} {r['client_us_per_record']:8.1f} {r['transport_us_per_record']:8.1f} "
                  f"{r['client_ms_per_call']:8.2f} {r['server_us_per_record']:8.1f} {r['calls']:6d} "
                  f"{r['connections']:6d} {r['wall_s']:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
