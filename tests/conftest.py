"""Shared fixtures. Each area keeps its own fixtures in tests/<area>/conftest.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def run_cli(tmp_path, monkeypatch):
    """Run the real CLI in a subprocess: ``run_cli("validate", "integrations/", cwd=...)``."""

    def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
        return subprocess.run([sys.executable, "-m", "engine", *args], cwd=str(cwd or tmp_path),
                              env=full_env, input=input, capture_output=True, text=True, timeout=timeout)

    return run
