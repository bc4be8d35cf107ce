"""Plain-WSGI request/response helpers of the sandbox (no framework)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs

REASONS = {200: "OK", 201: "Created", 204: "No Content", 207: "Multi-Status", 304: "Not Modified",
           400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 413: "Payload Too Large", 422: "Unprocessable Entity",
           429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable",
           504: "Gateway Timeout"}


class ApiError(Exception):
    """Raised by a handler to answer with ``status`` and a JSON ``body``."""

    def __init__(self, status: int, body: Any, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or []


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    base_url: str
    _json: Any = field(default=None)
    _form: dict[str, str] | None = field(default=None)

    @classmethod
    def from_environ(cls, environ: dict[str, Any]) -> Request:
        qs = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        query = {k: v[0] for k, v in qs.items()}
        headers = {}
        for k, v in environ.items():
            if k.startswith("HTTP_"):
                headers[k[5:].replace("_", "-").lower()] = v
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT', '80')}"
        base = f"{environ.get('wsgi.url_scheme', 'http')}://{host}{environ.get('SCRIPT_NAME', '')}"
        path = environ.get("PATH_INFO", "/") or "/"
        if isinstance(path, str):  # PEP 3333: latin-1 decoded bytes
            try:
                path = path.encode("latin-1").decode("utf-8")
            except (UnicodeEncodeError, UnicodeDecodeError):
                pass
        return cls(environ.get("REQUEST_METHOD", "GET").upper(), path, query, headers, body, base)

    def json(self) -> Any:
        """The body as JSON; raises ValueError when it is not JSON."""
        if self._json is None:
            self._json = json.loads(self.body.decode("utf-8")) if self.body.strip() else None
        return self._json

    def form(self) -> dict[str, str]:
        """Form fields of an urlencoded or multipart body, merged over the query string."""
        if self._form is None:
            out = dict(self.query)
            ctype = self.headers.get("content-type", "")
            if ctype.startswith("application/x-www-form-urlencoded"):
                for k, v in parse_qs(self.body.decode("utf-8"), keep_blank_values=True).items():
                    out[k] = v[0]
            elif ctype.startswith("multipart/form-data"):
                msg = BytesParser(policy=HTTP).parsebytes(
                    b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + self.body)
                for part in msg.iter_parts():
                    name = part.get_param("name", header="content-disposition")
                    if name:
                        payload = part.get_payload(decode=True) or b""
                        out[str(name)] = payload.decode("utf-8")
            elif ctype.startswith("application/json") and self.body.strip():
                try:
                    data = self.json()
                except ValueError:
                    data = None
                if isinstance(data, dict):
                    for k, v in data.items():
                        out[k] = v if isinstance(v, str) else json.dumps(v)
            self._form = out
        return self._form


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_response(status: int, obj: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    if status in (204, 304):
        return Response(status, b"", list(headers or []))
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return Response(status, body, [("Content-Type", "application/json;charset=UTF-8"), *(headers or [])])
