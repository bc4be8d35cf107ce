"""An incremental run reads the first change page of each side while it reads the deleted feeds (one
round trip less); deletes are still planned, guarded and carried out before any change, and a side
the deletes wrote to is read again from its start (its first page may have moved)."""

from __future__ import annotations

import threading

from tests.sync.conftest import contacts_module, make_integration
from tests.sync.fakes import FakeApp
from tests.sync.test_spill import desk


class Watched(FakeApp):
    """Its deleted feed waits (up to 5 s) for a change read to have started on the same app."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.listing = threading.Event()
        self.overlapped: list[bool] = []

    def list_changed(self, module, since, **kw):
        def pages():
            self.listing.set()
            yield from FakeApp.list_changed(self, module, since, **kw)
        return pages()

    def list_deleted(self, module, since):
        self.overlapped.append(self.listing.wait(5))
        yield from FakeApp.list_deleted(self, module, since)


def test_the_first_change_pages_are_read_while_the_deleted_feeds_are(store, clock):
    from engine.sync import sync_integration

    left, right = Watched("zoho_desk", clock), Watched("bigin", clock)
    for i in range(10):
        left.put("contacts", desk(i))
    integ = make_integration()

    def run():
        clock.tick(5)
        return sync_integration(integ, store=store, left=left, right=right, clock=clock)

    assert run().ok
    left.listing.clear()
    right.listing.clear()
    rid = next(iter(left.all("contacts")))
    left.edit("contacts", rid, firstName="Early")
    rep = run()
    assert rep.ok and rep.total("updated") == 1
    assert left.overlapped == [True] and right.overlapped == [True]
    assert sum(1 for v in right.all("Contacts").values() if v["First_Name"] == "Early") == 1


def test_a_side_written_by_the_deletes_is_read_again_and_nothing_deleted_comes_back(sync, apps, store):
    left, right = apps
    integ = make_integration(contacts_module(on_delete_right="delete"))
    for i in range(5):
        left.put("contacts", desk(i))
    sync(integ)
    lid = next(iter(left.all("contacts")))
    rid = store.get_link("desk-bigin", "contacts", left_id=lid).right_id
    left.edit("contacts", lid, firstName="Changed")  # on the left's first change page
    right.remove("Contacts", rid)  # ...and its partner deleted: the run deletes it on the left
    before = dict(left.calls)
    rep = sync(integ)
    assert rep.ok and rep.total("deleted") == 1
    assert lid not in left.all("contacts") and len(left.all("contacts")) == 4
    assert len(right.all("Contacts")) == 4  # not created again from the page read before the delete
    assert store.get_link("desk-bigin", "contacts", left_id=lid) is None
    lists = left.calls.get(("contacts", "list"), 0) - before.get(("contacts", "list"), 0)
    assert lists == 2  # the floor (one page) + the page read again
    assert sync(integ).writes == 0


def test_halted_deletes_keep_the_pages_read_early(sync, apps, store):
    left, right = apps
    integ = make_integration(contacts_module(on_delete_right="delete"), max_deletes=0)
    for i in range(5):
        left.put("contacts", desk(i))
    sync(integ)
    for rid in list(right.all("Contacts"))[:2]:
        right.remove("Contacts", rid)
    before = dict(left.calls)
    rep = sync(integ)
    assert rep.halted_deletes == 2 and len(left.all("contacts")) == 5
    assert left.calls.get(("contacts", "list"), 0) - before.get(("contacts", "list"), 0) == 1
