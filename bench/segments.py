"""Segment rebuild and CSV import on PostgreSQL, each beside a bare-SQL baseline measured in the same run.

    python -m smsapp.testing.services -- python bench/segments.py [--contacts 1000000] [--import-rows 100000]

1. N contacts are generated in SQL; a filter-based segment (last name equals "smith" AND not SMS Do Not Contact)
   is built with ``segment_rebuild`` and timed beside a hand-written ``INSERT … SELECT`` of the same membership rows.
   Each is run twice, alternating, from an empty membership; the best of each is reported.
2. A 100,000-row CSV file (1% bad rows) is imported by ``manage.py import_contacts`` in a child process: rows per
   second and the child's peak RSS, beside a bare ``COPY`` of the same file into an unlogged table.

The last line is ``RESULT {json}`` (see bench/run_all.py).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsapp.settings")
os.environ.setdefault("SECRET_KEY", "bench-secret-key-not-for-production-0123456789")
os.environ.setdefault("SMSAPP_IGNORE_DOTENV", "1")
os.environ.setdefault("SMSAPP_VAR_DIR", tempfile.mkdtemp(prefix="smsapp-bench-"))

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from contacts.models import Segment  # noqa: E402
from contacts.services import segment_rebuild  # noqa: E402

BARE_SQL = """
INSERT INTO contacts_segmentmembership (segment_id, contact_id, manually_added, manually_removed, added_at)
SELECT %s, c.id, false, false, now() FROM contacts_contact c
WHERE upper(c.last_name) = 'SMITH'
  AND NOT EXISTS (SELECT 1 FROM contacts_donotcontact d
                  WHERE d.contact_id = c.id AND d.channel = 'sms' AND d.lifted_at IS NULL)
ON CONFLICT (segment_id, contact_id) DO NOTHING
"""


def sql(statement: str, params: list[object] | None = None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


def seed(contacts: int) -> None:
    started = time.monotonic()
    sql("TRUNCATE contacts_contact RESTART IDENTITY CASCADE")
    sql(
        """
        INSERT INTO contacts_contact (first_name, last_name, email, mobile, country, timezone, preferred_language,
                                      custom_fields, created_at, updated_at)
        SELECT 'P' || i, (ARRAY['Smith', 'Jones', 'Brown', 'Taylor'])[1 + i %% 4], 'p' || i || '@example.com',
               '+4475' || lpad(i::text, 8, '0'), 'GB', 'Europe/London', 'en', '{}'::jsonb,
               now() - (i %% 1000) * interval '1 hour', now()
        FROM generate_series(1, %s) AS i
        """,
        [contacts],
    )
    # One contact in 20 is Do Not Contact (some lifted: history that must not count).
    sql(
        """
        INSERT INTO contacts_donotcontact (contact_id, channel, reason, source, comment, created_at, lifted_at,
                                           lifted_by, lifted_comment)
        SELECT id, 'sms', 'unsubscribed', 'keyword', '', now(), CASE WHEN id % 100 = 0 THEN now() END, '', ''
        FROM contacts_contact WHERE id % 20 = 0
        """
    )
    sql("ANALYZE")
    print(f"seeded {contacts:,} contacts in {time.monotonic() - started:.1f}s", flush=True)


def time_segment(contacts: int) -> dict[str, float]:
    segment = Segment.objects.create(
        name="Smiths who can be texted",
        kind=Segment.Kind.FILTER,
        filters={
            "match": "all",
            "rules": [
                {"field": "last_name", "operator": "equals", "value": "smith"},
                {"field": "dnc_sms", "operator": "equals", "value": "no"},
            ],
        },
    )
    ours: list[float] = []
    bare: list[float] = []
    members = 0
    for _ in range(2):
        sql("DELETE FROM contacts_segmentmembership")
        sql("VACUUM ANALYZE contacts_segmentmembership")
        started = time.monotonic()
        members = segment_rebuild(segment=segment)["members"]
        ours.append(time.monotonic() - started)
        sql("DELETE FROM contacts_segmentmembership")
        sql("VACUUM ANALYZE contacts_segmentmembership")
        started = time.monotonic()
        bare_rows = sql(BARE_SQL, [segment.pk])
        bare.append(time.monotonic() - started)
        assert bare_rows == members, (bare_rows, members)
        print(f"rebuild {ours[-1]:.2f}s vs bare INSERT…SELECT {bare[-1]:.2f}s ({members:,} members)", flush=True)
    started = time.monotonic()
    unchanged = segment_rebuild(segment=segment)
    steady = time.monotonic() - started
    print(f"rebuild with nothing to change: {steady:.2f}s ({unchanged})", flush=True)
    return {"ours": min(ours), "bare": min(bare), "members": members, "steady": steady}


def write_csv(path: Path, rows: int) -> int:
    bad = 0
    with path.open("w") as handle:
        handle.write("First name,Last name,Email,Mobile,Country,Plan,Signup date\n")
        for i in range(rows):
            if i % 100 == 99:
                handle.write(f"Bad{i},Row,bad{i}@example.com,not-a-number,FR,gold,2024-01-01\n")
                bad += 1
            else:
                handle.write(f"F{i},L{i},f{i}@example.com,06 1{i:07d},FR,gold,2024-01-{1 + i % 28:02d}\n")
    return bad


def time_import(rows: int) -> dict[str, float]:
    path = Path(tempfile.mkdtemp(prefix="smsapp-bench-")) / "contacts.csv"
    bad = write_csv(path, rows)
    env = dict(os.environ, DATABASE_URL=os.environ["DATABASE_URL"])
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "import_contacts", str(path)],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    seconds = time.monotonic() - started
    if proc.returncode:
        raise SystemExit(f"import_contacts failed:\n{proc.stderr[-3000:]}")
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    summary = proc.stdout.strip().splitlines()[-1]
    print(f"import_contacts: {summary} in {seconds:.1f}s; peak RSS {peak_mib:.0f} MiB", flush=True)
    assert f"{bad} refused" in summary, summary

    sql("CREATE UNLOGGED TABLE IF NOT EXISTS bench_copy (a text, b text, c text, d text, e text, f text, g text)")
    sql("TRUNCATE bench_copy")
    started = time.monotonic()
    with (
        connection.cursor() as cursor,
        path.open("rb") as handle,
        cursor.copy("COPY bench_copy FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
    ):
        while chunk := handle.read(1 << 16):
            copy.write(chunk)
    copy_seconds = time.monotonic() - started
    sql("DROP TABLE bench_copy")
    print(f"bare COPY of the same file: {copy_seconds:.2f}s", flush=True)
    return {"rows_per_s": rows / seconds, "peak_mib": peak_mib, "copy_rows_per_s": rows / copy_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--import-rows", type=int, default=100_000)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        raise SystemExit("needs PostgreSQL: python -m smsapp.testing.services -- python bench/segments.py")
    call_command("migrate", verbosity=0)
    seed(args.contacts)
    seg = time_segment(args.contacts)
    imp = time_import(args.import_rows)
    ratio = seg["ours"] / seg["bare"]
    figures = [
        {
            "figure": f"filter-based segment rebuild, {args.contacts:,} contacts ({seg['members']:,} members)",
            "value": round(seg["ours"], 3),
            "unit": "s",
            "baseline": "bare INSERT … SELECT of the same rows",
            "baseline_value": round(seg["bare"], 3),
            "ratio": round(ratio, 2),
            "target": "<= 2x baseline",
            "ok": ratio <= 2,
        },
        {
            "figure": "segment rebuild with nothing to change",
            "value": round(seg["steady"], 3),
            "unit": "s",
            "baseline": "first build",
            "baseline_value": round(seg["ours"], 3),
            "ratio": round(seg["steady"] / seg["ours"], 2),
            "target": "informative",
            "ok": True,
        },
        {
            "figure": f"import_contacts, {args.import_rows:,}-row CSV",
            "value": round(imp["rows_per_s"]),
            "unit": "rows/s",
            "baseline": "bare COPY of the same file",
            "baseline_value": round(imp["copy_rows_per_s"]),
            "ratio": round(imp["rows_per_s"] / imp["copy_rows_per_s"], 3),
            "target": "informative",
            "ok": True,
        },
        {
            "figure": "import_contacts peak memory (child RSS)",
            "value": round(imp["peak_mib"]),
            "unit": "MiB",
            "baseline": "none",
            "baseline_value": None,
            "ratio": None,
            "target": "< 300 MiB",
            "ok": imp["peak_mib"] < 300,
        },
    ]
    print("RESULT " + json.dumps({"bench": "segments", "figures": figures}))


if __name__ == "__main__":
    main()
