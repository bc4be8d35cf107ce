"""The real CLI with its state on PostgreSQL (``SYNCFORM_STATE=postgresql://…``): plan → apply → plan,
two applies at once, a sync against the sandbox over loopback, and ``state migrate`` back to SQLite."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from engine.state import open_store
from tests.e2e.test_sync_cli import FIELDS, served  # noqa: F401 - the sandbox server fixture
from tests.plan.support import FIXTURES


def _cli(cwd, state_url, *args, timeout=120):
    env = {**os.environ, "NO_COLOR": "1", "SYNCFORM_STATE": state_url}
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def repo(tmp_path):
    shutil.copytree(FIXTURES / "base", tmp_path / "integrations")
    return tmp_path


def test_plan_apply_plan_and_status_on_postgres(repo, pg_schema_url):
    first = _cli(repo, pg_schema_url, "plan", "--no-refresh", "--detailed-exitcode")
    assert first.returncode == 2, first.stderr
    applied = _cli(repo, pg_schema_url, "apply", "--auto-approve", "--no-sync", "--no-refresh")
    assert applied.returncode == 0, applied.stderr
    assert "Apply complete: 3 added, 0 changed, 0 destroyed (state serial 1)." in applied.stdout
    again = _cli(repo, pg_schema_url, "plan", "--no-refresh", "--detailed-exitcode")
    assert again.returncode == 0 and again.stdout.startswith("No changes."), again.stdout + again.stderr
    status = _cli(repo, pg_schema_url, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["serial"] == 1
    assert not (repo / ".syncform" / "state.db").exists()  # nothing went to a SQLite file
    store = open_store(pg_schema_url)
    assert [d.name for d in store.list_deployed()] == ["desk-bigin"] and len(store.apply_history()) == 1
    store.close()


def test_two_applies_at_once_on_postgres_apply_once(repo, pg_schema_url):
    open_store(pg_schema_url).close()  # created before the race, as a team's shared state would be
    env = {**os.environ, "NO_COLOR": "1", "SYNCFORM_STATE": pg_schema_url}
    cmd = [sys.executable, "-m", "engine", "apply", "--auto-approve", "--no-sync", "--no-refresh"]
    procs = [subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    codes = [p.returncode for p in procs]
    assert 0 in codes, outs
    for code, (out, err) in zip(codes, outs):
        if code != 0:
            assert "is stale" in err or "state is locked by" in err, err
    store = open_store(pg_schema_url)
    try:
        assert store.serial() == 1
        assert len(store.apply_history()) == 1
        assert store.lock_info() is None
    finally:
        store.close()


def test_sync_against_the_sandbox_with_state_on_postgres(served, tmp_path, pg_schema_url):  # noqa: F811
    from engine.apps.registry import open_client
    from engine.spec.model import Connection, FieldMap, Integration, IntegrationSide, MatchKey, Module, SandboxOptions
    from engine.spec.serialize import deployed_spec
    from engine.state.base import Deployed

    conns = [Connection(name="bigin", app="bigin", sandbox=SandboxOptions(), base_url=served),
             Connection(name="crm", app="zoho_crm", sandbox=SandboxOptions(), base_url=served)]
    mod = Module(name="contacts", left="Contacts", right="Contacts", direction="left-to-right",
                 match=(MatchKey("Email", "Email"),), fields=tuple(FieldMap((f,), (f,)) for f in FIELDS))
    integ = Integration(name="bigin-crm", left=IntegrationSide("bigin", "bigin"),
                        right=IntegrationSide("zoho_crm", "crm"), modules=(mod,))
    store = open_store(pg_schema_url)
    store.put_deployed(Deployed(name="bigin-crm", spec=deployed_spec(integ, conns), spec_hash="e2e"))
    store.close()
    n = 40
    with open_client(conns[0], workdir=tmp_path) as bigin:
        bigin.create_many("Contacts", [{"Last_Name": f"L{j}", "First_Name": f"F{j}", "Email": f"p{j}@ex.com"}
                                       for j in range(n)])
    first = _cli(tmp_path, pg_schema_url, "sync", "bigin-crm")
    assert first.returncode == 0, first.stderr
    with open_client(conns[1], workdir=tmp_path) as crm:
        emails = [rec.values["Email"] for page in crm.list_changed("Contacts", None, fields=FIELDS) for rec in page]
    assert sorted(emails) == sorted(f"p{j}@ex.com" for j in range(n))
    second = _cli(tmp_path, pg_schema_url, "sync", "bigin-crm", "--json")
    assert second.returncode == 0, second.stderr
    (report,) = json.loads(second.stdout)
    assert sum(c["created"] + c["updated"] for c in report["modules"][0]["counts"].values()) == 0
    store = open_store(pg_schema_url)
    try:
        assert store.count_links("bigin-crm", "contacts") == n
        assert store.journal_pending("bigin-crm") == []
        assert len(store.list_runs("bigin-crm")) >= 2 and store.lock_info() is None
    finally:
        store.close()
    if "migrate" in _state_commands():
        back = _cli(tmp_path, pg_schema_url, "state", "migrate", "--to", f"sqlite:///{tmp_path}/back.db")
        assert back.returncode == 0, back.stderr
        copy = open_store(f"sqlite:///{tmp_path}/back.db")
        assert copy.count_links("bigin-crm", "contacts") == n
        copy.close()


def _state_commands() -> dict:
    from engine.cli.plan_cmds import state

    return state.commands
