"""Materialised membership: set-based rebuilds, manual additions and removals, counts, the lock, the command."""

from __future__ import annotations

import threading
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection

from contacts.models import Contact, Segment, SegmentMembership, TimelineEvent
from contacts.services import (
    _exclusive,
    segment_add_contacts,
    segment_member_ids,
    segment_rebuild,
    segment_remove_contacts,
    segments_rebuild_all,
)

pytestmark = pytest.mark.django_db

SMITHS = {"match": "all", "rules": [{"field": "last_name", "operator": "equals", "value": "Smith"}]}


def members(segment: Segment) -> set[int]:
    return set(
        SegmentMembership.objects.filter(segment=segment, manually_removed=False).values_list("contact_id", flat=True)
    )


def test_rebuild_adds_matches_and_removes_leavers(
    make_contact: Callable[..., Contact], filter_segment: Callable[..., Segment]
) -> None:
    ann, bob = make_contact(last_name="Smith"), make_contact(last_name="Smith")
    make_contact(last_name="Jones")
    segment = filter_segment(SMITHS["rules"])
    assert segment_rebuild(segment=segment) == {"added": 2, "removed": 0, "members": 2}
    assert members(segment) == {ann.pk, bob.pk}
    Contact.objects.filter(pk=bob.pk).update(last_name="Brown")
    assert segment_rebuild(segment=segment) == {"added": 0, "removed": 1, "members": 1}
    segment.refresh_from_db()
    assert segment.member_count == 1
    assert segment.rebuilt_at is not None
    # Nothing changed: a second rebuild is a no-op.
    assert segment_rebuild(segment=segment) == {"added": 0, "removed": 0, "members": 1}


def test_manual_removal_stays_out_and_manual_addition_stays_in(
    make_contact: Callable[..., Contact], filter_segment: Callable[..., Segment]
) -> None:
    ann, bob, outsider = make_contact(last_name="Smith"), make_contact(last_name="Smith"), make_contact(last_name="X")
    late = make_contact(last_name="Smith")
    segment = filter_segment(SMITHS["rules"])
    segment_rebuild(segment=segment)
    segment_remove_contacts(segment=segment, contact_ids=[bob.pk])
    segment_add_contacts(segment=segment, contact_ids=[outsider.pk])
    # Removed before it was ever materialised: still kept out.
    Contact.objects.filter(pk=late.pk).update(last_name="Jones")
    segment_remove_contacts(segment=segment, contact_ids=[late.pk])
    Contact.objects.filter(pk=late.pk).update(last_name="Smith")
    segment_rebuild(segment=segment)
    assert members(segment) == {ann.pk, outsider.pk}
    segment.refresh_from_db()
    assert segment.member_count == 2
    # Adding a removed contact back by hand undoes the removal.
    segment_add_contacts(segment=segment, contact_ids=[bob.pk])
    segment_rebuild(segment=segment)
    assert members(segment) == {ann.pk, outsider.pk, bob.pk}


def test_static_segment_add_remove_is_set_based_and_recorded(make_contact: Callable[..., Contact]) -> None:
    contacts = [make_contact() for _ in range(5)]
    segment = Segment.objects.create(name="Static")
    ids = [c.pk for c in contacts]
    assert segment_add_contacts(segment=segment, contact_ids=[*ids, 999_999]) == 5
    assert segment_add_contacts(segment=segment, contact_ids=ids) == 0  # already in
    assert segment_remove_contacts(segment=segment, contact_ids=ids[:2]) == 2
    segment.refresh_from_db()
    assert segment.member_count == 3
    assert not SegmentMembership.objects.filter(segment=segment, contact_id__in=ids[:2]).exists()
    kinds = list(TimelineEvent.objects.filter(contact=contacts[0]).values_list("kind", flat=True))
    assert sorted(kinds) == ["segment.added", "segment.removed"]
    # Static segments are only recounted by a rebuild, never emptied.
    assert segment_rebuild(segment=segment)["members"] == 3


def test_segment_member_ids_unions_segments_without_removed(
    make_contact: Callable[..., Contact],
) -> None:
    a, b, c = make_contact(), make_contact(), make_contact()
    one, two = Segment.objects.create(name="One"), Segment.objects.create(name="Two", kind=Segment.Kind.FILTER)
    segment_add_contacts(segment=one, contact_ids=[a.pk, b.pk])
    segment_add_contacts(segment=two, contact_ids=[b.pk, c.pk])
    segment_remove_contacts(segment=two, contact_ids=[c.pk])
    ids = segment_member_ids([one.pk, two.pk])
    assert sorted(ids) == [a.pk, b.pk]
    assert list(Contact.objects.filter(id__in=ids, pk=a.pk).values_list("pk", flat=True)) == [a.pk]


def test_update_segments_command(make_contact: Callable[..., Contact], filter_segment: Callable[..., Segment]) -> None:
    make_contact(last_name="Smith")
    segment = filter_segment(SMITHS["rules"], name="Smiths")
    other = filter_segment(SMITHS["rules"], name="Other")
    out = StringIO()
    call_command("update_segments", "--id", str(segment.pk), stdout=out)
    assert "Smiths: +1 -0 = 1 members" in out.getvalue()
    other.refresh_from_db()
    assert other.member_count == 0
    call_command("update_segments", stdout=out)
    other.refresh_from_db()
    assert other.member_count == 1


@pytest.mark.parametrize("lock", ["as_configured", "without_redis"])
def test_rebuild_all_skips_while_another_run_holds_the_lock(
    make_contact: Callable[..., Contact], filter_segment: Callable[..., Segment], settings: Any, lock: str
) -> None:
    # Redis lock when REDIS_URL is set; otherwise an advisory lock on PostgreSQL, a file lock on SQLite.
    if lock == "without_redis":
        settings.REDIS_URL = ""
    make_contact(last_name="Smith")
    segment = filter_segment(SMITHS["rules"])
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        try:
            with _exclusive("update_segments") as got:
                assert got
                held.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(timeout=30)
        assert segments_rebuild_all() is None
        segment.refresh_from_db()
        assert segment.member_count == 0
    finally:
        release.set()
        thread.join(timeout=30)
    assert segments_rebuild_all() == {segment.pk: {"added": 1, "removed": 0, "members": 1}}


def test_beat_rebuilds_segments_every_five_minutes_on_the_default_queue() -> None:
    import contacts.tasks  # noqa: F401  (what the worker's autodiscovery imports)
    from smsapp.celery import app

    entry = app.conf.beat_schedule["contacts.update_segments"]
    assert (entry["task"], entry["schedule"], entry["options"]["queue"]) == ("contacts.update_segments", 300, "default")
    assert "contacts.update_segments" in app.tasks


def test_update_segments_task_runs_the_rebuild(
    make_contact: Callable[..., Contact], filter_segment: Callable[..., Segment]
) -> None:
    from contacts.tasks import update_segments

    make_contact(last_name="Smith")
    segment = filter_segment(SMITHS["rules"])
    assert update_segments() == 1
    segment.refresh_from_db()
    assert segment.member_count == 1
