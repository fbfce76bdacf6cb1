"""When a decision's wait starts, and the decision "clicks a link in a text message".

**The wait starts when the text went out.** A decision below a Send Text Message action waits for the contact to
answer *that text*; the action only queued it, and a rate-limited sender or quiet hours can hold it for hours. So a
contact reaching the decision while its text is still queued waits without a deadline (``TEXT_PENDING``) until the
text leaves: then the wait runs from the moment it was sent (or, if it could not be sent, ends at once: there is
nothing to answer). Every step is one statement per decision event, whatever the number of contacts:

- ``hold_until_text_sent``: when a batch reaches the decision (``engine.steps._wait``), the contacts whose text is
  not with the provider yet;
- ``waits_start``: when texts leave (``texts.signals.message_status_changed``, from the sending engine) and, as a
  safety net for a status that overtook the engine's own write, at every engine run.

A decision with no Send Text Message above it starts its wait when the contact reaches it, as before.

**Clicks.** ``link_clicked`` moves contacts waiting on "clicks a link" down the yes path when they follow a tracked
link (``texts.signals.link_clicked``), through the engine's own step (a ``click`` batch of the one log), as a reply
does for the reply decisions.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import logging
from collections.abc import Iterable

from django.db.models import CharField, DateTimeField, Exists, ExpressionWrapper, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Cast, Coalesce, Concat
from django.utils import timezone

from contacts.models import Contact
from texts.models import OutboundMessage, Source, Status

from .models import CampaignEvent, CampaignEventLog, EventKind, EventType, LogStatus

logger = logging.getLogger(__name__)

TEXT_PENDING = "Waiting for its text to be sent"
WAITING = "Waiting for a reply"
# A wait that has not started yet has no deadline; the far future keeps it out of the timeout's way.
NO_DEADLINE = dt.timedelta(days=3650)
SEND_REF_PREFIX = "campaign-event:"


def text_event_of(event: CampaignEvent, *, events: dict[int, CampaignEvent] | None = None) -> CampaignEvent | None:
    """The Send Text Message action a decision waits on: the nearest one above it."""
    if events is None:
        events = {e.pk: e for e in CampaignEvent.objects.filter(campaign_id=event.campaign_id)}
    current = events.get(event.parent_id) if event.parent_id else None
    while current is not None:
        if current.kind == EventKind.SEND_TEXT_MESSAGE:
            return current
        current = events.get(current.parent_id) if current.parent_id else None
    return None


def _sends(text_event: CampaignEvent) -> object:
    """The outbound row of ``text_event`` for the contact and entry of the outer log (``campaign_send_ref``)."""
    ref = Concat(Value(f"{SEND_REF_PREFIX}{text_event.pk}:"), Cast(OuterRef("entry"), CharField()))
    return OutboundMessage.objects.filter(source=Source.CAMPAIGN, contact_id=OuterRef("contact_id"), source_ref=ref)


def hold_until_text_sent(*, event: CampaignEvent, contacts: QuerySet[Contact], now: dt.datetime) -> int:
    """Contacts of a batch that just reached ``event`` (its wait written at ``now``) whose text is not with the
    provider yet wait for it to leave, with no deadline. One UPDATE for the batch, whatever its size; returns how
    many wait for their text."""
    text_event = text_event_of(event)
    if text_event is None:
        return 0
    unsent = _sends(text_event).filter(status__in=[Status.QUEUED, Status.SENDING])  # type: ignore[attr-defined]
    return (
        CampaignEventLog.objects.filter(
            event=event,
            status=LogStatus.WAITING,
            detail=WAITING,
            trigger_at=now + event.wait_delta(),  # this batch's wait, not an older entry's
            contact_id__in=contacts.values("id"),
        )
        .filter(Exists(unsent))
        .update(trigger_at=now + NO_DEADLINE, detail=TEXT_PENDING)
    )


def waits_start(
    *, now: dt.datetime | None = None, message_ids: Iterable[int] | None = None, campaign_id: int | None = None
) -> int:
    """Start the waits of contacts whose text has left since they reached the decision: from the moment it was sent,
    or at once for a text that failed. With ``message_ids``, only for those messages (the engine's outcome writes).
    One UPDATE per decision event that has contacts waiting for their text."""
    now = now or timezone.now()
    ids = None if message_ids is None else list(message_ids)
    decisions = _decisions_waiting_for_text(ids, campaign_id)
    started = 0
    by_campaign: dict[int, dict[int, CampaignEvent]] = {}
    for decision in decisions:
        events = by_campaign.setdefault(
            decision.campaign_id, {e.pk: e for e in CampaignEvent.objects.filter(campaign_id=decision.campaign_id)}
        )
        text_event = text_event_of(decision, events=events)
        if text_event is None:
            continue
        left = _sends(text_event).exclude(status__in=[Status.QUEUED, Status.SENDING])  # type: ignore[attr-defined]
        if ids is not None:
            left = left.filter(pk__in=ids)
        sent_at = Subquery(left.values("sent_at")[:1])
        deadline = ExpressionWrapper(sent_at + Value(decision.wait_delta()), output_field=DateTimeField())
        started += (
            CampaignEventLog.objects.filter(event=decision, status=LogStatus.WAITING, detail=TEXT_PENDING)
            .filter(Exists(left))
            .update(trigger_at=Coalesce(deadline, Value(now)), detail=WAITING)
        )
    return started


def _decisions_waiting_for_text(message_ids: list[int] | None, campaign_id: int | None) -> list[CampaignEvent]:
    decisions = CampaignEvent.objects.filter(event_type=EventType.DECISION)
    if campaign_id is not None:
        decisions = decisions.filter(campaign_id=campaign_id)
    if message_ids is not None:
        # The engine's outcome writes: which campaigns' texts these are (most are a broadcast's: nothing to do).
        refs = set(
            OutboundMessage.objects.filter(pk__in=message_ids, source=Source.CAMPAIGN).values_list(
                "source_ref", flat=True
            )
        )
        send_ids = {int(ref.split(":")[1]) for ref in refs if ref.startswith(SEND_REF_PREFIX)}
        if not send_ids:
            return []
        campaigns = CampaignEvent.objects.filter(pk__in=send_ids).values("campaign_id")
        decisions = decisions.filter(campaign_id__in=campaigns)
    pending = CampaignEventLog.objects.filter(event_id=OuterRef("pk"), status=LogStatus.WAITING, detail=TEXT_PENDING)
    return list(decisions.filter(Exists(pending)))


def on_texts_left(sender: object, *, message_ids: list[int], status: str, **kwargs: object) -> None:
    """``message_status_changed`` from the sending engine: texts that left (or never will) start their waits."""
    if status not in (Status.SENT, Status.FAILED, Status.UNKNOWN):
        return
    # Sent from inside the engine's outcome write: a failure here must not fail the send (the engine run's safety
    # net starts these waits a minute later anyway).
    try:
        waits_start(message_ids=message_ids)
    except Exception:
        logger.exception(
            "campaign waits not started for %d message(s); the next engine run starts them", len(message_ids)
        )


# Clicks


def click_matches(event: CampaignEvent, url: str) -> bool:
    pattern = (event.prop("url_pattern") or "").strip().lower()
    return not pattern or fnmatch.fnmatchcase((url or "").strip().lower(), pattern)


def link_clicked(*, contact_id: int, url: str, now: dt.datetime | None = None) -> list[int]:
    """A click from this contact: "clicks a link" decisions waiting for it take their yes path now (a wait that has
    not started, its text still queued, cannot be answered yet). Returns the logs moved on; what follows them is
    scheduled for now (``contact_events_run`` runs it at once, from a task), as for a reply."""
    from .engine.steps import RunSummary, Source, step

    now = now or timezone.now()
    waiting = (
        CampaignEventLog.objects.filter(
            contact_id=contact_id,
            status=LogStatus.WAITING,
            campaign__is_published=True,
            event__kind=EventKind.CLICKED_LINK,
        )
        .exclude(detail=TEXT_PENDING)
        .select_related("event", "event__campaign")
    )
    moved: list[int] = []
    for log in waiting:  # read outside a transaction: most clicks find nothing waiting, and cost one query
        if not click_matches(log.event, url):
            continue
        # The log is taken only if it is still waiting: the timeout or another click may have got there first.
        source = Source(kind="click", event=log.event, limit=1, log_id=log.pk, priority=True)
        count, _ = step(source, now=now, summary=RunSummary())
        if count:
            moved.append(log.pk)
    return moved
