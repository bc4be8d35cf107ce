"""Hostile app answers: every client (Bigin, CRM, Desk, Bookings), every operation, fed arbitrary
status codes, bodies and envelopes by an `httpx.MockTransport` (the token endpoint answers properly).
Whatever comes back, a client either returns well-typed values or raises a SyncformError subclass
(typed, with a message naming the connection): never a KeyError, TypeError, AttributeError... that
would end a user's run in a traceback."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.apps.base import DeletedRecord, Record, WriteResult
from engine.errors import SyncformError
from engine.spec.model import Connection, SandboxOptions
from tests.reliability.conftest import count

EXAMPLES = 400 if os.environ.get("SYNCFORM_RELIABILITY_LONG") else 60

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63), st.floats(allow_nan=True),
                         st.text(max_size=20), st.sampled_from(["success", "error", "failure", "SUCCESS", "",
                                                                "INVALID_DATA", "1234567890123456789"]))
KEYS = ["data", "info", "more_records", "next_page_token", "id", "code", "status", "details", "message",
        "Modified_Time", "Created_Time", "modifiedTime", "createdTime", "Email", "response", "returnvalue",
        "next_page_available", "errorCode", "errors", "fields", "api_name", "deleted_time", "count",
        "customer_more_info", "booking_id", "customer_email", "start_time", "booked_on", "users", "page"]
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner,
                                                 max_size=5)), max_leaves=12)
# plausible shapes too, so the fuzzer gets past the first checks
record_like = st.fixed_dictionaries({"id": st.one_of(st.text(max_size=5), st.integers(), st.none())},
                                    optional={"Modified_Time": json_scalars, "Created_Time": json_scalars,
                                              "Email": json_values, "modifiedTime": json_scalars})
envelopes = st.one_of(
    json_values,
    st.fixed_dictionaries({"data": st.one_of(st.lists(record_like, max_size=3), json_values)},
                          optional={"info": json_values}),
    st.fixed_dictionaries({"data": st.lists(st.fixed_dictionaries(
        {"code": json_scalars, "status": json_scalars}, optional={"details": json_values, "message": json_scalars}),
        max_size=3)}),
    st.fixed_dictionaries({"response": st.fixed_dictionaries({"returnvalue": json_values,
                                                             "status": json_scalars})}),
)
bodies = st.one_of(envelopes.map(lambda v: json.dumps(v).encode()),
                   st.binary(max_size=40), st.sampled_from([b"", b"null", b"[]", b"{", b"<html>oops</html>"]))
statuses = st.sampled_from([200, 200, 200, 201, 202, 204, 207, 304, 400, 401, 403, 404, 405, 413, 422, 451])

CONNECTIONS = {
    "bigin": ("Contacts", {"Last_Name": "X", "Email": "x@example.com"}),
    "zoho_crm": ("Contacts", {"Last_Name": "X", "Email": "x@example.com"}),
    "zoho_desk": ("contacts", {"lastName": "X", "email": "x@example.com"}),
    "zoho_bookings": ("customers", {"name": "X", "email": "x@example.com"}),
}
OPS = ["list_changed", "list_changed_since", "list_deleted", "get_many", "create_many", "update_many",
       "delete_many", "search", "fields", "count_associates", "users"]


def handler_for(status: int, body: bytes):
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth/v2/token"):
            return httpx.Response(200, json={"access_token": "fuzz-access-token-123456", "expires_in": 3600,
                                             "token_type": "Bearer", "api_domain": "http://x"})
        return httpx.Response(status, content=body, headers={"content-type": "application/json"})
    return handle


def call(client: Any, op: str, module: str, sample: dict[str, Any]) -> Any:
    since = datetime(2026, 1, 1, tzinfo=timezone.utc)
    if op == "list_changed":
        return [list(p) for p in client.list_changed(module, None)]
    if op == "list_changed_since":
        return [list(p) for p in client.list_changed(module, since)]
    if op == "list_deleted":
        return [list(p) for p in client.list_deleted(module, since)]
    if op == "get_many":
        return client.get_many(module, ["1", "2"])
    if op == "create_many":
        return client.create_many(module, [sample, sample])
    if op == "update_many":
        return client.update_many(module, [("1", sample), ("2", sample)])
    if op == "delete_many":
        return client.delete_many(module, ["1", "2"])
    if op == "search":
        return client.search(module, next(iter(sample)), "x@example.com")
    if op == "fields":
        return client.fields(module)
    if op == "count_associates":
        return client.count_associates(module, "1")
    return client.users()


def check_types(op: str, result: Any) -> None:
    if op.startswith("list_"):
        kind = DeletedRecord if op == "list_deleted" else Record
        assert all(isinstance(r, kind) for page in result for r in page), result
    elif op in ("create_many", "update_many", "delete_many"):
        assert len(result) == 2 and all(isinstance(r, WriteResult) for r in result), result
    elif op in ("get_many", "search"):
        assert all(isinstance(r, Record) for r in result), result
    elif op == "count_associates":
        assert isinstance(result, int)


@pytest.mark.parametrize("app", sorted(CONNECTIONS))
def test_any_answer_is_data_or_a_typed_error(app, tmp_path):
    from engine.apps.http import RetryPolicy
    from engine.apps.registry import open_client

    module, sample = CONNECTIONS[app]
    conn = Connection(name=f"fuzz-{app}", app=app, sandbox=SandboxOptions(), base_url="http://fuzz.invalid",
                      org_id="1" if app == "zoho_desk" else None)
    untyped: list[str] = []

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(status=statuses, body=bodies, op=st.sampled_from(OPS))
    def one(status, body, op):
        count("app answers fuzzed")
        client = open_client(conn, workdir=tmp_path, transport=httpx.MockTransport(handler_for(status, body)),
                             sleep=lambda s: None, retry=RetryPolicy(max_attempts=2))
        try:
            result = call(client, op, module, sample)
        except SyncformError as exc:
            assert str(exc), "an error without a message"
            return
        except Exception as exc:  # noqa: BLE001 - what we hunt for
            untyped.append(f"{op} HTTP {status} {body[:60]!r} -> {type(exc).__name__}: {exc}")
            return
        finally:
            client.close()
        check_types(op, result)

    one()
    assert not untyped, f"{len(untyped)} answers crashed the {app} client:\n" + "\n".join(sorted(set(untyped))[:12])
