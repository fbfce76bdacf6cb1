"""The environment of real workers that send through a ``fake_twilio`` (here rather than in providers/twilio/testing.py:
a plugin does not import the test tooling of the shell, tests/test_layout.py)."""

from __future__ import annotations

from typing import Any

from providers.twilio.testing import OUR_NUMBER
from smsapp.testing import procs
from smsapp.testing.services import free_port


def worker_env(fake: Any, *, sender: str = OUR_NUMBER, public_url: str = "", **extra: str) -> dict[str, str]:
    """The environment of a real worker (or beat, or a command) that sends through ``fake`` from ``sender``:
    ``procs.child_env`` (this test's database and broker) with the Twilio plugin pointed at the fake server.

    ``public_url``: where status callbacks go; by default a free port where nothing listens (the test is not about
    them). ``extra``: more variables (``SMS_QUIET_HOURS_START``, ...), which win."""
    return procs.child_env(
        SMS_PROVIDER="twilio",
        TWILIO_ACCOUNT_SID=fake.account_sid,
        TWILIO_AUTH_TOKEN=fake.auth_token,
        TWILIO_API_BASE_URL=fake.base_url,
        TWILIO_FROM=sender,
        TWILIO_MESSAGING_SERVICE_SID="",
        PUBLIC_BASE_URL=public_url or f"http://127.0.0.1:{free_port()}",
        **extra,
    )
