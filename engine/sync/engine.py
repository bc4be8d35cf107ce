"""Running a sync: read changes, plan (``engine.sync.plan``), execute in journalled batches, commit.

Order of a run: for each enabled module, parents first —

1. resolve the journal: write batches a killed run left pending (creates are looked up on the target
   by their keys before anything is created again);
2. read the deleted feeds and plan deletes/unlinks (the run's ``max_deletes`` guard counts them all
   before any is carried out); the first module's first change page of each side is read meanwhile
   (read again from the start on a side the deletes then write to);
3. read the right side's changes since its cursor (minus an overlap window), then stream the left
   side's pages, planning and executing each page against them; then the right's leftovers;
4. commit links, failures and history as it goes; move the cursors only at the end, past what is
   committed.

What a module run holds while it plans (the right side's records, both match indexes, the planner's id
sets, the pairs held back for the left) lives in a ``Workset`` (``engine.sync.spill``): in memory while
small, in a temporary SQLite file beyond ``SPILL_AT`` records, so memory stays flat in N.

A read that fails half-way aborts the module: nothing is deleted (deletes come only from the apps'
deleted feeds, never from a record's absence) and the cursors stay where they were.
"""

from __future__ import annotations

import collections
import logging
import operator
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from engine.apps.base import AppClient, ListFilter, Record
from engine.errors import AppError
from engine.spec.model import Integration, Module
from engine.state.base import JournalEntry, Link, RunRecord, StateStore
from engine.sync.mapping import ALREADY_LINKED, CONFLICT_SKIPPED, ModuleMapper, other
from engine.sync.plan import TOMBSTONE, Op, PlanInput, plan_changes, plan_deletes, probe_values, right_at_base
from engine.sync.executor import BATCH, Executor, _Buffer, _now, journal_source_values
from engine.sync.spill import Workset
from engine.sync.report import ModuleReport, SyncReport

log = logging.getLogger(__name__)

# Cursors. Apps stamp Modified_Time in whole seconds and "changed since" is inclusive, so the boundary
# second is read again (re-reading costs no write: the merge compares values). Once the boundary has
# settled — our read started SETTLE after the newest change we saw, more than any write in flight or
# clock skew — the next read starts after it; otherwise it starts at it.
SETTLE = timedelta(seconds=2)
OVERLAP = timedelta(0)  # extra re-read window behind each cursor (0: the boundary rule above suffices)
SECOND = timedelta(seconds=1)
PARALLEL = "parallel-read"  # cursor kind: "<read start>|<read end>|<cursor it read from>" of a parallel read
READ_AHEAD = 50  # left pages (10,000 records) read while the right side is read, before planning starts
READ_ON = 8  # left pages read ahead of planning once the right side is indexed (refilled from half full)
BUFFER_OPS = 5_000  # ops waiting in the write buffer (most without a write: links) before they are carried out
SEARCH_LIMIT = 20  # unlinked records per module run looked up by search; beyond, the other side is read once
Progress = Callable[[str, str, int, int | None], None]  # (module, phase, done, total)
_modified = operator.attrgetter("modified")


def _fmt(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat()


def _parse(s: str | None) -> datetime | None:
    if not s:
        return None
    dt = datetime.fromisoformat(s)
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def order_modules(integration: Integration, names: Iterable[str] | None) -> list[Module]:
    """Enabled modules, parents first (contacts and companies before activities and notes)."""
    mods = [m for m in integration.modules if m.enabled]
    if names:
        wanted = list(names)
        unknown = [n for n in wanted if integration.module(n) is None]
        if unknown:
            from engine.errors import UsageError, did_you_mean

            raise UsageError(f'integration {integration.name} has no module "{unknown[0]}"'
                             f"{did_you_mean(unknown[0], [m.name for m in integration.modules])}")
        mods = [m for m in mods if m.name in wanted]
    out: list[Module] = []
    seen: set[str] = set()

    def visit(m: Module, depth: int = 0) -> None:
        if m.name in seen or depth > 10:
            return
        if m.parent and (p := integration.module(m.parent)) is not None and p in mods:
            visit(p, depth + 1)
        seen.add(m.name)
        out.append(m)

    for m in mods:
        visit(m)
    return out


class _Owners:
    """Owner mapping by user e-mail, else the integration owner (seed 004)."""

    def __init__(self, integration: Integration, clients: Mapping[str, AppClient]):
        self.integration = integration
        self.clients = clients
        self._users: dict[str, list[dict[str, Any]]] = {}

    def users(self, side: str) -> list[dict[str, Any]]:
        if side not in self._users:
            try:
                self._users[side] = list(self.clients[side].users())
            except AppError:
                self._users[side] = []
        return self._users[side]

    def mapper(self, tgt: str) -> Callable[[Any], Any]:
        def to_target(value: Any) -> Any:
            src = other(tgt)
            email = None
            if isinstance(value, dict):
                email = value.get("email")
                vid = value.get("id")
            else:
                vid = value
            if not email and vid:
                email = next((u.get("email") for u in self.users(src) if str(u.get("id")) == str(vid)), None)
            by_email = {str(u.get("email") or "").lower(): str(u["id"]) for u in self.users(tgt)}
            if email and email.lower() in by_email:
                return by_email[email.lower()]
            owner = (self.integration.owner or "").lower()
            return by_email.get(owner) if owner else None

        return to_target


class _Resolver:
    """Lookups through the link tables: (source side, module name, source id or e-mail) -> target id."""

    def __init__(self, store: StateStore, integration: Integration):
        self.store = store
        self.integration = integration
        self._emails: dict[tuple[str, str], dict[str, str]] = {}

    def __call__(self, side: str, module: str | None, ref: str) -> str | None:
        if module is None:
            return None
        if "@" in ref:
            key = (side, module)
            if key not in self._emails:
                idx: dict[str, str] = {}
                for link in self.store.iter_links(self.integration.name, module):
                    vals = link.left_values if side == "left" else link.right_values
                    partner = link.right_id if side == "left" else link.left_id
                    for k, v in vals.items():
                        if isinstance(v, str) and "@" in v and not partner.startswith(TOMBSTONE):
                            idx.setdefault(v.strip().lower(), partner)
                self._emails[key] = idx
            return self._emails[key].get(ref.strip().lower())
        link = self.store.get_link(self.integration.name, module, **{f"{side}_id": ref})
        if link is None:
            return None
        partner = link.right_id if side == "left" else link.left_id
        return None if partner.startswith(TOMBSTONE) else partner

    def forget(self, module: str) -> None:
        for key in [k for k in self._emails if k[1] == module]:
            del self._emails[key]


class Run:
    """One sync run of one integration."""

    def __init__(self, integration: Integration, *, store: StateStore, left: AppClient, right: AppClient,
                 full: bool, dry_run: bool, clock: Callable[[], datetime] | None, progress: Progress | None):
        self.integration = integration
        self.store = store
        self.clients: dict[str, AppClient] = {"left": left, "right": right}
        self.full = full
        self.dry_run = dry_run
        self.clock = clock
        self.progress = progress
        self.now = _now(clock)
        self.report = SyncReport(integration=integration.name, dry_run=dry_run)
        self.resolver = _Resolver(store, integration)
        self.owners = _Owners(integration, self.clients)
        self.delete_budget: int | None = integration.max_deletes
        self.halt_deletes = False
        self.retry: set[Any] | None = None  # retry mode: only these failures (empty set: all of them)

    # -- helpers -----------------------------------------------------------------------------------
    def mapper(self, module: Module) -> ModuleMapper:
        m = ModuleMapper(self.integration, module, resolve=self.resolver,
                         owners={"left": self.owners.mapper("left"), "right": self.owners.mapper("right")})
        state_dir = _state_dir(self.store)
        m.code_dir = os.path.join(state_dir, "cache") if state_dir else None
        return m

    def filter_for(self, side: str, module: Module, initial: bool) -> ListFilter | None:
        app = getattr(self.integration, side).app
        view = module.filter.view if module.filter and side == view_side(self.integration) else None
        deps = module.filter.departments if module.filter and app == "zoho_desk" else ()
        floor = self.now - timedelta(days=module.created_within_days) if initial else None
        if view is None and not deps and floor is None:
            return None
        return ListFilter(view=view, departments=tuple(deps), created_after=floor)

    def calls(self, side: str) -> int:
        try:
            return sum(self.clients[side].stats().values())  # type: ignore[attr-defined]
        except Exception:
            return 0

    def concurrency(self, side: str) -> int:
        http = getattr(self.clients[side], "http", None)
        return max(1, int(getattr(http, "max_concurrency", 4) or 4))

    # -- the run -----------------------------------------------------------------------------------
    def run(self, modules: Iterable[str] | None) -> SyncReport:
        name = self.integration.name
        deployed = self.store.get_deployed(name)
        if self.integration.paused or (deployed is not None and deployed.paused):
            self.report.paused = True
            self.report.message = f"integration {name} is paused; nothing exchanged (resume it to sync)"
            return self.report
        start = {s: self.calls(s) for s in ("left", "right")}
        mods = order_modules(self.integration, modules)
        states = [ModuleRun(self, m) for m in mods]
        # the first module's first change pages are read while the deleted feeds are (one round trip
        # less); nothing is planned before the deletes are
        if states and not states[0].initial and self.retry is None:
            states[0].start_reads()
        # deletes first across the run: the guard sees all of them before any is carried out
        for st in states:
            st.read_deletes()
        planned = sum(st.delete_count() for st in states)
        if self.delete_budget is not None and planned > self.delete_budget:
            self.halt_deletes = True
            self.report.halted_deletes = planned
            self.report.message = (f"guards.max_deletes: this run would delete {planned} records (limit "
                                   f"{self.delete_budget}); no deletes were carried out")
        for st in states:
            st.run()
        for s in ("left", "right"):
            self.report.api_calls[s] = self.calls(s) - start[s]
        if not self.dry_run:  # history is kept history_days (the longest of any deployed integration)
            days = [self.integration.history_days]
            for d in self.store.list_deployed():
                spec = d.spec.get("integration", d.spec) if isinstance(d.spec, Mapping) else {}
                if isinstance(spec.get("history_days"), int):
                    days.append(spec["history_days"])
            self.store.prune_runs(self.now - timedelta(days=max(days)))
        return self.report


class ModuleRun:
    def __init__(self, run: Run, module: Module):
        self.r = run
        self.module = module
        self.store = run.store
        self.name = run.integration.name
        self.m = run.mapper(module)
        self.rep = ModuleReport(module=module.name)
        run.report.modules.append(self.rep)
        self.deleted: dict[str, list] = {"left": [], "right": []}
        self.delete_ops: list[Op] = []
        self.cursor = {s: self.store.get_cursor(self.name, module.name, s) for s in ("left", "right")}
        self.initial = self.cursor["left"] is None and self.cursor["right"] is None
        self.rep.initial = self.initial
        self.error: Exception | None = None
        self.calls0 = {s: run.calls(s) for s in ("left", "right")}
        self.history: dict[str, RunRecord] = {}
        self.first: dict[str, _FirstPage] = {}  # side -> its first change page, read early
        self.started: dict[str, datetime] = {}  # side -> when that read started
        self.retry_skips: list[Op] = []  # a retry's failures that have nothing to retry (``retry_failures``)
        for side in ("left", "right"):  # whether this run reads a side in parallel (offset pages): see below
            flags = getattr(run.clients[side], "last_read_parallel", None)
            if isinstance(flags, dict):
                flags.pop(self.api(side), None)

    def api(self, side: str) -> str:
        return getattr(self.module, side)

    # -- deletes ---------------------------------------------------------------------------------
    def read_deletes(self) -> None:
        if self.initial or self.r.retry is not None:
            return  # nothing is linked yet: the deleted feeds cannot matter
        try:
            since: dict[str, datetime | None] = {}
            for side in ("left", "right"):
                s = _parse(self.store.get_cursor(self.name, self.module.name, side, "deleted"))
                since[side] = s - OVERLAP if s else None

            def feed(side: str) -> list[Any]:
                return [d for page in self.r.clients[side].list_deleted(self.api(side), since[side]) for d in page]

            with ThreadPoolExecutor(max_workers=2) as pool:  # the two apps' deleted feeds at the same time
                feeds = {side: pool.submit(feed, side) for side in ("left", "right")}
                for side in ("left", "right"):
                    self.deleted[side].extend(feeds[side].result())
            for side in ("left", "right"):
                self.reread_after_parallel_read(side)
            links = {s: self.store.get_links(self.name, self.module.name, side=s,
                                             ids=[d.id for d in self.deleted[s]]) for s in ("left", "right")}
            assoc: dict[tuple[str, str], int] = {}
            for side in ("left", "right"):
                pref = self.module.on_delete_left if side == "left" else self.module.on_delete_right
                if pref != "delete-if-no-associates":
                    continue
                osd = other(side)
                for d in self.deleted[side]:
                    link = links[side].get(d.id)
                    if link is None:
                        continue
                    partner = link.right_id if side == "left" else link.left_id
                    if not partner.startswith(TOMBSTONE):
                        assoc[(osd, partner)] = self.r.clients[osd].count_associates(self.api(osd), partner)
            self.delete_ops = plan_deletes(self.m, {s: [d.id for d in self.deleted[s]] for s in ("left", "right")},
                                           links, assoc)
        except AppError as exc:
            self.error = exc
            self.delete_ops = []

    # Parallel reads. A client that reads a module's pages at offsets, all at once (Bigin/CRM COQL),
    # can miss a record when another one is deleted during the read (the later pages shift by one).
    # Such a read leaves its time window and the cursor it started from (cursor kind PARALLEL); the
    # next run, seeing in the deleted feed a deletion inside that window, reads the side again from
    # that older cursor (no writes: the merge finds the values in place), so no record stays unsynced.
    # And since such pages are not in Modified_Time order, the cursor never passes the read's start.
    def parallel_read(self, side: str) -> bool:
        flags = getattr(self.r.clients[side], "last_read_parallel", None)
        return bool(isinstance(flags, dict) and flags.get(self.api(side)))

    def reread_after_parallel_read(self, side: str) -> None:
        raw = self.store.get_cursor(self.name, self.module.name, side, PARALLEL)
        if not raw:
            return
        try:
            start_s, end_s, prev = raw.split("|", 2)
            start, end = _parse(start_s), _parse(end_s)
        except ValueError:
            return
        if start is None or end is None:
            return
        hits = [d for d in self.deleted[side] if start - SETTLE <= d.deleted_at <= end + SETTLE]
        if not hits:
            return
        log.info("sync %s.%s: %d record(s) of the %s side were deleted during the last run's parallel read; "
                 "reading its changes again from %s", self.name, self.module.name, len(hits), side,
                 prev or "the start")
        self.cursor[side] = prev or None
        first = self.first.pop(side, None)
        if first is not None:  # read early from the newer cursor: read again
            first.discard()
            self.started.pop(side, None)

    def delete_count(self) -> int:
        return sum(1 for o in self.delete_ops if o.kind == "delete")

    # -- main --------------------------------------------------------------------------------------
    def run(self) -> None:
        ex = self.ex = Executor(self)
        try:
            if not self.r.dry_run:
                self.start_history()
            if self.error is not None:
                raise self.error
            if not self.r.dry_run:
                self.resolve_journal()
            ops = list(self.delete_ops) if self.r.retry is None else []
            if self.r.halt_deletes and any(o.kind == "delete" for o in ops):
                ops = [o for o in ops if o.kind != "delete"]
                self.rep.status = "halted"
                self.rep.message = self.r.report.message
            ex.execute(ops)
            for side in ("left", "right"):  # a side the deletes wrote to is read again from its start
                if side in self.first and not self.r.dry_run and \
                        any(o.kind == "delete" and o.target == side for o in ops):
                    self.first.pop(side).discard()
                    self.started.pop(side, None)
            try:
                self.sync_changes(ex)
            finally:
                if self.ahead is not None:
                    self.ahead.close()
            if not self.r.dry_run and self.r.retry is None:
                self.move_cursors()
        except AppError as exc:
            self.rep.status = "failed"
            self.rep.message = f"{type(exc).__name__}: {exc}"
            log.warning("sync %s.%s stopped: %s", self.name, self.module.name, exc)
        finally:
            ex.close()
            for first in self.first.values():  # read early, never used (the module stopped before)
                first.discard()
            self.first.clear()
            for s in ("left", "right"):
                self.rep.api_calls += self.r.calls(s) - self.calls0[s]
            if not self.r.dry_run:
                self.finish_history()

    ahead: "_ReadAhead | None" = None

    def reads(self) -> tuple[bool, dict[str, datetime | None], dict[str, bool]]:
        """(full read?, changed since per side, side not read)."""
        full = self.initial or self.r.full
        since = {s: (None if full or self.cursor[s] is None else _parse(self.cursor[s]) - OVERLAP)
                 for s in ("left", "right")}
        # a side whose changes cannot flow anywhere (one-way modules) is read only in full runs, for
        # matching: its echo of our own writes then costs no read either
        skip = {side: self.r.retry is not None or (not full and not self.m.flows[side]) for side in ("left", "right")}
        return full, since, skip

    def start_reads(self) -> None:
        """Start reading the first change page of each side now (while the deleted feeds are read)."""
        _, since, skip = self.reads()
        for side in ("left", "right"):
            if not skip[side]:
                self.started[side] = _now(self.r.clock)
                self.first[side] = _FirstPage(self._list(side, since))

    def _list(self, side: str, since: dict[str, datetime | None]) -> Iterable[list[Record]]:
        return self.r.clients[side].list_changed(self.api(side), since[side], fields=self.m.fields(side),
                                                 filter=self.r.filter_for(side, self.module, False))

    def _pages(self, side: str, since: dict[str, datetime | None]) -> Iterable[list[Record]]:
        first = self.first.pop(side, None)
        return first.pages() if first is not None else self._list(side, since)

    def sync_changes(self, ex: "Executor") -> None:
        full, since, _ = self.reads()
        self.maxmod: dict[str, datetime | None] = {"left": None, "right": None}
        now = _now(self.r.clock)
        self.read_start = {s: self.started.get(s, now) for s in ("left", "right")}
        deleted_ids = {s: {d.id for d in self.deleted[s]} for s in ("left", "right")}
        # what the run holds while it plans: in memory while small, in a temporary file beyond
        ws = self.ws = Workset(self.m, deleted=deleted_ids, initial=full, directory=_state_dir(self.store))
        try:
            self._sync_changes(ex, ws, full, since)
        finally:
            ws.close()

    def _sync_changes(self, ex: "Executor", ws: Workset, full: bool, since: dict[str, datetime | None]) -> None:
        n = 0
        skip = self.reads()[2]
        self.skipped_read = skip
        # initial/full runs sync records created within initial_sync.created_within, but read (and
        # index for matching) older ones too: a recent record is never created again beside an old twin
        floor = self.r.now - timedelta(days=self.module.created_within_days) if full else None
        self.floor = floor
        # the left side is read ahead by a thread from now on: while the right side is read (up to
        # READ_AHEAD pages wait in memory until the right is indexed), then READ_ON pages ahead of planning
        if "left" not in self.started:
            self.read_start["left"] = _now(self.r.clock)
        self.ahead = None if skip["left"] else _ReadAhead(self._pages("left", since), limit=READ_AHEAD)
        # the right side, in full (its changes since the cursor), with the links of its records;
        # linked records are indexed too: a new record matching one is ALREADY_LINKED, never a duplicate
        # a module with no link yet (a first run) has none to read for its pages: a link made by this run
        # is one of a record planned already (``ws.done``), which a page read again never plans twice
        linked = self.store.has_links(self.name, self.module.name)
        ws.begin_read("right")
        unlinked_right = False
        unchanged = self._unchanged_right(ws, full)
        for page in ([] if skip["right"] else self._pages("right", since)):
            recent: list[Record] = []
            older: list[Record] = []
            for rec in page:
                (older if floor is not None and rec.created is not None and rec.created < floor else recent).append(rec)
            self._seen("right", page)
            rlinks = self.store.get_links(self.name, self.module.name, side="right",
                                          ids=[r.id for r in page]) if page and linked else {}
            unlinked_right = unlinked_right or any(r.id not in rlinks for r in page)
            if unchanged is not None and rlinks:
                recent, rlinks = unchanged(recent, rlinks)
            ws.add("right", recent, rlinks, changed=True)
            if older:
                ws.add("right", older, rlinks)
            n += len(page)
            self.tick("read right", n)
        retried = self.retry_failures(lambda ids: ws.missing_changed("right", ids), "right")
        if retried:
            rlinks = self.store.get_links(self.name, self.module.name, side="right", ids=[r.id for r in retried])
            unlinked_right = unlinked_right or any(r.id not in rlinks for r in retried)
            ws.add("right", retried, rlinks, changed=True)
        ws.seal("right")
        unlinked_right = unlinked_right and bool(self.module.match)
        searched = {"left": 0, "right": 0}
        self.full_index = {"left": full, "right": full}
        # stream the left side: plan and execute page by page
        n = 0
        if self.ahead is not None:
            self.ahead.set_limit(READ_ON)
        pages = [] if self.ahead is None else self.ahead
        extra = self.retry_failures(lambda ids: list(ids), "left")
        buffer = _Buffer(ex, BATCH * max(self.r.concurrency("left"), self.r.concurrency("right")))
        if self.retry_skips:
            _add(buffer, self.retry_skips)
        for page in _chain(pages, [extra] if extra else []):
            page = self.cancellations(page)
            self._seen("left", page)
            llinks = self.store.get_links(self.name, self.module.name, side="left", ids=[r.id for r in page]) \
                if linked else {}
            if unlinked_right:  # only unlinked right records can still match a left one: else keep memory flat
                ws.add("left", page, llinks)
            read = len(page)
            if floor is not None:
                page = [r for r in page if r.created is None or r.created >= floor]
            recs = {rec.id: rec for rec in page}
            # the links of the records planned (all of the page's when none is older than the floor)
            plinks = llinks if len(page) == read else {k: v for k, v in llinks.items() if k in recs}
            if self.may_search("left"):
                self.find_candidates("left", [r for r in page if r.id not in llinks], searched)
            inp = ws.plan_input("left", recs, plinks, partners=True)
            ops = _plan(inp, ("left",), ws.done)
            ws.after_page()
            # writes to the left wait until its pages are read: a record written mid-read moves in the
            # app's Modified_Time order and would shift the pages still to come (records skipped);
            # only the right side's flows write to the left
            if self.m.flows["right"]:
                later = {o.pair for o in ops
                         if o.target == "left" and o.kind in ("create", "update", "delete") and o.pair}
                if later:
                    ws.defer([o for o in ops if o.pair in later])
                    ops = [o for o in ops if not o.pair or o.pair not in later]
            _add(buffer, ops)
            n += len(page)
            self.tick("sync", n)
        buffer.flush(drain=False)  # the right side's last batches stay in flight while the left's go out
        for chunk in ws.take_deferred():  # whole pairs together: a link commits only when all its writes succeeded
            _add(buffer, chunk)
        # the right side's leftovers (changed on the right only, or unlinked)
        if self.may_search("right"):
            count, few = ws.unlinked_leftovers("right", SEARCH_LIMIT - searched["left"])
            self.find_candidates("right", few, searched, count=count)
        for chunk, links in ws.leftovers("right", BATCH * 5):
            inp = ws.plan_input("right", chunk, links, partners=False)
            _add(buffer, _plan(inp, ("right",), ws.done))
            ws.after_page()
        buffer.flush()

    def _unchanged_right(self, ws: Workset, full: bool) -> Callable[..., tuple[list[Record], Mapping[str, Link]]] | None:
        """An incremental run's filter of the right side's changed records and their links: it leaves
        out each record that still holds its merge base (``right_at_base``: the echo of our own writes
        to the right) and its link, so the run does not hold them while the left side is planned.
        Planning such a record gives nothing, alone or with its left partner (the partner is merged
        with the link's base, which is what the record holds), as for any linked record that did not
        change; a new left record that matches it finds it by the search, as it finds any unchanged
        one. Kept: records of a failure (their retry), one read again after a changed copy of it (the
        later read replaces it), and every record of a full read, or of a module whose new left records
        are not looked up on the right (there, held right records are the only match candidates).
        None: keep every record (also when the store cannot tell which records are failing)."""
        m = self.m
        failing = self.ex._failing()  # read once per module run, shared with the executor
        if full or failing is None or (self.module.match and not m.flows["left"]):
            return None
        left_names = frozenset(m.fields("left"))
        keep = failing.get("right", set())

        def held(recs: list[Record], links: Mapping[str, Link]) -> tuple[list[Record], Mapping[str, Link]]:
            drop = set()
            for rec in recs:
                ln = links.get(rec.id)
                if ln is not None and rec.id not in keep and right_at_base(m, rec.values, ln, left_names):
                    drop.add(rec.id)
            if drop:  # a record read again replaces its held copy: only those not held yet are left out
                drop.intersection_update(ws.missing_changed("right", drop))
            if not drop:
                return recs, links
            return [r for r in recs if r.id not in drop], {k: v for k, v in links.items() if k not in drop}

        return held

    def cancellations(self, page: list[Record]) -> list[Record]:
        """Bookings: a cancelled appointment is a delete of the left record (per ``on_delete``)."""
        if self.r.integration.left.app != "zoho_bookings" or self.module.left != "appointments":
            return page
        gone = [r.id for r in page if str(r.values.get("status") or "").lower() in ("cancel", "cancelled", "canceled")]
        if not gone:
            return page
        links = {"left": self.store.get_links(self.name, self.module.name, side="left", ids=gone), "right": {}}
        ops = plan_deletes(self.m, {"left": gone}, links, {})
        if self.r.halt_deletes:
            ops = [o for o in ops if o.kind != "delete"]
        self.ex.execute(ops)
        return [r for r in page if r.id not in set(gone)]

    def may_search(self, side: str) -> bool:
        """Whether unlinked records of ``side`` would be looked up on the other side (incremental runs)."""
        return bool(self.module.match) and not self.full_index[other(side)] and bool(self.m.flows[side])

    def find_candidates(self, side: str, unlinked: list[Record], searched: dict[str, int], *,
                        count: int | None = None) -> None:
        """Incremental runs: candidates on the other side for unlinked records (search, or one full
        read). ``count``: how many are unlinked when ``unlinked`` does not list them (too many)."""
        osd = other(side)
        n = len(unlinked) if count is None else count
        if not n or not self.may_search(side):
            return
        ws = self.ws
        if searched[osd] + n > SEARCH_LIMIT:
            for page in self.r.clients[osd].list_changed(self.api(osd), None, fields=self.m.fields(osd),
                                                         filter=self.r.filter_for(osd, self.module, False)):
                if page:
                    ws.add(osd, page, self.store.get_links(self.name, self.module.name, side=osd,
                                                           ids=[r.id for r in page]))
            self.full_index[osd] = True
            return
        searched[osd] += n
        found: list[Record] = []
        for rec in unlinked:
            probe = probe_values(self.m, side, rec.values)
            for k, p in zip(self.module.match, probe):
                if not p:
                    continue
                hits = self.r.clients[osd].search(self.api(osd), getattr(k, osd), rec.values.get(getattr(k, side)))
                if hits:
                    found.extend(hits)
                    break
        if found:
            ws.add(osd, found, self.store.get_links(self.name, self.module.name, side=osd,
                                                    ids=[r.id for r in found]))

    def retry_failures(self, missing: Callable[[list[str]], list[str]], side: str) -> list[Record]:
        """Records that failed before, re-read (current values) to be planned again; ``missing`` keeps
        the ids not read already."""
        wanted = self.r.retry
        fails = [f for f in self.store.list_failures(self.name)
                 if f.module == self.module.name and f.side == side and f.code != CONFLICT_SKIPPED
                 and (not wanted or str(f.id) in wanted or f.record_id in wanted)]
        if fails and not self.m.flows[side]:
            # a duplicate logged ALREADY_LINKED on a side whose records flow nowhere in this module has
            # nothing to retry: it is skipped (as a run plans it now) and its failure resolved
            dups = list(dict.fromkeys(f.record_id for f in fails if f.code == ALREADY_LINKED))
            self.retry_skips.extend(
                Op("skip", side, source_id=rid, code=ALREADY_LINKED,
                   message=f"a duplicate: nothing flows from the {side} in this module, so it is left as it is")
                for rid in dups)
            fails = [f for f in fails if f.code != ALREADY_LINKED]
        ids = [f.record_id for f in fails]
        ids = missing(ids) if ids else ids
        if not ids:
            return []
        return list(self.r.clients[side].get_many(self.api(side), ids))

    def _seen(self, side: str, page: list[Record]) -> None:
        """The cursor's candidate: the latest Modified_Time read on ``side``, one max() per page."""
        if page:
            latest = max(map(_modified, page))
            cur = self.maxmod[side]
            if cur is None or latest > cur:
                self.maxmod[side] = latest

    def tick(self, phase: str, n: int) -> None:
        if self.r.progress is not None:
            self.r.progress(self.module.name, phase, n, None)

    def move_cursors(self) -> None:
        now = _now(self.r.clock)
        with self.store.transaction():
            for side in ("left", "right"):
                prev = _parse(self.cursor[side])
                seen = self.maxmod.get(side)
                if seen is not None and self.read_start[side] - seen > SETTLE:
                    seen = seen.replace(microsecond=0) + SECOND  # the boundary second has settled
                parallel = self.parallel_read(side)
                if parallel and seen is not None:  # a change during the read may sit on a page read before it
                    seen = min(seen, (self.read_start[side] - SETTLE).replace(microsecond=0))
                if parallel:
                    self.store.set_cursor(self.name, self.module.name, side,
                                          f"{_fmt(self.read_start[side])}|{_fmt(now)}|{self.cursor[side] or ''}",
                                          PARALLEL)
                elif not getattr(self, "skipped_read", {}).get(side, True) and \
                        self.store.get_cursor(self.name, self.module.name, side, PARALLEL):
                    self.store.set_cursor(self.name, self.module.name, side, "", PARALLEL)
                if prev is None and seen is None:
                    value = self.r.now - SETTLE
                else:
                    value = max(x for x in (prev, seen) if x is not None)
                self.store.set_cursor(self.name, self.module.name, side, _fmt(value))
                dprev = _parse(self.store.get_cursor(self.name, self.module.name, side, "deleted"))
                dseen = max((d.deleted_at for d in self.deleted[side]), default=None)
                if self.r.halt_deletes and any(o.kind == "delete" for o in self.delete_ops):
                    dseen = None  # held-back deletes are read again next run
                # the apps' deleted times have whole seconds: a first cursor at the run's clock (with
                # microseconds) would hide a delete made later in that same second, for good
                dval = max(x for x in (dprev, dseen) if x is not None) if (dprev or dseen) else \
                    (self.r.now - SETTLE).replace(microsecond=0)
                self.store.set_cursor(self.name, self.module.name, side, _fmt(dval), "deleted")

    # -- history -------------------------------------------------------------------------------------
    def start_history(self) -> None:
        # runs of this module still "running" were left by a process that died (runs are serialised by
        # the state lock): say so, instead of showing them in progress forever
        for old in self.store.list_runs(self.name):
            if old.status == "running" and old.module == self.module.name and old.id is not None:
                self.store.finish_run(replace(old, ended=_now(self.r.clock), status="interrupted",
                                              message="stopped before the end (the process was killed); "
                                                      "a later run picked its work up"))
        for d in ("left-to-right", "right-to-left"):
            rr = RunRecord(id=None, integration=self.name, module=self.module.name, direction=d,
                           started=_now(self.r.clock), status="running")
            self.history[d] = replace(rr, id=self.store.start_run(rr))

    def finish_history(self) -> None:
        calls = {"left-to-right": self.r.calls("right") - self.calls0["right"] + 0,
                 "right-to-left": self.r.calls("left") - self.calls0["left"]}
        for d, rr in self.history.items():
            c = self.rep.counts[d]
            self.store.finish_run(replace(
                rr, ended=_now(self.r.clock), created=c["created"], updated=c["updated"], deleted=c["deleted"],
                linked=c["linked"], conflicts=c["conflicts"], failed=c["failed"], api_calls=calls[d],
                status=self.rep.status if self.rep.status != "paused" else "ok", message=self.rep.message))

    # -- crash recovery ------------------------------------------------------------------------------
    def resolve_journal(self) -> None:
        for entry in self.store.journal_pending(self.name, self.module.name):
            if entry.operation == "create":
                self.resolve_creates(entry)
            # updates and deletes: the cursor did not move past their source records, so this run reads
            # them again; the merge sees the target already holds the values (zero writes), and a
            # delete is planned again from the deleted feed.
            self.store.journal_done(entry.id)  # type: ignore[arg-type]

    def resolve_creates(self, entry: JournalEntry) -> None:
        target = entry.target
        src = other(target)
        client = self.r.clients[target]
        found_links: list[Link] = []
        for item in entry.payload:
            sid = str(item.get("source_id"))
            if self.store.get_link(self.name, self.module.name, **{f"{src}_id": sid}) is not None:
                continue
            values = item.get("values") or {}
            match = None
            for fname, val in item.get("keys") or ():
                hits = [h for h in client.search(self.api(target), fname, val)
                        if all(self.m.same(target, k, v, h.values.get(k)) for k, v in values.items()
                               if k in h.values)]
                hits = [h for h in hits if self.store.get_link(self.name, self.module.name,
                                                               **{f"{target}_id": h.id}) is None]
                if hits:
                    match = hits[0]
                    break
            if match is None:
                continue  # never created: this run's plan creates it again
            snap_t = self.m.snapshot(target, match.values)
            snap_s = journal_source_values(item)
            found_links.append(Link(left_id=sid if src == "left" else match.id,
                                    right_id=match.id if src == "left" else sid,
                                    left_values=snap_s if src == "left" else snap_t,
                                    right_values=snap_t if src == "left" else snap_s))
        if found_links:
            with self.store.transaction():
                self.store.put_links(self.name, self.module.name, found_links)
                for side in ("left", "right"):
                    self.store.resolve_failures(self.name, self.module.name, side,
                                                [getattr(link, f"{side}_id") for link in found_links])


class _ReadAhead:
    """The pages of ``pages`` read by a background thread ahead of the consumer: the next page is on
    the wire while this one is planned and written (page tokens make reads of one side serial).
    At most ``limit`` pages wait in memory (None: no limit). A full buffer is refilled once the
    consumer has taken half of it, not after each page: every wake-up of a thread costs CPU (tens of
    µs on a busy machine), so the reader wakes once per ``limit // 2`` pages and the consumer only
    when it found the buffer empty."""

    def __init__(self, pages: Iterable[list[Record]], *, limit: int | None = 2):
        self.limit = limit
        self._cv = threading.Condition()
        self._buf: collections.deque[list[Record]] = collections.deque()
        self._done = False
        self._stop = False
        self._exc: BaseException | None = None
        self._full = False  # the reader waits for the buffer to drain to half its limit
        self._thread = threading.Thread(target=self._produce, args=(pages,), name="syncform-read-ahead",
                                        daemon=True)
        self._thread.start()

    def _produce(self, pages: Iterable[list[Record]]) -> None:
        try:
            for page in pages:
                with self._cv:
                    if self.limit is not None and len(self._buf) >= self.limit:
                        self._full = True
                        while not self._stop and self.limit is not None and len(self._buf) > self.limit // 2:
                            self._cv.wait()
                        self._full = False
                    if self._stop:
                        return
                    self._buf.append(page)
                    if len(self._buf) == 1:
                        self._cv.notify_all()  # the consumer may be waiting for a page
        except BaseException as exc:  # raised in the consumer, after the pages read before it
            with self._cv:
                self._exc = exc
        finally:
            with self._cv:
                self._done = True
                self._cv.notify_all()

    def set_limit(self, limit: int | None) -> None:
        with self._cv:
            self.limit = limit
            self._cv.notify_all()

    def __iter__(self) -> Iterator[list[Record]]:
        while True:
            with self._cv:
                while not self._buf and not self._done:
                    self._cv.wait()
                if self._buf:
                    page = self._buf.popleft()
                    if self._full and (self.limit is None or len(self._buf) <= self.limit // 2):
                        self._cv.notify_all()  # the reader refills the buffer
                elif self._exc is not None:
                    raise self._exc
                else:
                    return
            yield page

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._buf.clear()
            self._cv.notify_all()
        self._thread.join(timeout=10)


class _FirstPage:
    """The first page of ``pages`` read by a thread from now on; ``pages()`` yields it, then the rest
    from the same iterator (page tokens carry on). ``discard()`` waits for the read and drops it."""

    def __init__(self, pages: Iterable[list[Record]]):
        self._it = iter(pages)
        self._first: list[Record] | None = None
        self._exc: BaseException | None = None
        self._done = threading.Event()
        threading.Thread(target=self._read, name="syncform-first-page", daemon=True).start()

    def _read(self) -> None:
        try:
            self._first = next(self._it, None)
        except BaseException as exc:  # raised in the consumer
            self._exc = exc
        finally:
            self._done.set()

    def pages(self) -> Iterator[list[Record]]:
        self._done.wait()
        if self._exc is not None:
            raise self._exc
        if self._first is None:
            return
        first, self._first = self._first, None
        yield first
        yield from self._it

    def discard(self) -> None:
        self._done.wait()
        self._first = None
        close = getattr(self._it, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                pass


def _chain(*iterables):
    for it in iterables:
        yield from it


def _state_dir(store: StateStore) -> str | None:
    """The directory of a SQLite state database (None for any other state): a module run's working set
    spills there (else to a temp dir), and its generated planners are kept in its ``cache``."""
    path = getattr(store, "path", None)
    if isinstance(path, str) and path and path != ":memory:" and not path.startswith("file:"):
        return os.path.dirname(os.path.abspath(path))
    return None


def _add(buffer: _Buffer, ops: list[Op]) -> None:
    """Ops into the write buffer, which flushes on writes; links and other ops without a write (a
    first sync that only matches) are carried out once ``BUFFER_OPS`` wait, whole batches only."""
    buffer.add(ops)
    if len(buffer.ops) > BUFFER_OPS:
        buffer.flush(whole_batches=True)


def _plan(inp: PlanInput, order: tuple[str, ...], done: dict[str, set[str]]) -> list[Op]:
    return plan_changes(inp, order, done)


def sync_integration(integration: Integration, *, store: StateStore, left: AppClient, right: AppClient,
                     modules: Iterable[str] | None = None, full: bool = False, dry_run: bool = False,
                     clock: Callable[[], datetime] | None = None, progress: Progress | None = None) -> SyncReport:
    """Run (or, with ``dry_run``, only plan) one sync of ``integration``; see the module docstring."""
    return Run(integration, store=store, left=left, right=right, full=full, dry_run=dry_run, clock=clock,
               progress=progress).run(modules)


def retry_failures(integration: Integration, *, store: StateStore, left: AppClient, right: AppClient,
                   ids: Iterable[Any] | None = None, modules: Iterable[str] | None = None,
                   clock: Callable[[], datetime] | None = None, progress: Progress | None = None) -> SyncReport:
    """Retry failed records (all, or those whose failure id or record id is in ``ids``): their current
    values are re-read first (get_many), then planned and executed like any change. Cursors stay."""
    run = Run(integration, store=store, left=left, right=right, full=False, dry_run=False, clock=clock,
              progress=progress)
    run.retry = set(ids or ())
    wanted = {str(i) for i in run.retry} | {i for i in run.retry if isinstance(i, int)}
    run.retry = wanted
    if modules is None:
        failing = {f.module for f in store.list_failures(integration.name)}
        modules = [m.name for m in integration.modules if m.name in failing]
        if not modules:
            return run.report
    return run.run(modules)


def view_side(integration: Integration) -> str | None:
    """The side a module's ``filter: {view}`` selects records on.

    Seeds 003 and 004 choose one CRM list view; so the view belongs to the Zoho CRM side when there is
    one, else to the Bigin side (left first when both are).
    """
    for app in ("zoho_crm", "bigin"):
        for side in ("left", "right"):
            if getattr(integration, side).app == app:
                return side
    return None
