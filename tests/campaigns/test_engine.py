"""The engine on PostgreSQL: every event kind, both paths of each decision and condition, windows, pausing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from campaigns import engine, services
from campaigns.models import Campaign, CampaignEvent, CampaignEventLog, CampaignMember, LogStatus
from campaigns.receivers import on_inbound_received
from campaigns.windows import zone_of
from contacts.models import Contact, DoNotContact, Segment, SegmentMembership, TimelineEvent
from contacts.services import contact_is_dnc, dnc_add

from .conftest import statuses

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

Make = Callable[..., list[Contact]]
Add = Callable[..., CampaignEvent]


def run() -> engine.RunSummary:
    summary = services.campaigns_process(batch=50)
    assert summary is not None
    return summary


def test_members_follow_source_segments_and_manual_changes(
    campaign: Campaign, segment: Segment, make_contacts: Make, add_event: Add
) -> None:
    contacts = make_contacts(3)
    target = Segment.objects.create(name="Target")
    add_event("add_to_segment", properties={"segment_id": target.pk}, trigger_mode="interval", trigger_interval=1)
    outsider = Contact.objects.create(first_name="Manual")
    services.campaign_members_add(campaign=campaign, contact_ids=[outsider.pk])
    services.campaign_members_remove(campaign=campaign, contact_ids=[contacts[0].pk])
    summary = run()
    members = set(
        CampaignMember.objects.filter(campaign=campaign, manually_removed=False).values_list("contact_id", flat=True)
    )
    assert members == {contacts[1].pk, contacts[2].pk, outsider.pk}
    assert summary.scheduled == 3
    # Leaving the segment leaves the campaign and skips what was pending; the manual member stays.
    SegmentMembership.objects.filter(contact=contacts[1]).delete()
    summary = run()
    assert summary.members_removed == 1
    assert not CampaignMember.objects.filter(campaign=campaign, contact=contacts[1]).exists()
    assert CampaignEventLog.objects.get(contact=contacts[1]).status == LogStatus.SKIPPED
    assert CampaignMember.objects.filter(campaign=campaign, contact=outsider, manually_removed=False).exists()


def test_segment_actions_add_and_remove(campaign: Campaign, make_contacts: Make, add_event: Add) -> None:
    contacts = make_contacts(2)
    target = Segment.objects.create(name="Engaged")
    first = add_event("add_to_segment", properties={"segment_id": target.pk})
    add_event("remove_from_segment", parent=first, properties={"segment_id": target.pk})
    summary = run()
    assert summary.executed == 4
    rows = SegmentMembership.objects.filter(segment=target)
    assert {r.contact_id for r in rows} == {c.pk for c in contacts}
    assert all(r.manually_removed for r in rows)  # the removal ran after the addition
    assert TimelineEvent.objects.filter(kind="campaign.event", contact=contacts[0]).count() == 2


def test_dnc_actions_mark_and_lift(campaign: Campaign, make_contacts: Make, add_event: Add) -> None:
    contacts = make_contacts(2)
    dnc_add(contact=contacts[1], reason="manual", source="marketer")  # already DNC: kept, not duplicated
    add_event("add_dnc")
    run()
    assert all(contact_is_dnc(contact=c) for c in contacts)
    assert DoNotContact.objects.filter(contact=contacts[1], lifted_at__isnull=True).count() == 1
    campaign2 = Campaign.objects.create(name="Win back", is_published=True)
    campaign2.segments.add(*campaign.segments.all())
    services.campaign_event_save(campaign=campaign2, kind="remove_dnc", data={})
    run()
    assert not any(contact_is_dnc(contact=c) for c in contacts)


@pytest.mark.parametrize(
    ("props", "expect_yes"),
    [
        ({"field": "first_name", "operator": "eq", "value": "c0"}, {0}),
        ({"field": "first_name", "operator": "neq", "value": "C0"}, {1}),
        ({"field": "country", "operator": "empty", "value": ""}, {0, 1}),
        ({"field": "custom:plan", "operator": "eq", "value": "gold"}, {0}),
    ],
)
def test_contact_field_condition_takes_both_paths(
    campaign: Campaign, make_contacts: Make, add_event: Add, props: dict[str, Any], expect_yes: set[int]
) -> None:
    contacts = make_contacts(2)
    Contact.objects.filter(pk=contacts[0].pk).update(custom_fields={"plan": "gold"})
    yes_segment, no_segment = Segment.objects.create(name="Yes"), Segment.objects.create(name="No")
    cond = add_event("contact_field", properties=props)
    add_event("add_to_segment", parent=cond, path="yes", properties={"segment_id": yes_segment.pk})
    add_event("add_to_segment", parent=cond, path="no", properties={"segment_id": no_segment.pk})
    run()
    yes_ids = set(SegmentMembership.objects.filter(segment=yes_segment).values_list("contact_id", flat=True))
    no_ids = set(SegmentMembership.objects.filter(segment=no_segment).values_list("contact_id", flat=True))
    assert yes_ids == {contacts[i].pk for i in expect_yes}
    assert no_ids == {c.pk for c in contacts} - yes_ids
    paths = statuses(cond)
    assert {cid for cid, (_, p) in paths.items() if p == "yes"} == yes_ids


def test_in_segment_and_dnc_conditions_take_both_paths(campaign: Campaign, make_contacts: Make, add_event: Add) -> None:
    contacts = make_contacts(2)
    vip = Segment.objects.create(name="VIP")
    SegmentMembership.objects.create(segment=vip, contact=contacts[0])
    dnc_add(contact=contacts[1], reason="manual", source="marketer")
    in_vip = add_event("in_segment", properties={"segment_ids": [vip.pk]})
    is_dnc = add_event("dnc_sms")
    run()
    assert statuses(in_vip) == {contacts[0].pk: ("done", "yes"), contacts[1].pk: ("done", "no")}
    assert statuses(is_dnc) == {contacts[0].pk: ("done", "no"), contacts[1].pk: ("done", "yes")}


def _decision_campaign(add_event: Add, kind: str, **props: Any) -> tuple[CampaignEvent, Segment, Segment]:
    yes_segment, no_segment = Segment.objects.create(name="Replied"), Segment.objects.create(name="Silent")
    # Mautic's advice: a decision follows an action (here a harmless one), never starts the campaign.
    start = add_event("add_to_segment", properties={"segment_id": yes_segment.pk})
    decision = add_event(kind, parent=start, properties=props, wait_amount=1, wait_unit="hours")
    add_event("add_dnc", parent=decision, path="yes")
    add_event("add_to_segment", parent=decision, path="no", properties={"segment_id": no_segment.pk})
    return decision, yes_segment, no_segment


@pytest.mark.parametrize(
    ("kind", "props", "reply", "matches"),
    [
        ("replied_to_text", {}, "anything at all", True),
        ("replied_to_text", {"pattern": "yes*"}, "YES please", True),
        ("replied_to_text", {"pattern": "y?s"}, "yes", True),
        ("replied_to_text", {"pattern": "yes*"}, "no thanks", False),
        ("reply_contains_keyword", {"keyword": "pizza"}, "I want Pizza tonight", True),
        ("reply_contains_keyword", {"keyword": "pizza"}, "pizzas are fine", False),
    ],
)
def test_decision_reply_yes_path_or_timeout_no_path(
    campaign: Campaign,
    make_contacts: Make,
    add_event: Add,
    kind: str,
    props: dict[str, Any],
    reply: str,
    matches: bool,
    django_capture_on_commit_callbacks: Any,
) -> None:
    (contact,) = make_contacts(1)
    decision, _, no_segment = _decision_campaign(add_event, kind, **props)
    run()
    assert statuses(decision) == {contact.pk: ("waiting", None)}
    # Sent as the texts app sends it when a reply is stored.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        on_inbound_received(sender=None, inbound=type("Inbound", (), {"body": reply})(), contact=contact)
    if matches:
        assert statuses(decision) == {contact.pk: ("done", "yes")}
        assert len(callbacks) == 1  # the immediate follow-up is handed to a task on sms_priority
        engine.contact_events_run(contact_id=contact.pk)
        assert contact_is_dnc(contact=contact)
        return
    assert callbacks == []
    assert statuses(decision) == {contact.pk: ("waiting", None)}
    # The wait runs out: the no path.
    CampaignEventLog.objects.filter(event=decision).update(trigger_at=timezone.now() - dt.timedelta(seconds=1))
    summary = run()
    assert summary.timed_out == 1
    assert statuses(decision) == {contact.pk: ("done", "no")}
    assert SegmentMembership.objects.filter(segment=no_segment, contact=contact).exists()
    assert not contact_is_dnc(contact=contact)


def test_a_late_reply_after_the_timeout_changes_nothing(
    campaign: Campaign, make_contacts: Make, add_event: Add
) -> None:
    (contact,) = make_contacts(1)
    decision, _, _ = _decision_campaign(add_event, "replied_to_text")
    run()
    CampaignEventLog.objects.filter(event=decision).update(trigger_at=timezone.now() - dt.timedelta(seconds=1))
    run()
    assert engine.reply_received(contact_id=contact.pk, body="hello") == []
    assert statuses(decision) == {contact.pk: ("done", "no")}


def test_interval_trigger_waits(campaign: Campaign, make_contacts: Make, add_event: Add) -> None:
    make_contacts(1)
    event = add_event("add_dnc", trigger_mode="interval", trigger_interval=2, trigger_unit="hours")
    before = timezone.now()
    run()
    log = CampaignEventLog.objects.get(event=event)
    assert log.status == LogStatus.SCHEDULED
    assert before + dt.timedelta(hours=2) <= log.trigger_at <= timezone.now() + dt.timedelta(hours=2)


def test_window_defers_to_the_next_opening_in_the_contacts_timezone(
    campaign: Campaign, make_contacts: Make, add_event: Add
) -> None:
    tokyo = make_contacts(1, tz="Asia/Tokyo")[0]
    london = make_contacts(1, tz="Europe/London", start=10)[0]
    now = timezone.now()
    # A one-hour window (in local Tokyo hours) that closed an hour ago: it opens again tomorrow at that hour.
    start_tokyo = (
        (now - dt.timedelta(hours=2)).astimezone(zone_of("Asia/Tokyo")).time().replace(second=0, microsecond=0)
    )
    end_tokyo = (now - dt.timedelta(hours=1)).astimezone(zone_of("Asia/Tokyo")).time().replace(second=0, microsecond=0)
    event = add_event("add_dnc", window_start=start_tokyo, window_end=end_tokyo)
    run()
    logs = {log.contact_id: log for log in CampaignEventLog.objects.filter(event=event)}
    assert logs[tokyo.pk].status == LogStatus.SCHEDULED
    opens = logs[tokyo.pk].trigger_at.astimezone(zone_of("Asia/Tokyo"))
    assert opens.time() == start_tokyo
    assert dt.timedelta(hours=21) < logs[tokyo.pk].trigger_at - now < dt.timedelta(hours=23)
    # London has the same UTC window, so also closed: it opens at the same local time there, a different instant.
    assert logs[london.pk].trigger_at.astimezone(zone_of("Europe/London")).time() == start_tokyo
    assert logs[london.pk].trigger_at != logs[tokyo.pk].trigger_at
    assert not contact_is_dnc(contact=tokyo)


def test_weekday_window_skips_to_an_allowed_day(campaign: Campaign, make_contacts: Make, add_event: Add) -> None:
    make_contacts(1, tz="UTC")
    tomorrow = (timezone.now() + dt.timedelta(days=1)).weekday()
    event = add_event("add_dnc", weekdays=[tomorrow])
    run()
    log = CampaignEventLog.objects.get(event=event)
    assert log.status == LogStatus.SCHEDULED
    assert log.trigger_at.weekday() == tomorrow
    assert log.trigger_at.time() == dt.time(0, 0)


def test_a_run_inside_the_window_executes(campaign: Campaign, make_contacts: Make, add_event: Add) -> None:
    (contact,) = make_contacts(1, tz="UTC")
    event = add_event("add_dnc", window_start=dt.time(0, 0), window_end=dt.time(23, 59, 59), weekdays=list(range(7)))
    run()
    assert statuses(event) == {contact.pk: ("done", None)}


def test_unpublish_pauses_and_publish_resumes_without_rerunning(
    campaign: Campaign, make_contacts: Make, add_event: Add
) -> None:
    contacts = make_contacts(2)
    first = add_event("add_to_segment", properties={"segment_id": Segment.objects.create(name="A").pk})
    second = add_event("add_dnc", parent=first, trigger_mode="interval", trigger_interval=1, trigger_unit="minutes")
    run()
    services.campaign_unpublish(campaign=campaign)
    CampaignEventLog.objects.filter(event=second).update(trigger_at=timezone.now() - dt.timedelta(seconds=1))
    summary = run()
    assert summary.executed == 0
    assert not contact_is_dnc(contact=contacts[0])
    services.campaign_publish(campaign=campaign)
    summary = run()
    assert summary.executed == 2
    assert all(contact_is_dnc(contact=c) for c in contacts)
    assert TimelineEvent.objects.filter(kind="campaign.event", detail__event_id=first.pk).count() == 2


def test_each_event_runs_once_per_contact_and_entry(campaign: Campaign, make_contacts: Make, add_event: Add) -> None:
    (contact,) = make_contacts(1)
    event = add_event("add_dnc")
    run()
    run()
    assert CampaignEventLog.objects.filter(event=event).count() == 1
    with pytest.raises(IntegrityError), transaction.atomic():
        CampaignEventLog.objects.create(event=event, campaign=campaign, contact=contact, trigger_at=timezone.now())


def test_stale_running_logs_are_run_again_once(campaign: Campaign, make_contacts: Make, add_event: Add) -> None:
    (contact,) = make_contacts(1)
    event = add_event("add_dnc", trigger_mode="interval", trigger_interval=1, trigger_unit="minutes")
    run()
    CampaignEventLog.objects.filter(event=event).update(
        status=LogStatus.RUNNING, claimed_at=timezone.now() - dt.timedelta(hours=1), trigger_at=timezone.now()
    )
    summary = run()
    assert summary.reset == 1
    assert statuses(event) == {contact.pk: ("done", None)}


def test_publishing_refuses_what_cannot_run(add_event: Add) -> None:
    empty = Campaign.objects.create(name="Empty")
    with pytest.raises(ValidationError) as info:
        services.campaign_publish(campaign=empty)
    text = " ".join(info.value.messages)
    assert "source segment" in text
    assert "at least one event" in text
    with pytest.raises(ValidationError, match="cannot start with a decision"):
        services.campaign_event_save(campaign=empty, kind="replied_to_text", data={})
    services.campaign_event_save(campaign=empty, kind="send_text_message", data={})
    with pytest.raises(ValidationError) as info:
        services.campaign_publish(campaign=empty)
    assert "has no text message" in " ".join(info.value.messages)
    assert not Campaign.objects.get(pk=empty.pk).is_published
