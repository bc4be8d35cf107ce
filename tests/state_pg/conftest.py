"""PostgreSQL fixtures: a fresh schema per test on the server named by SYNCFORM_TEST_POSTGRES.

Without that variable every test here skips, saying how to get a server:
``export SYNCFORM_TEST_POSTGRES=$(scripts/pg-test-server.sh start)`` (and ``scripts/pg-test-server.sh stop``).
"""

from __future__ import annotations

import os
import uuid

import pytest

from tests.state.conftest import Clock

ENV = "SYNCFORM_TEST_POSTGRES"
HOW = (f"{ENV} is not set: start a throwaway server with `export {ENV}=$(scripts/pg-test-server.sh start)` "
       "(installs Debian's postgresql when missing and run as root; `scripts/pg-test-server.sh stop` ends it), "
       "or point it at a database of your own (postgresql://user@host:port/db)")


def server_url() -> str | None:
    return os.environ.get(ENV) or None


def with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


def drop_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


_CREATED: set[tuple[str, str]] = set()  # (server URL, schema) made by open_test_store, dropped at the end


def open_test_store(tmp_path, clock):
    """A PostgreSQL store on a schema of its own per test directory (the same schema when opened again in
    the same test), for tests/state/conftest.py's STORES; skips, saying how to run, without a server."""
    import hashlib

    url = server_url()
    if not url:
        pytest.skip(HOW)
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[test]'")
    from engine.state import open_store

    schema = "t_" + hashlib.sha1(str(tmp_path).encode()).hexdigest()[:16]
    if (url, schema) not in _CREATED:
        drop_schema(url, schema)  # left by an earlier session that used the same directory name
        if not _CREATED:
            import atexit

            atexit.register(_drop_created)
        _CREATED.add((url, schema))
    return open_store(with_schema(url, schema), clock=clock)


def _drop_created() -> None:
    import psycopg

    for url in sorted({u for u, _ in _CREATED}):
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                for u, schema in sorted(_CREATED):
                    if u == url:
                        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        except Exception:
            pass
    _CREATED.clear()


@pytest.fixture
def pg_url() -> str:
    url = server_url()
    if not url:
        pytest.skip(HOW)
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[test]'")
    return url


@pytest.fixture
def pg_schema_url(pg_url):
    """A URL naming a fresh schema (dropped afterwards): each test gets a state of its own."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield with_schema(pg_url, schema)
    try:
        drop_schema(pg_url, schema)
    except Exception:
        pass


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store_factory(pg_schema_url, clock):
    """Opens the store (again) on the same schema: reopening must see what was committed."""
    from engine.state import open_store

    opened = []

    def factory():
        s = open_store(pg_schema_url, clock=clock)
        opened.append(s)
        return s

    yield factory
    for s in opened:
        s.close()


@pytest.fixture
def store(store_factory):
    return store_factory()
