"""What keeps the callback cheap (bench/webhooks.py measures it), without giving up what it guarantees.

A status callback is one statement on PostgreSQL whether it moves the message or not; that statement alone commits
without waiting for the WAL to reach the disk (a status is recoverable from Twilio, a reply or an opt-out is not);
the callback skips Django's per-request connection health check and still rides out a connection the server dropped.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import resolve
from django.utils import timezone

from contacts.models import Contact, DoNotContact, TimelineEvent
from contacts.services import contact_is_dnc
from hooks.services import subscribed
from providers.base import StatusEvent
from providers.twilio import views as twilio_views
from providers.twilio.testing import PATH, configure, inbound_params, post, sid, status_params
from smsapp.urls import urlpatterns
from texts import webhooks as views_callback
from texts.inbound import outbound_status_apply
from texts.models import OutboundMessage, Status

pytestmark = pytest.mark.django_db

NUMBER = "+14155550123"
NO_WAIT = "set_config('synchronous_commit', 'off', true)"


@pytest.fixture(autouse=True)
def _twilio(settings: Any) -> None:
    configure(settings)
    # Outgoing webhooks load the process's subscriptions once every few seconds, not per callback: loaded already.
    subscribed("message.delivered")


def _sent(status: str = Status.SENT, *, number: str = NUMBER) -> OutboundMessage:
    return OutboundMessage.objects.create(
        contact=Contact.objects.create(mobile=number),
        to_number=number,
        source="api",
        status=status,
        provider_sid=sid(),
        sent_at=timezone.now(),
    )


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("twilio_status", "moves"),
    [("sent", False), ("delivered", True), ("undelivered", True)],  # Twilio's `sent` after the worker's own: no move
)
def test_a_status_callback_is_one_statement_whether_it_moves_or_not(
    django_assert_num_queries: Any, twilio_status: str, moves: bool
) -> None:
    message = _sent()
    with django_assert_num_queries(1):
        moved = outbound_status_apply(event=StatusEvent(message_sid=message.provider_sid or "", status=twilio_status))
    assert moved is moves
    message.refresh_from_db()
    assert message.status == (twilio_status if moves else Status.SENT)
    # A final status wrote its timeline entry in the same statement.
    assert TimelineEvent.objects.filter(contact=message.contact, kind__in=["sms.delivered", "sms.failed"]).count() == (
        1 if moves else 0
    )


@pytest.mark.postgres
def test_an_unknown_sid_is_one_statement_too(django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(1):
        assert not outbound_status_apply(event=StatusEvent(message_sid=sid(), status="delivered"))


def test_a_repeated_21610_failure_still_marks_the_recipient_dnc() -> None:
    # The message is already `failed` (a first callback without the code): the second one moves nothing, and the
    # statement that did not move it still names the contact to opt out.
    message = _sent(status=Status.FAILED)
    event = StatusEvent(message_sid=message.provider_sid or "", status="failed", error_code="21610")
    assert not outbound_status_apply(event=event)
    assert contact_is_dnc(contact=message.contact_id or 0)
    assert DoNotContact.objects.get().source == DoNotContact.Source.PROVIDER


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_only_a_status_statement_that_is_its_own_transaction_commits_without_waiting() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO on")  # the test server's default is off: start from a deployment's
    first, second = _sent(), _sent(number="+14155550124")
    with CaptureQueriesContext(connection) as alone:
        assert outbound_status_apply(event=StatusEvent(message_sid=first.provider_sid or "", status="delivered"))
    assert NO_WAIT in alone.captured_queries[-1]["sql"]
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone() == ("on",)  # set for that commit only: the connection's next transaction waits
    # Inside a larger transaction (which may hold an opt-out) the status statement leaves the commit alone.
    with CaptureQueriesContext(connection) as inside, transaction.atomic():
        assert outbound_status_apply(event=StatusEvent(message_sid=second.provider_sid or "", status="delivered"))
    assert not any(NO_WAIT in q["sql"] for q in inside.captured_queries)


@pytest.mark.postgres
def test_replies_and_opt_outs_always_wait_for_the_disk() -> None:
    with CaptureQueriesContext(connection) as queries:
        assert post(Client(), inbound_params("STOP")).status_code == 200
        assert post(Client(), inbound_params("hello")).status_code == 200
    assert DoNotContact.objects.count() == 1
    assert queries.captured_queries
    assert not any("synchronous_commit" in q["sql"] for q in queries.captured_queries)


def test_the_callback_skips_the_per_request_health_check(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _sent()
    wrapper = connections["default"]
    wrapper.ensure_connection()
    checks: list[int] = []
    real = wrapper.is_usable
    monkeypatch.setattr(wrapper, "is_usable", lambda: bool(checks.append(1)) or real())
    enabled = wrapper.health_check_enabled
    # As at the start of a real request with CONN_HEALTH_CHECKS on (Django's test client skips that reset).
    wrapper.health_check_enabled, wrapper.health_check_done = True, False
    try:
        assert post(Client(), status_params(message.provider_sid or "", "delivered")).status_code == 200
    finally:
        wrapper.health_check_enabled = enabled
    assert checks == []
    message.refresh_from_db()
    assert message.status == Status.DELIVERED


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_status_callback_on_a_connection_the_server_dropped_still_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _sent()
    connection.ensure_connection()
    backend = connection.connection.info.backend_pid
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [backend])
    finally:
        other.close()
    monkeypatch.setattr(views_callback.time, "sleep", lambda seconds: None)
    assert post(Client(), status_params(message.provider_sid or "", "delivered")).status_code == 200
    message.refresh_from_db()
    assert message.status == Status.DELIVERED
    assert connection.connection.info.backend_pid != backend


def test_the_callback_is_the_first_url_django_tries() -> None:
    assert resolve(PATH).func is twilio_views.twilio_callback
    assert urlpatterns[0].resolve(PATH.lstrip("/")) is not None
