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
- ``decode_json`` / ``decode_bases`` read them back with the C scanner directly (``json.loads`` checks
  for white space around the value first), and decode a link's second base once when both texts are
  the same flat object.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from json.scanner import make_scanner
from typing import Any

try:
    from json.encoder import c_make_encoder as _c_make_encoder, encode_basestring_ascii as _ascii
except ImportError:  # pragma: no cover - CPython always has _json
    _c_make_encoder = None

_scan = make_scanner(json.JSONDecoder())


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


def decode_json(text: str) -> Any:
    """``json.loads(text)`` for the texts the stores write (no white space around the value)."""
    try:
        value, end = _scan(text, 0)
    except (StopIteration, ValueError):
        return json.loads(text)  # white space first, or not JSON: json.loads says what is wrong
    if end != len(text):
        return json.loads(text)
    return value


def decode_bases(left: str, right: str) -> tuple[Any, Any]:
    """A link's two merge bases from their stored texts."""
    lv = decode_json(left)
    if right == left and left.count("{") == 1 and "[" not in left and type(lv) is dict:
        return lv, dict(lv)  # a flat object: a copy is the second decoding
    return lv, decode_json(right)


def utc(dt: datetime) -> datetime:
    """``dt`` in UTC (a naive one is taken as UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def iso(dt: datetime) -> str:
    """The stored text of a timestamp (SQLite): UTC, microseconds, ``+00:00``."""
    return utc(dt).isoformat(timespec="microseconds")
