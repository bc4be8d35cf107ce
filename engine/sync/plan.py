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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.apps.base import Record
from engine.state.base import Link
from engine.sync.mapping import (
    ALREADY_LINKED, AMBIGUOUS_MATCH, CONFLICT_SKIPPED, MANDATORY_MISSING, PARENT_NOT_SYNCED, MapError,
    ModuleMapper, other,
)
from engine.sync.normalize import key_kind, norm_key

KINDS = ("create", "update", "delete", "link", "unlink", "conflict", "skip", "fail")
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


# --- matching -----------------------------------------------------------------------------------------

class MatchIndex:
    """A local hash index of one side's records by normalised match keys (0 API calls)."""

    def __init__(self, mapper: ModuleMapper, side: str):
        self.mapper = mapper
        self.side = side
        self.keys = [(getattr(k, side), key_kind(getattr(k, side), mapper.info(side, getattr(k, side)).kind))
                     for k in mapper.module.match]
        self._idx: list[dict[str, list[str]]] = [dict() for _ in self.keys]
        self.records: dict[str, Record] = {}

    def add(self, rec: Record) -> None:
        if rec.id in self.records:
            return
        self.records[rec.id] = rec
        for i, (name, kind) in enumerate(self.keys):
            v = norm_key(rec.values.get(name), kind)
            if v:
                self._idx[i].setdefault(v, []).append(rec.id)

    def lookup(self, probe: list[str]) -> list[str]:
        """Candidates for normalised probe values (one per key, in order): the first key with hits decides."""
        for i, v in enumerate(probe):
            if v and i < len(self._idx):
                hits = self._idx[i].get(v)
                if hits:
                    return list(hits)
        return []


def probe_values(mapper: ModuleMapper, side: str, values: Mapping[str, Any]) -> list[str]:
    """Normalised match-key values of a record of ``side``, in the order of the module's keys."""
    out = []
    for k in mapper.module.match:
        name = getattr(k, side)
        out.append(norm_key(values.get(name), key_kind(name, mapper.info(side, name).kind)))
    return out


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
    keys = []
    for k in mapper.module.match:
        name = getattr(k, target)
        v = values.get(name)
        if v in (None, ""):
            v = src.get(getattr(k, other(target)))
        if v not in (None, ""):
            keys.append((name, v))
    if not keys:  # no match keys: the first written value identifies a pending create
        for name, v in values.items():
            if isinstance(v, (str, int, float)) and v not in ("",):
                keys.append((name, v))
                break
    return tuple(keys)


def plan_changes(inp: PlanInput, order: Iterable[str] = ("left", "right"),
                 done: dict[str, set[str]] | None = None) -> list[Op]:
    """Ops for every changed record of the chunk, each record pair planned once (``done`` carries the
    ids already planned across the chunks of one module run)."""
    ops: list[Op] = []
    done = done if done is not None else {"left": set(), "right": set()}
    for side in order:
        for rid, rec in inp.changed.get(side, {}).items():
            if rid in done[side]:
                continue
            done[side].add(rid)
            ops.extend(_plan_record(inp, side, rec, done))
    return ops


def _plan_record(inp: PlanInput, side: str, rec: Record, done: dict[str, set[str]]) -> list[Op]:
    m = inp.mapper
    osd = other(side)
    if rec.id in inp.deleted.get(side, set()):
        return []
    link = inp.links.get(side, {}).get(rec.id)
    if link is not None:
        partner = link.right_id if side == "left" else link.left_id
        if partner.startswith(TOMBSTONE):
            return [Op("skip", side, source_id=rec.id, code="PARTNER_DELETED",
                       message="its counterpart was deleted; it is never revived")]
        if partner in inp.deleted.get(osd, set()):
            return []
        prec = inp.changed.get(osd, {}).get(partner)
        if prec is not None:
            done[osd].add(partner)
        recs = {side: rec, osd: prec}
        return _merge(inp, recs["left"], recs["right"], link)
    # unlinked: match by keys on the other side
    if rec.id in inp.ambiguous[side]:
        return []
    idx = inp.index.get(osd)
    cands: list[str] = []
    if idx is not None and m.module.match:
        cands = [c for c in idx.lookup(probe_values(m, side, rec.values))
                 if c not in inp.deleted.get(osd, set())]
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
        clink = inp.links.get(osd, {}).get(cid)
        if clink is not None or cid in inp.claimed[osd]:
            owner = (clink.left_id if osd == "right" else clink.right_id) if clink else "another record"
            return [Op("fail", side, source_id=rec.id, code=ALREADY_LINKED,
                       message=f"{m.mods[osd]} {cid} is already linked with {owner}")]
        inp.claimed[osd].add(cid)
        inp.claimed[side].add(rec.id)
        done[osd].add(cid)
        prec = idx.records[cid] if idx is not None else None
        if prec is None:
            return []
        recs = {side: rec, osd: prec}
        return _merge(inp, recs["left"], recs["right"], None)
    # no match: create on the other side when the direction allows
    if not _can_write(m, osd):
        return []
    try:
        values = _clean(m.render_record(side, rec.values))
        missing = m.mandatory_missing(osd, values)
        if missing:
            raise MapError(MANDATORY_MISSING, f"mandatory field {missing} would be empty", missing)
    except MapError as exc:
        kind = "skip" if exc.code == PARENT_NOT_SYNCED else "fail"
        return [Op(kind, side, source_id=rec.id, code=exc.code, message=exc.message)]
    src_base = m.snapshot(side, rec.values)
    tgt_base = m.snapshot(osd, values)
    pair = f"{side}:{rec.id}"
    new_link = Link(left_id=rec.id if side == "left" else "", right_id=rec.id if side == "right" else "",
                    left_values=src_base if side == "left" else tgt_base,
                    right_values=src_base if side == "right" else tgt_base)
    inp.claimed[side].add(rec.id)
    return [Op("create", osd, source_id=rec.id, values=values, keys=_key_values(m, osd, values, rec.values),
               link=new_link, pair=pair)]


def _merge(inp: PlanInput, lrec: Record | None, rrec: Record | None, link: Link | None) -> list[Op]:
    """Three-way merge of one linked (or just matched) pair."""
    m = inp.mapper
    base = {"left": dict(link.left_values) if link else None, "right": dict(link.right_values) if link else None}
    recs = {"left": lrec, "right": rrec}
    now: dict[str, Mapping[str, Any]] = {}
    for s in ("left", "right"):
        r = recs[s]
        now[s] = r.values if r is not None else (base[s] or {})
    ids = {"left": lrec.id if lrec else link.left_id, "right": rrec.id if rrec else link.right_id}  # type: ignore[union-attr]
    changed = {s: (m.changed_fields(s, now[s], base[s]) if recs[s] is not None else set()) for s in ("left", "right")}
    pair = f"pair:{ids['left']}:{ids['right']}"
    ops: list[Op] = []
    # desired target values per side, from flows whose source fields changed
    desired: dict[str, dict[str, Any]] = {"left": {}, "right": {}}
    origin: dict[str, dict[str, tuple[str, ...]]] = {"left": {}, "right": {}}
    for src in ("left", "right"):
        tgt = other(src)
        if recs[src] is None:
            continue
        try:
            if m.parent is not None and link is None:
                desired[tgt].update(m.parent_values(src, now[src]))
            for fl in m.flows[src]:
                if not m.applies(fl, now[src]):
                    continue
                if fl.src and not (set(fl.src) & changed[src]):
                    continue
                if not fl.src and not changed[src]:
                    continue
                vals = m.render_flow(src, fl, now[src])
                for t, v in vals.items():
                    desired[tgt][t] = v
                    origin[tgt][t] = fl.src
        except MapError as exc:
            kind = "skip" if exc.code == PARENT_NOT_SYNCED else "fail"
            return [Op(kind, src, source_id=ids[src], code=exc.code, message=exc.message)]
    # conflicts: a target field whose own value changed too (both sides changed the same field map)
    conflicts: set[tuple[str, str]] = set()  # (target side, target field)
    two_way = {s: {n for fl in m.flows[s] for n in fl.src} for s in ("left", "right")}
    for tgt in ("left", "right"):
        for t in list(desired[tgt]):
            if t not in changed[tgt] or t not in two_way[tgt] or m.same(tgt, t, desired[tgt][t], now[tgt].get(t)):
                continue
            if link is None:  # first match: fill what is empty, never erase a value with an empty one
                if comparable_empty(m, tgt, t, now[tgt].get(t)):
                    continue
                if comparable_empty(m, tgt, t, desired[tgt][t]):
                    del desired[tgt][t]
                    continue
            conflicts.add((tgt, t))
    writes: dict[str, dict[str, Any]] = {"left": {}, "right": {}}
    for tgt in ("left", "right"):
        for t, v in desired[tgt].items():
            if (tgt, t) in conflicts:
                continue
            if not m.same(tgt, t, v, now[tgt].get(t)):
                writes[tgt][t] = v
    kept_base: dict[str, set[str]] = {"left": set(), "right": set()}
    if conflicts:
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
        fields_ = tuple(sorted(f"{s}.{t}" for s, t in conflicts))
        if winner is None:
            if link is not None:
                for s, t in conflicts:
                    kept_base[s].add(t)
                    for src_f in origin[s].get(t, ()):
                        kept_base[other(s)].add(src_f)
                ops.append(Op("conflict", "left", source_id=ids["left"], target_id=ids["right"],
                              code=CONFLICT_SKIPPED, fields=fields_,
                              message=f"both sides changed {', '.join(fields_)}; skipped (policy skip)"))
        else:
            loser = other(winner)
            for s, t in conflicts:
                if s == loser:
                    writes[s][t] = desired[s][t]
            what = "both sides changed" if link is not None else "the matched records differ in"
            ops.append(Op("conflict", loser, source_id=ids[winner], target_id=ids[loser], code=policy,
                          fields=fields_, message=f"{what} {', '.join(fields_)}; {winner} wins ({policy})"))
    # the new merge base: current values plus what we write
    new_base = {}
    for s in ("left", "right"):
        snap = m.snapshot(s, now[s])
        snap.update({k: v for k, v in writes[s].items() if k in m.fields(s)})
        for t in kept_base[s]:
            if base[s] is not None and t in base[s]:
                snap[t] = base[s][t]
            else:
                snap.pop(t, None)
        new_base[s] = snap
    new_link = Link(left_id=ids["left"], right_id=ids["right"], left_values=new_base["left"],
                    right_values=new_base["right"])
    for tgt in ("left", "right"):
        if writes[tgt]:
            ops.append(Op("update", tgt, source_id=ids[other(tgt)], target_id=ids[tgt], values=writes[tgt],
                          link=new_link, pair=pair))
    if link is None:
        ops.append(Op("link", "right", source_id=ids["left"], target_id=ids["right"], link=new_link, pair=pair))
    elif not writes["left"] and not writes["right"] and \
            (dict(link.left_values) != new_base["left"] or dict(link.right_values) != new_base["right"]):
        ops.append(Op("link", "right", source_id=ids["left"], target_id=ids["right"], link=new_link, pair=pair,
                      code="refresh"))
    return ops


def comparable_empty(m: ModuleMapper, side: str, name: str, value: Any) -> bool:
    from engine.sync.mapping import comparable

    return comparable(value, m.info(side, name).kind) is None


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
