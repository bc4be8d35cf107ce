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


names = st.sampled_from(["desk-bigin", "bigin-crm", "crm-desk"])
# PostgreSQL text cannot hold NUL characters (the store refuses them with a StateError); values inside
# links, specs and journal payloads are JSON and may.
plain = st.text(st.characters(blacklist_characters="\x00"), max_size=5)
state_op = st.one_of(
    st.tuples(st.just("deploy"), names, st.integers(0, 2)),
    st.tuples(st.just("pause"), names, st.booleans()),
    st.tuples(st.just("remove"), names),
    st.tuples(st.just("apply"), names),
    st.tuples(st.just("cursor"), names, st.sampled_from(["left", "right"]), st.sampled_from(["changed", "deleted"]),
              plain.filter(bool)),
    st.tuples(st.just("journal"), names, st.booleans()),
    st.tuples(st.just("run"), names, st.integers(0, 5)),
    st.tuples(st.just("prune"), st.integers(0, 3)),
    st.tuples(st.just("meta"), st.sampled_from(["k1", "k2"]), plain),
    st.tuples(st.just("links"), names, st.lists(link, max_size=3)),
)


def _state_step(store, clock_now, o):
    from datetime import timedelta

    from engine.state.base import Deployed, JournalEntry, RunRecord

    kind = o[0]
    if kind == "deploy":
        store.put_deployed(Deployed(o[1], {"v": o[2], "name": o[1]}, f"h{o[2]}"))
    elif kind == "pause":
        store.set_paused(o[1], o[2])
    elif kind == "remove":
        store.remove_deployed(o[1])
    elif kind == "apply":
        store.record_apply(who="ana", spec_hash="h", commit=None, summary=o[1])
    elif kind == "cursor":
        store.set_cursor(o[1], "contacts", o[2], o[4], kind=o[3])
    elif kind == "journal":
        entry = store.journal_add(JournalEntry(None, o[1], "contacts", "right", "create", ({"source_id": "x"},)))
        if o[2]:
            store.journal_done(entry)
    elif kind == "run":
        run = store.start_run(RunRecord(None, o[1], "contacts", "left-to-right", clock_now - timedelta(days=o[2])))
        store.finish_run(RunRecord(run, o[1], "contacts", "left-to-right", clock_now, ended=clock_now, created=o[2]))
    elif kind == "prune":
        return store.prune_runs(clock_now - timedelta(days=o[1]))
    elif kind == "meta":
        store.set_meta(o[1], o[2])
    else:
        store.put_links(o[1], "contacts", o[2])
    return None


def _outcome(store, clock_now, ops, in_transaction):
    from engine.errors import StateError

    results = []

    def run_all():
        for o in ops:
            try:
                results.append(("ok", _state_step(store, clock_now, o)))
            except StateError as exc:
                results.append(("error", str(exc)))
                if in_transaction:
                    raise

    if in_transaction:
        try:
            with store.transaction():
                run_all()
        except StateError:
            pass
    else:
        run_all()
    return results


def test_random_state_histories_export_the_same(both, clock):
    """Whole-state equality (every table, via the migrate exporter) after random operations, some inside
    transactions that roll back on a refused call; the serial and apply history included."""
    from dataclasses import replace

    from engine.state.migrate import export_state

    lite, pg = both

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(state_op, max_size=8), st.booleans())
    def check(ops, in_transaction):
        assert _outcome(pg, clock.now, ops, in_transaction) == _outcome(lite, clock.now, ops, in_transaction)
        a, b = _comparable(export_state(lite)), _comparable(export_state(pg))
        assert replace(b, lineage=a.lineage, created_at=a.created_at) == a
        clock.advance(hours=7)

    check()


def _comparable(dump):
    """The dump without generated ids (kept in their order): a rolled-back transaction gives its ids back
    in SQLite but not in PostgreSQL, whose sequences never go backwards; both stay unique and increasing."""
    from dataclasses import replace

    tables = {name: tuple(row[1:] for row in rows) if name in ("applies", "runs", "failures", "journal") else rows
              for name, rows in dump.tables.items()}
    return replace(dump, tables=tables)
