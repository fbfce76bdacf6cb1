"""A decision's wait starts when its text leaves; "clicks a link" takes its yes path on a click; the builder's cards
count texts as the provider took them and name their segments. The same with real workers and fake_twilio:
tests/texts/test_engagement_processes.py."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns import engine, services, waits
from campaigns.models import Campaign, CampaignEvent, CampaignEventLog, LogStatus
from contacts.models import Contact, Segment
from providers.twilio.testing import sid
from texts.models import OutboundMessage, Status, TextMessage
from texts.status_buffer import BufferedStatus, outbound_statuses_apply

from .conftest import statuses

pytestmark = pytest.mark.django_db

Make = Callable[..., list[Contact]]
Add = Callable[..., CampaignEvent]


@pytest.fixture
def asked(add_event: Add) -> tuple[CampaignEvent, CampaignEvent]:
    text = TextMessage.objects.create(name="Ask", body="Coming on Friday? Reply YES", category="transactional")
    send = add_event("send_text_message", text_message=text)
    decision = add_event("replied_to_text", parent=send, wait_amount=1, wait_unit="days")
    return send, decision


def _sent(contact: Contact, at: dt.datetime, status: str = Status.SENT) -> OutboundMessage:
    row = OutboundMessage.objects.get(contact=contact, source="campaign")
    stamp = {"sent_at": at} if status == Status.SENT else {"failed_at": at}
    OutboundMessage.objects.filter(pk=row.pk).update(status=status, **stamp)
    return row


def test_the_wait_does_not_start_while_the_text_is_queued(
    campaign: Campaign, make_contacts: Make, asked: tuple[CampaignEvent, CampaignEvent]
) -> None:
    _, decision = asked
    (contact,) = make_contacts(1)
    services.campaigns_process()
    log = CampaignEventLog.objects.get(event=decision)
    assert (log.status, log.detail) == (LogStatus.WAITING, waits.TEXT_PENDING)
    # Days later the text is still queued (a slow sender, quiet hours): no timeout, nothing to answer yet.
    later = timezone.now() + dt.timedelta(days=5)
    summary = engine.RunSummary()
    engine.decisions_time_out(batch=10, now=later, summary=summary)
    assert summary.timed_out == 0
    assert statuses(decision) == {contact.pk: (LogStatus.WAITING, None)}


def test_the_wait_runs_from_the_moment_the_text_was_sent(
    campaign: Campaign, make_contacts: Make, asked: tuple[CampaignEvent, CampaignEvent]
) -> None:
    _, decision = asked
    (contact,) = make_contacts(1)
    services.campaigns_process()
    sent_at = timezone.now() + dt.timedelta(hours=10)
    row = _sent(contact, sent_at)
    # The engine's outcome write announces it (texts.signals.message_status_changed).
    waits.on_texts_left(sender=None, message_ids=[row.pk], status=Status.SENT)
    log = CampaignEventLog.objects.get(event=decision)
    assert log.detail == waits.WAITING
    assert abs(log.trigger_at - (sent_at + dt.timedelta(days=1))) < dt.timedelta(seconds=1)
    summary = engine.RunSummary()
    engine.decisions_time_out(batch=10, now=sent_at + dt.timedelta(hours=23), summary=summary)
    assert summary.timed_out == 0
    engine.decisions_time_out(batch=10, now=sent_at + dt.timedelta(days=1, minutes=1), summary=summary)
    assert statuses(decision) == {contact.pk: (LogStatus.DONE, "no")}


def test_an_engine_run_starts_waits_whose_signal_never_came(
    campaign: Campaign, make_contacts: Make, asked: tuple[CampaignEvent, CampaignEvent]
) -> None:
    _, decision = asked
    (contact,) = make_contacts(1)
    services.campaigns_process()
    sent_at = timezone.now()
    _sent(contact, sent_at)  # a status callback overtook the engine's write: no signal
    engine.decisions_time_out(batch=10, now=sent_at + dt.timedelta(minutes=1), summary=engine.RunSummary())
    log = CampaignEventLog.objects.get(event=decision)
    assert log.detail == waits.WAITING
    assert abs(log.trigger_at - (sent_at + dt.timedelta(days=1))) < dt.timedelta(seconds=1)


def test_a_text_that_failed_ends_the_wait_at_once(
    campaign: Campaign, make_contacts: Make, asked: tuple[CampaignEvent, CampaignEvent]
) -> None:
    _, decision = asked
    (contact,) = make_contacts(1)
    services.campaigns_process()
    now = timezone.now()
    row = _sent(contact, now, status=Status.FAILED)
    waits.on_texts_left(sender=None, message_ids=[row.pk], status=Status.FAILED)
    engine.decisions_time_out(batch=10, now=now + dt.timedelta(seconds=5), summary=engine.RunSummary())
    assert statuses(decision) == {contact.pk: (LogStatus.DONE, "no")}


def test_a_decision_reached_after_its_text_was_sent_waits_from_then(
    campaign: Campaign, make_contacts: Make, add_event: Add
) -> None:
    text = TextMessage.objects.create(name="Ask", body="Reply YES", category="transactional")
    send = add_event("send_text_message", text_message=text)
    middle = add_event("add_to_segment", parent=send, properties={"segment_id": Segment.objects.create(name="S").pk},
                       trigger_mode="interval", trigger_interval=1, trigger_unit="hours")  # fmt: skip
    decision = add_event("replied_to_text", parent=middle, wait_amount=2, wait_unit="hours")
    (contact,) = make_contacts(1)
    services.campaigns_process()
    _sent(contact, timezone.now())
    CampaignEventLog.objects.filter(event=middle).update(trigger_at=timezone.now())
    services.campaigns_process()
    log = CampaignEventLog.objects.get(event=decision)
    assert log.detail == waits.WAITING  # its text had left: the wait starts as the contact reaches it
    assert log.trigger_at > timezone.now() + dt.timedelta(hours=1, minutes=59)


def test_a_click_takes_the_yes_path(campaign: Campaign, make_contacts: Make, add_event: Add) -> None:
    text = TextMessage.objects.create(name="Sale", body="Shoes: https://shop.example/shoes", category="transactional")
    send = add_event("send_text_message", text_message=text)
    decision = add_event("clicked_link", parent=send, wait_amount=2, wait_unit="days",
                         properties={"url_pattern": "*example/shoes*"})  # fmt: skip
    yes = add_event("add_dnc", parent=decision, path="yes")
    clicker, other = make_contacts(2)
    services.campaigns_process()
    for contact in (clicker, other):
        _sent(contact, timezone.now())
    engine.decisions_time_out(batch=10, summary=engine.RunSummary())
    assert waits.link_clicked(contact_id=clicker.pk, url="https://elsewhere.example/") == []  # not the link asked
    assert len(waits.link_clicked(contact_id=clicker.pk, url="https://shop.example/shoes")) == 1
    assert waits.link_clicked(contact_id=clicker.pk, url="https://shop.example/shoes") == []  # once
    assert statuses(decision) == {clicker.pk: (LogStatus.DONE, "yes"), other.pk: (LogStatus.WAITING, None)}
    engine.contact_events_run(contact_id=clicker.pk)
    assert statuses(yes) == {clicker.pk: (LogStatus.DONE, None)}


def test_a_click_before_the_text_left_cannot_answer_it(campaign: Campaign, make_contacts: Make, add_event: Add) -> None:
    text = TextMessage.objects.create(name="Sale", body="https://shop.example/", category="transactional")
    decision = add_event("clicked_link", parent=add_event("send_text_message", text_message=text), wait_amount=1)
    (contact,) = make_contacts(1)
    services.campaigns_process()
    assert waits.link_clicked(contact_id=contact.pk, url="https://shop.example/") == []  # an old link, elsewhere
    assert statuses(decision) == {contact.pk: (LogStatus.WAITING, None)}


def test_cards_count_texts_as_the_provider_took_them_and_name_segments(
    campaign: Campaign, make_contacts: Make, add_event: Add, marketer_client: Client
) -> None:
    text = TextMessage.objects.create(name="Hello", body="Hi", category="transactional")
    send = add_event("send_text_message", text_message=text)
    add_event("add_to_segment", parent=send, properties={"segment_id": Segment.objects.create(name="Greeted").pk})
    contacts = make_contacts(3)
    services.campaigns_process()
    _sent(contacts[0], timezone.now())
    page = marketer_client.get(f"/campaigns/{campaign.pk}/builder/").content.decode()
    card = page[page.index(f'id="event-{send.pk}"') :]
    card = card[: card.index("</article>")]
    assert "<dt>Queued</dt><dd>2</dd>" in card
    assert "<dt>Sent</dt><dd>1</dd>" in card
    assert "<dt>Done</dt>" not in card  # "done" only meant queued
    assert "Adds to “Greeted”" in page


def test_the_campaign_page_shows_its_texts_results_and_cost(
    campaign: Campaign, make_contacts: Make, add_event: Add, marketer_client: Client
) -> None:
    from decimal import Decimal

    text = TextMessage.objects.create(name="Hello", body="Hi", category="transactional")
    add_event("send_text_message", text_message=text)
    first, second = make_contacts(2)
    services.campaigns_process()
    for contact in (first, second):
        row = _sent(contact, timezone.now())
        OutboundMessage.objects.filter(pk=row.pk).update(price=Decimal("-0.0463"), price_unit="GBP")
    OutboundMessage.objects.create(to_number="+1", source="broadcast", status="sent", price=Decimal("-9"))  # not its
    response = marketer_client.get(f"/campaigns/{campaign.pk}/results/", HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert "Cost: 0.0926 GBP" in page
    assert response.context["funnel"].steps()[:2] == [("Queued", 2), ("Sent", 2)]
    assert 'data-chart="funnel"' in page


def _held_and_started_for(count: int, make_contacts: Make, add_event: Add) -> tuple[int, int]:
    """Statements to hold ``count`` contacts' waits while their texts are queued, and to start them when they left."""
    make_contacts(count)
    text = TextMessage.objects.create(name="Sale", body="Shoes: https://shop.example/shoes", category="transactional")
    decision = add_event("clicked_link", parent=add_event("send_text_message", text_message=text), wait_amount=1,
                         wait_unit="days")  # fmt: skip
    with CaptureQueriesContext(connection) as held:
        services.campaigns_process(batch=1000)
    assert CampaignEventLog.objects.filter(event=decision, detail=waits.TEXT_PENDING).count() == count
    sent = OutboundMessage.objects.filter(source="campaign")
    sent.update(status=Status.SENT, sent_at=timezone.now())
    with CaptureQueriesContext(connection) as started:
        waits.on_texts_left(sender=None, message_ids=list(sent.values_list("pk", flat=True)), status=Status.SENT)
    assert CampaignEventLog.objects.filter(event=decision, detail=waits.WAITING).count() == count
    return len(held), len(started)


@pytest.mark.postgres
def test_holding_and_starting_waits_costs_the_same_statements_for_3_contacts_as_for_300(
    campaign: Campaign, make_contacts: Make, add_event: Add
) -> None:
    small = _held_and_started_for(3, make_contacts, add_event)
    CampaignEventLog.objects.all().delete()
    OutboundMessage.objects.all().delete()
    Contact.objects.all().delete()
    CampaignEvent.objects.all().delete()
    assert _held_and_started_for(300, make_contacts, add_event) == small


@pytest.mark.postgres
def test_a_buffered_status_callback_starts_the_wait_as_the_synchronous_one_does(
    campaign: Campaign,
    make_contacts: Make,
    asked: tuple[CampaignEvent, CampaignEvent],
    django_capture_on_commit_callbacks: Any,
) -> None:
    _, decision = asked
    (contact,) = make_contacts(1)
    services.campaigns_process()
    # The provider's `sent` overtook the worker's own write: it comes through the status buffer.
    row = OutboundMessage.objects.get(contact=contact, source="campaign")
    OutboundMessage.objects.filter(pk=row.pk).update(status=Status.SENDING, provider_sid=sid())
    row.refresh_from_db()
    came = timezone.now() - dt.timedelta(minutes=3)
    status = BufferedStatus(
        message_sid=str(row.provider_sid), status=Status.SENT, received_at=came.timestamp(), provider="twilio"
    )
    with django_capture_on_commit_callbacks(execute=True):
        outbound_statuses_apply(statuses=[status, status])
    log = CampaignEventLog.objects.get(event=decision)
    assert log.detail == waits.WAITING
    assert abs(log.trigger_at - (came + dt.timedelta(days=1))) < dt.timedelta(seconds=1)
