"""The calling thread's CPU per section of a measured sync (``python -m tests.bench ... --sections``).

Wraps the sync's main steps with ``time.thread_time`` counters for the calling thread (the one that
plans, journals and commits; the read and write threads are not counted), so a run says where its
*main thread* µs per record go without a profiler's distortion (cProfile inflates code that makes many
small calls; these wrappers cost ~1 µs per call of a wrapped function, and the wrapped functions are
called per page or per batch, not per record). Sections nest: ``flush`` holds ``executor.start`` and
``executor.finish``, which hold the journal and link writes. ``flush (own)`` is what a flush spends
outside the calls listed, mostly freeing the ops, links and values of the batches it committed.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

# (module, attribute path, section name), in the order they nest
_SECTIONS = (
    ("engine.sync.engine", "ModuleRun._sync_changes", "sync_changes"),
    ("engine.sync.engine", "_plan", "plan"),
    ("engine.sync.executor", "_Buffer.flush", "flush"),
    ("engine.sync.executor", "Executor.start", "executor.start"),
    ("engine.sync.executor", "journal_creates", "journal text (creates)"),
    ("engine.state.core", "SQLStore.journal_add_texts", "journal rows"),
    ("engine.sync.executor", "Executor.finish", "executor.finish"),
    ("engine.state.sqlite", "SQLiteStore.put_link_rows", "link rows (insert)"),
    ("engine.state.sqlite", "SQLiteStore.update_link_rows", "link rows (update)"),
    ("engine.state.sqlite", "SQLiteStore._commit", "commits"),
    ("engine.state.core", "SQLStore.get_links", "links read"),
    ("engine.sync.spill", "Workset.add", "working set: add"),
    ("engine.sync.spill", "Workset.seal", "working set: seal"),
)


def install() -> Counter[str]:
    """Wrap the sections; returns the counter of seconds per section (filled as the sync runs)."""
    import importlib

    spent: Counter[str] = Counter()
    main = threading.main_thread()
    clock = time.thread_time
    for module, path, name in _SECTIONS:
        owner: Any = importlib.import_module(module)
        *parents, attr = path.split(".")
        for p in parents:
            owner = getattr(owner, p)
        fn = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)

        def wrapped(*a: Any, _fn: Any = fn, _name: str = name, **kw: Any) -> Any:
            if threading.current_thread() is not main:
                return _fn(*a, **kw)
            t = clock()
            try:
                return _fn(*a, **kw)
            finally:
                spent[_name] += clock() - t

        setattr(owner, attr, wrapped)
    return spent


def per_record(spent: Counter[str], records: int) -> dict[str, float]:
    """µs per record of each section, with ``flush (own)``: a flush's time outside the sections in it."""
    if not records:
        return {}
    out = {name: round(spent[name] / records * 1e6, 2) for _, _, name in _SECTIONS if spent.get(name)}
    if "flush" in spent:
        own = spent["flush"] - spent.get("executor.start", 0.0) - spent.get("executor.finish", 0.0)
        out["flush (own)"] = round(own / records * 1e6, 2)
    return out
