"""The callback end to end: fake_twilio posting signed webhooks to a live server, and concurrency on PostgreSQL."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from django.db import connection
from django.test import Client
from django.utils import timezone

from contacts.models import Contact, DoNotContact, TimelineEvent
from providers.twilio.testing import PATH, configure, inbound_params, sid, sign, status_params
from texts.keywords import keyword_seed_defaults
from texts.models import InboundMessage, OutboundMessage, Status


def test_fake_twilio_reply_and_status_callbacks_end_to_end(
    transactional_db: None, live_server: Any, settings: Any, fake_twilio: Any, twilio_settings: Any
) -> None:
    settings.PUBLIC_BASE_URL = live_server.url
    settings.SMS_STATUS_BUFFER = False  # no worker here; buffered through a real one: test_status_buffer_workers.py
    keyword_seed_defaults()
    url = live_server.url + PATH
    contact = Contact.objects.create(mobile="+14155550123")
    message = OutboundMessage.objects.create(
        contact=contact,
        to_number="+14155550123",
        source="api",
        status=Status.SENT,
        provider_sid=sid(),
        sent_at=timezone.now(),
    )
    record = fake_twilio.send_inbound("+14155550123", "+15005550006", "Stop!", url=url)
    assert record["status"] == 200
    assert record["response"].endswith("<Response />")
    inbound = InboundMessage.objects.get()
    assert inbound.in_reply_to == message
    assert DoNotContact.objects.filter(contact=contact, lifted_at__isnull=True, source="keyword").exists()
    help_record = fake_twilio.send_inbound("+14155550123", "+15005550006", "help", url=url)
    assert "<Message>" in help_record["response"]
    # Status callbacks exactly as fake_twilio signs them, out of order: delivered, then a late sent.
    for status in ("delivered", "sent"):
        params = status_params(message.provider_sid or "", status)
        params["AccountSid"] = fake_twilio.account_sid
        answer, _ = fake_twilio._post(url, params)
        assert answer == 200
    message.refresh_from_db()
    assert message.status == Status.DELIVERED
    assert TimelineEvent.objects.filter(contact=contact, kind="sms.delivered").count() == 1
    # A forged one (signed with another token) is refused by the real server.
    params = status_params(message.provider_sid or "", "failed")
    forged = requests.post(url, data=params, headers={"X-Twilio-Signature": sign(params, url=url)}, timeout=10)
    assert forged.status_code == 403


@pytest.mark.postgres
def test_concurrent_callbacks_one_message_one_contact_highest_status(transactional_db: None, settings: Any) -> None:
    configure(settings)
    keyword_seed_defaults()  # a transactional test's database is flushed between tests, seeds included
    message = OutboundMessage.objects.create(
        to_number="+14155550999", source="api", status=Status.SENT, provider_sid=sid(), sent_at=timezone.now()
    )
    number = "+14155550777"
    reply = inbound_params("STOP", from_=number)
    statuses = ["queued", "sent", "delivered", "sending", "sent", "queued"] * 4
    barrier = threading.Barrier(8)

    def call(params: dict[str, str]) -> int:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=10)
        try:
            return Client().post(PATH, data=params, HTTP_X_TWILIO_SIGNATURE=sign(params)).status_code
        finally:
            connection.close()  # each thread has its own connection; give it back

    jobs = [reply] * 12 + [status_params(message.provider_sid or "", s) for s in statuses]
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(call, jobs))
    assert codes == [200] * len(jobs)
    assert InboundMessage.objects.count() == 1
    assert Contact.objects.filter(mobile=number).count() == 1
    assert DoNotContact.objects.filter(contact__mobile=number, lifted_at__isnull=True).count() == 1
    assert TimelineEvent.objects.filter(kind="sms.reply").count() == 1
    message.refresh_from_db()
    assert message.status == Status.DELIVERED
