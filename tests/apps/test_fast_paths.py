"""The clients' per-record fast paths give exactly what their general paths give, fallbacks included:
record parsing (``_records``, times in any offset), write answers (``_results``) and the frozen
dataclass makers (``fast_maker``). Property-style: any page or answer, well-formed or not."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.apps._common import fast_maker, make_record, make_result, parse_time
from engine.apps.base import Record, WriteResult
from engine.apps.http import HttpLayer, hosts_for
from engine.apps.zoho import ZohoClient
from engine.errors import ProtocolError

UTC = timezone.utc


@pytest.fixture(scope="module")
def client():
    c = ZohoClient(HttpLayer(app="zoho_crm", connection="crm", hosts=hosts_for("us")), app="zoho_crm")
    yield c
    c.close()


# -- the makers ----------------------------------------------------------------------------------------

def test_made_records_and_results_are_the_dataclasses_themselves():
    t = datetime(2026, 2, 3, 10, 11, 12, tzinfo=UTC)
    rec = make_record("42", {"Email": "a@b.c"}, t, None)
    assert type(rec) is Record
    assert rec == Record("42", {"Email": "a@b.c"}, t) and repr(rec) == repr(Record("42", {"Email": "a@b.c"}, t))
    assert hash(make_record("1", (), t, t)) == hash(Record("1", (), t, t))
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.id = "43"  # type: ignore[misc]
    assert dataclasses.replace(rec, id="7").id == "7"
    res = make_result(True, "9", "SUCCESS", "record added", None, False, t, {"id": "9"})
    assert type(res) is WriteResult
    assert res == WriteResult(ok=True, id="9", code="SUCCESS", message="record added", modified=t, details={"id": "9"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.ok = False  # type: ignore[misc]


def test_a_maker_is_refused_for_a_class_that_is_not_a_plain_slotted_dataclass():
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            assert self.a > 0

    for cls in (NoSlots, Checked):
        with pytest.raises(TypeError, match="not a plain slotted dataclass"):
            fast_maker(cls)


# -- times ---------------------------------------------------------------------------------------------

offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
instants = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(instants, offsets, st.sampled_from(["seconds", "milliseconds", "auto"]), st.booleans())
def test_times_in_any_offset_read_as_parse_time_reads_them(client, dt, tz, spec, naive):
    text = (dt if naive else dt.replace(tzinfo=tz)).isoformat(timespec=spec)
    (rec,) = client._records("Contacts", "list", [{"id": "1", "Modified_Time": text, "Created_Time": text}])
    assert rec.modified == rec.created == parse_time(text)
    assert rec.modified.tzinfo is UTC and rec.created.tzinfo is UTC


# -- records -------------------------------------------------------------------------------------------

def _time_text(draw_dt: datetime, form: str) -> object:
    return {"utc": draw_dt.replace(tzinfo=UTC).isoformat(timespec="seconds"),
            "pacific": draw_dt.replace(tzinfo=timezone(timedelta(hours=-7))).isoformat(timespec="seconds"),
            "india": draw_dt.replace(tzinfo=timezone(timedelta(hours=5, minutes=30))).isoformat(timespec="seconds"),
            "z": draw_dt.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "naive": draw_dt.isoformat(timespec="seconds"),
            "spaced": " " + draw_dt.replace(tzinfo=UTC).isoformat() + " ", "empty": "", "none": None,
            "garbage": "yesterday", "number": 1700000000}[form]


TIME_FORMS = ["utc", "utc", "utc", "pacific", "india", "z", "naive", "spaced", "empty", "none", "garbage", "number"]


@st.composite
def raw_records(draw, bad: bool):
    ids = ["4876876000000000001", "5725767000000000002", "9"] + (["", None, 17, ["x"]] if bad else [])
    forms = TIME_FORMS if bad else ["utc", "utc", "pacific", "india", "z", "naive"]
    raw: dict = {"Email": draw(st.sampled_from(["a@b.c", None])), "Last_Name": "Doe"}
    rid = draw(st.sampled_from(ids + ["missing"]) if bad else st.sampled_from(ids))
    if rid != "missing":
        raw["id"] = rid
    for key in ("Modified_Time", "Created_Time"):
        form = draw(st.sampled_from(forms + ["missing"] if bad else forms))
        if form != "missing":
            raw[key] = _time_text(draw(instants), form)
    return raw if draw(st.integers(0, 40)) or not bad else draw(st.sampled_from([None, "text", 3, []]))


def _outcome(fn, *args):
    try:
        return fn(*args)
    except ProtocolError as e:
        return ("error", str(e))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=300)
@given(st.data())
def test_a_page_of_records_parses_as_the_general_path_parses_it(client, data):
    bad = data.draw(st.booleans())
    page = data.draw(st.lists(raw_records(bad), max_size=6))
    fast = _outcome(client._records, "Contacts", "list", json.loads(json.dumps(page)))
    general = _outcome(client._records_general, "Contacts", "list", json.loads(json.dumps(page)))
    assert fast == general
    if isinstance(fast, list):
        assert all(type(r) is Record and r.modified.tzinfo is UTC for r in fast)
        assert all(r.created is None or r.created.tzinfo is UTC for r in fast)


def test_a_well_formed_page_keeps_its_decoded_dicts_as_values(client):
    page = [{"id": str(i), "Modified_Time": "2026-02-03T10:11:12-07:00", "Created_Time": None, "Email": f"{i}@x.y"}
            for i in range(1, 4)]
    recs = client._records("Contacts", "list", page)
    assert [r.values is raw for r, raw in zip(recs, page)] == [True] * 3
    assert recs[0].modified == datetime(2026, 2, 3, 17, 11, 12, tzinfo=UTC) and recs[0].created is None


def test_a_record_without_a_modified_time_is_named(client):
    page = [{"id": "1", "Modified_Time": "2026-02-03T10:11:12+00:00"}, {"id": "2"}]
    with pytest.raises(ProtocolError, match="record 2 has no Modified_Time"):
        client._records("Contacts", "list", page)


# -- write answers -------------------------------------------------------------------------------------

@st.composite
def answer_items(draw):
    status = draw(st.sampled_from(["success", "success", "success", "error", "Success", None]))
    details = draw(st.sampled_from(["dict", "dict", "dict", "none", "list"]))
    item: dict = {"status": status,
                  "code": draw(st.sampled_from(["SUCCESS", "INVALID_DATA", "RECORD_LOCKED", None, 5])),
                  "message": draw(st.sampled_from(["record added", "", None, 7]))}
    if details == "dict":
        d: dict = {}
        rid = draw(st.sampled_from(["5725767000000000002", 5725767000000000003, None, "missing"]))
        if rid != "missing":
            d["id"] = rid
        when = draw(st.sampled_from(["2026-02-03T10:11:12+00:00", "2026-02-03T10:11:13-07:00", None, "missing"]))
        if when != "missing":
            d["Modified_Time"] = when
        if draw(st.booleans()):
            d["api_name"] = "Email"
        item["details"] = d
    elif details == "list":
        item["details"] = []
    return item if draw(st.integers(0, 30)) else draw(st.sampled_from([None, "x"]))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=300)
@given(st.data())
def test_write_answers_give_what_the_per_item_parser_gives(client, data):
    items = data.draw(st.lists(answer_items(), min_size=1, max_size=6))
    op = data.draw(st.sampled_from(["create", "update"]))
    given_ids = [None if op == "create" else f"{700 + i}" for i in range(len(items))]
    response = httpx.Response(207, json={"data": items})
    fast = _outcome(client._results, response, "Contacts", op, given_ids)
    general = _outcome(lambda: [client._result(json.loads(json.dumps(item)), g, "Contacts", op)
                                for item, g in zip(items, given_ids)])
    assert fast == general
    if isinstance(fast, list):
        assert all(type(r) is WriteResult for r in fast)
