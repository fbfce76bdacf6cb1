"""Bad input to the API gets a JSON 400 that names what is wrong; no error of the API is ever HTML."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from smsapp.api import api as ninja_api
from texts.models import TextMessage

from .conftest import ApiClient

pytestmark = pytest.mark.django_db


def test_unknown_fields_are_a_400_naming_each_with_the_field_meant(api: ApiClient) -> None:
    response = api.post(
        "/api/v1/text-messages",
        {"name": "Promo", "body": "Hi", "segments": [3], "published": True},
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert errors["segments"] == ["Unknown field “segments”: did you mean “segment_ids”?"]
    assert errors["published"] == ["Unknown field “published”: did you mean “is_published”?"]
    assert not TextMessage.objects.exists()


def test_an_unknown_field_with_no_near_name_lists_the_fields(api: ApiClient) -> None:
    response = api.post("/api/v1/contacts", {"zzz": 1}, content_type="application/json")
    assert response.status_code == 400
    (message,) = response.json()["errors"]["zzz"]
    assert message.startswith("Unknown field “zzz”. The fields are: ")
    assert "first_name" in message


def _write_operations() -> list[tuple[str, str]]:
    document = ninja_api.get_openapi_schema()
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if "requestBody" in operation:
                found.append((method, path))
    return sorted(found)


def test_the_document_forbids_unknown_fields_in_every_request_body() -> None:
    document: dict[str, Any] = ninja_api.get_openapi_schema()
    schemas = document["components"]["schemas"]
    assert len(_write_operations()) >= 10
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if "requestBody" not in operation:
                continue
            ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            schema = schemas[ref.rsplit("/", 1)[-1]]
            assert schema.get("additionalProperties") is False, f"{method.upper()} {path} accepts unknown fields"


@pytest.mark.parametrize(("method", "path"), _write_operations())
def test_every_write_operation_refuses_an_unknown_field(admin_api: ApiClient, method: str, path: str) -> None:
    parts = path.removeprefix("/api/v1").split("/")
    url = "/api/v1" + "/".join("1" if part.endswith("_id}") else part for part in parts)
    response = getattr(admin_api, method)(url, {"not_a_field": 1}, content_type="application/json")
    assert response.status_code == 400, (method, url, response.content)
    assert "not_a_field" in response.json()["errors"], response.json()


@pytest.fixture
def production(settings: Any) -> None:
    settings.DEBUG = False


def test_an_unknown_api_path_is_a_json_404_with_debug_off(production: None, api: ApiClient) -> None:
    response = api.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert "no API operation" in response.json()["detail"]


def test_a_method_an_api_path_does_not_take_is_a_json_405(production: None, api: ApiClient) -> None:
    response = api.put("/api/v1/contacts", {}, content_type="application/json")
    assert response.status_code == 405
    assert response["Content-Type"].startswith("application/json")
    assert "GET" in response["Allow"]
    assert "PUT" in response.json()["detail"]


def test_a_crash_inside_an_operation_is_a_json_500_and_logged(
    production: None, marketer_token: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(**kwargs: Any) -> Any:
        raise RuntimeError("simulated failure")

    monkeypatch.setattr("contacts.api.contact_search", boom)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {marketer_token}", raise_request_exception=False)
    response = client.get("/api/v1/contacts?q=ada")
    assert response.status_code == 500
    assert response["Content-Type"].startswith("application/json")
    assert "simulated failure" not in response.content.decode()
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].exc_info is not None
    assert "simulated failure" in str(errors[0].exc_info[1])


def test_a_request_django_refuses_before_the_api_is_json_too(production: None, api: ApiClient) -> None:
    # Django refuses a host it does not serve before any API code runs: still JSON under /api/.
    response = Client().get("/api/v1/contacts/", HTTP_HOST="not-allowed.example")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
