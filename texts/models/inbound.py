"""Inbound messages (replies) and keywords (STOP, START, HELP and custom words with their auto-reply).

The inbound side of ``texts.models``, beside the outbound one (``outbound.py``).
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models.functions import Lower


class KeywordKind(models.TextChoices):
    OPT_OUT = "opt_out", "Opt-out"
    OPT_IN = "opt_in", "Opt-in"
    HELP = "help", "Help"
    JOIN = "join", "Join (double opt-in)"
    CUSTOM = "custom", "Custom"


class ProtectedKeyword(Exception):
    """A built-in keyword (the STOP, START and HELP families) was to be deleted: nobody may."""


class KeywordQuerySet(models.QuerySet["Keyword"]):
    def delete(self) -> tuple[int, dict[str, int]]:
        # A bulk delete skips ``Keyword.delete``: refuse it here too (PostgreSQL's trigger is the last guard).
        protected = list(self.filter(builtin=True).values_list("word", flat=True)[:3])
        if protected:
            raise ProtectedKeyword(f"Built-in keywords cannot be deleted: {', '.join(protected)}.")
        return super().delete()


class Keyword(models.Model):
    """A word that, sent alone, makes something happen (Dynamics' "SMS keywords").

    ``builtin``: one of the words carriers and providers honour whatever we do (STOP, START and HELP families). Such a
    keyword is never deleted or switched off (a check constraint, a PostgreSQL trigger, and the model); only its
    auto-reply can change.
    """

    Kind = KeywordKind

    word = models.CharField(max_length=40)
    kind = models.CharField(max_length=16, choices=KeywordKind.choices)
    auto_reply = models.TextField("auto-reply", blank=True)
    active = models.BooleanField(default=True)
    builtin = models.BooleanField("built-in", default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = KeywordQuerySet.as_manager()

    class Meta:
        ordering = ["kind", "word"]
        constraints = [
            # "Stop" and "STOP" are the same keyword: the database refuses the second one.
            models.UniqueConstraint(Lower("word"), name="keyword_word_unique_ci"),
            models.CheckConstraint(
                condition=models.Q(builtin=False) | models.Q(active=True), name="keyword_builtin_active"
            ),
        ]

    def __str__(self) -> str:
        return self.word

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        if self.builtin:
            raise ProtectedKeyword(f"{self.word} is a built-in keyword: it cannot be deleted.")
        return super().delete(*args, **kwargs)


class InboundMessage(models.Model):
    """One message a contact sent us, stored once per provider message SID."""

    message_sid = models.CharField(max_length=64, unique=True)
    account_sid = models.CharField(max_length=64)
    from_number = models.CharField(max_length=128)  # E.164 or a Messenger ID when it parses; as sent otherwise
    channel = models.CharField(max_length=16, default="sms", db_default="sms")
    profile_name = models.CharField(max_length=255, blank=True)  # WhatsApp's and Messenger's display name
    # A quick-reply button's label and payload (WhatsApp ButtonText / ButtonPayload), "" for typed text.
    button_text = models.CharField(max_length=255, blank=True)
    button_payload = models.CharField(max_length=255, blank=True)
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
