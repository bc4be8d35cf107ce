"""Sync benchmark against the sandbox (not collected by pytest): API calls vs the floor of
reference/sync-anchors.md §e, wall time, peak memory.

    .venv/bin/python tests/bench/bench_sync.py [N]
"""

from __future__ import annotations

import math
import resource
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from engine.apps.registry import open_client
from engine.sandbox import SandboxApp
from engine.spec.model import Connection, FieldMap, Integration, IntegrationSide, MatchKey, Module, SandboxOptions
from engine.state import open_store
from engine.sync import sync_integration

FIELDS = ("First_Name", "Last_Name", "Email", "Mobile")


def main(n: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    now = [datetime(2026, 3, 1, tzinfo=timezone.utc)]
    clock = lambda: now[0]  # noqa: E731
    apps = {k: SandboxApp(str(tmp / f"{k}.db"), clock=clock) for k in ("bigin", "crm")}
    left = open_client(Connection(name="bigin", app="bigin", sandbox=SandboxOptions()), workdir=tmp,
                       transport=httpx.WSGITransport(app=apps["bigin"]))
    right = open_client(Connection(name="crm", app="zoho_crm", sandbox=SandboxOptions()), workdir=tmp,
                        transport=httpx.WSGITransport(app=apps["crm"]))
    people = [{"First_Name": f"Ada{i}", "Last_Name": f"L{i}", "Email": f"ada{i}@ex.com", "Mobile": f"555{i:07d}"}
              for i in range(n)]
    for i in range(0, n, 100):
        left.create_many("Contacts", people[i:i + 100])
    store = open_store(f"sqlite:///{tmp}/state.db")

    def run(label: str, integ: Integration, floor: int) -> None:
        now[0] += timedelta(seconds=30)
        t = time.perf_counter()
        rep = sync_integration(integ, store=store, left=left, right=right, clock=clock)
        calls = rep.api_calls["left"] + rep.api_calls["right"]
        print(f"{label:<28} {time.perf_counter() - t:7.2f} s  calls {calls:5d} (floor {floor}, +2 allowed)  "
              f"writes {rep.writes:6d}  {'OK' if calls <= floor + 2 else 'OVER'}")

    def module(direction: str) -> Module:
        return Module(name="contacts", left="Contacts", right="Contacts", direction=direction,
                      match=(MatchKey("Email", "Email"),), fields=tuple(FieldMap((f,), (f,)) for f in FIELDS))

    one_way = Integration(name="bench", left=IntegrationSide("bigin", "bigin"),
                          right=IntegrationSide("zoho_crm", "crm"), modules=(module("left-to-right"),))
    run(f"initial one-way {n}", one_way, math.ceil(n / 200) + 1 + math.ceil(n / 100))
    run("no-op rerun", one_way, 4)
    recs = [r for p in left.list_changed("Contacts", None, fields=FIELDS) for r in p][: max(1, n // 100)]
    now[0] += timedelta(seconds=30)
    left.update_many("Contacts", [(r.id, {"Last_Name": "Edited"}) for r in recs])
    c = len(recs)
    run(f"1% edited ({c})", one_way, 2 * math.ceil(c / 200) + 2 + math.ceil(c / 100))
    # two-way first sync: half of the people already in CRM under near-duplicate keys, plus CRM-only ones
    store2 = open_store(f"sqlite:///{tmp}/state2.db")
    for k in ("bigin", "crm"):
        apps[k].ctx.store.close() if False else None
    extra = [{**p, "Email": f" ADA{i}@EX.com", "First_Name": f"Ada{i}x" if i % 10 == 0 else p["First_Name"]}
             for i, p in enumerate(people) if i % 2 == 0]
    crm_only = [{"First_Name": f"Bo{i}", "Last_Name": f"K{i}", "Email": f"bo{i}@ex.com"} for i in range(n // 4)]
    two_way = Integration(name="bench2", left=IntegrationSide("bigin", "bigin"),
                          right=IntegrationSide("zoho_crm", "crm2"), modules=(module("two-way"),))
    right2 = open_client(Connection(name="crm2", app="zoho_crm", sandbox=SandboxOptions()), workdir=tmp,
                         transport=httpx.WSGITransport(app=SandboxApp(str(tmp / "crm2.db"), clock=clock)))
    for batch in (extra, crm_only):
        for i in range(0, len(batch), 100):
            right2.create_many("Contacts", batch[i:i + 100])
    nl, nr = n, len(extra) + len(crm_only)
    ul, ur = n - len(extra), len(crm_only)
    diff = sum(1 for i in range(0, n, 2) if i % 10 == 0)
    now[0] += timedelta(seconds=30)
    t = time.perf_counter()
    rep = sync_integration(two_way, store=store2, left=left, right=right2, clock=clock)
    calls = rep.api_calls["left"] + rep.api_calls["right"]
    floor = math.ceil(nl / 200) + math.ceil(nr / 200) + math.ceil(ul / 100) + math.ceil(ur / 100) + 2 * math.ceil(diff / 100)
    emails = {str(r.values["Email"]).strip().lower() for p in right2.list_changed("Contacts", None, fields=FIELDS)
              for r in p}
    total = sum(len(p) for p in right2.list_changed("Contacts", None, fields=FIELDS))
    print(f"{'two-way first, 50% overlap':<28} {time.perf_counter() - t:7.2f} s  calls {calls:5d} (floor ~{floor})  "
          f"linked {rep.total('linked')}  duplicates {total - len(emails)}")
    print("   ", rep.modules[0].samples.get("conflict", [])[:3])
    print("   ", {d: {k: v for k, v in c.items() if v} for d, c in rep.modules[0].counts.items()},
          "failures:", sorted({(f.code, f.app_code) for f in store2.list_failures()}), len(store2.list_failures()))
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
