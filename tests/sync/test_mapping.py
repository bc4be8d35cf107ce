"""Field mapping: conversions by catalog type, name split/join, picklists, templates, directions."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from engine.spec.model import FieldMap, Integration, IntegrationSide, MatchKey, Module
from engine.sync.mapping import MapError, ModuleMapper, comparable, render


def mapper(left_app, right_app, lmod, rmod, fields, **kw) -> ModuleMapper:
    mod = Module(name="m", left=lmod, right=rmod, fields=tuple(fields), **kw)
    integ = Integration(name="i", left=IntegrationSide(left_app, "l"), right=IntegrationSide(right_app, "r"),
                        modules=(mod,))
    return ModuleMapper(integ, mod)


def test_datetime_formats_per_app():
    dt = datetime(2019, 4, 30, 22, 0, 0, tzinfo=timezone.utc)
    assert render(dt, "datetime", "zoho_desk") == "2019-04-30T22:00:00.000Z"
    assert render(dt, "datetime", "bigin") == "2019-04-30T22:00:00+00:00"
    assert render(dt, "datetime", "zoho_bookings") == "30-Apr-2019 22:00:00"
    # the same instant in two spellings is not a change
    assert comparable("2019-04-30T22:00:00.000Z", "datetime") == comparable("2019-04-30T15:00:00-07:00", "datetime")


def test_bookings_appointment_time_to_bigin_event():
    m = mapper("zoho_bookings", "bigin", "appointments", "Events",
               [FieldMap(("start_time",), ("Start_DateTime",)), FieldMap(("service_name",), ("Event_Title",))],
               direction="left-to-right")
    out = m.render_record("left", {"start_time": "30-Apr-2019 22:00:00", "service_name": "Consultation"})
    assert out == {"Start_DateTime": "2019-04-30T22:00:00+00:00", "Event_Title": "Consultation"}


def test_name_split_and_join():
    split = mapper("zoho_bookings", "bigin", "customers", "Contacts",
                   [FieldMap(("name",), ("First_Name", "Last_Name"))], direction="left-to-right")
    assert split.render_record("left", {"name": "Mary Ann  Smith"}) == {"First_Name": "Mary Ann", "Last_Name": "Smith"}
    assert split.render_record("left", {"name": "Cher"}) == {"First_Name": None, "Last_Name": "Cher"}
    join = mapper("bigin", "zoho_bookings", "Contacts", "customers",
                  [FieldMap(("First_Name", "Last_Name"), ("name",))], direction="left-to-right")
    assert join.render_record("left", {"First_Name": "Ada", "Last_Name": "Lovelace"}) == {"name": "Ada Lovelace"}


def test_text_into_integer_is_type_mismatch_and_numbers_convert():
    m = mapper("zoho_desk", "bigin", "contacts", "Contacts",
               [FieldMap(("cf.cf_points",), ("Loyalty_Points",))])
    assert m.render_record("left", {"cf.cf_points": "42"}) == {"Loyalty_Points": 42}
    with pytest.raises(MapError) as e:
        m.render_record("left", {"cf.cf_points": "lots"})
    assert e.value.code == "TYPE_MISMATCH"


def test_picklist_values_map_both_ways_and_unknown_value_is_invalid():
    # Desk and Bigin both offer Premium/Standard/Trial; a values: map renames across them
    m = mapper("zoho_desk", "bigin", "contacts", "Contacts",
               [FieldMap(("cf.cf_customer_type",), ("Customer_Type",), values=(("Trial", "Standard"),))])
    assert m.render_record("left", {"cf.cf_customer_type": "Trial"}) == {"Customer_Type": "Standard"}
    assert m.render_record("right", {"Customer_Type": "Standard"}) == {"cf.cf_customer_type": "Trial"}
    assert m.render_record("left", {"cf.cf_customer_type": "Premium"}) == {"Customer_Type": "Premium"}
    with pytest.raises(MapError) as e:
        m.render_record("left", {"cf.cf_customer_type": "Nonsense"})
    assert e.value.code == "INVALID_VALUE"


def test_constants_and_sandboxed_templates():
    m = mapper("zoho_desk", "bigin", "contacts", "Contacts",
               [FieldMap((), ("Description",), template="{{ firstName|upper }} via Desk", direction="left-to-right"),
                FieldMap((), ("Title",), value="Customer", direction="left-to-right")])
    assert m.render_record("left", {"firstName": "ada"}) == {"Description": "ADA via Desk", "Title": "Customer"}
    evil = mapper("zoho_desk", "bigin", "contacts", "Contacts",
                  [FieldMap((), ("Description",), template="{{ ''.__class__.__mro__ }}", direction="left-to-right")])
    with pytest.raises(MapError) as e:
        evil.render_record("left", {})
    assert e.value.code == "INVALID_VALUE"


def test_phone_and_email_formatting_is_not_a_change():
    m = mapper("bigin", "zoho_crm", "Contacts", "Contacts", [FieldMap(("Mobile",), ("Mobile",))])
    assert m.same("left", "Mobile", "+1 (555) 010-0001", "15550100001")
    assert m.same("left", "Email", " Ada@X.com", "ada@x.com")


def test_reminders_and_recurrence_never_synced():
    m = mapper("bigin", "zoho_crm", "Tasks", "Tasks", [], parent=None)
    names = {n for fl in m.flows["left"] for n in fl.src}
    assert "Subject" in names
    assert not names & {"Remind_At", "Recurring_Activity"}


def test_multiselect_to_checkbox_list():
    m = mapper("zoho_bookings", "bigin", "appointments", "Events", [FieldMap(("notes",), ("Description",))],
               direction="left-to-right")
    assert render(("a", "b"), "multiselect", "zoho_bookings") == ["a", "b"]
    assert comparable("b;a", "multiselect") == comparable(["a", "b"], "multiselect")
    assert m.render_record("left", {"notes": "x"}) == {"Description": "x"}
