"""``syncform validate``, ``syncform fmt`` and ``syncform schema``: thin commands over engine.spec."""

from __future__ import annotations

import json

import click

from engine.cli.common import Globals


def _globals(ctx: click.Context) -> Globals:
    return ctx.find_root().obj if ctx.find_root().obj is not None else Globals()


@click.command("validate")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--json", "as_json", is_flag=True, default=False, help="Print the diagnostics as JSON.")
@click.pass_context
def validate(ctx: click.Context, paths: tuple[str, ...], as_json: bool) -> int:
    """Check every spec (schema and semantic checks); errors as file:line:col.

    PATHS are spec files or folders (default: integrations/). Exit 0 when valid (warnings allowed), 1 not.
    """
    from engine.spec import check_workspace

    g = _globals(ctx)
    ws, diags = check_workspace(paths, variables=g.variables, var_files=g.var_files)
    errors = [d for d in diags if d.severity == "error"]
    warnings = [d for d in diags if d.severity == "warning"]
    if as_json:
        click.echo(json.dumps({
            "valid": not errors,
            "error_count": len(errors),
            "warning_count": len(warnings),
            "files": list(ws.files) if ws else [],
            "integrations": [i.name for i in ws.integrations] if ws else [],
            "connections": [c.name for c in ws.connections] if ws else [],
            "diagnostics": [d.as_dict() for d in diags],
        }, indent=2))
        return 1 if errors else 0
    for d in diags:
        text = str(d)
        if g.color:
            color = "red" if d.severity == "error" else "yellow"
            text = text.replace(f": {d.severity}:", ": " + click.style(d.severity, fg=color, bold=True) + ":", 1)
        click.echo(text, err=bool(errors))
    if errors:
        click.echo(f"{len(errors)} error(s), {len(warnings)} warning(s)", err=True)
        return 1
    n_i = len(ws.integrations) if ws else 0
    n_c = len(ws.connections) if ws else 0
    suffix = f", {len(warnings)} warning(s)" if warnings else ""
    click.echo(f"Valid: {n_i} integration(s), {n_c} connection(s) in {len(ws.files) if ws else 0} file(s){suffix}.")
    return 0


@click.command("fmt")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--check", is_flag=True, default=False, help="Change nothing; exit 1 if a file would change.")
@click.pass_context
def fmt(ctx: click.Context, paths: tuple[str, ...], check: bool) -> int:
    """Rewrite specs in the canonical layout, keeping comments (files using Jinja2 are left alone)."""
    from engine.spec.fmt import format_paths

    results = format_paths(paths, check=check)
    changed = 0
    failed = sum(1 for r in results if r.failed)
    for r in results:
        if r.note:
            click.echo(f"{r.file}: {r.note}", err=True)
        elif r.changed:
            changed += 1
            click.echo(f"{'would reformat' if check else 'reformatted'} {r.file}")
    if check and changed:
        click.echo(f"{changed} file(s) would change; run `syncform fmt`", err=True)
        return 1
    if failed:
        return 1
    if not changed:
        click.echo(f"{len(results)} file(s) already formatted.")
    return 0


@click.command("schema")
@click.option("--kind", type=click.Choice(["Integration", "Connection"], case_sensitive=False), default=None,
              help="Print only this kind's schema.")
def schema(kind: str | None) -> int:
    """Print the JSON Schemas of the spec files (for editors: yaml-language-server)."""
    from engine.spec.schema import KINDS, schema_path

    kinds = [next(k for k in KINDS if k.lower() == kind.lower())] if kind else list(KINDS)
    if len(kinds) == 1:
        click.echo(schema_path(kinds[0]).read_text("utf-8").rstrip())
    else:
        docs = {k: json.loads(schema_path(k).read_text("utf-8")) for k in kinds}
        click.echo(json.dumps(docs, indent=2))
    return 0
