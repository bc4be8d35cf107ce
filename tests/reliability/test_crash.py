"""Crash suite: `syncform sync` and `syncform apply` killed with SIGKILL at seeded random instants, then
run again. The end state must equal that of a run never killed: the same records in both apps (read
back from the sandbox), each once, every update kept; the state passes SQLite's integrity check; the
journal is empty; history and failure log agree with the data.

Default: a few kill points per scenario (fast). `SYNCFORM_CRASH_POINTS=20` runs 20 per scenario.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
import zlib
from pathlib import Path

import pytest

from tests.reliability.conftest import (CRASH_POINTS, FIELDS, Rng, by_email, cli, count, integrity_ok, people,
                                        spawn, state_path, write_specs)

LATENCY_MS = 60  # per request, so that a run lasts long enough for the kill to land inside it
RUN_WINDOW_S = 1.2  # a killed run is cut at uniform(0.4 s, this): start-up, reads, writes, echo
N_LEFT, N_RIGHT, N_BOTH = 250, 150, 40  # records only in Bigin, only in CRM, in both (same e-mail)


def points(default: int) -> int:
    return CRASH_POINTS or default


def plant_initial(served) -> tuple[dict, dict]:
    left = people("Lft", N_LEFT) + people("Both", N_BOTH)
    right = people("Rgt", N_RIGHT) + people("Both", N_BOTH)
    served.create("bigin", left)
    served.create("zoho_crm", right)
    return by_email(left), by_email(right)


def expected_after(direction: str, left: dict, right: dict) -> tuple[dict, dict]:
    if direction == "two-way":
        merged = {**right, **left}
        return merged, merged
    return left, {**right, **left}  # left-to-right: the right gains every left record, keeps its own


def change_both_sides(served, exp_left: dict, exp_right: dict, direction: str) -> tuple[dict, dict]:
    """Incremental changes after a first, complete sync: updates on both sides (disjoint records, other
    fields), creates on both sides. Returns what both apps must hold after the next sync."""
    exp_left = {k: dict(v) for k, v in exp_left.items()}
    exp_right = {k: dict(v) for k, v in exp_right.items()}
    lrecs = {r["Email"].lower(): r for r in served.records("bigin")}
    rrecs = {r["Email"].lower(): r for r in served.records("zoho_crm")}
    left_updates, right_updates = [], []
    for i, email in enumerate(sorted(lrecs)):
        if i % 7 == 0:
            left_updates.append({"id": lrecs[email]["id"], "Last_Name": f"L-upd-{i}"})
            exp_left[email]["Last_Name"] = f"L-upd-{i}"
            exp_right[email]["Last_Name"] = f"L-upd-{i}"
        elif i % 11 == 0 and direction == "two-way":
            right_updates.append({"id": rrecs[email]["id"], "First_Name": f"R-upd-{i}"})
            exp_left[email]["First_Name"] = f"R-upd-{i}"
            exp_right[email]["First_Name"] = f"R-upd-{i}"
    served.update("bigin", left_updates)
    if right_updates:
        served.update("zoho_crm", right_updates)
    # deletes in Bigin: with on_delete delete, their CRM partners go too
    doomed = [e for i, e in enumerate(sorted(lrecs)) if i % 13 == 5]
    served.delete("bigin", [lrecs[e]["id"] for e in doomed])
    for e in doomed:
        exp_left.pop(e)
        exp_right.pop(e)
    new_left, new_right = people("NewL", 60), people("NewR", 30)
    served.create("bigin", new_left)
    served.create("zoho_crm", new_right)
    exp_left.update(by_email(new_left))
    exp_right.update(by_email(new_left))
    exp_right.update(by_email(new_right))
    if direction == "two-way":
        exp_left.update(by_email(new_right))
    return exp_left, exp_right


def assert_apps(served, exp_left: dict, exp_right: dict) -> None:
    got_left = by_email(served.records("bigin"))  # by_email fails on any duplicate
    got_right = by_email(served.records("zoho_crm"))
    assert set(got_left) == set(exp_left), (sorted(set(got_left) ^ set(exp_left))[:10])
    assert set(got_right) == set(exp_right), (sorted(set(got_right) ^ set(exp_right))[:10])
    lost_left = {e: (got_left[e], exp_left[e]) for e in exp_left if got_left[e] != exp_left[e]}
    lost_right = {e: (got_right[e], exp_right[e]) for e in exp_right if got_right[e] != exp_right[e]}
    assert not lost_left, list(lost_left.items())[:5]
    assert not lost_right, list(lost_right.items())[:5]


def assert_state_consistent(served, workdir: Path) -> None:
    integrity_ok(workdir)
    left_ids = {r["id"] for r in served.records("bigin")}
    right_ids = {r["id"] for r in served.records("zoho_crm")}
    with sqlite3.connect(state_path(workdir)) as db:
        assert db.execute("SELECT COUNT(*) FROM journal").fetchone()[0] == 0, "writes left pending in the journal"
        assert db.execute("SELECT COUNT(*) FROM lock").fetchone()[0] == 0
        links = db.execute("SELECT left_id, right_id FROM links WHERE left_id NOT LIKE '~%' "
                           "AND right_id NOT LIKE '~%'").fetchall()
        open_failures = db.execute("SELECT record_id, code, message FROM failures WHERE resolved = 0").fetchall()
    dangling = [(l, r) for l, r in links if l not in left_ids or r not in right_ids]
    assert not dangling, dangling[:5]
    assert not open_failures, open_failures[:5]
    hist = cli(workdir, "history", "bigin-crm", "--json")
    assert hist.returncode == 0, hist.stderr
    runs = json.loads(hist.stdout)
    assert runs, "no run in the history"
    finished = [r for r in runs if r.get("status") not in ("running", "interrupted")]
    assert finished and all(r["status"] == "ok" for r in finished), runs
    fails = cli(workdir, "failures", "bigin-crm")
    assert fails.returncode == 0 and "No failed records." in fails.stdout, fails.stdout + fails.stderr


def note_kill(workdir: Path, killed: bool, delay: float) -> None:
    """Count where the kill landed: with writes in flight (journal entries pending) or between them."""
    pending = 0
    if killed and state_path(workdir).exists():
        with sqlite3.connect(state_path(workdir)) as db:
            if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'journal'").fetchone():
                pending = db.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
    count("kill points tried", 1)
    if pending:
        count("kills with writes in flight (journal pending)", 1)
    print(f"kill at {delay:.2f}s: killed={killed} pending journal entries={pending}")


def run_to_end(workdir: Path, *args: str) -> None:
    res = cli(workdir, *args)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Traceback" not in res.stderr


def quiet_rerun(workdir: Path) -> None:
    """A second sync right after convergence writes nothing: the killed run left no hidden work."""
    res = cli(workdir, "sync", "bigin-crm", "--json")
    assert res.returncode == 0, res.stderr
    (rep,) = json.loads(res.stdout)
    writes = sum(c["created"] + c["updated"] + c["deleted"] for m in rep["modules"] for c in m["counts"].values())
    assert writes == 0, rep


def kill_after(workdir: Path, delay: float, *args: str) -> tuple[bool, str, float]:
    """Start the CLI, SIGKILL it after ``delay`` s. Returns (killed before it ended, stderr, seconds)."""
    t0 = time.monotonic()
    proc = spawn(workdir, *args)
    try:
        proc.wait(timeout=delay)
        killed = False
    except Exception:  # still running: the interesting case
        proc.send_signal(signal.SIGKILL)
        killed = True
    _, err = proc.communicate(timeout=30)
    return killed, err, time.monotonic() - t0


def timed(workdir: Path, *args: str) -> float:
    t0 = time.monotonic()
    run_to_end(workdir, *args)
    return time.monotonic() - t0


ON_DELETE = "      on_delete: {left: delete, right: delete}\n"
SCENARIOS = [("initial", "two-way"), ("initial", "left-to-right"), ("incremental", "two-way"),
             ("incremental", "left-to-right")]


@pytest.mark.parametrize("kind,direction", [
    pytest.param(k, d, id=f"{k}-{d}", marks=() if d == "two-way" or CRASH_POINTS else pytest.mark.skip(
        reason="one-way scenarios run with SYNCFORM_CRASH_POINTS=N")) for k, d in SCENARIOS])
def test_sync_killed_at_random_points_converges(served, tmp_path, kind, direction):
    rng = Rng(zlib.crc32(f"{kind}/{direction}".encode()))
    survived = 0
    n = points(1)
    window = RUN_WINDOW_S
    for point in range(n):
        served.reset()
        workdir = tmp_path / f"p{point}"
        write_specs(workdir, served.base, direction=direction, on_delete=ON_DELETE)
        run_to_end(workdir, "apply", "--auto-approve", "--no-sync")
        left, right = plant_initial(served)
        if kind == "incremental":
            run_to_end(workdir, "sync", "bigin-crm")
            exp_left, exp_right = change_both_sides(served, *expected_after(direction, left, right), direction)
        else:
            exp_left, exp_right = expected_after(direction, left, right)
        served.faults({"latency_ms": LATENCY_MS})
        delay = rng.uniform(0.4, window)
        killed, err, took = kill_after(workdir, delay, "sync", "bigin-crm")
        if not killed:  # the run was shorter than the window: aim inside it from now on
            window = max(0.5, took)
        assert "Traceback" not in err
        note_kill(workdir, killed, delay)
        served.faults({})
        run_to_end(workdir, "sync", "bigin-crm")
        assert_apps(served, exp_left, exp_right)
        assert_state_consistent(served, workdir)
        quiet_rerun(workdir)
        survived += killed
    count("crashes survived (sync SIGKILLed, rerun converged)", survived)
    assert survived >= 1 or n == 1  # at least the seeded points landed inside a run


def test_apply_killed_between_its_steps_converges(served, tmp_path):
    """apply = lock, state steps in one transaction, then the initial sync: killed anywhere, `apply`
    again then `sync` gives the same data as an apply never killed."""
    rng = Rng(4242)
    survived = 0
    window = RUN_WINDOW_S
    for point in range(points(1)):
        served.reset()
        workdir = tmp_path / f"a{point}"
        write_specs(workdir, served.base, direction="two-way")
        left, right = plant_initial(served)
        exp_left, exp_right = expected_after("two-way", left, right)
        served.faults({"latency_ms": LATENCY_MS})
        delay = rng.uniform(0.5, window)
        killed, err, took = kill_after(workdir, delay, "apply", "--auto-approve")
        assert "Traceback" not in err
        note_kill(workdir, killed, delay)
        if not killed:
            window = max(0.5, took)
        served.faults({})
        if state_path(workdir).exists():
            integrity_ok(workdir)
        again = cli(workdir, "apply", "--auto-approve")
        assert again.returncode == 0, again.stdout + again.stderr
        run_to_end(workdir, "sync", "bigin-crm")
        assert_apps(served, exp_left, exp_right)
        assert_state_consistent(served, workdir)
        with sqlite3.connect(state_path(workdir)) as db:
            assert db.execute("SELECT serial FROM store_info").fetchone()[0] == 1  # applied exactly once
            assert db.execute("SELECT COUNT(*) FROM applies").fetchone()[0] == 1
        survived += killed
    count("crashes survived (apply SIGKILLed, rerun converged)", survived)


DESK_SPEC = """\
apiVersion: syncform/v1
kind: Connection
metadata: {{name: desk}}
spec:
  app: zoho_desk
  base_url: {base}
  sandbox: true
---
apiVersion: syncform/v1
kind: Connection
metadata: {{name: bigin}}
spec:
  app: bigin
  base_url: {base}
  sandbox: true
---
apiVersion: syncform/v1
kind: Integration
metadata: {{name: desk-bigin}}
spec:
  left: {{app: zoho_desk, connection: desk}}
  right: {{app: bigin, connection: bigin}}
  modules:
    - name: contacts
      left: contacts
      right: Contacts
      direction: two-way
      match: [{{left: email, right: Email}}]
      fields:
        - {{left: firstName, right: First_Name}}
        - {{left: lastName, right: Last_Name}}
        - {{left: email, right: Email}}
"""


def test_desk_sync_killed_at_random_points_converges(served, tmp_path):
    """Desk writes one record per call, concurrently: a kill lands between single creates too."""
    rng = Rng(zlib.crc32(b"desk"))
    window = RUN_WINDOW_S
    survived = 0
    for point in range(points(1)):
        served.reset()
        workdir = tmp_path / f"d{point}"
        (workdir / "integrations").mkdir(parents=True)
        (workdir / "integrations" / "specs.yaml").write_text(DESK_SPEC.format(base=served.base))
        run_to_end(workdir, "apply", "--auto-approve", "--no-sync")
        desk_rows = [{"firstName": f"D{i}", "lastName": f"DL{i}", "email": f"desk{i}@example.com"} for i in range(60)]
        bigin_rows = [{"First_Name": f"B{i}", "Last_Name": f"BL{i}", "Email": f"bigin{i}@example.com"} for i in range(60)]
        served.create("zoho_desk", desk_rows, module="contacts")
        served.create("bigin", bigin_rows)
        served.faults({"latency_ms": 40})
        delay = rng.uniform(0.4, window)
        killed, err, took = kill_after(workdir, delay, "sync", "desk-bigin")
        assert "Traceback" not in err
        note_kill(workdir, killed, delay)
        if not killed:
            window = max(0.5, took)
        served.faults({})
        res = cli(workdir, "sync", "desk-bigin")
        assert res.returncode == 0, res.stdout + res.stderr
        desk = [(r["email"] or "").lower() for r in served.records("zoho_desk", "contacts", ("firstName", "lastName", "email"))]
        bigin = [(r["Email"] or "").lower() for r in served.records("bigin")]
        want = {r["email"] for r in desk_rows} | {r["Email"] for r in bigin_rows}
        assert sorted(desk) == sorted(want), "Desk: duplicates or losses"
        assert sorted(bigin) == sorted(want), "Bigin: duplicates or losses"
        integrity_ok(workdir)
        with sqlite3.connect(state_path(workdir)) as db:
            assert db.execute("SELECT COUNT(*) FROM journal").fetchone()[0] == 0
            assert db.execute("SELECT COUNT(*) FROM failures WHERE resolved = 0").fetchone()[0] == 0
        survived += killed
    count("crashes survived (sync SIGKILLed, rerun converged)", survived)


def test_in_process_sandbox_killed_with_the_sync_converges(tmp_path):
    """`sandbox:` connections without base_url run the apps inside the syncform process: a SIGKILL
    takes the apps' own SQLite writes down with the sync. Rerun: the same records in both, once."""
    from engine.apps.registry import open_client
    from engine.spec.model import Connection, SandboxOptions

    rng = Rng(zlib.crc32(b"in-process"))
    window = 1.0
    survived = 0
    for point in range(points(1)):
        workdir = tmp_path / f"i{point}"
        spec = write_specs(workdir, "x", direction="two-way")
        spec.write_text(spec.read_text().replace("  base_url: x\n", ""))
        run_to_end(workdir, "apply", "--auto-approve", "--no-sync", "--no-refresh")
        conns = {app: Connection(name=name, app=app, sandbox=SandboxOptions())
                 for app, name in (("bigin", "bigin"), ("zoho_crm", "crm"))}
        for app, rows in (("bigin", people("Lft", 300) + people("Both", 30)),
                          ("zoho_crm", people("Rgt", 150) + people("Both", 30))):
            with open_client(conns[app], workdir=workdir) as c:
                for i in range(0, len(rows), 100):
                    assert all(r.ok for r in c.create_many("Contacts", rows[i:i + 100]))
        delay = rng.uniform(0.4, window)
        killed, err, took = kill_after(workdir, delay, "sync", "bigin-crm")
        assert "Traceback" not in err
        note_kill(workdir, killed, delay)
        if not killed:
            window = max(0.5, took)
        run_to_end(workdir, "sync", "bigin-crm")
        want = {r["Email"] for r in people("Lft", 300) + people("Rgt", 150) + people("Both", 30)}
        for name in ("bigin", "crm"):  # the apps' own databases survived the kill too
            with sqlite3.connect(workdir / ".syncform" / "sandbox" / f"{name}.db") as db:
                assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        emails = read_in_process(workdir, conns)
        for app in ("bigin", "zoho_crm"):
            assert sorted(emails[app]) == sorted(want), (app, len(emails[app]), len(want))
        integrity_ok(workdir)
        quiet_rerun(workdir)
        survived += killed
    count("crashes survived (sync SIGKILLed, rerun converged)", survived)


def read_in_process(workdir: Path, conns: dict) -> dict[str, list[str]]:
    """Both apps' e-mails, read by a fresh process through the real clients (in-process sandbox)."""
    import subprocess
    import sys

    from tests.reliability.conftest import cli_env

    code = ("import json, sys\n"
            "from engine.apps.registry import open_client\n"
            "from engine.spec.model import Connection, SandboxOptions\n"
            "out = {}\n"
            "for app, name in (('bigin', 'bigin'), ('zoho_crm', 'crm')):\n"
            "    with open_client(Connection(name=name, app=app, sandbox=SandboxOptions()), workdir='.') as c:\n"
            "        out[app] = [(r.values.get('Email') or '').lower() for p in c.list_changed('Contacts', None,"
            " fields=['Email']) for r in p]\n"
            "print(json.dumps(out))\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=workdir, env=cli_env(), capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_a_killed_run_is_not_shown_running_forever(served, tmp_path):
    write_specs(tmp_path, served.base)
    run_to_end(tmp_path, "apply", "--auto-approve", "--no-sync")
    served.create("bigin", people("Hist", 300))
    served.faults({"latency_ms": 150})
    proc = spawn(tmp_path, "sync", "bigin-crm")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until the run is recorded, then kill it
        if state_path(tmp_path).exists():
            with sqlite3.connect(state_path(tmp_path)) as db:
                if db.execute("SELECT COUNT(*) FROM runs WHERE status = 'running'").fetchone()[0]:
                    break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    served.faults({})
    run_to_end(tmp_path, "sync", "bigin-crm")
    runs = json.loads(cli(tmp_path, "history", "bigin-crm", "--json").stdout)
    assert len(runs) >= 4
    assert not [r for r in runs if r["status"] == "running"], runs
