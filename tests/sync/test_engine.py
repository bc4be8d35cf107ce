"""Sync runs against two in-memory apps and the real SQLite state store."""

from __future__ import annotations

import pytest

from engine.spec.model import FieldMap, Integration, MatchKey
from tests.sync.conftest import contacts_module, make_integration


def seed(app, module, n, fmt, start=0):
    return [app.put(module, fmt(i)) for i in range(start, start + n)]


def desk(i):
    return {"firstName": f"Ann{i}", "lastName": f"Lee{i}", "email": f"ann{i}@x.com", "phone": f"555010{i:04d}"}


def bigin(i):
    return {"First_Name": f"Ann{i}", "Last_Name": f"Lee{i}", "Email": f"ann{i}@x.com", "Mobile": f"555010{i:04d}"}


def test_initial_sync_calls_at_floor_and_rerun_is_free(sync, apps):
    left, right = apps
    seed(left, "contacts", 1000, desk)
    rep = sync(make_integration(contacts_module(direction="left-to-right")))
    assert len(right.all("Contacts")) == 1000
    # floor: 5 pages read + 1 read of the empty target + 10 create batches
    assert rep.api_calls["left"] + rep.api_calls["right"] <= 5 + 1 + 10 + 2
    w = right.writes()
    rep2 = sync(make_integration(contacts_module(direction="left-to-right")))
    assert rep2.writes == 0 and right.writes() == w
    # no-op floor: changed + deleted per side, and the echo of our creates read back once
    assert rep2.api_calls["right"] <= 5 + 1 + 1


def test_one_percent_edited_updates_only_those_fields(sync, apps):
    left, right = apps
    ids = seed(left, "contacts", 500, desk)
    sync()
    sync()
    for rid in ids[:5]:
        left.edit("contacts", rid, firstName="Changed")
    before = right.calls.get(("Contacts", "update"), 0)
    rep = sync()
    assert rep.total("updated") == 5
    assert right.calls.get(("Contacts", "update"), 0) - before == 1
    changed = [v for v in right.all("Contacts").values() if v["First_Name"] == "Changed"]
    assert len(changed) == 5
    assert sync().writes == 0  # our own updates, read back, cost nothing


def test_two_way_first_sync_matches_near_duplicates(sync, apps, store):
    left, right = apps
    seed(left, "contacts", 200, desk)
    # half of them exist on the right too, under near-duplicate keys (case, spaces)
    for i in range(0, 200, 2):
        right.put("Contacts", {**bigin(i), "Email": f"  ANN{i}@X.com "})
    seed(right, "Contacts", 50, bigin, start=1000)
    rep = sync()
    assert rep.ok
    assert len(right.all("Contacts")) == 250
    assert len(left.all("contacts")) == 250
    assert store.count_links("desk-bigin", "contacts") == 250
    assert rep.total("linked") == 100
    assert sync().writes == 0


def test_ambiguous_match_is_logged_never_guessed(sync, apps, store):
    left, right = apps
    left.put("contacts", desk(1))
    right.put("Contacts", bigin(1))
    right.put("Contacts", {**bigin(1), "First_Name": "Other"})
    rep = sync()
    fails = store.list_failures("desk-bigin")
    assert [f.code for f in fails] == ["AMBIGUOUS_MATCH"]
    assert len(right.all("Contacts")) == 2 and len(left.all("contacts")) == 1
    assert store.count_links("desk-bigin", "contacts") == 0
    assert rep.total("failed") == 1


def test_already_linked(sync, apps, store):
    left, right = apps
    left.put("contacts", desk(1))
    sync()
    left.put("contacts", {**desk(1), "firstName": "Dup"})
    sync()
    codes = [f.code for f in store.list_failures("desk-bigin")]
    assert codes == ["ALREADY_LINKED"]
    assert len(right.all("Contacts")) == 1


@pytest.mark.parametrize("policy,expect_left,expect_right", [
    ("left-wins", "L", "L"), ("right-wins", "R", "R"), ("latest", "R", "R"), ("skip", "L", "R"),
])
def test_conflict_policies(sync, apps, store, clock, policy, expect_left, expect_right):
    left, right = apps
    integ = make_integration(contacts_module(conflict=policy))
    lid = left.put("contacts", desk(1))
    sync(integ)
    (rid,) = right.all("Contacts")
    left.edit("contacts", lid, firstName="L")
    clock.tick(1)
    right.edit("Contacts", rid, First_Name="R")
    rep = sync(integ)
    assert left.all("contacts")[lid]["firstName"] == expect_left
    assert right.all("Contacts")[rid]["First_Name"] == expect_right
    assert rep.total("conflicts") == 1
    if policy == "skip":
        assert [f.code for f in store.list_failures("desk-bigin")] == ["CONFLICT_SKIPPED"]
    else:
        assert sync(integ).writes == 0


def test_different_fields_on_both_sides_merge_without_conflict(sync, apps):
    left, right = apps
    lid = left.put("contacts", desk(1))
    sync()
    (rid,) = right.all("Contacts")
    left.edit("contacts", lid, firstName="NewFirst")
    right.edit("Contacts", rid, Last_Name="NewLast")
    rep = sync()
    assert rep.total("conflicts") == 0
    assert left.all("contacts")[lid] == {**desk(1), "firstName": "NewFirst", "lastName": "NewLast"}
    assert right.all("Contacts")[rid]["First_Name"] == "NewFirst"
    assert sync().writes == 0


def test_per_field_direction_is_honoured(sync, apps):
    left, right = apps
    mod = contacts_module(fields=(FieldMap(("email",), ("Email",)),
                                  FieldMap(("firstName",), ("First_Name",), direction="right-to-left"),
                                  FieldMap(("lastName",), ("Last_Name",))))
    integ = make_integration(mod)
    lid = left.put("contacts", desk(1))
    sync(integ)
    (rid,) = right.all("Contacts")
    assert "First_Name" not in right.all("Contacts")[rid]
    left.edit("contacts", lid, firstName="Ignored")
    right.edit("Contacts", rid, First_Name="FromRight")
    sync(integ)
    assert left.all("contacts")[lid]["firstName"] == "FromRight"
    assert right.all("Contacts")[rid].get("First_Name") == "FromRight"


@pytest.mark.parametrize("pref,assoc,gone", [("delete", 0, True), ("unlink", 0, False),
                                             ("delete-if-no-associates", 0, True),
                                             ("delete-if-no-associates", 2, False)])
def test_delete_preferences(sync, apps, store, pref, assoc, gone):
    left, right = apps
    integ = make_integration(contacts_module(on_delete_right=pref))
    lid = left.put("contacts", desk(1))
    sync(integ)
    (rid,) = right.all("Contacts")
    left.associates[lid] = assoc
    right.remove("Contacts", rid)
    sync(integ)
    assert (lid not in left.all("contacts")) == gone
    link = store.get_link("desk-bigin", "contacts", left_id=lid)
    assert link is None or link.right_id.startswith("~")  # unlinked (a tombstone keeps it from reviving)
    # a deleted record is never revived: editing the survivor does not recreate it
    if not gone:
        left.edit("contacts", lid, firstName="Again")
        sync(integ)
        assert right.all("Contacts") == {}


def test_max_deletes_halts_all_deletes(sync, apps, store):
    left, right = apps
    integ = make_integration(contacts_module(on_delete_left="delete"), max_deletes=3)
    ids = seed(left, "contacts", 10, desk)
    sync(integ)
    for rid in ids[:5]:
        left.remove("contacts", rid)
    rep = sync(integ)
    assert len(right.all("Contacts")) == 10
    assert rep.halted_deletes == 5 and "max_deletes" in rep.message
    runs = store.list_runs("desk-bigin")
    assert any(r.status == "halted" for r in runs)


def test_outage_during_read_never_deletes_and_keeps_cursor(sync, apps, store):
    left, right = apps
    integ = make_integration(contacts_module(on_delete_left="delete", on_delete_right="delete"))
    seed(left, "contacts", 450, desk)
    sync(integ)
    cur = store.get_cursor("desk-bigin", "contacts", "left")
    for rid in list(left.all("contacts"))[:300]:
        left.edit("contacts", rid, lastName="X")
    left.fail_reads_after = 1
    rep = sync(integ)
    assert not rep.ok and rep.modules[0].status == "failed"
    assert len(right.all("Contacts")) == 450 and len(left.all("contacts")) == 450
    assert store.get_cursor("desk-bigin", "contacts", "left") == cur
    left.fail_reads_after = None
    sync(integ)
    assert sum(1 for v in right.all("Contacts").values() if v["Last_Name"] == "X") == 300


def test_rejected_records_logged_and_retried(sync, apps, store):
    left, right = apps
    seed(left, "contacts", 5, desk)
    left.put("contacts", {**desk(9), "lastName": "BAD"})
    right.reject["BAD"] = ("INVALID_DATA", "invalid data")
    rep = sync()
    assert rep.total("failed") == 1 and rep.total("created") == 5
    (f,) = store.list_failures("desk-bigin")
    assert (f.code, f.app_code) == ("REJECTED_BY_APP", "INVALID_DATA")
    right.reject.clear()
    from engine.sync import retry_failures
    from engine.sync.engine import sync_integration  # noqa: F401

    rep = retry_failures(make_integration(), store=store, left=left, right=right)
    assert rep.total("created") == 1
    assert store.list_failures("desk-bigin") == []
    assert len(right.all("Contacts")) == 6


def test_pause_exchanges_nothing_and_resume_catches_up(sync, apps, store):
    from engine.state.base import Deployed

    left, right = apps
    lid = left.put("contacts", desk(1))
    sync()
    store.put_deployed(Deployed(name="desk-bigin", spec={}, spec_hash="x", paused=False))
    store.set_paused("desk-bigin", True)
    left.edit("contacts", lid, firstName="DuringPause")
    calls = dict(left.calls), dict(right.calls)
    rep = sync()
    assert rep.paused and (dict(left.calls), dict(right.calls)) == calls
    store.set_paused("desk-bigin", False)
    sync()
    assert next(iter(right.all("Contacts").values()))["First_Name"] == "DuringPause"


def test_crash_mid_run_resumes_without_duplicates(sync, apps, store):
    left, right = apps
    seed(left, "contacts", 350, desk)
    right.crash_after_writes = 2  # the process dies after the 2nd create batch landed
    with pytest.raises(SystemExit):
        sync()
    assert store.journal_pending("desk-bigin")
    right.crash_after_writes = None
    sync()
    emails = [v["Email"] for v in right.all("Contacts").values()]
    assert len(emails) == 350 == len(set(emails))
    assert store.count_links("desk-bigin", "contacts") == 350
    assert not store.journal_pending("desk-bigin")
    assert sync().writes == 0


def test_dry_run_writes_nothing_and_masks(sync, apps, store):
    left, right = apps
    seed(left, "contacts", 3, desk)
    rep = sync(dry_run=True)
    assert right.all("Contacts") == {} and store.count_links("desk-bigin", "contacts") == 0
    assert rep.module("contacts").counts["left-to-right"]["created"] == 3
    sample = rep.module("contacts").samples["create"][0]["values"]
    assert sample["Email"].startswith("a***@") and "ann" not in sample["Email"]
    assert sample["Mobile"].startswith("***")
    assert store.get_cursor("desk-bigin", "contacts", "left") is None


def test_history_recorded_per_direction(sync, apps, store):
    left, right = apps
    seed(left, "contacts", 3, desk)
    sync()
    runs = store.list_runs("desk-bigin")
    by = {r.direction: r for r in runs}
    assert by["left-to-right"].created == 3 and by["right-to-left"].created == 0
    assert all(r.ended is not None and r.status == "ok" for r in runs)


def test_first_match_fills_empty_fields_never_erases(sync, apps):
    left, right = apps
    lid = left.put("contacts", {"lastName": "Lee", "email": "lee@x.com", "phone": "5550100001"})
    rid = right.put("Contacts", {"Last_Name": "Lee", "Email": "LEE@x.com", "First_Name": "Ann"})
    sync()
    assert left.all("contacts")[lid]["firstName"] == "Ann"
    assert right.all("Contacts")[rid]["Mobile"] == "5550100001"
    assert sync().writes == 0


def test_change_at_the_cursor_boundary_is_not_lost(sync, apps, clock, store):
    """A write in flight during our read, stamped in the same second as the newest change we saw."""
    from engine.sync import sync_integration

    left, right = apps
    ids = seed(left, "contacts", 3, desk)
    clock.tick(0.5)  # our read runs within the second of the newest change: a write may still be in flight
    rep = sync_integration(make_integration(), store=store, left=left, right=right, clock=clock)
    newest = max(left.meta[("contacts", i)][1] for i in ids)
    # committed after our read, with the same Modified_Time as the newest record that read saw
    late = left.put("contacts", desk(77))
    left.meta[("contacts", late)] = (newest, newest)
    rep = sync()
    assert any(v["Email"] == "ann77@x.com" for v in right.all("Contacts").values())
    assert rep.total("created") == 1


def test_settled_noop_rerun_costs_the_floor(sync, apps, clock):
    left, right = apps
    seed(left, "contacts", 500, desk)
    integ = make_integration(contacts_module(direction="left-to-right"))
    sync(integ)
    clock.tick(60)
    rep = sync(integ)
    assert rep.writes == 0
    assert rep.api_calls["left"] + rep.api_calls["right"] <= 4


def test_writes_to_the_side_being_paged_do_not_skip_records(sync, apps, store, clock):
    """Right-wins merges write to the left while its pages are read: no record may be skipped."""
    left, right = apps
    seed(left, "contacts", 700, desk)
    clock.tick(1)
    for i in range(0, 700, 2):
        right.put("Contacts", {**bigin(i), "First_Name": f"R{i}"})  # newer: wins under latest
    rep = sync()
    assert rep.ok and rep.total("failed") == 0
    assert store.count_links("desk-bigin", "contacts") == 700
    assert len(right.all("Contacts")) == 700 and len(left.all("contacts")) == 700
    assert sum(1 for v in left.all("contacts").values() if v["firstName"].startswith("R")) == 350


def test_history_kept_for_history_days(sync, apps, store, clock):
    left, _ = apps
    seed(left, "contacts", 2, desk)
    sync()
    first = {r.id for r in store.list_runs("desk-bigin")}
    clock.tick(8 * 86400)
    sync()
    ids = {r.id for r in store.list_runs("desk-bigin")}
    assert ids and not (first & ids)
    clock.tick(86400)
    sync(make_integration(history_days=30))
    assert len(store.list_runs("desk-bigin")) == 4


def test_type_mismatch_and_mandatory_missing_are_logged(sync, apps, store):
    left, right = apps
    mod = contacts_module(direction="left-to-right", fields=(
        FieldMap(("email",), ("Email",)), FieldMap(("lastName",), ("Last_Name",)),
        FieldMap(("cf.cf_points",), ("Loyalty_Points",))))
    integ = make_integration(mod)
    left.put("contacts", {"email": "a@x.com", "lastName": "A", "cf.cf_points": "many"})
    left.put("contacts", {"email": "b@x.com", "lastName": "", "cf.cf_points": "3"})
    left.put("contacts", {"email": "c@x.com", "lastName": "C", "cf.cf_points": "7"})
    rep = sync(integ)
    codes = sorted(f.code for f in store.list_failures("desk-bigin"))
    assert codes == ["MANDATORY_MISSING", "TYPE_MISMATCH"]
    (created,) = right.all("Contacts").values()
    assert created["Loyalty_Points"] == 7
    assert rep.total("failed") == 2


def test_initial_sync_links_recent_records_to_old_twins_instead_of_duplicating(sync, apps, store, clock):
    from datetime import timedelta

    left, right = apps
    old = clock.now - timedelta(days=400)
    right.put("Contacts", bigin(1), created=old)          # a twin older than created_within (365 d)
    right.put("Contacts", bigin(2), created=old)          # old and alone: stays out of the sync
    left.put("contacts", desk(1))
    left.put("contacts", desk(3), created=old)            # old on the left: not synced either
    rep = sync()
    assert len(right.all("Contacts")) == 2 and len(left.all("contacts")) == 2
    assert store.count_links("desk-bigin", "contacts") == 1 and rep.total("created") == 0


def test_full_resync_rewrites_nothing_and_links_stay(sync, apps, store):
    left, right = apps
    seed(left, "contacts", 300, desk)
    seed(right, "Contacts", 100, bigin, start=1000)
    sync()
    rep = sync(full=True)
    assert rep.writes == 0 and rep.total("failed") == 0 and rep.total("linked") == 0
    assert store.list_failures("desk-bigin") == []
    # a new record with the key of an already linked one is ALREADY_LINKED, not a duplicate
    left.put("contacts", {**desk(1000), "firstName": "Twin"})
    rep = sync(full=True)
    assert [f.code for f in store.list_failures("desk-bigin")] == ["ALREADY_LINKED"]
    assert len(right.all("Contacts")) == 400


def test_a_duplicate_on_the_target_of_a_one_way_sync_is_skipped_not_failed(sync, apps, store):
    """The target of a one-way sync may hold two records of one person (here: one found by e-mail,
    one by name). The source record links with the first; the other has nothing to sync, so it is
    counted as skipped, with why, and never lands in the failure log, where a retry could not help."""
    left, right = apps
    module = contacts_module(direction="left-to-right",
                             match=(MatchKey("email", "Email"), MatchKey("lastName", "Last_Name")))
    left.put("contacts", desk(1))
    first = right.put("Contacts", {**bigin(1), "Last_Name": "Other"})  # the same e-mail
    right.put("Contacts", {**bigin(1), "Email": "someone.else@x.com"})  # the same last name only
    rep = sync(make_integration(module))
    assert store.list_failures("desk-bigin") == []
    assert rep.total("failed") == 0 and rep.total("skipped") == 1
    assert store.get_link("desk-bigin", "contacts", right_id=first) is not None
    assert len(right.all("Contacts")) == 2
    # the same duplicate in a two-way sync would be created on the left as a second person: it fails
    rep2 = sync(make_integration(contacts_module(
        match=(MatchKey("email", "Email"), MatchKey("lastName", "Last_Name")))), full=True)
    assert [f.code for f in store.list_failures("desk-bigin")] == ["ALREADY_LINKED"]
    assert rep2.total("failed") == 1 and len(left.all("contacts")) == 1


def test_a_retry_clears_an_already_linked_failure_of_a_duplicate_on_the_target(sync, apps, store):
    """A failure logged for such a duplicate (as earlier versions did) goes on its next retry."""
    from engine.state.base import Failure
    from engine.sync import retry_failures

    left, right = apps
    integ = make_integration(contacts_module(direction="left-to-right",
                                             match=(MatchKey("email", "Email"), MatchKey("lastName", "Last_Name"))))
    left.put("contacts", desk(1))
    right.put("Contacts", {**bigin(1), "Last_Name": "Other"})
    twin = right.put("Contacts", {**bigin(1), "Email": "someone.else@x.com"})
    sync(integ)
    store.add_failure(Failure(id=None, integration="desk-bigin", module="contacts", side="right", record_id=twin,
                              code="ALREADY_LINKED", message="contacts is already linked with another record"))
    rep = retry_failures(integ, store=store, left=left, right=right)
    assert store.list_failures("desk-bigin") == []
    assert rep.total("skipped") == 1 and rep.writes == 0
