"""CSV import: header mapping, every kind of bad row reported by number while good rows import, idempotence."""

from __future__ import annotations

import io
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from contacts.importer import (
    Importer,
    MappingError,
    auto_mapping,
    contact_import_create,
    contact_import_run,
    mapping_clean,
    read_headers,
)
from contacts.models import Contact, ContactImport, DoNotContact, Segment, SegmentMembership, TimelineEvent

pytestmark = pytest.mark.django_db

GOOD_AND_BAD = (
    b"First Name,Surname,E-mail,Phone,Country,Opted out,Renewal date,Plan\n"
    b"Ann,Smith,ann@example.com,07911 123456,GB,no,2025-03-01,gold\n"  # row 2: good
    b"Bob,Brown,bob@example.com,banana,GB,,2025-03-01,silver\n"  # row 3: invalid number
    b"Cy,Jones,cy@example.com,+33 6 12 34 56 78,FR,yes,,\n"  # row 4: good, DNC
    b"Dee,Dup,dee@example.com,+44 7911 123456,GB,,,\n"  # row 5: duplicate of row 2
    b"Eve,Late,eve@example.com,+4915123456789,DE,,31/02/2024,\n"  # row 6: bad date
    b"Fay,Short,fay@example.com\n"  # row 7: wrong column count
    b"Gus,Bad,gus@example.com,+61 412 345 678,AU,maybe,,\n"  # row 8: bad DNC value
    b"\n"
)
BAD_BYTES = b"Hal,\xff\xfeOops,hal@example.com,+1 201 555 0123,US,,,\n"  # row 9: not UTF-8


def run(data: bytes, **options: object) -> tuple[Importer, list[tuple[int, str]]]:
    errors: list[tuple[int, str]] = []
    headers = read_headers(io.BytesIO(data))
    importer = Importer(mapping=auto_mapping(headers), on_errors=errors.extend, chunk_size=2, **options)  # type: ignore[arg-type]
    importer.run(io.BytesIO(data))
    return importer, errors


def test_auto_mapping_matches_headers() -> None:
    headers = ["First Name", "Surname", "E-mail", "Phone", "Country", "Opted out", "Renewal date", "Plan", "phone"]
    assert auto_mapping(headers) == {
        "0": "first_name",
        "1": "last_name",
        "2": "email",
        "3": "mobile",
        "4": "country",
        "5": "dnc",
        "6": "custom_date.renewal_date",
        "7": "custom.plan",
        "8": "",  # a second phone column is not guessed
    }


def test_bad_rows_reported_with_row_number_and_reason_while_good_rows_import() -> None:
    importer, errors = run(GOOD_AND_BAD + BAD_BYTES)
    reasons = dict(errors)
    assert sorted(reasons) == [3, 5, 6, 7, 8, 10]
    assert "invalid mobile number" in reasons[3]
    assert "banana" in reasons[3]
    assert reasons[5] == "duplicate: the number +447911123456 is already on row 2"
    assert "bad date “31/02/2024” in column “Renewal date”" in reasons[6]
    assert reasons[7] == "wrong number of columns: expected 8, found 3"
    assert "Do Not Contact must be yes or no" in reasons[8]
    assert "bad encoding" in reasons[10]
    s = importer.summary
    assert (s.rows_read, s.created, s.errors) == (8, 2, 6)
    ann = Contact.objects.get(mobile="+447911123456")
    assert (ann.first_name, ann.last_name, ann.country) == ("Ann", "Smith", "GB")
    assert ann.custom_fields == {"renewal_date": "2025-03-01", "plan": "gold"}
    cy = Contact.objects.get(mobile="+33612345678")
    assert cy.timezone == "Europe/Paris"  # inferred
    assert DoNotContact.objects.filter(contact=cy, lifted_at__isnull=True, source="import").count() == 1
    assert not DoNotContact.objects.filter(contact=ann).exists()
    assert TimelineEvent.objects.filter(contact=ann, kind="contact.imported").count() == 1


def test_same_file_twice_changes_nothing() -> None:
    segment = Segment.objects.create(name="Imported")
    run(GOOD_AND_BAD, segment=segment)
    before = list(Contact.objects.order_by("pk").values())
    events = TimelineEvent.objects.count()
    importer, _ = run(GOOD_AND_BAD, segment=segment)
    assert (importer.summary.created, importer.summary.updated, importer.summary.unchanged) == (0, 0, 2)
    assert list(Contact.objects.order_by("pk").values()) == before
    assert TimelineEvent.objects.count() == events
    assert SegmentMembership.objects.filter(segment=segment).count() == 2
    assert DoNotContact.objects.count() == 1


def test_update_or_skip_existing() -> None:
    existing = Contact.objects.create(mobile="+447911123456", first_name="Old", custom_fields={"keep": "me"})
    data = b"mobile,first_name,plan\n+447911123456,New,gold\n+447912345678,Other,\n"
    importer, errors = run(data, mode="skip")
    assert not errors
    assert (importer.summary.skipped, importer.summary.created) == (1, 1)
    existing.refresh_from_db()
    assert existing.first_name == "Old"
    importer, _ = run(data, mode="update")
    assert importer.summary.updated == 1
    existing.refresh_from_db()
    assert existing.first_name == "New"
    assert existing.custom_fields == {"keep": "me", "plan": "gold"}  # merged, nothing lost


def test_region_option_parses_national_numbers() -> None:
    _importer, errors = run(b"mobile\n06 12 34 56 78\n", region="FR")
    assert not errors
    assert Contact.objects.filter(mobile="+33612345678").exists()


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"0": "first_name", "1": ""}, "Map one column to the mobile number"),
        ({"0": "mobile", "1": "mobile"}, "both map to mobile"),
        ({"0": "mobile", "1": "shoe_size"}, "unknown field"),
        ({"0": "mobile", "1": "custom.a b"}, "not a valid custom field name"),
    ],
)
def test_mapping_errors_are_clear(mapping: dict[str, str], message: str) -> None:
    with pytest.raises(MappingError, match=message):
        mapping_clean(mapping, ["a", "b"])


def test_file_without_header_is_refused() -> None:
    with pytest.raises(MappingError, match="empty"):
        read_headers(io.BytesIO(b""))


def test_import_record_stores_progress_and_errors(settings: object, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path  # type: ignore[attr-defined]
    upload = SimpleUploadedFile("people.csv", GOOD_AND_BAD + BAD_BYTES, content_type="text/csv")
    record = contact_import_create(upload=upload, mode="update", region="", segment=None, created_by="mark")
    assert record.status == ContactImport.Status.MAPPING
    assert record.mapping["3"] == "mobile"
    # Not queued yet: a worker may not run it.
    assert contact_import_run(contact_import_id=record.pk) is False
    ContactImport.objects.filter(pk=record.pk).update(status=ContactImport.Status.QUEUED)
    assert contact_import_run(contact_import_id=record.pk) is True
    record.refresh_from_db()
    assert (record.status, record.progress, record.created_count, record.error_count) == ("done", 100, 2, 6)
    assert list(record.row_errors.values_list("row_number", flat=True)) == [3, 5, 6, 7, 8, 10]
    assert contact_import_run(contact_import_id=record.pk) is False  # a redelivered task does nothing


def test_import_contacts_command_prints_summary_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(GOOD_AND_BAD)
    segment = Segment.objects.create(name="From file")
    out = StringIO()
    call_command("import_contacts", str(path), "--segment", str(segment.pk), "--skip-existing", stdout=out)
    text = out.getvalue()
    assert "Row 3: invalid mobile number" in text
    assert "Row 5: duplicate" in text
    assert "7 rows read: 2 created, 0 updated, 0 unchanged, 0 skipped, 5 refused." in text
    assert SegmentMembership.objects.filter(segment=segment).count() == 2
    with pytest.raises(CommandError, match="Segment 999 does not exist"):
        call_command("import_contacts", str(path), "--segment", "999")
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_contacts", str(tmp_path / "missing.csv"))


def test_the_importer_and_services_never_import_the_tasks_that_import_them() -> None:
    """Issue 15's circle contacts.importer <-> contacts.tasks: tasks import services, never the other way round
    (the view hands the task's ``delay`` to ``contact_import_queue``)."""
    import ast

    import contacts

    root = Path(contacts.__file__).parent
    importer = sorted((root / "importer").glob("*.py")) or [root / "importer.py"]
    modules = [root / "services.py", *importer]
    assert len(modules) > 2  # the package, not a stale single module
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [f"{'.' * node.level}{node.module or ''}", *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            assert not any(name.split(".")[-1] == "tasks" or ".tasks" in name for name in names), (path, names)
