"""Two syncform processes opening a new state at once (two `apply` started together): the one that
finds the directory created by the other between its check and its mkdir goes on, and the directory
stays private."""

from __future__ import annotations

import stat
from pathlib import Path

from engine.state.sqlite import _prepare_file


def test_the_state_directory_created_meanwhile_by_another_process_is_no_error(tmp_path, monkeypatch):
    parent = tmp_path / ".syncform"
    real_exists = Path.exists

    def exists_before_the_other_process_made_it(self):
        if self == parent:
            self.mkdir(mode=0o755, exist_ok=True)  # the other process wins the race right after our check
            return False
        return real_exists(self)

    monkeypatch.setattr(Path, "exists", exists_before_the_other_process_made_it)
    _prepare_file(parent / "state.db")
    monkeypatch.undo()
    assert (parent / "state.db").is_file()
    assert stat.S_IMODE(parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((parent / "state.db").stat().st_mode) == 0o600
