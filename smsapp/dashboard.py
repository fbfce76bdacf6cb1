"""The dashboard's figures. The project package may import every app; each query is one aggregate, not a loop."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Q
from django.utils import timezone

from providers.registry import SetupStep


@dataclass(frozen=True)
class Card:
    label: str
    value: str
    url: str
    hint: str = ""


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "—"


def cards() -> list[Card]:
    from campaigns.models import Campaign
    from contacts.models import Contact, Segment
    from contacts.services import dnc_active
    from texts.models import OutboundMessage, Status

    since = timezone.now() - dt.timedelta(hours=24)
    week = timezone.now() - dt.timedelta(days=7)
    outbound = OutboundMessage.objects.filter(queued_at__gte=week).aggregate(
        sent_24h=Count("pk", filter=Q(sent_at__gte=since)),
        failed_24h=Count("pk", filter=Q(status__in=[Status.FAILED, Status.UNDELIVERED], updated_at__gte=since)),
        pending=Count("pk", filter=Q(status__in=[Status.QUEUED, Status.SENDING])),
        unknown=Count("pk", filter=Q(status=Status.UNKNOWN)),
        delivered_7d=Count("pk", filter=Q(status=Status.DELIVERED)),
        finished_7d=Count("pk", filter=Q(status__in=[Status.DELIVERED, Status.UNDELIVERED, Status.FAILED])),
    )
    return [
        Card("Contacts", f"{Contact.objects.count():,}", "/contacts/"),
        Card("SMS Do Not Contact", f"{dnc_active().count():,}", "/contacts/?dnc=yes"),
        Card("Segments", f"{Segment.objects.count():,}", "/segments/"),
        Card("Sent in the last 24 hours", f"{outbound['sent_24h']:,}", "/text-messages/log/"),
        Card(
            "Delivery rate, 7 days",
            _pct(outbound["delivered_7d"], outbound["finished_7d"]),
            "/text-messages/log/?status=delivered",
            hint=f"{outbound['delivered_7d']:,} of {outbound['finished_7d']:,} with a final status",
        ),
        Card("Failed in the last 24 hours", f"{outbound['failed_24h']:,}", "/text-messages/log/?status=failed"),
        Card("Waiting to send", f"{outbound['pending']:,}", "/text-messages/log/?status=queued"),
        Card(
            "Outcome unknown",
            f"{outbound['unknown']:,}",
            "/text-messages/log/?status=unknown",
            hint="A worker stopped mid-send: review; never resent automatically",
        ),
        Card("Published campaigns", f"{Campaign.objects.filter(is_published=True).count():,}", "/campaigns/"),
    ]


def setup_steps() -> list[SetupStep]:
    """What a new installation still needs, in the order the seeds give it; the first is the sending provider's."""
    from contacts.models import Contact, Segment
    from providers import registry
    from texts.models import TextMessage

    plugin = registry.get_plugin()
    first = [plugin.setup()] if plugin is not None and plugin.setup is not None else []
    return [
        *first,
        SetupStep("Import or add contacts", Contact.objects.exists(), "/contacts/"),
        SetupStep("Build a segment", Segment.objects.exists(), "/segments/"),
        SetupStep("Write a text message", TextMessage.objects.exists(), "/text-messages/"),
    ]


def recent_activity(limit: int = 12) -> list[object]:
    from contacts.models import TimelineEvent

    return list(TimelineEvent.objects.select_related("contact").order_by("-occurred_at", "-id")[:limit])


def engagement(days: int = 14) -> dict[str, object]:
    """The last ``days``' texts: the funnel and activity charts, and what sending cost per month."""
    from texts.engagement import charts_context, cost_by_month
    from texts.models import OutboundMessage

    since = timezone.now() - dt.timedelta(days=days)
    recent = OutboundMessage.objects.filter(queued_at__gte=since)
    year = OutboundMessage.objects.filter(queued_at__gte=timezone.now() - dt.timedelta(days=190))
    return {**charts_context(recent, prefix="dashboard"), "months": cost_by_month(year), "days": days}
