"""Outgoing webhooks: URLs an admin subscribed to events, and every delivery made to them (the delivery log)."""

from __future__ import annotations

import uuid

from django.db import models


class Event(models.TextChoices):
    MESSAGE_SENT = "message.sent", "Message sent (the provider accepted it)"
    MESSAGE_DELIVERED = "message.delivered", "Message delivered"
    MESSAGE_FAILED = "message.failed", "Message failed or undelivered"
    REPLY_RECEIVED = "reply.received", "Reply received"
    CONTACT_OPTED_OUT = "contact.opted_out", "Contact opted out (Do Not Contact for SMS)"
    CONTACT_OPTED_IN = "contact.opted_in", "Contact opted in (Do Not Contact lifted)"
    LINK_CLICKED = "link.clicked", "Link clicked (a recipient's first click on a link)"


TEST_EVENT = "test"  # sent by the "Send test event" button, whatever the endpoint subscribes to


class Endpoint(models.Model):
    url = models.URLField("URL", max_length=500)
    description = models.CharField(max_length=200, blank=True)
    events = models.JSONField(default=list)
    # The HMAC-SHA256 key, encrypted at rest (providers.crypto); shown to the admin once, when made.
    secret_encrypted = models.TextField()
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.url


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # waiting for its (next) attempt
    SENDING = "sending", "Sending"  # a worker has it
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (gave up)"


class Delivery(models.Model):
    """One event to one endpoint, with its attempts. At least once: a receiver dedupes on ``event_id``."""

    Status = DeliveryStatus

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    event_type = models.CharField(max_length=32)
    event_id = models.UUIDField(default=uuid.uuid4)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.CharField(max_length=500, blank=True)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due"),
            models.Index(fields=["endpoint", "-id"], name="delivery_by_endpoint"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} -> {self.endpoint_id} {self.status}"
