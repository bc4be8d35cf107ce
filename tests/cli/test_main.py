from __future__ import annotations


def test_help_lists_every_command(run_cli):
    res = run_cli("--help")
    assert res.returncode == 0
    for name in ("validate", "plan", "apply", "sync", "sandbox", "reconcile"):
        assert name in res.stdout


def test_unknown_command_suggests_the_closest(run_cli):
    res = run_cli("plna")
    assert res.returncode == 1
    assert 'did you mean "plan"' in res.stderr
