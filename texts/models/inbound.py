"""Inbound messages (replies) and keywords (STOP, START, HELP and custom words with their auto-reply).

The inbound side of ``texts.models``, beside the outbound one (``outbound.py``).
"""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Lower


class KeywordKind(models.TextChoices):
    OPT_OUT = "opt_out", "Opt-out"
    OPT_IN = "opt_in", "Opt-in"
    HELP = "help", "Help"
    CUSTOM = "custom", "Custom"


class Keyword(models.Model):
    """A word that, sent alone, makes something happen (Dynamics' "SMS keywords")."""

    Kind = KeywordKind

    word = models.CharField(max_length=40)
    kind = models.CharField(max_length=16, choices=KeywordKind.choices)
    auto_reply = models.TextField("auto-reply", blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "word"]
        constraints = [
            # "Stop" and "STOP" are the same keyword: the database refuses the second one.
            models.UniqueConstraint(Lower("word"), name="keyword_word_unique_ci"),
        ]

    def __str__(self) -> str:
        return self.word


class InboundMessage(models.Model):
    """One message a contact sent us, stored once per provider message SID."""

    message_sid = models.CharField(max_length=64, unique=True)
    account_sid = models.CharField(max_length=64)
    from_number = models.CharField(max_length=32)  # E.164 when it parses; as the provider sent it otherwise
    to_number = models.CharField(max_length=32, blank=True)
    body = models.TextField(blank=True)
    media_urls = models.JSONField(default=list, blank=True)
    media_content_types = models.JSONField(default=list, blank=True)
    from_country = models.CharField(max_length=2, blank=True)
    opt_out_type = models.CharField(max_length=16, blank=True)  # answered by the provider itself: STOP, START, HELP
    raw = models.JSONField("parameters as received", default=dict, blank=True)
    contact = models.ForeignKey(
        "contacts.Contact", null=True, blank=True, on_delete=models.SET_NULL, related_name="inbound_messages"
    )
    in_reply_to = models.ForeignKey(
        "texts.OutboundMessage", null=True, blank=True, on_delete=models.SET_NULL, related_name="replies"
    )
    keyword = models.ForeignKey(Keyword, null=True, blank=True, on_delete=models.SET_NULL, related_name="matches")
    # What the message did (kept even if the keyword is later deleted or changed): opt_out, opt_in, help, custom.
    action = models.CharField(max_length=16, choices=KeywordKind.choices, blank=True)
    reply = models.TextField("auto-reply sent", blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["contact", "-received_at"], name="inbound_by_contact")]

    def __str__(self) -> str:
        return f"{self.from_number}: {self.body[:40]}"
