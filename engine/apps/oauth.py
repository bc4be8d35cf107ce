"""OAuth 2 refresh-token grant for Zoho apps: access tokens in memory only.

``TokenSource.token()`` returns a live access token, refreshing it from the accounts server when
none is held or the held one expires within a margin (10 % of its lifetime, at most 60 s).
``invalidate(token)`` forgets a token the app answered 401 INVALID_TOKEN for; the next ``token()``
refreshes once. Neither the client secret, the refresh token nor an access token ever appears in a
``repr``, a log line or an error message: every secret this module learns is registered with
``engine.apps.http.REDACTOR``.

Zoho's token endpoint answers failures with **HTTP 200** and ``{"error": "invalid_code"}`` (or
``invalid_client``); those raise ``AuthError`` naming the connection and the fix.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from engine.errors import AuthError, ProtocolError

TOKEN_PATH = "/oauth/v2/token"


class TokenSource:
    """Access tokens for one connection, refreshed with ``grant_type=refresh_token``.

    ``send(method, url, data=...)`` posts to the token endpoint (with the HTTP layer's retries on
    transient failures, without an ``Authorization`` header) and returns the final ``httpx.Response``.
    """

    def __init__(self, *, connection: str, token_url: str, client_id: str, client_secret: str,
                 refresh_token: str, send: Callable[..., httpx.Response],
                 clock: Callable[[], float] = time.monotonic, max_margin: float = 60.0,
                 public_credentials: bool = False):
        from engine.apps.http import REDACTOR

        self.connection = connection
        self.token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._refresh_token = refresh_token
        self._send = send
        self._clock = clock
        self._max_margin = max_margin
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self._margin = 0.0
        self.refreshes = 0
        self.api_domain: str | None = None
        if not public_credentials:  # the sandbox's well-known credentials are not secrets
            REDACTOR.add(client_secret, refresh_token)

    def __repr__(self) -> str:
        held = "held" if self._token else "none"
        return f"TokenSource(connection={self.connection!r}, token_url={self.token_url!r}, token={held})"

    def token(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at - self._margin:
                self._refresh()
            assert self._token is not None
            return self._token

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (the app said INVALID_TOKEN); a newer token already held is kept."""
        with self._lock:
            if self._token == token:
                self._token = None

    def _refresh(self) -> None:
        from engine.apps.http import REDACTOR

        form = {"grant_type": "refresh_token", "client_id": self._client_id,
                "client_secret": self._client_secret, "refresh_token": self._refresh_token}
        response = self._send("POST", self.token_url, data=form)
        where = f"connection {self.connection!r}"
        try:
            body: Any = response.json()
        except ValueError:
            raise ProtocolError(f"{where}: the token endpoint {self.token_url} answered HTTP "
                                f"{response.status_code} without JSON", status=response.status_code,
                                code="MALFORMED_TOKEN_RESPONSE") from None
        if not isinstance(body, dict):
            raise ProtocolError(f"{where}: the token endpoint answered {type(body).__name__}, not an object",
                                status=response.status_code)
        if "error" in body or response.status_code >= 400:
            code = str(body.get("error") or body.get("code") or f"HTTP_{response.status_code}")
            hint = {
                "invalid_code": "the refresh token is invalid, expired or revoked; generate a new one "
                                "and update auth.refresh_token",
                "invalid_client": "the client id or client secret is wrong, or the client belongs to "
                                  "another data centre; check auth.client_id, auth.client_secret and datacenter",
            }.get(code, "check the connection's auth references and datacenter")
            raise AuthError(REDACTOR.redact(f"{where}: the token endpoint refused the refresh token "
                                            f"({code}): {hint}"), code=code, status=response.status_code)
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise ProtocolError(f"{where}: the token endpoint answered without an access_token",
                                status=response.status_code, code="MALFORMED_TOKEN_RESPONSE")
        REDACTOR.add(token)
        lifetime = body.get("expires_in_sec", body.get("expires_in", 3600))
        try:
            lifetime = float(lifetime)
        except (TypeError, ValueError):
            lifetime = 3600.0
        if lifetime > 100_000:  # some Zoho accounts servers have answered milliseconds
            lifetime /= 1000.0
        self._token = token
        self._margin = min(self._max_margin, lifetime * 0.1)
        self._expires_at = self._clock() + lifetime
        self.api_domain = body.get("api_domain") if isinstance(body.get("api_domain"), str) else None
        self.refreshes += 1
