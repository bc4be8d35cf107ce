"""The left side's read-ahead (engine.sync.engine._ReadAhead): pages in order, a read error raised after
the pages read before it, no more pages read than the limit allows, and a closed reader stops."""

from __future__ import annotations

import threading
import time

import pytest

from engine.errors import TransientAppError
from engine.sync.engine import _ReadAhead


def test_pages_come_in_order_and_an_error_after_the_pages_before_it():
    def pages():
        yield [1]
        yield [2]
        raise TransientAppError("page 3 failed", app="bigin", code="TIMEOUT")

    got = []
    with pytest.raises(TransientAppError, match="page 3 failed"):
        for page in _ReadAhead(pages(), limit=2):
            got.append(page)
    assert got == [[1], [2]]


def test_no_more_pages_are_read_than_the_limit_allows_and_close_stops_the_reader():
    read = []

    def pages():
        for i in range(100):
            read.append(i)
            yield [i]

    ahead = _ReadAhead(pages(), limit=3)
    deadline = time.monotonic() + 5
    while len(read) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert len(read) <= 4  # three waiting, the fourth read and waiting for room
    it = iter(ahead)
    assert next(it) == [0]
    ahead.close()
    assert not any(t.name == "syncform-read-ahead" and t.is_alive() for t in threading.enumerate()
                   if t is ahead._thread)
    assert len(read) <= 6


def test_a_full_buffer_is_refilled_once_half_of_it_was_taken_not_after_each_page():
    read = []

    def pages():
        for i in range(100):
            read.append(i)
            yield [i]

    def settled(n: int) -> int:
        deadline = time.monotonic() + 5
        while len(read) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        return len(read)

    ahead = _ReadAhead(pages(), limit=8)
    try:
        assert settled(9) == 9  # eight waiting, the ninth read and waiting for room
        it = iter(ahead)
        assert [next(it) for _ in range(3)] == [[0], [1], [2]]
        assert settled(10) == 9  # five still waiting: more than half, the reader sleeps on
        assert next(it) == [3]  # four left: the reader refills
        assert settled(13) == 13  # the ninth page went in, then three more filled it to eight again
        assert [next(it) for _ in range(96)] == [[i] for i in range(4, 100)]
        assert list(it) == []
    finally:
        ahead.close()
