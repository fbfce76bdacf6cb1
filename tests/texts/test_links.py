"""Tracked short links (unit level): links replaced per recipient at render time, counted at their real length,
clicks counted once per recipient and link, previews told apart. The same path with real workers and fake_twilio is
in test_engagement_processes.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from django.test import Client

from contacts.models import Contact, TimelineEvent
from providers.segments import count_segments
from texts import services
from texts.models import OutboundMessage, ShortLink, TextMessage
from texts.services import dispatch
from texts.services.links import (
    CODE_LENGTH,
    body_as_sent,
    find_urls,
    link_code,
    looks_like_preview,
    short_link_length,
)

from .conftest import Pipeline

pytestmark = pytest.mark.django_db

PHONE_BROWSER = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1"
)
LONG_URL = "https://shop.example.com/spring-sale/collections/shoes?utm_source=sms&utm_campaign=spring-2026-launch"


def send(pipeline: Pipeline, text: TextMessage, contacts: list[Contact]) -> list[OutboundMessage]:
    services.outbound_enqueue(text_message=text, contacts=[c.pk for c in contacts], source="campaign")
    ids = list(OutboundMessage.objects.filter(text_message=text).order_by("pk").values_list("pk", flat=True))
    services.outbound_process_batch(message_ids=ids, **pipeline.kwargs())
    return list(OutboundMessage.objects.filter(pk__in=ids).order_by("pk"))


def test_find_urls_leaves_sentence_punctuation_and_own_links(settings: Any) -> None:
    settings.PUBLIC_BASE_URL = "https://sms.example.com"
    body = (
        "See https://a.example/x. Or (https://b.example/y), https://en.wikipedia.org/wiki/Foo_(bar)! "
        "Mine: https://sms.example.com/l/abcdefghijkl and http://"
    )
    assert [url for _, _, url in find_urls(body)] == [
        "https://a.example/x",
        "https://b.example/y",
        "https://en.wikipedia.org/wiki/Foo_(bar)",
    ]


def test_codes_are_stable_per_message_and_position_and_differ_otherwise() -> None:
    assert link_code(outbound_id=7, position=0) == link_code(outbound_id=7, position=0)
    codes = {link_code(outbound_id=i, position=p) for i in range(200) for p in range(3)}
    assert len(codes) == 600
    assert all(len(c) == CODE_LENGTH and c.isalnum() for c in codes)


def test_each_recipient_gets_their_own_short_links_counted_at_their_length(
    settings: Any, pipeline: Pipeline, make_contact: Callable[..., Contact]
) -> None:
    settings.PUBLIC_BASE_URL = "https://sms.example.com"
    text = TextMessage.objects.create(
        name="Spring",
        body=f"Hi {{{{first_name}}}}, shoes: {LONG_URL} and more: https://shop.example.com/.",
        category="transactional",
        track_links=True,
    )
    ada, bob = make_contact(first_name="Ada"), make_contact(first_name="Bob")
    rows = send(pipeline, text, [ada, bob])
    sent = {r.to: r.body for r in pipeline.provider.requests}
    links = list(ShortLink.objects.order_by("contact_id", "position"))
    assert [(link.contact_id, link.url, link.position) for link in links] == [
        (ada.pk, LONG_URL, 0),
        (ada.pk, "https://shop.example.com/", 1),
        (bob.pk, LONG_URL, 0),
        (bob.pk, "https://shop.example.com/", 1),
    ]
    assert len({link.code for link in links}) == 4
    first, second = links[0], links[1]
    assert sent[str(ada.mobile)] == (
        f"Hi Ada, shoes: https://sms.example.com/l/{first.code} and more: https://sms.example.com/l/{second.code}."
    )
    assert LONG_URL not in "".join(sent.values())
    # Counted on the body as sent: the 104-character URL costs the 38 of its short link (1 segment, not 2).
    row = rows[0]
    assert row.body == sent[str(ada.mobile)]
    assert row.segments == count_segments(row.body).segments == 1
    assert short_link_length() == len("https://sms.example.com/l/") + CODE_LENGTH
    assert count_segments(body_as_sent(text.body.replace("{{first_name}}", "Ada"))).characters == len(row.body)


def test_a_second_rendering_after_a_crash_makes_the_same_links_once(
    pipeline: Pipeline, make_contact: Callable[..., Contact]
) -> None:
    text = TextMessage.objects.create(name="T", body=f"Go {LONG_URL}", category="transactional", track_links=True)
    contact = make_contact()
    services.outbound_enqueue(text_message=text, contacts=[contact.pk], source="campaign")
    row = OutboundMessage.objects.get()
    row.contact = contact
    row.text_message = text
    for _ in range(2):  # the worker died before writing the body: the row comes back unrendered
        row.body, row.encoding = "", ""
        row.body = dispatch._render(row)
        dispatch.links_track(rows=[row])
    assert ShortLink.objects.count() == 1
    assert ShortLink.objects.get().code in row.body


def test_links_go_as_written_when_tracking_is_off(pipeline: Pipeline, make_contact: Callable[..., Contact]) -> None:
    # Transactional messages go as written unless told otherwise; a marketing message can be told so too.
    receipt = TextMessage.objects.create(name="Receipt", body=f"Paid: {LONG_URL}", category="transactional")
    assert receipt.tracks_links is False
    assert TextMessage(category="marketing").tracks_links is True
    send(pipeline, receipt, [make_contact()])
    assert pipeline.provider.requests[0].body == f"Paid: {LONG_URL}"
    assert not ShortLink.objects.exists()


@pytest.fixture
def sent_link(pipeline: Pipeline, make_contact: Callable[..., Contact], settings: Any) -> ShortLink:
    settings.SMS_LINK_PREVIEW_SECONDS = 0
    text = TextMessage.objects.create(name="Spring", body=f"Shoes {LONG_URL}", category="transactional",
                                      track_links=True)  # fmt: skip
    send(pipeline, text, [make_contact()])
    return ShortLink.objects.get()


def test_a_click_redirects_and_counts_once_per_recipient_and_link(
    client: Client, sent_link: ShortLink, django_capture_on_commit_callbacks: Any
) -> None:
    with (
        mock.patch("texts.services.links.link_clicked.send_robust", return_value=[]) as announced,
        django_capture_on_commit_callbacks(execute=True),
    ):
        for _ in range(3):
            response = client.get(f"/l/{sent_link.code}", HTTP_USER_AGENT=PHONE_BROWSER)
            assert response.status_code == 302
            assert response["Location"] == LONG_URL
            assert response["Cache-Control"] == "no-store"
    sent_link.refresh_from_db()
    assert (sent_link.clicks, sent_link.previews) == (3, 0)
    assert sent_link.first_clicked_at is not None
    assert sent_link.last_clicked_at is not None
    assert sent_link.last_clicked_at >= sent_link.first_clicked_at
    assert [c.kwargs["first"] for c in announced.call_args_list] == [True, False, False]
    (entry,) = TimelineEvent.objects.filter(kind="sms.click")
    assert entry.contact_id == sent_link.contact_id
    assert entry.title == f"Clicked a link in “Spring”: {LONG_URL}"


@pytest.mark.parametrize(
    ("method", "agent", "headers"),
    [
        ("HEAD", PHONE_BROWSER, {}),
        ("GET", "", {}),
        ("GET", "facebookexternalhit/1.1 Facebot Twitterbot/1.0", {}),
        ("GET", "Mozilla/5.0 (compatible; Google-PageRenderer Google (+https://developers.google.com/))", {}),
        ("GET", "WhatsApp/2.23.20.0", {}),
        ("GET", "curl/8.5.0", {}),
        ("GET", PHONE_BROWSER, {"Sec-Purpose": "prefetch"}),
        ("GET", PHONE_BROWSER, {"X-Purpose": "preview"}),
    ],
)
def test_previews_redirect_but_are_not_clicks(
    client: Client, sent_link: ShortLink, method: str, agent: str, headers: dict[str, str]
) -> None:
    assert looks_like_preview(method=method, user_agent=agent, headers=headers)
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    call = client.head if method == "HEAD" else client.get
    response = call(f"/l/{sent_link.code}", HTTP_USER_AGENT=agent, **extra)
    assert response.status_code == 302
    sent_link.refresh_from_db()
    assert (sent_link.clicks, sent_link.previews, sent_link.first_clicked_at) == (0, 1, None)
    assert not TimelineEvent.objects.filter(kind="sms.click").exists()


def test_a_hit_right_after_sending_is_a_carrier_scan(client: Client, sent_link: ShortLink, settings: Any) -> None:
    settings.SMS_LINK_PREVIEW_SECONDS = 60
    assert client.get(f"/l/{sent_link.code}", HTTP_USER_AGENT=PHONE_BROWSER).status_code == 302
    sent_link.refresh_from_db()
    assert (sent_link.clicks, sent_link.previews) == (0, 1)


@pytest.mark.parametrize("code", ["doesnotexist", "short", "x" * 200, "abc-def_12345"])
def test_an_unknown_code_is_a_404_page_without_login(client: Client, code: str) -> None:
    response = client.get(f"/l/{code}")
    assert response.status_code == 404
    assert b"This link does not exist" in response.content
