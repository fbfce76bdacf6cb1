"""The opt-out footer (issue 17): marketing texts carry "Reply STOP to opt out" on the first message a contact
receives (the default) or on every one (a setting), never transactional ones; the segments the engine records, the
editor's server-side count and the broadcast's estimate include it. The JavaScript counter agrees in Chromium:
test_opt_out_footer_browser.py."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from contacts.models import Contact, Segment
from contacts.services import segment_add_contacts
from providers.segments import count_segments
from texts import services
from texts.estimates import broadcast_estimate
from texts.footer import footer_due, with_footer
from texts.models import CountryPrice, OutboundMessage, TextMessage
from texts.services.outbound import outbound_enqueue

from .conftest import Pipeline

pytestmark = pytest.mark.django_db

FOOTER = "Reply STOP to opt out"
BODY_150 = "x" * 150  # one segment alone, two with the footer's line


@pytest.fixture(autouse=True)
def _always_open(settings: Any) -> None:
    settings.SMS_QUIET_HOURS_START, settings.SMS_QUIET_HOURS_END = "00:00", "23:59"
    settings.SMS_OPT_OUT_FOOTER = FOOTER
    settings.SMS_OPT_OUT_FOOTER_EVERY = False


def _send(pipeline: Pipeline, text: TextMessage, contact: Contact) -> OutboundMessage:
    assert outbound_enqueue(text_message=text, contacts=[contact.pk], source="campaign") == 1
    row = OutboundMessage.objects.filter(text_message=text, contact=contact).latest("pk")
    services.outbound_process_batch(message_ids=[row.pk], **pipeline.kwargs())
    row.refresh_from_db()
    return row


def test_with_footer_puts_it_on_a_line_of_its_own_once() -> None:
    assert with_footer("Sale today", FOOTER) == "Sale today\nReply STOP to opt out"
    assert with_footer("Sale today\nReply STOP to opt out", FOOTER) == "Sale today\nReply STOP to opt out"
    assert with_footer("Sale today", "") == "Sale today"


def test_the_first_marketing_text_carries_the_footer_and_the_next_does_not(
    pipeline: Pipeline, make_contact: Callable[..., Contact]
) -> None:
    contact = make_contact()
    first = TextMessage.objects.create(name="Sale", body="Sale today", category="marketing")
    second = TextMessage.objects.create(name="Sale 2", body="Sale again", category="marketing")
    row = _send(pipeline, first, contact)
    assert pipeline.provider.requests[-1].body == "Sale today\nReply STOP to opt out"
    assert row.body == "Sale today\nReply STOP to opt out"
    _send(pipeline, second, contact)
    assert pipeline.provider.requests[-1].body == "Sale again"


def test_transactional_texts_never_carry_it_nor_count_as_the_first(
    pipeline: Pipeline, make_contact: Callable[..., Contact]
) -> None:
    contact = make_contact()
    receipt = TextMessage.objects.create(name="Receipt", body="Paid", category="transactional")
    sale = TextMessage.objects.create(name="Sale", body="Sale today", category="marketing")
    _send(pipeline, receipt, contact)
    assert pipeline.provider.requests[-1].body == "Paid"
    _send(pipeline, sale, contact)
    assert pipeline.provider.requests[-1].body.endswith("\nReply STOP to opt out")


def test_every_marketing_text_carries_it_when_set(
    pipeline: Pipeline, make_contact: Callable[..., Contact], settings: Any
) -> None:
    settings.SMS_OPT_OUT_FOOTER_EVERY = True
    contact = make_contact()
    for name in ("One", "Two"):
        text = TextMessage.objects.create(name=name, body=name, category="marketing")
        _send(pipeline, text, contact)
        assert pipeline.provider.requests[-1].body == f"{name}\nReply STOP to opt out"


def test_an_empty_footer_adds_nothing(pipeline: Pipeline, make_contact: Callable[..., Contact], settings: Any) -> None:
    settings.SMS_OPT_OUT_FOOTER = ""
    text = TextMessage.objects.create(name="Sale", body="Sale today", category="marketing")
    _send(pipeline, text, make_contact())
    assert pipeline.provider.requests[-1].body == "Sale today"


def test_the_recorded_segments_count_the_footer(pipeline: Pipeline, make_contact: Callable[..., Contact]) -> None:
    text = TextMessage.objects.create(name="Long", body=BODY_150, category="marketing")
    assert count_segments(BODY_150).segments == 1
    row = _send(pipeline, text, make_contact())
    assert row.segments == 2


def test_footer_due_is_one_query_for_a_chunk(
    make_contact: Callable[..., Contact], django_assert_num_queries: Any, pipeline: Pipeline
) -> None:
    contacts = [make_contact() for _ in range(5)]
    text = TextMessage.objects.create(name="Sale", body="Sale", category="marketing")
    _send(pipeline, text, contacts[0])
    with django_assert_num_queries(1):
        due = footer_due(contact_ids=[c.pk for c in contacts])
    assert due == {c.pk for c in contacts[1:]}


# What the editor and the estimate count


def _editor_form(**extra: str) -> dict[str, Any]:
    data = {"name": "Spring", "body": BODY_150, "language": "en", "category": "marketing", "track_links": "unknown"}
    data.update(extra)
    return data


def test_the_editors_server_side_count_includes_the_footer_for_marketing(marketer_client: Client) -> None:
    Contact.objects.create(first_name="Ada", mobile="+14155550100")
    marketing = marketer_client.post("/text-messages/new/", _editor_form(name=""))  # invalid: the form again
    assert marketing.context["info"].segments == 2
    assert "with the opt-out footer" in marketing.content.decode()
    assert marketing.context["sample"]["opt_out_footer"] == FOOTER
    transactional = marketer_client.post("/text-messages/new/", _editor_form(name="", category="transactional"))
    assert transactional.context["info"].segments == 1
    assert "with the opt-out footer" not in transactional.content.decode()


def test_the_estimate_counts_the_footer_for_those_who_get_it(
    pipeline: Pipeline, make_contact: Callable[..., Contact]
) -> None:
    segment = Segment.objects.create(name="Regulars")
    people = [make_contact(country="US") for _ in range(2)]
    segment_add_contacts(segment=segment, contact_ids=[c.pk for c in people], record=False)
    CountryPrice.objects.create(country="US", price_per_segment=Decimal("0.01"), currency="USD")
    text = TextMessage(name="Long", body=BODY_150, category="marketing")
    estimate = broadcast_estimate(text_message=text, segment_ids=[segment.pk])
    assert (estimate.segments_min, estimate.segments_max) == (2, 2)
    assert estimate.cost == {"USD": Decimal("0.04")}
    # The first has had a marketing text: only the second's message carries the footer now.
    _send(pipeline, TextMessage.objects.create(name="Hi", body="Hi", category="marketing"), people[0])
    estimate = broadcast_estimate(text_message=text, segment_ids=[segment.pk])
    assert (estimate.segments_min, estimate.segments_max) == (1, 2)
    receipt = TextMessage(name="R", body=BODY_150, category="transactional")
    assert broadcast_estimate(text_message=receipt, segment_ids=[segment.pk]).segments_max == 1
