"""Statuses whose callback never came: ask the provider that sent the message.

A provider posts each status change of a message to its status callback once and does not retry one that got no 200,
so a callback lost to an outage longer than the callback's own database retries (or to the network) would leave the
message in ``sent`` for ever, and its report short of a delivery. ``outbound_reconcile`` (beat, every
``SMS_RECONCILE_INTERVAL_SECONDS``; or ``manage.py reconcile_statuses``) takes the messages still ``sent`` (or
``unknown`` with a SID: a worker died after the provider accepted them) some minutes after the provider was called,
fetches each from the provider named on the message (``fetch_status``) and applies the answer exactly as a status
callback would be applied: the same conditional UPDATE, so a late real callback and the fetch cannot fight, and the
same timeline entry and Do Not Contact on an opt-out. Each message is asked at most once per
``SMS_RECONCILE_RECHECK_SECONDS``, and not after ``SMS_RECONCILE_MAX_AGE_HOURS``: a carrier that never reports leaves
it ``sent``, which is the truth.

A message ``unknown`` without a SID (its worker died between calling the provider and writing the answer, and no
callback came either) is looked for in what the provider sent to its number since the call: exactly one message with
the same body, not already another row's, is that message (its SID is attached and its status applied); none means
the provider never sent it (unless the provider's answer was full: there may be more), which is written on the row
for the person reviewing it. It stays ``unknown`` and is never sent again automatically (DESIGN: outbound
statuses); several candidates leave it as it is.

**Prices.** A provider's create answer may have no price yet (some price a message once it has left), so the same
fetch is the one place the price comes from: every answer that carries one is stored with its currency (one
statement for the run), and messages already past ``sent`` whose price is still unknown are asked too, last and at
most ``SMS_RECONCILE_PRICE_BATCH`` a run, on the same schedule (after ``SMS_RECONCILE_AFTER_SECONDS``, at most once
per ``SMS_RECONCILE_RECHECK_SECONDS``, for ``SMS_RECONCILE_MAX_AGE_HOURS``), through the partial index
``outbound_price_pending``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import F, Q
from django.utils import timezone

from providers import registry
from providers.base import FIND_SENT_LIMIT, ErrorKind, Provider, ProviderError, ProviderMessage, StatusEvent
from smsapp.core.locks import job_lock

from .errors import NEVER_SENT
from .inbound import outbound_status_apply
from .models import OutboundMessage, Status

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Our clock and the provider's differ: a message looked for by its send time is looked for from this much earlier.
CLOCK_SKEW = dt.timedelta(minutes=2)
# A throttled (429) or failing (5xx) fetch is tried again after these pauses before the run gives up until next time.
RETRY_DELAYS = (0.5, 1.0, 2.0)


@dataclass
class ReconcileResult:
    checked: int = 0  # the provider answered about a status
    moved: int = 0  # of which the message's status changed
    not_found: int = 0  # the provider does not know the SID
    errors: int = 0  # the provider refused the fetch for another reason
    found: int = 0  # unknown messages without a SID found at the provider (SID attached)
    price_asked: int = 0  # messages past ``sent`` the provider answered about, asked for their price only
    priced: int = 0  # messages whose price the provider told
    never_sent: int = 0  # unknown messages without a SID that the provider never sent
    stopped: str = ""  # why a provider's messages wait for the next run (unreachable, bad credentials), "" if none
    locked: bool = False  # another run was at it

    def summary(self) -> str:
        if self.locked:
            return "status reconciliation: skipped, another run is at it"
        asked = self.checked + self.not_found + self.errors
        text = (
            f"status reconciliation: asked the provider about {asked} message{'' if asked == 1 else 's'}: "
            f"{self.moved} moved, {self.checked - self.moved} unchanged, {self.not_found} not found, "
            f"{self.errors} refused"
        )
        if self.price_asked or self.priced:
            text += f"; {self.price_asked} more asked for their price only, {self.priced} priced"
        if self.found or self.never_sent:
            text += f"; unknown without a SID: {self.found} found at the provider, {self.never_sent} never sent"
        return text + (f"; stopped early: {self.stopped}" if self.stopped else "")


def reconcile_candidates(*, now: dt.datetime, after: float, limit: int) -> list[tuple[int, str, str]]:
    """(id, SID, provider) of the messages to ask about, never-asked first, oldest first."""
    max_age = dt.timedelta(hours=float(settings.SMS_RECONCILE_MAX_AGE_HOURS))
    recheck = dt.timedelta(seconds=float(settings.SMS_RECONCILE_RECHECK_SECONDS))
    rows = (
        OutboundMessage.objects.filter(
            status__in=[Status.SENT, Status.UNKNOWN],
            provider_sid__isnull=False,
            provider_called_at__lte=now - dt.timedelta(seconds=after),
            provider_called_at__gte=now - max_age,
        )
        .filter(Q(status_checked_at__isnull=True) | Q(status_checked_at__lte=now - recheck))
        .order_by(F("status_checked_at").asc(nulls_first=True), "provider_called_at", "pk")
        .values_list("pk", "provider_sid", "provider")[:limit]
    )
    return [(int(pk), str(sid), str(provider)) for pk, sid, provider in rows]


def price_candidates(*, now: dt.datetime, after: float, limit: int) -> list[tuple[int, str, str]]:
    """(id, SID, provider) of messages past ``sent`` whose price the provider has not told yet (a create answer
    often has none: a provider may price a message once it left): the ``outbound_price_pending`` index, never-asked
    first."""
    max_age = dt.timedelta(hours=float(settings.SMS_RECONCILE_MAX_AGE_HOURS))
    recheck = dt.timedelta(seconds=float(settings.SMS_RECONCILE_RECHECK_SECONDS))
    rows = (
        OutboundMessage.objects.filter(
            price__isnull=True,
            provider_sid__isnull=False,
            provider_called_at__lte=now - dt.timedelta(seconds=after),
            provider_called_at__gte=now - max_age,
        )
        .exclude(status__in=[Status.SENT, Status.UNKNOWN])  # those are asked about their status anyway
        .filter(Q(status_checked_at__isnull=True) | Q(status_checked_at__lte=now - recheck))
        .order_by(F("status_checked_at").asc(nulls_first=True), "provider_called_at", "pk")
        .values_list("pk", "provider_sid", "provider")[:limit]
    )
    return [(int(pk), str(sid), str(provider)) for pk, sid, provider in rows]


def _write_prices(prices: dict[int, StatusEvent]) -> int:
    """The prices the fetches told, with their currency: one statement for the run."""
    rows = [
        OutboundMessage(pk=pk, price=event.price, price_unit=event.price_unit[:8])
        for pk, event in prices.items()
        if event.price is not None
    ]
    OutboundMessage.objects.bulk_update(rows, ["price", "price_unit"], batch_size=500)
    return len(rows)


def _ask(call: Callable[[], T]) -> T:
    """``call()``, tried again after each of RETRY_DELAYS while the provider answers with a transient error."""
    for delay in RETRY_DELAYS:
        try:
            return call()
        except ProviderError as exc:
            if exc.kind != ErrorKind.TRANSIENT:
                raise
            time.sleep(delay)
    return call()


class _Providers:
    """The providers this run asks, by the name on each message ("": the one that sends), and the ones it stopped
    asking: a provider down (after the retries), throttling, refusing the credentials or unable to answer would fail
    every other call the same way, so its messages wait for the next run (nothing more of them is marked as asked)."""

    def __init__(self, result: ReconcileResult) -> None:
        self.result = result
        self.found: dict[str, Provider | None] = {}
        self.stopped: set[str] = set()

    def get(self, name: str) -> Provider | None:
        """The provider to ask, or None while it is stopped."""
        name = name or registry.configured_name()
        if name in self.stopped:
            return None
        if name not in self.found:
            try:
                self.found[name] = registry.get_provider(name)
            except ImproperlyConfigured:
                self.found[name] = None
                self.stop(name, f"the {name} provider is not installed")
        return self.found[name]

    def stop(self, name: str, why: str) -> None:
        self.stopped.add(name or registry.configured_name())
        self.result.stopped = "; ".join(filter(None, [self.result.stopped, why]))

    def stops(self, name: str, exc: ProviderError) -> bool:
        if exc.kind not in (ErrorKind.TRANSIENT, ErrorKind.AUTH):
            return False
        self.stop(name, f"{exc.code}: {exc.message}")
        return True

    def cannot_ask(self, name: str, provider: Provider) -> None:
        self.stop(name, f"the {provider.name} provider cannot be asked for statuses")


def lost_sid_candidates(*, now: dt.datetime, after: float, limit: int) -> list[OutboundMessage]:
    """``unknown`` messages without a SID to look for at the provider, never-looked-for first, oldest first."""
    max_age = dt.timedelta(hours=float(settings.SMS_RECONCILE_MAX_AGE_HOURS))
    recheck = dt.timedelta(seconds=float(settings.SMS_RECONCILE_RECHECK_SECONDS))
    return list(
        OutboundMessage.objects.filter(
            status=Status.UNKNOWN,
            provider_sid__isnull=True,
            provider_called_at__lte=now - dt.timedelta(seconds=after),
            provider_called_at__gte=now - max_age,
        )
        .filter(Q(status_checked_at__isnull=True) | Q(status_checked_at__lte=now - recheck))
        .order_by(F("status_checked_at").asc(nulls_first=True), "provider_called_at", "pk")
        .only("pk", "to_number", "body", "provider_called_at", "error_message", "provider")[:limit]
    )


def _look_for(
    row: OutboundMessage, found: list[ProviderMessage], now: dt.datetime, result: ReconcileResult, *, provider: str
) -> None:
    """Attach the one provider message that is this row's, or write down that the provider never sent it."""
    taken = set(
        OutboundMessage.objects.filter(provider_sid__in=[m.sid for m in found]).values_list("provider_sid", flat=True)
    )
    same = [m for m in found if m.sid not in taken and m.body == row.body]
    if len(same) == 1:
        event = StatusEvent(
            message_sid=same[0].sid, status=same[0].status, error_code=same[0].error_code, provider=provider
        )
        outbound_status_apply(event=event, outbound_id=row.pk)
        result.found += 1
        logger.info("reconcile: unknown message %s is %s at the provider", row.pk, same[0].sid)
    elif not same and len(found) < FIND_SENT_LIMIT:  # a full answer may not hold every message since the call
        note = f"{NEVER_SENT} (checked {now:%Y-%m-%d %H:%M} UTC)."
        OutboundMessage.objects.filter(pk=row.pk, status=Status.UNKNOWN).update(
            error_message=f"{row.error_message.split(NEVER_SENT)[0].rstrip()} {note}".lstrip()
        )
        result.never_sent += 1
    else:
        logger.warning(
            "reconcile: unknown message %s matches %d of %d provider messages; left for review",
            row.pk,
            len(same),
            len(found),
        )


def _fetch_each(
    rows: list[tuple[int, str, str]],
    providers: _Providers,
    result: ReconcileResult,
    *,
    asked: list[int],
    told: dict[int, StatusEvent],
    renew: Callable[[], None],
    price_only: bool,
) -> None:
    """Fetch each (id, SID, provider): apply the status, keep the price; ``price_only`` rows are counted apart."""
    for pk, sid, name in rows:
        provider = providers.get(name)
        if provider is None:
            continue
        try:
            event = _ask(partial(provider.fetch_status, sid))
        except ProviderError as exc:
            if exc.kind == ErrorKind.NOT_FOUND:
                result.not_found += 1
                logger.warning("reconcile: the provider does not know message %s (SID %s)", pk, sid)
            elif providers.stops(name, exc):
                continue
            else:
                result.errors += 1
                logger.warning("reconcile: fetching message %s failed: %s %s", pk, exc.code, exc.message)
            asked.append(pk)
            continue
        if event is None:  # a provider that cannot be asked (the console)
            providers.cannot_ask(name, provider)
            continue
        asked.append(pk)
        if price_only:
            result.price_asked += 1
        else:
            result.checked += 1
        if event.price is not None:
            told[pk] = event
        if outbound_status_apply(event=event, outbound_id=pk):
            result.moved += 1
        if len(asked) % 50 == 0:
            renew()


def outbound_reconcile(*, limit: int | None = None, after: float | None = None, prices: bool = True) -> ReconcileResult:
    """Ask the providers about up to ``limit`` messages whose final status never arrived; see the module docstring.

    In order of what matters: statuses, then the ``unknown`` messages without a SID (may they have been sent?), then
    prices (``SMS_RECONCILE_PRICE_BATCH`` at most; none with ``prices=False``), so that a provider throttling the run
    while a large broadcast's prices are asked has already answered the rest."""
    limit = int(settings.SMS_RECONCILE_BATCH if limit is None else limit)
    after = float(settings.SMS_RECONCILE_AFTER_SECONDS if after is None else after)
    result = ReconcileResult()
    if limit <= 0:
        return result
    with job_lock("texts:reconcile", ttl=600) as renew:
        if renew is None:
            result.locked = True
            return result
        now = timezone.now()
        providers = _Providers(result)
        asked: list[int] = []
        told: dict[int, StatusEvent] = {}
        candidates = reconcile_candidates(now=now, after=after, limit=limit)
        _fetch_each(candidates, providers, result, asked=asked, told=told, renew=renew, price_only=False)
        for row in lost_sid_candidates(now=now, after=after, limit=limit):
            provider = providers.get(row.provider)
            if provider is None:
                continue
            try:
                assert row.provider_called_at is not None  # by the query
                since = row.provider_called_at - CLOCK_SKEW
                found = _ask(partial(provider.find_sent, to=row.to_number, sent_after=since, channel=row.channel))
            except ProviderError as exc:
                if providers.stops(row.provider, exc):
                    continue
                result.errors += 1
                logger.warning("reconcile: looking for message %s failed: %s %s", row.pk, exc.code, exc.message)
            else:
                if found is None:
                    providers.cannot_ask(row.provider, provider)
                    continue
                _look_for(row, found, now, result, provider=provider.name)
            asked.append(row.pk)
            renew()
        if prices:
            room = min(limit - len(candidates), int(getattr(settings, "SMS_RECONCILE_PRICE_BATCH", limit)))
            done = set(asked)  # a message this run just asked about told its price then, if it had one
            price_only = [c for c in price_candidates(now=now, after=after, limit=max(0, room)) if c[0] not in done]
            _fetch_each(price_only, providers, result, asked=asked, told=told, renew=renew, price_only=True)
        result.priced = _write_prices(told)
        if asked:
            OutboundMessage.objects.filter(pk__in=asked).update(status_checked_at=now)
    if asked or result.stopped:
        logger.info("%s", result.summary())
    return result
