"""The ``store`` fixture: every store test runs against each implementation listed in STORES.

A PostgreSQL store joins by adding a factory here (skipped when no server is configured).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest


class Clock:
    """A settable clock: tests never sleep to make time pass."""

    def __init__(self, start: datetime = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> datetime:
        self.now += timedelta(**kw)
        return self.now


def _sqlite(tmp_path, clock):
    from engine.state import open_store

    return open_store("sqlite:///.syncform/state.db", base=tmp_path, clock=clock)


def _postgres(tmp_path, clock):  # skipped, saying how to run it, unless SYNCFORM_TEST_POSTGRES names a server
    from tests.state_pg.conftest import open_test_store

    return open_test_store(tmp_path, clock)


STORES = {"sqlite": _sqlite, "postgres": _postgres}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=sorted(STORES))
def store_factory(request, tmp_path, clock):
    """Opens the store (again) on the same backing storage: reopening must see what was committed."""
    opened = []

    def factory():
        s = STORES[request.param](tmp_path, clock)
        opened.append(s)
        return s

    yield factory
    for s in opened:
        s.close()


@pytest.fixture
def store(store_factory):
    return store_factory()
