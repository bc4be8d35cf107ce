"""A parallel (offset) read can miss a record when another is deleted during it (the later pages shift).
The engine keeps such a read's window: the next run, seeing a deletion inside it in the deleted feed,
reads that side again from the cursor the read started from, so the record is synced after all. And
the cursor of a parallel read never passes the read's start (its pages are not in Modified_Time order)."""

from __future__ import annotations

from engine.sync.engine import PARALLEL, SETTLE, _parse
from tests.sync.conftest import contacts_module, make_integration
from tests.sync.fakes import FakeApp


class OffsetReader(FakeApp):
    """Reads like the Bigin/CRM client's parallel read: flags it, and can have a record deleted during
    the read and another one shifted out of its pages."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.last_read_parallel: dict[str, bool] = {}
        self.delete_during_read: str | None = None
        self.shifted_out: str | None = None
        self.sinces: list = []

    def list_changed(self, module, since, **kw):
        self.sinces.append(since)
        self.last_read_parallel[module] = True
        pages = list(FakeApp.list_changed(self, module, since, **kw))
        if self.delete_during_read is not None:
            self.remove(module, self.delete_during_read)
            gone, self.delete_during_read = self.delete_during_read, None
            pages = [[r for r in p if r.id != gone] for p in pages]
        if self.shifted_out is not None:
            lost, self.shifted_out = self.shifted_out, None
            pages = [[r for r in p if r.id != lost] for p in pages]
        return iter([p for p in pages if p])


def bigin(i: int) -> dict:
    return {"First_Name": "Rae", "Last_Name": f"R{i}", "Email": f"r{i}@example.com", "Mobile": f"+1 555 {i:04d}"}


def emails(app: FakeApp, module: str, key: str) -> set[str]:
    return {v.get(key) for v in app.all(module).values()}


def setup(clock):
    left, right = FakeApp("zoho_desk", clock), OffsetReader("bigin", clock)
    ids = [right.put("Contacts", bigin(i)) for i in range(6)]
    return left, right, ids


def run(store, clock, left, right):
    from engine.sync import sync_integration

    clock.tick(5)
    return sync_integration(make_integration(contacts_module()), store=store, left=left, right=right, clock=clock)


def test_a_deletion_during_a_parallel_read_makes_the_next_run_read_that_side_again(store, clock):
    left, right, ids = setup(clock)
    right.delete_during_read, right.shifted_out = ids[0], ids[3]
    rep = run(store, clock, left, right)
    assert rep.ok
    assert "r3@example.com" not in emails(left, "contacts", "email")  # shifted out of the pages
    window = store.get_cursor("desk-bigin", "contacts", "right", PARALLEL)
    start, end, prev = window.split("|", 2)
    assert prev == "" and _parse(start) <= _parse(end)
    # the cursor stays behind the read's start: a change during the read may sit on an earlier page
    assert _parse(store.get_cursor("desk-bigin", "contacts", "right")) <= _parse(start) - SETTLE
    rep = run(store, clock, left, right)
    assert rep.ok and right.sinces[-1] is None  # read again from where the parallel read started
    assert {f"r{i}@example.com" for i in range(1, 6)} <= emails(left, "contacts", "email")
    writes = left.writes()
    rep = run(store, clock, left, right)  # nothing deleted meanwhile: incremental again, no writes
    assert rep.ok and right.sinces[-1] is not None and left.writes() == writes


def test_without_a_deletion_in_the_window_the_next_run_stays_incremental(store, clock):
    left, right, ids = setup(clock)
    run(store, clock, left, right)
    assert len(emails(left, "contacts", "email")) == 6
    clock.tick(30)
    right.remove("Contacts", ids[2])  # deleted well after the read's window: a plain delete
    rep = run(store, clock, left, right)
    assert rep.ok and right.sinces[-1] is not None
