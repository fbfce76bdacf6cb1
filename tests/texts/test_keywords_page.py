"""Settings > SMS keywords: everyone sees the words, admins manage them; bad input is refused with a reason.
The built-in words' protection: test_protected_keywords.py."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from texts.models import Keyword

pytestmark = pytest.mark.django_db


def test_marketer_sees_seeded_keywords_and_settings_link(marketer_client: Client) -> None:
    page = marketer_client.get("/settings/sms-keywords/").content.decode()
    for word in ("STOP", "STOPALL", "UNSUBSCRIBE", "START", "UNSTOP", "HELP", "INFO"):
        assert f"<strong>{word}</strong>" in page
    assert "/settings/sms-keywords/" in marketer_client.get("/settings/").content.decode()
    assert "signatures are NOT checked" not in page


def test_add_custom_keyword_normalised(admin_client: Client) -> None:
    response = admin_client.post(
        "/settings/sms-keywords/", {"word": " hours! ", "kind": "custom", "auto_reply": "9-5", "active": "on"}
    )
    assert response.status_code == 302
    assert Keyword.objects.get(word="HOURS").auto_reply == "9-5"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"word": "stop", "kind": "opt_out"}, "exists already"),
        ({"word": "two words", "kind": "opt_out"}, "one word"),
        ({"word": "PROMO", "kind": "custom", "auto_reply": ""}, "needs an auto-reply"),
    ],
)
def test_bad_keyword_is_refused(admin_client: Client, data: dict[str, str], error: str) -> None:
    before = Keyword.objects.count()
    response = admin_client.post("/settings/sms-keywords/", data)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert Keyword.objects.count() == before


def test_edit_and_delete(admin_client: Client) -> None:
    keyword = Keyword.objects.create(word="ARRET", kind="opt_out")
    admin_client.post(f"/settings/sms-keywords/{keyword.pk}/", {"word": "ARRET", "kind": "opt_out", "auto_reply": ""})
    keyword.refresh_from_db()
    assert keyword.active is False
    admin_client.post(f"/settings/sms-keywords/{keyword.pk}/delete/")
    assert not Keyword.objects.filter(pk=keyword.pk).exists()


def test_unsigned_mode_banner_on_keywords_and_plugin_pages(admin_client: Client, settings: Any) -> None:
    settings.SMS_CALLBACK_SKIP_SIGNATURE = True
    assert "signatures are NOT checked" in admin_client.get("/settings/sms-keywords/").content.decode()
    assert "signatures are NOT checked" in admin_client.get("/settings/plugins/twilio/").content.decode()


def test_replies_page_lists_inbound(marketer_client: Client) -> None:
    from texts.models import InboundMessage

    InboundMessage.objects.create(message_sid="SM1", account_sid="AC1", from_number="+14155550123", body="Hello there")
    assert "Hello there" in marketer_client.get("/text-messages/replies/").content.decode()
