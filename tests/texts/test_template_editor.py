"""The editor's template picker and preview (views, Django test client); Chromium: tests/browser/."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from contacts.models import Contact
from providers.twilio import fake_content
from providers.twilio.models import ContentTemplate
from texts.models import TextMessage

pytestmark = pytest.mark.django_db

SHIPPED = fake_content.ORDER_SHIPPED


@pytest.fixture
def synced(settings: Any) -> None:
    settings.SMS_PROVIDER = "twilio"
    now = timezone.now()
    ContentTemplate.objects.create(
        sid=SHIPPED,
        friendly_name="order_shipped",
        language="en",
        types={"twilio/text": {"body": "Hi {{1}}, your order {{2}} has shipped."}},
        variables={"1": "Ann", "2": "A-1001"},
        approval_status="approved",
        synced_at=now,
    )
    ContentTemplate.objects.create(
        sid=fake_content.APPOINTMENT, friendly_name="gone", types={}, synced_at=now, removed_at=now
    )


def test_picker_lists_synced_templates_but_not_removed_ones(marketer_client: Client, synced: None) -> None:
    page = marketer_client.get("/text-messages/new/").content.decode()
    assert f'<option value="{SHIPPED}">order_shipped (en, WhatsApp approved)</option>' in page
    assert fake_content.APPOINTMENT not in page


def test_picking_a_template_offers_a_field_per_variable(marketer_client: Client, synced: None) -> None:
    page = marketer_client.get("/text-messages/template-variables/", {"content_sid": SHIPPED}).content.decode()
    assert 'name="var_1"' in page
    assert 'name="var_2"' in page
    assert "(sample: A-1001)" in page
    gone = marketer_client.get("/text-messages/template-variables/", {"content_sid": fake_content.APPOINTMENT})
    assert "was removed at the provider" in gone.content.decode()
    assert "var_" not in gone.content.decode()


def test_preview_renders_the_template_for_a_contact(marketer_client: Client, synced: None) -> None:
    ann = Contact.objects.create(first_name="Ann", mobile="+14155550111", custom_fields={"order": "Q-1"})
    page = marketer_client.get(
        "/text-messages/preview/",
        {"contact": ann.pk, "content_sid": SHIPPED, "var_1": "{{first_name|there}}", "var_2": "{{custom.order}}"},
    ).content.decode()
    assert "Hi Ann, your order Q-1 has shipped." in page
    bad = marketer_client.get(
        "/text-messages/preview/", {"contact": ann.pk, "content_sid": SHIPPED, "var_1": "{{first_name|there"}
    ).content.decode()
    assert "Variable 1: “{{first_name|there” is not a complete personalisation token" in bad


def test_saving_from_the_editor_stores_the_mapping_and_refuses_a_missing_one(
    marketer_client: Client, synced: None
) -> None:
    data = {
        "name": "Shipped",
        "body": "",
        "content_sid": SHIPPED,
        "var_1": "{{first_name|there}}",
        "var_2": "",
        "language": "en",
        "category": "transactional",
        "track_links": "unknown",
        "is_published": "on",
        "media_urls_text": "",
        "content_variables": "{}",
    }
    refused = marketer_client.post("/text-messages/new/", data).content.decode()
    assert "Map every variable of “order_shipped”" in refused
    assert not TextMessage.objects.exists()
    # What was typed stays in the form.
    assert 'value="{{first_name|there}}"' in refused

    response = marketer_client.post("/text-messages/new/", {**data, "var_2": "A-{{custom.order|1}}"})
    assert response.status_code == 302
    text = TextMessage.objects.get()
    assert (text.content_sid, text.content_variables) == (
        SHIPPED,
        {"1": "{{first_name|there}}", "2": "A-{{custom.order|1}}"},
    )
