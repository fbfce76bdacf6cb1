"""Fixtures shared by the whole suite: personas, real-service markers, real processes and the browser.

Markers (see pyproject.toml): ``postgres`` and ``redis`` need those servers (``make test`` starts throwaway ones),
``browser`` needs Debian's Chromium, ``embedded`` runs in the second pass on SQLite with the filesystem broker.
Outside CI a missing server skips those tests; with ``CI`` set, a skip of that kind is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client

from providers.twilio.testing import fake_twilio, fake_twilio_credentials, twilio_settings  # noqa: F401
from smsapp.testing import procs

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
CHROMIUM = os.environ.get("SMSAPP_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "correct-horse-battery-staple"


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI requires it: a skip here would hide an untested path)", pytrace=False)
    pytest.skip(reason)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        _missing("needs PostgreSQL (DATABASE_URL=postgres://...)")
    if item.get_closest_marker("redis") and not settings.REDIS_URL:
        _missing("needs Redis (REDIS_URL)")
    if item.get_closest_marker("browser") and not shutil.which(CHROMIUM):
        _missing(f"needs Chromium at {CHROMIUM}")


# Personas


@pytest.fixture
def admin_user(db: None) -> User:
    return User.objects.create_user("ada", "ada@example.com", PASSWORD, is_staff=True)


@pytest.fixture
def marketer_user(db: None) -> User:
    return User.objects.create_user("mark", "mark@example.com", PASSWORD)


@pytest.fixture
def outsider(db: None) -> User:
    """A user whose account was deactivated: logs in nowhere."""
    return User.objects.create_user("olga", "olga@example.com", PASSWORD, is_active=False)


@pytest.fixture
def admin_client(admin_user: User) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def marketer_client(marketer_user: User) -> Client:
    client = Client()
    client.force_login(marketer_user)
    return client


# Real processes (need a transactional database: the child sees only committed rows)


@pytest.fixture
def celery_worker(transactional_db: None) -> Iterator[procs.Proc]:
    worker = procs.start_worker()
    yield worker
    worker.stop()


# Browser


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not shutil.which(CHROMIUM):
        _missing(f"needs Chromium at {CHROMIUM}")
    # Playwright's sync API runs an event loop in this thread; Django's ORM then refuses to run unless told that
    # this is intended (the live server runs in its own thread).
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
                "--disable-quic",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(15_000)
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture
def login(page: Any, live_server: Any) -> Any:
    """Log a persona in through the real login form: ``login(user)`` returns the page on the dashboard."""

    def _login(user: User) -> Any:
        page.goto(f"{live_server.url}/login/")
        page.get_by_label("Username").fill(user.get_username())
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{live_server.url}/")
        return page

    return _login


# Twilio: the local Twilio-compatible server (providers.twilio.fake_twilio) in another process; the in-process one
# and twilio_settings are the plugin's own fixtures (providers.twilio.testing, imported above).


@pytest.fixture
def fake_twilio_process() -> Iterator[Any]:
    """``fake_twilio`` as a child process (``manage.py fake_twilio``), for tests that kill workers or the server:
    a ``FakeTwilioClient`` with the same methods, plus ``.proc`` (the ``procs.Proc``)."""
    import sys

    from providers.twilio.fake_twilio import FakeTwilioClient
    from smsapp.testing.services import free_port

    credentials = fake_twilio_credentials()
    port = free_port()
    args = [
        sys.executable,
        str(procs.BASE_DIR / "manage.py"),
        "fake_twilio",
        "--port",
        str(port),
        "--account-sid",
        credentials["account_sid"],
        "--auth-token",
        credentials["auth_token"],
        "--callback-delay-ms",
        "5",
    ]
    proc = procs.Proc("fake_twilio", args, procs.child_env(DEBUG="true"))
    proc.wait_for_output("fake_twilio listening on", timeout=60)
    client = FakeTwilioClient(f"http://127.0.0.1:{port}", **credentials)
    client.proc = proc  # type: ignore[attr-defined]
    yield client
    proc.stop()
