"""The field catalogs the sandbox validates against.

The catalogs of ``engine.catalog`` are the truth. While an app's data file is not there (the
catalogs are written app by app), a small built-in catalog of that app's core modules, taken from
``reference/zoho-apis.md``, stands in so that the sandbox still serves the documented standard fields.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from engine.catalog import AppCatalog, ModuleCatalog, catalog_from_dict


def _f(api: str, type_: str = "text", length: int | None = None, *, mandatory: bool = False,
       unique: bool = False, read_only: bool = False, picklist: tuple[str, ...] = (),
       lookup: str | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"api_name": api, "label": api.replace("_", " ").replace("cf.cf ", ""),
                         "type": type_, "mandatory": mandatory, "unique": unique, "read_only": read_only}
    if length:
        d["length"] = length
    if picklist:
        d["picklist"] = list(picklist)
    if lookup:
        d["lookup"] = lookup
    return d


_SYS = [_f("Owner", "ownerlookup"), _f("Created_Time", "datetime", read_only=True),
        _f("Modified_Time", "datetime", read_only=True), _f("Created_By", "ownerlookup", read_only=True),
        _f("Modified_By", "ownerlookup", read_only=True), _f("Tag", "text", read_only=True)]

_ADDR = lambda p: [_f(f"{p}_Street", length=250), _f(f"{p}_City", length=100),  # noqa: E731
                   _f(f"{p}_State", length=100), _f(f"{p}_Code", length=30), _f(f"{p}_Country", length=100)]

_CONTACT = [_f("First_Name", length=40), _f("Last_Name", length=80, mandatory=True),
            _f("Full_Name", read_only=True), _f("Email", "email", 100, unique=True),
            _f("Secondary_Email", "email", 100), _f("Phone", "phone", 50), _f("Mobile", "phone", 50),
            _f("Home_Phone", "phone", 50), _f("Title", length=100),
            _f("Account_Name", "lookup", lookup="Accounts"), _f("Email_Opt_Out", "boolean"),
            _f("Description", "textarea", 32000),
            _f("Mailing_Street", length=250), _f("Mailing_City", length=100), _f("Mailing_State", length=100),
            _f("Mailing_Zip", length=30), _f("Mailing_Country", length=100)]
_ACCOUNT = [_f("Account_Name", length=100, mandatory=True, unique=True), _f("Phone", "phone", 30),
            _f("Website", "website", 255),
            _f("Industry", "picklist", picklist=("-None-", "Retail", "Manufacturing", "Technology", "Services",
                                                 "Healthcare", "Education", "Finance")),
            _f("Description", "textarea", 32000), *_ADDR("Billing"), *_ADDR("Shipping")]
_PRODUCT = [_f("Product_Name", length=120, mandatory=True, unique=True), _f("Product_Code", length=40),
            _f("Unit_Price", "currency"), _f("Product_Active", "boolean"), _f("Description", "textarea", 32000)]
_TASK = [_f("Subject", length=255, mandatory=True), _f("Due_Date", "date"),
         _f("Status", "picklist", picklist=("Not Started", "Deferred", "In Progress", "Completed",
                                            "Waiting for input")),
         _f("Priority", "picklist", picklist=("High", "Highest", "Low", "Lowest", "Normal")),
         _f("What_Id", "lookup"), _f("Who_Id", "lookup", lookup="Contacts"), _f("Description", "textarea", 32000)]
_EVENT = [_f("Event_Title", length=255, mandatory=True), _f("Start_DateTime", "datetime", mandatory=True),
          _f("End_DateTime", "datetime", mandatory=True), _f("All_day", "boolean"), _f("Venue", length=255),
          _f("What_Id", "lookup"), _f("Who_Id", "lookup", lookup="Contacts"), _f("Description", "textarea", 32000)]
_CALL = [_f("Subject", length=255, mandatory=True),
         _f("Call_Type", "picklist", picklist=("Outbound", "Inbound", "Missed")),
         _f("Call_Start_Time", "datetime"), _f("Call_Duration", length=10),
         _f("What_Id", "lookup"), _f("Who_Id", "lookup", lookup="Contacts"), _f("Description", "textarea", 32000)]
_NOTE = [_f("Note_Title", length=120), _f("Note_Content", "textarea", 32000, mandatory=True),
         _f("Parent_Id", "lookup")]
_STAGES = ("Qualification", "Needs Analysis", "Proposal/Price Quote", "Negotiation/Review",
           "Closed Won", "Closed Lost")


def _mods(**mods: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for name, fields in mods.items():
        m: dict[str, Any] = {"label": name, "fields": [*fields, *_SYS]}
        if name in ("Tasks", "Events", "Calls", "Notes"):
            m["child"] = True
            m["auto_fields"] = True
        out[name] = m
    return out


_BIGIN = {"app": "bigin", "label": "Bigin", "modules": _mods(
    Contacts=_CONTACT, Accounts=_ACCOUNT, Products=_PRODUCT,
    Pipelines=[_f("Deal_Name", length=120, mandatory=True, unique=True),
               _f("Stage", "picklist", mandatory=True, picklist=_STAGES),
               _f("Sub_Pipeline", "picklist", mandatory=True, picklist=("Sales Pipeline Standard",)),
               _f("Closing_Date", "date"), _f("Amount", "currency"),
               _f("Account_Name", "lookup", lookup="Accounts"), _f("Contact_Name", "lookup", lookup="Contacts"),
               _f("Description", "textarea", 32000)],
    Tasks=_TASK, Events=_EVENT, Calls=_CALL, Notes=_NOTE)}

_CRM = {"app": "zoho_crm", "label": "Zoho CRM", "modules": _mods(
    Leads=[_f("First_Name", length=40), _f("Last_Name", length=80, mandatory=True), _f("Full_Name", read_only=True),
           _f("Company", length=200), _f("Email", "email", 100, unique=True), _f("Phone", "phone", 50),
           _f("Mobile", "phone", 50),
           _f("Lead_Status", "picklist", picklist=("-None-", "Not Contacted", "Contacted", "Qualified")),
           _f("Description", "textarea", 32000)],
    Contacts=_CONTACT, Accounts=_ACCOUNT, Products=_PRODUCT,
    Deals=[_f("Deal_Name", length=120, mandatory=True, unique=True),
           _f("Stage", "picklist", mandatory=True, picklist=_STAGES),
           _f("Closing_Date", "date", mandatory=True), _f("Amount", "currency"),
           _f("Pipeline", "picklist", picklist=("Standard (Standard)",)),
           _f("Account_Name", "lookup", lookup="Accounts"), _f("Contact_Name", "lookup", lookup="Contacts"),
           _f("Description", "textarea", 32000)],
    Tasks=_TASK, Events=_EVENT, Calls=_CALL, Notes=_NOTE)}

_DF = lambda api, t="Text", n=None, **kw: _f(api, t, n, **kw)  # noqa: E731
_DESK_SYS = [_DF("createdTime", "DateTime", read_only=True), _DF("modifiedTime", "DateTime", read_only=True),
             _DF("ownerId", "LookUp")]
_DESK = {"app": "zoho_desk", "label": "Zoho Desk", "modules": {
    "contacts": {"label": "Contacts", "id_field": "id", "modified_field": "modifiedTime",
                 "created_field": "createdTime", "associates": ["tickets"], "fields": [
                     _DF("firstName", n=40), _DF("lastName", n=200, mandatory=True), _DF("email", "Email", 255),
                     _DF("secondaryEmail", "Email", 100), _DF("phone", "Phone", 50), _DF("mobile", "Phone", 50),
                     _DF("accountId", "LookUp", lookup="accounts"), _DF("title", n=100), _DF("type", n=100),
                     _DF("description", "Textarea", 32000), _DF("street", n=250), _DF("city", n=100),
                     _DF("state", n=100), _DF("country", n=100), _DF("zip", n=30),
                     _DF("cf.cf_customer_type", "Picklist", picklist=("Standard", "Premium")), *_DESK_SYS]},
    "accounts": {"label": "Accounts", "modified_field": "modifiedTime", "created_field": "createdTime",
                 "associates": ["tickets", "contacts"], "fields": [
                     _DF("accountName", n=200, mandatory=True), _DF("email", "Email", 255),
                     _DF("website", "URL", 120), _DF("phone", "Phone", 30), _DF("industry", n=120),
                     _DF("description", "Textarea", 32000), _DF("street", n=250), _DF("city", n=100),
                     _DF("state", n=100), _DF("country", n=100), _DF("code", n=30), *_DESK_SYS]},
    "products": {"label": "Products", "modified_field": "modifiedTime", "created_field": "createdTime",
                 "requires_departments": True, "fields": [
                     _DF("productName", n=200, mandatory=True), _DF("productCode", n=100),
                     _DF("unitPrice", "Currency"), _DF("description", "Textarea", 32000),
                     _DF("productCategory", n=100), _DF("manufacturer", n=100), *_DESK_SYS]},
    "tickets": {"label": "Tickets", "modified_field": "modifiedTime", "created_field": "createdTime",
                "fields": [
                    _DF("subject", n=255, mandatory=True), _DF("departmentId", "LookUp", mandatory=True),
                    _DF("contactId", "LookUp", lookup="contacts"), _DF("email", "Email", 255),
                    _DF("phone", "Phone", 50), _DF("description", "Textarea", 32000),
                    _DF("status", "Picklist", picklist=("Open", "On Hold", "Escalated", "Closed")),
                    _DF("priority", "Picklist", picklist=("Low", "Medium", "High")),
                    _DF("productId", "LookUp", lookup="products"), *_DESK_SYS]},
}}

_BF = lambda api, t="SingleLine", n=None, **kw: _f(api, t, n, **kw)  # noqa: E731
_BOOKINGS = {"app": "zoho_bookings", "label": "Zoho Bookings", "modules": {
    "customers": {"label": "Customers", "modified_field": "modified_time", "created_field": "created_time",
                  "fields": [_BF("name", n=100, mandatory=True), _BF("email", "Email", 100),
                             _BF("phone", "Phone", 30), _BF("first_name", n=50), _BF("last_name", n=50)]},
    "appointments": {"label": "Appointments", "id_field": "booking_id", "modified_field": "modified_time",
                     "created_field": "booked_on", "child": True, "parent": "customers", "fields": [
                         _BF("service_id", mandatory=True), _BF("staff_id"),
                         _BF("start_time", "DateTimeBookings", mandatory=True),
                         _BF("end_time", "DateTimeBookings", read_only=True),
                         _BF("service_name", read_only=True), _BF("staff_name", read_only=True),
                         _BF("customer_name", read_only=True), _BF("customer_email", "Email", read_only=True),
                         _BF("customer_contact_no", "Phone", read_only=True),
                         _BF("status", "Dropdown", read_only=True), _BF("notes", "MultiLine", 1000)]},
}}

BUILTIN = {"bigin": _BIGIN, "zoho_crm": _CRM, "zoho_desk": _DESK, "zoho_bookings": _BOOKINGS}


@cache
def builtin(app: str) -> AppCatalog:
    return catalog_from_dict(BUILTIN[app])


def load(app: str) -> AppCatalog:
    """The catalog of ``app`` from ``engine.catalog``, or the built-in stand-in while its data file is
    missing or unreadable."""
    from engine import catalog as cat

    try:
        return cat.catalog(app)
    except (FileNotFoundError, KeyError, ValueError, OSError):
        return builtin(app)


def module(app: str, name: str, overrides: dict[str, AppCatalog] | None = None) -> ModuleCatalog | None:
    c = (overrides or {}).get(app) or load(app)
    return c.module(name)
