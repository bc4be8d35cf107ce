"""Live drift shows in the plan; secret values never reach it, whatever the spec says."""

from __future__ import annotations

import json

from engine.plan.redact import REDACTED, redactor, secret_values
from engine.plan.render import render_markdown, render_text
from tests.plan.support import base, deployed_of, make_plan


def _live(changes):
    """Live field catalogs as the apps would answer: the static catalog, edited by ``changes``."""
    from engine.catalog import catalog

    calls = []

    def live(conn, module):
        calls.append((conn["name"], module))
        fields = [{"api_name": f.api_name, "type": f.type, "encrypted": f.encrypted}
                  for f in catalog(conn["app"]).module(module).fields]
        for (mod, name), edit in changes.items():
            if mod != module:
                continue
            if edit is None:
                fields = [f for f in fields if f["api_name"] != name]
            else:
                next(f for f in fields if f["api_name"] == name).update(edit)
        return fields

    return live, calls


def test_a_field_deleted_retyped_or_encrypted_in_the_app_is_drift():
    live, calls = _live({("Contacts", "First_Name"): None, ("Contacts", "Last_Name"): {"type": "integer"},
                         ("Contacts", "Email"): {"encrypted": True}})
    plan = make_plan(base(), deployed_of(base()), live=live)
    got = [(d.address, d.side, d.problem) for d in plan.drift]
    assert got == [
        ("desk-bigin.contacts.field[Email]", "right", "encrypted"),
        ("desk-bigin.contacts.field[First_Name]", "right", "deleted"),
        ("desk-bigin.contacts.field[Last_Name]", "right", "type-changed"),
    ]
    assert plan.refresh and not plan.empty and not plan.has_changes
    text = render_text(plan.to_dict())
    assert "Drift: the apps changed outside syncform" in text
    assert "right field First_Name of bigin Contacts no longer exists in the app" in text
    assert "changed type from text to integer" in text
    assert "❗ `desk-bigin.contacts.field[Email]`" in render_markdown(plan.to_dict())
    # each (connection, module) is read at most once per side
    assert len(calls) == len(set(calls))


def test_no_refresh_reads_nothing_live():
    plan = make_plan(base(), deployed_of(base()), live=None)
    assert plan.drift == () and plan.refresh is False


def test_matching_live_catalogs_mean_no_drift():
    live, _ = _live({})
    assert make_plan(base(), deployed_of(base()), live=live).drift == ()


def test_secret_values_are_redacted_at_the_source(monkeypatch):
    secret = "s3cr3t-Refresh-Token-9981"
    monkeypatch.setenv("SF_TEST_DESK_REFRESH", secret)
    desired = base()
    # a value that leaked into a spec (e.g. through a template) and a key that names a secret
    desired["desk-bigin"]["integration"]["description"] = f"token is {secret}"
    desired["desk-bigin"]["integration"]["modules"][0]["fields"][0]["value"] = secret
    conns = [c for spec in desired.values() for c in spec["connections"]]
    scrub = redactor(secret_values(conns))
    plan = make_plan(desired, deployed_of(base()), redact=scrub)
    out = json.dumps(plan.to_dict()) + render_text(plan.to_dict()) + render_markdown(plan.to_dict())
    assert secret not in out
    assert REDACTED in out
    # the references stay: they are what the state needs to find the secret again
    assert '"refresh_token": {"env": "SF_TEST_DESK_REFRESH"}' in json.dumps(plan.to_dict())


def test_secret_keys_are_redacted_even_without_a_reference():
    scrub = redactor(())
    assert scrub({"api_token": "abc123456", "auth": {"client_id": {"env": "X"}}, "name": "abc123456"}) == {
        "api_token": REDACTED, "auth": {"client_id": {"env": "X"}}, "name": "abc123456"}


def test_file_references_are_redacted_too(tmp_path):
    (tmp_path / "token.txt").write_text("file-secret-value-42\n")
    values = secret_values([{"auth": {"refresh_token": {"file": "token.txt"}}}], tmp_path)
    assert values == ("file-secret-value-42",)


def test_a_new_integration_mapping_a_field_the_app_lacks_says_so():
    live, _ = _live({("Contacts", "First_Name"): None})
    plan = make_plan(base(), {}, live=live)
    (drift,) = plan.drift
    assert "right field First_Name of bigin Contacts does not exist in the app" in drift.message
    assert "create the field" in drift.message


def test_per_service_custom_fields_are_not_checked_against_the_module_catalog():
    desired = base()
    products = desired["desk-bigin"]["integration"]["modules"][1]
    products["services"] = [{"name": "Consultation", "fields": [
        {"left": ["Company size"], "right": ["Description"], "direction": None, "values": [], "value": None,
         "template": None, "default": False}]}]
    live, _ = _live({})
    assert make_plan(desired, deployed_of(desired), live=live).drift == ()


def test_named_secrets_from_variables_var_files_and_environment(tmp_path):
    from engine.plan.redact import named_secrets

    vf = tmp_path / "prod.yaml"
    vf.write_text("db:\n  password: hunter2-hunter2\nregion: eu-west-1-long\n")
    found = named_secrets({"api_token": "tok-123456789", "team": "support-team-long"},
                          environ={"BIGIN_REFRESH_TOKEN": "1000.abcdef123", "HOME": "/root/somewhere"},
                          var_files=[vf])
    assert found == ("1000.abcdef123", "hunter2-hunter2", "tok-123456789")
