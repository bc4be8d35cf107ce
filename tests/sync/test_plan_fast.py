"""The planner's fast constructors build exactly the objects the dataclasses' own constructors build."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest

from engine.state.base import Link
from engine.sync.plan import Op, fast_constructor, new_link, new_op


def test_an_op_and_a_link_built_fast_equal_the_ones_built_by_their_classes_and_stay_frozen():
    at = datetime(2026, 1, 2, tzinfo=timezone.utc)
    assert new_link("1", "2", {"a": 1}, {"b": 2}) == Link(left_id="1", right_id="2", left_values={"a": 1},
                                                          right_values={"b": 2})
    assert new_link("1", "2", synced_at=at, right_hash="h") == Link("1", "2", synced_at=at, right_hash="h")
    lk = new_link("1", "")
    op = new_op("create", "right", source_id="1", values={"x": 1}, keys=(("Email", "a@b"),), link=lk, pair="left:1")
    assert op == Op("create", "right", source_id="1", values={"x": 1}, keys=(("Email", "a@b"),), link=lk, pair="left:1")
    assert op.side == "left" and type(op) is Op
    bare = new_op("link", "right")
    assert bare == Op("link", "right") and bare.values == {} and bare.values is not new_op("link", "right").values
    with pytest.raises(dataclasses.FrozenInstanceError):
        op.kind = "update"  # type: ignore[misc]
    with pytest.raises(TypeError):
        new_op("create")  # the target is required, as in Op(...)


def test_a_class_whose_init_does_more_than_set_fields_gets_no_fast_constructor():
    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            if self.a < 0:
                raise ValueError("a")

    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    for cls in (Checked, NoSlots):
        with pytest.raises(TypeError):
            fast_constructor(cls)


def test_the_digits_of_a_phone_number_are_those_the_pattern_finds_ascii_or_not():
    import re

    from engine.sync.normalize import digits

    for v in ("+61 918 215 4833", "", "abc", "(555) 010-0001 ext. 7", "\x00\x7f99", "١٢٣ 45", "５５５-01"):
        assert digits(v) == re.sub(r"\D+", "", v), v
