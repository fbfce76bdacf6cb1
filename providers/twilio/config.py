"""The effective Twilio configuration: environment variables win over the plugin page.

The rest of the product reads it as the provider's ``config`` (``providers.base.ProviderConfig``: senders, status
callback URL, help text); the plugin page and the provider read the rest: credentials, whether inbound is on, and
where each value came from. Nothing reads the model but this module and the plugin page.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.core.signals import setting_changed
from django.db import DatabaseError, transaction
from django.dispatch import receiver

from ..base import MESSENGER, SMS, WHATSAPP, Sender, SenderConfig
from ..crypto import UndecryptableSecret
from .models import DEFAULT_RATES, Direction, NumberType, SenderType, TwilioSettings

logger = logging.getLogger(__name__)

CALLBACK_PATH = "/sms/twilio/callback"
# The number the local fake_twilio sends from when nothing is configured (Twilio's own magic test number).
LOCAL_FAKE_NUMBER = "+15005550006"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# A short code as Twilio writes it (Console, API, the From of its webhooks): five or six digits, no "+".
SHORT_CODE = re.compile(r"^\d{5,6}$")
# Countries where Twilio documents alphanumeric sender IDs as unsupported (the NANP countries and a few others):
# messages there need a number.
ALPHANUMERIC_UNSUPPORTED = frozenset(
    {"US", "CA", "PR", "VI", "GU", "AS", "MP", "UM", "BR", "CL", "CN", "CO", "CR", "EC", "GT", "NI", "SV", "UY"}
)


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
    # True while the local fake_twilio's development credentials stand in, because nothing is configured
    # (TWILIO_USE_LOCAL_FAKE, set by `make run`): the first credentials saved on the page replace them.
    local_fake: bool = False
    # The sender of each other channel (WhatsApp number, Messenger Sender ID); without one a Messaging Service serves.
    channel_senders: tuple[tuple[str, SenderConfig], ...] = ()

    def senders_for(self, channel: str) -> tuple[SenderConfig, ...]:
        """The senders of ``channel``: ``senders`` for SMS; the channel's own sender, else the Messaging Service."""
        if channel == SMS:
            return self.senders
        own = tuple(s for c, s in self.channel_senders if c == channel)
        if own:
            return own
        return tuple(s for s in self.senders if s.sender.kind == "messaging_service")

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
# keeps it (SMS_CONFIG_CACHE_SECONDS at most), and a save publishes a new version number in the shared cache (Redis,
# or the file cache every process of `make run` shares) once it commits: every process compares that one small key
# on each read and loads the configuration again as soon as it differs, so a save on one gunicorn worker is seen by
# the next request on any other. If the shared cache cannot be reached, the TTL alone bounds how stale a process is,
# and the cache is not asked again for a few seconds (a webhook must not wait on a broken Redis each time).
VERSION_KEY = "providers:twilio-config-version"
SHARED_CACHE_RETRY_SECONDS = 5.0
_UNREACHABLE = object()
_cache: tuple[float, object, TwilioConfig] | None = None
_shared_down_until = 0.0


_version_seen: tuple[float, object] | None = None


def _shared_version() -> object:
    """The shared version number, asked at most every SMS_CONFIG_VERSION_CHECK_SECONDS per process: a webhook reads
    the configuration on every request, and a round trip to Redis each time was a fifth of a status callback's cost
    (bench/webhooks.py). A save elsewhere is seen within that interval."""
    global _shared_down_until, _version_seen
    now = time.monotonic()
    interval = float(getattr(settings, "SMS_CONFIG_VERSION_CHECK_SECONDS", 0.25))
    if interval > 0 and _version_seen is not None and now - _version_seen[0] < interval:
        return _version_seen[1]
    if now < _shared_down_until:
        return _UNREACHABLE
    try:
        version = cache.get(VERSION_KEY)
        _version_seen = (now, version)
        return version
    except Exception:  # any backend error (Redis down, a full disk): the TTL still bounds staleness
        logger.warning(
            "Twilio configuration: the shared cache is unreachable; each process keeps its copy up to "
            "SMS_CONFIG_CACHE_SECONDS",
            exc_info=True,
        )
        _shared_down_until = now + SHARED_CACHE_RETRY_SECONDS
        return _UNREACHABLE


def _publish_version() -> None:
    """Tell every process that the configuration changed (called once the change is committed)."""
    try:
        cache.set(VERSION_KEY, uuid.uuid4().hex, timeout=None)
    except Exception:
        logger.warning(
            "Twilio configuration saved, but the shared cache is unreachable: other processes see the "
            "change within SMS_CONFIG_CACHE_SECONDS",
            exc_info=True,
        )


# The settings the configuration is made of. They change only under override_settings (tests); Django announces that
# with ``setting_changed``, so the cache is forgotten then instead of comparing them on every read (a sixth of a
# status callback's own work).
CONFIG_SETTINGS = frozenset(
    {
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_API_KEY_SID",
        "TWILIO_API_KEY_SECRET",
        "TWILIO_FROM",
        "TWILIO_MESSAGING_SERVICE_SID",
        "TWILIO_WHATSAPP_FROM",
        "TWILIO_MESSENGER_FROM",
        "TWILIO_API_BASE_URL",
        "TWILIO_TIMEOUT_SECONDS",
        "PUBLIC_BASE_URL",
        "SMS_CONFIG_CACHE_SECONDS",
        "SMS_CONFIG_VERSION_CHECK_SECONDS",
    }
)


@receiver(setting_changed)
def _setting_changed(*, setting: str, **kwargs: object) -> None:
    if setting in CONFIG_SETTINGS:
        _forget()


def _forget() -> None:
    global _cache, _version_seen
    _cache = None
    _version_seen = None


def config_changed(**kwargs: object) -> None:
    """Forget the cached configuration here at once, and everywhere once the change commits (connected to saves
    of the plugin's models). Publishing before the commit would let another process load the old rows under the
    new version and keep them."""
    _forget()

    def after_commit() -> None:
        _forget()
        _publish_version()

    transaction.on_commit(after_commit)


def get_config() -> TwilioConfig:
    """The configuration in effect now: one small read of the shared cache when nothing changed (no query), one
    query when it did or after SMS_CONFIG_CACHE_SECONDS."""
    global _cache
    ttl = float(getattr(settings, "SMS_CONFIG_CACHE_SECONDS", 5.0))
    now = time.monotonic()
    cached = _cache
    version = _shared_version() if ttl > 0 else None
    fresh = ttl > 0 and cached is not None and now - cached[0] < ttl
    if fresh and cached is not None and (version is _UNREACHABLE or version == cached[1]):
        return cached[2]
    config = _load_config()
    _cache = (now, version, config)
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
        # The pool's numbers follow as fallbacks: where alphanumeric IDs are not allowed (the US, Canada…),
        # choose_sender picks one of them instead of sending nothing.
        senders = [SenderConfig(Sender("alphanumeric", alphanumeric), other_rate), *_pool(row)]
    elif sender_type == SenderType.NUMBERS and not senders:
        senders = _pool(row)
    channel_senders: list[tuple[str, SenderConfig]] = []
    for channel, env_name, stored, kind, label in (
        (WHATSAPP, "TWILIO_WHATSAPP_FROM", row.whatsapp_from if row else "", "number", "WhatsApp sender"),
        (MESSENGER, "TWILIO_MESSENGER_FROM", row.messenger_from if row else "", "page", "Messenger Sender ID"),
    ):
        value = pick(env_name, stored).strip()
        if value:
            channel_senders.append((channel, SenderConfig(Sender(kind, value), other_rate, label)))
    has_env_credentials = bool(settings.TWILIO_ACCOUNT_SID)
    enabled = row.enabled if row is not None else has_env_credentials
    api_base_url = settings.TWILIO_API_BASE_URL
    local_fake = bool(getattr(settings, "TWILIO_USE_LOCAL_FAKE", False)) and not (
        account_sid or auth_token or api_key_sid or api_key_secret
    )
    if local_fake:
        # `make run` with nothing configured: the local fake_twilio and its development credentials, until an
        # admin saves real ones on the page (then this branch no longer applies and the page's values are used).
        from .fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN

        account_sid, auth_token = DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
        api_base_url = api_base_url or local_fake_url()
        if not senders:
            sender_type = SenderType.NUMBERS
            senders = [SenderConfig(Sender("number", LOCAL_FAKE_NUMBER), 1.0, "fake_twilio test number", "long_code")]
        enabled = row.enabled if row is not None else True
    return TwilioConfig(
        # With no page saved yet, credentials in the environment mean "on" (make run works offline at once).
        enabled=enabled,
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
        api_base_url=api_base_url,
        timeout=float(settings.TWILIO_TIMEOUT_SECONDS),
        from_env=frozenset(from_env),
        problems=tuple(problems),
        local_fake=local_fake,
        channel_senders=tuple(channel_senders),
    )


def _pool(row: TwilioSettings | None) -> list[SenderConfig]:
    if row is None:
        return []
    return [
        SenderConfig(Sender("number", n.phone_number), float(n.rate_per_second), n.friendly_name, n.number_type)
        for n in row.numbers.all()
    ]


def local_fake_url() -> str:
    """Where `make run` starts fake_twilio (FAKE_TWILIO_PORT, 8001 by default)."""
    return f"http://127.0.0.1:{int(getattr(settings, 'FAKE_TWILIO_PORT', 8001))}"
