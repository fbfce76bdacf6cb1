"""Buffered status callbacks with the real parts: signed callbacks through a live server into the real Redis, a real
Celery worker on ``sms_priority`` flushing them into PostgreSQL, and that worker SIGKILLed in the middle of a batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import requests
from django.conf import settings as django_settings
from django.utils import timezone

from contacts.models import Contact, DoNotContact, TimelineEvent
from providers.twilio.testing import PATH, configure, sid, sign, status_params
from smsapp.testing import procs
from texts.models import OutboundMessage, Source, Status, TextMessage
from texts.status_buffer import BUFFER_KEY, CLAIM_PREFIX, CLAIMS_KEY, PENDING_KEY, RECHECK_KEY

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def buffered(settings: Any, live_server: Any) -> Iterator[Any]:
    """The callback on a live server with the buffer on, as deployed; the buffer's keys empty before and after."""
    import redis

    configure(settings)
    settings.SMS_STATUS_BUFFER = True
    settings.PUBLIC_BASE_URL = live_server.url
    client = redis.Redis.from_url(settings.REDIS_URL)

    def clear() -> None:
        client.delete(BUFFER_KEY, PENDING_KEY, RECHECK_KEY, CLAIMS_KEY, *client.keys(CLAIM_PREFIX + "*"))

    clear()
    yield client
    clear()


def _post(params: dict[str, str], *, query: str = "") -> int:
    url = django_settings.PUBLIC_BASE_URL + PATH + query
    response = requests.post(url, data=params, headers={"X-Twilio-Signature": sign(params, url=url)}, timeout=10)
    return response.status_code


def _wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s")


def _sent_messages(count: int, text: TextMessage) -> list[OutboundMessage]:
    contacts = Contact.objects.bulk_create(Contact(mobile=f"+1415555{i:04d}", country="US") for i in range(count))
    return OutboundMessage.objects.bulk_create(
        OutboundMessage(
            contact=c,
            to_number=str(c.mobile),
            text_message=text,
            source=Source.BROADCAST,
            status=Status.SENT,
            provider_sid=sid(),
            sent_at=timezone.now(),
        )
        for c in contacts
    )


def _worker(**env: str) -> procs.Proc:
    return procs.start_worker(queues="sms_priority", concurrency=1, name="flusher", env=procs.child_env(**env))


def test_signed_callbacks_are_applied_by_a_real_worker(buffered: Any) -> None:
    text = TextMessage.objects.create(name="Spring sale", body="Hi")
    messages = _sent_messages(30, text)
    unsubscribed = messages.pop()
    in_flight = OutboundMessage.objects.create(
        contact=Contact.objects.create(mobile="+14155559999"),
        to_number="+14155559999",
        source=Source.TEST,
        status=Status.SENDING,
        provider_called_at=timezone.now(),
    )
    worker = _worker()
    try:
        # Twilio's `sent` after the worker's own, then `delivered`; some out of order; duplicates.
        for i, m in enumerate(messages):
            order = ["delivered", "sent"] if i % 3 == 0 else ["sent", "delivered", "delivered"]
            for status in order:
                assert _post(status_params(str(m.provider_sid), status, to=m.to_number)) == 200
        assert _post(status_params(str(unsubscribed.provider_sid), "failed", error_code="21610")) == 200
        # The callback overtakes the worker's write of the SID: the URL names the message.
        in_flight_sid = sid()
        assert _post(status_params(in_flight_sid, "delivered"), query=f"?m={in_flight.pk}") == 200
        _wait_for(
            lambda: OutboundMessage.objects.filter(status=Status.DELIVERED).count() == len(messages) + 1,
            timeout=30,
            what="every delivery applied by the worker",
        )
        _wait_for(lambda: buffered.llen(BUFFER_KEY) == 0, timeout=10, what="the buffer drained")
    finally:
        worker.stop()
    assert "texts.statuses_flush" in worker.output()
    assert TimelineEvent.objects.filter(kind="sms.delivered").count() == len(messages) + 1
    assert set(TimelineEvent.objects.filter(kind="sms.delivered").values_list("title", flat=True)) == {
        "Text message delivered: Spring sale",
        "Text message delivered: Text message",
    }
    unsubscribed.refresh_from_db()
    assert (unsubscribed.status, unsubscribed.error_code) == (Status.FAILED, "21610")
    assert DoNotContact.objects.filter(contact=unsubscribed.contact, source="provider", lifted_at__isnull=True).exists()
    in_flight.refresh_from_db()
    assert (in_flight.provider_sid, in_flight.status) == (in_flight_sid, Status.DELIVERED)
    assert buffered.zcard(CLAIMS_KEY) == 0


def test_a_flusher_killed_in_the_middle_of_a_batch_loses_nothing(buffered: Any) -> None:
    from smsapp.testing.procs import database_url

    text = TextMessage.objects.create(name="Flash sale", body="Hi")
    messages = _sent_messages(20, text)
    # The test holds one of the messages' rows locked, so the flusher's batch statement waits on it: the batch is
    # claimed from the buffer and not yet applied when the worker is killed.
    with psycopg.connect(database_url(), autocommit=False) as blocker:
        blocker.execute("SELECT id FROM texts_outboundmessage WHERE id = %s FOR UPDATE", [messages[7].pk])
        # All of them in the buffer before a flusher runs, so that it claims them in one batch: with the worker up
        # first, posts slower than the flush delay (a loaded machine) split them, and the second batch waited for ever
        # behind the first, which waits on the lock.
        for m in messages:
            assert _post(status_params(str(m.provider_sid), "delivered", to=m.to_number)) == 200
        _wait_for(lambda: buffered.llen(BUFFER_KEY) == len(messages), timeout=10, what="every status buffered")
        victim = _worker(SMS_STATUS_FLUSH_STALE_SECONDS="2")
        try:
            _wait_for(
                lambda: buffered.zcard(CLAIMS_KEY) == 1 and buffered.llen(BUFFER_KEY) == 0,
                timeout=30,
                what="the worker claimed the batch",
            )
            time.sleep(0.5)  # well into its statement, which waits for the row lock
            victim.kill()
        finally:
            victim.stop()
        [token] = [t.decode() for t in buffered.zrange(CLAIMS_KEY, 0, -1)]
        assert buffered.llen(CLAIM_PREFIX + token) == len(messages)  # the claim outlives its flusher
        blocker.rollback()
    assert not OutboundMessage.objects.filter(status=Status.DELIVERED).exists()
    # Another worker; the next callback arms a flush, which puts the dead flusher's claim back once it is stale and
    # applies it with the new status.
    extra = OutboundMessage.objects.create(
        contact=Contact.objects.create(mobile="+14155558888"),
        to_number="+14155558888",
        text_message=text,
        source=Source.BROADCAST,
        status=Status.SENT,
        provider_sid=sid(),
        sent_at=timezone.now(),
    )
    survivor = _worker(SMS_STATUS_FLUSH_STALE_SECONDS="2")
    try:
        assert _post(status_params(str(extra.provider_sid), "delivered")) == 200
        _wait_for(
            lambda: OutboundMessage.objects.filter(status=Status.DELIVERED).count() == len(messages) + 1,
            timeout=30,
            what="the dead flusher's batch applied by the next one",
        )
        _wait_for(lambda: buffered.zcard(CLAIMS_KEY) == 0, timeout=10, what="the claim released")
    finally:
        survivor.stop()
    # Exactly once in effect: one timeline entry per delivery, whatever ran twice.
    assert TimelineEvent.objects.filter(kind="sms.delivered").count() == len(messages) + 1
    assert buffered.llen(BUFFER_KEY) == 0
