from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from smsapp.models import ApiToken


class ApiClient(Client):
    """A test client that sends a Bearer token and JSON bodies."""

    def __init__(self, token: str) -> None:
        super().__init__(HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.fixture
def marketer_token(marketer_user: User) -> str:
    return ApiToken.issue(user=marketer_user, name="tests")[1]


@pytest.fixture
def admin_token(admin_user: User) -> str:
    return ApiToken.issue(user=admin_user, name="tests")[1]


@pytest.fixture
def api(marketer_token: str) -> ApiClient:
    return ApiClient(marketer_token)


@pytest.fixture
def admin_api(admin_token: str) -> ApiClient:
    return ApiClient(admin_token)
