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
