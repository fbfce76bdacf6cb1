"""The broadcast panel on the text message page and its "Send now" button (which queues the cron job)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from contacts.models import Contact, DoNotContact, Segment
from contacts.services import dnc_add, segment_add_contacts
from tests.consent_helpers import give_consent
from texts.models import OutboundMessage, TextMessage
from texts.services import broadcasts

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_progress() -> None:
    cache.clear()


def make_broadcast(contacts: list[Contact], **fields: Any) -> TextMessage:
    segment = Segment.objects.create(name="Audience")
    segment_add_contacts(segment=segment, contact_ids=[c.pk for c in contacts], record=False)
    text = TextMessage.objects.create(name="Spring sale", body="Hi {{first_name}}", **fields)
    text.segments.set([segment])
    return text


def test_panel_shows_audience_minus_dnc_no_number_and_already_sent(
    marketer_client: Client, make_contact: Callable[..., Contact]
) -> None:
    people = [make_contact() for _ in range(4)]
    text = make_broadcast([*people, make_contact(mobile=None)])
    dnc_add(contact=people[0], reason=DoNotContact.Reason.UNSUBSCRIBED, source=DoNotContact.Source.MARKETER)
    broadcasts.broadcast_send(text_message=text, limit=1, enqueue=lambda ids: None)

    page = marketer_client.get(reverse("texts:broadcast", args=[text.pk])).content.decode()

    assert '<td data-testid="will-receive">2</td>' in page
    assert '<td data-testid="pending">1</td>' in page
    assert "Last run:" in page
    assert "Send now" in page
    edit = marketer_client.get(reverse("texts:edit", args=[text.pk])).content.decode()
    assert reverse("texts:broadcast", args=[text.pk]) in edit


def test_send_now_refuses_an_unpublished_message(marketer_client: Client, make_contact: Callable[..., Contact]) -> None:
    text = make_broadcast([make_contact()], is_published=False)

    response = marketer_client.post(reverse("texts:broadcast_send", args=[text.pk]), HTTP_HX_REQUEST="true")

    assert "Not sent: it is unpublished." in response.content.decode()
    assert broadcasts.broadcast_progress(text_message_id=text.pk).state == ""


def test_send_now_needs_login_and_post(
    client: Client, marketer_client: Client, make_contact: Callable[..., Contact]
) -> None:
    text = make_broadcast([make_contact()])
    url = reverse("texts:broadcast_send", args=[text.pk])
    assert client.post(url).status_code == 302  # to the login page
    assert marketer_client.get(url).status_code == 405
    assert not OutboundMessage.objects.exists()


def test_panel_without_segments_explains_broadcasts(marketer_client: Client) -> None:
    text = TextMessage.objects.create(name="Receipt", body="Paid")
    page = marketer_client.get(reverse("texts:broadcast", args=[text.pk])).content.decode()
    assert "Add segments to this text message" in page


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_send_now_runs_the_job_on_a_real_worker_and_the_panel_follows(
    celery_worker: Any, marketer_client: Client
) -> None:
    contacts = Contact.objects.bulk_create(
        Contact(first_name=f"C{i}", mobile=f"+1212555{i:04d}", country="US") for i in range(30)
    )
    give_consent(contacts)
    text = make_broadcast(contacts)
    url = reverse("texts:broadcast_send", args=[text.pk])

    asked = marketer_client.post(url, HTTP_HX_REQUEST="true").content.decode()
    assert "Send to 30 contacts?" in asked  # Send now asks first (tests/texts/test_safe_sending.py)
    response = marketer_client.post(url, {"confirmed": "1"}, HTTP_HX_REQUEST="true")
    assert 'hx-trigger="every 2s"' in response.content.decode()  # polls while the job runs

    deadline = time.monotonic() + 60
    while broadcasts.broadcast_progress(text_message_id=text.pk).state != "done":
        assert time.monotonic() < deadline, broadcasts.broadcast_progress(text_message_id=text.pk)
        time.sleep(0.2)
    assert OutboundMessage.objects.filter(text_message=text).count() == 30
    page = marketer_client.get(reverse("texts:broadcast", args=[text.pk])).content.decode()
    assert "Last run:" in page
    assert "queued 30" in page
    assert '<td data-testid="will-receive">0</td>' in page
    # The panel keeps following while queued messages wait to go (tests/texts/test_progress.py), and stops once none
    # does.
    OutboundMessage.objects.filter(text_message=text).update(status="sent")
    page = marketer_client.get(reverse("texts:broadcast", args=[text.pk])).content.decode()
    assert 'hx-trigger="every 2s"' not in page
    assert 'data-testid="sending"' not in page
