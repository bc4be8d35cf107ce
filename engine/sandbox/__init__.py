"""The built-in, Zoho-compatible local apps (Bigin, CRM, Desk, Bookings) behind one WSGI application.

- ``SandboxApp(db_path, *, clock=None, token_lifetime=3600)``: the WSGI callable (see ``app.py``).
- ``for_connection(conn, workdir)``: the process-cached app of a ``sandbox:`` connection, its data in
  ``<workdir>/.syncform/sandbox/<conn.name>.db``, seeded with ``conn.sandbox.seed`` demo records per
  module on first use.
- ``serve(host, port, data_dir)``: a threaded HTTP server on loopback (``wsgiref``).

Sandbox credentials: client_id ``sandbox``, client_secret ``sandbox``, refresh_token ``sandbox-refresh``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.sandbox.app import SandboxApp
    from engine.spec.model import Connection

__all__ = ["SandboxApp", "for_connection", "serve", "make_server", "CLIENT_ID", "CLIENT_SECRET",
           "REFRESH_TOKEN"]

CLIENT_ID = "sandbox"
CLIENT_SECRET = "sandbox"
REFRESH_TOKEN = "sandbox-refresh"

_CACHE: dict[str, Any] = {}
_CACHE_LOCK = threading.Lock()


def __getattr__(name: str) -> Any:
    if name == "SandboxApp":
        from engine.sandbox.app import SandboxApp

        return SandboxApp
    raise AttributeError(name)


def for_connection(conn: Connection, workdir: Path) -> SandboxApp:
    """The sandbox app of ``conn`` (cached per database file for the life of the process)."""
    from engine.sandbox.app import SandboxApp

    path = (Path(workdir) / ".syncform" / "sandbox" / f"{conn.name}.db").resolve()
    key = str(path)
    with _CACHE_LOCK:
        app = _CACHE.get(key)
        if app is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            app = SandboxApp(key)
            _CACHE[key] = app
        count = conn.sandbox.seed if conn.sandbox is not None else 0
        marker = f"seeded:{conn.app}"
        if count and app.ctx.store.get_meta(marker) is None:
            app.seed(conn.app, count, seed=1)
            app.ctx.store.set_meta(marker, str(count))
    return app


def make_server(host: str, port: int, data_dir: str | Path | None, *, quiet: bool = True,
                app: SandboxApp | None = None):
    """A threaded wsgiref server bound to (host, port); port 0 picks a free one
    (``server.server_address[1]``). It serves ``app`` when given, else a new app whose database is
    ``<data_dir>/sandbox.db`` (in memory when ``data_dir`` is None). Its access log, when not quiet,
    shows method, path (never the query string, which can hold OAuth parameters) and status."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server as _make

    from engine.sandbox.app import SandboxApp

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True
        allow_reuse_address = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            # a client that went away (timeouts, Ctrl-C) is not an error worth a traceback
            import sys

            exc = sys.exc_info()[1]
            if quiet or isinstance(exc, (ConnectionError, TimeoutError)):
                return
            super().handle_error(request, client_address)

    class Handler(WSGIRequestHandler):
        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            if not quiet:
                path = self.path.split("?", 1)[0]
                self.log_message('"%s %s" %s', self.command, path, str(code))

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            if not quiet:
                super().log_message(format, *args)

    if app is None:
        if data_dir is None:
            db = ":memory:"
        else:
            d = Path(data_dir)
            d.mkdir(parents=True, exist_ok=True)
            db = str(d / "sandbox.db")
        app = SandboxApp(db)
    server = _make(host, port, app, server_class=Server, handler_class=Handler)
    server.sandbox_app = app  # type: ignore[attr-defined]
    return server


def serve(host: str, port: int, data_dir: str | Path | None, *, ready=None, quiet: bool = True) -> None:
    """Serve until interrupted (Ctrl-C stops cleanly). ``ready(host, port)`` is called once bound."""
    server = make_server(host, port, data_dir, quiet=quiet)
    try:
        if ready is not None:
            ready(server.server_address[0], server.server_address[1])
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.sandbox_app.close()  # type: ignore[attr-defined]
