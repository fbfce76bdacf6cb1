"""Contacts in real Chromium: search by number, and a CSV import run by a real worker with its row errors shown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from contacts.models import Contact, Segment
from smsapp.testing.procs import Proc

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_search_contacts_by_number_and_add_to_a_segment(login: Any, marketer_user: User, live_server: Any) -> None:
    Contact.objects.create(first_name="Ada", last_name="Lovelace", mobile="+447911123456")
    Contact.objects.create(first_name="Bob", last_name="Other", mobile="+33612345678")
    segment = Segment.objects.create(name="VIP")
    page = login(marketer_user)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Contacts").click()
    page.get_by_role("searchbox", name="Search").fill("0044 7911 123456")
    page.get_by_role("button", name="Search").click()
    table = page.get_by_role("table", name="Contacts")
    table.get_by_role("link", name="Ada Lovelace").wait_for()
    page.wait_for_load_state("networkidle")  # no late search response may redraw the rows after the click below
    assert table.get_by_role("link", name="Bob Other").count() == 0
    page.get_by_label("Select Ada Lovelace").check()
    page.get_by_label("With selected").select_option("add_segment")
    page.get_by_label("Segment for the action").select_option(str(segment.pk))
    page.get_by_role("button", name="Apply").click()
    page.get_by_text("1 contact added to VIP.").wait_for()
    segment.refresh_from_db()
    assert segment.member_count == 1


@pytest.mark.slow
def test_import_csv_through_the_ui_shows_row_errors(
    login: Any, marketer_user: User, live_server: Any, celery_worker: Proc, tmp_path: Path
) -> None:
    csv_file = tmp_path / "people.csv"
    csv_file.write_text(
        "First name,Last name,Mobile,Opt out\n"
        "Ada,Lovelace,+44 7911 123456,no\n"
        "Bob,Broken,not a number,no\n"
        "Cy,Short,+33 6 12 34 56 78\n"
        "Dee,Dnc,+49 151 23456789,yes\n"
    )
    page = login(marketer_user)
    page.goto(f"{live_server.url}/contacts/imports/")
    page.get_by_label("CSV file").set_input_files(str(csv_file))
    page.get_by_role("button", name="Upload and map columns").click()
    page.get_by_role("heading", name="Map the columns").wait_for()
    assert page.get_by_label("Mobile").input_value() == "mobile"
    assert page.get_by_label("Opt out").input_value() == "dnc"
    page.get_by_role("button", name="Start import").click()
    # The worker runs it; htmx polls the progress until it is done.
    page.get_by_role("heading", name="Done").wait_for(timeout=60_000)
    errors = page.get_by_role("table", name="Refused rows")
    assert "“not a number” is not a phone number" in errors.inner_text()
    assert "wrong number of columns: expected 4, found 3" in errors.inner_text()
    assert sorted(Contact.objects.values_list("first_name", flat=True)) == ["Ada", "Dee"]
