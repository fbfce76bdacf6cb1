"""The ContactImport record: created by the upload, mapped by the marketer, run by a worker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from ..models import ContactImport, ContactImportError, Segment
from .base import ImportSummary
from .mapping import auto_mapping, mapping_clean
from .reading import read_headers
from .run import Importer


def contact_import_create(
    *, upload: Any, mode: str, region: str, segment: Segment | None, created_by: str
) -> ContactImport:
    """Store an uploaded file and guess its mapping; ``MappingError`` (and nothing stored) if it has no usable
    header row."""
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


def contact_import_queue(
    *, contact_import: ContactImport, mapping: dict[str, str], enqueue: Callable[[int], object]
) -> None:
    """Fix the mapping and hand the import to a worker: ``enqueue(import_id)`` runs after the transaction commits
    (the caller passes the task's ``delay``, so that this module never imports the tasks that import it)."""
    contact_import.mapping = mapping_clean(mapping, contact_import.headers)
    contact_import.status = ContactImport.Status.QUEUED
    contact_import.save(update_fields=["mapping", "status"])
    import_id = contact_import.pk
    transaction.on_commit(lambda: enqueue(import_id))


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
