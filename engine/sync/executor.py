"""Carrying a run's ops out: write batches journalled, sent concurrently up to the connection limit,
then links, failures and the journal committed in one transaction per executed set of ops."""

from __future__ import annotations

import collections
import operator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable

from engine.apps.base import WriteResult
from engine.errors import AppError, AuthError, SyncError
from engine.state.base import Failure, LinkRow
from engine.sync.mapping import ALREADY_LINKED, CONFLICT_SKIPPED, MANDATORY_MISSING, REJECTED_BY_APP, other
from engine.sync.plan import TOMBSTONE, Op
from engine.sync.report import OP_TO_COUNT, SAMPLES_PER_KIND, sample_of

if TYPE_CHECKING:
    from engine.sync.engine import ModuleRun

BATCH = 100  # records per write call (the apps' limit)
_WRITES = frozenset(("create", "update", "delete"))


def _now(clock: Callable[[], datetime] | None) -> datetime:
    t = clock() if clock else datetime.now(timezone.utc)
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _direction(target: str) -> str:
    return "left-to-right" if target == "right" else "right-to-left"


_TARGET = operator.attrgetter("target")
_KIND = operator.attrgetter("kind")


def _by_target_and_kind(ops: list[Op], *, writes_only: bool = False) -> dict[tuple[str, str], list[int]]:
    """Positions of ``ops`` per (target, operation), in order: the write batches they make."""
    keys = list(zip(map(_TARGET, ops), map(_KIND, ops)))
    distinct = set(keys)
    if len(distinct) == 1:  # the common case (a copy: all creates on one side): no loop in Python
        (key,) = distinct
        return {} if writes_only and key[1] not in _WRITES else {key: list(range(len(ops)))}
    groups: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(keys):
        if writes_only and key[1] not in _WRITES:
            continue
        g = groups.get(key)
        if g is None:
            groups[key] = [i]
        else:
            g.append(i)
    return groups


def _partial_batches(ops: list[Op]) -> tuple[list[Op], list[Op]]:
    """``ops`` split into (those carried out now, those kept back): each target and operation's partial
    batch of writes (its last ``len % BATCH`` writes) is kept, with every op of the pairs they belong to
    (a link commits only when all of its pair's writes succeeded); both in their order in ``ops``."""
    counts = collections.Counter(zip(map(_TARGET, ops), map(_KIND, ops)))
    rem = {key: n % BATCH for key, n in counts.items() if key[1] in _WRITES and n % BATCH}
    if not rem:
        return ops, []
    kept: set[int] = set()  # positions of the partial batches: the last writes of their group
    i = len(ops)
    while rem:
        i -= 1
        o = ops[i]
        key = (o.target, o.kind)
        n = rem.get(key)
        if n:
            kept.add(i)
            if n == 1:
                del rem[key]
            else:
                rem[key] = n - 1
    pairs = {p for p in (ops[j].pair for j in kept) if p}
    now: list[Op] = [o for o in ops[:i] if o.pair not in pairs] if pairs else ops[:i]
    later: list[Op] = [o for o in ops[:i] if o.pair in pairs] if pairs else []
    for j in range(i, len(ops)):
        o = ops[j]
        (later if j in kept or (o.pair and o.pair in pairs) else now).append(o)
    return now, later


class _Buffer:
    """Ops collected across pages and executed once enough writes make full batches (the floor counts
    ⌈writes/100⌉, not one partial batch per page). Bounded: ``limit`` writes at most."""

    def __init__(self, ex: "Executor", limit: int):
        self.ex = ex
        self.limit = max(BATCH, limit)
        self.ops: list[Op] = []
        self.writes = 0
        self.pending: collections.deque[_Pending] = collections.deque()  # started, not yet committed

    def add(self, ops: list[Op]) -> None:
        self.ops.extend(ops)
        self.writes += sum(map(_WRITES.__contains__, map(_KIND, ops)))
        if self.writes >= self.limit:
            self.flush(whole_batches=True)

    def flush(self, whole_batches: bool = False, *, drain: bool = True) -> None:
        """Execute the collected ops; with ``whole_batches``, keep back each target and operation's
        partial batch (and the rest of its pairs) for later, so partial batches are sent once, at the end.
        A flush returns with its batches in flight (at most two flushes' writes: the oldest are committed
        first); a final flush (not ``whole_batches``) waits for everything unless ``drain`` is False."""
        ops, self.ops, self.writes = self.ops, [], 0
        if whole_batches:
            ops, self.ops = _partial_batches(ops)
            self.writes = sum(map(_WRITES.__contains__, map(_KIND, self.ops)))
        # pipelined: this flush's batches go out before earlier flushes' results are committed, so the
        # apps always have requests waiting (a barrier per flush left ~1 in 4 request slots idle, and
        # made the left side's writes wait for the right side's last batches)
        pending = self.ex.start(ops)
        if pending is not None:
            self.pending.append(pending)
        final = drain and not whole_batches
        try:
            held = sum(len(p.writes) for p in self.pending)
            while self.pending and (final or held > 2 * self.limit or self.pending[0].done()):
                p = self.pending.popleft()
                held -= len(p.writes)
                self.ex.finish(p)  # oldest first: commits keep the order of the flushes
        except BaseException:
            self._abandon()
            raise

    def drain(self) -> None:
        """Wait for the batches in flight and commit their results."""
        try:
            while self.pending:
                self.ex.finish(self.pending.popleft())
        except BaseException:
            self._abandon()
            raise

    def _abandon(self) -> None:
        """After a failure: nothing stays in flight (the journal resolves what landed on the next run)."""
        for p in self.pending:
            p.wait()
        self.pending.clear()


def _same_plain(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """``a`` and ``b`` hold the same values and would encode alike: equal, every value a string or None
    (``1 == 1.0 == True`` compare equal but encode differently)."""
    if a is not b and a != b:
        return False
    for v in a.values():
        if v is not None and v.__class__ is not str:
            return False
    return True


def journal_payload(ops: list[Op]) -> tuple[dict[str, Any], ...]:
    """What a write batch journals before it is sent, per record.

    A create carries what a killed run needs to find it on the target before creating it again
    (``resolve_creates``): the source id, the match keys to search by, the values written (a hit must
    hold them) and the source's merge base (the link made from a hit), left out when it is the values
    themselves (a field copied to one of the same name: the common case; half the payload). An update
    or a delete needs none of it (the next run reads its source again and the merge sees what landed),
    only the ids. The values are the op's own dicts, not copies: the store encodes them before the
    batch is sent.
    """
    if not ops:
        return ()
    if ops[0].kind != "create":
        return tuple({"source_id": o.source_id, "target_id": o.target_id} for o in ops)
    out = []
    append = out.append
    for o in ops:
        link = o.link
        values = o.values
        if values.__class__ is not dict:
            values = dict(values)
        if link is None:
            append({"source_id": o.source_id, "values": values, "keys": o.keys, "source_values": {}})
            continue
        src = link.left_values if o.target == "right" else link.right_values
        if _same_plain(src, values):
            append({"source_id": o.source_id, "values": values, "keys": o.keys})
        else:
            append({"source_id": o.source_id, "values": values, "keys": o.keys,
                    "source_values": src if src.__class__ is dict else dict(src)})
    return tuple(out)


def journal_source_values(item: Mapping[str, Any]) -> dict[str, Any]:
    """The source's merge base a journalled create carries (``journal_payload``): its
    ``source_values``, or its ``values`` when those were left out for being the same."""
    src = item["source_values"] if "source_values" in item else item.get("values")
    return dict(src or {})


def journal_creates(ops: list[Op]) -> tuple[str, list[tuple[str, str] | None]]:
    """The stored journal text of a create batch (``encode_journal(journal_payload(ops))`` in content)
    and, per op, the stored texts of its link's two merge bases (left, right), or None without a link.

    Each create's values are encoded once (``encode_json``, the merge bases' canonical text): that text
    is the values in the journal, the target's merge base (the values written) and, when the fields are
    copied to ones of the same name, the source's too. What was three encodings of the same dict per
    record (the journal's and the link's two) is one."""
    from json.encoder import encode_basestring_ascii as string

    from engine.state.core import encode_json, encode_payload, plain_dict

    pieces: list[str] = []
    add = pieces.append
    bases: list[tuple[str, str] | None] = []
    base = bases.append
    for o in ops:
        values = o.values
        if values.__class__ is not dict:
            values = dict(values)
        text = encode_json(values)
        sid, keys = o.source_id, o.keys
        sid_text = string(sid) if sid.__class__ is str else encode_payload(sid)
        # the common shape by hand (one key of a string value), as the encoder writes it
        if len(keys) == 1 and keys[0][1].__class__ is str and keys[0][0].__class__ is str:
            keys_text = f"[[{string(keys[0][0])},{string(keys[0][1])}]]"
        else:
            keys_text = encode_payload(keys)
        link = o.link
        if link is None:
            add(f'{{"source_id":{sid_text},"values":{text},"keys":{keys_text},"source_values":{{}}}}')
            base(None)
            continue
        # equal dicts encode alike when every value is a string or None (1 == 1.0 == True do not)
        plain = True
        for v in values.values():
            if v is not None and v.__class__ is not str:
                plain = False
                break
        if o.target == "right":
            src, tgt = link.left_values, link.right_values
        else:
            src, tgt = link.right_values, link.left_values
        if plain and (src is values or src == values):
            stext = text
            add(f'{{"source_id":{sid_text},"values":{text},"keys":{keys_text}}}')
        else:
            stext = encode_json(plain_dict(src))
            add(f'{{"source_id":{sid_text},"values":{text},"keys":{keys_text},"source_values":{stext}}}')
        ttext = text if plain and (tgt is values or tgt == values) else encode_json(plain_dict(tgt))
        base((stext, ttext) if o.target == "right" else (ttext, stext))
    return "[" + ",".join(pieces) + "]", bases


_LINK = operator.attrgetter("link")
_PAIR = operator.attrgetter("pair")


def _created_rows(writes: list[Op], results: list[WriteResult], bases: list[tuple[str, str] | None] | None,
                  batches: list[tuple[str, str, list[int], list[Op]]]) -> list[LinkRow] | None:
    """The link rows of a set of writes that are all creates to one side, all landed, each with a link
    and its merge bases' texts and a pair of its own (a copy's write batches), in one comprehension; None
    for any other set (``Executor.finish``'s loop, which gives the same rows here, then does it)."""
    target, kind = batches[0][0], batches[0][1]
    if kind != "create" or any(b[0] != target or b[1] != kind for b in batches) or bases is None or None in bases:
        return None
    pairs = set(map(_PAIR, writes))
    if len(pairs) != len(writes) or "" in pairs:
        return None
    links = list(map(_LINK, writes))
    if target == "right":
        return [(ln.left_id, res.id or "", b[0], b[1], ln.left_hash, ln.right_hash)
                for ln, res, b in zip(links, results, bases)]
    return [(res.id or "", ln.right_id, b[0], b[1], ln.left_hash, ln.right_hash)
            for ln, res, b in zip(links, results, bases)]


def _synced_ids(ops: list[Op], writes: list[Op], results: list[WriteResult], bad: list[int]) -> dict[str, list[str]]:
    """The record ids, per side, that a finished set of ops synced (their failures are resolved): both
    records of each write that landed and whose pair had no failed write, and both of each link."""
    resolved: dict[str, list[str]] = {"left": [], "right": []}
    left, right = resolved["left"], resolved["right"]
    failed_pairs = {writes[i].pair for i in bad}
    for op, res in zip(writes, results):
        if not res.ok or op.kind == "delete" or not op.pair or op.pair in failed_pairs:
            continue
        link = op.link
        if op.target == "right":
            if link is not None:
                right.append(res.id or "" if op.kind == "create" else link.right_id)  # the partner too
            left.append(op.source_id or "")
        else:
            if link is not None:
                left.append(res.id or "" if op.kind == "create" else link.left_id)
            right.append(op.source_id or "")
    for op in ops:
        if op.kind == "link":
            if op.pair and op.pair in failed_pairs:  # a matched pair whose write failed is not linked
                continue
            resolved[op.side].append(op.source_id or "")
            link = op.link
            if op.code != "refresh" and link is not None:  # linked: neither side is failing any more
                left.append(link.left_id)
                right.append(link.right_id)
        elif op.kind == "skip" and op.code == ALREADY_LINKED:  # a duplicate with nothing to sync (a retry of
            resolved[op.target].append(op.source_id or "")    # a failure logged for it before): not failing
    return resolved


class _LazyRedactor:
    def redact(self, text: str) -> str:
        from engine.apps.http import REDACTOR as real  # an app's message may echo credentials

        return real.redact(text)


REDACTOR = _LazyRedactor()


@dataclass(slots=True)
class _Pending:
    """A ``start``ed set of ops: its write batches are in flight until ``finish``."""

    ops: list[Op]
    writes: list[Op]
    batches: list[tuple[str, str, list[int], list[Op]]]
    futs: list[Future]
    ids: list[int]  # the journal entry of each batch
    bases: list[tuple[str, str] | None] | None  # per write: its link's merge bases as stored texts (creates)

    def wait(self) -> None:
        wait(self.futs)

    def done(self) -> bool:
        return all(f.done() for f in self.futs)


class Executor:
    """Carries ops out: batched, journalled, concurrent up to the connection limit; commits as it goes."""

    def __init__(self, mr: ModuleRun):
        self.mr = mr
        self.r = mr.r
        self.store = mr.store
        self.name = mr.name
        self.module = mr.module
        self._failing_ids: dict[str, set[str]] | None = None
        self._threads: ThreadPoolExecutor | None = None

    def count(self, op: Op, kind: str | None = None) -> None:
        kind = kind or op.kind
        if op.kind == "fail" or op.kind == "skip":  # target: the side of the record that could not sync
            d = "left-to-right" if op.target == "left" else "right-to-left"
        else:
            d = "left-to-right" if op.target == "right" else "right-to-left"
        rep = self.mr.rep
        rep.counts[d][OP_TO_COUNT[kind]] += 1
        got = rep.samples.get(kind)
        if got is None or len(got) < SAMPLES_PER_KIND:
            self.sample(op, kind)

    def sample(self, op: Op, kind: str) -> None:
        kinds = {n: self.mr.m.info(op.target, n).kind for n in op.values}
        self.mr.rep.sample(kind, sample_of(op, kinds))

    def _failing(self) -> dict[str, set[str]] | None:
        """The record ids of this module with an unresolved failure, per side, read once per module run
        and kept up to date by ``execute`` (None: the store cannot tell, so every synced id is resolved)."""
        if self._failing_ids is None:
            get = getattr(self.store, "failing_ids", None)
            if get is None:
                return None
            self._failing_ids = get(self.name, self.module.name)
        return self._failing_ids

    def execute(self, ops: list[Op]) -> None:
        pending = self.start(ops)
        if pending is not None:
            self.finish(pending)

    def start(self, ops: list[Op]) -> "_Pending | None":
        """Journal the ops' write batches and send them; ``finish`` waits for them and commits."""
        if not ops:
            return None
        if self.r.dry_run:
            for op in ops:
                if op.kind == "link" and op.code == "refresh":
                    continue
                self.count(op)
            return None
        writes = [o for o in ops if o.kind in _WRITES]
        return _Pending(ops, writes, *self._submit(writes))

    def _tally(self, counted: dict[tuple[str, str, str], int], ops: list[Op], ok: Callable[[int], bool]) -> None:
        """Add ``counted`` ((count kind, op kind, target) -> n) to the report, and sample the first ops of
        each kind whose samples are not full yet (``ok(i)``: whether ``ops[i]`` counts)."""
        rep = self.mr.rep
        tally, samples = rep.counts, rep.samples
        hungry: set[str] = set()
        for (kind, op_kind, target), n in counted.items():
            if op_kind == "fail" or op_kind == "skip":  # target: the side of the record that could not sync
                d = "left-to-right" if target == "left" else "right-to-left"
            else:
                d = "left-to-right" if target == "right" else "right-to-left"
            tally[d][OP_TO_COUNT[kind]] += n
            got = samples.get(kind)
            if got is None or len(got) < SAMPLES_PER_KIND:
                hungry.add(kind)
        for kind in hungry:  # the first ops of that kind, in order (as counting them one by one did)
            for i, op in enumerate(ops):
                if op.kind == kind and ok(i):
                    got = samples.get(kind)
                    if got is not None and len(got) >= SAMPLES_PER_KIND:
                        break
                    self.sample(op, kind)

    def finish(self, pending: "_Pending") -> None:
        """Wait for a ``start``'s batches, then commit links, failures and the journal in one transaction."""
        ops, writes, bases = pending.ops, pending.writes, pending.bases
        results, entry_of, entries = self._collect(writes, pending.batches, pending.futs, pending.ids)
        bad = [i for i, res in enumerate(results) if not res.ok]
        rows: list[LinkRow] = []  # the links to put, as rows: a sync puts one per record written
        put = rows.append
        rewrites: list[LinkRow] = []  # the links of updated pairs (put first: a link op of the pair comes after)
        rewrite = rewrites.append
        failures: list[Failure] = []
        unlink: dict[str, list[str]] = {"left": [], "right": []}
        now = _now(self.r.clock)
        # a pair commits its link once, after its first write that landed, and never when one of its writes failed
        failed_pairs: set[str] = {p for p in (writes[i].pair for i in bad) if p}
        done_pairs = set(failed_pairs)
        updated: dict[str, Any] = {}  # pair -> the link an update of it put (a matched pair's link op carries it too)
        if writes:
            counted: dict[tuple[str, str, str], int] = {}
            for target, kind, idxs, _ in pending.batches:
                key = (kind, kind, target)
                counted[key] = counted.get(key, 0) + len(idxs)
            for i in bad:
                key = (writes[i].kind, writes[i].kind, writes[i].target)
                counted[key] -= 1
            self._tally(counted, writes, lambda i: results[i].ok)
        fast = _created_rows(writes, results, bases, pending.batches) if writes and not bad else None
        if fast is not None:  # a copy: every write a create of one side that landed
            rows = fast
            put = rows.append
        for i, op, res in zip(range(len(writes)), writes, results) if fast is None else ():
            if not res.ok:
                continue
            kind = op.kind
            target = op.target
            if kind == "delete":
                unlink["left" if target == "right" else "right"].append(op.source_id or "")
                continue
            pair = op.pair
            if not pair or pair in done_pairs:
                continue
            done_pairs.add(pair)
            link = op.link
            if link is None:
                continue
            lid, rid = link.left_id, link.right_id
            if kind == "create":  # the new record's id completes the link
                if target == "right":
                    rid = res.id or ""
                else:
                    lid = res.id or ""
            else:  # an update: its pair's link is most likely there already, with the same ids
                updated[pair] = link
                rewrite((lid, rid, link.left_values, link.right_values, link.left_hash, link.right_hash))
                continue
            b = bases[i] if bases is not None else None
            if b is None:
                put((lid, rid, link.left_values, link.right_values, link.left_hash, link.right_hash))
            else:
                put((lid, rid, b[0], b[1], link.left_hash, link.right_hash))
        for i in bad:
            op, res = writes[i], results[i]
            target = op.target
            src = "left" if target == "right" else "right"
            code = MANDATORY_MISSING if res.code in ("MANDATORY_NOT_FOUND", "MANDATORY_MISSING") else REJECTED_BY_APP
            self.count(op, "fail")
            failures.append(Failure(id=None, integration=self.name, module=self.module.name,
                                    side=src if op.kind != "delete" else target,
                                    record_id=(op.source_id if op.kind != "delete" else op.target_id) or "",
                                    code=code, app_code=res.code,
                                    message=REDACTOR.redact((res.message or res.code)
                                                            + (f" (field {res.field})" if res.field else "")),
                                    first_seen=now, last_seen=now))
            e = entry_of[i]
            if e is not None and op.kind == "create" and (res.transient or res.details.get("request_level")):
                entries.discard(e)  # it may have landed: the next run looks it up before creating again
        if len(writes) != len(ops):
            # every op without a write counts (a link refreshing its merge base only excepted)
            counts = collections.Counter(zip(map(_KIND, ops), map(_TARGET, ops)))
            for op in ops:
                kind = op.kind
                if kind == "link":
                    code = op.code
                    if code == "refresh":
                        counts[("link", op.target)] -= 1
                    elif failed_pairs and op.pair in failed_pairs:
                        # a first match whose write was refused: not linked, so its failure stays and
                        # the retry matches it again (its merge base would say the write landed)
                        counts[("link", op.target)] -= 1
                        continue
                    link = op.link
                    if updated.get(op.pair) is not link:  # else an update of the pair put this very link
                        put((link.left_id, link.right_id, link.left_values, link.right_values,  # type: ignore[union-attr]
                             link.left_hash, link.right_hash))  # type: ignore[union-attr]
                elif kind == "unlink":
                    src = other(op.target)
                    unlink[src].append(op.source_id or "")
                    if op.code != "both-deleted":  # the partner stays: keep a tombstone so it is never revived
                        lid = TOMBSTONE + (op.source_id or "") if src == "left" else op.target_id
                        rid = op.target_id if src == "left" else TOMBSTONE + (op.source_id or "")
                        put((lid or "", rid or "", {}, {}, "", ""))
                elif kind == "fail" or (kind == "conflict" and op.code == CONFLICT_SKIPPED):
                    failures.append(Failure(id=None, integration=self.name, module=self.module.name,
                                            side=op.target, record_id=op.source_id or "", code=op.code,
                                            message=op.message, first_seen=now, last_seen=now))
            counted = {(kind, kind, target): n for (kind, target), n in counts.items() if n and kind not in _WRITES}
            if counted:
                self._tally(counted, ops, lambda i: not (ops[i].kind == "link" and (
                    ops[i].code == "refresh" or (failed_pairs and ops[i].pair in failed_pairs))))
        failing = self._failing()
        store, name, module = self.store, self.name, self.module.name
        with store.transaction():
            for side in ("left", "right"):
                if unlink[side]:
                    store.delete_links(name, module, side=side, ids=unlink[side])
            if rewrites:
                store.update_link_rows(name, module, rewrites, synced_at=now)
            if rows:
                store.put_link_rows(name, module, rows, synced_at=now)
            for f in failures:
                store.add_failure(f)
                if failing is not None:
                    failing.setdefault(f.side, set()).add(f.record_id)
            # the ids synced resolve their failures: looked for only where one may wait (most runs: none)
            if failing is None or failing.get("left") or failing.get("right"):
                resolved = _synced_ids(ops, writes, results, bad)
                for side in ("left", "right"):
                    if failing is None:
                        ids = [i for i in resolved[side] if i]
                    else:  # only the ids that have a failure to resolve
                        fs = failing.get(side)
                        ids = [i for i in resolved[side] if i and i in fs] if fs else []
                    if ids:
                        store.resolve_failures(name, module, side, ids)
                        if failing is not None:
                            failing[side].difference_update(ids)
            for eid in entries:
                store.journal_done(eid)
        if unlink["left"] or unlink["right"] or rows:
            self.r.resolver.forget(module)

    def _submit(self, writes: list[Op]) -> tuple[list[tuple[str, str, list[int], list[Op]]], list[Future], list[int],
                                                  list[tuple[str, str] | None] | None]:
        """Journal every write batch, then hand the batches to the write threads."""
        if not writes:
            return [], [], [], None
        groups = _by_target_and_kind(writes)
        batches: list[tuple[str, str, list[int], list[Op]]] = []
        texts: list[tuple[str, str, str]] = []
        bases: list[tuple[str, str] | None] | None = None
        for (target, kind), g in groups.items():
            for j in range(0, len(g), BATCH):
                idxs = g[j:j + BATCH]
                part = [writes[i] for i in idxs]
                batches.append((target, kind, idxs, part))
                if kind == "create":  # values encoded once: the journal's text and the links' merge bases
                    text, made = journal_creates(part)
                    if bases is None:
                        bases = [None] * len(writes)
                    for i, b in zip(idxs, made):
                        bases[i] = b
                else:
                    from engine.state.core import encode_journal

                    text = encode_journal(journal_payload(part))
                texts.append((target, kind, text))
        ids = self.store.journal_add_texts(self.name, self.module.name, texts, created=_now(self.r.clock))
        submit = self._pool().submit
        futs = [submit(self._send_one, target, kind, part) for target, kind, _, part in batches]
        return batches, futs, ids, bases

    def _collect(self, writes: list[Op], batches: list[tuple[str, str, list[int], list[Op]]], futs: list[Future],
                 ids: list[int]) -> tuple[list[WriteResult], list[int | None], set[int]]:
        """Wait for the batches (each one goes out, even when one raises), retry transient per-record
        failures once, and return one result and one journal entry id per write, in order, and the
        entries to mark done."""
        if not writes:
            return [], [], set()
        wait(futs)
        results: list[WriteResult | None] = [None] * len(writes)
        entry_of: list[int | None] = [None] * len(writes)
        filled = 0
        for (_, _, idxs, _), fut, entry in zip(batches, futs, ids):
            got = fut.result()
            for i, res in zip(idxs, got):
                results[i] = res
                entry_of[i] = entry
            filled += min(len(idxs), len(got))
        # transient per-record failures (429/5xx for that record): one more attempt
        retry = [i for i, r in enumerate(results) if r is not None and not r.ok and r.transient
                 and not r.details.get("may_have_landed")]  # those wait for the journal's look-up
        if retry:
            again: dict[tuple[str, str], list[int]] = {}
            for i in retry:
                again.setdefault((writes[i].target, writes[i].kind), []).append(i)
            for (target, kind), idxs in again.items():
                for j in range(0, len(idxs), BATCH):
                    part = idxs[j:j + BATCH]
                    for i, res in zip(part, self._send_one(target, kind, [writes[i] for i in part])):
                        results[i] = res
        if filled != len(writes):  # a batch answered fewer records than it sent
            missing = WriteResult(ok=False, code="NO_RESULT", message="the app returned no result")
            results = [r or missing for r in results]
        return results, entry_of, set(ids)  # type: ignore[return-value]

    def _pool(self) -> ThreadPoolExecutor:
        """The module run's write threads, as many as both connections allow requests at once: started
        with the first batch, kept for the run (one pool per send cost ~0.6 ms of CPU a flush)."""
        if self._threads is None:
            # each app has its own limit (the clients hold it): both apps' writes go out at once, and a
            # flush's batches queue behind the previous flush's (two flushes in flight)
            workers = 2 * (self.r.concurrency("left") + self.r.concurrency("right"))
            self._threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="syncform-write")
        return self._threads

    def close(self) -> None:
        """Stop the write threads (the module run is over)."""
        pool, self._threads = self._threads, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _send_one(self, target: str, kind: str, ops: list[Op]) -> list[WriteResult]:
        client = self.r.clients[target]
        api = self.mr.api(target)
        try:
            # the op's own values: clients only read them (the AppClient contract), so no copy per record
            if kind == "create":
                res = client.create_many(api, [o.values for o in ops])
            elif kind == "update":
                res = client.update_many(api, [(o.target_id or "", o.values) for o in ops])
            else:
                res = client.delete_many(api, [o.target_id or "" for o in ops])
        except AppError as exc:
            if exc.transient or isinstance(exc, AuthError):
                raise  # refused credentials are the run's failure, not each record's
            res = [WriteResult(ok=False, code=exc.code or type(exc).__name__, message=str(exc)) for _ in ops]
        if len(res) != len(ops):
            raise SyncError(f"{target} {api} {kind}: {len(res)} results for {len(ops)} records")
        return res
