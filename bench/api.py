"""API list pages at a million contacts on PostgreSQL: the first page, a page deep in the table, and filtered pages,
each through the whole Django stack (token, throttle, validation, JSON), beside bare SQL measured in the same run.

    python -m smsapp.testing.services -- python bench/api.py [--contacts 1000000]

Baselines: the bare keyset SELECT of the same 50 rows, and the OFFSET query a page-number API would run for the
same deep page. Each figure is the median of several requests. The last line is ``RESULT {json}`` (bench/run_all.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsapp.settings")
os.environ.setdefault("SECRET_KEY", "bench-secret-key-not-for-production-0123456789")
os.environ.setdefault("SMSAPP_IGNORE_DOTENV", "1")
os.environ.setdefault("SMSAPP_VAR_DIR", tempfile.mkdtemp(prefix="smsapp-bench-"))
os.environ.setdefault("ALLOWED_HOSTS", "testserver")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("API_RATE_LIMIT", "1000000/m")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from contacts.models import Segment  # noqa: E402
from smsapp.core.api import cursor_encode  # noqa: E402
from smsapp.models import ApiToken  # noqa: E402

LIMIT = 50
RUNS = 7


def sql(statement: str, params: list[object] | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params or [])


def seed(contacts: int) -> int:
    started = time.monotonic()
    sql("TRUNCATE contacts_contact, contacts_segment RESTART IDENTITY CASCADE")
    sql(
        """
        INSERT INTO contacts_contact (first_name, last_name, email, mobile, country, timezone, preferred_language,
                                      custom_fields, created_at, updated_at)
        SELECT 'P' || i, 'Smith', 'p' || i || '@example.com', '+4475' || lpad(i::text, 8, '0'), 'GB',
               'Europe/London', 'en', '{}'::jsonb, now(), now()
        FROM generate_series(1, %s) AS i
        """,
        [contacts],
    )
    sql(
        """
        INSERT INTO contacts_donotcontact (contact_id, channel, reason, source, comment, created_at, lifted_by,
                                           lifted_comment)
        SELECT id, 'sms', 'unsubscribed', 'keyword', '', now(), '', '' FROM contacts_contact WHERE id %% 20 = 0
        """
    )
    segment = Segment.objects.create(name="Every third")
    sql(
        """
        INSERT INTO contacts_segmentmembership (segment_id, contact_id, manually_added, manually_removed, added_at)
        SELECT %s, id, true, false, now() FROM contacts_contact WHERE id %% 3 = 0
        """,
        [segment.pk],
    )
    sql("ANALYZE")
    print(f"seeded {contacts:,} contacts in {time.monotonic() - started:.1f}s", flush=True)
    return segment.pk


def median_seconds(action: Callable[[], object]) -> float:
    action()  # warm up
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bare(statement: str, params: list[object]) -> Callable[[], object]:
    def run() -> object:
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        raise SystemExit("needs PostgreSQL: python -m smsapp.testing.services -- python bench/api.py")
    call_command("migrate", verbosity=0)
    segment_id = seed(args.contacts)
    user, _ = User.objects.get_or_create(username="bench", defaults={"is_staff": True})
    client = Client(HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(user=user, name='bench')[1]}")
    middle = args.contacts // 2

    def page(**params: object) -> Callable[[], object]:
        def run() -> object:
            response = client.get("/api/v1/contacts", {"limit": LIMIT, **params})
            assert response.status_code == 200, response.content
            assert len(response.json()["items"]) == LIMIT
            return response

        return run

    def search(text: str) -> Callable[[], object]:
        def run() -> object:
            response = client.get("/api/v1/contacts", {"limit": LIMIT, "q": text})
            assert response.status_code == 200, response.content
            assert response.json()["items"], text
            return response

        return run

    def without_trigram_indexes(action: Callable[[], object]) -> Callable[[], object]:
        """The same request with the planner kept off bitmap scans: what a search costs without contacts/0003."""

        def run() -> object:
            with connection.cursor() as cursor:
                cursor.execute("SET enable_bitmapscan = off")
            try:
                return action()
            finally:
                with connection.cursor() as cursor:
                    cursor.execute("RESET enable_bitmapscan")

        return run

    rare = f"p{args.contacts * 7 // 9}"  # one contact's name and email
    first = median_seconds(page())
    deep = median_seconds(page(cursor=cursor_encode(middle)))
    segment_deep = median_seconds(page(segment=segment_id, cursor=cursor_encode(middle)))
    dnc_deep = median_seconds(page(dnc="true", cursor=cursor_encode(middle)))
    search_rare = median_seconds(search(rare))
    search_scan = median_seconds(without_trigram_indexes(search(rare)))
    keyset_sql = median_seconds(
        bare("SELECT * FROM contacts_contact WHERE id < %s ORDER BY id DESC LIMIT %s", [middle, LIMIT])
    )
    offset_sql = median_seconds(
        bare("SELECT * FROM contacts_contact ORDER BY id DESC LIMIT %s OFFSET %s", [LIMIT, args.contacts - middle])
    )
    for name, value in [
        ("API first page", first),
        ("API page at the middle (cursor)", deep),
        ("API ?segment= page at the middle", segment_deep),
        ("API ?dnc=true page at the middle", dnc_deep),
        (f"API ?q={rare} (trigram indexes)", search_rare),
        (f"API ?q={rare} without them", search_scan),
        ("bare keyset SELECT", keyset_sql),
        ("bare OFFSET SELECT (page-number style)", offset_sql),
    ]:
        print(f"{name:45s} {value * 1000:9.2f} ms", flush=True)

    def figure(name: str, value: float, baseline: str, base: float, target: str, ok: bool) -> dict[str, object]:
        return {
            "figure": name,
            "value": round(value * 1000, 2),
            "unit": "ms",
            "baseline": baseline,
            "baseline_value": round(base * 1000, 2),
            "ratio": round(value / base, 2),
            "target": target,
            "ok": ok,
        }

    figures = [
        figure(
            f"GET /contacts page {middle:,} rows deep, {args.contacts:,} contacts",
            deep,
            "GET /contacts first page",
            first,
            "<= 2x first page",
            deep <= 2 * first,
        ),
        figure(
            "?segment= page mid-table", segment_deep, "first page", first, "<= 3x first page", segment_deep <= 3 * first
        ),
        figure("?dnc=true page mid-table", dnc_deep, "first page", first, "informative", True),
        figure(
            f"?q= search for one contact among {args.contacts:,}",
            search_rare,
            "the same search without the trigram indexes",
            search_scan,
            "<= 3x first page",
            search_rare <= 3 * first,
        ),
        figure(
            "bare keyset SELECT (the API's query)", keyset_sql, "bare OFFSET SELECT", offset_sql, "informative", True
        ),
    ]
    print("RESULT " + json.dumps({"bench": "api", "figures": figures}))


if __name__ == "__main__":
    main()
