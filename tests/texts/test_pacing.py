"""The pacer hands each sender's free capacity to its parked messages, oldest first, with tasks timed to the slots;
it wakes messages parked until a time (quiet hours, long backoff) when that time comes, and re-queues the line of a
sender that is no longer configured. Real limiter (Redis or the file store), in-process."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from django.utils import timezone

from contacts.models import Contact
from providers.base import Sender
from providers.ratelimit import Ask, Lane, get_limiter
from texts import services
from texts.models import OutboundMessage, Schedule, Status, TextMessage

from .conftest import StubConfig, StubSenderConfig

pytestmark = pytest.mark.django_db

NUMBER = "+14155550009"


@pytest.fixture(autouse=True)
def _exact_spacing(settings: Any) -> None:
    """The pacer's counts at the sender's exact rate; the allowance for late requests (which spaces every slot a
    little wider, the pacer's hand-outs included) is tests/providers/test_ratelimit.py's."""
    settings.SMS_SEND_JITTER_SECONDS = 0.0


@pytest.fixture
def one_per_second(settings: Any) -> StubConfig:
    import uuid

    # A sender of its own per test, so the shared limiter's state of another test cannot leak in.
    number = f"+1415555{uuid.uuid4().int % 10000:04d}"
    return StubConfig(senders=(StubSenderConfig(Sender("number", number), 1.0),))


def _parked(text: TextMessage, contacts: list[Contact], *, sender: str, ago: float = 60.0) -> list[int]:
    services.outbound_enqueue(text_message=text, contacts=[c.pk for c in contacts], source="broadcast")
    ids = list(OutboundMessage.objects.filter(text_message=text).order_by("pk").values_list("pk", flat=True))
    base = timezone.now() - dt.timedelta(seconds=ago)
    for i, pk in enumerate(ids):
        OutboundMessage.objects.filter(pk=pk).update(
            schedule=Schedule.PARKED,
            sender=sender,
            sender_kind="number",
            segments=1,
            next_attempt_at=base + dt.timedelta(seconds=i),
        )
    return ids


@pytest.fixture
def pace(django_capture_on_commit_callbacks: Any) -> Callable[[StubConfig], tuple[services.PaceResult, list[Any]]]:
    """One pacer tick; returns its result and the tasks it enqueued (after its transaction committed)."""

    def tick(config: StubConfig) -> tuple[services.PaceResult, list[Any]]:
        with (
            mock.patch("texts.tasks.outbound_send_batch.apply_async") as apply_async,
            django_capture_on_commit_callbacks(execute=True),
        ):
            result = services.outbound_pace(get_config=lambda: config, limiter=get_limiter())
        return result, apply_async.call_args_list

    return tick


def test_parked_messages_get_the_senders_capacity_oldest_first_with_timed_tasks(
    one_per_second: StubConfig,
    marketing_text: TextMessage,
    make_contact: Callable[..., Contact],
    pace: Any,
) -> None:
    sender = one_per_second.senders[0].sender.value
    ids = _parked(marketing_text, [make_contact() for _ in range(5)], sender=sender)
    before = time.time()
    result, calls = pace(one_per_second)
    took = time.time() - before  # the hand-out starts inside the tick; its tasks are timed from the moment they go
    # Two seconds of a one-per-second sender: the two oldest, each with a task at its own slot.
    assert result.handed == {sender: 2}
    paced = list(OutboundMessage.objects.filter(schedule=Schedule.PACED).order_by("pk").values_list("pk", flat=True))
    assert paced == ids[:2]
    assert [c.kwargs["args"][0] for c in calls] == [[ids[0]], [ids[1]]]
    countdowns = [c.kwargs["countdown"] for c in calls]
    assert countdowns[0] == pytest.approx(0, abs=0.2)
    # The second slot is one second after the hand-out's start, less what the tick took after it (tenths, down).
    assert 1 - took - 0.1 - 1e-6 <= countdowns[1] <= 1 + 1e-6
    assert {c.kwargs["queue"] for c in calls} == {"sms_bulk"}
    # The window is handed out: a second tick at once hands out nothing more, and nothing was lost.
    again, calls = pace(one_per_second)
    assert (again.handed, calls) == ({}, [])
    assert OutboundMessage.objects.filter(schedule=Schedule.PARKED).count() == 3


def test_priority_sends_take_capacity_before_the_parked_line(
    one_per_second: StubConfig,
    marketing_text: TextMessage,
    make_contact: Callable[..., Contact],
    pace: Any,
) -> None:
    sender_config = one_per_second.senders[0]
    _parked(marketing_text, [make_contact() for _ in range(5)], sender=sender_config.sender.value)
    limiter = get_limiter()
    asks = [Ask(1, Lane.PRIORITY)] * 2
    limiter.reserve(sender_key=sender_config.key, rate_per_second=1, asks=asks, horizon=0.5)
    result, _ = pace(one_per_second)
    # The priority sends hold the next two seconds, which is the whole window: the line waits.
    assert result.handed == {}


def test_multi_segment_messages_take_their_share(
    one_per_second: StubConfig,
    marketing_text: TextMessage,
    make_contact: Callable[..., Contact],
    pace: Any,
) -> None:
    sender = one_per_second.senders[0].sender.value
    ids = _parked(marketing_text, [make_contact() for _ in range(3)], sender=sender)
    OutboundMessage.objects.filter(pk=ids[0]).update(segments=2)
    result, calls = pace(one_per_second)
    assert result.handed == {sender: 1}  # two segments fill the two-second window of a 1/s sender
    assert [c.kwargs["args"][0] for c in calls] == [[ids[0]]]


def test_a_message_parked_until_later_waits_for_its_time(
    one_per_second: StubConfig,
    marketing_text: TextMessage,
    make_contact: Callable[..., Contact],
    pace: Any,
) -> None:
    sender = one_per_second.senders[0].sender.value
    (pk,) = _parked(marketing_text, [make_contact()], sender=sender)
    OutboundMessage.objects.filter(pk=pk).update(next_attempt_at=timezone.now() + dt.timedelta(hours=3))
    assert pace(one_per_second)[0].handed == {}
    OutboundMessage.objects.filter(pk=pk).update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
    assert pace(one_per_second)[0].handed == {sender: 1}


def test_the_line_of_a_sender_no_longer_configured_is_queued_again_to_choose_another(
    one_per_second: StubConfig,
    marketing_text: TextMessage,
    make_contact: Callable[..., Contact],
    pace: Any,
) -> None:
    from django.core.cache import cache

    cache.delete("smsapp:pacer:no-orphans")
    ids = _parked(marketing_text, [make_contact() for _ in range(3)], sender="+14155550000")
    OutboundMessage.objects.filter(pk=ids[2]).update(sender="")  # parked before a sender was chosen
    result, calls = pace(one_per_second)
    assert result.orphans == 3
    assert sorted(pk for c in calls for pk in c.kwargs["args"][0]) == ids
    assert set(OutboundMessage.objects.values_list("schedule", flat=True)) == {Schedule.NONE}
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {Status.QUEUED}


def test_a_paced_message_whose_slot_was_taken_goes_back_to_the_front_of_the_line(
    pipeline: Any, marketing_text: TextMessage, make_contact: Callable[..., Contact], settings: Any
) -> None:
    settings.SMS_QUIET_HOURS_START, settings.SMS_QUIET_HOURS_END = "00:00", "23:59"
    first, second = _parked(marketing_text, [make_contact(), make_contact()], sender=NUMBER, ago=600)
    OutboundMessage.objects.filter(pk=first).update(schedule=Schedule.PACED)
    before = OutboundMessage.objects.get(pk=first).next_attempt_at
    pipeline.limiter.later = 5.0  # a priority send took the slot it was handed
    outcome = services.outbound_process_batch(message_ids=[first], **pipeline.kwargs())
    assert outcome.parked == [first]
    row = OutboundMessage.objects.get(pk=first)
    assert (row.status, row.schedule, row.next_attempt_at) == (Status.QUEUED, Schedule.PARKED, before)
    assert row.next_attempt_at < OutboundMessage.objects.get(pk=second).next_attempt_at
    assert pipeline.provider.requests == []


def test_the_pacer_runs_every_second_on_the_priority_queue() -> None:
    import texts.tasks  # noqa: F401 - registers the tasks, as a worker's autodiscovery does
    from smsapp.celery import app

    entry = app.conf.beat_schedule["texts-outbound-pace"]
    assert (entry["task"], entry["schedule"], entry["options"]["queue"]) == ("texts.outbound_pace", 1.0, "sms_priority")
    assert "texts.outbound_pace" in app.tasks
