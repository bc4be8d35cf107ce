"""State stores: what is deployed, and the sync bookkeeping of every integration.

``engine.state.open_store(url)`` opens a store by URL: ``sqlite:///path/state.db`` (default
``sqlite:///.syncform/state.db``; three slashes then a relative path, four for an absolute one,
``sqlite:///:memory:`` for a throwaway store) or ``postgresql://user@host:5432/db`` (also
``postgres://``; see engine/state/postgres.py and docs/postgres.md).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.state.base import StateStore

DEFAULT_URL = "sqlite:///.syncform/state.db"

# scheme -> "module:factory"; a factory takes (url, location, **options).
SCHEMES: dict[str, str] = {
    "sqlite": "engine.state:_open_sqlite",
    "postgresql": "engine.state:_open_postgres",
    "postgres": "engine.state:_open_postgres",
}


def open_store(url: str = DEFAULT_URL, *, base: str | Path | None = None, **options: Any) -> "StateStore":
    """Open (creating and migrating when needed) the state store at ``url``.

    ``base`` is the directory relative SQLite paths are taken from (default: the current directory).
    Unknown schemes raise ``StateError`` listing the supported ones.
    """
    from engine.errors import StateError

    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        raise StateError(f'state URL "{url}" has no scheme; expected e.g. {DEFAULT_URL} '
                         f"(supported: {', '.join(sorted(SCHEMES))})")
    target = SCHEMES.get(scheme.lower())
    if target is None:
        raise StateError(f'unsupported state URL scheme "{scheme}"; supported: '
                         f"{', '.join(s + '://' for s in sorted(SCHEMES))}")
    module, attr = target.split(":")
    factory = getattr(importlib.import_module(module), attr)
    return factory(url, rest, base=base, **options)


def _open_sqlite(url: str, rest: str, *, base: str | Path | None = None, **options: Any) -> "StateStore":
    from engine.errors import StateError
    from engine.state.sqlite import SQLiteStore

    if not rest.startswith("/") or rest == "/":
        raise StateError(f'state URL "{url}": expected sqlite:///relative/path.db or sqlite:////absolute/path.db')
    location = rest[1:]
    if location.startswith("/") or location == ":memory:":
        path = location
    else:
        path = str(Path(base or ".") / location)
    return SQLiteStore(path, url=url, **options)


def _open_postgres(url: str, rest: str, *, base: str | Path | None = None, **options: Any) -> "StateStore":
    from engine.state.postgres import PostgresStore

    return PostgresStore(url, **options)
