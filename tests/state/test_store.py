"""Behaviour of every StateStore (runs once per implementation, see conftest STORES)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.errors import LockedError, StateError
from engine.state.base import Deployed, Failure, JournalEntry, Link, RunRecord


def _dep(name: str, **spec) -> Deployed:
    return Deployed(name=name, spec={"name": name, **spec}, spec_hash=f"h-{name}")


# --- lineage, serial, transactions ---------------------------------------------------------------

def test_lineage_is_fixed_and_serial_starts_at_zero(store_factory):
    first = store_factory()
    lineage = first.lineage()
    assert first.serial() == 0
    first.put_deployed(_dep("a"))
    again = store_factory()
    assert again.lineage() == lineage
    assert again.serial() == 1


def test_every_deployed_change_bumps_the_serial(store):
    store.put_deployed(_dep("a"))
    store.set_paused("a", True)
    store.remove_deployed("a")
    assert store.serial() == 3


def test_one_transaction_bumps_the_serial_once(store):
    with store.transaction():
        store.put_deployed(_dep("a"))
        store.put_deployed(_dep("b"))
        store.remove_deployed("a")
    assert store.serial() == 1
    assert [d.name for d in store.list_deployed()] == ["b"]


def test_sync_bookkeeping_does_not_bump_the_serial(store):
    store.put_links("a", "contacts", [Link("l1", "r1")])
    store.set_cursor("a", "contacts", "left", "2026-01-01T00:00:00+00:00")
    store.set_meta("k", "v")
    assert store.serial() == 0


def test_a_failed_transaction_leaves_nothing_behind(store_factory):
    store = store_factory()
    store.put_deployed(_dep("keep"))
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.put_deployed(_dep("a"))
            store.put_links("a", "contacts", [Link("l1", "r1")])
            raise RuntimeError("boom")
    reopened = store_factory()
    assert [d.name for d in reopened.list_deployed()] == ["keep"]
    assert reopened.count_links("a", "contacts") == 0
    assert reopened.serial() == 1


def test_nested_transactions_join_the_outer_one(store):
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.put_deployed(_dep("a"))
            with store.transaction():  # joins: its success does not commit early
                store.put_deployed(_dep("b"))
            raise RuntimeError("outer fails after the inner block finished")
    assert store.list_deployed() == []
    assert store.serial() == 0


# --- deployed integrations -----------------------------------------------------------------------

def test_deployed_round_trip_returns_fresh_values(store, clock):
    store.put_deployed(Deployed(name="desk-bigin", spec={"modules": [{"name": "contacts"}]}, spec_hash="abc"))
    got = store.get_deployed("desk-bigin")
    assert got.spec == {"modules": [{"name": "contacts"}]}
    assert got.spec_hash == "abc" and got.paused is False
    assert got.applied_at == clock.now
    got.spec["modules"].append("mutated")  # a caller's mutation never reaches the store
    assert store.get_deployed("desk-bigin").spec == {"modules": [{"name": "contacts"}]}
    assert store.get_deployed("missing") is None


def test_put_deployed_replaces_and_lists_sorted(store):
    store.put_deployed(_dep("b"))
    store.put_deployed(_dep("a", v=1))
    store.put_deployed(_dep("a", v=2))
    assert [(d.name, d.spec.get("v")) for d in store.list_deployed()] == [("a", 2), ("b", None)]


def test_pause_of_an_unknown_integration_names_the_close_one(store):
    store.put_deployed(_dep("desk-bigin"))
    with pytest.raises(StateError, match='"desk-bign" is not deployed; did you mean "desk-bigin"'):
        store.set_paused("desk-bign", True)
    store.set_paused("desk-bigin", True)
    assert store.get_deployed("desk-bigin").paused is True


def test_remove_forgets_links_cursors_journal_and_failures_but_not_other_integrations(store):
    for name in ("a", "b"):
        store.put_deployed(_dep(name))
        store.put_links(name, "contacts", [Link("l1", "r1")])
        store.set_cursor(name, "contacts", "left", "c")
        store.journal_add(JournalEntry(None, name, "contacts", "right", "create", ({"source_id": "l1"},)))
        store.add_failure(Failure(None, name, "contacts", "left", "l1", "TYPE_MISMATCH", "text into integer"))
    store.remove_deployed("a")
    assert store.get_deployed("a") is None
    assert store.count_links("a", "contacts") == 0
    assert store.get_cursor("a", "contacts", "left") is None
    assert store.journal_pending("a") == []
    assert store.list_failures("a") == []
    assert store.count_links("b", "contacts") == 1
    assert store.get_cursor("b", "contacts", "left") == "c"


def test_apply_history_keeps_who_hash_commit_and_the_serial_it_made(store, clock):
    with store.transaction():
        store.put_deployed(_dep("a"))
        store.record_apply(who="ana", spec_hash="h1", commit="abc123", summary="1 to add")
    clock.advance(minutes=1)
    store.record_apply(who="bo", spec_hash="h2", commit=None, summary="no changes")
    hist = store.apply_history()
    assert [(h["who"], h["spec_hash"], h["commit"], h["serial"]) for h in hist] == [
        ("bo", "h2", None, 1), ("ana", "h1", "abc123", 1)]
    assert hist[0]["at"] == clock.now
    assert len(store.apply_history(limit=1)) == 1


# --- lock ----------------------------------------------------------------------------------------

def test_lock_is_exclusive_and_names_its_holder(store_factory):
    a, b = store_factory(), store_factory()
    held = a.acquire_lock("apply")
    assert b.lock_info().id == held.id and b.lock_info().operation == "apply"
    with pytest.raises(LockedError) as err:
        b.acquire_lock("reconcile", timeout=0.1)
    message = str(err.value)
    assert held.id in message and '"apply"' in message and held.who in message and str(held.pid) in message
    assert err.value.holder["operation"] == "apply"
    a.release_lock(held.id)
    assert b.lock_info() is None
    assert b.acquire_lock("reconcile", timeout=0).operation == "reconcile"


def test_release_of_an_old_lock_id_does_not_free_the_new_holder(store):
    first = store.acquire_lock("apply")
    store.release_lock(first.id)
    second = store.acquire_lock("apply")
    store.release_lock(first.id)
    assert store.lock_info().id == second.id


def test_force_unlock_needs_the_current_lock_id(store):
    with pytest.raises(StateError, match="not locked"):
        store.force_unlock("nope")
    held = store.acquire_lock("apply")
    with pytest.raises(StateError, match=f"lock id {held.id}"):
        store.force_unlock("wrong-id")
    store.force_unlock(held.id)
    assert store.lock_info() is None


# --- links ---------------------------------------------------------------------------------------

def test_links_by_either_side(store):
    store.put_links("i", "contacts", [
        Link("l1", "r1", {"email": "a@x.io"}, {"Email": "a@x.io"}, "lh", "rh"),
        Link("l2", "r2"),
    ])
    assert store.get_link("i", "contacts", left_id="l1").right_values == {"Email": "a@x.io"}
    assert store.get_link("i", "contacts", right_id="r2").left_id == "l2"
    assert store.get_link("i", "contacts", left_id="zz") is None
    assert store.get_link("i", "accounts", left_id="l1") is None  # per module
    assert set(store.get_links("i", "contacts", side="right", ids=["r1", "r2", "r9"])) == {"r1", "r2"}
    assert [ln.left_id for ln in store.iter_links("i", "contacts")] == ["l1", "l2"]
    with pytest.raises(ValueError):
        store.get_link("i", "contacts")


def test_has_links_per_integration_and_module(store):
    assert not store.has_links("i", "contacts")
    store.put_links("i", "contacts", [Link("l1", "r1")])
    assert store.has_links("i", "contacts")
    assert not store.has_links("i", "accounts") and not store.has_links("j", "contacts")
    store.delete_links("i", "contacts", side="left", ids=["l1"])
    assert not store.has_links("i", "contacts")


def test_get_links_handles_more_ids_than_one_query_takes(store):
    store.put_links("i", "m", [Link(f"l{n}", f"r{n}") for n in range(1500)])
    assert store.count_links("i", "m") == 1500
    got = store.get_links("i", "m", side="left", ids=[f"l{n}" for n in range(0, 1500, 1)])
    assert len(got) == 1500 and got["l1234"].right_id == "r1234"
    store.delete_links("i", "m", side="left", ids=[f"l{n}" for n in range(1000)])
    assert store.count_links("i", "m") == 500


def test_merge_bases_come_back_with_their_own_types_when_equal_by_value(store, clock):
    # 1 == 1.0 == True: a right base equal to the left one by == but not by type keeps its own values
    store.put_links("i", "m", [
        Link("l1", "r1", {"n": 1, "s": "x"}, {"n": 1.0, "s": "x"}),
        Link("l2", "r2", {"n": True}, {"n": 1}),
        Link("l3", "r3", {"a": "é", "b": None}, {"b": None, "a": "é"}),
        Link("l4", "r4", {"z": [1, {"k": "v"}]}, {"z": [1, {"k": "v"}]}),
    ])
    got = store.get_links("i", "m", side="left", ids=["l1", "l2", "l3", "l4"])
    assert type(got["l1"].left_values["n"]) is int and type(got["l1"].right_values["n"]) is float
    assert got["l2"].left_values["n"] is True and type(got["l2"].right_values["n"]) is int
    assert got["l3"].left_values == got["l3"].right_values == {"a": "é", "b": None}
    assert got["l4"].right_values == {"z": [1, {"k": "v"}]}
    assert got["l4"].synced_at == clock.now


def test_ids_and_merge_bases_with_quotes_escapes_and_any_script_round_trip(store):
    odd = ['a"b', "back\\slash", "ü-é", "😀", "{x,y}", "tab\there", "new\nline", "NULL", ""]
    store.put_links("i", "m", [Link(f"L{v}", f"R{v}", {"v": v, "w": [v]}, {"V": v}, f"h{v}", "")
                               for v in odd])
    got = store.get_links("i", "m", side="right", ids=[f"R{v}" for v in odd])
    assert sorted(got) == sorted(f"R{v}" for v in odd)
    for v in odd:
        ln = got[f"R{v}"]
        assert (ln.left_id, ln.left_values, ln.right_values, ln.left_hash) == (f"L{v}", {"v": v, "w": [v]}, {"V": v}, f"h{v}")
    store.delete_links("i", "m", side="left", ids=[f"L{v}" for v in odd[:4]])
    assert store.count_links("i", "m") == len(odd) - 4


def test_a_relink_replaces_the_link_of_either_id(store):
    store.put_links("i", "m", [Link("l1", "r1"), Link("l2", "r2")])
    store.put_links("i", "m", [Link("l1", "r2")])
    assert [(ln.left_id, ln.right_id) for ln in store.iter_links("i", "m")] == [("l1", "r2")]


def test_link_rows_are_links_synced_at_one_time(store, clock):
    store.put_link_rows("i", "m", [("l1", "r1", {"E": "a@x.io"}, {"E": "a@x.io"}, "lh", "rh"),
                                   ("l2", "r2", {"n": 1}, {"n": 1.0}, "", "")], synced_at=clock.now)
    clock.advance(minutes=1)
    store.put_link_rows("i", "m", [("l3", "r3", {}, {}, "", "")])  # no time given: now
    got = store.get_links("i", "m", side="left", ids=["l1", "l2", "l3"])
    assert (got["l1"].right_id, got["l1"].left_values, got["l1"].right_values, got["l1"].left_hash,
            got["l1"].right_hash) == ("r1", {"E": "a@x.io"}, {"E": "a@x.io"}, "lh", "rh")
    assert type(got["l2"].right_values["n"]) is float
    assert got["l1"].synced_at == got["l2"].synced_at == clock.now - timedelta(minutes=1)
    assert got["l3"].synced_at == clock.now
    # an upsert like put_links: a row replaces the link of either of its ids, later rows win
    store.put_link_rows("i", "m", [("l1", "r2", {}, {}, "", ""), ("l9", "r9", {}, {}, "", ""),
                                   ("l9", "r8", {"v": 2}, {}, "", "")])
    assert [(ln.left_id, ln.right_id) for ln in store.iter_links("i", "m")] == [("l1", "r2"), ("l3", "r3"),
                                                                               ("l9", "r8")]
    store.put_link_rows("i", "m", [])
    assert store.count_links("i", "m") == 3


def test_a_long_batch_of_link_rows_keeps_every_row_and_lets_later_rows_win(store, clock):
    # 157 rows: more than a store writes in one statement, and a rest; relinks inside one statement, across
    # statements and into the rest each replace the link written before, as row by row
    rows = [(f"l{i:03d}", f"r{i:03d}", {"n": str(i)}, {"n": str(i)}, "", "") for i in range(150)]
    rows[45] = ("l010", "r900", {"v": "a"}, {}, "", "")  # a left id of rows just before, a new right id
    rows[75] = ("l800", "r020", {}, {}, "", "")  # a right id of an earlier statement's rows, a new left id
    rows[110] = ("l060", "r910", {}, {}, "", "")  # and a left id
    rows[140] = ("l120", "r120", {"n": "again"}, {"n": "again"}, "", "")  # the same pair, a new merge base
    rows += [("l801", "r130", {}, {}, "", ""),  # a right id, into the rest
             ("l801", "r801", {}, {}, "", ""),  # a later row moves l801 on: r130 stays unlinked
             ("l300", "r300", {}, {}, "", ""), ("l301", "r301", {}, {}, "", ""), ("l302", "r302", {}, {}, "", ""),
             ("l000", "r000", {"n": "last"}, {}, "", ""), ("l149", "r149", {"n": "last"}, {}, "", "")]
    store.put_link_rows("i", "m", rows, synced_at=clock.now)
    got = {ln.left_id: ln for ln in store.iter_links("i", "m")}
    expect: dict[str, tuple[str, dict]] = {}
    for lid, rid, lv, _, _, _ in rows:  # row by row: a row replaces the link of either of its ids
        for k in [k for k, (r, _) in expect.items() if k == lid or r == rid]:
            del expect[k]
        expect[lid] = (rid, lv)
    assert {k: (ln.right_id, ln.left_values) for k, ln in got.items()} == expect
    assert "l020" not in got and "l130" not in got and got["l010"].right_id == "r900" and "l045" not in got
    assert got["l120"].left_values == {"n": "again"} and got["l000"].left_values == {"n": "last"}
    assert len(got) == len(expect) == 149  # 150 written, 4 replaced by relinks, 2 given away, 5 new


def test_failing_ids_are_the_unresolved_failures_of_one_module(store):
    assert store.failing_ids("i", "contacts") == {"left": set(), "right": set()}
    for side, rid, module in (("left", "L1", "contacts"), ("left", "L2", "contacts"), ("right", "R1", "contacts"),
                              ("left", "X", "deals")):
        store.add_failure(Failure(None, "i", module, side, rid, "REJECTED_BY_APP", "no"))
    store.add_failure(Failure(None, "j", "contacts", "left", "J1", "REJECTED_BY_APP", "no"))
    store.resolve_failures("i", "contacts", "left", ["L2"])
    assert store.failing_ids("i", "contacts") == {"left": {"L1"}, "right": {"R1"}}


def test_forget_module_keeps_other_modules(store):
    store.put_links("i", "a", [Link("l", "r")])
    store.put_links("i", "b", [Link("l", "r")])
    store.set_cursor("i", "a", "right", "x")
    store.forget_module("i", "a")
    assert store.count_links("i", "a") == 0 and store.get_cursor("i", "a", "right") is None
    assert store.count_links("i", "b") == 1


# --- cursors, runs, failures, journal, meta ------------------------------------------------------

def test_cursors_per_side_and_kind(store):
    store.set_cursor("i", "m", "left", "t1")
    store.set_cursor("i", "m", "left", "t2")
    store.set_cursor("i", "m", "left", "d1", kind="deleted")
    assert store.get_cursor("i", "m", "left") == "t2"
    assert store.get_cursor("i", "m", "left", kind="deleted") == "d1"
    assert store.get_cursor("i", "m", "right") is None
    with pytest.raises(ValueError):
        store.set_cursor("i", "m", "middle", "x")


def test_runs_start_finish_list_and_prune(store, clock):
    old = store.start_run(RunRecord(None, "i", "contacts", "left-to-right", clock.now))
    store.finish_run(RunRecord(old, "i", "contacts", "left-to-right", clock.now, ended=clock.now, created=3))
    clock.advance(days=8)
    new = store.start_run(RunRecord(None, "i", "contacts", "right-to-left", clock.now))
    runs = store.list_runs("i")
    assert [r.id for r in runs] == [new, old]
    assert runs[0].status == "running" and runs[1].status == "ok" and runs[1].created == 3
    assert store.list_runs("other") == []
    assert [r.id for r in store.list_runs(since=clock.now - timedelta(days=1))] == [new]
    assert store.prune_runs(clock.now - timedelta(days=7)) == 1
    assert [r.id for r in store.list_runs()] == [new]


def test_a_repeated_failure_counts_attempts_and_resolves(store, clock):
    f = Failure(None, "i", "contacts", "left", "L1", "TYPE_MISMATCH", "text into an integer field")
    store.add_failure(f)
    clock.advance(minutes=5)
    store.add_failure(f)
    store.add_failure(Failure(None, "i", "contacts", "left", "L2", "MANDATORY_MISSING", "Last_Name missing"))
    fails = store.list_failures("i")
    assert [(x.record_id, x.attempts) for x in sorted(fails, key=lambda x: x.record_id)] == [("L1", 2), ("L2", 1)]
    l1 = next(x for x in fails if x.record_id == "L1")
    assert l1.last_seen == clock.now and l1.first_seen < l1.last_seen
    store.resolve_failures("i", "contacts", "left", ["L1"])
    assert [x.record_id for x in store.list_failures("i")] == ["L2"]
    assert len(store.list_failures("i", include_resolved=True)) == 2


def test_journal_add_many_keeps_the_order_in_one_transaction(store):
    entries = [JournalEntry(None, "i", "contacts", "right", "create", ({"source_id": f"l{n}", "values": {"n": n}},))
               for n in range(3)]
    ids = store.journal_add_many(entries)
    assert len(set(ids)) == 3 and ids == sorted(ids)
    pending = store.journal_pending("i")
    assert [e.id for e in pending] == ids
    assert [e.payload[0]["values"]["n"] for e in pending] == [0, 1, 2]

    def failing():
        yield entries[0]
        raise RuntimeError("the executor failed half way")

    with pytest.raises(RuntimeError):
        store.journal_add_many(failing())
    assert [e.id for e in store.journal_pending("i")] == ids  # nothing of the failed call was kept
    assert store.journal_add_many([]) == []


def test_journal_pending_until_done(store):
    a = store.journal_add(JournalEntry(None, "i", "contacts", "right", "create",
                                       ({"source_id": "l1", "values": {"Email": "a@x.io"}, "keys": {}},)))
    b = store.journal_add(JournalEntry(None, "i", "accounts", "left", "update", ()))
    assert [e.id for e in store.journal_pending("i")] == [a, b]
    assert store.journal_pending("i", "contacts")[0].payload[0]["values"] == {"Email": "a@x.io"}
    store.journal_done(a)
    assert [e.id for e in store.journal_pending("i")] == [b]


def test_meta_key_values(store):
    assert store.get_meta("x") is None
    store.set_meta("x", "1")
    store.set_meta("x", "2")
    assert store.get_meta("x") == "2"
