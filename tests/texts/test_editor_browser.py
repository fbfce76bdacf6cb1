"""The editor in Chromium: the live counter as the marketer types, token insertion, preview and test send (htmx)."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User

from contacts.models import Contact
from texts.models import OutboundMessage, TextMessage

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_editor_counts_live_previews_and_sends_test(login: Any, live_server: Any, marketer_user: User) -> None:
    contact = Contact.objects.create(first_name="Zoë", mobile="+14155550177")
    text = TextMessage.objects.create(name="Sale", body="Hello", category="transactional")
    page = login(marketer_user)
    page.goto(f"{live_server.url}/text-messages/{text.pk}/")
    counter = page.locator("#sms-counter")
    assert "5 characters · 1 segment · GSM-7" in counter.inner_text()

    body = page.get_by_label("Message")
    body.fill("a" * 160)
    assert "160 characters · 1 segment · GSM-7 · 0 left" in counter.inner_text()
    body.press("End")
    body.type("€")
    assert "161 characters · 2 segments · GSM-7" in counter.inner_text()
    body.fill("Hi 😀")
    assert "4 characters · 1 segment · UCS-2 · 65 left" in counter.inner_text()

    body.fill("Hi ")
    body.press("End")
    page.get_by_role("button", name="{{first_name|there}}").click()
    assert body.input_value() == "Hi {{first_name|there}}"

    page.get_by_label("Preview for contact").select_option(str(contact.pk))
    page.get_by_role("button", name="Show preview").click()
    assert page.locator("#preview .sms-bubble").inner_text() == "Hi Zoë"

    page.get_by_role("button", name="Save").click()
    page.wait_for_selector("text=saved")
    text.refresh_from_db()
    assert text.body == "Hi {{first_name|there}}"

    with mock.patch("texts.tasks.outbound_send_batch.apply_async"):
        page.get_by_label("Send a test to").fill("not a number")
        page.get_by_role("button", name="Send test").click()
        page.wait_for_selector("#test-send .error")
        assert not OutboundMessage.objects.exists()
        page.get_by_label("Send a test to").fill("+1 415 555 0177")
        page.get_by_role("button", name="Send test").click()
        page.wait_for_selector("text=Test queued to +14155550177")
    assert OutboundMessage.objects.get().source == "test"


def test_editor_keyboard_focus_reaches_counter_controls(login: Any, live_server: Any, marketer_user: User) -> None:
    page = login(marketer_user)
    page.goto(f"{live_server.url}/text-messages/new/")
    page.get_by_label("Internal name").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "id_body"
    page.keyboard.type("Hi {")
    # A new text is marketing: its first recipient also gets the opt-out footer's line ("\n" + 21 characters).
    counter = page.locator("#sms-counter").inner_text()
    assert "26 characters · 1 segment · GSM-7 · 133 left" in counter
    assert "with the opt-out footer" in counter
