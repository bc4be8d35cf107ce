"""Apply: an interpreter over a plan's steps (``engine.apply.interpreter.Applier``).

1. take the state lock (bounded wait, then ``LockedError`` naming the holder);
2. check the plan is fresh (same lineage and serial as when it was made; else ``StalePlanError``
   saying what moved);
3. run the state steps, in order, in ONE transaction, with the apply recorded in the history;
4. release nothing yet: run the sync steps through ``engine.sync.sync_integration`` (skipped, and
   said so, with ``--no-sync`` or when the sync engine is not part of this build);
5. release the lock.
"""
