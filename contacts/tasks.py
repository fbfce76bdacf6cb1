"""Celery tasks of the contacts app: thin, by id, on the ``default`` queue."""

from __future__ import annotations

from celery import shared_task

from .importer import contact_import_run
from .services import segments_rebuild_all


@shared_task(name="contacts.update_segments")
def update_segments() -> int:
    """Beat job: rebuild filter-based segments; a run that finds another in progress does nothing."""
    results = segments_rebuild_all()
    return -1 if results is None else len(results)


@shared_task(name="contacts.import_contacts")
def import_contacts(contact_import_id: int) -> bool:
    """Run one queued CSV import (the UI's upload); progress and row errors are stored as it goes."""
    return contact_import_run(contact_import_id=contact_import_id)
