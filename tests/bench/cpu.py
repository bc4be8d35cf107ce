"""CPU per record of each local phase of a sync, in-process, without a profiler's distortion.

    python -m tests.bench.cpu [--n 10000] [--profile PHASE]

Phases (the same code the engine runs, on the bench spec's 6 mapped fields of Bigin -> CRM Contacts):
  decode     json.loads of 200-record pages as the sandbox sends them: the HTTP layer's work (counted in
             transport_cpu_seconds() in a sync), shown for scale, not in the sum
  parse      the client's Record building from decoded pages (ZohoClient._records and the parallel
             read's id set per page, as a COQL page is read), the least of 3 runs
  answers    the client's write results from decoded 100-record create answers as the sandbox sends them
             (ZohoClient._results, JSON decoding excluded), the least of 3 runs
  plan-new   plan_changes of an initial one-way copy (every record a create)
  plan-match plan_changes of an initial two-way run where every left record matches a right one
  plan-echo  plan_changes of linked records read back unchanged (the echo / no-op path)
  plan-edit  plan_changes of linked records edited in one field on the left, their partners unchanged
             (the 1 % edits: an update of the right per record)
             (the plan phases: the least of 3 runs, each with a mapper made beforehand, as a module run
             makes one, and under a sync run's collector settings, engine.sync._collector_for_a_run)
  encode     the write bodies (json.dumps of {"data": [...]} per 100)
  journal    journal_add of the write batches (what the executor journals before sending)
  links      put_links of the new links (SQLite, one transaction per 100)
  exec-new   the real Executor carrying plan-new's creates out (journal, batches, links) against a real
             SQLite state and an in-memory AppClient (tests/bench/cpu_exec.py): calling thread, and in
             brackets the whole process (write threads included)
  exec-match the same for plan-match's ops (links and updates of matched pairs)
             (both: the least of 3 runs)
  links-read get_links of exec-match's links per 200 ids, by right id then by left id (what an echo or a
             no-op run reads back: each link twice), the least of 3 runs
  links-update update_link_rows rewriting 2 % of exec-match's links in place, 100 per transaction (what
             a 1 % edit commits: rows spread over the table, each a page written), per link
  links-upsert the same through put_link_rows' upsert (delete + insert: both id indexes rewritten too)
The sum is a lower bound of the sync's CPU per record (HTTP, threads and the report come on top).
"""

from __future__ import annotations

import argparse
import operator
import cProfile
import json
import pstats
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from tests.bench.cpu_exec import measure, read_links, update_links
from tests.bench.harness import FIELDS

# a one-way copy's local work: parse, plan, the executor's own (journal, encode inside it, links)
_SUM = ("parse", "plan-new", "plan-echo", "encode", "exec-new")  # answers (write threads) come on top


def _spec(direction: str) -> Any:
    from engine.spec.model import FieldMap, Integration, IntegrationSide, MatchKey, Module

    mod = Module(name="contacts", left="Contacts", right="Contacts", direction=direction,
                 match=(MatchKey("Email", "Email"),), fields=tuple(FieldMap((f,), (f,)) for f in FIELDS))
    return Integration(name="bench", left=IntegrationSide("bigin", "left"),
                       right=IntegrationSide("zoho_crm", "right"), modules=(mod,))


def _raw(app: str, n: int) -> list[dict[str, Any]]:
    from engine.sandbox.seed import slot_person

    out = []
    for j in range(n):
        p = slot_person(app, 1, j)
        out.append({"First_Name": p["first"], "Last_Name": p["last"], "Email": p["email"], "Phone": p["phone"],
                    "Mobile": p["mobile"], "Title": p["title"], "id": str(4_876_876_000_000_000_000 + j),
                    "Modified_Time": "2026-02-03T10:11:12+00:00", "Created_Time": "2026-01-02T10:11:12+00:00"})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.bench.cpu")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--profile", help="print a cProfile of this phase")
    a = ap.parse_args(argv)
    n = a.n

    from engine.apps.base import Record
    from engine.apps.http import HttpLayer, hosts_for
    from engine.apps.zoho import ZohoClient
    from engine.state import open_store
    from engine.state.base import JournalEntry, Link
    from engine.sync.executor import journal_payload
    from engine.sync.mapping import ModuleMapper
    from engine.sync import _collector_for_a_run
    from engine.sync.plan import MatchIndex, PlanInput, compiled_planner, plan_changes

    lraw, rraw = _raw("bigin", n), _raw("zoho_crm", n)
    bodies = [json.dumps({"data": lraw[i:i + 200], "info": {"more_records": True}}) for i in range(0, n, 200)]
    results: dict[str, float] = {}
    process: dict[str, float] = {}  # phases that also run threads: the whole process's CPU

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        prof = cProfile.Profile() if a.profile == name else None
        t = time.process_time()
        if prof:
            prof.enable()
        out = fn()
        if prof:
            prof.disable()
        results[name] = (time.process_time() - t) / n * 1e6
        if prof:
            pstats.Stats(prof).sort_stats("tottime").print_stats(20)
        return out

    def least_of_3(name: str, prepare: Callable[[], Any], fn: Callable[[Any], Any]) -> Any:
        """``fn(prepare())`` timed 3 times (each on fresh input), the least kept: a short phase is noisy."""
        best, out = None, None
        for _ in range(3):
            arg = prepare()
            out = timed(name, lambda: fn(arg))
            best = results[name] if best is None else min(best, results[name])
        results[name] = best
        return out

    client = ZohoClient(HttpLayer(app="bigin", connection="bench", hosts=hosts_for("us")), app="bigin")
    records_of, record_id = client._records, operator.attrgetter("id")

    def parse(pages: list[list[dict[str, Any]]]) -> list[Record]:
        recs: list[Record] = []
        for page in pages:
            got = records_of("Contacts", "coql", page)
            set(map(record_id, got))
            recs += got
        return recs

    # pages as the sandbox answers them: every record with its own times (its seed spreads them over
    # ~400 days), so that no time parses from a cache; the plan phases' records keep their fixed times
    stamp = datetime(2026, 2, 3, 10, 11, 12, tzinfo=timezone.utc)
    pbodies = [json.dumps({"data": [{**raw, "Modified_Time": (stamp - timedelta(seconds=977 * (i + k))).isoformat(),
                                     "Created_Time": (stamp - timedelta(seconds=3_061 * (i + k))).isoformat()}
                                    for k, raw in enumerate(lraw[i:i + 200])], "info": {"more_records": True}})
               for i in range(0, n, 200)]
    least_of_3("decode", lambda: None, lambda _: [json.loads(b)["data"] for b in pbodies])
    least_of_3("parse", lambda: [json.loads(b)["data"] for b in pbodies], parse)
    left = parse([json.loads(b)["data"] for b in bodies])
    answers = [json.dumps({"data": [
        {"code": "SUCCESS", "message": "record added", "status": "success",
         "details": {"Modified_Time": f"2026-02-03T10:11:{i // 2000:02d}+00:00", "Modified_By": {"name": "Bench Admin",
                     "id": "5725767000000381001"}, "Created_Time": f"2026-02-03T10:11:{i // 2000:02d}+00:00",
                     "id": str(5_725_767_000_000_000_000 + i), "Created_By": {"name": "Bench Admin",
                                                                            "id": "5725767000000381001"},
                     "$approval_state": "approved"}} for i in range(j, j + 100)]}) for j in range(0, n, 100)]

    def answer_results(decoded: list[Any]) -> float:
        import httpx

        by_response = {}
        responses = []
        for body in decoded:
            r = httpx.Response(201, content=b"{}")
            by_response[id(r)] = body
            responses.append(r)
        client.http.json = lambda response, module, op: by_response[id(response)]  # decoded already (transport)
        results_of = client._results
        t = time.process_time()
        for r in responses:
            results_of(r, "Contacts", "create", [None] * 100)
        return time.process_time() - t

    spent = []
    for _ in range(3):
        decoded = [json.loads(b) for b in answers]
        spent.append(answer_results(decoded))
    results["answers"] = min(spent) / n * 1e6
    client.close()
    right = [Record(id=str(5_725_767_000_000_000_000 + i), values={**r, "id": str(5_725_767_000_000_000_000 + i)},
                    modified=left[i].modified) for i, r in enumerate(rraw)]
    # right records that match left ones by e-mail (same people, the app's own formatting)
    matched = [Record(id=str(5_725_767_000_000_000_000 + i), values={**lraw[i], "Phone": rraw[i]["Phone"],
                                                                     "id": str(5_725_767_000_000_000_000 + i)},
                      modified=left[i].modified) for i in range(n)]

    def mapper(direction: str) -> Any:
        """The module's mapper, made outside the timing with what a module run makes once (the catalogs
        read, the generated planner): the phases measure the per-record work."""
        integ = _spec(direction)
        m = ModuleMapper(integ, integ.modules[0])
        compiled_planner(m, "left")
        return m

    def plan(m: Any, rights: list[Record] | None, links: dict[str, dict[str, Link]] | None = None,
             lefts: list[Record] | None = None) -> list:
        # under the collector settings of a sync run (engine.sync), as the engine plans
        with _collector_for_a_run():
            idx = {"left": MatchIndex(m, "left"), "right": MatchIndex(m, "right")}
            rmap = {r.id: r for r in rights or []}
            if links is None:  # the right side indexed for matching, as the working set does it
                idx["right"].add_all(rights or [])
            inp = PlanInput(mapper=m, changed={"left": {}, "right": rmap}, links=links or {"left": {}, "right": {}},
                            index=idx, deleted={"left": set(), "right": set()}, initial=links is None)
            ops = []
            done: dict[str, set[str]] = {"left": set(), "right": set()}
            for i in range(0, n, 200):
                inp.changed["left"] = {r.id: r for r in (left if lefts is None else lefts)[i:i + 200]}
                ops += plan_changes(inp, ("left",), done)
            return ops

    ops = least_of_3("plan-new", lambda: mapper("left-to-right"), lambda m: plan(m, []))
    match_ops = least_of_3("plan-match", lambda: mapper("two-way"), lambda m: plan(m, matched))
    integ = _spec("two-way")
    m = ModuleMapper(integ, integ.modules[0])
    linkmap = {"left": {}, "right": {}}
    for lrec, rrec in zip(left, matched):
        lk = Link(left_id=lrec.id, right_id=rrec.id, left_values=m.snapshot("left", lrec.values),
                  right_values=m.snapshot("right", rrec.values))
        linkmap["left"][lrec.id] = lk
        linkmap["right"][rrec.id] = lk
    echo_ops = least_of_3("plan-echo", lambda: mapper("two-way"), lambda m: plan(m, matched, linkmap))
    # a 1 % edit's pairs: each left record edited in one field since its link, its partner unchanged
    # (not read by the run): one update of the right per record
    edited = [Record(id=r.id, values={**r.values, "Title": f"{r.values.get('Title') or ''} (edited)"},
                     modified=r.modified) for r in left]
    edit_ops = least_of_3("plan-edit", lambda: mapper("two-way"), lambda m: plan(m, [], linkmap, edited))
    assert sum(1 for o in edit_ops if o.kind == "update") == n, "plan-edit: one update per edited record"
    writes = [o for o in ops if o.kind == "create"]
    timed("encode", lambda: [json.dumps({"data": [dict(o.values) for o in writes[i:i + 100]], "trigger": []})
                             for i in range(0, len(writes), 100)])
    with tempfile.TemporaryDirectory() as d:
        store = open_store(f"sqlite:///{Path(d) / 'state.db'}")
        now = datetime.now(timezone.utc)

        def journal() -> None:  # as Executor.send: the batches of one buffer flush (1,000 writes) in one call
            for j in range(0, len(writes), 1000):
                store.journal_add_many([JournalEntry(id=None, integration="bench", module="contacts", target="right",
                                                     operation="create", payload=journal_payload(writes[i:i + 100]),
                                                     created=now) for i in range(j, min(j + 1000, len(writes)), 100)])

        timed("journal", journal)

        def links() -> None:
            for i in range(0, len(writes), 100):
                with store.transaction():
                    store.put_links("bench", "contacts",
                                    [Link(left_id=o.source_id or "", right_id=f"r{i + k}", left_values=o.link.left_values,
                                          right_values=o.link.right_values, synced_at=now)
                                     for k, o in enumerate(writes[i:i + 100])])

        timed("links", links)
        store.close()
        for name, phase_ops, direction in (("exec-new", ops, "left-to-right"), ("exec-match", match_ops, "two-way")):
            prof = cProfile.Profile() if a.profile == name else None
            if prof:
                prof.enable()
            # the least of 3 runs, each into a fresh state (the executor's threads make single runs noisy)
            runs = [measure(phase_ops, _spec(direction), str(Path(d) / f"{name}{k}.db"), n=n)
                    for k in range(1 if prof else 3)]
            if prof:
                prof.disable()
                pstats.Stats(prof).sort_stats("tottime").print_stats(25)
            results[name] = min(r[0] for r in runs)
            process[name] = min(r[1] for r in runs)
        # what an echo or no-op run reads back: each matched pair's link, by right and by left id
        results["links-read"] = min(read_links(str(Path(d) / "exec-match0.db"), _spec("two-way"), n=n)
                                    for _ in range(3))
        # what a 1 % edit commits: links rewritten in place, spread over the table
        results["links-update"] = min(update_links(str(Path(d) / f"exec-match{k}.db"), _spec("two-way"))
                                      for k in range(len(runs)))
        results["links-upsert"] = min(update_links(str(Path(d) / f"exec-match{k}.db"), _spec("two-way"), upsert=True)
                                      for k in range(len(runs)))
    print(f"CPU µs per record, N={n} ({len(writes)} creates, {sum(1 for o in echo_ops if o.kind != 'link')} ops on the echo)")
    for k, v in results.items():
        print(f"  {k:<12} {v:7.1f}" + (f"  ({process[k]:.1f} process)" if k in process else ""))
    print(f"  {'sum':<12} {sum(v for k, v in results.items() if k in _SUM):7.1f}  ({' + '.join(_SUM)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
