"""Helpers shared by the plan, apply and e2e tests: frozen time and ids, fixture specs, plan building."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=timezone.utc)
PLAN_ID = "00000000-0000-4000-8000-000000000001"
LINEAGE = "11111111-1111-4111-8111-111111111111"


def desired_from(path: Path) -> dict[str, dict[str, Any]]:
    from engine.spec import load_workspace
    from engine.spec.serialize import deployed_spec

    ws, _ = load_workspace((str(path),), root=path)
    return {i.name: deployed_spec(i, ws.connections) for i in ws.integrations}


def base() -> dict[str, dict[str, Any]]:
    return desired_from(FIXTURES / "base")


def deployed_of(desired: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from engine.spec.serialize import spec_hash
    from engine.state.base import Deployed

    return {name: Deployed(name=name, spec=copy.deepcopy(spec), spec_hash=spec_hash(spec))
            for name, spec in desired.items()}


def make_plan(desired: dict[str, dict[str, Any]], deployed: dict[str, Any] | None = None, **kw: Any):
    from engine.plan.diff import build_plan

    kw.setdefault("lineage", LINEAGE)
    kw.setdefault("serial", 7)
    kw.setdefault("now", NOW)
    kw.setdefault("plan_id", PLAN_ID)
    kw.setdefault("version", "0.0.test")
    return build_plan(desired, deployed or {}, **kw)


def module(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return next(m for m in spec["integration"]["modules"] if m["name"] == name)


def frozen(plan) -> Any:
    """The plan with what varies between runs (state lineage, tool version) fixed, for snapshots."""
    from dataclasses import replace

    return replace(plan, lineage=LINEAGE, syncform_version="0.0.test", id=PLAN_ID,
                   created_at=NOW.isoformat(timespec="seconds").replace("+00:00", "Z"))


def plan_json(plan) -> str:
    return json.dumps(plan.to_dict(), indent=2, ensure_ascii=False) + "\n"
