"""What the executor journals before a write batch goes out (engine/sync/executor.py)."""

from __future__ import annotations

from engine.state.base import Link
from engine.sync.executor import journal_payload
from engine.sync.plan import Op


def test_a_create_journals_what_a_killed_run_needs_to_find_it_and_an_update_only_its_ids():
    link = Link(left_id="L1", right_id="", left_values={"email": "ann@x.com", "firstName": "Ann"},
                right_values={"Email": "ann@x.com", "First_Name": "Ann"})
    create = Op("create", "right", source_id="L1", values={"Email": "ann@x.com", "First_Name": "Ann"},
                keys=(("Email", "ann@x.com"),), link=link, pair="left:L1")
    (item,) = journal_payload([create])
    # resolve_creates searches the target by the keys, checks the hit holds the values, links it with the
    # source's merge base
    assert item == {"source_id": "L1", "keys": (("Email", "ann@x.com"),),
                    "values": {"Email": "ann@x.com", "First_Name": "Ann"},
                    "source_values": {"email": "ann@x.com", "firstName": "Ann"}}
    back = Op("create", "left", source_id="R1", values={"email": "b@x.com"}, keys=(("email", "b@x.com"),),
              link=Link(left_id="", right_id="R1", left_values={"email": "b@x.com"}, right_values={"Email": "b@x.com"}))
    assert journal_payload([back])[0]["source_values"] == {"Email": "b@x.com"}
    update = Op("update", "right", source_id="L1", target_id="R1", values={"First_Name": "Anna"}, link=link)
    assert journal_payload([update]) == ({"source_id": "L1", "target_id": "R1"},)
    assert journal_payload([]) == ()
