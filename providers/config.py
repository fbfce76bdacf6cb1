"""The effective Twilio configuration: environment variables win over the plugin page.

Other apps read ``get_config()`` (a frozen dataclass) and never the model: it says which sender to use, at which
rate, whether inbound is on, and where each value came from.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError

from .base import Sender
from .crypto import UndecryptableSecret
from .models import DEFAULT_RATES, Direction, NumberType, SenderType, TwilioSettings

CALLBACK_PATH = "/sms/twilio/callback"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# A short code as Twilio writes it (Console, API, the From of its webhooks): five or six digits, no "+".
SHORT_CODE = re.compile(r"^\d{5,6}$")


@dataclass(frozen=True)
class SenderConfig:
    """One sender and its limit in messages (segments) per second."""

    sender: Sender
    rate_per_second: float
    friendly_name: str = ""
    number_type: str = ""

    @property
    def key(self) -> str:
        """The rate limiter's key for this sender."""
        return f"{self.sender.kind}:{self.sender.value}"


@dataclass(frozen=True)
class TwilioConfig:
    enabled: bool
    account_sid: str
    auth_token: str = field(repr=False)
    api_key_sid: str
    api_key_secret: str = field(repr=False)
    sender_type: str
    senders: tuple[SenderConfig, ...]
    messaging_service_sid: str
    alphanumeric_sender_id: str
    direction: str
    status_callbacks: bool
    help_text: str
    api_base_url: str
    timeout: float
    from_env: frozenset[str] = frozenset()  # names of the values that the environment set
    problems: tuple[str, ...] = ()  # e.g. a stored secret that cannot be decrypted

    @property
    def has_credentials(self) -> bool:
        return bool(self.account_sid and (self.auth_token or (self.api_key_sid and self.api_key_secret)))

    @property
    def inbound_enabled(self) -> bool:
        return self.direction == Direction.BOTH

    @property
    def callback_url(self) -> str:
        return public_callback_url()

    @property
    def status_callback_url(self) -> str | None:
        return self.callback_url if self.status_callbacks else None

    @property
    def default_sender(self) -> SenderConfig | None:
        return self.senders[0] if self.senders else None

    def sender_for(self, value: str) -> SenderConfig | None:
        return next((s for s in self.senders if s.sender.value == value), None)


def public_callback_url() -> str:
    """The Incoming callback URL to paste into Twilio (also the StatusCallback sent with each message)."""
    return settings.PUBLIC_BASE_URL + CALLBACK_PATH


def default_rate(number: str, number_type: str) -> Decimal:
    """Twilio's documented default throughput: 1/s for a US/CA long code, 3 toll-free, 100 short code, 10 other."""
    if number_type == NumberType.LONG_CODE and not number.startswith("+1"):
        return DEFAULT_RATES[NumberType.OTHER]
    return DEFAULT_RATES.get(NumberType(number_type), DEFAULT_RATES[NumberType.OTHER])


def _stored() -> TwilioSettings | None:
    try:
        return TwilioSettings.objects.prefetch_related("numbers").filter(id=TwilioSettings.SINGLETON_ID).first()
    except DatabaseError:
        # Before migrations (e.g. `manage.py check` on a fresh database): the environment alone.
        return None


def _sender_from_env(value: str, rate: Decimal | None) -> tuple[str, SenderConfig]:
    if E164.match(value) or SHORT_CODE.match(value):
        kind = NumberType.LONG_CODE if len(value) > 8 else NumberType.SHORT_CODE
        return SenderType.NUMBERS, SenderConfig(
            Sender("number", value), float(rate or default_rate(value, kind)), "TWILIO_FROM", kind
        )
    return SenderType.ALPHANUMERIC, SenderConfig(Sender("alphanumeric", value), float(rate or 10), "TWILIO_FROM")


# The configuration is read on every send and every webhook; it changes when an admin saves the page. Each process
# keeps it for a few seconds: a save in this process clears it at once (signals below), other processes see it
# within SMS_CONFIG_CACHE_SECONDS.
_cache: tuple[float, tuple[object, ...], TwilioConfig] | None = None


def _settings_key() -> tuple[object, ...]:
    return tuple(
        getattr(settings, name, "")
        for name in (
            "TWILIO_ACCOUNT_SID",
            "TWILIO_AUTH_TOKEN",
            "TWILIO_API_KEY_SID",
            "TWILIO_API_KEY_SECRET",
            "TWILIO_FROM",
            "TWILIO_MESSAGING_SERVICE_SID",
            "TWILIO_API_BASE_URL",
            "TWILIO_TIMEOUT_SECONDS",
            "PUBLIC_BASE_URL",
        )
    )


def config_changed(**kwargs: object) -> None:
    """Forget the cached configuration (connected to saves of the plugin's models)."""
    global _cache
    _cache = None


def get_config() -> TwilioConfig:
    """The configuration in effect now (one query, or none within SMS_CONFIG_CACHE_SECONDS of the last)."""
    global _cache
    ttl = float(getattr(settings, "SMS_CONFIG_CACHE_SECONDS", 5.0))
    key = _settings_key()
    now = time.monotonic()
    cached = _cache
    if ttl > 0 and cached is not None and cached[1] == key and now - cached[0] < ttl:
        return cached[2]
    config = _load_config()
    _cache = (now, key, config)
    return config


def _load_config() -> TwilioConfig:
    row = _stored()
    from_env: set[str] = set()
    problems: list[str] = []

    def pick(env_name: str, stored: str) -> str:
        value = getattr(settings, env_name, "") or ""
        if value:
            from_env.add(env_name)
            return str(value)
        return stored

    def secret(attr: str) -> str:
        if row is None:
            return ""
        try:
            return str(getattr(row, attr))
        except UndecryptableSecret as exc:
            problems.append(str(exc))
            return ""

    account_sid = pick("TWILIO_ACCOUNT_SID", row.account_sid if row else "")
    auth_token = pick("TWILIO_AUTH_TOKEN", secret("auth_token"))
    api_key_sid = pick("TWILIO_API_KEY_SID", row.api_key_sid if row else "")
    api_key_secret = pick("TWILIO_API_KEY_SECRET", secret("api_key_secret"))

    sender_type = row.sender_type if row else SenderType.NUMBERS
    messaging_service_sid = row.messaging_service_sid if row else ""
    alphanumeric = row.alphanumeric_sender_id if row else ""
    other_rate = float(row.sender_rate_per_second) if row else 10.0
    senders: list[SenderConfig] = []
    if settings.TWILIO_MESSAGING_SERVICE_SID:
        from_env.add("TWILIO_MESSAGING_SERVICE_SID")
        sender_type, messaging_service_sid = SenderType.MESSAGING_SERVICE, settings.TWILIO_MESSAGING_SERVICE_SID
    elif settings.TWILIO_FROM:
        from_env.add("TWILIO_FROM")
        stored_numbers = {n.phone_number: n for n in row.numbers.all()} if row else {}
        for value in (v.strip() for v in settings.TWILIO_FROM.split(",")):
            if value:
                number = stored_numbers.get(value)
                sender_type, config = _sender_from_env(value, number.rate_per_second if number else None)
                senders.append(config)
        if sender_type == SenderType.ALPHANUMERIC:
            alphanumeric = senders[0].sender.value
    if sender_type == SenderType.MESSAGING_SERVICE and messaging_service_sid:
        senders = [SenderConfig(Sender("messaging_service", messaging_service_sid), other_rate)]
    elif sender_type == SenderType.ALPHANUMERIC and alphanumeric and not senders:
        senders = [SenderConfig(Sender("alphanumeric", alphanumeric), other_rate)]
    elif sender_type == SenderType.NUMBERS and not senders and row is not None:
        senders = [
            SenderConfig(Sender("number", n.phone_number), float(n.rate_per_second), n.friendly_name, n.number_type)
            for n in row.numbers.all()
        ]
    has_env_credentials = bool(settings.TWILIO_ACCOUNT_SID)
    return TwilioConfig(
        # With no page saved yet, credentials in the environment mean "on" (make run works offline at once).
        enabled=row.enabled if row is not None else has_env_credentials,
        account_sid=account_sid,
        auth_token=auth_token,
        api_key_sid=api_key_sid,
        api_key_secret=api_key_secret,
        sender_type=str(sender_type),
        senders=tuple(senders),
        messaging_service_sid=messaging_service_sid,
        alphanumeric_sender_id=alphanumeric,
        direction=row.direction if row else Direction.BOTH,
        status_callbacks=row.status_callbacks if row else True,
        help_text=row.help_text if row else TwilioSettings._meta.get_field("help_text").get_default(),
        api_base_url=settings.TWILIO_API_BASE_URL,
        timeout=float(settings.TWILIO_TIMEOUT_SECONDS),
        from_env=frozenset(from_env),
        problems=tuple(problems),
    )
