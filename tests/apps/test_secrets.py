"""Secret references: env and file, never showing a value."""

from __future__ import annotations

import logging
import os

import pytest

from engine.apps.secrets import resolve
from engine.errors import SecretError
from engine.spec.model import SecretRef


def test_env_reference(tmp_path):
    assert resolve(SecretRef("env", "MY_SECRET"), tmp_path, environ={"MY_SECRET": "s3cr3t-value"}) == "s3cr3t-value"


def test_missing_env_names_the_variable_not_a_value(tmp_path):
    with pytest.raises(SecretError) as err:
        resolve(SecretRef("env", "BIGIN_CLIENT_SECRET"), tmp_path, environ={"OTHER": "zzz-not-this"})
    assert "BIGIN_CLIENT_SECRET" in str(err.value) and "is not set" in str(err.value)
    assert "zzz-not-this" not in str(err.value)


def test_empty_env_is_an_error(tmp_path):
    with pytest.raises(SecretError, match="is empty"):
        resolve(SecretRef("env", "E"), tmp_path, environ={"E": ""})


def test_file_reference_relative_to_the_root(tmp_path):
    (tmp_path / "secrets").mkdir()
    f = tmp_path / "secrets" / "token"
    f.write_text("tok-from-file\n")
    os.chmod(f, 0o600)
    assert resolve(SecretRef("file", "secrets/token"), tmp_path) == "tok-from-file"


def test_file_outside_the_root_is_refused(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    (tmp_path / "outside").write_text("top-secret-outside")
    for ref in ("../outside", str(tmp_path / "outside")):
        with pytest.raises(SecretError) as err:
            resolve(SecretRef("file", ref), root)
        assert "top-secret-outside" not in str(err.value)


def test_symlink_leaving_the_root_is_refused(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    (tmp_path / "outside").write_text("top-secret-outside")
    (root / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(SecretError, match="leaves the repository root"):
        resolve(SecretRef("file", "link"), root)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(SecretError, match="no such file"):
        resolve(SecretRef("file", "nope.txt"), tmp_path)


def test_group_readable_file_warns_without_the_value(tmp_path, caplog):
    f = tmp_path / "token"
    f.write_text("loose-permissions-value")
    os.chmod(f, 0o644)
    with caplog.at_level(logging.WARNING):
        assert resolve(SecretRef("file", "token"), tmp_path) == "loose-permissions-value"
    assert any("chmod 600" in r.getMessage() for r in caplog.records)
    assert not any("loose-permissions-value" in r.getMessage() for r in caplog.records)
