"""Bookings → Bigin through the real clients and sandbox: customers become contacts (matched by e-mail,
then phone, then name), appointments become events under those contacts, cancellations remove them,
and free slots exclude the staff's busy Bigin events."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from engine.spec.model import (
    Calendar, Connection, FieldMap, Integration, IntegrationSide, MatchKey, Module, SandboxOptions,
)


def integration() -> Integration:
    customers = Module(name="customers", left="customers", right="Contacts", direction="left-to-right",
                       match=(MatchKey("email", "Email"), MatchKey("phone", "Mobile"), MatchKey("name", "Full_Name")),
                       fields=(FieldMap(("name",), ("First_Name", "Last_Name")), FieldMap(("email",), ("Email",)),
                               FieldMap(("phone",), ("Mobile",))))
    appts = Module(name="appointments", left="appointments", right="Events", direction="left-to-right",
                   parent="customers", on_delete_left="delete",
                   fields=(FieldMap(("service_name",), ("Event_Title",)), FieldMap(("start_time",), ("Start_DateTime",)),
                           FieldMap(("end_time",), ("End_DateTime",))),
                   calendar=Calendar(check_conflicts=True))
    return Integration(name="bookings-bigin", left=IntegrationSide("zoho_bookings", "bk"),
                       right=IntegrationSide("bigin", "bigin"), modules=(customers, appts))


@pytest.fixture
def env(tmp_path):
    from engine.apps.registry import open_client
    from engine.sandbox import for_connection
    from engine.state import open_store

    bk = Connection(name="bk", app="zoho_bookings", sandbox=SandboxOptions(seed=6))
    bg = Connection(name="bigin", app="bigin", sandbox=SandboxOptions())
    for c in (bk, bg):
        for_connection(c, tmp_path)
    left, right = open_client(bk, workdir=tmp_path), open_client(bg, workdir=tmp_path)
    store = open_store(f"sqlite:///{tmp_path}/state.db")
    yield left, right, store
    left.close()
    right.close()
    store.close()


def read(client, module, fields):
    return [r for page in client.list_changed(module, None, fields=fields) for r in page]


def test_bookings_to_bigin(env):
    from engine.sync import sync_integration

    left, right, store = env
    customers = read(left, "customers", ())
    appts = [a for a in read(left, "appointments", ()) if str(a.values.get("status")).lower() != "cancel"]
    assert customers and appts
    rep = sync_integration(integration(), store=store, left=left, right=right)
    assert rep.ok, rep.as_dict()
    contacts = read(right, "Contacts", ("First_Name", "Last_Name", "Email", "Mobile"))
    emails = {str(c.values.get("Email")).lower() for c in contacts}
    from datetime import datetime, timezone

    year_ago = datetime.now(timezone.utc) - timedelta(days=365)  # initial_sync.created_within default
    recent = {str(c.values["email"]).lower() for c in customers if c.values.get("email")
              and (c.created is None or c.created >= year_ago)}
    old = {str(c.values["email"]).lower() for c in customers if c.created is not None and c.created < year_ago}
    assert recent <= emails and not (old & emails)
    assert len(contacts) == len(emails)  # no duplicates
    events = read(right, "Events", ("Event_Title", "Start_DateTime", "End_DateTime", "Who_Id"))
    synced = rep.module("appointments").total("created")
    assert len(events) == synced > 0
    by_id = {c.id for c in contacts}
    assert all((e.values.get("Who_Id") or {}).get("id") in by_id for e in events)
    assert sync_integration(integration(), store=store, left=left, right=right).writes == 0
    # a cancelled appointment removes its event
    (first,) = [a for a in appts if store.get_link("bookings-bigin", "appointments", left_id=a.id)][:1]
    left.delete_many("appointments", [first.id])
    rep = sync_integration(integration(), store=store, left=left, right=right)
    assert rep.module("appointments").total("deleted") == 1
    assert len(read(right, "Events", ("Event_Title",))) == synced - 1


def test_free_slots_from_the_bookings_sandbox(env):
    from engine.sync.wiring import free_slots

    left, right, _ = env
    day = date.today() + timedelta(days=3)
    out = free_slots(integration(), left=left, right=right, service="Consultation", staff="Dr. Asha Rao", day=day)
    assert out["slots"] and out["duration_minutes"] == 30
    # a Bigin event of someone who is not this staff member blocks nothing
    first = out["slots"][0]
    res = right.create_many("Events", [{"Event_Title": "Busy", "Start_DateTime": f"{day.isoformat()}T{first}:00+00:00",
                                        "End_DateTime": f"{day.isoformat()}T23:59:00+00:00"}])
    assert res[0].ok
    again = free_slots(integration(), left=left, right=right, service="Consultation", staff="Dr. Asha Rao", day=day)
    assert again["slots"] == out["slots"]
    from engine.errors import UsageError

    with pytest.raises(UsageError, match="valid: Dr. Asha Rao"):
        free_slots(integration(), left=left, right=right, service="Consultation", staff="Nobody", day=day)
