"""Write a ``.env`` for local development when there is none (used by ``make run``; idempotent).

No Twilio credentials go into it: with ``TWILIO_USE_LOCAL_FAKE`` on, the app uses the local fake_twilio's
development credentials only while nothing is configured, so what an admin saves on the plugin page takes effect
(environment variables would win over the page). A ``.env`` written by an older ``make run`` loses those lines.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

TEMPLATE = """# Local development settings written by `make run`. Not committed (see .gitignore).
DEBUG=true
SECRET_KEY={secret_key}
SMSAPP_ENCRYPTION_KEY={encryption_key}
{local_fake}"""

# Ports: WEB_PORT (8000) and FAKE_TWILIO_PORT (8001) may be set here or in the environment; PUBLIC_BASE_URL follows
# WEB_PORT unless it is set.
LOCAL_FAKE = """# Twilio: until credentials are saved on Settings > Plugins > Twilio, send through the local
# fake_twilio that `make run` starts (on FAKE_TWILIO_PORT, 8001 by default). Nothing real is sent.
TWILIO_USE_LOCAL_FAKE=true
"""

# What an older `make run` wrote: these won over the plugin page, so the page's values never took effect.
OLD_FAKE_HEADER = "# Twilio: the local fake_twilio (make run starts it)."
OLD_FAKE_NAMES = ("TWILIO_API_BASE_URL=", "TWILIO_ACCOUNT_SID=", "TWILIO_AUTH_TOKEN=", "TWILIO_FROM=")


def _without_old_fake_block(text: str) -> str | None:
    """``text`` with the old fake_twilio block replaced by ``LOCAL_FAKE``; None when it has no such block."""
    from providers.twilio.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN

    lines = text.splitlines(keepends=True)
    if not any(line.startswith(OLD_FAKE_HEADER) for line in lines):
        return None
    fake_values = {f"TWILIO_ACCOUNT_SID={DEFAULT_ACCOUNT_SID}", f"TWILIO_AUTH_TOKEN={DEFAULT_AUTH_TOKEN}"}
    kept = []
    for line in lines:
        if line.startswith(OLD_FAKE_HEADER):
            continue
        stripped = line.strip()
        # Only the development values go; a real credential someone typed there stays where they put it.
        is_fake = stripped in fake_values or stripped in {
            "TWILIO_API_BASE_URL=http://127.0.0.1:8001",
            "TWILIO_FROM=+15005550006",
        }
        if stripped.startswith(OLD_FAKE_NAMES) and is_fake:
            continue
        kept.append(line)
    body = "".join(kept)
    if "TWILIO_USE_LOCAL_FAKE" not in body:
        body = body.rstrip("\n") + "\n" + LOCAL_FAKE
    return body


class Command(BaseCommand):
    help = "Write .env with a random SECRET_KEY for local development, unless it exists."

    def handle(self, *args: Any, **options: Any) -> None:
        path = settings.BASE_DIR / ".env"
        if path.exists():
            updated = _without_old_fake_block(path.read_text())
            if updated is None:
                self.stdout.write(".env exists; leaving it as it is.")
                return
            path.write_text(updated)
            self.stdout.write(
                self.style.WARNING(
                    "Removed the local fake_twilio credentials from .env: they overrode Settings > Plugins > Twilio. "
                    "The local server is still used until you save credentials there."
                )
            )
            return
        text = TEMPLATE.format(
            secret_key=secrets.token_urlsafe(50),
            encryption_key=secrets.token_urlsafe(32),
            local_fake="" if settings.TWILIO_ACCOUNT_SID else LOCAL_FAKE,
        )
        path.write_text(text)
        path.chmod(0o600)
        self.stdout.write(self.style.SUCCESS("Wrote .env for local development."))
