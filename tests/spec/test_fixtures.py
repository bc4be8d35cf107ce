"""One fixture folder per failure mode: the specs in it and the exact diagnostics they must produce.

``tests/spec/fixtures/<mode>/expected.txt`` lists every error (and, for warning modes, the expected
warnings) as ``file:line:col: severity: message``; the line and column point at the offending token
of the user's file, also in Jinja2 files (``vars/test.yaml`` is passed as --var-file when present) and
in multi-document files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.spec import check_workspace

FIXTURES = Path(__file__).parent / "fixtures"
MODES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())


def _run(mode: str) -> tuple[list[str], list[str]]:
    folder = FIXTURES / mode
    var_files = ["vars/test.yaml"] if (folder / "vars" / "test.yaml").exists() else []
    _, diags = check_workspace(["."], var_files=var_files, root=folder)
    return ([str(d) for d in diags if d.severity == "error"], [str(d) for d in diags if d.severity == "warning"])


def _expected(mode: str) -> list[str]:
    text = (FIXTURES / mode / "expected.txt").read_text("utf-8")
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("mode", MODES)
def test_fixture_reports_expected_diagnostics(mode: str) -> None:
    expected = _expected(mode)
    assert expected, f"{mode}: expected.txt is empty"
    errors, warnings = _run(mode)
    expected_errors = [e for e in expected if ": error: " in e]
    expected_warnings = [e for e in expected if ": warning: " in e]
    assert errors == expected_errors
    for w in expected_warnings:
        assert w in warnings


def test_every_failure_mode_has_a_fixture() -> None:
    codes_needed = {
        "unknown-key", "enum", "missing-key", "api-version", "unknown-kind", "inline-secret", "duplicate-key",
        "alias-bomb", "too-deep", "invalid-utf8", "template-unsafe", "template-undefined", "unknown-app",
        "unknown-connection", "connection-of-another-app", "unknown-module", "unknown-field", "incompatible-types",
        "lossy-types", "read-only", "encrypted-field", "mandatory-unmapped", "written-twice", "match-not-mapped",
        "field-direction", "child-without-parent", "auto-fields", "departments-missing", "several-views",
        "name-split", "loop", "hub-warning", "duplicate-names", "jinja-marks", "multi-document",
    }
    assert codes_needed <= set(MODES)


def test_examples_in_the_repository_are_valid() -> None:
    repo = Path(__file__).resolve().parents[2]
    ws, diags = check_workspace(["integrations"], root=repo)
    assert [str(d) for d in diags if d.severity == "error"] == []
    assert {i.name for i in ws.integrations} == {"bookings-bigin", "desk-bigin", "bigin-crm", "desk-crm"}
    assert {c.name for c in ws.connections} == {"bookings", "bigin", "crm", "desk"}
    assert all(c.sandbox is not None and c.sandbox.seed == 50 for c in ws.connections)
