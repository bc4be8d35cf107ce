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
