"""What a sync hands the store already encoded (engine/sync/executor.py encodes each create's values once):
link rows whose merge bases come as their stored texts, and journal entries whose payload is a text."""

from __future__ import annotations

from engine.state.base import JournalEntry
from engine.state.core import encode_journal, encode_json


def test_merge_bases_given_as_their_texts_read_back_as_the_values(store, clock):
    base = {"Email": "a@x.io", "First_Name": "Ann", "Count": 1, "Tags": ["a"]}
    store.put_link_rows("i", "m", [("l1", "r1", encode_json(base), encode_json(base), "lh", "rh"),
                                   ("l2", "r2", encode_json({"n": True}), {"n": 1}, "", ""),  # one of each form
                                   ("l3", "r3", {}, encode_json({}), "", "")], synced_at=clock.now)
    got = store.get_links("i", "m", side="left", ids=["l1", "l2", "l3"])
    assert got["l1"].left_values == got["l1"].right_values == base
    assert (got["l1"].right_id, got["l1"].left_hash, got["l1"].synced_at) == ("r1", "lh", clock.now)
    assert got["l2"].left_values["n"] is True and type(got["l2"].right_values["n"]) is int
    assert got["l3"].left_values == got["l3"].right_values == {}
    # the same upsert: a row given as texts replaces the link of either of its ids
    store.put_link_rows("i", "m", [("l1", "r2", encode_json({"v": "x"}), encode_json({}), "", "")])
    assert [(ln.left_id, ln.right_id, dict(ln.left_values)) for ln in store.iter_links("i", "m")] == [
        ("l1", "r2", {"v": "x"}), ("l3", "r3", {})]


def test_a_journal_entry_given_as_text_reads_back_as_its_payload_in_order(store, clock):
    payload = ({"source_id": "L1", "values": {"Email": "a@x.io"}, "keys": [["Email", "a@x.io"]]},)
    first = store.journal_add(JournalEntry(None, "i", "m", "right", "update", ({"source_id": "L0", "target_id": "R0"},)))
    ids = store.journal_add_texts("i", "m", [("right", "create", encode_journal(payload)), ("left", "delete", "[]")],
                                  created=clock.now)
    assert ids[0] > first and ids[1] > ids[0]
    pending = store.journal_pending("i", "m")
    assert [(e.id, e.target, e.operation) for e in pending] == [(first, "right", "update"), (ids[0], "right", "create"),
                                                               (ids[1], "left", "delete")]
    assert pending[1].payload == payload and pending[1].created == clock.now and pending[2].payload == ()
    assert store.journal_add_texts("i", "m", []) == []
    store.journal_done(ids[0])
    assert [e.id for e in store.journal_pending("i")] == [first, ids[1]]


def _links(store):
    return [(ln.left_id, ln.right_id, dict(ln.left_values), dict(ln.right_values), ln.left_hash)
            for ln in store.iter_links("i", "m")]


def test_rewriting_linked_pairs_gives_what_the_upsert_gives(store, clock):
    store.put_link_rows("i", "m", [("l1", "r1", {"v": "1"}, {"v": "1"}, "", ""),
                                   ("l2", "r2", {"v": "2"}, {"v": "2"}, "", ""),
                                   ("l3", "r3", {"v": "3"}, {"v": "3"}, "", "")], synced_at=clock.now)
    # the updates of linked pairs: the same two ids, new merge bases (as values or as their texts)
    store.update_link_rows("i", "m", [("l1", "r1", {"v": "1b"}, encode_json({"w": "1b"}), "h1", ""),
                                      ("l3", "r3", {"v": "3b"}, {"v": "3b"}, "", "")], synced_at=clock.now)
    assert _links(store) == [("l1", "r1", {"v": "1b"}, {"w": "1b"}, "h1"), ("l2", "r2", {"v": "2"}, {"v": "2"}, ""),
                             ("l3", "r3", {"v": "3b"}, {"v": "3b"}, "")]
    assert store.get_link("i", "m", left_id="l1").synced_at == clock.now
    # a batch with a row that finds no link of its two ids (a new pair, a relink of l2 to r3) is the upsert:
    # l3's link gives way to l2's, as put_link_rows does
    store.update_link_rows("i", "m", [("l1", "r1", {"v": "1c"}, {"v": "1c"}, "", ""),
                                      ("l2", "r3", {"v": "2c"}, {"v": "2c"}, "", ""),
                                      ("l4", "r4", {"v": "4"}, {"v": "4"}, "", "")])
    assert _links(store) == [("l1", "r1", {"v": "1c"}, {"v": "1c"}, ""), ("l2", "r3", {"v": "2c"}, {"v": "2c"}, ""),
                             ("l4", "r4", {"v": "4"}, {"v": "4"}, "")]
    store.update_link_rows("i", "m", [])
    assert len(_links(store)) == 3
