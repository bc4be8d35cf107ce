"""What every app emulator of the sandbox shares: the store, the clock, users, stats, faults, catalogs."""

from __future__ import annotations

import functools
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from engine.catalog import AppCatalog, ModuleCatalog
from engine.sandbox import timefmt
from engine.sandbox.store import ID_BASE, Row, Store


def real_clock() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


@dataclass(frozen=True, slots=True)
class User:
    id: str
    first_name: str
    last_name: str
    email: str
    role: str

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"


@functools.cache
def users_of(app: str) -> tuple[User, ...]:
    base = ID_BASE[app]
    return (User(str(base + 1), "Sandbox", "Admin", "admin@example.com", "CEO"),
            User(str(base + 2), "Sam", "Agent", "sam.agent@example.com", "Manager"))


class Stats:
    """API calls (that reached the app) and records written, per app, module and operation; plus the
    calls answered by an injected fault. Never holds request headers or tokens."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: Counter[tuple[str, str, str]] = Counter()
        self.written: Counter[tuple[str, str, str]] = Counter()
        self.faults: Counter[str] = Counter()
        self.connections = 0  # TCP connections accepted by the served sandbox (0 in-process)

    def connected(self) -> None:
        with self.lock:
            self.connections += 1

    def call(self, app: str, module: str, op: str) -> None:
        with self.lock:
            self.calls[(app, module, op)] += 1

    def wrote(self, app: str, module: str, op: str, n: int) -> None:
        if n:
            with self.lock:
                self.written[(app, module, op)] += n

    def fault(self, kind: str) -> None:
        with self.lock:
            self.faults[kind] += 1

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.written.clear()
            self.faults.clear()
            self.connections = 0

    def snapshot(self) -> dict[str, Any]:
        def nest(c: Counter[tuple[str, str, str]]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for (app, mod, op), n in sorted(c.items()):
                out.setdefault(app, {}).setdefault(mod, {})[op] = n
            return out

        with self.lock:
            return {"calls": nest(self.calls), "records_written": nest(self.written),
                    "faults": dict(sorted(self.faults.items())),
                    "total_calls": sum(self.calls.values()),
                    "total_records_written": sum(self.written.values()),
                    "connections": self.connections}


@dataclass(slots=True)
class Rejection:
    app: str | None
    module: str | None
    field: str | None
    value: Any = None
    every_nth: int | None = None
    code: str = "INVALID_DATA"
    message: str = "rejected by the sandbox's fault injection"
    seen: int = 0


@dataclass(slots=True)
class Faults:
    latency_ms: int = 0
    rate_429: float = 0.0
    rate_5xx: float = 0.0
    timeout_rate: float = 0.0
    timeout_ms: int = 2000
    max_concurrency: int | None = None
    rejections: list[Rejection] = field(default_factory=list)
    seed: int | None = None
    rng: random.Random = field(default_factory=random.Random)

    def as_dict(self) -> dict[str, Any]:
        return {"latency_ms": self.latency_ms, "rate_429": self.rate_429, "rate_5xx": self.rate_5xx,
                "timeout_rate": self.timeout_rate, "timeout_ms": self.timeout_ms,
                "max_concurrency": self.max_concurrency, "seed": self.seed,
                "reject": [{"app": r.app, "module": r.module, "field": r.field, "value": r.value,
                            "every_nth": r.every_nth, "code": r.code} for r in self.rejections]}


class Context:
    """Shared by the emulators of one SandboxApp."""

    def __init__(self, db_path: str, clock: Callable[[], datetime] | None,
                 catalog_overrides: dict[str, AppCatalog] | None) -> None:
        self.store = Store(db_path)
        self._clock = clock or real_clock
        self.stats = Stats()
        self.faults = Faults()
        self.faults_lock = threading.Lock()
        self.catalog_overrides = dict(catalog_overrides or {})

    # time ---------------------------------------------------------------------------------------
    def now(self) -> datetime:
        dt = self._clock()
        if dt.tzinfo is None:
            raise ValueError("the sandbox clock must return an aware datetime")
        return dt.astimezone(timezone.utc).replace(microsecond=0)

    def now_db(self) -> str:
        return timefmt.to_db(self.now())

    # catalogs -----------------------------------------------------------------------------------
    def catalog(self, app: str) -> AppCatalog:
        from engine.catalog import catalog

        return self.catalog_overrides.get(app) or catalog(app)

    def module(self, app: str, name: str) -> ModuleCatalog | None:
        return self.catalog(app).module(name)

    # users --------------------------------------------------------------------------------------
    def users(self, app: str) -> tuple[User, ...]:
        return users_of(app)

    def user(self, app: str, uid: str | None) -> User:
        for u in users_of(app):
            if u.id == uid:
                return u
        return users_of(app)[0]

    # faults -------------------------------------------------------------------------------------
    def rejection(self, app: str, module: str, values: dict[str, Any]) -> Rejection | None:
        with self.faults_lock:
            for r in self.faults.rejections:
                if (r.app and r.app != app) or (r.module and r.module != module):
                    continue
                if r.every_nth:
                    r.seen += 1
                    if r.seen % r.every_nth == 0:
                        return r
                elif r.field is not None and r.field in values:
                    v = values.get(r.field)
                    if v == r.value or (isinstance(v, str) and isinstance(r.value, str)
                                        and v.strip().casefold() == r.value.strip().casefold()):
                        return r
        return None

    def roll(self) -> tuple[float, float, float]:
        with self.faults_lock:
            rng = self.faults.rng
            return rng.random(), rng.random(), rng.random()

    # rows ---------------------------------------------------------------------------------------
    def display_name(self, row: Row | None) -> str | None:
        if row is None:
            return None
        return display_name(row.module, row.data)


_NAME_FIELDS = {
    "Contacts": ("First_Name", "Last_Name"), "Leads": ("First_Name", "Last_Name"),
    "contacts": ("firstName", "lastName"), "customers": ("name",),
    "Accounts": ("Account_Name",), "accounts": ("accountName",), "Deals": ("Deal_Name",),
    "Pipelines": ("Deal_Name",), "Products": ("Product_Name",), "products": ("productName",),
    "Tasks": ("Subject",), "Calls": ("Subject",), "Events": ("Event_Title",), "Notes": ("Note_Title",),
    "tickets": ("subject",), "Vendors": ("Vendor_Name",), "Campaigns": ("Campaign_Name",),
    "Cases": ("Subject",), "Price_Books": ("Price_Book_Name",), "Quotes": ("Subject",),
    "Sales_Orders": ("Subject",), "Purchase_Orders": ("Subject",), "Invoices": ("Subject",),
}


def display_name(module: str, data: dict[str, Any]) -> str | None:
    names = _NAME_FIELDS.get(module)
    if names is None:
        for k in ("Name", "name", f"{module.rstrip('s')}_Name", "Subject", "subject"):
            if data.get(k):
                return str(data[k])
        return None
    parts = [str(data[n]).strip() for n in names if data.get(n) not in (None, "")]
    return " ".join(parts) or None
