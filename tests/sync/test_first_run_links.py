"""A first run of a module with no link yet asks the state for none per page; a module with links (an
interrupted first run: links but no cursor yet) still reads them, so nothing is created twice."""

from __future__ import annotations

import pytest

from tests.sync.conftest import contacts_module, make_integration
from tests.sync.test_engine import bigin, desk, seed


@pytest.fixture
def asked(store, monkeypatch):
    """How many ids each run asks the state's links for, per side."""
    got = {"left": 0, "right": 0}
    get = store.get_links

    def spy(integration, module, *, side, ids):
        ids = list(ids)
        got[side] += len(ids)
        return get(integration, module, side=side, ids=ids)

    monkeypatch.setattr(store, "get_links", spy)
    return got


def test_first_two_way_run_reads_no_links(sync, apps, store, asked):
    left, right = apps
    seed(left, "contacts", 300, desk)
    seed(right, "Contacts", 100, bigin, start=1000)
    for i in range(0, 40):  # matched pairs
        right.put("Contacts", bigin(i))
    assert sync().ok
    assert asked == {"left": 0, "right": 0}
    assert len(left.all("contacts")) == 400 and len(right.all("Contacts")) == 400
    assert store.count_links("desk-bigin", "contacts") == 400
    assert sync().writes == 0  # the next run reads its links: nothing to write


def test_rerun_of_an_interrupted_first_run_reads_links_and_creates_nothing_twice(apps, store, clock, asked,
                                                                                tmp_path):
    from engine.state import open_store
    from engine.sync import sync_integration

    left, right = apps
    seed(left, "contacts", 50, desk)
    integ = make_integration(contacts_module(direction="left-to-right"))
    first = open_store(f"sqlite:///{tmp_path}/first.db")
    try:
        assert sync_integration(integ, store=first, left=left, right=right, clock=clock).ok
        # as if that run had died after its writes: its links committed, no cursor moved yet
        store.put_links("desk-bigin", "contacts", list(first.iter_links("desk-bigin", "contacts")))
    finally:
        first.close()
    assert store.get_cursor("desk-bigin", "contacts", "left") is None
    clock.tick(5)
    rep = sync_integration(integ, store=store, left=left, right=right, clock=clock)
    assert rep.ok and rep.writes == 0
    assert asked["left"] == 50
    assert len(right.all("Contacts")) == 50
