"""Campaign engine throughput: N contacts (default 1,000,000) through a three-event campaign on PostgreSQL.

    python -m smsapp.testing.services -- python bench/campaigns.py [--contacts N] [--batch B]

Events: add to a segment -> condition "in segment" -> on yes, remove from that segment. Figures: events per second
of a full ``process_campaigns`` run (membership sync, scheduling, claiming, running, timeline) and the process's
peak memory, beside a same-run baseline: a bare INSERT ... SELECT of the same number of event-log rows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsapp.settings")
os.environ.setdefault("SECRET_KEY", "bench-secret-key-not-for-production-0123456789")
os.environ["SMSAPP_IGNORE_DOTENV"] = "1"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=20_000)
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        sys.exit("bench/campaigns.py needs PostgreSQL: run it under python -m smsapp.testing.services --")
    call_command("migrate", verbosity=0)
    from campaigns import services
    from campaigns.models import Campaign, CampaignEventLog
    from contacts.models import Segment

    n = args.contacts
    with connection.cursor() as cur:
        # Run alone on the database: other benchmarks (run_all runs them one after another) leave contacts behind.
        cur.execute("TRUNCATE contacts_contact, contacts_segment, campaigns_campaign RESTART IDENTITY CASCADE")
    source = Segment.objects.create(name="bench source")
    target = Segment.objects.create(name="bench target")
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO contacts_contact (first_name, last_name, email, mobile, country, timezone, "
            "preferred_language, custom_fields, created_at, updated_at) "
            "SELECT 'C' || g, '', '', '+1555' || lpad(g::text, 7, '0'), 'US', '', '', '{}', now(), now() "
            "FROM generate_series(1, %s) g",
            [n],
        )
        cur.execute(
            "INSERT INTO contacts_segmentmembership (segment_id, contact_id, manually_added, manually_removed, "
            "added_at) SELECT %s, id, false, false, now() FROM contacts_contact",
            [source.pk],
        )
        cur.execute("ANALYZE")  # as autovacuum would have by the time a campaign runs over a list this size
    campaign = Campaign.objects.create(name="bench", is_published=True)
    campaign.segments.add(source)
    add = services.campaign_event_save(
        campaign=campaign, kind="add_to_segment", data={"properties": {"segment_id": target.pk}}
    )
    cond = services.campaign_event_save(
        campaign=campaign, kind="in_segment", data={"properties": {"segment_ids": [target.pk]}}, parent=add
    )
    services.campaign_event_save(
        campaign=campaign,
        kind="remove_from_segment",
        data={"properties": {"segment_id": target.pk}},
        parent=cond,
        path="yes",
    )
    print(f"{n} contacts, 3 events, batch {args.batch}", flush=True)

    started = time.perf_counter()
    summary = services.campaigns_process(batch=args.batch)
    elapsed = time.perf_counter() - started
    assert summary is not None
    events = CampaignEventLog.objects.filter(status="done").count()
    assert events == 3 * n, f"expected {3 * n} events done, got {events}"
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rate = events / elapsed
    print(f"engine: {events} events in {elapsed:.1f}s = {rate:,.0f} events/s, peak memory {peak_mb:.0f} MB", flush=True)

    # Baseline: the bare cost of writing the same number of event-log rows in one statement.
    with connection.cursor() as cur:
        cur.execute("CREATE TEMP TABLE bench_log (LIKE campaigns_campaigneventlog INCLUDING DEFAULTS)")
        started = time.perf_counter()
        cur.execute(
            "INSERT INTO bench_log (id, event_id, campaign_id, contact_id, entry, status, trigger_at, detail, "
            "created_at) SELECT row_number() OVER (), e.id, e.campaign_id, m.contact_id, 1, 'done', now(), '', now() "
            "FROM campaigns_campaignmember m CROSS JOIN campaigns_campaignevent e WHERE m.campaign_id = %s "
            "AND e.campaign_id = %s",
            [campaign.pk, campaign.pk],
        )
        base_elapsed = time.perf_counter() - started
    base_rate = events / base_elapsed
    print(f"baseline: bare INSERT ... SELECT of {events} log rows in {base_elapsed:.2f}s = {base_rate:,.0f} rows/s")
    print(f"summary: {json.dumps(summary.as_dict())}")
    result = {
        "bench": "campaigns",
        "figures": [
            {
                "figure": f"campaign events/s ({n:,} contacts x 3 events)",
                "value": round(rate),
                "unit": "events/s",
                "baseline": "bare INSERT ... SELECT of the event-log rows",
                "baseline_value": round(base_rate),
                "ratio": round(rate / base_rate, 3),
                "target": ">= 100,000 events/s",
                "ok": rate >= 100_000,
            },
            {
                "figure": "engine peak memory",
                "value": round(peak_mb),
                "unit": "MB",
                "baseline": None,
                "baseline_value": None,
                "ratio": None,
                "target": "< 300 MB",
                "ok": peak_mb < 300,
            },
        ],
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
