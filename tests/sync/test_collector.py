"""A sync raises the garbage collector's first threshold for its duration and gives the embedding
program its own settings back, also when the run fails."""

from __future__ import annotations

import gc

import pytest

import engine.sync as sync


def test_a_run_restores_the_callers_collector_thresholds_even_when_it_fails(monkeypatch):
    seen = []

    def failing_run(integration, **kwargs):
        seen.append(gc.get_threshold())
        raise RuntimeError("the app went away")

    monkeypatch.setattr("engine.sync.engine.sync_integration", failing_run)
    before = gc.get_threshold()
    gc.set_threshold(1234, 5, 6)
    try:
        with pytest.raises(RuntimeError):
            sync.sync_integration(object())
        assert seen == [sync.GC_THRESHOLD]
        assert gc.get_threshold() == (1234, 5, 6)
    finally:
        gc.set_threshold(*before)
