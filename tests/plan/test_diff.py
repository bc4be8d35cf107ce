"""Each change category: the right address, action, category, destructive flag and sync steps."""

from __future__ import annotations

import copy

import pytest

from engine.plan.render import render_markdown, render_text
from tests.plan.support import base, deployed_of, make_plan, module, plan_json


def _edit_mapping(d):
    module(d["desk-bigin"], "contacts")["fields"][0]["left"] = ["cf.cf_first_name"]


def _add_mapping(d):
    module(d["desk-bigin"], "contacts")["fields"].append(
        {"left": ["mobile"], "right": ["Mobile"], "direction": None, "values": [], "value": None, "template": None,
         "default": False})


def _remove_mapping(d):
    module(d["desk-bigin"], "contacts")["fields"].pop(1)


def _match(d):
    module(d["desk-bigin"], "contacts")["match"] = [{"left": "secondaryEmail", "right": "Email"}]


def _direction(d):
    module(d["desk-bigin"], "contacts")["direction"] = "left-to-right"


def _target(d):
    module(d["desk-bigin"], "contacts")["right"] = "Leads"


def _description(d):
    d["desk-bigin"]["integration"]["description"] = "Shared customers"


def _loosen_delete(d):
    module(d["desk-bigin"], "contacts")["on_delete"]["right"] = "delete"


def _remove_module(d):
    d["desk-bigin"]["integration"]["modules"] = [module(d["desk-bigin"], "contacts")]


def _add_module(d):
    m = copy.deepcopy(module(d["desk-bigin"], "products"))
    m.update(name="accounts", left="accounts", right="Accounts",
             match=[{"left": "accountName", "right": "Account_Name"}], filter=None,
             fields=[{**m["fields"][0], "left": ["accountName"], "right": ["Account_Name"]}])
    d["desk-bigin"]["integration"]["modules"].append(m)


def _filter(d):
    module(d["desk-bigin"], "products")["filter"] = {"view": None, "departments": ["Support", "Sales"]}


def _conflict(d):
    module(d["desk-bigin"], "contacts")["conflict"] = "right-wins"


def _connection_moved(d):
    next(c for c in d["desk-bigin"]["connections"] if c["name"] == "desk")["datacenter"] = "us"


def _switch_off(d):
    module(d["desk-bigin"], "products")["enabled"] = False


def _remove_integration(d):
    del d["desk-bigin"]


CASES = {
    # name: (edit, [(address, action, category, destructive)], [step types])
    "edit_mapping": (_edit_mapping, [("desk-bigin.contacts.field[First_Name]", "update", "data", False)],
                     ["put_integration", "backfill"]),
    "add_mapping": (_add_mapping, [("desk-bigin.contacts.field[Mobile]", "create", "data", False)],
                    ["put_integration", "backfill"]),
    "remove_mapping": (_remove_mapping, [("desk-bigin.contacts.field[Last_Name]", "delete", "data", False)],
                       ["put_integration"]),
    "match_keys": (_match, [("desk-bigin.contacts.match", "update", "breaking", False)],
                   ["put_integration", "forget_module", "full_resync"]),
    "direction": (_direction, [("desk-bigin.contacts.direction", "update", "breaking", False)],
                  ["put_integration", "forget_module", "full_resync"]),
    "module_target": (_target, [("desk-bigin.contacts", "update", "breaking", False)],
                      ["put_integration", "forget_module", "full_resync"]),
    "description": (_description, [("desk-bigin.description", "update", "metadata", False)], ["put_integration"]),
    "delete_loosened": (_loosen_delete, [("desk-bigin.contacts.on_delete", "update", "metadata", True)],
                        ["put_integration"]),
    "module_removed": (_remove_module, [("desk-bigin.products", "delete", "breaking", True)],
                       ["put_integration", "forget_module"]),
    "module_added": (_add_module, [("desk-bigin.accounts", "create", "data", False)],
                     ["put_integration", "initial_sync"]),
    "filter": (_filter, [("desk-bigin.products.filter", "update", "data", False)],
               ["put_integration", "full_resync"]),
    "conflict": (_conflict, [("desk-bigin.contacts.conflict", "update", "metadata", False)], ["put_integration"]),
    "connection_moved": (_connection_moved, [("desk-bigin.connection[desk]", "update", "breaking", False)],
                         ["put_integration", "forget_module", "forget_module", "full_resync", "full_resync"]),
    "switched_off": (_switch_off, [("desk-bigin.products.enabled", "update", "metadata", False)],
                     ["put_integration"]),
    "integration_removed": (_remove_integration, [("desk-bigin", "delete", "breaking", True),
                                                  ("desk-bigin.contacts", "delete", "breaking", True),
                                                  ("desk-bigin.products", "delete", "breaking", True)],
                            ["remove_integration"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_change_category(case, snapshot, plan_schema):
    edit, expected, steps = CASES[case]
    deployed = deployed_of(base())
    desired = base()
    edit(desired)
    plan = make_plan(desired, deployed)
    changed = [(c.address, c.action, c.category, c.destructive) for c in plan.changes if c.action != "no-op"]
    assert changed == expected
    assert [s.type for s in plan.steps] == steps
    plan_schema.validate(plan.to_dict())
    assert render_text(plan.to_dict()) == snapshot(name="text")
    assert render_markdown(plan.to_dict()) == snapshot(name="markdown")
    assert plan_json(plan) == snapshot(name="json")


def test_unchanged_specs_plan_nothing_and_count_what_is_unchanged():
    plan = make_plan(base(), deployed_of(base()))
    assert not plan.has_changes and plan.empty
    assert plan.steps == ()
    s = plan.summary
    assert (s.add, s.change, s.destroy, s.unchanged_integrations, s.unchanged_modules) == (0, 0, 0, 1, 2)
    text = render_text(plan.to_dict())
    assert "No changes" in text and "1 integration(s) and 2 module(s) unchanged" in text
    assert "desk-bigin.contacts" not in text  # unchanged parts are counted, not printed


def test_a_new_integration_plans_creates_and_initial_syncs_parents_first():
    desired = base()
    plan = make_plan(desired, {})
    assert [(c.address, c.action) for c in plan.changes] == [
        ("desk-bigin", "create"), ("desk-bigin.contacts", "create"), ("desk-bigin.products", "create")]
    assert [(s.type, s.module) for s in plan.steps] == [
        ("put_integration", None), ("initial_sync", "contacts"), ("initial_sync", "products")]
    assert plan.summary.line() == "Plan: 3 to add, 0 to change, 0 to destroy."


def test_removed_integrations_are_left_alone_without_prune():
    plan = make_plan({}, deployed_of(base()), prune=False)
    assert not plan.has_changes
    assert any("desk-bigin is deployed but not in these specs: left alone" in n for n in plan.notes)


def test_changes_are_sorted_by_address_and_paused_integrations_plan_no_sync():
    desired = base()
    desired["desk-bigin"]["integration"]["paused"] = True
    _add_mapping(desired)
    _description(desired)
    plan = make_plan(desired, deployed_of(base()))
    addresses = [c.address for c in plan.changes if c.action != "no-op"]
    assert addresses == sorted(addresses)
    assert [s.type for s in plan.steps] == ["put_integration"]
    assert any("paused" in n and "backfill" in n for n in plan.notes)


def test_the_plan_is_a_frozen_value():
    plan = make_plan(base(), {})
    with pytest.raises(AttributeError):
        plan.serial = 8  # type: ignore[misc]
    with pytest.raises(AttributeError):
        plan.changes[0].action = "delete"  # type: ignore[misc]


def test_tightening_a_delete_preference_is_not_destructive():
    before = base()
    module(before["desk-bigin"], "contacts")["on_delete"]["right"] = "delete"
    desired = base()
    module(desired["desk-bigin"], "contacts")["on_delete"]["right"] = "delete-if-no-associates"
    plan = make_plan(desired, deployed_of(before))
    (change,) = [c for c in plan.changes if c.action != "no-op"]
    assert (change.address, change.category, change.destructive) == ("desk-bigin.contacts.on_delete", "metadata", False)
    loosened = make_plan(before, deployed_of(desired))
    (change,) = [c for c in loosened.changes if c.action != "no-op"]
    assert change.destructive and "loosened" in change.reason
