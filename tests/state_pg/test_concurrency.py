"""Many processes on one PostgreSQL state at once: syncs of different integrations in parallel, applies
of the same integration serialised by the lock, nothing lost or corrupted; the lock across processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.errors import LockedError
from engine.state import open_store

WORKER = str(Path(__file__).with_name("_worker.py"))


def _spawn(url: str, role: str, index: int, rounds: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, WORKER, url, role, str(index), str(rounds)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_parallel_syncs_and_serialised_applies_lose_nothing(pg_schema_url):
    """3 sync processes (own integrations, no lock) and 3 apply processes (one shared integration, under
    the lock) start together on a state nobody created yet."""
    syncs, applies, rounds = 3, 3, 8
    procs = [_spawn(pg_schema_url, "sync", i, rounds) for i in range(syncs)]
    procs += [_spawn(pg_schema_url, "apply", i, rounds) for i in range(applies)]
    results = [_finish(p) for p in procs]
    assert len(results) == syncs + applies

    store = open_store(pg_schema_url)
    try:
        # every sync round of every integration is there, whole
        from tests.state_pg._worker import LINKS_PER_ROUND

        for i in range(syncs):
            name = f"sync-{i}"
            assert store.count_links(name, "contacts") == rounds * LINKS_PER_ROUND
            assert store.get_link(name, "contacts", left_id=f"L{rounds - 1}-3").right_values == {
                "Email": f"{rounds - 1}.3@x.io"}
            assert store.get_cursor(name, "contacts", "left") == f"cursor-{rounds - 1:04d}"
            runs = store.list_runs(name)
            assert len(runs) == rounds and {r.status for r in runs} == {"ok"}
            assert store.journal_pending(name) == []
            [failure] = store.list_failures(name)
            assert failure.attempts == rounds
        # the shared integration: no increment lost, every apply its own serial, in order
        shared = store.get_deployed("shared")
        assert shared.spec["count"] == applies * rounds
        assert sorted(shared.spec["by"]) == sorted(i for i in range(applies) for _ in range(rounds))
        history = store.apply_history(limit=1000)
        assert len(history) == applies * rounds
        assert [h["serial"] for h in reversed(history)] == list(range(1, applies * rounds + 1))
        assert store.serial() == applies * rounds
        assert store.lock_info() is None
        assert store.schema_version() == 1
    finally:
        store.close()


def test_a_killed_holder_frees_the_lock_and_the_next_one_says_whose_it_took(pg_schema_url):
    script = textwrap.dedent(f"""
        import sys, time
        from engine.state import open_store
        s = open_store({pg_schema_url!r})
        info = s.acquire_lock("apply")
        print(info.id, flush=True)
        time.sleep(120)
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        lock_id = holder.stdout.readline().strip()
        store = open_store(pg_schema_url)
        seen = store.lock_info()
        assert seen.id == lock_id and seen.pid == holder.pid and seen.operation == "apply" and seen.note == ""
        with pytest.raises(LockedError) as err:
            store.acquire_lock("sync", timeout=0.2)
        assert lock_id in str(err.value) and f"pid {holder.pid}" in str(err.value)
        os.kill(holder.pid, signal.SIGKILL)  # no release: only its database session ends
        holder.wait(timeout=30)
        got = store.acquire_lock("sync", timeout=30)
        assert got.id != lock_id
        assert f"took over lock {lock_id}" in got.note and "session is gone" in got.note
        assert store.lock_info().id == got.id
        store.release_lock(got.id)
        store.close()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_force_unlock_ends_a_stuck_holders_session(pg_schema_url):
    """The holder is alive but stuck: unlock with its id ends its session, and the holder then learns,
    at its next call, that its lock is gone."""
    script = textwrap.dedent(f"""
        import sys
        from engine.state import open_store
        from engine.errors import TransientStateError
        s = open_store({pg_schema_url!r})
        info = s.acquire_lock("apply")
        print(info.id, flush=True)
        sys.stdin.readline()
        try:
            s.set_meta("late", "write")
            print("WROTE", flush=True)
        except TransientStateError as e:
            print("LOST", e, flush=True)
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        lock_id = holder.stdout.readline().strip()
        store = open_store(pg_schema_url)
        store.force_unlock(lock_id)
        assert store.lock_info() is None
        got = store.acquire_lock("reconcile", timeout=5)
        assert got.note == ""
        out, _ = holder.communicate("go\n", timeout=60)
        assert out.startswith("LOST") and lock_id in out and "the lock is gone" in out
        assert store.get_meta("late") is None
        store.release_lock(got.id)
        store.close()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
