"""Frequency caps of marketing texts (issue 17 part B), on PostgreSQL: enforced at claim time, set-based, deferred
or skipped with the reason on the outbound log, never for transactional texts, and race-free when several workers
claim for the same contact at once."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from contacts.models import Contact
from texts.models import OutboundMessage, Schedule, Source, Status, TextMessage
from texts.reports import report_for
from texts.services import outbound_claim

pytestmark = [pytest.mark.postgres]


def _queued(text: TextMessage, contact: Contact, count: int) -> list[int]:
    rows = OutboundMessage.objects.bulk_create(
        OutboundMessage(contact=contact, to_number=str(contact.mobile), text_message=text, source=Source.API)
        for _ in range(count)
    )
    return [r.pk for r in rows]


def _handed(contact: Contact, text: TextMessage, *, hours_ago: float, count: int = 1) -> None:
    at = timezone.now() - dt.timedelta(hours=hours_ago)
    OutboundMessage.objects.bulk_create(
        OutboundMessage(
            contact=contact,
            to_number=str(contact.mobile),
            text_message=text,
            source=Source.API,
            status=Status.DELIVERED,
            provider_called_at=at,
            sending_at=at,
        )
        for _ in range(count)
    )


@pytest.mark.django_db
def test_over_the_weekly_cap_is_deferred_with_its_reason(
    settings: Any, marketing_text: TextMessage, make_contact: Callable[..., Contact]
) -> None:
    settings.SMS_MARKETING_CAP_PER_WEEK = 3
    ann, bob = make_contact(), make_contact()
    _handed(ann, marketing_text, hours_ago=24 * 6, count=2)  # in the week
    _handed(ann, marketing_text, hours_ago=24 * 8, count=5)  # before it: not counted
    ids = _queued(marketing_text, ann, 3) + _queued(marketing_text, bob, 1)
    _, rows = outbound_claim(message_ids=ids)
    assert sorted(r.pk for r in rows) == [ids[0], ids[3]]  # Ann's one left in the week, Bob's
    later = OutboundMessage.objects.get(pk=ids[1])
    assert (later.status, later.error_code) == (Status.QUEUED, "frequency_cap")
    assert "3 a week" in later.error_message
    assert later.schedule == Schedule.PARKED  # a day away: the pacer's orphan check queues it again when due
    assert later.next_attempt_at is not None
    assert later.next_attempt_at > timezone.now() + dt.timedelta(hours=23)
    assert report_for(marketing_text).capped == 2


@pytest.mark.django_db
def test_skip_fails_over_the_daily_cap_and_transactional_is_never_capped(
    settings: Any,
    marketing_text: TextMessage,
    transactional_text: TextMessage,
    make_contact: Callable[..., Contact],
) -> None:
    settings.SMS_MARKETING_CAP_PER_DAY = 1
    settings.SMS_MARKETING_CAP_ACTION = "skip"
    ann = make_contact()
    _handed(ann, marketing_text, hours_ago=2)
    _handed(ann, transactional_text, hours_ago=1, count=4)  # transactional texts do not count
    capped = _queued(marketing_text, ann, 1)
    receipts = _queued(transactional_text, ann, 3)
    _, rows = outbound_claim(message_ids=capped + receipts)
    assert sorted(r.pk for r in rows) == receipts
    row = OutboundMessage.objects.get(pk=capped[0])
    assert (row.status, row.error_code) == (Status.FAILED, "frequency_cap")
    assert "1 a day" in row.error_message
    assert report_for(marketing_text).capped == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_never_exceed_the_cap(settings: Any, marketing_text: TextMessage) -> None:
    settings.SMS_MARKETING_CAP_PER_WEEK = 2
    from tests.consent_helpers import give_consent

    contact = Contact.objects.create(first_name="Cy", mobile="+14155553001")
    give_consent([contact])
    claimed: list[int] = []
    errors: list[BaseException] = []
    for _round in range(3):  # a few rounds, each of 6 workers claiming disjoint rows of one contact at once
        OutboundMessage.objects.filter(contact=contact).delete()
        ids = _queued(marketing_text, contact, 12)
        barrier = threading.Barrier(6)

        def claim(mine: list[int], barrier: threading.Barrier) -> None:
            try:
                barrier.wait(timeout=10)
                _, rows = outbound_claim(message_ids=mine)
                claimed.extend(r.pk for r in rows)
            except BaseException as exc:  # reported below
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=claim, args=(ids[i::6], barrier)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not errors, errors
        sending = OutboundMessage.objects.filter(contact=contact, status=Status.SENDING).count()
        assert sending == 2
        assert OutboundMessage.objects.filter(contact=contact, error_code="frequency_cap").count() == 10
    assert len(claimed) == 6
