"""An incremental run does not hold the right side's records that still hold their merge base (the
echo of our own writes): planning them gives nothing, with or without their left partner."""

from __future__ import annotations

import pytest

from engine.state.base import Failure
from engine.sync.spill import Workset
from tests.sync.conftest import contacts_module, make_integration
from tests.sync.test_engine import bigin, desk, seed


class Held(list):
    links: list[str]


@pytest.fixture
def held(monkeypatch):
    """The ids of the right side's changed records each run hands to its working set (``.links``: the
    right ids of the links handed with them)."""
    got = Held()
    got.links = []
    add = Workset.add

    def spy(self, side, recs, links=None, *, changed=False):
        recs = list(recs)
        if side == "right" and changed:
            got.extend(r.id for r in recs)
            got.links.extend(links or {})
        return add(self, side, recs, links, changed=changed)

    monkeypatch.setattr(Workset, "add", spy)
    return got


def test_echo_of_our_writes_is_not_held_and_edits_cross_both_ways(sync, apps, store, held):
    left, right = apps
    lids = seed(left, "contacts", 60, desk)
    seed(right, "Contacts", 20, bigin, start=1000)
    assert sync().ok  # 60 created on the right, 20 on the left: the right's changed feed now holds 60 echoes
    held.clear()
    held.links.clear()
    links = {ln.left_id: ln.right_id for ln in store.iter_links("desk-bigin", "contacts")}
    # a left edit whose right partner comes back as an echo in the same run, and a right edit
    left.edit("contacts", lids[0], firstName="LeftEdit")
    rid = links[lids[1]]
    right.edit("Contacts", rid, Last_Name="RightEdit")
    rep = sync()
    assert rep.ok and rep.total("conflicts") == 0
    assert held == [rid]  # only the record that changed on the right is held; the echoes are not
    assert held.links == [rid]  # nor their links
    assert right.all("Contacts")[links[lids[0]]]["First_Name"] == "LeftEdit"
    assert left.all("contacts")[lids[1]]["lastName"] == "RightEdit"
    assert sync().writes == 0


def test_echo_of_a_failing_record_is_held_for_its_retry(sync, apps, store, held):
    left, right = apps
    lids = seed(left, "contacts", 5, desk)
    assert sync().ok
    links = {ln.left_id: ln.right_id for ln in store.iter_links("desk-bigin", "contacts")}
    rid = links[lids[2]]
    store.add_failure(Failure(id=None, integration="desk-bigin", module="contacts", side="right", record_id=rid,
                              code="REJECTED_BY_APP", message="rejected"))
    held.clear()
    sync()
    assert rid in held  # read in the changed feed and kept: the failure's retry does not read it again
    assert right.calls.get(("Contacts", "get"), 0) == 0


def test_full_run_holds_every_right_record(sync, apps, held):
    left, right = apps
    seed(left, "contacts", 10, desk)
    assert sync().ok
    held.clear()
    assert sync(full=True).writes == 0
    assert len(held) == 10  # a full read indexes the whole right side for matching


def test_right_to_left_module_with_keys_holds_the_echoes(sync, apps, held):
    """New left records are not looked up on the right there: held right records are the only
    candidates that say ALREADY_LINKED."""
    left, right = apps
    seed(right, "Contacts", 10, bigin)
    integ = make_integration(contacts_module(direction="right-to-left"))
    assert sync(integ).ok
    held.clear()
    right_ids = list(right.all("Contacts"))
    right.edit("Contacts", right_ids[0], Description="a field the module does not read")  # still at its base
    sync(integ)
    assert right_ids[0] in held
