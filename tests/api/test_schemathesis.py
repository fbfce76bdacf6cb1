"""Property-based run of every operation in /api/v1/openapi.json with schemathesis (its Python API, in-process WSGI).

Bounded and repeatable: a fixed number of examples per operation, a fixed seed, derandomized. Each response must not
be a server error and must agree with the document (status code declared, content type, body schema). Valid data
(positive) and invalid data (negative) are both generated: bad input must come back as a declared 4xx. Positive
cases get real ids (contacts, segments, text messages, campaigns, messages created first) in three examples of
four, and every operation must answer a 2xx at least once: the run reaches every operation's success path, with
DEBUG off, and no operation ever answers 5xx.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
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
from contacts.services import segment_add_contacts
from smsapp.api import api as ninja_api
from smsapp.models import ApiToken
from tests.consent_helpers import give_consent
from texts.models import InboundMessage, OutboundMessage, TextMessage

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


@dataclass
class Seeded:
    """Real rows, one or more of each kind an operation's ids can name, created before the run."""

    contacts: list[int]
    segment: int
    campaign: int
    text_message: int
    outbound: int
    inbound: int

    def id_for(self, path: str, name: str, example: int) -> int:
        """A real id for the path parameter ``name`` of ``path``, varied by example where there are several."""
        if name == "contact_id":
            return self.contacts[example % len(self.contacts)]
        if name == "message_id":
            return self.inbound if path.startswith("/api/v1/inbound") else self.outbound
        return {"segment_id": self.segment, "campaign_id": self.campaign, "text_message_id": self.text_message}[name]


@pytest.fixture
def seeded(db: None) -> Seeded:
    """Realistic data for every operation: contactable contacts, a segment with members, a published text message,
    a campaign, an outbound and an inbound message, so that generated requests reach the success paths."""
    contacts = [Contact.objects.create(first_name=f"C{i}", mobile=f"+4479110{i:05d}") for i in range(1, 4)]
    give_consent(contacts)  # the text message below is marketing
    segment = Segment.objects.create(name="Seg")
    segment_add_contacts(segment=segment, contact_ids=[c.pk for c in contacts[:2]], record=False)
    campaign = Campaign.objects.create(name="Camp")
    text = TextMessage.objects.create(name="T", body="Hi {{first_name|there}}")
    outbound = OutboundMessage.objects.create(
        contact=contacts[0], to_number=str(contacts[0].mobile), text_message=text, source="api"
    )
    inbound = InboundMessage.objects.create(
        message_sid="SM" + "5" * 32,
        account_sid="AC" + "5" * 32,
        from_number=str(contacts[0].mobile),
        body="Yes",
        contact=contacts[0],
    )
    return Seeded([c.pk for c in contacts], segment.pk, campaign.pk, text.pk, outbound.pk, inbound.pk)


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
def served(admin_token: str, seeded: Seeded, unthrottled: None, keep_test_connection: None, settings: Any) -> Seeded:
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "localhost"]  # the Host schemathesis's WSGI client sends
    settings.DEBUG = False  # as deployed: an error must be a JSON answer, not a debug page
    return seeded


# Every status each operation answered in this run, to prove each one was reached with real data (a 2xx), not only
# refused: random ids alone almost never name a row, so the success paths would go untested.
ANSWERS: dict[str, Counter[int]] = defaultdict(Counter)


@pytest.fixture(scope="module", autouse=True)
def every_operation_succeeds_at_least_once() -> Iterator[None]:
    ANSWERS.clear()
    yield
    never = sorted(label for label, codes in ANSWERS.items() if not any(200 <= code < 300 for code in codes))
    assert not never, f"operations never answered 2xx with realistic ids: {never} ({dict(ANSWERS)})"
    assert not [label for label, codes in ANSWERS.items() if any(code >= 500 for code in codes)]


def _realistic(case: Any, seeded: Seeded, example: int) -> None:
    """Put real ids where the generated (positive) case has ids; a negative case stays as generated."""
    if case.meta is not None and case.meta.generation.mode.is_negative:
        return
    if example % 4 == 3:
        return  # one in four keeps its random ids: the 404 and "no such contact" paths are exercised too
    path = case.operation.path
    params = dict(case.path_parameters or {})
    for name, value in params.items():
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            params[name] = seeded.id_for(case.operation.full_path, name, example)
    if params:
        case.path_parameters = params
    body = case.body
    if isinstance(body, dict):
        body = dict(body)
        if isinstance(body.get("contact_id"), int) and not isinstance(body["contact_id"], bool):
            body["contact_id"] = seeded.contacts[example % len(seeded.contacts)]
        if isinstance(body.get("contact_ids"), list) and body["contact_ids"]:
            body["contact_ids"] = seeded.contacts[: 1 + example % len(seeded.contacts)]
        if isinstance(body.get("segment_ids"), list) and body["segment_ids"]:
            body["segment_ids"] = [seeded.segment]
        if isinstance(body.get("content_sid"), str):
            # A random template id names no synced template, as a random id names no row: the body path instead.
            body["content_sid"] = None
        if "content_sid" in body and not body.get("content_sid"):
            body.pop("content_variables", None)  # variables belong to a template; without one they are a 400
            if path.endswith("/text-messages") and not str(body.get("body") or "").strip():
                body["body"] = "Hello {{first_name|there}}"  # a message needs a body or a template
        if path.endswith("/segments") and isinstance(body.get("filters"), dict) and example % 2:
            body["filters"] = {
                "match": "all",
                "rules": [{"field": "segment", "operator": "in", "value": str(seeded.segment)}],
            }
        case.body = body


# The document the API serves, built from the same code (schemathesis's lazy fixture loader does not run on pytest 9,
# and collection has no database for a token); test_the_served_document_is_the_one_tested proves they are equal.
DOCUMENT = json.loads(json.dumps(ninja_api.get_openapi_schema(), cls=DjangoJSONEncoder))
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.app = APP
# Unknown query parameters are ignored, as HTTP APIs commonly do (OpenAPI does not forbid them either).
schema.config.generation.update(allow_extra_parameters=False)


def test_the_served_document_is_the_one_tested(served: Seeded, admin_token: str) -> None:
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
def test_api_agrees_with_its_openapi_document(case: Any, served: Seeded, admin_token: str) -> None:
    label = f"{case.operation.method.upper()} {case.operation.full_path}"
    example = sum(ANSWERS[label].values())
    _realistic(case, served, example)
    response = case.call_and_validate(headers={"Authorization": f"Bearer {admin_token}"}, checks=CHECKS)
    ANSWERS[label][response.status_code] += 1
