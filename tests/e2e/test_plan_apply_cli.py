"""The real CLI, end to end: plan → apply → plan; stale plans; concurrent applies; no secret anywhere."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from tests.plan.support import FIXTURES, REPO

SECRETS = {"SF_TEST_DESK_ID": "1000.CLIENTIDVALUE7788", "SF_TEST_DESK_SECRET": "desk-client-secret-5f3a9e",
           "SF_TEST_DESK_REFRESH": "1000.refresh.6c1d0b7f2e"}


@pytest.fixture
def repo(tmp_path):
    shutil.copytree(FIXTURES / "base", tmp_path / "integrations")
    return tmp_path


def _changes(stdout: str) -> list[tuple[str, str]]:
    return [(c["address"], c["action"]) for c in json.loads(stdout)["changes"] if c["action"] != "no-op"]


def test_plan_apply_plan_then_one_mapping_edit(run_cli, repo):
    first = run_cli("plan", "--no-refresh", "--detailed-exitcode", cwd=repo)
    assert first.returncode == 2, first.stderr
    assert "+ desk-bigin  (data)" in first.stdout
    assert first.stdout.rstrip().endswith("Plan: 3 to add, 0 to change, 0 to destroy.")
    applied = run_cli("apply", "--auto-approve", "--no-sync", "--no-refresh", cwd=repo)
    assert applied.returncode == 0, applied.stderr
    assert "Apply complete: 3 added, 0 changed, 0 destroyed (state serial 1)." in applied.stdout
    assert "skipped (--no-sync)" in applied.stdout
    again = run_cli("plan", "--no-refresh", "--detailed-exitcode", cwd=repo)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.startswith("No changes.")
    spec = repo / "integrations" / "specs.yaml"
    spec.write_text(spec.read_text().replace("{left: firstName, right: First_Name}", "{left: cf.cf_nickname, right: First_Name}"))
    edited = run_cli("plan", "--no-refresh", "--detailed-exitcode", "--json", cwd=repo)
    assert edited.returncode == 2, edited.stderr
    assert _changes(edited.stdout) == [("desk-bigin.contacts.field[First_Name]", "update")]


def test_apply_without_a_terminal_or_auto_approve_refuses(run_cli, repo):
    res = run_cli("apply", "--no-refresh", cwd=repo)
    assert res.returncode == 1
    assert "needs approval and there is no terminal to ask: pass --auto-approve" in res.stderr
    assert not (repo / ".syncform" / "state.db").exists() or "Apply complete" not in res.stdout


def test_a_saved_plan_applied_after_someone_elses_apply_is_refused(run_cli, repo):
    saved = run_cli("plan", "--no-refresh", "-out", "plans/first.json", cwd=repo)
    assert saved.returncode == 0 and (repo / "plans" / "first.json").exists()
    other = run_cli("apply", "--auto-approve", "--no-sync", "--no-refresh", cwd=repo)
    assert other.returncode == 0
    stale = run_cli("apply", "plans/first.json", "--no-sync", cwd=repo)
    assert stale.returncode == 1
    assert "is stale: it was made at state serial 0, the state is now at serial 1" in stale.stderr
    assert "changed since: desk-bigin" in stale.stderr


def test_a_fresh_saved_plan_applies_without_asking(run_cli, repo):
    assert run_cli("plan", "--no-refresh", "-out", "plans/p.json", cwd=repo).returncode == 0
    res = run_cli("apply", "plans/p.json", "--no-sync", cwd=repo)
    assert res.returncode == 0, res.stderr
    assert "Apply complete: 3 added" in res.stdout


def test_the_loser_of_a_lock_names_the_holder(run_cli, repo):
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys
            from engine.state import open_store
            store = open_store("sqlite:///.syncform/state.db")
            lock = store.acquire_lock("apply")
            print(lock.id, flush=True)
            sys.stdin.readline()
            store.release_lock(lock.id)
        """)], cwd=repo, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        lock_id = holder.stdout.readline().strip()
        res = run_cli("apply", "--auto-approve", "--no-sync", "--no-refresh", "--lock-timeout", "0.3", cwd=repo)
        assert res.returncode == 1
        assert f"(pid {holder.pid}) running \"apply\"" in res.stderr
        assert lock_id in res.stderr and "syncform state unlock" in res.stderr
    finally:
        holder.communicate("done\n", timeout=30)
    assert run_cli("apply", "--auto-approve", "--no-sync", "--no-refresh", cwd=repo).returncode == 0


def test_two_applies_at_once_never_corrupt_the_state(repo):
    env = {**os.environ, "NO_COLOR": "1"}
    cmd = [sys.executable, "-m", "engine", "apply", "--auto-approve", "--no-sync", "--no-refresh"]
    procs = [subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    codes = [p.returncode for p in procs]
    assert 0 in codes
    for code, (out, err) in zip(codes, outs):
        if code != 0:  # the loser either waited and found its plan stale, or names the lock holder
            assert "is stale" in err or "state is locked by" in err, err
        else:
            assert "Apply complete" in out or "Nothing to apply" in out
    with sqlite3.connect(repo / ".syncform" / "state.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT serial FROM store_info").fetchone()[0] == 1
        assert db.execute("SELECT COUNT(*) FROM applies").fetchone()[0] == 1
        assert db.execute("SELECT COUNT(*) FROM lock").fetchone()[0] == 0


def test_no_secret_value_in_plan_state_or_output(run_cli, repo):
    spec = repo / "integrations" / "specs.yaml"
    # a spec that inlines a secret through a template variable: it must still never come out
    spec.write_text(spec.read_text().replace("description: Support and sales share one customer database",
                                             'description: "{{ note }}"'))
    env = {**SECRETS, "SOME_API_TOKEN": "unreferenced-token-31337"}
    # a referenced secret through one variable, an unreferenced env secret through another
    spec.write_text(spec.read_text().replace('description: "{{ note }}"', 'description: "{{ note }} {{ other }}"'))
    leak = ["--var", f"note=token {SECRETS['SF_TEST_DESK_REFRESH']}", "--var", "other=unreferenced-token-31337"]
    outputs = []
    for args in (("plan", "--no-refresh"), ("plan", "--no-refresh", "--json"), ("plan", "--no-refresh", "--markdown"),
                 ("plan", "--no-refresh", "-out", "plans/p.json"), ("apply", "plans/p.json", "--no-sync"),
                 ("status", "--json"), ("state", "show", "desk-bigin"), ("state", "list")):
        res = run_cli(*leak, *args, cwd=repo, env=env)
        assert res.returncode == 0, (args, res.stderr)
        outputs.append(res.stdout + res.stderr)
    blobs = [o.encode() for o in outputs] + [(repo / "plans" / "p.json").read_bytes()]
    kept = [p for p in (repo / ".syncform").rglob("*") if p.is_file()]  # state.db*, the specs cache
    assert any(p.name == "specs.json" for p in kept)
    blobs += [p.read_bytes() for p in kept]
    for name, value in {**SECRETS, "SOME_API_TOKEN": "unreferenced-token-31337"}.items():
        for blob in blobs:
            assert value.encode() not in blob, name
    assert b"(sensitive)" in (repo / "plans" / "p.json").read_bytes()
    assert b"SF_TEST_DESK_REFRESH" in (repo / "plans" / "p.json").read_bytes()  # the reference stays


def test_status_pause_resume_destroy(run_cli, repo):
    assert run_cli("apply", "--auto-approve", "--no-sync", "--no-refresh", cwd=repo).returncode == 0
    assert "desk-bigin: zoho_desk/desk ↔ bigin/bigin" in run_cli("status", cwd=repo).stdout
    assert run_cli("pause", "desk-bigin", cwd=repo).stdout.strip() == "desk-bigin paused."
    assert "PAUSED" in run_cli("status", "desk-bigin", cwd=repo).stdout
    assert run_cli("resume", "desk-bigin", cwd=repo).stdout.strip() == "desk-bigin resumed."
    refused = run_cli("destroy", "desk-bigin", cwd=repo)
    assert refused.returncode == 1 and "needs approval" in refused.stderr
    gone = run_cli("destroy", "desk-bigin", "--auto-approve", cwd=repo)
    assert gone.returncode == 0 and "records stay in both apps" in gone.stdout
    assert "Nothing deployed yet" in run_cli("status", cwd=repo).stdout
    missing = run_cli("pause", "desk-bigin", cwd=repo)
    assert missing.returncode == 1 and 'integration "desk-bigin" is not deployed' in missing.stderr


def test_state_unlock_needs_the_lock_id(run_cli, repo):
    from engine.state import open_store

    store = open_store("sqlite:///.syncform/state.db", base=repo)
    lock = store.acquire_lock("apply")
    store.close()
    wrong = run_cli("state", "unlock", "nope", cwd=repo)
    assert wrong.returncode == 1 and lock.id in wrong.stderr
    assert run_cli("state", "unlock", lock.id, cwd=repo).returncode == 0
    assert run_cli("apply", "--auto-approve", "--no-sync", "--no-refresh", cwd=repo).returncode == 0


def test_reconcile_twice_is_a_no_op_the_second_time(run_cli, repo):
    first = run_cli("reconcile", "--no-sync", cwd=repo)
    assert first.returncode == 0 and "[1] Plan: 3 to add" in first.stdout
    second = run_cli("reconcile", "--no-sync", cwd=repo)
    assert second.returncode == 0 and "[1] in sync: nothing to change." in second.stdout


def test_no_color_and_unknown_state_scheme(run_cli, repo):
    res = run_cli("plan", "--no-refresh", cwd=repo)
    assert "\x1b[" not in res.stdout
    bad = run_cli("--state", "mysql://x/y", "plan", "--no-refresh", cwd=repo)
    assert bad.returncode == 1 and 'unsupported state URL scheme "mysql"; supported: ' in bad.stderr
    assert "sqlite://" in bad.stderr


def test_sandbox_end_to_end_plan_apply_sync_plan(run_cli, tmp_path):
    """Against the built-in apps over real HTTP: the sync runs, and the next plan is empty."""
    pytest.importorskip("engine.sandbox.seed", reason="the sandbox's demo seeding is not in this build")
    shutil.copytree(FIXTURES / "sandbox", tmp_path / "integrations")
    applied = run_cli("apply", "--auto-approve", cwd=tmp_path)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "✓ initial sync of desk-bigin.contacts:" in applied.stdout
    with sqlite3.connect(tmp_path / ".syncform" / "state.db") as db:
        assert db.execute("SELECT COUNT(*) FROM links").fetchone()[0] > 0
    again = run_cli("plan", "--detailed-exitcode", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr


def test_plan_preview_shows_record_counts_and_writes_nothing(run_cli, tmp_path):
    shutil.copytree(FIXTURES / "sandbox", tmp_path / "integrations")
    res = run_cli("plan", "--preview", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "Record-level preview (dry run: nothing written):" in res.stdout
    assert "  desk-bigin (changes since the last sync):" in res.stdout
    assert "    contacts: left-to-right:" in res.stdout and " created" in res.stdout
    with sqlite3.connect(tmp_path / ".syncform" / "state.db") as db:
        assert db.execute("SELECT COUNT(*) FROM links").fetchone()[0] == 0
        assert db.execute("SELECT serial FROM store_info").fetchone()[0] == 0


def test_a_missing_or_edited_plan_file_is_refused(run_cli, repo):
    missing = run_cli("apply", "plans/nope.json", cwd=repo)
    assert missing.returncode == 1 and "plans/nope.json: no such plan file" in missing.stderr
    assert run_cli("plan", "--no-refresh", "-out", "plans/p.json", cwd=repo).returncode == 0
    path = repo / "plans" / "p.json"
    path.write_text(path.read_text().replace('"unlink"', '"delete"'))
    edited = run_cli("apply", "plans/p.json", cwd=repo)
    assert edited.returncode == 1 and "modified after it was made" in edited.stderr
