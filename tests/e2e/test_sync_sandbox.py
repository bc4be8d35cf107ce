"""End-to-end sync through the real app clients and the real sandbox (Bigin ↔ CRM, in-process WSGI over
httpx), with the real SQLite state store. Calls are counted by the clients and compared with the floor
of reference/sync-anchors.md §e (pages of 200 read, batches of 100 written)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from engine.spec.model import (
    Connection, FieldMap, Integration, IntegrationSide, MatchKey, Module, SandboxOptions,
)

FIELDS = ("First_Name", "Last_Name", "Email", "Mobile")


def module(**kw) -> Module:
    base = dict(name="contacts", left="Contacts", right="Contacts", direction="two-way",
                match=(MatchKey("Email", "Email"), MatchKey("Mobile", "Mobile")),
                fields=tuple(FieldMap((f,), (f,)) for f in FIELDS))
    base.update(kw)
    return Module(**base)


def integration(**kw) -> Integration:
    mods = kw.pop("modules", None) or (module(),)
    return Integration(name="bigin-crm", left=IntegrationSide("bigin", "bigin"),
                       right=IntegrationSide("zoho_crm", "crm"), modules=mods, **kw)


def person(i: int, **kw) -> dict:
    return {"First_Name": f"Ada{i}", "Last_Name": f"Lovelace{i}", "Email": f"ada{i}@example.com",
            "Mobile": f"+1 555 {i:07d}", **kw}


class Env:
    def __init__(self, tmp_path):
        from engine.apps.registry import open_client
        from engine.sandbox import SandboxApp
        from engine.state import open_store

        self.now = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
        self.conns = {"bigin": Connection(name="bigin", app="bigin", sandbox=SandboxOptions()),
                      "crm": Connection(name="crm", app="zoho_crm", sandbox=SandboxOptions())}
        # one clock for both apps and the engine: the sandbox stamps Modified_Time with it
        self.apps = {k: SandboxApp(str(tmp_path / f"{k}.db"), clock=self.clock) for k in self.conns}
        no_wait = {"sleep": lambda seconds: None}  # the clients' retry back-off, without the waiting
        self.left = open_client(self.conns["bigin"], workdir=tmp_path,
                                transport=httpx.WSGITransport(app=self.apps["bigin"]), **no_wait)
        self.right = open_client(self.conns["crm"], workdir=tmp_path,
                                 transport=httpx.WSGITransport(app=self.apps["crm"]), **no_wait)
        self.store = open_store(f"sqlite:///{tmp_path}/state.db")

    def clock(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 1.0) -> None:
        self.now += timedelta(seconds=seconds)

    def admin(self, name: str, path: str, body: dict | None = None) -> dict:
        with httpx.Client(transport=httpx.WSGITransport(app=self.apps[name]), base_url="http://sandbox") as c:
            r = c.post(path, json=body or {}) if body is not None else c.get(path)
            r.raise_for_status()
            return r.json()

    def seed(self, client, records):
        for i in range(0, len(records), 100):
            res = client.create_many("Contacts", records[i:i + 100])
            assert all(r.ok for r in res), res[0]
        return res

    def all(self, client) -> list:
        return [r for page in client.list_changed("Contacts", None, fields=FIELDS) for r in page]

    def sync(self, integ=None, **kw):
        from engine.sync import sync_integration

        self.tick(10)  # time passes between runs
        return sync_integration(integ or integration(), store=self.store, left=self.left, right=self.right,
                                clock=self.clock, **kw)

    def close(self):
        self.left.close()
        self.right.close()
        self.store.close()
        for app in self.apps.values():
            app.close()


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path)
    yield e
    e.close()


def writes(rep) -> int:
    return rep.writes


def test_one_way_initial_at_floor_then_noop_then_one_percent(env):
    n = 3000
    env.seed(env.left, [person(i) for i in range(n)])
    integ = integration(modules=(module(direction="left-to-right"),))
    rep = env.sync(integ)
    assert rep.ok and rep.total("created") == n
    floor = math.ceil(n / 200) + 1 + math.ceil(n / 100)
    assert rep.api_calls["left"] + rep.api_calls["right"] <= floor + 2  # + 1 page per side
    crm = env.all(env.right)
    assert sorted(r.values["Email"] for r in crm) == sorted(f"ada{i}@example.com" for i in range(n))
    rep2 = env.sync(integ)
    assert rep2.writes == 0
    # no-op floor: changed + deleted on the source, deleted on the target (a one-way target is not re-read)
    assert rep2.api_calls["left"] + rep2.api_calls["right"] <= 4
    edited = env.all(env.left)[:4]
    env.left.update_many("Contacts", [(r.id, {"Last_Name": "Edited"}) for r in edited])
    rep3 = env.sync(integ)
    assert rep3.total("updated") == 4 and rep3.writes == 4
    assert rep3.api_calls["left"] + rep3.api_calls["right"] <= 4 + 1
    assert sum(1 for r in env.all(env.right) if r.values["Last_Name"] == "Edited") == 4
    assert env.right.stats().get(("Contacts", "update")) == 1


def test_two_way_first_sync_near_duplicate_keys_no_duplicates(env):
    env.seed(env.left, [person(i) for i in range(60)])
    # half of them already in CRM under near-duplicate keys, plus CRM-only people
    env.seed(env.right, [person(i, Email=f" ADA{i}@Example.com") for i in range(0, 60, 2)]
             + [person(i) for i in range(500, 520)])
    rep = env.sync()
    assert rep.ok, rep.as_dict()
    lefts, rights = env.all(env.left), env.all(env.right)
    assert len(lefts) == 80 and len(rights) == 80
    assert len({r.values["Email"].strip().lower() for r in rights}) == 80
    assert rep.total("linked") == 30
    assert env.sync().writes == 0


def test_conflict_latest_and_deletes_and_outage(env):
    integ = integration(modules=(module(conflict="latest", on_delete_left="delete", on_delete_right="unlink"),))
    env.seed(env.left, [person(i) for i in range(10)])
    env.sync(integ)
    lrecs = {r.values["Email"]: r for r in env.all(env.left)}
    rrecs = {r.values["Email"]: r for r in env.all(env.right)}
    e = "ada1@example.com"
    env.left.update_many("Contacts", [(lrecs[e].id, {"First_Name": "FromBigin"})])
    env.tick(2)  # the CRM edit is the later one
    env.right.update_many("Contacts", [(rrecs[e].id, {"First_Name": "FromCRM"})])
    rep = env.sync(integ)
    assert rep.total("conflicts") == 1
    assert {r.values["First_Name"] for r in env.all(env.left) if r.values["Email"] == e} == {"FromCRM"}
    # a delete on the left deletes in CRM; an outage while reading never turns into deletes
    env.left.delete_many("Contacts", [lrecs["ada2@example.com"].id])
    env.admin("crm", "/_sandbox/faults", {"rate_5xx": 1.0, "seed": 1})
    rep = env.sync(integ)
    assert not rep.ok
    env.admin("crm", "/_sandbox/faults", {})
    assert len(env.all(env.right)) == 10
    rep = env.sync(integ)
    assert rep.ok and rep.total("deleted") == 1
    assert len(env.all(env.right)) == 9 and len(env.all(env.left)) == 9


def test_injected_429_and_rejections(env, tmp_path):
    env.seed(env.left, [person(i) for i in range(150)] + [person(999, Last_Name="REJECTME")])
    env.admin("crm", "/_sandbox/faults", {"rate_429": 0.2, "seed": 7,
                                          "reject": [{"field": "Last_Name", "value": "REJECTME"}]})
    rep = env.sync()
    env.admin("crm", "/_sandbox/faults", {})
    assert rep.total("created") == 150 and rep.total("failed") == 1
    (f,) = env.store.list_failures("bigin-crm")
    assert f.code == "REJECTED_BY_APP" and f.app_code == "INVALID_DATA"
    rep = env.sync()
    assert rep.total("created") == 1 and env.store.list_failures("bigin-crm") == []
    assert len(env.all(env.right)) == 151


def test_pause_and_resume(env):
    from engine.state.base import Deployed

    env.seed(env.left, [person(i) for i in range(3)])
    env.sync()
    env.store.put_deployed(Deployed(name="bigin-crm", spec={}, spec_hash="x"))
    env.store.set_paused("bigin-crm", True)
    rec = env.all(env.left)[0]
    env.left.update_many("Contacts", [(rec.id, {"Last_Name": "Paused"})])
    before = dict(env.right.stats())
    rep = env.sync()
    assert rep.paused and dict(env.right.stats()) == before
    env.store.set_paused("bigin-crm", False)
    env.sync()
    assert any(r.values["Last_Name"] == "Paused" for r in env.all(env.right))
