from __future__ import annotations

import shutil

import pytest

from tests.plan.support import FIXTURES, NOW


@pytest.fixture
def repo(tmp_path):
    """A user's repository holding the base fixture specs under integrations/."""
    shutil.copytree(FIXTURES / "base", tmp_path / "integrations")
    return tmp_path


@pytest.fixture
def session(repo):
    from engine.workspace import open_session

    s = open_session(root=repo, clock=lambda: NOW)
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
