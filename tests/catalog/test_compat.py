"""compatibility(): seed 000's Bookings -> Bigin table, the kind matrix, and the refinements."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.catalog import Field, catalog
from engine.catalog.compat import BOOKINGS_TO_BIGIN, MATRIX, compatibility

BIGIN_TYPES = ["text", "textarea", "email", "phone", "picklist", "multiselectpicklist", "date", "datetime",
               "integer", "currency", "boolean", "website"]
# Seed 000, "the field types have to be compatible as given in the below list".
SEED_000 = {
    "SingleLine": {"text", "textarea"}, "MultiLine": {"text", "textarea"}, "Email": {"email"},
    "Dropdown": {"picklist"}, "Date": {"date"}, "Checkbox": {"multiselectpicklist"},
    "Radio": {"text", "textarea"},
}


def fld(type_: str, name: str = "f", **kw) -> Field:
    return Field(api_name=name, label=name, type=type_, **kw)


@pytest.mark.parametrize("src_type", sorted(SEED_000))
@pytest.mark.parametrize("dst_type", BIGIN_TYPES)
def test_bookings_to_bigin_follows_seed_000_exactly(src_type, dst_type):
    verdict, reason = compatibility(fld(src_type), fld(dst_type), src_app="zoho_bookings", dst_app="bigin")
    assert verdict == ("ok" if dst_type in SEED_000[src_type] else "incompatible"), reason
    assert "seed 000" in reason


def test_the_seed_000_table_in_code_is_the_seed_table():
    assert {k: set(v) for k, v in BOOKINGS_TO_BIGIN.items()} == SEED_000


def test_bookings_incompatibility_names_the_allowed_bigin_types():
    verdict, reason = compatibility(fld("Dropdown"), fld("text"), src_app="zoho_bookings", dst_app="bigin")
    assert verdict == "incompatible"
    assert "Picklist" in reason


def test_bookings_system_fields_use_the_kind_matrix():
    appts = catalog("zoho_bookings").module("appointments")
    events = catalog("bigin").module("Events")
    assert compatibility(appts.field("start_time"), events.field("Start_DateTime"),
                         src_app="zoho_bookings", dst_app="bigin")[0] == "ok"
    phone = catalog("zoho_bookings").module("customers").field("phone")
    mobile = catalog("bigin").module("Contacts").field("Mobile")
    assert compatibility(phone, mobile, src_app="zoho_bookings", dst_app="bigin")[0] == "ok"


@pytest.mark.parametrize("src, dst, verdict", [
    ("Text", "text", "ok"),
    ("text", "textarea", "ok"),
    ("textarea", "text", "lossy"),
    ("integer", "double", "ok"),
    ("Decimal", "integer", "lossy"),
    ("email", "Text", "ok"),
    ("Phone", "text", "ok"),
    ("website", "text", "ok"),
    ("text", "email", "lossy"),
    ("text", "Phone", "lossy"),
    ("Picklist", "text", "ok"),
    ("text", "picklist", "lossy"),
    ("datetime", "Date", "lossy"),
    ("date", "DateTime", "ok"),
    ("Boolean", "text", "ok"),
    ("multiselectpicklist", "textarea", "ok"),
    ("Number", "text", "ok"),
    ("boolean", "integer", "incompatible"),
    ("date", "boolean", "incompatible"),
    ("ALARM", "ALARM", "ok"),
    ("ALARM", "datetime", "incompatible"),
])
def test_kind_matrix(src, dst, verdict):
    assert compatibility(fld(src), fld(dst), src_app="zoho_desk", dst_app="bigin")[0] == verdict


def test_text_into_integer_is_seed_001s_failure():
    verdict, reason = compatibility(fld("Text"), fld("integer"), src_app="zoho_desk", dst_app="bigin")
    assert verdict == "incompatible"
    assert "Text value is given for an Integer field" in reason
    assert compatibility(fld("integer"), fld("Text"), src_app="bigin", dst_app="zoho_desk")[0] == "ok"


def test_shorter_destination_is_lossy():
    verdict, reason = compatibility(fld("Text", length=200), fld("text", length=80),
                                    src_app="zoho_desk", dst_app="bigin")
    assert verdict == "lossy" and "80" in reason
    assert compatibility(fld("text", length=80), fld("Text", length=200),
                         src_app="bigin", dst_app="zoho_desk")[0] == "ok"


def test_encrypted_fields_cannot_be_mapped():
    tax_id = catalog("bigin").module("Contacts").field("Tax_ID")
    verdict, reason = compatibility(fld("Text"), tax_id, src_app="zoho_desk", dst_app="bigin")
    assert verdict == "incompatible" and "encrypted" in reason
    assert compatibility(tax_id, fld("Text"), src_app="bigin", dst_app="zoho_desk")[0] == "incompatible"


def test_lookups_map_only_to_corresponding_modules():
    desk_account = catalog("zoho_desk").module("contacts").field("accountId")
    bigin_account = catalog("bigin").module("Contacts").field("Account_Name")
    bigin_contact = catalog("bigin").module("Pipelines").field("Contact_Name")
    assert compatibility(desk_account, bigin_account, src_app="zoho_desk", dst_app="bigin")[0] == "ok"
    assert compatibility(bigin_account, desk_account, src_app="bigin", dst_app="zoho_desk")[0] == "ok"
    verdict, reason = compatibility(desk_account, bigin_contact, src_app="zoho_desk", dst_app="bigin")
    assert verdict == "incompatible" and "do not correspond" in reason
    assert compatibility(desk_account, fld("text"), src_app="zoho_desk", dst_app="bigin")[0] == "incompatible"


def test_pipelines_and_deals_correspond():
    pipe = fld("lookup", lookup="Pipelines")
    deal = fld("lookup", lookup="Deals")
    assert compatibility(pipe, deal, src_app="bigin", dst_app="zoho_crm")[0] == "ok"
    assert compatibility(deal, pipe, src_app="zoho_crm", dst_app="bigin")[0] == "ok"


def test_owners_map_to_owners():
    desk_owner = catalog("zoho_desk").module("contacts").field("ownerId")
    bigin_owner = catalog("bigin").module("Contacts").field("Owner")
    assert compatibility(desk_owner, bigin_owner, src_app="zoho_desk", dst_app="bigin")[0] == "ok"
    assert compatibility(desk_owner, bigin_owner.__class__(api_name="x", label="x", type="lookup",
                                                           lookup="Accounts"),
                         src_app="zoho_desk", dst_app="bigin")[0] == "incompatible"


def test_ids_copy_into_text_but_are_never_written():
    desk_id = catalog("zoho_desk").module("contacts").field("id")
    assert compatibility(desk_id, fld("text", length=40), src_app="zoho_desk", dst_app="bigin")[0] == "ok"
    assert compatibility(fld("text"), desk_id, src_app="bigin", dst_app="zoho_desk")[0] == "incompatible"


def test_missing_picklist_values_are_lossy():
    src = fld("picklist", picklist=("Qualification", "Needs Identified"))
    dst = fld("picklist", picklist=("Qualification", "Needs Analysis"))
    verdict, reason = compatibility(src, dst, src_app="bigin", dst_app="zoho_crm")
    assert verdict == "lossy" and "Needs Identified" in reason
    assert compatibility(dst.__class__(api_name="g", label="g", type="picklist", picklist=("Qualification",)),
                         dst, src_app="bigin", dst_app="zoho_crm")[0] == "ok"


def test_docs_list_every_matrix_entry():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "type-compatibility.md").read_text("utf-8")
    rows = set(re.findall(r"^\s*\|\s*(\w+)\s*\|\s*(\w+)\s*\|\s*(ok|lossy|incompatible)\s*\|", doc, re.M))
    for (src, dst), (verdict, _) in MATRIX.items():
        assert (src, dst, verdict) in rows, f"docs/type-compatibility.md lacks {src} -> {dst}: {verdict}"
