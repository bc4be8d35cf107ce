"""``syncform sandbox``: the built-in, Zoho-compatible local apps."""

from __future__ import annotations

from pathlib import Path

import click

APPS = ("bigin", "zoho_crm", "zoho_desk", "zoho_bookings")


@click.group("sandbox")
def sandbox() -> None:
    """The built-in Zoho-compatible apps (Bigin, CRM, Desk, Bookings) on loopback."""


@sandbox.command("serve")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="TCP port; 0 picks a free one (printed).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--data", "data_dir", default=".syncform/sandbox/serve", show_default=True, metavar="DIR",
              help="Directory of the SQLite database (sandbox.db).")
@click.option("--memory", is_flag=True, default=False, help="Keep data in memory only.")
@click.option("--seed", "seed_count", type=click.IntRange(0, 100_000), default=0, metavar="N",
              help="On start, fill every app with N demo records per module (when it is empty).")
@click.option("--seed-value", type=int, default=1, show_default=True, metavar="S",
              help="Random seed of the demo data (the same seed gives the same records).")
@click.option("--verbose", "-v", is_flag=True, default=False,
              help="Log each request (method, path, status; never query strings or headers).")
def serve(port: int, host: str, data_dir: str, memory: bool, seed_count: int, seed_value: int,
          verbose: bool) -> None:
    """Serve the sandbox apps over HTTP until Ctrl-C.

    Paths are the real ones: /oauth/v2/token, /bigin/v2, /crm/v2../crm/v8, /api/v1 (Desk),
    /bookings/v1/json, plus /_sandbox/{stats,reset,faults,seed}. Credentials: client_id "sandbox",
    client_secret "sandbox", refresh_token "sandbox-refresh".
    """
    from engine.sandbox import make_server

    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"Warning: serving on {host}, not loopback; the sandbox has no real security.", err=True)
    try:
        server = make_server(host, port, None if memory else Path(data_dir), quiet=not verbose)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    app = server.sandbox_app
    if seed_count:
        for name in APPS:
            marker = f"seeded:{name}"
            if app.ctx.store.get_meta(marker) is None:
                created = app.seed(name, seed_count, seed=seed_value)
                app.ctx.store.set_meta(marker, str(seed_count))
                click.echo(f"seeded {name}: " + ", ".join(f"{m} {n}" for m, n in created.items()))
    bound_host, bound_port = server.server_address[0], server.server_address[1]
    where = "memory" if memory else str(Path(data_dir) / "sandbox.db")
    click.echo(f"syncform sandbox listening on http://{bound_host}:{bound_port} (data: {where})")
    click.echo(f"port {bound_port}")
    click.echo("sandbox credentials: see 'syncform sandbox serve --help'; Ctrl-C stops")
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        server.server_close()
        app.close()
