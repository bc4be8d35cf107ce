"""Time `syncform validate` on a folder of 200 integrations (target: under 1.5 s wall on 2 cores).

Usage: .venv/bin/python scripts/bench_validate.py [--count 200] [--runs 5]

Generates, in a temporary folder, N integrations (Desk <-> Bigin contacts, accounts and products, with
defaults: true, match keys, per-field directions, comments) over N/2 pairs of sandbox connections, so
that the loop check has a real graph to walk, then runs the real CLI as a user would (a new process
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

INTEGRATION = """\
# Integration {i}: support and sales of tenant {t}
apiVersion: syncform/v1
kind: Integration
metadata:
  name: desk-bigin-{i}
  description: Support and sales share one customer and product database ({i})
spec:
  left: {{app: zoho_desk, connection: desk-{t}}}
  right: {{app: bigin, connection: bigin-{i}}}
  owner: admin@example.com
  guards: {{max_deletes: 100}}
  modules:
    - name: contacts
      left: contacts
      right: Contacts
      direction: {direction}
      match:
        - {{left: email, right: Email}}
      conflict: latest
      on_delete: {{left: unlink, right: delete-if-no-associates}}
      initial_sync: {{created_within: 365d}}
      defaults: true
      fields:
        - {{left: cf.cf_customer_type, right: Customer_Type, direction: {field_direction}}}
    - name: accounts
      left: accounts
      right: Accounts
      direction: {direction}
      match: [{{left: accountName, right: Account_Name}}]
      defaults: true
    - name: products
      left: products
      right: Products
      direction: {direction}
      match: [{{left: productName, right: Product_Name}}]
      filter: {{departments: [Support]}}
      fields:
        - {{left: productName, right: Product_Name}}
        - {{left: productCode, right: Product_Code}}
        - {{left: unitPrice, right: Unit_Price}}
"""

CONNECTION = """\
---
apiVersion: syncform/v1
kind: Connection
metadata: {{name: {name}}}
spec:
  app: {app}
  sandbox: {{seed: 10}}
"""


def generate(folder: Path, count: int) -> None:
    specs = folder / "integrations"
    specs.mkdir(parents=True)
    conns = []
    for t in range(count // 2 + 1):
        conns.append(CONNECTION.format(name=f"desk-{t}", app="zoho_desk"))
    for i in range(count):
        conns.append(CONNECTION.format(name=f"bigin-{i}", app="bigin"))
        two_way = i % 2 == 0
        (specs / f"desk-bigin-{i:03d}.yaml").write_text(INTEGRATION.format(
            i=i, t=i // 2, direction="two-way" if two_way else "right-to-left",
            field_direction="right-to-left"))
    (specs / "connections.yaml").write_text("".join(conns))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(root, args.count)
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
