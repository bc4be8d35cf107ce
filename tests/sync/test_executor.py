"""What the executor journals before a write batch goes out, and what it commits after (engine/sync/executor.py)."""

from __future__ import annotations

import pytest

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


def test_a_create_copied_to_fields_of_the_same_name_journals_its_values_once():
    from engine.sync.executor import journal_source_values

    same = {"Email": "ann@x.com", "First_Name": "Ann", "Phone": None}
    link = Link(left_id="L1", right_id="", left_values=dict(same), right_values=dict(same))
    (item,) = journal_payload([Op("create", "right", source_id="L1", values=dict(same),
                                  keys=(("Email", "ann@x.com"),), link=link)])
    assert "source_values" not in item  # the source's merge base is the values: not written twice
    assert journal_source_values(item) == same
    # 1 == 1.0 == True: equal by == but not the same JSON, so the source's own values are kept
    typed = Link(left_id="L2", right_id="", left_values={"Count": True}, right_values={"Count": 1})
    (item,) = journal_payload([Op("create", "right", source_id="L2", values={"Count": 1}, link=typed)])
    assert journal_source_values(item) == {"Count": True} and item["source_values"]["Count"] is True
    # an entry journalled by an earlier version (source_values always there) reads as before
    assert journal_source_values({"values": {"a": "1"}, "source_values": {}}) == {}


def _same_names():
    from engine.spec.model import FieldMap, Integration, IntegrationSide, MatchKey, Module

    names = ("First_Name", "Last_Name", "Email", "Mobile")
    mod = Module(name="contacts", left="Contacts", right="Contacts", direction="two-way",
                 match=(MatchKey("Email", "Email"),), fields=tuple(FieldMap((f,), (f,)) for f in names))
    return Integration(name="bigin-crm", left=IntegrationSide("bigin", "bigin"),
                       right=IntegrationSide("zoho_crm", "crm"), modules=(mod,))


def _person(i):
    return {"First_Name": f"Ann{i}", "Last_Name": f"Lee{i}", "Email": f"ann{i}@x.com", "Mobile": f"555010{i:04d}"}


def test_a_killed_copy_between_fields_of_the_same_name_resumes_with_the_right_merge_base(store, clock):
    """The journal leaves out a create's source values when they are its values; the resumed run links
    what landed with those values as the source's merge base, and the rerun writes nothing."""
    from engine.sync import sync_integration
    from tests.sync.fakes import FakeApp

    left, right = FakeApp("bigin", clock), FakeApp("zoho_crm", clock)
    for i in range(350):
        left.put("Contacts", _person(i))
    integ = _same_names()

    def run():
        clock.tick(5)
        return sync_integration(integ, store=store, left=left, right=right, clock=clock)

    right.crash_after_writes = 2  # killed after the 2nd create batch landed
    with pytest.raises(SystemExit):
        run()
    pending = [item for e in store.journal_pending("bigin-crm") for item in e.payload]
    assert pending and all("source_values" not in item for item in pending)
    right.crash_after_writes = None
    run()
    emails = [v["Email"] for v in right.all("Contacts").values()]
    assert len(emails) == 350 == len(set(emails))
    assert not store.journal_pending("bigin-crm")
    links = list(store.iter_links("bigin-crm", "contacts"))
    assert len(links) == 350
    by_left = {ln.left_id: ln for ln in links}
    for rid, values in left.all("Contacts").items():
        assert dict(by_left[rid].left_values) == values  # the merge base: what was copied
    assert run().writes == 0


def test_a_sync_resolves_the_failures_of_the_records_it_syncs_and_keeps_the_others(store, clock):
    from engine.sync import sync_integration
    from tests.sync.fakes import FakeApp

    left, right = FakeApp("bigin", clock), FakeApp("zoho_crm", clock)
    ids = [left.put("Contacts", _person(i)) for i in range(5)]
    left.edit("Contacts", ids[0], Last_Name="BAD")
    left.edit("Contacts", ids[1], Last_Name="WORSE")
    right.reject.update({"BAD": ("INVALID_DATA", "bad"), "WORSE": ("INVALID_DATA", "worse")})
    integ = _same_names()

    def run():
        clock.tick(5)
        return sync_integration(integ, store=store, left=left, right=right, clock=clock)

    rep = run()
    assert rep.total("failed") == 2 and rep.total("created") == 3
    assert sorted(f.record_id for f in store.list_failures("bigin-crm")) == sorted(ids[:2])
    assert run().writes == 0 and len(store.list_failures("bigin-crm")) == 2  # nothing synced: nothing resolved
    del right.reject["BAD"]
    left.edit("Contacts", ids[0], Last_Name="Good")
    left.edit("Contacts", ids[1], First_Name="Still")
    left.edit("Contacts", ids[2], First_Name="Other")
    rep = run()
    assert rep.total("created") == 1 and rep.total("updated") == 1 and rep.total("failed") == 1
    assert [f.record_id for f in store.list_failures("bigin-crm")] == [ids[1]]
    assert len(store.list_failures("bigin-crm", include_resolved=True)) == 2

