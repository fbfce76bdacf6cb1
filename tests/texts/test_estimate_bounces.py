"""The broadcast estimate counts only who would get the text (issue 17 part B): for marketing, consented numbers
that are not suppressed, a bounced one included among the suppressed; for transactional, anyone not suppressed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from contacts.bounces import AddressFailureReport, address_failures_record
from contacts.models import Contact, Segment
from contacts.services import segment_add_contacts
from texts.estimates import broadcast_estimate
from texts.models import TextMessage
from texts.services.broadcasts import broadcast_audience

pytestmark = pytest.mark.django_db


def test_a_bounced_number_is_not_in_the_estimate(settings: Any, make_contact: Callable[..., Contact]) -> None:
    settings.SMS_BAD_ADDRESS_FAILURES = 1
    consented = [make_contact() for _ in range(3)]
    never = make_contact(sms_consent=False)
    bounced = consented[0]
    address_failures_record(failures=[AddressFailureReport(address=str(bounced.mobile), code="30006")])
    segment = Segment.objects.create(name="All")
    segment_add_contacts(segment=segment, contact_ids=[c.pk for c in [*consented, never]])
    sale = TextMessage.objects.create(name="Sale", body="Sale today")
    receipt = TextMessage.objects.create(name="Note", body="Store closed today", category="transactional")
    for text in (sale, receipt):
        text.segments.set([segment])
    assert broadcast_estimate(text_message=sale, segment_ids=[segment.pk]).recipients == 2
    assert broadcast_estimate(text_message=receipt, segment_ids=[segment.pk]).recipients == 3
    assert broadcast_audience(text_message=sale).will_receive == 2
