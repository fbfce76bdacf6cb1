"""The console plugin: its own sender, and a callback of its own (DEBUG only) for simulated replies and statuses."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from contacts.models import Contact
from contacts.services import contact_is_dnc
from providers.console.provider import CONSOLE_NUMBER, ConsoleProvider
from providers.registry import get_provider
from texts.models import OutboundMessage, Status

pytestmark = pytest.mark.django_db

URL = "/sms/console/callback"


def test_the_console_sends_from_a_number_of_its_own(settings: Any) -> None:
    settings.SMS_PROVIDER = "console"
    provider = get_provider()
    assert isinstance(provider, ConsoleProvider)
    assert [s.sender.value for s in provider.config.senders] == [CONSOLE_NUMBER]


def test_its_callback_answers_only_in_debug(settings: Any) -> None:
    settings.DEBUG = False
    assert Client().post(URL, {"id": "c-1", "from": "+14155550123", "body": "HELP"}).status_code == 403


def test_a_simulated_reply_and_status_are_applied(settings: Any) -> None:
    settings.DEBUG = True
    help_reply = Client().post(URL, {"id": "c-1", "from": "+14155550123", "body": "HELP"})
    assert (help_reply.status_code, help_reply.content.decode()) == (200, ConsoleProvider.config.help_text)
    assert Client().post(URL, {"id": "c-2", "from": "+14155550123", "body": "STOP"}).status_code == 200
    assert contact_is_dnc(contact=Contact.objects.get(mobile="+14155550123"))

    sent = OutboundMessage.objects.create(
        to_number="+14155550124", source="api", status=Status.SENT, provider_sid="SMc0", sent_at=timezone.now()
    )
    assert Client().post(URL, {"id": "SMc0", "status": "delivered"}).status_code == 200
    sent.refresh_from_db()
    assert sent.status == Status.DELIVERED
    assert Client().post(URL, {"status": "delivered"}).status_code == 400
