"""The whole product on real parts, as a buyer's engineer would check it (issue 10).

One stack (``smsapp.testing.stack.Stack``): a fresh PostgreSQL database, its own redis-server, fake_twilio as a
process, gunicorn, two Celery workers and beat; Chromium drives gunicorn. An admin configures the Twilio plugin, a
marketer imports 1,000 contacts (with bad rows), builds a filter-based segment, writes a personalised broadcast text
message and a campaign with a reply decision; ``send_broadcasts`` runs from the command line as cron would;
fake_twilio delivers, fails some numbers (30003, 30006, and 21610 for one that texted STOP at the carrier) and sends
replies (STOP, START, HELP, "yes", free text). A contact marked Do Not Contact in the browser before the broadcast is
never texted. At the end every count is checked: each message per contact against the database and fake_twilio,
statuses, the DNC list and who put each entry there, every contact's timeline kind by kind (nothing missing, nothing
twice), the report page's figures, the dashboard's, the campaign's yes path and (after moving its clock past the
decision's wait) its no path; and no secret may appear in any process's log at any level.

The parts of the product still on their way (``send_broadcasts``, the callback) are detected, not assumed: until
they land the test proves what exists and then says, by skipping, exactly which part it could not run.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from django.db.models import Count
from django.db.models.functions import Now

from smsapp.testing.stack import Stack

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.browser, pytest.mark.slow]

PASSWORD = "correct-horse-battery-staple"
GOOD_CONTACTS = 1000
SENDER = "+14155552671"
# The segment: contacts whose last name starts with "Lo" — 600 of the 1,000 (every fifth row of five is "Other").
IN_SEGMENT = 600
HELP_REPLY = "Spring Co: help at example.com, or call 415 555 0100. Reply STOP to opt out."

# Who does what, by row number (rows i % 5 in 0..2 are in the segment). Every expectation below is derived from these.
UNDELIVERED = {i: 30003 for i in range(0, 50, 5)}  # handset unreachable: sent, then undelivered
FAILED = {i: 30006 for i in range(1, 50, 5)}  # the carrier cannot deliver: queued, then failed
STOPPED_AT_CARRIER = 52  # texted STOP to the carrier earlier: Twilio refuses the send with 21610
DNC_BEFORE = 57  # marked Do Not Contact by the marketer before the broadcast: never texted
DNC_LIFTED_BEFORE = 62  # marked, then lifted before the broadcast: texted like anyone else
# Replies in the order they are sent; (row, body). Row 2's "hello?" is the probe sent first.
REPLIES = [
    (2, "hello?"),
    (12, "STOP"),
    (17, "STOP"),
    (22, "STOP"),
    (27, "stop."),
    (32, "HELP"),
    (37, "HELP"),
    (42, "yes please"),
    (47, "yes please"),
    (7, "What time does the sale end?"),
    (12, "START"),  # lifts the opt-out its own STOP made
    (STOPPED_AT_CARRIER, "START"),  # cannot lift an opt-out the carrier reported
]
OPTED_OUT = {12, 17, 22, 27}  # by keyword; 12 opted in again
YES = {42, 47}


def _number(i: int) -> str:
    """A distinct valid US number for contact i, written as people type it."""
    return f"+1 (415) 200-{i:04d}"


def _e164(i: int) -> str:
    return f"+1415200{i:04d}"


def _csv(path: Path) -> Path:
    # The campaign's texts are marketing: every contact signed up for them (the file's SMS consent column).
    lines = ["First name,Last name,Mobile,Country,SMS consent,Consent date"]
    for i in range(GOOD_CONTACTS):
        last = "Lovelace" if i % 5 < 3 else "Other"
        lines.append(f"Ada{i},{last},{_number(i)},US,yes,2025-01-15")
    # Bad rows: invalid numbers, a wrong column count, and duplicates of rows above (the same number again).
    lines += ["Bad1,Lovelace,not a number,US,yes,", "Bad2,Lovelace,+1 12,US,yes,", "Short,Row"]
    lines += [f"Dup{i},Lovelace,{_number(i)},US,yes," for i in range(3)]
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
    page.get_by_label("HELP reply").fill(HELP_REPLY)
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
    rules = page.get_by_role("group", name="Rule")
    before = rules.count()
    page.get_by_role("button", name="+ Add rule").click()
    # htmx binds the new row's change trigger only once it has swapped it in and settled: a field chosen before that
    # sends no request (the redraw below would never come).
    page.wait_for_function(f"() => document.querySelectorAll('.rule').length > {before}")
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')"
    )
    rule = rules.last
    # The row is redrawn for the chosen field (htmx): wait for the new row before filling it, or the operator and
    # value typed into the old one are thrown away with it (and the segment is saved with an empty rule).
    with page.expect_response(lambda r: "/segments/rule-row/" in r.url and "rules-field=last_name" in r.url):
        rule.get_by_label("Field").select_option("last_name")
    page.wait_for_function("() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')")
    rule = page.get_by_role("group", name="Rule").last
    rule.get_by_label("Operator").select_option("starts_with")
    rule.get_by_label("Value").fill("Lo")
    page.get_by_role("button", name="Save segment").click()
    page.get_by_text(f"Segment Lovelaces saved: {IN_SEGMENT:,} members.").wait_for(timeout=60_000)


def _text_message(page: Any, stack: Stack) -> None:
    page.goto(f"{stack.public_url}/text-messages/new/")
    page.get_by_label("Internal name").fill("Spring sale")
    page.locator("#id_body").fill("Hi {{first_name|there}}, spring sale today! Reply STOP to opt out")
    page.get_by_label("Lovelaces").check()
    page.get_by_role("button", name="Save").click()
    # Saving a published broadcast would send it at the next scheduled run: the page asks first, with the count.
    dialog = page.get_by_test_id("confirm-broadcast")
    dialog.wait_for()
    assert f"Send to {IN_SEGMENT} contacts?" in dialog.inner_text()
    # The marketer sends it on their own terms below (cron with --id), not whenever beat next runs.
    page.get_by_role("button", name="Save, send only when I press Send now").click()
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
    page.get_by_role("button", name="Add an event on the no path of “Replies to a text message”").click()
    page.get_by_role("link", name="Add to segment").click()
    page.get_by_label("Segment", exact=True).select_option(label="Not replied")
    _save_event(page)
    page.get_by_role("button", name="Publish").click()
    page.get_by_text("Campaign published").wait_for()


def test_the_whole_product_on_real_parts(stack: Stack, browser: Any, tmp_path: Path, django_db_blocker: Any) -> None:
    from contacts.models import Contact, Segment
    from providers.twilio.config import CALLBACK_PATH
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
        # A number twice in one file is refused on its second row: no second contact, the first row's name stays.
        assert list(Contact.objects.using(alias).filter(mobile=_e164(0)).values_list("first_name", flat=True)) == [
            "Ada0"
        ]
    assert refused.count("duplicate: the number") == 3

    _segment(marketer, stack)
    with django_db_blocker.unblock():
        # Static segments the campaign fills: everyone it reaches, and those who answer "yes".
        for name in ("Contacted", "Interested", "Not replied"):
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

    # Before the broadcast the marketer marks one member Do Not Contact, and marks and lifts another, in the browser.
    with django_db_blocker.unblock():
        ids = dict(Contact.objects.using(alias).values_list("mobile", "pk"))
    _mark_dnc(marketer, stack, ids[_e164(DNC_BEFORE)])
    _mark_dnc(marketer, stack, ids[_e164(DNC_LIFTED_BEFORE)], lift=True)

    probe = stack.manage("help", "send_broadcasts")
    if probe.returncode != 0:
        assert not stack.leaked_secrets(), stack.leaked_secrets()
        pytest.skip("send_broadcasts (issue 7) is not on this branch yet: checked up to the campaign")

    # Final outcomes chosen by number at the carrier, and one number that texted STOP to the carrier before (21610).
    stack.twilio.control(
        undeliverable={_e164(i): code for i, code in UNDELIVERED.items()},
        failing={_e164(i): code for i, code in FAILED.items()},
        stopped=[_e164(STOPPED_AT_CARRIER)],
        callback_delay_ms=5,
    )
    texted = [i for i in range(GOOD_CONTACTS) if i % 5 < 3 and i != DNC_BEFORE]  # the audience the run must queue
    accepted = [i for i in texted if i != STOPPED_AT_CARRIER]  # what Twilio takes
    expected_status = {
        i: "undelivered" if i in UNDELIVERED else "failed" if i in FAILED else "delivered" for i in accepted
    }
    expected_status[STOPPED_AT_CARRIER] = "failed"

    result = stack.manage("send_broadcasts", "--id", str(text.pk))
    assert result.returncode == 0, result.stderr
    assert "skipped 1 Do Not Contact" in result.stdout + result.stderr
    with django_db_blocker.unblock():
        messages = OutboundMessage.objects.using(alias).filter(text_message=text)
        final = {"delivered", "undelivered", "failed"}
        stack.wait_until(
            lambda: messages.filter(status__in=final).count() == len(texted),
            timeout=120,
            what="every broadcast message to reach a final status",
        )
        by_status = {s: messages.filter(status=s).count() for s in ("delivered", "undelivered", "failed")}
        assert by_status == dict(Counter(expected_status.values()))
        assert messages.count() == len(texted)
        # Each contact of the audience exactly once, with its own status; nobody outside it, nobody Do Not Contact.
        rows = list(messages.values_list("contact__mobile", "status", "error_code", "body", "provider_sid"))
        assert sorted(str(r[0]) for r in rows) == sorted(_e164(i) for i in texted)
        assert {str(r[0]): r[1] for r in rows} == {_e164(i): st for i, st in expected_status.items()}
        by_number = {str(r[0]): r for r in rows}
        refused_21610 = by_number[_e164(STOPPED_AT_CARRIER)]
        assert (refused_21610[2], refused_21610[4]) == ("21610", None)
    # What fake_twilio did agrees with the database, message by message.
    sent = stack.twilio.messages()
    assert len(sent) == len(accepted)
    assert stack.twilio.duplicates() == {}
    attempts = stack.twilio.requests()
    assert len(attempts) == len(texted)  # accepted ones and the one 21610 refusal; the DNC contact never reached it
    assert _e164(DNC_BEFORE) not in {a["to"] for a in attempts}
    assert [a["status"] for a in attempts if a["to"] == _e164(STOPPED_AT_CARRIER)] == [400]
    for m in sent:
        row = by_number[m["to"]]
        assert (row[1], row[2] or None, row[4]) == (
            m["status"],
            str(m["error_code"]) if m["error_code"] else None,
            m["sid"],
        )
        assert m["body"] == row[3] == f"Hi Ada{_row_of(m['to'])}, spring sale today! Reply STOP to opt out"
    with django_db_blocker.unblock():
        from contacts.models import DoNotContact

        carrier = DoNotContact.objects.using(alias).get(contact__mobile=_e164(STOPPED_AT_CARRIER), lifted_at=None)
        assert (carrier.source, carrier.reason) == ("provider", "unsubscribed")

    # A second cron run sends nothing more.
    again = stack.manage("send_broadcasts")  # the scheduled run: it sends only on demand, and has gone anyway
    assert again.returncode == 0, again.stderr
    assert len(stack.twilio.requests()) == len(texted)

    # Replies, signed like Twilio, to the public callback URL.
    probe_row, probe_body = REPLIES[0]
    probe_reply = stack.twilio.send_inbound(_e164(probe_row), SENDER, probe_body)
    if probe_reply["status"] in (404, 302):
        assert not stack.leaked_secrets(), stack.leaked_secrets()
        pytest.skip(f"{CALLBACK_PATH} (issue 6) is not on this branch yet: checked up to the broadcast")
    answers = [probe_reply] + [stack.twilio.send_inbound(_e164(i), SENDER, body) for i, body in REPLIES[1:]]
    for (i, body), answer in zip(REPLIES, answers, strict=True):
        assert answer["status"] == 200, answer
        twiml = answer["response"]
        if body == "HELP":
            # The admin's HELP reply, in one TwiML <Message> (XML-escaped as TwiML is).
            assert f"<Message>{escape(HELP_REPLY)}</Message>" in twiml, twiml
        elif i in (2, 7):
            assert "<Message>" not in twiml, twiml  # free text gets no automatic answer
    with django_db_blocker.unblock():
        from texts.models import InboundMessage

        dnc = DoNotContact.objects.using(alias).filter(channel="sms", lifted_at__isnull=True)
        # 12 said STOP then START: lifted; 17, 22, 27 stay opted out; the carrier's and the marketer's stay too.
        expected_dnc = {_e164(i) for i in (17, 22, 27, STOPPED_AT_CARRIER, DNC_BEFORE)}
        assert {str(n) for n in dnc.values_list("contact__mobile", flat=True)} == expected_dnc
        assert dict(dnc.values_list("contact__mobile", "source")) == {
            **{_e164(i): "keyword" for i in (17, 22, 27)},
            _e164(STOPPED_AT_CARRIER): "provider",
            _e164(DNC_BEFORE): "marketer",
        }
        inbound = InboundMessage.objects.using(alias)
        assert inbound.count() == len(REPLIES)
        assert inbound.values("message_sid").distinct().count() == len(REPLIES)
        free = {
            str(m): (b, a)
            for m, b, a in inbound.filter(from_number__in=[_e164(2), _e164(7)]).values_list(
                "from_number", "body", "action"
            )
        }
        assert free == {_e164(2): ("hello?", ""), _e164(7): ("What time does the sale end?", "")}

    # The campaign follows the replies: "yes please" takes the yes path at once.
    run = stack.manage("process_campaigns")
    assert run.returncode == 0, run.stderr
    with django_db_blocker.unblock():
        from campaigns.models import CampaignEventLog

        interested = SegmentMembership.objects.using(alias).filter(segment__name="Interested")
        stack.wait_until(lambda: interested.count() == len(YES), timeout=60, what="the yes path to run")
        assert set(interested.values_list("contact__mobile", flat=True)) == {_e164(i) for i in YES}
        # The others wait out the decision's two days; the clock moves on (in the database) and cron runs again.
        waiting = CampaignEventLog.objects.using(alias).filter(status="waiting")
        assert waiting.count() == IN_SEGMENT - len(YES)
        waiting.update(trigger_at=Now() - dt.timedelta(minutes=1))
    run = stack.manage("process_campaigns")
    assert run.returncode == 0, run.stderr
    with django_db_blocker.unblock():
        not_replied = SegmentMembership.objects.using(alias).filter(segment__name="Not replied")
        in_segment = {_e164(i) for i in range(GOOD_CONTACTS) if i % 5 < 3}
        assert {str(n) for n in not_replied.values_list("contact__mobile", flat=True)} == in_segment - {
            _e164(i) for i in YES
        }
        assert not CampaignEventLog.objects.using(alias).exclude(status="done").exists()

        _check_timelines(alias, expected_status)
        _check_report(marketer, stack, alias, text.pk, expected_status)
        _check_dashboard(marketer, stack, alias)
    assert not stack.leaked_secrets(), stack.leaked_secrets()


def _row_of(e164: str) -> int:
    return int(e164[-4:])


def _mark_dnc(page: Any, stack: Stack, contact_id: int, *, lift: bool = False) -> None:
    page.goto(f"{stack.public_url}/contacts/{contact_id}/")
    page.get_by_label("Comment").fill("Asked by phone not to be texted")
    page.get_by_role("button", name="Mark Do Not Contact").click()
    page.get_by_text("Marked Do Not Contact for SMS.").wait_for()
    if lift:
        page.get_by_label("Why lift it?").fill("Called back: wants the offers after all")
        page.get_by_role("button", name="Lift Do Not Contact").click()
        page.get_by_text("Do Not Contact lifted: the contact can receive SMS.").wait_for()


def _expected_timeline(i: int, expected_status: dict[int, str]) -> Counter[str]:
    """Exactly the timeline entries contact ``i`` must have at the end, by kind."""
    kinds: Counter[str] = Counter({"contact.imported": 1, "consent.subscribed": 1})
    if i % 5 < 3:
        # Add to "Contacted", the decision (yes or no), then the action on the path taken.
        kinds["campaign.event"] = 3
        # Both of its "Add to segment" actions go through contacts' own service, which records the change on the
        # timeline like a marketer's (the engine used to write the rows itself, without an entry).
        kinds["segment.added"] = 2
    if i in expected_status:
        if i != STOPPED_AT_CARRIER:
            kinds["sms.sent"] = 1
        kinds["sms.delivered" if expected_status[i] == "delivered" else "sms.failed"] += 1
    replies = sum(1 for row, _ in REPLIES if row == i)
    if replies:
        kinds["sms.reply"] = replies
    if i in OPTED_OUT | {STOPPED_AT_CARRIER, DNC_BEFORE, DNC_LIFTED_BEFORE}:
        kinds["dnc.added"] = 1
    if i in OPTED_OUT:
        # A STOP withdraws marketing consent in the consent log too; START (12) lifts the opt-out, not that.
        kinds["consent.unsubscribed"] = 1
    if i in (12, DNC_LIFTED_BEFORE):
        kinds["dnc.removed"] = 1
    return kinds


def _check_timelines(alias: str, expected_status: dict[int, str]) -> None:
    from contacts.models import TimelineEvent

    entries = TimelineEvent.objects.using(alias)
    rows = entries.values_list("contact__mobile", "kind").annotate(n=Count("id"))
    actual: dict[int, Counter[str]] = defaultdict(Counter)
    for mobile, kind, n in rows:
        actual[_row_of(str(mobile))][kind] += n
    expected = {i: _expected_timeline(i, expected_status) for i in range(GOOD_CONTACTS)}
    # Every contact, every kind, every count: nothing missing, nothing twice, nothing unexpected.
    wrong = {i: (dict(expected[i]), dict(actual.get(i, {}))) for i in expected if actual.get(i) != expected[i]}
    assert not wrong, dict(list(wrong.items())[:10])
    assert set(actual) == set(expected)
    total: Counter[str] = sum(expected.values(), Counter())
    assert dict(Counter(dict(entries.values_list("kind").annotate(n=Count("id"))))) == dict(total)

    def of(i: int, kind: str) -> list[dict[str, Any]]:
        return list(entries.filter(contact__mobile=_e164(i), kind=kind).values_list("detail", flat=True))

    # A sample, entry by entry: the details say what happened.
    assert [d["error_code"] for d in of(0, "sms.failed")] == ["30003"]
    assert [d["error_code"] for d in of(1, "sms.failed")] == ["30006"]
    assert [d["error_code"] for d in of(STOPPED_AT_CARRIER, "sms.failed")] == ["21610"]
    assert [d["source"] for d in of(STOPPED_AT_CARRIER, "dnc.added")] == ["provider"]
    assert [d["source"] for d in of(17, "dnc.added")] == ["keyword"]
    assert [d["source"] for d in of(DNC_BEFORE, "dnc.added")] == ["marketer"]
    assert [d["source"] for d in of(12, "dnc.removed")] == ["keyword"]
    assert sorted(d["body"] for d in of(12, "sms.reply")) == ["START", "STOP"]
    assert [d["action"] for d in of(7, "sms.reply")] == [""]
    sent_ids = [d["outbound_id"] for d in entries.filter(kind="sms.sent").values_list("detail", flat=True)]
    assert len(sent_ids) == len(set(sent_ids))
    for i, path in ((42, "yes"), (2, "no"), (DNC_BEFORE, "no")):
        paths = [d["path"] for d in of(i, "campaign.event")]
        assert sorted(paths, key=str) == sorted([None, None, path], key=str), (i, paths)


def _stat_cards(page: Any) -> dict[str, str]:
    cards = page.eval_on_selector_all(
        ".cards .stat",
        "els => els.map(e => [e.querySelector('.stat-label').textContent, e.querySelector('.stat-value').textContent])",
    )
    return {label.strip(): value.strip() for label, value in cards}


def _check_report(page: Any, stack: Stack, alias: str, text_id: int, expected_status: dict[int, str]) -> None:
    """The broadcast's report page against the database and against what fake_twilio did."""
    from texts.models import InboundMessage, OutboundMessage

    sent = stack.twilio.messages()
    twilio_final = Counter(m["status"] for m in sent)
    page.goto(f"{stack.public_url}/text-messages/{text_id}/report/")
    cards = _stat_cards(page)
    counts = Counter(expected_status.values())
    replied = [i for i, _ in REPLIES if i != STOPPED_AT_CARRIER]  # 52 was never texted: its START answers nothing
    assert cards == {
        **cards,
        "Pending": "0",
        "Queued": "0",
        "Sent, awaiting report": "0",
        "Delivered": f"{counts['delivered']:,}",
        "Undelivered": f"{counts['undelivered']:,}",
        "Failed": f"{counts['failed']:,}",
        "Unknown": "0",
        "Replies": str(len(replied)),
        "Opt-outs": str(len(OPTED_OUT)),
        # Of the messages Twilio accepted, the share it delivered.
        "Delivery rate": f"{round(100 * twilio_final['delivered'] / len(sent))}%",
    }
    messages = OutboundMessage.objects.using(alias).filter(text_message_id=text_id)
    db = Counter(messages.values_list("status", flat=True))
    assert db == counts
    assert twilio_final == Counter(s for i, s in expected_status.items() if i != STOPPED_AT_CARRIER)
    linked = InboundMessage.objects.using(alias).filter(in_reply_to__text_message_id=text_id)
    assert linked.count() == len(replied)


def _check_dashboard(page: Any, stack: Stack, alias: str) -> None:
    from contacts.models import Contact, DoNotContact
    from texts.models import OutboundMessage

    page.goto(f"{stack.public_url}/")
    cards = _stat_cards(page)
    contacts = Contact.objects.using(alias).count()
    dnc = DoNotContact.objects.using(alias).filter(channel="sms", lifted_at=None).count()
    sent_24h = OutboundMessage.objects.using(alias).filter(sent_at__isnull=False).count()
    assert (contacts, dnc, sent_24h) == (GOOD_CONTACTS, 5, IN_SEGMENT - 2)
    assert cards["Contacts"] == f"{contacts:,}"
    assert cards["SMS Do Not Contact"] == f"{dnc:,}"
    assert cards["Sent in the last 24 hours"] == f"{sent_24h:,}"
