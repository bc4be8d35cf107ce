"""The stores' shared encoding: the same text as json.dumps, so states written before read and compare alike."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from types import MappingProxyType

from engine.state.core import encode_bases, encode_journal, encode_json


def _old(value):  # what the stores wrote before engine.state.core
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


VALUES = [
    {"b": "x", "a": 1, "c": None, "d": True, "e": 1.5, "f": [1, "2", {"y": 0, "x": -0.0}]},
    {"name": "Zoë", "emoji": "😀", "quote": 'say "hi"\n', "ctrl": "\x01"},
    {"when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc), "amount": Decimal("1.10"), "big": 10**30},
    {},
    [{"k": "v"}, []],
]


def test_encode_json_writes_what_json_dumps_wrote():
    for value in VALUES:
        assert encode_json(value) == _old(value)


def test_encode_bases_is_json_of_each_side():
    for left in VALUES[:4]:
        for right in VALUES[:4]:
            assert encode_bases(left, right) == (_old(left), _old(right))
    proxy = MappingProxyType({"a": "x"})
    assert encode_bases(proxy, {"a": "x"}) == ('{"a":"x"}', '{"a":"x"}')
    # equal by == but not alike as JSON: each side keeps its own text
    assert encode_bases({"n": 1}, {"n": 1.0}) == ('{"n":1}', '{"n":1.0}')
    assert encode_bases({"n": True}, {"n": 1}) == ('{"n":true}', '{"n":1}')
    assert encode_bases({"n": 0.0}, {"n": -0.0}) == ('{"n":0.0}', '{"n":-0.0}')


def test_encode_journal_reads_back_as_the_payload():
    payload = ({"source_id": "1", "values": {"Email": "a@x.io"}, "keys": [["Email", "a@x.io"]]},
               MappingProxyType({"source_id": "2", "values": {}}))
    assert json.loads(encode_journal(payload)) == [dict(p) for p in payload]


def test_decode_reads_what_encode_wrote_and_what_json_accepts():
    from engine.state.core import decode_bases, decode_json

    for value in VALUES:
        assert decode_json(_old(value)) == json.loads(_old(value))
    assert decode_json(' {"a": 1} ') == {"a": 1}  # white space around: json.loads' answer
    for bad in ("", "{", '{"a":1} x'):
        try:
            decode_json(bad)
        except json.JSONDecodeError:
            pass
        else:
            raise AssertionError(f"{bad!r} decoded")
    left, right = decode_bases('{"a":"x","b":null}', '{"a":"x","b":null}')
    assert left == right == {"a": "x", "b": None} and left is not right
    left, right = decode_bases('{"a":[1]}', '{"a":[1]}')
    assert left == right and left["a"] is not right["a"]  # nested values are never shared


def test_make_link_is_a_link_like_any_other():
    import dataclasses

    import pytest

    from engine.state.base import Link, make_link

    at = datetime(2026, 1, 2, tzinfo=timezone.utc)
    made = make_link("l1", "r1", {"a": "1"}, {"A": "1"}, "lh", "rh", at)
    built = Link("l1", "r1", {"a": "1"}, {"A": "1"}, "lh", "rh", at)
    assert made == built and repr(made) == repr(built)
    assert make_link("l", "r", {}, {}) == Link("l", "r")
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.right_id = "r2"  # type: ignore[misc]
    assert dataclasses.replace(made, right_id="r2").right_id == "r2"
