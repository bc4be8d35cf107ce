"""Secrets never reach a plan: redaction at the source, before the plan value exists.

Specs hold secret *references* only, but a value can still sneak in (a template that inlines an
environment variable, a token pasted into a description). Every string of the plan is scrubbed of
the values behind the connections' secret references, and of anything under a key that names a
secret. What remains is safe to print, save, post to a pull request and store as deployed state.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

REDACTED = "(sensitive)"
_SECRET_KEYS = ("secret", "token", "password", "api_key", "apikey")
_MIN_LEN = 4  # shorter values would scrub ordinary words


def secret_values(connections: Iterable[Mapping[str, Any]], root: str | Path = ".") -> tuple[str, ...]:
    """The values behind every ``{env: ...}`` / ``{file: ...}`` reference of these connection dicts."""
    found: set[str] = set()
    for conn in connections:
        for ref in (conn.get("auth") or {}).values():
            if not isinstance(ref, Mapping):
                continue
            value = None
            if "env" in ref:
                value = os.environ.get(str(ref["env"]))
            elif "file" in ref:
                path = Path(root) / str(ref["file"])
                try:
                    if path.is_file() and path.stat().st_size < 65536:
                        value = path.read_text("utf-8", errors="replace").strip()
                except OSError:
                    value = None
            if value and len(value) >= _MIN_LEN:
                found.add(value)
    return tuple(sorted(found, key=len, reverse=True))


_SECRET_KEY_JSON = re.compile(r'"[^"]*(?:' + "|".join(_SECRET_KEYS) + r')[^"]*"\s*:\s*"', re.IGNORECASE)


def _names_a_secret(blob: str) -> bool:
    """Whether the JSON text has a key naming a secret with a string value (``_SECRET_KEY_JSON``).
    ASCII text (nearly every spec) can match the case-insensitive pattern only if its lower case
    holds one of the words: that check is ten times cheaper than the pattern's search."""
    if blob.isascii():
        low = blob.lower()
        if not any(k in low for k in _SECRET_KEYS):
            return False
    return _SECRET_KEY_JSON.search(blob) is not None


def named_secrets(variables: Mapping[str, Any] = {}, environ: Mapping[str, str] | None = None,  # noqa: B006
                  var_files: Iterable[str | Path] = ()) -> tuple[str, ...]:
    """Values that are secret by their name (``*token*``, ``*secret*``, ``*password*``, ``*api_key*``):
    template variables (``--var``, ``--var-file``) and environment variables. A template may put them
    in a spec; they must still never reach a plan."""
    found: set[str] = set()

    def walk(key: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(str(k), v)
        elif isinstance(value, str) and any(s in key.lower() for s in _SECRET_KEYS) and len(value) >= 8:
            found.add(value)

    for k, v in variables.items():
        walk(str(k), v)
    for path in var_files:
        try:
            import yaml

            data = yaml.safe_load(Path(path).read_text("utf-8"))
        except Exception:  # the spec loader reports unreadable variable files
            continue
        if isinstance(data, Mapping):
            walk("", data)
    for k, v in (os.environ if environ is None else environ).items():
        walk(k, v)
    return tuple(sorted(found))


def redactor(values: Iterable[str]) -> "Any":
    secrets = tuple(sorted({v for v in values if v and len(v) >= _MIN_LEN}, key=len, reverse=True))

    escaped = [json.dumps(s, ensure_ascii=False)[1:-1] for s in secrets]  # as the secret reads inside JSON

    def redact(obj: Any) -> Any:
        """Fast path: most specs hold nothing to redact, which one pass over their JSON proves."""
        blob = json.dumps(obj, ensure_ascii=False, default=str)
        if not _names_a_secret(blob) and not any(e in blob for e in escaped):
            return obj
        return scrub(obj)

    def scrub(obj: Any, key: str = "") -> Any:
        if isinstance(obj, str):
            if key and any(s in key.lower() for s in _SECRET_KEYS) and not key.lower().endswith("_ref"):
                return REDACTED
            for s in secrets:
                if s in obj:
                    obj = obj.replace(s, REDACTED)
            return obj
        if isinstance(obj, Mapping):
            # auth maps hold references ({env: NAME}): keep those, they are not values
            return {k: (dict(v) if k == "auth" and _refs_only(v) else scrub(v, str(k))) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [scrub(x, key) for x in obj]
        return obj

    return redact


def _refs_only(v: Any) -> bool:
    return isinstance(v, Mapping) and all(
        isinstance(r, Mapping) and set(r) <= {"env", "file"} and all(isinstance(x, str) for x in r.values())
        for r in v.values())
