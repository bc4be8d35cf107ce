"""The record plan is a value: pure functions from records + links to typed ops (no I/O)."""

from __future__ import annotations

from datetime import datetime, timezone

from engine.apps.base import Record
from engine.state.base import Link
from engine.sync.mapping import ModuleMapper
from engine.sync.plan import MatchIndex, PlanInput, plan_changes, plan_deletes
from tests.sync.conftest import contacts_module, make_integration

T = datetime(2026, 1, 1, tzinfo=timezone.utc)


def mapper(**kw) -> ModuleMapper:
    mod = contacts_module(**kw)
    return ModuleMapper(make_integration(mod), mod)


def rec(rid, values, sec=0):
    return Record(id=rid, values=values, modified=T.replace(second=sec))


LBASE = {"firstName": "Ann", "lastName": "Lee", "email": "ann@x.com", "phone": "5550100001"}
RBASE = {"First_Name": "Ann", "Last_Name": "Lee", "Email": "ann@x.com", "Mobile": "5550100001"}
LINK = Link(left_id="L1", right_id="R1", left_values=LBASE, right_values=RBASE)


def plan(m, left=(), right=(), links=LINK):
    inp = PlanInput(mapper=m, changed={"left": {r.id: r for r in left}, "right": {r.id: r for r in right}},
                    links={"left": {"L1": links}, "right": {"R1": links}},
                    index={"left": MatchIndex(m, "left"), "right": MatchIndex(m, "right")})
    return plan_changes(inp)


def test_one_side_change_updates_only_the_differing_field():
    ops = plan(mapper(), left=[rec("L1", {**LBASE, "firstName": "Anna"})])
    (op,) = [o for o in ops if o.kind == "update"]
    assert (op.target, op.target_id, dict(op.values)) == ("right", "R1", {"First_Name": "Anna"})
    assert op.link.left_values["firstName"] == "Anna" and op.link.right_values["First_Name"] == "Anna"


def test_echo_of_our_own_write_plans_nothing():
    # the right record comes back reformatted (app formatting) but equal in value to the base
    ops = plan(mapper(), right=[rec("R1", {**RBASE, "Email": "ANN@x.com ", "Mobile": "(555) 010-0001"})])
    assert [o.kind for o in ops if o.kind != "link"] == []


def test_same_field_on_both_sides_is_a_conflict_settled_by_policy():
    ops = plan(mapper(conflict="right-wins"), left=[rec("L1", {**LBASE, "firstName": "L"}, 5)],
               right=[rec("R1", {**RBASE, "First_Name": "R"}, 1)])
    kinds = sorted(o.kind for o in ops)
    assert kinds == ["conflict", "update"]
    (upd,) = [o for o in ops if o.kind == "update"]
    assert (upd.target, dict(upd.values)) == ("left", {"firstName": "R"})


def test_deletes_follow_the_preference_and_associates():
    m = mapper(on_delete_left="delete-if-no-associates", on_delete_right="unlink")
    links = {"left": {"L1": LINK, "L2": Link("L2", "R2")}, "right": {"R3": Link("L3", "R3")}}
    ops = plan_deletes(m, {"left": ["L1", "L2"], "right": ["R3"]}, links, {("right", "R1"): 2, ("right", "R2"): 0})
    assert sorted((o.kind, o.target, o.target_id) for o in ops) == [
        ("delete", "right", "R2"), ("unlink", "left", "L3"), ("unlink", "right", "R1")]


def test_an_unchanged_pair_plans_nothing_and_a_reformatted_one_only_refreshes_its_base():
    assert plan(mapper(), left=[rec("L1", dict(LBASE))], right=[rec("R1", dict(RBASE))]) == []
    assert plan(mapper(), left=[rec("L1", dict(LBASE))]) == []
    ops = plan(mapper(), right=[rec("R1", {**RBASE, "Email": "ANN@x.com"})])
    assert [(o.kind, o.code) for o in ops] == [("link", "refresh")]  # no write: only the stored base moves
    assert ops[0].link.right_values["Email"] == "ANN@x.com" and ops[0].link.left_values == LBASE


def first_run(m, left, right):
    idx = {"left": MatchIndex(m, "left"), "right": MatchIndex(m, "right")}
    for r in right:
        idx["right"].add(r)
    inp = PlanInput(mapper=m, changed={"left": {r.id: r for r in left}, "right": {r.id: r for r in right}},
                    links={"left": {}, "right": {}}, index=idx, initial=True)
    return plan_changes(inp)


def test_first_match_fills_empty_fields_links_and_never_guesses_between_duplicates():
    m = mapper()
    ops = first_run(m, [rec("L1", dict(LBASE))], [rec("R1", {**RBASE, "Email": " ANN@X.com", "Mobile": ""})])
    assert [(o.kind, o.target, dict(o.values)) for o in ops] == [
        ("update", "right", {"Mobile": "5550100001"}), ("link", "right", {})]
    assert ops[1].link.right_values["Mobile"] == "5550100001"
    twins = [rec("R1", dict(RBASE)), rec("R2", {**RBASE, "Email": "Ann@x.com"})]
    (fail,) = first_run(m, [rec("L1", dict(LBASE))], twins)
    assert (fail.kind, fail.code) == ("fail", "AMBIGUOUS_MATCH") and "R1, R2" in fail.message


def test_a_create_writes_no_empty_value_and_its_base_is_what_it_writes():
    ops = first_run(mapper(), [rec("L1", {**LBASE, "phone": None, "firstName": ""})], [])
    (op,) = ops
    assert (op.kind, op.target, dict(op.values)) == ("create", "right", {"Last_Name": "Lee", "Email": "ann@x.com"})
    assert op.keys == (("Email", "ann@x.com"),)
    assert op.link.right_values == {"Last_Name": "Lee", "Email": "ann@x.com"}
    assert op.link.left_values == {**LBASE, "phone": None, "firstName": ""}


def test_a_record_whose_match_key_came_as_an_object_is_failed_not_created_beside_its_twin():
    m = mapper()
    odd = rec("R9", {**RBASE, "Email": {"nested": {"deeper": 1}}})
    (op,) = first_run(m, [], [odd])
    assert (op.kind, op.target, op.code) == ("fail", "right", "INVALID_VALUE")
    assert "match key Email came as an object" in op.message
    # a key that is simply absent is no key: the record is created, as before
    (op,) = first_run(m, [], [rec("R8", {**RBASE, "Email": None})])
    assert (op.kind, op.target) == ("create", "left")
