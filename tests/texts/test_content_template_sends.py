"""Text messages that send a Content Template: per-contact ContentVariables and no Body at fake_twilio (the official
client, a real worker for the broadcast), templates gone at the provider, and personalised media URLs."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from contacts.models import Contact, Segment
from contacts.services import segment_add_contacts
from providers.twilio import fake_content
from providers.twilio.models import ContentTemplate
from smsapp.testing import procs
from tests.real_workers import worker_env
from tests.waiting import wait_for
from texts import services
from texts.models import OutboundMessage, Status, TextMessage

from .conftest import Pipeline

SHIPPED = fake_content.ORDER_SHIPPED


def _template_text(**kwargs: Any) -> TextMessage:
    kwargs.setdefault("content_variables", {"1": "{{first_name|there}}", "2": "{{custom.order|your order}}"})
    return TextMessage.objects.create(name="Shipped", body="", content_sid=SHIPPED, category="transactional", **kwargs)


def _seed_template(sid: str = SHIPPED, *, removed: bool = False) -> None:
    ContentTemplate.objects.create(
        sid=sid,
        friendly_name="order_shipped",
        language="en",
        types={"twilio/text": {"body": "Hi {{1}}, your order {{2}} has shipped."}},
        variables={"1": "Ann", "2": "A-1001"},
        synced_at=timezone.now(),
        removed_at=timezone.now() if removed else None,
    )


# Unit level: the pipeline with a recording provider


@pytest.mark.django_db
def test_pipeline_sends_the_template_with_each_contacts_values_and_logs_its_text(
    pipeline: Pipeline, make_contact: Callable[..., Contact], twilio_settings: Any
) -> None:
    _seed_template()
    text = _template_text()
    ann = make_contact(first_name="Ann", custom_fields={"order": "Z-9"})
    nameless = make_contact(first_name="")
    services.outbound_enqueue(text_message=text, contacts=[ann.pk, nameless.pk], source="api")
    ids = list(OutboundMessage.objects.order_by("pk").values_list("pk", flat=True))

    outcome = services.outbound_process_batch(message_ids=ids, **pipeline.kwargs())

    assert sorted(outcome.sent) == ids
    by_to = {r.to: r for r in pipeline.provider.requests}
    assert by_to[str(ann.mobile)].content_sid == SHIPPED
    assert dict(by_to[str(ann.mobile)].content_variables) == {"1": "Ann", "2": "Z-9"}
    assert dict(by_to[str(nameless.mobile)].content_variables) == {"1": "there", "2": "your order"}
    assert all(r.body == "" and not r.media_urls for r in pipeline.provider.requests)
    # The log shows what the recipient read.
    assert OutboundMessage.objects.get(contact=ann).body == "Hi Ann, your order Z-9 has shipped."


@pytest.mark.django_db
@pytest.mark.parametrize("removed", [True, False])
def test_a_template_gone_at_the_provider_fails_the_message_with_words_and_calls_nothing(
    pipeline: Pipeline, make_contact: Callable[..., Contact], twilio_settings: Any, removed: bool
) -> None:
    if removed:
        _seed_template(removed=True)
    text = _template_text()
    services.outbound_enqueue(text_message=text, contacts=[make_contact().pk], source="api")
    row_id = OutboundMessage.objects.get().pk

    outcome = services.outbound_process_batch(message_ids=[row_id], **pipeline.kwargs())

    assert outcome.failed == [row_id]
    row = OutboundMessage.objects.get(pk=row_id)
    assert row.status == Status.FAILED
    assert row.error_code == "template_unavailable"
    assert ("was removed at the provider" if removed else "There is no message template") in row.error_message
    assert pipeline.provider.requests == []


@pytest.mark.django_db
def test_a_variable_empty_for_a_contact_fails_that_message_only(
    pipeline: Pipeline, make_contact: Callable[..., Contact], twilio_settings: Any
) -> None:
    _seed_template()
    text = _template_text(content_variables={"1": "{{first_name}}", "2": "A-1"})
    ann, nameless = make_contact(first_name="Ann"), make_contact(first_name="")
    services.outbound_enqueue(text_message=text, contacts=[ann.pk, nameless.pk], source="api")
    ids = list(OutboundMessage.objects.order_by("pk").values_list("pk", flat=True))

    outcome = services.outbound_process_batch(message_ids=ids, **pipeline.kwargs())

    failed = OutboundMessage.objects.get(contact=nameless)
    assert outcome.failed == [failed.pk]
    assert failed.error_code == "template_variable_empty"
    assert "give it a fallback" in failed.error_message
    assert [r.to for r in pipeline.provider.requests] == [str(ann.mobile)]


@pytest.mark.django_db
def test_media_urls_render_per_contact_url_encoded(
    pipeline: Pipeline, make_contact: Callable[..., Contact], twilio_settings: Any
) -> None:
    text = TextMessage.objects.create(
        name="Card",
        body="Your card, {{first_name}}",
        category="transactional",
        media_urls=["https://example.com/{{first_name|friend}}.jpg?plan={{custom.plan|basic}}"],
    )
    ann = make_contact(first_name="Ann Lee", custom_fields={"plan": "a&b"})
    nameless = make_contact(first_name="")
    services.outbound_enqueue(text_message=text, contacts=[ann.pk, nameless.pk], source="api")
    ids = list(OutboundMessage.objects.order_by("pk").values_list("pk", flat=True))

    services.outbound_process_batch(message_ids=ids, **pipeline.kwargs())

    by_to = {r.to: list(r.media_urls) for r in pipeline.provider.requests}
    assert by_to[str(ann.mobile)] == ["https://example.com/Ann%20Lee.jpg?plan=a%26b"]
    assert by_to[str(nameless.mobile)] == ["https://example.com/friend.jpg?plan=basic"]


# Integration: the official client against fake_twilio, a real worker


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_template_broadcast_reaches_fake_twilio_with_each_contacts_values_and_no_body(
    fake_twilio: Any, twilio_settings: Any
) -> None:
    call_command("sync_content_templates", stdout=io.StringIO())  # the official client, fake_twilio's Content API
    segment = Segment.objects.create(name="Customers")
    people = {
        "+14155550201": Contact.objects.create(mobile="+14155550201", first_name="Ann", custom_fields={"order": "A-7"}),
        "+14155550202": Contact.objects.create(mobile="+14155550202", first_name="Bea", custom_fields={"order": "B-8"}),
        "+14155550203": Contact.objects.create(mobile="+14155550203", first_name=""),
    }
    segment_add_contacts(segment=segment, contact_ids=[c.pk for c in people.values()])
    text = _template_text(
        media_urls=[],
        content_variables={"1": "{{first_name|there}}", "2": "{{custom.order|your order}}"},
    )
    text.segments.add(segment)
    env = worker_env(
        fake_twilio,
    )
    worker = procs.start_worker(queues="sms_priority,sms_bulk", concurrency=1, env=env)
    beat = procs.start_beat(env=env)  # the pacer hands parked bulk messages their sender's slots, as deployed
    try:
        out = io.StringIO()
        call_command("send_broadcasts", "--id", str(text.pk), stdout=out)
        messages = wait_for(
            lambda: len(fake_twilio.messages()) >= 3 and fake_twilio.messages(), "three sends", timeout=60.0
        )
        wait_for(
            lambda: OutboundMessage.objects.filter(text_message=text, status__in=["sent", "delivered"]).count() == 3,
            "three sent rows",
            timeout=60.0,
        )
    finally:
        beat.stop()
        worker.stop()

    by_to = {m["to"]: m for m in messages}
    assert set(by_to) == set(people)
    assert by_to["+14155550201"]["content_variables"] == {"1": "Ann", "2": "A-7"}
    assert by_to["+14155550202"]["content_variables"] == {"1": "Bea", "2": "B-8"}
    assert by_to["+14155550203"]["content_variables"] == {"1": "there", "2": "your order"}
    for message in messages:
        assert message["content_sid"] == SHIPPED
        assert "Body" not in message["fields"]
        assert "ContentVariables" in message["fields"]
    # The log (and the timeline) show what each recipient read.
    row = OutboundMessage.objects.get(text_message=text, to_number="+14155550202")
    assert row.body == "Hi Bea, your order B-8 has shipped."
