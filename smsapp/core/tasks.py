"""Site-wide periodic jobs."""

from __future__ import annotations

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

HEARTBEAT_KEY = "smsapp:worker-heartbeat"


@shared_task(name="smsapp.heartbeat", ignore_result=True)
def heartbeat() -> str:
    """Record that a worker ran a task that beat scheduled: /healthz and the dashboard show when it last did."""
    stamp = timezone.now().isoformat()
    cache.set(HEARTBEAT_KEY, stamp, timeout=None)
    return stamp
