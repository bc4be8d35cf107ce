"""``syncform``: the root command group.

Subcommands live in their own modules and are imported only when invoked (fast start-up, and a
broken optional part cannot break ``syncform validate``). Register a command by adding it to
``COMMANDS``: name -> "module:attribute".
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from engine.cli.common import Globals

COMMANDS: dict[str, str] = {
    "validate": "engine.cli.spec_cmds:validate",
    "fmt": "engine.cli.spec_cmds:fmt",
    "schema": "engine.cli.spec_cmds:schema",
    "apps": "engine.cli.apps_cmd:apps",
    "sandbox": "engine.cli.sandbox_cmd:sandbox",
    "plan": "engine.cli.plan_cmds:plan",
    "apply": "engine.cli.plan_cmds:apply",
    "status": "engine.cli.plan_cmds:status",
    "state": "engine.cli.plan_cmds:state",
    "pause": "engine.cli.plan_cmds:pause",
    "resume": "engine.cli.plan_cmds:resume",
    "destroy": "engine.cli.plan_cmds:destroy",
    "reconcile": "engine.cli.plan_cmds:reconcile",
    "sync": "engine.cli.sync_cmds:sync",
    "history": "engine.cli.sync_cmds:history",
    "failures": "engine.cli.sync_cmds:failures",
    "retry": "engine.cli.sync_cmds:retry",
    "slots": "engine.cli.sync_cmds:slots",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            return _unavailable(name)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError:
            from engine.errors import did_you_mean

            if args and args[0] not in COMMANDS and not args[0].startswith("-"):
                raise click.UsageError(
                    f'unknown command "{args[0]}"{did_you_mean(args[0], list(COMMANDS))}', ctx
                ) from None
            raise


def _unavailable(name: str) -> click.Command:
    @click.command(name, context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def cmd(args: tuple[str, ...]) -> None:
        raise click.ClickException(f'"syncform {name}" is not available in this build')

    return cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--state", "state_url", envvar="SYNCFORM_STATE", default=None, metavar="URL",
              help="State store URL (default sqlite:///.syncform/state.db).")
@click.option("--chdir", "chdir", default=None, metavar="DIR", help="Run as if started in DIR.")
@click.option("--var-file", "var_files", multiple=True, metavar="FILE",
              help="Variables for the specs' Jinja2 templates (YAML).")
@click.option("--var", "vars_", multiple=True, metavar="K=V", help="One template variable.")
@click.option("--no-color", is_flag=True, default=False, help="No colours (also NO_COLOR).")
@click.option("--debug", is_flag=True, default=False, help="Show tracebacks of unexpected errors.")
@click.version_option(package_name="syncform", prog_name="syncform")
@click.pass_context
def cli(ctx: click.Context, state_url: str | None, chdir: str | None, var_files: tuple[str, ...],
        vars_: tuple[str, ...], no_color: bool, debug: bool) -> None:
    """syncform: integration-as-code for business apps."""
    if chdir:
        try:
            os.chdir(chdir)
        except OSError as exc:
            raise click.UsageError(f"--chdir {chdir}: {exc.strerror}") from None
    variables: dict[str, str] = {}
    for item in vars_:
        if "=" not in item:
            raise click.UsageError(f'--var "{item}": expected KEY=VALUE')
        k, v = item.split("=", 1)
        variables[k.strip()] = v
    color = not no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty()
    ctx.obj = Globals(state_url=state_url or "sqlite:///.syncform/state.db", var_files=var_files,
                      variables=variables, color=color, debug=debug)


def main() -> None:
    from engine.cli.common import run_cli

    run_cli(cli)


if __name__ == "__main__":  # pragma: no cover
    main()
