"""Text messages and the outbound message log with its state machine.

Every status change is a conditional UPDATE (``OutboundMessage.transition_filter``): the row moves only from a status
that allows the move, so two workers, a sweeper and a late status callback can race without a status ever moving
backwards.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class MessageChannel(models.TextChoices):
    """The channels a text message goes out on (``contacts.models.Channel`` minus email): each has its own address
    on the contact (``contacts.selectors.ADDRESS_FIELD``) and its own length rules (``texts.channels``)."""

    SMS = "sms", "SMS"
    WHATSAPP = "whatsapp", "WhatsApp"
    MESSENGER = "messenger", "Messenger"


class TextMessage(models.Model):
    Channel = MessageChannel

    class Category(models.TextChoices):
        # Dynamics' commercial vs transactional: marketing obeys Do Not Contact and quiet hours, transactional only DNC.
        MARKETING = "marketing", "Marketing"
        TRANSACTIONAL = "transactional", "Transactional"

    name = models.CharField("internal name", max_length=200)
    channel = models.CharField(
        max_length=16, choices=MessageChannel.choices, default=MessageChannel.SMS, db_default=MessageChannel.SMS
    )
    # A body, or a provider's message template (a WhatsApp one outside the 24-hour window): ``content_sid`` names it
    # and ``content_variables`` maps each of its variables to a personalisation token ({"1": "{{first_name|there}}"}),
    # rendered per contact at send time; the body is empty then.
    body = models.TextField("message", blank=True)
    content_sid = models.CharField("template", max_length=34, null=True, blank=True)
    # The database default lets set-based or raw INSERTs (benchmarks, the fault suite) leave it out.
    content_variables = models.JSONField("template variables", default=dict, db_default={}, blank=True)
    language = models.CharField(max_length=16, default="en", blank=True)
    category = models.CharField(max_length=16, choices=Category.choices, default=Category.MARKETING)
    is_published = models.BooleanField("published", default=True)
    publish_up = models.DateTimeField("publish from", null=True, blank=True)
    publish_down = models.DateTimeField("publish until", null=True, blank=True)
    media_urls = models.JSONField("media URLs", default=list, blank=True)
    # Links in the body become tracked short links per recipient. None: as the category says (marketing on,
    # transactional off: a receipt or a code goes as written).
    track_links = models.BooleanField("track links", null=True, blank=True, default=None)
    # A published broadcast texts contacts who join its segments later at every scheduled run; off, only Send now does.
    send_to_new_members = models.BooleanField("send to new segment members", default=True, db_default=True)
    # A text message with segments is a segment (broadcast) message, as in Mautic.
    segments = models.ManyToManyField("contacts.Segment", blank=True, related_name="text_messages")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_marketing(self) -> bool:
        return self.category == self.Category.MARKETING

    @property
    def uses_template(self) -> bool:
        return bool(self.content_sid)

    @property
    def tracks_links(self) -> bool:
        return self.is_marketing if self.track_links is None else bool(self.track_links)


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    UNDELIVERED = "undelivered", "Undelivered"
    FAILED = "failed", "Failed"
    UNKNOWN = "unknown", "Unknown (review)"


# For each target status, the statuses a message may move to it from. Anything else is a move backwards or a race.
ALLOWED_FROM: dict[str, frozenset[str]] = {
    # Back to the queue: a deferral, a transient error, or the sweeper finding the provider was never called.
    Status.QUEUED: frozenset({Status.SENDING}),
    Status.SENDING: frozenset({Status.QUEUED}),
    Status.SENT: frozenset({Status.SENDING, Status.UNKNOWN}),
    Status.DELIVERED: frozenset({Status.SENDING, Status.SENT, Status.UNKNOWN}),
    Status.UNDELIVERED: frozenset({Status.SENDING, Status.SENT, Status.UNKNOWN}),
    # queued -> failed: refused at claim time (Do Not Contact, no number) without calling the provider.
    Status.FAILED: frozenset({Status.QUEUED, Status.SENDING, Status.SENT, Status.UNKNOWN}),
    # Only from sending: a worker died after it may have called the provider.
    Status.UNKNOWN: frozenset({Status.SENDING}),
}
RANK = {
    Status.QUEUED: 0,
    Status.SENDING: 1,
    Status.UNKNOWN: 2,
    Status.SENT: 3,
    Status.DELIVERED: 4,
    Status.UNDELIVERED: 4,
    Status.FAILED: 4,
}
TIMESTAMP_FIELD: dict[str, str] = {
    Status.QUEUED: "queued_at",
    Status.SENDING: "sending_at",
    Status.SENT: "sent_at",
    Status.DELIVERED: "delivered_at",
    Status.UNDELIVERED: "undelivered_at",
    Status.FAILED: "failed_at",
    Status.UNKNOWN: "unknown_at",
}


class Schedule(models.TextChoices):
    """Where a queued message stands in the sending engine (``texts.services.dispatch``)."""

    NONE = "", "Due"  # new, or due again at next_attempt_at with a task that will come then
    PARKED = "parked", "Waiting for its sender"  # in its sender's line; the pacer hands it a slot (no task meanwhile)
    PACED = "paced", "Slot handed out"  # the pacer gave it a slot; a task comes at that moment
    HELD = "held", "Slot reserved"  # priority: its slot is reserved at next_attempt_at; a task comes then


class Source(models.TextChoices):
    BROADCAST = "broadcast", "Broadcast"
    CAMPAIGN = "campaign", "Campaign event"
    TEST = "test", "Test send"
    API = "api", "API"
    CONVERSATION = "conversation", "Conversation reply"
    DOUBLE_OPT_IN = "double_opt_in", "Double opt-in request"


class OutboundMessage(models.Model):
    """One text to one recipient: the outbound log and the unit of work of the sending pipeline."""

    Status = Status
    Source = Source
    Schedule = Schedule

    # Foreign keys and status carry no index of their own: outbound_by_contact, outbound_by_text and outbound_due
    # (below) lead with them, and each extra index on this, the busiest table, costs every insert and status change.
    contact = models.ForeignKey(
        "contacts.Contact",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="outbound_messages",
        db_index=False,
    )
    to_number = models.CharField(max_length=128)  # the address on ``channel``: E.164, or a Messenger ID
    sender = models.CharField(max_length=64, blank=True)  # number, Messaging Service SID or alphanumeric ID
    sender_kind = models.CharField(max_length=20, blank=True)
    # The registered name of the provider that sent it (``providers.registry``), written with ``provider_called_at``:
    # status callbacks and reconciliation ask that provider. "" before (and on messages older than the column: the
    # provider that sends now). The database defaults let the set-based INSERTs leave both out.
    provider = models.CharField(max_length=32, blank=True, default="", db_default="")
    channel = models.CharField(
        max_length=16, choices=MessageChannel.choices, default=MessageChannel.SMS, db_default=MessageChannel.SMS
    )
    text_message = models.ForeignKey(
        TextMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="outbound_messages", db_index=False
    )
    source = models.CharField(max_length=16, choices=Source.choices)
    source_ref = models.CharField(max_length=64, blank=True)  # e.g. a campaign event id
    priority = models.BooleanField(default=False)
    body = models.TextField(blank=True)  # as rendered for this contact (set when claimed)
    segments = models.PositiveSmallIntegerField(null=True, blank=True)
    encoding = models.CharField(max_length=8, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    provider_sid = models.CharField(max_length=64, null=True, blank=True, unique=True)
    error_code = models.CharField(max_length=32, blank=True)
    error_message = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # The database default lets the set-based INSERTs (broadcast fan-out, enqueue) leave it out.
    schedule = models.CharField(
        max_length=8, choices=Schedule.choices, default=Schedule.NONE, db_default="", blank=True
    )
    # Set in its own committed UPDATE just before the HTTP call of the current attempt: a row found stuck in
    # `sending` with this empty was never sent (safe to requeue); with it set, it may have been (-> unknown).
    provider_called_at = models.DateTimeField(null=True, blank=True)
    # A fresh token per claim: a worker whose row was swept and claimed again by another worker cannot send it.
    claim = models.UUIDField(null=True, blank=True)
    price = models.DecimalField(max_digits=10, decimal_places=5, null=True, blank=True)
    price_unit = models.CharField(max_length=8, blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)
    sending_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    undelivered_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    unknown_at = models.DateTimeField(null=True, blank=True)
    # When texts.reconcile last asked the provider for a status whose callback never came.
    status_checked_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # A contact gets a broadcast at most once (Mautic: "each contact can only receive the text message once").
            models.UniqueConstraint(
                fields=["text_message", "contact"],
                condition=Q(source="broadcast"),
                name="one_broadcast_per_contact",
            ),
            # A campaign event sends once per contact and campaign entry: the engine's source_ref is
            # "campaign-event:<event id>:<entry>", so a re-run after a crash cannot queue a second text.
            models.UniqueConstraint(
                fields=["source_ref", "contact"],
                condition=Q(source="campaign") & ~Q(source_ref=""),
                name="one_campaign_send_per_event_contact_entry",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="outbound_due"),
            # Each sender's line of parked messages, in the order the pacer hands them slots. Partial: a fan-out's rows
            # (never parked yet) cost it nothing.
            models.Index(
                fields=["sender", "next_attempt_at", "id"],
                name="outbound_parked",
                condition=Q(status="queued", schedule="parked"),
            ),
            models.Index(fields=["text_message", "status"], name="outbound_by_text"),
            models.Index(fields=["contact", "-queued_at"], name="outbound_by_contact"),
            # Messages whose price the provider has not told yet (texts.reconcile asks). Partial: a row enters it when
            # its SID is written and leaves it when its price is, so queued rows and priced ones cost it nothing.
            models.Index(
                fields=["provider_called_at"],
                name="outbound_price_pending",
                condition=Q(price__isnull=True, provider_sid__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.to_number} {self.status}"

    def can_transition_to(self, status: str) -> bool:
        return self.status in ALLOWED_FROM.get(status, frozenset())

    @staticmethod
    def allowed_from(status: str) -> frozenset[str]:
        return ALLOWED_FROM[status]

    @property
    def rank(self) -> int:
        return RANK[Status(self.status)]
