"""Property: whatever mix of edits the specs go through, apply makes the next plan empty."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.apply.interpreter import Applier
from engine.state import open_store
from tests.plan.support import base, make_plan
from tests.plan.test_diff import CASES

EDITS = sorted(CASES)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rounds=st.lists(st.lists(st.sampled_from(EDITS), max_size=4, unique=True), min_size=1, max_size=3))
def test_after_apply_the_plan_is_empty(rounds):
    store = open_store("sqlite:///:memory:")
    try:
        for edits in [[]] + rounds:  # first deploy the base, then each round of edits on top of it
            desired = base()
            for name in edits:
                try:
                    CASES[name][0](desired)
                except (KeyError, StopIteration, IndexError):
                    pass  # an edit that no longer applies (its module or integration was removed first)
            plan = make_plan(desired, {d.name: d for d in store.list_deployed()}, lineage=store.lineage(),
                             serial=store.serial())
            Applier(plan, store=store, sync=False).run()
            again = make_plan(desired, {d.name: d for d in store.list_deployed()}, lineage=store.lineage(),
                              serial=store.serial())
            assert not again.has_changes, [c.address for c in again.changes if c.action != "no-op"]
            assert sorted(d.name for d in store.list_deployed()) == sorted(desired)
    finally:
        store.close()
