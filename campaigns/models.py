"""Campaigns: source segments, a tree of events (actions, decisions, conditions), members and the event log.

The event log is the engine's unit of work: one row per event, contact and entry, unique, so an event runs at most
once per contact and entry however many engine runs overlap or crash. A Send Text Message action refers to its text
message by a foreign key that PROTECTs it: a text message used by a campaign cannot be deleted from under it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import models
from django.db.models import Q


class Campaign(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    is_published = models.BooleanField("published", default=False)
    published_at = models.DateTimeField(null=True, blank=True)
    segments = models.ManyToManyField("contacts.Segment", blank=True, related_name="campaigns")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.name


class EventType(models.TextChoices):
    ACTION = "action", "Action"
    DECISION = "decision", "Decision"
    CONDITION = "condition", "Condition"


class EventKind(models.TextChoices):
    SEND_TEXT_MESSAGE = "send_text_message", "Send Text Message"
    ADD_TO_SEGMENT = "add_to_segment", "Add to segment"
    REMOVE_FROM_SEGMENT = "remove_from_segment", "Remove from segment"
    ADD_DNC = "add_dnc", "Add Do Not Contact"
    REMOVE_DNC = "remove_dnc", "Remove Do Not Contact"
    REPLIED_TO_TEXT = "replied_to_text", "Replies to a text message"
    REPLY_CONTAINS_KEYWORD = "reply_contains_keyword", "Reply contains a keyword"
    REPLIED_WITH_BUTTON = "replied_with_button", "Replies with a quick-reply button"
    CLICKED_LINK = "clicked_link", "Clicks a link in a text message"
    CONTACT_FIELD = "contact_field", "Contact field value"
    IN_SEGMENT = "in_segment", "Contact in segment"
    DNC_SMS = "dnc_sms", "Do Not Contact for SMS"


EVENT_TYPE_OF_KIND: dict[str, str] = {
    EventKind.SEND_TEXT_MESSAGE: EventType.ACTION,
    EventKind.ADD_TO_SEGMENT: EventType.ACTION,
    EventKind.REMOVE_FROM_SEGMENT: EventType.ACTION,
    EventKind.ADD_DNC: EventType.ACTION,
    EventKind.REMOVE_DNC: EventType.ACTION,
    EventKind.REPLIED_TO_TEXT: EventType.DECISION,
    EventKind.REPLY_CONTAINS_KEYWORD: EventType.DECISION,
    EventKind.REPLIED_WITH_BUTTON: EventType.DECISION,
    EventKind.CLICKED_LINK: EventType.DECISION,
    EventKind.CONTACT_FIELD: EventType.CONDITION,
    EventKind.IN_SEGMENT: EventType.CONDITION,
    EventKind.DNC_SMS: EventType.CONDITION,
}

KIND_DESCRIPTIONS: dict[str, str] = {
    EventKind.SEND_TEXT_MESSAGE: "Send one of your text messages to the contact.",
    EventKind.ADD_TO_SEGMENT: "Put the contact into a segment.",
    EventKind.REMOVE_FROM_SEGMENT: "Take the contact out of a segment.",
    EventKind.ADD_DNC: "Mark the contact Do Not Contact for SMS.",
    EventKind.REMOVE_DNC: "Lift the contact's Do Not Contact for SMS.",
    EventKind.REPLIED_TO_TEXT: "Wait for any reply, or a reply matching a pattern.",
    EventKind.REPLY_CONTAINS_KEYWORD: "Wait for a reply that contains a keyword.",
    EventKind.REPLIED_WITH_BUTTON: "Wait for a tap on a quick-reply button (WhatsApp), any or one in particular.",
    EventKind.CLICKED_LINK: "Wait for a click on a tracked link, any or one matching a pattern.",
    EventKind.CONTACT_FIELD: "Compare a contact field to a value.",
    EventKind.IN_SEGMENT: "Check whether the contact is in a segment.",
    EventKind.DNC_SMS: "Check whether the contact is Do Not Contact for SMS.",
}


class Path(models.TextChoices):
    YES = "yes", "Yes"
    NO = "no", "No"


class TriggerMode(models.TextChoices):
    IMMEDIATE = "immediate", "Immediately"
    INTERVAL = "interval", "After an interval"
    DATE = "date", "At a date"


class IntervalUnit(models.TextChoices):
    MINUTES = "minutes", "minutes"
    HOURS = "hours", "hours"
    DAYS = "days", "days"


def interval_delta(amount: int, unit: str) -> dt.timedelta:
    return dt.timedelta(**{unit: amount})


class CampaignEvent(models.Model):
    """One box on the canvas. ``path`` says which branch of its decision/condition parent it hangs on."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="events")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    path = models.CharField(max_length=3, choices=Path.choices, null=True, blank=True)
    event_type = models.CharField(max_length=10, choices=EventType.choices)
    kind = models.CharField(max_length=32, choices=EventKind.choices)
    name = models.CharField(max_length=200, blank=True)
    # Send Text Message only. PROTECT: deleting a text message a campaign still sends would fail every contact later.
    text_message = models.ForeignKey(
        "texts.TextMessage", null=True, blank=True, on_delete=models.PROTECT, related_name="campaign_events"
    )
    properties = models.JSONField(default=dict, blank=True)
    trigger_mode = models.CharField(max_length=10, choices=TriggerMode.choices, default=TriggerMode.IMMEDIATE)
    trigger_interval = models.PositiveIntegerField(null=True, blank=True)
    trigger_unit = models.CharField(max_length=8, choices=IntervalUnit.choices, default=IntervalUnit.DAYS)
    trigger_date = models.DateTimeField(null=True, blank=True)
    # Optional window in the contact's timezone: only between these hours, only on these weekdays (0 = Monday).
    window_start = models.TimeField(null=True, blank=True)
    window_end = models.TimeField(null=True, blank=True)
    weekdays = models.JSONField(default=list, blank=True)
    # Decisions: how long to wait for the contact before taking the no path.
    wait_amount = models.PositiveIntegerField(null=True, blank=True)
    wait_unit = models.CharField(max_length=8, choices=IntervalUnit.choices, default=IntervalUnit.DAYS)
    order = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["order", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(parent__isnull=True, path__isnull=True) | Q(parent__isnull=False),
                name="campaign_event_root_has_no_path",
            )
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        return self.name or self.get_kind_display()

    @property
    def has_paths(self) -> bool:
        return self.event_type in (EventType.DECISION, EventType.CONDITION)

    @property
    def has_window(self) -> bool:
        return bool(self.window_start and self.window_end) or bool(self.weekdays)

    def wait_delta(self) -> dt.timedelta:
        return interval_delta(self.wait_amount or 0, self.wait_unit)

    def prop(self, key: str, default: Any = None) -> Any:
        return (self.properties or {}).get(key, default)


class CampaignMember(models.Model):
    # No index of their own: one_member_per_campaign leads with the campaign, campaign_member_by_contact with the
    # contact. Two more indexes made each of a campaign's million member rows cost two more index inserts.
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="members", db_index=False)
    contact = models.ForeignKey(
        "contacts.Contact", on_delete=models.CASCADE, related_name="campaign_memberships", db_index=False
    )
    manually_added = models.BooleanField(default=False)
    # Kept as a row so the segment sync does not add the contact back.
    manually_removed = models.BooleanField(default=False)
    entry = models.PositiveIntegerField(default=1)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "contact"], name="one_member_per_campaign")]
        indexes = [models.Index(fields=["contact", "campaign"], name="campaign_member_by_contact")]

    def __str__(self) -> str:
        return f"{self.campaign_id}:{self.contact_id}"


class LogStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    RUNNING = "running", "Running"
    WAITING = "waiting", "Waiting"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class CampaignEventLog(models.Model):
    """An event for one contact and entry: scheduled, then run once (the unique constraint makes that hold)."""

    Status = LogStatus

    # No index of their own: the unique (event, contact, entry) and campaign_log_by_contact lead with them. Each
    # index here is written for each event each contact goes through, millions per campaign run.
    event = models.ForeignKey(CampaignEvent, on_delete=models.CASCADE, related_name="logs", db_index=False)
    # Denormalised so the engine filters by campaign without a join.
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="event_logs")
    contact = models.ForeignKey(
        "contacts.Contact", on_delete=models.CASCADE, related_name="campaign_event_logs", db_index=False
    )
    entry = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=10, choices=LogStatus.choices, default=LogStatus.SCHEDULED)
    trigger_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    executed_at = models.DateTimeField(null=True, blank=True)
    path_taken = models.CharField(max_length=3, choices=Path.choices, null=True, blank=True)
    detail = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event", "contact", "entry"], name="one_log_per_event_contact_entry")
        ]
        # The due indexes hold only logs still to run: a finished log (almost all of them) is in neither.
        indexes = [
            models.Index(
                fields=["status", "trigger_at", "id"],
                condition=Q(status__in=[LogStatus.SCHEDULED, LogStatus.RUNNING, LogStatus.WAITING]),
                name="campaign_log_pending",
            ),
            models.Index(fields=["contact", "status"], name="campaign_log_by_contact"),
            # An event's due logs in trigger order: what the engine claims a batch from.
            models.Index(
                fields=["event", "trigger_at"], condition=Q(status=LogStatus.SCHEDULED), name="campaign_log_due"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_id}:{self.contact_id}:{self.entry} {self.status}"
