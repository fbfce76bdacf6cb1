"""The web process's relay (``texts.status_buffer._Relay``): a status callback hands its status over in memory and
answers; a thread pushes what arrived in the last few milliseconds to the Redis buffer in one round trip, applies
them itself when Redis is unreachable, and pushes what it still holds when the process exits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from contacts.models import Contact
from providers.twilio.testing import configure, post, sid, status_params
from texts import status_buffer
from texts.models import OutboundMessage, Source, Status
from texts.status_buffer import BUFFER_KEY, CLAIM_PREFIX, CLAIMS_KEY, PENDING_KEY, RECHECK_KEY, BufferedStatus

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def relay(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, list[int]]]:
    """The buffer and its relay on, as deployed; the real Redis with the buffer's keys empty; flushes recorded."""
    import redis

    configure(settings)
    settings.SMS_STATUS_BUFFER = True
    settings.SMS_STATUS_RELAY = True
    settings.SMS_STATUS_RELAY_DELAY_SECONDS = 0.05
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = [BUFFER_KEY, PENDING_KEY, RECHECK_KEY, CLAIMS_KEY]
    client.delete(*keys, *client.keys(CLAIM_PREFIX + "*"))
    pushes: list[int] = []
    real_push = status_buffer.status_buffer_push

    def counting(**kwargs: Any) -> bool:
        pushes.append(len(kwargs.get("statuses", ())) + (1 if kwargs.get("status") else 0))
        return real_push(**kwargs)

    monkeypatch.setattr(status_buffer, "status_buffer_push", counting)
    monkeypatch.setattr(status_buffer, "_enqueue_flush", lambda **kwargs: True)
    yield client, pushes
    client.delete(*keys, *client.keys(CLAIM_PREFIX + "*"))


def _sent(n: int) -> list[OutboundMessage]:
    contact = Contact.objects.create(mobile="+14155550123")
    return [
        OutboundMessage.objects.create(
            contact=contact,
            to_number="+14155550123",
            source=Source.API,
            status=Status.SENT,
            provider_sid=sid(),
            sent_at=timezone.now(),
        )
        for _ in range(n)
    ]


def _wait(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + 10
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_callbacks_answer_at_once_and_reach_the_buffer_in_one_push(relay: tuple[Any, list[int]], settings: Any) -> None:
    client, pushes = relay
    messages = _sent(5)
    web = Client()
    # The five must land within one of the relay's waits however loaded the machine is (one test-client request
    # took over 10 ms at a load of 17).
    settings.SMS_STATUS_RELAY_DELAY_SECONDS = 1.0
    for message in messages:
        assert post(web, status_params(message.provider_sid or "", "delivered")).status_code == 200
    _wait(lambda: client.llen(BUFFER_KEY) == 5, "the relay to push")
    assert pushes == [5]  # five callbacks within the relay's few milliseconds: one round trip
    buffered = {BufferedStatus.loads(raw).message_sid for raw in client.lrange(BUFFER_KEY, 0, -1)}
    assert buffered == {m.provider_sid for m in messages}
    assert status_buffer.status_buffer_flush().applied == 5
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {Status.DELIVERED}


def test_with_redis_unreachable_the_relay_applies_the_statuses_itself(
    relay: tuple[Any, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    def down(**kwargs: Any) -> Any:
        raise redis.exceptions.ConnectionError("Redis is gone")

    monkeypatch.setattr(status_buffer._Scripts, "__init__", lambda self, client: setattr(self, "push", down))
    status_buffer._scripts.cache_clear()
    messages = _sent(3)
    web = Client()
    for message in messages:
        assert post(web, status_params(message.provider_sid or "", "delivered")).status_code == 200
    _wait(
        lambda: OutboundMessage.objects.filter(status=Status.DELIVERED).count() == 3,
        "the relay to apply the statuses itself",
    )
    status_buffer._scripts.cache_clear()
    status_buffer._down_until.clear()


def test_what_the_relay_holds_is_pushed_when_the_process_exits(relay: tuple[Any, list[int]]) -> None:
    client, _ = relay
    (message,) = _sent(1)
    held = status_buffer._relay()
    with held.lock:  # the thread cannot take it before "exit"
        held.items.append(BufferedStatus(message.provider_sid or "", Status.DELIVERED, "", None, time.time()))
    held.drain()  # registered with atexit: what a graceful stop runs
    assert client.llen(BUFFER_KEY) == 1


def test_callbacks_under_load_never_wake_the_thread_and_none_is_left_behind(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """Waking the thread cost a callback more than the rest of the hand-over: while callbacks keep coming the thread
    polls, so only the first callback after a quiet spell wakes it. Adders racing the drain from several threads
    still get every status pushed."""
    import threading

    settings.SMS_STATUS_RELAY_DELAY_SECONDS = 0.001
    pushed: list[str] = []
    lock = threading.Lock()

    def push(**kwargs: Any) -> bool:
        with lock:
            pushed.extend(s.message_sid for s in kwargs["statuses"])
        return True

    monkeypatch.setattr(status_buffer, "status_buffer_push", push)
    relay = status_buffer._Relay()
    relay.IDLE_POLLS = 10_000  # about 10 s at 1 ms: the thread does not go idle during the stream below
    wakes: list[int] = []
    real_set = relay.wake.set
    monkeypatch.setattr(relay.wake, "set", lambda: (wakes.append(1), real_set())[-1])
    with relay.lock:  # 50 callbacks wait for the lock together, then hand over one after another
        for i in range(50):
            threading.Thread(target=relay.add, args=(BufferedStatus(f"SMa{i}", Status.DELIVERED),)).start()
        time.sleep(0.05)
    _wait(lambda: len(pushed) == 50, "the relay to push the first 50")
    assert wakes == [1]  # the first callback woke the idle thread; the other 49 found it awake

    def adder(n: int) -> None:
        for i in range(200):
            relay.add(BufferedStatus(f"SMb{n}-{i}", Status.DELIVERED))
            if i % 50 == 0:
                time.sleep(0.002)

    threads = [threading.Thread(target=adder, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _wait(lambda: len(pushed) == 850, "every status pushed")
    assert wakes == [1]  # 800 more callbacks over many polls, in many pushes: not one woke the thread
    assert sorted(pushed) == sorted(
        [f"SMa{i}" for i in range(50)] + [f"SMb{n}-{i}" for n in range(4) for i in range(200)]
    )


def test_an_idle_relay_stops_polling_and_the_next_callback_wakes_it(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.SMS_STATUS_RELAY_DELAY_SECONDS = 0.001
    pushed: list[str] = []
    monkeypatch.setattr(
        status_buffer, "status_buffer_push", lambda **kw: (pushed.extend(s.message_sid for s in kw["statuses"]), 1)[1]
    )
    relay = status_buffer._Relay()
    relay.IDLE_POLLS = 5
    relay.add(BufferedStatus("SMc1", Status.DELIVERED))
    _wait(lambda: pushed == ["SMc1"], "the first push")
    _wait(lambda: relay.idle and not relay.wake.is_set(), "the relay to go idle after its empty polls")
    time.sleep(0.05)
    assert relay.idle  # still idle: nothing came, nothing polls
    relay.add(BufferedStatus("SMc2", Status.DELIVERED))
    assert not relay.idle
    _wait(lambda: pushed == ["SMc1", "SMc2"], "the woken relay to push")
