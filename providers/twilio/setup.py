"""The dashboard's first step while Twilio is the provider that sends: connect it and enable text messages."""

from __future__ import annotations

from django.urls import reverse

from ..registry import SetupStep
from .config import get_config


def setup_step() -> SetupStep:
    """The same configuration the plugin page's badge shows, so the two never disagree; the local test server of
    `make run` is not a connection to Twilio."""
    config = get_config()
    connected = config.enabled and config.has_credentials and not config.local_fake
    label = "Connect Twilio and enable text messages"
    if config.local_fake:
        label += " (until then they go to the local test server)"
    elif config.has_credentials and not config.enabled:
        label += " (connected, but text messages are disabled)"
    return SetupStep(label, connected, reverse("twilio:settings"))
