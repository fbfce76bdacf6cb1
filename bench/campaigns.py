"""Campaign engine throughput: N contacts (default 1,000,000) through a three-event campaign on PostgreSQL.

    python -m smsapp.testing.services -- python bench/campaigns.py [--contacts N] [--batch B]

Events: add to a segment -> condition "in segment" -> on yes, remove from that segment. Figures: events per second
of a full ``process_campaigns`` run (membership sync, scheduling, claiming, running, timeline) and the process's
peak memory, beside two same-run baselines: a bare INSERT ... SELECT of the same number of event-log rows (into a
temporary table, no index or foreign key), and the engine's own writes (members, logs, timeline entries, segment
memberships) as bare SQL into the same tables in batches of the same size (``_same_writes_baseline``): the floor.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsapp.settings")
os.environ.setdefault("SECRET_KEY", "bench-secret-key-not-for-production-0123456789")
os.environ["SMSAPP_IGNORE_DOTENV"] = "1"


def _same_writes_baseline(*, campaign: Any, events: list[Any], target: Any, n: int, batch: int) -> float:
    """The rows the engine writes, written by bare SQL into the same tables (their indexes and deferred foreign
    keys included) in transactions of the same size; then removed again, so the engine starts from the same state.
    What no engine can go below on this machine and schema: each contact gets a campaign member, three logs, five
    timeline entries (three campaign events, segment added and removed) and a membership inserted then updated."""
    from django.db import connection, transaction

    detail = '{"campaign_id": 1, "event_id": 1, "kind": "k", "status": "done", "path": null, "detail": "d"}'
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            "INSERT INTO campaigns_campaignmember (campaign_id, contact_id, manually_added, manually_removed, entry, "
            "added_at) SELECT %s, contact_id, false, false, 1, now() FROM contacts_segmentmembership "
            "WHERE segment_id = (SELECT segment_id FROM campaigns_campaign_segments WHERE campaign_id = %s)",
            [campaign.pk, campaign.pk],
        )
    members = "FROM campaigns_campaignmember WHERE campaign_id = %s AND contact_id > %s AND contact_id <= %s"
    for low in range(0, n, batch):
        span = [campaign.pk, low, low + batch]
        with transaction.atomic(), connection.cursor() as cur:
            for event in events:
                cur.execute(
                    "INSERT INTO campaigns_campaigneventlog (event_id, campaign_id, contact_id, entry, status, "
                    "trigger_at, claimed_at, executed_at, detail, created_at) SELECT %s, %s, contact_id, 1, 'done', "
                    f"now(), now(), now(), 'd', now() {members} ON CONFLICT DO NOTHING",
                    [event.pk, campaign.pk, *span],
                )
            for kind in ("campaign.event", "campaign.event", "campaign.event", "segment.added", "segment.removed"):
                cur.execute(
                    "INSERT INTO contacts_timelineevent (contact_id, kind, title, detail, occurred_at, created_at) "
                    f"SELECT contact_id, %s, 'title', CAST(%s AS jsonb), now(), now() {members}",
                    [kind, detail, *span],
                )
            cur.execute(
                "INSERT INTO contacts_segmentmembership (segment_id, contact_id, manually_added, manually_removed, "
                f"added_at) SELECT %s, contact_id, true, false, now() {members} ON CONFLICT DO NOTHING",
                [target.pk, *span],
            )
            cur.execute(
                "UPDATE contacts_segmentmembership SET manually_removed = true, manually_added = false "
                "WHERE segment_id = %s AND contact_id > %s AND contact_id <= %s",
                [target.pk, low, low + batch],
            )
    elapsed = time.perf_counter() - started
    with connection.cursor() as cur:
        cur.execute("TRUNCATE campaigns_campaigneventlog, contacts_timelineevent, campaigns_campaignmember")
        cur.execute("DELETE FROM contacts_segmentmembership WHERE segment_id = %s", [target.pk])
        cur.execute("VACUUM ANALYZE contacts_segmentmembership")
    return elapsed


def _timed(timings: dict[str, list[float]]) -> Any:
    """An execute wrapper adding each statement's time to its shape (the SQL with numbers and spaces squeezed)."""

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            shape = re.sub(r"\s+", " ", re.sub(r"\b\d+\b", "N", sql)).strip()
            entry = timings.setdefault(shape, [0.0, 0])
            entry[0] += time.perf_counter() - started
            entry[1] += 1

    return wrapper


def _commits_timed(connection: Any, timings: dict[str, list[float]]) -> None:
    """COMMIT is not a statement Django executes (the driver's commit()): timed too, as the deferred foreign-key
    checks of everything a batch inserted run there."""
    commit = connection._commit

    def timed_commit() -> Any:
        started = time.perf_counter()
        try:
            return commit()
        finally:
            entry = timings.setdefault("COMMIT", [0.0, 0])
            entry[0] += time.perf_counter() - started
            entry[1] += 1

    connection._commit = timed_commit


def _print_profile(timings: dict[str, list[float]], elapsed: float) -> None:
    total = sum(seconds for seconds, _ in timings.values())
    print(f"profile: {total:.1f}s of {elapsed:.1f}s in SQL, {len(timings)} statement shapes", flush=True)
    for shape, (seconds, calls) in sorted(timings.items(), key=lambda kv: -kv[1][0])[:30]:
        print(f"  {seconds:8.2f}s {calls:6d}x  {shape[:400]}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--profile", action="store_true", help="print the time spent in each SQL statement")
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
    remove = services.campaign_event_save(
        campaign=campaign,
        kind="remove_from_segment",
        data={"properties": {"segment_id": target.pk}},
        parent=cond,
        path="yes",
    )
    print(f"{n} contacts, 3 events, batch {args.batch}", flush=True)
    writes_elapsed = _same_writes_baseline(
        campaign=campaign, events=[add, cond, remove], target=target, n=n, batch=args.batch
    )
    writes_rate = 3 * n / writes_elapsed
    print(
        f"fuller baseline: the engine's writes as bare SQL (1 member, 3 logs, 5 timeline entries, 1 membership insert"
        f" and update per contact, same tables and batches) in {writes_elapsed:.1f}s = {writes_rate:,.0f} events/s",
        flush=True,
    )

    timings: dict[str, list[float]] = {}
    if args.profile:
        _commits_timed(connection, timings)
    started = time.perf_counter()
    with connection.execute_wrapper(_timed(timings)) if args.profile else contextlib.nullcontext():
        summary = services.campaigns_process(batch=args.batch)
    elapsed = time.perf_counter() - started
    if args.profile:
        _print_profile(timings, elapsed)
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
                "figure": f"campaign events/s against the same writes as bare SQL ({n:,} x 3)",
                "value": round(rate),
                "unit": "events/s",
                "baseline": "bare SQL of the engine's writes (members, logs, timeline, memberships; same tables, "
                "constraints and batches)",
                "baseline_value": round(writes_rate),
                "ratio": round(rate / writes_rate, 3),
                "target": "informative: the floor this machine and schema set",
                "ok": True,
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
