"""Statuses whose callback never came, fetched from the provider: the official client against fake_twilio."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from contacts.models import Contact, DoNotContact, TimelineEvent
from providers.base import FIND_SENT_LIMIT, Sender, SendRequest
from providers.registry import get_provider
from tests.lock_helpers import lock_held_elsewhere
from texts.errors import NEVER_SENT, explain
from texts.models import OutboundMessage, Source, Status, TextMessage
from texts.reconcile import outbound_reconcile

pytestmark = pytest.mark.django_db

SENDER = Sender(kind="number", value="+15005550006")


def sent_without_callback(fake: Any, *, to: str, status: str = Status.SENT, minutes_ago: float = 30) -> OutboundMessage:
    """A message Twilio really accepted (no status callback URL, so none will ever come), logged as ``status``."""
    contact = Contact.objects.create(first_name="Ada", mobile=to)
    text, _ = TextMessage.objects.get_or_create(name="Spring sale", defaults={"body": "Hi"})
    result = get_provider().send(SendRequest(to=to, body=f"Hi {to}", sender=SENDER))
    called = timezone.now() - dt.timedelta(minutes=minutes_ago)
    return OutboundMessage.objects.create(
        contact=contact,
        to_number=to,
        text_message=text,
        source=Source.API,
        body=f"Hi {to}",
        status=status,
        provider_sid=result.sid,
        provider_called_at=called,
        sent_at=called if status == Status.SENT else None,
    )


def wait_final_at_fake(fake: Any, count: int) -> None:
    """fake_twilio walks each message queued -> sent -> final on its own thread: wait for all of them (bounded)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        statuses = [m["status"] for m in fake.messages()]
        if len(statuses) == count and all(s in {"delivered", "read", "undelivered", "failed"} for s in statuses):
            return
        time.sleep(0.02)
    raise AssertionError(f"fake_twilio did not finish: {[m['status'] for m in fake.messages()]}")


def test_lost_callbacks_are_fetched_and_applied_like_callbacks(twilio_settings: Any, fake_twilio: Any) -> None:
    fake_twilio.control(undeliverable={"+14155550102": 30003}, failing={"+14155550103": 21610})
    delivered = sent_without_callback(fake_twilio, to="+14155550101")
    undelivered = sent_without_callback(fake_twilio, to="+14155550102")
    opted_out = sent_without_callback(fake_twilio, to="+14155550103")
    worker_lost = sent_without_callback(fake_twilio, to="+14155550104", status=Status.UNKNOWN)
    wait_final_at_fake(fake_twilio, 4)

    call_command("reconcile_statuses")

    for row in (delivered, undelivered, opted_out, worker_lost):
        row.refresh_from_db()
        assert row.status_checked_at is not None
    assert (delivered.status, undelivered.status, opted_out.status) == ("delivered", "undelivered", "failed")
    assert (undelivered.error_code, opted_out.error_code) == ("30003", "21610")
    assert worker_lost.status == "delivered"
    assert worker_lost.delivered_at is not None
    # Exactly what a status callback does: the timeline entry, and Do Not Contact on 21610.
    assert TimelineEvent.objects.filter(kind="sms.delivered").count() == 2
    assert TimelineEvent.objects.filter(kind="sms.failed").count() == 2
    assert DoNotContact.objects.filter(contact=opted_out.contact, channel="sms", lifted_at__isnull=True).exists()
    assert not DoNotContact.objects.exclude(contact=opted_out.contact).exists()


def test_command_prints_what_it_did_and_a_second_run_asks_nobody(
    twilio_settings: Any, fake_twilio: Any, capsys: Any
) -> None:
    sent_without_callback(fake_twilio, to="+14155550111")
    wait_final_at_fake(fake_twilio, 1)

    call_command("reconcile_statuses")
    first = capsys.readouterr().out
    call_command("reconcile_statuses")
    second = capsys.readouterr().out

    assert "asked the provider about 1 message: 1 moved, 0 unchanged, 0 not found, 0 refused" in first
    assert "asked the provider about 0 messages" in second


def test_recent_and_old_messages_are_left_alone(twilio_settings: Any, fake_twilio: Any) -> None:
    recent = sent_without_callback(fake_twilio, to="+14155550121", minutes_ago=2)  # its callback may still come
    too_old = sent_without_callback(fake_twilio, to="+14155550122", minutes_ago=60 * 24 * 4)
    wait_final_at_fake(fake_twilio, 2)

    result = outbound_reconcile()

    assert result.checked == 0
    for row in (recent, too_old):
        row.refresh_from_db()
        assert (row.status, row.status_checked_at) == ("sent", None)


def test_carrier_that_never_reports_stays_sent_and_is_asked_again_only_after_the_recheck_interval(
    twilio_settings: Any, fake_twilio: Any
) -> None:
    fake_twilio.control(no_receipt=["+14155550131"])
    row = sent_without_callback(fake_twilio, to="+14155550131")
    deadline = time.monotonic() + 10
    while fake_twilio.messages()[0]["status"] != "sent" and time.monotonic() < deadline:
        time.sleep(0.02)

    first = outbound_reconcile()

    row.refresh_from_db()
    assert (first.checked, first.moved) == (1, 0)
    assert row.status == "sent"
    assert row.status_checked_at is not None
    assert outbound_reconcile().checked == 0  # asked within the hour: not again
    OutboundMessage.objects.filter(pk=row.pk).update(status_checked_at=timezone.now() - dt.timedelta(hours=2))
    assert outbound_reconcile().checked == 1


def test_sid_the_provider_does_not_know_is_counted_and_not_asked_again(twilio_settings: Any, fake_twilio: Any) -> None:
    row = sent_without_callback(fake_twilio, to="+14155550141")
    OutboundMessage.objects.filter(pk=row.pk).update(provider_sid="SM" + "0" * 32)

    result = outbound_reconcile()

    assert (result.checked, result.not_found, result.stopped) == (0, 1, "")
    row.refresh_from_db()
    assert row.status == "sent"
    assert row.status_checked_at is not None


def test_twilio_down_stops_the_run_marks_nothing_and_the_command_fails_clearly(
    twilio_settings: Any, fake_twilio: Any
) -> None:
    rows = [sent_without_callback(fake_twilio, to=f"+1415555015{i}") for i in range(3)]
    wait_final_at_fake(fake_twilio, 3)
    fake_twilio.go_down(30)

    with pytest.raises(CommandError, match="stopped early: 20503: Service Unavailable"):
        call_command("reconcile_statuses")

    assert not OutboundMessage.objects.filter(pk__in=[r.pk for r in rows], status_checked_at__isnull=False).exists()
    fake_twilio.control(down_seconds=0)
    assert outbound_reconcile().moved == 3


def test_a_short_outage_is_ridden_out_by_retrying(twilio_settings: Any, fake_twilio: Any) -> None:
    rows = [sent_without_callback(fake_twilio, to=f"+1415555016{i}") for i in range(2)]
    wait_final_at_fake(fake_twilio, 2)
    fake_twilio.go_down(1.0)  # 503 for a second: shorter than the retries' pauses (0.5 s, 1 s, 2 s)

    result = outbound_reconcile()

    assert (result.stopped, result.moved) == ("", 2)
    assert {r.status for r in OutboundMessage.objects.filter(pk__in=[r.pk for r in rows])} == {"delivered"}


def test_console_provider_cannot_be_asked(settings: Any) -> None:
    settings.SMS_PROVIDER = "console"
    contact = Contact.objects.create(mobile="+14155550161")
    OutboundMessage.objects.create(
        contact=contact,
        to_number=contact.mobile,
        source=Source.API,
        status=Status.SENT,
        provider_sid="SM" + "1" * 32,
        provider_called_at=timezone.now() - dt.timedelta(hours=1),
    )

    result = outbound_reconcile()

    assert result.stopped == "the console provider cannot be asked for statuses"
    assert not OutboundMessage.objects.filter(status_checked_at__isnull=False).exists()


def test_a_run_already_going_makes_another_do_nothing(twilio_settings: Any, fake_twilio: Any) -> None:
    sent_without_callback(fake_twilio, to="+14155550171")
    wait_final_at_fake(fake_twilio, 1)

    with lock_held_elsewhere("texts:reconcile"):
        result = outbound_reconcile()

    assert result.locked
    assert result.checked == 0
    assert OutboundMessage.objects.get().status == "sent"


def test_batch_zero_turns_it_off_and_bad_options_are_refused(twilio_settings: Any, fake_twilio: Any) -> None:
    twilio_settings.SMS_RECONCILE_BATCH = 0
    sent_without_callback(fake_twilio, to="+14155550181")
    wait_final_at_fake(fake_twilio, 1)

    assert outbound_reconcile().checked == 0
    with pytest.raises(CommandError, match="--limit: 0 is not allowed: it must be 1 or more"):
        call_command("reconcile_statuses", "--limit", "0")
    with pytest.raises(CommandError, match="must be 0 or more"):
        call_command("reconcile_statuses", "--after", "-5")


def test_beat_asks_every_interval_on_the_default_queue() -> None:
    from smsapp.celery import app

    entry = app.conf.beat_schedule["texts-outbound-reconcile"]
    assert entry["task"] == "texts.outbound_reconcile"
    assert entry["options"] == {"queue": "default"}
    assert entry["schedule"] == 300.0


def unknown_without_sid(*, to: str, body: str, minutes_ago: float = 30) -> OutboundMessage:
    """The row of a worker killed between calling the provider and writing its answer, swept to ``unknown``."""
    contact = Contact.objects.create(first_name="Lin", mobile=to)
    called = timezone.now() - dt.timedelta(minutes=minutes_ago)
    return OutboundMessage.objects.create(
        contact=contact,
        to_number=to,
        source=Source.API,
        body=body,
        status=Status.UNKNOWN,
        error_code="worker_lost",
        error_message="The worker stopped after calling the provider; the message may or may not have been sent.",
        provider_called_at=called,
        unknown_at=called,
    )


def test_unknown_without_sid_found_at_the_provider_gets_its_sid_and_status(
    twilio_settings: Any, fake_twilio: Any
) -> None:
    to = "+14155550191"
    get_provider().send(SendRequest(to=to, body="Someone else's text", sender=SENDER))
    accepted = get_provider().send(SendRequest(to=to, body="Hi Lin, 20% off today", sender=SENDER))
    row = unknown_without_sid(to=to, body="Hi Lin, 20% off today", minutes_ago=1)
    wait_final_at_fake(fake_twilio, 2)

    result = outbound_reconcile(after=0)

    row.refresh_from_db()
    assert (result.found, result.never_sent) == (1, 0)
    assert row.provider_sid == accepted.sid
    assert row.status == "delivered"
    assert TimelineEvent.objects.filter(contact=row.contact, kind="sms.delivered").count() == 1


def test_unknown_without_sid_the_provider_never_sent_stays_unknown_and_says_so(
    twilio_settings: Any, fake_twilio: Any
) -> None:
    to = "+14155550192"
    get_provider().send(SendRequest(to=to, body="An earlier, different text", sender=SENDER))
    row = unknown_without_sid(to=to, body="Hi Lin, 20% off today", minutes_ago=1)
    wait_final_at_fake(fake_twilio, 1)

    first = outbound_reconcile(after=0)
    OutboundMessage.objects.filter(pk=row.pk).update(status_checked_at=None)
    second = outbound_reconcile(after=0)

    row.refresh_from_db()
    assert (first.never_sent, second.never_sent) == (1, 1)
    assert row.status == "unknown"
    assert row.provider_sid is None
    assert row.error_code == "worker_lost"
    assert row.error_message.startswith("The worker stopped after calling the provider")
    assert row.error_message.count("The provider sent no message with this text to this number after the call") == 1
    assert len(fake_twilio.messages()) == 1  # never sent again automatically
    assert explain(row.error_code, row.error_message).startswith(
        "A worker stopped mid-send. The provider sent no message with this text to this number after the call (checked"
    )
    assert "may or may not" in explain("worker_lost", "The worker stopped after calling the provider.")


def test_unknown_without_sid_with_two_identical_candidates_is_left_for_review(
    twilio_settings: Any, fake_twilio: Any
) -> None:
    to = "+14155550193"
    for _ in range(2):
        get_provider().send(SendRequest(to=to, body="Same text", sender=SENDER))
    row = unknown_without_sid(to=to, body="Same text", minutes_ago=1)
    wait_final_at_fake(fake_twilio, 2)

    result = outbound_reconcile(after=0)

    row.refresh_from_db()
    assert (result.found, result.never_sent) == (0, 0)
    assert row.status == "unknown"
    assert row.provider_sid is None


def test_a_full_answer_from_the_provider_is_not_taken_as_never_sent(twilio_settings: Any, fake_twilio: Any) -> None:
    to = "+14155550194"
    for i in range(FIND_SENT_LIMIT):  # a busy number: the answer is full, and ours could be further back
        get_provider().send(SendRequest(to=to, body=f"Other text {i}", sender=SENDER))
    row = unknown_without_sid(to=to, body="Hi Lin, 20% off today", minutes_ago=1)
    wait_final_at_fake(fake_twilio, FIND_SENT_LIMIT)

    result = outbound_reconcile(after=0)

    row.refresh_from_db()
    assert (result.found, result.never_sent) == (0, 0)
    assert row.status == "unknown"
    assert NEVER_SENT not in row.error_message
    assert row.status_checked_at is not None  # asked; asked again after the recheck interval


def test_unknown_messages_are_looked_for_before_any_price_is_asked(
    twilio_settings: Any, fake_twilio: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A large broadcast leaves many final messages without a price; a run that a provider throttles while asking for
    # them must already have looked for the messages that may or may not have been sent.
    priced_later = [sent_without_callback(fake_twilio, to=f"+1415555016{i}", status=Status.DELIVERED) for i in range(3)]
    to = "+14155550171"
    accepted = get_provider().send(SendRequest(to=to, body="Hi Lin, 20% off today", sender=SENDER))
    lost = unknown_without_sid(to=to, body="Hi Lin, 20% off today", minutes_ago=1)
    wait_final_at_fake(fake_twilio, 4)
    provider = get_provider()
    calls: list[str] = []
    fetch, find = provider.fetch_status, provider.find_sent
    monkeypatch.setattr(provider, "fetch_status", lambda sid: calls.append(f"fetch {sid}") or fetch(sid))
    monkeypatch.setattr(provider, "find_sent", lambda **kw: calls.append("find") or find(**kw))

    result = outbound_reconcile(after=0)

    assert calls[0] == "find"
    assert sorted(calls[1:]) == sorted(f"fetch {row.provider_sid}" for row in priced_later)
    assert (result.found, result.price_asked) == (1, 3)
    lost.refresh_from_db()
    assert lost.provider_sid == accepted.sid


def test_price_asks_have_their_own_bound_and_can_be_left_out(
    twilio_settings: Any, fake_twilio: Any, settings: Any
) -> None:
    fake_twilio.control(price_delay_ms=0)
    rows = [sent_without_callback(fake_twilio, to=f"+1415555018{i}", status=Status.DELIVERED) for i in range(3)]
    wait_final_at_fake(fake_twilio, 3)
    settings.SMS_RECONCILE_PRICE_BATCH = 2
    assert outbound_reconcile(after=0, prices=False).price_asked == 0
    assert outbound_reconcile(after=0).price_asked == 2
    assert outbound_reconcile(after=0).price_asked == 1  # the third, next run
    call_command("reconcile_statuses", "--after", "0", "--no-prices")  # the command takes the option
    assert OutboundMessage.objects.filter(pk__in=[r.pk for r in rows], price__isnull=False).count() == 3


def test_an_unknown_whatsapp_message_is_looked_for_under_its_whatsapp_address(
    twilio_settings: Any, fake_twilio: Any
) -> None:
    """Twilio lists a WhatsApp message under ``To=whatsapp:+E164``: looking for the bare number would find nothing
    and write "never sent" on a message the contact got."""
    to = "+14155550197"
    fake_twilio.control(whatsapp_sessions=[to])
    sender = Sender(kind="number", value="+15005550006")
    accepted = get_provider().send(
        SendRequest(to=to, body="Hi Noor, your order shipped", sender=sender, channel="whatsapp")
    )
    row = unknown_without_sid(to=to, body="Hi Noor, your order shipped", minutes_ago=1)
    OutboundMessage.objects.filter(pk=row.pk).update(channel="whatsapp")
    wait_final_at_fake(fake_twilio, 1)
    assert fake_twilio.messages()[0]["to"] == f"whatsapp:{to}"

    result = outbound_reconcile(after=0)

    row.refresh_from_db()
    assert (result.found, result.never_sent) == (1, 0)
    assert row.provider_sid == accepted.sid
