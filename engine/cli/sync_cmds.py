"""sync, history, failures, retry, slots: parse, call engine.sync, render."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import click

from engine.cli.common import Globals


def _session(ctx: click.Context) -> Any:
    from engine.workspace import open_session

    g: Globals = ctx.obj or Globals()
    return open_session(root=".", state_url=g.state_url, variables=g.variables, var_files=g.var_files)


class _Bar:
    """A progress line per module on a terminal (stderr); silent otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = ""

    def __call__(self, module: str, phase: str, done: int, total: int | None) -> None:
        if not self.tty:
            return
        width = 24
        if total:
            filled = int(width * min(done, total) / total)
            bar = "█" * filled + "░" * (width - filled)
            text = f"\r  {module:<14} {bar} {done}/{total} {phase}"
        else:
            text = f"\r  {module:<14} {phase}: {done} records"
        click.echo(text.ljust(len(self.last)), err=True, nl=False)
        self.last = text

    def end(self) -> None:
        if self.tty and self.last:
            click.echo("\r" + " " * len(self.last) + "\r", err=True, nl=False)
            self.last = ""


def render_report(rep: Any) -> str:
    lines = []
    head = f"{rep.integration}" + (" (dry run: nothing written)" if rep.dry_run else "")
    if rep.paused:
        return f"{rep.integration}: paused; nothing exchanged"
    lines.append(head)
    for m in rep.modules:
        status = "" if m.status == "ok" else f"  [{m.status}] {m.message}"
        lines.append(f"  {m.module}{' (initial)' if m.initial else ''}: {m.api_calls} API calls{status}")
        for d, c in m.counts.items():
            shown = ", ".join(f"{k} {v}" for k, v in c.items() if v)
            lines.append(f"    {d}: {shown or 'no changes'}")
        if rep.dry_run:
            for kind, items in sorted(m.samples.items()):
                for it in items:
                    vals = it.get("values") or {}
                    desc = ", ".join(f"{k}={v}" for k, v in list(vals.items())[:4])
                    ident = it.get("target_id") or it.get("source_id") or ""
                    extra = f" {it['code']}" if it.get("code") else ""
                    lines.append(f"      {kind:<8} {it['target']:<5} {ident}{extra} {desc}".rstrip())
    if rep.message:
        lines.append(f"  {rep.message}")
    return "\n".join(lines)


@click.command("sync")
@click.argument("name", required=False)
@click.option("--module", "modules", multiple=True, metavar="M", help="Only this module (repeatable).")
@click.option("--full", is_flag=True, help="Re-read everything (still never rewrites unchanged records).")
@click.option("--dry-run", is_flag=True, help="Show the record plan; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
@click.pass_context
def sync(ctx: click.Context, name: str | None, modules: tuple[str, ...], full: bool, dry_run: bool,
         as_json: bool) -> int:
    """Run the sync of deployed integrations now (all, or NAME)."""
    from engine.sync import sync_integration
    from engine.sync.wiring import deployed_integrations

    session = _session(ctx)
    try:
        store = session.store()
        integrations = deployed_integrations(store, name)
        if not integrations:
            click.echo("No deployed integrations (deploy with: syncform apply).", err=True)
            return 0
        reports = []
        failed = False
        lock = None if dry_run else store.acquire_lock("sync")
        if lock is not None and lock.note:
            click.echo(f"Note: {lock.note}", err=True)
        try:
            for integ in integrations:
                bar = _Bar()
                rep = sync_integration(integ, store=store, left=session.client(integ.left.connection),
                                       right=session.client(integ.right.connection), modules=modules or None,
                                       full=full, dry_run=dry_run, progress=bar)
                bar.end()
                reports.append(rep)
                failed = failed or not rep.ok
                if not as_json:
                    click.echo(render_report(rep))
        finally:
            if lock is not None:
                store.release_lock(lock.id)
        if as_json:
            click.echo(json.dumps([r.as_dict() for r in reports], indent=2, default=str))
        return 1 if failed else 0
    finally:
        session.close()


@click.command("history")
@click.argument("name", required=False)
@click.option("--days", type=int, default=7, show_default=True, help="Runs of the last N days.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def history(ctx: click.Context, name: str | None, days: int, as_json: bool) -> int:
    """Sync history: per run, module and direction, what was added, updated, deleted or failed."""
    session = _session(ctx)
    try:
        store = session.store()
        if name is not None:
            from engine.sync.wiring import deployed_integrations

            deployed_integrations(store, name)
        since = datetime.now(timezone.utc) - timedelta(days=days)
        runs = store.list_runs(name, since=since)
        if as_json:
            click.echo(json.dumps([_run_dict(r) for r in runs], indent=2, default=str))
            return 0
        if not runs:
            click.echo(f"No sync runs in the last {days} day(s).")
            return 0
        click.echo(f"{'started':<20} {'integration':<16} {'module':<14} {'direction':<14} "
                   f"{'add':>5} {'upd':>5} {'del':>5} {'link':>5} {'conf':>5} {'fail':>5} {'calls':>6}  status")
        for r in runs:
            click.echo(f"{r.started:%Y-%m-%d %H:%M:%S}  {r.integration:<16} {r.module:<14} {r.direction:<14} "
                       f"{r.created:>5} {r.updated:>5} {r.deleted:>5} {r.linked:>5} {r.conflicts:>5} "
                       f"{r.failed:>5} {r.api_calls:>6}  {r.status}{' ' + r.message if r.message else ''}")
        return 0
    finally:
        session.close()


def _run_dict(r: Any) -> dict[str, Any]:
    return {"id": r.id, "integration": r.integration, "module": r.module, "direction": r.direction,
            "started": r.started.isoformat() if r.started else None,
            "ended": r.ended.isoformat() if r.ended else None, "created": r.created, "updated": r.updated,
            "deleted": r.deleted, "linked": r.linked, "conflicts": r.conflicts, "failed": r.failed,
            "api_calls": r.api_calls, "status": r.status, "message": r.message}


def _failure_dict(f: Any) -> dict[str, Any]:
    return {"id": f.id, "integration": f.integration, "module": f.module, "side": f.side,
            "record_id": f.record_id, "code": f.code, "app_code": f.app_code, "message": f.message,
            "first_seen": f.first_seen.isoformat() if f.first_seen else None,
            "last_seen": f.last_seen.isoformat() if f.last_seen else None, "attempts": f.attempts}


@click.command("failures")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def failures(ctx: click.Context, name: str | None, as_json: bool) -> int:
    """The failure log: records that could not be synced, with their code; retry with syncform retry."""
    session = _session(ctx)
    try:
        store = session.store()
        if name is not None:
            from engine.sync.wiring import deployed_integrations

            deployed_integrations(store, name)
        items = store.list_failures(name)
        if as_json:
            click.echo(json.dumps([_failure_dict(f) for f in items], indent=2))
            return 0
        if not items:
            click.echo("No failed records.")
            return 0
        for f in items:
            code = f.code + (f" ({f.app_code})" if f.app_code else "")
            when = f"{f.last_seen:%Y-%m-%d %H:%M:%S}" if f.last_seen else ""
            click.echo(f"#{f.id:<5} {when}  {f.integration}.{f.module} {f.side} {f.record_id}  {code}: "
                       f"{f.message}  (attempts {f.attempts})")
        click.echo(f"{len(items)} failed record(s); retry with: syncform retry {name or 'NAME'} --all")
        return 0
    finally:
        session.close()


@click.command("retry")
@click.argument("args", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Retry every failed record.")
@click.pass_context
def retry(ctx: click.Context, args: tuple[str, ...], all_: bool) -> int:
    """Retry failed records: syncform retry [NAME] [--all | ID…] (IDs from syncform failures)."""
    from engine.errors import UsageError
    from engine.sync import retry_failures
    from engine.sync.wiring import deployed_integrations

    session = _session(ctx)
    try:
        store = session.store()
        names = {d.name for d in store.list_deployed()}
        name = args[0] if args and args[0] in names else None
        ids = list(args[1:] if name else args)
        if all_ and ids:  # "retry NAME --all" with a NAME that is not deployed
            deployed_integrations(store, ids[0])
        if not all_ and not ids:
            raise UsageError("retry: name failure ids (from syncform failures) or pass --all")
        integrations = deployed_integrations(store, name)
        failed = False
        lock = store.acquire_lock("retry")
        if lock.note:
            click.echo(f"Note: {lock.note}", err=True)
        try:
            for integ in integrations:
                rep = retry_failures(integ, store=store, left=session.client(integ.left.connection),
                                     right=session.client(integ.right.connection), ids=None if all_ else ids)
                if rep.modules:
                    click.echo(render_report(rep))
                failed = failed or not rep.ok
        finally:
            store.release_lock(lock.id)
        left = len(store.list_failures(name))
        click.echo(f"{left} failed record(s) remain.")
        return 1 if failed else 0
    finally:
        session.close()


@click.command("slots")
@click.option("--integration", "name", required=True, metavar="NAME")
@click.option("--service", required=True, metavar="S")
@click.option("--staff", required=True, metavar="T")
@click.option("--date", "day", required=True, metavar="D", help="YYYY-MM-DD or dd-MMM-yyyy")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def slots(ctx: click.Context, name: str, service: str, staff: str, day: str, as_json: bool) -> int:
    """Bookings' free slots minus the staff's busy Bigin events (when check_conflicts is on)."""
    from engine.errors import UsageError
    from engine.sync.mapping import MapError, parse_date
    from engine.sync.wiring import deployed_integrations, free_slots

    try:
        d = parse_date(day)
    except MapError:
        raise UsageError(f'--date "{day}": expected YYYY-MM-DD or dd-MMM-yyyy (e.g. 2026-03-02)') from None
    session = _session(ctx)
    try:
        (integ,) = deployed_integrations(session.store(), name)
        out = free_slots(integ, left=session.client(integ.left.connection),
                         right=session.client(integ.right.connection), service=service, staff=staff, day=d)
        if as_json:
            click.echo(json.dumps(out, indent=2))
        else:
            click.echo(" ".join(out["slots"]) if out["slots"] else "No free slots.")
            if out["blocked"]:
                click.echo(f"blocked by Bigin events: {' '.join(out['blocked'])}", err=True)
        return 0
    finally:
        session.close()
