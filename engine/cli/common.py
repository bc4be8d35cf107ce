"""What every command shares: global options, error rendering, exit codes."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import click


@dataclass(slots=True)
class Globals:
    state_url: str = "sqlite:///.syncform/state.db"
    var_files: tuple[str, ...] = ()
    variables: dict[str, str] = field(default_factory=dict)
    color: bool = False
    debug: bool = False


def run_cli(group: click.Group) -> None:
    """Run the CLI: a SyncformError becomes its message and exit 1, never a traceback."""
    from engine.errors import LockedError, SpecError, SyncformError

    debug = "--debug" in sys.argv
    try:
        rv = group.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(1 if exc.exit_code == 2 else exc.exit_code)  # usage errors exit 1, as in the contract
    except SpecError as exc:
        for d in exc.diagnostics:
            click.echo(str(d), err=True)
        click.echo(f"{exc.error_count} error(s)", err=True)
        sys.exit(1)
    except LockedError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except SyncformError as exc:
        if debug:
            raise
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as exc:  # an unexpected error: a bug, reported without secrets
        if debug:
            raise
        click.echo(f"Error: internal error ({type(exc).__name__}); rerun with --debug for details", err=True)
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)
