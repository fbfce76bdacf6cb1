"""The editor's JavaScript counter counts the opt-out footer as the server does (issue 17): the same function on
the same cases, and the live counter in the editor switching with the category."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from contacts.models import Contact
from providers.segments import count_segments
from texts.estimates import editor_sample
from texts.footer import opt_out_footer, with_footer
from texts.personalise import personalise_render
from texts.services.links import body_as_sent

pytestmark = [pytest.mark.browser]

BODIES = [
    "x" * 150,  # 1 segment alone, 2 with the footer
    "Hi {{first_name|there}}, sale at https://shop.example.com/spring today",
    "Ünïcode 😀 sale",  # UCS-2: 70 per segment
    "Already ends with it\nReply STOP to opt out",
    "",
]


@pytest.mark.django_db
def test_the_javascript_counts_the_footer_as_python_does(page: Any, settings: Any) -> None:
    settings.PUBLIC_BASE_URL = "https://sms.example.com"
    settings.SMS_OPT_OUT_FOOTER = "Reply STOP to opt out"
    contact = Contact(first_name="Zoé", mobile="+14155550177")
    sample = editor_sample(contact, marketing=True)
    script = Path(__file__).resolve().parents[2] / "static" / "js" / "sms-counter.js"
    page.set_content("<!doctype html><html><body></body></html>")
    page.add_script_tag(path=str(script))
    results = page.evaluate(
        "([bodies, sample]) => bodies.map(b => {"
        "  const text = SmsCounter.asCounted(b, sample, true, true);"
        "  return [text, SmsCounter.count(text).segments, SmsCounter.asCounted(b, sample, true, false)];"
        "})",
        [BODIES, sample],
    )
    for body, (counted, segments, plain) in zip(BODIES, results, strict=True):
        as_sent = body_as_sent(personalise_render(body, contact=contact))
        assert counted == with_footer(as_sent, opt_out_footer()), body
        assert segments == count_segments(counted).segments, body
        assert plain == as_sent, body
    assert results[0][1] == 2


@pytest.mark.django_db(transaction=True)
def test_the_live_counter_counts_the_footer_for_marketing_only(
    login: Any, live_server: Any, marketer_user: User, settings: Any
) -> None:
    settings.SMS_OPT_OUT_FOOTER = "Reply STOP to opt out"
    Contact.objects.create(first_name="Ada", mobile="+14155550100")
    page = login(marketer_user)
    page.goto(f"{live_server.url}/text-messages/new/")
    counter = page.locator("#sms-counter")
    page.get_by_label("Text Message").fill("x" * 150)
    page.get_by_label("Category").select_option("marketing")
    assert "2 segments" in counter.inner_text()
    assert "with the opt-out footer" in counter.inner_text()
    page.get_by_label("Category").select_option("transactional")
    assert "150 characters · 1 segment" in counter.inner_text()
    assert "opt-out footer" not in counter.inner_text()
