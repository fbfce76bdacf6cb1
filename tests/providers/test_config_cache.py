"""Each process keeps the plugin configuration a few seconds; a save clears it at once."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from providers.twilio.config import config_changed, get_config
from providers.twilio.models import TwilioSettings

pytestmark = pytest.mark.django_db


@pytest.fixture
def cached(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.SMS_CONFIG_CACHE_SECONDS = 60.0
    monkeypatch.setattr("providers.twilio.config._shared_down_until", 0.0)  # restored after: no test inherits an outage
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


def test_a_save_publishes_a_new_version_only_once_committed(
    cached: None, django_capture_on_commit_callbacks: Any
) -> None:
    from django.core.cache import cache

    from providers.twilio.config import VERSION_KEY

    before = cache.get(VERSION_KEY)
    with django_capture_on_commit_callbacks(execute=True):
        TwilioSettings.objects.create(id=TwilioSettings.SINGLETON_ID, help_text="v2")
        assert cache.get(VERSION_KEY) == before  # not yet: another process could cache the old rows as new
    assert cache.get(VERSION_KEY) != before


def test_a_new_version_in_the_shared_cache_is_seen_within_the_ttl(cached: None) -> None:
    from providers.twilio.config import _publish_version

    assert get_config().help_text != "Changed elsewhere."
    # Another process saved: its rows are in the database and it published a version; this process's copy is fresh.
    TwilioSettings.objects.bulk_create([TwilioSettings(id=TwilioSettings.SINGLETON_ID, help_text="Changed elsewhere.")])
    assert get_config().help_text != "Changed elsewhere."  # bulk_create sends no signal: still the cached copy
    _publish_version()
    assert get_config().help_text == "Changed elsewhere."


def test_an_unreachable_shared_cache_falls_back_to_the_ttl(cached: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from django.core.cache import cache

    calls = []

    def down(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        raise ConnectionError("shared cache down")

    get_config()
    monkeypatch.setattr(cache, "get", down)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(20):
            get_config()
    assert len(queries) == 0
    assert len(calls) == 1  # asked once, then left alone for a few seconds: a webhook never waits on it each time


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_save_in_another_process_is_seen_at_once(cached: None) -> None:
    # Found under gunicorn: a Save on one worker showed the old state on the others for up to 5 s.
    import subprocess
    import sys

    from smsapp.testing import procs

    assert get_config().help_text != "Saved by another process."
    code = (
        "import django; django.setup(); from django.db import transaction; "
        "from providers.twilio.services import twilio_settings_save; "
        "twilio_settings_save(data={'help_text': 'Saved by another process.'}, numbers=[])"
    )
    subprocess.run([sys.executable, "-c", code], env=procs.child_env(), cwd=procs.BASE_DIR, check=True, timeout=120)
    assert get_config().help_text == "Saved by another process."


def test_the_shared_version_is_asked_at_most_once_per_interval(cached: None, settings: Any) -> None:
    """A webhook reads the configuration on every request: one Redis round trip each time was a fifth of a status
    callback's cost. The version is asked once per SMS_CONFIG_VERSION_CHECK_SECONDS, and a save elsewhere is seen
    once that has passed."""
    import time

    from django.core.cache import cache

    from providers.twilio.config import VERSION_KEY, _publish_version

    settings.SMS_CONFIG_VERSION_CHECK_SECONDS = 0.3
    get_config()
    asked: list[str] = []
    real_get = cache.get

    def counting(key: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(key)
        return real_get(key, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cache, "get", counting)
        for _ in range(20):
            get_config()
        assert asked.count(VERSION_KEY) <= 1
        TwilioSettings.objects.bulk_create([TwilioSettings(id=TwilioSettings.SINGLETON_ID, help_text="Elsewhere.")])
        _publish_version()
        time.sleep(0.35)
        assert get_config().help_text == "Elsewhere."
