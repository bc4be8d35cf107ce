"""The CI recipes for users run commands and options that exist."""

from __future__ import annotations

import re

import yaml

from tests.plan.support import REPO


def _syncform_commands() -> list[list[str]]:
    found = []
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "syncform.yml").read_text())
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            for line in str(step.get("run", "")).splitlines():
                m = re.search(r"\bsyncform ([a-z]+)((?: [^#>|&]*)?)", line)
                if m and m.group(1) != "in":
                    found.append([m.group(1), *m.group(2).split()])
    for hook in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text()):
        found.append(hook["entry"].split()[1:])
    return found


def test_every_command_and_option_in_the_recipes_exists(run_cli):
    commands = _syncform_commands()
    assert {c[0] for c in commands} >= {"validate", "plan", "apply", "fmt"}
    helps: dict[str, str] = {}
    for cmd, *args in commands:
        if cmd not in helps:
            res = run_cli(cmd, "--help")
            assert res.returncode == 0, res.stderr
            helps[cmd] = res.stdout
        for opt in (a for a in args if a.startswith("-")):
            assert opt in helps[cmd], f"syncform {cmd} has no option {opt}"


def test_the_pull_request_job_posts_the_markdown_plan_and_apply_runs_on_merge():
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "syncform.yml").read_text())
    on = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as true
    assert "pull_request" in on and on["push"]["branches"] == ["main"]
    plan_steps = " ".join(str(s.get("run", "")) + str(s.get("with", "")) for s in workflow["jobs"]["plan"]["steps"])
    assert "--markdown" in plan_steps and "--detailed-exitcode" in plan_steps and "updateComment" in plan_steps
    assert workflow["jobs"]["apply"]["if"].startswith("github.event_name == 'push'")
    assert workflow["concurrency"]["cancel-in-progress"] is False
