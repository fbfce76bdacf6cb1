"""Builders for campaign tests: contacts in a segment, a campaign with a tree of events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from campaigns import services
from campaigns.models import Campaign, CampaignEvent, CampaignEventLog
from contacts.models import Contact, Segment, SegmentMembership
from tests.consent_helpers import give_consent


@pytest.fixture
def segment(db: None) -> Segment:
    return Segment.objects.create(name="Newsletter")


@pytest.fixture
def make_contacts(segment: Segment) -> Callable[..., list[Contact]]:
    def _make(n: int, *, tz: str = "", start: int = 0, **fields: Any) -> list[Contact]:
        contacts = Contact.objects.bulk_create(
            [
                Contact(first_name=f"C{start + i}", mobile=f"+4477009{start + i:05d}", timezone=tz, **fields)
                for i in range(n)
            ]
        )
        SegmentMembership.objects.bulk_create([SegmentMembership(segment=segment, contact=c) for c in contacts])
        give_consent(contacts)  # campaigns send marketing: subscribed, as the API records it
        return contacts

    return _make


@pytest.fixture
def campaign(segment: Segment) -> Campaign:
    c = Campaign.objects.create(name="Welcome", is_published=True)
    c.segments.add(segment)
    return c


@pytest.fixture
def add_event(campaign: Campaign) -> Callable[..., CampaignEvent]:
    def _add(kind: str, parent: CampaignEvent | None = None, path: str | None = None, **data: Any) -> CampaignEvent:
        return services.campaign_event_save(campaign=campaign, kind=kind, data=data, parent=parent, path=path)

    return _add


def statuses(event: CampaignEvent) -> dict[int, tuple[str, str | None]]:
    return {log.contact_id: (log.status, log.path_taken) for log in CampaignEventLog.objects.filter(event=event)}
