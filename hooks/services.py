"""Outgoing webhooks: events to deliveries (set-based), deliveries to signed JSON POSTs, retried with backoff.

**Emitting.** ``hooks_emit(event_type, payloads)`` writes one delivery per (subscribed endpoint, event) in one bulk
INSERT and hands their ids to ``hooks.deliver`` tasks (queue ``default``) after commit. Which endpoints subscribe is
kept per process for a few seconds (a save is seen within a second: a version in the shared cache, read at most once
a second), so an event nobody subscribes to costs a dictionary look-up, not a query: status callbacks come by the
thousand.

**Delivering.** A worker claims the due ones among its ids (``pending -> sending``, one statement, ``SKIP LOCKED``),
POSTs each with ``requests`` (``WEBHOOKS_TIMEOUT_SECONDS``, no redirects followed), and records the answer. A 2xx is
delivered; anything else is tried again after 30 s, 2 min, 8 min, 32 min … (times 4, at most 3 h, with jitter)
until ``WEBHOOKS_RETRY_HOURS`` (24) after the event, then it is failed. Retries due within two minutes get a task
with a countdown; later ones wait in the table for the sweep (``hooks.sweep``, every 30 s), which also returns
deliveries a dead worker held. An endpoint that timed out or refused the connection is not tried again in the same
batch: its other deliveries wait for the next attempt, so one dead receiver cannot hold a worker for minutes.
Delivery is at least once: a receiver dedupes on the event's ``id``.

**Signing.** ``X-Smsapp-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the secret>`` (README,
"Outgoing webhooks", has a verification snippet). The timestamp lets a receiver refuse a replay.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import random
import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import requests
from django.conf import settings
from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from providers.crypto import decrypt, encrypt

from .models import TEST_EVENT, Delivery, DeliveryStatus, Endpoint

logger = logging.getLogger(__name__)

TASK_BATCH = 50
COUNTDOWN_HORIZON = 120.0  # seconds: a retry further away waits for the sweep, not in a broker
STALE_SENDING = dt.timedelta(minutes=5)
KEEP_DELIVERED = dt.timedelta(days=30)
USER_AGENT = "smsapp-webhooks/1.0"
_VERSION_KEY = "hooks:endpoints:version"
_CACHE_SECONDS = 5.0
_cached: dict[str, Any] = {"at": 0.0, "checked": 0.0, "version": None, "by_event": {}}


# Endpoints


def endpoint_secret_new() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def endpoint_save(*, endpoint: Endpoint, secret: str | None = None) -> Endpoint:
    """Save an endpoint (with a new signing secret when given) and tell every process at once."""
    if secret is not None:
        endpoint.secret_encrypted = encrypt(secret)
    endpoint.save()
    _bump()
    return endpoint


def endpoint_delete(*, endpoint: Endpoint) -> None:
    endpoint.delete()
    _bump()


def _bump() -> None:
    try:
        cache.set(_VERSION_KEY, uuid.uuid4().hex, None)
    except Exception:  # the cache unreachable: processes see the change within _CACHE_SECONDS anyway
        logger.warning("webhooks: could not announce an endpoint change through the cache")
    _cached["at"] = _cached["checked"] = 0.0


def _subscribers(event_type: str) -> list[int]:
    """Active endpoints subscribed to ``event_type`` (kept per process; see the module docstring)."""
    now = time.monotonic()
    version = _cached["version"]
    # The shared version is read at most once a second: status callbacks come by the thousand, and each would
    # otherwise cost a round trip to the cache.
    if now - _cached.get("checked", 0.0) >= 1.0:
        try:
            version = cache.get(_VERSION_KEY)
        except Exception:
            version = _cached["version"]
        _cached["checked"] = now
    if version != _cached["version"] or now - _cached["at"] > _CACHE_SECONDS:
        by_event: dict[str, list[int]] = {}
        for pk, events in Endpoint.objects.filter(active=True).values_list("pk", "events"):
            for name in events or []:
                by_event.setdefault(str(name), []).append(int(pk))
        _cached.update(at=now, version=version, by_event=by_event)
    return list(_cached["by_event"].get(event_type, []))


def subscribed(event_type: str) -> bool:
    return bool(_subscribers(event_type))


# Emitting


def hooks_emit(*, event_type: str, payloads: Iterable[dict[str, Any]], endpoint_ids: list[int] | None = None) -> int:
    """One delivery per subscribed endpoint and payload, in one INSERT; tasks after commit. Returns deliveries made."""
    targets = endpoint_ids if endpoint_ids is not None else _subscribers(event_type)
    if not targets:
        return 0
    now = timezone.now()
    rows = []
    for data in payloads:
        for endpoint_id in targets:
            event_id = uuid.uuid4()
            body = {"id": str(event_id), "type": event_type, "created": now.isoformat(), "data": data}
            rows.append(
                Delivery(
                    endpoint_id=endpoint_id,
                    event_type=event_type,
                    event_id=event_id,
                    payload=json.loads(json.dumps(body, cls=DjangoJSONEncoder)),
                    next_attempt_at=now,
                )
            )
    with transaction.atomic():
        made = Delivery.objects.bulk_create(rows, batch_size=1000)
        ids = [d.pk for d in made]
        transaction.on_commit(lambda: _enqueue(ids))
    return len(ids)


def _enqueue(ids: list[int], *, countdown: float = 0) -> None:
    from .tasks import deliver_task

    for start in range(0, len(ids), TASK_BATCH):
        deliver_task.apply_async(args=(ids[start : start + TASK_BATCH],), queue="default", countdown=countdown)


def hooks_send_test(*, endpoint: Endpoint) -> int:
    """The "Send test event" button: a ``test`` event to this endpoint, whatever it subscribes to."""
    payload = {"message": "A test event from smsapp: your endpoint is reachable and the signature checks out."}
    return hooks_emit(event_type=TEST_EVENT, payloads=[payload], endpoint_ids=[endpoint.pk])


def delivery_retry_now(*, delivery: Delivery) -> None:
    """An admin's "Retry" on a failed delivery: one more attempt now (its day of retries does not start again)."""
    moved = Delivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.FAILED).update(
        status=DeliveryStatus.PENDING, next_attempt_at=timezone.now()
    )
    if moved:
        transaction.on_commit(lambda: _enqueue([delivery.pk]))


# Delivering


def sign(*, secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _claim(ids: list[int]) -> list[Delivery]:
    now = timezone.now()
    with transaction.atomic():
        due = (
            Delivery.objects.filter(pk__in=ids, status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)
        )
        claimed = list(due)
        Delivery.objects.filter(pk__in=claimed, status=DeliveryStatus.PENDING).update(
            status=DeliveryStatus.SENDING, claimed_at=now
        )
    return list(Delivery.objects.filter(pk__in=claimed).select_related("endpoint").order_by("pk"))


@dataclass
class Attempt:
    ok: bool
    status: int | None
    body: str
    error: str
    duration_ms: int
    endpoint_down: bool  # a timeout or a refused connection: do not try its other deliveries now


def _post(session: requests.Session, delivery: Delivery) -> Attempt:
    body = json.dumps(delivery.payload, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Smsapp-Event": delivery.event_type,
        "X-Smsapp-Delivery": str(delivery.event_id),
        "X-Smsapp-Signature": sign(
            secret=decrypt(delivery.endpoint.secret_encrypted), body=body, timestamp=int(time.time())
        ),
    }
    started = time.monotonic()
    timeout = float(getattr(settings, "WEBHOOKS_TIMEOUT_SECONDS", 10.0))
    try:
        response = session.post(
            delivery.endpoint.url, data=body, headers=headers, timeout=timeout, allow_redirects=False
        )
    except requests.Timeout:
        return Attempt(False, None, "", f"No answer within {timeout:g} s.", _ms(started), True)
    except requests.ConnectionError:
        return Attempt(False, None, "", "Could not connect to the endpoint.", _ms(started), True)
    except requests.RequestException as exc:
        return Attempt(False, None, "", f"The request failed ({type(exc).__name__}).", _ms(started), False)
    text = response.text[:500]
    if 200 <= response.status_code < 300:
        return Attempt(True, response.status_code, text, "", _ms(started), False)
    error = f"HTTP {response.status_code}" + (
        " (redirects are not followed)" if 300 <= response.status_code < 400 else ""
    )
    return Attempt(False, response.status_code, text, error, _ms(started), False)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def retry_delay(attempts: int) -> float:
    """30 s, 2 min, 8 min, 32 min, … at most 3 h; with jitter (a random 80-100%)."""
    base = float(getattr(settings, "WEBHOOKS_RETRY_BASE_SECONDS", 30.0))
    return min(3 * 3600.0, base * 4 ** max(0, attempts - 1)) * (0.8 + random.random() / 5)


def deliveries_send(*, delivery_ids: list[int]) -> dict[str, int]:
    """Claim and POST the due deliveries among ``delivery_ids``; returns counts by outcome."""
    outcome = {"delivered": 0, "retry": 0, "failed": 0, "deferred": 0}
    down: set[int] = set()
    soon: list[tuple[int, float]] = []
    give_up_after = dt.timedelta(hours=float(getattr(settings, "WEBHOOKS_RETRY_HOURS", 24.0)))
    with requests.Session() as session:
        for delivery in _claim(delivery_ids):
            now = timezone.now()
            if delivery.endpoint_id in down:
                Delivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.SENDING).update(
                    status=DeliveryStatus.PENDING, next_attempt_at=now + dt.timedelta(seconds=30)
                )
                outcome["deferred"] += 1
                continue
            attempt = _post(session, delivery)
            attempts = delivery.attempts + 1
            fields: dict[str, Any] = {
                "attempts": attempts,
                "response_status": attempt.status,
                "response_body": attempt.body,
                "error": attempt.error[:500],
                "duration_ms": attempt.duration_ms,
            }
            if attempt.ok:
                fields.update(status=DeliveryStatus.DELIVERED, delivered_at=timezone.now())
                outcome["delivered"] += 1
            else:
                delay = retry_delay(attempts)
                if attempt.endpoint_down:
                    down.add(delivery.endpoint_id)
                if now + dt.timedelta(seconds=delay) > delivery.created_at + give_up_after:
                    fields.update(
                        status=DeliveryStatus.FAILED, error=f"Gave up after {attempts} attempts: {attempt.error}"[:500]
                    )
                    outcome["failed"] += 1
                else:
                    fields.update(status=DeliveryStatus.PENDING, next_attempt_at=now + dt.timedelta(seconds=delay))
                    outcome["retry"] += 1
                    if delay <= COUNTDOWN_HORIZON:
                        soon.append((delivery.pk, delay))
            Delivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.SENDING).update(**fields)
    for pk, delay in soon:
        _enqueue([pk], countdown=delay)
    return outcome


def deliveries_sweep() -> dict[str, int]:
    """Beat: deliveries due whose task is not coming (retries hours away, lost tasks), deliveries a dead worker held,
    and delivered ones older than 30 days removed."""
    now = timezone.now()
    stale = Delivery.objects.filter(status=DeliveryStatus.SENDING, claimed_at__lt=now - STALE_SENDING).update(
        status=DeliveryStatus.PENDING, next_attempt_at=now
    )
    due = list(
        Delivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:5000]
    )
    _enqueue(due)
    pruned, _ = Delivery.objects.filter(status=DeliveryStatus.DELIVERED, delivered_at__lt=now - KEEP_DELIVERED).delete()
    return {"stale": stale, "enqueued": len(due), "pruned": pruned}
