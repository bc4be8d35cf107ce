"""python -m tests.bench: run the benchmarks of issue 6 and (with --out) write the tables.

    python -m tests.bench [--sizes 10k,100k,1M] [--scenario oneway,twoway,plan]
                          [--latency-ms 0,300] [--concurrency 10] [--plan-sizes 100,1000]
                          [--profile DIR] [--out docs/benchmarks.md]

Results accumulate in tests/bench/results.json (keyed by scenario, N, latency), so a 100k run added
later keeps the 10k figures; --out rewrites the generated block of the Markdown file between
``<!-- bench:begin -->`` and ``<!-- bench:end -->`` and leaves the rest (the findings) alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from tests.bench import report, scenarios

RESULTS = Path(__file__).with_name("results.json")


def _size(s: str) -> int:
    s = s.strip().lower().replace("_", "")
    mult = 1
    if s.endswith("k"):
        mult, s = 1_000, s[:-1]
    elif s.endswith("m"):
        mult, s = 1_000_000, s[:-1]
    return int(float(s) * mult)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10k", help="records per side, comma-separated (10k,100k,1M)")
    ap.add_argument("--scenario", default="oneway,twoway,plan",
                    help="oneway, twoway (= twoway + echo + noop + edit1pct), plan; comma-separated")
    ap.add_argument("--latency-ms", default="0,300", help="sandbox latency per call, comma-separated runs")
    ap.add_argument("--concurrency", type=int, default=10, help="sandbox max_concurrency when latency > 0")
    ap.add_argument("--latency-max-n", type=_size, default=100_000,
                    help="skip latency runs above this N (they take calls x latency / concurrency)")
    ap.add_argument("--plan-sizes", default="100,1000", help="integrations for validate + plan")
    ap.add_argument("--profile", type=Path, help="write a CPU-time cProfile file per measured sync into DIR (.prof: all threads, .prof.main: the calling thread)")
    ap.add_argument("--trace-memory", action="store_true",
                    help="run the measured syncs under tracemalloc and keep the top allocation sites (slow)")
    ap.add_argument("--sections", action="store_true",
                    help="print the calling thread's CPU per record of each section of each sync (tests/bench/sections.py)")
    ap.add_argument("--workdir", type=Path, help="keep the working directories here (default: a temp dir, removed)")
    ap.add_argument("--out", type=Path, help="write the tables into this Markdown file")
    ap.add_argument("--label", default="",
                    help="a name for this build (e.g. before/after a fix); rows of other labels are kept")
    ap.add_argument("--fresh", action="store_true", help="forget earlier results in tests/bench/results.json")
    a = ap.parse_args(argv)
    try:
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]  # progress in a nohup log
    except (AttributeError, ValueError):
        pass

    if a.sections:  # read by each worker (the measured sync's process)
        os.environ["SYNCFORM_BENCH_SECTIONS"] = "1"
    sizes = [_size(s) for s in a.sizes.split(",") if s.strip()]
    chosen = {s.strip() for s in a.scenario.split(",") if s.strip()}
    unknown = chosen - {"oneway", "twoway", "plan"}
    if unknown:
        ap.error(f"unknown scenario(s) {sorted(unknown)}; choose from oneway, twoway, plan")
    lats = [int(x) for x in a.latency_ms.split(",") if x.strip()]
    root = a.workdir or scenarios.tempdir()
    root.mkdir(parents=True, exist_ok=True)
    if a.profile:
        a.profile.mkdir(parents=True, exist_ok=True)
    if a.fresh and RESULTS.exists():
        RESULTS.unlink()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    t0 = time.perf_counter()

    def save(row: object) -> None:
        key = f"{row.key}|{a.label}"  # type: ignore[attr-defined]
        if RESULTS.exists():  # another run may have saved meanwhile: merge, never drop its rows
            results.update({k: v for k, v in json.loads(RESULTS.read_text()).items() if k not in results})
        results[key] = {**row.as_dict(), "kind": "plan" if isinstance(row, scenarios.PlanRow) else "sync",  # type: ignore[attr-defined]
                        "label": a.label, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True))

    try:
        for n in sizes:
            for lat in lats:
                if lat and n > a.latency_max_n:
                    print(f"skip latency {lat} ms at N={n} (above --latency-max-n)")
                    continue
                conc = a.concurrency
                if "oneway" in chosen:
                    print(f"oneway N={n} latency={lat} ms")
                    for row in scenarios.run_oneway(root, n, lat, conc, profile_dir=a.profile, trace=a.trace_memory):
                        print("  " + report.one_line(row))
                        save(row)
                if "twoway" in chosen:
                    print(f"twoway chain N={n} latency={lat} ms")
                    for row in scenarios.run_twoway_chain(root, n, lat, conc, profile_dir=a.profile,
                                                               trace=a.trace_memory):
                        print("  " + report.one_line(row))
                        save(row)
        if "plan" in chosen:
            for k in [int(x) for x in a.plan_sizes.split(",") if x.strip()]:
                print(f"validate + plan of {k} integrations")
                save(scenarios.run_plan(root, k))
    finally:
        if a.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"done in {time.perf_counter() - t0:.0f} s; results in {RESULTS}")
    if a.out:
        report.write(a.out, results, argv if argv is not None else sys.argv[1:])
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
