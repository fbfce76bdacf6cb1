"""Test settings: the real settings plus speed-ups that change no behaviour under test."""

import os
import tempfile

from smsapp.testing.xdist import worker_environ

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdef")
os.environ["SMSAPP_IGNORE_DOTENV"] = "1"
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
# Broker folders, cache and test database of this run, apart from a `make run` on the same checkout.
os.environ.setdefault("SMSAPP_VAR_DIR", tempfile.mkdtemp(prefix="smsapp-test-"))
# Under pytest-xdist, broker folders and a Redis database per process (smsapp/testing/xdist.py).
os.environ.update(worker_environ(os.environ))

from smsapp.settings import *  # noqa: F403
from smsapp.settings import DATABASES, VAR_DIR

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not :memory:, so that worker processes started by a test see the same database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
# Tests change Twilio settings and rows between (and inside) tests; read the configuration afresh each time. The cache
# itself is tested in tests/providers/test_config_cache.py.
SMS_CONFIG_CACHE_SECONDS = 0.0
SMS_CONFIG_VERSION_CHECK_SECONDS = 0.0  # the interval itself: tests/providers/test_config_cache.py
SMS_STATUS_RELAY = False  # the web process's relay thread has a connection of its own: tests/texts/test_status_relay.py
# `make run`'s local fake_twilio stands in only where a test asks for it.
TWILIO_USE_LOCAL_FAKE = False
# Status callbacks applied in the request, where no flusher runs (an in-process test has no worker); the buffer is
# switched back on by its own tests (tests/texts/test_status_buffer*.py) and runs as deployed in the real-worker ones.
SMS_STATUS_BUFFER = False
