"""Channels in the texts app (issue 16): the editor's channel and its length rule, clone, inbound WhatsApp and
Messenger messages, the inbox replying on the contact's channel, and the broadcast audience's 24-hour count."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from contacts.models import Channel, Contact, DoNotContact, Segment, SegmentMembership
from providers.base import InboundEvent
from texts.inbound import inbound_receive
from texts.keywords import keyword_seed_defaults
from texts.models import InboundMessage, OutboundMessage, TextMessage
from texts.services.broadcasts import broadcast_audience
from texts.services.conversations import ReplyRefused, conversation_reply, reply_blockers, thread

pytestmark = pytest.mark.django_db
SIDS = itertools.count(1)
ANN = "+14155552671"


def editor_data(**overrides: Any) -> dict[str, Any]:
    data = {"name": "Chat", "body": "Hi {{first_name|there}}", "language": "en", "category": "marketing"}
    return {**data, "is_published": "on", "publish_up": "", "publish_down": "", "media_urls_text": "", **overrides}


def inbound(channel: str, address: str, body: str, **fields: Any) -> InboundMessage:
    event = InboundEvent(
        message_sid=f"SM{next(SIDS):032d}",
        account_sid="AC1",
        from_number=address,
        to_number="+14155238886",
        body=body,
        channel=channel,
        **fields,
    )
    return inbound_receive(event=event).inbound


def test_the_editor_saves_the_channel_and_applies_its_length_rule(marketer_client: Client) -> None:
    saved = marketer_client.post("/text-messages/new/", editor_data(channel="whatsapp"))
    assert saved.status_code == 302
    assert TextMessage.objects.get().channel == "whatsapp"
    too_long = marketer_client.post(
        "/text-messages/new/", editor_data(name="Long", channel="messenger", body="a" * 1601)
    )
    assert "the most a Messenger message can carry is 1,600" in too_long.content.decode()
    assert not TextMessage.objects.filter(name="Long").exists()


def test_clone_copies_the_channel(marketer_client: Client) -> None:
    text = TextMessage.objects.create(name="Chat", body="Hi", channel="whatsapp")
    marketer_client.post(f"/text-messages/{text.pk}/clone/")
    assert TextMessage.objects.exclude(pk=text.pk).get().channel == "whatsapp"


def test_a_whatsapp_message_is_learnt_by_the_contact_whose_mobile_it_is() -> None:
    ann = Contact.objects.create(first_name="Ann", mobile=ANN)
    stored = inbound("whatsapp", ANN, "Hello", profile_name="Annie")
    ann.refresh_from_db()
    assert (stored.contact_id, stored.channel, stored.profile_name) == (ann.pk, "whatsapp", "Annie")
    assert str(ann.whatsapp) == ANN
    assert ann.first_name == "Ann"  # a profile name never overwrites the contact's own
    assert ann.whatsapp_inbound_at is not None
    assert Contact.objects.count() == 1


def test_keywords_act_on_the_channel_they_came_on() -> None:
    keyword_seed_defaults()
    ann = Contact.objects.create(first_name="Ann", mobile=ANN, whatsapp=ANN)
    inbound("whatsapp", ANN, "STOP")
    active = DoNotContact.objects.filter(contact=ann, lifted_at__isnull=True)
    assert list(active.values_list("channel", flat=True)) == [Channel.WHATSAPP]
    inbound("whatsapp", ANN, "START")
    assert not active.exists()
    # A "Stop" quick-reply button is a STOP too.
    inbound("whatsapp", ANN, "", button_text="Stop", button_payload="STOP_PROMOS")
    assert list(active.values_list("channel", flat=True)) == [Channel.WHATSAPP]


def test_the_inbox_replies_on_the_channel_the_contact_wrote_on(django_capture_on_commit_callbacks: Any) -> None:
    psid = "2456789012345678"
    message = inbound("messenger", psid, "Open on Sunday?", profile_name="Dee")
    dee = Contact.objects.get(pk=message.contact_id)
    assert reply_blockers(contact=dee) == []
    with django_capture_on_commit_callbacks(execute=False):
        reply = conversation_reply(contact=dee, body="Yes, 10 to 4")
    assert (reply.channel, reply.to_number) == ("messenger", psid)
    assert [(e.direction, e.channel_label) for e in thread(contact=dee)] == [("in", "Messenger"), ("out", "Messenger")]


def test_the_inbox_refuses_a_whatsapp_reply_once_the_window_closed() -> None:
    message = inbound("whatsapp", ANN, "Hi")
    ann = Contact.objects.get(pk=message.contact_id)
    Contact.objects.filter(pk=ann.pk).update(whatsapp_inbound_at=timezone.now() - dt.timedelta(hours=25))
    ann.refresh_from_db()
    (reason,) = reply_blockers(contact=ann)
    assert "24-hour window" in reason
    with pytest.raises(ReplyRefused):
        conversation_reply(contact=ann, body="Still there?")
    assert not OutboundMessage.objects.exists()


def test_the_broadcast_audience_counts_the_whatsapp_window_only_for_free_form_messages() -> None:
    segment = Segment.objects.create(name="All")
    now = timezone.now()
    inside = Contact.objects.create(whatsapp=ANN, whatsapp_inbound_at=now)
    outside = Contact.objects.create(whatsapp="+14155552672", whatsapp_inbound_at=now - dt.timedelta(days=2))
    for contact in (inside, outside):
        SegmentMembership.objects.create(segment=segment, contact=contact)
    free_form = TextMessage.objects.create(name="Free", body="Hi", category="transactional", channel="whatsapp")
    template = TextMessage.objects.create(
        name="Template", body="", category="transactional", channel="whatsapp", content_sid="HX" + "0" * 32
    )
    for text in (free_form, template):
        text.segments.add(segment)
    free = broadcast_audience(text_message=free_form)
    assert (free.will_receive, free.outside_window) == (1, 1)
    templated = broadcast_audience(text_message=template)
    assert (templated.will_receive, templated.outside_window) == (2, 0)
