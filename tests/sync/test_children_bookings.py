"""Child modules (activities under contacts), owners by e-mail, Bookings customers and appointments."""

from __future__ import annotations

from engine.spec.model import Calendar, FieldMap, Integration, IntegrationSide, MatchKey, Module
from engine.sync import sync_integration
from tests.sync.fakes import FakeApp

CONTACT_FIELDS = ("First_Name", "Last_Name", "Email", "Owner")


def bigin_crm(*mods, owner=None):
    return Integration(name="b-c", left=IntegrationSide("bigin", "b"), right=IntegrationSide("zoho_crm", "c"),
                       modules=mods, owner=owner)


def contacts(**kw):
    return Module(name="contacts", left="Contacts", right="Contacts", match=(MatchKey("Email", "Email"),),
                  fields=tuple(FieldMap((f,), (f,)) for f in CONTACT_FIELDS), **kw)


def test_activities_follow_synced_parents_only_and_skip_reminders(store, clock):
    left, right = FakeApp("bigin", clock), FakeApp("zoho_crm", clock)
    tasks = Module(name="tasks", left="Tasks", right="Tasks", parent="contacts")
    integ = bigin_crm(contacts(), tasks)
    c1 = left.put("Contacts", {"Last_Name": "Lee", "Email": "lee@x.com"})
    # a contact that cannot sync (rejected) → its task is skipped, not failed
    c2 = left.put("Contacts", {"Last_Name": "BAD", "Email": "bad@x.com"})
    right.reject["BAD"] = ("INVALID_DATA", "no")
    left.put("Tasks", {"Subject": "Call back", "Who_Id": {"id": c1, "name": "Lee"},
                       "Remind_At": {"ALARM": "x"}, "Recurring_Activity": {"RRULE": "FREQ=DAILY"}})
    left.put("Tasks", {"Subject": "Orphan", "Who_Id": {"id": c2, "name": "BAD"}})
    clock.tick(5)
    rep = sync_integration(integ, store=store, left=left, right=right, clock=clock)
    (task,) = right.all("Tasks").values()
    (crm_contact_id,) = right.all("Contacts")
    assert task["Subject"] == "Call back" and task["Who_Id"] == {"id": crm_contact_id}
    assert "Remind_At" not in task and "Recurring_Activity" not in task
    t = rep.module("tasks")
    assert t.total("skipped") == 1 and t.total("failed") == 0
    assert [f.module for f in store.list_failures("b-c")] == ["contacts"]


def test_owner_maps_by_email_else_integration_owner(store, clock):
    left, right = FakeApp("bigin", clock), FakeApp("zoho_crm", clock)
    left.users_ = [{"id": "u1", "email": "amy@corp.com", "name": "Amy"}, {"id": "u2", "email": "bob@corp.com"}]
    right.users_ = [{"id": "900", "email": "AMY@corp.com"}, {"id": "901", "email": "admin@corp.com"}]
    integ = bigin_crm(contacts(direction="left-to-right"), owner="admin@corp.com")
    left.put("Contacts", {"Last_Name": "A", "Email": "a@x.com", "Owner": {"id": "u1", "name": "Amy"}})
    left.put("Contacts", {"Last_Name": "B", "Email": "b@x.com", "Owner": {"id": "u2", "name": "Bob"}})
    clock.tick(5)
    sync_integration(integ, store=store, left=left, right=right, clock=clock)
    owners = {v["Last_Name"]: v["Owner"] for v in right.all("Contacts").values()}
    assert owners == {"A": {"id": "900"}, "B": {"id": "901"}}


def bookings_integration(**cal):
    customers = Module(name="customers", left="customers", right="Contacts", direction="left-to-right",
                       match=(MatchKey("email", "Email"), MatchKey("phone", "Mobile"), MatchKey("name", "Full_Name")),
                       fields=(FieldMap(("name",), ("First_Name", "Last_Name")), FieldMap(("email",), ("Email",)),
                               FieldMap(("phone",), ("Mobile",))))
    appts = Module(name="appointments", left="appointments", right="Events", direction="left-to-right",
                   parent="customers", on_delete_left="delete",
                   fields=(FieldMap(("service_name",), ("Event_Title",)), FieldMap(("start_time",), ("Start_DateTime",)),
                           FieldMap(("end_time",), ("End_DateTime",))),
                   services=(("Consultation", (FieldMap(("notes",), ("Description",)),)),),
                   calendar=Calendar(**cal))
    return Integration(name="bk", left=IntegrationSide("zoho_bookings", "bk"), right=IntegrationSide("bigin", "b"),
                       modules=(customers, appts))


def test_bookings_customers_become_contacts_and_appointments_events(store, clock):
    left, right = FakeApp("zoho_bookings", clock), FakeApp("bigin", clock)
    integ = bookings_integration()
    # an existing Bigin contact with the same phone (other format) is updated, not duplicated
    existing = right.put("Contacts", {"First_Name": "Old", "Last_Name": "Name", "Mobile": "555-010-0002"})
    left.put("customers", {"name": "Ada Lovelace", "email": "ada@x.com", "phone": "+1 555 010 0001"})
    left.put("customers", {"name": "Grace Hopper", "email": "grace@x.com", "phone": "(555) 010 0002"})
    a1 = left.put("appointments", {"service_name": "Consultation", "start_time": "02-Mar-2026 10:00:00",
                                   "end_time": "02-Mar-2026 10:30:00", "customer_email": "ADA@x.com",
                                   "notes": "Company size 10", "status": "upcoming"})
    left.put("appointments", {"service_name": "Demo", "start_time": "03-Mar-2026 09:00:00",
                              "end_time": "03-Mar-2026 09:30:00", "customer_email": "grace@x.com",
                              "notes": "not mapped for Demo", "status": "upcoming"})
    clock.tick(5)
    sync_integration(integ, store=store, left=left, right=right, clock=clock)
    contacts = right.all("Contacts")
    assert len(contacts) == 2
    assert contacts[existing]["First_Name"] == "Grace" and contacts[existing]["Email"] == "grace@x.com"
    events = {v["Event_Title"]: v for v in right.all("Events").values()}
    ada = next(k for k, v in contacts.items() if v["Email"] == "ada@x.com")
    assert events["Consultation"]["Who_Id"] == {"id": ada}
    assert events["Consultation"]["Start_DateTime"] == "2026-03-02T10:00:00+00:00"
    assert events["Consultation"]["Description"] == "Company size 10"
    assert "Description" not in events["Demo"]
    # reschedule → the event moves; cancel → the event is removed (on_delete: delete)
    left.edit("appointments", a1, start_time="04-Mar-2026 11:00:00", end_time="04-Mar-2026 11:30:00")
    clock.tick(5)
    sync_integration(integ, store=store, left=left, right=right, clock=clock)
    events = {v["Event_Title"]: v for v in right.all("Events").values()}
    assert events["Consultation"]["Start_DateTime"] == "2026-03-04T11:00:00+00:00"
    left.edit("appointments", a1, status="cancel")
    clock.tick(5)
    rep = sync_integration(integ, store=store, left=left, right=right, clock=clock)
    assert [v["Event_Title"] for v in right.all("Events").values()] == ["Demo"]
    assert rep.module("appointments").total("deleted") == 1


class SlotsBookings(FakeApp):
    """Bookings' own reads, as engine.apps.bookings.BookingsClient offers them."""

    def services(self):
        return [{"id": "s1", "name": "Consultation", "duration": "30 mins"}]

    def staffs(self, service_id=None):
        return [{"id": "t1", "name": "Sam", "email": "sam@corp.com"}]

    def available_slots(self, service_id, staff_id, day):
        assert (service_id, staff_id) == ("s1", "t1")
        return ["09:00", "09:30", "10:00", "10:30"]


def test_free_slots_minus_busy_bigin_events(clock):
    from datetime import date

    from engine.sync.wiring import free_slots

    bk, bigin = SlotsBookings("zoho_bookings", clock), FakeApp("bigin", clock)
    bigin.users_ = [{"id": "7", "email": "sam@corp.com", "name": "Sam"}, {"id": "8", "email": "kim@corp.com"}]
    bigin.put("Events", {"Start_DateTime": "2026-03-02T09:15:00+00:00", "End_DateTime": "2026-03-02T09:45:00+00:00",
                         "Owner": {"id": "7"}})
    bigin.put("Events", {"Start_DateTime": "2026-03-02T10:00:00+00:00", "End_DateTime": "2026-03-02T11:00:00+00:00",
                         "Owner": {"id": "8"}})  # someone else's meeting does not block Sam
    out = free_slots(bookings_integration(), left=bk, right=bigin, service="Consultation", staff="Sam",
                     day=date(2026, 3, 2))
    assert out["slots"] == ["10:00", "10:30"] and out["blocked"] == ["09:00", "09:30"]
    off = free_slots(bookings_integration(check_conflicts=False), left=bk, right=bigin, service="Consultation",
                     staff="Sam", day=date(2026, 3, 2))
    assert off["slots"] == ["09:00", "09:30", "10:00", "10:30"]


def test_activity_deal_lookup_resolves_through_the_deals_links(store, clock):
    left, right = FakeApp("bigin", clock), FakeApp("zoho_crm", clock)
    deals = Module(name="deals", left="Pipelines", right="Deals", match=(MatchKey("Deal_Name", "Deal_Name"),),
                   fields=(FieldMap(("Deal_Name",), ("Deal_Name",)),))
    tasks = Module(name="tasks", left="Tasks", right="Tasks", parent="contacts")
    integ = bigin_crm(contacts(), deals, tasks)
    c = left.put("Contacts", {"Last_Name": "Lee", "Email": "lee@x.com"})
    d = left.put("Pipelines", {"Deal_Name": "Renewal"})
    left.put("Tasks", {"Subject": "Send quote", "Who_Id": {"id": c}, "What_Id": {"id": d, "name": "Renewal"}})
    clock.tick(5)
    sync_integration(integ, store=store, left=left, right=right, clock=clock)
    (deal_id,) = right.all("Deals")
    (task,) = right.all("Tasks").values()
    assert task["What_Id"] == {"id": deal_id}
