"""Real processes on PostgreSQL: a process_campaigns run killed mid-way with SIGKILL, run again, nothing twice;
the command's summary; a reply moving a waiting contact down the yes path at once through a real Celery worker."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from django.db.models import Count

from campaigns import services
from campaigns.models import Campaign, CampaignEvent, CampaignEventLog, LogStatus
from campaigns.receivers import on_inbound_received
from contacts.models import Contact, Segment, SegmentMembership, TimelineEvent
from contacts.services import contact_is_dnc
from smsapp.testing import procs

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres, pytest.mark.slow]


def test_killed_run_resumes_and_runs_nothing_twice(
    campaign: Campaign, make_contacts: Callable[..., list[Contact]], add_event: Callable[..., CampaignEvent]
) -> None:
    make_contacts(3000)
    first = add_event("add_to_segment", properties={"segment_id": Segment.objects.create(name="Touched").pk})
    add_event("add_dnc", parent=first)
    child = subprocess.Popen(
        [sys.executable, str(procs.BASE_DIR / "manage.py"), "process_campaigns", "--batch", "10"],
        env=procs.child_env(CAMPAIGNS_LOCK_SECONDS="2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=procs.BASE_DIR,
        text=True,
    )
    assert child.stdout is not None
    for line in child.stdout:  # kill it once it has run a few batches, well before the 600 it needs
        if line.startswith("batch 5:"):
            child.send_signal(signal.SIGKILL)
            break
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    done_before = CampaignEventLog.objects.filter(status=LogStatus.DONE).count()
    assert 0 < done_before < 6000  # really killed mid-run
    # Its lock lapses (a short lease, renewed per batch while alive); the claim it held when it died is left
    # `running`, and a run that treats it as stale takes it back.
    time.sleep(2.5)
    result = procs.manage("process_campaigns", "--batch", "500", "--stale-after", "0")
    assert result.returncode == 0, result.stderr
    assert "SUMMARY" in result.stdout
    assert CampaignEventLog.objects.exclude(status=LogStatus.DONE).count() == 0
    assert CampaignEventLog.objects.count() == 6000
    per_contact = TimelineEvent.objects.filter(kind="campaign.event").values("contact_id").annotate(n=Count("id"))
    assert {row["n"] for row in per_contact} == {2}  # each contact: each event exactly once
    assert SegmentMembership.objects.filter(segment__name="Touched").count() == 3000


def test_overlapping_runs_do_not_both_run(campaign: Campaign) -> None:
    with services.exclusive() as renew:
        assert renew is not None
        result = procs.manage("process_campaigns")
    assert result.returncode == 0, result.stderr
    assert "Another process_campaigns run is in progress" in result.stdout


def test_reply_moves_contact_down_the_yes_path_at_once(
    campaign: Campaign,
    make_contacts: Callable[..., list[Contact]],
    add_event: Callable[..., CampaignEvent],
    celery_worker: procs.Proc,
) -> None:
    (contact,) = make_contacts(1)
    start = add_event("add_to_segment", properties={"segment_id": Segment.objects.create(name="Asked").pk})
    decision = add_event("replied_to_text", parent=start, wait_amount=3, wait_unit="days")
    yes = add_event("add_dnc", parent=decision, path="yes")
    services.campaigns_process()
    assert CampaignEventLog.objects.get(event=decision).status == LogStatus.WAITING
    # As the texts app sends it when the reply is stored (transaction commits, then the task goes to the worker).
    on_inbound_received(sender=None, inbound=type("Inbound", (), {"body": "Yes!"})(), contact=contact)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not CampaignEventLog.objects.filter(event=yes, status="done").exists():
        time.sleep(0.2)
    assert CampaignEventLog.objects.get(event=yes).status == LogStatus.DONE, celery_worker.output()[-3000:]
    assert contact_is_dnc(contact=contact)
    assert "campaigns.run_contact_events" in celery_worker.output()
