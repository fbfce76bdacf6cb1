"""The dashboard shows real figures from the database, a setup checklist until set up, and recent activity."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from contacts.models import Contact
from contacts.services import dnc_add
from texts.models import OutboundMessage, Source, Status

pytestmark = pytest.mark.django_db


def _cards(client: Client) -> dict[str, str]:
    response = client.get("/")
    assert response.status_code == 200
    return {card.label: card.value for card in response.context["cards"]}


def test_dashboard_counts_contacts_dnc_and_messages(marketer_client: Client) -> None:
    contacts = [Contact.objects.create(first_name=f"C{i}", mobile=f"+1415555{i:04d}") for i in range(3)]
    dnc_add(contact=contacts[0], reason="unsubscribed", source="keyword")
    now = timezone.now()
    for contact, status in zip(contacts, [Status.DELIVERED, Status.DELIVERED, Status.FAILED], strict=True):
        OutboundMessage.objects.create(
            contact=contact, to_number=str(contact.mobile), source=Source.TEST, status=status, sent_at=now
        )
    OutboundMessage.objects.create(contact=contacts[1], to_number="+14155550001", source=Source.TEST)
    cards = _cards(marketer_client)
    assert cards["Contacts"] == "3"
    assert cards["SMS Do Not Contact"] == "1"
    assert cards["Delivery rate, 7 days"] == "66.7%"
    assert cards["Failed in the last 24 hours"] == "1"
    assert cards["Waiting to send"] == "1"


def test_dashboard_lists_setup_steps_and_recent_activity(marketer_client: Client) -> None:
    response = marketer_client.get("/")
    assert [step.done for step in response.context["steps"]] == [False, False, False, False]
    assert b"Get started" in response.content
    contact = Contact.objects.create(first_name="Rita", mobile="+14155550100")
    dnc_add(contact=contact, reason="manual", source="marketer")
    response = marketer_client.get("/")
    assert "Do Not Contact" in response.content.decode()
    assert response.context["activity"][0].contact == contact
