"""The PostgreSQL store answers exactly as the SQLite store does for random sequences of link writes
(relinks within and across batches, deletes by either side) and failure upserts."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.state import open_store
from engine.state.base import Failure, Link

ids = st.sampled_from(["a", "b", "c", "d", "é", "B", "a1"])
link = st.builds(lambda l, r, v: Link(f"L{l}", f"R{r}", {"v": v}, {"V": v}, f"lh{v}", f"rh{v}"),
                 ids, ids, st.integers(0, 3))
op = st.one_of(
    st.tuples(st.just("put"), st.lists(link, max_size=6)),
    st.tuples(st.just("delete"), st.sampled_from(["left", "right"]), st.lists(ids, max_size=4)),
    st.tuples(st.just("fail"), ids, st.sampled_from(["TYPE_MISMATCH", "INVALID_VALUE"])),
    st.tuples(st.just("resolve"), st.lists(ids, max_size=3)),
)


@pytest.fixture
def both(tmp_path, pg_schema_url, clock):
    lite = open_store(f"sqlite:///{tmp_path}/s.db", clock=clock)
    pg = open_store(pg_schema_url, clock=clock)
    yield lite, pg
    lite.close()
    pg.close()


def _apply(store, module, ops):
    for o in ops:
        if o[0] == "put":
            store.put_links("i", module, o[1])
        elif o[0] == "delete":
            store.delete_links("i", module, side=o[1], ids=[("L" if o[1] == "left" else "R") + x for x in o[2]])
        elif o[0] == "fail":
            store.add_failure(Failure(None, "i", module, "left", o[1], o[2], f"bad {o[1]}"))
        else:
            store.resolve_failures("i", module, "left", o[1])


def _seen(store, module):
    links = [(ln.left_id, ln.right_id, dict(ln.left_values), dict(ln.right_values), ln.left_hash, ln.right_hash,
              ln.synced_at) for ln in store.iter_links("i", module)]
    fails = sorted((f.record_id, f.code, f.attempts, f.resolved, f.message)
                   for f in store.list_failures("i", include_resolved=True) if f.module == module)
    by_right = {k: v.left_id for k, v in store.get_links("i", module, side="right",
                                                           ids=[f"R{x}" for x in "abcdéB"] + ["Ra1"]).items()}
    return links, fails, by_right, store.count_links("i", module)


def test_random_link_and_failure_histories_end_the_same(both):
    lite, pg = both
    counter = itertools.count()

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(op, max_size=8))
    def check(ops):
        module = f"m{next(counter)}"  # a fresh module per example: no state carried over
        _apply(lite, module, ops)
        _apply(pg, module, ops)
        assert _seen(pg, module) == _seen(lite, module)

    check()
