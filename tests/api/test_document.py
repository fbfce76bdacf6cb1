"""The OpenAPI document: every operation of the issue is in it, with its error codes declared; docs load locally."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client

from .conftest import ApiClient

pytestmark = pytest.mark.django_db

EXPECTED = {
    ("get", "/api/v1/contacts"),
    ("post", "/api/v1/contacts"),
    ("get", "/api/v1/contacts/{contact_id}"),
    ("patch", "/api/v1/contacts/{contact_id}"),
    ("delete", "/api/v1/contacts/{contact_id}"),
    ("post", "/api/v1/contacts/{contact_id}/dnc"),
    ("delete", "/api/v1/contacts/{contact_id}/dnc"),
    ("get", "/api/v1/segments"),
    ("post", "/api/v1/segments"),
    ("get", "/api/v1/segments/{segment_id}"),
    ("delete", "/api/v1/segments/{segment_id}"),
    ("get", "/api/v1/segments/{segment_id}/contacts"),
    ("post", "/api/v1/segments/{segment_id}/contacts"),
    ("delete", "/api/v1/segments/{segment_id}/contacts"),
    ("get", "/api/v1/text-messages"),
    ("post", "/api/v1/text-messages"),
    ("get", "/api/v1/text-messages/{text_message_id}"),
    ("patch", "/api/v1/text-messages/{text_message_id}"),
    ("post", "/api/v1/text-messages/{text_message_id}/send"),
    ("get", "/api/v1/outbound-messages"),
    ("get", "/api/v1/outbound-messages/{message_id}"),
    ("get", "/api/v1/inbound-messages"),
    ("get", "/api/v1/inbound-messages/{message_id}"),
    ("get", "/api/v1/campaigns"),
    ("get", "/api/v1/campaigns/{campaign_id}"),
    ("get", "/api/v1/campaigns/{campaign_id}/contacts"),
    ("post", "/api/v1/campaigns/{campaign_id}/contacts"),
    ("delete", "/api/v1/campaigns/{campaign_id}/contacts"),
}


def test_every_operation_is_documented_with_its_errors(api: ApiClient) -> None:
    paths = api.get("/api/v1/openapi.json").json()["paths"]
    operations = {(method, path): op for path, item in paths.items() for method, op in item.items()}
    assert set(operations) >= EXPECTED
    for key, operation in operations.items():
        codes = set(operation["responses"])
        assert {"401", "429"} <= codes, key
        if key[0] in {"post", "patch"} or "{" in key[1]:
            assert "400" in codes, key
        if "{" in key[1]:
            assert "404" in codes, key
        if key[0] in {"post", "patch"}:
            assert "413" in codes, key
    assert "403" in operations[("delete", "/api/v1/contacts/{contact_id}")]["responses"]
    assert "409" in operations[("post", "/api/v1/contacts")]["responses"]
    assert "409" in operations[("post", "/api/v1/text-messages/{text_message_id}/send")]["responses"]


def test_docs_page_loads_its_assets_locally(marketer_client: Client) -> None:
    page = marketer_client.get("/api/v1/docs").content.decode()
    assert "swagger" in page.lower()
    assert "cdn." not in page
    assert "https://" not in page


def test_a_busy_client_gets_429_on_data_endpoints_too(api: ApiClient) -> None:
    from smsapp.api import api as ninja_api

    cache.clear()
    throttle = ninja_api.throttle[0]
    original = (throttle.num_requests, throttle.duration)
    throttle.num_requests, throttle.duration = 2, 60
    try:
        statuses = [api.get("/api/v1/contacts").status_code for _ in range(3)]
        refused = api.get("/api/v1/segments")
    finally:
        throttle.num_requests, throttle.duration = original
        cache.clear()
    assert statuses == [200, 200, 429]
    assert refused.status_code == 429
    assert refused["Content-Type"].startswith("application/json")
