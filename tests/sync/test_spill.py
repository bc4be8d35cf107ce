"""A module run's working set spilled to a temporary SQLite file (engine.sync.spill) plans exactly what
the in-memory one plans: same records on both apps, same links and failures, same API calls; the file
is private, next to the state database, and gone when the run ends (also when it fails)."""

from __future__ import annotations

import os
import random
import stat
import subprocess
import sys
from datetime import timedelta

import pytest

import engine.sync.spill as spill
from engine.apps.base import Record
from engine.state.base import Link
from engine.sync import sync_integration
from engine.sync.spill import Workset
from tests.sync.conftest import contacts_module, make_integration
from tests.sync.fakes import T0, Clock, FakeApp


def desk(i, **kw):
    return {"firstName": f"Ann{i}", "lastName": f"Lee{i}", "email": f"ann{i}@x.com", "phone": f"555010{i:04d}", **kw}


def bigin(i, **kw):
    return {"First_Name": f"Ann{i}", "Last_Name": f"Lee{i}", "Email": f"ann{i}@x.com", "Mobile": f"555010{i:04d}", **kw}


def world():
    """Two apps with every case the planner meets on a first two-way sync, and more than a page of each."""
    clock = Clock()
    left, right = FakeApp("zoho_desk", clock, page_size=50), FakeApp("bigin", clock, page_size=50)
    for i in range(0, 300):
        left.put("contacts", desk(i))
    for i in range(0, 300, 3):  # a third of them on the right too, some with near-duplicate keys
        right.put("Contacts", bigin(i, Email=f"  ANN{i}@X.com " if i % 2 else f"ann{i}@x.com"))
    for i in range(1, 300, 9):  # matched pairs that differ: writes to both sides (held back for the left)
        right.put("Contacts", bigin(i, First_Name="", Mobile="5559999999"))
        left.edit("contacts", next(r for r, v in left.all("contacts").items() if v["email"] == f"ann{i}@x.com"),
                  phone="")
    right.put("Contacts", bigin(1000))  # two right records with one key: an ambiguous match
    right.put("Contacts", bigin(1000, First_Name="Twin"))
    left.put("contacts", desk(1000))
    for i in range(2000, 2120):  # right-only records: created on the left from the leftovers
        right.put("Contacts", bigin(i))
    right.put("Contacts", bigin(3000, Last_Name=""))  # mandatory missing on the left? (stays a leftover)
    old = clock.now - timedelta(days=3650)
    right.put("Contacts", bigin(4000), created=old)  # older than created_within: matched, never copied
    left.put("contacts", desk(4000))
    return clock, left, right


def run_all(tmp_path, monkeypatch, spill_at, compact_factor=1):
    from engine.state import open_store

    monkeypatch.setattr(spill, "SPILL_AT", spill_at)
    monkeypatch.setattr(spill, "COMPACT_FACTOR", compact_factor)
    clock, left, right = world()
    store = open_store(f"sqlite:///{tmp_path}/state-{spill_at}-{compact_factor}.db")
    integ = make_integration(contacts_module(created_within_days=30))
    out = []

    def step():
        clock.tick(5)
        rep = sync_integration(integ, store=store, left=left, right=right, clock=clock)
        out.append((rep.ok, {d: dict(c) for d, c in rep.modules[0].counts.items()},
                    dict(rep.api_calls)))

    step()  # first two-way sync
    step()  # the echo of its writes
    for rid in list(left.all("contacts"))[:7]:
        left.edit("contacts", rid, firstName="Edited")
    for rid in list(right.all("Contacts"))[:5]:
        right.edit("Contacts", rid, Last_Name="Edited")
    newbie = left.put("contacts", desk(7))  # a new left record matching a linked right one
    step()
    # write batches go out concurrently: compare by content, not by the ids the apps handed out
    lv, rv = left.all("contacts"), right.all("Contacts")

    def key(values):
        return tuple(sorted((k, str(v)) for k, v in (values or {}).items()))

    links = sorted((key(lv.get(ln.left_id)), key(rv.get(ln.right_id)))
                   for ln in store.iter_links("desk-bigin", "contacts"))
    fails = sorted((f.side, key((lv if f.side == "left" else rv).get(f.record_id)), f.code)
                   for f in store.list_failures("desk-bigin"))
    store.close()
    return out, sorted(map(key, lv.values())), sorted(map(key, rv.values())), links, fails, key(lv[newbie])


def test_a_spilled_run_plans_exactly_what_the_in_memory_run_plans(tmp_path, monkeypatch):
    mem = run_all(tmp_path, monkeypatch, 10**9)
    disk = run_all(tmp_path, monkeypatch, 0)
    assert mem[0][0][0], mem[0]
    assert disk[0] == mem[0]  # ok, counts per direction and API calls of each of the three runs
    assert disk[1] == mem[1] and disk[2] == mem[2]  # the same records on both apps
    assert disk[3] == mem[3]
    assert disk[4] == mem[4]
    codes = {c for _, _, c in mem[4]}
    assert {"AMBIGUOUS_MATCH", "ALREADY_LINKED"} <= codes  # the cases were met, not skipped
    assert ("left", mem[5], "ALREADY_LINKED") in mem[4]
    counts = mem[0][0][1]
    assert counts["right-to-left"]["updated"] > 0 and counts["left-to-right"]["updated"] > 0
    assert counts["right-to-left"]["created"] >= 120
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(spill.PREFIX)]


def test_a_run_holding_its_working_set_packed_plans_exactly_what_the_plain_run_plans(tmp_path, monkeypatch):
    mem = run_all(tmp_path, monkeypatch, 10**9)
    seen = []
    orig = Workset._pack_all

    def spy(self):
        seen.append(self.held())
        orig(self)

    monkeypatch.setattr(Workset, "_pack_all", spy)
    packed = run_all(tmp_path, monkeypatch, 40, compact_factor=10**6)  # packed from 40 records on, never spilled
    assert seen  # every run of the three packed its working set
    assert packed == mem
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(spill.PREFIX)]


def test_a_packed_working_set_spills_to_the_file_past_its_bound_and_plans_the_same(tmp_path, monkeypatch):
    mem = run_all(tmp_path, monkeypatch, 10**9)
    spilled = []
    orig = Workset.spill

    def spy(self):
        spilled.append(self.packer is not None)
        orig(self)

    monkeypatch.setattr(Workset, "spill", spy)
    both = run_all(tmp_path, monkeypatch, 40, compact_factor=4)  # packed past 40 records, in the file past ~64 KB packed
    assert True in spilled  # a packed working set was moved to the file
    assert both == mem


def _small_workset(tmp_path, monkeypatch):
    """A working set of the test integration packed past 10 records, in the file past 40 KB packed."""
    from tests.sync.conftest import make_integration
    from engine.sync.mapping import ModuleMapper

    monkeypatch.setattr(spill, "COMPACT_FACTOR", 10)
    integ = make_integration()
    m = ModuleMapper(integ, integ.modules[0])
    return lambda: Workset(m, deleted={"left": set(), "right": set()}, initial=True, directory=tmp_path, spill_at=10)


def test_the_packed_working_set_is_bounded_by_its_bytes_so_wide_records_spill_sooner(tmp_path, monkeypatch):
    workset, t = _small_workset(tmp_path, monkeypatch), Clock().now

    def held(width):
        ws = workset()
        try:
            ws.add("right", [Record(str(i), {"email": f"a{i}@x.com", "note": "x" * width}, t) for i in range(60)],
                   changed=True)
            return ws.packer is not None, ws.spilled
        finally:
            ws.close()

    assert held(10) == (True, False)  # 60 narrow records: packed, ~25 KB
    assert held(2000) == (True, True)  # 60 records of 2 KB: past the bound


def test_the_match_keys_a_side_being_read_holds_count_toward_the_bound(tmp_path, monkeypatch):
    """A side read in full keeps the match keys of its packed records until it is sealed (then the
    index holds them): those count too, so such a side reaches the file sooner than a sealed one."""
    workset, t = _small_workset(tmp_path, monkeypatch), Clock().now

    def spilled(reading):
        ws = workset()
        try:
            if reading:
                ws.begin_read("right")
            for i in range(0, 120, 20):
                ws.add("right", [Record(str(k), {"Email": f"a{k}@x.com", "Last_Name": "x" * 10}, t)
                                 for k in range(i, i + 20)], changed=True)
            return ws.spilled
        finally:
            ws.close()

    assert spilled(reading=False) is False  # 120 narrow records, sealed: ~36 KB held packed
    assert spilled(reading=True) is True  # the same with their keys held: past 40 KB at the 100th


def test_ids_held_in_several_sets_of_a_side_count_their_text_once(tmp_path, monkeypatch):
    """A record a copy creates is planned and claimed: the same id in two sets of its side. The bound
    counts its text once (a 1M-record copy stays in memory: 202 MB at its peak, where moving its 2M
    ids to the file made it 280 MB); as many ids in the sets of both sides weigh more, and reach the
    file, which then answers for every one of them."""
    workset = _small_workset(tmp_path, monkeypatch)  # the file past 40 KB

    def spilled(shared):
        ws = workset()
        try:
            for i in range(0, 200, 50):
                ids = [f"39130000000{k:08d}" for k in range(i, i + 50)]
                ws.done["left"].update(ids)
                if shared:
                    ws.claimed["left"].update(ids)
                else:
                    ws.done["right"].update(f"48760000000{k:08d}" for k in range(i, i + 50))
                ws.after_page()
            if ws.spilled:
                assert all(f"39130000000{k:08d}" in ws.done["left"] for k in range(200))
                assert all(f"48760000000{k:08d}" in ws.done["right"] for k in range(200))
                assert "3913000000000000200" not in ws.done["left"]
            return ws.spilled
        finally:
            ws.close()

    assert spilled(shared=True) is False  # 400 entries, 200 texts: ~34 KB
    assert spilled(shared=False) is True  # 400 entries, 400 texts: ~50 KB


def test_records_and_links_come_back_from_their_packed_form_exactly():
    from datetime import datetime, timezone

    pk = spill._Packer()
    t = datetime(2026, 2, 3, 10, 11, 12, 345678, tzinfo=timezone.utc)
    rec = Record("1", {"a": "x", "b": None, "c": 3, "d": [1, "2"], "e": {"id": "9", "name": "N"}, "f": 1.5, "g": True},
                 t, None)
    assert pk.load_record("1", pk.record(rec)) == rec
    link = Link("1", "2", {"a": "x", "n": None}, {"b": ["y"]}, "h1", "h2", t)
    assert pk.load_link("1", pk.link(link)) == link
    # what does not pack is held as itself
    from decimal import Decimal
    odd = Record("2", {"a": Decimal("1.5")}, t)
    assert pk.record(odd) is odd and pk.load_record("2", odd) is odd
    local = Record("3", {"a": "x"}, datetime(2026, 1, 1, 12))
    assert pk.record(local) is local


def _modes_seen(monkeypatch):
    seen = []
    orig = Workset._open

    def spy(self):
        orig(self)
        seen.append((self.path, stat.S_IMODE(os.stat(self.path.parent).st_mode),
                     stat.S_IMODE(os.stat(self.path).st_mode)))

    monkeypatch.setattr(Workset, "_open", spy)
    return seen


def test_the_spill_file_is_private_next_to_the_state_and_removed_after_the_run(tmp_path, monkeypatch, sync,
                                                                              apps, store):
    monkeypatch.setattr(spill, "SPILL_AT", 0)
    seen = _modes_seen(monkeypatch)
    left, right = apps
    for i in range(30):
        left.put("contacts", desk(i))
        right.put("Contacts", bigin(i + 100))
    rep = sync()
    assert rep.ok and len(left.all("contacts")) == 60 and len(right.all("Contacts")) == 60
    assert seen, "the run did not spill"
    path, dmode, fmode = seen[0]
    assert path.parent.parent == tmp_path  # beside state.db
    assert dmode == 0o700 and fmode == 0o600
    assert not path.exists() and not path.parent.exists()


def test_the_spill_file_is_removed_when_the_run_fails(tmp_path, monkeypatch, sync, apps):
    monkeypatch.setattr(spill, "SPILL_AT", 0)
    seen = _modes_seen(monkeypatch)
    left, right = apps
    left.page_size = right.page_size = 10
    for i in range(50):
        left.put("contacts", desk(i))
        right.put("Contacts", bigin(i + 100))
    left.fail_reads_after = 3  # the left read breaks half-way
    rep = sync()
    assert not rep.ok and rep.modules[0].status == "failed"
    assert seen and not seen[0][0].parent.exists()
    left.fail_reads_after = None
    assert sync().ok  # and the rerun completes
    assert len(left.all("contacts")) == 100 and len(right.all("Contacts")) == 100


def test_a_spill_directory_left_by_a_killed_process_is_removed(tmp_path, monkeypatch, sync, apps):
    monkeypatch.setattr(spill, "SPILL_AT", 0)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    stale = tmp_path / f"{spill.PREFIX}{int(dead.stdout)}-x1"
    stale.mkdir()
    (stale / "workset.db").write_bytes(b"values")
    alive = tmp_path / f"{spill.PREFIX}{os.getppid()}-x2"  # a live process's: kept
    alive.mkdir()
    left, _ = apps
    left.put("contacts", desk(1))
    assert sync().ok
    assert not stale.exists() and alive.exists()


# -- the working set on its own ---------------------------------------------------------------------

def rec(rid, email, name="A"):
    return Record(id=rid, values={"Email": email, "First_Name": name}, modified=T0, created=T0)


def _sets(ws, side, recs, links, partners):
    inp = ws.plan_input(side, recs, links, partners=partners)
    idx = inp.index["right" if side == "left" else "left"]
    return inp, idx


@pytest.mark.parametrize("spill_at", [10**9, 1, 0])  # in memory, packed, in the file
def test_a_record_read_again_replaces_the_earlier_one_until_sealed_then_the_first_stays(spill_at, tmp_path):
    from engine.sync.mapping import ModuleMapper

    integ = make_integration()
    m = ModuleMapper(integ, integ.modules[0], resolve=lambda *a: None, owners={})
    ws = Workset(m, deleted={"left": set(), "right": set()}, initial=True, directory=tmp_path, spill_at=spill_at)
    try:
        ws.begin_read("right")
        ws.add("right", [rec("r1", "a@x.com"), rec("r2", "b@x.com")], {}, changed=True)
        ws.add("right", [rec("r1", "c@x.com", "New")], {"r1": Link("l9", "r1")}, changed=True)  # read again
        assert (ws.packer is not None) == (spill_at == 1)
        ws.seal("right")
        ws.add("right", [rec("r2", "z@x.com", "Found")], {})  # a search finds it again: the first stays
        ws.add("right", [rec("r3", "b@x.com")], {})
        left = {"l1": Record("l1", {"email": "c@x.com"}, T0), "l2": Record("l2", {"email": "a@x.com"}, T0),
                "l3": Record("l3", {"email": "b@x.com"}, T0)}
        inp, idx = _sets(ws, "left", left, {}, True)
        assert idx.lookup(["c@x.com"]) == ["r1"] and idx.lookup(["a@x.com"]) == []
        assert sorted(idx.lookup(["b@x.com"])) == ["r2", "r3"] and idx.lookup(["z@x.com"]) == []
        assert idx.records["r1"].values["First_Name"] == "New" and idx.records["r2"].values["First_Name"] == "A"
        assert inp.links["right"].get("r1") == Link("l9", "r1") and inp.links["right"].get("r3") is None
        ws.done["right"].add("r1")
        ws.claimed["right"].add("r3")
        ws.after_page()
        assert "r3" in ws.claimed["right"] and "r2" not in ws.claimed["right"]
        chunks = list(ws.leftovers("right", 1))
        assert [list(c) for c, _ in chunks] == [["r2"]]  # r1 planned; r3 was never a change
        assert ws.spilled == (spill_at == 0)
    finally:
        ws.close()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(spill.PREFIX)]


def _settled(spill_at, seed, tmp_path, *, ordered=True):
    """What a working set answers after a random sequence of adds to both sides: records read again
    while a side is read in full (changed or not) and after it, with and without links, each side
    sealed at a random point; then every question the planner asks of either side (``ordered``: the
    candidates and leftovers in the order given, else sorted)."""
    from engine.sync.mapping import ModuleMapper

    rnd = random.Random(seed)
    integ = make_integration()
    m = ModuleMapper(integ, integ.modules[0], resolve=lambda *a: None, owners={})
    ws = Workset(m, deleted={"left": set(), "right": set()}, initial=True, directory=tmp_path, spill_at=spill_at)
    keys = {"right": "Email", "left": "email"}
    kind: dict[tuple[str, int], bool] = {}
    try:
        reading = {"left": False, "right": False}
        for side in ("right", "left"):
            if rnd.random() < 0.7:
                ws.begin_read(side)
                reading[side] = True
        for step in range(rnd.randint(4, 16)):
            side = rnd.choice(("left", "right"))
            changed = reading[side] and rnd.random() < 0.6
            # a record is a change or an older one by its creation time: every read of it says the same
            ids = [i for i in rnd.sample(range(10), rnd.randint(1, 4)) if kind.setdefault((side, i), changed) == changed]
            recs = [Record(f"{side[0]}{i}", {keys[side]: f"{rnd.choice('abcdef')}@x.com", "First_Name": f"n{step}"},
                           T0, T0) for i in ids]
            links = {r.id: (Link(f"l{step}", r.id) if side == "right" else Link(r.id, f"r{step}"))
                     for r in recs if rnd.random() < 0.3}
            # after a side is sealed, the engine adds records found for matching only (never changes)
            ws.add(side, recs, links, changed=changed)
            if reading[side] and rnd.random() < 0.25:
                ws.seal(side)
                reading[side] = False
            ws.after_page()
        for side in ("right", "left"):
            ws.seal(side)
        out = []
        for side in ("left", "right"):
            osd = "right" if side == "left" else "left"
            probe = {f"{side[0]}p{c}": Record(f"{side[0]}p{c}", {keys[side]: f"{c}@x.com"}, T0) for c in "abcdefg"}
            inp = ws.plan_input(side, probe, {}, partners=True)
            idx = inp.index[osd]
            found = {c: idx.lookup([f"{c}@x.com"]) if ordered else sorted(idx.lookup([f"{c}@x.com"])) for c in "abcdefg"}
            ids = sorted({i for got in found.values() for i in got})
            out.append((side, found, [(i, dict(idx.records[i].values), inp.links[osd].get(i)) for i in ids]))
            everyone = [f"{osd[0]}{i}" for i in range(10)]
            out.append((osd, "unchanged", ws.missing_changed(osd, everyone)))
            left = [(k, dict(v.values), lk.get(k)) for c, lk in ws.leftovers(osd, 3) for k, v in c.items()]
            out.append((osd, "leftovers", left if ordered else sorted(left, key=lambda t: t[0])))
        return out
    finally:
        ws.close()


@pytest.mark.parametrize("seed", range(60))
def test_a_side_appended_to_the_file_and_indexed_later_answers_as_one_indexed_from_the_start(seed, tmp_path,
                                                                                            monkeypatch):
    """The file appends a side's rows without indexes until the side is first asked something, then
    settles the ids added more than once: every answer is the one of a file indexed row by row."""
    lazy = _settled(0, seed, tmp_path)
    monkeypatch.setattr(spill, "LAZY_INDEX", False)
    assert _settled(0, seed, tmp_path) == lazy


@pytest.mark.parametrize("seed", range(60))
def test_a_working_set_answers_alike_in_memory_packed_and_in_the_file(seed, tmp_path):
    """The same adds give the same records, links, candidates and leftovers in each tier (candidates
    and leftovers compared as sets: the tiers keep a side's records in different orders)."""
    mem = _settled(10**9, seed, tmp_path, ordered=False)
    assert _settled(1, seed, tmp_path, ordered=False) == mem
    assert _settled(0, seed, tmp_path, ordered=False) == mem


@pytest.mark.parametrize("spill_at", [0, 10**9])
def test_the_generated_planner_syncs_exactly_as_the_general_path_in_memory_and_spilled(tmp_path, monkeypatch,
                                                                                    spill_at):
    from engine.sync import plan

    monkeypatch.setattr(plan, "COMPILE_AFTER", 0)  # generated from the first page (these runs are small)
    (tmp_path / "fast").mkdir()
    (tmp_path / "general").mkdir()
    fast = run_all(tmp_path / "fast", monkeypatch, spill_at)
    monkeypatch.setattr(plan, "COMPILED", False)
    general = run_all(tmp_path / "general", monkeypatch, spill_at)
    assert fast == general
    assert {"AMBIGUOUS_MATCH", "ALREADY_LINKED"} <= {c for _, _, c in fast[4]}
