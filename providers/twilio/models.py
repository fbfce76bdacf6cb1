"""The Twilio plugin's configuration: one row (a singleton) and its pool of sender numbers."""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models

from .. import crypto


class SenderType(models.TextChoices):
    NUMBERS = "numbers", "Phone number pool"
    MESSAGING_SERVICE = "messaging_service", "Messaging Service"
    ALPHANUMERIC = "alphanumeric", "Alphanumeric Sender ID"


class Direction(models.TextChoices):
    OUTBOUND = "outbound", "Outbound only"
    BOTH = "both", "Inbound & Outbound"


class NumberType(models.TextChoices):
    LONG_CODE = "long_code", "Long code"
    TOLL_FREE = "toll_free", "Toll-free"
    SHORT_CODE = "short_code", "Short code"
    OTHER = "other", "Other"


class TwilioSettings(models.Model):
    """The plugin page's values. Environment variables win over them (see ``providers.twilio.config``)."""

    SINGLETON_ID = 1

    enabled = models.BooleanField("Text Message Enabled", default=False)
    account_sid = models.CharField(max_length=34, blank=True)
    auth_token_encrypted = models.TextField(blank=True)
    api_key_sid = models.CharField(max_length=34, blank=True)
    api_key_secret_encrypted = models.TextField(blank=True)
    sender_type = models.CharField(max_length=20, choices=SenderType.choices, default=SenderType.NUMBERS)
    messaging_service_sid = models.CharField(max_length=34, blank=True)
    alphanumeric_sender_id = models.CharField(max_length=11, blank=True)
    # The senders of the other channels (a Messaging Service serves every channel when these are blank).
    whatsapp_from = models.CharField("WhatsApp sender number", max_length=20, blank=True)
    messenger_from = models.CharField("Messenger Sender ID", max_length=64, blank=True)
    # Messages per second for a Messaging Service or an alphanumeric sender (numbers carry their own rate).
    sender_rate_per_second = models.DecimalField(
        max_digits=8, decimal_places=2, default=Decimal("10"), validators=[MinValueValidator(Decimal("0.01"))]
    )
    direction = models.CharField(max_length=10, choices=Direction.choices, default=Direction.BOTH)
    status_callbacks = models.BooleanField(default=True)
    help_text = models.CharField(
        max_length=320,
        blank=True,
        default="Reply STOP to unsubscribe. Msg & data rates may apply.",
        help_text="The answer to a HELP or INFO reply.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "providers_twiliosettings"  # created when the plugin was part of the providers app
        verbose_name = "Twilio settings"
        verbose_name_plural = "Twilio settings"
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="twilio_settings_singleton")]

    def __str__(self) -> str:
        return "Twilio settings"

    @classmethod
    def load(cls) -> TwilioSettings:
        obj, _ = cls.objects.get_or_create(id=cls.SINGLETON_ID)
        return obj

    @property
    def auth_token(self) -> str:
        return crypto.decrypt(self.auth_token_encrypted)

    @auth_token.setter
    def auth_token(self, value: str) -> None:
        self.auth_token_encrypted = crypto.encrypt(value)

    @property
    def api_key_secret(self) -> str:
        return crypto.decrypt(self.api_key_secret_encrypted)

    @api_key_secret.setter
    def api_key_secret(self, value: str) -> None:
        self.api_key_secret_encrypted = crypto.encrypt(value)


DEFAULT_RATES = {
    NumberType.LONG_CODE: Decimal("1"),
    NumberType.TOLL_FREE: Decimal("3"),
    NumberType.SHORT_CODE: Decimal("100"),
    NumberType.OTHER: Decimal("10"),
}


class SenderNumber(models.Model):
    """A number of the pool: E.164, a friendly name, its kind and its messages-per-second limit."""

    settings = models.ForeignKey(TwilioSettings, on_delete=models.CASCADE, related_name="numbers")
    phone_number = models.CharField(max_length=16, unique=True)
    friendly_name = models.CharField(max_length=64, blank=True)
    number_type = models.CharField(max_length=12, choices=NumberType.choices, default=NumberType.LONG_CODE)
    rate_per_second = models.DecimalField(
        max_digits=8, decimal_places=2, validators=[MinValueValidator(Decimal("0.01"))]
    )
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        db_table = "providers_sendernumber"
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.phone_number


class ContentType(models.TextChoices):
    """The nine Content API types a template may hold (a template has one or more)."""

    TEXT = "twilio/text", "Text"
    MEDIA = "twilio/media", "Media"
    QUICK_REPLY = "twilio/quick-reply", "Quick reply"
    CALL_TO_ACTION = "twilio/call-to-action", "Call to action"
    LIST_PICKER = "twilio/list-picker", "List picker"
    CARD = "twilio/card", "Card"
    WHATSAPP_CARD = "whatsapp/card", "WhatsApp card"
    WHATSAPP_AUTHENTICATION = "whatsapp/authentication", "WhatsApp authentication"
    CATALOG = "twilio/catalog", "Catalog"


class ContentTemplate(models.Model):
    """A Content Template of the account, as the last sync (``services.content_templates_sync``) read it.

    ``types`` is the Content API's object as Twilio returns it (``{"twilio/text": {"body": "Hi {{1}}"}}``);
    ``variables`` maps each variable to its sample value (``{"1": "Ann"}``). A template the account no longer has is
    kept, with ``removed_at`` set, so that a message using it says why it cannot be sent.
    """

    sid = models.CharField("Content SID", max_length=34, unique=True)
    friendly_name = models.CharField(max_length=256, blank=True)
    language = models.CharField(max_length=16, blank=True)
    types = models.JSONField(default=dict)
    variables = models.JSONField(default=dict)
    approval_status = models.CharField("WhatsApp approval", max_length=32, blank=True)
    approval_category = models.CharField(max_length=32, blank=True)
    rejection_reason = models.TextField(blank=True)
    date_updated = models.DateTimeField(null=True, blank=True)  # Twilio's
    synced_at = models.DateTimeField()
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["friendly_name", "sid"]

    def __str__(self) -> str:
        return self.friendly_name or self.sid

    @property
    def type_names(self) -> list[str]:
        return [str(name) for name in self.types]

    @property
    def body(self) -> str:
        """The text a recipient reads: the first type's body (a card's title when it has none)."""
        for content in self.types.values():
            if isinstance(content, dict):
                text = content.get("body") or content.get("title")
                if text:
                    return str(text)
        return ""

    @property
    def media_urls(self) -> list[str]:
        for content in self.types.values():
            if isinstance(content, dict) and isinstance(content.get("media"), list):
                return [str(url) for url in content["media"]]
        return []
