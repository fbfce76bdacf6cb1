"""Contacts, segments, Do Not Contact and the timeline.

Other apps read these models and write through ``contacts.services`` (timeline entries, Do Not Contact,
contacts matched by number); this app imports no other app of the project.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q
from phonenumber_field.modelfields import PhoneNumberField

from .phones import region_of, timezone_of


class Contact(models.Model):
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    email = models.EmailField(blank=True, db_index=True)
    # E.164. At most one contact per number: inbound replies are matched by it.
    mobile = PhoneNumberField(null=True, blank=True, unique=True)
    # The WhatsApp number (E.164), kept apart from the mobile: the forms offer the mobile, but a person may use
    # WhatsApp on another number. Unique like the mobile: inbound WhatsApp messages are matched by it.
    whatsapp = PhoneNumberField("WhatsApp number", null=True, blank=True, unique=True)
    # The page-scoped Messenger ID, learnt from the contact's first Messenger message (nobody types it).
    messenger_id = models.CharField("Messenger ID", max_length=128, null=True, blank=True, unique=True, editable=False)
    # When the contact last wrote on WhatsApp: free-form WhatsApp messages may go only within 24 hours of it.
    whatsapp_inbound_at = models.DateTimeField("last WhatsApp message received", null=True, blank=True, editable=False)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2, e.g. GB")
    timezone = models.CharField(max_length=64, blank=True, help_text="IANA name, e.g. Europe/London")
    preferred_language = models.CharField(max_length=16, blank=True)
    custom_fields = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.name or str(self.mobile or self.email or f"Contact #{self.pk}")

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.infer_location()
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "mobile" in update_fields:
            kwargs["update_fields"] = {*update_fields, "country", "timezone"}
        super().save(*args, **kwargs)

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def infer_location(self) -> None:
        """Fill a blank country and timezone from the mobile number (the imports and forms do the same)."""
        if not self.mobile:
            return
        e164 = str(self.mobile)
        if not self.country:
            self.country = region_of(e164)
        if not self.timezone:
            self.timezone = timezone_of(e164)


class Channel(models.TextChoices):
    SMS = "sms", "SMS"
    EMAIL = "email", "Email"
    WHATSAPP = "whatsapp", "WhatsApp"
    MESSENGER = "messenger", "Messenger"


class DoNotContact(models.Model):
    """One opt-out of one contact on one channel. Lifting it stamps ``lifted_at``; rows are never deleted, not even
    with their contact (the contact becomes NULL; the number's own record is ``Suppression``)."""

    class Reason(models.TextChoices):
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        BOUNCED = "bounced", "Bounced"
        MANUAL = "manual", "Manual"

    class Source(models.TextChoices):
        KEYWORD = "keyword", "Keyword reply"
        PROVIDER = "provider", "Provider error"
        MARKETER = "marketer", "Marketer"
        IMPORT = "import", "Import"
        API = "api", "API"
        CAMPAIGN = "campaign", "Campaign"

    contact = models.ForeignKey(Contact, on_delete=models.SET_NULL, null=True, related_name="dnc_entries")
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.SMS)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    source = models.CharField(max_length=16, choices=Source.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.CharField(max_length=16, choices=Source.choices, blank=True)
    lifted_comment = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["contact", "channel"], condition=Q(lifted_at__isnull=True), name="one_active_dnc_per_channel"
            )
        ]
        indexes = [models.Index(fields=["channel", "contact"], condition=Q(lifted_at__isnull=True), name="dnc_active")]

    def __str__(self) -> str:
        return f"{self.contact_id} {self.channel} {self.reason}"

    @property
    def is_active(self) -> bool:
        return self.lifted_at is None

    @property
    def is_protected(self) -> bool:
        """The person's own opt-out (a STOP reply, or one the provider reported): nobody lifts it but the person."""
        return is_protected_opt_out(reason=self.reason, source=self.source)


# An opt-out the person made (a keyword reply like STOP, or the provider's report that they replied STOP to it) is
# theirs: no marketer, API client, admin, import or campaign may lift it; only the person's own opt-in keyword.
PROTECTED_REASON = DoNotContact.Reason.UNSUBSCRIBED
PROTECTED_SOURCES = (DoNotContact.Source.KEYWORD, DoNotContact.Source.PROVIDER)


def is_protected_opt_out(*, reason: str, source: str) -> bool:
    return reason == PROTECTED_REASON and source in PROTECTED_SOURCES


def protected_q() -> Q:
    """The protected opt-outs among ``DoNotContact`` or ``Suppression`` rows."""
    return Q(reason=PROTECTED_REASON, source__in=PROTECTED_SOURCES)


class Suppression(models.Model):
    """An opt-out of one address (an E.164 number for SMS) on one channel, whoever owns it now.

    Kept by address, not by contact row, so it outlives a contact's deletion, a merge or a re-import: a contact who
    gets the address is Do Not Contact at once (``contacts.suppression``), and nothing is sent to it meanwhile
    (``contacts.selectors``). Lifting stamps ``lifted_at``; rows are never deleted.
    """

    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.SMS)
    address = models.CharField(max_length=128)
    reason = models.CharField(max_length=16, choices=DoNotContact.Reason.choices)
    source = models.CharField(max_length=16, choices=DoNotContact.Source.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.CharField(max_length=16, choices=DoNotContact.Source.choices, blank=True)
    lifted_comment = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "address"],
                condition=Q(lifted_at__isnull=True),
                name="one_active_suppression_per_address",
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.address} {self.reason}"

    @property
    def is_protected(self) -> bool:
        return is_protected_opt_out(reason=self.reason, source=self.source)


class AddressFailure(models.Model):
    """Permanent delivery failures of one address on one channel: the provider said the address cannot receive (not
    a mobile, unknown, a landline, invalid; ``ErrorKind.BAD_ADDRESS``). ``failures`` counts them since the address's
    last suppression was lifted; at ``SMS_BAD_ADDRESS_FAILURES`` the address is suppressed with reason "bounced"
    (``contacts.bounces``). Kept by address, like ``Suppression``."""

    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.SMS)
    address = models.CharField(max_length=128)
    failures = models.PositiveIntegerField(default=0)
    last_code = models.CharField(max_length=32, blank=True)
    first_failed_at = models.DateTimeField()
    last_failed_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["channel", "address"], name="one_failure_count_per_address")]

    def __str__(self) -> str:
        return f"{self.channel} {self.address} {self.failures}x {self.last_code}"


class ConsentStatus(models.TextChoices):
    SUBSCRIBED = "subscribed", "Subscribed"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    NEVER = "never", "Never asked"


class ConsentEventStatus(models.TextChoices):
    """What a consent log entry records: a decision, or a double opt-in request waiting for its confirmation."""

    SUBSCRIBED = "subscribed", "Subscribed"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    PENDING = "pending", "Confirmation requested"


class ConsentSource(models.TextChoices):
    IMPORT = "import", "Import column"
    API = "api", "API"
    WEB_FORM = "web_form", "Web form"
    KEYWORD = "keyword", "Keyword reply"
    DOUBLE_OPT_IN = "double_opt_in", "Double opt-in confirmation"
    MARKETER = "marketer", "Marketer"
    CAMPAIGN = "campaign", "Campaign action"


class Consent(models.Model):
    """The marketing consent of one address on one channel now (the latest decision by ``at``). No row is "never".

    Kept by address like ``Suppression``, so it outlives the contact; its history is ``ConsentEvent``.
    """

    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.SMS)
    address = models.CharField(max_length=128)
    status = models.CharField(max_length=16, choices=ConsentStatus.choices)
    at = models.DateTimeField(help_text="When the contact gave or withdrew it")
    source = models.CharField(max_length=16, choices=ConsentSource.choices)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["channel", "address"], name="one_consent_per_address")]

    def __str__(self) -> str:
        return f"{self.channel} {self.address} {self.status}"


class ConsentEvent(models.Model):
    """One entry of the consent log: when, from what source, the consent text shown, and who or what recorded it.
    Never deleted, not with the contact (``contact`` becomes NULL, ``address`` stays)."""

    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.SMS)
    address = models.CharField(max_length=128)
    contact = models.ForeignKey(
        Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="consent_events", db_index=False
    )
    status = models.CharField(max_length=16, choices=ConsentEventStatus.choices)
    source = models.CharField(max_length=16, choices=ConsentSource.choices)
    consent_text = models.TextField(blank=True)
    recorded_by = models.CharField(max_length=150, blank=True)
    comment = models.TextField(blank=True)
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["contact", "-occurred_at"], name="consent_event_by_contact"),
            models.Index(fields=["channel", "address"], name="consent_event_by_address"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.address} {self.status} ({self.source})"


class ConsentRequest(models.Model):
    """A double opt-in request (the join keyword or the public form): marketing consent is recorded only when the
    number answers YES before ``expires_at``; ``confirmed_at`` is set once, by a guarded UPDATE."""

    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.SMS)
    address = models.CharField(max_length=128)
    contact = models.ForeignKey(
        Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="consent_requests", db_index=False
    )
    source = models.CharField(max_length=16, choices=ConsentSource.choices)  # how it was asked: web form, keyword
    consent_text = models.TextField(blank=True)  # what the person was shown when asking
    requested_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["channel", "address", "-requested_at"], name="consent_request_by_address")]

    def __str__(self) -> str:
        return f"{self.channel} {self.address} requested {self.requested_at:%Y-%m-%d %H:%M}"


class Segment(models.Model):
    class Kind(models.TextChoices):
        STATIC = "static", "Static"
        FILTER = "filter", "Filter-based"

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.STATIC)
    # {"match": "all"|"any", "rules": [{"field": ..., "operator": ..., "value": ...}]}
    filters = models.JSONField(default=dict, blank=True)
    member_count = models.PositiveIntegerField(default=0)
    rebuilt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SegmentMembership(models.Model):
    """A contact in a segment. ``manually_removed`` rows keep a removed contact out of a filter-based segment."""

    # No index of their own: the unique (segment, contact) and membership_by_contact (contact, segment) lead with
    # each, and every index here is paid for by every row a segment rebuild, a campaign or an import writes.
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships", db_index=False)
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="memberships", db_index=False)
    manually_added = models.BooleanField(default=False)
    manually_removed = models.BooleanField(default=False)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["segment", "contact"], name="one_membership_per_segment")]
        indexes = [models.Index(fields=["contact", "segment"], name="membership_by_contact")]

    def __str__(self) -> str:
        return f"{self.segment_id}:{self.contact_id}"


class TimelineEvent(models.Model):
    """One entry in a contact's history. Other apps write through ``contacts.services.timeline_record``."""

    # Read only through timeline_by_contact (contact, newest first), which also serves the foreign key; nothing
    # filters by kind across contacts. Three more indexes cost a fifth of every import, send and campaign step.
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="timeline", db_index=False)
    kind = models.CharField(max_length=40)
    title = models.CharField(max_length=255)
    detail = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["contact", "-occurred_at", "-id"], name="timeline_by_contact")]

    def __str__(self) -> str:
        return f"{self.contact_id} {self.kind} {self.title}"


class ContactImport(models.Model):
    """One CSV file imported into contacts: its mapping, options, progress and the rows it refused."""

    class Status(models.TextChoices):
        MAPPING = "mapping", "Waiting for the column mapping"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class Mode(models.TextChoices):
        UPDATE = "update", "Update existing contacts"
        SKIP = "skip", "Skip existing contacts"

    file = models.FileField(upload_to="imports/%Y/%m/")
    original_name = models.CharField(max_length=255)
    headers = models.JSONField(default=list, blank=True)
    # {column index (as a string): target}, target = a contact field, "dnc", "custom.<key>" or "custom_date.<key>"
    mapping = models.JSONField(default=dict, blank=True)
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.UPDATE)
    region = models.CharField(max_length=2, blank=True, help_text="Country for numbers written without a code")
    segment = models.ForeignKey(Segment, on_delete=models.SET_NULL, null=True, blank=True, related_name="imports")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.MAPPING)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent of the file read")
    rows_read = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    unchanged_count = models.PositiveIntegerField(default=0)
    skipped_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    failure = models.TextField(blank=True, help_text="Why the whole import stopped, if it did")
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.original_name} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in {self.Status.DONE, self.Status.FAILED}


class ContactImportError(models.Model):
    """One refused row of an import; the row number counts the header as row 1, like a spreadsheet."""

    contact_import = models.ForeignKey(ContactImport, on_delete=models.CASCADE, related_name="row_errors")
    row_number = models.PositiveIntegerField()
    reason = models.TextField()

    class Meta:
        ordering = ["row_number", "id"]

    def __str__(self) -> str:
        return f"row {self.row_number}: {self.reason}"
