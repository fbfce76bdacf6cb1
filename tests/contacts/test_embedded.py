"""The embedded defaults of `make run` (SQLite, filesystem broker): an uploaded import runs in a real worker."""

from __future__ import annotations

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction

from contacts.importer import contact_import_create, contact_import_queue
from contacts.models import Contact, ContactImport
from contacts.tasks import import_contacts
from smsapp.testing.procs import Proc

pytestmark = [pytest.mark.embedded, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_queued_import_runs_in_a_real_worker(celery_worker: Proc) -> None:
    data = b"mobile,first name\n+33 6 12 34 56 78,Ada\nbad,Bob\n"
    with transaction.atomic():
        record = contact_import_create(
            upload=SimpleUploadedFile("p.csv", data), mode="update", region="", segment=None, created_by="t"
        )
        contact_import_queue(contact_import=record, mapping=record.mapping, enqueue=import_contacts.delay)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        record.refresh_from_db()
        if record.is_finished:
            break
        time.sleep(0.2)
    assert record.status == ContactImport.Status.DONE, celery_worker.output()[-2000:]
    assert (record.created_count, record.error_count) == (1, 1)
    assert list(record.row_errors.values_list("row_number", flat=True)) == [3]
    assert Contact.objects.get().first_name == "Ada"
