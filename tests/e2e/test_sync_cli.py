"""The sync CLI against `syncform sandbox serve` over loopback: a run killed (SIGKILL) mid-way and
rerun creates no duplicates and loses nothing; history and failures render."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from engine.spec.model import Connection, FieldMap, Integration, IntegrationSide, MatchKey, Module, SandboxOptions

FIELDS = ("First_Name", "Last_Name", "Email", "Mobile")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(tmp_path):
    port = free_port()
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "engine", "sandbox", "serve", "--port", str(port),
                             "--data", str(tmp_path / "sb")], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(f"{base}/_sandbox/stats", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield base
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()


def cli(tmp_path, *args, timeout=60):
    return subprocess.run([sys.executable, "-m", "engine", "--state", f"sqlite:///{tmp_path}/state.db", *args],
                          cwd=tmp_path, env={**os.environ, "NO_COLOR": "1"}, capture_output=True, text=True,
                          timeout=timeout)


def test_killed_run_resumes_without_duplicates(served, tmp_path):
    from engine.apps.registry import open_client
    from engine.spec.serialize import deployed_spec
    from engine.state import open_store
    from engine.state.base import Deployed

    conns = [Connection(name="bigin", app="bigin", sandbox=SandboxOptions(), base_url=served),
             Connection(name="crm", app="zoho_crm", sandbox=SandboxOptions(), base_url=served, max_concurrency=2)]
    mod = Module(name="contacts", left="Contacts", right="Contacts", direction="left-to-right",
                 match=(MatchKey("Email", "Email"),), fields=tuple(FieldMap((f,), (f,)) for f in FIELDS))
    integ = Integration(name="bigin-crm", left=IntegrationSide("bigin", "bigin"),
                        right=IntegrationSide("zoho_crm", "crm"), modules=(mod,))
    store = open_store(f"sqlite:///{tmp_path}/state.db")
    store.put_deployed(Deployed(name="bigin-crm", spec=deployed_spec(integ, conns), spec_hash="e2e"))
    store.close()
    n = 500
    with open_client(conns[0], workdir=tmp_path) as bigin:
        for i in range(0, n, 100):
            bigin.create_many("Contacts", [{"Last_Name": f"L{j}", "First_Name": f"F{j}", "Email": f"p{j}@ex.com"}
                                           for j in range(i, i + 100)])
    # the record plan, without writing: counts per module and side, masked samples
    r = cli(tmp_path, "sync", "bigin-crm", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "dry run" in r.stdout and f"created {n}" in r.stdout
    assert "@ex.com" in r.stdout and "p1@ex.com" not in r.stdout and "p***@ex.com" in r.stdout
    with open_client(conns[1], workdir=tmp_path) as crm:
        assert sum(len(p) for p in crm.list_changed("Contacts", None, fields=FIELDS)) == 0
    # slow the writes down, then kill the run (SIGKILL) as soon as some of its create batches landed
    httpx.post(f"{served}/_sandbox/faults", json={"latency_ms": 150}).raise_for_status()

    def written() -> int:
        stats = httpx.get(f"{served}/_sandbox/stats").json()
        return stats["records_written"].get("zoho_crm", {}).get("Contacts", {}).get("create", 0)

    kills = 0
    for step in (100, 100):
        start = written()
        proc = subprocess.Popen([sys.executable, "-m", "engine", "--state", f"sqlite:///{tmp_path}/state.db",
                                 "sync", "bigin-crm"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while proc.poll() is None and written() < start + step and time.monotonic() < deadline:
            time.sleep(0.01)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 1
    httpx.post(f"{served}/_sandbox/faults", json={}).raise_for_status()
    with open_client(conns[1], workdir=tmp_path) as crm:
        landed = sum(len(p) for p in crm.list_changed("Contacts", None, fields=FIELDS))
    assert 0 < landed < n  # the kills did land mid-run
    r = cli(tmp_path, "sync", "bigin-crm")
    assert r.returncode == 0, r.stderr
    with open_client(conns[1], workdir=tmp_path) as crm:
        emails = [rec.values["Email"] for page in crm.list_changed("Contacts", None, fields=FIELDS) for rec in page]
    assert len(emails) == n and len(set(emails)) == n
    r = cli(tmp_path, "sync", "bigin-crm", "--json")
    assert r.returncode == 0, r.stderr
    (rep,) = json.loads(r.stdout)
    assert sum(c["created"] + c["updated"] for c in rep["modules"][0]["counts"].values()) == 0
    r = cli(tmp_path, "history", "bigin-crm", "--json")
    runs = json.loads(r.stdout)
    assert r.returncode == 0 and any(x["created"] > 0 for x in runs)
    r = cli(tmp_path, "failures", "bigin-crm")
    assert r.returncode == 0 and "No failed records." in r.stdout
    r = cli(tmp_path, "sync", "nope")
    assert r.returncode == 1 and 'no deployed integration "nope"' in r.stderr


def test_failures_retry_and_slots_commands(served, tmp_path):
    from datetime import date, timedelta

    from engine.apps.registry import open_client
    from engine.spec.model import Calendar
    from engine.spec.serialize import deployed_spec
    from engine.state import open_store
    from engine.state.base import Deployed

    conns = [Connection(name="bigin", app="bigin", sandbox=SandboxOptions(), base_url=served),
             Connection(name="crm", app="zoho_crm", sandbox=SandboxOptions(), base_url=served),
             Connection(name="bk", app="zoho_bookings", sandbox=SandboxOptions(), base_url=served)]
    mod = Module(name="contacts", left="Contacts", right="Contacts", direction="left-to-right",
                 match=(MatchKey("Email", "Email"),), fields=tuple(FieldMap((f,), (f,)) for f in FIELDS))
    integ = Integration(name="bigin-crm", left=IntegrationSide("bigin", "bigin"),
                        right=IntegrationSide("zoho_crm", "crm"), modules=(mod,))
    appts = Module(name="appointments", left="appointments", right="Events", direction="left-to-right",
                   fields=(FieldMap(("service_name",), ("Event_Title",)),), calendar=Calendar())
    bk = Integration(name="bookings-bigin", left=IntegrationSide("zoho_bookings", "bk"),
                     right=IntegrationSide("bigin", "bigin"), modules=(appts,))
    store = open_store(f"sqlite:///{tmp_path}/state.db")
    store.put_deployed(Deployed(name="bigin-crm", spec=deployed_spec(integ, conns), spec_hash="e2e"))
    store.put_deployed(Deployed(name="bookings-bigin", spec=deployed_spec(bk, conns), spec_hash="e2e"))
    store.close()
    with open_client(conns[0], workdir=tmp_path) as bigin:
        bigin.create_many("Contacts", [{"Last_Name": "Ok", "Email": "ok@ex.com"},
                                       {"Last_Name": "REJECTME", "Email": "no@ex.com"}])
    httpx.post(f"{served}/_sandbox/faults",
               json={"reject": [{"app": "zoho_crm", "field": "Last_Name", "value": "REJECTME"}]}).raise_for_status()
    r = cli(tmp_path, "sync", "bigin-crm")
    assert r.returncode == 0, r.stderr
    r = cli(tmp_path, "failures", "bigin-crm", "--json")
    (f,) = json.loads(r.stdout)
    assert (f["code"], f["app_code"], f["side"]) == ("REJECTED_BY_APP", "INVALID_DATA", "left")
    r = cli(tmp_path, "failures")
    assert "REJECTED_BY_APP (INVALID_DATA)" in r.stdout and "retry with" in r.stdout
    httpx.post(f"{served}/_sandbox/faults", json={}).raise_for_status()
    r = cli(tmp_path, "retry", "bigin-crm", str(f["id"]))
    assert r.returncode == 0 and "0 failed record(s) remain." in r.stdout, r.stdout + r.stderr
    r = cli(tmp_path, "retry", "nope", "--all")
    assert r.returncode == 1 and "nope" in r.stderr
    httpx.post(f"{served}/_sandbox/seed", json={"app": "zoho_bookings", "count": 3}).raise_for_status()
    day = (date.today() + timedelta(days=2)).isoformat()
    r = cli(tmp_path, "slots", "--integration", "bookings-bigin", "--service", "Consultation",
            "--staff", "Dr. Asha Rao", "--date", day, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["slots"]
    r = cli(tmp_path, "slots", "--integration", "bookings-bigin", "--service", "Consultation",
            "--staff", "Dr. Asha Rao", "--date", "someday")
    assert r.returncode == 1 and "--date" in r.stderr
