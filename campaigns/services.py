"""Writes on campaigns, named ``<entity>_<action>``: validation, publishing, events, members, the locked engine run.

The engine itself (claiming and running events) lives in ``campaigns.engine``; this module is what views, the
command and the tasks call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from smsapp.core.locks import job_lock

from . import engine
from .models import Campaign, CampaignEvent, CampaignEventLog, CampaignMember, EventKind, EventType, LogStatus

LOCK_NAME = "campaigns:process"


def campaign_problems(*, campaign: Campaign) -> list[str]:
    """What stops this campaign from running, in words a marketer can act on (empty when it is fine)."""
    problems = []
    has_source = campaign.segments.exists() or campaign.members.filter(manually_added=True).exists()
    if not has_source:
        problems.append("Choose at least one source segment (or add contacts by hand): the campaign has no contacts.")
    events = list(campaign.events.all())
    if not events:
        problems.append("Add at least one event to the campaign.")
    for event in events:
        if event.parent_id is None and event.event_type == EventType.DECISION:
            problems.append(
                f"“{event.label}” is a decision at the start of the campaign: start with an action or a condition, "
                "so that there is something for the contact to respond to."
            )
        if event.kind == EventKind.SEND_TEXT_MESSAGE and event.text_message_id is None:
            problems.append(f"“{event.label}” has no text message: choose one.")
    return problems


def campaign_publish(*, campaign: Campaign) -> Campaign:
    """Publish (or resume) a campaign; refuses with the problems that would stop it. Nothing that ran runs again."""
    problems = campaign_problems(campaign=campaign)
    if problems:
        raise ValidationError(problems)
    Campaign.objects.filter(pk=campaign.pk).update(is_published=True, published_at=timezone.now())
    campaign.refresh_from_db()
    return campaign


def campaign_unpublish(*, campaign: Campaign) -> Campaign:
    """Pause: the engine runs nothing of an unpublished campaign; its logs stay as they are until it resumes."""
    Campaign.objects.filter(pk=campaign.pk).update(is_published=False)
    campaign.refresh_from_db()
    return campaign


@transaction.atomic
def campaign_event_save(
    *,
    campaign: Campaign,
    kind: str,
    data: dict[str, Any],
    parent: CampaignEvent | None = None,
    path: str | None = None,
    event: CampaignEvent | None = None,
) -> CampaignEvent:
    """Create an event under ``parent`` (on ``path`` of a decision/condition), or update ``event``."""
    event_type = engine_event_type(kind)
    if parent is None and event is None and event_type == EventType.DECISION:
        raise ValidationError(
            "A campaign cannot start with a decision: start with an action or a condition (Mautic advises the same)."
        )
    if parent is not None and parent.has_paths and path not in ("yes", "no"):
        raise ValidationError("Choose the yes or the no path of the decision or condition.")
    if parent is not None and not parent.has_paths:
        path = None
    if event is None:
        siblings = CampaignEvent.objects.filter(campaign=campaign, parent=parent, path=path)
        event = CampaignEvent(
            campaign=campaign, parent=parent, path=path, kind=kind, event_type=event_type, order=siblings.count()
        )
    for key, value in data.items():
        setattr(event, key, value)
    event.save()
    return event


def engine_event_type(kind: str) -> str:
    from .models import EVENT_TYPE_OF_KIND

    return EVENT_TYPE_OF_KIND[kind]


@transaction.atomic
def campaign_event_delete(*, event: CampaignEvent) -> int:
    """Remove an event with everything below it; returns how many events went."""
    ids = [event.pk]
    frontier = [event.pk]
    while frontier:
        frontier = list(CampaignEvent.objects.filter(parent_id__in=frontier).values_list("id", flat=True))
        ids += frontier
    CampaignEvent.objects.filter(id__in=ids).delete()
    return len(ids)


def event_counts(*, campaign: Campaign) -> dict[int, dict[str, int]]:
    """Per event: waiting (scheduled, running or waiting), done and failed, from one GROUP BY query."""
    counts: dict[int, dict[str, int]] = {}
    rows = (
        CampaignEventLog.objects.filter(campaign=campaign)
        .values("event_id", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        bucket = counts.setdefault(row["event_id"], {"waiting": 0, "done": 0, "failed": 0, "skipped": 0})
        status = row["status"]
        if status in (LogStatus.SCHEDULED, LogStatus.RUNNING, LogStatus.WAITING):
            bucket["waiting"] += row["n"]
        elif status in bucket:
            bucket[status] += row["n"]
    return counts


def campaign_members_add(*, campaign: Campaign, contact_ids: list[int]) -> int:
    return engine.member_add(campaign=campaign, contact_ids=contact_ids)


def campaign_members_remove(*, campaign: Campaign, contact_ids: list[int]) -> int:
    return engine.member_remove(campaign=campaign, contact_ids=contact_ids)


def campaign_member_count(*, campaign: Campaign) -> int:
    return CampaignMember.objects.filter(campaign=campaign, manually_removed=False).count()


def _lock_seconds() -> int:
    return int(getattr(settings, "CAMPAIGNS_LOCK_SECONDS", 120))


def _noop() -> None:
    return None


@contextlib.contextmanager
def exclusive(name: str = LOCK_NAME) -> Iterator[Callable[[], None] | None]:
    """A lock across processes (``smsapp.core.locks.job_lock``): yields a ``renew`` callable to call after every batch,
    or None at once when another run holds it. A killed run's lock goes with its database session (PostgreSQL), its
    lease (Redis, within ``CAMPAIGNS_LOCK_SECONDS``) or its process (file lock)."""
    with job_lock(name, ttl=_lock_seconds()) as renew:
        yield renew


def campaigns_process(
    *, on_batch: Callable[[engine.RunSummary], None] | None = None, **kwargs: Any
) -> engine.RunSummary | None:
    """The engine run under the lock; None when another run is in progress."""
    with exclusive() as renew:
        if renew is None:
            return None

        def heartbeat(summary: engine.RunSummary) -> None:
            renew()
            if on_batch:
                on_batch(summary)

        return engine.process_campaigns(on_batch=heartbeat, **kwargs)
