"""``syncform fmt``: one canonical layout for spec files, keeping the user's comments.

PyYAML drops comments when it loads, so it cannot rewrite a file a person maintains; ruamel.yaml's
round-trip mode keeps comments, flow/block style and quoting, so only what the canonical layout
says changes: key order (as in the contract's examples), 2-space indentation with list dashes
indented under their key, no line wrapping. Files that use Jinja2 (``{{`` / ``{%``) are left alone:
their text is not YAML until rendered.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOP = ("apiVersion", "kind", "metadata", "spec")
ORDERS: dict[str, tuple[str, ...]] = {
    "metadata": ("name", "description"),
    "integration_spec": ("left", "right", "owner", "paused", "guards", "history_days", "modules"),
    "connection_spec": ("app", "sandbox", "datacenter", "base_url", "org_id", "auth", "max_concurrency"),
    "side": ("app", "connection"),
    "module": ("name", "left", "right", "direction", "parent", "enabled", "match", "conflict", "on_delete",
               "initial_sync", "filter", "defaults", "fields", "services", "calendar"),
    "field": ("left", "right", "direction", "values", "value", "template"),
    "pair": ("left", "right"),
    "filter": ("view", "departments"),
    "calendar": ("add_bookings", "send_invites", "check_conflicts"),
    "auth": ("client_id", "client_secret", "refresh_token"),
}


@dataclass(frozen=True, slots=True)
class FmtResult:
    file: str
    changed: bool
    note: str = ""  # set when the file was skipped (templated) or could not be read
    failed: bool = False


def _yaml() -> Any:
    from ruamel.yaml import YAML

    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)
    y.explicit_start = False
    return y


def _reorder(m: Any, order: tuple[str, ...]) -> None:
    from ruamel.yaml.comments import CommentedMap

    if not isinstance(m, CommentedMap):
        return
    rank = {k: i for i, k in enumerate(order)}
    keys = list(m.keys())
    wanted = sorted(keys, key=lambda k: (rank.get(k, len(order)), keys.index(k)))
    if wanted == keys:
        return
    for k in wanted:
        m.move_to_end(k)


def _each(seq: Any) -> list[Any]:
    return list(seq) if isinstance(seq, list) else []


def canonicalise(doc: Any) -> None:
    """Reorder the keys of one spec document in place."""
    from ruamel.yaml.comments import CommentedMap

    if not isinstance(doc, CommentedMap):
        return
    _reorder(doc, TOP)
    _reorder(doc.get("metadata"), ORDERS["metadata"])
    spec = doc.get("spec")
    if doc.get("kind") == "Connection":
        _reorder(spec, ORDERS["connection_spec"])
        if isinstance(spec, CommentedMap):
            _reorder(spec.get("auth"), ORDERS["auth"])
        return
    _reorder(spec, ORDERS["integration_spec"])
    if not isinstance(spec, CommentedMap):
        return
    for side in ("left", "right"):
        _reorder(spec.get(side), ORDERS["side"])
    for m in _each(spec.get("modules")):
        _reorder(m, ORDERS["module"])
        if not isinstance(m, CommentedMap):
            continue
        for key in _each(m.get("match")):
            _reorder(key, ORDERS["pair"])
        _reorder(m.get("on_delete"), ORDERS["pair"])
        _reorder(m.get("filter"), ORDERS["filter"])
        _reorder(m.get("calendar"), ORDERS["calendar"])
        for f in _each(m.get("fields")):
            _reorder(f, ORDERS["field"])
        services = m.get("services")
        if isinstance(services, CommentedMap):
            for entries in services.values():
                for f in _each(entries):
                    _reorder(f, ORDERS["field"])


def format_text(text: str) -> str:
    """The canonical text of a spec file (raises ruamel's YAMLError when it is not YAML)."""
    y = _yaml()
    docs = list(y.load_all(text))
    for d in docs:
        canonicalise(d)
    buf = io.StringIO()
    if len(docs) == 1:
        y.dump(docs[0], buf)
    else:
        y.dump_all(docs, buf)
    out = buf.getvalue()
    if text.lstrip().startswith("---") and not out.lstrip().startswith("---"):
        out = "---\n" + out
    return out


def format_paths(paths: tuple[str | os.PathLike[str], ...], *, check: bool = False, root: Path | None = None
                 ) -> list[FmtResult]:
    from engine.spec.loader import compose_documents, discover, display_path, read_text, uses_template

    base = root or Path.cwd()
    files, diags = discover(tuple(paths), base)
    results = [FmtResult(d.file, False, d.message, failed=True) for d in diags if d.severity == "error"]
    for f in files:
        shown = display_path(f, base)
        text, problems = read_text(f, shown)
        if text is None:
            results.append(FmtResult(shown, False, f"left as written ({problems[0].message})", failed=True))
            continue
        if uses_template(text):
            results.append(FmtResult(shown, False, "uses Jinja2 templates; left as written"))
            continue
        _, problems = compose_documents(text, shown)  # the same bounds as validate, before ruamel sees it
        if problems:
            p = problems[0]
            results.append(FmtResult(shown, False, f"left as written ({p.line}:{p.col}: {p.message}); "
                                     "run syncform validate", failed=True))
            continue
        try:
            new = format_text(text)
        except Exception as exc:  # ruamel raises many types for malformed input
            first = str(exc).strip().splitlines()[-1:] or [type(exc).__name__]
            results.append(FmtResult(shown, False, f"not valid YAML, left as written ({first[0].strip()}); "
                                     "run syncform validate", failed=True))
            continue
        changed = new != text
        if changed and not check:
            f.write_text(new, "utf-8")
        results.append(FmtResult(shown, changed))
    return results
