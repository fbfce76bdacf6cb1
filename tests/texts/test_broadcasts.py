"""Broadcasts in-process: audience, fan-out, --limit, publish window, dry run, command output (SQLite and PostgreSQL).

The same paths run as real child processes and through a real worker in test_broadcast_processes.py.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db.models import Count
from django.utils import timezone

from contacts.models import Contact, DoNotContact, Segment, SegmentMembership
from contacts.services import dnc_add, segment_add_contacts, segment_remove_contacts
from tests.lock_helpers import lock_held_elsewhere
from texts.models import OutboundMessage, Source, Status, TextMessage
from texts.services import broadcasts

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_progress() -> None:
    # Progress lives in the cache, which outlives each test's rolled-back database (and its reused ids).
    cache.clear()


class Recorder:
    """Stands in for the Celery hand-off at unit level: the batches of row ids each run would enqueue."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __call__(self, ids: list[int]) -> None:
        self.batches.append(ids)


def make_segment(name: str, contacts: list[Contact]) -> Segment:
    segment = Segment.objects.create(name=name)
    segment_add_contacts(segment=segment, contact_ids=[c.pk for c in contacts], record=False)
    return segment


def make_broadcast(*segments: Segment, **fields: Any) -> TextMessage:
    text = TextMessage.objects.create(name=fields.pop("name", "Spring sale"), body="Hi {{first_name}}!", **fields)
    text.segments.set(segments)
    return text


def send(text: TextMessage, recorder: Recorder | None = None, **kwargs: Any) -> broadcasts.BroadcastRun:
    with_commit = recorder or Recorder()
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        return broadcasts.broadcast_send(text_message=text, enqueue=with_commit, **kwargs)


def per_contact(text: TextMessage) -> dict[int, int]:
    rows = OutboundMessage.objects.filter(text_message=text).values_list("contact_id").annotate(n=Count("id"))
    return dict(rows.values_list("contact_id", "n"))


def test_contact_in_three_overlapping_segments_gets_one_message(make_contact: Callable[..., Contact]) -> None:
    people = [make_contact() for _ in range(5)]
    a = make_segment("A", people[:3])
    b = make_segment("B", people[1:4])
    c = make_segment("C", [people[2], people[4]])
    text = make_broadcast(a, b, c)

    run = send(text)

    assert run.queued == 5
    assert per_contact(text) == {p.pk: 1 for p in people}
    assert set(OutboundMessage.objects.filter(text_message=text).values_list("source", "status").distinct()) == {
        (Source.BROADCAST, Status.QUEUED)
    }


def test_each_batch_is_one_task_of_its_new_row_ids_after_commit(make_contact: Callable[..., Contact]) -> None:
    people = [make_contact() for _ in range(7)]
    text = make_broadcast(make_segment("All", people))
    recorder = Recorder()

    run = send(text, recorder, batch=3)

    assert [len(b) for b in recorder.batches] == [3, 3, 1]
    assert sorted(i for b in recorder.batches for i in b) == sorted(
        OutboundMessage.objects.filter(text_message=text).values_list("pk", flat=True)
    )
    assert run.batches == 3


def test_second_run_sends_only_to_contacts_added_since(make_contact: Callable[..., Contact]) -> None:
    first = [make_contact() for _ in range(3)]
    segment = make_segment("Newsletter", first)
    text = make_broadcast(segment)
    assert send(text).queued == 3

    late = make_contact()
    segment_add_contacts(segment=segment, contact_ids=[late.pk], record=False)
    run = send(text)

    assert (run.queued, run.already_sent) == (1, 3)
    assert per_contact(text) == {c.pk: 1 for c in [*first, late]}


def test_dnc_added_between_runs_and_no_number_are_skipped_and_counted(make_contact: Callable[..., Contact]) -> None:
    people = [make_contact() for _ in range(4)]
    no_number = make_contact(mobile=None)
    segment = make_segment("Members", [*people, no_number])
    text = make_broadcast(segment)
    dnc_add(contact=people[0], reason=DoNotContact.Reason.UNSUBSCRIBED, source=DoNotContact.Source.MARKETER)

    run = send(text, limit=1)
    assert (run.queued, run.dnc, run.no_number, run.already_sent, run.remaining) == (1, 1, 1, 0, 2)

    dnc_add(contact=people[3], reason=DoNotContact.Reason.UNSUBSCRIBED, source=DoNotContact.Source.MARKETER)
    run = send(text)

    assert (run.queued, run.dnc, run.no_number, run.already_sent, run.remaining) == (1, 2, 1, 1, 0)
    assert set(per_contact(text)) == {people[1].pk, people[2].pk}
    assert "queued 1, skipped 2 Do Not Contact, 1 without a number, 1 already sent" in run.summary()
    assert run.summary().endswith("contacts in its segments, 1 batch)"), run.summary()  # not "1 batches"


def test_manually_removed_contact_is_not_sent(make_contact: Callable[..., Contact]) -> None:
    stay, leave = make_contact(), make_contact()
    # A filter-based segment keeps the removed contact's row, flagged manually_removed, to keep it out of rebuilds.
    segment = Segment.objects.create(name="Filtered", kind=Segment.Kind.FILTER)
    for contact in (stay, leave):
        SegmentMembership.objects.create(segment=segment, contact=contact)
    segment_remove_contacts(segment=segment, contact_ids=[leave.pk], record=False)
    assert SegmentMembership.objects.get(contact=leave).manually_removed
    text = make_broadcast(segment)

    send(text)

    assert set(per_contact(text)) == {stay.pk}


@pytest.mark.parametrize("limit", [1, 4, 5, 6, 9, 10, 11])
def test_limit_queues_exactly_that_many_never_one_batch_more(make_contact: Callable[..., Contact], limit: int) -> None:
    people = [make_contact() for _ in range(10)]
    text = make_broadcast(make_segment("Ten", people))

    run = send(text, limit=limit, batch=4)

    expected = min(limit, 10)
    assert run.queued == expected
    assert OutboundMessage.objects.filter(text_message=text).count() == expected
    # Lowest contact ids first, so a later run continues where this one stopped.
    assert sorted(per_contact(text)) == sorted(p.pk for p in people)[:expected]


def test_limit_counts_across_messages_in_one_command_run(make_contact: Callable[..., Contact]) -> None:
    people = [make_contact() for _ in range(4)]
    segment = make_segment("Four", people)
    first, second = make_broadcast(segment, name="First"), make_broadcast(segment, name="Second")

    out = io.StringIO()
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=False):
        call_command("send_broadcasts", "--limit", "6", "--batch", "3", stdout=out)

    assert OutboundMessage.objects.filter(text_message=first).count() == 4
    assert OutboundMessage.objects.filter(text_message=second).count() == 2
    assert "“First”: queued 4" in out.getvalue()
    assert "“Second”: queued 2" in out.getvalue()


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"is_published": False}, "unpublished"),
        ({"publish_up": timezone.now() + dt.timedelta(hours=1)}, "published from"),
        ({"publish_down": timezone.now() - dt.timedelta(minutes=1)}, "published until"),
    ],
)
def test_publish_window_outside_sends_nothing(
    make_contact: Callable[..., Contact], fields: dict[str, Any], reason: str
) -> None:
    text = make_broadcast(make_segment("S", [make_contact()]), **fields)

    out = io.StringIO()
    call_command("send_broadcasts", stdout=out)
    call_command("send_broadcasts", "--id", str(text.pk), stdout=out)

    assert not OutboundMessage.objects.exists()
    assert "No broadcast is due." in out.getvalue()
    assert reason in out.getvalue()


def test_publish_window_inside_sends(make_contact: Callable[..., Contact]) -> None:
    now = timezone.now()
    text = make_broadcast(
        make_segment("S", [make_contact()]),
        publish_up=now - dt.timedelta(hours=1),
        publish_down=now + dt.timedelta(hours=1),
    )
    assert list(broadcasts.broadcasts_due()) == [text]
    call_command("send_broadcasts", stdout=io.StringIO())
    assert OutboundMessage.objects.filter(text_message=text).count() == 1


def test_text_message_without_segments_is_not_a_broadcast(make_contact: Callable[..., Contact]) -> None:
    make_contact()
    TextMessage.objects.create(name="Transactional", body="Paid")
    assert list(broadcasts.broadcasts_due()) == []
    out = io.StringIO()
    call_command("send_broadcasts", stdout=out)
    assert not OutboundMessage.objects.exists()


def test_dry_run_prints_recipients_and_changes_nothing(make_contact: Callable[..., Contact]) -> None:
    people = [make_contact() for _ in range(3)]
    dnc_add(contact=people[2], reason=DoNotContact.Reason.MANUAL, source=DoNotContact.Source.MARKETER)
    text = make_broadcast(make_segment("S", people))

    out = io.StringIO()
    call_command("send_broadcasts", "--dry-run", "--batch", "1", stdout=out)

    printed = out.getvalue()
    assert not OutboundMessage.objects.exists()
    assert f"contact {people[0].pk}\t{people[0].mobile}" in printed
    assert f"contact {people[1].pk}\t{people[1].mobile}" in printed
    assert f"contact {people[2].pk}\t" not in printed
    assert "would send to 2 (skipping 1 Do Not Contact" in printed
    assert "Dry run: nothing was queued." in printed
    assert broadcasts.broadcast_progress(text_message_id=text.pk).state == ""


def test_audience_counts_are_disjoint(make_contact: Callable[..., Contact]) -> None:
    people = [make_contact() for _ in range(5)]
    no_number = make_contact(mobile=None)
    text = make_broadcast(make_segment("S", [*people, no_number]))
    send(text, limit=2)
    dnc_add(contact=people[0], reason=DoNotContact.Reason.MANUAL, source=DoNotContact.Source.MARKETER)  # already sent
    dnc_add(contact=people[4], reason=DoNotContact.Reason.MANUAL, source=DoNotContact.Source.MARKETER)

    audience = broadcasts.broadcast_audience(text_message=text)

    assert audience == broadcasts.Audience(contacts=6, already_sent=2, no_number=1, dnc=1, will_receive=2)


def test_bad_options_are_refused_clearly() -> None:
    with pytest.raises(CommandError, match="There is no text message 999"):
        call_command("send_broadcasts", "--id", "999", stdout=io.StringIO())
    with pytest.raises(CommandError, match="must be 1 or more"):
        call_command("send_broadcasts", "--limit", "0", stdout=io.StringIO())
    with pytest.raises(CommandError, match="not a whole number"):
        call_command("send_broadcasts", "--batch", "ten", stdout=io.StringIO())


def test_failure_exits_non_zero_after_other_messages_ran(
    make_contact: Callable[..., Contact], monkeypatch: pytest.MonkeyPatch
) -> None:
    segment = make_segment("S", [make_contact()])
    broken, fine = make_broadcast(segment, name="Broken"), make_broadcast(segment, name="Fine")
    real = broadcasts.broadcast_send

    def failing(*, text_message: TextMessage, **kwargs: Any) -> broadcasts.BroadcastRun:
        if text_message.pk == broken.pk:
            raise RuntimeError("database went away")
        return real(text_message=text_message, **kwargs)

    monkeypatch.setattr(broadcasts, "broadcast_send", failing)
    out = io.StringIO()
    with pytest.raises(CommandError, match="database went away"):
        call_command("send_broadcasts", stdout=out)
    assert OutboundMessage.objects.filter(text_message=fine).count() == 1
    assert broadcasts.broadcast_progress(text_message_id=broken.pk).state == "failed"


def test_progress_bar_only_on_a_terminal(make_contact: Callable[..., Contact]) -> None:
    make_broadcast(make_segment("S", [make_contact() for _ in range(3)]))

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    plain, tty = io.StringIO(), Terminal()
    call_command("send_broadcasts", "--batch", "1", "--limit", "1", stdout=plain)
    call_command("send_broadcasts", "--batch", "1", stdout=tty)

    assert "[" not in plain.getvalue().replace("(", "")
    assert "#" * broadcasts_bar() in tty.getvalue()
    assert "\r" in tty.getvalue()


def broadcasts_bar() -> int:
    from texts.management.commands.send_broadcasts import BAR_WIDTH

    return BAR_WIDTH


def test_beat_runs_the_job_every_minute_on_the_housekeeping_queue() -> None:
    import texts.tasks  # noqa: F401 - registers the tasks, as a worker's autodiscovery does
    from smsapp.celery import app

    entry = app.conf.beat_schedule["texts-send-broadcasts"]
    assert (entry["task"], entry["schedule"], entry["options"]["queue"]) == ("texts.broadcasts_send", 60.0, "default")
    assert "texts.broadcasts_send" in app.tasks
    assert "texts.broadcast_send" in app.tasks


def test_lock_held_elsewhere_makes_a_run_do_nothing(make_contact: Callable[..., Contact]) -> None:
    text = make_broadcast(make_segment("S", [make_contact()]))
    with lock_held_elsewhere(broadcasts.broadcast_lock_name(text.pk)):
        run = send(text)
    assert run.locked
    assert "another run is sending it" in run.summary()
    assert not OutboundMessage.objects.exists()
    # Released with the other session: the next run sends.
    assert send(text).queued == 1
