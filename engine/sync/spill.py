"""The working set of a module run: in memory while small, packed in memory beyond, in a temporary
SQLite file beyond that.

A module run plans each page of one side against what it knows of the other side: the records it
read of the right side (its changes, records older than ``created_within``, candidates found by a
search), the left records it indexes for matching, their links (merge bases), the match index
(normalised key -> ids), the ids already planned, claimed or found ambiguous, and the pairs whose
writes to the left wait until the left side is read. All of these grow with N. ``Workset`` holds
them: in memory (dicts, ``MatchIndex``, sets: exactly what the planner used before, so small and
incremental runs pay nothing) until ``SPILL_AT`` records and links (or ten times as many ids) are held;
then records and links are held packed (``_Packer``: ``marshal`` of their values, ~200 B for a record
of ~1 KB as a dict; unpacked on each access) while the packed working set stays under an estimate of
~190 MB (``COMPACT_FACTOR``, by the bytes packed: a 100k-per-side first sync stays here); only then are
they moved to a temporary SQLite file, which answers each page's questions with a few batched queries
(``plan_input``), so the peak memory of a run stays bounded, flat in N. A side's records are appended
to the file and indexed once, when the side is first asked something (``_index``): a first two-way
sync reads one side in full, then plans the other's pages against it, and asks nothing of the side it
plans until its last page.

Semantics kept from the in-memory structures: while a side is read in full (before ``seal``) a record
read again replaces the earlier one (in its first position); after, the first record added under an
id stays (as ``MatchIndex.add``) while its link is replaced. Membership of the planner's id sets is
exact (a page's ids are fetched in one query, any other id is asked for on its own).

The file is written to a private directory (0700; the file 0600) next to the state database, holds
record values and ops read and planned in this run (never credentials) and is removed at the end of
the run, also on error; a directory left by a killed process is removed by the next run. SQLite sorts
what does not fit its cache (an index being built, a large ORDER BY) in temporary files of its own,
in the system's temporary directory, owner-only and removed from the directory as they are opened. Rows are
packed as above (pickled when they do not pack): they are written and read back by this process only,
inside that private directory, in one transaction that is never committed.
"""

from __future__ import annotations

import dataclasses
import marshal
import os
import pickle
import shutil
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from engine.apps.base import Record
from engine.state.base import Link
from engine.state.sqlite import insert_rows
from engine.sync.mapping import ModuleMapper, other
from engine.sync.executor import BATCH
from engine.sync.plan import MatchIndex, Op, PlanInput, fast_constructor, new_link, probe_values

# records (and links, and held-back ops: each weighs about as much) held in memory before spilling:
# ~60 MB; a 10k-per-side first sync (20k records and their ops) stays in memory
SPILL_AT = int(os.environ.get("SYNCFORM_SPILL_AT", "30000"))
IDS_PER_RECORD = 10  # ids of the planner's sets weigh about a tenth of a record
# Past SPILL_AT, records and links are first held packed (``_Packer``: a record of ~1 KB as a dict
# takes ~200 B plus ~250 B of dict entries and index), until the packed working set is estimated at
# SPILL_AT x COMPACT_FACTOR x UNIT_BYTES (~190 MB) - by the bytes packed, so wide records spill
# sooner; only then is the file used. A 100k-per-side first sync stays in memory, and memory stays
# bounded beyond, as before.
COMPACT_FACTOR = int(os.environ.get("SYNCFORM_COMPACT_FACTOR", "16"))
UNIT_BYTES = 400
ENTRY_BYTES = 250  # a packed record's or link's dict entries, id and match-index entries
KEY_BYTES = 180  # the match keys of a packed record of a side not sealed yet (an e-mail: measured ~180 B)
OP_BYTES = 2_000  # an op held back (not packed) with its link
# an id in the planner's sets: the sets of one side hold the same id objects (a record created is
# planned and claimed: two entries, one text), so an entry and a text are counted apart (measured:
# 1M ids in one set 109 MB, in two 141, in three 173; 1.5M in two 243)
ID_ENTRY_BYTES = 45  # an entry of a set (its slot, at the load a set keeps)
ID_TEXT_BYTES = 80  # the id's text, once per side (the side's largest set: the others hold its ids)
UNPACKED_BYTES = 2_000  # what a record or link that does not pack weighs
CHUNK = 500  # ids per IN (...) query
# a side's rows are appended to the file without indexes until the side is first asked something
# (``Workset._index``); False: indexed from the start, each row inserted into them as it comes
LAZY_INDEX = True
PREFIX = "syncform-spill-"
_SETS = ("done", "claimed", "ambiguous")
_WRITES = ("create", "update", "delete")


def _dump(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


# Times in UTC go as integer microseconds (a UTC datetime pickles ~10x slower than the values of a
# record); any other time object as itself.
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)


def _t(dt: Any) -> Any:
    return (dt - _EPOCH) // _US if dt.__class__ is datetime and dt.tzinfo is timezone.utc else dt


def _dt(v: Any) -> Any:
    return _EPOCH + timedelta(microseconds=v) if v.__class__ is int else v


def _rec_body(rec: Record) -> bytes:
    return _dump((rec.values, _t(rec.modified), None if rec.created is None else _t(rec.created)))


def _rec_load(rid: str, body: bytes) -> Record:
    values, modified, created = pickle.loads(body)
    return Record(id=rid, values=values, modified=_dt(modified), created=None if created is None else _dt(created))


def _link_t(link: Link | None) -> tuple[Any, ...] | None:
    if link is None:
        return None
    return (link.left_id, link.right_id, link.left_values, link.right_values, link.left_hash, link.right_hash,
            None if link.synced_at is None else _t(link.synced_at))


def _link_of(t: tuple[Any, ...] | None) -> Link | None:
    if t is None:
        return None
    return Link(t[0], t[1], t[2], t[3], t[4], t[5], None if t[6] is None else _dt(t[6]))


def _link_dump(link: Link) -> bytes:
    return _dump(_link_t(link))


def _link_load(blob: bytes) -> Link:
    return _link_of(pickle.loads(blob))  # type: ignore[return-value]


_new_record = fast_constructor(Record)


class _Packer:
    """Records and links as compact bytes (``marshal`` of their values in the order of their keys, the
    key tuples kept once per shape; times as integer microseconds) and back, exactly. Anything that
    does not pack (a value ``marshal`` cannot write, a time not in UTC) is kept as the object itself."""

    def __init__(self) -> None:
        self.shapes: dict[tuple[str, ...], int] = {}
        self.keys: list[tuple[str, ...]] = []
        self.size = 0  # bytes packed so far (an estimate of what the packed forms hold)
        # the last times met (apps stamp whole seconds: records of one batch share them), one object each
        self._dt: dict[int, datetime] = {}

    @staticmethod
    def us(dt: datetime) -> int:
        return (dt - _EPOCH) // _US  # as cheap as looking an aware datetime up (its hash is not cached)

    def dt(self, us: int) -> datetime:
        got = self._dt.get(us)
        if got is None:
            if len(self._dt) >= 4096:
                self._dt.clear()
            got = self._dt[us] = _EPOCH + timedelta(0, 0, us)
        return got

    def _shape(self, values: Mapping[str, Any]) -> int:
        ks = tuple(values)
        n = self.shapes.get(ks)
        if n is None:
            n = self.shapes[ks] = len(self.keys)
            self.keys.append(ks)
        return n

    def record(self, rec: Record) -> Any:
        mod, cr = rec.modified, rec.created
        if mod.__class__ is not datetime or mod.tzinfo is not timezone.utc or \
                (cr is not None and (cr.__class__ is not datetime or cr.tzinfo is not timezone.utc)):
            self.size += UNPACKED_BYTES
            return rec
        values = rec.values
        try:
            blob = marshal.dumps((self._shape(values), tuple(values.values()), self.us(mod),
                                  None if cr is None else self.us(cr)))
        except (ValueError, TypeError):
            self.size += UNPACKED_BYTES
            return rec
        self.size += len(blob)
        return blob

    def load_record(self, rid: str, blob: Any) -> Record:
        if blob.__class__ is not bytes:
            return blob
        shape, vals, mod, cr = marshal.loads(blob)
        return _new_record(rid, dict(zip(self.keys[shape], vals)), self.dt(mod), None if cr is None else self.dt(cr))

    def link(self, link: Link) -> Any:
        at = link.synced_at
        if at is not None and (at.__class__ is not datetime or at.tzinfo is not timezone.utc):
            self.size += UNPACKED_BYTES
            return link
        lv, rv = link.left_values, link.right_values
        try:
            blob = marshal.dumps((link.left_id, link.right_id, self._shape(lv), tuple(lv.values()), self._shape(rv),
                                  tuple(rv.values()), link.left_hash, link.right_hash,
                                  None if at is None else self.us(at)))
        except (ValueError, TypeError, AttributeError):
            self.size += UNPACKED_BYTES
            return link
        self.size += len(blob)
        return blob

    def load_link(self, rid: str, blob: Any) -> Link:
        if blob.__class__ is not bytes:
            return blob
        lid, rid_, ls, lv, rs, rv, lh, rh, at = marshal.loads(blob)
        keys = self.keys
        return new_link(lid, rid_, dict(zip(keys[ls], lv)), dict(zip(keys[rs], rv)), lh, rh,
                        None if at is None else self.dt(at))


class _Packed(dict):  # type: ignore[type-arg]
    """A dict of id -> packed record or link that hands out the objects (unpacked on each access)."""

    __slots__ = ("load",)

    def __init__(self, load: Any) -> None:
        super().__init__()
        self.load = load

    def get(self, rid: Any, default: Any = None) -> Any:
        v = dict.get(self, rid)
        return default if v is None else self.load(rid, v)

    def __getitem__(self, rid: Any) -> Any:
        return self.load(rid, dict.__getitem__(self, rid))

    def values(self) -> list[Any]:  # type: ignore[override]
        load = self.load
        return [load(k, v) for k, v in dict.items(self)]

    def items(self) -> list[tuple[Any, Any]]:  # type: ignore[override]
        load = self.load
        return [(k, load(k, v)) for k, v in dict.items(self)]


_OP_FIELDS = tuple(f.name for f in dataclasses.fields(Op))


def _ops_dump(ops: list[Op]) -> bytes:
    return _dump([tuple(_link_t(op.link) if f == "link" else getattr(op, f) for f in _OP_FIELDS) for op in ops])


def _ops_load(blob: bytes) -> list[Op]:
    out = []
    for t in pickle.loads(blob):
        kw = dict(zip(_OP_FIELDS, t))
        kw["link"] = _link_of(kw["link"])
        out.append(Op(**kw))
    return out


def _chunks(items: list[Any], n: int = CHUNK) -> Iterator[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _marks(n: int) -> str:
    return ",".join("?" * n)


class _DiskSet:
    """A set of ids in the spill file: members added since the last ``flush`` are kept in memory,
    ``prefetch`` asks the file about a page's ids in one query, any other id is asked on its own."""

    def __init__(self, db: sqlite3.Connection, code: int):
        self.db = db
        self.code = code
        self.added: set[str] = set()
        self.present: set[str] = set()
        self.absent: set[str] = set()
        self.stored = 0  # ids written to the file (at least as many as it holds): 0, no query is needed

    def prefetch(self, ids: Iterable[str]) -> None:
        if not self.stored:
            return
        ask = [i for i in set(ids) if i not in self.added and i not in self.present and i not in self.absent]
        for part in _chunks(ask):
            found = {r[0] for r in self.db.execute(
                f"SELECT id FROM mark WHERE s = ? AND id IN ({_marks(len(part))})", (self.code, *part))}
            self.present.update(found)
            self.absent.update(i for i in part if i not in found)

    def __contains__(self, rid: object) -> bool:
        if rid in self.added or rid in self.present:
            return True
        if rid in self.absent or not self.stored:
            return False
        hit = self.db.execute("SELECT 1 FROM mark WHERE s = ? AND id = ?", (self.code, rid)).fetchone() is not None
        (self.present if hit else self.absent).add(rid)  # type: ignore[arg-type]
        return hit

    def add(self, rid: str) -> None:
        self.added.add(rid)

    def update(self, ids: Iterable[str]) -> None:
        self.added.update(ids)

    def flush(self) -> None:
        if self.added:
            # in key order, streamed (``ROWS_PER_INSERT`` rows a statement): the spill hands over a set of
            # a million ids or more, whose rows in hash order would land all over the table's pages (and as
            # a list of rows, would double the set's memory)
            code = self.code
            insert_rows(self.db, "INSERT OR IGNORE INTO mark (s, id) VALUES (?, ?)",
                        ((code, i) for i in sorted(self.added)))
            self.stored += len(self.added)
        self.added = set()
        self.present = set()
        self.absent = set()


class _Rows(Mapping[str, Any]):
    """A page's view of one column of the other side's rows: prefetched, else read on demand."""

    def __init__(self, got: dict[str, Any], known: set[str], fetch: Any):
        self.got = got
        self.known = known  # ids whose row was fetched (a missing value there is a known None)
        self.fetch = fetch

    def __getitem__(self, rid: str) -> Any:
        v = self.get(rid)
        if v is None:
            raise KeyError(rid)
        return v

    def get(self, rid: str, default: Any = None) -> Any:  # type: ignore[override]
        v = self.got.get(rid)
        if v is None and rid not in self.known:
            self.known.add(rid)
            v = self.fetch(rid)
            if v is not None:
                self.got[rid] = v
        return default if v is None else v

    def __contains__(self, rid: object) -> bool:
        return self.get(rid) is not None  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[str]:
        return iter(self.got)

    def __len__(self) -> int:
        return len(self.got)


class _PageIndex:
    """``MatchIndex.lookup`` for the probes of one page, answered from the hits fetched for them."""

    def __init__(self, hits: dict[tuple[int, str], list[str]], records: _Rows):
        self.hits = hits
        self.records = records

    def lookup(self, probe: list[str]) -> list[str]:
        for i, v in enumerate(probe):
            if v:
                got = self.hits.get((i, v))
                if got:
                    return list(got)
        return []


class Workset:
    """What a module run holds while it plans (see the module docstring).

    ``add`` records of a side (with their links), ``seal`` a side once it is read in full,
    ``plan_input`` for each page or chunk to plan, ``after_page`` once it is planned, ``defer`` and
    ``take_deferred`` the pairs that wait, ``leftovers`` the changed records no page planned;
    ``close`` at the end (removes the file)."""

    def __init__(self, mapper: ModuleMapper, *, deleted: dict[str, set[str]], initial: bool,
                 directory: str | os.PathLike[str] | None = None, spill_at: int | None = None):
        self.m = mapper
        self.deleted = deleted
        self.initial = initial
        self.directory = directory
        self.spill_at = SPILL_AT if spill_at is None else spill_at
        self.match = bool(mapper.module.match)
        self.sealed = {"left": True, "right": True}
        # in memory (until spilled)
        self.changed: dict[str, dict[str, Record]] = {"left": {}, "right": {}}
        self.older: dict[str, dict[str, Record]] = {"left": {}, "right": {}}
        self.index: dict[str, MatchIndex] = {"left": MatchIndex(mapper, "left"), "right": MatchIndex(mapper, "right")}
        self.links: dict[str, dict[str, Link]] = {"left": {}, "right": {}}
        self.done: dict[str, Any] = {"left": set(), "right": set()}
        self.claimed: dict[str, Any] = {"left": set(), "right": set()}
        self.ambiguous: dict[str, Any] = {"left": set(), "right": set()}
        self._deferred: list[Op] = []
        self.packer: _Packer | None = None  # set once past spill_at: records and links held packed
        # packed records of a side being read, changed (True) or older: their match keys, read while the
        # record was at hand, so that sealing the side indexes them without unpacking them
        self._keys: dict[str, dict[bool, dict[str, tuple[Any, ...]]]] = {"left": {True: {}, False: {}},
                                                                          "right": {True: {}, False: {}}}
        self.fpk = _Packer()  # the rows of the spill file
        # on disk
        self.db: sqlite3.Connection | None = None
        self.path: Path | None = None
        # a side's rows in the file are appended without their id and match-key indexes until the side
        # is first asked something (``_index``): "" none yet, else the rule a record added again follows
        # ("replace" while the side is read in full, "first" after), None once indexed
        self._lazy: dict[str, str | None] = {"left": None, "right": None}
        self._seq = {"left": 0, "right": 0}
        self._dseq = 0

    @property
    def spilled(self) -> bool:
        return self.db is not None

    # -- adding ------------------------------------------------------------------------------------
    def begin_read(self, side: str) -> None:
        """``side`` is being read in full: a record read again replaces the earlier one until ``seal``."""
        self.sealed[side] = False

    def add(self, side: str, recs: Iterable[Record], links: Mapping[str, Link] | None = None, *,
            changed: bool = False) -> None:
        """Records of ``side`` known to the run (all are match candidates); ``changed``: to be planned
        (its changes since the cursor). ``links``: their links (replace earlier ones)."""
        recs = list(recs)
        if self.db is not None:
            self._disk_add(side, recs, links, changed)
            return
        pk = self.packer
        if pk is not None:
            self._packed_add(pk, side, recs, links, changed)
            self._check()
            return
        if links:
            self.links[side].update(links)
        if not self.sealed[side]:
            into = self.changed[side] if changed else self.older[side]
            for rec in recs:
                into[rec.id] = rec
        else:
            if changed:
                into = self.changed[side]
                for rec in recs:
                    into[rec.id] = rec
            self.index[side].add_all(recs)
        self._check()

    def missing_changed(self, side: str, ids: Iterable[str]) -> list[str]:
        """The ids not among the changed records of ``side``."""
        ids = list(ids)
        if self.db is None:
            return [i for i in ids if i not in self.changed[side]]
        have: set[str] = set()
        self._index(side)
        for part in _chunks(ids):
            have.update(r[0] for r in self.db.execute(
                f"SELECT id FROM rec_{side} WHERE changed = 1 AND id IN ({_marks(len(part))})", part))
        return [i for i in ids if i not in have]

    def seal(self, side: str) -> None:
        """``side`` is read: index it (its changes first, then the rest)."""
        if self.sealed[side]:
            return
        self.sealed[side] = True
        if self.db is None:
            add = self.index[side].add
            if self.packer is not None:
                load = self.packer.load_record
                add_keyed = self.index[side].add_keyed
                keyed = self._keys[side]
                for held, keys in ((self.changed[side], keyed[True]), (self.older[side], keyed[False])):
                    for rid, blob in dict.items(held):
                        kv = keys.get(rid) if self.match else ()
                        if kv is not None:
                            add_keyed(rid, kv, blob)
                        else:
                            add(load(rid, blob), blob)
                self._keys[side] = {True: {}, False: {}}
                self.older[side] = _Packed(load)
                return
            index = self.index[side]
            index.add_all(self.changed[side].values())
            index.add_all(self.older[side].values())
            self.older[side] = {}

    # -- planning ----------------------------------------------------------------------------------
    def plan_input(self, side: str, recs: dict[str, Record], links: Mapping[str, Link], *,
                   partners: bool) -> PlanInput:
        """The planner's input for ``recs`` (records of ``side``, with their ``links``) against the
        other side: its changed records too when ``partners`` (a linked record is merged with its
        partner's change), else only its links and match candidates."""
        osd = other(side)
        if self.db is None:
            return PlanInput(mapper=self.m, changed={side: recs, osd: self.changed[osd] if partners else {}},
                             links={side: links, osd: self.links[osd]}, index=dict(self.index),  # type: ignore[arg-type]
                             deleted=self.deleted, claimed=self.claimed, ambiguous=self.ambiguous,
                             initial=self.initial)
        return self._disk_plan_input(side, recs, links, partners)

    def after_page(self) -> None:
        """The page is planned: write the sets' additions to the file, or spill if memory grew."""
        if self.db is not None:
            for group in (self.done, self.claimed, self.ambiguous):
                for s in group.values():
                    s.flush()
        else:
            self._check()

    def leftovers(self, side: str, size: int) -> Iterator[tuple[dict[str, Record], Mapping[str, Link]]]:
        """The changed records of ``side`` not planned yet, in chunks of ``size`` (read order), with
        their links. Chunks are cut as the planner goes (the planner marks only a chunk's own ids)."""
        if self.db is None:
            changed, done = self.changed[side], self.done[side]
            rest = [rid for rid in changed if rid not in done]
            links = self.links[side]  # kept by this reference should the set spill meanwhile
            for i in range(0, len(rest), size):
                yield {rid: changed[rid] for rid in rest[i:i + size]}, links
            return
        yield from self._disk_leftovers(side, size)

    def unlinked_leftovers(self, side: str, limit: int) -> tuple[int, list[Record]]:
        """How many changed, unplanned records of ``side`` have no link; the records when ≤ ``limit``."""
        if self.db is None:
            changed, done, links = self.changed[side], self.done[side], self.links[side]
            rest = [rid for rid in changed if rid not in done and rid not in links]
            return len(rest), [changed[rid] for rid in rest] if len(rest) <= limit else []
        done = self.done[side]
        done.flush()
        self._index(side)
        n = self.db.execute(f"SELECT COUNT(*) FROM rec_{side} r WHERE changed = 1 AND link IS NULL AND NOT EXISTS "
                            f"(SELECT 1 FROM mark WHERE s = ? AND id = r.id)", (done.code,)).fetchone()[0]
        if n > limit:
            return n, []
        rows = self.db.execute(f"SELECT id, body FROM rec_{side} r WHERE changed = 1 AND link IS NULL AND NOT EXISTS "
                               f"(SELECT 1 FROM mark WHERE s = ? AND id = r.id) ORDER BY seq", (done.code,))
        return n, [self._unbody(rid, body) for rid, body in rows]

    # -- pairs waiting for the left side to be read --------------------------------------------------
    def defer(self, ops: list[Op]) -> None:
        if not ops:
            return
        if self.db is None:
            self._deferred.extend(ops)
            self._check()
            return
        self._disk_defer(ops)

    def take_deferred(self) -> Iterator[list[Op]]:
        """The deferred ops. In memory: all at once. From the file: in blocks of ``BATCH`` pairs
        of one kind (the same write groups), so that every buffer flush sends whole write batches,
        then the rest."""
        if self.db is None:
            ops, self._deferred = self._deferred, []
            if ops:
                yield ops
            return
        db = self.db
        classes = [r[0] for r in db.execute("SELECT DISTINCT cls FROM deferred ORDER BY cls")]
        rest: list[Op] = []
        for cls in classes:
            block: list[Op] = []
            pairs = 0
            last = 0
            while True:
                rows = db.execute("SELECT seq, ops FROM deferred WHERE cls = ? AND seq > ? ORDER BY seq LIMIT ?",
                                  (cls, last, CHUNK)).fetchall()
                if not rows:
                    break
                for seq, blob in rows:
                    last = seq
                    block.extend(_ops_load(blob))
                    pairs += 1
                    if pairs == BATCH:
                        yield block
                        block, pairs = [], 0
            rest.extend(block)
        db.execute("DELETE FROM deferred")
        if rest:
            yield rest

    # -- end ---------------------------------------------------------------------------------------
    def close(self) -> None:
        """Forget everything; remove the spill file."""
        db, self.db = self.db, None
        if db is not None:
            try:
                db.close()
            finally:
                if self.path is not None:
                    shutil.rmtree(self.path.parent, ignore_errors=True)
        self.changed = {"left": {}, "right": {}}
        self.index = {"left": MatchIndex(self.m, "left"), "right": MatchIndex(self.m, "right")}
        self._deferred = []
        self.packer = None

    def __enter__(self) -> "Workset":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- in memory -> on disk ----------------------------------------------------------------------
    def held(self) -> tuple[int, int]:
        """(records and ops held in memory, ids in the planner's sets)."""
        if self.db is not None:
            return 0, 0
        recs = sum((len(self.index[s].records) if self.sealed[s] else len(self.changed[s]) + len(self.older[s]))
                   + len(self.links[s]) for s in ("left", "right"))
        ids = sum(len(g[s]) for g in (self.done, self.claimed, self.ambiguous) for s in ("left", "right"))
        return recs + len(self._deferred), ids

    def _id_bytes(self) -> int:
        """What the planner's sets weigh in memory (``ID_ENTRY_BYTES``, ``ID_TEXT_BYTES``)."""
        total = 0
        for side in ("left", "right"):
            sizes = [len(g[side]) for g in (self.done, self.claimed, self.ambiguous)]
            total += sum(sizes) * ID_ENTRY_BYTES + max(sizes) * ID_TEXT_BYTES
        return total

    def _check(self) -> None:
        recs, ids = self.held()
        if self.packer is None:
            if recs <= self.spill_at and ids <= self.spill_at * IDS_PER_RECORD:
                return
            if self.spill_at <= 0 or COMPACT_FACTOR <= 1:
                self.spill()
                return
            self._pack_all()
        d = len(self._deferred)
        keyed = sum(len(k) for side in self._keys.values() for k in side.values())
        size = self.packer.size  # type: ignore[union-attr]
        held = size + (recs - d) * ENTRY_BYTES + d * OP_BYTES + self._id_bytes() + keyed * KEY_BYTES
        if held > self.spill_at * COMPACT_FACTOR * UNIT_BYTES:
            self.spill()

    # -- in memory, packed ---------------------------------------------------------------------------
    def _pack_all(self) -> None:
        """Hold the records and links packed from now on (each record packed once: the index and the
        changed records share it)."""
        pk = self.packer = self.fpk
        for side in ("left", "right"):
            idx = self.index[side]
            idx.keyed()  # keys read now: the records are held packed from here on
            packed: dict[int, Any] = {}
            recs = _Packed(pk.load_record)
            for rid, rec in idx.records.items():
                blob = packed[id(rec)] = pk.record(rec)
                dict.__setitem__(recs, rid, blob)
            idx.records = recs
            key_values = idx.key_values if self.match and not self.sealed[side] else None
            for name in ("changed", "older"):
                held = getattr(self, name)
                into = _Packed(pk.load_record)
                keys = self._keys[side][name == "changed"]
                for rid, rec in held[side].items():
                    blob = packed.get(id(rec))
                    dict.__setitem__(into, rid, blob if blob is not None else pk.record(rec))
                    if key_values is not None:
                        keys[rid] = key_values(rec.values)
                held[side] = into
            links = _Packed(pk.load_link)
            for rid, link in self.links[side].items():
                dict.__setitem__(links, rid, pk.link(link))
            self.links[side] = links

    def _packed_add(self, pk: _Packer, side: str, recs: list[Record], links: Mapping[str, Link] | None,
                    changed: bool) -> None:
        if links:
            held = self.links[side]
            pack_link = pk.link
            for rid, link in links.items():
                dict.__setitem__(held, rid, pack_link(link))
        pack = pk.record
        if not self.sealed[side]:
            into = self.changed[side] if changed else self.older[side]
            if not self.match:
                for rec in recs:
                    dict.__setitem__(into, rec.id, pack(rec))
                return
            keys = self._keys[side][changed]
            key_values = self.index[side].key_values
            for rec in recs:
                rid = rec.id
                dict.__setitem__(into, rid, pack(rec))
                keys[rid] = key_values(rec.values)
            return
        add = self.index[side].add
        into = self.changed[side]
        for rec in recs:
            blob = pack(rec)
            if changed:
                dict.__setitem__(into, rec.id, blob)
            add(rec, blob)

    def spill(self) -> None:
        """Move everything to the spill file (from now on memory stays flat)."""
        if self.db is not None:
            return
        self._open()
        for side in ("left", "right"):
            changed, older, idx, links = self.changed[side], self.older[side], self.index[side], self.links[side]
            sealed = self.sealed[side]
            self.sealed[side] = False  # rows are written as read: last one wins, as above
            # records are unpacked a chunk at a time (all at once would be the peak of the run)
            if sealed:
                # the index's records, in order (the changed ones are among them)
                records = idx.records
                for part in _chunks(list(records), 2000):
                    recs = [records[rid] for rid in part]
                    for ch in (True, False):
                        sel = [r for r in recs if (r.id in changed) == ch]
                        if sel:
                            self._disk_add(side, sel, links, ch)
                extra = [rid for rid in changed if rid not in records]
                for part in _chunks(extra, 2000):
                    self._disk_add(side, [changed[rid] for rid in part], links, True)
            else:
                for held, ch in ((changed, True), (older, False)):
                    for part in _chunks(list(held), 2000):
                        self._disk_add(side, [held[rid] for rid in part], links, ch)
            self.sealed[side] = sealed
            self.changed[side], self.older[side], self.links[side] = {}, {}, {}
            self._keys[side] = {True: {}, False: {}}
            self.index[side] = MatchIndex(self.m, side)
        for gi, group in enumerate((self.done, self.claimed, self.ambiguous)):
            for si, side in enumerate(("left", "right")):
                mem = group[side]
                ds = _DiskSet(self.db, gi * 2 + si)  # type: ignore[arg-type]
                ds.added = mem  # handed over, not copied: a set of a million ids weighs ~100 MB
                ds.flush()
                group[side] = ds
        ops, self._deferred = self._deferred, []
        if ops:
            self._disk_defer(ops)

    # rows of the file: packed (``_Packer``) when they pack, else pickled (a pickle starts with 0x80,
    # a packed row never does)
    def _body(self, rec: Record) -> bytes:
        got = self.fpk.record(rec)
        return got if got.__class__ is bytes else _rec_body(rec)

    def _unbody(self, rid: str, body: bytes) -> Record:
        return _rec_load(rid, body) if body[0] == 0x80 else self.fpk.load_record(rid, body)

    def _ldump(self, link: Link) -> bytes:
        got = self.fpk.link(link)
        return got if got.__class__ is bytes else _link_dump(link)

    def _lload(self, blob: bytes) -> Link:
        return _link_load(blob) if blob[0] == 0x80 else self.fpk.load_link("", blob)

    def _open(self) -> None:
        base = Path(self.directory) if self.directory else Path(tempfile.gettempdir())
        base.mkdir(parents=True, exist_ok=True)
        _remove_stale(base)
        d = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base))  # 0700
        path = d / "workset.db"
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        self.path = path
        db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode = OFF", "synchronous = OFF", "locking_mode = EXCLUSIVE",
                       "temp_store = FILE", "cache_size = -16000"):
            db.execute(f"PRAGMA {pragma}")
        for side in ("left", "right"):
            # the indexes on id and on (k, v) are made by ``_index``
            db.execute(f"CREATE TABLE rec_{side} (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, "
                       f"gen INTEGER NOT NULL, changed INTEGER NOT NULL, body BLOB NOT NULL, link BLOB)")
            db.execute(f"CREATE TABLE idx_{side} (k INTEGER NOT NULL, v TEXT NOT NULL, seq INTEGER NOT NULL, "
                       f"gen INTEGER NOT NULL)")
            self._lazy[side] = ""
        db.execute("CREATE TABLE mark (s INTEGER NOT NULL, id TEXT NOT NULL, PRIMARY KEY (s, id)) WITHOUT ROWID")
        db.execute("CREATE TABLE deferred (seq INTEGER PRIMARY KEY, cls TEXT NOT NULL, ops BLOB NOT NULL)")
        db.execute("CREATE INDEX deferred_cls ON deferred (cls, seq)")
        # one transaction for the file's whole life: no other connection reads it and it is removed at
        # the end, so nothing is ever committed (in autocommit each row inserted was a commit of its own:
        # ~28 us a record)
        db.execute("BEGIN")
        self.db = db
        if not LAZY_INDEX:
            for side in ("left", "right"):
                self._index(side)

    # -- on disk -----------------------------------------------------------------------------------
    def _disk_add(self, side: str, recs: list[Record], links: Mapping[str, Link] | None, changed: bool) -> None:
        db = self.db
        assert db is not None
        replace = not self.sealed[side]
        batch: dict[str, Record] = {}
        for rec in recs:
            if replace:
                batch[rec.id] = rec  # a later read wins, in the first one's place
            else:
                batch.setdefault(rec.id, rec)
        lazy = self._lazy[side]
        if lazy is not None:  # not indexed yet: every record is a new row (``_index`` settles them)
            rule = "replace" if replace else "first"
            if lazy and lazy != rule:
                self._index(side)  # the rows so far follow the other rule: settle them first
            else:
                self._lazy[side] = rule
        ids = list(batch)
        existing: dict[str, tuple[int, int, int]] = {}
        if self._seq[side] and self._lazy[side] is None:
            for part in _chunks(ids):
                for rid, seq, gen, ch in db.execute(
                        f"SELECT id, seq, gen, changed FROM rec_{side} WHERE id IN ({_marks(len(part))})", part):
                    existing[rid] = (seq, gen, ch)
        new_rows: list[tuple[Any, ...]] = []
        idx_rows: list[tuple[Any, ...]] = []
        upd_rows: list[tuple[Any, ...]] = []
        link_rows: list[tuple[Any, ...]] = []
        m = self.m
        for rid, rec in batch.items():
            link = links.get(rid) if links else None
            old = existing.get(rid)
            if old is None:
                self._seq[side] += 1
                seq, gen = self._seq[side], 0
                new_rows.append((seq, rid, gen, int(changed), self._body(rec), None if link is None else self._ldump(link)))
            elif replace:
                seq, gen = old[0], old[1] + 1
                upd_rows.append((gen, int(changed or bool(old[2])), self._body(rec), seq))
                if link is not None:
                    link_rows.append((self._ldump(link), seq))
            else:
                if link is not None:
                    link_rows.append((self._ldump(link), old[0]))
                continue
            if self.match:
                for k, v in enumerate(probe_values(m, side, rec.values)):
                    if v:
                        idx_rows.append((k, v, seq, gen))
        if new_rows:
            insert_rows(db, f"INSERT INTO rec_{side} (seq, id, gen, changed, body, link) VALUES (?, ?, ?, ?, ?, ?)",
                        new_rows)
        if upd_rows:
            db.executemany(f"UPDATE rec_{side} SET gen = ?, changed = ?, body = ? WHERE seq = ?", upd_rows)
        if link_rows:
            db.executemany(f"UPDATE rec_{side} SET link = ? WHERE seq = ?", link_rows)
        if idx_rows:
            insert_rows(db, f"INSERT INTO idx_{side} (k, v, seq, gen) VALUES (?, ?, ?, ?)", idx_rows)

    def _index(self, side: str) -> None:
        """Make the side's indexes, once, and settle each id added more than once as ``_disk_add``
        settles it on an indexed side: it keeps its first row's place and the last link given; while
        the side was read in full ("replace") it takes the last read's values and match keys and is a
        change if any read said so, after it ("first") it keeps the first one's.

        Until then rows and match keys are appended: an index built from them sorts them once, where
        a row inserted into it lands at a random place of a B-tree larger than the page cache. For a
        million records with random e-mails: 4-5 µs per record, the index built at the end included,
        against 8-9 inserted into the indexes as they came."""
        rule = self._lazy[side]
        if rule is None:
            return
        self._lazy[side] = None
        db = self.db
        assert db is not None
        db.execute(f"CREATE INDEX rec_{side}_id ON rec_{side} (id)")
        dups = [r[0] for r in db.execute(f"SELECT id FROM rec_{side} GROUP BY id HAVING COUNT(*) > 1")]
        moved: list[tuple[int, int]] = []  # (the last read's row, the first row): its match keys move
        for rid in dups:
            rows = db.execute(f"SELECT seq, changed, body, link FROM rec_{side} WHERE id = ? ORDER BY seq",
                              (rid,)).fetchall()
            first, last = rows[0], rows[-1]
            links = [r[3] for r in rows if r[3] is not None]
            link = links[-1] if links else None
            if rule == "replace":
                # gen 1: the first row's own match keys (gen 0) no longer find it
                db.execute(f"UPDATE rec_{side} SET gen = 1, changed = ?, body = ?, link = ? WHERE seq = ?",
                           (max(r[1] for r in rows), last[2], link, first[0]))
                moved.append((last[0], first[0]))
            else:
                db.execute(f"UPDATE rec_{side} SET link = ? WHERE seq = ?", (link, first[0]))
            db.execute(f"DELETE FROM rec_{side} WHERE id = ? AND seq > ?", (rid, first[0]))
        if moved:  # in one pass over the keys (they have no index by row yet)
            db.execute("CREATE TEMP TABLE moved (last INTEGER PRIMARY KEY, first INTEGER NOT NULL)")
            db.executemany("INSERT INTO moved (last, first) VALUES (?, ?)", moved)
            db.execute(f"UPDATE idx_{side} SET gen = 1, seq = (SELECT first FROM moved WHERE last = idx_{side}.seq) "
                       f"WHERE seq IN (SELECT last FROM moved)")
            db.execute("DROP TABLE moved")
        db.execute(f"CREATE INDEX idx_{side}_kv ON idx_{side} (k, v)")

    def _rows(self, side: str, ids: Iterable[str]) -> dict[str, tuple[int, Record, Link | None]]:
        db = self.db
        assert db is not None
        self._index(side)
        out: dict[str, tuple[int, Record, Link | None]] = {}
        for part in _chunks(list(ids)):
            for rid, ch, body, link in db.execute(
                    f"SELECT id, changed, body, link FROM rec_{side} WHERE id IN ({_marks(len(part))})", part):
                out[rid] = (ch, self._unbody(rid, body), None if link is None else self._lload(link))
        return out

    def _lookup(self, side: str, probes: Iterable[list[str]]) -> dict[tuple[int, str], list[str]]:
        db = self.db
        assert db is not None
        self._index(side)
        per_key: dict[int, set[str]] = {}
        for probe in probes:
            for k, v in enumerate(probe):
                if v:
                    per_key.setdefault(k, set()).add(v)
        hits: dict[tuple[int, str], list[str]] = {}
        for k, vals in per_key.items():
            for part in _chunks(list(vals)):
                for v, rid in db.execute(
                        f"SELECT i.v, r.id FROM idx_{side} i JOIN rec_{side} r ON r.seq = i.seq AND r.gen = i.gen "
                        f"WHERE i.k = ? AND i.v IN ({_marks(len(part))}) ORDER BY i.rowid", (k, *part)):
                    hits.setdefault((k, v), []).append(rid)
        return hits

    def _disk_plan_input(self, side: str, recs: dict[str, Record], links: Mapping[str, Link],
                         partners: bool) -> PlanInput:
        osd = other(side)
        want: set[str] = set()
        pids: list[str] = []
        if partners:
            for rid in recs:
                link = links.get(rid)
                if link is not None:
                    pids.append(link.right_id if side == "left" else link.left_id)
            want.update(pids)
        hits: dict[tuple[int, str], list[str]] = {}
        cands: set[str] = set()
        if self.match:
            probes = [probe_values(self.m, side, rec.values) for rid, rec in recs.items() if rid not in links]
            if probes:
                hits = self._lookup(osd, probes)
            gone = self.deleted.get(osd) or set()
            for ids in hits.values():
                cands.update(ids)
                live = [i for i in ids if i not in gone]
                if len(live) == 1:
                    want.add(live[0])  # a sole candidate is merged with: fetch it now
        rows = self._rows(osd, want) if want else {}
        wanted = set(pids)
        changed = {rid: row[1] for rid, row in rows.items() if row[0] and rid in wanted}
        known = set(rows)
        orecs = _Rows({rid: row[1] for rid, row in rows.items()}, set(known),
                      lambda rid: (self._rows(osd, [rid]).get(rid) or (0, None, None))[1])
        olinks = _Rows({rid: row[2] for rid, row in rows.items() if row[2] is not None}, set(known),
                       lambda rid: (self._rows(osd, [rid]).get(rid) or (0, None, None))[2])
        ids = list(recs)
        self.done[side].prefetch(ids)
        self.ambiguous[side].prefetch(ids)
        if cands:
            self.claimed[osd].prefetch(cands)
            self.ambiguous[osd].prefetch(cands)
        return PlanInput(mapper=self.m, changed={side: recs, osd: changed}, links={side: links, osd: olinks},
                         index={osd: _PageIndex(hits, orecs)}, deleted=self.deleted,  # type: ignore[dict-item]
                         claimed=self.claimed, ambiguous=self.ambiguous, initial=self.initial)

    def _disk_leftovers(self, side: str, size: int) -> Iterator[tuple[dict[str, Record], Mapping[str, Link]]]:
        db = self.db
        assert db is not None
        done = self.done[side]
        self._index(side)
        last = 0
        chunk: dict[str, Record] = {}
        links: dict[str, Link] = {}
        while True:
            done.flush()
            rows = db.execute(f"SELECT seq, id, body, link FROM rec_{side} WHERE changed = 1 AND seq > ? "
                              f"ORDER BY seq LIMIT ?", (last, CHUNK)).fetchall()
            if not rows:
                break
            done.prefetch(r[1] for r in rows)
            for seq, rid, body, link in rows:
                last = seq
                if rid in done:
                    continue
                chunk[rid] = self._unbody(rid, body)
                if link is not None:
                    links[rid] = self._lload(link)
                if len(chunk) == size:
                    yield chunk, links
                    chunk, links = {}, {}
                    done.flush()
                    done.prefetch(r[1] for r in rows)
        if chunk:
            yield chunk, links

    def _disk_defer(self, ops: list[Op]) -> None:
        db = self.db
        assert db is not None
        pairs: dict[str, list[Op]] = {}
        for op in ops:
            pairs.setdefault(op.pair, []).append(op)
        rows = []
        for group in pairs.values():
            cls = ",".join(sorted(f"{o.target}:{o.kind}" for o in group if o.kind in _WRITES))
            rows.append((cls, _ops_dump(group)))
        db.executemany("INSERT INTO deferred (cls, ops) VALUES (?, ?)", rows)


def _remove_stale(base: Path) -> None:
    """Spill directories of processes that are gone (killed before they could remove them)."""
    try:
        entries = list(base.iterdir())
    except OSError:
        return
    for p in entries:
        if not p.name.startswith(PREFIX) or not p.is_dir():
            continue
        pid = p.name[len(PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass
