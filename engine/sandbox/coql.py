"""The COQL subset the sandbox answers (``POST /bigin/v2/coql``, ``POST /crm/v{n}/coql``).

``select f1, f2 from Module [where …] [order by f [asc|desc], …] [limit n [offset m] | limit m, n]``;
``select COUNT(id) from Module [where …]``. WHERE: ``and`` / ``or`` with parentheses over ``=``, ``!=``,
``>``, ``>=``, ``<``, ``<=``, ``is null``, ``is not null``, ``between a and b``, ``[not] in (…)``.

Limits as the vendors document them: at most 50 fields in the select column; LIMIT ≤ 200 (Bigin, CRM
≤ v6) or ≤ 2,000 (CRM v7+); OFFSET + LIMIT ≤ 10,000 (Bigin, CRM ≤ v6) or ≤ 100,000 (CRM v7+). Errors in
the vendors' envelope: ``SYNTAX_ERROR``, ``INVALID_QUERY``, ``LIMIT_EXCEEDED`` (HTTP 400). Lookups and
owners are answered as ``{"id": …}`` only; multi-select lookups, subforms and file/image uploads
cannot be selected.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.sandbox import timefmt

UNSELECTABLE = frozenset({"multiselectlookup", "subform", "fileupload", "imageupload", "ALARM", "RRULE"})
_KEYWORDS = frozenset({"select", "from", "where", "and", "or", "order", "by", "limit", "offset", "is", "not",
                       "null", "in", "between", "asc", "desc"})
SYSTEM = {"id": "id", "Modified_Time": "modified", "Created_Time": "created"}

_TOKEN = re.compile(r"""\s*(?:
    (?P<str>'(?:[^'\\]|\\.)*') |
    (?P<num>-?\d+(?:\.\d+)?)(?![\w.]) |
    (?P<op>!=|>=|<=|=|>|<|\(|\)|,) |
    (?P<name>[A-Za-z_$!][\w.$]*(?:\([\w.]*\))?)
)""", re.X)


class CoqlError(Exception):
    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.message, self.details = code, message, details or {}


@dataclass(frozen=True, slots=True)
class Query:
    module: str
    columns: tuple[str, ...]
    count: bool                      # select COUNT(id)
    where: str                       # SQL over the records table ('' for none)
    params: tuple[Any, ...]
    order: str                       # SQL ORDER BY
    limit: int
    offset: int


def tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip().rstrip(";")
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise CoqlError("SYNTAX_ERROR", f"error at or near {text[pos:pos + 20]!r}",
                            {"near": text[pos:pos + 20], "position": pos})
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str, fields_of: Callable[[str], dict[str, str] | None], *, max_limit: int,
                 max_rows: int):
        self.toks = tokens(text)
        self.i = 0
        module = next((self.toks[k + 1][1] for k, t in enumerate(self.toks[:-1])
                       if t[0] == "name" and t[1].lower() == "from"), None)
        if module is None:
            raise CoqlError("SYNTAX_ERROR", "the query has no FROM clause", {"near": "end of query"})
        fields = fields_of(module)
        if fields is None:
            raise CoqlError("INVALID_QUERY", f"invalid module given: {module}", {"module": module})
        self.fields = fields  # api name -> catalog type
        self.max_limit, self.max_rows = max_limit, max_rows
        self.params: list[Any] = []
        self.criteria = 0

    # -- token helpers --------------------------------------------------------------------------
    def peek(self, k: int = 0) -> tuple[str, str] | None:
        return self.toks[self.i + k] if self.i + k < len(self.toks) else None

    def kw(self, word: str) -> bool:
        t = self.peek()
        if t is not None and t[0] == "name" and t[1].lower() == word:
            self.i += 1
            return True
        return False

    def expect_kw(self, word: str) -> None:
        if not self.kw(word):
            raise self.syntax(f"expected {word.upper()}")

    def op(self, sym: str) -> bool:
        t = self.peek()
        if t is not None and t[0] == "op" and t[1] == sym:
            self.i += 1
            return True
        return False

    def syntax(self, what: str) -> CoqlError:
        t = self.peek()
        near = t[1] if t else "end of query"
        return CoqlError("SYNTAX_ERROR", f"{what} at or near {near!r}", {"near": near})

    def name(self) -> str:
        t = self.peek()
        if t is None or t[0] != "name":
            raise self.syntax("expected a field name")
        if t[1].lower() in _KEYWORDS:
            raise self.syntax("expected a field name")
        self.i += 1
        return t[1].strip("'")

    # -- grammar --------------------------------------------------------------------------------
    def query(self) -> Query:
        self.expect_kw("select")
        cols: list[str] = []
        count = False
        while True:
            n = self.name()
            if n.lower().startswith("count("):
                count = True
                inner = n[6:-1] or "id"
                if inner != "id":
                    self.column(inner)
            else:
                cols.append(self.column(n, join=True))
            if not self.op(","):
                break
        if count and cols:
            raise CoqlError("INVALID_QUERY", "an aggregate query cannot select other fields without GROUP BY",
                            {"reason": "group by is missing"})
        if len(cols) > 50:
            raise CoqlError("LIMIT_EXCEEDED", "select column accepts at most 50 fields", {"limit": 50})
        self.expect_kw("from")
        module = self.name()
        where = ""
        if self.kw("where"):
            where = self.expr()
        order = "id ASC"
        if self.kw("order"):
            self.expect_kw("by")
            parts = []
            while True:
                col = self.sql_col(self.column(self.name()))
                direction = "DESC" if self.kw("desc") else ("ASC" if self.kw("asc") or True else "")
                parts.append(f"{col} {direction}")
                if not self.op(","):
                    break
            if not any(p.startswith("id ") for p in parts):
                parts.append("id ASC")
            order = ", ".join(parts)
        limit, offset = 200, 0
        if self.kw("limit"):
            a = self.int()
            if self.op(","):
                offset, limit = a, self.int()
            else:
                limit = a
                if self.kw("offset"):
                    offset = self.int()
        elif self.kw("offset"):
            offset = self.int()
        if self.peek() is not None:
            raise self.syntax("unexpected text")
        if limit < 1 or limit > self.max_limit:
            raise CoqlError("LIMIT_EXCEEDED", f"LIMIT must be between 1 and {self.max_limit}",
                            {"limit": self.max_limit, "param_name": "limit"})
        if offset < 0 or offset + limit > self.max_rows:
            raise CoqlError("LIMIT_EXCEEDED", f"OFFSET + LIMIT may reach at most {self.max_rows} records; "
                            "use a where clause on id to read further", {"limit": self.max_rows,
                                                                       "param_name": "offset"})
        return Query(module, tuple(cols), count, where, tuple(self.params), order, limit, offset)

    def int(self) -> int:
        t = self.peek()
        if t is None or t[0] != "num" or "." in t[1]:
            raise self.syntax("expected a whole number")
        self.i += 1
        return int(t[1])

    def column(self, n: str, *, join: bool = False) -> str:
        if n in SYSTEM or n == "Full_Name":
            return n
        if "." in n:  # Lookup.Field: a field of the looked-up record (the select column only, here)
            head = n.split(".", 1)[0]
            if not join:
                raise CoqlError("INVALID_QUERY", f"the sandbox answers {n} in the select column only",
                                {"column_name": n})
            if self.fields.get(head) not in ("lookup", "ownerlookup"):
                raise CoqlError("INVALID_QUERY", f"invalid column given: {n} ({head} is not a lookup)",
                                {"column_name": n})
            return n
        kind = self.fields.get(n)
        if kind is None:
            raise CoqlError("INVALID_QUERY", f"invalid column given: {n}", {"column_name": n})
        if kind in UNSELECTABLE:
            raise CoqlError("INVALID_QUERY", f"the field {n} ({kind}) is not supported in COQL",
                            {"column_name": n, "data_type": kind})
        return n

    @staticmethod
    def sql_col(n: str) -> str:
        if n in SYSTEM:
            return SYSTEM[n]
        return f"json_extract(data, '$.\"{n}\"')"

    def expr(self) -> str:
        parts = [self.conj()]
        while self.kw("or"):
            parts.append(self.conj())
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def conj(self) -> str:
        parts = [self.term()]
        while self.kw("and"):
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def term(self) -> str:
        if self.op("("):
            inner = self.expr()
            if not self.op(")"):
                raise self.syntax("expected )")
            return f"({inner})"
        self.criteria += 1
        if self.criteria > 25:
            raise CoqlError("LIMIT_EXCEEDED", "the where clause accepts at most 25 criteria", {"limit": 25})
        field = self.column(self.name())
        col = self.sql_col(field)
        if self.kw("is"):
            neg = self.kw("not")
            self.expect_kw("null")
            return f"{col} IS {'NOT ' if neg else ''}NULL"
        neg = self.kw("not")
        if self.kw("between"):
            a = self.value(field)
            self.expect_kw("and")
            b = self.value(field)
            self.params.extend((a, b))
            return f"{'NOT ' if neg else ''}{col} BETWEEN ? AND ?"
        if self.kw("in"):
            if not self.op("("):
                raise self.syntax("expected (")
            vals = [self.value(field)]
            while self.op(","):
                vals.append(self.value(field))
            if not self.op(")"):
                raise self.syntax("expected )")
            if len(vals) > 50:
                raise CoqlError("LIMIT_EXCEEDED", "in accepts at most 50 values", {"limit": 50})
            self.params.extend(vals)
            return f"{col} {'NOT ' if neg else ''}IN ({','.join('?' * len(vals))})"
        if neg:
            raise self.syntax("expected between or in after not")
        t = self.peek()
        if t is None or t[0] != "op" or t[1] not in ("=", "!=", ">", ">=", "<", "<="):
            raise self.syntax("expected a comparator")
        self.i += 1
        v = self.value(field)
        self.params.append(v)
        return f"{col} {t[1]} ?"

    def value(self, field: str) -> Any:
        t = self.peek()
        if t is None:
            raise self.syntax("expected a value")
        self.i += 1
        kind, text = t
        if kind == "num":
            return text if field == "id" else (float(text) if "." in text else int(text))
        if kind == "name" and text.lower() in ("true", "false"):
            return 1 if text.lower() == "true" else 0
        if kind != "str":
            raise CoqlError("SYNTAX_ERROR", f"expected a value at or near {text!r}", {"near": text})
        raw = text[1:-1].replace("\\'", "'").replace("\\\\", "\\")
        if field in ("Modified_Time", "Created_Time") or self.fields.get(field) == "datetime":
            dt = timefmt.parse_iso(raw)
            if dt is None:
                raise CoqlError("INVALID_QUERY", f"invalid datetime value for {field}: {raw!r}",
                                {"column_name": field, "value": raw})
            return timefmt.to_db(dt)
        return raw


def parse(text: Any, fields_of: Callable[[str], dict[str, str] | None], *, max_limit: int = 200,
          max_rows: int = 10_000) -> Query:
    """The query ``text`` checked against its module's fields: ``fields_of(module)`` gives api name ->
    type, or None for a module the app does not have (INVALID_QUERY)."""
    if not isinstance(text, str) or not text.strip():
        raise CoqlError("INVALID_QUERY", "select_query is missing or empty", {"param_name": "select_query"})
    return _Parser(text, fields_of, max_limit=max_limit, max_rows=max_rows).query()
