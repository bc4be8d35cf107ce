"""Concurrency on one state: applies, syncs and a reconcile loop started at the same time are
serialised by the state lock; a loser that gives up names the holder (who, pid, operation, lock id);
a lock left by a killed process is taken over (and said so); `state unlock` needs the lock's id."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import time

import pytest
from datetime import datetime

from tests.reliability.conftest import (by_email, cli, count, integrity_ok, no_traceback, people, spawn,
                                        state_path, write_specs)


def deploy_with_data(served, workdir, n=200, sync=False):
    write_specs(workdir, served.base)
    served.create("bigin", people("Cc", n))
    served.create("zoho_crm", people("Dd", n // 2))
    if sync:
        res = cli(workdir, "apply", "--auto-approve")
        assert res.returncode == 0, res.stdout + res.stderr
    return by_email(people("Cc", n) + people("Dd", n // 2))


def wait_for_lock(workdir, operation: str, timeout: float = 20.0) -> tuple:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if state_path(workdir).exists():
            try:
                with sqlite3.connect(state_path(workdir), timeout=5) as db:
                    row = db.execute("SELECT id, pid, operation FROM lock").fetchone()
            except sqlite3.OperationalError:
                row = None
            if row and row[2] == operation:
                return row
        time.sleep(0.02)
    raise AssertionError(f"no {operation} ever took the lock")


def test_an_apply_during_a_sync_waits_then_names_the_holder(served, tmp_path):
    deploy_with_data(served, tmp_path)
    assert cli(tmp_path, "apply", "--auto-approve", "--no-sync").returncode == 0
    served.faults({"latency_ms": 150})
    syncing = spawn(tmp_path, "sync", "bigin-crm")
    lock_id, pid, _ = wait_for_lock(tmp_path, "sync")
    (tmp_path / "integrations" / "specs.yaml").write_text(
        (tmp_path / "integrations" / "specs.yaml").read_text().replace("kind: Integration\nmetadata: {name: bigin-crm}",
                                                                     "kind: Integration\nmetadata: {name: bigin-crm, description: edited}"))
    loser = cli(tmp_path, "apply", "--auto-approve", "--no-sync", "--no-refresh", "--lock-timeout", "0.3")
    no_traceback(loser)
    count("concurrent runs serialised", 1)
    assert loser.returncode == 1, loser.stdout + loser.stderr
    assert f"(pid {pid}) running \"sync\"" in loser.stderr and lock_id in loser.stderr, loser.stderr
    assert f"syncform state unlock {lock_id}" in loser.stderr
    out, err = syncing.communicate(timeout=120)
    served.faults({})
    assert syncing.returncode == 0, out + err
    winner = cli(tmp_path, "apply", "--auto-approve", "--no-sync", "--no-refresh")
    assert winner.returncode == 0, winner.stdout + winner.stderr
    integrity_ok(tmp_path)


def test_two_syncs_at_once_run_one_after_the_other(served, tmp_path):
    expected = deploy_with_data(served, tmp_path)
    assert cli(tmp_path, "apply", "--auto-approve", "--no-sync").returncode == 0
    served.faults({"latency_ms": 40})
    procs = [spawn(tmp_path, "sync", "bigin-crm", "--json") for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    served.faults({})
    count("concurrent runs serialised", 1)
    for p, (out, err) in zip(procs, outs):
        no_traceback((out, err))
        assert p.returncode == 0, out + err
    created = [sum(c["created"] for m in json.loads(out)[0]["modules"] for c in m["counts"].values()) for out, _ in outs]
    assert sorted(created) == [0, len(expected)], created  # the second found the work done: no double writes
    assert by_email(served.records("bigin")) == expected
    assert by_email(served.records("zoho_crm")) == expected
    with sqlite3.connect(state_path(tmp_path)) as db:
        spans = db.execute("SELECT started, ended FROM runs ORDER BY started").fetchall()
    # the runs of one sync never interleave with the other's: serialised by the lock
    starts = sorted({s for s, _ in spans})
    assert len(starts) >= 2
    integrity_ok(tmp_path)


def test_reconcile_loop_and_manual_syncs_share_one_state(served, tmp_path):
    expected = deploy_with_data(served, tmp_path, n=120)
    loop = spawn(tmp_path, "reconcile", "--interval", "0.3", "--max-runs", "4", "--lock-timeout", "20")
    results = []
    for i in range(3):
        served.create("bigin", people(f"Loop{i}x", 10))
        expected.update(by_email(people(f"Loop{i}x", 10)))
        results.append(cli(tmp_path, "sync"))
    out, err = loop.communicate(timeout=180)
    no_traceback((out, err))
    count("concurrent runs serialised", 1 + len(results))
    assert loop.returncode == 0, out + err
    for res in results:
        no_traceback(res)
        assert res.returncode == 0 or "state is locked by" in res.stderr, res.stdout + res.stderr
    final = cli(tmp_path, "sync")
    assert final.returncode == 0, final.stdout + final.stderr
    assert by_email(served.records("bigin")) == expected
    assert by_email(served.records("zoho_crm")) == expected
    integrity_ok(tmp_path)
    with sqlite3.connect(state_path(tmp_path)) as db:
        assert db.execute("SELECT COUNT(*) FROM applies").fetchone()[0] == 1  # the loop applied once
        assert db.execute("SELECT COUNT(*) FROM lock").fetchone()[0] == 0


def test_a_lock_left_by_a_killed_sync_is_taken_over(served, tmp_path):
    expected = deploy_with_data(served, tmp_path)
    assert cli(tmp_path, "apply", "--auto-approve", "--no-sync").returncode == 0
    served.faults({"latency_ms": 150})
    proc = spawn(tmp_path, "sync", "bigin-crm")
    lock_id, pid, _ = wait_for_lock(tmp_path, "sync")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    served.faults({})
    status = cli(tmp_path, "status")
    assert lock_id in status.stdout and f"pid {pid}" in status.stdout, status.stdout
    wrong = cli(tmp_path, "state", "unlock", "not-the-id")
    assert wrong.returncode == 1 and lock_id in wrong.stderr, wrong.stderr
    with sqlite3.connect(state_path(tmp_path)) as db:
        assert db.execute("SELECT id FROM lock").fetchone() == (lock_id,)  # a wrong id removes nothing
    again = cli(tmp_path, "sync", "bigin-crm")
    no_traceback(again)
    assert again.returncode == 0, again.stdout + again.stderr
    assert by_email(served.records("zoho_crm")) == expected
    integrity_ok(tmp_path)


def test_a_sync_that_takes_over_a_dead_lock_says_so(served, tmp_path):
    deploy_with_data(served, tmp_path, n=100)
    assert cli(tmp_path, "apply", "--auto-approve", "--no-sync").returncode == 0
    served.faults({"latency_ms": 150})
    proc = spawn(tmp_path, "sync", "bigin-crm")
    lock_id, _, _ = wait_for_lock(tmp_path, "sync")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    served.faults({})
    again = cli(tmp_path, "sync", "bigin-crm")
    assert again.returncode == 0, again.stderr
    assert f"took over lock {lock_id}" in again.stdout + again.stderr, again.stdout + again.stderr


def test_unlock_removes_only_the_named_lock_of_another_host(served, tmp_path):
    """A lock held from another machine cannot be judged dead: it blocks, names its holder, and goes
    only with `state unlock ITS_ID`."""
    deploy_with_data(served, tmp_path)
    assert cli(tmp_path, "apply", "--auto-approve", "--no-sync").returncode == 0
    with sqlite3.connect(state_path(tmp_path)) as db:
        db.execute("INSERT INTO lock (slot, id, who, host, pid, operation, since) VALUES "
                   "(1, 'lock-elsewhere-1', 'ana', 'ci-runner-7', 4121, 'apply', ?)", (datetime.now().isoformat(),))
    blocked = cli(tmp_path, "apply", "--auto-approve", "--no-sync", "--lock-timeout", "0.2")
    no_traceback(blocked)
    assert blocked.returncode == 1
    assert "ana@ci-runner-7 (pid 4121)" in blocked.stderr and "lock-elsewhere-1" in blocked.stderr, blocked.stderr
    assert cli(tmp_path, "state", "unlock", "lock-elsewhere").returncode == 1  # a prefix is not the id
    ok = cli(tmp_path, "state", "unlock", "lock-elsewhere-1")
    assert ok.returncode == 0 and "removed" in ok.stdout
    assert cli(tmp_path, "pause", "bigin-crm").returncode == 0
    assert re.search(r"PAUSED", cli(tmp_path, "status", "bigin-crm").stdout)


def test_two_applies_with_their_syncs_at_once(served, tmp_path):
    """Two `apply --auto-approve` (each with its initial sync) started together: one applies and
    syncs; the other waits for the lock, then finds nothing to do or its plan stale. The data is
    exact: nothing created twice."""
    expected = deploy_with_data(served, tmp_path, n=150)
    served.faults({"latency_ms": 30})
    procs = [spawn(tmp_path, "apply", "--auto-approve", "--lock-timeout", "60") for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    served.faults({})
    count("concurrent runs serialised", 1)
    for p, (out, err) in zip(procs, outs):
        no_traceback((out, err))
        assert p.returncode == 0 or "is stale" in err or "state is locked by" in err, out + err
    assert sum("Apply complete" in out for out, _ in outs) == 1, outs
    assert by_email(served.records("bigin")) == expected
    assert by_email(served.records("zoho_crm")) == expected
    with sqlite3.connect(state_path(tmp_path)) as db:
        assert db.execute("SELECT serial FROM store_info").fetchone()[0] == 1
        assert db.execute("SELECT COUNT(*) FROM applies").fetchone()[0] == 1
        assert db.execute("SELECT COUNT(*) FROM lock").fetchone()[0] == 0
    integrity_ok(tmp_path)
