"""The PostgreSQL path: checked rows go into a staging table by ``COPY``, and each chunk is written by a handful of
set-based statements in one transaction, whatever its size.

Per chunk: rows whose number an earlier row has are refused (against the chunk and a table of the numbers already
imported); in update mode one statement changes the existing contacts that the file changes and writes their
timeline entries from what it changed (only the fields a row gives, only when they differ: a re-import writes
nothing); in skip mode they leave the stage; one ``INSERT … ON CONFLICT (mobile) DO NOTHING`` adds the new contacts
and their timeline entries (a reply may create a contact between the two); segment membership and Do Not Contact
go through the contacts services with the stage as their set. No contact passes through Python.

The update and the insert are two statements rather than one ``INSERT … ON CONFLICT DO UPDATE``: a conflicting
row would be locked (written) even when nothing changes, and the insert's country and timezone are the row's or
the number's, where an update may only take the row's.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models.expressions import RawSQL
from django.utils import timezone

from ..consent import consent_record_matching
from ..models import Channel, ConsentSource, Contact, DoNotContact, TimelineEvent
from ..services import dnc_add_matching, segment_add_contacts
from ..suppression import contacts_apply_suppressions
from .base import ChunkWriter
from .mapping import CORE_FIELDS
from .values import Row

STAGE = "import_stage"
SEEN = "import_seen"
# Given values are NULL when the row leaves them empty; country and timezone beside what the number tells.
_STAGE_COLUMNS = [
    "line",
    "mobile",
    "first_name",
    "last_name",
    "email",
    "preferred_language",
    "country",
    "timezone",
    "inferred_country",
    "inferred_timezone",
    "custom",
    "dnc",
    "consent",
    "consent_at",
]
_GIVEN = ["first_name", "last_name", "email", "preferred_language", "country", "timezone"]


def _staged(row: Row) -> tuple[Any, ...]:
    """A row as COPY's CSV reads it: an empty field is NULL (a value the row does not give, which is never "")."""
    values = row.values
    return (
        row.number,
        row.mobile,
        *(values.get(name) for name in _GIVEN),
        row.inferred_country,
        row.inferred_timezone,
        json.dumps(row.custom, ensure_ascii=False) if row.custom else None,
        "t" if row.dnc else "f",
        None if row.consent is None else ("t" if row.consent else "f"),
        row.consent_at or None,
    )


class CopyWriter(ChunkWriter):
    pipelined = True

    @property
    def processes(self) -> int:  # type: ignore[override]
        return int(settings.IMPORT_PARSE_PROCESSES)

    def prepare(self, rows: list[Row]) -> str:
        """The chunk as COPY input, formatted by the csv module in the reading thread (not row by row here)."""
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(_staged(row) for row in rows)
        return text.getvalue()

    def start(self) -> None:
        plan = [target for _, target in self.parser.plan]
        # The fields an update may change, in file order (the order the timeline entry lists them in).
        self.fields = [name for name in plan if name in CORE_FIELDS and name != "mobile"]
        self.has_custom = any(target.startswith("custom") for target in plan)
        source = self.importer.source_name
        self.created_title = f"Created by import of {source}"[:255]
        self.updated_title = f"Updated by import of {source}"[:255]
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS pg_temp.{STAGE}, pg_temp.{SEEN}")
            cursor.execute(
                f"CREATE TEMP TABLE {STAGE} (line integer NOT NULL, mobile text NOT NULL, "
                + ", ".join(f"{name} text" for name in _GIVEN)
                + ", inferred_country text, inferred_timezone text, custom jsonb, dnc boolean NOT NULL, "
                "consent boolean, consent_at timestamptz)"
            )
            cursor.execute(f"CREATE TEMP TABLE {SEEN} (mobile text PRIMARY KEY, line integer NOT NULL)")

    def finish(self) -> None:
        if connection.connection is None or connection.needs_rollback:
            return  # the run failed inside a transaction: the tables go with the session or the rollback
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS pg_temp.{STAGE}, pg_temp.{SEEN}")

    @transaction.atomic
    def write(self, batch: str) -> list[tuple[int, str]]:
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        with connection.cursor() as cursor:
            # This chunk's commit need not wait for the disk: a crash loses at most the last chunks, which the import
            # does not report as done, and a re-run (a no-op for what was written) imports them again.
            cursor.execute("SET LOCAL synchronous_commit TO off")
            cursor.execute(f"TRUNCATE {STAGE}")
            with cursor.copy(f"COPY {STAGE} ({', '.join(_STAGE_COLUMNS)}) FROM STDIN WITH (FORMAT csv)") as copy:
                copy.write(batch)
            # A temporary table has no statistics until asked: without them the planner joins a chunk to the whole
            # contacts table by hash (reading all of it) instead of looking each number up in its index. The join
            # and duplicate columns are enough, and cost a third of statistics on every column (measured).
            cursor.execute(f"ANALYZE {STAGE} (mobile, line)")
            duplicates = self._refuse_duplicates(cursor)
            cursor.execute(f"INSERT INTO {SEEN} (mobile, line) SELECT mobile, line FROM {STAGE}")  # noqa: S608
            if self.importer.mode == "skip":
                cursor.execute(f"DELETE FROM {STAGE} s USING {Contact._meta.db_table} c WHERE c.mobile = s.mobile")  # noqa: S608
                self.summary.skipped += max(cursor.rowcount, 0)
            else:
                existing, updated = self._update_existing(cursor, now)
                self.summary.updated += updated
                self.summary.unchanged += existing - updated
            self.summary.created += self._insert_new(cursor, now)
        self._memberships_and_dnc()
        return duplicates

    def _refuse_duplicates(self, cursor: Any) -> list[tuple[int, str]]:
        """Take out of the stage each row whose number an earlier row has (in this chunk or an earlier one)."""
        cursor.execute(
            f"""
            WITH firsts AS (
                SELECT s.line, COALESCE(seen.line, min(s.line) OVER (PARTITION BY s.mobile)) AS first_line
                FROM {STAGE} s LEFT JOIN {SEEN} seen ON seen.mobile = s.mobile
            )
            DELETE FROM {STAGE} s USING firsts f WHERE s.line = f.line AND f.first_line <> s.line
            RETURNING s.line, s.mobile, f.first_line
            """  # noqa: S608 - names are this module's constants
        )
        return [
            (line, f"duplicate: the number {mobile} is already on row {first}")
            for line, mobile, first in cursor.fetchall()
        ]

    def _update_existing(self, cursor: Any, now: Any) -> tuple[int, int]:
        """Existing contacts take the values their row gives where they differ; returns (existing, updated)."""
        table, timeline = Contact._meta.db_table, TimelineEvent._meta.db_table
        changes = [f"CASE WHEN s.{n} IS NOT NULL AND s.{n} <> c.{n} THEN '{n}' END" for n in self.fields]
        sets = [f"{n} = COALESCE(cand.{n}, c.{n})" for n in self.fields]
        if self.has_custom:
            changes.append(
                "CASE WHEN s.custom IS NOT NULL AND c.custom_fields || s.custom <> c.custom_fields "
                "THEN 'custom_fields' END"
            )
            sets.append("custom_fields = c.custom_fields || COALESCE(cand.custom, '{}'::jsonb)")
        fields = f"array_remove(ARRAY[{', '.join(changes)}]::text[], NULL)" if changes else "ARRAY[]::text[]"
        chosen = ", ".join(f"s.{n}" for n in self.fields) + (", s.custom" if self.has_custom else "")
        cursor.execute(
            f"""
            WITH cand AS (
                SELECT c.id, {fields} AS fields{", " + chosen if chosen else ""}
                FROM {STAGE} s JOIN {table} c ON c.mobile = s.mobile
            ), changed AS (
                UPDATE {table} c SET {", ".join([*sets, "updated_at = %s"])}
                FROM cand WHERE c.id = cand.id AND cardinality(cand.fields) > 0
                RETURNING c.id, cand.fields
            ), recorded AS (
                INSERT INTO {timeline} (contact_id, kind, title, detail, occurred_at, created_at)
                SELECT id, 'contact.imported', %s, jsonb_build_object('fields', to_jsonb(fields)), %s, %s
                FROM changed
            )
            SELECT (SELECT count(*) FROM cand), (SELECT count(*) FROM changed)
            """,  # noqa: S608 - names come from the model and the mapping's checked targets; values are parameters
            [now, self.updated_title, now, now],
        )
        existing, updated = cursor.fetchone()
        return int(existing), int(updated)

    def _insert_new(self, cursor: Any, now: Any) -> int:
        """The stage's new contacts, in file order, each with its timeline entry; returns how many."""
        table, timeline = Contact._meta.db_table, TimelineEvent._meta.db_table
        cursor.execute(
            f"""
            WITH created AS (
                INSERT INTO {table} (first_name, last_name, email, mobile, country, timezone, preferred_language,
                                     custom_fields, created_at, updated_at)
                SELECT COALESCE(s.first_name, ''), COALESCE(s.last_name, ''), COALESCE(s.email, ''), s.mobile,
                       COALESCE(s.country, s.inferred_country, ''), COALESCE(s.timezone, s.inferred_timezone, ''),
                       COALESCE(s.preferred_language, ''), COALESCE(s.custom, '{{}}'::jsonb), %s, %s
                FROM {STAGE} s ORDER BY s.line
                ON CONFLICT (mobile) DO NOTHING
                RETURNING id
            )
            INSERT INTO {timeline} (contact_id, kind, title, detail, occurred_at, created_at)
            SELECT id, 'contact.imported', %s, '{{}}'::jsonb, %s, %s FROM created
            """,  # noqa: S608 - names come from the models
            [now, now, self.created_title, now, now],
        )
        return max(cursor.rowcount, 0)

    def _consent(self) -> None:
        """The rows' sms_consent decisions, set-based (``contacts.consent.consent_record_matching``), each at its
        own timestamp column or now."""
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        rows = (
            "SELECT c.id AS contact_id, s.mobile AS address, "  # noqa: S608 - names come from the models
            "CASE WHEN s.consent THEN 'subscribed' ELSE 'unsubscribed' END AS status, COALESCE(s.consent_at, %s) AS at "
            f"FROM {STAGE} s JOIN {Contact._meta.db_table} c ON c.mobile = s.mobile WHERE s.consent IS NOT NULL"
        )
        consent_record_matching(
            rows_sql=rows,
            params=[now],
            source=ConsentSource.IMPORT,
            recorded_by=f"Import of {self.importer.source_name}"[:150],
        )

    def _memberships_and_dnc(self) -> None:
        importer = self.importer
        staged = f"SELECT c.id FROM {STAGE} s JOIN {Contact._meta.db_table} c ON c.mobile = s.mobile"  # noqa: S608
        # A new contact with a number that opted out before is Do Not Contact at once (suppression by address).
        contacts_apply_suppressions(contacts=Contact.objects.filter(pk__in=RawSQL(staged, ())))  # noqa: S611
        if importer.segment is not None:
            contacts = Contact.objects.filter(pk__in=RawSQL(staged, ()))  # noqa: S611 - constant SQL
            segment_add_contacts(segment=importer.segment, contact_ids=contacts)
        if self.parser.has_consent:
            self._consent()
        if self.parser.has_dnc:
            contacts = Contact.objects.filter(pk__in=RawSQL(f"{staged} WHERE s.dnc", ()))  # noqa: S611 - constant SQL
            dnc_add_matching(
                contacts=contacts,
                channel=Channel.SMS,
                reason=DoNotContact.Reason.MANUAL,
                source=DoNotContact.Source.IMPORT,
                comment=f"Import of {importer.source_name}",
            )
