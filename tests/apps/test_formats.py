"""Wire-format helpers: Bookings dates, Desk custom fields, Zoho field metadata."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest

from engine.apps.bookings import BookingsClient, format_bookings_time, parse_bookings_time
from engine.apps.desk import from_wire, to_wire
from engine.apps.http import HttpLayer, hosts_for
from engine.apps.zoho import normalise_field
from engine.errors import ProtocolError, TerminalAppError


def test_bookings_dates_round_trip_in_the_appointment_time_zone():
    utc = datetime(2019, 4, 30, 16, 30, tzinfo=timezone.utc)
    assert format_bookings_time(utc) == "30-Apr-2019 16:30:00"
    assert format_bookings_time(utc, "Asia/Kolkata") == "30-Apr-2019 22:00:00"
    assert parse_bookings_time("30-Apr-2019 22:00:00", "Asia/Kolkata") == utc
    assert format_bookings_time("2019-04-30T16:30:00Z") == "30-Apr-2019 16:30:00"
    assert parse_bookings_time("2019-04-30") is None


def test_desk_custom_fields_flatten_and_nest():
    raw = {"id": "1", "lastName": "X", "cf": {"cf_tier": "Gold", "cf_points": 3}}
    flat = from_wire(raw)
    assert flat == {"id": "1", "lastName": "X", "cf.cf_tier": "Gold", "cf.cf_points": 3}
    assert to_wire({"lastName": "X", "cf.cf_tier": "Gold"}) == {"lastName": "X", "cf": {"cf_tier": "Gold"}}


def test_zoho_field_metadata_in_the_catalog_shape():
    f = normalise_field({"api_name": "Email", "field_label": "Email", "data_type": "email", "length": 100,
                         "system_mandatory": False, "read_only": False, "unique": {"casesensitive": "false"},
                         "crypt": {"mode": "decryption", "status": 1}, "custom_field": False})
    assert f == {"api_name": "Email", "label": "Email", "type": "email", "length": 100, "mandatory": False,
                 "read_only": False, "unique": True, "encrypted": True, "picklist": [], "lookup": None,
                 "custom": False}
    assert normalise_field({"api_name": "X", "data_type": "text", "unique": {}, "crypt": None})["unique"] is False


def _bookings(handler) -> BookingsClient:
    http = HttpLayer(app="zoho_bookings", connection="bk", hosts=hosts_for("us"),
                     transport=httpx.MockTransport(handler))
    return BookingsClient(http)


def test_bookings_failure_inside_http_200_is_a_typed_error_for_reads():
    client = _bookings(lambda r: httpx.Response(200, json={"response": {"returnvalue": {
        "status": "failure", "message": "Invalid workspace"}, "status": "success"}}))
    with pytest.raises(TerminalAppError, match="Invalid workspace") as err:
        client.users()
    assert err.value.code == "FAILURE"


def test_bookings_writes_are_form_encoded_with_json_strings():
    seen = []

    def handler(request):
        seen.append(request)
        return httpx.Response(200, json={"response": {"returnvalue": {"data": [
            {"id": "77", "name": "A", "status": "success"}], "status": "success"}, "status": "success"}})

    [res] = _bookings(handler).create_many("customers", [{"name": "A", "email": "a@x.com", "phone": "+1 5"}])
    assert res.ok and res.id == "77"
    req = seen[0]
    assert req.headers["content-type"].startswith("application/x-www-form-urlencoded")
    form = dict(httpx.QueryParams(req.content.decode()))
    assert form["customerMap"] == '[{"name": "A", "email": "a@x.com", "contact_number": "+1 5"}]'


def test_bookings_wrong_envelope_is_a_protocol_error():
    client = _bookings(lambda r: httpx.Response(200, json={"data": []}))
    with pytest.raises(ProtocolError, match="no response object"):
        client.users()
