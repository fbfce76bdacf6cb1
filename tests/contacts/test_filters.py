"""Every filter operator, compiled to SQL and run against real rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from contacts.filters import FilterError, filters_clean, filters_to_q
from contacts.models import Contact, DoNotContact, Segment
from contacts.services import dnc_add, dnc_remove, segment_add_contacts

pytestmark = pytest.mark.django_db


def matching(*rules: dict[str, str], match: str = "all") -> set[str]:
    q = filters_to_q({"match": match, "rules": list(rules)})
    return set(Contact.objects.filter(q).values_list("first_name", flat=True))


def rule(field: str, operator: str, value: str = "") -> dict[str, str]:
    return {"field": field, "operator": operator, "value": value}


@pytest.fixture
def people(make_contact: Callable[..., Contact]) -> dict[str, Contact]:
    return {
        "ann": make_contact(
            first_name="ann",
            last_name="Smith",
            email="ann@example.com",
            preferred_language="en",
            mobile="+447911000001",
            timezone="Europe/London",
            custom_fields={"plan": "Gold", "renewal": "2025-03-01"},
        ),
        "bob": make_contact(
            first_name="bob",
            last_name="Smithers",
            email="bob@corp.test",
            preferred_language="",
            mobile="+33612345678",
            custom_fields={"plan": "silver", "renewal": "2026-01-15"},
        ),
        "cy": make_contact(
            first_name="cy", last_name="Jones", email="", mobile=None, country="DE", custom_fields={"plan": ""}
        ),
    }


@pytest.mark.parametrize(
    ("field", "operator", "value", "expected"),
    [
        ("last_name", "equals", "smith", {"ann"}),
        ("last_name", "not_equals", "Smith", {"bob", "cy"}),
        ("last_name", "contains", "MIT", {"ann", "bob"}),
        ("last_name", "starts_with", "jo", {"cy"}),
        ("email", "is_empty", "", {"cy"}),
        ("email", "is_not_empty", "", {"ann", "bob"}),
        ("email", "contains", "@example.com", {"ann"}),
        ("preferred_language", "equals", "EN", {"ann"}),
        ("preferred_language", "is_empty", "", {"bob", "cy"}),
        ("country", "equals", "fr", {"bob"}),
        ("country", "not_equals", "GB", {"bob", "cy"}),
        ("timezone", "equals", "Europe/Paris", {"bob"}),
        ("timezone", "starts_with", "Europe/", {"ann", "bob"}),
        ("mobile", "equals", "0044 7911 000001", {"ann"}),
        ("mobile", "not_equals", "+44 7911 000001", {"bob", "cy"}),
        ("mobile", "starts_with", "+33 6", {"bob"}),
        ("mobile", "contains", "911 000", {"ann"}),
        ("mobile", "is_empty", "", {"cy"}),
        ("mobile", "is_not_empty", "", {"ann", "bob"}),
        ("custom.plan", "equals", "gold", {"ann"}),
        ("custom.plan", "not_equals", "gold", {"bob", "cy"}),
        ("custom.plan", "contains", "ILV", {"bob"}),
        ("custom.plan", "starts_with", "g", {"ann"}),
        ("custom.plan", "is_empty", "", {"cy"}),
        ("custom.plan", "is_not_empty", "", {"ann", "bob"}),
        ("custom.renewal", "is_empty", "", {"cy"}),
        ("custom.renewal", "before", "2025-12-31", {"ann"}),
        ("custom.renewal", "after", "2025-12-31", {"bob"}),
    ],
)
def test_field_operators(people: dict[str, Contact], field: str, operator: str, value: str, expected: set[str]) -> None:
    assert matching(rule(field, operator, value)) == expected


def test_date_operators(people: dict[str, Contact]) -> None:
    today = timezone.localdate()
    old = timezone.make_aware(dt.datetime.combine(today - dt.timedelta(days=10), dt.time(12)))
    Contact.objects.filter(pk=people["ann"].pk).update(created_at=old)
    day = (today - dt.timedelta(days=10)).isoformat()
    assert matching(rule("created_at", "equals", day)) == {"ann"}
    assert matching(rule("created_at", "not_equals", day)) == {"bob", "cy"}
    assert matching(rule("created_at", "before", (today - dt.timedelta(days=1)).isoformat())) == {"ann"}
    assert matching(rule("created_at", "after", (today - dt.timedelta(days=11)).isoformat())) == {"ann", "bob", "cy"}
    assert matching(rule("created_at", "after", day)) == {"bob", "cy"}


def test_segment_membership_operators(people: dict[str, Contact]) -> None:
    vip = Segment.objects.create(name="VIP")
    segment_add_contacts(segment=vip, contact_ids=[people["ann"].pk, people["bob"].pk])
    from contacts.services import segment_remove_contacts

    segment_remove_contacts(segment=vip, contact_ids=[people["bob"].pk])
    assert matching(rule("segment", "in", str(vip.pk))) == {"ann"}
    assert matching(rule("segment", "not_in", str(vip.pk))) == {"bob", "cy"}


def test_dnc_operator_follows_active_entries_only(people: dict[str, Contact]) -> None:
    dnc_add(contact=people["bob"], reason=DoNotContact.Reason.UNSUBSCRIBED, source=DoNotContact.Source.KEYWORD)
    dnc_add(contact=people["cy"], reason=DoNotContact.Reason.MANUAL, source=DoNotContact.Source.MARKETER)
    dnc_remove(contact=people["cy"], source=DoNotContact.Source.MARKETER)
    assert matching(rule("dnc_sms", "equals", "yes")) == {"bob"}
    assert matching(rule("dnc_sms", "equals", "No")) == {"ann", "cy"}


def test_match_all_and_any(people: dict[str, Contact]) -> None:
    rules = [rule("last_name", "starts_with", "smith"), rule("email", "contains", "corp")]
    assert matching(*rules, match="all") == {"bob"}
    assert matching(*rules, match="any") == {"ann", "bob"}


def test_no_rules_match_nobody(people: dict[str, Contact]) -> None:
    assert matching() == set()


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"match": "all", "rules": [rule("shoe_size", "equals", "9")]}, "Rule 1: unknown field “shoe_size”"),
        ({"match": "all", "rules": [rule("email", "before", "2020-01-01")]}, "Rule 1: Email cannot use the operator"),
        (
            {"rules": [rule("email", "is_empty"), rule("created_at", "after", "yesterday")]},
            "Rule 2: “yesterday” is not a date",
        ),
        ({"rules": [rule("mobile", "equals", "banana")]}, "Rule 1: “banana” is not a phone number"),
        ({"rules": [rule("segment", "in", "99999")]}, "Rule 1: segment “99999” does not exist"),
        ({"rules": [rule("dnc_sms", "equals", "maybe")]}, "is “yes” or “no”"),
        ({"rules": [rule("custom.bad key", "equals", "x")]}, "not a valid custom field name"),
        ({"rules": [rule("custom.a__b", "equals", "x")]}, "not a valid custom field name"),
        ({"rules": [rule("email", "contains", "")]}, "Rule 1: Email contains needs a value"),
        ({"match": "most", "rules": []}, "Match must be “all” or “any”"),
        ({"rules": "email"}, "Rules must be a list"),
        ("nonsense", "Filters must be an object"),
    ],
)
def test_invalid_filters_name_the_bad_rule(filters: Any, message: str) -> None:
    with pytest.raises(FilterError) as excinfo:
        filters_clean(filters)
    assert message in str(excinfo.value)


def test_segment_cannot_filter_on_itself(filter_segment: Callable[..., Segment]) -> None:
    segment = filter_segment([])
    with pytest.raises(FilterError, match="its own membership"):
        filters_clean({"rules": [rule("segment", "in", str(segment.pk))]}, segment_id=segment.pk)


def test_clean_normalises_values() -> None:
    cleaned = filters_clean({"rules": [rule("mobile", "equals", "+44 7911 000001"), rule("email", "is_empty", "x")]})
    assert cleaned == {
        "match": "all",
        "rules": [rule("mobile", "equals", "+447911000001"), rule("email", "is_empty", "")],
    }
