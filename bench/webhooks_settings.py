"""Settings for bench/webhooks.py only: the app's settings with a URLconf that adds a trivial baseline view."""

from smsapp.settings import *  # noqa: F403

ROOT_URLCONF = "bench.webhooks_urls"
