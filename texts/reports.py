"""Reads for the report pages (selectors): counts, rates, cost and the chart over time, in a handful of queries."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Abs, Coalesce

from providers.ratelimit import spaced_rate

from .models import InboundMessage, KeywordKind, OutboundMessage, Status, TextMessage
from .services.caps import CAP_CODE


@dataclass(frozen=True)
class Report:
    counts: dict[str, int]
    total: int
    pending: int  # queued + sending: not yet with the provider
    replies: int
    opt_outs: int
    capped: int  # deferred or skipped by a marketing frequency cap (their error code says so)
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
        # (an invalid number, an opt-out: no SID) never reached a carrier and says nothing about delivery.
        failed_after_sending=Count("id", filter=Q(status=Status.FAILED, provider_sid__isnull=False)),
        capped=Count("id", filter=Q(error_code=CAP_CODE, status__in=[Status.QUEUED, Status.FAILED])),
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
        capped=int(totals["capped"] or 0),
        delivery_rate=(counts[Status.DELIVERED] / finished) if finished else None,
        segments=int(totals["segments"] or 0),
        cost=totals["cost"],
        cost_unit=units[0] if len(units) == 1 else ("" if not units else "mixed"),
    )


# Progress while a text message sends


@dataclass(frozen=True)
class SenderLine:
    """This text message's messages waiting for one sender, and how long that sender needs for them."""

    sender: str  # as a marketer reads it: "+1 202-555-0123", "Messaging Service MG…", "ACME"
    rate: float  # messages (segments) per second
    waiting: int
    seconds_left: float


@dataclass(frozen=True)
class SendingProgress:
    sent: int  # with the provider or further (sent, delivered, undelivered)
    queued: int
    sending: int
    failed: int
    unknown: int
    later: int  # waiting for quiet hours or a retry's backoff, not for a sender
    rate: float | None  # messages per second over the last minute or so, None before two samples
    seconds_left: float | None
    bottleneck: SenderLine | None

    @property
    def active(self) -> bool:
        return bool(self.queued or self.sending)

    def sentence(self) -> str:
        """What ``send_broadcasts`` prints and the page shows under the counts."""
        parts = [f"{self.sent:,} sent, {self.queued + self.sending:,} queued, {self.failed:,} failed"]
        if self.unknown:
            parts[0] += f", {self.unknown:,} unknown"
        if self.rate is not None:
            parts.append(f"{self.rate:,.1f} messages/s now")
        if self.bottleneck is not None:
            line = self.bottleneck
            allows = f"{line.rate:g} message/s" if line.rate == 1 else f"{line.rate:g} messages/s"
            parts.append(f"{line.sender} allows {allows}: about {duration(line.seconds_left)} left")
        if self.later:
            parts.append(f"{self.later:,} wait for quiet hours or a retry")
        return "; ".join(parts)


def duration(seconds: float) -> str:
    """3 h 40 min, 12 min, 40 s: the ETA as a person says it."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _sender_label(value: str, kind: str) -> str:
    if kind == "messaging_service":
        return f"Messaging Service {value}"
    if value.startswith("+"):
        import phonenumbers

        try:
            return str(
                phonenumbers.format_number(
                    phonenumbers.parse(value, None), phonenumbers.PhoneNumberFormat.INTERNATIONAL
                )
            )
        except phonenumbers.NumberParseException:
            return value
    return value


def _rate_from_samples(text_message_id: int, sent: int) -> float | None:
    """Messages per second from the counts this page (or ``send_broadcasts``) saw over the last minute or two, kept
    in the shared cache: no per-message timestamps to scan."""
    import time

    from django.core.cache import cache

    key = f"smsapp:sending-rate:{text_message_id}"
    now = time.time()
    samples = [s for s in (cache.get(key) or []) if now - s[0] < 150]
    samples.append((now, sent))
    cache.set(key, samples[-40:], timeout=300)
    older = [s for s in samples if now - s[0] >= 5]
    if not older:
        return None
    then, count = older[-1] if now - older[-1][0] >= 60 else older[0]
    return max(0.0, (sent - count) / (now - then))


def sending_progress(text_message: TextMessage, *, get_config: Any = None) -> SendingProgress:
    """Counts, the current rate and the time left, with the sender whose limit is the bottleneck.

    Each sender moves its line at its own rate (``texts.services.pacing``), so the time left is the longest of the
    senders' shares: this message's messages waiting for that sender, in segments, over its rate. Messages not yet
    given a sender count evenly over the pool (a contact's sender is a stable hash of the contact).
    """
    from django.utils import timezone

    from .models import Schedule

    if get_config is None:
        from providers.registry import get_config
    messages = OutboundMessage.objects.filter(text_message=text_message)
    counts = dict(messages.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    now = timezone.now()
    waiting = (
        messages.filter(status=Status.QUEUED)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now) | ~Q(schedule=Schedule.PARKED))
        .values("sender")
        .annotate(n=Count("id"), segments=Sum(Coalesce("segments", 1)))
    )
    by_sender = {row["sender"]: (row["n"], int(row["segments"] or row["n"])) for row in waiting}
    later = messages.filter(status=Status.QUEUED, schedule=Schedule.PARKED, next_attempt_at__gt=now).count()
    senders = list(get_config().senders)
    unassigned_n, unassigned_segments = by_sender.pop("", (0, 0))
    lines: list[SenderLine] = []
    for sender_config in senders:
        assigned_n, assigned_segments = by_sender.get(sender_config.sender.value, (0, 0))
        n = assigned_n + unassigned_n / len(senders)
        segments = assigned_segments + unassigned_segments / len(senders)
        if n:
            lines.append(
                SenderLine(
                    sender=_sender_label(sender_config.sender.value, sender_config.sender.kind),
                    rate=float(sender_config.rate_per_second),
                    waiting=round(n),
                    # At the rate its slots are spaced: the sender's less the allowance for late requests.
                    seconds_left=segments / spaced_rate(float(sender_config.rate_per_second)),
                )
            )
    sent = sum(counts.get(s, 0) for s in (Status.SENT, Status.DELIVERED, Status.UNDELIVERED))
    bottleneck = max(lines, key=lambda line: line.seconds_left) if lines else None
    return SendingProgress(
        sent=sent,
        queued=counts.get(Status.QUEUED, 0),
        sending=counts.get(Status.SENDING, 0),
        failed=counts.get(Status.FAILED, 0),
        unknown=counts.get(Status.UNKNOWN, 0),
        later=later,
        rate=_rate_from_samples(text_message.pk, sent) if counts.get(Status.QUEUED) or sent else None,
        seconds_left=bottleneck.seconds_left if bottleneck else None,
        bottleneck=bottleneck,
    )
