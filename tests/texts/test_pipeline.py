"""The sending pipeline in-process, with a recording provider at the transport boundary (unit level).

The same paths run against real workers and fake_twilio in test_fault.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
import time_machine
from django.utils import timezone

from contacts.models import Contact, DoNotContact, TimelineEvent
from contacts.services import dnc_add
from providers.base import ErrorKind, ProviderError, Sender
from texts import services
from texts.models import OutboundMessage, Schedule, Status, TextMessage
from texts.services import dispatch

from .conftest import NUMBERS, Pipeline, StubConfig, StubSenderConfig, server_error, transient

pytestmark = pytest.mark.django_db

NOON_PACIFIC = dt.datetime(2026, 6, 1, 19, 0, tzinfo=dt.UTC)  # 12:00 in Los Angeles, 20:00 London, 05:00 Sydney


def enqueue(text: TextMessage, contacts: list[Contact], source: str = "campaign") -> list[int]:
    services.outbound_enqueue(text_message=text, contacts=[c.pk for c in contacts], source=source)
    return list(OutboundMessage.objects.filter(text_message=text).order_by("pk").values_list("pk", flat=True))


def run(pipeline: Pipeline, ids: list[int]) -> services.BatchOutcome:
    return services.outbound_process_batch(message_ids=ids, **pipeline.kwargs())


def test_enqueue_skips_contacts_without_mobile_and_dnc(
    transactional_text: TextMessage, make_contact: Callable[..., Contact]
) -> None:
    ok = make_contact()
    no_mobile = make_contact(mobile=None)
    blocked = make_contact()
    dnc_add(contact=blocked, reason="unsubscribed", source="keyword")
    created = services.outbound_enqueue(
        text_message=transactional_text, contacts=Contact.objects.all(), source="broadcast"
    )
    assert created == 1
    row = OutboundMessage.objects.get()
    assert (row.contact_id, row.to_number, row.status) == (ok.pk, str(ok.mobile), Status.QUEUED)
    assert no_mobile.pk != row.contact_id


def test_broadcast_reaches_a_contact_once(
    transactional_text: TextMessage, make_contact: Callable[..., Contact]
) -> None:
    contacts = [make_contact() for _ in range(3)]
    ids = [c.pk for c in contacts]
    assert services.outbound_enqueue(text_message=transactional_text, contacts=ids, source="broadcast") == 3
    assert services.outbound_enqueue(text_message=transactional_text, contacts=ids, source="broadcast") == 0
    assert OutboundMessage.objects.count() == 3


def test_enqueue_sends_batches_to_the_right_queue_after_commit(
    transactional_text: TextMessage, make_contact: Callable[..., Contact], django_capture_on_commit_callbacks: Any
) -> None:
    contacts = [make_contact() for _ in range(3)]
    with (
        mock.patch("texts.tasks.outbound_send_batch.apply_async") as apply_async,
        django_capture_on_commit_callbacks(execute=True),
    ):
        services.outbound_enqueue(
            text_message=transactional_text, contacts=[c.pk for c in contacts], source="api", priority=True
        )
    ((_args, kwargs),) = [(c.args, c.kwargs) for c in apply_async.call_args_list]
    assert sorted(kwargs["args"][0]) == sorted(OutboundMessage.objects.values_list("pk", flat=True))
    assert kwargs["queue"] == "sms_priority"


def test_send_writes_sid_rendered_body_segments_and_timeline(
    pipeline: Pipeline, transactional_text: TextMessage, make_contact: Callable[..., Contact]
) -> None:
    contact = make_contact(first_name="Zoë")
    (pk,) = enqueue(transactional_text, [contact])
    outcome = run(pipeline, [pk])
    assert outcome.sent == [pk]
    row = OutboundMessage.objects.get(pk=pk)
    assert row.status == Status.SENT
    assert row.provider_sid
    assert row.provider_sid.startswith("SM")
    assert row.body == "Hi Zoë, paid."
    # "ë" is not in GSM 03.38: the template is GSM-7, the personalised body UCS-2; counted after personalisation.
    assert (row.segments, row.encoding) == (1, "UCS-2")
    assert row.attempts == 1
    assert row.provider_called_at is not None
    assert row.price is not None
    assert pipeline.provider.requests[0].body == "Hi Zoë, paid."
    assert TimelineEvent.objects.filter(contact=contact, kind="sms.sent").count() == 1


def test_dnc_checked_again_at_claim_time(
    pipeline: Pipeline, transactional_text: TextMessage, make_contact: Callable[..., Contact]
) -> None:
    contact = make_contact()
    (pk,) = enqueue(transactional_text, [contact])
    dnc_add(contact=contact, reason="unsubscribed", source="keyword")
    outcome = run(pipeline, [pk])
    assert outcome.failed == [pk]
    assert pipeline.provider.requests == []
    row = OutboundMessage.objects.get(pk=pk)
    assert (row.status, row.error_code) == (Status.FAILED, "do_not_contact")
    assert TimelineEvent.objects.filter(contact=contact, kind="sms.failed").count() == 1


@time_machine.travel(NOON_PACIFIC, tick=False)
def test_marketing_deferred_outside_quiet_hours_transactional_not(
    pipeline: Pipeline,
    marketing_text: TextMessage,
    transactional_text: TextMessage,
    make_contact: Callable[..., Contact],
    django_capture_on_commit_callbacks: Any,
) -> None:
    awake = make_contact(timezone="America/Los_Angeles")
    asleep = make_contact(timezone="Australia/Sydney", mobile="+61412345678", country="AU")
    marketing = enqueue(marketing_text, [awake, asleep])
    receipt = enqueue(transactional_text, [asleep])
    with (
        mock.patch("texts.tasks.outbound_send_batch.apply_async") as apply_async,
        django_capture_on_commit_callbacks(execute=True),
    ):
        outcome = run(pipeline, marketing + receipt)
    deferred = OutboundMessage.objects.get(text_message=marketing_text, contact=asleep)
    assert outcome.deferred == [deferred.pk]
    assert deferred.status == Status.QUEUED
    assert deferred.next_attempt_at == dt.datetime(2026, 6, 2, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=10)))
    assert deferred.attempts == 0
    # Three hours away: parked, never dropped, and no countdown task held by a broker for hours; the pacer wakes it
    # when the window opens (test_pacing.py).
    assert deferred.schedule == Schedule.PARKED
    assert not [c for c in apply_async.call_args_list if deferred.pk in c.kwargs["args"][0]]
    assert sorted(outcome.sent) == sorted(
        OutboundMessage.objects.filter(status=Status.SENT).values_list("pk", flat=True)
    )
    assert len(outcome.sent) == 2
    # A claim before the window opens takes nothing.
    assert run(pipeline, [deferred.pk]).sent == []


def test_permanent_error_fails_at_once(
    pipeline: Pipeline, transactional_text: TextMessage, make_contact: Callable[..., Contact]
) -> None:
    contact = make_contact()
    pipeline.provider.errors[str(contact.mobile)] = [
        ProviderError(ErrorKind.PERMANENT, "21211", "Invalid 'To' Phone Number", status=400)
    ]
    (pk,) = enqueue(transactional_text, [contact])
    assert run(pipeline, [pk]).failed == [pk]
    row = OutboundMessage.objects.get(pk=pk)
    assert (row.status, row.error_code, row.error_message) == (Status.FAILED, "21211", "Invalid 'To' Phone Number")
    assert not DoNotContact.objects.exists()


def test_opt_out_error_marks_contact_dnc(
    pipeline: Pipeline, transactional_text: TextMessage, make_contact: Callable[..., Contact]
) -> None:
    contact = make_contact()
    pipeline.provider.errors[str(contact.mobile)] = [
        ProviderError(ErrorKind.OPT_OUT, "21610", "Attempt to send to unsubscribed recipient", status=400)
    ]
    (pk,) = enqueue(transactional_text, [contact])
    run(pipeline, [pk])
    assert OutboundMessage.objects.get(pk=pk).error_code == "21610"
    entry = DoNotContact.objects.get(contact=contact)
    assert (entry.reason, entry.source, entry.lifted_at) == ("unsubscribed", "provider", None)


@pytest.mark.parametrize("max_attempts", [3])
def test_transient_errors_retry_with_backoff_then_fail(
    pipeline: Pipeline,
    transactional_text: TextMessage,
    make_contact: Callable[..., Contact],
    settings: Any,
    max_attempts: int,
) -> None:
    settings.SMS_MAX_ATTEMPTS = max_attempts
    settings.SMS_RETRY_BASE_SECONDS = 10
    contact = make_contact()
    pipeline.provider.errors[str(contact.mobile)] = [server_error() for _ in range(max_attempts)]
    (pk,) = enqueue(transactional_text, [contact])
    delays = []
    for attempt in range(1, max_attempts):
        before = timezone.now()
        assert run(pipeline, [pk]).retried == [pk]
        row = OutboundMessage.objects.get(pk=pk)
        assert (row.status, row.attempts, row.error_code) == (Status.QUEUED, attempt, "20500")
        assert row.next_attempt_at is not None
        delay = (row.next_attempt_at - before).total_seconds()
        assert 10 * 2 ** (attempt - 1) * 0.5 <= delay <= 10 * 2 ** (attempt - 1) + 1
        delays.append(delay)
        OutboundMessage.objects.filter(pk=pk).update(next_attempt_at=timezone.now())  # the countdown has elapsed
    assert run(pipeline, [pk]).failed == [pk]
    row = OutboundMessage.objects.get(pk=pk)
    assert row.status == Status.FAILED
    assert row.error_message.startswith(f"Gave up after {max_attempts} attempts")
    assert len(pipeline.provider.requests) == max_attempts


def test_a_throttled_send_is_retried_on_its_own_larger_budget(
    pipeline: Pipeline,
    transactional_text: TextMessage,
    make_contact: Callable[..., Contact],
    settings: Any,
) -> None:
    # 429 means the provider refused to look at the request (too many at once): nothing is wrong with the message, so
    # a burst of them must not fail it after the few attempts a server error gets.
    settings.SMS_MAX_ATTEMPTS = 2
    settings.SMS_MAX_THROTTLED_ATTEMPTS = 4
    settings.SMS_RETRY_BASE_SECONDS = 10
    contact, other = make_contact(), make_contact()
    pipeline.provider.errors[str(contact.mobile)] = [transient() for _ in range(3)]
    pipeline.provider.errors[str(other.mobile)] = [transient() for _ in range(4)]
    pks = enqueue(transactional_text, [contact, other])
    for _ in range(3):
        assert sorted(run(pipeline, pks).retried) == sorted(pks)
        OutboundMessage.objects.filter(pk__in=pks).update(next_attempt_at=timezone.now())
    outcome = run(pipeline, pks)
    assert (outcome.sent, outcome.failed) == ([pks[0]], [pks[1]])
    assert OutboundMessage.objects.get(pk=pks[0]).status == Status.SENT
    gave_up = OutboundMessage.objects.get(pk=pks[1])
    assert (gave_up.status, gave_up.error_code) == (Status.FAILED, "20429")
    assert gave_up.error_message.startswith("Gave up after 4 attempts")


def test_timeout_after_request_left_is_unknown_never_resent(
    pipeline: Pipeline, transactional_text: TextMessage, make_contact: Callable[..., Contact]
) -> None:
    contact = make_contact()
    pipeline.provider.errors[str(contact.mobile)] = [transient("timeout", may_have_sent=True)]
    (pk,) = enqueue(transactional_text, [contact])
    assert run(pipeline, [pk]).unknown == [pk]
    assert OutboundMessage.objects.get(pk=pk).status == Status.UNKNOWN
    assert run(pipeline, [pk]).sent == []
    assert len(pipeline.provider.requests) == 1


def test_number_pool_is_sticky_per_contact(
    pipeline: Pipeline, transactional_text: TextMessage, make_contact: Callable[..., Contact]
) -> None:
    contacts = [make_contact() for _ in range(6)]
    run(pipeline, enqueue(transactional_text, contacts, source="campaign"))
    first = dict(OutboundMessage.objects.values_list("contact_id", "sender"))
    assert set(first.values()) <= set(NUMBERS)
    # The contact who last heard from a number hears from it again even where the hash would pick another.
    OutboundMessage.objects.filter(contact=contacts[0]).update(
        sender=NUMBERS[2] if first[contacts[0].pk] != NUMBERS[2] else NUMBERS[0]
    )
    expected = OutboundMessage.objects.get(contact=contacts[0]).sender
    second = TextMessage.objects.create(name="Again", body="Again", category="transactional")
    run(pipeline, enqueue(second, contacts))
    again = dict(OutboundMessage.objects.filter(text_message=second).values_list("contact_id", "sender"))
    assert again[contacts[0].pk] == expected
    assert all(again[c.pk] == first[c.pk] for c in contacts[1:])
    assert {key for key, _, _ in pipeline.limiter.asks} <= {f"number:{n}" for n in NUMBERS}


def test_alphanumeric_sender_where_country_allows(
    pipeline: Pipeline, transactional_text: TextMessage, make_contact: Callable[..., Contact]
) -> None:
    pipeline.config = StubConfig(
        senders=(StubSenderConfig(Sender("alphanumeric", "ACME")), StubSenderConfig(Sender("number", NUMBERS[0])))
    )
    uk = make_contact(country="GB", mobile="+447911123456", timezone="Europe/London")
    us = make_contact(country="US")
    run(pipeline, enqueue(transactional_text, [uk, us]))
    senders = dict(OutboundMessage.objects.values_list("contact_id", "sender_kind"))
    assert senders == {uk.pk: "alphanumeric", us.pk: "number"}


def test_alphanumeric_only_fails_clearly_for_us(
    pipeline: Pipeline, transactional_text: TextMessage, make_contact: Callable[..., Contact]
) -> None:
    pipeline.config = StubConfig(senders=(StubSenderConfig(Sender("alphanumeric", "ACME")),))
    (pk,) = enqueue(transactional_text, [make_contact(country="US")])
    run(pipeline, [pk])
    row = OutboundMessage.objects.get(pk=pk)
    assert (row.status, row.error_code) == (Status.FAILED, "no_sender")
    assert "US" in row.error_message


def test_messaging_service_is_used_when_configured(
    pipeline: Pipeline, transactional_text: TextMessage, make_contact: Callable[..., Contact]
) -> None:
    pipeline.config = StubConfig(senders=(StubSenderConfig(Sender("messaging_service", "MG" + "0" * 32)),))
    run(pipeline, enqueue(transactional_text, [make_contact()]))
    assert pipeline.provider.requests[0].sender.kind == "messaging_service"


def test_rate_limit_asked_for_each_message_with_its_segments(
    pipeline: Pipeline, make_contact: Callable[..., Contact]
) -> None:
    text = TextMessage.objects.create(name="Long", body="x" * 200, category="transactional")
    run(pipeline, enqueue(text, [make_contact()]))
    ((_key, rate, ask),) = pipeline.limiter.asks
    assert (rate, ask.cost) == (1.0, 2)


def test_sweeper_requeues_uncalled_and_marks_called_unknown(
    pipeline: Pipeline, transactional_text: TextMessage, make_contact: Callable[..., Contact]
) -> None:
    a, b = make_contact(), make_contact()
    ids = enqueue(transactional_text, [a, b])
    _, rows = services.outbound_claim(message_ids=ids)
    assert len(rows) == 2
    # Worker "died": row a never reached the provider, row b had its call stamped.
    assert dispatch._mark_provider_called([rows[1]]) == [rows[1]]
    long_ago = timezone.now() - dt.timedelta(minutes=10)
    OutboundMessage.objects.filter(pk__in=ids).update(sending_at=long_ago)
    with mock.patch("texts.tasks.outbound_send_batch.apply_async"):
        result = services.outbound_sweep(stale_after=60)
    assert result.requeued == [rows[0].pk]
    assert result.unknown == [rows[1].pk]
    assert OutboundMessage.objects.get(pk=rows[0].pk).status == Status.QUEUED
    assert OutboundMessage.objects.get(pk=rows[1].pk).status == Status.UNKNOWN
    # The requeued row is sent normally; the unknown one is never sent again.
    outcome = run(pipeline, ids)
    assert outcome.sent == [rows[0].pk]
    assert [r.to for r in pipeline.provider.requests] == [str(a.mobile)]


def test_sweeper_queues_an_orphan_again_once_per_stale_period_not_at_every_sweep(
    transactional_text: TextMessage, make_contact: Callable[..., Contact], django_capture_on_commit_callbacks: Any
) -> None:
    ids = enqueue(transactional_text, [make_contact(), make_contact()])
    OutboundMessage.objects.filter(pk__in=ids).update(next_attempt_at=timezone.now() - dt.timedelta(minutes=10))
    with (
        mock.patch("texts.tasks.outbound_send_batch.apply_async") as apply_async,
        django_capture_on_commit_callbacks(execute=True),
    ):
        first = services.outbound_sweep(stale_after=60)
        second = services.outbound_sweep(stale_after=60)
    assert first.reenqueued == sorted(ids)
    assert second.reenqueued == []
    assert [call.kwargs["args"] for call in apply_async.call_args_list] == [(sorted(ids),)]
    assert OutboundMessage.objects.filter(pk__in=ids, status=Status.QUEUED).count() == 2
    # A stale period later they are orphans again (their task may be lost too).
    OutboundMessage.objects.filter(pk__in=ids).update(next_attempt_at=timezone.now() - dt.timedelta(minutes=2))
    with mock.patch("texts.tasks.outbound_send_batch.apply_async"):
        assert services.outbound_sweep(stale_after=60).reenqueued == sorted(ids)


def test_swept_row_cannot_be_sent_by_the_worker_that_lost_it(
    transactional_text: TextMessage, make_contact: Callable[..., Contact]
) -> None:
    (pk,) = enqueue(transactional_text, [make_contact()])
    _, (old_row,) = services.outbound_claim(message_ids=[pk])
    OutboundMessage.objects.filter(pk=pk).update(sending_at=timezone.now() - dt.timedelta(minutes=10))
    services.outbound_sweep(stale_after=60)
    _, (new_row,) = services.outbound_claim(message_ids=[pk])
    assert dispatch._mark_provider_called([old_row]) == []
    assert dispatch._mark_provider_called([new_row]) == [new_row]


def test_test_send_goes_to_any_number_on_priority(
    pipeline: Pipeline, marketing_text: TextMessage, django_capture_on_commit_callbacks: Any
) -> None:
    with (
        mock.patch("texts.tasks.outbound_send_batch.apply_async") as apply_async,
        django_capture_on_commit_callbacks(execute=True),
    ):
        message = services.test_send(text_message=marketing_text, to_number="+447911123456")
    assert apply_async.call_args.kwargs["queue"] == "sms_priority"
    assert message.contact is None
    run(pipeline, [message.pk])
    message.refresh_from_db()
    assert message.status == Status.SENT
    # A test of a marketing text shows what its first recipient gets: the opt-out footer too (texts/footer.py).
    assert message.body == "Hi , 20% off today!\nReply STOP to opt out"


def test_a_bulk_message_whose_slot_is_far_is_parked_without_calling_the_provider(
    pipeline: Pipeline, marketing_text: TextMessage, make_contact: Callable[..., Contact], settings: Any
) -> None:
    settings.SMS_QUIET_HOURS_START, settings.SMS_QUIET_HOURS_END = "00:00", "23:59"
    (pk,) = enqueue(marketing_text, [make_contact()], source="broadcast")
    pipeline.limiter.later = 42.0
    with mock.patch("texts.tasks.outbound_send_batch.apply_async") as apply_async:
        outcome = services.outbound_process_batch(message_ids=[pk], **pipeline.kwargs())
    assert outcome.parked == [pk]
    row = OutboundMessage.objects.get(pk=pk)
    assert (row.status, row.schedule, row.attempts, row.provider_called_at) == (Status.QUEUED, "parked", 0, None)
    assert row.sender in NUMBERS  # in its sender's line
    assert pipeline.provider.requests == []
    assert not apply_async.called  # no task waits for it: the pacer hands it a slot


def test_a_priority_message_whose_slot_is_far_holds_it_and_comes_back_then(
    pipeline: Pipeline,
    transactional_text: TextMessage,
    make_contact: Callable[..., Contact],
    django_capture_on_commit_callbacks: Any,
) -> None:
    (pk,) = enqueue(transactional_text, [make_contact()])
    OutboundMessage.objects.filter(pk=pk).update(priority=True)
    pipeline.limiter.later = 3.0
    with (
        mock.patch("texts.tasks.outbound_send_batch.apply_async") as apply_async,
        django_capture_on_commit_callbacks(execute=True),
    ):
        outcome = services.outbound_process_batch(message_ids=[pk], **pipeline.kwargs())
    assert outcome.held == [pk]
    row = OutboundMessage.objects.get(pk=pk)
    assert (row.status, row.schedule, row.provider_called_at) == (Status.QUEUED, "held", None)
    assert row.next_attempt_at is not None
    assert row.next_attempt_at > timezone.now() + dt.timedelta(seconds=2)
    (call,) = apply_async.call_args_list
    assert call.kwargs["args"] == ([pk],)
    assert call.kwargs["queue"] == "sms_priority"
    assert call.kwargs["countdown"] == pytest.approx(3.0, abs=0.3)
    assert pipeline.provider.requests == []
    # When it comes back it goes without asking the limiter again: the slot is its own.
    OutboundMessage.objects.filter(pk=pk).update(next_attempt_at=timezone.now())
    asked = len(pipeline.limiter.asks)
    assert services.outbound_process_batch(message_ids=[pk], **pipeline.kwargs()).sent == [pk]
    assert len(pipeline.limiter.asks) == asked


def test_batches_claim_in_small_chunks(
    pipeline: Pipeline, transactional_text: TextMessage, make_contact: Callable[..., Contact], settings: Any
) -> None:
    settings.SMS_CLAIM_CHUNK = 4
    ids = enqueue(transactional_text, [make_contact() for _ in range(4 + 3)])
    claimed_sizes: list[int] = []
    real_claim = dispatch.outbound_claim

    def spy(*, message_ids: list[int], **kwargs: Any) -> Any:
        token, rows = real_claim(message_ids=message_ids, **kwargs)
        claimed_sizes.append(len(rows))
        return token, rows

    with mock.patch.object(dispatch, "outbound_claim", spy):
        outcome = run(pipeline, ids)
    assert claimed_sizes == [4, 3]
    assert len(outcome.sent) == len(ids)


def test_sweeper_is_scheduled_every_minute() -> None:
    import texts.tasks  # noqa: F401 - registers the tasks, as a worker's autodiscovery does
    from smsapp.celery import app

    entry = app.conf.beat_schedule["texts-outbound-sweep"]
    assert (entry["task"], entry["schedule"]) == ("texts.outbound_sweep", 60.0)
    assert "texts.outbound_sweep" in app.tasks


def test_a_call_whose_slot_was_taken_meanwhile_waits_for_the_next_and_is_sent_once(
    pipeline: Pipeline, transactional_text: TextMessage, make_contact: Callable[..., Contact]
) -> None:
    """The slot is reserved at the moment of the call: another worker took the planned one, so this call does not
    start; its stamp is taken back (nothing reached the provider) and it goes at the sender's next slot."""
    (pk,) = enqueue(transactional_text, [make_contact()])
    pipeline.limiter.later_at_the_call = 0.3
    outcome = run(pipeline, [pk])
    assert outcome.sent == [pk]
    assert len(pipeline.provider.requests) == 1
    assert len(pipeline.limiter.asks) == 2  # the refused reservation, then the one that went
    row = OutboundMessage.objects.get(pk=pk)
    assert (row.status, row.attempts) == (Status.SENT, 1)


def test_a_call_whose_slot_went_far_away_parks_the_bulk_message_untouched(
    pipeline: Pipeline, marketing_text: TextMessage, make_contact: Callable[..., Contact], settings: Any
) -> None:
    settings.SMS_QUIET_HOURS_START, settings.SMS_QUIET_HOURS_END = "00:00", "23:59"
    (pk,) = enqueue(marketing_text, [make_contact()], source="broadcast")
    pipeline.limiter.later_at_the_call = 30.0
    outcome = run(pipeline, [pk])
    assert outcome.parked == [pk]
    assert pipeline.provider.requests == []
    row = OutboundMessage.objects.get(pk=pk)
    assert (row.status, row.schedule, row.attempts, row.provider_called_at) == (Status.QUEUED, "parked", 0, None)


def test_a_rate_limiter_that_cannot_be_reached_at_the_call_sends_nothing_and_retries_the_message(
    pipeline: Pipeline, transactional_text: TextMessage, make_contact: Callable[..., Contact]
) -> None:
    """Redis gone between planning and the call: no slot, so no call, and the message is retried with backoff (it is
    not ``unknown``: nothing can have reached the provider)."""
    (pk,) = enqueue(transactional_text, [make_contact()])
    real = pipeline.limiter.reserve

    def down(**kwargs: Any) -> Any:
        if kwargs.get("peek"):
            return real(**kwargs)
        raise ConnectionError("Redis is gone")

    with (
        mock.patch.object(pipeline.limiter, "reserve", side_effect=down),
        mock.patch("texts.tasks.outbound_send_batch.apply_async"),
    ):
        outcome = run(pipeline, [pk])
    assert outcome.retried == [pk]
    assert pipeline.provider.requests == []
    row = OutboundMessage.objects.get(pk=pk)
    assert (row.status, row.error_code) == (Status.QUEUED, "rate_limiter")


def test_a_held_message_whose_task_comes_a_moment_early_goes_at_its_slot_not_before(
    pipeline: Pipeline, transactional_text: TextMessage, make_contact: Callable[..., Contact]
) -> None:
    """A countdown is rounded and a broker's clock is not ours: a task may run just before the slot it was timed to.
    The row is claimed anyway (it is due within the horizon) and sent at its slot, never lost to the sweeper."""
    import time

    (pk,) = enqueue(transactional_text, [make_contact()])
    slot = timezone.now() + dt.timedelta(seconds=0.3)
    OutboundMessage.objects.filter(pk=pk).update(priority=True, schedule=Schedule.HELD, next_attempt_at=slot)
    sent_at: list[float] = []
    real = pipeline.provider.send

    def timed(request: Any) -> Any:
        sent_at.append(time.time())
        return real(request)

    with mock.patch.object(pipeline.provider, "send", timed):
        outcome = run(pipeline, [pk])
    assert outcome.sent == [pk]
    assert sent_at[0] >= slot.timestamp() - 0.005
    assert pipeline.limiter.asks == []  # its slot was its own already
