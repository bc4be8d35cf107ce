"""A separate process driving the store API the way apply and sync do (for the concurrency tests).

    python _worker.py URL ROLE INDEX ROUNDS

ROLE "sync": bookkeeping transactions of one sync run per round on the worker's own integration
(``sync-INDEX``), without the operation lock: a run record, a batch of links, cursors, a journal entry
written then resolved, a repeating failure. Different integrations run in parallel.

ROLE "apply": per round, takes the operation lock, reads the shared integration's deployed spec,
waits a little (widening the window a lost update would need), writes it back with the counter + 1
and records the apply. Serialised by the lock; without it increments would be lost.

Prints one JSON line with what it did; exits non-zero with the error on stderr when something failed.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone

from engine.errors import TransientStateError
from engine.state import open_store
from engine.state.base import Deployed, Failure, JournalEntry, Link, RunRecord

LINKS_PER_ROUND = 40


def sync_rounds(store, index: int, rounds: int) -> dict:
    name = f"sync-{index}"
    retried = 0
    for r in range(rounds):
        for attempt in range(5):
            try:
                with store.transaction():
                    run_id = store.start_run(RunRecord(None, name, "contacts", "left-to-right",
                                                       datetime.now(timezone.utc)))
                    entry = store.journal_add(JournalEntry(None, name, "contacts", "right", "create",
                                                           ({"source_id": f"L{r}", "values": {"n": r}},)))
                    store.put_links(name, "contacts", [
                        Link(f"L{r}-{k}", f"R{r}-{k}", {"email": f"{r}.{k}@x.io"}, {"Email": f"{r}.{k}@x.io"})
                        for k in range(LINKS_PER_ROUND)])
                    store.set_cursor(name, "contacts", "left", f"cursor-{r:04d}")
                    store.add_failure(Failure(None, name, "contacts", "left", "L-bad", "TYPE_MISMATCH",
                                              f"round {r}"))
                    store.journal_done(entry)
                    store.finish_run(RunRecord(run_id, name, "contacts", "left-to-right",
                                               datetime.now(timezone.utc), ended=datetime.now(timezone.utc),
                                               created=LINKS_PER_ROUND, linked=LINKS_PER_ROUND))
                break
            except TransientStateError:
                retried += 1
                time.sleep(0.05 * (attempt + 1))
        else:
            raise SystemExit(f"{name}: round {r} kept colliding")
    return {"role": "sync", "index": index, "rounds": rounds, "retried": retried}


def apply_rounds(store, index: int, rounds: int) -> dict:
    for r in range(rounds):
        lock = store.acquire_lock(f"apply worker {index}", timeout=120)
        try:
            current = store.get_deployed("shared")
            count = current.spec["count"] if current else 0
            seen = current.spec.get("by", []) if current else []
            time.sleep(0.005)
            with store.transaction():
                store.put_deployed(Deployed(name="shared", spec={"count": count + 1, "by": [*seen, index]},
                                            spec_hash=f"h{count + 1}"))
                store.record_apply(who=f"worker-{index}", spec_hash=f"h{count + 1}", commit=None,
                                   summary=f"round {r}")
        finally:
            store.release_lock(lock.id)
    return {"role": "apply", "index": index, "rounds": rounds}


def main() -> None:
    url, role, index, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    store = open_store(url)
    try:
        result = (sync_rounds if role == "sync" else apply_rounds)(store, index, rounds)
    finally:
        store.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
