"""Status callbacks on SQLite (`make run`'s embedded defaults), which has no data-modifying CTEs: the UPDATE …
RETURNING alone, then a look-up when nothing moved, and the timeline entry written apart."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from contacts.models import Contact, TimelineEvent
from contacts.services import contact_is_dnc
from providers.base import StatusEvent
from providers.twilio.testing import configure, post, sid, status_params
from texts.inbound import outbound_status_apply
from texts.models import OutboundMessage, Status, TextMessage

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _sqlite(settings: Any) -> None:
    if connection.vendor != "sqlite":
        pytest.fail("the embedded pass runs on SQLite")
    configure(settings)


def _sent(contact: Contact) -> OutboundMessage:
    return OutboundMessage.objects.create(
        contact=contact,
        to_number=str(contact.mobile),
        text_message=TextMessage.objects.create(name="Spring sale", body="Hi"),
        source="api",
        status=Status.SENT,
        provider_sid=sid(),
        sent_at=timezone.now(),
    )


def test_a_status_callback_applies_on_sqlite_and_never_moves_back() -> None:
    contact = Contact.objects.create(mobile="+14155550123")
    message = _sent(contact)
    client = Client()
    for status in ("sent", "delivered", "sent", "failed"):
        assert post(client, status_params(message.provider_sid or "", status)).status_code == 200
    message.refresh_from_db()
    assert message.status == Status.DELIVERED
    entry = TimelineEvent.objects.get(contact=contact, kind="sms.delivered")
    assert entry.title == "Text message delivered: Spring sale"


def test_not_moving_and_unknown_sids_on_sqlite() -> None:
    contact = Contact.objects.create(mobile="+14155550123")
    message = _sent(contact)
    OutboundMessage.objects.filter(pk=message.pk).update(status=Status.FAILED)
    late = StatusEvent(message_sid=message.provider_sid or "", status="failed", error_code="21610")
    assert not outbound_status_apply(event=late)
    assert contact_is_dnc(contact=contact)  # found though it did not move
    assert not outbound_status_apply(event=StatusEvent(message_sid=sid(), status="delivered"))
