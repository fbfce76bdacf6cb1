"""Double opt-in by keyword through the real pipeline (issue 17): fake_twilio (its own process) posts a signed JOIN
to the live server, a real worker sends "Reply YES to confirm" to fake_twilio, the signed YES subscribes the number,
and only then does a marketing text reach it."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import pytest

from contacts.consent import consent_state
from contacts.models import ConsentEvent, ConsentSource, ConsentStatus, Contact
from providers.twilio.testing import PATH
from smsapp.testing import procs
from tests.real_workers import worker_env
from texts.keywords import keyword_seed_defaults
from texts.models import OutboundMessage, Source, Status, TextMessage
from texts.services.outbound import outbound_enqueue

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

NUMBER, OURS = "+14155552323", "+15005550006"


def web_settings(settings: Any, fake: Any, live_server: Any) -> None:
    """The live server checks fake_twilio's signatures (its token, the public URL it posts to)."""
    settings.SMS_PROVIDER = "twilio"
    settings.TWILIO_ACCOUNT_SID = fake.account_sid
    settings.TWILIO_AUTH_TOKEN = fake.auth_token
    settings.TWILIO_API_KEY_SID = ""
    settings.TWILIO_API_KEY_SECRET = ""
    settings.TWILIO_FROM = OURS
    settings.TWILIO_MESSAGING_SERVICE_SID = ""
    settings.SMS_CALLBACK_SKIP_SIGNATURE = False
    settings.SMS_STATUS_BUFFER = False
    settings.PUBLIC_BASE_URL = live_server.url


def wait_for(predicate: Callable[[], Any], what: str, *, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # bounded
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")


def sent_to(fake: Any, number: str) -> list[dict[str, Any]]:
    return [m for m in fake.messages() if (m.get("to") or m.get("To")) == number]


def test_join_keyword_then_yes_subscribes_through_a_real_worker(
    fake_twilio_process: Any, live_server: Any, settings: Any
) -> None:
    fake = fake_twilio_process
    web_settings(settings, fake, live_server)
    keyword_seed_defaults()  # the flushed database's keywords, JOIN included
    url = live_server.url + PATH
    worker = procs.start_worker(queues="sms_priority,sms_bulk", concurrency=1, env=worker_env(fake, sender=OURS))
    # Beat runs the pacer, which wakes a bulk message parked behind its sender's last one (the confirmation used the
    # long code's slot a moment ago): as deployed.
    beat = procs.start_beat(env=worker_env(fake, sender=OURS))
    try:
        joined = fake.send_inbound(NUMBER, OURS, "Join", url=url)
        assert joined["status"] == 200
        confirmation = wait_for(lambda: sent_to(fake, NUMBER), "the confirmation reaching fake_twilio")
        assert "Reply YES to confirm" in (confirmation[0].get("body") or confirmation[0].get("Body"))
        request_row = OutboundMessage.objects.get(to_number=NUMBER)
        assert (request_row.source, request_row.priority) == (Source.DOUBLE_OPT_IN, True)
        assert consent_state(address=NUMBER).status == ConsentStatus.NEVER

        # Marketing before the YES: refused at enqueue (no consent), nothing more reaches fake_twilio.
        contact = Contact.objects.get(mobile=NUMBER)
        # Where it is midday now, so quiet hours (08:00-21:00 by default) let the marketing text through.
        offset = 12 - dt.datetime.now(dt.UTC).hour
        Contact.objects.filter(pk=contact.pk).update(timezone=f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT")
        sale = TextMessage.objects.create(name="Sale", body="Sale today", category="marketing")
        assert outbound_enqueue(text_message=sale, contacts=[contact.pk], source="api") == 0

        assert fake.send_inbound(NUMBER, OURS, "yes", url=url)["status"] == 200
        state = consent_state(address=NUMBER)
        assert (state.status, state.source) == (ConsentStatus.SUBSCRIBED, ConsentSource.DOUBLE_OPT_IN)
        assert list(ConsentEvent.objects.order_by("id").values_list("status", "source")) == [
            ("pending", "keyword"), ("subscribed", "double_opt_in"),
        ]  # fmt: skip

        assert outbound_enqueue(text_message=sale, contacts=[contact.pk], source="api") == 1
        wait_for(lambda: len(sent_to(fake, NUMBER)) >= 2, "the marketing text reaching fake_twilio")
        sale_row = OutboundMessage.objects.get(to_number=NUMBER, text_message=sale)
        wait_for(lambda: OutboundMessage.objects.get(pk=sale_row.pk).status != Status.QUEUED, "the sale's outcome")
        assert OutboundMessage.objects.get(pk=sale_row.pk).status in {Status.SENDING, Status.SENT, Status.DELIVERED}
    finally:
        beat.stop()
        worker.stop()
