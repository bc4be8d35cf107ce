"""`syncform apps`: what a user sees when browsing the catalogs."""

from __future__ import annotations

import json


def test_no_args_lists_apps_with_module_counts(run_cli):
    res = run_cli("apps")
    assert res.returncode == 0, res.stderr
    lines = {line.split()[0]: line.split() for line in res.stdout.splitlines()[1:]}
    assert set(lines) == {"bigin", "zoho_crm", "zoho_desk", "zoho_bookings"}
    assert res.stdout.splitlines()[0].split()[:3] == ["APP", "LABEL", "MODULES"]
    assert "8" in lines["bigin"] and "2" in lines["zoho_bookings"] and "4" in lines["zoho_desk"]


def test_app_lists_modules_with_parents_and_associates(run_cli):
    res = run_cli("apps", "bigin")
    assert res.returncode == 0, res.stderr
    rows = {line.split()[0]: line for line in res.stdout.splitlines()[1:]}
    assert "Companies" in rows["Accounts"]
    assert "Contacts" in rows["Tasks"] and "auto fields" in rows["Tasks"]
    assert "Pipelines, Tasks, Events, Calls, Notes" in rows["Contacts"]


def test_module_lists_fields_as_an_aligned_table(run_cli):
    res = run_cli("apps", "zoho_desk", "contacts")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    header = lines[0]
    assert header.split() == ["API", "NAME", "LABEL", "TYPE", "FLAGS", "LOOKUP", "PICKLIST"]
    col = header.index("TYPE")
    rows = {line.split()[0]: line for line in lines[1:]}
    assert all(line[col - 2:col] == "  " for line in lines[1:]), "columns are not aligned"
    assert rows["lastName"][col:].startswith("Text(200)") and "mandatory" in rows["lastName"]
    assert "read-only" in rows["webUrl"]
    assert "accounts" in rows["accountId"]
    assert "Premium, Standard, Trial" in rows["cf.cf_customer_type"]
    assert "(+1)" in rows["type"]  # long picklists are shortened


def test_flags_show_unique_and_encrypted(run_cli):
    res = run_cli("apps", "bigin", "Contacts")
    rows = {line.split()[0]: line for line in res.stdout.splitlines()[1:]}
    assert "unique" in rows["Email"]
    assert "encrypted" in rows["Tax_ID"]


def test_json_output(run_cli):
    res = run_cli("apps", "zoho_bookings", "appointments", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["app"] == "zoho_bookings" and data["parent"] == "customers" and data["id_field"] == "booking_id"
    end = next(f for f in data["fields"] if f["api_name"] == "end_time")
    assert end["type"] == "DateTimeBookings" and end["kind"] == "datetime"
    apps = json.loads(run_cli("apps", "--json").stdout)
    assert {a["app"]: a["modules"] for a in apps}["zoho_crm"] == 9


def test_unknown_app_suggests_the_closest(run_cli):
    res = run_cli("apps", "bign")
    assert res.returncode == 1
    assert 'unknown app "bign"; did you mean "bigin"?' in res.stderr
    assert res.stdout == ""


def test_unknown_module_suggests_the_closest(run_cli):
    res = run_cli("apps", "bigin", "contacts")
    assert res.returncode == 1
    assert 'unknown module "contacts" of bigin; did you mean "Contacts"?' in res.stderr
    res = run_cli("apps", "zoho_desk", "Deals")
    assert res.returncode == 1
    assert "valid: accounts, contacts, products, tickets" in res.stderr
