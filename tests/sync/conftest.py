from __future__ import annotations

import pytest

from engine.spec.model import FieldMap, Integration, IntegrationSide, MatchKey, Module
from tests.sync.fakes import Clock, FakeApp


def contacts_module(**kw) -> Module:
    base = dict(
        name="contacts", left="contacts", right="Contacts", direction="two-way",
        match=(MatchKey("email", "Email"),),
        fields=(FieldMap(("firstName",), ("First_Name",)), FieldMap(("lastName",), ("Last_Name",)),
                FieldMap(("email",), ("Email",)), FieldMap(("phone",), ("Mobile",))),
    )
    base.update(kw)
    return Module(**base)


def make_integration(*modules: Module, **kw) -> Integration:
    return Integration(name="desk-bigin", left=IntegrationSide("zoho_desk", "desk"),
                       right=IntegrationSide("bigin", "bigin"), modules=modules or (contacts_module(),), **kw)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def apps(clock):
    return FakeApp("zoho_desk", clock), FakeApp("bigin", clock)


@pytest.fixture
def store(tmp_path):
    from engine.state import open_store

    s = open_store(f"sqlite:///{tmp_path}/state.db")
    yield s
    s.close()


@pytest.fixture
def sync(store, apps, clock):
    from engine.sync import sync_integration

    left, right = apps

    def run(integration=None, **kw):
        clock.tick(5)
        return sync_integration(integration or make_integration(), store=store, left=left, right=right,
                                clock=clock, **kw)

    return run
