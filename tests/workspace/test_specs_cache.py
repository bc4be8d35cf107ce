"""The specs cache of ``plan --no-refresh`` (.syncform/cache/specs.json): a plan from the cache is the
plan the specs give now. Every input of the loader invalidates it: a spec file edited, added or
removed, a --var, a --var-file's content, which var files are passed."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import workspace

CONNECTIONS = """\
apiVersion: syncform/v1
kind: Connection
metadata: {name: bigin}
spec: {app: bigin, sandbox: {seed: 0}}
---
apiVersion: syncform/v1
kind: Connection
metadata: {name: crm}
spec: {app: zoho_crm, sandbox: {seed: 0}}
"""

INTEGRATION = """\
apiVersion: syncform/v1
kind: Integration
metadata:
  name: {name}
  description: "Sales of {{{{ region }}}}"
spec:
  left: {{app: bigin, connection: bigin}}
  right: {{app: zoho_crm, connection: crm}}
  modules:
    - name: contacts
      left: Contacts
      right: Contacts
      direction: {direction}
      match: [{{left: Email, right: Email}}]
      fields:
        - {{left: Last_Name, right: Last_Name}}
        - {{left: Email, right: Email}}
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    specs = tmp_path / "integrations"
    specs.mkdir()
    (specs / "connections.yaml").write_text(CONNECTIONS)
    (specs / "a.yaml").write_text(INTEGRATION.format(name="a", direction="two-way"))
    (tmp_path / "vars.yaml").write_text("region: north\n")
    return tmp_path


def _plan(repo: Path, **session: object) -> dict[str, dict]:
    """name -> the integration spec a fresh process would plan (a new session each time, as a CLI run)."""
    with workspace.open_session(root=repo, state_url=f"sqlite:///{repo / 'state.db'}", **session) as s:
        p = workspace.plan(s, refresh=False)
    return {st.integration: st.payload["spec"]["integration"] for st in p.steps if st.type == "put_integration"}


def test_the_cache_is_used_and_follows_every_input_of_the_loader(repo: Path) -> None:
    cache = repo / ".syncform" / "cache" / "specs.json"
    assert _plan(repo, var_files=["vars.yaml"])["a"]["description"] == "Sales of north"
    written = cache.stat().st_mtime_ns
    assert _plan(repo, var_files=["vars.yaml"])["a"]["description"] == "Sales of north"
    assert cache.stat().st_mtime_ns == written  # unchanged inputs: read from the cache, not rewritten

    (repo / "vars.yaml").write_text("region: south\n")  # a var file's content
    assert _plan(repo, var_files=["vars.yaml"])["a"]["description"] == "Sales of south"
    # a --var on top of the file, then another value of it
    assert _plan(repo, var_files=["vars.yaml"], variables={"region": "east"})["a"]["description"] == "Sales of east"
    assert _plan(repo, var_files=["vars.yaml"], variables={"region": "west"})["a"]["description"] == "Sales of west"
    (repo / "other.yaml").write_text("region: centre\n")  # another var file
    assert _plan(repo, var_files=["other.yaml"])["a"]["description"] == "Sales of centre"

    spec = repo / "integrations" / "a.yaml"  # a spec edited
    spec.write_text(spec.read_text().replace("direction: two-way", "direction: left-to-right"))
    assert _plan(repo, var_files=["other.yaml"])["a"]["modules"][0]["direction"] == "left-to-right"
    (repo / "integrations" / "b.yaml").write_text(INTEGRATION.format(name="b", direction="two-way"))  # added
    assert sorted(_plan(repo, var_files=["other.yaml"])) == ["a", "b"]
    spec.unlink()  # removed
    assert sorted(_plan(repo, var_files=["other.yaml"])) == ["b"]


def test_a_broken_spec_is_reported_even_after_a_cached_plan(repo: Path) -> None:
    from engine.errors import SpecError

    _plan(repo, var_files=["vars.yaml"])
    spec = repo / "integrations" / "a.yaml"
    spec.write_text(spec.read_text().replace("left: Contacts", "left: Contacts\n      left: Leads"))
    with pytest.raises(SpecError, match="duplicate key"):
        _plan(repo, var_files=["vars.yaml"])
