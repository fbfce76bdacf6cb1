"""API: contacts, Do Not Contact, segments; each error class (400 per field, 401, 403, 404, 409, 413)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from contacts.models import Contact, DoNotContact, Segment, SegmentMembership, TimelineEvent
from contacts.services import dnc_add, segment_add_contacts

from .conftest import ApiClient

pytestmark = pytest.mark.django_db

JSON = "application/json"


@pytest.fixture
def make_contact() -> Callable[..., Contact]:
    counter = iter(range(1000, 99999))

    def _make(**fields: Any) -> Contact:
        fields.setdefault("mobile", f"+4479110{next(counter):05d}")
        return Contact.objects.create(**fields)

    return _make


def _post(client: Client, url: str, body: Any) -> Any:
    return client.post(url, body, content_type=JSON)


# Create, read, update, delete


def test_create_contact_normalises_the_number_and_records_the_timeline(api: ApiClient) -> None:
    response = _post(
        api,
        "/api/v1/contacts",
        {"first_name": "Ada", "mobile": "07911 123456", "country": "gb", "custom_fields": {"plan": "gold"}},
    )
    assert response.status_code == 201
    body = response.json()
    assert body["mobile"] == "+447911123456"
    assert body["country"] == "GB"
    assert body["custom_fields"] == {"plan": "gold"}
    assert body["dnc_sms"] is False
    assert body["dnc"] is None
    contact = Contact.objects.get(pk=body["id"])
    assert contact.timeline.filter(kind="contact.created").exists()


def test_invalid_number_is_a_400_naming_the_number(api: ApiClient) -> None:
    response = _post(api, "/api/v1/contacts", {"first_name": "Bob", "mobile": "12345"})
    assert response.status_code == 400
    assert "12345" in response.json()["errors"]["mobile"][0]
    assert not Contact.objects.exists()


def test_each_bad_field_gets_its_own_message(api: ApiClient) -> None:
    response = _post(
        api,
        "/api/v1/contacts",
        {"email": "not-an-email", "country": "G1", "timezone": "Mars/Base", "custom_fields": {"1bad": "x"}},
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert "custom_fields" in errors
    response = _post(api, "/api/v1/contacts", {"email": "not-an-email", "country": "G1", "timezone": "Mars/Base"})
    errors = response.json()["errors"]
    assert set(errors) == {"email", "country", "timezone"}
    assert "Mars/Base" in errors["timezone"][0]


def test_duplicate_mobile_in_another_format_is_409(api: ApiClient, make_contact: Callable[..., Contact]) -> None:
    owner = make_contact(mobile="+447911123456")
    response = _post(api, "/api/v1/contacts", {"mobile": "+44 (0)7911-123456"})
    assert response.status_code == 409
    message = response.json()["errors"]["mobile"][0]
    assert "+447911123456" in message
    assert str(owner.pk) in message
    assert Contact.objects.count() == 1


def test_read_contact_and_404(api: ApiClient, make_contact: Callable[..., Contact]) -> None:
    contact = make_contact(first_name="Cy")
    assert api.get(f"/api/v1/contacts/{contact.pk}").json()["first_name"] == "Cy"
    missing = api.get(f"/api/v1/contacts/{contact.pk + 100}")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not found."}
    assert api.get("/api/v1/contacts/0").status_code == 400


def test_patch_changes_only_the_fields_sent(api: ApiClient, make_contact: Callable[..., Contact]) -> None:
    contact = make_contact(first_name="Di", last_name="Old", custom_fields={"a": "1"})
    response = api.patch(
        f"/api/v1/contacts/{contact.pk}", {"last_name": "New", "custom_fields": {"b": "2"}}, content_type=JSON
    )
    assert response.status_code == 200
    contact.refresh_from_db()
    assert (contact.first_name, contact.last_name) == ("Di", "New")
    assert contact.custom_fields == {"b": "2"}  # custom_fields sent is the whole set (issue 19: {} must clear them)
    event = contact.timeline.get(kind="contact.updated")
    assert event.detail["fields"] == ["custom_fields", "last_name"]


def test_patch_can_clear_the_mobile_and_refuses_anothers(api: ApiClient, make_contact: Callable[..., Contact]) -> None:
    first, second = make_contact(), make_contact()
    response = api.patch(f"/api/v1/contacts/{second.pk}", {"mobile": str(first.mobile)}, content_type=JSON)
    assert response.status_code == 409
    assert api.patch(f"/api/v1/contacts/{second.pk}", {"mobile": None}, content_type=JSON).json()["mobile"] is None
    second.refresh_from_db()
    assert second.mobile in (None, "")


def test_marketer_cannot_delete_a_contact_but_admin_can(
    api: ApiClient, admin_api: ApiClient, make_contact: Callable[..., Contact]
) -> None:
    contact = make_contact()
    refused = api.delete(f"/api/v1/contacts/{contact.pk}")
    assert refused.status_code == 403
    assert "admin" in refused.json()["detail"].lower()
    assert Contact.objects.filter(pk=contact.pk).exists()
    assert admin_api.delete(f"/api/v1/contacts/{contact.pk}").status_code == 204
    assert not Contact.objects.filter(pk=contact.pk).exists()
    assert admin_api.delete(f"/api/v1/contacts/{contact.pk}").status_code == 404


def test_malformed_json_and_nul_characters_are_400(api: ApiClient) -> None:
    response = api.post("/api/v1/contacts", "{not json", content_type=JSON)
    assert response.status_code == 400
    assert response["Content-Type"].startswith(JSON)
    for not_an_object in ([None, None], "Ada", 3):
        refused = _post(api, "/api/v1/contacts", not_an_object)
        assert refused.status_code == 400, not_an_object
    response = _post(api, "/api/v1/contacts", {"first_name": "a\x00b"})
    assert response.status_code == 400
    assert "first_name" in response.json()["errors"]
    assert not Contact.objects.exists()


def test_every_contact_endpoint_needs_a_token(client: Client, make_contact: Callable[..., Contact]) -> None:
    contact = make_contact()
    for method, url in [
        ("get", "/api/v1/contacts"),
        ("post", "/api/v1/contacts"),
        ("get", f"/api/v1/contacts/{contact.pk}"),
        ("patch", f"/api/v1/contacts/{contact.pk}"),
        ("delete", f"/api/v1/contacts/{contact.pk}"),
        ("post", f"/api/v1/contacts/{contact.pk}/dnc"),
        ("delete", f"/api/v1/contacts/{contact.pk}/dnc"),
        ("get", "/api/v1/segments"),
        ("post", "/api/v1/segments"),
    ]:
        response = getattr(client, method)(url, content_type=JSON)
        assert response.status_code == 401, (method, url)
    assert Contact.objects.filter(pk=contact.pk).exists()


def test_oversized_contact_body_is_413(api: ApiClient) -> None:
    response = api.post("/api/v1/contacts", "x" * 2_000_000, content_type=JSON)
    assert response.status_code == 413


# Listing and filters


def test_list_filters_by_mobile_in_any_format(api: ApiClient, make_contact: Callable[..., Contact]) -> None:
    wanted = make_contact(mobile="+447911123456")
    make_contact()
    for raw in ["+447911123456", "0044 7911 123456", "+44 (7911) 123-456", "07911 123456"]:
        # A national number is read in ?country= (else DEFAULT_PHONE_REGION), like the contact form does.
        items = api.get("/api/v1/contacts", {"mobile": raw, "country": "GB"}).json()["items"]
        assert [item["id"] for item in items] == [wanted.pk], raw


def test_list_filter_with_invalid_mobile_is_400_naming_it(api: ApiClient) -> None:
    response = api.get("/api/v1/contacts", {"mobile": "999"})
    assert response.status_code == 400
    assert "999" in response.json()["errors"]["mobile"][0]


def test_list_filters_by_segment_dnc_and_search(api: ApiClient, make_contact: Callable[..., Contact]) -> None:
    ann, bea, cat = make_contact(first_name="Ann"), make_contact(first_name="Bea"), make_contact(first_name="Cat")
    segment = Segment.objects.create(name="VIP")
    segment_add_contacts(segment=segment, contact_ids=[ann.pk, bea.pk])
    dnc_add(contact=bea, reason="manual", source="marketer")

    def ids(**params: Any) -> list[int]:
        response = api.get("/api/v1/contacts", params)
        assert response.status_code == 200
        return [item["id"] for item in response.json()["items"]]

    assert ids(segment=segment.pk) == [bea.pk, ann.pk]
    assert ids(dnc="true") == [bea.pk]
    assert ids(dnc="false") == [cat.pk, ann.pk]
    assert ids(segment=segment.pk, dnc="false") == [ann.pk]
    assert ids(q="cat") == [cat.pk]
    assert api.get("/api/v1/contacts", {"segment": segment.pk + 50}).status_code == 400
    assert api.get("/api/v1/contacts", {"dnc": "maybe"}).status_code == 400
    listed = api.get("/api/v1/contacts", {"dnc": "true"}).json()["items"][0]
    assert listed["dnc_sms"] is True
    assert listed["dnc"]["reason"] == "manual"


def test_cursor_pagination_walks_every_contact_once(api: ApiClient, make_contact: Callable[..., Contact]) -> None:
    created = [make_contact().pk for _ in range(7)]
    seen: list[int] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/api/v1/contacts", params).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(created, reverse=True)


def test_a_page_costs_a_fixed_number_of_queries(
    api: ApiClient, make_contact: Callable[..., Contact], django_assert_max_num_queries: Any
) -> None:
    for number in range(30):
        contact = make_contact()
        if number % 3 == 0:  # some Do Not Contact, most not: neither kind may cost a query of its own
            dnc_add(contact=contact, reason="manual", source="marketer")
    # Token lookup, token stamp, the page, its DNC entries: never one query per contact.
    with django_assert_max_num_queries(6):
        assert len(api.get("/api/v1/contacts", {"limit": 30}).json()["items"]) == 30


@pytest.mark.parametrize("cursor", ["garbage", "aWQ6eA", "Zm9vOjE"])
def test_bad_cursor_and_limit_are_400(api: ApiClient, cursor: str) -> None:
    response = api.get("/api/v1/contacts", {"cursor": cursor})
    assert response.status_code == 400
    assert "cursor" in response.json()["errors"]
    assert "limit" in api.get("/api/v1/contacts", {"limit": 0}).json()["errors"]
    assert api.get("/api/v1/contacts", {"limit": 201}).status_code == 400


# Do Not Contact


def test_dnc_add_then_remove_keeps_history(api: ApiClient, make_contact: Callable[..., Contact]) -> None:
    contact = make_contact()
    url = f"/api/v1/contacts/{contact.pk}/dnc"
    added = _post(api, url, {"reason": "unsubscribed", "comment": "asked by phone"})
    assert added.status_code == 201
    assert added.json()["dnc"]["reason"] == "unsubscribed"
    assert added.json()["dnc"]["source"] == "api"
    assert _post(api, url, {"reason": "manual"}).status_code == 200
    assert api.get(f"/api/v1/contacts/{contact.pk}").json()["dnc_sms"] is True
    lifted = api.delete(f"{url}?comment=called+back")
    assert lifted.status_code == 200
    assert lifted.json()["dnc_sms"] is False
    entry = DoNotContact.objects.get(contact=contact)
    assert entry.lifted_comment == "called back"
    assert entry.lifted_by == "api"
    assert TimelineEvent.objects.filter(contact=contact, kind__in=["dnc.added", "dnc.removed"]).count() == 2


def test_dnc_with_an_unknown_reason_is_400_and_unknown_contact_404(
    api: ApiClient, make_contact: Callable[..., Contact]
) -> None:
    contact = make_contact()
    response = _post(api, f"/api/v1/contacts/{contact.pk}/dnc", {"reason": "bored"})
    assert response.status_code == 400
    assert "reason" in response.json()["errors"]
    assert not DoNotContact.objects.exists()
    assert _post(api, f"/api/v1/contacts/{contact.pk + 9}/dnc", {}).status_code == 404


# Segments


def test_create_static_segment_add_list_and_remove_members(
    api: ApiClient, make_contact: Callable[..., Contact]
) -> None:
    people = [make_contact() for _ in range(5)]
    response = _post(api, "/api/v1/segments", {"name": "Newsletter"})
    assert response.status_code == 201
    segment = response.json()
    assert (segment["kind"], segment["member_count"], segment["filters"]) == ("static", 0, {})
    url = f"/api/v1/segments/{segment['id']}/contacts"
    added = _post(api, url, {"contact_ids": [p.pk for p in people]})
    assert added.json() == {"changed": 5, "member_count": 5}
    first = api.get(url, {"limit": 2}).json()
    assert [item["id"] for item in first["items"]] == [people[4].pk, people[3].pk]
    rest = api.get(url, {"limit": 5, "cursor": first["next_cursor"]}).json()
    assert [item["id"] for item in rest["items"]] == [p.pk for p in reversed(people[:3])]
    assert rest["next_cursor"] is None
    removed = api.delete(url, {"contact_ids": [people[0].pk]}, content_type=JSON)
    assert removed.json() == {"changed": 1, "member_count": 4}
    assert api.get(f"/api/v1/segments/{segment['id']}").json()["member_count"] == 4


def test_unknown_contact_ids_are_named_and_nothing_changes(
    api: ApiClient, make_contact: Callable[..., Contact]
) -> None:
    contact = make_contact()
    segment = Segment.objects.create(name="S")
    response = _post(api, f"/api/v1/segments/{segment.pk}/contacts", {"contact_ids": [contact.pk, 424242]})
    assert response.status_code == 400
    assert "424242" in response.json()["errors"]["contact_ids"][0]
    assert not SegmentMembership.objects.exists()
    assert _post(api, f"/api/v1/segments/{segment.pk}/contacts", {"contact_ids": []}).status_code == 400
    assert _post(api, f"/api/v1/segments/{segment.pk + 1}/contacts", {"contact_ids": [contact.pk]}).status_code == 404


def test_create_filter_segment_builds_membership(api: ApiClient, make_contact: Callable[..., Contact]) -> None:
    match = make_contact(email="a@example.com")
    make_contact(email="b@elsewhere.org")
    filters = {"match": "all", "rules": [{"field": "email", "operator": "contains", "value": "@example.com"}]}
    response = _post(api, "/api/v1/segments", {"name": "Example", "kind": "filter", "filters": filters})
    assert response.status_code == 201
    body = response.json()
    assert body["member_count"] == 1
    members = api.get(f"/api/v1/segments/{body['id']}/contacts").json()["items"]
    assert [m["id"] for m in members] == [match.pk]


def test_filter_segment_without_rules_is_empty(api: ApiClient, make_contact: Callable[..., Contact]) -> None:
    make_contact()
    response = _post(api, "/api/v1/segments", {"name": "No rules yet", "kind": "filter", "filters": None})
    assert response.status_code == 201
    assert response.json()["member_count"] == 0


def test_invalid_filters_are_400_naming_each_rule(api: ApiClient) -> None:
    filters = {
        "rules": [
            {"field": "shoe_size", "operator": "equals", "value": "9"},
            {"field": "email", "operator": "before", "value": "x"},
        ]
    }
    response = _post(api, "/api/v1/segments", {"name": "Bad", "kind": "filter", "filters": filters})
    assert response.status_code == 400
    errors = response.json()["errors"]["filters"]
    assert errors[0].startswith("Rule 1")
    assert "shoe_size" in errors[0]
    assert errors[1].startswith("Rule 2")
    static = _post(api, "/api/v1/segments", {"name": "S", "filters": filters})
    assert static.status_code == 400
    assert "filter-based" in static.json()["errors"]["filters"][0]
    assert _post(api, "/api/v1/segments", {"name": ""}).status_code == 400
    assert not Segment.objects.exists()


def test_segment_list_paginates(api: ApiClient) -> None:
    made = [Segment.objects.create(name=f"S{i}").pk for i in range(3)]
    page = api.get("/api/v1/segments", {"limit": 2}).json()
    assert [s["id"] for s in page["items"]] == [made[2], made[1]]
    rest = api.get("/api/v1/segments", {"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [s["id"] for s in rest["items"]] == [made[0]]
    assert rest["next_cursor"] is None
    assert api.get(f"/api/v1/segments/{made[2] + 1}").status_code == 404


def test_deleting_a_segment_is_admin_only_and_refused_while_used(api: ApiClient, admin_api: ApiClient) -> None:
    base = Segment.objects.create(name="Base")
    user = Segment.objects.create(
        name="Uses base",
        kind=Segment.Kind.FILTER,
        filters={"match": "all", "rules": [{"field": "segment", "operator": "in", "value": str(base.pk)}]},
    )
    assert api.delete(f"/api/v1/segments/{base.pk}").status_code == 403
    in_use = admin_api.delete(f"/api/v1/segments/{base.pk}")
    assert in_use.status_code == 409
    assert "Uses base" in in_use.json()["errors"]["segment"][0]
    assert admin_api.delete(f"/api/v1/segments/{user.pk}").status_code == 204
    assert admin_api.delete(f"/api/v1/segments/{base.pk}").status_code == 204
    assert not Segment.objects.exists()
