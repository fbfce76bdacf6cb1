"""Channels in the API (issue 16): a text message's channel with its own length rule, a contact's WhatsApp number
(the mobile on request) and its read-only Messenger ID, the channel on the outbound log."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contacts.models import Contact
from texts.models import TextMessage

from .conftest import ApiClient

pytestmark = pytest.mark.django_db
JSON = "application/json"


def _post(client: ApiClient, url: str, body: Any) -> Any:
    return client.post(url, json.dumps(body), content_type=JSON)


def _patch(client: ApiClient, url: str, body: Any) -> Any:
    return client.patch(url, json.dumps(body), content_type=JSON)


def test_a_text_message_has_a_channel_and_sms_is_the_default(api: ApiClient) -> None:
    plain = _post(api, "/api/v1/text-messages", {"name": "Plain", "body": "Hi"})
    assert plain.status_code == 201
    assert plain.json()["channel"] == "sms"
    chat = _post(api, "/api/v1/text-messages", {"name": "Chat", "body": "Hi", "channel": "whatsapp"})
    assert chat.status_code == 201, chat.content
    assert chat.json()["channel"] == "whatsapp"
    moved = _patch(api, f"/api/v1/text-messages/{plain.json()['id']}", {"channel": "messenger"})
    assert moved.json()["channel"] == "messenger"
    assert TextMessage.objects.get(pk=plain.json()["id"]).channel == "messenger"
    unknown = _post(api, "/api/v1/text-messages", {"name": "Fax", "body": "Hi", "channel": "fax"})
    assert unknown.status_code == 400
    assert not TextMessage.objects.filter(name="Fax").exists()


def test_a_whatsapp_body_over_1600_characters_is_refused_with_its_channel_named(api: ApiClient) -> None:
    response = _post(api, "/api/v1/text-messages", {"name": "Long", "body": "a" * 1601, "channel": "whatsapp"})
    assert response.status_code == 400
    assert "1,601" in json.dumps(response.json())
    assert not TextMessage.objects.filter(name="Long").exists()
    fits = _post(api, "/api/v1/text-messages", {"name": "Fits", "body": "é" * 1600, "channel": "whatsapp"})
    assert fits.status_code == 201


def test_a_contact_takes_a_whatsapp_number_or_its_mobile(api: ApiClient) -> None:
    own = _post(api, "/api/v1/contacts", {"first_name": "Ann", "mobile": "+14155552671", "whatsapp": "+44 7911 123456"})
    assert own.status_code == 201, own.content
    assert (own.json()["mobile"], own.json()["whatsapp"], own.json()["messenger_id"]) == (
        "+14155552671",
        "+447911123456",
        None,
    )
    same = _post(api, "/api/v1/contacts", {"first_name": "Ben", "mobile": "+14155552672", "whatsapp": "mobile"})
    assert same.status_code == 201, same.content
    assert same.json()["whatsapp"] == "+14155552672"
    cleared = _patch(api, f"/api/v1/contacts/{same.json()['id']}", {"whatsapp": ""})
    assert cleared.json()["whatsapp"] is None
    assert cleared.json()["mobile"] == "+14155552672"  # the mobile stays


def test_bad_whatsapp_input_is_refused_and_changes_nothing(api: ApiClient) -> None:
    taken = Contact.objects.create(first_name="Ann", whatsapp="+447911123456")
    duplicate = _post(api, "/api/v1/contacts", {"first_name": "Bob", "whatsapp": "+447911123456"})
    assert duplicate.status_code == 400
    assert "already belongs" in duplicate.json()["errors"]["whatsapp"][0]
    no_mobile = _post(api, "/api/v1/contacts", {"first_name": "Cy", "whatsapp": "mobile"})
    assert no_mobile.status_code == 400
    assert "no mobile number" in no_mobile.json()["errors"]["whatsapp"][0]
    garbage = _patch(api, f"/api/v1/contacts/{taken.pk}", {"whatsapp": "not a number"})
    assert garbage.status_code == 400
    taken.refresh_from_db()
    assert str(taken.whatsapp) == "+447911123456"
    read_only = _patch(api, f"/api/v1/contacts/{taken.pk}", {"messenger_id": "123"})
    assert read_only.status_code == 400
    assert Contact.objects.count() == 1
