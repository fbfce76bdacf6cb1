"""``get_provider()``: the transport chosen by ``settings.SMS_PROVIDER`` ("twilio" or "console"), or a dotted path to a
class taking no arguments, like Django's email backends."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .base import Provider
from .config import TwilioConfig, get_config

_cached: tuple[TwilioConfig, Provider] | None = None


def _close_later(provider: object) -> None:
    """Close a replaced provider's asynchronous connections on the loop that opened them (if it opened any)."""
    aclose = getattr(provider, "aclose", None)
    if aclose is not None and getattr(provider, "_async_client", None) is not None:
        from . import aio

        aio.submit(aclose())


def get_provider() -> Provider:
    """The provider for the configuration in effect now.

    The Twilio provider is reused while the configuration is unchanged, so a worker keeps its pooled HTTP
    connection across thousands of sends.
    """
    global _cached
    name = settings.SMS_PROVIDER
    if name == "console":
        from .console import ConsoleProvider

        return ConsoleProvider()
    if name == "twilio":
        from .twilio import TwilioProvider

        config = get_config()
        if _cached is None or _cached[0] != config:
            old, _cached = _cached, (config, TwilioProvider(config))
            if old is not None:
                _close_later(old[1])
        return _cached[1]
    try:
        provider: Provider = import_string(name)()
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"SMS_PROVIDER={name!r} is neither 'twilio', 'console' nor an importable class."
        ) from exc
    return provider
