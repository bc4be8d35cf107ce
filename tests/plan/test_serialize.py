"""engine.spec.serialize: the deployed form of the desired model (round trip, stable, no marks, refs only)."""

from __future__ import annotations

import json
import shutil

from engine.spec.serialize import (
    connection_from_dict,
    connection_to_dict,
    deployed_spec,
    integration_from_dict,
    integration_to_dict,
    spec_hash,
)
from tests.plan.support import FIXTURES, REPO


def _load(path):
    from engine.spec import load_workspace

    ws, _ = load_workspace((str(path),), root=path)
    return ws


def test_round_trip_of_every_example_and_fixture(tmp_path):
    shutil.copytree(REPO / "integrations", tmp_path / "integrations")
    for ws in (_load(tmp_path / "integrations"), _load(FIXTURES / "base"), _load(FIXTURES / "sandbox")):
        for i in ws.integrations:
            d = integration_to_dict(i)
            assert json.loads(json.dumps(d)) == d  # JSON-able as is
            assert integration_from_dict(d) == i
        for c in ws.connections:
            assert connection_from_dict(connection_to_dict(c)) == c


def test_no_marks_and_secrets_only_as_references():
    ws = _load(FIXTURES / "base")
    blob = json.dumps([integration_to_dict(i) for i in ws.integrations] +
                      [connection_to_dict(c) for c in ws.connections])
    assert "specs.yaml" not in blob and '"mark"' not in blob
    desk = connection_to_dict(ws.connection("desk"))
    assert desk["auth"] == {"client_id": {"env": "SF_TEST_DESK_ID"}, "client_secret": {"env": "SF_TEST_DESK_SECRET"},
                            "refresh_token": {"env": "SF_TEST_DESK_REFRESH"}}


def test_key_order_is_stable_and_the_hash_ignores_it():
    i = _load(FIXTURES / "base").integrations[0]
    d = integration_to_dict(i)
    assert list(d) == ["name", "description", "left", "right", "owner", "paused", "guards", "history_days", "modules"]
    assert list(d["modules"][0])[:5] == ["name", "left", "right", "direction", "match"]
    shuffled = dict(reversed(list(d.items())))
    assert spec_hash(shuffled) == spec_hash(d)
    assert spec_hash(d).startswith("sha256:") and len(spec_hash(d)) == 71
    d["description"] = "changed"
    assert spec_hash(d) != spec_hash(integration_to_dict(i))


def test_deployed_spec_keeps_only_the_connections_it_uses():
    ws = _load(FIXTURES / "base")
    spec = deployed_spec(ws.integrations[0], ws.connections + (ws.connection("desk").__class__(name="extra", app="bigin"),))
    assert [c["name"] for c in spec["connections"]] == ["bigin", "desk"]
