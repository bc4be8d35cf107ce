"""Every module of every catalog accepts a record holding just its mandatory fields, and refuses one
without them: validation follows the catalogs, whatever they hold."""

from __future__ import annotations

import pytest

from engine.catalog import catalog

SAMPLE = {"text": "Sample", "longtext": "Sample text", "email": "sample@example.com", "phone": "+1 555 0100",
          "url": "https://example.com", "integer": 7, "decimal": 12.5, "boolean": True, "date": "2026-05-01",
          "datetime": "2026-05-01T10:00:00+00:00"}


def sample(app: str, f) -> object:
    if f.kind == "picklist":
        return f.picklist[0]
    if f.kind == "multiselect":
        return list(f.picklist[:1])
    if f.kind == "datetime" and app == "zoho_desk":
        return "2026-05-01T10:00:00.000Z"
    return SAMPLE.get(f.kind, "Sample")


ZOHO = [(a, m) for a in ("bigin", "zoho_crm") for m in catalog(a).modules if m != "Notes"]


@pytest.mark.parametrize("app_name,module", ZOHO)
def test_zoho_module_accepts_its_mandatory_fields(anon, app_name, module):
    from tests.sandbox.conftest import authorize

    client = authorize(anon)
    base = "/bigin/v2" if app_name == "bigin" else "/crm/v8"
    mod = catalog(app_name).module(module)
    record = {f.api_name: sample(app_name, f) for f in mod.fields
              if f.mandatory and not f.read_only and f.kind not in ("lookup", "owner")}
    r = client.post(f"{base}/{module}", json={"data": [record]})
    assert r.status_code == 201, r.text
    if record:
        r = client.post(f"{base}/{module}", json={"data": [{}]})
        assert r.status_code == 400 and r.json()["data"][0]["code"] == "MANDATORY_NOT_FOUND"
    names = [f.api_name for f in mod.fields][:50]
    r = client.get(f"{base}/{module}", params={"fields": ",".join(names)})
    assert r.status_code == 200 and len(r.json()["data"]) == 1


@pytest.mark.parametrize("module", [m for m in catalog("zoho_desk").modules])
def test_desk_module_accepts_its_mandatory_fields(anon, module):
    from tests.sandbox.conftest import authorize

    client = authorize(anon)
    deps = [d["id"] for d in client.get("/api/v1/departments").json()["data"]]
    contact = client.post("/api/v1/contacts", json={"lastName": "Parent"}).json()["id"]
    mod = catalog("zoho_desk").module(module)
    body: dict = {}
    for f in mod.fields:
        if f.mandatory and not f.read_only:
            if f.api_name == "departmentId":
                body[f.api_name] = deps[0]
            elif f.api_name == "contactId":
                body[f.api_name] = contact
            else:
                body[f.api_name] = sample("zoho_desk", f)
    if mod.requires_departments:
        body["departmentIds"] = deps[:1]
    r = client.post(f"/api/v1/{module}", json=body)
    assert r.status_code == 200, r.text


def test_custom_unique_field_from_a_catalog_is_enforced_case_insensitively(clock):
    import json
    from importlib import resources

    import httpx

    from engine.catalog import catalog_from_dict
    from engine.sandbox import SandboxApp
    from tests.sandbox.conftest import authorize

    data = json.loads(resources.files("engine.catalog").joinpath("data", "bigin.json").read_text("utf-8"))
    for f in data["modules"]["Contacts"]["fields"]:
        if f["api_name"] == "Tax_ID":
            f.update({"unique": True, "encrypted": False})
    app = SandboxApp(":memory:", clock=clock, catalogs={"bigin": catalog_from_dict(data)})
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://s") as c:
        authorize(c)
        assert c.post("/bigin/v2/Contacts", json={"data": [{"Last_Name": "A", "Tax_ID": "ab-1"}]}).status_code == 201
        r = c.post("/bigin/v2/Contacts", json={"data": [{"Last_Name": "B", "Tax_ID": "AB-1"}]})
        assert r.status_code == 400 and r.json()["data"][0]["details"]["api_name"] == "Tax_ID"
        meta = {f["api_name"]: f for f in c.get("/bigin/v2/settings/fields", params={"module": "Contacts"}).json()["fields"]}
        assert meta["Tax_ID"]["unique"] and meta["Tax_ID"]["crypt"] is None
    app.close()
