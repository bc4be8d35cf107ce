"""The record plan: a value. Pure functions from (records, links, deletes) to typed operations.

``plan_changes`` turns the records changed on each side of one module (plus the links of those
records: the merge base) into ``Op``s; ``plan_deletes`` turns the apps' deleted feeds into deletes or
unlinks per the module's delete preference. Nothing here does I/O: the executor carries the ops out.

Three-way merge per field map: a side *changed* a field when its current value differs (in normal
form) from the merge base stored with the link. Changed on one side → copied to the other, but only
when the converted value differs from what the other side already holds (so our own writes, read
back, cost zero writes: no origin tag needed). Changed on both with different results → a conflict,
settled by the module's policy.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib.util import MAGIC_NUMBER
from types import CodeType
from typing import Any

from engine.apps.base import Record
from engine.state.base import Link
from engine.sync.mapping import (
    ALREADY_LINKED, AMBIGUOUS_MATCH, CONFLICT_SKIPPED, INVALID_VALUE, MANDATORY_MISSING, PARENT_NOT_SYNCED,
    MapError, ModuleMapper, other,
)
from engine.sync.normalize import key_kind, key_normaliser

KINDS = ("create", "update", "delete", "link", "unlink", "conflict", "skip", "fail")
# the generated planner (see compiled_planner) on, unless SYNCFORM_PLAN_COMPILED=0 (a switch to compare
# both paths on real data; they give the same ops)
COMPILED = os.environ.get("SYNCFORM_PLAN_COMPILED", "1") != "0"
# records of a side a module run plans through the general path before it generates that side's planner:
# generating costs ~2-5 ms (more on a busy machine; and ~1 MB while it compiles), what the general path
# spends on ~500 records, so a small incremental run (a 1 % edit, a few changes) never pays for it; a
# first or full run generates it at its first chunk of COMPILE_PAGE records (early, while it holds little)
COMPILE_AFTER = 500
COMPILE_PAGE = 50
# ... unless the run keeps planners between runs (``ModuleMapper.code_dir``: next to a SQLite state):
# compiled once per mapping and Python, a side's planner then costs ~0.4 ms (generating its source;
# loading the code ~0.05), what the general path spends on ~100 records more than the generated one
COMPILE_CACHED = 100
TOMBSTONE = "~"  # prefix of the id of a deleted record in a kept link: its partner is never revived


@dataclass(frozen=True, slots=True)
class Op:
    """One record-level operation. ``target`` is the side written (or, for fail/skip, the side whose
    record could not be synced: ``side``)."""

    kind: str
    target: str
    source_id: str | None = None
    target_id: str | None = None
    values: Mapping[str, Any] = field(default_factory=dict)
    keys: tuple[tuple[str, Any], ...] = ()
    code: str = ""
    message: str = ""
    link: Link | None = None  # the link (merge base) to commit once every write of this pair succeeded
    pair: str = ""  # groups ops of one record pair: a link commits only if all its writes succeeded
    fields: tuple[str, ...] = ()  # conflict: the fields both sides changed

    @property
    def side(self) -> str:
        """The side of the record the op is about (the source for writes)."""
        return other(self.target) if self.kind in ("create", "update", "link") else self.target


def fast_constructor(cls: type) -> Any:
    """A constructor of the frozen slotted dataclass ``cls`` with the signature of its ``__init__``,
    about twice as fast: each slot is set through its descriptor instead of ``object.__setattr__`` by
    name (what a frozen dataclass's ``__init__`` does). For the planner's per-record objects (an op and
    a link per record synced); refused for a class whose ``__init__`` does more than set its fields."""
    import dataclasses

    params = dataclasses.fields(cls)
    if not getattr(cls, "__slots__", None) or hasattr(cls, "__post_init__") or any(not f.init for f in params):
        raise TypeError(f"{cls.__name__}: not a plain slotted dataclass")
    missing = object()
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_missing": missing}
    args, body = [], []
    for i, f in enumerate(params):
        ns[f"_s{i}"] = getattr(cls, f.name).__set__
        if f.default is not dataclasses.MISSING:
            ns[f"_d{i}"] = f.default
            args.append(f"{f.name}=_d{i}")
            body.append(f"    _s{i}(o, {f.name})")
        elif f.default_factory is not dataclasses.MISSING:
            ns[f"_f{i}"] = f.default_factory
            args.append(f"{f.name}=_missing")
            body.append(f"    _s{i}(o, _f{i}() if {f.name} is _missing else {f.name})")
        else:
            args.append(f.name)
            body.append(f"    _s{i}(o, {f.name})")
    src = f"def make({', '.join(args)}):\n    o = _new(_cls)\n" + "\n".join(body) + "\n    return o\n"
    exec(src, ns)  # noqa: S102 - code built above from the dataclass's own field names
    make = ns["make"]
    make.__name__ = make.__qualname__ = f"new_{cls.__name__}"
    return make


new_op = fast_constructor(Op)  # Op(...) for the per-record paths
new_link = fast_constructor(Link)


# --- matching -----------------------------------------------------------------------------------------

class MatchIndex:
    """A local hash index of one side's records by normalised match keys (0 API calls).

    Records given to ``add_all`` are keyed when the index is first asked (``keyed``, ``lookup``): a run
    whose records are all linked (an echo, an incremental run) never normalises their keys."""

    def __init__(self, mapper: ModuleMapper, side: str):
        self.mapper = mapper
        self.side = side
        self.keys = [(getattr(k, side), key_kind(getattr(k, side), mapper.info(side, getattr(k, side)).kind))
                     for k in mapper.module.match]
        self._idx: list[dict[str, Any]] = [dict() for _ in self.keys]  # value -> id, or a list of ids when several
        self._norm = tuple((name, key_normaliser(kind), idx) for (name, kind), idx in zip(self.keys, self._idx))
        self.records: dict[str, Record] = {}
        self._pending: list[Record] = []  # added by add_all, not keyed yet (in the order added)

    def add(self, rec: Record, stored: Any = None) -> None:
        """Index ``rec`` (the first record added under an id stays); ``stored``: what ``records`` keeps
        for it instead of the record itself (the working set's compact form)."""
        if rec.id not in self.records:
            self.add_keyed(rec.id, self.key_values(rec.values), rec if stored is None else stored)

    def key_values(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The normalised match-key values of a record's ``values`` (one per key), for ``add_keyed``."""
        get = values.get
        return tuple(norm(get(name)) for name, norm, _ in self._norm)

    def add_keyed(self, rid: str, keys: tuple[Any, ...], stored: Any) -> None:
        """``add`` of a record held as ``stored`` whose ``key_values`` were read while it was at hand."""
        if rid in self.records:
            return
        if self._pending:  # keys in the order the records came
            self._key_pending()
        self.records[rid] = stored
        self._insert(rid, keys)

    def _insert(self, rid: str, keys: Iterable[Any]) -> None:
        for v, (_, _, idx) in zip(keys, self._norm):
            if v:
                hits = idx.get(v)
                if hits is None:
                    idx[v] = rid  # one id, no list: most keys are unique
                elif hits.__class__ is list:
                    hits.append(rid)
                else:
                    idx[v] = [hits, rid]

    def add_all(self, recs: Iterable[Record]) -> None:
        """``add`` of each record (kept as itself), in one loop; their keys are read when first needed."""
        records = self.records
        if not self._norm:
            for rec in recs:
                records.setdefault(rec.id, rec)
            return
        pending = self._pending
        for rec in recs:
            rid = rec.id
            if rid in records:
                continue
            records[rid] = rec
            pending.append(rec)

    def keyed(self) -> list[dict[str, Any]]:
        """The index per key (normalised value -> id, or a list of ids), every record added in it."""
        if self._pending:
            self._key_pending()
        return self._idx

    def _key_pending(self) -> None:
        pending, self._pending = self._pending, []
        if len(self._norm) != 1:
            for rec in pending:
                self._insert(rec.id, self.key_values(rec.values))
            return
        ((name, norm, idx),) = self._norm  # the usual single key, read inline (an e-mail's text in place)
        iget = idx.get
        email = self.keys[0][1] == "email"
        for rec in pending:
            rid = rec.id
            v = rec.values.get(name)
            v = v.strip().lower() if email and v.__class__ is str else norm(v)
            if v:
                hits = iget(v)
                if hits is None:
                    idx[v] = rid
                elif hits.__class__ is list:
                    hits.append(rid)
                else:
                    idx[v] = [hits, rid]

    def lookup(self, probe: list[str]) -> list[str]:
        """Candidates for normalised probe values (one per key, in order): the first key with hits decides."""
        keyed = self.keyed()
        for i, v in enumerate(probe):
            if v and i < len(keyed):
                hits = keyed[i].get(v)
                if hits:
                    return list(hits) if hits.__class__ is list else [hits]
        return []


def _probers(mapper: ModuleMapper, side: str) -> tuple[tuple[str, Any], ...]:
    key = ("probe", side)
    got = mapper.compiled.get(key)
    if got is None:
        got = mapper.compiled[key] = tuple(
            (getattr(k, side), key_normaliser(key_kind(getattr(k, side), mapper.info(side, getattr(k, side)).kind)))
            for k in mapper.module.match)
    return got


def right_at_base(m: ModuleMapper, values: Mapping[str, Any], link: Link, left_names: frozenset[str]) -> bool:
    """Whether a linked right record holds its link's merge base (every field the module reads on the
    right) while the link's left base holds no field the mapping stopped reading (``left_names``: the
    fields it reads on the left). Planning such a record gives no op, and a left partner planned
    without it gets the ops it gets beside it (``_merge`` takes the base for the record's values):
    tests/sync/test_plan_compiled.py checks both, property-style."""
    return m.snapshot("right", values) == link.right_values and link.left_values.keys() <= left_names


def probe_values(mapper: ModuleMapper, side: str, values: Mapping[str, Any]) -> list[str]:
    """Normalised match-key values of a record of ``side``, in the order of the module's keys."""
    get = values.get
    return [norm(get(name)) for name, norm in _probers(mapper, side)]


def _unreadable_key(mapper: ModuleMapper, side: str, values: Mapping[str, Any]) -> str | None:
    """The first match-key field holding a value no key can be read from (an object or a list where
    the app sends text): such a record is not "without a key" but unreadable, and creating it could
    duplicate the record it should have matched."""
    get = values.get
    for name, norm in _probers(mapper, side):
        raw = get(name)
        if isinstance(raw, (dict, list, tuple)) and raw and norm(raw) == "":
            return name
    return None


# --- planning -----------------------------------------------------------------------------------------

@dataclass(slots=True)
class PlanInput:
    """What the planner sees for one chunk of one module."""

    mapper: ModuleMapper
    changed: dict[str, dict[str, Record]]  # side -> id -> record (changed since the cursor)
    links: dict[str, dict[str, Link]]  # side -> id -> link, for every record id above (and matches)
    index: dict[str, MatchIndex | None]  # side -> index of that side's unlinked candidates
    deleted: dict[str, set[str]] = field(default_factory=dict)  # side -> ids deleted this run
    claimed: dict[str, set[str]] = field(default_factory=lambda: {"left": set(), "right": set()})
    ambiguous: dict[str, set[str]] = field(default_factory=lambda: {"left": set(), "right": set()})
    initial: bool = False


def _can_write(mapper: ModuleMapper, target: str) -> bool:
    return bool(mapper.flows[other(target)])


def _clean(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in (None, "", [])}


def _key_values(mapper: ModuleMapper, target: str, values: Mapping[str, Any],
                src: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    ck = ("keys", target)
    names = mapper.compiled.get(ck)
    if names is None:
        names = mapper.compiled[ck] = tuple((getattr(k, target), getattr(k, other(target))) for k in mapper.module.match)
    keys = []
    for name, src_name in names:
        v = values.get(name)
        if v is None or v == "":
            v = src.get(src_name)
        if v is not None and v != "":
            keys.append((name, v))
    if not keys:  # no match keys: the first written value identifies a pending create
        for name, v in values.items():
            if isinstance(v, (str, int, float)) and v not in ("",):
                keys.append((name, v))
                break
    return tuple(keys)


def plan_changes(inp: PlanInput, order: Iterable[str] = ("left", "right"),
                 done: dict[str, set[str]] | None = None, *, compiled: bool | None = None) -> list[Op]:
    """Ops for every changed record of the chunk, each record pair planned once (``done`` carries the
    ids already planned across the chunks of one module run). ``compiled``: through the module's
    generated planner (the same ops; False: every record through the general path; None: as
    ``SYNCFORM_PLAN_COMPILED`` says, default on)."""
    if compiled is None:
        compiled = COMPILED
    ops: list[Op] = []
    done = done if done is not None else {"left": set(), "right": set()}
    for side in order:
        recs = inp.changed.get(side)
        if not recs:
            continue
        fast = None
        if compiled:
            m = inp.mapper
            fast = m.compiled.get(("plan", side), False)
            if fast is False:  # generated once the run has planned enough records to repay it (~2-5 ms)
                seen = m.compiled[("seen", side)] = m.compiled.get(("seen", side), 0) + len(recs)
                after = COMPILE_AFTER if m.code_dir is None else COMPILE_CACHED
                fast = compiled_planner(m, side) \
                    if seen > after or (inp.initial and len(recs) >= COMPILE_PAGE) else None
        if fast is not None:
            fast(inp, recs, done, ops)
            continue
        for rid, rec in recs.items():
            if rid in done[side]:
                continue
            done[side].add(rid)
            ops.extend(_plan_record(inp, side, rec, done))
    return ops


_NONE: frozenset[str] = frozenset()


def _plan_record(inp: PlanInput, side: str, rec: Record, done: dict[str, set[str]]) -> list[Op]:
    m = inp.mapper
    osd = "right" if side == "left" else "left"
    deleted = inp.deleted
    if deleted and rec.id in deleted.get(side, _NONE):
        return []
    links = inp.links.get(side)
    link = links.get(rec.id) if links is not None else None
    if link is not None:
        partner = link.right_id if side == "left" else link.left_id
        if partner.startswith(TOMBSTONE):
            return [Op("skip", side, source_id=rec.id, code="PARTNER_DELETED",
                       message="its counterpart was deleted; it is never revived")]
        if deleted and partner in deleted.get(osd, _NONE):
            return []
        other_changed = inp.changed.get(osd)
        prec = other_changed.get(partner) if other_changed is not None else None
        if prec is not None:
            done[osd].add(partner)
        if side == "left":
            return _merge(inp, rec, prec, link)
        return _merge(inp, prec, rec, link)
    # unlinked: match by keys on the other side
    if rec.id in inp.ambiguous[side]:
        return []
    idx = inp.index.get(osd)
    cands: list[str] = []
    if idx is not None and m.module.match and (idx.records or idx.__class__ is not MatchIndex):
        cands = idx.lookup(probe_values(m, side, rec.values))
        if cands and deleted:
            gone = deleted.get(osd, _NONE)
            cands = [c for c in cands if c not in gone]
    if len(cands) > 1:
        inp.ambiguous[side].add(rec.id)
        inp.ambiguous[osd].update(cands)
        return [Op("fail", side, source_id=rec.id, code=AMBIGUOUS_MATCH,
                   message=f"matches {len(cands)} {m.mods[osd]} records on the {osd} "
                           f"({', '.join(sorted(cands)[:5])}); not guessing")]
    if len(cands) == 1:
        cid = cands[0]
        if cid in inp.ambiguous[osd]:
            return [Op("fail", side, source_id=rec.id, code=AMBIGUOUS_MATCH,
                       message=f"its match {cid} on the {osd} matches several records")]
        olinks = inp.links.get(osd)
        clink = olinks.get(cid) if olinks is not None else None
        if clink is not None or cid in inp.claimed[osd]:
            owner = (clink.left_id if osd == "right" else clink.right_id) if clink else "another record"
            if not m.flows[side]:
                # a duplicate on a side whose records flow nowhere in this module (the target of a
                # one-way sync): there is nothing of it to sync, so nothing failed and nothing to retry
                return [Op("skip", side, source_id=rec.id, code=ALREADY_LINKED,
                           message=f"a duplicate: its match {m.mods[osd]} {cid} is already linked with {owner}; "
                                   f"nothing flows from the {side} in this module, so it is left as it is")]
            return [Op("fail", side, source_id=rec.id, code=ALREADY_LINKED,
                       message=f"{m.mods[osd]} {cid} is already linked with {owner}")]
        inp.claimed[osd].add(cid)
        inp.claimed[side].add(rec.id)
        done[osd].add(cid)
        prec = idx.records[cid] if idx is not None else None
        if prec is None:
            return []
        if side == "left":
            return _merge(inp, rec, prec, None)
        return _merge(inp, prec, rec, None)
    # no match: create on the other side when the direction allows
    if not m.flows[side]:
        return []
    if m.module.match and not cands:
        bad = _unreadable_key(m, side, rec.values)
        if bad is not None:
            return [Op("fail", side, source_id=rec.id, code=INVALID_VALUE,
                       message=f"match key {bad} came as {'an object' if isinstance(rec.values[bad], dict) else 'a list'}"
                               f", not a value; not created, as it could duplicate the record it should match")]
    try:
        values = m.render_new(side, rec.values)
        missing = m.mandatory_missing(osd, values)
        if missing:
            raise MapError(MANDATORY_MISSING, f"mandatory field {missing} would be empty", missing)
    except MapError as exc:
        return [_not_mapped(side, rec.id, exc)]
    src_base = m.snapshot(side, rec.values)
    tgt_base = dict(values)  # == m.snapshot(osd, values): every rendered field is one the target side reads
    if side == "left":
        link = new_link(rec.id, "", src_base, tgt_base)
    else:
        link = new_link("", rec.id, tgt_base, src_base)
    inp.claimed[side].add(rec.id)
    return [new_op("create", osd, source_id=rec.id, values=values, keys=_key_values(m, osd, values, rec.values),
                   link=link, pair=f"{side}:{rec.id}")]


def _not_mapped(side: str, source_id: str | None, exc: MapError) -> Op:
    """A record whose values cannot be mapped: skipped while its parent is not synced, else failed."""
    return Op("skip" if exc.code == PARENT_NOT_SYNCED else "fail", side, source_id=source_id, code=exc.code,
              message=exc.message)


def _render_changed(m: ModuleMapper, src: str, now: Mapping[str, Any], changed: Iterable[str] | None,
                    first: bool, out: dict[str, Any], origin: dict[str, tuple[str, ...]] | None = None) -> None:
    """Desired target values from the flows of ``src`` whose source fields changed (``changed`` None:
    all of them, as for a first match; the parent reference too on a first match)."""
    if first and m.parent is not None:
        out.update(m.parent_values(src, now))
    if origin is None:
        m.render_into(src, now, out, changed if changed is not None else None)
        return
    for fl in m.flows[src]:  # the slow path, with the origin of each value (conflicts left to 'skip')
        if not m.applies(fl, now):
            continue
        if changed is not None:
            if fl.src and not (set(fl.src) & set(changed)):
                continue
            if not fl.src and not changed:
                continue
        for t, v in m.render_flow(src, fl, now).items():
            out[t] = v
            origin[t] = fl.src


def _writes(m: ModuleMapper, tgt: str, want: dict[str, Any], cur: Mapping[str, Any], changed: Any,
            first: bool, conflicts: list[tuple[str, str]]) -> dict[str, Any]:
    """The desired values of ``tgt`` that differ from what it holds; a target field that changed on
    ``tgt`` too (two-way) is a conflict instead. ``want`` loses the empty values a first match would
    write over a value."""
    out: dict[str, Any] = {}
    if not want:
        return out
    same = m.same
    two_way = m.sources(tgt)
    for t in list(want):
        v = want[t]
        c = cur.get(t)
        if v == c or same(tgt, t, v, c):
            continue
        if t in changed and t in two_way:
            if first:  # first match: fill what is empty, never erase a value with an empty one
                if m.empty(tgt, t, c):
                    out[t] = v
                    continue
                if m.empty(tgt, t, v):
                    del want[t]
                    continue
            conflicts.append((tgt, t))
            continue
        out[t] = v
    return out


def _merge(inp: PlanInput, lrec: Record | None, rrec: Record | None, link: Link | None) -> list[Op]:
    """Three-way merge of one linked (or just matched) pair."""
    m = inp.mapper
    first = link is None
    if link is not None:
        lb: Mapping[str, Any] | None = link.left_values
        rb: Mapping[str, Any] | None = link.right_values
        lnow = lrec.values if lrec is not None else link.left_values
        rnow = rrec.values if rrec is not None else link.right_values
        lsnap: dict[str, Any] | None = m.snapshot("left", lnow)
        rsnap: dict[str, Any] | None = m.snapshot("right", rnow)
        if lsnap == lb and rsnap == rb:
            # both sides hold exactly their merge base: nothing changed, nothing to write or refresh
            # (the echo of our own writes and the unchanged rerun)
            return []
        lid = lrec.id if lrec is not None else link.left_id
        rid = rrec.id if rrec is not None else link.right_id
        lch: Any = m.changed_fields("left", lnow, lb) if lrec is not None else _NONE
        rch: Any = m.changed_fields("right", rnow, rb) if rrec is not None else _NONE
        lonly, ronly = lch, rch
    else:
        lb = rb = lsnap = rsnap = None
        lnow = lrec.values if lrec is not None else {}
        rnow = rrec.values if rrec is not None else {}
        lid = lrec.id if lrec is not None else ""
        rid = rrec.id if rrec is not None else ""
        lch = m.field_set("left") if lrec is not None else _NONE
        rch = m.field_set("right") if rrec is not None else _NONE
        lonly = None if lch else lch  # None: every flow (a first match renders them all)
        ronly = None if rch else rch
    # desired target values per side, from flows whose source fields changed
    want_r: dict[str, Any] = {}
    want_l: dict[str, Any] = {}
    try:
        if lrec is not None:
            _render_changed(m, "left", lnow, lonly, first, want_r)
    except MapError as exc:
        return [_not_mapped("left", lid, exc)]
    try:
        if rrec is not None:
            _render_changed(m, "right", rnow, ronly, first, want_l)
    except MapError as exc:
        return [_not_mapped("right", rid, exc)]
    # conflicts: a target field whose own value changed too (both sides changed the same field map)
    conflicts: list[tuple[str, str]] = []  # (target side, target field)
    wl = _writes(m, "left", want_l, lnow, lch, first, conflicts)
    wr = _writes(m, "right", want_r, rnow, rch, first, conflicts)
    ops: list[Op] = []
    kept_l: set[str] = set()
    kept_r: set[str] = set()
    if conflicts:
        writes = {"left": wl, "right": wr}
        desired = {"left": want_l, "right": want_r}
        policy = m.module.conflict
        if link is None and policy == "skip":
            winner = None
        elif policy == "left-wins":
            winner = "left"
        elif policy == "right-wins":
            winner = "right"
        elif policy == "latest":
            lm = lrec.modified if lrec else datetime.min
            rm = rrec.modified if rrec else datetime.min
            winner = "left" if (lrec and (rrec is None or lm >= rm)) else "right"
        else:
            winner = None
        fields_ = tuple(sorted([f"{s}.{t}" for s, t in conflicts]))
        ids = {"left": lid, "right": rid}
        if winner is None:
            if link is not None:
                origin: dict[str, dict[str, tuple[str, ...]]] = {"left": {}, "right": {}}
                if lrec is not None:  # which source fields each conflicting value came from
                    _render_changed(m, "left", lnow, lch, False, {}, origin["right"])
                if rrec is not None:
                    _render_changed(m, "right", rnow, rch, False, {}, origin["left"])
                kept = {"left": kept_l, "right": kept_r}
                for s, t in conflicts:
                    kept[s].add(t)
                    for src_f in origin[s].get(t, ()):
                        kept[other(s)].add(src_f)
                ops.append(Op("conflict", "left", source_id=lid, target_id=rid,
                              code=CONFLICT_SKIPPED, fields=fields_,
                              message=f"both sides changed {', '.join(fields_)}; skipped (policy skip)"))
        else:
            loser = other(winner)
            for s, t in conflicts:
                if s == loser:
                    writes[s][t] = desired[s][t]
            what = "both sides changed" if link is not None else "the matched records differ in"
            ops.append(new_op("conflict", loser, source_id=ids[winner], target_id=ids[loser], code=policy,
                          fields=fields_, message=f"{what} {', '.join(fields_)}; {winner} wins ({policy})"))
    # the new merge base: current values plus what we write
    if wl or kept_l:
        nl = _new_base(m, "left", lsnap, lnow, wl, kept_l, lb)
    else:
        nl = lsnap if lsnap is not None else m.snapshot("left", lnow)
    if wr or kept_r:
        nr = _new_base(m, "right", rsnap, rnow, wr, kept_r, rb)
    else:
        nr = rsnap if rsnap is not None else m.snapshot("right", rnow)
    link_ = new_link(lid, rid, nl, nr)
    pair = f"pair:{lid}:{rid}"
    if wl:
        ops.append(new_op("update", "left", source_id=rid, target_id=lid, values=wl, link=link_, pair=pair))
    if wr:
        ops.append(new_op("update", "right", source_id=lid, target_id=rid, values=wr, link=link_, pair=pair))
    if link is None:
        ops.append(new_op("link", "right", source_id=lid, target_id=rid, link=link_, pair=pair))
    elif not wl and not wr and (link.left_values != nl or link.right_values != nr):
        ops.append(new_op("link", "right", source_id=lid, target_id=rid, link=link_, pair=pair, code="refresh"))
    return ops


def _new_base(m: ModuleMapper, s: str, snap: dict[str, Any] | None, now: Mapping[str, Any], writes: dict[str, Any],
              kept: set[str], base: Mapping[str, Any] | None) -> dict[str, Any]:
    nb = snap if snap is not None else m.snapshot(s, now)
    if writes:
        fs = m.field_set(s)
        for k, v in writes.items():
            if k in fs:
                nb[k] = v
    for t in kept:
        if base is not None and t in base:
            nb[t] = base[t]
        else:
            nb.pop(t, None)
    return nb


def comparable_empty(m: ModuleMapper, side: str, name: str, value: Any) -> bool:
    return m.empty(side, name, value)


def plan_deletes(mapper: ModuleMapper, deleted: Mapping[str, Iterable[str]], links: Mapping[str, Mapping[str, Link]],
                 associates: Mapping[tuple[str, str], int]) -> list[Op]:
    """Deletes from the apps' deleted feeds → delete / unlink the partner per the delete preference.

    ``associates``: (side, id) -> live count, for partners under ``delete-if-no-associates``.
    Deletes are never inferred from a record's absence in a read.
    """
    mod = mapper.module
    ops: list[Op] = []
    both = {s: set(deleted.get(s, ())) for s in ("left", "right")}
    for side in ("left", "right"):
        osd = other(side)
        pref = mod.on_delete_left if side == "left" else mod.on_delete_right
        for rid in sorted(both[side]):
            link = links.get(side, {}).get(rid)
            if link is None:
                continue
            partner = link.right_id if side == "left" else link.left_id
            if partner.startswith(TOMBSTONE):
                continue
            if partner in both[osd]:  # both gone: just forget the link
                if side == "left":
                    ops.append(Op("unlink", osd, source_id=rid, target_id=partner, code="both-deleted"))
                continue
            action = pref if _can_write(mapper, osd) else "unlink"
            if action == "delete-if-no-associates":
                n = associates.get((osd, partner), 0)
                action = "unlink" if n > 0 else "delete"
                why = f"{n} associate(s)" if n else "no associates"
            else:
                why = f"on_delete {pref}"
            if action == "delete":
                ops.append(Op("delete", osd, source_id=rid, target_id=partner, message=why))
            else:
                ops.append(Op("unlink", osd, source_id=rid, target_id=partner, message=why))
    return ops


# --- the compiled page planner ---------------------------------------------------------------------
#
# ``plan_changes`` plans most records through one function per module and side, generated once from
# the mapping (source built below and exec'd): the checks of ``_plan_record``, the match-key probe, the
# rendering, the comparison with the merge base and the op in one pass, field by field, with no call
# per field. It covers the common cases: a create (no link, no candidate), a linked record whose two
# sides still hold their merge base (the echo of our writes, an unchanged rerun), a linked record
# edited on its side alone (its partner not read: the update of the fields that changed, a 1 % edit)
# and a first match whose records agree on every mapped field. Any other record (a conflict, a change
# on both sides, a tombstone, a value that does not convert, an ambiguous or claimed candidate, a
# missing mandatory field...) is handed to ``_plan_record`` with nothing changed yet, so it gets
# exactly the ops of the general path (checked property-style in tests/sync/test_plan_compiled.py).
# A module with a parent reference or a field written by two flows takes the general path for every
# record.

# Compiling a generated planner is ~85 % of generating it (~2 ms of ~2.5 per side), and a scheduler
# starts a process per run: the code objects are kept, like Python's own __pycache__, in the run's
# ``code_dir`` (the state's cache directory) as marshal files named by a hash of the interpreter's
# bytecode version, the code's name and its source, and in this process. A file that is missing,
# damaged or from another Python is a miss: the source is compiled and the file written again.
_CODE: dict[str, Any] = {}
_CODE_MAX = 256  # code objects kept in one process (a long-lived process sees each spec edit's)
# a cache directory drops, whenever a planner is written, the files not read for _FILES_DAYS (those of
# specs since edited) and, past _FILES_MAX files, the least recently used
_FILES_DAYS = 30
_FILES_MAX = 4096
_MAGIC = b"syncform-plan-1 " + sys.implementation.cache_tag.encode() + b" " + MAGIC_NUMBER


def _code(source: str, name: str, directory: str | None) -> Any:
    """The code object of ``source`` (compiled as ``name``), from the caches when they hold it."""
    digest = hashlib.sha256(_MAGIC + name.encode() + b"\0" + source.encode()).digest()
    key = digest.hex()
    code = _CODE.get(key)
    if code is not None:
        return code
    path = os.path.join(directory, f"plan-{key[:40]}.code") if directory else None
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
            if data[:32] == digest:
                code = marshal.loads(data[32:])
                if code.__class__ is not CodeType or code.co_filename != name:
                    code = None
        except (OSError, ValueError, EOFError, TypeError):
            code = None
    if code is None:
        code = compile(source, name, "exec")
        if path is not None:
            _write_code(path, digest + marshal.dumps(code))
    if len(_CODE) >= _CODE_MAX:
        _CODE.clear()
    _CODE[key] = code
    return code


def _write_code(path: str, data: bytes) -> None:
    """Write a planner cache file whole (a temporary file renamed over it) in a directory only its
    owner can enter; a directory that cannot be written only costs the next run a compile."""
    tmp = f"{path}.{os.getpid()}-{threading.get_ident()}.tmp"  # no two writers share one
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return
    _prune(os.path.dirname(path))


def _prune(directory: str) -> None:
    """Remove the planner files of ``directory`` unused for ``_FILES_DAYS`` days, then the least
    recently used past ``_FILES_MAX`` (used: read or written, as the file system's access times say)."""
    import time

    try:
        now = time.time()
        with os.scandir(directory) as it:
            entries = [(e.name, e.path, e.stat()) for e in it if e.name.startswith("plan-")]
        for name, path, st in entries:  # a writer killed mid-write leaves its temporary file
            if name.endswith(".tmp") and st.st_mtime < now - 86400:
                os.unlink(path)
        files = sorted((max(st.st_atime, st.st_mtime), path) for name, path, st in entries if name.endswith(".code"))
        stale = now - _FILES_DAYS * 86400
        for k, (used, old) in enumerate(files):
            if used < stale or k < len(files) - _FILES_MAX:
                os.unlink(old)
    except OSError:
        pass


def _none_get(key: Any, default: Any = None) -> Any:
    return default


class _Src:
    """Source lines with indentation."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def __call__(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)

    def block(self, lines: str) -> None:
        for ln in lines.strip("\n").splitlines():
            self(ln)


def _compile_side(m: ModuleMapper, side: str) -> Any:
    """The generated planner of the changed records of ``side`` (None: every record takes the general path)."""
    from operator import itemgetter

    osd = other(side)
    names = {s: m.fields(s) for s in ("left", "right")}
    if m.parent is not None or not names["left"] or not names["right"]:
        return None
    flat: dict[str, Any] = {}
    for s in ("left", "right"):
        m._compiled(s)
        flat[s] = m._flat[s] if m._flat_unique[s] else None
    ns: dict[str, Any] = {
        "NONE": _NONE, "none_get": _none_get, "MatchIndex": MatchIndex, "MapError": MapError,
        "slow": _plan_record, "new_op": new_op, "new_link": new_link, "snapshot": m.snapshot,
        "convert": m._convert, "key_values": _key_values, "m": m,
    }
    if flat["left"] is not None and flat["right"] is not None:
        ns["first_match"] = _first_match_for(m)
    for s in ("left", "right"):  # G_side(values): the values of every field read, a tuple (KeyError if one is missing)
        ns[f"G_{s}"] = itemgetter(*names[s]) if len(names[s]) > 1 else (lambda v, _n=names[s][0]: (v[_n],))
        ns[f"N_{s}"] = names[s]
    src = _Src()
    add = src
    pos = {s: {n: k for k, n in enumerate(names[s])} for s in ("left", "right")}
    prefix = {side: "f", osd: "o"}  # the locals holding a record's field values: f<k> (this side), o<k> (the other)

    def val(s: str, name: str) -> str:
        """The local that holds field ``name`` of the record of ``s`` (every field read is one)."""
        return f"{prefix[s]}{pos[s][name]}"

    def unpack(s: str, vals: str, tup: str, part: str) -> None:
        """The field values of a record of ``s`` into its locals; ``part``: a field is missing (then
        its snapshot is not the tuple's)."""
        src.block(f"""
try:
    {tup} = G_{s}({vals})
    {part} = False
except KeyError:
    {tup} = tuple(map({vals}.get, N_{s}))
    {part} = True
""")

    def const(prefix: str, value: Any) -> str:
        name = f"{prefix}{len(ns)}"
        ns[name] = value
        return name

    def snap(s: str, vals: str, tup: str, part: str, out: str) -> None:
        add(f"{out} = snapshot({s!r}, {vals}) if {part} else dict(zip(N_{s}, {tup}))")

    def rendered(s: str, entry: Any, var: str) -> None:
        """``var`` = the value a flow of ``s`` renders for one flat entry (as ``render_into``)."""
        s_name, t_name, plain, fl = entry
        flc = const("FL", fl)
        add(f"{var} = {val(s, s_name)}")
        if plain:
            add(f"if {var} is None or {var}.__class__ is str:")
            add(f"    {var} = {var} or None")
            add("else:")
            add(f"    {var} = convert({s!r}, {s_name!r}, {t_name!r}, {var}, {flc})")
        else:
            add(f"{var} = convert({s!r}, {s_name!r}, {t_name!r}, {var}, {flc})")

    # a linked record changed on this side alone (its partner not read in this run): as _merge of it,
    # the flows whose source fields changed rendered and compared with the partner's merge base (what
    # the partner holds); the update of those that differ, or the merge base refreshed when none does
    edit_ok = flat[side] is not None and all(e[1] in pos[osd] for e in flat[side])

    def edit_source() -> str:
        """``edit(i, p, ts, tb, ob, append)``: the ops of record ``i`` (field values ``ts``, its merge base
        ``tb``) whose partner ``p`` holds its merge base ``ob``; compiled at a run's first edit (a
        first sync has none). Raises KeyError / MapError for the general path."""
        fs_o = const("FS", m.field_set(osd))
        lid, rid_ = ("i", "p") if side == "left" else ("p", "i")
        lvals, rvals = ("ts", "to") if side == "left" else ("to", "ts")
        kept, src.lines, src.depth = src.lines, [], 0
        add("def edit(i, p, ts, tb, ob, append):")
        src.depth = 1
        add(f"to = G_{osd}(ob)")
        add(f"({''.join(f'f{k}, ' for k in range(len(names[side])))}) = ts")
        add(f"({''.join(f'b{k}, ' for k in range(len(names[side])))}) = tb")
        add(f"({''.join(f'o{k}, ' for k in range(len(names[osd])))}) = to")
        add("w = None")
        groups: list[list[Any]] = []  # the flat entries of each flow, in the flows' order
        for entry in flat[side]:
            if groups and groups[-1][0][3] is entry[3]:
                groups[-1].append(entry)
            else:
                groups.append([entry])
        flags: dict[str, str] = {}
        for group in groups:  # a flow is rendered when one of its source fields changed (as render_into)
            for s_name in dict.fromkeys(e[0] for e in group):
                if s_name in flags:
                    continue
                k = pos[side][s_name]
                nc = const("CMP", m._cmp.get((side, s_name)) or m._comparer(side, s_name))
                flags[s_name] = f"c{k}"
                add(f"c{k} = not (f{k} == b{k} or {nc}(f{k}) == {nc}(b{k}))")
            add(f"if {' or '.join(flags[n] for n in dict.fromkeys(e[0] for e in group))}:")
            src.depth += 1
            for entry in group:
                t_name = entry[1]
                nc = const("CMP", m._cmp.get((osd, t_name)) or m._comparer(osd, t_name))
                rendered(side, entry, "v")
                add(f"c = {val(osd, t_name)}")
                add(f"if not (v == c or {nc}(v) == {nc}(c)):")
                add("    if w is None:")
                add("        w = {}")
                add(f"    w[{t_name!r}] = v")
            src.depth -= 1
        add(f"lid = {lid}")
        add(f"rid_ = {rid_}")
        add("if w is None:  # nothing to write: the new merge base of this side (what it holds now)")
        add(f"    lk = new_link(lid, rid_, dict(zip(N_left, {lvals})), dict(zip(N_right, {rvals})))")
        add("    append(new_op('link', 'right', lid, rid_, {}, (), 'refresh', '', lk, f'pair:{lid}:{rid_}'))")
        add("    return")
        add(f"nb = dict(zip(N_{osd}, to))")
        add("for k, v in w.items():")
        add(f"    if k in {fs_o}:")
        add("        nb[k] = v")
        if side == "left":
            add("lk = new_link(lid, rid_, dict(zip(N_left, ts)), nb)")
        else:
            add("lk = new_link(lid, rid_, nb, dict(zip(N_right, ts)))")
        add(f"append(new_op('update', {osd!r}, i, p, w, (), '', '', lk, f'pair:{{lid}}:{{rid_}}'))")
        code = "\n".join(src.lines) + "\n"
        src.lines, src.depth = kept, 0
        return code

    if edit_ok:
        edit_code = edit_source()

        def load_edit() -> None:
            exec(_code(edit_code, f"<plan {m.module.name} {side} edit>", m.code_dir), ns)  # noqa: S102 - built above
            ns["edit"].source = edit_code

        def edit(*args: Any) -> None:  # the first edit compiles the generated one, which replaces this
            load_edit()
            ns["edit"](*args)

        ns["edit"] = edit
        if m.code_dir is not None:  # kept between runs: compiled with the rest, for the runs that edit
            load_edit()

    keys = [(getattr(k, side), getattr(k, osd)) for k in m.module.match]
    probers = _probers(m, side)
    add("def plan_side(inp, recs, done, ops):")
    src.depth = 1
    src.block(f"""
append = ops.append
extend = ops.extend
done_s = done[{side!r}]
done_o = done[{osd!r}]
deleted = inp.deleted
gone_s = deleted.get({side!r}, NONE) if deleted else NONE
gone_o = deleted.get({osd!r}, NONE) if deleted else NONE
links_s = inp.links.get({side!r})
links_s_get = links_s.get if links_s is not None else none_get
links_o = inp.links.get({osd!r})
links_o_get = links_o.get if links_o is not None else none_get
och = inp.changed.get({osd!r})
och_get = och.get if och is not None else none_get
amb_s = inp.ambiguous[{side!r}]
amb_o = inp.ambiguous[{osd!r}]
cl_s = inp.claimed[{side!r}]
cl_o = inp.claimed[{osd!r}]
idx = inp.index.get({osd!r})
probe = {bool(keys)} and idx is not None and bool(idx.records or idx.__class__ is not MatchIndex)
lookup = None
if probe:
    orecs = idx.records
    if idx.__class__ is not MatchIndex or len(idx.keys) != {len(keys)}:
        lookup = idx.lookup
keyed = None  # the index's keys, asked at the first record to match (an echo never asks)
""")
    add("for rid, rec in recs.items():")
    src.depth = 2
    src.block(f"""
if rid in done_s:
    continue
done_s.add(rid)
i = rec.id
if i in gone_s:
    continue
vals = rec.values
try:
    ts = G_{side}(vals)
    part = False
except KeyError:
    ts = tuple(map(vals.get, N_{side}))
    part = True
link = links_s_get(i)
if link is not None:
    p = link.{osd}_id
    if not p.startswith({TOMBSTONE!r}):
        if p in gone_o:
            continue
        prec = och_get(p)
        if prec is not None:
            done_o.add(p)
        b = link.{side}_values
        ob = link.{osd}_values
        try:
            if not part and len(b) == {len(names[side])} and len(ob) == {len(names[osd])}:
                tb = G_{side}(b)
                if ts == tb:
                    if prec is None:
                        G_{osd}(ob)  # every field in the base (else its snapshot differs from it)
                        continue
                    if G_{osd}(prec.values) == G_{osd}(ob):
                        continue
""")
    src.depth = 6
    if edit_ok:
        add("elif prec is None:")
        add("    edit(i, p, ts, tb, ob, append)")
        add("    continue")
    src.depth = 2
    src.block(f"""
        except (KeyError, MapError):
            pass
    extend(slow(inp, {side!r}, rec, done))
    continue
if i in amb_s:
    continue
""")
    add(f"({''.join(f'f{k}, ' for k in range(len(names[side])))}) = ts")
    # the raw match keys: text or nothing, else the general path (unreadable keys, other normalisers)
    for k, (kname, _norm) in enumerate(probers):
        add(f"k{k} = {val(side, kname)}")
        add(f"if k{k} is not None and k{k}.__class__ is not str:")
        add("    extend(slow(inp, %r, rec, done))" % side)
        add("    continue")
    add("cid = None")
    if keys:
        add("if probe:")
        src.depth = 3
        for k, (_kname, norm) in enumerate(probers):
            add(f"p{k} = {const('NORM', norm)}(k{k}) if k{k} else ''")
        add("if lookup is not None:")
        add(f"    c = lookup([{', '.join(f'p{k}' for k in range(len(keys)))}])")
        add("    if len(c) > 1:")
        add(f"        extend(slow(inp, {side!r}, rec, done))")
        add("        continue")
        add("    if c:")
        add("        cid = c[0]")
        add("else:")
        add("    if keyed is None:")
        add("        keyed = idx.keyed()")
        for k in range(len(keys)):
            add(f"        ix{k} = keyed[{k}].get")
        for k in range(len(keys)):
            add(f"    if {'not cid and ' if k else ''}p{k}:")
            add(f"        cid = ix{k}(p{k})")
        add("    if not cid:  # no key with hits")
        add("        cid = None")
        add("    elif cid.__class__ is not str:  # several records hold the key")
        add(f"        extend(slow(inp, {side!r}, rec, done))")
        add("        continue")
        add("if cid is not None:")
        src.depth = 4
        match_ok = flat["left"] is not None and flat["right"] is not None
        if match_ok:
            src.block(f"""
prec = None
if cid not in gone_o and cid not in amb_o and links_o_get(cid) is None and cid not in cl_o:
    prec = orecs.get(cid)
if prec is None:
    extend(slow(inp, {side!r}, rec, done))
    continue
ov = prec.values
""")
            unpack(osd, "ov", "to", "opart")
            add(f"({''.join(f'o{k}, ' for k in range(len(names[osd])))}) = to")
            add("try:")
            src.depth = 5
            # as _merge of a first match: each side's flows rendered in full and compared with what the
            # other side holds; any difference (a write, a conflict, an empty to fill) -> general path
            lvals, rvals = ("vals", "ov") if side == "left" else ("ov", "vals")
            add("dl = dr = None")

            def compare(s: str, entry: Any) -> None:
                tgt = other(s)
                d = "dr" if tgt == "right" else "dl"
                t_name = entry[1]
                norm = m._cmp.get((tgt, t_name)) or m._comparer(tgt, t_name)
                nc = const("CMP", norm)
                rendered(s, entry, "v")
                add(f"c = {val(tgt, t_name)}")
                add(f"if not (v == c or {nc}(v) == {nc}(c)):")
                add(f"    if {d} is None:")
                add(f"        {d} = []")
                add(f"    {d}.append(({t_name!r}, v, c))")

            fl_l, fl_r = flat["left"], flat["right"]
            if len(fl_l) == len(fl_r) and all(a[0] == b[1] and a[1] == b[0] and a[2] and b[2]
                                              for a, b in zip(fl_l, fl_r)):
                # every field two-way, text both ways, in the same order: a pair holding the same text
                # on both sides renders to what the other side holds, both ways (one test for the two)
                for a, b in zip(fl_l, fl_r):
                    add(f"a = {val('left', a[0])}")
                    add(f"b = {val('right', a[1])}")
                    add("if not (a and a.__class__ is str and a == b):")
                    src.depth += 1
                    ka, kb = m.info("left", a[0]).kind, m.info("right", a[1]).kind
                    if ka == kb:
                        # the same kind both sides: two texts compare alike both ways (one normal form each)
                        nc = const("CMP", m._cmp.get(("right", a[1])) or m._comparer("right", a[1]))
                        add("if a and b and a.__class__ is str and b.__class__ is str:")
                        add(f"    if not {nc}(a) == {nc}(b):")
                        add("        if dr is None:")
                        add("            dr = []")
                        add(f"        dr.append(({a[1]!r}, a, b))")
                        add("        if dl is None:")
                        add("            dl = []")
                        add(f"        dl.append(({a[0]!r}, b, a))")
                        add("else:")
                        src.depth += 1
                    compare("left", a)
                    compare("right", b)
                    src.depth -= 2 if ka == kb else 1
            else:
                for entry in fl_l:
                    compare("left", entry)
                for entry in fl_r:
                    compare("right", entry)
            src.depth = 4
            lrec_, rrec_ = ("rec", "prec") if side == "left" else ("prec", "rec")
            src.block(f"""
except MapError:
    extend(slow(inp, {side!r}, rec, done))
    continue
if dl is not None or dr is not None:
    cl_o.add(cid)
    cl_s.add(i)
    done_o.add(cid)
    extend(first_match({lrec_}, {rrec_}, dl, dr))
    continue
""")
            if side == "left":
                snap("left", "vals", "ts", "part", "ls")
                snap("right", "ov", "to", "opart", "rs")
            else:
                snap("left", "ov", "to", "opart", "ls")
                snap("right", "vals", "ts", "part", "rs")
            lid, rid_ = ("i", "prec.id") if side == "left" else ("prec.id", "i")
            src.block(f"""
lid = {lid}
rid_ = {rid_}
lk = new_link(lid, rid_, ls, rs)
cl_o.add(cid)
cl_s.add(i)
done_o.add(cid)
append(new_op("link", "right", lid, rid_, {{}}, (), "", "", lk, f"pair:{{lid}}:{{rid_}}"))
continue
""")
        else:
            add(f"extend(slow(inp, {side!r}, rec, done))")
            add("continue")
    # no match: a create on the other side
    src.depth = 2
    if not m.flows[side]:
        add("continue")
    elif flat[side] is None:
        add(f"extend(slow(inp, {side!r}, rec, done))")
    else:
        add("try:")
        src.depth = 3
        add("out = {}")
        for entry in flat[side]:
            s_name, t_name, plain, fl = entry
            flc = const("FL", fl)
            add(f"v = {val(side, s_name)}")
            if plain:
                add("if v is None or v.__class__ is str:")
                add("    if v:")
                add(f"        out[{t_name!r}] = v")
                add("else:")
                add(f"    v = convert({side!r}, {s_name!r}, {t_name!r}, v, {flc})")
                add("    if v is not None and v != '' and v != []:")
                add(f"        out[{t_name!r}] = v")
            else:
                add(f"v = convert({side!r}, {s_name!r}, {t_name!r}, v, {flc})")
                add("if v is not None and v != '' and v != []:")
                add(f"    out[{t_name!r}] = v")
        m.mandatory_missing(osd, {})  # fills the mandatory names of the target once
        for name in m._mandatory.get(osd) or ():
            add(f"if {name!r} not in out:")
            add("    raise MapError('', '')")
        src.depth = 2
        src.block(f"""
except MapError:
    extend(slow(inp, {side!r}, rec, done))
    continue
""")
        snap(side, "vals", "ts", "part", "sb")
        if side == "left":
            add("lk = new_link(i, '', sb, dict(out))")
        else:
            add("lk = new_link('', i, dict(out), sb)")
        add("cl_s.add(i)")
        if keys:
            add("kv = []")
            for tname, sname in ((getattr(k, osd), getattr(k, side)) for k in m.module.match):
                add(f"v = out.get({tname!r})")
                add("if v is None or v == '':")
                add(f"    v = {val(side, sname)}")
                add("if v is not None and v != '':")
                add(f"    kv.append(({tname!r}, v))")
            add("kv = tuple(kv) if kv else key_values(m, %r, out, vals)" % osd)
        else:
            add(f"kv = key_values(m, {osd!r}, out, vals)")
        add(f"append(new_op('create', {osd!r}, i, None, out, kv, '', '', lk, f'{side}:{{i}}'))")
    code = "\n".join(src.lines) + "\n"
    exec(_code(code, f"<plan {m.module.name} {side}>", m.code_dir), ns)  # noqa: S102 - built above from the mapping
    fn = ns["plan_side"]
    fn.source = code
    return fn


def _first_match_for(m: ModuleMapper) -> Any:
    """``first_match(lrec, rrec, dl, dr)``: ``_merge`` of a first match (both records, no link) whose
    rendered values differ from what the other side holds in the fields of ``dl`` / ``dr`` ((target
    field, desired, current), in the flows' order) and agree in all others: the same writes, conflict
    and link (a field that agrees writes nothing and cannot conflict). The mapper's sets, getters and
    policy are looked up once."""
    from operator import itemgetter

    from engine.sync.mapping import _NOT_PLAIN

    changed = {s: m.field_set(s) for s in ("left", "right")}
    two_way = {s: m.sources(s) for s in ("left", "right")}
    both = {s: changed[s] & two_way[s] for s in ("left", "right")}
    empty = m.empty
    policy = m.module.conflict
    names = {s: m.fields(s) for s in ("left", "right")}
    getters = {s: itemgetter(*names[s]) if len(names[s]) > 1 else None for s in ("left", "right")}
    text = {s: frozenset(n for n in both[s] if m.info(s, n).kind not in _NOT_PLAIN) for s in ("left", "right")}
    snapshot = m.snapshot
    both_l, both_r, text_l, text_r = both["left"], both["right"], text["left"], text["right"]
    fs_l, fs_r = changed["left"], changed["right"]
    names_l, names_r, get_l, get_r = names["left"], names["right"], getters["left"], getters["right"]

    def snap(s: str, values: Mapping[str, Any], names_: tuple[str, ...], get: Any) -> dict[str, Any]:
        if get is not None:
            try:
                return dict(zip(names_, get(values)))
            except KeyError:
                pass
        return snapshot(s, values)

    def first_match(lrec: Record, rrec: Record, dl: list[tuple[str, Any, Any]] | None,
                    dr: list[tuple[str, Any, Any]] | None) -> list[Op]:
        conflicts: list[tuple[str, str]] = []
        wl: dict[str, Any] = {}
        wr: dict[str, Any] = {}
        for tgt, diffs, out, two, txt in (("left", dl, wl, both_l, text_l), ("right", dr, wr, both_r, text_r)):
            if not diffs:
                continue
            for t, v, c in diffs:
                if t in two:
                    # first match: fill what is empty, never erase a value with an empty one (a text
                    # value that is not "" is never empty)
                    if c is None or c == "" or not (c.__class__ is str and t in txt) and empty(tgt, t, c):
                        out[t] = v
                    elif (v.__class__ is str and v != "" and t in txt) or not empty(tgt, t, v):
                        conflicts.append((tgt, t))
                    continue
                out[t] = v
        lid, rid = lrec.id, rrec.id
        ops: list[Op] = []
        if conflicts:
            if policy == "left-wins":
                winner: str | None = "left"
            elif policy == "right-wins":
                winner = "right"
            elif policy == "latest":
                winner = "left" if lrec.modified >= rrec.modified else "right"
            else:
                winner = None  # skip: a first match writes neither value and says nothing
            if winner is not None:
                if winner == "left":
                    loser, lw, diffs = "right", wr, dr
                else:
                    loser, lw, diffs = "left", wl, dl
                desired = {t: v for t, v, _ in diffs or ()}
                for s, t in conflicts:
                    if s == loser:
                        lw[t] = desired[t]
                fields_ = tuple(sorted([f"{s}.{t}" for s, t in conflicts]))
                ops.append(new_op("conflict", loser, lid if winner == "left" else rid,
                                  rid if winner == "left" else lid, {}, (), policy,
                                  f"the matched records differ in {', '.join(fields_)}; {winner} wins ({policy})",
                                  None, "", fields_))
        nl = snap("left", lrec.values, names_l, get_l)
        if wl:
            for k, v in wl.items():
                if k in fs_l:
                    nl[k] = v
        nr = snap("right", rrec.values, names_r, get_r)
        if wr:
            for k, v in wr.items():
                if k in fs_r:
                    nr[k] = v
        link_ = new_link(lid, rid, nl, nr)
        pair = f"pair:{lid}:{rid}"
        if wl:
            ops.append(new_op("update", "left", rid, lid, wl, (), "", "", link_, pair))
        if wr:
            ops.append(new_op("update", "right", lid, rid, wr, (), "", "", link_, pair))
        ops.append(new_op("link", "right", lid, rid, {}, (), "", "", link_, pair))
        return ops

    return first_match


def compiled_planner(m: ModuleMapper, side: str) -> Any:
    """The generated planner of ``side``'s changed records for ``m`` (cached on the mapper), or None."""
    key = ("plan", side)
    got = m.compiled.get(key, False)
    if got is False:
        got = m.compiled[key] = _compile_side(m, side)
    return got
