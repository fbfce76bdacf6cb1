"""Reads for "did it work?": the delivery funnel, activity over time, clicks per link and cost, for any set of
outbound messages (a text message's, a campaign's, the last days'). Each figure is one aggregate query.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, Max, Min, Q, QuerySet, Sum
from django.db.models.functions import Abs, Coalesce, TruncDay, TruncHour, TruncMonth

from .models import InboundMessage, KeywordKind, OutboundMessage, ShortLink, Status

SENT_OR_LATER = (Status.SENT, Status.DELIVERED, Status.UNDELIVERED)
MAX_BUCKETS = 96


@dataclass(frozen=True)
class Funnel:
    """Messages at each step: queued (all of them), sent (accepted by the provider), delivered, clicked (a person
    followed one of its links), replied, opted out (a STOP in reply)."""

    queued: int
    sent: int
    delivered: int
    clicked: int
    replied: int
    opted_out: int
    clicks: int = 0  # every click, repeats included

    def steps(self) -> list[tuple[str, int]]:
        return [
            ("Queued", self.queued),
            ("Sent", self.sent),
            ("Delivered", self.delivered),
            ("Clicked", self.clicked),
            ("Replied", self.replied),
            ("Opted out", self.opted_out),
        ]

    @property
    def click_rate(self) -> float | None:
        """Unique clicks over delivered messages (over sent ones while no carrier has reported)."""
        base = self.delivered or self.sent
        return self.clicked / base if base else None

    def chart(self) -> dict[str, Any]:
        return {"labels": [s for s, _ in self.steps()], "values": [n for _, n in self.steps()]}


def funnel_for(messages: QuerySet[OutboundMessage]) -> Funnel:
    totals = messages.aggregate(
        queued=Count("id"),
        sent=Count("id", filter=Q(sent_at__isnull=False) | Q(status__in=SENT_OR_LATER)),
        delivered=Count("id", filter=Q(status=Status.DELIVERED)),
    )
    links = ShortLink.objects.filter(outbound__in=messages.values("pk"), first_clicked_at__isnull=False)
    clicked = links.aggregate(messages=Count("outbound_id", distinct=True), clicks=Sum("clicks"))
    replies = InboundMessage.objects.filter(in_reply_to__in=messages.values("pk"))
    return Funnel(
        queued=totals["queued"],
        sent=totals["sent"],
        delivered=totals["delivered"],
        clicked=clicked["messages"] or 0,
        replied=replies.values("in_reply_to_id").distinct().count(),
        opted_out=replies.filter(action=KeywordKind.OPT_OUT).values("contact_id").distinct().count(),
        clicks=int(clicked["clicks"] or 0),
    )


@dataclass(frozen=True)
class LinkRow:
    url: str
    recipients: int  # messages that carried it
    unique_clicks: int  # recipients who followed it
    clicks: int
    previews: int


def links_for(messages: QuerySet[OutboundMessage], *, limit: int = 20) -> list[LinkRow]:
    rows = (
        ShortLink.objects.filter(outbound__in=messages.values("pk"))
        .values("url")
        .annotate(
            recipients=Count("id"),
            unique_clicks=Count("id", filter=Q(first_clicked_at__isnull=False)),
            clicks=Sum("clicks"),
            previews=Sum("previews"),
        )
        .order_by("-unique_clicks", "url")[:limit]
    )
    return [
        LinkRow(r["url"], r["recipients"], r["unique_clicks"], int(r["clicks"] or 0), int(r["previews"] or 0))
        for r in rows
    ]


@dataclass(frozen=True)
class Series:
    """Counts per hour (or per day past two days) from the first to the last moment anything happened."""

    bucket: str  # "hour" or "day"
    labels: list[str]
    lines: dict[str, list[int]] = field(default_factory=dict)

    def chart(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "labels": self.labels, "lines": self.lines}

    @property
    def empty(self) -> bool:
        return not self.labels

    def rows(self) -> list[list[object]]:
        return [[label, *(line[i] for line in self.lines.values())] for i, label in enumerate(self.labels)]


def _counts(rows: QuerySet[Any], moment: str, trunc: Any) -> dict[dt.datetime, int]:
    grouped = rows.exclude(**{f"{moment}__isnull": True}).annotate(t=trunc(moment)).values("t").annotate(n=Count("id"))
    return {r["t"]: r["n"] for r in grouped.order_by("t")}


def series_for(messages: QuerySet[OutboundMessage], *, since: dt.datetime | None = None) -> Series:
    """Sent, delivered, failed, unique clicks and replies over time."""
    bounds = messages.aggregate(first=Min("queued_at"), last=Max("updated_at"))
    first = since or bounds["first"]
    last = bounds["last"]
    if first is None or last is None:
        return Series("hour", [])
    bucket = "day" if last - first > dt.timedelta(days=2) else "hour"
    trunc = TruncDay if bucket == "day" else TruncHour
    failed = messages.filter(status__in=[Status.FAILED, Status.UNDELIVERED]).annotate(
        gone=Coalesce(F("undelivered_at"), F("failed_at"))
    )
    counted = {
        "Sent": _counts(messages, "sent_at", trunc),
        "Delivered": _counts(messages, "delivered_at", trunc),
        "Failed": _counts(failed, "gone", trunc),
        "Clicked": _counts(ShortLink.objects.filter(outbound__in=messages.values("pk")), "first_clicked_at", trunc),
        "Replied": _counts(InboundMessage.objects.filter(in_reply_to__in=messages.values("pk")), "received_at", trunc),
    }
    moments = sorted({t for counts in counted.values() for t in counts})
    if not moments:
        return Series(bucket, [])
    step = dt.timedelta(days=1) if bucket == "day" else dt.timedelta(hours=1)
    start = min(moments[0], _truncate(first, bucket))
    end = moments[-1]
    axis: list[dt.datetime] = []
    t = start
    while t <= end and len(axis) < MAX_BUCKETS:
        axis.append(t)
        t += step
    if axis[-1] < end:  # too long a span for hours or days one by one: only the moments that have something
        axis = moments[-MAX_BUCKETS:]
    fmt = "%d %b" if bucket == "day" else "%d %b %H:00"
    return Series(
        bucket,
        [a.strftime(fmt) for a in axis],
        {name: [counts.get(a, 0) for a in axis] for name, counts in counted.items()},
    )


def _truncate(moment: dt.datetime, bucket: str) -> dt.datetime:
    moment = moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if bucket == "day" else moment


@dataclass(frozen=True)
class Cost:
    """What the provider charged, per currency ("0.1580 USD", or "1.20 USD + 0.90 EUR")."""

    by_currency: dict[str, Decimal]
    priced: int  # messages whose price is known
    unpriced: int  # sent, price not known yet

    def __str__(self) -> str:
        if not self.by_currency:
            return "—"
        return " + ".join(f"{total:.4f} {unit or '?'}" for unit, total in sorted(self.by_currency.items()))


def cost_for(messages: QuerySet[OutboundMessage]) -> Cost:
    rows = messages.exclude(price=None).values("price_unit").annotate(total=Sum(Abs("price")), n=Count("id"))
    unpriced = messages.filter(price=None, provider_sid__isnull=False).count()
    by_currency = {r["price_unit"]: r["total"] for r in rows}
    return Cost(by_currency=by_currency, priced=sum(r["n"] for r in rows), unpriced=unpriced)


@dataclass(frozen=True)
class MonthCost:
    month: dt.datetime
    cost: Cost


def cost_by_month(messages: QuerySet[OutboundMessage], *, months: int = 6) -> list[MonthCost]:
    rows = (
        messages.exclude(price=None)
        .exclude(sent_at=None)
        .annotate(month=TruncMonth("sent_at"))
        .values("month", "price_unit")
        .annotate(total=Sum(Abs("price")), n=Count("id"))
        .order_by("-month")
    )
    by_month: dict[dt.datetime, dict[str, Decimal]] = {}
    counts: dict[dt.datetime, int] = {}
    for r in rows:
        by_month.setdefault(r["month"], {})[r["price_unit"]] = r["total"]
        counts[r["month"]] = counts.get(r["month"], 0) + r["n"]
    return [MonthCost(m, Cost(by_month[m], counts[m], 0)) for m in sorted(by_month, reverse=True)[:months]]


def charts_context(
    messages: QuerySet[OutboundMessage], *, prefix: str, since: dt.datetime | None = None
) -> dict[str, Any]:
    """What ``texts/_charts.html`` needs for these messages."""
    funnel, series = funnel_for(messages), series_for(messages, since=since)
    return {
        "prefix": prefix,
        "funnel": funnel,
        "series": series,
        "series_rows": series.rows(),
        "funnel_id": f"{prefix}-funnel-data",
        "series_id": f"{prefix}-series-data",
    }
