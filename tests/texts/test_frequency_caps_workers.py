"""A contact over the weekly marketing cap is not texted by a real worker (issue 17 part B): fake_twilio in its own
process, the official client, a broadcast to two contacts of whom one had the week's marketing texts already; a
transactional text to that contact still goes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from contacts.models import Contact, Segment
from contacts.services import segment_add_contacts
from smsapp.testing import procs
from tests.consent_helpers import give_consent
from tests.real_workers import worker_env
from tests.waiting import wait_for
from texts.models import OutboundMessage, Source, Status, TextMessage
from texts.reports import report_for
from texts.services.broadcasts import broadcast_send
from texts.services.outbound import outbound_enqueue

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CAPPED, FREE, OURS = "+14155553101", "+14155553102", "+15005550006"


def _env(fake: Any) -> dict[str, str]:
    return worker_env(
        fake,
        sender=OURS,
        public_url="http://127.0.0.1:9",
        SMS_QUIET_HOURS_START="00:00",
        SMS_QUIET_HOURS_END="23:59",
        SMS_MARKETING_CAP_PER_WEEK="2",
        SMS_MARKETING_CAP_ACTION="defer",
    )


def _to(fake: Any, number: str) -> list[dict[str, Any]]:
    return [m for m in fake.messages() if (m.get("to") or m.get("To")) == number]


def test_a_contact_over_the_weekly_cap_is_not_texted(fake_twilio_process: Any) -> None:
    fake = fake_twilio_process
    capped = Contact.objects.create(first_name="Cap", mobile=CAPPED)
    free = Contact.objects.create(first_name="Fre", mobile=FREE)
    give_consent([capped, free])
    earlier = TextMessage.objects.create(name="Earlier", body="Earlier sale")
    at = timezone.now() - dt.timedelta(days=3)
    OutboundMessage.objects.bulk_create(
        OutboundMessage(
            contact=capped,
            to_number=CAPPED,
            text_message=earlier,
            source=Source.API,
            status=Status.DELIVERED,
            provider_called_at=at,
            sending_at=at,
        )
        for _ in range(2)
    )
    segment = Segment.objects.create(name="Both")
    segment_add_contacts(segment=segment, contact_ids=[capped.pk, free.pk])
    sale = TextMessage.objects.create(name="Sale", body="Big sale")
    sale.segments.set([segment])
    receipt = TextMessage.objects.create(name="Receipt", body="Paid, thanks", category="transactional")
    worker = procs.start_worker(queues="sms_priority,sms_bulk", concurrency=1, env=_env(fake))
    beat = procs.start_beat(env=_env(fake))
    try:
        broadcast_send(text_message=sale)
        wait_for(lambda: _to(fake, FREE), "the free contact's sale at fake_twilio")
        held = wait_for(
            lambda: (
                OutboundMessage.objects.filter(text_message=sale, to_number=CAPPED, error_code="frequency_cap")
                .exclude(next_attempt_at=None)
                .first()
            ),
            "the capped contact's sale deferred",
        )
        assert outbound_enqueue(text_message=receipt, contacts=[capped.pk], source=Source.API) == 1
        wait_for(lambda: _to(fake, CAPPED), "the transactional text to the capped contact")
    finally:
        beat.stop()
        worker.stop()
    assert [m["body"] for m in _to(fake, CAPPED)] == ["Paid, thanks"]
    held.refresh_from_db()
    assert held.status == Status.QUEUED
    assert "2 a week" in held.error_message
    assert held.next_attempt_at is not None
    assert held.next_attempt_at > timezone.now() + dt.timedelta(days=3)
    assert report_for(sale).capped == 1
