"""The whole product on real parts, as a buyer's engineer would check it (issue 10).

One stack (``smsapp.testing.stack.Stack``): a fresh PostgreSQL database, its own redis-server, fake_twilio as a
process, gunicorn, two Celery workers and beat; Chromium drives gunicorn. An admin configures the Twilio plugin, a
marketer imports 1,000 contacts (with bad rows), builds a filter-based segment, writes a personalised broadcast text
message and a campaign with a reply decision; ``send_broadcasts`` runs from the command line as cron would;
fake_twilio delivers, fails some numbers and sends replies. Every count is checked at the end, and no secret may
appear in any process's log at any level.

The parts of the product still on their way (``send_broadcasts``, the callback) are detected, not assumed: until
they land the test proves what exists and then says, by skipping, exactly which part it could not run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smsapp.testing.stack import Stack

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.browser, pytest.mark.slow]

PASSWORD = "correct-horse-battery-staple"
GOOD_CONTACTS = 1000
SENDER = "+14155552671"
# The segment: contacts whose last name starts with "Lo" — 600 of the 1,000 (every fifth row of five is "Other").
IN_SEGMENT = 600


def _number(i: int) -> str:
    """A distinct valid US number for contact i, written as people type it."""
    return f"+1 (415) 200-{i:04d}"


def _e164(i: int) -> str:
    return f"+1415200{i:04d}"


def _csv(path: Path) -> Path:
    lines = ["First name,Last name,Mobile,Country"]
    for i in range(GOOD_CONTACTS):
        last = "Lovelace" if i % 5 < 3 else "Other"
        lines.append(f"Ada{i},{last},{_number(i)},US")
    # Bad rows: invalid numbers, a wrong column count, and duplicates of rows above (the same number again).
    lines += ["Bad1,Lovelace,not a number,US", "Bad2,Lovelace,+1 12,US", "Short,Row"]
    lines += [f"Dup{i},Lovelace,{_number(i)},US" for i in range(3)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def stack(django_db_blocker: Any) -> Iterator[Stack]:
    # The admin configures Twilio in the browser: the environment names only fake_twilio's address.
    with django_db_blocker.unblock(), Stack(workers=2, twilio_in_env=False, name="e2e") as running:
        running.create_user("ada", PASSWORD, is_staff=True)
        running.create_user("mark", PASSWORD)
        yield running


def _login(browser: Any, stack: Stack, username: str) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.goto(f"{stack.public_url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{stack.public_url}/")
    return page


def _configure_twilio(page: Any, stack: Stack) -> None:
    page.goto(f"{stack.public_url}/settings/plugins/twilio/")
    page.get_by_label("Text Message Enabled").check()
    page.get_by_label("Account SID").fill(stack.account_sid)
    page.get_by_label("Auth Token").fill("not-the-token")
    page.get_by_role("button", name="Test connection").click()
    page.locator("#test-result").get_by_text("Twilio error 20003").wait_for()
    page.get_by_label("Auth Token").fill(stack.auth_token)
    page.get_by_role("button", name="Test connection").click()
    page.locator("#test-result").get_by_text("Connected to account").wait_for()
    page.get_by_label("Phone number (E.164), row 1").fill(SENDER)
    page.get_by_label("Friendly name, row 1").fill("Main line")
    page.get_by_label("Messages per second, row 1").fill("100")
    page.get_by_label("Direction").select_option("both")
    page.get_by_label("Ask Twilio for delivery status callbacks").check()
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Twilio settings saved.").wait_for()
    assert stack.auth_token not in page.content()


def _import(page: Any, stack: Stack, csv_file: Path) -> str:
    page.goto(f"{stack.public_url}/contacts/imports/")
    page.get_by_label("CSV file").set_input_files(str(csv_file))
    page.get_by_role("button", name="Upload and map columns").click()
    page.get_by_role("heading", name="Map the columns").wait_for()
    assert page.get_by_label("Mobile").input_value() == "mobile"
    page.get_by_role("button", name="Start import").click()
    page.get_by_role("heading", name="Done").wait_for(timeout=120_000)
    return str(page.get_by_role("table", name="Refused rows").inner_text())


def _segment(page: Any, stack: Stack) -> None:
    page.goto(f"{stack.public_url}/segments/new/")
    page.get_by_label("Name").fill("Lovelaces")
    page.get_by_label("Type").select_option("filter")
    page.get_by_role("button", name="+ Add rule").click()
    rule = page.get_by_role("group", name="Rule").last
    rule.get_by_label("Field").select_option("last_name")
    rule = page.get_by_role("group", name="Rule").last  # the row is redrawn for the chosen field
    rule.get_by_label("Operator").select_option("starts_with")
    rule.get_by_label("Value").fill("Lo")
    page.get_by_role("button", name="Save segment").click()
    page.get_by_text(f"Segment Lovelaces saved: {IN_SEGMENT} member(s).").wait_for(timeout=60_000)


def _text_message(page: Any, stack: Stack) -> None:
    page.goto(f"{stack.public_url}/text-messages/new/")
    page.get_by_label("Internal name").fill("Spring sale")
    page.locator("#id_body").fill("Hi {{first_name|there}}, spring sale today! Reply STOP to opt out")
    page.get_by_label("Lovelaces").check()
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Text message “Spring sale” created.").wait_for()


def _save_event(page: Any) -> None:
    with page.expect_navigation(url="**?saved=*#event-*"):
        page.get_by_role("button", name="Add", exact=True).click()


def _campaign(page: Any, stack: Stack) -> None:
    page.goto(f"{stack.public_url}/campaigns/new/")
    page.get_by_label("Name").fill("Spring follow-up")
    page.get_by_label("Lovelaces").check()
    page.get_by_role("button", name="Create and open the builder").click()
    page.get_by_role("heading", name="Spring follow-up").wait_for()
    page.get_by_role("button", name="+ Add an event").click()
    page.get_by_role("link", name="Add to segment").click()
    page.get_by_label("Segment", exact=True).select_option(label="Contacted")
    _save_event(page)
    page.get_by_role("button", name="Add an event after “Add to segment”").click()
    page.get_by_role("link", name="Replies to a text message").click()
    page.get_by_label("Reply pattern").fill("yes*")
    page.get_by_label("Wait for a reply for").fill("2")
    _save_event(page)
    page.get_by_role("button", name="Add an event on the yes path of “Replies to a text message”").click()
    page.get_by_role("link", name="Add to segment").click()
    page.get_by_label("Segment", exact=True).select_option(label="Interested")
    _save_event(page)
    page.get_by_role("button", name="Publish").click()
    page.get_by_text("Campaign published").wait_for()


def test_the_whole_product_on_real_parts(stack: Stack, browser: Any, tmp_path: Path, django_db_blocker: Any) -> None:
    from contacts.models import Contact, Segment
    from providers.config import CALLBACK_PATH
    from texts.models import OutboundMessage, TextMessage

    alias = stack.db_alias()
    admin = _login(browser, stack, "ada")
    _configure_twilio(admin, stack)
    admin.context.close()

    marketer = _login(browser, stack, "mark")
    refused = _import(marketer, stack, _csv(tmp_path / "contacts.csv"))
    assert "“not a number” is not a phone number" in refused
    assert "wrong number of columns" in refused
    with django_db_blocker.unblock():
        assert Contact.objects.using(alias).count() == GOOD_CONTACTS
        # A duplicate row updates the contact it names (same number): no second contact, the later name wins.
        assert Contact.objects.using(alias).filter(mobile=_e164(0)).count() == 1

    _segment(marketer, stack)
    with django_db_blocker.unblock():
        # Static segments the campaign fills: everyone it reaches, and those who answer "yes".
        for name in ("Contacted", "Interested"):
            Segment.objects.using(alias).create(name=name, kind=Segment.Kind.STATIC)
    _text_message(marketer, stack)
    _campaign(marketer, stack)
    with django_db_blocker.unblock():
        segment = Segment.objects.using(alias).get(name="Lovelaces")
        text = TextMessage.objects.using(alias).get(name="Spring sale")
        assert list(text.segments.values_list("pk", flat=True)) == [segment.pk]

    # The campaign engine, as cron runs it: every member of the segment passes the first action once.
    for _ in range(2):
        run = stack.manage("process_campaigns")
        assert run.returncode == 0, run.stderr
    with django_db_blocker.unblock():
        from contacts.models import SegmentMembership

        members = SegmentMembership.objects.using(alias)
        assert members.filter(segment__name="Contacted").count() == IN_SEGMENT
        assert members.filter(segment__name="Interested").count() == 0

    probe = stack.manage("help", "send_broadcasts")
    if probe.returncode != 0:
        assert not stack.leaked_secrets(), stack.leaked_secrets()
        pytest.skip("send_broadcasts (issue 7) is not on this branch yet: checked up to the campaign")

    # Failures chosen by number: some undelivered (30003), some failed (30006) — final outcomes from the carrier.
    undelivered = {_e164(i): 30003 for i in range(0, 50, 5)}  # rows 0,5,...: all in the segment (i % 5 == 0)
    failed = {_e164(i): 30006 for i in range(1, 50, 5)}
    stack.twilio.control(undeliverable=undelivered, failing=failed, callback_delay_ms=5)

    result = stack.manage("send_broadcasts")
    assert result.returncode == 0, result.stderr
    with django_db_blocker.unblock():
        messages = OutboundMessage.objects.using(alias).filter(text_message=text)
        final = {"delivered", "undelivered", "failed"}
        stack.wait_until(
            lambda: messages.filter(status__in=final).count() == IN_SEGMENT,
            timeout=120,
            what="every broadcast message to reach a final status",
        )
        by_status = {s: messages.filter(status=s).count() for s in ("delivered", "undelivered", "failed")}
        assert by_status == {
            "delivered": IN_SEGMENT - len(undelivered) - len(failed),
            "undelivered": len(undelivered),
            "failed": len(failed),
        }
        # Each contact of the segment exactly once; nobody outside it; nothing twice at Twilio.
        assert messages.values("contact").distinct().count() == IN_SEGMENT
        assert not messages.exclude(contact__last_name__startswith="Lo").exists()
    sent = stack.twilio.messages()
    assert len(sent) == IN_SEGMENT
    assert stack.twilio.duplicates() == {}
    assert all(re.fullmatch(r"Hi (Ada|Dup)\d+, spring sale today! Reply STOP to opt out", m["body"]) for m in sent)

    # A second cron run sends nothing more.
    again = stack.manage("send_broadcasts")
    assert again.returncode == 0, again.stderr
    assert len(stack.twilio.messages()) == IN_SEGMENT

    # Replies, signed like Twilio, to the public callback URL.
    probe_reply = stack.twilio.send_inbound(_e164(2), SENDER, "hello?")
    if probe_reply["status"] in (404, 302):
        assert not stack.leaked_secrets(), stack.leaked_secrets()
        pytest.skip(f"{CALLBACK_PATH} (issue 6) is not on this branch yet: checked up to the broadcast")
    replies = {
        "STOP": [_e164(i) for i in (12, 17, 22)],
        "stop.": [_e164(i) for i in (27,)],
        "HELP": [_e164(i) for i in (32, 37)],
        "yes please": [_e164(i) for i in (42, 47)],
        "START": [_e164(12)],
    }
    for body, numbers in replies.items():
        for number in numbers:
            answer = stack.twilio.send_inbound(number, SENDER, body)
            assert answer["status"] == 200, answer
    with django_db_blocker.unblock():
        from contacts.models import DoNotContact

        dnc = set(
            DoNotContact.objects.using(alias)
            .filter(channel="sms", lifted_at__isnull=True)
            .values_list("contact__mobile", flat=True)
        )
        # 12 said STOP then START: lifted; 17, 22, 27 stay opted out.
        assert {str(n) for n in dnc} == {_e164(17), _e164(22), _e164(27)}
    # The campaign follows the replies: "yes please" takes the yes path.
    run = stack.manage("process_campaigns")
    assert run.returncode == 0, run.stderr
    with django_db_blocker.unblock():
        interested = SegmentMembership.objects.using(alias).filter(segment__name="Interested")
        assert set(interested.values_list("contact__mobile", flat=True)) == {_e164(42), _e164(47)}
    assert not stack.leaked_secrets(), stack.leaked_secrets()
