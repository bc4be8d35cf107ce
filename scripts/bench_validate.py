"""Time `syncform validate` on a folder of 200 integrations (target: under 1.5 s wall on 2 cores).

Usage: .venv/bin/python scripts/bench_validate.py [--count 200] [--runs 5]

Generates, in a temporary folder, N integrations with tests/bench/gen.py (the generator of
`python -m tests.bench --scenario plan` and scripts/bench_plan.py: Bigin <-> CRM contacts and
companies) where integrations 2t and 2t+1 share their Bigin connection, so that the loop check has a
real graph to walk, then runs the real CLI as a user would (a new process
each time, start-up included) and prints the wall time of each run and the best and median.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.bench.gen import write_repo  # noqa: E402  (the generator every benchmark of many integrations uses)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_repo(root, args.count, shared_left=True)
        times, cpus = [], []
        for _ in range(args.runs):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "engine", "validate"], cwd=root, capture_output=True, text=True)
            times.append(time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            if r.returncode != 0:
                print(r.stdout[-2000:], r.stderr[-2000:], file=sys.stderr)
                print("validate failed", file=sys.stderr)
                return 1
        last = (r.stdout.strip().splitlines() or [""])[-1]
        print(f"{args.count} integrations: {last}")
        print("runs (s): " + ", ".join(f"{t:.2f}" for t in times))
        print(f"wall: best {min(times):.2f} s, median {statistics.median(times):.2f} s (target < 1.5 s wall)")
        print(f"cpu (user+sys of the validate process): median {statistics.median(cpus):.2f} s; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall > cpu means waiting for a core)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
