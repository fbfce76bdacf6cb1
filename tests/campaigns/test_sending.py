"""Send Text Message through the texts app's outbound pipeline, on PostgreSQL: one outbound row per eligible contact,
Do Not Contact and missing numbers left to the pipeline, and never a second row for the same (event, contact, entry)
after a crash."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from django.db.models import ProtectedError
from django.test import Client
from django.utils import timezone

from campaigns import engine, services
from campaigns.models import Campaign, CampaignEvent, CampaignEventLog, LogStatus
from contacts.models import Contact
from contacts.services import dnc_add
from texts.models import OutboundMessage, TextMessage
from texts.services import outbound_enqueue

from .conftest import statuses

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

Make = Callable[..., list[Contact]]
Add = Callable[..., CampaignEvent]


@pytest.fixture
def welcome() -> TextMessage:
    return TextMessage.objects.create(name="Welcome", body="Hi {{first_name|there}}")


def _outbound(event: CampaignEvent) -> list[tuple[int | None, str]]:
    rows = OutboundMessage.objects.filter(source="campaign", source_ref__startswith=f"campaign-event:{event.pk}:")
    return sorted(rows.values_list("contact_id", "source_ref"))  # type: ignore[arg-type]


def test_send_text_message_queues_one_per_eligible_contact(
    campaign: Campaign, make_contacts: Make, add_event: Add, welcome: TextMessage
) -> None:
    ok, dnc, no_number = make_contacts(3)
    dnc_add(contact=dnc, reason="manual", source="marketer")
    Contact.objects.filter(pk=no_number.pk).update(mobile=None)
    event = add_event("send_text_message", text_message=welcome)
    summary = services.campaigns_process(batch=50)
    assert summary is not None
    # The campaign runs the action for all three; the pipeline, not the campaign, leaves out DNC and no number.
    assert statuses(event) == {c.pk: ("done", None) for c in (ok, dnc, no_number)}
    assert _outbound(event) == [(ok.pk, f"campaign-event:{event.pk}:1")]
    row = OutboundMessage.objects.get(contact=ok)
    assert (row.text_message_id, row.status, row.to_number) == (welcome.pk, "queued", ok.mobile)
    assert "Queued 1 of 3" in CampaignEventLog.objects.get(event=event, contact=ok).detail


def test_rerun_after_a_crash_never_queues_a_second_text(
    campaign: Campaign, make_contacts: Make, add_event: Add, welcome: TextMessage
) -> None:
    contacts = make_contacts(4)
    event = add_event("send_text_message", text_message=welcome)
    services.campaigns_process(batch=2)
    assert len(_outbound(event)) == 4
    # A run whose claim went stale after its sends were queued (a slow run taken for dead): the logs are running
    # again, and the next run resets and re-runs them.
    CampaignEventLog.objects.filter(event=event).update(
        status=LogStatus.RUNNING, claimed_at=timezone.now() - dt.timedelta(hours=1), executed_at=None
    )
    summary = services.campaigns_process(batch=2)
    assert summary is not None
    assert summary.reset == 4
    assert statuses(event) == {c.pk: ("done", None) for c in contacts}
    assert len(_outbound(event)) == 4  # the partial unique constraint held: nothing queued twice
    assert "Queued 0 of 2" in CampaignEventLog.objects.filter(event=event).first().detail  # type: ignore[union-attr]


def test_a_new_entry_sends_again_but_the_same_entry_never(
    campaign: Campaign, make_contacts: Make, add_event: Add, welcome: TextMessage
) -> None:
    (contact,) = make_contacts(1)
    event = add_event("send_text_message", text_message=welcome)
    first = engine.campaign_send_ref(event_id=event.pk, entry=1)
    again = engine.campaign_send_ref(event_id=event.pk, entry=2)
    assert outbound_enqueue(text_message=welcome, contacts=[contact.pk], source="campaign", source_ref=first) == 1
    assert outbound_enqueue(text_message=welcome, contacts=[contact.pk], source="campaign", source_ref=first) == 0
    assert outbound_enqueue(text_message=welcome, contacts=[contact.pk], source="campaign", source_ref=again) == 1
    # Only a campaign event's ref is unique: campaign-sourced sends without one, and other sources, are left alone.
    assert outbound_enqueue(text_message=welcome, contacts=[contact.pk], source="campaign") == 1
    assert outbound_enqueue(text_message=welcome, contacts=[contact.pk], source="campaign") == 1
    assert outbound_enqueue(text_message=welcome, contacts=[contact.pk], source="api", source_ref=first) == 1
    assert outbound_enqueue(text_message=welcome, contacts=[contact.pk], source="api", source_ref=first) == 1


def test_action_without_a_text_message_fails_clearly(campaign: Campaign, make_contacts: Make, add_event: Add) -> None:
    make_contacts(1)
    event = add_event("send_text_message")
    summary = services.campaigns_process(batch=50)
    assert summary is not None
    assert summary.failed == 1
    log = CampaignEventLog.objects.get(event=event)
    assert (log.status, log.detail) == (LogStatus.FAILED, "The action has no text message")
    assert not OutboundMessage.objects.exists()


def test_a_text_message_a_campaign_uses_cannot_be_deleted(
    add_event: Add, welcome: TextMessage, marketer_client: Client
) -> None:
    add_event("send_text_message", text_message=welcome)
    with pytest.raises(ProtectedError):
        welcome.delete()
    response = marketer_client.post(f"/text-messages/{welcome.pk}/delete/", follow=True)
    assert "is used by a campaign" in response.content.decode()
    assert TextMessage.objects.filter(pk=welcome.pk).exists()


def test_a_follow_up_to_a_reply_goes_ahead_of_bulk_and_a_scheduled_send_does_not(
    campaign: Campaign, make_contacts: Make, add_event: Add, welcome: TextMessage
) -> None:
    early, replier = make_contacts(2)
    scheduled = add_event("send_text_message", text_message=welcome)
    decision = add_event("replied_to_text", parent=scheduled, wait_amount=1, wait_unit="hours")
    thanks = TextMessage.objects.create(name="Thanks", body="Thanks!")
    follow_up = add_event("send_text_message", parent=decision, path="yes", text_message=thanks)
    services.campaigns_process(batch=50)
    # The every-minute run's sends are bulk.
    assert list(OutboundMessage.objects.filter(text_message=welcome).values_list("priority", flat=True)) == [
        False,
        False,
    ]
    engine.reply_received(contact_id=replier.pk, body="yes please")
    engine.contact_events_run(contact_id=replier.pk)
    # The reply's follow-up is a conversation: it takes its sender's next slot ahead of queued bulk.
    (row,) = OutboundMessage.objects.filter(text_message=thanks)
    assert (row.contact_id, row.priority) == (replier.pk, True)
    assert statuses(follow_up) == {replier.pk: ("done", None)}
    assert early.pk not in statuses(follow_up)
