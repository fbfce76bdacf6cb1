"""No broadcast starts by surprise: saving one that would go by itself, Send now and switching automatic sends on
ask first, with recipients, segments per recipient (on rendered samples) and the estimated cost from the admin's
price table. The same in Chromium: tests/browser/test_engagement_browser.py."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from django.test import Client

from contacts.models import Contact, Segment
from contacts.services import segment_add_contacts
from tests.consent_helpers import give_consent
from texts.estimates import broadcast_estimate
from texts.models import CountryPrice, OutboundMessage, TextMessage
from texts.services.broadcasts import broadcasts_send_all

pytestmark = pytest.mark.django_db

FILLER = "x" * 140  # with "Hi Ada, " 148 characters: one segment; as token syntax with its braces, two


@pytest.fixture
def audience(db: None) -> Segment:
    segment = Segment.objects.create(name="Regulars")
    contacts = [Contact.objects.create(first_name="Ada", mobile=f"+1415555{i:04d}", country="US") for i in range(3)]
    contacts.append(Contact.objects.create(first_name="Bo", mobile="+447400123456", country="GB"))
    segment_add_contacts(segment=segment, contact_ids=[c.pk for c in contacts], record=False)
    CountryPrice.objects.create(country="US", price_per_segment=Decimal("0.0083"), currency="USD")
    CountryPrice.objects.create(country="*", price_per_segment=Decimal("0.0500"), currency="USD")
    return segment


def form(segment: Segment, **extra: str) -> dict[str, Any]:
    data = {"name": "Spring", "body": f"Hi {{{{first_name|there}}}}, {FILLER}", "language": "en",
            "category": "transactional", "track_links": "unknown", "is_published": "on", "segments": [segment.pk],
            "send_to_new_members": "on"}  # fmt: skip
    data.update(extra)
    return data


def test_segments_are_counted_on_rendered_recipients_and_links_at_their_short_length(
    audience: Segment, settings: Any
) -> None:
    settings.PUBLIC_BASE_URL = "https://sms.example.com"
    text = TextMessage(name="S", body=f"Hi {{{{first_name|there}}}}, {FILLER}", category="transactional")
    estimate = broadcast_estimate(text_message=text, segment_ids=[audience.pk])
    assert (estimate.recipients, estimate.segments_min, estimate.segments_max) == (4, 1, 1)
    # 3 US recipients x 0.0083 + 1 GB (the * row) x 0.05
    assert estimate.cost == {"USD": Decimal("0.0749")}
    long_link = "https://shop.example.com/" + "a" * 150
    text = TextMessage(name="S", body=f"Hi {{{{first_name}}}} {long_link}", category="marketing")
    give_consent(Contact.objects.all())  # marketing is estimated for the consented only (test below)
    tracked = broadcast_estimate(text_message=text, segment_ids=[audience.pk])
    assert tracked.segments_max == 1  # the 175-character link goes as a 38-character short link
    assert tracked.quiet_hours == "08:00 and 21:00"  # a marketing message waits for them


def test_a_marketing_estimate_counts_only_the_consented(audience: Segment) -> None:
    # The fan-out queues marketing only for subscribed numbers (SMS_MARKETING_REQUIRES_CONSENT): so does the estimate.
    text = TextMessage(name="S", body="Sale today", category="marketing")
    assert broadcast_estimate(text_message=text, segment_ids=[audience.pk]).recipients == 0
    give_consent(Contact.objects.filter(country="US")[:2])
    estimate = broadcast_estimate(text_message=text, segment_ids=[audience.pk])
    assert estimate.recipients == 2
    assert estimate.cost == {"USD": Decimal("0.0166")}
    receipt = TextMessage(name="R", body="Paid", category="transactional")
    assert broadcast_estimate(text_message=receipt, segment_ids=[audience.pk]).recipients == 4


def test_saving_a_broadcast_that_would_go_by_itself_asks_first(marketer_client: Client, audience: Segment) -> None:
    response = marketer_client.post("/text-messages/new/", form(audience))
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-testid="confirm-broadcast"' in page
    assert "Send to 4 contacts?" in page
    assert "1 segment per recipient" in page
    assert "Estimated cost: 0.07 USD" in page
    assert "at the next scheduled run" in page
    assert not TextMessage.objects.exists()  # nothing saved, nothing can go
    assert marketer_client.post("/text-messages/new/", form(audience, confirmed="send")).status_code == 302
    assert TextMessage.objects.get().send_to_new_members is True


def test_save_but_only_send_now_sends_it(marketer_client: Client, audience: Segment) -> None:
    marketer_client.post("/text-messages/new/", form(audience, confirmed="hold"))
    text = TextMessage.objects.get()
    assert (text.is_published, text.send_to_new_members) == (True, False)
    with mock.patch("texts.services.broadcasts._enqueue_batch"):
        assert broadcasts_send_all() == []  # the scheduled run leaves it alone
        (run,) = broadcasts_send_all(text_message_ids=[text.pk])  # Send now sends it
    assert run.queued == 4
    page = marketer_client.get(f"/text-messages/{text.pk}/broadcast/").content.decode()
    assert "Only Send now sends it" in page


def test_nothing_to_confirm_when_it_cannot_go_by_itself(marketer_client: Client, audience: Segment) -> None:
    unpublished = form(audience)
    unpublished.pop("is_published")
    assert marketer_client.post("/text-messages/new/", unpublished).status_code == 302
    text = TextMessage.objects.get()
    OutboundMessage.objects.bulk_create(
        OutboundMessage(text_message=text, contact=c, to_number=str(c.mobile), source="broadcast")
        for c in Contact.objects.all()
    )
    # Published now, but everyone has had it: saving sends nothing, so it does not ask.
    assert marketer_client.post(f"/text-messages/{text.pk}/", form(audience)).status_code == 302


def test_send_now_asks_with_the_count_and_cost_then_sends(
    marketer_client: Client, audience: Segment, django_capture_on_commit_callbacks: Any
) -> None:
    text = TextMessage.objects.create(name="S", body="Hi {{first_name}}", category="transactional")
    text.segments.set([audience])
    url = f"/text-messages/{text.pk}/broadcast/send/"
    with mock.patch("texts.tasks.broadcast_send_task.apply_async") as queued:
        with django_capture_on_commit_callbacks(execute=True):
            asked = marketer_client.post(url, HTTP_HX_REQUEST="true").content.decode()
        assert "Send to 4 contacts?" in asked
        assert "It goes <strong>now</strong>" in asked
        assert "Estimated cost: 0.07 USD" in asked
        assert not queued.called
        assert marketer_client.post(url).status_code == 302  # no JavaScript: to the page, which asks
        assert not queued.called
        with django_capture_on_commit_callbacks(execute=True):
            marketer_client.post(url, {"confirmed": "1"}, HTTP_HX_REQUEST="true")
        assert queued.called


def test_the_panel_says_new_members_receive_it_and_switching_on_asks(
    marketer_client: Client, audience: Segment
) -> None:
    text = TextMessage.objects.create(name="S", body="Hi", category="transactional", send_to_new_members=False)
    text.segments.set([audience])
    switch = f"/text-messages/{text.pk}/broadcast/new-members/"
    asked = marketer_client.post(switch, {"on": "1"}, HTTP_HX_REQUEST="true").content.decode()
    assert "Send to 4 contacts?" in asked
    text.refresh_from_db()
    assert text.send_to_new_members is False
    done = marketer_client.post(switch, {"on": "1", "confirmed": "1"}, HTTP_HX_REQUEST="true").content.decode()
    assert "New members of its segments receive it automatically" in done
    marketer_client.post(switch, {"on": "0"}, HTTP_HX_REQUEST="true")
    text.refresh_from_db()
    assert text.send_to_new_members is False


def test_admins_keep_the_price_table(admin_client: Client, marketer_client: Client) -> None:
    assert marketer_client.get("/settings/sms-prices/").status_code == 403
    data = {
        "form-TOTAL_FORMS": "1", "form-INITIAL_FORMS": "0", "form-MIN_NUM_FORMS": "0", "form-MAX_NUM_FORMS": "1000",
        "form-0-country": "gb", "form-0-price_per_segment": "0.0463", "form-0-currency": "gbp",
    }  # fmt: skip
    assert admin_client.post("/settings/sms-prices/", data).status_code == 302
    assert CountryPrice.objects.get().currency == "GBP"
    data.update({"form-0-country": "G1", "form-0-price_per_segment": "-1"})
    page = admin_client.post("/settings/sms-prices/", data).content.decode()
    assert "Two letters (GB, US), or * for every other country." in page
    assert "A price cannot be negative." in page
