"""Progress a marketer can read while a text message sends: counts, the current rate, the time left and the sender
whose limit sets it; on the broadcast panel and in ``send_broadcasts``' output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from contacts.models import Contact, Segment
from contacts.services import segment_add_contacts
from providers.base import Sender
from texts.models import OutboundMessage, Schedule, Status, TextMessage
from texts.reports import duration, sending_progress

from .conftest import StubConfig, StubSenderConfig

pytestmark = pytest.mark.django_db

LONG_CODE = "+12025550123"
SHORT_CODE = "+1234567"
TWO_SENDERS = StubConfig(
    senders=(StubSenderConfig(Sender("number", LONG_CODE), 1.0), StubSenderConfig(Sender("number", SHORT_CODE), 100.0))
)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    cache.clear()


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(0, "0 s"), (40.4, "40 s"), (90, "2 min"), (3600, "1 h"), (13_200, "3 h 40 min"), (90_000, "1 d 1 h")],
)
def test_duration_reads_as_a_person_says_it(seconds: float, words: str) -> None:
    assert duration(seconds) == words


def _rows(text: TextMessage, contacts: list[Contact], **fields: Any) -> None:
    OutboundMessage.objects.bulk_create(
        OutboundMessage(contact=c, to_number=str(c.mobile), text_message=text, source="broadcast", **fields)
        for c in contacts
    )


def test_the_slowest_senders_share_is_the_time_left(make_contact: Callable[..., Contact], settings: Any) -> None:
    text = TextMessage.objects.create(name="Sale", body="Sale")
    people = [make_contact() for _ in range(260)]
    _rows(text, people[:10], status=Status.SENT, sender=LONG_CODE)
    _rows(text, people[10:13], status=Status.FAILED)
    _rows(text, people[13:113], status=Status.QUEUED, schedule=Schedule.PARKED, sender=LONG_CODE, segments=1)
    _rows(text, people[113:213], status=Status.QUEUED, schedule=Schedule.PARKED, sender=SHORT_CODE, segments=1)
    _rows(text, people[213:259], status=Status.QUEUED)  # not claimed yet: no sender chosen
    later = dict(status=Status.QUEUED, schedule=Schedule.PARKED, sender=LONG_CODE)
    _rows(text, people[259:], next_attempt_at="2099-01-01T08:00:00Z", **later)  # quiet hours

    progress = sending_progress(text, get_config=lambda: TWO_SENDERS)

    assert (progress.sent, progress.queued, progress.failed, progress.later) == (10, 247, 3, 1)
    line = progress.bottleneck
    assert line is not None
    assert (line.sender, line.rate, line.waiting) == ("+1 202-555-0123", 1.0, 123)  # 100 + half of the 46 new
    # At the rate the slots are really spaced: the sender's, less the allowance for late requests (providers.ratelimit).
    assert progress.seconds_left == pytest.approx(123 * (1 + settings.SMS_SEND_JITTER_SECONDS))
    assert progress.sentence() == (
        "10 sent, 247 queued, 3 failed; +1 202-555-0123 allows 1 message/s: about 2 min left; "
        "1 wait for quiet hours or a retry"
    )


def test_the_rate_comes_from_what_was_seen_a_while_ago(make_contact: Callable[..., Contact]) -> None:
    text = TextMessage.objects.create(name="Sale", body="Sale")
    people = [make_contact() for _ in range(30)]
    _rows(text, people[:30], status=Status.QUEUED, sender=LONG_CODE)
    with mock.patch("time.time", return_value=1_000.0):
        assert sending_progress(text, get_config=lambda: TWO_SENDERS).rate is None  # one sample is no rate
    OutboundMessage.objects.filter(pk__in=list(OutboundMessage.objects.values_list("pk", flat=True)[:20])).update(
        status=Status.SENT
    )
    with mock.patch("time.time", return_value=1_010.0):
        progress = sending_progress(text, get_config=lambda: TWO_SENDERS)
    assert progress.rate == pytest.approx(2.0)
    assert "2.0 messages/s now" in progress.sentence()


def test_the_broadcast_panel_shows_the_rate_the_time_left_and_the_bottleneck(
    marketer_client: Client, make_contact: Callable[..., Contact], settings: Any
) -> None:
    settings.TWILIO_FROM = LONG_CODE
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = "AC" + "0" * 32, "0" * 32
    segment = Segment.objects.create(name="Audience")
    people = [make_contact() for _ in range(5)]
    segment_add_contacts(segment=segment, contact_ids=[c.pk for c in people], record=False)
    text = TextMessage.objects.create(name="Sale", body="Sale")
    text.segments.set([segment])
    _rows(text, people, status=Status.QUEUED, schedule=Schedule.PARKED, sender=LONG_CODE, segments=1)
    settings.SMS_CONFIG_CACHE_SECONDS = 0

    page = marketer_client.get(reverse("texts:broadcast", args=[text.pk])).content.decode()

    assert 'data-testid="sending"' in page
    assert "+1 202-555-0123 allows 1 message/s: about 5 s left" in page
    assert 'hx-trigger="every 2s"' in page  # it keeps itself up to date while messages wait
