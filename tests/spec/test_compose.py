"""The YAML composer (engine.spec.loader.compose_documents): plain values as PyYAML's safe loader
reads them, and a mark for every key and value that points at where it is written."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.spec.loader import compose_documents

_keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_ABC", min_size=1, max_size=8)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                     st.floats(allow_nan=False, allow_infinity=False, width=32),
                     st.text(alphabet="abc xyz:-#'\"{}[]&*!|>%@`0123456789", max_size=12))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(_keys, inner, max_size=4)), max_leaves=25)


def _walk(value: Any, path: tuple[Any, ...] = ()) -> Any:
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, path + (i,))


@settings(max_examples=150, deadline=None)
@given(doc=st.dictionaries(_keys, _values, min_size=1, max_size=5), flow=st.booleans())
def test_values_and_marks_match_the_text(doc: dict[str, Any], flow: bool) -> None:
    text = yaml.safe_dump(doc, default_flow_style=flow, sort_keys=False)
    docs, diags = compose_documents(text, "t.yaml")
    assert diags == []
    assert [d.value for d in docs] == [yaml.safe_load(text)] == [doc]
    lines = text.split("\n")
    for path, value in _walk(doc):
        if not path or not isinstance(path[-1], str):
            continue
        km = docs[0].key_at(path)
        assert km.file == "t.yaml"
        written = lines[km.line - 1][km.col - 1:]
        assert written.startswith(path[-1]) or written.startswith(("'", '"')), (path, km, written)
        vm = docs[0].at(path)
        assert (vm.line, vm.col) > (km.line, km.col)  # a value is written after its key


def test_a_duplicate_key_names_both_lines() -> None:
    _, diags = compose_documents("a: 1\nb:\n  c: 2\n  c: 3\n", "t.yaml")
    assert [str(d) for d in diags] == ['t.yaml:4:3: error: duplicate key "c" (first at line 3)']


def test_merge_keys_and_aliases_resolve_with_marks_of_the_alias() -> None:
    docs, diags = compose_documents("base: &b {x: 1, y: 2}\nitem:\n  <<: *b\n  y: 3\nref: *b\n", "t.yaml")
    assert diags == []
    assert docs[0].value == {"base": {"x": 1, "y": 2}, "item": {"y": 3, "x": 1}, "ref": {"x": 1, "y": 2}}
    assert str(docs[0].at(("ref",))) == "t.yaml:5:6"
    assert str(docs[0].at(("item", "y"))) == "t.yaml:4:6"
