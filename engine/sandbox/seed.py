"""Deterministic, realistic demo data for every app, drawn from one shared pool.

People, companies and products come from pools indexed by number: ``person(seed, i)`` is the same
person whichever app asks. Seeding ``count`` records of a module fills slot ``j`` with

- slot ``j % 10 < 6``: pool entry ``j`` (shared: two apps seeded with the same seed and count hold
  about 60 % of the same people, companies and products);
- other slots: an entry of a range reserved to that app (present in that app only);
- every 20th slot (``j % 20 == 19``): a near-duplicate of the person in slot ``j - 1``: the same
  person under another name (nickname) with another e-mail address and a differently formatted phone.

Shared entries are written with small per-app variations now and then: the e-mail in other case or
with surrounding spaces (where the app keeps spaces), the phone in another format, another e-mail
address (the phone still matches) or a nickname (the e-mail still matches). Created times
spread over the last ~400 days, so that "created within the last year" filters have work to do.
"""

from __future__ import annotations

import functools
import json
import os
import random
import re
from collections.abc import Iterator
from datetime import timedelta, timezone
from typing import Any

from engine.catalog import ModuleCatalog
from engine.sandbox import timefmt, validate
from engine.sandbox.core import Context

FIRST = ("James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "William", "Elizabeth",
         "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
         "Daniel", "Nancy", "Matthew", "Lisa", "Anthony", "Margaret", "Mark", "Sandra", "Steven", "Ashley",
         "Andrew", "Emily", "Kenneth", "Donna", "Joshua", "Michelle", "Priya", "Arjun", "Mei", "Hiroshi",
         "Sofia", "Mateo", "Fatima", "Omar", "Ingrid", "Lars", "Chloe", "Lucas", "Aisha", "Kwame")
LAST = ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
        "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
        "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
        "Walker", "Young", "Allen", "King", "Wright", "Scott", "Patel", "Sharma", "Chen", "Tanaka",
        "Rossi", "Silva", "Khan", "Haddad", "Larsen", "Nielsen", "Dubois", "Moreau", "Okafor", "Mensah")
NICK = {"James": "Jim", "Robert": "Bob", "Patricia": "Pat", "John": "Jack", "Jennifer": "Jen",
        "Michael": "Mike", "William": "Bill", "Elizabeth": "Liz", "David": "Dave", "Barbara": "Barb",
        "Richard": "Rick", "Susan": "Sue", "Joseph": "Joe", "Jessica": "Jess", "Thomas": "Tom",
        "Charles": "Chuck", "Daniel": "Dan", "Matthew": "Matt", "Anthony": "Tony", "Margaret": "Maggie",
        "Steven": "Steve", "Andrew": "Andy", "Kenneth": "Ken", "Joshua": "Josh"}
TITLES = ("CEO", "CTO", "Head of Sales", "Purchasing Manager", "Office Manager", "Support Lead",
          "Operations Director", "Account Executive", "Marketing Manager", "Engineer")
CITIES = (("Austin", "USA", "+1"), ("Chennai", "India", "+91"), ("London", "UK", "+44"),
          ("Berlin", "Germany", "+49"), ("Sydney", "Australia", "+61"), ("Toronto", "Canada", "+1"),
          ("Tokyo", "Japan", "+81"), ("Paris", "France", "+33"), ("Dubai", "UAE", "+971"),
          ("Sao Paulo", "Brazil", "+55"))
CO_A = ("Zylker", "Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay", "Soylent",
        "Cyberdyne", "Tyrell", "Wonka", "Gringotts", "Oceanic", "Nakatomi", "Pied Piper", "Dunder",
        "Monarch", "Aperture", "Blue Sun", "Massive", "Northwind", "Contoso", "Fabrikam", "Tailspin",
        "Litware", "Adatum", "Proseware", "Woodgrove")
CO_B = ("Foods", "Systems", "Logistics", "Labs", "Industries", "Health", "Energy", "Media", "Retail",
        "Motors", "Analytics", "Textiles", "Pharma", "Consulting", "Robotics", "Airways", "Studios",
        "Outfitters", "Bank", "Networks")
CO_C = ("Inc", "Ltd", "GmbH", "LLC", "Pvt Ltd", "SA", "Co", "Group")
INDUSTRY = ("Retail", "Manufacturing", "Technology", "Services", "Healthcare", "Education", "Finance")
P_ADJ = ("Ultra", "Smart", "Eco", "Pro", "Compact", "Wireless", "Solar", "Classic", "Rapid", "Quantum",
         "Titan", "Nimbus", "Aero", "Vivid", "Silent")
P_ITEM = ("Router", "Desk Lamp", "Headset", "Monitor", "Keyboard", "Printer", "Coffee Maker", "Backpack",
          "Thermostat", "Camera", "Speaker", "Drone", "Scanner", "Projector", "Tablet", "Charger", "Webcam",
          "Air Purifier", "Smartwatch", "Label Maker")
SUBJECTS = ("Follow up on proposal", "Send price list", "Schedule demo", "Renewal discussion",
            "Onboarding call", "Quarterly review", "Collect feedback", "Contract signature",
            "Check delivery status", "Introduce new product line")
TICKETS = ("Cannot log in", "Invoice shows wrong amount", "Product arrived damaged", "How do I export data?",
           "Feature request: dark mode", "Password reset link expired", "Delivery delayed",
           "Warranty claim", "Refund request", "App crashes on start")
NOTES = ("Prefers e-mail over phone.", "Interested in the premium plan.", "Asked for a discount on volume.",
         "Met at the trade fair.", "Decision expected next quarter.", "Referred by an existing customer.")
APP_NO = {"bigin": 1, "zoho_crm": 2, "zoho_desk": 3, "zoho_bookings": 4}
SPACE_KEEPING = {"zoho_desk", "zoho_bookings"}

# kind of each module, by api name
KINDS = {"Contacts": "person", "contacts": "person", "customers": "person", "Leads": "lead",
         "Accounts": "company", "accounts": "company", "Products": "product", "products": "product",
         "Deals": "deal", "Pipelines": "deal", "Tasks": "task", "Events": "event", "Calls": "call",
         "Notes": "note", "tickets": "ticket", "appointments": "appointment"}
ORDER = ("company", "person", "lead", "product", "deal", "task", "event", "call", "note", "ticket", "appointment")


class _Random(random.Random):
    """``random.Random`` with ``randint`` and ``choice`` taking the shortest path to the same numbers
    (CPython's ``randrange(a, b + 1)`` and ``seq[_randbelow(len(seq))]``): seeding draws ~15 numbers
    per record, and their call overhead was a fifth of the seeding time."""

    def randint(self, a: int, b: int) -> int:  # type: ignore[override]
        n = b - a + 1
        k = n.bit_length()
        r = self.getrandbits(k)
        while r >= n:
            r = self.getrandbits(k)
        return a + r

    def choice(self, seq: Any) -> Any:
        n = len(seq)
        if not n:
            raise IndexError("Cannot choose from an empty sequence")
        k = n.bit_length()
        r = self.getrandbits(k)
        while r >= n:
            r = self.getrandbits(k)
        return seq[r]


def _rng(*key: Any) -> random.Random:
    return _Random(":".join(map(str, key)))


def company(seed: int, idx: int) -> dict[str, Any]:
    n = len(CO_A) * len(CO_B) * len(CO_C)
    k = (idx * 7919 + seed * 31) % n
    a, b, c = CO_A[k % len(CO_A)], CO_B[(k // len(CO_A)) % len(CO_B)], CO_C[k // (len(CO_A) * len(CO_B))]
    name = f"{a} {b} {c}" + (f" {idx // n + 1}" if idx >= n else "")
    r = _rng(seed, "company", idx)
    city, country, cc = r.choice(CITIES)
    domain = f"{a}{b}".lower().replace(" ", "") + (str(idx // n + 1) if idx >= n else "") + ".example.com"
    return {"name": name, "domain": domain, "website": f"https://www.{domain}", "industry": r.choice(INDUSTRY),
            "city": city, "country": country,
            "phone": f"{cc} {r.randint(200, 999)} {r.randint(100, 999)} {r.randint(1000, 9999)}",
            "employees": r.choice((8, 25, 60, 150, 400, 1200, 5000))}


@functools.lru_cache(maxsize=1024)
def _company_domain(seed: int, idx: int) -> str:
    return company(seed, idx)["domain"]  # a person works for one of 60 companies: worked out once each


def person(seed: int, idx: int) -> dict[str, Any]:
    r = _rng(seed, "person", idx)
    first, last = r.choice(FIRST), r.choice(LAST)
    k = r.randrange(0, 60)
    comp_idx = (k // 6) * 10 + k % 6  # a shared company slot (j % 10 < 6)
    domain = _company_domain(seed, comp_idx)
    city, country, cc = r.choice(CITIES)
    digits = f"{r.randint(200, 999)}{r.randint(100, 999)}{r.randint(1000, 9999)}"
    return {"first": first, "last": last, "company_idx": comp_idx,
            "email": f"{first}.{last}{idx}@{domain}".lower(),
            "cc": cc, "digits": digits, "phone": f"{cc} {digits[:3]} {digits[3:6]} {digits[6:]}",
            "mobile": f"{cc} {r.randint(700, 999)} {r.randint(100, 999)} {r.randint(1000, 9999)}",
            "title": r.choice(TITLES), "city": city, "country": country,
            "tier": r.choice(("Standard", "Standard", "Premium", "Trial"))}


def product(seed: int, idx: int) -> dict[str, Any]:
    n = len(P_ADJ) * len(P_ITEM)
    k = (idx * 37 + seed) % n
    r = _rng(seed, "product", idx)
    name = f"{P_ADJ[k % len(P_ADJ)]} {P_ITEM[k // len(P_ADJ)]} {100 + idx // n * 100 + (idx % 9) * 10}"
    return {"name": name, "code": f"PRD-{idx:05d}", "price": round(r.uniform(9, 1999), 2),
            "category": r.choice(("Hardware", "Software", "Services")),
            "manufacturer": company(seed, idx % 40)["name"].split(" ")[0]}


def pool_index(app: str, j: int) -> int:
    """Slot ``j`` of an app → pool index (shared for ``j % 10 < 6``)."""
    return j if j % 10 < 6 else 1_000_000 * APP_NO[app] + j


def _vary_person(app: str, seed: int, idx: int, p: dict[str, Any]) -> dict[str, Any]:
    p = dict(p)
    r = _rng(seed, app, "variation", idx)
    roll = r.random()
    if roll < 0.12:
        p["email"] = p["email"].upper() if r.random() < 0.5 else p["email"].capitalize()
    elif roll < 0.18 and app in SPACE_KEEPING:
        p["email"] = f" {p['email']} "
    other = r.random()
    if other < 0.05:  # another e-mail address here; the phone still matches
        p["email"] = f"{p['first']}.{p['last']}{idx}@mail.example.org".lower()
    elif other < 0.10 and p["first"] in NICK:  # a nickname here; the e-mail still matches
        p["first"] = NICK[p["first"]]
    if r.random() < 0.25:
        d = p["digits"]
        p["phone"] = r.choice((f"({d[:3]}) {d[3:6]}-{d[6:]}", f"{d[:3]}.{d[3:6]}.{d[6:]}",
                               f"{p['cc']}{d}", f"{p['cc']}-{d[:3]}-{d[3:6]}-{d[6:]}"))
    return p


def slot_person(app: str, seed: int, j: int) -> dict[str, Any]:
    if j % 20 == 19:  # the same person as slot j-1 under another name, e-mail and phone format
        base = slot_person(app, seed, j - 1)
        p = dict(base)
        p["first"] = NICK.get(base["first"], base["first"][0] + ".")
        p["email"] = f"{p['first']}.{p['last']}.{j}@mail.example.org".lower().replace(" ", "")
        d = base["digits"]
        p["phone"] = f"({d[:3]}) {d[3:6]}-{d[6:]}"
        return p
    idx = pool_index(app, j)
    return _vary_person(app, seed, idx, person(seed, idx))


def _company_ref(refs: dict[str, Any], company_idx: int) -> str:
    """The seeded company a person works for: the same pool company in every app when it is there."""
    pool = refs.get("company_pool") or {}
    return pool.get(company_idx) or refs["company"][company_idx % len(refs["company"])]


# values per app ---------------------------------------------------------------------------------
def _zoho_values(kind: str, module: str, j: int, seed: int, app: str, refs: dict[str, list[str]],
                 r: random.Random) -> dict[str, Any]:
    if kind == "company":
        c = company(seed, pool_index(app, j))
        return {"Account_Name": c["name"], "Phone": c["phone"], "Website": c["website"], "Industry": c["industry"],
                "Billing_City": c["city"], "Billing_Country": c["country"],
                "Description": f"{c['employees']} employees"}
    if kind in ("person", "lead"):
        p = slot_person(app, seed, j) if kind == "person" else person(seed, 5_000_000 + j)
        v = {"First_Name": p["first"], "Last_Name": p["last"], "Email": p["email"], "Phone": p["phone"],
             "Mobile": p["mobile"], "Title": p["title"], "Mailing_City": p["city"], "Mailing_Country": p["country"],
             "Customer_Type": p["tier"]}
        if kind == "lead":
            v.update({"Company": company(seed, p["company_idx"])["name"], "Lead_Status": "Not Contacted"})
        elif refs.get("company"):
            v["Account_Name"] = {"id": _company_ref(refs, p["company_idx"])}
        return v
    if kind == "product":
        p = product(seed, pool_index(app, j))
        return {"Product_Name": p["name"], "Product_Code": p["code"], "Unit_Price": p["price"],
                "Product_Active": True, "Manufacturer": p["manufacturer"]}
    if kind == "deal":
        v = {"Deal_Name": f"{company(seed, j)['name'].split(' ')[0]} deal {j + 1}", "Amount": r.randint(5, 500) * 100,
             "Closing_Date": (timefmt.from_db("2026-01-01T00:00:00") + timedelta(days=r.randint(0, 360))).date()
             .isoformat()}
        if refs.get("company"):
            v["Account_Name"] = {"id": r.choice(refs["company"])}
        if refs.get("person"):
            v["Contact_Name"] = {"id": r.choice(refs["person"])}
        return v
    if kind in ("task", "event", "call"):
        v: dict[str, Any] = {}
        if refs.get("person"):
            v["Who_Id"] = {"id": r.choice(refs["person"])}
        start = timefmt.from_db("2026-01-05T09:00:00") + timedelta(days=r.randint(0, 300), hours=r.randint(0, 8))
        if kind == "task":
            v.update({"Subject": r.choice(SUBJECTS), "Due_Date": start.date().isoformat(),
                      "Status": "Not Started", "Priority": "High" if r.random() < 0.3 else "Low"})
        elif kind == "event":
            v.update({"Event_Title": r.choice(SUBJECTS), "Start_DateTime": timefmt.zoho(start),
                      "End_DateTime": timefmt.zoho(start + timedelta(minutes=30 * r.randint(1, 4))),
                      "Venue": r.choice(("Online", "Client office", "Our office"))})
        else:
            v.update({"Subject": r.choice(SUBJECTS), "Call_Type": r.choice(("Outbound", "Inbound")),
                      "Call_Start_Time": timefmt.zoho(start), "Call_Duration": f"{r.randint(2, 45)}:00"})
        return v
    if kind == "note":
        return {"Note_Title": "Note", "Note_Content": r.choice(NOTES)}
    return {}


def _desk_values(kind: str, j: int, seed: int, app: str, refs: dict[str, list[str]], r: random.Random,
                 departments: list[str]) -> dict[str, Any]:
    if kind == "company":
        c = company(seed, pool_index(app, j))
        return {"accountName": c["name"], "phone": c["phone"], "website": c["website"], "industry": c["industry"],
                "city": c["city"], "country": c["country"], "cf.cf_employees": c["employees"]}
    if kind == "person":
        p = slot_person(app, seed, j)
        v = {"firstName": p["first"], "lastName": p["last"], "email": p["email"], "phone": p["phone"],
             "mobile": p["mobile"], "title": p["title"], "city": p["city"], "country": p["country"],
             "cf.cf_customer_type": p["tier"]}
        if refs.get("company"):
            v["accountId"] = _company_ref(refs, p["company_idx"])
        return v
    if kind == "product":
        p = product(seed, pool_index(app, j))
        return {"productName": p["name"], "productCode": p["code"], "unitPrice": p["price"],
                "productCategory": p["category"], "manufacturer": p["manufacturer"],
                "departmentIds": departments[:1] if r.random() < 0.7 else list(departments)}
    if kind == "ticket":
        v = {"subject": r.choice(TICKETS), "departmentId": departments[0],
             "status": r.choice(("Open", "Open", "On Hold", "Escalated")), "priority": r.choice(("Low", "Medium", "High")),
             "channel": r.choice(("Email", "Phone", "Web"))}
        if refs.get("person"):
            v["contactId"] = r.choice(refs["person"])
        return v
    return {}


def _fix(module: ModuleCatalog, values: dict[str, Any], r: random.Random) -> dict[str, Any]:
    """Keep only catalog fields (plus Desk departmentIds), valid picklist values, mandatory fields set."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        f = module.field(k)
        if f is None:
            if k == "departmentIds":
                out[k] = v
            continue
        if f.read_only:
            continue
        if f.kind == "picklist" and f.picklist and v not in f.picklist:
            v = r.choice(f.picklist)
        if f.length and isinstance(v, str) and len(v) > f.length:
            v = v[:f.length]
        out[k] = v
    for f in module.fields:
        if f.mandatory and not f.read_only and validate.empty(out.get(f.api_name)):
            if f.kind == "picklist" and f.picklist:
                out[f.api_name] = f.picklist[0]
            elif f.kind == "datetime":
                out[f.api_name] = "2026-02-02T10:00:00+00:00"
            elif f.kind == "date":
                out[f.api_name] = "2026-06-30"
            elif f.kind in ("integer", "decimal"):
                out[f.api_name] = 1
            elif f.kind in ("text", "longtext"):
                out[f.api_name] = f"Demo {f.label}"
    return out


def _existing(ctx: Context, app: str, module: str) -> int:
    return ctx.store.count(app, module) + ctx.store.count(app, module, deleted=True)


_NO_FILL = object()


class _ModuleSeed:
    """What seeding needs of a module's catalog, worked out once per module instead of per record:
    ``fix`` is ``_fix`` with the field lookups done ahead, ``keys`` the unique-field index entries
    (the same as ``zoho.index_keys`` / ``desk.index_keys`` of the row)."""

    def __init__(self, app: str, module: ModuleCatalog) -> None:
        self.app = app
        self.module = module
        self.fields: dict[str, tuple[bool, tuple[str, ...], int | None] | None] = {}
        for f in module.fields:
            self.fields[f.api_name] = None if f.read_only else (
                f.kind == "picklist" and bool(f.picklist), f.picklist, f.length)
        self.mandatory: list[tuple[str, Any]] = []
        for f in module.fields:
            if f.mandatory and not f.read_only:
                kind = f.kind
                fill: Any = _NO_FILL
                if kind == "picklist" and f.picklist:
                    fill = f.picklist[0]
                elif kind == "datetime":
                    fill = "2026-02-02T10:00:00+00:00"
                elif kind == "date":
                    fill = "2026-06-30"
                elif kind in ("integer", "decimal"):
                    fill = 1
                elif kind in ("text", "longtext"):
                    fill = f"Demo {f.label}"
                self.mandatory.append((f.api_name, fill))
        # (field, is_phone) of the indexed fields, in index_keys' order
        if app == "zoho_desk":
            self.indexed = [(f.api_name, f.kind == "phone") for f in module.fields if f.kind in ("email", "phone")]
        else:
            from engine.sandbox.zoho import indexed_fields

            self.indexed = []
            for n in indexed_fields(module):
                f = module.field(n)
                self.indexed.append((n, f is not None and f.kind == "phone"))

    def fix(self, values: dict[str, Any], r: random.Random) -> dict[str, Any]:
        out: dict[str, Any] = {}
        fields = self.fields
        for k, v in values.items():
            if k not in fields:
                if k == "departmentIds":
                    out[k] = v
                continue
            spec = fields[k]
            if spec is None:
                continue
            pick, picklist, length = spec
            if pick and v not in picklist:
                v = r.choice(picklist)
            if length and isinstance(v, str) and len(v) > length:
                v = v[:length]
            out[k] = v
        for name, fill in self.mandatory:
            if fill is not _NO_FILL and validate.empty(out.get(name)):
                out[name] = fill
        return out

    def keys(self, rid: str, data: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
        out = []
        app, mod = self.app, self.module.api_name
        for name, phone in self.indexed:
            v = data.get(name)
            key = _DIGITS.sub("", str(v or "")) if phone else validate.norm(v)
            if key:
                out.append((app, mod, name, key, rid))
        return out


_DIGITS = re.compile(r"\D")
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode  # = json.dumps(data, separators=...), built once
CHUNK = 20_000          # records generated, then inserted with one executemany each
PARALLEL_MIN = 40_000   # from this many records of a module on, worker processes generate the chunks
WORKERS = 2


def _db_time(dt: Any) -> str:
    """``timefmt.to_db`` of an aware UTC datetime without sub-seconds (the seed's times), faster."""
    return dt.isoformat()[:19] if dt.tzinfo is timezone.utc and not dt.microsecond else timefmt.to_db(dt)


class _Generator:
    """The records of one module's seeding, chunk by chunk (picklable: worker processes get a copy)."""

    def __init__(self, app: str, kind: str, module: ModuleCatalog, seed: int, now: Any, users: list[str],
                 refs: dict[str, Any], departments: list[str]) -> None:
        self.app, self.kind, self.module, self.seed = app, kind, module, seed
        self.now, self.users, self.refs, self.departments = now, users, refs, departments

    def chunk(self, slots: range, ids: list[str], seq0: int) -> tuple[list[tuple], list[tuple]]:
        """Rows ``(app, module, id, seq, created, modified, data)`` and key-index rows of slots ``slots``
        (ids and sequence numbers given), each list in its index's order."""
        app, kind, seed, refs, now, users = self.app, self.kind, self.seed, self.refs, self.now, self.users
        name = self.module.api_name
        ms = _ModuleSeed(app, self.module)
        rows: list[tuple] = []
        keys: list[tuple] = []
        for i, j in enumerate(slots):
            r = _rng(seed, app, name, j)
            if app == "zoho_desk":
                values = _desk_values(kind, j, seed, app, refs, r, self.departments)
            else:
                values = _zoho_values(kind, name, j, seed, app, refs, r)
            values = ms.fix(values, r)
            created_at = now - timedelta(days=r.randint(0, 400), seconds=r.randint(0, 86399))
            modified_at = min(now, created_at + timedelta(days=r.choice((0, 0, 1, 3, 20, 90))))
            data = _stored(app, kind, values, r, refs, users)
            rid = ids[i]
            rows.append((app, name, rid, seq0 + i, _db_time(created_at), _db_time(modified_at),
                         _ENCODE(data)))
            keys += ms.keys(rid, data)
        # in index order: each chunk sweeps the (modified) and (field, value) indexes once
        rows.sort(key=lambda t: (t[5], t[2]))
        keys.sort()
        return rows, keys


_WORKER: _Generator | None = None


def _worker_init(gen: _Generator) -> None:
    global _WORKER
    _WORKER = gen


def _worker_chunk(task: tuple[range, list[str], int]) -> tuple[list[tuple], list[tuple]]:
    assert _WORKER is not None
    return _WORKER.chunk(*task)


def _chunks(gen: _Generator, tasks: list[tuple[range, list[str], int]]) -> Iterator[tuple[list[tuple], list[tuple]]]:
    """The generated chunks in order: in this process, or, for big seeds on a multi-core machine, from
    forked worker processes (generation is ~60 % of the work; this process inserts meanwhile)."""
    import multiprocessing

    n = sum(len(t[0]) for t in tasks)
    cpus = os.cpu_count() or 1
    done = 0
    if n >= PARALLEL_MIN and cpus > 1 and WORKERS > 0 and "fork" in multiprocessing.get_all_start_methods():
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        # fork: the workers inherit the generator (refs can be 1M ids) and import nothing; they only
        # compute and never touch the store, the server's threads or their locks
        try:
            with ProcessPoolExecutor(max_workers=min(WORKERS, cpus), mp_context=multiprocessing.get_context("fork"),
                                     initializer=_worker_init, initargs=(gen,)) as ex:
                pending = [ex.submit(_worker_chunk, t) for t in tasks[:2 * WORKERS]]
                nxt = len(pending)
                while pending:
                    chunk = pending.pop(0).result()
                    if nxt < len(tasks):  # a bounded window: generated chunks never pile up in memory
                        pending.append(ex.submit(_worker_chunk, tasks[nxt]))
                        nxt += 1
                    done += 1
                    yield chunk
        except (BrokenProcessPool, OSError):
            pass  # no worker processes here: generate the rest in this process
    for t in tasks[done:]:
        yield gen.chunk(*t)


def seed_app(ctx: Context, app: str, *, count: int, seed: int = 1, module: str | None = None) -> dict[str, int]:
    """Create ``count`` demo records per module of ``app`` (or of one ``module``); returns the counts.

    Records are generated in chunks (by worker processes for big seeds) and written with one
    ``executemany`` per chunk, their ids and sequence numbers taken in one go, inside one transaction:
    the same records, ids and index entries as creating them one by one, ~20x faster."""
    cat = ctx.catalog(app)
    mods = [(KINDS.get(name), m) for name, m in cat.modules.items() if module in (None, name)]
    mods = sorted([(k, m) for k, m in mods if k], key=lambda km: ORDER.index(km[0]))
    created: dict[str, int] = {}
    if app == "zoho_bookings":
        from engine.sandbox.bookings import seed_bookings

        return seed_bookings(ctx, count=count, seed=seed, module=module)
    refs: dict[str, list[str]] = {}
    # the existing people are only needed by modules that refer to them (seeding 1M contacts in
    # chunks must not read the ones before each time)
    need = {"company"} | ({"person"} if any(k not in ("company", "person", "lead", "product") for k, _ in mods) else set())
    for k in ("company", "person"):
        for name, m in cat.modules.items():
            if KINDS.get(name) == k and k in need:
                refs[k] = ctx.store.ids(app, name)
    departments: list[str] = []
    if app == "zoho_desk":
        from engine.sandbox.desk import ensure_departments

        departments = ensure_departments(ctx)
    now = ctx.now()
    users = [u.id for u in ctx.users(app)]
    pool: dict[int, str] = {}
    refs["company_pool"] = pool  # type: ignore[assignment]
    store = ctx.store
    with store.transaction(), store.big_cache():
        for kind, m in mods:
            start = _existing(ctx, app, m.api_name)  # seeding again continues the slots: no duplicates
            skip = kind == "note" and not (refs.get("person") or refs.get("company"))
            total = 0 if skip else count
            ids = store.new_ids(app, total)
            seq0 = store.next_seqs(total)
            gen = _Generator(app, kind, m, seed, now, users, refs, departments)
            tasks = [(range(start + c0, start + min(total, c0 + CHUNK)), ids[c0:c0 + CHUNK], seq0 + c0)
                     for c0 in range(0, total, CHUNK)]
            for rows, keys in _chunks(gen, tasks):
                store.insert_many(rows)
                store.add_keys(keys)
            if kind == "company":
                pool.update({pool_index(app, start + j): rid for j, rid in enumerate(ids)})
            new = set(ids)
            refs[kind] = ids + [x for x in refs.get(kind, []) if x not in new]
            created[m.api_name] = len(ids)
            ctx.stats.wrote(app, m.api_name, "seed", len(ids))
    return created


def _stored(app: str, kind: str, values: dict[str, Any], r: random.Random, refs: dict[str, list[str]],
            users: list[str]) -> dict[str, Any]:
    """The values as the emulator stores them (lookups ``{"id"}`` for CRM/Bigin, ids for Desk;
    datetimes as UTC ``YYYY-MM-DDTHH:MM:SS``)."""
    data: dict[str, Any] = {}
    for k, v in values.items():
        if isinstance(v, str) and k in ("Start_DateTime", "End_DateTime", "Call_Start_Time"):
            dt = timefmt.parse_iso(v)
            v = timefmt.to_db(dt) if dt else v
        data[k] = v
    owner = users[0] if r.random() < 0.7 else users[-1]
    if app == "zoho_desk":
        data["ownerId"] = owner
        return data
    data["Owner"] = owner
    data["_created_by"] = data["_modified_by"] = users[0]
    if kind == "note":
        parents = ("Contacts" if refs.get("person") else "Accounts", refs.get("person") or refs.get("company"))
        data["Parent_Id"] = {"module": parents[0], "id": r.choice(parents[1])}
    if kind in ("task", "event", "call") and refs.get("company") and r.random() < 0.5:
        data["What_Id"] = {"id": r.choice(refs["company"]), "module": "Accounts"}
    return data
