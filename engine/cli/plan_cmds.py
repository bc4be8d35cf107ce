"""plan, apply, status, state, pause, resume, destroy, reconcile: parse, call engine.workspace, render."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from engine.cli.common import Globals


def _session(ctx: click.Context) -> Any:
    from engine.workspace import open_session

    g: Globals = ctx.obj or Globals()
    return open_session(root=".", state_url=g.state_url, variables=g.variables, var_files=g.var_files)


def _color(ctx: click.Context) -> bool:
    g: Globals = ctx.obj or Globals()
    return g.color


def _warnings(session: Any) -> None:
    """Plans stay short: validation warnings are counted here; ``syncform validate`` lists them."""
    if session.warnings:
        click.echo(f"{len(session.warnings)} validation warning(s): run syncform validate to see them", err=True)


def _progress(msg: str) -> None:
    click.echo(f"  … {msg}", err=True)


def _render(plan: Any, *, as_json: bool, markdown: bool, color: bool) -> str:
    from engine.plan.render import render_markdown, render_text

    data = plan.to_dict()
    if as_json:
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if markdown:
        return render_markdown(data)
    return render_text(data, color=color)


@click.command("plan")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("-out", "--out", "out", metavar="FILE", default=None, help="Save the plan (JSON) to apply it later.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes (0 none, 1 error).")
@click.option("--json", "as_json", is_flag=True, help="The canonical plan JSON.")
@click.option("--markdown", is_flag=True, help="Markdown for a pull request comment.")
@click.option("--refresh/--no-refresh", default=True, show_default=True,
              help="Read the apps' live field catalogs to detect drift (--no-refresh: state and specs only).")
@click.option("--preview", is_flag=True, help="Also show the record-level impact (the sync engine's dry run).")
@click.pass_context
def plan(ctx: click.Context, paths: tuple[str, ...], out: str | None, detailed_exitcode: bool, as_json: bool,
         markdown: bool, refresh: bool, preview: bool) -> int:
    """Show what apply would change: specs against state against the live apps."""
    from engine import workspace
    from engine.spec import fewer_collections

    if as_json and markdown:
        raise click.UsageError("--json and --markdown exclude each other")
    with _session(ctx) as s:
        with fewer_collections():  # specs, plan and its text are many small objects that all stay alive
            p = workspace.plan(s, paths, refresh=refresh)
            text = _render(p, as_json=as_json, markdown=markdown, color=_color(ctx))
        _warnings(s)
        click.echo(text, nl=False)
        if preview:
            from engine.plan.render import render_preview

            text = render_preview(workspace.preview(s, p))
            click.echo("\n" + text, nl=False, err=as_json)  # --json keeps stdout one JSON document
        if out:
            from engine.plan.model import save_plan

            save_plan(p, out)
            click.echo(f"\nSaved the plan to {out}. Apply exactly this plan with: syncform apply {out}", err=True)
    return 2 if detailed_exitcode and not p.empty else 0


def _is_planfile(arg: str) -> bool:
    """Specs are YAML: a ``.json`` argument is a plan file (load_plan then says when it is missing)."""
    path = Path(arg)
    if path.suffix == ".json":
        return True
    if not path.is_file():
        return False
    try:
        with path.open(encoding="utf-8") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return '"format_version"' in head


def _confirm(what: str) -> None:
    if not sys.stdin.isatty():
        raise click.ClickException(
            f"{what} needs approval and there is no terminal to ask: pass --auto-approve, or save a reviewed "
            "plan (syncform plan -out plans/x.json) and apply that file")
    answer = click.prompt(f"Do you want to {what}? Only 'yes' will be accepted", default="", show_default=False)
    if answer.strip() != "yes":
        raise click.ClickException(f"{what} cancelled.")


def _report(result: Any, plan: Any) -> int:
    for note in result.notes:
        click.echo(f"Note: {note}", err=True)
    failed = 0
    for r in result.results:
        mark = {"done": "✓", "skipped": "·", "failed": "✗"}[r.status]
        click.echo(f"  {mark} {r.message}")
        failed += r.status == "failed"
    s = plan.summary
    click.echo(f"\nApply complete: {s.add} added, {s.change} changed, {s.destroy} destroyed "
               f"(state serial {result.serial}).")
    if failed:
        click.echo(f"{failed} sync step(s) failed; the new configuration is recorded. See syncform failures, "
                   "then syncform sync to run them again.", err=True)
        return 1
    return 0


@click.command("apply")
@click.argument("args", nargs=-1, metavar="[PLANFILE|PATH…]")
@click.option("--auto-approve", is_flag=True, help="Apply without asking.")
@click.option("--no-sync", is_flag=True, help="Record the new configuration but run no sync.")
@click.option("--refresh/--no-refresh", default=True, help="Refresh live field catalogs when planning.")
@click.option("--lock-timeout", type=float, default=10.0, show_default=True, metavar="SECONDS",
              help="How long to wait for another apply to finish.")
@click.pass_context
def apply(ctx: click.Context, args: tuple[str, ...], auto_approve: bool, no_sync: bool, refresh: bool,
          lock_timeout: float) -> int:
    """Apply a saved plan, or plan the specs, show it, ask, and apply; then run the syncs it calls for."""
    from engine import workspace

    with _session(ctx) as s:
        if len(args) == 1 and _is_planfile(args[0]):
            from engine.plan.model import load_plan

            p = load_plan(args[0])
            click.echo(_render(p, as_json=False, markdown=False, color=_color(ctx)), nl=False)
            if not p.has_changes:
                click.echo("Nothing to apply.")
                return 0
            click.echo("")
            result = workspace.apply_plan(s, p, sync=not no_sync, check_specs=True, lock_timeout=lock_timeout,
                                          progress=_progress)
            return _report(result, p)
        if any(_is_planfile(a) for a in args):
            raise click.UsageError("give either one plan file or spec paths, not both")
        # plan, show, ask and apply under one lock: no other apply can land between plan and approval
        with workspace.locked(s, "apply", timeout=lock_timeout) as lock:
            if lock.note:
                click.echo(f"Note: {lock.note}", err=True)
            p = workspace.plan(s, args, refresh=refresh)
            _warnings(s)
            click.echo(_render(p, as_json=False, markdown=False, color=_color(ctx)), nl=False)
            if not p.has_changes:
                click.echo("Nothing to apply.")
                return 0
            if not auto_approve:
                _confirm("apply these changes")
            click.echo("")
            result = workspace.apply_plan(s, p, sync=not no_sync, progress=_progress, lock=lock)
        return _report(result, p)


@click.command("status")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def status(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """What is deployed: integrations, modules, links, cursors, last runs, the lock."""
    from engine import workspace

    with _session(ctx) as s:
        st = workspace.status(s, name)
    if as_json:
        click.echo(json.dumps(st, indent=2, ensure_ascii=False))
        return
    click.echo(f"state {st['state']} (serial {st['serial']})")
    if st["lock"]:
        lk = st["lock"]
        click.echo(f'locked by {lk["who"]}@{lk["host"]} (pid {lk["pid"]}) running "{lk["operation"]}" since '
                   f'{lk["since"]}; lock id {lk["id"]}')
    if st.get("specs_error"):
        click.echo(f"(cannot compare with the specs: {st['specs_error']})", err=True)
    if not st["integrations"]:
        click.echo("Nothing deployed yet: run syncform plan, then syncform apply.")
    for i in st["integrations"]:
        flag = "  PAUSED" if i["paused"] else ""
        flag += {"out-of-sync": "  OUT OF SYNC with the specs (syncform plan)",
                 "not-in-specs": "  NOT IN THE SPECS any more"}.get(i.get("sync_status") or "", "")
        click.echo(f"\n{i['name']}: {i['left']['app']}/{i['left']['connection']} ↔ "
                   f"{i['right']['app']}/{i['right']['connection']}{flag}  (applied {i['applied_at']})")
        for m in i["modules"]:
            run = m["last_run"]
            last = (f"last run {run['started']} {run['status']} (+{run['created']} ~{run['updated']} "
                    f"-{run['deleted']} ✗{run['failed']})") if run else "never synced"
            off = " (off)" if not m["enabled"] else ""
            click.echo(f"  {m['name']}{off}: {m['left']} {m['direction']} {m['right']}, {m['links']} links, "
                       f"{last}, {m['failures']} open failure(s)")


@click.group("state")
def state() -> None:
    """Inspect and repair the state: list, show NAME, rm NAME, unlock LOCK_ID."""


@state.command("list")
@click.pass_context
def state_list(ctx: click.Context) -> None:
    with _session(ctx) as s:
        store = s.store()
        click.echo(f"# {store.url} lineage {store.lineage()} serial {store.serial()}", err=True)
        for d in store.list_deployed():
            click.echo(f"{d.name}\t{d.spec_hash[:19]}\t{'paused' if d.paused else 'active'}\t"
                       f"{d.applied_at.isoformat() if d.applied_at else ''}")


@state.command("show")
@click.argument("name")
@click.pass_context
def state_show(ctx: click.Context, name: str) -> None:
    from engine import workspace

    with _session(ctx) as s:
        d = workspace.deployed(s, name)
        click.echo(json.dumps({"name": d.name, "spec_hash": d.spec_hash, "paused": d.paused,
                               "applied_at": d.applied_at.isoformat() if d.applied_at else None,
                               "spec": d.spec}, indent=2, ensure_ascii=False))


@state.command("rm")
@click.argument("name")
@click.pass_context
def state_rm(ctx: click.Context, name: str) -> None:
    """Forget NAME at once (no plan): links, cursors and journal go; records stay in both apps."""
    from engine import workspace

    with _session(ctx) as s:
        p = workspace.destroy_plan(s, name)
        workspace.apply_plan(s, p, sync=False, operation="state rm")
    click.echo(f"Removed {name} from the state.")


@state.command("unlock")
@click.argument("lock_id")
@click.pass_context
def state_unlock(ctx: click.Context, lock_id: str) -> None:
    """Remove a lock left by a process that is gone (the id is in the LockedError message)."""
    with _session(ctx) as s:
        s.store().force_unlock(lock_id)
    click.echo(f"Lock {lock_id} removed.")


@click.command("pause")
@click.argument("name")
@click.pass_context
def pause(ctx: click.Context, name: str) -> None:
    """Stop exchanging data; links and cursors are kept, so nothing changed meanwhile is lost."""
    from engine import workspace

    with _session(ctx) as s:
        changed = workspace.pause(s, name)
    click.echo(f"{name} paused." if changed else f"{name} was already paused.")


@click.command("resume")
@click.argument("name")
@click.pass_context
def resume(ctx: click.Context, name: str) -> None:
    """Exchange data again; the next sync picks up what changed while paused."""
    from engine import workspace

    with _session(ctx) as s:
        changed = workspace.resume(s, name)
    click.echo(f"{name} resumed." if changed else f"{name} was not paused.")


@click.command("destroy")
@click.argument("name")
@click.option("--auto-approve", is_flag=True)
@click.pass_context
def destroy(ctx: click.Context, name: str, auto_approve: bool) -> int:
    """Stop and forget NAME. Synced records stay in both apps."""
    from engine import workspace

    with _session(ctx) as s, workspace.locked(s, "destroy") as lock:
        p = workspace.destroy_plan(s, name)
        click.echo(_render(p, as_json=False, markdown=False, color=_color(ctx)), nl=False)
        if not auto_approve:
            _confirm(f"destroy {name}")
        result = workspace.apply_plan(s, p, sync=False, operation="destroy", lock=lock)
        return _report(result, p)


@click.command("reconcile")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--prune", is_flag=True, help="Also remove deployed integrations gone from the specs.")
@click.option("--allow-empty", is_flag=True, help="With --prune: allow removing every deployed integration.")
@click.option("--interval", type=float, default=None, metavar="SECONDS", help="Keep reconciling every SECONDS.")
@click.option("--max-runs", type=int, default=None, metavar="N", help="With --interval: stop after N passes.")
@click.option("--no-sync", is_flag=True, help="Record configuration changes but run no sync.")
@click.option("--refresh/--no-refresh", default=False, show_default=True, help="Refresh live field catalogs.")
@click.option("--lock-timeout", type=float, default=10.0, show_default=True, metavar="SECONDS",
              help="How long to wait for another apply to finish.")
@click.pass_context
def reconcile(ctx: click.Context, paths: tuple[str, ...], prune: bool, allow_empty: bool, interval: float | None,
              max_runs: int | None, no_sync: bool, refresh: bool, lock_timeout: float) -> int:
    """Make everything deployed equal the repository (auto-approved; GitOps after a merge)."""
    from engine import workspace

    if interval is not None and interval <= 0:
        raise click.UsageError("--interval must be a positive number of seconds")
    code = 0
    with _session(ctx) as s:
        for run in workspace.reconcile(s, paths, prune=prune, sync=not no_sync, refresh=refresh, interval=interval,
                                       max_runs=max_runs, lock_timeout=lock_timeout, allow_empty=allow_empty,
                                       progress=_progress):
            _warnings(s)
            if run.plan is None:
                click.echo(f"[{run.number}] failed, trying again in {interval:g}s: {run.error}", err=True)
                code = 1
                continue
            for note in run.plan.notes:
                click.echo(f"Note: {note}", err=True)
            if run.result is None:
                click.echo(f"[{run.number}] in sync: nothing to change.")
                continue
            sm = run.plan.summary
            click.echo(f"[{run.number}] {sm.line()}")
            code = max(code, _report(run.result, run.plan))
    return code


# `syncform state migrate` lives in engine/cli/state_migrate_cmd.py (issue 8: PostgreSQL state)
from engine.cli.state_migrate_cmd import migrate as _state_migrate  # noqa: E402

state.add_command(_state_migrate)
