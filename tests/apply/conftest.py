from __future__ import annotations

import shutil

import pytest

from tests.plan.support import FIXTURES, NOW


@pytest.fixture
def repo(tmp_path):
    """A user's repository holding the base fixture specs under integrations/."""
    shutil.copytree(FIXTURES / "base", tmp_path / "integrations")
    return tmp_path


@pytest.fixture(params=["sqlite", "postgres"])
def state_url(request):
    """Every apply test runs on SQLite, and on PostgreSQL when SYNCFORM_TEST_POSTGRES names a server
    (``export SYNCFORM_TEST_POSTGRES=$(scripts/pg-test-server.sh start)``)."""
    if request.param == "sqlite":
        yield "sqlite:///.syncform/state.db"
        return
    import os
    import uuid

    url = os.environ.get("SYNCFORM_TEST_POSTGRES")
    if not url:
        pytest.skip("SYNCFORM_TEST_POSTGRES is not set (scripts/pg-test-server.sh start)")
    psycopg = pytest.importorskip("psycopg")
    schema = f"apply_{uuid.uuid4().hex[:12]}"
    yield f"{url}{'&' if '?' in url else '?'}schema={schema}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def session(repo, state_url):
    from engine.workspace import open_session

    s = open_session(root=repo, clock=lambda: NOW, state_url=state_url)
    yield s
    s.close()


@pytest.fixture
def edit_spec(repo):
    def edit(old: str, new: str) -> None:
        path = repo / "integrations" / "specs.yaml"
        text = path.read_text()
        assert old in text, old
        path.write_text(text.replace(old, new, 1))

    return edit
