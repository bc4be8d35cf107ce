"""The measured side of a benchmark: one process that runs ``syncform sync NAME`` through the workspace
API, exactly as ``engine/cli/sync_cmds.py`` does (open_session -> deployed_integrations -> lock ->
sync_integration), and writes what it measured as JSON.

    python -m tests.bench.worker --root DIR --state URL --name NAME --out FILE [--profile FILE.prof]
                                 [--tracemalloc]

The parent (tests/bench/harness.py) also reads the process's own rusage with os.wait4, so the CPU
time and peak RSS it reports are those of this whole process (interpreter start-up and imports
included); ``sync_cpu_s`` is the CPU time of the sync call alone (all threads), ``transport_cpu_s``
the part of it spent in the apps' HTTP layer (``engine.apps.http.transport_cpu_seconds()``; None
when the build has no such counter).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any


def _status_kb(key: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _rss_kb() -> int:
    return _status_kb("VmRSS")


def _http() -> Any:
    try:
        from engine.apps import http
    except ImportError:
        return None
    return http


def _trace_calls(path: str | None) -> None:
    """With ``SYNCFORM_BENCH_TRACE=FILE``: every API call's start and end (seconds since the first
    call), connection, module and operation, one JSON line each, written at exit: where a run waits."""
    if not path:
        return
    import atexit
    import threading

    from engine.apps import http

    rows: list[tuple[float, float, str, str, str]] = []
    lock = threading.Lock()
    original = http.HttpLayer.request
    t0 = time.perf_counter()

    def request(self: Any, method: str, url: str, *, module: str, op: str, **kw: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(self, method, url, module=module, op=op, **kw)
        finally:
            with lock:
                rows.append((start - t0, time.perf_counter() - t0, self.connection, module, op))

    http.HttpLayer.request = request  # type: ignore[method-assign]

    def dump() -> None:
        with open(f"{path}.{os.getpid()}", "w") as f:
            for r in sorted(rows):
                f.write(json.dumps(r) + "\n")

    atexit.register(dump)


def run(root: str, state_url: str, name: str, *, profile: str | None = None,
        trace_memory: bool = False) -> dict[str, Any]:
    from engine.sync import sync_integration
    from engine.sync.wiring import deployed_integrations
    from engine.workspace import open_session

    rss_before = _rss_kb()
    _trace_calls(os.environ.get("SYNCFORM_BENCH_TRACE"))
    session = open_session(root=root, state_url=state_url)
    prof = None
    if trace_memory:
        import tracemalloc

        tracemalloc.start(25)
    try:
        store = session.store()
        (integ,) = deployed_integrations(store, name)
        left, right = session.client(integ.left.connection), session.client(integ.right.connection)
        lock = store.acquire_lock("sync")
        try:
            thread_profs: list[Any] = []
            if profile:
                import cProfile
                import threading

                prof = cProfile.Profile(time.thread_time)  # CPU time: waits do not count

                def _profile_thread(*_: Any) -> None:  # first event in a new thread: profile it too
                    p = cProfile.Profile(time.thread_time)
                    thread_profs.append(p)
                    p.enable()

                threading.setprofile(_profile_thread)
            # CPU spent in the apps' HTTP layer (building, sending, receiving, decoding calls), all
            # threads: sync CPU minus it is syncform's local work
            transport_cpu = getattr(_http(), "transport_cpu_seconds", None)
            # the sync's own modules are imported before the timer: a fixed start-up cost (in the CPU s
            # column), not work per record; it is large here because PYTHONDONTWRITEBYTECODE compiles
            # them from source in every process
            import engine.sync.engine  # noqa: F401
            # so are the apps' field catalogs (read from the package once per process, then cached) and
            # the IDNA codec the HTTP stack imports at a process's first request
            from engine.catalog import catalog

            for app in {integ.left.app, integ.right.app}:
                catalog(app)
            "localhost".encode("idna")

            # SYNCFORM_BENCH_SECTIONS=1 (python -m tests.bench --sections): the calling thread's CPU per
            # section of the sync (tests/bench/sections.py)
            sections = None
            if os.environ.get("SYNCFORM_BENCH_SECTIONS"):
                from tests.bench.sections import install

                sections = install()
            before_mods = set(sys.modules)
            tcpu0 = transport_cpu() if transport_cpu else 0.0
            cpu0, wall0, main0 = time.process_time(), time.perf_counter(), time.thread_time()
            if prof is not None:
                prof.enable()
            peak: dict[str, Any] = {"bytes": 0, "snap": None}

            def progress(module: str, phase: str, done: int, total: int | None) -> None:
                # under tracemalloc, keep the allocation sites at the highest point seen between pages
                import tracemalloc

                cur, _ = tracemalloc.get_traced_memory()
                if cur > peak["bytes"] * 1.05:
                    peak["bytes"] = cur
                    peak["snap"] = tracemalloc.take_snapshot()

            rep = sync_integration(integ, store=store, left=left, right=right,
                                   progress=progress if trace_memory else None)
            if prof is not None:
                prof.disable()
            cpu1, wall1, main1 = time.process_time(), time.perf_counter(), time.thread_time()
            tcpu = transport_cpu() - tcpu0 if transport_cpu else None
            late_imports = sorted(set(sys.modules) - before_mods)
        finally:
            store.release_lock(lock.id)
        top_alloc: list[str] = []
        traced_peak = 0
        if trace_memory:
            import tracemalloc

            _, traced_peak = tracemalloc.get_traced_memory()
            snap = peak["snap"] or tracemalloc.take_snapshot()
            top_alloc = [str(s) for s in snap.statistics("lineno")[:15]]
            tracemalloc.stop()
        if prof is not None and profile:
            import pstats

            prof.dump_stats(profile + ".main")  # the calling thread alone
            stats = pstats.Stats(prof)
            for p in thread_profs:  # the executor's write threads and the read-ahead thread
                try:
                    p.create_stats()
                    stats.add(p)
                except (TypeError, ValueError):
                    pass
            stats.dump_stats(profile)
        return {"report": rep.as_dict(), "ok": rep.ok, "sync_cpu_s": cpu1 - cpu0, "sync_wall_s": wall1 - wall0,
                "main_thread_cpu_s": main1 - main0, "late_imports": late_imports,  # of sync_cpu_s, the calling thread (plan, journal, links)
                "transport_cpu_s": tcpu, "sections_s": dict(sections) if sections is not None else None,
                "client_stats": {"left": {f"{m}/{op}": n for (m, op), n in left.stats().items()},
                                 "right": {f"{m}/{op}": n for (m, op), n in right.stats().items()}},
                "rss_before_kb": rss_before, "rss_end_kb": _rss_kb(),
                # VmHWM is this process image's peak RSS; ru_maxrss is not reset by exec and so can
                # report the parent's size at fork time
                "hwm_kb": _status_kb("VmHWM"),
                "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "traced_peak_bytes": traced_peak, "top_alloc": top_alloc}
    finally:
        session.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.bench.worker")
    ap.add_argument("--root", required=True)
    ap.add_argument("--state", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--profile")
    ap.add_argument("--tracemalloc", action="store_true")
    a = ap.parse_args(argv)
    result = run(a.root, a.state, a.name, profile=a.profile, trace_memory=a.tracemalloc)
    Path(a.out).write_text(json.dumps(result, default=str))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
