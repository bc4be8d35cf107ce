"""The built-in, Zoho-compatible local apps (Bigin, CRM, Desk, Bookings) behind one WSGI application.

- ``SandboxApp(db_path, *, clock=None, token_lifetime=3600)``: the WSGI callable (see ``app.py``).
- ``for_connection(conn, workdir)``: the process-cached app of a ``sandbox:`` connection, its data in
  ``<workdir>/.syncform/sandbox/<conn.name>.db``, seeded with ``conn.sandbox.seed`` demo records per
  module on first use.
- ``serve(host, port, data_dir)``: a threaded HTTP/1.1 server on loopback (keep-alive, one thread per
  connection).

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
    """A threaded HTTP/1.1 server bound to (host, port); port 0 picks a free one
    (``server.server_address[1]``). It serves ``app`` when given, else a new app whose database is
    ``<data_dir>/sandbox.db`` (in memory when ``data_dir`` is None). Its access log, when not quiet,
    shows method, path (never the query string, which can hold OAuth parameters) and status.

    Connections are kept alive (HTTP/1.1, ``Content-Length`` on every answer), one thread per
    connection, so a client's pool reuses them instead of opening a TCP connection per call; each
    accepted connection is counted in ``/_sandbox/stats`` (``connections``). ``server_close()`` also
    ends the connections still open, so ``serve_forever`` / Ctrl-C stops at once."""
    from engine.sandbox.app import SandboxApp

    if app is None:
        if data_dir is None:
            db = ":memory:"
        else:
            d = Path(data_dir)
            d.mkdir(parents=True, exist_ok=True)
            db = str(d / "sandbox.db")
        app = SandboxApp(db)
    server_class, handler_class = _server_classes(quiet)
    server = server_class((host, port), handler_class)
    server.app = app  # type: ignore[attr-defined]
    server.sandbox_app = app  # type: ignore[attr-defined]
    return server


def _server_classes(quiet: bool) -> tuple[type, type]:
    import io
    import socket
    import socketserver
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import unquote

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 64

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.open_connections: set[socket.socket] = set()
            self.connections_lock = threading.Lock()
            self.closing = False
            super().__init__(*args, **kwargs)

        def server_bind(self) -> None:  # HTTPServer's would look the host name up (getfqdn): slow
            socketserver.TCPServer.server_bind(self)
            self.server_name, self.server_port = self.server_address[:2]

        def handle_error(self, request: Any, client_address: Any) -> None:
            # a client that went away (timeouts, Ctrl-C) is not an error worth a traceback
            exc = sys.exc_info()[1]
            if quiet or isinstance(exc, (ConnectionError, TimeoutError, OSError)):
                return
            super().handle_error(request, client_address)

        def server_close(self) -> None:
            self.closing = True
            super().server_close()
            with self.connections_lock:
                conns = list(self.open_connections)
            for sock in conns:  # idle keep-alive connections: their threads stop reading
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "syncform-sandbox"
        sys_version = ""
        disable_nagle_algorithm = True
        timeout = 300  # an idle keep-alive connection is closed after this many seconds

        def setup(self) -> None:
            super().setup()
            srv = self.server
            with srv.connections_lock:  # type: ignore[attr-defined]
                srv.open_connections.add(self.connection)  # type: ignore[attr-defined]
            srv.app.ctx.stats.connected()  # type: ignore[attr-defined]

        def finish(self) -> None:
            srv = self.server
            with srv.connections_lock:  # type: ignore[attr-defined]
                srv.open_connections.discard(self.connection)  # type: ignore[attr-defined]
            try:
                super().finish()
            except OSError:
                pass

        def _body(self) -> bytes:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                parts = []
                while True:
                    size = int(self.rfile.readline(1024).split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return b"".join(parts)
                    parts.append(self.rfile.read(size))
                    self.rfile.readline(1024)
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = 0
            return self.rfile.read(length) if length > 0 else b""

        def _wsgi(self) -> None:
            path, _, query = self.path.partition("?")
            body = self._body()
            environ: dict[str, Any] = {
                "REQUEST_METHOD": self.command, "SCRIPT_NAME": "", "PATH_INFO": unquote(path, "iso-8859-1"),
                "QUERY_STRING": query, "SERVER_NAME": self.server.server_name,  # type: ignore[attr-defined]
                "SERVER_PORT": str(self.server.server_port),  # type: ignore[attr-defined]
                "SERVER_PROTOCOL": self.request_version, "REMOTE_ADDR": self.client_address[0],
                "CONTENT_LENGTH": str(len(body)) if body else "",
                "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
                "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": False,
                "wsgi.run_once": False,
            }
            for k, v in self.headers.items():
                key = k.replace("-", "_").upper()
                if key == "CONTENT_TYPE":
                    environ["CONTENT_TYPE"] = v
                    continue
                if key in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
                    continue
                key = "HTTP_" + key
                environ[key] = f"{environ[key]},{v}" if key in environ else v
            status_headers: list[Any] = []

            def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                status_headers[:] = [status, headers]
                return lambda data: None  # the legacy write() callable; the sandbox never uses it

            chunks = self.server.app(environ, start_response)  # type: ignore[attr-defined]
            try:
                payload = b"".join(chunks)
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
            status, headers = status_headers
            code, _, reason = status.partition(" ")
            self.log_request(code)
            out = [f"HTTP/1.1 {status}\r\n".encode("latin-1")]
            has_length = False
            for name, value in headers:
                if name.lower() == "content-length":
                    has_length = True
                out.append(f"{name}: {value}\r\n".encode("latin-1"))
            if not has_length:
                out.append(f"Content-Length: {len(payload)}\r\n".encode("latin-1"))
            if self.server.closing:  # type: ignore[attr-defined]
                self.close_connection = True
            if self.close_connection:
                out.append(b"Connection: close\r\n")
            out.append(b"\r\n")
            if self.command != "HEAD":
                out.append(payload)
            self.wfile.write(b"".join(out))  # one write: headers and body in one segment

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _wsgi

        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            if not quiet:
                path = self.path.split("?", 1)[0]
                self.log_message('"%s %s" %s', self.command, path, str(code))

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            if not quiet:
                super().log_message(format, *args)

    return Server, Handler


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
