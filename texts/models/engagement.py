"""What tells a marketer whether a text worked: tracked short links, the conversations inbox, a price table.

Kept beside ``outbound`` and ``inbound`` (``texts.models`` exports them).
"""

from __future__ import annotations

from django.db import models


class ShortLink(models.Model):
    """One link of one sent message, as the recipient got it: ``PUBLIC_BASE_URL/l/<code>`` redirecting to ``url``.

    A row per (message, link), so a click is one recipient's click on one link: ``first_clicked_at`` once, ``clicks``
    every time. Hits that look like link previews (carriers' scanners, chat apps unfurling the link) redirect too but
    count in ``previews`` only (``texts.services.links``).
    """

    code = models.CharField(max_length=16, unique=True)
    outbound = models.ForeignKey(
        "texts.OutboundMessage", null=True, blank=True, on_delete=models.SET_NULL, related_name="links", db_index=False
    )
    text_message = models.ForeignKey(
        "texts.TextMessage", null=True, blank=True, on_delete=models.SET_NULL, related_name="links", db_index=False
    )
    contact = models.ForeignKey(
        "contacts.Contact", null=True, blank=True, on_delete=models.SET_NULL, related_name="links"
    )
    url = models.TextField()
    position = models.PositiveSmallIntegerField(default=0)  # which link of the body (0 = the first)
    clicks = models.PositiveIntegerField(default=0, db_default=0)
    previews = models.PositiveIntegerField(default=0, db_default=0)
    first_clicked_at = models.DateTimeField(null=True, blank=True)
    last_clicked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["outbound_id", "position"]
        constraints = [
            # A message rendered again after a crash writes the same rows again: nothing twice (texts.services.links).
            models.UniqueConstraint(fields=["outbound", "position"], name="one_short_link_per_message_position"),
        ]
        indexes = [models.Index(fields=["text_message", "first_clicked_at"], name="short_link_by_text")]

    def __str__(self) -> str:
        return f"{self.code} -> {self.url}"


class Conversation(models.Model):
    """A contact's thread in the inbox: when they last wrote, what, and how many of their messages nobody read.

    Written in the reply's own transaction (``texts.inbound``) and when the team answers; the inbox lists these rows
    newest first, so it costs a page of rows however many messages there are. Read state is the team's (a shared
    inbox): one person opening the thread reads it for everyone.
    """

    contact = models.OneToOneField("contacts.Contact", on_delete=models.CASCADE, related_name="conversation")
    last_inbound_at = models.DateTimeField(null=True, blank=True)
    last_message_at = models.DateTimeField()
    last_body = models.CharField(max_length=160, blank=True)
    unread = models.PositiveIntegerField(default=0, db_default=0)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_message_at", "-id"]
        indexes = [models.Index(fields=["-last_message_at", "-id"], name="conversation_recent")]

    def __str__(self) -> str:
        return f"{self.contact_id}: {self.last_body[:40]}"


class CountryPrice(models.Model):
    """What one segment to a country costs, for the estimate shown before a broadcast (an admin keeps it)."""

    ANY = "*"  # every country without a row of its own

    country = models.CharField(max_length=2, unique=True, help_text="ISO 3166-1 alpha-2 (GB, US), or * for the rest")
    price_per_segment = models.DecimalField(max_digits=10, decimal_places=5)
    currency = models.CharField(max_length=3, default="USD")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["country"]

    def __str__(self) -> str:
        return f"{self.country}: {self.price_per_segment} {self.currency}"
