"""Secrets: known values planted in the environment (behind `{env:}` references), in a secret file
(`{file:}`), in a template variable, and in app answers (the access token an app hands out, an app
error echoing credentials). Then every command runs, with and without --debug, and every byte of
output and every file syncform wrote (state db and its WAL, saved plans, caches, logs) is searched.

A loopback proxy makes the planted credentials real: it accepts them and swaps in the sandbox's own
on the way up, and hands out a planted access token on the way down, so syncform really uses them.
"""

from __future__ import annotations

import json
import stat
import urllib.parse
from pathlib import Path

import pytest

from tests.reliability.conftest import cli, count, no_traceback, people, write_specs

PLANTED = {
    "client_id": "1000.PLANTEDCLIENTID4F7Q2",
    "client_secret": "planted-client-secret-9c1e77ab",
    "refresh_token": "1000.planted-refresh-token.5d2b8e0c",
}
ACCESS = "1000.planted-access-token.a93f01d4e6"
ALL = [*PLANTED.values(), ACCESS]
SANDBOX = {"client_id": "sandbox", "client_secret": "sandbox", "refresh_token": "sandbox-refresh"}


def translating_proxy(proxy, *, echo: bool):
    real = {"token": None}

    def up(method, path, headers, body):
        base, _, query = path.partition("?")
        if base.endswith("/oauth/v2/token"):
            form = dict(urllib.parse.parse_qsl(body.decode() or query))
            for key, planted in PLANTED.items():
                if form.get(key) == planted:
                    form[key] = SANDBOX[key]
                elif key in form:  # anything else is refused as the real endpoint would
                    form[key] = "wrong"
            body = urllib.parse.urlencode(form).encode()
            return base, {**headers, "Content-Type": "application/x-www-form-urlencoded"}, body
        auth = headers.get("Authorization") or headers.get("authorization") or ""
        if auth.endswith(ACCESS) and real["token"]:
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            headers["Authorization"] = f"Zoho-oauthtoken {real['token']}"
        return path, headers, body

    rejected = {"done": False}

    def down(method, path, status, headers, body):
        if path.endswith("/oauth/v2/token"):
            doc = json.loads(body)
            if "access_token" in doc:
                real["token"] = doc["access_token"]
                doc["access_token"] = ACCESS
                return status, headers, json.dumps(doc).encode()
        if echo and method == "POST" and path == "/crm/v8/Contacts" and not rejected["done"]:
            doc = json.loads(body)
            rejected["done"] = True
            doc["data"][0] = {"code": "INVALID_DATA", "status": "error", "details": {"api_name": "Email",
                              "token": ACCESS, "client_secret": PLANTED["client_secret"]},
                              "message": f"invalid data (request had token {ACCESS} and refresh "
                                         f"{PLANTED['refresh_token']})"}
            return 207, headers, json.dumps(doc).encode()
        return None

    proxy.request_hook = up
    proxy.mutate = down


def run_everything(served, proxy, tmp_path, *, echo: bool, commands: list[tuple[str, ...]]) -> list[tuple[str, str]]:
    repo = tmp_path / "repo"
    auth = ("  auth:\n    client_id: {env: SF_REL_CLIENT_ID}\n    client_secret: {file: secrets/client_secret}\n"
            "    refresh_token: {env: SF_REL_REFRESH}\n")
    write_specs(repo, proxy.base, auth=auth)
    spec = repo / "integrations" / "specs.yaml"
    spec.write_text(spec.read_text().replace("  sandbox: true\n", "").replace(
        "metadata: {name: bigin-crm}", 'metadata: {name: bigin-crm, description: "{{ note }}"}'))  # real auth, not the sandbox's
    (repo / "secrets").mkdir()
    (repo / "secrets" / "client_secret").write_text(PLANTED["client_secret"] + "\n")
    (repo / "secrets" / "client_secret").chmod(0o600)
    # a template variable carrying a secret's value (pasted by mistake): redacted all the same
    (repo / "vars.yaml").write_text(f"note: 'owner token {PLANTED['refresh_token']}'\n")
    env = {"SF_REL_CLIENT_ID": PLANTED["client_id"], "SF_REL_REFRESH": PLANTED["refresh_token"]}
    translating_proxy(proxy, echo=echo)
    served.create("bigin", people("Sec", 30))
    served.create("zoho_crm", people("Ret", 10))

    outputs: list[str] = []
    leaks: set[tuple[str, str]] = set()
    seen_files: set[str] = set()
    for args in commands:
        res = cli(repo, "--var-file", "vars.yaml", *args, env=env)
        count("commands searched for secrets")
        no_traceback(res)
        assert res.returncode in (0, 1, 2), (args, res.stderr)
        if args[0] in ("plan", "validate", "status", "history", "state"):
            assert res.returncode == 0, (args, res.stdout, res.stderr)
        outputs.append(f"$ {' '.join(args)}\n{res.stdout}\n{res.stderr}")
        if args[0] in ("apply", "sync") and args[-1] != "--dry-run":
            assert res.returncode == 0 or "failed" in res.stdout, (args, res.stdout, res.stderr)
        # every file, after every command (a later destroy must not hide an earlier leak)
        for p in repo.rglob("*"):
            if p.is_file() and "secrets" not in p.parts and p.name != "vars.yaml":
                seen_files.add(p.name)
                blob = p.read_bytes()
                leaks.update((v, str(p.relative_to(repo))) for v in ALL if v.encode() in blob)
    joined = "\n".join(outputs)
    assert "Apply complete" in joined and "created" in joined  # the commands really ran against the apps
    if echo:
        assert "1 failed" in joined  # the answer echoing the credentials was received and logged
    assert "state.db" in seen_files
    leaks.update((v, "output") for v in ALL if v in joined)
    count("secret values planted", len(ALL))
    return sorted(leaks)


EVERY_COMMAND = [
        ("validate",), ("plan",), ("plan", "--json"), ("plan", "--markdown"), ("plan", "--preview"),
        ("plan", "-out", "plans/p.json"), ("apply", "plans/p.json"), ("failures", "--json"), ("sync",), ("sync", "--json"),
        ("sync", "--dry-run"), ("status",), ("status", "--json"), ("history",), ("history", "--json"),
        ("failures",), ("failures", "--json"), ("retry", "bigin-crm", "--all"), ("pause", "bigin-crm"),
        ("resume", "bigin-crm"), ("state", "list"), ("state", "show", "bigin-crm"), ("reconcile",),
        ("apps", "bigin", "Contacts"), ("--debug", "sync"), ("--debug", "plan"), ("--debug", "failures"),
        ("destroy", "bigin-crm", "--auto-approve"),
    ]


def test_no_planted_secret_leaves_memory(served, proxy, tmp_path):
    leaks = run_everything(served, proxy, tmp_path, echo=False, commands=EVERY_COMMAND)
    assert not leaks, leaks


def test_an_app_echoing_credentials_in_an_error_leaks_nothing(served, proxy, tmp_path):
    leaks = run_everything(served, proxy, tmp_path, echo=True, commands=[
        ("apply", "--auto-approve"), ("failures",), ("failures", "--json"), ("--debug", "sync")])
    assert not leaks, leaks


def test_the_state_and_its_caches_are_owner_only(tmp_path):
    repo = tmp_path / "repo"
    write_specs(repo, "http://127.0.0.1:9")
    res = cli(repo, "plan", "--no-refresh", "-out", "plans/p.json")
    assert res.returncode == 0, res.stderr
    res = cli(repo, "apply", "plans/p.json", "--no-sync")
    assert res.returncode == 0, res.stderr
    for path in (repo / ".syncform").rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path} is {oct(path.stat().st_mode)}"
    assert stat.S_IMODE((repo / ".syncform").stat().st_mode) & 0o077 == 0


def test_saved_plans_are_owner_only_whatever_the_umask(tmp_path):
    """A saved plan holds the deployed spec (references only) but is still the team's configuration:
    it is created 0600 even when the user's umask would make it world-readable."""
    repo = tmp_path / "repo"
    write_specs(repo, "http://127.0.0.1:9")
    import subprocess
    import sys

    from tests.reliability.conftest import cli_env

    res = subprocess.run(["sh", "-c", f"umask 000 && {sys.executable} -m engine plan --no-refresh -out plans/o.json"],
                         cwd=repo, env=cli_env(), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    mode = stat.S_IMODE((repo / "plans" / "o.json").stat().st_mode)
    assert mode & 0o077 == 0, oct(mode)
    res = cli(repo, "plan", "--no-refresh", "-out", "plans/p.json")  # the default umask (022)
    assert res.returncode == 0, res.stderr
    mode = stat.S_IMODE((repo / "plans" / "p.json").stat().st_mode)
    assert mode & 0o077 == 0, oct(mode)
