"""Specs: loading (Jinja2 + YAML with line marks), validation (JSON Schema + semantic checks), model.

The front door is :func:`load_workspace`::

    workspace, warnings = load_workspace(["integrations/"], variables={"env": "prod"})

It raises :class:`engine.errors.SpecError` carrying every diagnostic (errors and warnings, sorted)
when any error is found; otherwise it returns the validated, normalised ``Workspace`` and the
warnings.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Mapping

from engine.errors import Diagnostic, SpecError
from engine.spec.model import Workspace


# Loading a thousand spec files builds a few hundred thousand small objects (values, paths, model
# values) that all stay alive until the workspace is built: with CPython's default thresholds (700
# allocations) the collector runs every few nodes and rescans what was built so far, half of the
# load's CPU. While specs load or a plan is built, a collection happens every ~50k allocations
# (cycles are still collected); the caller's thresholds are restored after.
GC_THRESHOLD = (50_000, 20, 20)


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Raise the collector's first threshold for the length of a load or plan (see GC_THRESHOLD)."""
    before = gc.get_threshold()
    if before[0] >= GC_THRESHOLD[0]:  # already raised (nested, or by the caller)
        yield
        return
    gc.set_threshold(*GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def load_workspace(paths: Iterable[str | os.PathLike[str]] = (), *, variables: Mapping[str, Any] = {},  # noqa: B006
                   var_files: Iterable[str | os.PathLike[str]] = (), root: str | os.PathLike[str] | None = None,
                   ) -> tuple[Workspace, tuple[Diagnostic, ...]]:
    """Load, validate and normalise every spec under ``paths`` (files or folders; default ``integrations/``).

    ``variables`` and ``var_files`` feed the Jinja2 templates (``--var`` wins over ``--var-file``).
    ``root`` (default: the current directory) is where relative paths are resolved and what file
    names in diagnostics are relative to.
    """
    ws, diags = check_workspace(paths, variables=variables, var_files=var_files, root=root)
    if ws is None or any(d.severity == "error" for d in diags):
        raise SpecError(diags)
    return ws, tuple(d for d in diags if d.severity != "error")


def check_workspace(paths: Iterable[str | os.PathLike[str]] = (), *, variables: Mapping[str, Any] = {},  # noqa: B006
                    var_files: Iterable[str | os.PathLike[str]] = (), root: str | os.PathLike[str] | None = None,
                    ) -> tuple[Workspace | None, tuple[Diagnostic, ...]]:
    """Like :func:`load_workspace` but never raises: the workspace (None when it could not be built
    at all) and every diagnostic, sorted."""
    with fewer_collections():
        return _check_workspace(paths, variables=variables, var_files=var_files, root=root)


def _check_workspace(paths: Iterable[str | os.PathLike[str]], *, variables: Mapping[str, Any],
                     var_files: Iterable[str | os.PathLike[str]], root: str | os.PathLike[str] | None,
                     ) -> tuple[Workspace | None, tuple[Diagnostic, ...]]:
    from engine.spec import build, loader, schema, semantic

    base = Path(root) if root is not None else Path.cwd()
    diags: list[Diagnostic] = []
    values, d = loader.read_variables(tuple(str(v) for v in var_files), dict(variables), base)
    diags += d
    resolved: dict[Path, Path] = {}
    files, d = loader.discover(tuple(paths), base, resolved=resolved)
    diags += d
    integrations = []
    connections = []
    shown_files = []
    broken: set[str] = set()
    base_resolved = base.resolve()
    for f in files:
        shown = loader.display_path(f, base, resolved_root=base_resolved, resolved=resolved.get(f))
        shown_files.append(shown)
        docs, d = loader.load_file(f, shown, values)
        diags += d
        for doc in docs:
            if doc.value is None:  # an empty document (e.g. a trailing ---)
                continue
            kind, d = schema.validate_document(doc)
            diags += d
            if kind == "Connection" and d:  # reported once, not again by each integration using it
                meta = doc.get(("metadata",))
                name = meta.get("name") if isinstance(meta, dict) else None
                if isinstance(name, str):
                    broken.add(name)
            if kind is None or d:
                continue
            if kind == "Integration":
                integrations.append(build.build_integration(doc, diags))
            else:
                connections.append((build.build_connection(doc), doc))
    diags += semantic.check(integrations, connections, broken_connections=broken)
    ws = Workspace(
        integrations=tuple(sorted((i for i, _ in integrations), key=lambda i: i.name)),
        connections=tuple(sorted((c for c, _ in connections), key=lambda c: c.name)),
        root=str(base), files=tuple(shown_files),
    )
    return ws, tuple(sorted(set(diags)))


__all__ = ["load_workspace", "check_workspace", "fewer_collections"]
