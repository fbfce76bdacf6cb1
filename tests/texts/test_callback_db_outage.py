"""A callback that meets a database restart is retried inside the request (Twilio does not retry it for us).

Unit level: the database error is injected at the service boundary; the real outage runs in bench/faults.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import OperationalError
from django.test import Client

from providers.twilio.testing import configure, inbound_params, post, sid
from texts import webhooks as views_callback
from texts.models import InboundMessage

pytestmark = pytest.mark.django_db


def test_a_reply_is_stored_when_the_database_comes_back_within_the_patience(
    client: Client, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(settings)
    real = views_callback.inbound_receive
    calls: list[int] = []

    def flaky(**kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("the database system is shutting down")
        return real(**kwargs)

    monkeypatch.setattr(views_callback, "inbound_receive", flaky)
    monkeypatch.setattr(views_callback.time, "sleep", lambda seconds: None)
    message_sid = sid()
    response = post(client, inbound_params("hello", message_sid=message_sid))
    assert response.status_code == 200
    assert len(calls) == 3
    assert InboundMessage.objects.filter(message_sid=message_sid).count() == 1


def test_a_database_that_stays_down_still_fails_the_request(
    client: Client, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(settings)

    def down(**kwargs: Any) -> Any:
        raise OperationalError("connection refused")

    clock = iter(range(0, 1000, 3))
    monkeypatch.setattr(views_callback, "inbound_receive", down)
    monkeypatch.setattr(views_callback.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(views_callback.time, "monotonic", lambda: float(next(clock)))
    client.raise_request_exception = False
    response = post(client, inbound_params("hello"))
    assert response.status_code == 500
