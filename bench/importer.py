"""CSV import on PostgreSQL: a 1,000,000-row file (1% bad rows) through ``manage.py import_contacts``, beside a bare
``COPY`` of the same file measured in the same run, then the same file again (which must change nothing).

    python -m smsapp.testing.services -- python bench/importer.py [--rows 1000000]

Figures: rows per second of the import (a child process, as an operator runs it) and of the re-import, the child's
peak RSS, and where the time went: the import process's CPU (reading, checks, phone numbers) and PostgreSQL's
(COPY, statements, indexes, foreign keys), read from /proc for the throwaway server's processes.
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

from contacts.models import Contact, TimelineEvent  # noqa: E402


def write_csv(path: Path, rows: int) -> int:
    """The segments benchmark's file: French national numbers, a custom field and a custom date; 1% bad numbers."""
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


def postgres_cpu() -> float | None:
    """CPU seconds used so far by the throwaway server's processes (ended backends count in the postmaster's)."""
    data = os.environ.get("SMSAPP_PG_DATA")
    if not data:
        return None
    master = int(Path(data, "postmaster.pid").read_text().splitlines()[0])
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == master or int(fields[1]) == master:
            total += sum(int(value) for value in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


def timed_import(path: Path) -> dict[str, float | str]:
    before_child = resource.getrusage(resource.RUSAGE_CHILDREN)
    before_pg = postgres_cpu()
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "import_contacts", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    seconds = time.monotonic() - started
    if proc.returncode:
        raise SystemExit(f"import_contacts failed:\n{proc.stderr[-3000:]}")
    after_child = resource.getrusage(resource.RUSAGE_CHILDREN)
    after_pg = postgres_cpu()
    return {
        "seconds": seconds,
        "summary": proc.stdout.strip().splitlines()[-1],
        "errors": sum(1 for line in proc.stdout.splitlines() if line.startswith("Row ")),
        "python_cpu": (after_child.ru_utime + after_child.ru_stime) - (before_child.ru_utime + before_child.ru_stime),
        "postgres_cpu": (after_pg - before_pg) if after_pg is not None and before_pg is not None else -1.0,
    }


def bare_copy(path: Path) -> float:
    with connection.cursor() as cursor:
        cursor.execute("CREATE UNLOGGED TABLE bench_copy (a text, b text, c text, d text, e text, f text, g text)")
        started = time.monotonic()
        with (
            path.open("rb") as handle,
            cursor.copy("COPY bench_copy FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
        ):
            while chunk := handle.read(1 << 16):
                copy.write(chunk)
        seconds = time.monotonic() - started
        cursor.execute("DROP TABLE bench_copy")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        raise SystemExit("needs PostgreSQL: python -m smsapp.testing.services -- python bench/importer.py")
    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE contacts_contact, contacts_contactimport RESTART IDENTITY CASCADE")
    path = Path(tempfile.mkdtemp(prefix="smsapp-bench-")) / "contacts.csv"
    bad = write_csv(path, args.rows)
    good = args.rows - bad
    print(f"{args.rows:,} rows ({bad:,} bad), {path.stat().st_size / 2**20:.0f} MiB", flush=True)

    first = timed_import(path)
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"import: {first['summary']} in {first['seconds']:.1f}s; peak RSS {peak_mib:.0f} MiB; CPU: import process "
        f"{first['python_cpu']:.1f}s, PostgreSQL {first['postgres_cpu']:.1f}s",
        flush=True,
    )
    assert f"{args.rows} rows read: {good} created" in str(first["summary"]), first["summary"]
    assert f"{bad} refused" in str(first["summary"]), first
    assert first["errors"] == bad, first  # every bad row reported
    assert Contact.objects.count() == good
    entries = TimelineEvent.objects.count()

    again = timed_import(path)
    print(
        f"re-import: {again['summary']} in {again['seconds']:.1f}s; CPU: import process "
        f"{again['python_cpu']:.1f}s, PostgreSQL {again['postgres_cpu']:.1f}s",
        flush=True,
    )
    assert f"0 created, 0 updated, {good} unchanged" in str(again["summary"]), again["summary"]
    assert TimelineEvent.objects.count() == entries  # nothing written the second time

    copy_seconds = bare_copy(path)
    print(f"bare COPY of the same file: {copy_seconds:.2f}s", flush=True)
    rate, copy_rate = args.rows / float(first["seconds"]), args.rows / copy_seconds
    again_rate = args.rows / float(again["seconds"])
    figures = [
        {
            "figure": f"import_contacts, {args.rows:,}-row CSV (1% bad rows, each reported), empty table",
            "value": round(rate),
            "unit": "rows/s",
            "baseline": "bare COPY of the same file",
            "baseline_value": round(copy_rate),
            "ratio": round(rate / copy_rate, 3),
            "target": ">= 50,000 rows/s",
            "ok": rate >= 50_000,
        },
        {
            "figure": "import_contacts peak memory (child RSS)",
            "value": round(peak_mib),
            "unit": "MiB",
            "baseline": "none",
            "baseline_value": None,
            "ratio": None,
            "target": "< 300 MiB",
            "ok": peak_mib < 300,
        },
        {
            "figure": "CPU of the import: import process / PostgreSQL",
            "value": round(float(first["python_cpu"]), 1),
            "unit": "s",
            "baseline": "PostgreSQL's CPU in the same import",
            "baseline_value": round(float(first["postgres_cpu"]), 1),
            "ratio": None,
            "target": "informative (where the time goes)",
            "ok": True,
        },
        {
            "figure": "re-import of the same file (no writes)",
            "value": round(again_rate),
            "unit": "rows/s",
            "baseline": "bare COPY of the same file",
            "baseline_value": round(copy_rate),
            "ratio": round(again_rate / copy_rate, 3),
            "target": "informative; 0 created, 0 updated, no timeline entries",
            "ok": True,
        },
    ]
    print("RESULT " + json.dumps({"bench": "importer", "figures": figures}))


if __name__ == "__main__":
    main()
