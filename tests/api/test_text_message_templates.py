"""The API's content_sid and content_variables on text messages: read, write, and every refusal in words."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from providers.twilio import fake_content
from providers.twilio.models import ContentTemplate
from texts.models import TextMessage

from .conftest import ApiClient

pytestmark = pytest.mark.django_db

SHIPPED = fake_content.ORDER_SHIPPED
URL = "/api/v1/text-messages"


@pytest.fixture
def synced(settings: Any) -> None:
    settings.SMS_PROVIDER = "twilio"
    ContentTemplate.objects.create(
        sid=SHIPPED,
        friendly_name="order_shipped",
        language="en",
        types={"twilio/text": {"body": "Hi {{1}}, your order {{2}} has shipped."}},
        variables={"1": "Ann", "2": "A-1001"},
        synced_at=timezone.now(),
    )
    ContentTemplate.objects.create(
        sid=fake_content.APPOINTMENT,
        friendly_name="appointment_reminder",
        types={"twilio/text": {"body": "See you {{1}}"}},
        variables={"1": "Monday"},
        synced_at=timezone.now(),
        removed_at=timezone.now(),
    )


def _create(api: ApiClient, **fields: Any) -> Any:
    return api.post(URL, {"name": "Shipped", **fields}, content_type="application/json")


def _errors(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 400, response.content
    return dict(response.json()["errors"])


def test_create_and_read_a_template_message(api: ApiClient, synced: None) -> None:
    variables = {"1": "{{first_name|there}}", "2": "{{custom.order|your order}}"}
    response = _create(api, content_sid=SHIPPED, content_variables=variables)
    assert response.status_code == 201, response.content
    created = response.json()
    assert (created["content_sid"], created["content_variables"], created["body"]) == (SHIPPED, variables, "")
    read = api.get(f"{URL}/{created['id']}").json()
    assert read["content_sid"] == SHIPPED
    assert read["content_variables"] == variables
    assert TextMessage.objects.get().content_variables == variables


def test_an_inline_message_still_works_and_shows_no_template(api: ApiClient, synced: None) -> None:
    response = _create(api, body="Hi {{first_name}}")
    assert response.status_code == 201
    assert response.json()["content_sid"] is None
    assert response.json()["content_variables"] == {}


def test_unknown_template_is_a_400_with_words(api: ApiClient, synced: None) -> None:
    errors = _errors(_create(api, content_sid="HX" + "00" * 16, content_variables={"1": "x"}))
    assert "There is no message template HX0000" in errors["content_sid"][0]
    assert "sync the templates" in errors["content_sid"][0]
    assert not TextMessage.objects.exists()


def test_a_template_removed_at_the_provider_is_refused(api: ApiClient, synced: None) -> None:
    errors = _errors(_create(api, content_sid=fake_content.APPOINTMENT, content_variables={"1": "x"}))
    assert "was removed at the provider" in errors["content_sid"][0]


@pytest.mark.parametrize(
    ("variables", "words"),
    [
        ({"1": 5, "2": "x"}, "must be a JSON object of strings"),
        ({"1": "Ann", "2": "x", "3": "y"}, "has no variable 3 (its variables: 1, 2)"),
        ({"1": "Ann"}, "Map every variable of “order_shipped”"),
        ({"1": "Ann", "2": "  "}, "2 has no value"),
        ({"1": "{{shoe_size}}", "2": "x"}, "Variable 1: Unknown personalisation token"),
        ({"1": "x" * 1025, "2": "x"}, "a template variable holds at most 1,024"),
    ],
)
def test_variables_are_validated(api: ApiClient, synced: None, variables: dict[str, Any], words: str) -> None:
    errors = _errors(_create(api, content_sid=SHIPPED, content_variables=variables))
    assert words in errors["content_variables"][0]


def test_variables_must_be_an_object(api: ApiClient, synced: None) -> None:
    response = _create(api, content_sid=SHIPPED, content_variables=["Ann", "x"])
    assert response.status_code == 400
    assert not TextMessage.objects.exists()


def test_body_and_template_together_or_neither_are_refused(api: ApiClient, synced: None) -> None:
    both = _errors(_create(api, body="Hi", content_sid=SHIPPED, content_variables={"1": "a", "2": "b"}))
    assert "a body or a template, not both" in both["body"][0]
    neither = _errors(_create(api))
    assert "Write the text message, or pick a template" in neither["body"][0]


def test_patch_switches_between_body_and_template(api: ApiClient, synced: None) -> None:
    text_id = _create(api, body="Hi {{first_name}}").json()["id"]
    to_template = api.patch(
        f"{URL}/{text_id}",
        {"body": "", "content_sid": SHIPPED, "content_variables": {"1": "{{first_name}}", "2": "A"}},
        content_type="application/json",
    )
    assert to_template.status_code == 200, to_template.content
    assert to_template.json()["content_sid"] == SHIPPED
    # A PATCH that changes only the name keeps the template and its mapping.
    renamed = api.patch(f"{URL}/{text_id}", {"name": "Renamed"}, content_type="application/json").json()
    assert (renamed["content_sid"], renamed["content_variables"]) == (SHIPPED, {"1": "{{first_name}}", "2": "A"})
    back = api.patch(f"{URL}/{text_id}", {"content_sid": "", "body": "Hello"}, content_type="application/json")
    assert back.status_code == 200, back.content
    assert (back.json()["content_sid"], back.json()["body"], back.json()["content_variables"]) == (None, "Hello", {})


def test_media_urls_with_tokens_are_accepted_and_unknown_tokens_refused(api: ApiClient, synced: None) -> None:
    ok = _create(api, body="Card", media_urls=["https://example.com/{{first_name|friend}}.jpg"])
    assert ok.status_code == 201, ok.content
    errors = _errors(_create(api, body="Card", media_urls=["https://example.com/{{shoe_size}}.jpg"]))
    assert "Unknown personalisation token" in errors["media_urls"][0]


def test_the_outbound_log_names_the_template_a_message_was_sent_with(api: ApiClient) -> None:
    """A WhatsApp message outside the 24-hour window goes as a template: its log entry says which (the body only shows
    the template's text), and a plain text message's says none."""
    from texts.models import OutboundMessage

    shipped = TextMessage.objects.create(name="Shipped", channel="whatsapp", content_sid=SHIPPED)
    templated = OutboundMessage.objects.create(
        to_number="whatsapp:+14155550100", channel="whatsapp", source="api", status="sent", text_message=shipped
    )
    hello = TextMessage.objects.create(name="Hello", body="Hi")
    plain = OutboundMessage.objects.create(
        to_number="+14155550101", source="api", status="sent", body="Hi", text_message=hello
    )
    items = {item["id"]: item for item in api.get("/api/v1/outbound-messages").json()["items"]}
    assert (items[templated.pk]["content_sid"], items[plain.pk]["content_sid"]) == (SHIPPED, None)
    assert api.get(f"/api/v1/outbound-messages/{templated.pk}").json()["content_sid"] == SHIPPED
