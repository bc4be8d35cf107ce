"""``SandboxApp``: one plain WSGI application serving the four Zoho-compatible apps.

Paths (as the real hosts serve them): ``/oauth/v2/token`` and ``/oauth/v2/token/revoke`` (accounts),
``/bigin/v2/...``, ``/crm/v2/...`` … ``/crm/v8/...``, ``/api/v1/...`` (Desk), ``/bookings/v1/json/...``;
and the sandbox's own ``/_sandbox/...`` endpoints (stats, reset, faults, seed), which need no token.

Tokens live in memory only; nothing here logs a request header, a query string or a body.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from engine.catalog import AppCatalog
from engine.sandbox.core import Context, Faults, Rejection
from engine.sandbox.http import REASONS, ApiError, Request, Response, json_response

CLIENT_ID = "sandbox"
CLIENT_SECRET = "sandbox"
REFRESH_TOKEN = "sandbox-refresh"
AUTH_CODE = "sandbox-code"
MAX_LIVE_TOKENS = 30
SCOPE = ("ZohoBigin.modules.ALL ZohoBigin.settings.ALL ZohoCRM.modules.ALL ZohoCRM.settings.ALL "
         "ZohoCRM.users.READ Desk.contacts.ALL Desk.products.ALL Desk.tickets.ALL Desk.basic.READ "
         "Desk.search.READ zohobookings.data.CREATE")
INVALID_TOKEN = {"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"}
DESK_INVALID_TOKEN = {"errorCode": "INVALID_OAUTH", "message": "The OAuth Token you provided is invalid."}
_CRM = re.compile(r"^/crm/v(\d+)(?:\.\d+)?(/.*)?$")


def _zoho_error(status: int, code: str, message: str) -> dict[str, Any]:
    return {"code": code, "details": {}, "message": message, "status": "error"}


class SandboxApp:
    """The WSGI callable. ``clock`` returns an aware UTC datetime (default: real time, seconds)."""

    def __init__(self, db_path: str, *, clock: Callable[[], datetime] | None = None,
                 token_lifetime: int = 3600, catalogs: dict[str, AppCatalog] | None = None) -> None:
        self.db_path = db_path
        self.ctx = Context(db_path, clock, catalogs)
        self.token_lifetime = int(token_lifetime)
        self._tokens: dict[str, datetime] = {}
        self._revoked_refresh: set[str] = set()
        self._tokens_lock = threading.Lock()
        self._inflight = 0
        self._inflight_lock = threading.Lock()

    # public helpers -----------------------------------------------------------------------------
    @property
    def stats(self) -> dict[str, Any]:
        return self.ctx.stats.snapshot()

    def issue_token(self) -> str:
        """A fresh access token (what a refresh grant returns); for tests and in-process use."""
        token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
        now = self.ctx.now()
        with self._tokens_lock:
            for t, exp in list(self._tokens.items()):
                if exp <= now:
                    del self._tokens[t]
            while len(self._tokens) >= MAX_LIVE_TOKENS:  # Zoho: ≤30 live tokens, the oldest is dropped
                del self._tokens[next(iter(self._tokens))]
            self._tokens[token] = now + timedelta(seconds=self.token_lifetime)
        return token

    def seed(self, app: str, count: int, seed: int = 1, module: str | None = None) -> dict[str, int]:
        from engine.sandbox.seed import seed_app

        return seed_app(self.ctx, app, count=count, seed=seed, module=module)

    def close(self) -> None:
        self.ctx.store.close()

    # WSGI ---------------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        req = Request.from_environ(environ)
        resp = self.dispatch(req)
        headers = [*resp.headers, ("Content-Length", str(len(resp.body)))]
        start_response(f"{resp.status} {REASONS.get(resp.status, 'Unknown')}", headers)
        return [resp.body]

    def dispatch(self, req: Request) -> Response:
        path = req.path.rstrip("/") or "/"
        if path.startswith("/_sandbox"):
            return self._guard(lambda: self.admin(req, path[len("/_sandbox"):].strip("/")), "zoho")
        if path == "/oauth/v2/token":
            return self._guard(lambda: self.oauth_token(req), "zoho")
        if path == "/oauth/v2/token/revoke":
            return self._guard(lambda: self.oauth_revoke(req), "zoho")
        app, rest, version, shape = None, "", 0, "zoho"
        if path.startswith("/bigin/v2/") or path == "/bigin/v2":
            app, rest, version = "bigin", path[len("/bigin/v2"):], 2
        elif m := _CRM.match(path):
            version = int(m.group(1))
            if 2 <= version <= 8:
                app, rest = "zoho_crm", m.group(2) or ""
        elif path.startswith("/api/v1/") or path == "/api/v1":
            app, rest, shape = "zoho_desk", path[len("/api/v1"):], "desk"
        elif path.startswith("/bookings/v1/json/"):
            app, rest = "zoho_bookings", path[len("/bookings/v1/json"):]
        if app is None:
            return json_response(404, _zoho_error(404, "INVALID_URL_PATTERN",
                                                  "Please check if the URL trying to access is a correct one"))
        return self._guard(lambda: self._api(req, app, version, rest, shape), shape)

    def _guard(self, fn: Callable[[], Response], shape: str) -> Response:
        try:
            return fn()
        except ApiError as e:
            return json_response(e.status, e.body, e.headers)
        except Exception as e:  # a sandbox bug answers like the app's 500, without details of the request
            msg = f"internal error ({type(e).__name__})"
            if shape == "desk":
                return json_response(500, {"errorCode": "INTERNAL_SERVER_ERROR", "message": msg})
            return json_response(500, _zoho_error(500, "INTERNAL_ERROR", msg))

    # the API path: auth, faults, handler -------------------------------------------------------------
    def _api(self, req: Request, app: str, version: int, rest: str, shape: str) -> Response:
        if not self._authorized(req):
            self.ctx.stats.fault("401")
            return json_response(401, DESK_INVALID_TOKEN if shape == "desk" else INVALID_TOKEN)
        faults = self.ctx.faults
        with self._inflight_lock:
            limit = faults.max_concurrency
            if limit is not None and self._inflight >= limit:
                self.ctx.stats.fault("concurrency_429")
                return self._too_many(shape)
            self._inflight += 1
        try:
            if faults.latency_ms:
                time.sleep(faults.latency_ms / 1000)
            r429, r5xx, rtimeout = self.ctx.roll()
            if r429 < faults.rate_429:
                self.ctx.stats.fault("429")
                return self._too_many(shape)
            if r5xx < faults.rate_5xx:
                self.ctx.stats.fault("5xx")
                if shape == "desk":
                    return json_response(500, {"errorCode": "INTERNAL_SERVER_ERROR",
                                               "message": "An internal server error occurred (sandbox fault)."})
                return json_response(500, _zoho_error(500, "INTERNAL_ERROR",
                                                      "Internal Server Error (sandbox fault)"))
            if rtimeout < faults.timeout_rate:
                self.ctx.stats.fault("timeout")
                time.sleep(faults.timeout_ms / 1000)
                return json_response(504, {"errorCode": "GATEWAY_TIMEOUT", "message": "sandbox timeout fault"}
                                     if shape == "desk" else _zoho_error(504, "INTERNAL_ERROR",
                                                                         "Gateway Timeout (sandbox fault)"))
            parts = [p for p in rest.split("/") if p]
            if app in ("bigin", "zoho_crm"):
                from engine.sandbox.zoho import ZohoApi

                return ZohoApi(self.ctx, app, version).handle(req, parts)
            if app == "zoho_desk":
                from engine.sandbox.desk import DeskApi

                return DeskApi(self.ctx).handle(req, parts)
            from engine.sandbox.bookings import BookingsApi

            return BookingsApi(self.ctx).handle(req, parts)
        finally:
            with self._inflight_lock:
                self._inflight -= 1

    def _too_many(self, shape: str) -> Response:
        if shape == "desk":
            return json_response(429, {"errorCode": "TOO_MANY_REQUESTS",
                                       "message": "You have made too many requests. Please try again later."})
        return json_response(429, _zoho_error(429, "TOO_MANY_REQUESTS",
                                              "The number of API requests has exceeded the limit"))

    def _authorized(self, req: Request) -> bool:
        auth = req.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme != "Zoho-oauthtoken" or not token.strip():
            return False
        with self._tokens_lock:
            exp = self._tokens.get(token.strip())
        return exp is not None and exp > self.ctx.now()

    # OAuth ----------------------------------------------------------------------------------------
    def oauth_token(self, req: Request) -> Response:
        if req.method != "POST":
            return json_response(405, {"error": "invalid_request", "error_description": "use POST"})
        p = req.form()
        grant = p.get("grant_type")
        if grant not in ("refresh_token", "authorization_code"):
            return json_response(200, {"error": "unsupported_grant_type"})
        if p.get("client_id") != CLIENT_ID or p.get("client_secret") != CLIENT_SECRET:
            return json_response(200, {"error": "invalid_client"})
        if grant == "refresh_token":
            rt = p.get("refresh_token")
            if rt != REFRESH_TOKEN or rt in self._revoked_refresh:
                return json_response(200, {"error": "invalid_code"})
        elif p.get("code") != AUTH_CODE:
            return json_response(200, {"error": "invalid_code"})
        body = {"access_token": self.issue_token(), "scope": SCOPE, "api_domain": req.base_url,
                "token_type": "Bearer", "expires_in": self.token_lifetime}
        if grant == "authorization_code":
            body["refresh_token"] = REFRESH_TOKEN
            self._revoked_refresh.discard(REFRESH_TOKEN)
        return json_response(200, body)

    def oauth_revoke(self, req: Request) -> Response:
        token = req.form().get("token", "")
        with self._tokens_lock:
            self._tokens.pop(token, None)
            if token == REFRESH_TOKEN:
                self._revoked_refresh.add(token)
        return json_response(200, {"status": "success"})

    def expire_tokens(self) -> None:
        with self._tokens_lock:
            self._tokens.clear()

    # /_sandbox ---------------------------------------------------------------------------------
    def admin(self, req: Request, sub: str) -> Response:
        m = req.method
        if sub == "" and m == "GET":
            return json_response(200, {
                "sandbox": "syncform sandbox (not part of any Zoho API)",
                "endpoints": ["GET /_sandbox/stats[?reset=true]", "POST /_sandbox/stats/reset",
                              "POST /_sandbox/reset", "GET|POST /_sandbox/faults", "POST /_sandbox/seed",
                              "GET /_sandbox/customers"],
                "credentials": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                "refresh_token": REFRESH_TOKEN}})
        if sub == "stats" and m == "GET":
            snap = self.ctx.stats.snapshot()
            if req.query.get("reset", "").lower() in ("1", "true", "yes"):
                self.ctx.stats.reset()
            return json_response(200, snap)
        if (sub == "stats/reset" and m == "POST") or (sub == "stats" and m == "DELETE"):
            self.ctx.stats.reset()
            return json_response(200, {"status": "success"})
        if sub == "reset" and m == "POST":
            body = self._admin_json(req)
            app = body.get("app")
            self.ctx.store.reset(app)
            self.ctx.stats.reset()
            with self.ctx.faults_lock:
                self.ctx.faults = Faults()
            self._revoked_refresh.clear()
            return json_response(200, {"status": "success"})
        if sub == "faults":
            if m == "GET":
                return json_response(200, self.ctx.faults.as_dict())
            if m in ("POST", "PUT"):
                return self._set_faults(self._admin_json(req))
            if m == "DELETE":
                with self.ctx.faults_lock:
                    self.ctx.faults = Faults()
                return json_response(200, self.ctx.faults.as_dict())
        if sub == "seed" and m == "POST":
            body = self._admin_json(req)
            app = body.get("app")
            from engine.catalog import APPS

            if app not in APPS:
                raise ApiError(400, {"error": f"seed: app must be one of {', '.join(APPS)}"})
            try:
                count, seed = int(body.get("count", 20)), int(body.get("seed", 1))
            except (TypeError, ValueError):
                raise ApiError(400, {"error": "seed: count and seed must be integers"}) from None
            if not 0 <= count <= 100_000:
                raise ApiError(400, {"error": "seed: count must be between 0 and 100000"})
            module = body.get("module")
            if module is not None and self.ctx.module(app, module) is None:
                raise ApiError(400, {"error": f"seed: {app} has no module {module!r}"})
            created = self.seed(app, count, seed, module)
            return json_response(200, {"status": "success", "created": created})
        if sub == "customers" and m == "GET":
            from engine.sandbox.bookings import list_customers

            return json_response(200, {"note": "sandbox-only listing, not part of the Zoho Bookings API (which has no "
                                               "customer list endpoint)", "zoho_api": False,
                                       "data": list_customers(self.ctx)})
        raise ApiError(404, {"error": f"no sandbox endpoint {m} /_sandbox/{sub}"})

    def _admin_json(self, req: Request) -> dict[str, Any]:
        try:
            body = req.json()
        except ValueError:
            raise ApiError(400, {"error": "the body must be a JSON object"}) from None
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise ApiError(400, {"error": "the body must be a JSON object"})
        return body

    def _set_faults(self, body: dict[str, Any]) -> Response:
        known = {"latency_ms", "rate_429", "rate_5xx", "timeout_rate", "timeout_ms", "expire_tokens", "reject",
                 "max_concurrency", "seed"}
        unknown = sorted(set(body) - known)
        if unknown:
            raise ApiError(400, {"error": f"faults: unknown key(s) {', '.join(unknown)}; "
                                          f"known: {', '.join(sorted(known))}"})
        f = Faults()
        try:
            f.latency_ms = int(body.get("latency_ms", 0))
            f.timeout_ms = int(body.get("timeout_ms", 2000))
            for k in ("rate_429", "rate_5xx", "timeout_rate"):
                v = float(body.get(k, 0.0))
                if not 0.0 <= v <= 1.0:
                    raise ValueError(f"{k} must be between 0 and 1")
                setattr(f, k, v)
            mc = body.get("max_concurrency")
            f.max_concurrency = int(mc) if mc is not None else None
            f.seed = int(body["seed"]) if body.get("seed") is not None else None
        except (TypeError, ValueError) as e:
            raise ApiError(400, {"error": f"faults: {e}"}) from None
        import random

        f.rng = random.Random(f.seed)
        rules = body.get("reject") or []
        if isinstance(rules, dict):
            rules = [rules]
        if not isinstance(rules, list):
            raise ApiError(400, {"error": "faults: reject must be a list of rules"})
        for r in rules:
            if not isinstance(r, dict) or ("every_nth" not in r and "field" not in r):
                raise ApiError(400, {"error": "faults: each reject rule needs field (+ value) or every_nth"})
            nth = r.get("every_nth")
            f.rejections.append(Rejection(app=r.get("app"), module=r.get("module"), field=r.get("field"),
                                          value=r.get("value"), every_nth=int(nth) if nth else None,
                                          code=str(r.get("code") or "INVALID_DATA"),
                                          message=str(r.get("message") or
                                                      "rejected by the sandbox's fault injection")))
        with self.ctx.faults_lock:
            self.ctx.faults = f
        if body.get("expire_tokens"):
            self.expire_tokens()
        return json_response(200, f.as_dict())
