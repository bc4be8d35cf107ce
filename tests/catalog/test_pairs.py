"""pairs.json: the vendors' pre-mapped standard pairs must work as they stand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.catalog import catalog
from engine.catalog.compat import compatibility

PAIRS = json.loads((Path(__file__).resolve().parents[2] / "engine/catalog/data/pairs.json").read_text())
# Bookings -> Bigin is one-way (seed 000): only the Bigin side is ever written.
ONE_WAY = {"zoho_bookings/bigin"}
# Seed 004: reminders and recurrence of activities are not synced.
NOT_SYNCED = {"Remind_At", "Recurring_Activity", "Reminder"}

CASES = [(app_key, mod_key) for app_key, mods in PAIRS.items() for mod_key in mods]


def _sides(app_key: str, mod_key: str):
    left_app, right_app = app_key.split("/")
    left_mod, right_mod = mod_key.split("/")
    return left_app, catalog(left_app).module(left_mod), right_app, catalog(right_app).module(right_mod)


@pytest.mark.parametrize("app_key, mod_key", CASES, ids=[f"{a}:{m}" for a, m in CASES])
def test_pairs_name_existing_compatible_writable_fields(app_key, mod_key):
    left_app, left, right_app, right = _sides(app_key, mod_key)
    assert left is not None and right is not None, "pair names an unknown module"
    problems = []
    for lname, rname in PAIRS[app_key][mod_key]:
        lf, rf = left.field(lname), right.field(rname)
        if lf is None or rf is None:
            problems.append(f"{lname}/{rname}: unknown field")
            continue
        directions = [(lf, rf, left_app, right_app)]
        if app_key not in ONE_WAY:
            directions.append((rf, lf, right_app, left_app))
        for src, dst, sa, da in directions:
            verdict, reason = compatibility(src, dst, src_app=sa, dst_app=da)
            if verdict == "incompatible":
                problems.append(f"{src.api_name} -> {dst.api_name}: {reason}")
            if dst.read_only or dst.encrypted or src.encrypted:
                problems.append(f"{src.api_name} -> {dst.api_name}: writes a read-only or encrypted field")
    assert problems == []


@pytest.mark.parametrize("app_key, mod_key", CASES, ids=[f"{a}:{m}" for a, m in CASES])
def test_each_field_is_paired_at_most_once(app_key, mod_key):
    pairs = PAIRS[app_key][mod_key]
    lefts, rights = [a for a, _ in pairs], [b for _, b in pairs]
    assert len(lefts) == len(set(lefts)) and len(rights) == len(set(rights))


AUTO = [(k, m) for k, m in CASES if _sides(k, m)[1].auto_fields]


def test_bigin_crm_activities_and_notes_are_auto_mapped():
    assert sorted(m for _, m in AUTO) == ["Calls/Calls", "Events/Events", "Notes/Notes", "Tasks/Tasks"]


@pytest.mark.parametrize("app_key, mod_key", AUTO, ids=[m for _, m in AUTO])
def test_auto_field_mapping_is_complete_and_lossless(app_key, mod_key):
    left_app, left, right_app, right = _sides(app_key, mod_key)
    pairs = PAIRS[app_key][mod_key]
    mapped_left = {a for a, _ in pairs}
    writable_left = {f.api_name for f in left.fields if not f.read_only and f.api_name not in NOT_SYNCED}
    writable_right = {f.api_name for f in right.fields if not f.read_only and f.api_name not in NOT_SYNCED}
    assert mapped_left == writable_left
    assert {b for _, b in pairs} == writable_right
    for a, b in pairs:
        lf, rf = left.field(a), right.field(b)
        assert compatibility(lf, rf, src_app=left_app, dst_app=right_app)[0] == "ok", (a, b)
        assert compatibility(rf, lf, src_app=right_app, dst_app=left_app)[0] == "ok", (b, a)


@pytest.mark.parametrize("app_key, mod_key", [(k, m) for k, m in CASES if k not in ONE_WAY])
def test_defaults_cover_both_sides_mandatory_fields(app_key, mod_key):
    """With `defaults: true` alone, a record created on either side carries the mandatory fields."""
    _, left, _, right = _sides(app_key, mod_key)
    pairs = PAIRS[app_key][mod_key]
    assert {f.api_name for f in left.fields if f.mandatory} <= {a for a, _ in pairs}
    assert {f.api_name for f in right.fields if f.mandatory} <= {b for _, b in pairs}


def test_bookings_pairs_leave_the_name_to_the_user():
    customers = PAIRS["zoho_bookings/bigin"]["customers/Contacts"]
    assert customers == [["email", "Email"], ["phone", "Mobile"]]
    appts = dict(PAIRS["zoho_bookings/bigin"]["appointments/Events"])
    assert appts == {"service_name": "Event_Title", "start_time": "Start_DateTime",
                     "end_time": "End_DateTime", "notes": "Description"}
