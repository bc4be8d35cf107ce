"""Whatever a user writes, validation answers with diagnostics, never an exception."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.spec import check_workspace

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = [d for f in sorted((REPO / "integrations").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=False),
                    st.text(max_size=12), st.sampled_from([
                        "two-way", "left-to-right", "right-to-left", "Contacts", "Tasks", "Notes", "Events", "products",
                        "Pipelines", "appointments", "customers", "email", "Email", "Full_Name", "Tax_ID", "isSpam",
                        "Last_Name", "lastName", "name", "bigin", "zoho_crm", "zoho_desk", "zoho_bookings", "desk",
                        "crm", "bookings", "contacts", "365d", "{{ record.email }}", "delete", "unlink"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=6)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, path + (i,))
    return out


def _mutate(doc: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    doc = copy.deepcopy(doc)
    if not path:
        return value
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc_index=st.integers(0, len(EXAMPLES) - 1), pick=st.integers(0, 10**6), value=values, delete=st.booleans())
def test_mutated_examples_never_crash(tmp_path_factory, doc_index: int, pick: int, value: Any, delete: bool) -> None:
    doc = EXAMPLES[doc_index]
    paths = _paths(doc)
    path = paths[pick % len(paths)]
    mutated = _mutate(doc, path, value, delete and bool(path))
    folder = tmp_path_factory.mktemp("m")
    others = [d for i, d in enumerate(EXAMPLES) if i != doc_index]
    (folder / "spec.yaml").write_text(yaml.safe_dump_all(others + [mutated], sort_keys=False))
    ws, diags = check_workspace(["."], root=folder)
    assert all(d.severity in ("error", "warning") and d.line >= 1 and d.col >= 1 for d in diags)


yaml_alphabet = st.sampled_from(list("ab:-[]{},&*!|>'\"#%@`?\n \t0123456789.~<=") + ["{{", "}}", "{%", "%}", "<<",
                                                                                       "---", "...", "!!python/"])


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(yaml_alphabet, max_size=60))
def test_any_text_gives_diagnostics_not_exceptions(parts: list[str]) -> None:
    from engine.spec.loader import compose_documents, render

    text = "".join(parts)
    docs, diags = compose_documents(text, "f.yaml")
    assert all(d.line >= 1 and d.col >= 1 for d in diags)
    out, diags = render(text, "f.yaml", {})
    assert (out is None) == bool(diags)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_any_bytes_give_diagnostics_not_exceptions(tmp_path_factory, data: bytes) -> None:
    from engine.spec.loader import load_file

    p = tmp_path_factory.mktemp("b") / "x.yaml"
    p.write_bytes(data)
    docs, diags = load_file(p, "x.yaml", {})
    assert all(d.line >= 1 and d.col >= 1 for d in diags)


@settings(max_examples=150, deadline=None)
@given(doc_index=st.integers(0, len(EXAMPLES) - 1), picks=st.lists(st.tuples(st.integers(0, 10**6), values,
                                                                             st.booleans()), min_size=1, max_size=3))
def test_fast_schema_check_never_accepts_what_jsonschema_rejects(doc_index: int, picks: list[Any]) -> None:
    from engine.spec.schema import _validator, compile_fast, fast_valid

    doc = EXAMPLES[doc_index]
    for pick, value, delete in picks:
        if not isinstance(doc, dict):
            break
        paths = _paths(doc)
        path = paths[pick % len(paths)]
        doc = _mutate(doc, path, value, delete and bool(path))
    kind = EXAMPLES[doc_index]["kind"]
    v = _validator(kind)
    errors = list(v.iter_errors(doc))
    verdict = fast_valid(v.schema, doc)
    assert compile_fast(v.schema)(doc) is verdict  # what validate runs: the same answer, compiled once
    if verdict is True:
        assert errors == []
    elif verdict is False:
        assert errors
