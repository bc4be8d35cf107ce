#!/usr/bin/env python3
"""Benchmark: `syncform plan --no-refresh` of 100 integrations answers in under 1 s wall time.

Generates a repository of N integrations with tests/bench/gen.py (the generator `python -m tests.bench
--scenario plan` and scripts/bench_validate.py use: Bigin <-> CRM contacts and companies, a pair of
sandbox connections each) in a temporary folder, then times, through the real CLI (a fresh process each time, start-up included):

  1. plan against an empty state (every integration a create),
  2. apply --auto-approve --no-sync (not timed against the budget),
  3. plan again (no changes: the common CI case),
  4. plan after editing one mapping (exactly one change).

Usage: .venv/bin/python scripts/bench_plan.py [--integrations 100] [--budget 1.0] [--repeat 3]
Exits 1 when a timed plan's best wall time is over budget. A "cold" run (the first after a spec edit)
re-validates every spec and is shown but not budgeted: validation is the spec loader's cost.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.bench.gen import EDIT_FROM, EDIT_TO, integration_file, write_repo  # noqa: E402  (one generator)


def run(root: Path, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = {**os.environ, "NO_COLOR": "1"}
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "engine", *args], cwd=root, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, res


def best(root: Path, repeat: int, *args: str, expect: int) -> tuple[float, float, str]:
    """(first run, best run, output): the first run after a spec edit re-validates the specs (cold);
    later runs find them in .syncform/cache (warm)."""
    times, out = [], ""
    for _ in range(repeat):
        seconds, res = run(root, *args)
        if res.returncode != expect:
            tail = "\n".join(res.stderr.splitlines()[-20:])
            sys.exit(f"syncform {' '.join(args)} exited {res.returncode}, expected {expect}:\n{tail}")
        times.append(seconds)
        out = res.stdout
    return times[0], min(times), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--integrations", type=int, default=100)
    ap.add_argument("--budget", type=float, default=1.0, help="seconds of wall time allowed per plan")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best counts")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="syncform-bench-") as tmp:
        root = Path(tmp)
        write_repo(root, args.integrations)
        plan = ("plan", "--no-refresh", "--detailed-exitcode")
        rows = []
        cold, t, out = best(root, args.repeat, *plan, expect=2)
        rows.append(("plan, empty state, cold", cold, out.strip().splitlines()[-1]))
        rows.append(("plan, empty state (all creates)", t, out.strip().splitlines()[-1]))
        seconds, res = run(root, "apply", "--auto-approve", "--no-sync", "--no-refresh")
        if res.returncode != 0:
            sys.exit(f"apply failed:\n{res.stderr}")
        rows.append(("apply --no-sync (not budgeted)", seconds, res.stdout.strip().splitlines()[-1]))
        _, t, out = best(root, args.repeat, *plan, expect=0)
        rows.append(("plan, nothing changed", t, out.strip().splitlines()[0]))
        spec = integration_file(root, args.integrations // 2)
        spec.write_text(spec.read_text().replace(EDIT_FROM, EDIT_TO, 1))
        cold, t, out = best(root, args.repeat, *plan, expect=2)
        rows.append(("plan, one mapping edited, cold", cold, out.strip().splitlines()[-1]))
        rows.append(("plan, one mapping edited", t, out.strip().splitlines()[-1]))
    print(f"syncform plan --no-refresh, {args.integrations} integrations (best of {args.repeat}, wall time, "
          f"process start-up included)")
    over = False
    for label, seconds, last in rows:
        budgeted = not label.startswith("apply") and not label.endswith("cold")
        flag = " OVER BUDGET" if budgeted and seconds > args.budget else ""
        over |= bool(flag)
        print(f"  {label:<34} {seconds:6.3f} s{flag}   {last}")
    print(f"budget {args.budget:.1f} s per plan: {'FAILED' if over else 'ok'}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
