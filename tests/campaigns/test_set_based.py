"""The engine is set-based: a batch costs the same statements for 5 contacts as for 500, its segment actions go
through the contacts services (with their timeline entries), and the same engine runs on SQLite (``make run``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns import services
from campaigns.engine import steps
from campaigns.models import Campaign, CampaignEvent, CampaignEventLog, LogStatus
from contacts.models import Contact, Segment, SegmentMembership, TimelineEvent
from contacts.services import contact_is_dnc, dnc_add, segment_add_contacts
from texts.models import OutboundMessage, TextMessage

from .conftest import statuses

Make = Callable[..., list[Contact]]
Add = Callable[..., CampaignEvent]


def _tree(add_event: Add) -> dict[str, Any]:
    """add to a segment -> in that segment? -> yes: send a text, then (in an hour) mark DNC; no: mark DNC."""
    target = Segment.objects.create(name="Engaged")
    text = TextMessage.objects.create(name="Hi", body="Hi {{first_name|there}}")
    first = add_event("add_to_segment", properties={"segment_id": target.pk})
    check = add_event("in_segment", parent=first, properties={"segment_ids": [target.pk]})
    send = add_event("send_text_message", parent=check, path="yes", text_message=text)
    later = add_event("add_dnc", parent=send, trigger_mode="interval", trigger_interval=1, trigger_unit="hours")
    never = add_event("add_dnc", parent=check, path="no")
    return {"target": target, "first": first, "check": check, "send": send, "later": later, "never": never}


def _queries_for(count: int, make_contacts: Make, add_event: Add) -> int:
    make_contacts(count)
    _tree(add_event)
    with CaptureQueriesContext(connection) as queries:
        summary = services.campaigns_process(batch=1000)
    assert summary is not None
    assert summary.executed == 3 * count  # add, check, send; the hour-later DNC waits
    return len(queries)


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_batch_costs_the_same_statements_for_5_contacts_as_for_500(
    campaign: Campaign, make_contacts: Make, add_event: Add
) -> None:
    small = _queries_for(5, make_contacts, add_event)
    CampaignEventLog.objects.all().delete()
    Contact.objects.all().delete()
    CampaignEvent.objects.all().delete()
    assert _queries_for(500, make_contacts, add_event) == small


@pytest.mark.postgres
@pytest.mark.django_db
def test_segment_actions_write_the_contacts_timeline_entries_and_member_count(
    campaign: Campaign, make_contacts: Make, add_event: Add
) -> None:
    contacts = make_contacts(3)
    target = Segment.objects.create(name="Engaged")
    first = add_event("add_to_segment", properties={"segment_id": target.pk})
    add_event(
        "remove_from_segment",
        parent=first,
        properties={"segment_id": target.pk},
        trigger_mode="interval",
        trigger_interval=1,
        trigger_unit="minutes",
    )
    services.campaigns_process(batch=2)
    target.refresh_from_db()
    assert target.member_count == 3
    for contact in contacts:
        kinds = list(TimelineEvent.objects.filter(contact=contact).values_list("kind", flat=True))
        assert sorted(kinds) == ["campaign.event", "consent.subscribed", "segment.added"]  # consent: make_contacts


def _run_everything(campaign: Campaign, make_contacts: Make, add_event: Add) -> None:
    contacts = make_contacts(30)
    dnc_add(contact=contacts[0], reason="manual", source="marketer")  # in the segment, so "yes", but not texted
    tree = _tree(add_event)
    first_run = services.campaigns_process(batch=7)
    assert first_run is not None
    assert first_run.executed == 90
    assert first_run.batches >= 5  # 30 members, 7 at a time
    assert set(statuses(tree["check"]).values()) == {("done", "yes")}
    assert set(statuses(tree["later"]).values()) == {("scheduled", None)}
    assert not CampaignEventLog.objects.filter(event=tree["never"]).exists()
    assert OutboundMessage.objects.filter(source="campaign").count() == 29  # the pipeline leaves out the DNC one
    assert SegmentMembership.objects.filter(segment=tree["target"], manually_removed=False).count() == 30
    timeline = TimelineEvent.objects.count()
    again = services.campaigns_process(batch=7)
    assert again is not None
    assert again.executed == 0  # each event at most once per contact
    assert TimelineEvent.objects.count() == timeline
    # The hour passes: the scheduled DNC runs for everyone.
    CampaignEventLog.objects.filter(event=tree["later"]).update(trigger_at=tree["later"].created_at)
    services.campaigns_process(batch=7)
    assert all(contact_is_dnc(contact=c) for c in contacts)
    assert CampaignEventLog.objects.exclude(status=LogStatus.DONE).count() == 0


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_whole_tree_runs_in_batches_on_postgresql(campaign: Campaign, make_contacts: Make, add_event: Add) -> None:
    _run_everything(campaign, make_contacts, add_event)


@pytest.mark.embedded
@pytest.mark.django_db
def test_a_whole_tree_runs_in_batches_on_sqlite(campaign: Campaign, make_contacts: Make, add_event: Add) -> None:
    assert connection.vendor == "sqlite"
    _run_everything(campaign, make_contacts, add_event)


@pytest.mark.postgres
@pytest.mark.django_db
def test_each_timeline_entry_names_the_path_its_contact_took(
    campaign: Campaign, make_contacts: Make, add_event: Add
) -> None:
    yes_side = make_contacts(4, country="FR")
    no_side = make_contacts(3, start=10, country="DE")
    check = add_event("contact_field", properties={"field": "country", "operator": "eq", "value": "fr"})
    services.campaigns_process(batch=5)
    paths = {contact_id: path for contact_id, (_, path) in statuses(check).items()}
    assert paths == {**{c.pk: "yes" for c in yes_side}, **{c.pk: "no" for c in no_side}}
    entries = TimelineEvent.objects.filter(kind="campaign.event")
    assert entries.count() == 7  # one per contact, not one per possible path
    for entry in entries:
        path = paths[entry.contact_id]
        assert entry.title.endswith(f"→ {path}")
        assert entry.detail == {
            "campaign_id": campaign.pk,
            "event_id": check.pk,
            "kind": "contact_field",
            "status": "done",
            "path": path,
            "detail": "",
        }


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_campaign_removal_changes_only_its_batch_contacts_rows(
    campaign: Campaign, make_contacts: Make, add_event: Add
) -> None:
    target = Segment.objects.create(name="Engaged")
    bystanders = Contact.objects.bulk_create(
        [Contact(first_name=f"B{i}", mobile=f"+4477008{i:05d}") for i in range(40)]
    )
    segment_add_contacts(segment=target, contact_ids=[c.pk for c in bystanders])
    members = make_contacts(10)
    first = add_event("add_to_segment", properties={"segment_id": target.pk})
    add_event("remove_from_segment", parent=first, properties={"segment_id": target.pk})
    services.campaigns_process(batch=4)
    rows = SegmentMembership.objects.filter(segment=target)
    assert set(rows.filter(manually_removed=True).values_list("contact_id", flat=True)) == {c.pk for c in members}
    assert set(rows.filter(manually_removed=False).values_list("contact_id", flat=True)) == {c.pk for c in bystanders}
    target.refresh_from_db()
    assert target.member_count == 40
    removed = TimelineEvent.objects.filter(kind="segment.removed")
    assert set(removed.values_list("contact_id", flat=True)) == {c.pk for c in members}
    assert removed.count() == 10


class _Died(BaseException):
    """Not an Exception: the engine's failure path does not catch it, as it cannot catch a killed process."""


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_run_dying_between_a_batchs_statements_leaves_nothing_and_the_next_does_each_event_once(
    campaign: Campaign, make_contacts: Make, add_event: Add, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_contacts(6)
    tree = _tree(add_event)
    written = steps._write

    def dies_after_the_action(*args: Any, **kwargs: Any) -> None:
        raise _Died  # the segment rows and their timeline entries are written; the log is not yet

    monkeypatch.setattr(steps, "_write", dies_after_the_action)
    with pytest.raises(_Died):
        services.campaigns_process(batch=4)
    assert not CampaignEventLog.objects.filter(status=LogStatus.DONE).exists()
    assert not SegmentMembership.objects.filter(segment=tree["target"]).exists()
    assert not TimelineEvent.objects.exclude(kind__startswith="consent.").exists()  # the fixture's consent only
    monkeypatch.setattr(steps, "_write", written)
    services.campaigns_process(batch=4)
    assert set(statuses(tree["check"]).values()) == {("done", "yes")}
    assert TimelineEvent.objects.filter(kind="segment.added").count() == 6
    assert TimelineEvent.objects.filter(kind="campaign.event").count() == 18  # add, check, send: once each
    assert OutboundMessage.objects.filter(source="campaign").count() == 6
