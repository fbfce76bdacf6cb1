"""The REST API of campaigns: list, read, members (list, add, remove) through ``campaigns.services``."""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, Prefetch, QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Path, Query, Router, Schema

from contacts.api import ContactPage, contact_page, existing_contact_ids
from contacts.models import Contact, Segment
from smsapp.core.api import ContactIds, Id, MembershipChange, PageQuery, keyset_page, responses

from .models import Campaign, CampaignMember
from .services import campaign_member_count, campaign_members_add, campaign_members_remove

router = Router()


class CampaignOut(Schema):
    id: int
    name: str
    description: str
    is_published: bool
    published_at: dt.datetime | None
    segment_ids: list[int]
    member_count: int
    created_at: dt.datetime
    updated_at: dt.datetime


class CampaignPage(Schema):
    items: list[CampaignOut]
    next_cursor: str | None


def campaign_out(campaign: Campaign, member_count: int) -> CampaignOut:
    return CampaignOut(
        id=campaign.pk,
        name=campaign.name,
        description=campaign.description,
        is_published=campaign.is_published,
        published_at=campaign.published_at,
        segment_ids=[segment.pk for segment in campaign.segments.all()],
        member_count=member_count,
        created_at=campaign.created_at,
        updated_at=campaign.updated_at,
    )


def _with_segment_ids() -> QuerySet[Campaign]:
    return Campaign.objects.prefetch_related(Prefetch("segments", queryset=Segment.objects.only("pk").order_by("pk")))


def _get_campaign(campaign_id: int) -> Campaign:
    return get_object_or_404(_with_segment_ids(), pk=campaign_id)


@router.get("/campaigns", response=responses({200: CampaignPage}, 400), tags=["campaigns"], summary="List campaigns")
def campaign_list(request: HttpRequest, query: Query[PageQuery]) -> CampaignPage:
    rows, next_cursor = keyset_page(_with_segment_ids(), query)
    # The page's member counts in one grouped query (an index-only count per campaign), not one query per campaign.
    counts = dict(
        CampaignMember.objects.filter(campaign__in=[c.pk for c in rows], manually_removed=False)
        .values("campaign")
        .annotate(n=Count("pk"))
        .values_list("campaign", "n")
    )
    return CampaignPage(items=[campaign_out(c, counts.get(c.pk, 0)) for c in rows], next_cursor=next_cursor)


@router.get(
    "/campaigns/{campaign_id}", response=responses({200: CampaignOut}, 400, 404), tags=["campaigns"], summary="One"
)
def campaign_read(request: HttpRequest, campaign_id: Path[Id]) -> CampaignOut:
    campaign = _get_campaign(campaign_id)
    return campaign_out(campaign, campaign_member_count(campaign=campaign))


@router.get(
    "/campaigns/{campaign_id}/contacts",
    response=responses({200: ContactPage}, 400, 404),
    tags=["campaigns"],
    summary="The campaign's members",
)
def campaign_members(request: HttpRequest, campaign_id: Path[Id], query: Query[PageQuery]) -> ContactPage:
    campaign = _get_campaign(campaign_id)
    members = Contact.objects.filter(
        campaign_memberships__campaign=campaign, campaign_memberships__manually_removed=False
    )
    return contact_page(members, query)


@router.post(
    "/campaigns/{campaign_id}/contacts",
    response=responses({200: MembershipChange}, 400, 404, 413),
    tags=["campaigns"],
    summary="Add contacts to a campaign by hand (undoes an earlier manual removal)",
)
def campaign_contacts_add(request: HttpRequest, campaign_id: Path[Id], payload: ContactIds) -> MembershipChange:
    campaign = _get_campaign(campaign_id)
    changed = campaign_members_add(campaign=campaign, contact_ids=existing_contact_ids(payload.contact_ids))
    return MembershipChange(changed=changed, member_count=campaign_member_count(campaign=campaign))


@router.delete(
    "/campaigns/{campaign_id}/contacts",
    response=responses({200: MembershipChange}, 400, 404, 413),
    tags=["campaigns"],
    summary="Remove contacts from a campaign (their pending events are skipped; segments will not re-add them)",
)
def campaign_contacts_remove(request: HttpRequest, campaign_id: Path[Id], payload: ContactIds) -> MembershipChange:
    campaign = _get_campaign(campaign_id)
    changed = campaign_members_remove(campaign=campaign, contact_ids=existing_contact_ids(payload.contact_ids))
    return MembershipChange(changed=changed, member_count=campaign_member_count(campaign=campaign))
