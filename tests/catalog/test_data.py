"""The catalog data files: schema-valid, internally consistent, and saying what the Zoho APIs say."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from engine.catalog import APPS, catalog, default_pairs, standard_module_pairs

CATALOG_DIR = Path(__file__).resolve().parents[2] / "engine" / "catalog"
DATA_FILES = sorted((CATALOG_DIR / "data").glob("*.json"))
# Lookup targets that are not synced modules: users/agents, Desk departments, CRM vendors.
EXTERNAL_TARGETS = {"bigin": {"Users"}, "zoho_crm": {"Users", "Vendors"},
                    "zoho_desk": {"agents", "departments"}, "zoho_bookings": set()}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((CATALOG_DIR / "catalog.schema.json").read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_every_app_and_pairs_file_is_present():
    assert {p.stem for p in DATA_FILES} == {*APPS, "pairs"}


@pytest.mark.parametrize("path", DATA_FILES, ids=lambda p: p.name)
def test_data_file_validates_against_the_schema(validator, path):
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(json.loads(path.read_text()))]
    assert errors == []


@pytest.mark.parametrize("mutate, fragment", [
    (lambda d: d["modules"]["contacts"]["fields"][1].update(type="text"), "'text' is not one of"),
    (lambda d: d["modules"]["contacts"]["fields"][1].update(mandatory="yes"), "'yes' is not of type"),
    (lambda d: d["modules"]["contacts"].pop("fields"), "'fields' is a required property"),
    (lambda d: d["modules"]["contacts"].update(assoc=["tickets"]), "Additional properties"),
])
def test_schema_rejects_broken_catalogs(validator, mutate, fragment):
    data = json.loads((CATALOG_DIR / "data" / "zoho_desk.json").read_text())
    broken = copy.deepcopy(data)
    mutate(broken)
    messages = [e.message for e in validator.iter_errors(broken)]
    assert any(fragment in m for m in messages), messages


def test_schema_rejects_a_malformed_pair(validator):
    data = {"zoho_desk/bigin": {"contacts/Contacts": [["email"]]}}
    assert list(validator.iter_errors(data))
    assert list(validator.iter_errors({"desk/bigin": {"contacts/Contacts": [["email", "Email"]]}}))


@pytest.mark.parametrize("app", APPS)
def test_modules_are_internally_consistent(app):
    cat = catalog(app)
    for name, mod in cat.modules.items():
        where = f"{app}.{name}"
        names = mod.field_names()
        assert len(names) == len(set(names)), f"{where}: duplicate field api names"
        idf = mod.field(mod.id_field)
        assert idf is not None and idf.read_only and idf.kind == "id", where
        for attr in ("modified_field", "created_field", "parent_field"):
            value = getattr(mod, attr)
            assert value is None or mod.field(value) is not None, f"{where}: {attr} {value} is no field"
        assert mod.parent is None or mod.parent in cat.modules, f"{where}: parent {mod.parent}"
        if mod.auto_fields:
            assert mod.child, f"{where}: auto_fields modules are children"
        if mod.child:
            assert mod.parent_field is not None, f"{where}: a child must name its parent field"
        for f in mod.fields:
            assert not (f.mandatory and f.read_only), f"{where}.{f.api_name}: mandatory and read-only"
            assert f.kind != "other" or f.type in ("ALARM", "RRULE"), f"{where}.{f.api_name}: unknown type"
            if f.kind in ("lookup", "owner"):
                assert f.lookup is None or f.lookup in cat.modules or f.lookup in EXTERNAL_TARGETS[app], \
                    f"{where}.{f.api_name}: lookup target {f.lookup}"
            else:
                assert f.lookup is None, f"{where}.{f.api_name}: lookup on a {f.type} field"
            if f.picklist:
                assert f.kind in ("picklist", "multiselect"), f"{where}.{f.api_name}"


EXPECTED_MODULES = {
    "bigin": {"Contacts", "Accounts", "Pipelines", "Products", "Tasks", "Events", "Calls", "Notes"},
    "zoho_crm": {"Contacts", "Accounts", "Deals", "Products", "Leads", "Tasks", "Events", "Calls", "Notes"},
    "zoho_desk": {"contacts", "accounts", "products", "tickets"},
    "zoho_bookings": {"customers", "appointments"},
}
MANDATORY = {
    ("bigin", "Contacts"): {"Last_Name"}, ("bigin", "Accounts"): {"Account_Name"},
    ("bigin", "Pipelines"): {"Deal_Name", "Stage", "Sub_Pipeline"}, ("bigin", "Products"): {"Product_Name"},
    ("bigin", "Events"): {"Event_Title", "Start_DateTime", "End_DateTime"}, ("bigin", "Tasks"): {"Subject"},
    ("bigin", "Calls"): {"Subject", "Call_Type", "Call_Start_Time"}, ("bigin", "Notes"): {"Note_Content"},
    ("zoho_crm", "Contacts"): {"Last_Name"}, ("zoho_crm", "Accounts"): {"Account_Name"},
    ("zoho_crm", "Deals"): {"Deal_Name", "Stage", "Closing_Date"}, ("zoho_crm", "Products"): {"Product_Name"},
    ("zoho_crm", "Leads"): {"Last_Name"},
    ("zoho_desk", "contacts"): {"lastName"}, ("zoho_desk", "accounts"): {"accountName"},
    ("zoho_desk", "products"): {"productName"},
}
UNIQUE = {
    ("bigin", "Contacts"): {"Email"}, ("bigin", "Accounts"): {"Account_Name"},
    ("bigin", "Pipelines"): {"Deal_Name"}, ("bigin", "Products"): {"Product_Name"},
    ("zoho_crm", "Contacts"): {"Email"}, ("zoho_crm", "Accounts"): {"Account_Name"},
    ("zoho_crm", "Deals"): {"Deal_Name"}, ("zoho_crm", "Products"): {"Product_Name"},
}


@pytest.mark.parametrize("app", APPS)
def test_each_app_has_its_modules(app):
    assert set(catalog(app).modules) == EXPECTED_MODULES[app]


@pytest.mark.parametrize("key", sorted(MANDATORY), ids=lambda k: ".".join(k))
def test_mandatory_fields_match_the_apis(key):
    mod = catalog(key[0]).module(key[1])
    assert {f.api_name for f in mod.fields if f.mandatory} == MANDATORY[key]


@pytest.mark.parametrize("key", sorted(UNIQUE), ids=lambda k: ".".join(k))
def test_system_unique_fields(key):
    mod = catalog(key[0]).module(key[1])
    assert {f.api_name for f in mod.fields if f.unique} == UNIQUE[key]


def test_bigin_calls_accounts_companies_and_has_an_encrypted_field():
    bigin = catalog("bigin")
    assert bigin.module("Accounts").label == "Companies"
    assert [f.api_name for m in bigin.modules.values() for f in m.fields if f.encrypted] == ["Tax_ID"]


def test_desk_specifics():
    desk = catalog("zoho_desk")
    contacts = desk.module("contacts")
    assert (contacts.id_field, contacts.modified_field, contacts.created_field) == ("id", "modifiedTime",
                                                                                  "createdTime")
    assert contacts.associates == ("tickets", "timeEntries", "activities", "attachments")
    assert desk.module("accounts").associates == ("tickets", "contacts", "contracts", "attachments")
    assert desk.module("products").associates == ("attachments",)
    assert desk.module("products").requires_departments
    assert not contacts.requires_departments
    ctype = contacts.field("cf.cf_customer_type")
    assert ctype.type == "Picklist" and ctype.picklist
    assert contacts.field("webUrl").read_only


def test_activities_and_notes_are_auto_mapped_children():
    for app in ("bigin", "zoho_crm"):
        for name in ("Tasks", "Events", "Calls", "Notes"):
            mod = catalog(app).module(name)
            assert mod.child and mod.auto_fields, (app, name)
            assert mod.parent in (None, "Contacts")


def test_bookings_appointments_are_children_of_customers():
    appts = catalog("zoho_bookings").module("appointments")
    assert (appts.id_field, appts.parent, appts.child) == ("booking_id", "customers", True)
    assert appts.field("end_time").type == "DateTimeBookings"
    assert set(appts.field("status").picklist) >= {"upcoming", "completed", "cancel", "no_show"}
    customers = catalog("zoho_bookings").module("customers")
    assert {"name", "first_name", "last_name", "email", "phone"} <= set(customers.field_names())


def test_default_pairs_flip_for_the_other_orientation():
    forward = default_pairs("zoho_desk", "contacts", "bigin", "Contacts")
    backward = default_pairs("bigin", "Contacts", "zoho_desk", "contacts")
    assert ("email", "Email") in forward
    assert backward == tuple((b, a) for a, b in forward)
    assert default_pairs("zoho_desk", "tickets", "bigin", "Contacts") == ()
    assert ("Pipelines", "Deals") in standard_module_pairs("bigin", "zoho_crm")
    assert ("Deals", "Pipelines") in standard_module_pairs("zoho_crm", "bigin")
    assert standard_module_pairs("zoho_bookings", "zoho_desk") == ()
