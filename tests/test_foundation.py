"""The app shell: login, roles, users, /healthz, production safety and the embedded worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client

from smsapp.celery import app as celery_app
from smsapp.core.tasks import HEARTBEAT_KEY, heartbeat
from smsapp.testing import procs
from smsapp.testing.services import free_port

pytestmark = pytest.mark.django_db

PAGES = ["/", "/settings/", "/settings/users/"]


@pytest.mark.parametrize("url", PAGES)
def test_every_page_sends_anonymous_users_to_login(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_login_page_is_public_and_logs_in(client: Client, marketer_user: User) -> None:
    assert client.get("/login/").status_code == 200
    response = client.post("/login/", {"username": "mark", "password": "correct-horse-battery-staple"})
    assert response.status_code == 302
    assert response["Location"] == "/"
    page = client.get("/")
    assert page.status_code == 200
    assert b"Dashboard" in page.content
    assert b"Marketer" in page.content


def test_wrong_password_is_refused_with_a_message(client: Client, marketer_user: User) -> None:
    response = client.post("/login/", {"username": "mark", "password": "nope"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content


def test_deactivated_user_cannot_log_in(client: Client, outsider: User) -> None:
    response = client.post("/login/", {"username": "olga", "password": "correct-horse-battery-staple"})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_logout_needs_post_and_ends_the_session(marketer_client: Client) -> None:
    assert marketer_client.get("/logout/").status_code == 405
    assert marketer_client.post("/logout/").status_code == 302
    assert marketer_client.get("/").status_code == 302


def test_marketer_gets_403_on_admin_pages(marketer_client: Client) -> None:
    assert marketer_client.get("/settings/users/").status_code == 403
    assert marketer_client.post("/settings/users/", {"username": "x"}).status_code == 403


def test_admin_creates_a_marketer_and_an_admin(admin_client: Client) -> None:
    assert admin_client.get("/settings/users/").status_code == 200
    for username, role in (("mia", "marketer"), ("al", "admin")):
        response = admin_client.post(
            "/settings/users/",
            {"username": username, "email": "", "role": role, "password": "a-long-enough-passphrase"},
        )
        assert response.status_code == 302
    assert User.objects.get(username="mia").is_staff is False
    assert User.objects.get(username="al").is_staff is True


def test_user_form_reports_weak_password_and_duplicate_name(admin_client: Client, marketer_user: User) -> None:
    response = admin_client.post("/settings/users/", {"username": "MARK", "role": "marketer", "password": "123"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "already exists" in body
    assert "too short" in body


def test_admin_changes_a_role_but_cannot_demote_themselves(
    admin_client: Client, admin_user: User, marketer_user: User
) -> None:
    admin_client.post(f"/settings/users/{marketer_user.pk}/", {"role": "admin", "is_active": "on"})
    marketer_user.refresh_from_db()
    assert marketer_user.is_staff
    admin_client.post(f"/settings/users/{admin_user.pk}/", {"role": "marketer", "is_active": "on"})
    admin_user.refresh_from_db()
    assert admin_user.is_staff


def test_healthz_reports_database_and_broker(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["database"] == "ok"
    assert body["broker"] == "ok"


@pytest.mark.redis
def test_healthz_is_503_when_the_broker_is_down(client: Client) -> None:
    original = celery_app.conf.broker_url
    celery_app.conf.broker_url = f"redis://127.0.0.1:{free_port()}/0"
    try:
        response = client.get("/healthz")
    finally:
        celery_app.conf.broker_url = original
    assert response.status_code == 503
    assert response.json()["broker"] == "down"


def _django_subprocess(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DATABASE_URL"}}
    base.update(SMSAPP_IGNORE_DOTENV="1", DJANGO_SETTINGS_MODULE="smsapp.settings", **env)
    return subprocess.run([sys.executable, "-c", code], env=base, capture_output=True, text=True, timeout=120)


def test_healthz_is_503_when_the_database_is_down() -> None:
    code = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "r = Client().get('/healthz', HTTP_HOST='localhost')\n"
        "print(r.status_code, r.content.decode())\n"
    )
    result = _django_subprocess(code, DEBUG="1", DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/nowhere")
    assert result.returncode == 0, result.stderr
    status, body = result.stdout.strip().split(" ", 1)
    assert status == "503"
    assert json.loads(body)["database"] == "down"


def test_missing_secret_key_is_a_clear_startup_error() -> None:
    result = _django_subprocess("import django; django.setup()", DEBUG="false")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_check_deploy_is_clean_in_production_settings() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env={
            **{k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECURE_SSL_REDIRECT"}},
            "SMSAPP_IGNORE_DOTENV": "1",
            "DJANGO_SETTINGS_MODULE": "smsapp.settings",
            "DEBUG": "false",
            "SECRET_KEY": "k" * 20 + "-production-like-secret-with-enough-entropy-9f8e7d6c5b4a",
            "ALLOWED_HOSTS": "sms.example.com",
            "PUBLIC_BASE_URL": "https://sms.example.com",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def _wait_for_heartbeat(before: str | None, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = cache.get(HEARTBEAT_KEY)
        if seen and seen != before:
            return str(seen)
        time.sleep(0.2)
    raise AssertionError("the worker never ran the heartbeat task")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_a_task(celery_worker: procs.Proc) -> None:
    before = cache.get(HEARTBEAT_KEY)
    heartbeat.delay()
    assert _wait_for_heartbeat(before)


@pytest.mark.embedded
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_embedded_defaults_run_a_real_worker_and_beat_with_no_server(client: Client) -> None:
    """make run's defaults: SQLite, the filesystem broker, a worker process and beat scheduling the heartbeat."""
    from django.conf import settings

    assert not settings.REDIS_URL
    assert settings.CELERY_BROKER_URL == "filesystem://"
    worker = procs.start_worker()
    beat = procs.start_beat()
    try:
        # beat sends the heartbeat at start-up and every 30s; the worker runs it.
        _wait_for_heartbeat(None, timeout=90)
        assert client.get("/healthz").json()["broker"] == "ok"
    finally:
        procs.stop_all([beat, worker])


def _sessions_opened() -> int:
    """Sessions PostgreSQL has started on this database so far (its cumulative statistics, read afresh)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_worker_keeps_its_database_connection_from_task_to_task(celery_worker: procs.Proc) -> None:
    # Celery's Django fixup closed every connection before and after each task: each of the many small tasks (pacer
    # hand-outs, status flushes, sweeps) started and authenticated a PostgreSQL backend of its own. Django's rules
    # apply instead (smsapp.core.celery): a connection lives CONN_MAX_AGE, and is replaced once it is broken.
    from texts.tasks import outbound_sweep_task

    def sweeps(count: int) -> None:
        for _ in range(count):
            outbound_sweep_task.delay()
        deadline = time.monotonic() + 60
        while celery_worker.output().count("texts.outbound_sweep[") < 2 * ran[0] + 2 * count:  # received, succeeded
            assert time.monotonic() < deadline, celery_worker.output()[-2000:]
            time.sleep(0.1)
        ran[0] += count
        time.sleep(1.5)  # a backend reports the session it counts within a second, and at its exit

    ran = [0]
    sweeps(2)  # the worker's pool processes connect once each
    before = _sessions_opened()
    sweeps(20)
    assert _sessions_opened() - before <= 2  # was 20 or more: one per task

    # A connection that broke (PostgreSQL restarted, an administrator ended it) is replaced, not kept.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    sweeps(4)
    assert "Traceback" not in celery_worker.output()
