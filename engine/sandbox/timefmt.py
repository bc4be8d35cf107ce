"""The apps' datetime formats. Storage keeps UTC ``YYYY-MM-DDTHH:MM:SS`` (sortable text)."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

UTC = timezone.utc
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def to_db(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


_DB = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


def from_db(s: str) -> datetime:
    if _DB.fullmatch(s):  # what to_db writes: fromisoformat reads it as strptime would, much faster
        return datetime.fromisoformat(s).replace(tzinfo=UTC)
    try:
        return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:  # tolerate an ISO value stored by an older sandbox
        dt = parse_iso(s)
        if dt is None:
            raise
        return dt


def zoho(s: str | datetime) -> str:
    """CRM/Bigin: ``2023-05-10T01:10:47+00:00`` (ISO with offset, no millis)."""
    if isinstance(s, str) and _DB.fullmatch(s):  # stored UTC text: the answer is the text and the offset
        return s + "+00:00"
    dt = from_db(s) if isinstance(s, str) else s
    return dt.astimezone(UTC).replace(microsecond=0).isoformat()


def desk(s: str | datetime) -> str:
    """Desk: ``2017-10-12T13:11:50.000Z``."""
    if isinstance(s, str) and _DB.fullmatch(s):
        return s + ".000Z"
    dt = from_db(s) if isinstance(s, str) else s
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + ".000Z"


def bookings(s: str | datetime, tz: timezone = UTC) -> str:
    """Bookings: ``30-Apr-2019 22:00:00``."""
    dt = (from_db(s) if isinstance(s, str) else s).astimezone(tz)
    return f"{dt.day:02d}-{_MONTHS[dt.month - 1]}-{dt.year} {dt:%H:%M:%S}"


_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})$")


def parse_iso(s: str) -> datetime | None:
    """An ISO datetime with an offset (or Z), as CRM, Bigin and Desk take them; None when invalid."""
    if not isinstance(s, str) or not _ISO.match(s.strip()):
        return None
    try:
        dt = datetime.fromisoformat(s.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt.astimezone(UTC)


def parse_http_date(s: str) -> datetime | None:
    """``If-Modified-Since``: ISO with offset (what Zoho documents) or an RFC 1123 HTTP date."""
    dt = parse_iso(s)
    if dt is not None:
        return dt
    from email.utils import parsedate_to_datetime

    try:
        dt = parsedate_to_datetime(s)
    except (TypeError, ValueError, IndexError):
        return None
    return dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)


def parse_date(s: str) -> date | None:
    if not isinstance(s, str) or not re.match(r"^\d{4}-\d{2}-\d{2}$", s):
        return None
    try:
        return date.fromisoformat(s)
    except ValueError:
        return None


def parse_bookings_date(s: str) -> date | None:
    """``30-Apr-2019``."""
    m = re.match(r"^(\d{1,2})-([A-Za-z]{3})-(\d{4})$", s.strip()) if isinstance(s, str) else None
    if not m or m.group(2).title() not in _MONTHS:
        return None
    try:
        return date(int(m.group(3)), _MONTHS.index(m.group(2).title()) + 1, int(m.group(1)))
    except ValueError:
        return None


def parse_bookings(s: str, tz: timezone = UTC) -> datetime | None:
    """``30-Apr-2019 22:00:00`` (seconds optional) in ``tz``."""
    m = re.match(r"^(\d{1,2}-[A-Za-z]{3}-\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?$", s.strip()) \
        if isinstance(s, str) else None
    if not m:
        return None
    d = parse_bookings_date(m.group(1))
    if d is None or int(m.group(2)) > 23 or int(m.group(3)) > 59:
        return None
    return datetime(d.year, d.month, d.day, int(m.group(2)), int(m.group(3)), int(m.group(4) or 0),
                    tzinfo=tz).astimezone(UTC)


def plus(dt: datetime, **kw: float) -> datetime:
    return dt + timedelta(**kw)
