"""App name → client class, and ``open_client``: the one way to get the client of a connection.

Classes are imported only when a connection of their app is opened. ``open_client`` picks where the
calls go:

- ``sandbox:`` connection → the built-in sandbox in-process, through ``httpx.WSGITransport`` over
  ``engine.sandbox.for_connection(conn, workdir)``, with the sandbox credentials unless ``auth:`` is given;
- ``base_url`` → real HTTP to that URL (accounts and API alike), e.g. ``syncform sandbox serve``;
- otherwise → the data centre's hosts (``engine.apps.http.DATACENTERS``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from engine.apps.base import AppClient
from engine.errors import SecretError, UsageError, did_you_mean
from engine.spec.model import Connection

# app -> ("module:attribute", keyword arguments for the class)
_REGISTRY: dict[str, tuple[str, dict[str, Any]]] = {}

SANDBOX_CREDENTIALS = ("sandbox", "sandbox", "sandbox-refresh")
SANDBOX_BASE_URL = "http://sandbox.syncform.invalid"
SANDBOX_ORG_ID = "60001234"  # the sandbox accepts any; this is its organisation
AUTH_KEYS = ("client_id", "client_secret", "refresh_token")


def register(app: str, target: str, kwargs: dict[str, Any] | None = None) -> None:
    """Register the client class ``target`` ("module:Class") for ``app``; a second registration fails.

    ``kwargs`` are passed to the class after the HTTP layer."""
    if not app or ":" not in target:
        raise ValueError(f"register({app!r}, {target!r}): need an app name and 'module:Class'")
    if app in _REGISTRY:
        raise ValueError(f"app {app!r} already has a client ({_REGISTRY[app][0]})")
    _REGISTRY[app] = (target, dict(kwargs or {}))


def apps() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


register("bigin", "engine.apps.zoho:ZohoClient", {"app": "bigin"})
register("zoho_crm", "engine.apps.zoho:ZohoClient", {"app": "zoho_crm"})
register("zoho_desk", "engine.apps.desk:DeskClient")
register("zoho_bookings", "engine.apps.bookings:BookingsClient")


def client_class(app: str) -> tuple[Callable[..., AppClient], dict[str, Any]]:
    if app not in _REGISTRY:
        raise UsageError(f"unknown app {app!r}{did_you_mean(app, list(_REGISTRY))}")
    target, kwargs = _REGISTRY[app]
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr), kwargs


def open_client(conn: Connection, *, workdir: Path, transport: httpx.BaseTransport | None = None,
                **options: Any) -> AppClient:
    """The client of ``conn``.

    ``transport`` replaces the network (tests: ``httpx.MockTransport``); ``options`` go to the HTTP
    layer (``sleep``, ``rng``, ``retry``, ``timeout``) and the client (``api_path`` for CRM, e.g.
    ``/crm/v2``).
    """
    from engine.apps.http import HttpLayer, hosts_for

    cls, kwargs = client_class(conn.app)
    workdir = Path(workdir)
    client_opts = {k: options.pop(k) for k in ("api_path",) if k in options}
    org_id = conn.org_id
    if conn.sandbox is not None and conn.base_url is None:
        if transport is None:
            from engine.sandbox import for_connection

            transport = httpx.WSGITransport(app=for_connection(conn, workdir))
        hosts = hosts_for(conn.datacenter, SANDBOX_BASE_URL)
        credentials = _credentials(conn, workdir) if conn.auth else SANDBOX_CREDENTIALS
        org_id = org_id or SANDBOX_ORG_ID
    else:
        hosts = hosts_for(conn.datacenter, conn.base_url)
        if conn.sandbox is not None and not conn.auth:
            credentials = SANDBOX_CREDENTIALS
            org_id = org_id or SANDBOX_ORG_ID
        else:
            credentials = _credentials(conn, workdir)
    if conn.app == "zoho_desk":
        if not org_id:
            raise UsageError(f"connection {conn.name!r} ({conn.mark}): Zoho Desk needs org_id "
                             f"(the organisation id, Setup > Developer Space > API)")
        client_opts["org_id"] = org_id
    http = HttpLayer(app=conn.app, connection=conn.name, hosts=hosts, transport=transport,
                     credentials=credentials, max_concurrency=conn.max_concurrency,
                     public_credentials=credentials == SANDBOX_CREDENTIALS, **options)
    try:
        return cls(http, **kwargs, **client_opts)
    except Exception:
        http.close()
        raise


def _credentials(conn: Connection, workdir: Path) -> tuple[str, str, str]:
    from engine.apps.secrets import resolve

    refs = dict(conn.auth)
    missing = [k for k in AUTH_KEYS if k not in refs]
    if missing:
        raise SecretError(f"connection {conn.name!r} ({conn.mark}): auth is missing {', '.join(missing)}; "
                          f"give each as {{env: NAME}} or {{file: PATH}}")
    client_id, client_secret, refresh_token = (resolve(refs[k], workdir) for k in AUTH_KEYS)
    return client_id, client_secret, refresh_token
