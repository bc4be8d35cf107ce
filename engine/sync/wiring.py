"""Deployed integrations as the sync engine sees them, for the CLI and apply."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any

from engine.errors import UsageError, did_you_mean
from engine.spec.model import Integration
from engine.state.base import StateStore


def deployed_integrations(store: StateStore, name: str | None = None) -> list[Integration]:
    """The deployed integrations (all, or the one called ``name``), rebuilt from the state store."""
    from engine.spec.serialize import integration_from_dict

    deployed = store.list_deployed()
    if name is not None:
        names = [d.name for d in deployed]
        deployed = [d for d in deployed if d.name == name]
        if not deployed:
            raise UsageError(f'no deployed integration "{name}"{did_you_mean(name, names)} '
                             f"(deploy it with: syncform apply)")
    out = []
    for d in deployed:
        spec = d.spec.get("integration", d.spec)
        integ = integration_from_dict(spec)
        if d.paused and not integ.paused:
            from dataclasses import replace

            integ = replace(integ, paused=True)
        out.append(integ)
    return out


def free_slots(integration: Integration, *, left: Any, right: Any, service: str, staff: str, day: date,
               users: Callable[[], list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """Bookings' free slots of ``staff`` for ``service`` on ``day``, minus the busy times of that staff's
    Bigin events when the appointments module has ``calendar.check_conflicts`` (seed 000 §5.2).

    Returns ``{"slots": [...], "blocked": [...], "duration_minutes": n}`` (times as ``HH:mm``)."""
    sides = {integration.left.app: ("left", left), integration.right.app: ("right", right)}
    if "zoho_bookings" not in sides or "bigin" not in sides:
        raise UsageError(f"slots: integration {integration.name} is not between zoho_bookings and bigin")
    bside, bookings = sides["zoho_bookings"]
    _, bigin = sides["bigin"]
    answer = _bookings_slots(bookings, service, staff, day)
    slots: list[str] = list(answer["slots"])
    duration = int(answer["duration_minutes"])
    mod = next((m for m in integration.modules if getattr(m, bside) == "appointments"), None)
    check = mod is not None and (mod.calendar is None or mod.calendar.check_conflicts)
    if not check:
        return {"slots": slots, "blocked": [], "duration_minutes": duration}
    staff_email = answer.get("staff_email")
    owner_ids: set[str] = set()
    for u in bigin.users():
        if staff_email and str(u.get("email", "")).lower() == str(staff_email).lower() or \
                str(u.get("name", "")).lower() == staff.lower() or str(u.get("email", "")).lower() == staff.lower():
            owner_ids.add(str(u["id"]))
    if not owner_ids:  # the staff is not a Bigin user: nothing of theirs to collide with
        return {"slots": slots, "blocked": [], "duration_minutes": duration}
    from engine.sync.mapping import parse_datetime

    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    busy: list[tuple[datetime, datetime]] = []
    for page in bigin.list_changed("Events", None, fields=("Start_DateTime", "End_DateTime", "Owner")):
        for ev in page:
            owner = ev.values.get("Owner")
            oid = str(owner.get("id")) if isinstance(owner, dict) else str(owner or "")
            if oid not in owner_ids:  # only the staff's own Bigin events block (seed 000 §5.5)
                continue
            s, e = ev.values.get("Start_DateTime"), ev.values.get("End_DateTime")
            if not s or not e:
                continue
            s, e = parse_datetime(s), parse_datetime(e)
            if e > start and s < start + timedelta(days=1):
                busy.append((s, e))
    free, blocked = [], []
    for hhmm in slots:
        h, m = (int(x) for x in str(hhmm).split(":")[:2])
        s = start + timedelta(hours=h, minutes=m)
        e = s + timedelta(minutes=duration)
        (blocked if any(bs < e and be > s for bs, be in busy) else free).append(hhmm)
    return {"slots": free, "blocked": blocked, "duration_minutes": duration}


def _bookings_slots(client: Any, service: str, staff: str, day: date) -> dict[str, Any]:
    """Bookings' free slots of one staff member for one service and day, by name, e-mail or id."""
    if not hasattr(client, "available_slots"):
        raise UsageError("slots: the left app of this integration is not Zoho Bookings")
    services = client.services()
    svc = next((x for x in services if service in (str(x.get("id")), x.get("name"))), None)
    if svc is None:
        raise UsageError(f'slots: no Bookings service "{service}"'
                         f"{did_you_mean(service, [str(x.get('name')) for x in services])}")
    staffs = client.staffs(svc["id"])
    st = next((x for x in staffs if staff.lower() in (str(x.get("id")).lower(), str(x.get("name", "")).lower(),
                                                      str(x.get("email", "")).lower())), None)
    if st is None:
        raise UsageError(f'slots: no staff "{staff}" for service {svc.get("name")}'
                         f"{did_you_mean(staff, [str(x.get('name')) for x in staffs])}")
    minutes = int(str(svc.get("duration") or "30").split()[0])
    return {"slots": client.available_slots(svc["id"], st["id"], day), "duration_minutes": minutes,
            "staff_email": st.get("email")}
