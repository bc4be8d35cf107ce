"""What every app client shares: the HTTP layer, stats, time parsing, per-batch failure results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from engine.apps.base import Record, WriteResult
from engine.apps.http import HttpLayer
from engine.errors import AppError, ProtocolError

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class ClientBase:
    app: str = ""

    def __init__(self, http: HttpLayer):
        self.http = http
        self.connection = http.connection

    def __repr__(self) -> str:
        return f"{type(self).__name__}(app={self.app!r}, connection={self.connection!r})"

    def stats(self) -> dict[tuple[str, str], int]:
        """API calls made, per (module, operation): one per page read or batch written."""
        return self.http.stats()

    def retry_stats(self) -> dict[tuple[str, str], int]:
        """Retried attempts per (module, operation) (429, 5xx, timeouts)."""
        return self.http.retry_stats()

    def close(self) -> None:
        self.http.close()

    def __enter__(self):  # noqa: ANN204
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- shared helpers ----------------------------------------------------------------------------

    def protocol(self, module: str, op: str, what: str) -> ProtocolError:
        return ProtocolError(self.http.redact(f"{self.http.where(module, op)}: {what}"), app=self.app,
                             code="UNEXPECTED_ENVELOPE")


def batch_failed(exc: AppError, size: int) -> list[WriteResult]:
    """One failed ``WriteResult`` per record of a batch whose request failed as a whole."""
    return [WriteResult(ok=False, code=exc.code or type(exc).__name__, message=str(exc),
                        transient=exc.transient, details={**exc.details, "request_level": True})
            for _ in range(size)]


_UTC = timezone.utc
_fromisoformat = datetime.fromisoformat


def fast_maker(cls: type) -> Any:
    """A constructor of the frozen slotted dataclass ``cls`` taking all its fields positionally, ~3×
    faster than its ``__init__`` (which sets each slot through ``object.__setattr__`` by name, the
    price of ``frozen``). It builds an instance of a plain twin class with the very same slots, set by
    ordinary (specialised) attribute stores, then assigns ``__class__ = cls``: Python allows that
    between classes of identical layout (the data model's rule for ``__class__`` assignment), and
    from then on the object is a ``cls`` in every way (type, equality, hash, repr, frozen). Refused for
    a class whose ``__init__`` does more than set its fields, or whose slots are not its fields."""
    import dataclasses

    fields = dataclasses.fields(cls)
    names = tuple(f.name for f in fields)
    if hasattr(cls, "__post_init__") or any(not f.init for f in fields) or tuple(getattr(cls, "__slots__", ())) != names:
        raise TypeError(f"{cls.__name__}: not a plain slotted dataclass")
    body = "".join(f"        self.{n} = {n}\n" for n in names)
    src = (f"class make_{cls.__name__}:\n    __slots__ = _names\n\n    def __init__(self, {', '.join(names)}):\n"
           f"{body}        self.__class__ = _cls\n")
    ns: dict[str, Any] = {"_names": names, "_cls": cls}
    exec(src, ns)  # noqa: S102 - source built above from the dataclass's own field names
    return ns[f"make_{cls.__name__}"]


# Record(id, values, modified, created): one per record read (the clients' per-record paths)
make_record = fast_maker(Record)
# WriteResult(ok, id, code, message, field, transient, modified, details): one per record written
make_result = fast_maker(WriteResult)


_PARSED: dict[str, datetime] = {}  # recent answers: a batch's results, and records written together, share times
_PARSED_MAX = 4096


def parse_time(value: Any) -> datetime | None:
    """ISO 8601 (Zoho ``2023-05-10T01:10:47-07:00``, Desk ``...000Z``) as an aware UTC datetime."""
    if value.__class__ is str:  # the fast path: the apps' own fixed formats parse as they are
        dt = _PARSED.get(value)
        if dt is not None:
            return dt
        try:
            dt = _fromisoformat(value)
        except ValueError:
            pass
        else:
            tz = dt.tzinfo
            if tz is not _UTC:
                dt = dt.replace(tzinfo=_UTC) if tz is None else dt.astimezone(_UTC)
            if len(_PARSED) >= _PARSED_MAX:
                _PARSED.clear()
            _PARSED[value] = dt
            return dt
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        dt = _fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_UTC)
    return dt.astimezone(_UTC)


def zoho_time(dt: datetime) -> str:
    """``2019-07-25T15:26:49+00:00`` (no millis), the format of ``If-Modified-Since`` and criteria."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).replace(microsecond=0).isoformat()


def desk_time(dt: datetime) -> str:
    """``2017-10-12T13:11:50.000Z``, Desk's format."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def as_utc(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def dedupe_ids(ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(str(i) for i in ids))
