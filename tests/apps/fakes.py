"""A small Zoho (Bigin/CRM) records API for ``httpx.MockTransport``: the documented envelopes only.

Unit tests of the HTTP layer and the Zoho client use it; the contract suite runs against the real
sandbox (``engine.sandbox``).
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs

import httpx

CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN = "cid-1000.ABCDEF", "csecret-9f8e7d6c5b4a", "1000.rtok.5a4b3c2d1e"
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


class FakeZoho:
    def __init__(self, *, seed: int = 7, base: str = "/bigin/v2"):
        self.base = base
        self.records: dict[str, dict[str, dict]] = {}
        self.deleted: dict[str, list[dict]] = {}
        self.stats: Counter[tuple[str, str]] = Counter()
        self.answered: Counter[int] = Counter()
        self.tokens: set[str] = set()
        self.issued = 0
        self.rng = random.Random(seed)
        self.rate_429 = 0.0
        self.fail_5xx = 0  # the next N API calls answer 503
        self.retry_after: str | None = None
        self.token_error: str | None = None
        self.tick = 0
        self.next_id = 10**18 + 1000
        self.lock = threading.Lock()
        self.requests: list[httpx.Request] = []

    # -- helpers ------------------------------------------------------------------------------------

    def now(self) -> str:
        self.tick += 1
        return (T0 + timedelta(seconds=self.tick)).isoformat()

    def add(self, module: str, n: int, **values) -> list[str]:
        ids = []
        for i in range(n):
            rid = str(self.next_id)
            self.next_id += 1
            t = self.now()
            self.records.setdefault(module, {})[rid] = {"id": rid, "Last_Name": f"L{i}", **values,
                                                        "Created_Time": t, "Modified_Time": t}
            ids.append(rid)
        return ids

    def expire_tokens(self) -> None:
        self.tokens.clear()

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    # -- the API ------------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            return self._handle(request)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        q = {k: v[0] for k, v in parse_qs(request.url.query.decode(), keep_blank_values=True).items()}
        if path == "/oauth/v2/token":
            form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
            form = {**q, **form}
            if self.token_error:
                return httpx.Response(200, json={"error": self.token_error})
            if (form.get("client_id"), form.get("client_secret"), form.get("refresh_token")) != (
                    CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN):
                return httpx.Response(200, json={"error": "invalid_code"})
            self.issued += 1
            tok = f"1000.acc{self.issued:04d}.abcdef0123456789"
            self.tokens.add(tok)
            return httpx.Response(200, json={"access_token": tok, "api_domain": "https://www.zohoapis.com",
                                             "token_type": "Bearer", "expires_in": 3600})
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Zoho-oauthtoken ") or auth.split(" ", 1)[1] not in self.tokens:
            return self._answer(401, {"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token",
                                      "status": "error"})
        if self.fail_5xx > 0:
            self.fail_5xx -= 1
            return self._answer(503, {"code": "INTERNAL_ERROR", "details": {}, "message": "busy", "status": "error"})
        if self.rate_429 and self.rng.random() < self.rate_429:
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return self._answer(429, {"code": "TOO_MANY_REQUESTS", "details": {}, "message": "slow down",
                                      "status": "error"}, headers)
        assert path.startswith(self.base), path
        parts = path[len(self.base) + 1:].split("/")
        module = parts[0]
        method = request.method
        if module == "users":
            self.stats[("users", "list")] += 1
            return self._answer(200, {"users": [{"id": "u1", "email": "a@x.com", "full_name": "Ann A"}],
                                      "info": {"more_records": False}})
        if module == "settings" and parts[1:] == ["custom_views"]:
            return self._answer(404, {"code": "INVALID_URL_PATTERN", "details": {}, "message": "bad url",
                                      "status": "error"})
        if module == "settings":
            self.stats[(q["module"], "fields")] += 1
            return self._answer(200, {"fields": [
                {"api_name": "Last_Name", "field_label": "Last Name", "data_type": "text", "length": 80,
                 "system_mandatory": True, "read_only": False, "unique": {}, "crypt": None},
                {"api_name": "Email", "field_label": "Email", "data_type": "email", "unique": {"casesensitive": "false"},
                 "crypt": {"mode": "decryption"}},
                {"api_name": "Account_Name", "field_label": "Company", "data_type": "lookup",
                 "lookup": {"module": {"api_name": "Accounts", "id": "1"}}},
                {"api_name": "Lead_Source", "field_label": "Source", "data_type": "picklist",
                 "pick_list_values": [{"display_value": "Web", "actual_value": "Web"}]}]})
        store = self.records.setdefault(module, {})
        if method == "GET" and len(parts) == 1:
            return self._list(module, store, q, request)
        if method == "GET" and parts[1:] == ["deleted"]:
            self.stats[(module, "deleted")] += 1
            items = self.deleted.get(module, [])
            return self._answer(200, {"data": items, "info": {"more_records": False}}) if items else self._answer(204)
        if method == "GET" and parts[1:] == ["search"]:
            self.stats[(module, "search")] += 1
            crit = q["criteria"][1:-1]
            field, _, value = crit.split(":", 2)
            value = value.replace("\\(", "(").replace("\\)", ")").replace("\\,", ",")
            found = [r for r in store.values() if str(r.get(field, "")).lower() == value.lower()]
            return self._answer(200, {"data": found, "info": {"more_records": False}}) if found else self._answer(204)
        if method in ("POST", "PUT") and len(parts) == 1:
            return self._write(module, store, method, json.loads(request.content))
        if method == "DELETE" and len(parts) == 1:
            self.stats[(module, "delete")] += 1
            out = []
            for rid in q["ids"].split(","):
                if store.pop(rid, None) is None:
                    out.append({"code": "INVALID_DATA", "details": {"id": rid}, "message": "the id given seems to be invalid",
                                "status": "error"})
                else:
                    self.deleted.setdefault(module, []).append({"id": rid, "deleted_time": self.now(), "type": "recycle"})
                    out.append({"code": "SUCCESS", "details": {"id": rid}, "message": "record deleted", "status": "success"})
            return self._answer(200, {"data": out})
        return self._answer(404, {"code": "INVALID_URL_PATTERN", "details": {}, "message": "bad url", "status": "error"})

    def _answer(self, status: int, body=None, headers=None) -> httpx.Response:
        self.answered[status] += 1
        if body is None:
            return httpx.Response(status, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    def _list(self, module, store, q, request):
        self.stats[(module, "list")] += 1
        if "fields" not in q:
            return self._answer(400, {"code": "REQUIRED_PARAM_MISSING", "details": {"param_name": "fields"},
                                      "message": "One of the expected parameter is missing", "status": "error"})
        if len(q["fields"].split(",")) > 50:
            return self._answer(400, {"code": "LIMIT_EXCEEDED", "details": {"limit": 50, "param_name": "fields"},
                                      "message": "limit exceeded", "status": "error"})
        per_page = int(q.get("per_page", 200))
        rows = sorted(store.values(), key=lambda r: (r["Modified_Time"], r["id"]))
        if "ids" in q:
            wanted = set(q["ids"].split(","))
            rows = [r for r in rows if r["id"] in wanted]
        since = request.headers.get("if-modified-since")
        if since:
            rows = [r for r in rows if r["Modified_Time"] >= datetime.fromisoformat(since).isoformat()]
            if not rows:
                return self._answer(304)
        if "page_token" in q:
            start = int(q["page_token"].split(":")[1])
        else:
            page = int(q.get("page", 1))
            start = (page - 1) * per_page
            if start + per_page > 2000:
                return self._answer(400, {"code": "DISCRETE_PAGINATION_LIMIT_EXCEEDED", "details": {"limit": 2000},
                                          "message": "You can only get the first 2000 records without using "
                                                     "page_token param", "status": "error"})
        chunk = rows[start:start + per_page]
        if not chunk:
            return self._answer(204)
        more = start + per_page < len(rows)
        return self._answer(200, {"data": chunk, "info": {"per_page": per_page, "count": len(chunk), "more_records": more,
                                                          "next_page_token": f"t:{start + per_page}" if more else None}})

    def _write(self, module, store, method, body):
        op = "create" if method == "POST" else "update"
        self.stats[(module, op)] += 1
        data = body["data"]
        assert len(data) <= 100
        out = []
        for i, item in enumerate(data):
            if op == "create" and not item.get("Last_Name"):
                out.append({"code": "MANDATORY_NOT_FOUND", "details": {"api_name": "Last_Name",
                            "json_path": f"$.data[{i}].Last_Name"}, "message": "required field not found",
                            "status": "error"})
                continue
            if item.get("Email") and any(r.get("Email") == item["Email"] and r["id"] != item.get("id")
                                         for r in store.values()):
                out.append({"code": "DUPLICATE_DATA", "details": {"api_name": "Email", "json_path": f"$.data[{i}].Email"},
                            "message": "duplicate data", "status": "error"})
                continue
            t = self.now()
            if op == "create":
                rid = str(self.next_id)
                self.next_id += 1
                store[rid] = {**item, "id": rid, "Created_Time": t, "Modified_Time": t}
                out.append({"code": "SUCCESS", "details": {"id": rid, "Modified_Time": t, "Created_Time": t},
                            "message": "record added", "status": "success"})
            else:
                rid = item["id"]
                if rid not in store:
                    out.append({"code": "INVALID_DATA", "details": {"api_name": "id", "id": rid},
                                "message": "the id given seems to be invalid", "status": "error"})
                    continue
                store[rid].update(item)
                store[rid]["Modified_Time"] = t
                out.append({"code": "SUCCESS", "details": {"id": rid, "Modified_Time": t},
                            "message": "record updated", "status": "success"})
        ok = sum(1 for o in out if o["status"] == "success")
        status = 400 if ok == 0 else (201 if op == "create" else 200) if ok == len(out) else 207
        return self._answer(status, {"data": out})
