"""Specs written by someone else, through the real CLI: a clear error at the right place, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

ALIAS_BOMB = "".join(
    f"{c}: &{c} [" + ",".join([f"*{p}"] * 9 if p else ['"lol"'] * 9) + "]\n"
    for p, c in zip(["", "a", "b", "c", "d", "e", "f", "g"], "abcdefgh")
)

CASES = {
    "alias-bomb": (ALIAS_BOMB.encode(), "spec.yaml:5:8: error: aliases expand to more than 10,000 nodes"),
    "ten-megabytes": (b"# padding\n" * (1024 * 1024), "spec.yaml:1:1: error: file is too large (10.0 MiB"),
    "deep-flow-nesting": (b"a: " + b"[" * 10_000 + b"]" * 10_000 + b"\n", "spec.yaml:1:67: error: nesting deeper"),
    "deep-block-nesting": ("".join("  " * i + f"k{i}:\n" for i in range(10_000)).encode()[:1_000_000],
                           "spec.yaml:65:129: error: nesting deeper than 64 levels"),
    "template-class": (b"metadata: {name: \"{{ ''.__class__.__mro__[1].__subclasses__() }}\"}\n",
                       "spec.yaml:1:19: error: template code not allowed: access to attribute '__class__'"),
    "template-environ": (b"x: {{ environ['HOME'] }}\n", "spec.yaml:1:4: error: template variable error: 'environ' "
                         "is undefined"),
    "template-globals": (b"x: {{ range.__globals__ }}\n", "spec.yaml:1:4: error: template code not allowed"),
    "template-self": (b"\n\nx: {{ self._TemplateReference__context }}\n", "spec.yaml:3:4: error: template code "
                      "not allowed"),
    "template-huge-string": (b"x: {{ 'a' * 1000000000 }}\n", "spec.yaml:1:4: error: template code not allowed: "
                             "a template may not build values this large"),
    "template-include": (b"{% include '/etc/passwd' %}\n", "spec.yaml:1:1: error: template code not allowed: "
                         "include, import and extends cannot read other files"),
    "invalid-utf8": (b"apiVersion: syncform/v1\nkind: Connection\nmetadata: {name: \xff}\n",
                     "spec.yaml:3:18: error: invalid UTF-8 (byte 0xff at offset 58)"),
    "python-tag": (b"x: !!python/object/apply:os.system ['touch owned']\n",
                   "spec.yaml:1:4: error: the YAML tag !!python/object/apply:os.system is not allowed"),
    "nul-byte": (b"x: 1\n\x00\n", "spec.yaml:2:1: error: the file contains a NUL byte"),
    # an explicit !!int with nothing to read was an IndexError (a traceback) before
    "empty-int-tag": (b"apiVersion: syncform/v1\nkind: Connection\nmetadata: {name: a}\n"
                      b"spec: {app: bigin, max_concurrency: !!int }\n",
                      "spec.yaml:4:37: error: max_concurrency must be a whole number (got a string)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_spec_gets_a_clear_error(case: str, tmp_path: Path, run_cli) -> None:
    data, expected = CASES[case]
    (tmp_path / "spec.yaml").write_bytes(data)
    r = run_cli("validate", "spec.yaml", cwd=tmp_path, timeout=60)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    assert expected in r.stderr, r.stderr[:2000]
    assert not (tmp_path / "owned").exists()


def test_fmt_refuses_hostile_files_without_traceback(tmp_path: Path, run_cli) -> None:
    (tmp_path / "bomb.yaml").write_bytes(ALIAS_BOMB.encode())
    (tmp_path / "deep.yaml").write_bytes(b"a: " + b"[" * 10_000 + b"]" * 10_000 + b"\n")
    r = run_cli("fmt", ".", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "bomb.yaml: left as written (5:8: aliases expand" in r.stderr
    assert "deep.yaml: left as written (1:67: nesting deeper than 64 levels)" in r.stderr
    assert (tmp_path / "bomb.yaml").read_bytes() == ALIAS_BOMB.encode()


def test_secrets_never_appear_in_messages(tmp_path: Path, run_cli) -> None:
    (tmp_path / "c.yaml").write_text(
        "apiVersion: syncform/v1\nkind: Connection\nmetadata: {name: bigin}\nspec:\n  app: bigin\n"
        "  base_url: ftp://admin:s3cr3t-1@example.com\n"
        "  auth:\n    client_id: s3cr3t-2\n    client_secret: [s3cr3t-3]\n    refresh_token: {value: s3cr3t-4}\n"
        "---\napiVersion: syncform/v1\nkind: Connection\nmetadata: {name: crm}\nspec:\n  app: zoho_crm\n"
        "  base_url: https://admin:s3cr3t-5@example.com\n"
        "  auth: {client_id: {env: A}, client_secret: {env: B}, refresh_token: {env: C}}\n")
    r = run_cli("validate", "--json", "c.yaml", cwd=tmp_path)
    assert r.returncode == 1
    assert "s3cr3t" not in r.stdout + r.stderr
    r = run_cli("validate", "c.yaml", cwd=tmp_path)
    assert "s3cr3t" not in r.stdout + r.stderr
    assert "c.yaml:8:16: error: client_id is written inline" in r.stderr
    assert "c.yaml:17:13: error: base_url holds credentials" in r.stderr


def test_deep_nesting_gets_the_same_error_whichever_libyaml_refuses_it_first(monkeypatch) -> None:
    """A libyaml that stops nesting at its own depth (PyYAML 6.0.4's wheels) raises before the
    composer's bound: the file then gets the composer's error at the level past 64, as with a libyaml
    that does not stop (here played by a parser that refuses as 6.0.4's does, whatever is installed)."""
    import yaml

    import engine.spec.loader as loader

    real = loader._parser

    class Refusing:
        def __init__(self, text: str) -> None:
            pass

        def get_event(self) -> None:
            raise yaml.scanner.ScannerError(problem="exceeded maximum nesting depth",
                                            context="while increasing flow level")

        def dispose(self) -> None:
            pass

    monkeypatch.setattr(loader, "_parser", lambda text, pure=False: real(text, pure=True) if pure else Refusing(text))
    docs, diags = loader.compose_documents("a: " + "[" * 2000 + "]" * 2000 + "\n", "spec.yaml")
    assert [(d.line, d.col, d.message) for d in diags] == [(1, 67, "nesting deeper than 64 levels")]
