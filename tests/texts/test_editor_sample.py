"""The editor counts segments on the body as a sample recipient gets it: the JavaScript port of personalisation and
link shortening agrees with texts.personalise and texts.services.links, case by case, in Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from contacts.models import Contact
from providers.segments import count_segments
from texts.estimates import editor_sample
from texts.personalise import personalise_render
from texts.services.links import body_as_sent

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

BODIES = [
    "Hi {{first_name|there}}, " + "x" * 140,  # 2 segments as syntax (braces are GSM escapes), 1 rendered
    "Hi {{ last_name | friend }} and {{custom.plan|basic}} {contactfield=firstname|you}",
    "{{firstname}} {{phone}} {{language}} {{nickname|pal}} {{ bad name }} {{custom.missing}}",
    "See https://shop.example.com/spring?utm=sms. Or (https://b.example/y), https://en.wikipedia.org/wiki/Foo_(bar)!",
    "Already short: https://sms.example.com/l/abcdefghijkl and a bare http://",
]


def test_the_javascript_renders_and_shortens_as_python_does(page: Any, settings: Any) -> None:
    settings.PUBLIC_BASE_URL = "https://sms.example.com"
    contact = Contact(first_name="Zoé", last_name="", mobile="+14155550177", custom_fields={"plan": "gold"})
    sample = editor_sample(contact, marketing=True)
    script = Path(__file__).resolve().parents[2] / "static" / "js" / "sms-counter.js"
    page.set_content("<!doctype html><html><body></body></html>")
    page.add_script_tag(path=str(script))
    results = page.evaluate(
        "([bodies, sample]) => bodies.map("
        "b => [SmsCounter.asSent(b, sample, true), SmsCounter.asSent(b, sample, false)])",
        [BODIES, sample],
    )
    for body, (tracked, plain) in zip(BODIES, results, strict=True):
        rendered = personalise_render(body, contact=contact)
        assert plain == rendered, body
        assert tracked == body_as_sent(rendered), body
    first = results[0][0]
    assert count_segments(first).segments == 1
    assert count_segments(BODIES[0]).segments == 2
