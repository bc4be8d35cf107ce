"""Markdown tables of the benchmark results, and the machine they ran on."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
ORDER = {"oneway": 0, "twoway": 1, "echo": 2, "noop": 3, "edit1pct": 4}
CPU_TARGET_US = 15.0
WALL_FACTOR = 1.25
PLAN_TARGET = {100: 1.0, 1000: 5.0}


def machine() -> str:
    model = "?"
    mem = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        commit = "?"
    return (f"{os.cpu_count()} cores ({model}), {mem} RAM, Linux {platform.release()}, "
            f"Python {platform.python_version()}, syncform at commit {commit or '?'} (shared machine)")


def _n(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def _rw(d: dict[str, int]) -> str:
    return f"{d['reads']} / {d['writes']}"


def _srv(r: dict[str, Any]) -> str:
    v = (r.get("detail") or {}).get("server_cpu_s")
    return f"{v:.1f}" if isinstance(v, (int, float)) else "–"


def _sync_row(r: dict[str, Any]) -> str:
    calls, floor = r["calls"], r["floor"]
    total = sum(c["reads"] + c["writes"] for c in calls.values())
    ftotal = sum(c["reads"] + c["writes"] for c in floor.values())
    ok = all(calls[s]["reads"] + calls[s]["writes"] <= floor[s]["reads"] + floor[s]["writes"] + 1 for s in calls)
    verdict = "✓" if ok else "✗"
    lat = r["latency_ms"]
    sync_wall = (r.get("detail") or {}).get("sync_wall_s") or r["wall_s"]
    if lat:
        limit = total * lat / 1000 / max(1, r["concurrency"])
        ratio = sync_wall / limit if limit else 0
        lim = f"{limit:.1f}"
        rat = f"{ratio:.2f} {'✓' if ratio <= WALL_FACTOR else '✗'}"
        # round trips that must follow one another, however many calls may run at once: the OAuth
        # token, the first change pages (with the deleted feeds), the rest of the pages (which need the
        # count the first page asks for), then the writes (which need the records read)
        chain = (2 + (1 if max(calls[s]["reads"] for s in calls) > 2 else 0)
                 + (1 if any(calls[s]["writes"] for s in calls) else 0)) * lat / 1000
        bound = max(limit, chain)
        lim += f" / {bound:.1f}"
        rat += f" / {sync_wall / bound:.2f} {'✓' if sync_wall <= WALL_FACTOR * bound else '✗'}"
    else:
        lim = rat = "–"
    us = f"{r['sync_cpu_s'] / r['records'] * 1e6:.0f}" if r["records"] else "–"
    tcpu = r.get("transport_cpu_s")
    if r["records"] and tcpu is not None:
        local = (r["sync_cpu_s"] - tcpu) / r["records"] * 1e6
        loc = f"{local:.0f} {'✓' if local <= CPU_TARGET_US else '✗'}"
    else:
        loc = "–"
    faults = "; ".join(f"{s}: " + ", ".join(f"{k} {v}" for k, v in f.items()) for s, f in (r.get("faults") or {}).items() if f)
    check = r["check"] + (f" (faults {faults})" if faults else "")
    return (f"| {r.get('label') or '–'} | {r['scenario']} | {_n(r['n'])} | {lat or 0} | {_rw(calls['left'])} | {_rw(calls['right'])} "
            f"| {_rw(floor['left'])} | {_rw(floor['right'])} | {total} vs {ftotal} {verdict} | {r['writes']} "
            f"| {r['wall_s']:.2f} ({sync_wall:.2f}) | {_srv(r)} | {lim} | {rat} | {r['cpu_s']:.2f} | {r['sync_cpu_s']:.2f} | {us} | {loc} "
            f"| {r['maxrss_mb']:.0f} | {check} |")


def tables(results: dict[str, dict[str, Any]]) -> str:
    sync = sorted((r for r in results.values() if r.get("kind") == "sync"),
                  key=lambda r: (r.get("label", ""), r["latency_ms"], r["n"], ORDER.get(r["scenario"], 9)))
    out = ["### Sync scenarios", "",
           "Calls are `reads / writes` per side as counted by each sandbox server's `/_sandbox/stats` "
           "(left = Bigin Contacts, right = Zoho CRM Contacts). *vs* compares the total with the total "
           "floor; ✓ when every side is within floor + 1 call. Limit = calls × latency ÷ concurrency (issue 6); "
           "bound = max(limit, the round trips that depend on one another × latency: token, first pages, the other pages, writes). "
           "Wall is the syncform process (start-up included), in brackets the sync call, which the ratios use. "
           "CPU is the syncform process (user + sys; start-up and imports included); *sync CPU* is the "
           "sync call alone, and *µs / record* divides it by the records the run had to process "
           "(oneway N, twoway 2N, echo the records written by the run before, edit1pct the edited records). "
           "*local µs / record* subtracts the CPU spent in the HTTP client layer "
           "(`engine.apps.http.transport_cpu_seconds()`: building, sending, receiving and decoding calls): "
           "syncform's own work, which the issue's 15 µs target is about (✓/✗ there only). "
           "Peak RSS is `VmHWM` of the syncform process. Sandbox CPU is what both sandbox servers "
           "spent meanwhile (same 2-core machine).", "",
           "| build | scenario | N/side | latency ms | calls left r / w | calls right r / w | floor left | floor right "
           "| calls vs floor | records written | wall s (sync call) | sandbox CPU s | limit / bound s | wall / limit / bound | CPU s | sync CPU s "
           "| µs / record | local µs / record | peak RSS MB | check |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    out += [_sync_row(r) for r in sync]
    plans = sorted((r for r in results.values() if r.get("kind") == "plan"),
                   key=lambda r: (r.get("label", ""), r["integrations"]))
    if plans:
        out += ["", "### validate + plan (`--no-refresh`, no app called), real CLI, a fresh process per command", "",
                "| build | integrations | validate s | plan (cold) s | validate + plan s | target | plan (warm cache) s "
                "| plan, no changes s | plan peak RSS MB | plan says |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for p in plans:
            st = p["steps"]
            vp = st["validate"]["wall_s"] + st["plan (cold)"]["wall_s"]
            tgt = PLAN_TARGET.get(p["integrations"])
            tg = f"≤ {tgt:g} s {'✓' if vp <= tgt else '✗'}" if tgt else "–"
            rss = st["plan (cold)"]["maxrss_mb"]
            out.append(f"| {p.get('label') or '–'} | {p['integrations']} | {st['validate']['wall_s']:.2f} | {st['plan (cold)']['wall_s']:.2f} "
                       f"| {vp:.2f} | {tg} | {st['plan (warm)']['wall_s']:.2f} | {st['plan, no changes']['wall_s']:.2f} "
                       f"| {rss:.0f} | {p['summary']} |")
    stamps = sorted({r.get("at", "") for r in results.values()})
    out += ["", f"Measured {stamps[0]} … {stamps[-1]} on {machine()}."]
    return "\n".join(out)


def _us(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def _main_us(row: Any) -> str:
    v = (row.detail or {}).get("main_thread_cpu_s")
    return "-" if v is None or not row.records else f"{v / row.records * 1e6:.0f}"


def one_line(row: Any) -> str:
    line = (f"{row.scenario:<9} N={row.n:<8} lat={row.latency_ms:<4} calls={row.total_calls()} (floor "
            f"{row.total_floor()}) writes={row.writes} wall={row.wall_s:.2f}s cpu={row.cpu_s:.2f}s "
            f"sync_cpu={row.sync_cpu_s:.2f}s ({_us(row.cpu_us_per_record())} us/rec, local {_us(row.local_us_per_record())}, main thread {_main_us(row)}) rss={row.maxrss_mb:.0f}MB {row.check}")
    sections = (row.detail or {}).get("sections_us")
    if sections:  # --sections: the calling thread's µs per record, per section
        line += "\n      main thread, us/record: " + ", ".join(f"{k} {v:.1f}" for k, v in sections.items())
    return line


def write(path: Path, results: dict[str, dict[str, Any]], argv: list[str]) -> None:
    block = f"{BEGIN}\n{tables(results)}\n{END}"
    if path.exists():
        text = path.read_text()
        if BEGIN in text and END in text:
            text = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
    else:
        text = f"# Benchmarks\n\n{block}\n"
    path.write_text(text)
