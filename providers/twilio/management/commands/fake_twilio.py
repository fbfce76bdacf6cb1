"""``python manage.py fake_twilio --port 8001``: the local Twilio-compatible server (see providers.fake_twilio)."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from providers.twilio.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilio


def _pairs(values: list[str]) -> dict[str, str]:
    """``SK…:secret`` pairs from the command line."""
    out = {}
    for value in values:
        key, _, secret = value.partition(":")
        out[key] = secret
    return out


class Command(BaseCommand):
    help = "Run a Twilio-compatible HTTP server on 127.0.0.1 for development and tests."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8001)
        parser.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
        parser.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN)
        parser.add_argument("--api-key", action="append", default=[], metavar="SK…:SECRET", help="an API key pair")
        parser.add_argument("--inbound-url", default="", help="where /_control/inbound posts replies by default")
        parser.add_argument("--fail-429-rate", type=float, default=0.0, help="share of API requests answered 429")
        parser.add_argument("--fail-500-rate", type=float, default=0.0, help="share of API requests answered 500")
        parser.add_argument("--latency-ms", type=float, default=0.0)
        parser.add_argument("--callback-delay-ms", type=float, default=20.0)
        parser.add_argument("--stopped", action="append", default=[], help="a number that texted STOP (21610)")
        parser.add_argument("--landline", action="append", default=[], help="a landline number (21614)")
        parser.add_argument("--undeliverable", action="append", default=[], help="NUMBER[:ERRORCODE], ends undelivered")
        parser.add_argument("--failing", action="append", default=[], help="NUMBER[:ERRORCODE], ends failed")

    def handle(self, *args: Any, **options: Any) -> None:
        fake = FakeTwilio(
            port=options["port"],
            account_sid=options["account_sid"],
            auth_token=options["auth_token"],
            api_keys=_pairs(options["api_key"]),
            inbound_url=options["inbound_url"],
            fail_429_rate=options["fail_429_rate"],
            fail_500_rate=options["fail_500_rate"],
            latency_ms=options["latency_ms"],
            callback_delay_ms=options["callback_delay_ms"],
            stopped=options["stopped"],
            landlines=options["landline"],
            undeliverable={k: v or 0 for k, v in _pairs(options["undeliverable"]).items()},
            failing={k: v or 0 for k, v in _pairs(options["failing"]).items()},
        )

        def _stop(signum: int, frame: FrameType | None) -> None:
            fake.request_stop()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        fake.start()
        # The account SID is not a secret; the token is never printed.
        self.stdout.write(f"fake_twilio listening on {fake.base_url} (account {fake.account_sid})", ending="\n")
        self.stdout.flush()
        fake.wait()
