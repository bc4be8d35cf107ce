"""What the SQLite and PostgreSQL stores share: value encoding (merge bases, journal payloads, timestamps).

Encoding is on the hot path of a sync (every link written carries both merge bases as JSON, every write
batch is journalled before it is sent), so it avoids per-call set-up:

- ``encode_json`` is ``json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)`` to the
  letter (the same C encoder ``json.dumps`` uses, built once instead of per call): the stored text of a
  merge base is canonical, byte for byte what earlier versions wrote.
- ``encode_bases`` encodes a link's two merge bases, once when both hold the same plain values (a
  one-way copy, a field mapped to the same name): the second text is the first.
- ``encode_payload`` is the journal's encoding: the same, without sorting keys (a payload is read back
  as a whole, never compared as text).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

try:
    from json.encoder import c_make_encoder as _c_make_encoder, encode_basestring_ascii as _ascii
except ImportError:  # pragma: no cover - CPython always has _json
    _c_make_encoder = None


def _encoder(sort_keys: bool) -> Any:
    if _c_make_encoder is not None:
        # the arguments json.JSONEncoder.iterencode passes for json.dumps(..., sort_keys, separators=(",", ":"),
        # default=str) without the circular-reference check (state values are trees of JSON values)
        make = _c_make_encoder(None, str, _ascii, None, ":", ",", sort_keys, False, True)
        join = "".join

        def encode(value: Any) -> str:
            return join(make(value, 0))

        return encode
    return json.JSONEncoder(sort_keys=sort_keys, separators=(",", ":"), default=str).encode  # pragma: no cover


encode_json = _encoder(True)
encode_payload = _encoder(False)


def plain_dict(value: Mapping[str, Any]) -> dict[str, Any]:
    """``value`` itself when it is a dict (no copy), else a dict of it: what the C encoder needs."""
    return value if type(value) is dict else dict(value)  # type: ignore[return-value]


def encode_bases(left: Mapping[str, Any], right: Mapping[str, Any]) -> tuple[str, str]:
    """The stored JSON texts of a link's two merge bases (``encode_json`` of each)."""
    lv = plain_dict(left)
    text = encode_json(lv)
    if right is left:
        return text, text
    rv = plain_dict(right)
    if rv == lv:
        # equal dicts encode alike when every value is a string or None (1 == 1.0 == True do not)
        for v in lv.values():
            if v is not None and v.__class__ is not str:
                return text, encode_json(rv)
        return text, text
    return text, encode_json(rv)


def encode_journal(payload: Any) -> str:
    """The stored JSON text of a journal entry's payload (a sequence of per-record mappings)."""
    return encode_payload([p if type(p) is dict else dict(p) for p in payload])


def utc(dt: datetime) -> datetime:
    """``dt`` in UTC (a naive one is taken as UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def iso(dt: datetime) -> str:
    """The stored text of a timestamp (SQLite): UTC, microseconds, ``+00:00``."""
    return utc(dt).isoformat(timespec="microseconds")
