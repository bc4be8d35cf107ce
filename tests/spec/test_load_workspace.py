"""engine.spec.load_workspace: the desired model, normalised, with marks into the user's source."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import SpecError
from engine.spec import load_workspace

CONNECTIONS = """\
apiVersion: syncform/v1
kind: Connection
metadata: {name: desk}
spec: {app: zoho_desk, sandbox: {seed: 5}}
---
apiVersion: syncform/v1
kind: Connection
metadata: {name: bigin}
spec:
  app: bigin
  datacenter: eu
  auth:
    client_id: {env: BIGIN_CLIENT_ID}
    client_secret: {env: BIGIN_CLIENT_SECRET}
    refresh_token: {file: secrets/bigin}
"""

DESK_BIGIN = """\
apiVersion: syncform/v1
kind: Integration
metadata: {name: desk-bigin}
spec:
  left: {app: zoho_desk, connection: desk}
  right: {app: bigin, connection: bigin}
  modules:
    - name: contacts
      left: contacts
      right: Contacts
      match: [{left: email, right: Email}]
      defaults: true
      fields:
        - {left: firstName, right: First_Name, direction: two-way}
        - {left: cf.cf_customer_type, right: Customer_Type, direction: right-to-left}
        - {left: title, right: Description}
        - {right: Title, value: Customer}
"""


def _write(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "integrations"
    for name, text in files.items():
        p = folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return folder


def test_loads_defaults_and_normalises(tmp_path: Path) -> None:
    _write(tmp_path, {"c.yaml": CONNECTIONS, "desk-bigin.yaml": DESK_BIGIN})
    ws, warnings = load_workspace(root=tmp_path)
    integ = ws.integration("desk-bigin")
    assert integ is not None and ws.files == ("integrations/c.yaml", "integrations/desk-bigin.yaml")
    m = integ.modules[0]
    assert (m.direction, m.conflict, m.on_delete_left, m.on_delete_right, m.created_within_days, m.enabled) == \
        ("two-way", "latest", "unlink", "unlink", 365, True)
    by_key = {fm.key: fm for fm in m.fields}
    # defaults: true expanded from the catalog's standard pairs, marked as such
    assert by_key["Last_Name"].default and by_key["Last_Name"].left == ("lastName",)
    # a user entry writing the same field replaces the default (Description, First_Name, Title)
    assert not by_key["Description"].default and by_key["Description"].left == ("title",)
    assert [fm.key for fm in m.fields].count("Title") == 1 and by_key["Title"].value == "Customer"
    assert by_key["Title"].left == () and by_key["Title"].direction == "left-to-right"
    # a direction equal to the module's is normalised away; a narrower one is kept
    assert by_key["First_Name"].direction is None and not by_key["First_Name"].default
    assert by_key["Customer_Type"].direction == "right-to-left"
    # marks point into the user's file (1-based)
    assert str(integ.mark) == "integrations/desk-bigin.yaml:3:18"
    assert str(by_key["Customer_Type"].mark) == "integrations/desk-bigin.yaml:15:11"
    assert str(m.match[0].mark) == "integrations/desk-bigin.yaml:11:15"
    assert all(w.severity == "warning" for w in warnings)


def test_connections_keep_secret_references_only(tmp_path: Path) -> None:
    _write(tmp_path, {"c.yaml": CONNECTIONS})
    ws, _ = load_workspace(root=tmp_path)
    desk, bigin = ws.connection("desk"), ws.connection("bigin")
    assert desk is not None and desk.sandbox is not None and desk.sandbox.seed == 5 and desk.datacenter == "us"
    assert bigin is not None and bigin.sandbox is None and bigin.datacenter == "eu" and bigin.max_concurrency == 10
    assert [(k, r.kind, r.ref) for k, r in bigin.auth] == [
        ("client_id", "env", "BIGIN_CLIENT_ID"), ("client_secret", "env", "BIGIN_CLIENT_SECRET"),
        ("refresh_token", "file", "secrets/bigin")]


def test_auto_field_modules_get_the_standard_pairs(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    ws, _ = load_workspace([repo / "integrations"], root=repo)
    tasks = ws.integration("bigin-crm").module("tasks")  # type: ignore[union-attr]
    assert tasks is not None and tasks.parent == "contacts" and tasks.defaults
    assert ("Subject",) in [fm.left for fm in tasks.fields] and all(fm.default for fm in tasks.fields)


def test_errors_raise_spec_error_with_every_diagnostic_sorted(tmp_path: Path) -> None:
    bad = DESK_BIGIN.replace("right: First_Name", "right: Frist_Name").replace("connection: bigin}", "connection: bign}")
    _write(tmp_path, {"c.yaml": CONNECTIONS, "desk-bigin.yaml": bad})
    with pytest.raises(SpecError) as err:
        load_workspace(root=tmp_path)
    lines = [str(d) for d in err.value.diagnostics if d.severity == "error"]
    assert lines == [
        'integrations/desk-bigin.yaml:6:35: error: unknown connection "bign"; did you mean "bigin"?',
        'integrations/desk-bigin.yaml:14:36: error: unknown field "Frist_Name" in bigin Contacts; '
        'did you mean "First_Name"?',
    ]
    assert list(err.value.diagnostics) == sorted(err.value.diagnostics)


def test_template_variables_from_var_files_and_vars(tmp_path: Path) -> None:
    tmpl = CONNECTIONS.replace("{seed: 5}", "{seed: {{ seed }}}").replace("datacenter: eu", "datacenter: {{ dc }}")
    folder = _write(tmp_path, {"c.yaml": tmpl, "vars/prod.yaml": "seed: 7\ndc: in\n"})
    ws, _ = load_workspace(root=tmp_path, var_files=[folder / "vars" / "prod.yaml"], variables={"seed": "9"})
    assert ws.connection("desk").sandbox.seed == 9  # type: ignore[union-attr]  (--var wins over --var-file)
    assert ws.connection("bigin").datacenter == "in"  # type: ignore[union-attr]
    assert ws.files == ("integrations/c.yaml",)  # vars/ is not a spec folder


def test_explicit_files_and_missing_paths(tmp_path: Path) -> None:
    folder = _write(tmp_path, {"c.yaml": CONNECTIONS})
    ws, _ = load_workspace([folder / "c.yaml"], root=tmp_path)
    assert len(ws.connections) == 2
    with pytest.raises(SpecError) as err:
        load_workspace(["nope/"], root=tmp_path)
    assert str(err.value.diagnostics[0]) == "nope:1:1: error: no such file or folder: nope"


def test_field_templates_are_kept_for_sync_time(tmp_path: Path) -> None:
    spec = DESK_BIGIN.replace("- {right: Title, value: Customer}",
                              '- {right: Title, template: "{{ record.firstName | upper }}"}')
    _write(tmp_path, {"c.yaml": CONNECTIONS, "desk-bigin.yaml": spec})
    ws, _ = load_workspace(root=tmp_path)  # no variables needed: the file itself is not a template
    title = next(fm for fm in ws.integration("desk-bigin").modules[0].fields if fm.key == "Title")  # type: ignore
    assert title.template == "{{ record.firstName | upper }}" and title.left == ()
    raw = spec.replace('"{{ record.firstName | upper }}"', '"{% raw %}{{ record.firstName }}{% endraw %}"') \
        .replace("metadata: {name: desk-bigin}", "metadata: {name: {{ name }}}")
    _write(tmp_path, {"desk-bigin.yaml": raw})
    ws, _ = load_workspace(root=tmp_path, variables={"name": "desk-bigin"})
    title = next(fm for fm in ws.integration("desk-bigin").modules[0].fields if fm.key == "Title")  # type: ignore
    assert title.template == "{{ record.firstName }}"


def test_symlinked_specs_are_read_once_and_named_by_their_target(tmp_path: Path) -> None:
    from engine.spec.loader import discover

    specs = tmp_path / "integrations"
    (specs / "sub").mkdir(parents=True)
    (specs / "connections.yaml").write_text(CONNECTIONS)
    (specs / "sub" / "desk-bigin.yaml").write_text(DESK_BIGIN)
    (specs / "a-link.yaml").symlink_to(specs / "sub" / "desk-bigin.yaml")  # the same spec twice
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.yaml").write_text("not: read\n")
    (specs / "linked-folder").symlink_to(tmp_path / "elsewhere", target_is_directory=True)  # not followed
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "integrations").symlink_to(specs, target_is_directory=True)

    resolved: dict[Path, Path] = {}
    files, diags = discover((), tmp_path / "real", resolved=resolved)
    assert diags == []
    assert [f.name for f in files] == ["a-link.yaml", "connections.yaml"]  # desk-bigin.yaml is a-link's target
    assert resolved == {f: f.resolve() for f in files}
    ws, _ = load_workspace(root=tmp_path)  # named relative to the root, by where they really are
    assert ws.files == ("integrations/sub/desk-bigin.yaml", "integrations/connections.yaml")
    assert [i.name for i in ws.integrations] == ["desk-bigin"]
