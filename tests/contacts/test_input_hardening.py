"""Contact input that used to be taken silently: cleared custom fields, an unknown country, an extension."""

from __future__ import annotations

import typing

import pytest
from django.contrib.auth.models import User
from django.test import Client

from contacts.models import Contact
from contacts.phones import InvalidPhoneNumber, phone_to_e164
from smsapp.models import ApiToken

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(marketer_user: User) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(user=marketer_user, name='t')[1]}")


def _contact() -> Contact:
    return Contact.objects.create(first_name="Ada", custom_fields={"plan": "gold", "tier": "1"})


def test_clearing_a_custom_field_line_in_the_editor_removes_the_field(marketer_client: Client) -> None:
    contact = _contact()
    response = marketer_client.post(
        f"/contacts/{contact.pk}/edit/", {"first_name": "Ada", "custom_fields_text": "plan = gold\n\n"}
    )
    assert response.status_code == 302
    contact.refresh_from_db()
    assert contact.custom_fields == {"plan": "gold"}


def test_patch_with_custom_fields_replaces_the_set(api: Client) -> None:
    contact = _contact()
    url = f"/api/v1/contacts/{contact.pk}"
    kept = api.patch(url, {"first_name": "Ada L"}, content_type="application/json")
    assert kept.json()["custom_fields"] == {"plan": "gold", "tier": "1"}  # not sent: unchanged
    replaced = api.patch(url, {"custom_fields": {"plan": "silver"}}, content_type="application/json")
    assert replaced.json()["custom_fields"] == {"plan": "silver"}
    cleared = api.patch(url, {"custom_fields": {}}, content_type="application/json")
    assert cleared.status_code == 200
    contact.refresh_from_db()
    assert contact.custom_fields == {}


def test_country_zz_is_refused_in_the_editor_and_the_api(marketer_client: Client, api: Client) -> None:
    page = marketer_client.post("/contacts/new/", {"first_name": "Zed", "country": "zz"})
    assert page.status_code == 200
    assert "“ZZ” is not a country code" in page.content.decode()
    response = api.post("/api/v1/contacts", {"first_name": "Zed", "country": "ZZ"}, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["errors"]["country"] == [
        "“ZZ” is not a country code: use the two-letter ISO code, e.g. GB, FR, US."
    ]
    listed = api.get("/api/v1/contacts", {"mobile": "07911 123456", "country": "ZZ"})
    assert listed.status_code == 400
    assert "not a country code" in listed.json()["errors"]["mobile"][0]
    assert not Contact.objects.exists()


def test_a_number_with_an_extension_is_refused_saying_why(api: Client) -> None:
    with pytest.raises(InvalidPhoneNumber, match="has an extension"):
        phone_to_e164("+44 7911 123456 ext. 12")
    response = api.post("/api/v1/contacts", {"mobile": "+44 7911 123456 ext. 12"}, content_type="application/json")
    assert response.status_code == 400
    (message,) = response.json()["errors"]["mobile"]
    assert "extension (ext. 12)" in message
    assert not Contact.objects.exists()


def test_api_string_fields_are_no_longer_than_their_columns() -> None:
    # Any field over its column's size must be a 400 from validation, never a database error (a 500 on PostgreSQL).
    from contacts.api import ContactIn, ContactPatch, DncIn, SegmentIn
    from contacts.models import DoNotContact, Segment
    from texts.api import TextMessageIn, TextMessagePatch
    from texts.models import TextMessage

    checked = 0
    for schema, model in (
        (ContactIn, Contact),
        (ContactPatch, Contact),
        (DncIn, DoNotContact),
        (SegmentIn, Segment),
        (TextMessageIn, TextMessage),
        (TextMessagePatch, TextMessage),
    ):
        columns = {f.name: f for f in model._meta.get_fields() if hasattr(f, "max_length")}
        for name, field in schema.model_fields.items():
            column = columns.get(name)
            if column is None or not getattr(column, "max_length", None) or column.get_internal_type() == "TextField":
                continue
            if not (field.annotation is str or str in typing.get_args(field.annotation)):
                continue  # a choice (Literal) or a boolean: cannot be long
            limits = [m.max_length for m in field.metadata if hasattr(m, "max_length")]
            assert limits, f"{schema.__name__}.{name} has no max_length (column: {column.max_length})"
            assert min(limits) <= column.max_length, f"{schema.__name__}.{name} allows more than its column"
            checked += 1
    assert checked >= 9


def test_a_field_over_its_column_is_a_400_naming_it(api: Client) -> None:
    response = api.post("/api/v1/contacts", {"first_name": "x" * 101}, content_type="application/json")
    assert response.status_code == 400
    assert "first_name" in response.json()["errors"]
