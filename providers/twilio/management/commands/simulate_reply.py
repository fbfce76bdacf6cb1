"""``manage.py simulate_reply --from +14155550123 --body STOP``: a contact's reply, posted through fake_twilio.

The local fake_twilio (``make run`` starts it) signs the inbound webhook with its auth token and posts it to the
app's callback exactly as Twilio would, through its ``POST /_control/inbound``: the reply decision, STOP and HELP
can be seen working locally. It needs the app to be using fake_twilio's credentials (``make run`` with nothing
saved on the plugin page), else the callback refuses the signature (403), as it would refuse a forged one.
"""

from __future__ import annotations

import urllib.error
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from providers.twilio.config import CALLBACK_PATH, LOCAL_FAKE_NUMBER, get_config, local_fake_url
from providers.twilio.fake_twilio import FakeTwilioClient


class Command(BaseCommand):
    help = "Post a signed inbound reply to this app's Twilio callback through the local fake_twilio."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="from_", required=True, help="the contact's number, E.164 (+14155550123)")
        parser.add_argument("--body", default="STOP", help="the reply's text (default: STOP)")
        parser.add_argument("--to", default="", help="our number it replies to (default: the first sender)")
        parser.add_argument(
            "--fake-twilio", default="", help="fake_twilio's URL (default: http://127.0.0.1:FAKE_TWILIO_PORT)"
        )
        parser.add_argument("--url", default="", help="the callback to post to (default: PUBLIC_BASE_URL + path)")

    def handle(self, *args: Any, **options: Any) -> None:
        config = get_config()
        numbers = [s.sender.value for s in config.senders if s.sender.kind == "number"]
        to = options["to"] or (numbers[0] if numbers else LOCAL_FAKE_NUMBER)
        url = options["url"] or settings.PUBLIC_BASE_URL + CALLBACK_PATH
        base = options["fake_twilio"] or local_fake_url()
        client = FakeTwilioClient(base, account_sid=config.account_sid, auth_token="")
        try:
            record = client.send_inbound(options["from_"], to, options["body"], url=url)
        except (urllib.error.URLError, OSError) as exc:
            raise CommandError(f"fake_twilio is not answering at {base} ({exc}): is `make run` running?") from None
        status = record.get("status")
        self.stdout.write(f"{options['from_']} → {to}: “{options['body']}” posted to {url}: HTTP {status}")
        if status == 403:
            raise CommandError(
                "The callback refused fake_twilio's signature: the app is not using fake_twilio's credentials "
                "(credentials are saved on the plugin page or in the environment)."
            )
        if status != 200:
            raise CommandError(f"The callback answered {status}: {str(record.get('response', ''))[:500]}")
        self.stdout.write(f"Answer: {record.get('response', '')}")
