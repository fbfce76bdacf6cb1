"""Segment filters: the ``Segment.filters`` JSON, its validation, and its compilation to one SQL condition.

``{"match": "all" | "any", "rules": [{"field": "email", "operator": "contains", "value": "@example.com"}, ...]}``

Fields are the contact's columns, ``custom.<key>`` for a custom field, ``segment`` (membership of another segment)
and ``dnc_sms`` (SMS Do Not Contact). Everything compiles to a ``Q`` over ``Contact``, so a segment's membership is
one ``INSERT … SELECT`` whatever its rules, and the same ``Q`` counts matches live in the editor.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from .models import Channel, DoNotContact, Segment, SegmentMembership
from .phones import InvalidPhoneNumber, phone_to_e164

TEXT_OPERATORS = ["equals", "not_equals", "contains", "starts_with", "is_empty", "is_not_empty"]
DATE_OPERATORS = ["equals", "not_equals", "before", "after"]
OPERATOR_LABELS = {
    "equals": "equals",
    "not_equals": "does not equal",
    "contains": "contains",
    "starts_with": "starts with",
    "is_empty": "is empty",
    "is_not_empty": "is not empty",
    "before": "is before",
    "after": "is after",
    "in": "is in segment",
    "not_in": "is not in segment",
}
NO_VALUE_OPERATORS = {"is_empty", "is_not_empty"}
YES_NO = {"yes": True, "no": False}
CUSTOM_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class FieldSpec:
    label: str
    kind: str  # text, phone, date, custom, segment, boolean
    operators: tuple[str, ...]


FIELDS: dict[str, FieldSpec] = {
    "first_name": FieldSpec("First name", "text", tuple(TEXT_OPERATORS)),
    "last_name": FieldSpec("Last name", "text", tuple(TEXT_OPERATORS)),
    "email": FieldSpec("Email", "text", tuple(TEXT_OPERATORS)),
    "mobile": FieldSpec("Mobile number", "phone", tuple(TEXT_OPERATORS)),
    "country": FieldSpec("Country", "text", tuple(TEXT_OPERATORS)),
    "timezone": FieldSpec("Timezone", "text", tuple(TEXT_OPERATORS)),
    "preferred_language": FieldSpec("Preferred language", "text", tuple(TEXT_OPERATORS)),
    "created_at": FieldSpec("Date added", "date", tuple(DATE_OPERATORS)),
    "segment": FieldSpec("Segment", "segment", ("in", "not_in")),
    "dnc_sms": FieldSpec("SMS Do Not Contact", "boolean", ("equals",)),
}
CUSTOM_SPEC = FieldSpec("Custom field", "custom", (*TEXT_OPERATORS, "before", "after"))


class FilterError(ValueError):
    """Invalid filters; ``errors`` names each bad rule by its position (1-based) and says why."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def field_spec(field: str) -> FieldSpec | None:
    if field.startswith("custom."):
        key = field.removeprefix("custom.")
        # "__" would become a nested JSON path in the ORM lookup.
        return CUSTOM_SPEC if CUSTOM_KEY.match(key) and "__" not in key else None
    return FIELDS.get(field)


def _clean_rule(rule: Any, *, segment_id: int | None) -> dict[str, str]:
    """One rule normalised (value parsed and re-serialised), or ``ValueError`` saying what is wrong with it."""
    if not isinstance(rule, dict):
        raise ValueError("is not a rule (expected field, operator and value)")
    field = str(rule.get("field") or "").strip()
    operator = str(rule.get("operator") or "").strip()
    value = rule.get("value")
    value = "" if value is None else str(value).strip()
    spec = field_spec(field)
    if spec is None:
        if field.startswith("custom."):
            raise ValueError(f"“{field}” is not a valid custom field name (letters, digits and _ only)")
        raise ValueError(f"unknown field “{field}”" if field else "choose a field")
    if operator not in spec.operators:
        allowed = ", ".join(OPERATOR_LABELS[op] for op in spec.operators)
        raise ValueError(f"{spec.label} cannot use the operator “{operator}” (use one of: {allowed})")
    if operator in NO_VALUE_OPERATORS:
        return {"field": field, "operator": operator, "value": ""}
    if not value:
        raise ValueError(f"{spec.label} {OPERATOR_LABELS[operator]} needs a value")
    if spec.kind == "date" or operator in {"before", "after"}:
        try:
            value = dt.date.fromisoformat(value).isoformat()
        except ValueError:
            raise ValueError(f"“{value}” is not a date (use YYYY-MM-DD)") from None
    elif spec.kind == "phone" and operator in {"equals", "not_equals"}:
        try:
            value = phone_to_e164(value)
        except InvalidPhoneNumber as exc:
            raise ValueError(str(exc)) from None
    elif spec.kind == "phone":
        # Partial numbers match the stored E.164 digits: "+44 7911" and "447911" both mean "+447911…".
        value = re.sub(r"[^\d+]", "", value)
        if not value:
            raise ValueError("a number needs digits")
    elif spec.kind == "segment":
        if not value.isdigit() or not Segment.objects.filter(pk=int(value)).exists():
            raise ValueError(f"segment “{value}” does not exist")
        if segment_id is not None and int(value) == segment_id:
            raise ValueError("a segment cannot filter on its own membership")
    elif spec.kind == "boolean":
        value = value.lower()
        if value not in YES_NO:
            raise ValueError(f"{spec.label} is “yes” or “no”, not “{value}”")
    return {"field": field, "operator": operator, "value": value}


def filters_clean(filters: Any, *, segment_id: int | None = None) -> dict[str, Any]:
    """Validate and normalise filters; raises ``FilterError`` naming every bad rule."""
    if not isinstance(filters, dict):
        raise FilterError(["Filters must be an object with “match” and “rules”."])
    match = filters.get("match") or "all"
    errors: list[str] = []
    if match not in {"all", "any"}:
        errors.append(f"Match must be “all” or “any”, not “{match}”.")
    rules = filters.get("rules") or []
    if not isinstance(rules, list):
        raise FilterError(["Rules must be a list."])
    limit = settings.SEGMENT_MAX_RULES
    if len(rules) > limit:
        raise FilterError([f"A segment has at most {limit:,} rules; this one has {len(rules):,}."])
    cleaned = []
    for position, rule in enumerate(rules, start=1):
        try:
            cleaned.append(_clean_rule(rule, segment_id=segment_id))
        except ValueError as exc:
            errors.append(f"Rule {position}: {exc}.")
    if errors:
        raise FilterError(errors)
    return {"match": match, "rules": cleaned}


def _day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def _text_q(column: str, operator: str, value: str, *, nullable: bool = False) -> Q:
    empty = Q(**{column: ""}) | Q(**{f"{column}__isnull": True}) if nullable else Q(**{column: ""})
    if operator == "is_empty":
        return empty
    if operator == "is_not_empty":
        return ~empty
    lookup = {"equals": "iexact", "not_equals": "iexact", "contains": "icontains", "starts_with": "istartswith"}
    q = Q(**{f"{column}__{lookup[operator]}": value})
    return ~q if operator == "not_equals" else q


def _rule_q(rule: dict[str, str]) -> Q:
    field, operator, value = rule["field"], rule["operator"], rule["value"]
    spec = field_spec(field)
    assert spec is not None  # filters_clean ran first
    if spec.kind == "segment":
        member = Exists(
            SegmentMembership.objects.filter(segment_id=int(value), manually_removed=False, contact=OuterRef("pk"))
        )
        return Q(member) if operator == "in" else ~Q(member)
    if spec.kind == "boolean":
        dnc = Exists(DoNotContact.objects.filter(channel=Channel.SMS, lifted_at__isnull=True, contact=OuterRef("pk")))
        return Q(dnc) if YES_NO[value] else ~Q(dnc)
    if spec.kind == "date":
        start = _day_start(dt.date.fromisoformat(value))
        end = start + dt.timedelta(days=1)
        on_day = Q(created_at__gte=start, created_at__lt=end)
        return {
            "equals": on_day,
            "not_equals": ~on_day,
            "before": Q(created_at__lt=start),
            "after": Q(created_at__gte=end),
        }[operator]
    if spec.kind == "custom":
        column = f"custom_fields__{field.removeprefix('custom.')}"
        if operator in {"before", "after"}:
            # Dates in custom fields are stored as ISO strings, whose text order is their date order.
            return Q(**{f"{column}__lt" if operator == "before" else f"{column}__gt": value})
        if operator == "is_empty":
            return Q(**{f"{column}__isnull": True}) | Q(**{column: ""})
        if operator == "is_not_empty":
            return Q(**{f"{column}__isnull": False}) & ~Q(**{column: ""})
        return _text_q(column, operator, value)
    if spec.kind == "phone":
        if operator in {"equals", "not_equals"}:
            q = Q(mobile=value)
            return ~q if operator == "not_equals" else q
        if operator in {"contains", "starts_with"}:
            digits = value.lstrip("+")
            return Q(mobile__contains=digits) if operator == "contains" else Q(mobile__startswith=f"+{digits}")
        return _text_q("mobile", operator, value, nullable=True)
    return _text_q(field, operator, value)


def filters_to_q(filters: Any, *, segment_id: int | None = None) -> Q:
    """The SQL condition on ``Contact`` for these filters. No rules match nobody (an empty segment, not everyone)."""
    cleaned = filters_clean(filters, segment_id=segment_id)
    rules = cleaned["rules"]
    if not rules:
        return Q(pk__in=[])
    combined = _rule_q(rules[0])
    for rule in rules[1:]:
        combined = combined & _rule_q(rule) if cleaned["match"] == "all" else combined | _rule_q(rule)
    return combined


def _segment_refs(filters: Any) -> set[int]:
    """The segments these (stored or cleaned) filters name in their "in segment" / "not in segment" rules."""
    refs: set[int] = set()
    rules = filters.get("rules") if isinstance(filters, dict) else None
    for rule in rules if isinstance(rules, list) else []:
        if isinstance(rule, dict) and rule.get("field") == "segment" and str(rule.get("value", "")).isdigit():
            refs.add(int(rule["value"]))
    return refs


def segment_cycle(*, segment_id: int, filters: Any) -> list[Segment] | None:
    """The chain of segments that would lead back to ``segment_id`` if it had these filters, or None.

    "A: not in segment B" with "B: in segment A" would flip both memberships at every rebuild (each depends on the
    other's last state), so a cycle, direct or through any number of segments, is refused when a segment is saved.
    One query reads the rules of every filter-based segment; the walk is a depth-first search over them.
    """
    graph = {
        pk: _segment_refs(stored)
        for pk, stored in Segment.objects.filter(kind=Segment.Kind.FILTER)
        .exclude(pk=segment_id)
        .values_list("pk", "filters")
    }
    graph[segment_id] = _segment_refs(filters)
    path: list[int] = [segment_id]
    seen: set[int] = set()

    def walk(node: int) -> bool:
        for ref in sorted(graph.get(node, ())):
            if ref == segment_id:
                return True
            if ref in seen:
                continue
            seen.add(ref)
            path.append(ref)
            if walk(ref):
                return True
            path.pop()
        return False

    if not walk(segment_id):
        return None
    found = Segment.objects.in_bulk(path[1:])
    return [found[pk] for pk in path[1:]]


def cycle_message(*, chain: list[Segment], name: str) -> str:
    """ "A → B → A" in words a marketer can act on; ``chain`` is what ``segment_cycle`` found."""
    links = " → ".join(f"“{s.name}”" for s in chain)
    return (
        f"These rules make a loop: “{name}” → {links} → “{name}”. A segment cannot depend on itself, directly or "
        "through other segments (its members would change at every rebuild); remove the segment rule that closes it."
    )


def segments_in_loops() -> set[int]:
    """Filter-based segments that depend on themselves through others: saved before loops were refused."""
    graph = {
        pk: _segment_refs(stored)
        for pk, stored in Segment.objects.filter(kind=Segment.Kind.FILTER).values_list("pk", "filters")
    }
    looped: set[int] = set()
    for start in graph:
        stack, seen = list(graph[start]), set()
        while stack:
            node = stack.pop()
            if node == start:
                looped.add(start)
                break
            if node not in seen:
                seen.add(node)
                stack.extend(graph.get(node, ()))
    return looped
