"""fake_twilio's Content API: the account's Content Templates, as ``content.twilio.com`` serves them.

- ``GET /v1/Content`` and ``GET /v1/ContentAndApprovals`` (paged with PageSize / Page, Twilio's ``meta`` block with
  absolute paging URLs and ``key: "contents"``), ``GET /v1/Content/{Sid}``, ``GET /v1/Content/{Sid}/ApprovalRequests``;
- a few seeded templates (``SEEDED``) of several of the nine content types, with variables and sample values;
- ``POST /_control/content`` adds (or replaces) one, ``POST /_control/content/remove {"sid": …}`` deletes one, as
  a user of the Twilio Console would;
- a message create with a ``ContentSid`` is checked here (``check_send``): an unknown SID is Twilio's 21655,
  ContentVariables that are not a JSON object of strings 21656, ContentVariables without a ContentSid 21654, and a
  Body beside a ContentSid is refused (the template carries the text).
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Mapping
from typing import Any

CONTENT_PATHS = {
    "contents": re.compile(r"^/v1/Content$"),
    "content": re.compile(r"^/v1/Content/(?P<sid>HX[0-9a-fA-F]{32})$"),
    "approvals": re.compile(r"^/v1/Content/(?P<sid>HX[0-9a-fA-F]{32})/ApprovalRequests$"),
    "content_and_approvals": re.compile(r"^/v1/ContentAndApprovals$"),
}

SID_RE = re.compile(r"^HX[0-9a-fA-F]{32}$")

# Seeded templates: fixed SIDs, so that development data and the suite can name them.
ORDER_SHIPPED = "HX" + "0d" * 16
SPRING_SALE = "HX" + "5a" * 16
APPOINTMENT = "HX" + "a9" * 16
LOGIN_CODE = "HX" + "c0" * 16

SEEDED: tuple[dict[str, Any], ...] = (
    {
        "sid": ORDER_SHIPPED,
        "friendly_name": "order_shipped",
        "language": "en",
        "variables": {"1": "Ann", "2": "A-1001"},
        "types": {"twilio/text": {"body": "Hi {{1}}, your order {{2}} has shipped."}},
        "approval": {"status": "approved", "category": "UTILITY"},
    },
    {
        "sid": SPRING_SALE,
        "friendly_name": "spring_sale",
        "language": "en",
        "variables": {"1": "Ann"},
        "types": {
            "twilio/media": {"body": "{{1}}, 20% off everything this week.", "media": ["https://example.com/sale.jpg"]}
        },
        "approval": {"status": "approved", "category": "MARKETING"},
    },
    {
        "sid": APPOINTMENT,
        "friendly_name": "appointment_reminder",
        "language": "en",
        "variables": {"1": "Ann", "2": "Monday 10:00"},
        "types": {
            "twilio/quick-reply": {
                "body": "Hi {{1}}, we will see you on {{2}}. Can you make it?",
                "actions": [{"title": "Yes", "id": "yes"}, {"title": "No", "id": "no"}],
            }
        },
        "approval": {"status": "pending", "category": "UTILITY"},
    },
    {
        "sid": LOGIN_CODE,
        "friendly_name": "login_code",
        "language": "en",
        "variables": {"1": "123456"},
        "types": {
            "whatsapp/authentication": {
                "add_security_recommendation": True,
                "code_expiration_minutes": 10,
                "actions": [{"type": "COPY_CODE", "copy_code_text": "Copy code"}],
            }
        },
        "approval": {"status": "unsubmitted", "category": ""},
    },
)


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class ContentStore:
    """The account's templates. Thread-safe; ``base_url`` is where the server listens (for absolute paging URLs)."""

    def __init__(self, account_sid: str) -> None:
        self.account_sid = account_sid
        self._lock = threading.Lock()
        self._templates: dict[str, dict[str, Any]] = {}
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._templates.clear()
        for seed in SEEDED:
            self.add(**seed)

    def add(
        self,
        *,
        friendly_name: str,
        types: Mapping[str, Any],
        variables: Mapping[str, str] | None = None,
        language: str = "en",
        sid: str = "",
        approval: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Add a template (or replace the one with this ``sid``); returns it as the Content API shows it."""
        sid = sid or "HX" + secrets.token_hex(16)
        if not SID_RE.match(sid):
            raise ValueError(f"a Content SID is HX and 32 hex digits, not {sid!r}")
        if not isinstance(types, Mapping) or not types:
            raise ValueError("types must be an object such as {'twilio/text': {'body': 'Hi {{1}}'}}")
        now = time.time()
        row = {
            "sid": sid,
            "friendly_name": str(friendly_name),
            "language": str(language),
            "variables": {str(k): str(v) for k, v in (variables or {}).items()},
            "types": dict(types),
            "approval": dict(approval or {"status": "unsubmitted", "category": ""}),
            "created": now,
            "updated": now,
        }
        with self._lock:
            old = self._templates.get(sid)
            if old is not None:
                row["created"] = old["created"]
            self._templates[sid] = row
        return self.content_json(row)

    def remove(self, sid: str) -> bool:
        with self._lock:
            return self._templates.pop(sid, None) is not None

    def get(self, sid: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._templates.get(sid)
            return dict(row) if row else None

    # JSON, as content.twilio.com answers

    def content_json(self, row: Mapping[str, Any], *, base_url: str = "https://content.twilio.com") -> dict[str, Any]:
        url = f"{base_url}/v1/Content/{row['sid']}"
        return {
            "account_sid": self.account_sid,
            "date_created": _iso(row["created"]),
            "date_updated": _iso(row["updated"]),
            "friendly_name": row["friendly_name"],
            "language": row["language"],
            "links": {
                "approval_create": f"{url}/ApprovalRequests/whatsapp",
                "approval_fetch": f"{url}/ApprovalRequests",
            },
            "sid": row["sid"],
            "types": row["types"],
            "url": url,
            "variables": row["variables"],
        }

    def _approval_json(self, row: Mapping[str, Any]) -> dict[str, Any]:
        approval = row["approval"]
        return {
            "name": row["friendly_name"] if approval.get("status") != "unsubmitted" else "",
            "category": approval.get("category", ""),
            "content_type": next(iter(row["types"]), ""),
            "status": approval.get("status", "unsubmitted"),
            "rejection_reason": approval.get("rejection_reason", ""),
            "allow_category_change": True,
        }

    def handle(self, name: str, match: re.Match[str], query: Mapping[str, list[str]], base_url: str) -> Any:
        """(status, JSON) for a GET on one of ``CONTENT_PATHS``."""
        if name in ("contents", "content_and_approvals"):
            return self._list(name, query, base_url)
        row = self.get(match.group("sid"))
        if row is None:
            return 404, _error(404, 20404, f"The requested resource /v1/Content/{match.group('sid')} was not found")
        if name == "content":
            return 200, self.content_json(row, base_url=base_url)
        return 200, {
            "account_sid": self.account_sid,
            "sid": row["sid"],
            "url": f"{base_url}/v1/Content/{row['sid']}/ApprovalRequests",
            "whatsapp": {**self._approval_json(row), "type": "whatsapp", "flows": None},
        }

    def _list(self, name: str, query: Mapping[str, list[str]], base_url: str) -> tuple[int, dict[str, Any]]:
        try:
            size = min(1000, int((query.get("PageSize") or ["50"])[0]))
            number = int((query.get("Page") or ["0"])[0])
            if size < 1 or number < 0:
                raise ValueError(size)
        except ValueError:
            return 400, _error(400, 20001, "Invalid query parameter")
        with self._lock:
            rows = sorted((dict(r) for r in self._templates.values()), key=lambda r: (-r["created"], r["sid"]))
        page = rows[number * size : (number + 1) * size]
        path = "/v1/ContentAndApprovals" if name == "content_and_approvals" else "/v1/Content"
        contents = []
        for row in page:
            item = self.content_json(row, base_url=base_url)
            if name == "content_and_approvals":
                item.pop("links")
                item.pop("url")
                item["approval_requests"] = self._approval_json(row)
            contents.append(item)

        def page_url(n: int) -> str:
            return f"{base_url}{path}?PageSize={size}&Page={n}"

        return 200, {
            "contents": contents,
            "meta": {
                "page": number,
                "page_size": size,
                "first_page_url": page_url(0),
                "previous_page_url": page_url(number - 1) if number else None,
                "url": page_url(number),
                "next_page_url": page_url(number + 1) if len(rows) > (number + 1) * size else None,
                "key": "contents",
            },
        }

    # Sends

    def check_send(self, *, content_sid: str, variables: str, body: str) -> tuple[int, int, str] | None:
        """The error Twilio answers a message create for these fields, or None (no ContentSid: nothing to check)."""
        if not content_sid:
            return (400, 21654, "ContentSid Required") if variables else None
        if not SID_RE.match(content_sid) or self.get(content_sid) is None:
            return 400, 21655, "The ContentSid is Invalid"
        if body:
            return 400, 20001, "Body cannot be sent with a ContentSid: the Content Template carries the text"
        if variables:
            try:
                parsed = json.loads(variables)
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and v for k, v in parsed.items()
            ):
                return 400, 21656, "The ContentVariables Parameter is invalid"
        return None

    def rendered(self, content_sid: str, variables: str) -> str:
        """The text the recipient reads (the template's body with the values; a missing one: its sample)."""
        row = self.get(content_sid) or {"types": {}, "variables": {}}
        values = {**row["variables"], **(json.loads(variables) if variables else {})}
        body = next(
            (str(t.get("body") or t.get("title") or "") for t in row["types"].values() if isinstance(t, dict)), ""
        )
        return re.sub(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}", lambda m: str(values.get(m.group(1), m.group(0))), body)


def _error(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
