"""API authentication: Bearer tokens (hashed, revocable), roles, the OpenAPI document, 401/413/429."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client

from smsapp.models import ApiToken, token_hash

from .conftest import ApiClient

pytestmark = pytest.mark.django_db


def test_a_token_authenticates_as_its_user(api: ApiClient) -> None:
    response = api.get("/api/v1/me")
    assert response.status_code == 200
    assert response.json() == {"username": "mark", "role": "marketer"}


def test_admin_token_reports_admin_role(admin_api: ApiClient) -> None:
    assert admin_api.get("/api/v1/me").json()["role"] == "admin"


@pytest.mark.parametrize("header", [None, "Bearer ", "Bearer sms_not-a-real-token", "Basic YTpi", "Token abc"])
def test_missing_or_unknown_token_is_401_json(client: Client, header: str | None) -> None:
    extra = {"HTTP_AUTHORIZATION": header} if header is not None else {}
    response = client.get("/api/v1/me", **extra)
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")
    assert "Bearer" in response.json()["detail"]


def test_a_logged_in_browser_session_is_not_enough(marketer_client: Client) -> None:
    # No session shortcut: a page in the browser cannot call the API without a token.
    assert marketer_client.get("/api/v1/me").status_code == 401


def test_revoked_token_and_deactivated_user_are_refused(marketer_user: User) -> None:
    token, plain = ApiToken.issue(user=marketer_user, name="t")
    client = ApiClient(plain)
    assert client.get("/api/v1/me").status_code == 200
    token.revoke()
    assert client.get("/api/v1/me").status_code == 401
    _, other = ApiToken.issue(user=marketer_user, name="t2")
    marketer_user.is_active = False
    marketer_user.save()
    assert ApiClient(other).get("/api/v1/me").status_code == 401


def test_tokens_are_stored_hashed(marketer_user: User) -> None:
    token, plain = ApiToken.issue(user=marketer_user, name="t")
    token.refresh_from_db()
    assert token.key_hash == token_hash(plain)
    assert plain not in (token.key_hash, token.prefix, token.name)


def test_create_api_token_command_prints_a_working_token(
    marketer_user: User, capsys: pytest.CaptureFixture[str]
) -> None:
    call_command("create_api_token", "mark")
    plain = capsys.readouterr().out.strip()
    assert plain.startswith("sms_")
    assert ApiClient(plain).get("/api/v1/me").status_code == 200


def test_create_api_token_for_unknown_user_fails_clearly() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No active user named 'ghost'"):
        call_command("create_api_token", "ghost")


def test_ui_creates_a_token_shown_once_and_revokes_it(marketer_client: Client) -> None:
    response = marketer_client.post("/settings/api-tokens/", {"name": "CRM sync"})
    assert response.status_code == 200
    token = ApiToken.objects.get(name="CRM sync")
    body = response.content.decode()
    plain = body.split('id="new-token" class="mono" readonly value="')[1].split('"')[0]
    assert token.key_hash == token_hash(plain)
    assert plain not in marketer_client.get("/settings/api-tokens/").content.decode()
    marketer_client.post(f"/settings/api-tokens/{token.pk}/revoke/")
    assert ApiClient(plain).get("/api/v1/me").status_code == 401


def test_a_user_cannot_revoke_someone_elses_token(marketer_client: Client, admin_user: User) -> None:
    token, _ = ApiToken.issue(user=admin_user, name="theirs")
    assert marketer_client.post(f"/settings/api-tokens/{token.pk}/revoke/").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_openapi_document_needs_a_token_or_login(client: Client, api: ApiClient, marketer_client: Client) -> None:
    assert client.get("/api/v1/openapi.json").status_code == 401
    schema = api.get("/api/v1/openapi.json").json()
    assert schema["info"]["title"] == "smsapp API"
    assert "/api/v1/me" in schema["paths"]
    assert schema["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
    assert marketer_client.get("/api/v1/docs").status_code == 200


def test_oversized_body_gets_413_before_it_is_read(api: ApiClient) -> None:
    response = api.post("/api/v1/me", data="x" * (1_048_576 + 1), content_type="application/json")
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


def test_too_many_requests_get_429(api: ApiClient, settings: object) -> None:
    from smsapp.api import api as ninja_api

    cache.clear()
    throttle = ninja_api.throttle[0]
    original = (throttle.num_requests, throttle.duration)
    throttle.num_requests, throttle.duration = 3, 60
    try:
        statuses = [api.get("/api/v1/me").status_code for _ in range(5)]
    finally:
        throttle.num_requests, throttle.duration = original
        cache.clear()
    assert statuses == [200, 200, 200, 429, 429]
