"""Peak memory of a first two-way sync (every record matched: the right side held in full, the left side
indexed) is flat in N once the working set spills, and O(N) when it does not (what the spill is for).
Measured with tracemalloc: what the run allocates above what the two in-memory apps already hold."""

from __future__ import annotations

import gc
import tracemalloc

import engine.sync.engine as engine_mod
import engine.sync.spill as spill
from engine.sync import sync_integration
from tests.sync.conftest import make_integration
from tests.sync.fakes import Clock, FakeApp


def desk(i):
    return {"firstName": f"Ann{i}", "lastName": f"Lee{i}", "email": f"ann{i}@x.com", "phone": f"555{i:07d}"}


def bigin(i):
    return {"First_Name": f"Ann{i}", "Last_Name": f"Lee{i}", "Email": f"ann{i}@x.com", "Mobile": f"555{i:07d}"}


def peak_of_first_sync(tmp_path, n: int) -> int:
    from engine.state import open_store

    clock = Clock()
    left, right = FakeApp("zoho_desk", clock, page_size=50), FakeApp("bigin", clock, page_size=50)
    for i in range(n):
        left.put("contacts", desk(i))
        right.put("Contacts", bigin(i))
    store = open_store(f"sqlite:///{tmp_path}/state-{n}-{spill.SPILL_AT}.db")
    clock.tick(5)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        rep = sync_integration(make_integration(), store=store, left=left, right=right, clock=clock)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
        store.close()
    assert rep.ok and rep.total("linked") == n and rep.writes == 0
    return peak


def test_peak_memory_of_a_first_two_way_sync_is_flat_in_n_once_spilled(tmp_path, monkeypatch):
    # the constants scaled down with N: left pages read ahead, ops waiting in the write buffer, records held
    monkeypatch.setattr(engine_mod, "READ_AHEAD", 2)
    monkeypatch.setattr(engine_mod, "BUFFER_OPS", 500)
    monkeypatch.setattr(spill, "SPILL_AT", 200)
    monkeypatch.setattr(spill, "COMPACT_FACTOR", 1)  # straight to the file (the packed tier is bounded too)
    small, large = peak_of_first_sync(tmp_path, 1000), peak_of_first_sync(tmp_path, 4000)
    monkeypatch.setattr(spill, "SPILL_AT", 10**9)
    in_memory = peak_of_first_sync(tmp_path, 4000)
    assert large < small * 1.5, (small, large)  # 4x the records, about the same peak
    assert large < in_memory / 2, (large, in_memory)
