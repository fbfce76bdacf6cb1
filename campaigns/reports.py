"""Reads for the campaign page: what its Send Text Message actions' texts became, the segments its events name, and
the campaign's messages for the funnel, the chart and the cost (``texts.engagement``)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db.models import Count, Max, Q, QuerySet

from contacts.models import Segment
from texts.models import InboundMessage, OutboundMessage, ShortLink, Source, Status

from .models import Campaign, CampaignEvent, CampaignEventLog, CampaignMember, EventKind


def send_refs(campaign: Campaign) -> dict[str, int]:
    """Each ``source_ref`` the campaign's sends can have (``campaign_send_ref``), with its event: an IN list the
    outbound log's unique (source_ref, contact) index answers."""
    from .engine import campaign_send_ref

    events = list(
        CampaignEvent.objects.filter(campaign=campaign, kind=EventKind.SEND_TEXT_MESSAGE).values_list("pk", flat=True)
    )
    if not events:
        return {}
    entries = max(
        CampaignMember.objects.filter(campaign=campaign).aggregate(n=Max("entry"))["n"] or 1,
        CampaignEventLog.objects.filter(campaign=campaign).aggregate(n=Max("entry"))["n"] or 1,
    )
    return {
        campaign_send_ref(event_id=event_id, entry=entry): event_id
        for event_id in events
        for entry in range(1, entries + 1)
    }


def campaign_messages(campaign: Campaign) -> QuerySet[OutboundMessage]:
    return OutboundMessage.objects.filter(source=Source.CAMPAIGN, source_ref__in=list(send_refs(campaign)))


def send_counts(campaign: Campaign) -> dict[int, dict[str, int]]:
    """Per Send Text Message event: its texts queued (not with the provider yet), sent (accepted by it), delivered,
    failed, and the recipients who clicked or replied. Three GROUP BY queries for the whole campaign."""
    refs = send_refs(campaign)
    counts: dict[int, dict[str, int]] = defaultdict(
        lambda: {"queued": 0, "sent": 0, "delivered": 0, "failed": 0, "unknown": 0, "clicked": 0, "replied": 0}
    )
    if not refs:
        return {}
    rows = (
        OutboundMessage.objects.filter(source=Source.CAMPAIGN, source_ref__in=list(refs))
        .values("source_ref")
        .annotate(
            queued=Count("id", filter=Q(status__in=[Status.QUEUED, Status.SENDING])),
            sent=Count("id", filter=Q(sent_at__isnull=False) | Q(status__in=[Status.SENT, Status.DELIVERED])),
            delivered=Count("id", filter=Q(status=Status.DELIVERED)),
            failed=Count("id", filter=Q(status__in=[Status.FAILED, Status.UNDELIVERED])),
            unknown=Count("id", filter=Q(status=Status.UNKNOWN)),
        )
        .order_by()
    )
    for row in rows:
        bucket = counts[refs[row["source_ref"]]]
        for key in ("queued", "sent", "delivered", "failed", "unknown"):
            bucket[key] += row[key]
    clicks = (
        ShortLink.objects.filter(
            outbound__source=Source.CAMPAIGN, outbound__source_ref__in=list(refs), first_clicked_at__isnull=False
        )
        .values("outbound__source_ref")
        .annotate(n=Count("outbound_id", distinct=True))
        .order_by()
    )
    for click in clicks:
        counts[refs[click["outbound__source_ref"]]]["clicked"] += click["n"]
    replies = (
        InboundMessage.objects.filter(in_reply_to__source=Source.CAMPAIGN, in_reply_to__source_ref__in=list(refs))
        .values("in_reply_to__source_ref")
        .annotate(n=Count("in_reply_to_id", distinct=True))
        .order_by()
    )
    for reply in replies:
        counts[refs[reply["in_reply_to__source_ref"]]]["replied"] += reply["n"]
    return dict(counts)


def segment_names(events: list[CampaignEvent]) -> dict[int, list[str]]:
    """Per event that names segments (add to / remove from, in segment): their names, in one query."""
    wanted: dict[int, list[int]] = {}
    for event in events:
        ids: Any = event.prop("segment_ids") if event.kind == EventKind.IN_SEGMENT else [event.prop("segment_id")]
        if event.kind in (EventKind.ADD_TO_SEGMENT, EventKind.REMOVE_FROM_SEGMENT, EventKind.IN_SEGMENT):
            wanted[event.pk] = [int(i) for i in ids or [] if i]
    names = dict(Segment.objects.filter(pk__in={i for ids in wanted.values() for i in ids}).values_list("pk", "name"))
    return {event_id: [names[i] for i in ids if i in names] for event_id, ids in wanted.items()}
