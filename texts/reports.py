"""Reads for the report pages (selectors): counts, rates, cost and the chart over time, in a handful of queries."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import Abs, Coalesce, TruncDay, TruncHour

from .models import InboundMessage, KeywordKind, OutboundMessage, Status, TextMessage


@dataclass(frozen=True)
class Report:
    counts: dict[str, int]
    total: int
    pending: int  # queued + sending: not yet with the provider
    replies: int
    opt_outs: int
    delivery_rate: float | None  # delivered / (delivered + undelivered + failed-after-sending), None before any
    segments: int
    cost: Decimal | None
    cost_unit: str


def report_for(text_message: TextMessage) -> Report:
    messages = OutboundMessage.objects.filter(text_message=text_message)
    counts = {s.value: 0 for s in Status}
    counts.update(dict(messages.values_list("status").annotate(n=Count("id")).values_list("status", "n")))
    totals = messages.aggregate(
        segments=Sum("segments", filter=Q(provider_sid__isnull=False)),
        cost=Sum(Abs(F("price"))),
        # Failed after the provider accepted it (it has a SID): a delivery that did not happen. A refusal at the API
        # (21211, 21610: no SID) never reached a carrier and says nothing about delivery.
        failed_after_sending=Count("id", filter=Q(status=Status.FAILED, provider_sid__isnull=False)),
    )
    units = list(messages.exclude(price_unit="").values_list("price_unit", flat=True).distinct()[:2])
    # Replies and opt-outs are the inbound messages linked (in_reply_to) to this text message's sends.
    inbound = InboundMessage.objects.filter(in_reply_to__text_message=text_message)
    replies = inbound.count()
    opt_outs = inbound.filter(action=KeywordKind.OPT_OUT).values("contact_id").distinct().count()
    finished = counts[Status.DELIVERED] + counts[Status.UNDELIVERED] + totals["failed_after_sending"]
    return Report(
        counts=counts,
        total=sum(counts.values()),
        pending=counts[Status.QUEUED] + counts[Status.SENDING],
        replies=replies,
        opt_outs=opt_outs,
        delivery_rate=(counts[Status.DELIVERED] / finished) if finished else None,
        segments=int(totals["segments"] or 0),
        cost=totals["cost"],
        cost_unit=units[0] if len(units) == 1 else ("" if not units else "mixed"),
    )


@dataclass(frozen=True)
class Bar:
    x: float
    y_sent: float
    h_sent: float
    y_failed: float
    h_failed: float
    label: str
    sent: int
    failed: int


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    peak: int
    bucket: str  # "hour" or "day"


def chart_for(messages: QuerySet[OutboundMessage], *, width: int = 640, height: int = 160) -> Chart:
    """Messages sent and failed per hour (or per day past two days), drawn as stacked bars in inline SVG."""
    # A message that failed before reaching the provider has no sent_at: it is drawn at its failure time.
    messages = messages.annotate(at=Coalesce(F("sent_at"), F("failed_at"))).exclude(at=None)
    span = messages.values_list("at", flat=True)
    first, last = span.order_by("at").first(), span.order_by("-at").first()
    bucket = "day" if first and last and last - first > dt.timedelta(days=2) else "hour"
    trunc = TruncDay if bucket == "day" else TruncHour
    rows = (
        messages.annotate(moment=trunc(F("at")))
        .values("moment")
        .annotate(
            sent=Count("id", filter=~Q(status=Status.FAILED) & ~Q(status=Status.UNDELIVERED)),
            failed=Count("id", filter=Q(status__in=[Status.FAILED, Status.UNDELIVERED])),
        )
        .order_by("moment")[:200]
    )
    data = list(rows)
    peak = max([r["sent"] + r["failed"] for r in data] or [0])
    bars: list[Bar] = []
    if data and peak:
        slot = width / len(data)
        for i, r in enumerate(data):
            h_sent = height * r["sent"] / peak
            h_failed = height * r["failed"] / peak
            label = r["moment"].strftime("%d %b" if bucket == "day" else "%d %b %H:00")
            bars.append(
                Bar(
                    x=round(i * slot + slot * 0.1, 2),
                    y_sent=round(height - h_sent, 2),
                    h_sent=round(h_sent, 2),
                    y_failed=round(height - h_sent - h_failed, 2),
                    h_failed=round(h_failed, 2),
                    label=label,
                    sent=r["sent"],
                    failed=r["failed"],
                )
            )
    return Chart(width=width, height=height, bars=bars, peak=peak, bucket=bucket)


def bar_width(chart: Chart) -> float:
    return round(chart.width / max(1, len(chart.bars)) * 0.8, 2)
