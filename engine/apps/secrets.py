"""Resolve secret references (``{env: NAME}``, ``{file: PATH}``) to their values.

Values are returned to the caller and never logged, stored or put in an error: every error names the
reference (the variable or the path), never what it points to.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from engine.errors import SecretError
from engine.spec.model import SecretRef

log = logging.getLogger(__name__)


def resolve(ref: SecretRef, root: Path, *, environ: "dict[str, str] | None" = None) -> str:
    """The value ``ref`` points to.

    ``{env: NAME}`` reads the environment variable NAME (``environ`` defaults to ``os.environ``).
    ``{file: PATH}`` reads a file relative to the repository ``root`` (one trailing newline is
    stripped); a path that resolves outside ``root`` — absolute, ``..``, or through a symlink — is
    refused. A file readable by group or others is used but logged as a warning.
    Raises ``SecretError`` naming the reference when it cannot be resolved.
    """
    if ref.kind == "env":
        env = os.environ if environ is None else environ
        value = env.get(ref.ref)
        if value is None or value == "":
            state = "is not set" if value is None else "is empty"
            raise SecretError(f"secret {ref.describe()}: environment variable {ref.ref} {state}; "
                              f"export {ref.ref}=... before running syncform")
        return value
    if ref.kind == "file":
        return _read_file(ref, Path(root))
    raise SecretError(f"secret {ref.describe()}: unknown reference kind {ref.kind!r}; use env or file")


def _read_file(ref: SecretRef, root: Path) -> str:
    root_real = root.resolve()
    raw = Path(ref.ref)
    if raw.is_absolute():
        raise SecretError(f"secret {ref.describe()}: the path must be relative to the repository root "
                          f"({root_real}), not absolute")
    candidate = root_real / raw
    real = candidate.resolve()
    if real != root_real and root_real not in real.parents:
        raise SecretError(f"secret {ref.describe()}: the path leaves the repository root ({root_real}); "
                          f"keep secret files inside the repository (and out of git)")
    if not real.is_file():
        raise SecretError(f"secret {ref.describe()}: no such file {candidate}")
    try:
        mode = real.stat().st_mode
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            log.warning("secret file %s is readable by group or others; run: chmod 600 %s", ref.ref, ref.ref)
        value = real.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretError(f"secret {ref.describe()}: cannot read {candidate} ({type(exc).__name__})") from None
    if value.endswith("\r\n"):
        value = value[:-2]
    elif value.endswith("\n"):
        value = value[:-1]
    if not value:
        raise SecretError(f"secret {ref.describe()}: the file {candidate} is empty")
    return value
