"""Property-based run of every operation in /api/v1/openapi.json with schemathesis (its Python API, in-process WSGI).

Bounded and repeatable: a fixed number of examples per operation, a fixed seed, derandomized. Each response must not
be a server error and must agree with the document (status code declared, content type, body schema). Valid data
(positive) and invalid data (negative) are both generated: bad input must come back as a declared 4xx.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.core.serializers.json import DjangoJSONEncoder
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, seed
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from campaigns.models import Campaign
from contacts.models import Contact, Segment
from smsapp.api import api as ninja_api
from smsapp.models import ApiToken
from texts.models import OutboundMessage, TextMessage

pytestmark = pytest.mark.django_db

EXAMPLES_PER_OPERATION = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
APP = WSGIHandler()


@pytest.fixture
def admin_token(admin_user: User) -> str:
    return ApiToken.issue(user=admin_user, name="schemathesis")[1]


@pytest.fixture
def seeded(db: None) -> None:
    """A few rows with small ids, so generated ids sometimes hit something and the 200 paths are exercised too."""
    contacts = [Contact.objects.create(first_name=f"C{i}", mobile=f"+4479110{i:05d}") for i in range(1, 4)]
    Segment.objects.create(name="Seg")
    Campaign.objects.create(name="Camp")
    text = TextMessage.objects.create(name="T", body="Hi {{first_name|there}}")
    OutboundMessage.objects.create(
        contact=contacts[0], to_number=str(contacts[0].mobile), text_message=text, source="api"
    )


@pytest.fixture
def unthrottled() -> Iterator[None]:
    # Hundreds of requests a second from one token: the throttle (tested on its own in test_auth) would turn them
    # into 429s and hide what this run is for.
    throttle = ninja_api.throttle[0]
    original = throttle.num_requests
    throttle.num_requests = 10**9
    cache.clear()
    yield
    throttle.num_requests = original
    cache.clear()


@pytest.fixture
def keep_test_connection() -> Iterator[None]:
    # The WSGI handler closes the database connection when a request finishes, which would close the test's
    # transaction; Django's own test client unhooks the same receiver for the same reason.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def served(admin_token: str, seeded: None, unthrottled: None, keep_test_connection: None, settings: Any) -> None:
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "localhost"]  # the Host schemathesis's WSGI client sends


# The document the API serves, built from the same code (schemathesis's lazy fixture loader does not run on pytest 9,
# and collection has no database for a token); test_the_served_document_is_the_one_tested proves they are equal.
DOCUMENT = json.loads(json.dumps(ninja_api.get_openapi_schema(), cls=DjangoJSONEncoder))
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.app = APP
# Unknown query parameters are ignored, as HTTP APIs commonly do (OpenAPI does not forbid them either).
schema.config.generation.update(allow_extra_parameters=False)


def test_the_served_document_is_the_one_tested(served: None, admin_token: str) -> None:
    loaded = schemathesis.openapi.from_wsgi(
        "/api/v1/openapi.json", APP, headers={"Authorization": f"Bearer {admin_token}"}
    )
    assert loaded.raw_schema == DOCUMENT
    assert len(list(loaded.get_all_operations())) >= 25


@schema.parametrize()
@seed(20260101)
@hypothesis_settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_agrees_with_its_openapi_document(case: Any, served: None, admin_token: str) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {admin_token}"}, checks=CHECKS)
