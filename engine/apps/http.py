"""The HTTP layer every app client shares: one ``httpx`` transport (connection pool) per connection.

What it does for a client, so that the clients only shape requests and read envelopes:

- **hosts**: the accounts, API and Desk hosts of each Zoho data centre (``DATACENTERS``), or one
  ``base_url`` that serves all of them (``syncform sandbox serve``, a proxy);
- **auth**: ``Authorization: Zoho-oauthtoken <token>`` from ``engine.apps.oauth.TokenSource``, with one
  forced refresh when the app answers 401 INVALID_TOKEN (or Desk's INVALID_OAUTH);
- **retries**: 429, 5xx, timeouts and connection errors are retried with exponential backoff and
  full jitter (``RetryPolicy``), honouring ``Retry-After``; the sleep and the random source are
  injectable so tests never sleep;
- **concurrency**: at most ``max_concurrency`` requests in flight per connection (the apps cap
  concurrency per org), a ``threading.BoundedSemaphore``;
- **stats**: calls per (module, operation) — one per logical call, however many attempts it took —
  and the retries separately;
- **errors**: httpx exceptions are translated here, once, into ``engine.errors``: ``TransientAppError``
  / ``RateLimitedError`` (after the retries ran out), ``AuthError``, ``TerminalAppError`` and
  ``ProtocolError`` (malformed JSON, wrong envelope);
- **redaction**: every secret the layer learns (client secret, refresh token, access tokens) is
  registered with ``REDACTOR``; error messages pass through it and a logging filter on the
  ``engine.apps`` and ``httpx`` loggers scrubs log records;
- **connections**: one ``httpx`` transport per connection whose pool holds ``max_concurrency`` (+1 for
  the token endpoint) kept-alive connections; requests go to it directly, without ``httpx.Client``;
- **cost**: ``transport_cpu_seconds()`` is the CPU (``time.thread_time``) every layer of the process spent
  building, sending and receiving requests and decoding their JSON answers, so a caller can tell
  syncform's own work from the transport's.
"""

from __future__ import annotations

import email.utils
import json as jsonlib
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

import httpx

from engine.errors import (AppError, AuthError, ProtocolError, RateLimitedError, TerminalAppError,
                           TransientAppError)

log = logging.getLogger("engine.apps")

T = TypeVar("T")
R = TypeVar("R")


# --------------------------------------------------------------------------------------------------
# Data centres

@dataclass(frozen=True, slots=True)
class Hosts:
    """Where one connection's calls go: OAuth, the Zoho API domain (Bigin, CRM, Bookings), Desk."""

    accounts: str
    api: str
    desk: str


DATACENTERS: dict[str, Hosts] = {
    "us": Hosts("https://accounts.zoho.com", "https://www.zohoapis.com", "https://desk.zoho.com"),
    "eu": Hosts("https://accounts.zoho.eu", "https://www.zohoapis.eu", "https://desk.zoho.eu"),
    "in": Hosts("https://accounts.zoho.in", "https://www.zohoapis.in", "https://desk.zoho.in"),
    "au": Hosts("https://accounts.zoho.com.au", "https://www.zohoapis.com.au", "https://desk.zoho.com.au"),
    "cn": Hosts("https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn", "https://desk.zoho.com.cn"),
    "jp": Hosts("https://accounts.zoho.jp", "https://www.zohoapis.jp", "https://desk.zoho.jp"),
    "ca": Hosts("https://accounts.zohocloud.ca", "https://www.zohoapis.ca", "https://desk.zohocloud.ca"),
    "sa": Hosts("https://accounts.zoho.sa", "https://www.zohoapis.sa", "https://desk.zoho.sa"),
}


def hosts_for(datacenter: str, base_url: str | None = None) -> Hosts:
    """The hosts of a data centre, or ``base_url`` for all three when it is given."""
    if base_url:
        root = base_url.rstrip("/")
        return Hosts(root, root, root)
    try:
        return DATACENTERS[datacenter]
    except KeyError:
        from engine.errors import UsageError, did_you_mean

        raise UsageError(f"unknown data centre {datacenter!r}{did_you_mean(datacenter, DATACENTERS)}") from None


# --------------------------------------------------------------------------------------------------
# CPU spent in the transport

_thread_time = time.thread_time
_cpu_lock = threading.Lock()
_cpu_total = 0.0


def _add_cpu(seconds: float) -> None:
    global _cpu_total
    with _cpu_lock:
        _cpu_total += seconds


def transport_cpu_seconds() -> float:
    """CPU seconds this process has spent inside the apps' HTTP layer, all threads and connections
    together: encoding request bodies, sending, receiving (the waiting is not CPU) and decoding JSON
    answers, token refreshes included. Monotonic; take differences around the work to measure
    (sync CPU minus this = syncform's own work)."""
    with _cpu_lock:
        return _cpu_total


# --------------------------------------------------------------------------------------------------
# Redaction

class Redactor:
    """Known secret strings, replaced by ``***`` wherever text leaves the layer."""

    MIN_LEN = 8  # never redact trivial strings (they would mangle every message)

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._ordered: tuple[str, ...] = ()  # longest first; replaced whole, so readers need no lock
        self._lock = threading.Lock()

    def add(self, *values: str | None) -> None:
        with self._lock:
            new = {v for v in values if isinstance(v, str) and len(v) >= self.MIN_LEN} - self._secrets
            if new:
                self._secrets |= new
                self._ordered = tuple(sorted(self._secrets, key=len, reverse=True))

    def redact(self, text: str) -> str:
        for s in self._ordered:
            if s in text:
                text = text.replace(s, "***")
        return text

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"


REDACTOR = Redactor()

# operations that must not be sent twice when the request may have landed (a lost answer)
NOT_IDEMPOTENT = frozenset({"create", "upsert"})


class RedactingFilter(logging.Filter):
    """Scrubs known secrets from a record's message and arguments (installed once, below)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is the logging caller's problem
            return True
        clean = REDACTOR.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = RedactingFilter()
for _name in ("engine.apps", "httpx", "httpcore"):
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, RedactingFilter) for f in _logger.filters):
        _logger.addFilter(_FILTER)


# --------------------------------------------------------------------------------------------------
# Retries

@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries: exponential backoff with full jitter, ``Retry-After`` honoured (capped)."""

    max_attempts: int = 6  # attempts in total, the first included
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.max_retry_after)
        return rng.uniform(0.0, min(self.max_delay, self.base_delay * (2 ** (attempt - 1))))


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
_JSON_HEADERS = {"Content-Type": "application/json"}


# --------------------------------------------------------------------------------------------------
# The layer

class HttpLayer:
    """One connection's HTTP: hosts, auth, retries, concurrency limit, stats, error translation."""

    def __init__(self, *, app: str, connection: str, hosts: Hosts,
                 transport: httpx.BaseTransport | None = None,
                 credentials: tuple[str, str, str] | None = None,
                 max_concurrency: int = 10, retry: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None,
                 timeout: float = 60.0, headers: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic, public_credentials: bool = False):
        from engine.apps.oauth import TOKEN_PATH, TokenSource

        self.app = app
        self.connection = connection
        self.hosts = hosts
        self.retry = retry or RetryPolicy()
        self.max_concurrency = max(1, int(max_concurrency))
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._slots = threading.BoundedSemaphore(self.max_concurrency)
        self._stats: Counter[tuple[str, str]] = Counter()
        self._retries: Counter[tuple[str, str]] = Counter()
        self._stats_lock = threading.Lock()
        # Requests go straight to the transport (httpx's public transport API): the layer needs none of
        # httpx.Client's per-request work (URL merging, cookie jars, auth and redirect flows), which cost
        # more CPU per call than the call's own request and answer. Real HTTP: one kept-alive
        # connection per request in flight (+1: the token endpoint).
        pool = self.max_concurrency + 1
        self._transport: httpx.BaseTransport = transport if transport is not None else httpx.HTTPTransport(
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool, keepalive_expiry=30.0))
        self._headers = {"Accept": "*/*", "Accept-Encoding": "gzip, deflate", "Connection": "keep-alive",
                         "User-Agent": f"syncform (python-httpx/{httpx.__version__})", **dict(headers or {})}
        self._timeout = {"timeout": httpx.Timeout(timeout).as_dict()}
        self._urls: dict[str, httpx.URL] = {}  # parsed once: httpx checks a URL character by character
        self.tokens: TokenSource | None = None
        if credentials is not None:
            client_id, client_secret, refresh_token = credentials
            self.tokens = TokenSource(
                connection=connection, token_url=hosts.accounts + TOKEN_PATH, client_id=client_id,
                client_secret=client_secret, refresh_token=refresh_token, clock=clock,
                public_credentials=public_credentials,
                send=lambda method, url, **kw: self._send(method, url, module="oauth", op="token",
                                                          auth=False, **kw))

    def __repr__(self) -> str:
        return f"HttpLayer(app={self.app!r}, connection={self.connection!r}, api={self.hosts.api!r})"

    # -- public ----------------------------------------------------------------------------------

    def request(self, method: str, url: str, *, module: str, op: str, params: Any = None,
                json: Any = None, data: Any = None, headers: Mapping[str, str] | None = None,
                count: bool = True) -> httpx.Response:
        """Send with auth and retries; return the final response.

        Returns every response that is not transient: 2xx, 3xx and 4xx other than 401 (the caller
        reads the app's envelope). Raises ``RateLimitedError`` / ``TransientAppError`` when the
        retries run out, ``AuthError`` for a 401 that a fresh token does not cure.
        """
        start = _thread_time()
        try:
            if count:
                with self._stats_lock:
                    self._stats[(module, op)] += 1
            content = None
            if json is not None:  # one encoding, the way httpx would do it, counted as transport work
                content = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":"),
                                        allow_nan=False).encode("utf-8")
                headers = {**headers, "Content-Type": "application/json"} if headers else _JSON_HEADERS
            return self._send(method, url, module=module, op=op, params=params, content=content, data=data,
                              headers=headers, auth=self.tokens is not None)
        finally:
            _add_cpu(_thread_time() - start)

    def stats(self) -> dict[tuple[str, str], int]:
        """Logical calls per (module, operation); retries are in ``retry_stats()``."""
        with self._stats_lock:
            return dict(self._stats)

    def retry_stats(self) -> dict[tuple[str, str], int]:
        with self._stats_lock:
            return dict(self._retries)

    def close(self) -> None:
        self._transport.close()

    # -- errors ------------------------------------------------------------------------------------

    def where(self, module: str, op: str) -> str:
        return f"{self.app} connection {self.connection!r}: {module} {op}"

    def json(self, response: httpx.Response, module: str, op: str) -> Any:
        """The JSON body, or ``ProtocolError`` naming the call."""
        start = _thread_time()
        try:
            return jsonlib.loads(response.content)
        except ValueError:
            raise ProtocolError(self.redact(f"{self.where(module, op)}: HTTP {response.status_code} "
                                            f"answer is not JSON: {response.text[:120]!r}"),
                                app=self.app, status=response.status_code, code="MALFORMED_JSON") from None
        finally:
            _add_cpu(_thread_time() - start)

    def error(self, response: httpx.Response, module: str, op: str) -> AppError:
        """A terminal request-level error from a Zoho (``code``) or Desk (``errorCode``) envelope."""
        code, message, details = "", "", {}
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            code = str(body.get("code") or body.get("errorCode") or "")
            message = str(body.get("message") or "")
            details = body.get("details") if isinstance(body.get("details"), dict) else {}
            if isinstance(body.get("errors"), list):
                details = {**details, "errors": body["errors"]}
        code = code or f"HTTP_{response.status_code}"
        text = self.redact(f"{self.where(module, op)}: {code} (HTTP {response.status_code})"
                           + (f": {message}" if message else ""))
        cls: type[AppError] = AuthError if response.status_code == 401 else TerminalAppError
        if response.status_code in TRANSIENT_STATUSES:
            cls = RateLimitedError if response.status_code == 429 else TransientAppError
        return cls(text, app=self.app, code=code, status=response.status_code, details=details)

    @staticmethod
    def redact(text: str) -> str:
        return REDACTOR.redact(text)

    # -- internals -----------------------------------------------------------------------------------

    def _send(self, method: str, url: str, *, module: str, op: str, auth: bool, params: Any = None,
              content: bytes | None = None, data: Any = None,
              headers: Mapping[str, str] | None = None) -> httpx.Response:
        refreshed = 0  # forced refreshes for this request: a second when its fresh token was revoked too
        attempt = 0
        while True:
            attempt += 1
            hdrs = {**self._headers, **headers} if headers else dict(self._headers)
            token = None
            if auth and self.tokens is not None:
                token = self.tokens.token()
                hdrs["Authorization"] = f"Zoho-oauthtoken {token}"
            failure: AppError
            retry_after: float | None = None
            try:
                parsed = self._urls.get(url)
                if parsed is None:
                    parsed = httpx.URL(url)
                    if len(self._urls) < 1024:  # a module's few endpoints; record paths would be unbounded
                        self._urls[url] = parsed
                request = httpx.Request(method, parsed, params=params, content=content, data=data, headers=hdrs,
                                        extensions=self._timeout)
                with self._slots:
                    response = self._transport.handle_request(request)
                    response.request = request
                    try:
                        response.read()
                    except BaseException:
                        response.close()
                        raise
            except httpx.TimeoutException as exc:
                failure = TransientAppError(self.redact(f"{self.where(module, op)}: timed out "
                                                        f"({type(exc).__name__})"), app=self.app, code="TIMEOUT")
                if op in NOT_IDEMPOTENT and not isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout)):
                    failure.details["may_have_landed"] = True
                    raise failure  # sent again, a create that landed would be created twice
            except httpx.TransportError as exc:
                failure = TransientAppError(self.redact(f"{self.where(module, op)}: connection failed "
                                                        f"({type(exc).__name__}: {exc})"), app=self.app,
                                            code="CONNECTION_ERROR")
                if op in NOT_IDEMPOTENT and not isinstance(exc, httpx.ConnectError):
                    failure.details["may_have_landed"] = True
                    raise failure  # the request was sent: it may have landed
            except httpx.HTTPError as exc:
                raise TerminalAppError(self.redact(f"{self.where(module, op)}: request failed "
                                                   f"({type(exc).__name__}: {exc})"), app=self.app,
                                       code="HTTP_ERROR") from None
            else:
                status = response.status_code
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("%s %s %s -> %s", self.connection, method, httpx.URL(url).path, status)
                if status == 401 and token is not None and self.tokens is not None and refreshed < 2 \
                        and self._is_invalid_token(response):
                    refreshed += 1
                    self.tokens.invalidate(token)
                    log.info("%s: access token rejected (%s %s); refreshing once",
                             self.connection, module, op)
                    attempt -= 1  # the forced refresh does not use up an attempt
                    continue
                if status == 401:
                    err = self.error(response, module, op)
                    raise AuthError(f"{err}; the credentials of connection {self.connection!r} were refused",
                                    app=self.app, code=err.code, status=401, details=err.details)
                if status not in TRANSIENT_STATUSES:
                    return response
                failure = self.error(response, module, op)
                retry_after = parse_retry_after(response.headers.get("Retry-After"))  # 429 and 503 send it
                if status == 429:
                    if retry_after is None:
                        retry_after = self._body_retry_after(response)
                    failure = RateLimitedError(str(failure), retry_after=retry_after, app=self.app,
                                               code=failure.code, status=429, details=failure.details)
            if attempt >= self.retry.max_attempts:
                raise failure
            delay = self.retry.delay(attempt, self._rng, retry_after)
            with self._stats_lock:
                self._retries[(module, op)] += 1
            log.info("%s: %s %s failed (%s), retry %d/%d in %.2fs", self.connection, module, op,
                     failure.code or type(failure).__name__, attempt, self.retry.max_attempts - 1, delay)
            self._sleep(delay)

    @staticmethod
    def _is_invalid_token(response: httpx.Response) -> bool:
        try:
            body = response.json()
        except ValueError:
            return True
        code = str(body.get("code") or body.get("errorCode") or "") if isinstance(body, dict) else ""
        return code in ("", "INVALID_TOKEN", "INVALID_OAUTH", "AUTHENTICATION_FAILURE", "UNAUTHORIZED")

    @staticmethod
    def _body_retry_after(response: httpx.Response) -> float | None:
        try:
            body = response.json()
        except ValueError:
            return None
        if isinstance(body, dict):
            details = body.get("details") if isinstance(body.get("details"), dict) else {}
            value = body.get("retry_after", details.get("retry_after"))
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
                return float(value)
        return None


# --------------------------------------------------------------------------------------------------
# Helpers the clients share

def chunks(items: Sequence[T], size: int) -> Iterable[tuple[int, Sequence[T]]]:
    """``(offset, slice)`` pairs of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield start, items[start:start + size]


def parallel(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """``fn`` over ``items`` on up to ``workers`` threads; results in input order."""
    if len(items) <= 1 or workers <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))
