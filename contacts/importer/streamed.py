"""The path for databases without COPY (SQLite, ``make run``'s default): each chunk of checked rows is written by
a few statements: one query finds the chunk's existing contacts, multi-row INSERTs add the new ones, ``bulk_update``
changes the rest. Unchanged contacts are not written; segment membership and Do Not Contact only where missing."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from django.db import connection, transaction
from django.db.models import Field
from django.utils import timezone

from ..consent import consent_record
from ..models import Channel, ConsentSource, ConsentStatus, Contact, DoNotContact, TimelineEvent
from ..services import dnc_add_many, segment_add_contacts, timeline_record_many
from ..suppression import contacts_apply_suppressions
from .base import ChunkWriter
from .mapping import CORE_FIELDS
from .reading import Record
from .values import Row

# Contacts go in by raw SQL: the ORM's phone number field re-parses and re-validates every value on every query and
# insert (several phonenumbers parses per row). Numbers here are already normalised E.164 by the row checks.
_INSERT_COLUMNS = [*CORE_FIELDS, "custom_fields", "created_at", "updated_at"]


def _ids_by_mobile(numbers: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    table = Contact._meta.db_table
    for start in range(0, len(numbers), 500):
        batch = numbers[start : start + 500]
        with connection.cursor() as cursor:
            placeholders = ", ".join(["%s"] * len(batch))
            cursor.execute(f"SELECT mobile, id FROM {table} WHERE mobile IN ({placeholders})", batch)  # noqa: S608
            found.update(cursor.fetchall())
    return found


def _insert_new(rows: list[Row], now: dt.datetime) -> None:
    """One multi-row ``INSERT … ON CONFLICT (mobile) DO NOTHING`` per 500 new contacts."""
    fields = {name: cast(Field[Any, Any], Contact._meta.get_field(name)) for name in _INSERT_COLUMNS}
    table = Contact._meta.db_table
    for start in range(0, len(rows), 500):
        params: list[Any] = []
        for row in rows[start : start + 500]:
            values = {name: row.values.get(name, "") for name in CORE_FIELDS}
            values["mobile"] = row.mobile
            values["country"] = values["country"] or row.inferred_country
            values["timezone"] = values["timezone"] or row.inferred_timezone
            for name in _INSERT_COLUMNS:
                if name == "custom_fields":
                    params.append(fields[name].get_db_prep_save(row.custom, connection))
                elif name in {"created_at", "updated_at"}:
                    params.append(fields[name].get_db_prep_save(now, connection))
                else:
                    params.append(values[name])
        count = len(params) // len(_INSERT_COLUMNS)
        one = "(" + ", ".join(["%s"] * len(_INSERT_COLUMNS)) + ")"
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(_INSERT_COLUMNS)}) VALUES {', '.join([one] * count)} "  # noqa: S608
                "ON CONFLICT (mobile) DO NOTHING",
                params,
            )


class StreamedWriter(ChunkWriter):
    def start(self) -> None:
        self.seen: dict[str, int] = {}  # number -> the first row that has it

    def check(self, record: Record, errors: list[tuple[int, str]]) -> Row | None:
        row = super().check(record, errors)
        if row is None:
            return None
        if row.mobile in self.seen:
            errors.append((row.number, f"duplicate: the number {row.mobile} is already on row {self.seen[row.mobile]}"))
            return None
        self.seen[row.mobile] = row.number
        return row

    def _consent(self, rows: list[Row], by_mobile: dict[str, int]) -> None:
        """The rows' sms_consent decisions. One write per decision: this writer is SQLite's (``make run``), whose
        imports are small; PostgreSQL's (``copy.CopyWriter``) records them set-based."""
        decided = [r for r in rows if r.consent is not None and r.mobile in by_mobile]
        contacts = Contact.objects.in_bulk([by_mobile[r.mobile] for r in decided])
        for row in decided:
            consent_record(
                contact=contacts[by_mobile[row.mobile]],
                status=ConsentStatus.SUBSCRIBED if row.consent else ConsentStatus.UNSUBSCRIBED,
                source=ConsentSource.IMPORT,
                at=dt.datetime.fromisoformat(row.consent_at) if row.consent_at else None,
                recorded_by=f"Import of {self.importer.source_name}"[:150],
            )

    @transaction.atomic
    def write(self, rows: list[Row]) -> list[tuple[int, str]]:
        importer, summary = self.importer, self.summary
        now = timezone.now()
        known = _ids_by_mobile([r.mobile for r in rows])
        # Only existing contacts become model instances (one parse each when loaded); new ones go in by raw SQL.
        loaded = Contact.objects.filter(pk__in=known.values()).defer("mobile") if known else Contact.objects.none()
        by_id = {c.pk: c for c in loaded}
        existing = {mobile: by_id[pk] for mobile, pk in known.items() if pk in by_id}
        new: list[Row] = []
        changed: list[tuple[Contact, list[str]]] = []
        kept: list[int] = []
        for row in rows:
            contact = existing.get(row.mobile)
            if contact is None:
                new.append(row)
                continue
            if importer.mode == "skip":
                summary.skipped += 1
                continue
            fields = [name for name, value in row.values.items() if getattr(contact, name) != value]
            for name in fields:
                setattr(contact, name, row.values[name])
            merged = {**contact.custom_fields, **row.custom}
            if merged != contact.custom_fields:
                contact.custom_fields = merged
                fields.append("custom_fields")
            if fields:
                contact.updated_at = now
                changed.append((contact, fields))
            else:
                kept.append(contact.pk)
        # ON CONFLICT DO NOTHING: a reply from a new number may create its contact between our read and this write.
        _insert_new(new, now)
        by_mobile = {**known, **_ids_by_mobile([r.mobile for r in new])}
        new_ids = [by_mobile[r.mobile] for r in new if r.mobile in by_mobile]
        if changed:
            update_fields = sorted({name for _, names in changed for name in names} | {"updated_at"})
            Contact.objects.bulk_update([c for c, _ in changed], update_fields, batch_size=1000)
        summary.created += len(new)
        summary.updated += len(changed)
        summary.unchanged += len(kept)
        source = importer.source_name
        timeline_record_many(
            entries=[
                TimelineEvent(contact_id=cid, kind="contact.imported", title=f"Created by import of {source}"[:255])
                for cid in new_ids
            ]
            + [
                TimelineEvent(
                    contact_id=c.pk,
                    kind="contact.imported",
                    title=f"Updated by import of {source}"[:255],
                    detail={"fields": names},
                )
                for c, names in changed
            ]
        )
        imported = [r for r in rows if not (importer.mode == "skip" and r.mobile in existing)]
        ids = [by_mobile[r.mobile] for r in imported if r.mobile in by_mobile]
        self._consent(imported, by_mobile)
        if new_ids:  # a new contact with a number that opted out before is Do Not Contact at once
            contacts_apply_suppressions(contacts=Contact.objects.filter(pk__in=new_ids))
        if importer.segment is not None and ids:
            segment_add_contacts(segment=importer.segment, contact_ids=ids)
        dnc_ids = [by_mobile[r.mobile] for r in imported if r.dnc and r.mobile in by_mobile]
        if dnc_ids:
            dnc_add_many(
                contact_ids=dnc_ids,
                channel=Channel.SMS,
                reason=DoNotContact.Reason.MANUAL,
                source=DoNotContact.Source.IMPORT,
                comment=f"Import of {source}",
            )
        return []
