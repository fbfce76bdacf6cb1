"""The README's deployment without Docker, run as written: collectstatic, gunicorn with DEBUG off, plain HTTP."""

from __future__ import annotations

import http.cookiejar
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import User

from smsapp.testing import procs
from smsapp.testing.services import free_port, wait_for_port

from .conftest import PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parent.parent


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _gunicorn(env: dict[str, str]) -> tuple[procs.Proc, str]:
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "smsapp.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
    ]
    proc = procs.Proc("gunicorn", args, env)
    wait_for_port(port, timeout=60)
    return proc, f"http://127.0.0.1:{port}"


def _get(opener: urllib.request.OpenerDirector, url: str, data: bytes | None = None) -> tuple[int, str, Any]:
    request = urllib.request.Request(url, data=data)  # noqa: S310 (a loopback http URL)
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, response.read().decode(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace"), exc.headers


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return procs.child_env(
        DEBUG="false", SECURE_SSL_REDIRECT="false", ALLOWED_HOSTS="127.0.0.1", STATIC_ROOT=str(tmp_path / "static")
    )


def test_without_collectstatic_pages_fail_which_is_why_the_readme_says_to_run_it(env: dict[str, str]) -> None:
    proc, base = _gunicorn(env)
    try:
        status, _, _ = _get(urllib.request.build_opener(_NoRedirect), base + "/login/")
    finally:
        proc.stop()
    assert status == 500  # "Missing staticfiles manifest entry": the README's step is not optional


def test_the_readme_recipe_serves_pages_and_logs_in_over_plain_http(env: dict[str, str], admin_user: User) -> None:
    readme = (ROOT / "README.md").read_text()
    assert ".venv/bin/python manage.py collectstatic --noinput" in readme
    assert "SECURE_SSL_REDIRECT=false" in readme
    # The server hashes with the production hashers, not the tests' fast one.
    admin_user.password = PBKDF2PasswordHasher().encode(PASSWORD, PBKDF2PasswordHasher().salt())
    admin_user.save(update_fields=["password"])
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"], env=env, cwd=ROOT, check=True, capture_output=True
    )
    proc, base = _gunicorn(env)
    try:
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPCookieProcessor(jar))
        status, page, headers = _get(opener, base + "/login/")
        assert status == 200, page[-2000:]
        assert "Secure" not in (headers.get("Set-Cookie") or "")  # a browser sends it back over HTTP
        css = re.search(r'href="(/static/css/app\.[0-9a-f]+\.css)"', page)
        assert css, "the stylesheet is the hashed file collectstatic wrote"
        assert _get(opener, base + css.group(1))[0] == 200
        token = next(c.value for c in jar if c.name == "csrftoken")
        form = urllib.parse.urlencode(
            {"username": admin_user.get_username(), "password": PASSWORD, "csrfmiddlewaretoken": token}
        ).encode()
        status, page, headers = _get(opener, base + "/login/", data=form)
        assert status == 302, page[-2000:]
        assert headers["Location"] == "/"
        status, page, _ = _get(opener, base + "/")
        assert status == 200
        assert "Dashboard" in page
    finally:
        proc.stop()


def test_a_tls_proxy_that_redirects_itself_keeps_secure_cookies(env: dict[str, str]) -> None:
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE)"
    )
    for extra, expected in (({}, "False False"), ({"SECURE_COOKIES": "true"}, "True True")):
        out = subprocess.run(
            [sys.executable, "-c", code], env={**env, **extra}, cwd=ROOT, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == expected
