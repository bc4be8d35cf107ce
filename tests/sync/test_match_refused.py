"""A first match whose write the app refuses: not linked, kept in the failure log, matched again.

A first two-way sync links a record with its match on the other side and fills what the other side
lacks. When the app refuses that write, the pair must not be linked with merge bases saying the write
landed: the failure would be resolved at once, the fill never retried, and the next change read on
that side would look like the user emptying the field (and empty it on the other side too).
"""

from __future__ import annotations

from tests.sync.test_engine import bigin, desk


def _refused_fill(sync, apps, store):
    left, right = apps
    lid = left.put("contacts", desk(1))
    rid = right.put("Contacts", {**bigin(1), "Mobile": ""})
    right.reject["5550100001"] = ("INVALID_DATA", "invalid phone")
    rep = sync()
    return left, right, lid, rid, rep


def test_a_refused_fill_is_a_failure_and_not_a_link(sync, apps, store):
    left, right, lid, rid, rep = _refused_fill(sync, apps, store)
    counts = rep.modules[0].counts["left-to-right"]
    assert (counts["failed"], counts["linked"]) == (1, 0)
    (failure,) = store.list_failures("desk-bigin")
    assert (failure.side, failure.record_id, failure.app_code) == ("left", lid, "INVALID_DATA")
    assert store.get_link("desk-bigin", "contacts", left_id=lid) is None
    assert store.get_link("desk-bigin", "contacts", right_id=rid) is None


def test_the_next_sync_fills_it_once_the_app_accepts(sync, apps, store):
    left, right, lid, rid, _ = _refused_fill(sync, apps, store)
    right.reject.clear()
    rep = sync()
    assert rep.total("updated") == 1 and rep.total("linked") == 1
    assert right.all("Contacts")[rid]["Mobile"] == "5550100001"
    assert store.list_failures("desk-bigin") == []
    link = store.get_link("desk-bigin", "contacts", left_id=lid)
    assert link is not None and link.right_id == rid
    assert sync().writes == 0


def test_a_later_change_on_the_other_side_never_empties_the_source(sync, apps, store):
    left, right, lid, rid, _ = _refused_fill(sync, apps, store)
    right.reject.clear()
    right.edit("Contacts", rid, Description="called back")  # a field the module does not map
    sync()
    assert left.all("contacts")[lid]["phone"] == "5550100001"
    assert right.all("Contacts")[rid]["Mobile"] == "5550100001"
