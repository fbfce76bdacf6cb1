"""Writes of the Twilio plugin: saving its page, checking a connection with the values typed in it, and syncing the
account's Content Templates."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from ..base import ConnectionCheck
from .config import get_config
from .models import ContentTemplate, SenderNumber, TwilioSettings
from .provider import TwilioProvider, twilio_provider


@transaction.atomic
def twilio_settings_save(*, data: Mapping[str, Any], numbers: Sequence[Mapping[str, Any]]) -> TwilioSettings:
    """Store the page's values. A blank secret keeps the stored one; the pool is replaced as a whole."""
    row = TwilioSettings.objects.select_for_update().filter(id=TwilioSettings.SINGLETON_ID).first()
    row = row or TwilioSettings(id=TwilioSettings.SINGLETON_ID)
    for name in (
        "enabled",
        "account_sid",
        "api_key_sid",
        "sender_type",
        "messaging_service_sid",
        "alphanumeric_sender_id",
        "whatsapp_from",
        "messenger_from",
        "sender_rate_per_second",
        "direction",
        "status_callbacks",
        "help_text",
    ):
        if name in data:
            setattr(row, name, data[name])
    if data.get("auth_token"):
        row.auth_token = data["auth_token"]
    if data.get("api_key_secret"):
        row.api_key_secret = data["api_key_secret"]
    if not data.get("api_key_sid"):
        row.api_key_secret_encrypted = ""  # a secret without its key SID is useless: do not keep it around
    row.save()
    row.numbers.all().delete()
    SenderNumber.objects.bulk_create(
        SenderNumber(
            settings=row,
            phone_number=n["phone_number"],
            friendly_name=n.get("friendly_name", ""),
            number_type=n["number_type"],
            rate_per_second=Decimal(n["rate_per_second"]),
            position=i,
        )
        for i, n in enumerate(numbers)
    )
    return row


def twilio_connection_check(*, data: Mapping[str, Any]) -> ConnectionCheck:
    """Fetch the Account with the values typed in the page (blank secrets: the stored ones; the environment wins)."""
    config = get_config()
    overrides: dict[str, Any] = {}
    for name in ("account_sid", "auth_token", "api_key_sid", "api_key_secret"):
        env_name = f"TWILIO_{name.upper()}"
        if data.get(name) and env_name not in config.from_env:
            overrides[name] = data[name]
    if "api_key_sid" in data and not data.get("api_key_sid") and "TWILIO_API_KEY_SID" not in config.from_env:
        overrides["api_key_sid"] = ""
    return TwilioProvider(dataclasses.replace(config, **overrides)).check_connection()


@dataclasses.dataclass(frozen=True)
class SyncSummary:
    added: int
    updated: int
    removed: int
    total: int

    def __str__(self) -> str:
        return (
            f"{self.total} Content Template{'s' if self.total != 1 else ''} at Twilio: "
            f"{self.added} new, {self.updated} updated, {self.removed} removed."
        )


def content_templates_sync(*, provider: TwilioProvider | None = None) -> SyncSummary:
    """Read every Content Template of the account (with its WhatsApp approval) and store it. A template Twilio no
    longer has is marked removed, not deleted, so a message using it can say why it cannot be sent. Raises
    ``ProviderError`` (and then changes nothing)."""
    listing = (provider or twilio_provider()).list_content_templates()
    now = timezone.now()
    with transaction.atomic():
        known = {t.sid: t for t in ContentTemplate.objects.select_for_update()}
        added = updated = 0
        for item in listing:
            values = {
                "friendly_name": item.friendly_name,
                "language": item.language,
                "types": item.types,
                "variables": item.variables,
                "approval_status": item.approval_status,
                "approval_category": item.approval_category,
                "rejection_reason": item.rejection_reason,
                "date_updated": item.date_updated,
                "synced_at": now,
                "removed_at": None,
            }
            row = known.get(item.sid)
            if row is None:
                ContentTemplate.objects.create(sid=item.sid, **values)
                added += 1
                continue
            changed = any(getattr(row, k) != v for k, v in values.items() if k != "synced_at")
            for name, value in values.items():
                setattr(row, name, value)
            row.save()
            updated += changed
        seen = {item.sid for item in listing}
        removed = ContentTemplate.objects.filter(removed_at__isnull=True).exclude(sid__in=seen).update(removed_at=now)
    return SyncSummary(added=added, updated=updated, removed=removed, total=len(listing))
