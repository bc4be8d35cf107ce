"""Renderers: symbols, colour only when asked, summary line, bounded Markdown; example integrations."""

from __future__ import annotations

import shutil

from engine.plan.render import render_markdown, render_text
from tests.plan.support import REPO, base, deployed_of, desired_from, frozen, make_plan, module, plan_json


def test_colour_only_when_asked():
    plan = make_plan(base(), {}).to_dict()
    assert "\x1b[" not in render_text(plan)
    coloured = render_text(plan, color=True)
    assert "\x1b[32m+\x1b[0m" in coloured
    assert render_text(plan) == _strip_ansi(coloured)


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_symbols_per_action():
    desired = base()
    module(desired["desk-bigin"], "contacts")["match"] = [{"left": "secondaryEmail", "right": "Email"}]
    module(desired["desk-bigin"], "contacts")["fields"].pop(0)
    desired["desk-bigin"]["integration"]["modules"].pop(1)
    desired["desk-bigin"]["integration"]["description"] = "x"
    text = render_text(make_plan(desired, deployed_of(base())).to_dict())
    assert "-/+ desk-bigin.contacts.match  (breaking)" in text
    assert "  - desk-bigin.contacts.field[First_Name]  (data)" in text
    assert "  - desk-bigin.products  (breaking)  [destructive]" in text
    assert "  ~ desk-bigin.description  (metadata)" in text
    assert text.rstrip().endswith("Plan: 0 to add, 2 to change, 2 to destroy.")


def test_markdown_is_bounded_and_says_what_was_cut():
    desired = {}
    for n in range(120):
        spec = base()["desk-bigin"]
        spec["integration"]["name"] = f"i{n:03d}"
        desired[f"i{n:03d}"] = spec
    plan = make_plan(desired, {}).to_dict()
    md = render_markdown(plan, max_chars=8000)
    assert len(md) <= 8000
    assert md.startswith("### syncform plan: 360 to add, 0 to change, 0 to destroy")
    assert "| | … and 310 more | | | |" in md
    assert "more lines cut to fit a comment: run `syncform plan` for the whole plan" in md
    assert md.index("| address |") < md.index("<details>")


def test_example_integrations_snapshot(tmp_path, snapshot, plan_schema):
    """The repository's examples, planned against an empty state: every one is a create."""
    shutil.copytree(REPO / "integrations", tmp_path / "integrations")
    plan = frozen(make_plan(desired_from(tmp_path / "integrations"), {}))
    assert plan.changes and all(c.action == "create" for c in plan.changes)
    plan_schema.validate(plan.to_dict())
    assert render_text(plan.to_dict()) == snapshot(name="text")
    assert render_markdown(plan.to_dict()) == snapshot(name="markdown")
    assert plan_json(plan) == snapshot(name="json")
