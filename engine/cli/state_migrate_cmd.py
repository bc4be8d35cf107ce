"""``syncform state migrate --from URL --to URL``: move a whole state between SQLite and PostgreSQL.

A subcommand of the ``state`` group (engine/cli/plan_cmds.py registers it with ``state.add_command``).
"""

from __future__ import annotations

import click

_LABELS = (("deployed", "deployed"), ("applies", "applies"), ("links", "links"), ("cursors", "cursors"),
           ("runs", "runs"), ("failures", "failures"), ("journal", "journal entries"), ("meta", "meta keys"))


@click.command("migrate")
@click.option("--from", "source", metavar="URL", default=None,
              help="State to copy (default: the --state URL / SYNCFORM_STATE).")
@click.option("--to", "target", metavar="URL", required=True,
              help="New, empty state to copy into, e.g. postgresql://user@host/db (password via PGPASSWORD "
                   "or ~/.pgpass, not in the URL).")
@click.option("--lock-timeout", type=float, default=10.0, show_default=True, metavar="SECONDS",
              help="How long to wait for either state's lock.")
@click.pass_context
def migrate(ctx: click.Context, source: str | None, target: str, lock_timeout: float) -> None:
    """Copy a whole state (deployed integrations, lineage and serial, apply history, links, cursors,
    runs, failures, journal, meta) into a new, empty state, and check the copy reads back the same.

    The source is left as it was; both are locked meanwhile. Then point syncform at the new one with
    --state URL or SYNCFORM_STATE.
    """
    from engine.state.migrate import migrate_state

    src = source or getattr(ctx.obj, "state_url", None) or "sqlite:///.syncform/state.db"
    report = migrate_state(src, target, lock_timeout=lock_timeout,
                           progress=lambda msg: click.echo(msg, err=True))
    counts = ", ".join(f"{report.counts.get(key, 0)} {label}" for key, label in _LABELS)
    click.echo(f"Migrated state {report.lineage} (serial {report.serial}) from {report.source} to "
               f"{report.target}: {counts}.")
    from engine.state.postgres import redact_url

    plain = redact_url(target, mask=None)  # never suggest a URL with a password in it
    hint = " with the password in PGPASSWORD or ~/.pgpass" if plain != target else ""
    click.echo(f"Use it with --state {plain} (or SYNCFORM_STATE={plain}){hint}.")
