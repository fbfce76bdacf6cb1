"""Status callbacks through the Redis buffer (``texts.status_buffer``): the callback's one round trip, the flusher's
claims, and every way back to the synchronous path (Redis down, no Redis, SQLite, the buffer switched off).

Enqueueing the flush task is recorded here rather than sent (nothing consumes it in these tests); the real task on a
real worker is in test_status_buffer_workers.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import OperationalError
from django.test import Client
from django.utils import timezone

from contacts.models import Contact, DoNotContact, TimelineEvent
from providers.twilio.testing import configure, inbound_params, post, sid, status_params
from smsapp.celery import app as celery_app
from smsapp.testing.services import free_port
from texts import status_buffer
from texts.models import InboundMessage, OutboundMessage, Source, Status
from texts.status_buffer import (
    BUFFER_KEY,
    CLAIM_PREFIX,
    CLAIMS_KEY,
    PENDING_KEY,
    RECHECK_KEY,
    BufferedStatus,
    status_buffer_enabled,
    status_buffer_flush,
)

NUMBER = "+14155550123"


def _clear(client: Any) -> None:
    client.delete(BUFFER_KEY, PENDING_KEY, RECHECK_KEY, CLAIMS_KEY, *client.keys(CLAIM_PREFIX + "*"))


@pytest.fixture
def redis_client(settings: Any) -> Iterator[Any]:
    """The real Redis, with the buffer's keys empty before and after; the buffer on (as deployed)."""
    import redis

    configure(settings)
    settings.SMS_STATUS_BUFFER = True
    client = redis.Redis.from_url(settings.REDIS_URL)
    _clear(client)
    yield client
    _clear(client)


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The countdowns of the flush tasks the buffer enqueued."""
    countdowns: list[float] = []

    def record(*, countdown: float, flag: str = PENDING_KEY) -> bool:
        countdowns.append(countdown)
        return True

    monkeypatch.setattr(status_buffer, "_enqueue_flush", record)
    return countdowns


def _sent(*, status: str = Status.SENT) -> OutboundMessage:
    contact, _ = Contact.objects.get_or_create(mobile=NUMBER)
    return OutboundMessage.objects.create(
        contact=contact,
        to_number=NUMBER,
        source=Source.API,
        status=status,
        provider_sid=sid(),
        sent_at=timezone.now(),
    )


def _buffered(client: Any) -> list[BufferedStatus]:
    return [BufferedStatus.loads(raw) for raw in client.lrange(BUFFER_KEY, 0, -1)]


# The request side


@pytest.mark.django_db
@pytest.mark.postgres
@pytest.mark.redis
def test_a_status_callback_is_buffered_without_touching_the_database(
    redis_client: Any, enqueued: list[float], django_assert_num_queries: Any, settings: Any
) -> None:
    from providers.twilio.config import get_config

    message = _sent()
    # As deployed, each process keeps the plugin configuration (the test settings read it afresh every time).
    settings.SMS_CONFIG_CACHE_SECONDS = 60.0
    get_config()
    with django_assert_num_queries(0):
        response = post(Client(), status_params(message.provider_sid or "", "delivered"))
    assert response.status_code == 200
    assert response.content.endswith(b"<Response />")
    [status] = _buffered(redis_client)
    assert (status.message_sid, status.status, status.error_code) == (message.provider_sid, Status.DELIVERED, "")
    message.refresh_from_db()
    assert message.status == Status.SENT  # not yet: the flusher applies it
    assert enqueued == [django_settings.SMS_STATUS_FLUSH_DELAY_SECONDS]
    result = status_buffer_flush()
    assert (result.applied, result.batches, result.left) == (1, 1, 0)
    message.refresh_from_db()
    assert message.status == Status.DELIVERED
    assert TimelineEvent.objects.filter(kind="sms.delivered").count() == 1


@pytest.mark.django_db
@pytest.mark.postgres
@pytest.mark.redis
def test_the_message_id_and_error_code_travel_through_the_buffer(redis_client: Any, enqueued: list[float]) -> None:
    from django.conf import settings

    from providers.twilio.testing import PATH, sign

    in_flight = OutboundMessage.objects.create(
        contact=Contact.objects.create(mobile=NUMBER),
        to_number=NUMBER,
        source=Source.TEST,
        status=Status.SENDING,
        provider_called_at=timezone.now(),
    )
    message_sid = sid()
    params = status_params(message_sid, "failed", error_code="21610")
    url = settings.PUBLIC_BASE_URL + PATH + f"?m={in_flight.pk}"
    response = Client().post(f"{PATH}?m={in_flight.pk}", data=params, HTTP_X_TWILIO_SIGNATURE=sign(params, url=url))
    assert response.status_code == 200
    status_buffer_flush()
    in_flight.refresh_from_db()
    assert (in_flight.provider_sid, in_flight.status, in_flight.error_code) == (message_sid, Status.FAILED, "21610")
    assert DoNotContact.objects.filter(contact=in_flight.contact, source="provider", lifted_at__isnull=True).exists()


@pytest.mark.django_db
@pytest.mark.postgres
@pytest.mark.redis
def test_only_the_first_push_after_a_flush_arms_one(redis_client: Any, enqueued: list[float]) -> None:
    messages = [_sent() for _ in range(4)]
    for message in messages[:3]:
        post(Client(), status_params(message.provider_sid or "", "delivered"))
    assert len(enqueued) == 1
    assert redis_client.ttl(PENDING_KEY) > 0  # a lost task does not block the next arming for good
    status_buffer_flush()
    assert not redis_client.exists(PENDING_KEY)  # drained: nothing pending, no task enqueued by the flush itself
    assert len(enqueued) == 1
    post(Client(), status_params(messages[3].provider_sid or "", "delivered"))
    assert len(enqueued) == 2


@pytest.mark.django_db
@pytest.mark.postgres
@pytest.mark.redis
def test_a_push_of_more_statuses_than_lua_unpacks_at_once_buffers_them_all(
    redis_client: Any, enqueued: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A web process's relay pushes what 50 ms of callbacks handed over in one script call; Redis's Lua unpacks at
    most ~8,000 values into one command. A bigger batch went to the database instead, and Redis was left alone for
    5 s as if it were down."""
    applied: list[int] = []
    monkeypatch.setattr(status_buffer, "outbound_statuses_apply", lambda *, statuses: applied.append(len(statuses)))
    statuses = [BufferedStatus(f"SM{i:032x}", Status.DELIVERED, received_at=1.0) for i in range(20_000)]
    assert status_buffer.status_buffer_push(statuses=statuses)
    assert redis_client.llen(BUFFER_KEY) == 20_000
    assert [s.message_sid for s in _buffered(redis_client)] == [s.message_sid for s in statuses]  # in order
    assert time_left_alone(django_settings.REDIS_URL) == 0.0
    assert applied == []
    assert len(enqueued) == 1


def time_left_alone(url: str) -> float:
    import time

    return max(0.0, status_buffer._down_until.get(url, 0.0) - time.monotonic())


@pytest.mark.django_db
@pytest.mark.postgres
@pytest.mark.redis
def test_a_status_twilio_may_send_but_the_log_does_not_know_is_not_buffered(
    redis_client: Any, enqueued: list[float]
) -> None:
    message = _sent()
    assert post(Client(), status_params(message.provider_sid or "", "receiving")).status_code == 200
    assert redis_client.llen(BUFFER_KEY) == 0
    assert enqueued == []


@pytest.mark.django_db
@pytest.mark.postgres
@pytest.mark.redis
def test_replies_are_never_buffered(redis_client: Any, enqueued: list[float]) -> None:
    from texts.keywords import keyword_seed_defaults

    keyword_seed_defaults()
    response = post(Client(), inbound_params("STOP", from_=NUMBER))
    assert response.status_code == 200
    assert InboundMessage.objects.get().body == "STOP"
    assert DoNotContact.objects.filter(contact__mobile=NUMBER, lifted_at__isnull=True).exists()
    assert redis_client.llen(BUFFER_KEY) == 0


@pytest.mark.django_db
@pytest.mark.postgres
@pytest.mark.redis
def test_redis_down_the_status_is_applied_in_the_request(
    redis_client: Any, enqueued: list[float], settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.WARNING, logger="texts.status_buffer")
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    first, second = _sent(), _sent()
    assert post(Client(), status_params(first.provider_sid or "", "delivered")).status_code == 200
    first.refresh_from_db()
    assert first.status == Status.DELIVERED
    assert TimelineEvent.objects.filter(kind="sms.delivered").count() == 1
    assert "Redis unreachable, applying it now" in caplog.text
    # The next callbacks of this process do not wait for Redis again for a few seconds: no connection attempt.
    caplog.clear()
    assert post(Client(), status_params(second.provider_sid or "", "undelivered")).status_code == 200
    second.refresh_from_db()
    assert second.status == Status.UNDELIVERED
    assert "Redis unreachable" not in caplog.text
    assert enqueued == []


@pytest.mark.django_db
@pytest.mark.postgres
@pytest.mark.redis
def test_a_flush_that_cannot_be_enqueued_applies_the_status_now(
    redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kombu.exceptions import OperationalError as BrokerError

    from texts.tasks import statuses_flush_task

    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise BrokerError("Error 111 connecting to the broker")

    monkeypatch.setattr(statuses_flush_task, "apply_async", broker_down)
    message = _sent()
    assert post(Client(), status_params(message.provider_sid or "", "delivered")).status_code == 200
    message.refresh_from_db()
    assert message.status == Status.DELIVERED
    assert not redis_client.exists(PENDING_KEY)  # the next push tries to arm a flush again
    assert redis_client.llen(BUFFER_KEY) == 1  # applied again by the next flush: nothing more happens
    status_buffer_flush()
    assert TimelineEvent.objects.filter(kind="sms.delivered").count() == 1


@pytest.mark.django_db
@pytest.mark.postgres
@pytest.mark.redis
def test_the_buffer_switched_off_applies_in_the_request(redis_client: Any, settings: Any) -> None:
    settings.SMS_STATUS_BUFFER = False
    assert not status_buffer_enabled()
    message = _sent()
    post(Client(), status_params(message.provider_sid or "", "delivered"))
    message.refresh_from_db()
    assert message.status == Status.DELIVERED
    assert redis_client.llen(BUFFER_KEY) == 0


# The flusher


def _push(client: Any, *messages: OutboundMessage, status: str = Status.DELIVERED) -> None:
    for message in messages:
        assert status_buffer.status_buffer_push(
            status=BufferedStatus(str(message.provider_sid), status, "", None, 1.0e9)
        )


def _many(count: int) -> list[OutboundMessage]:
    return OutboundMessage.objects.bulk_create(
        OutboundMessage(to_number=NUMBER, source="api", status=Status.SENT, provider_sid=sid()) for _ in range(count)
    )


@pytest.mark.django_db
@pytest.mark.postgres
@pytest.mark.redis
def test_a_flush_claims_applies_and_releases_batch_by_batch(redis_client: Any, enqueued: list[float]) -> None:
    messages = _many(5)
    _push(redis_client, *messages)
    result = status_buffer_flush(batch=2)
    assert (result.applied, result.batches, result.left) == (5, 3, 0)
    assert OutboundMessage.objects.filter(status=Status.DELIVERED).count() == 5
    assert redis_client.llen(BUFFER_KEY) == 0
    assert redis_client.zcard(CLAIMS_KEY) == 0
    assert redis_client.keys(CLAIM_PREFIX + "*") == []


@pytest.mark.django_db
@pytest.mark.postgres
@pytest.mark.redis
def test_what_arrives_during_a_flush_waits_for_the_flush_it_armed(
    redis_client: Any, enqueued: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flush that claimed less than a full batch has drained the backlog: the statuses pushed while it applied
    it armed the next flush, which takes them in one batch (one transaction, one wait for the disk) rather than
    this flush chasing them a few dozen at a time."""
    first, later = _many(3), _many(4)
    _push(redis_client, *first)
    real_apply = status_buffer.outbound_statuses_apply
    applied: list[int] = []

    def apply_while_callbacks_come(*, statuses: Any) -> Any:
        applied.append(len(statuses))
        if len(applied) == 1:
            _push(redis_client, *later)
        return real_apply(statuses=statuses)

    monkeypatch.setattr(status_buffer, "outbound_statuses_apply", apply_while_callbacks_come)
    enqueued.clear()
    result = status_buffer_flush(batch=100)
    assert (result.applied, result.batches, result.left) == (3, 1, 4)
    assert enqueued == [django_settings.SMS_STATUS_FLUSH_DELAY_SECONDS]  # armed by the first push during the flush
    assert status_buffer_flush(batch=100).applied == 4
    assert applied == [3, 4]
    assert OutboundMessage.objects.filter(status=Status.DELIVERED).count() == 7


@pytest.mark.django_db
@pytest.mark.postgres
@pytest.mark.redis
def test_out_of_time_a_flush_leaves_the_rest_to_the_next_one(redis_client: Any, enqueued: list[float]) -> None:
    messages = _many(5)
    _push(redis_client, *messages)
    enqueued.clear()
    result = status_buffer_flush(batch=2, budget_seconds=0)
    assert (result.applied, result.left) == (2, 3)
    assert enqueued == [django_settings.SMS_STATUS_FLUSH_DELAY_SECONDS]
    assert status_buffer_flush().left == 0
    assert OutboundMessage.objects.filter(status=Status.DELIVERED).count() == 5


@pytest.mark.django_db
@pytest.mark.postgres
@pytest.mark.redis
def test_a_claim_whose_flusher_died_goes_back_to_the_buffer_once_stale(
    redis_client: Any, enqueued: list[float], settings: Any
) -> None:
    messages = _many(3)
    _push(redis_client, *messages)
    scripts = status_buffer._scripts(os.getpid(), settings.REDIS_URL)
    token, items = status_buffer._claim(redis_client, scripts, 10)  # a flusher claims them, then dies
    assert len(items) == 3
    assert redis_client.llen(BUFFER_KEY) == 0
    enqueued.clear()
    result = status_buffer_flush()
    assert (result.recovered, result.applied) == (0, 0)  # not stale yet: its flusher may be alive and applying
    # ... so the flush comes back when the claim would be stale.
    assert len(enqueued) == 1
    assert enqueued[0] > settings.SMS_STATUS_FLUSH_STALE_SECONDS - 5
    # That delayed flush does not hold back the ones new callbacks arm meanwhile.
    [later] = _many(1)
    _push(redis_client, later)
    assert enqueued[1:] == [settings.SMS_STATUS_FLUSH_DELAY_SECONDS]
    settings.SMS_STATUS_FLUSH_STALE_SECONDS = 0
    result = status_buffer_flush()
    assert (result.recovered, result.applied) == (3, 4)
    assert OutboundMessage.objects.filter(status=Status.DELIVERED).count() == 4
    assert not redis_client.exists(CLAIM_PREFIX + token)
    assert redis_client.zcard(CLAIMS_KEY) == 0


@pytest.mark.django_db
@pytest.mark.postgres
@pytest.mark.redis
def test_a_batch_the_database_refuses_is_back_in_the_buffer_in_order(
    redis_client: Any, enqueued: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = _many(4)
    _push(redis_client, *messages)
    before = redis_client.lrange(BUFFER_KEY, 0, -1)

    def database_gone(**kwargs: Any) -> None:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(status_buffer, "outbound_statuses_apply", database_gone)
    with pytest.raises(OperationalError):
        status_buffer_flush(batch=3)
    assert redis_client.lrange(BUFFER_KEY, 0, -1) == before
    assert redis_client.zcard(CLAIMS_KEY) == 0
    monkeypatch.undo()
    assert status_buffer_flush().applied == 4


@pytest.mark.django_db
@pytest.mark.postgres
@pytest.mark.redis
def test_an_entry_the_flusher_cannot_read_is_logged_and_the_rest_applied(
    redis_client: Any, enqueued: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    [message] = _many(1)
    redis_client.rpush(BUFFER_KEY, b"not json")
    _push(redis_client, message)
    assert status_buffer_flush().applied == 2
    assert "cannot be read" in caplog.text
    assert OutboundMessage.objects.get().status == Status.DELIVERED


@pytest.mark.redis
def test_beat_runs_the_flush_on_the_priority_queue_as_a_safety_net() -> None:
    entry = celery_app.conf.beat_schedule["texts-statuses-flush"]
    assert entry["task"] == "texts.statuses_flush"
    assert entry["options"] == {"queue": "sms_priority"}
    assert entry["schedule"] == django_settings.SMS_STATUS_FLUSH_INTERVAL_SECONDS


# Where there is no buffer: the embedded defaults (no Redis) and SQLite


@pytest.mark.embedded
@pytest.mark.django_db
def test_the_embedded_defaults_apply_status_callbacks_in_the_request(settings: Any) -> None:
    configure(settings)
    assert not settings.REDIS_URL
    assert not status_buffer_enabled()
    assert "texts-statuses-flush" not in (celery_app.conf.beat_schedule or {})
    message = _sent()
    assert post(Client(), status_params(message.provider_sid or "", "delivered")).status_code == 200
    message.refresh_from_db()
    assert message.status == Status.DELIVERED
    assert TimelineEvent.objects.filter(kind="sms.delivered").count() == 1


@pytest.mark.embedded
@pytest.mark.django_db
def test_sqlite_applies_in_the_request_even_with_redis(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(settings)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"

    def no_redis() -> None:
        raise AssertionError("the buffer must not be used on SQLite")

    monkeypatch.setattr(status_buffer, "_redis", no_redis)
    assert not status_buffer_enabled()
    message = _sent()
    assert (
        post(Client(), status_params(message.provider_sid or "", "undelivered", error_code="30003")).status_code == 200
    )
    message.refresh_from_db()
    assert (message.status, message.error_code) == (Status.UNDELIVERED, "30003")
