"""Each process keeps the plugin configuration a few seconds; a save clears it at once."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from providers.config import config_changed, get_config
from providers.models import TwilioSettings

pytestmark = pytest.mark.django_db


@pytest.fixture
def cached(settings: Any) -> None:
    settings.SMS_CONFIG_CACHE_SECONDS = 60.0
    config_changed()


def test_the_configuration_is_read_once_within_the_ttl(cached: None) -> None:
    get_config()
    with CaptureQueriesContext(connection) as queries:
        for _ in range(5):
            get_config()
    assert len(queries) == 0


def test_saving_the_plugin_clears_the_cache(cached: None) -> None:
    assert get_config().help_text != "Text HELP for help."
    row = TwilioSettings.objects.create(id=TwilioSettings.SINGLETON_ID, help_text="Text HELP for help.")
    assert get_config().help_text == "Text HELP for help."
    row.delete()
    assert get_config().help_text != "Text HELP for help."


def test_a_changed_environment_setting_is_seen_at_once(cached: None, settings: Any) -> None:
    settings.TWILIO_ACCOUNT_SID = "AC" + "1" * 32
    assert get_config().account_sid == "AC" + "1" * 32
    settings.TWILIO_ACCOUNT_SID = "AC" + "2" * 32
    assert get_config().account_sid == "AC" + "2" * 32


def test_with_no_ttl_every_call_reads_the_database(settings: Any) -> None:
    settings.SMS_CONFIG_CACHE_SECONDS = 0.0
    with CaptureQueriesContext(connection) as queries:
        get_config()
        get_config()
    assert len(queries) >= 2
