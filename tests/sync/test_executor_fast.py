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
