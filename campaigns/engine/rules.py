"""What a condition or a decision asks of a contact, as a queryset filter or a match on a reply."""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from django.db.models import Q

from ..models import CampaignEvent, EventKind

DECISION_KINDS = (EventKind.REPLIED_TO_TEXT, EventKind.REPLY_CONTAINS_KEYWORD, EventKind.REPLIED_WITH_BUTTON)
CONTACT_FIELDS = ("first_name", "last_name", "email", "mobile", "country", "timezone", "preferred_language")


def field_condition_q(props: dict[str, Any]) -> Q:
    """A contact field compared to a value, as a Q (custom fields as ``custom:<key>``)."""
    name, operator, value = props.get("field", ""), props.get("operator", "eq"), props.get("value", "")
    lookup = f"custom_fields__{name.removeprefix('custom:')}" if name.startswith("custom:") else name
    if operator == "empty":
        return Q(**{f"{lookup}__isnull": True}) | Q(**{lookup: ""})
    if operator == "not_empty":
        return ~(Q(**{f"{lookup}__isnull": True}) | Q(**{lookup: ""}))
    suffix = {
        "eq": "iexact",
        "neq": "iexact",
        "contains": "icontains",
        "starts_with": "istartswith",
        "ends_with": "iendswith",
        "gt": "gt",
        "lt": "lt",
    }[operator]
    q = Q(**{f"{lookup}__{suffix}": value})
    return ~q if operator == "neq" else q


def reply_matches(event: CampaignEvent, body: str, *, button_text: str = "", button_payload: str = "") -> bool:
    """Does this reply satisfy the decision? Patterns use ``*`` and ``?`` and ignore case. A button decision wants a
    tap on a quick-reply button: any, or the one whose payload or label is its ``button`` (case ignored)."""
    if event.kind == EventKind.REPLIED_WITH_BUTTON:
        if not (button_text or button_payload):
            return False
        wanted = (event.prop("button") or "").strip().lower()
        return not wanted or wanted in {button_payload.strip().lower(), button_text.strip().lower()}
    text = (body or "").strip().lower()
    if event.kind == EventKind.REPLIED_TO_TEXT:
        pattern = (event.prop("pattern") or "").strip().lower()
        return not pattern or fnmatch.fnmatchcase(text, pattern)
    if event.kind == EventKind.REPLY_CONTAINS_KEYWORD:
        keyword = (event.prop("keyword") or "").strip()
        return bool(keyword) and re.search(rf"(?<!\w){re.escape(keyword)}(?!\w)", body or "", re.IGNORECASE) is not None
    return False
