"""Security pass over every URL the project routes: nothing is open to anonymous users but the allowed few."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db

# The only URLs an anonymous request may use; each still refuses what it must (the callback checks signatures).
# l/<code>: a tracked link (a made-up code is a 404); join/: the double opt-in form (rate-limited, CSRF-checked).
PUBLIC = {"login/", "healthz", "l/x", "join/"}
CONVERTER_SAMPLES = {"int": "1", "str": "x", "slug": "x", "uuid": "00000000-0000-0000-0000-000000000001", "path": "x"}


def _walk(patterns: list[URLPattern | URLResolver], prefix: str = "") -> Iterator[str]:
    for entry in patterns:
        route = str(entry.pattern)
        if isinstance(entry, URLResolver):
            if route.startswith("admin/"):
                continue  # Django's admin has its own login; checked below as a whole.
            yield from _walk(list(entry.url_patterns), prefix + route)
        else:
            yield prefix + route


def _concrete(route: str) -> str | None:
    if route.startswith("^") or "(?P" in route:
        return None  # a regex route (third-party); none of ours
    return re.sub(r"<(?:(\w+):)?\w+>", lambda m: CONVERTER_SAMPLES.get(m.group(1) or "str", "x"), route)


def routes() -> list[str]:
    found = {_concrete(r) for r in _walk(list(get_resolver().url_patterns))}
    return sorted(r for r in found if r is not None)


def test_the_route_list_covers_the_app() -> None:
    listed = routes()
    assert "" in listed
    assert "settings/users/" in listed
    assert any(r.startswith("api/v1/") for r in listed)


@pytest.mark.parametrize("route", routes())
def test_anonymous_users_are_refused_everywhere_but_login_and_healthz(client: Client, route: str) -> None:
    if route in PUBLIC:
        return
    url = "/" + route
    for method in ("get", "post"):
        response = getattr(client, method)(url)
        if response.status_code == 302:
            assert response["Location"].startswith("/login/"), f"{method.upper()} {url} redirects elsewhere"
        else:
            # 401 (API), 403 (signed callback), 404/405 (no such object or method) all refuse; 200 would not.
            assert response.status_code in {400, 401, 403, 404, 405}, f"{method.upper()} {url} answered anonymously"


def test_django_admin_needs_a_staff_login(client: Client, marketer_client: Client) -> None:
    assert client.get("/admin/").status_code == 302
    assert marketer_client.get("/admin/").status_code == 302


def test_every_form_post_needs_a_csrf_token(marketer_user: object) -> None:
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(marketer_user)  # type: ignore[arg-type]
    assert csrf_client.post("/settings/api-tokens/", {"name": "x"}).status_code == 403
    assert csrf_client.post("/logout/").status_code == 403
