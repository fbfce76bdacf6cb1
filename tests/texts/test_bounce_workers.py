"""Bounces through the real pipeline (issue 17 part B): fake_twilio in its own process, a real Celery worker and the
official client. A landline fails twice (the API's 21614, or the carrier's 30006 in a status callback flushed from
the buffer in a batch), is then suppressed as bounced, and the next broadcast skips it: nothing more reaches
fake_twilio for it, while the mobile next to it gets every broadcast."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from contacts.models import AddressFailure, Contact, DoNotContact, Segment, Suppression
from contacts.services import segment_add_contacts
from smsapp.testing import procs
from tests.consent_helpers import give_consent
from tests.real_workers import worker_env
from tests.waiting import wait_for
from texts.models import OutboundMessage, Status, TextMessage
from texts.services.broadcasts import broadcast_send
from texts.status_buffer import BUFFER_KEY, CLAIM_PREFIX, CLAIMS_KEY, PENDING_KEY, RECHECK_KEY

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LANDLINE, MOBILE, OURS = "+14155552901", "+14155552902", "+15005550006"


def _env(fake: Any, public_url: str) -> dict[str, str]:
    return worker_env(
        fake,
        sender=OURS,
        public_url=public_url,
        SMS_QUIET_HOURS_START="00:00",  # marketing at any hour: the test does not depend on the clock
        SMS_QUIET_HOURS_END="23:59",
        SMS_BAD_ADDRESS_FAILURES="2",
    )


def _audience() -> Segment:
    segment = Segment.objects.create(name="Everyone")
    contacts = [Contact.objects.create(first_name=n, mobile=m) for n, m in (("Lan", LANDLINE), ("Mo", MOBILE))]
    give_consent(contacts)
    segment_add_contacts(segment=segment, contact_ids=[c.pk for c in contacts])
    return segment


def _broadcast(segment: Segment, n: int, *, settled: Callable[[TextMessage], bool]) -> TextMessage:
    text = TextMessage.objects.create(name=f"Sale {n}", body=f"Sale number {n}")
    text.segments.set([segment])
    broadcast_send(text_message=text)
    wait_for(lambda: settled(text), f"broadcast {n} settled")
    return text


def _requests_to(fake: Any, number: str) -> int:
    return sum(1 for r in fake.requests() if r["to"] == number)


def _final(text: TextMessage) -> bool:
    rows = OutboundMessage.objects.filter(text_message=text)
    return rows.exists() and not rows.filter(status__in=[Status.QUEUED, Status.SENDING]).exists()


def _assert_bounced_and_skipped(fake: Any, segment: Segment, settled: Callable[[TextMessage], bool]) -> None:
    entry = Suppression.objects.get(address=LANDLINE, lifted_at__isnull=True)
    assert (entry.reason, entry.source) == ("bounced", "provider")
    assert DoNotContact.objects.filter(contact__mobile=LANDLINE, reason="bounced", lifted_at__isnull=True).exists()
    assert AddressFailure.objects.get(address=LANDLINE).failures == 2
    third = _broadcast(segment, 3, settled=settled)
    assert list(OutboundMessage.objects.filter(text_message=third).values_list("to_number", flat=True)) == [MOBILE]
    assert _requests_to(fake, LANDLINE) == 2
    assert _requests_to(fake, MOBILE) == 3


def test_a_landline_refused_at_the_api_twice_is_suppressed_and_skipped(fake_twilio_process: Any) -> None:
    fake = fake_twilio_process
    fake.control(landlines=[LANDLINE])
    segment = _audience()
    worker = procs.start_worker(queues="sms_priority,sms_bulk", concurrency=1, env=_env(fake, "http://127.0.0.1:9"))
    beat = procs.start_beat(env=_env(fake, "http://127.0.0.1:9"))  # the pacer wakes a broadcast's parked messages
    try:
        for n in (1, 2):
            text = _broadcast(segment, n, settled=_final)
            failed = OutboundMessage.objects.get(text_message=text, to_number=LANDLINE)
            assert (failed.status, failed.error_code) == (Status.FAILED, "21614")
        _assert_bounced_and_skipped(fake, segment, _final)
    finally:
        beat.stop()
        worker.stop()


@pytest.fixture
def buffered(settings: Any, live_server: Any) -> Iterator[None]:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)

    def clear() -> None:
        client.delete(BUFFER_KEY, PENDING_KEY, RECHECK_KEY, CLAIMS_KEY, *client.keys(CLAIM_PREFIX + "*"))

    clear()
    yield
    clear()


def test_a_landline_the_carrier_fails_twice_in_callbacks_is_suppressed_and_skipped(
    fake_twilio_process: Any, live_server: Any, settings: Any, buffered: None
) -> None:
    fake = fake_twilio_process
    fake.control(failing={LANDLINE: 30006})
    settings.SMS_PROVIDER = "twilio"
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = fake.account_sid, fake.auth_token
    settings.TWILIO_API_KEY_SID = settings.TWILIO_API_KEY_SECRET = ""
    settings.TWILIO_FROM, settings.TWILIO_MESSAGING_SERVICE_SID = OURS, ""
    settings.SMS_CALLBACK_SKIP_SIGNATURE = False
    settings.SMS_STATUS_BUFFER = True  # callbacks go to Redis; the worker flushes them in batches
    settings.PUBLIC_BASE_URL = live_server.url
    segment = _audience()
    env = _env(fake, live_server.url)
    worker = procs.start_worker(queues="sms_priority,sms_bulk", concurrency=1, env=env)
    beat = procs.start_beat(env=env)

    def delivered_or_failed(text: TextMessage) -> bool:
        rows = OutboundMessage.objects.filter(text_message=text)
        return rows.count() >= 1 and not rows.exclude(status__in=[Status.DELIVERED, Status.FAILED]).exists()

    try:
        for n in (1, 2):
            text = _broadcast(segment, n, settled=delivered_or_failed)
            failed = OutboundMessage.objects.get(text_message=text, to_number=LANDLINE)
            assert (failed.status, failed.error_code) == (Status.FAILED, "30006")
        _assert_bounced_and_skipped(fake, segment, delivered_or_failed)
    finally:
        beat.stop()
        worker.stop()
