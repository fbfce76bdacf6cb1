"""Campaign membership: the source segments' contacts, plus manual additions, minus manual removals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from contacts.services import segment_member_ids

from ..models import Campaign, CampaignEventLog, CampaignMember, LogStatus
from .sql import db_time, table


def members_sync(*, campaign: Campaign, now: dt.datetime | None = None) -> tuple[int, int]:
    """Add the source segments' contacts and drop those who left them, in two statements. Returns (added, removed).

    Manual additions stay whatever the segments say; a manual removal is a row that keeps the contact out.
    """
    now = now or timezone.now()
    # Who is in a segment is the contacts app's rule (manual removals excluded): one lazy subquery, reused twice.
    segment_ids = list(campaign.segments.values_list("id", flat=True))
    in_segments = segment_member_ids(segment_ids)
    with transaction.atomic(), connection.cursor() as cursor:
        added = 0
        if segment_ids:  # (an empty IN () cannot be compiled; a campaign of manual additions only adds none)
            members_sql, members_params = in_segments.query.sql_with_params()
            cursor.execute(
                f"""
                INSERT INTO {table(CampaignMember)} (campaign_id, contact_id, manually_added, manually_removed,
                                                      entry, added_at)
                SELECT %s, s.id, false, false, 1, %s
                FROM ({members_sql}) s
                WHERE true
                ON CONFLICT (campaign_id, contact_id) DO NOTHING
                """,  # noqa: S608 - table names come from model metadata, values are parameters
                [campaign.pk, db_time(now), *members_params],
            )
            added = max(cursor.rowcount, 0)
        leaving = CampaignMember.objects.filter(campaign=campaign, manually_added=False, manually_removed=False)
        if segment_ids:
            # NOT EXISTS, not NOT IN: PostgreSQL hashes a NOT IN list only while it fits in work_mem, and past a
            # few hundred thousand members it compared each member with every contact of the segments (hours).
            leaving = leaving.exclude(Exists(in_segments.filter(id=OuterRef("contact_id"))))
        # Their pending events stop: a contact who left the segment leaves the campaign.
        CampaignEventLog.objects.filter(
            campaign=campaign,
            status__in=(LogStatus.SCHEDULED, LogStatus.WAITING),
            contact_id__in=leaving.values("contact_id"),
        ).update(status=LogStatus.SKIPPED, detail="Left the campaign's segments", executed_at=now)
        removed, _ = leaving.delete()
    return added, removed


def member_add(*, campaign: Campaign, contact_ids: Iterable[int]) -> int:
    """Add contacts by hand (also undoes a manual removal, and resumes their pending events)."""
    ids = list(contact_ids)
    CampaignMember.objects.bulk_create(
        [CampaignMember(campaign=campaign, contact_id=cid, manually_added=True) for cid in ids],
        ignore_conflicts=True,
    )
    return CampaignMember.objects.filter(campaign=campaign, contact_id__in=ids).update(
        manually_added=True, manually_removed=False
    )


def member_remove(*, campaign: Campaign, contact_ids: Iterable[int]) -> int:
    """Remove contacts by hand: their pending events are skipped and the segment sync will not add them back."""
    ids = list(contact_ids)
    now = timezone.now()
    with transaction.atomic():
        CampaignMember.objects.bulk_create(
            [CampaignMember(campaign=campaign, contact_id=cid, manually_removed=True) for cid in ids],
            ignore_conflicts=True,
        )
        CampaignEventLog.objects.filter(
            campaign=campaign, contact_id__in=ids, status__in=(LogStatus.SCHEDULED, LogStatus.WAITING)
        ).update(status=LogStatus.SKIPPED, detail="Removed from the campaign by hand", executed_at=now)
        return CampaignMember.objects.filter(campaign=campaign, contact_id__in=ids).update(
            manually_removed=True, manually_added=False
        )
