"""The conversations inbox (in-process): threads kept by the reply's own transaction, unread counts, the thread
polled by htmx, replies queued on the priority lane from the number the contact wrote to, and refusals that say why.
The reply reaching fake_twilio through a real worker is in test_engagement_processes.py; the page in Chromium in
tests/browser/test_engagement_browser.py."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from django.test import Client

from contacts.models import Contact
from contacts.services import dnc_add
from providers.base import InboundEvent
from texts.inbound import inbound_receive
from texts.models import Conversation, OutboundMessage, Source
from texts.services.conversations import conversation_reply, reply_blockers

pytestmark = pytest.mark.django_db
SIDS = itertools.count(1)


def reply_from(contact: Contact, body: str, to: str = "+15005550006") -> None:
    event = InboundEvent(
        message_sid=f"SM{next(SIDS):032d}", account_sid="AC1", from_number=str(contact.mobile), to_number=to, body=body
    )
    inbound_receive(event=event)


def test_each_reply_updates_the_contacts_thread_and_its_unread_count(make_contact: Callable[..., Contact]) -> None:
    ada = make_contact(first_name="Ada")
    reply_from(ada, "Hi!")
    reply_from(ada, "Anyone there?")
    (thread,) = Conversation.objects.all()
    assert (thread.contact_id, thread.unread, thread.last_body) == (ada.pk, 2, "Anyone there?")
    assert thread.last_inbound_at == thread.last_message_at


def test_the_inbox_lists_newest_first_with_unread_counts_and_opening_reads(
    marketer_client: Client, make_contact: Callable[..., Contact]
) -> None:
    ada, bob = make_contact(first_name="Ada"), make_contact(first_name="Bob")
    reply_from(ada, "first")
    reply_from(bob, "second")
    reply_from(bob, "third")
    page = marketer_client.get("/conversations/").content.decode()
    assert page.index("Bob") < page.index("Ada")
    assert 'aria-label="2 unread"' in page
    assert 'aria-label="1 unread"' in page
    thread = marketer_client.get(f"/conversations/{bob.pk}/").content.decode()
    assert "second" in thread
    assert "third" in thread
    assert Conversation.objects.get(contact=bob).unread == 0
    assert Conversation.objects.get(contact=ada).unread == 1


def test_the_polled_thread_answers_204_until_something_changes(
    marketer_client: Client, make_contact: Callable[..., Contact]
) -> None:
    ada = make_contact()
    reply_from(ada, "one")
    page = marketer_client.get(f"/conversations/{ada.pk}/thread/", HTTP_HX_REQUEST="true")
    version = page.content.decode().split("?v=")[1].split('"')[0]
    assert marketer_client.get(f"/conversations/{ada.pk}/thread/?v={version}").status_code == 204
    reply_from(ada, "two")
    again = marketer_client.get(f"/conversations/{ada.pk}/thread/?v={version}", HTTP_HX_REQUEST="true")
    assert again.status_code == 200
    assert "two" in again.content.decode()


def test_a_reply_is_a_priority_one_off_from_the_number_they_wrote_to(
    marketer_client: Client, make_contact: Callable[..., Contact], django_capture_on_commit_callbacks: Any
) -> None:
    ada = make_contact()
    reply_from(ada, "Do you ship to Leeds?", to="+15005550009")
    with (
        mock.patch("texts.tasks.outbound_send_batch.apply_async") as apply_async,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = marketer_client.post(
            f"/conversations/{ada.pk}/reply/", {"body": "We do, {{first_name}}!"}, HTTP_HX_REQUEST="true"
        )
    assert response.status_code == 200
    row = OutboundMessage.objects.get()
    assert (row.source, row.priority, row.sender, row.body, row.status) == (
        Source.CONVERSATION,
        True,
        "+15005550009",
        "We do, {{first_name}}!",
        "queued",
    )
    assert apply_async.call_args.kwargs["queue"] == "sms_priority"
    html = response.content.decode()
    assert "We do, {{first_name}}!" in html  # the thread shows it at once, queued
    assert 'id="reply-box"' in html  # and an empty reply box, out of band
    assert Conversation.objects.get(contact=ada).unread == 0


def test_a_reply_to_a_do_not_contact_contact_is_refused_with_the_reason(
    marketer_client: Client, make_contact: Callable[..., Contact]
) -> None:
    ada = make_contact()
    reply_from(ada, "STOP")  # the keyword marks them Do Not Contact
    reasons = reply_blockers(contact=ada)
    assert len(reasons) == 1
    assert "Do Not Contact for SMS" in reasons[0]
    assert "opt-out keyword" in reasons[0]
    page = marketer_client.get(f"/conversations/{ada.pk}/").content.decode()
    assert "A reply cannot go." in page
    assert "disabled" in page
    response = marketer_client.post(f"/conversations/{ada.pk}/reply/", {"body": "Sorry!"}, HTTP_HX_REQUEST="true")
    assert "Not sent: Do Not Contact for SMS" in response.content.decode()
    assert not OutboundMessage.objects.exists()


def test_refusals_without_a_number_and_for_bad_input(
    marketer_client: Client, make_contact: Callable[..., Contact]
) -> None:
    nobody = make_contact(mobile=None)
    assert reply_blockers(contact=nobody) == ["This contact has no mobile number."]
    ada = make_contact()
    dnc_add(contact=ada, reason="manual", source="marketer")
    assert "by marketer" in reply_blockers(contact=ada)[0]
    bob = make_contact()
    for body, message in (("   ", "Write something to send."), ("Hi {{first_name", "not a complete")):
        response = marketer_client.post(f"/conversations/{bob.pk}/reply/", {"body": body}, HTTP_HX_REQUEST="true")
        assert message in response.content.decode()
    assert not OutboundMessage.objects.exists()
    with pytest.raises(Exception, match="no mobile number"):
        conversation_reply(contact=nobody, body="Hi")


def test_the_inbox_asks_who_can_be_texted_where_every_sender_does(
    marketer_client: Client, make_contact: Callable[..., Contact]
) -> None:
    """contacts.selectors decides (consent joins it there); a reason the inbox has no words of its own for is shown
    as the selector gives it, and the reply is refused."""
    ada = make_contact()
    assert reply_blockers(contact=ada) == []
    with mock.patch(
        "texts.services.conversations.contact_unreachable_reason", return_value="has not agreed to receive texts"
    ):
        assert reply_blockers(contact=ada) == ["This contact has not agreed to receive texts."]
        with pytest.raises(Exception, match="has not agreed"):
            conversation_reply(contact=ada, body="Hi")
        response = marketer_client.post(f"/conversations/{ada.pk}/reply/", {"body": "Hi"}, HTTP_HX_REQUEST="true")
        assert "has not agreed to receive texts" in response.content.decode()
    assert not OutboundMessage.objects.exists()


def test_the_navigation_shows_unread_conversations(
    marketer_client: Client, make_contact: Callable[..., Contact]
) -> None:
    reply_from(make_contact(), "hello")
    assert 'Conversations <span class="badge badge-unread" aria-label="1 unread">1</span>' in (
        marketer_client.get("/").content.decode()
    )


def test_a_reply_is_credited_to_the_latest_message_from_the_number_it_was_sent_to(
    make_contact: Callable[..., Contact],
) -> None:
    import datetime as dt

    from django.utils import timezone

    from texts.models import InboundMessage

    ada = make_contact()
    now = timezone.now()

    def sent(source: str, sender: str, queued_ago: int, sent_ago: int) -> OutboundMessage:
        row = OutboundMessage.objects.create(
            contact=ada, to_number=str(ada.mobile), source=source, sender=sender, status="delivered",
            sent_at=now - dt.timedelta(minutes=sent_ago),
        )  # fmt: skip
        OutboundMessage.objects.filter(pk=row.pk).update(queued_at=now - dt.timedelta(minutes=queued_ago))
        return row

    # The campaign's question was queued first but sent last (a slow sender); the broadcast was queued later.
    question = sent("campaign", "+15005550006", queued_ago=60, sent_ago=1)
    sent("broadcast", "+15005550006", queued_ago=30, sent_ago=20)
    other_number = sent("broadcast", "+15005550009", queued_ago=5, sent_ago=0)
    reply_from(ada, "YES", to="+15005550006")
    assert InboundMessage.objects.get(body="YES").in_reply_to_id == question.pk
    reply_from(ada, "Which one?", to="+15005550009")
    assert InboundMessage.objects.get(body="Which one?").in_reply_to_id == other_number.pk
    reply_from(ada, "via a service", to="+15005550099")  # a number of a Messaging Service: the latest of all
    assert InboundMessage.objects.get(body="via a service").in_reply_to_id == other_number.pk
