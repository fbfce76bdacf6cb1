"""CSV import of contacts: streamed, mapped by header, written in batches, every bad row reported by number.

The file is read row by row through ``csv`` over a text stream (never all rows in memory); rows are validated one by
one and written a chunk at a time: one query finds the chunk's existing contacts, then ``bulk_create`` /
``bulk_update`` write it. Importing the same file twice changes nothing the second time: unchanged contacts are not
written, segment membership and Do Not Contact are inserted only where missing.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, cast

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, transaction
from django.db.models import Field
from django.utils import timezone

from .models import Channel, Contact, ContactImport, ContactImportError, DoNotContact, Segment, TimelineEvent
from .phones import InvalidPhoneNumber, mobile_with_location
from .services import dnc_active, segment_add_contacts, timeline_record_many

CORE_FIELDS = ["first_name", "last_name", "email", "mobile", "country", "timezone", "preferred_language"]
TARGET_LABELS = {
    "first_name": "First name",
    "last_name": "Last name",
    "email": "Email",
    "mobile": "Mobile number",
    "country": "Country",
    "timezone": "Timezone",
    "preferred_language": "Preferred language",
    "dnc": "SMS Do Not Contact (yes/no)",
}
# Normalised header -> target; a header not listed becomes a custom field of the same name.
SYNONYMS = {
    "firstname": "first_name",
    "first": "first_name",
    "givenname": "first_name",
    "forename": "first_name",
    "lastname": "last_name",
    "last": "last_name",
    "surname": "last_name",
    "familyname": "last_name",
    "email": "email",
    "emailaddress": "email",
    "mail": "email",
    "mobile": "mobile",
    "mobilenumber": "mobile",
    "mobilephone": "mobile",
    "phone": "mobile",
    "phonenumber": "mobile",
    "cell": "mobile",
    "cellphone": "mobile",
    "msisdn": "mobile",
    "sms": "mobile",
    "country": "country",
    "countrycode": "country",
    "timezone": "timezone",
    "tz": "timezone",
    "language": "preferred_language",
    "preferredlanguage": "preferred_language",
    "lang": "preferred_language",
    "locale": "preferred_language",
    "dnc": "dnc",
    "donotcontact": "dnc",
    "smsdnc": "dnc",
    "optout": "dnc",
    "optedout": "dnc",
    "unsubscribed": "dnc",
}
TRUE_WORDS = {"yes", "y", "true", "1", "x", "dnc", "unsubscribed", "opted out"}
FALSE_WORDS = {"", "no", "n", "false", "0"}
CHUNK_SIZE = 1000
_ZONES = zoneinfo.available_timezones()


class MappingError(ValueError):
    pass


def _slug(header: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", header.lower())


def _custom_key(header: str) -> str:
    key = re.sub(r"[^A-Za-z0-9]+", "_", header.strip()).strip("_").lower()
    key = re.sub(r"_+", "_", key)
    return key if key and key[0].isalpha() else f"field_{key}".rstrip("_")


def auto_mapping(headers: list[str]) -> dict[str, str]:
    """Column index -> target guessed from the headers; each core target once, unknown headers as custom fields."""
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for index, header in enumerate(headers):
        slug = _slug(header)
        target = SYNONYMS.get(slug, "")
        if not target and slug:
            key = _custom_key(header)
            target = f"custom_date.{key}" if "date" in slug or slug.endswith("birthday") else f"custom.{key}"
        if target in used:
            target = ""
        used.add(target)
        mapping[str(index)] = target
    return mapping


def mapping_clean(mapping: dict[str, str], headers: list[str]) -> dict[str, str]:
    """Check a (possibly edited) mapping: known targets, each used once, exactly one mobile column."""
    cleaned: dict[str, str] = {}
    seen: dict[str, str] = {}
    for index, _header in enumerate(headers):
        target = (mapping.get(str(index)) or "").strip()
        if target.startswith(("custom.", "custom_date.")):
            key = target.split(".", 1)[1]
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,62}", key) or "__" in key:
                raise MappingError(f"Column “{headers[index]}”: “{key}” is not a valid custom field name.")
        elif target and target not in TARGET_LABELS:
            raise MappingError(f"Column “{headers[index]}”: unknown field “{target}”.")
        if target and target in seen:
            raise MappingError(f"Columns “{seen[target]}” and “{headers[index]}” both map to {target}.")
        if target:
            seen[target] = headers[index]
        cleaned[str(index)] = target
    if "mobile" not in seen:
        raise MappingError("Map one column to the mobile number: contacts are matched by it.")
    return cleaned


def text_stream(binary: IO[bytes]) -> io.TextIOWrapper:
    # surrogateescape keeps undecodable bytes as markers, so a bad row is reported instead of failing the file.
    return io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline="")


def read_headers(binary: IO[bytes]) -> list[str]:
    """The header row of a CSV file; ``MappingError`` when there is none."""
    stream = text_stream(binary)
    try:
        headers = next(csv.reader(stream), [])
    except csv.Error as exc:
        raise MappingError(f"The file is not CSV: {exc}.") from None
    finally:
        stream.detach()
    headers = [h.strip() for h in headers]
    if not any(headers):
        raise MappingError("The file is empty: the first row must name the columns.")
    if any(_has_bad_bytes(h) for h in headers):
        raise MappingError("The header row is not UTF-8 text: save the file as CSV UTF-8 and upload it again.")
    return headers


def _has_bad_bytes(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


@dataclass
class ImportSummary:
    rows_read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    errors: int = 0


@dataclass
class _Row:
    number: int
    mobile: str
    values: dict[str, str]
    custom: dict[str, str] = field(default_factory=dict)
    dnc: bool = False
    inferred_country: str = ""
    inferred_timezone: str = ""


class _RowError(ValueError):
    pass


def _parse_row(number: int, cells: list[str], headers: list[str], mapping: dict[str, str], region: str | None) -> _Row:
    if any(_has_bad_bytes(cell) for cell in cells):
        raise _RowError("bad encoding: the row is not UTF-8 text")
    if len(cells) != len(headers):
        raise _RowError(f"wrong number of columns: expected {len(headers)}, found {len(cells)}")
    values: dict[str, str] = {}
    custom: dict[str, str] = {}
    dnc = False
    for index, raw in enumerate(cells):
        target = mapping.get(str(index), "")
        cell = raw.strip()
        if not target or (not cell and target != "mobile"):
            continue
        if target.startswith("custom."):
            custom[target.removeprefix("custom.")] = cell
        elif target.startswith("custom_date."):
            try:
                custom[target.removeprefix("custom_date.")] = dt.date.fromisoformat(cell.replace("/", "-")).isoformat()
            except ValueError:
                raise _RowError(f"bad date “{cell}” in column “{headers[index]}” (use YYYY-MM-DD)") from None
        elif target == "dnc":
            word = cell.lower()
            if word not in TRUE_WORDS | FALSE_WORDS:
                raise _RowError(f"Do Not Contact must be yes or no, not “{cell}”")
            dnc = word in TRUE_WORDS
        else:
            values[target] = cell
    if "email" in values:
        try:
            validate_email(values["email"])
        except ValidationError:
            raise _RowError(f"invalid email “{values['email']}”") from None
    if "country" in values:
        values["country"] = values["country"].upper()
        if not re.fullmatch(r"[A-Z]{2}", values["country"]):
            raise _RowError(f"country “{values['country']}” is not a two-letter ISO code")
    if "timezone" in values and values["timezone"] not in _ZONES:
        raise _RowError(f"unknown timezone “{values['timezone']}”")
    raw_mobile = values.pop("mobile", "")
    if not raw_mobile:
        raise _RowError("no mobile number")
    try:
        mobile, country, zone = mobile_with_location(raw_mobile, region=values.get("country") or region)
    except InvalidPhoneNumber as exc:
        raise _RowError(f"invalid mobile number: {exc}") from None
    return _Row(
        number=number,
        mobile=mobile,
        values=values,
        custom=custom,
        dnc=dnc,
        inferred_country=country,
        inferred_timezone=zone,
    )


# The import writes contacts in raw SQL: the ORM's phone number field re-parses and re-validates every value on
# every query and insert (several phonenumbers parses per row), which made imports several times slower. Numbers
# here are already normalised E.164 by ``mobile_with_location``.
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


def _insert_new(rows: list[_Row], now: dt.datetime) -> None:
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
                if name == "mobile":
                    params.append(row.mobile)
                elif name == "custom_fields":
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


@dataclass
class Importer:
    """One run over one file. Callbacks let the caller store errors and progress as chunks complete."""

    mapping: dict[str, str]
    mode: str = "update"
    region: str | None = None
    segment: Segment | None = None
    source_name: str = "CSV file"
    on_errors: Callable[[list[tuple[int, str]]], None] | None = None
    on_progress: Callable[[ImportSummary], None] | None = None
    chunk_size: int = CHUNK_SIZE
    summary: ImportSummary = field(default_factory=ImportSummary)

    def run(self, binary: IO[bytes]) -> ImportSummary:
        stream = text_stream(binary)
        reader = csv.reader(stream)
        headers = [h.strip() for h in next(reader, [])]
        self.mapping = mapping_clean(self.mapping, headers)
        seen: dict[str, int] = {}
        chunk: list[_Row] = []
        errors: list[tuple[int, str]] = []
        number = 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                number += 1
                errors.append((number, f"not readable as CSV: {exc}"))
                continue
            number += 1
            if not any(cell.strip() for cell in cells):
                continue  # blank lines, often at the end of a file
            self.summary.rows_read += 1
            try:
                row = _parse_row(number, cells, headers, self.mapping, self.region)
                if row.mobile in seen:
                    raise _RowError(f"duplicate: the number {row.mobile} is already on row {seen[row.mobile]}")
            except _RowError as exc:
                errors.append((number, str(exc)))
                continue
            seen[row.mobile] = number
            chunk.append(row)
            if len(chunk) >= self.chunk_size:
                self._flush(chunk, errors)
                chunk, errors = [], []
        self._flush(chunk, errors)
        stream.detach()
        return self.summary

    def _flush(self, rows: list[_Row], errors: list[tuple[int, str]]) -> None:
        if rows:
            self._write(rows)
        if errors:
            self.summary.errors += len(errors)
            if self.on_errors:
                self.on_errors(errors)
        if self.on_progress:
            self.on_progress(self.summary)

    @transaction.atomic
    def _write(self, rows: list[_Row]) -> None:
        now = timezone.now()
        known = _ids_by_mobile([r.mobile for r in rows])
        # Only existing contacts become model instances (one parse each when loaded); new ones go in by raw SQL.
        loaded = Contact.objects.filter(pk__in=known.values()).defer("mobile") if known else Contact.objects.none()
        by_id = {c.pk: c for c in loaded}
        existing = {mobile: by_id[pk] for mobile, pk in known.items() if pk in by_id}
        new: list[_Row] = []
        changed: list[tuple[Contact, list[str]]] = []
        kept: list[int] = []
        for row in rows:
            contact = existing.get(row.mobile)
            if contact is None:
                new.append(row)
                continue
            if self.mode == "skip":
                self.summary.skipped += 1
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
            Contact.objects.bulk_update([c for c, _ in changed], update_fields, batch_size=self.chunk_size)
        self.summary.created += len(new)
        self.summary.updated += len(changed)
        self.summary.unchanged += len(kept)
        entries = [
            TimelineEvent(contact_id=cid, kind="contact.imported", title=f"Created by import of {self.source_name}")
            for cid in new_ids
        ] + [
            TimelineEvent(
                contact_id=c.pk,
                kind="contact.imported",
                title=f"Updated by import of {self.source_name}",
                detail={"fields": names},
            )
            for c, names in changed
        ]
        timeline_record_many(entries=entries)
        imported = [r for r in rows if not (self.mode == "skip" and r.mobile in existing)]
        ids = [by_mobile[r.mobile] for r in imported if r.mobile in by_mobile]
        if self.segment is not None and ids:
            segment_add_contacts(segment=self.segment, contact_ids=ids)
        self._mark_dnc([by_mobile[r.mobile] for r in imported if r.dnc and r.mobile in by_mobile])

    def _mark_dnc(self, contact_ids: list[int]) -> None:
        if not contact_ids:
            return
        already = set(dnc_active().filter(contact_id__in=contact_ids).values_list("contact_id", flat=True))
        fresh = [cid for cid in contact_ids if cid not in already]
        comment = f"Import of {self.source_name}"
        DoNotContact.objects.bulk_create(
            [
                DoNotContact(
                    contact_id=cid,
                    channel=Channel.SMS,
                    reason=DoNotContact.Reason.MANUAL,
                    source=DoNotContact.Source.IMPORT,
                    comment=comment,
                )
                for cid in fresh
            ],
            ignore_conflicts=True,
        )
        detail: dict[str, Any] = {"channel": "sms", "reason": "manual", "source": "import", "comment": comment}
        timeline_record_many(
            entries=[
                TimelineEvent(contact_id=cid, kind="dnc.added", title="Do Not Contact (SMS): Manual", detail=detail)
                for cid in fresh
            ]
        )


# The ContactImport record: created by the upload, mapped by the marketer, run by a worker.


def contact_import_create(
    *, upload: Any, mode: str, region: str, segment: Segment | None, created_by: str
) -> ContactImport:
    """Store an uploaded file and guess its mapping; ``MappingError`` if it has no readable header row."""
    contact_import = ContactImport(
        original_name=getattr(upload, "name", "upload.csv")[:255],
        mode=mode,
        region=region.upper(),
        segment=segment,
        created_by=created_by,
    )
    upload.seek(0)
    contact_import.headers = read_headers(upload)
    upload.seek(0)
    contact_import.mapping = auto_mapping(contact_import.headers)
    contact_import.file.save(contact_import.original_name, upload, save=False)
    contact_import.save()
    return contact_import


def contact_import_queue(*, contact_import: ContactImport, mapping: dict[str, str]) -> None:
    """Fix the mapping and hand the import to a worker (after the transaction commits)."""
    from .tasks import import_contacts

    contact_import.mapping = mapping_clean(mapping, contact_import.headers)
    contact_import.status = ContactImport.Status.QUEUED
    contact_import.save(update_fields=["mapping", "status"])
    transaction.on_commit(lambda: import_contacts.delay(contact_import.pk))


def contact_import_run(*, contact_import_id: int) -> bool:
    """Run a queued import; False when another worker already claimed it (a redelivered task)."""
    claimed = ContactImport.objects.filter(pk=contact_import_id, status=ContactImport.Status.QUEUED).update(
        status=ContactImport.Status.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        return False
    contact_import = ContactImport.objects.get(pk=contact_import_id)
    size = max(contact_import.file.size, 1)

    def save_errors(errors: list[tuple[int, str]]) -> None:
        ContactImportError.objects.bulk_create(
            [ContactImportError(contact_import=contact_import, row_number=n, reason=r) for n, r in errors],
            batch_size=1000,
        )

    with contact_import.file.open("rb") as binary:

        def save_progress(summary: ImportSummary) -> None:
            ContactImport.objects.filter(pk=contact_import.pk).update(
                progress=min(99, int(100 * binary.tell() / size)),
                rows_read=summary.rows_read,
                created_count=summary.created,
                updated_count=summary.updated,
                unchanged_count=summary.unchanged,
                skipped_count=summary.skipped,
                error_count=summary.errors,
            )

        importer = Importer(
            mapping=contact_import.mapping,
            mode=contact_import.mode,
            region=contact_import.region or None,
            segment=contact_import.segment,
            source_name=contact_import.original_name,
            on_errors=save_errors,
            on_progress=save_progress,
        )
        try:
            importer.run(binary)
        except Exception as exc:
            ContactImport.objects.filter(pk=contact_import.pk).update(
                status=ContactImport.Status.FAILED, failure=str(exc)[:2000], finished_at=timezone.now()
            )
            raise
    ContactImport.objects.filter(pk=contact_import.pk).update(
        status=ContactImport.Status.DONE, progress=100, finished_at=timezone.now()
    )
    return True
