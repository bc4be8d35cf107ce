"""The executor's per-batch fast paths (engine/sync/executor.py) against the plain per-record forms they
replace: the same write batches, the same partial batches kept back, the same journal and link texts."""

from __future__ import annotations

import json

from hypothesis import given, settings, strategies as st

from engine.state.base import Link
from engine.state.core import decode_json, encode_journal, encode_json
from engine.sync.executor import BATCH, _WRITES, _by_target_and_kind, _partial_batches, journal_creates, journal_payload
from engine.sync.plan import Op

KINDS = ("create", "update", "delete", "link", "conflict", "unlink")


def _groups_reference(ops, writes_only=False):
    groups = {}
    for i, o in enumerate(ops):
        if writes_only and o.kind not in _WRITES:
            continue
        groups.setdefault((o.target, o.kind), []).append(i)
    return groups


def _partial_reference(ops):
    """The buffer's split as it was written first: one pass per op over its group and pair."""
    groups = _groups_reference(ops, writes_only=True)
    kept = [ops[i] for g in groups.values() for i in g[len(g) - len(g) % BATCH:]]
    if not kept:
        return ops, []
    keep = {id(o) for o in kept}
    pairs = {o.pair for o in kept if o.pair}
    now, later = [], []
    for o in ops:
        (later if id(o) in keep or (o.pair and o.pair in pairs) else now).append(o)
    return now, later


op_lists = st.lists(
    st.tuples(st.sampled_from(KINDS), st.sampled_from(("left", "right")), st.integers(0, 400)),
    max_size=700,
).map(lambda specs: [Op(kind, target, source_id=f"s{k}", pair=f"p{pair % 300}" if pair % 7 else "")
                     for k, (kind, target, pair) in enumerate(specs)])


@settings(max_examples=150, deadline=None)
@given(op_lists)
def test_batches_and_the_partial_batches_kept_back_are_the_ones_a_pass_per_op_gives(ops):
    assert _by_target_and_kind(ops) == _groups_reference(ops)
    assert _by_target_and_kind(ops, writes_only=True) == _groups_reference(ops, writes_only=True)
    now, later = _partial_batches(ops)
    ref_now, ref_later = _partial_reference(ops)
    assert [id(o) for o in now] == [id(o) for o in ref_now]
    assert [id(o) for o in later] == [id(o) for o in ref_later]


def test_a_copy_of_whole_batches_keeps_nothing_back_and_one_kind_makes_one_group():
    ops = [Op("create", "right", source_id=f"s{i}", pair=f"left:s{i}") for i in range(3 * BATCH)]
    now, later = _partial_batches(ops)
    assert now is ops and later == []
    assert _by_target_and_kind(ops) == {("right", "create"): list(range(3 * BATCH))}
    assert _by_target_and_kind([Op("link", "right")], writes_only=True) == {}
    assert _by_target_and_kind([]) == {}


values = st.dictionaries(st.sampled_from(("Email", "First_Name", "Phone", "Count", "Tags")),
                         st.one_of(st.none(), st.text(max_size=8), st.integers(-3, 3), st.booleans(),
                                   st.floats(allow_nan=False, allow_infinity=False, width=16),
                                   st.lists(st.text(max_size=3), max_size=2)), max_size=5)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(values, st.one_of(st.none(), values), st.one_of(st.none(), values),
                          st.sampled_from(("left", "right")), st.booleans()), max_size=20))
def test_a_create_batchs_journal_and_merge_bases_are_the_per_record_encodings(specs):
    """Same journal content as ``encode_journal(journal_payload(ops))``, and each link's bases exactly the
    stored texts the store would make of them (``encode_json``), whether or not they share the values."""
    ops = []
    for k, (vals, src, tgt, target, linked) in enumerate(specs):
        src = dict(vals) if src is None else src  # None: copied to fields of the same name
        tgt = dict(vals) if tgt is None else tgt
        link = None
        if linked:
            link = Link(f"L{k}", "", src, tgt) if target == "right" else Link("", f"R{k}", tgt, src)
        keys = ((("Email", vals.get("Email")),), (), (("Email", "a\"b\u00e9"), ("Phone", 3)))[k % 3]
        ops.append(Op("create", target, source_id=f"S{k}\u00e9" if k % 5 else None, values=vals, keys=keys,
                      link=link))
    text, bases = journal_creates(ops)
    assert decode_json(text) == json.loads(encode_journal(journal_payload(ops)))
    assert len(bases) == len(ops)
    for op, b in zip(ops, bases):
        if op.link is None:
            assert b is None
        else:
            assert b == (encode_json(dict(op.link.left_values)), encode_json(dict(op.link.right_values)))


def test_equal_values_of_other_types_keep_their_own_text_in_the_merge_base():
    # 1 == 1.0 == True: equal dicts, different JSON; the source's base keeps its own text
    link = Link("L1", "", {"Count": True}, {"Count": 1})
    op = Op("create", "right", source_id="L1", values={"Count": 1}, link=link)
    text, (b,) = journal_creates([op])
    assert b == ('{"Count":true}', '{"Count":1}')
    assert decode_json(text)[0]["source_values"] == {"Count": True}


def _module_run(store, clock):
    from engine.sync.engine import ModuleRun, Run
    from tests.sync.conftest import make_integration
    from tests.sync.fakes import FakeApp

    left, right = FakeApp("zoho_desk", clock), FakeApp("bigin", clock)
    run = Run(make_integration(), store=store, left=left, right=right, full=False, dry_run=False, clock=clock,
              progress=None)
    return ModuleRun(run, run.integration.modules[0]), left, right


def test_one_commit_counts_samples_links_and_failures_as_the_ops_say(store, clock):
    """A mixed set of ops carried out at once: creates (one rejected), a matched pair's update with its
    link op, a link whose update was rejected, conflicts, a refresh, an unlink, a failed record."""
    from engine.state.base import Link
    from engine.sync.executor import Executor
    from engine.sync.mapping import CONFLICT_SKIPPED

    mr, left, right = _module_run(store, clock)
    rid = right.put("Contacts", {"Email": "m@x.io", "Last_Name": "M"})
    bad = right.put("Contacts", {"Email": "n@x.io", "Last_Name": "N"})
    right.reject["REJECT"] = ("INVALID_DATA", "no")
    ops = []
    for i in range(7):  # 7 creates to the right, the 4th rejected
        vals = {"Email": f"c{i}@x.io", "Last_Name": "REJECT" if i == 3 else f"C{i}"}
        src = {"email": vals["Email"], "lastName": vals["Last_Name"]}
        ops.append(Op("create", "right", source_id=f"L{i}", values=vals, keys=(("Email", vals["Email"]),),
                      link=Link(f"L{i}", "", src, dict(vals)), pair=f"left:L{i}"))
    matched = Link("LM", rid, {"email": "m@x.io", "lastName": "Mo"}, {"Email": "m@x.io", "Last_Name": "Mo"})
    ops += [Op("update", "right", source_id="LM", target_id=rid, values={"Last_Name": "Mo"}, link=matched,
               pair=f"pair:LM:{rid}"),
            Op("link", "right", source_id="LM", target_id=rid, link=matched, pair=f"pair:LM:{rid}"),
            Op("conflict", "right", source_id="LM", target_id=rid, code="latest", message="left wins")]
    rejected = Link("LN", bad, {"email": "n@x.io"}, {"Email": "n@x.io", "Last_Name": "REJECT"})
    ops += [Op("update", "right", source_id="LN", target_id=bad, values={"Last_Name": "REJECT"}, link=rejected,
               pair=f"pair:LN:{bad}"),
            Op("link", "right", source_id="LN", target_id=bad, link=rejected, pair=f"pair:LN:{bad}")]
    ops += [Op("link", "right", source_id="LR", target_id="RR", link=Link("LR", "RR", {"a": "1"}, {"A": "1"}),
               pair="pair:LR:RR", code="refresh"),
            Op("conflict", "left", source_id="LS", target_id="RS", code=CONFLICT_SKIPPED, message="both changed"),
            Op("fail", "left", source_id="LF", code="INVALID_VALUE", message="not an e-mail"),
            Op("unlink", "right", source_id="LU", target_id="RU", code="deleted")]
    store.put_link_rows("desk-bigin", "contacts", [("LU", "RU", {}, {}, "", "")])
    ex = Executor(mr)
    try:
        ex.execute(ops)
    finally:
        ex.close()
    counts = mr.rep.counts
    assert counts["left-to-right"]["created"] == 6 and counts["left-to-right"]["updated"] == 1
    assert counts["left-to-right"]["failed"] == 2 + 1  # a rejected create and update, and the failed record
    assert mr.rep.total("linked") == 1  # the matched pair whose update landed; the refresh is not counted
    assert mr.rep.total("conflicts") == 2
    # samples: the first created ones, in order; the rejected one is a failure
    assert [s["source_id"] for s in mr.rep.samples["create"]] == ["L0", "L1", "L2"]
    assert [s["source_id"] for s in mr.rep.samples["fail"]] == ["L3", "LN", "LF"]
    assert [s["source_id"] for s in mr.rep.samples["link"]] == ["LM"]
    links = {ln.left_id: ln for ln in store.iter_links("desk-bigin", "contacts")}
    created = {v["Email"]: k for k, v in right.all("Contacts").items()}
    assert {lid: links[lid].right_id for lid in links if lid.startswith("L") and lid[1:].isdigit()} == {
        f"L{i}": created[f"c{i}@x.io"] for i in range(7) if i != 3}
    assert dict(links["L0"].right_values) == {"Email": "c0@x.io", "Last_Name": "C0"}
    assert dict(links["L0"].left_values) == {"email": "c0@x.io", "lastName": "C0"}
    assert dict(links["LM"].right_values) == {"Email": "m@x.io", "Last_Name": "Mo"}  # put once, the same link
    assert "LN" not in links  # a matched pair whose update was rejected is not linked: it is matched again
    assert links["LR"].right_id == "RR"
    assert links["~LU"].right_id == "RU"  # the partner stays: a tombstone
    assert "LU" not in links
    failed = sorted((f.side, f.record_id, f.code) for f in store.list_failures("desk-bigin"))
    assert failed == [("left", "L3", "REJECTED_BY_APP"), ("left", "LF", "INVALID_VALUE"), ("left", "LN", "REJECTED_BY_APP"),
                      ("left", "LS", CONFLICT_SKIPPED)]  # the rejected update stays failing: its retry matches it again
    assert not store.journal_pending("desk-bigin")


def _creates(target, n, *, shared_pair=False, unlinked=()):
    ops = []
    for i in range(n):
        vals = {"Email": f"c{i}@x.io", "Last_Name": f"C{i}"} if target == "right" else {"email": f"c{i}@x.io"}
        src = {"email": f"c{i}@x.io", "lastName": f"C{i}"} if target == "right" else {"Email": f"c{i}@x.io", "N": i}
        link = None if i in unlinked else (Link(f"L{i}", "", src, dict(vals), "lh", "") if target == "right"
                                           else Link("", f"R{i}", dict(vals), src, "", "rh"))
        pair = "p0" if shared_pair and i < 2 else f"p{i}"
        ops.append(Op("create", target, source_id=f"L{i}" if target == "right" else f"R{i}", values=vals,
                      keys=((next(iter(vals)), vals[next(iter(vals))]),), link=link, pair=pair))
    return ops


def test_a_copys_links_come_out_of_one_comprehension_as_the_general_loop_makes_them(tmp_path, clock, monkeypatch):
    from engine.state import open_store
    from engine.sync import executor
    from engine.sync.executor import Executor

    cases = [("right", {}), ("left", {}), ("right", {"shared_pair": True}), ("left", {"unlinked": (3,)})]
    for k, (target, kw) in enumerate(cases):
        got = []
        for fast in (True, False):
            if not fast:
                monkeypatch.setattr(executor, "_created_rows", lambda *a: None)
            store = open_store(f"sqlite:///{tmp_path}/s{k}{fast}.db")
            mr, left, right = _module_run(store, clock)
            ex = Executor(mr)
            try:
                ex.execute(_creates(target, 250, **kw))
            finally:
                ex.close()
            links = list(store.iter_links("desk-bigin", "contacts"))
            new_id = "right_id" if target == "right" else "left_id"  # the app's id of each created record
            # ids are handed out in the order the write threads' batches arrive: compare the links without
            # them, then the ids as a set
            got.append((sorted((ln.right_id if target == "left" else ln.left_id, dict(ln.left_values),
                                dict(ln.right_values), ln.left_hash, ln.right_hash) for ln in links),
                        sorted(getattr(ln, new_id) for ln in links)))
            got.append(mr.rep.as_dict()["counts"])
            store.close()
            monkeypatch.undo()
        assert got[0] == got[2] and got[1] == got[3], (target, kw)
        assert len(got[0][0]) == 250 - len(kw.get("unlinked", ())) - (1 if kw.get("shared_pair") else 0)
