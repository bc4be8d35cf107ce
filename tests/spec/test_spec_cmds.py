"""syncform validate / fmt / schema through the real CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _copy_examples(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "integrations", tmp_path / "integrations")
    return tmp_path


def test_validate_examples_exit_0(tmp_path: Path, run_cli) -> None:
    r = run_cli("validate", cwd=_copy_examples(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "Valid: 4 integration(s), 4 connection(s) in 5 file(s)" in r.stdout
    assert ": error:" not in r.stdout + r.stderr


def test_validate_json_and_exit_1(tmp_path: Path, run_cli) -> None:
    root = _copy_examples(tmp_path)
    spec = root / "integrations" / "desk-crm.yaml"
    spec.write_text(spec.read_text().replace("direction: left-to-right", "direction: left-to-rigth"))
    r = run_cli("validate", "--json", cwd=root)
    assert r.returncode == 1
    data = json.loads(r.stdout)
    assert data["valid"] is False and data["error_count"] == 1
    err = next(d for d in data["diagnostics"] if d["severity"] == "error")
    assert (err["file"], err["line"], err["col"], err["code"]) == ("integrations/desk-crm.yaml", 16, 18, "enum")
    assert err["message"] == ('direction must be one of two-way, left-to-right, right-to-left '
                              '(got "left-to-rigth"); did you mean "left-to-right"?')
    r = run_cli("validate", cwd=root)
    assert r.returncode == 1
    assert "integrations/desk-crm.yaml:16:18: error: direction must be one of" in r.stderr
    assert "1 error(s)" in r.stderr


def test_schema_command_prints_both_kinds(run_cli, tmp_path: Path) -> None:
    r = run_cli("schema", "--kind", "Integration")
    assert r.returncode == 0
    assert json.loads(r.stdout)["$id"] == "https://syncform.dev/schemas/integration.v1.schema.json"
    r = run_cli("schema")
    both = json.loads(r.stdout)
    assert set(both) == {"Integration", "Connection"}
    assert both["Connection"]["$id"].endswith("connection.v1.schema.json")
    r = run_cli("schema", "--kind", "Pipeline")
    assert r.returncode == 1


UNFORMATTED = """\
# Desk and Bigin share customers.
kind: Integration      # kind comment
apiVersion: syncform/v1
spec:
  right: {connection: bigin, app: bigin}
  left: {app: zoho_desk, connection: desk}
  modules:
  - right: Contacts    # Bigin's module
    name: contacts
    left: contacts
    fields:
    - {right: Email, left: email}
metadata:
    name: desk-bigin
"""


def test_fmt_check_rewrite_and_keep_comments(tmp_path: Path, run_cli) -> None:
    (tmp_path / "integrations").mkdir()
    spec = tmp_path / "integrations" / "desk-bigin.yaml"
    spec.write_text(UNFORMATTED)
    templated = tmp_path / "integrations" / "t.yaml"
    templated.write_text("kind: Connection\napiVersion: {{ v }}\n")
    r = run_cli("fmt", "--check", cwd=tmp_path)
    assert r.returncode == 1
    assert "would reformat integrations/desk-bigin.yaml" in r.stdout
    assert "integrations/t.yaml: uses Jinja2 templates; left as written" in r.stderr
    assert spec.read_text() == UNFORMATTED
    r = run_cli("fmt", cwd=tmp_path)
    assert r.returncode == 0
    text = spec.read_text()
    assert text.splitlines()[:6] == [
        "# Desk and Bigin share customers.",
        "apiVersion: syncform/v1",
        "kind: Integration      # kind comment",
        "metadata:",
        "  name: desk-bigin",
        "spec:",
    ]
    assert "    - name: contacts\n      left: contacts\n      right: Contacts  # Bigin's module\n" in text
    assert "        - {left: email, right: Email}\n" in text
    assert templated.read_text() == "kind: Connection\napiVersion: {{ v }}\n"
    r = run_cli("fmt", "--check", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


def test_examples_are_formatted(run_cli) -> None:
    r = run_cli("fmt", "--check", "integrations", cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr
