"""Issue 15's acceptance test: a provider added in this folder alone (it registers itself when its app is installed)
carries a broadcast, a reply and a status callback, and reconciliation asks it about its own messages.

Nothing outside this folder names it; the test installs it with a settings override and makes it the provider that
sends (``SMS_PROVIDER``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client, modify_settings

from contacts.models import Contact, DoNotContact, Segment
from contacts.services import contact_is_dnc
from providers import registry
from texts.models import InboundMessage, OutboundMessage, Status, TextMessage
from texts.reconcile import outbound_reconcile
from texts.services import outbound_process_batch
from texts.services.broadcasts import broadcast_send

from .provider import KEY, NUMBER, PROVIDER, ThrowawayProvider

pytestmark = pytest.mark.django_db

URL = "/sms/throwaway/callback"


@pytest.fixture
def throwaway(settings: Any) -> Iterator[ThrowawayProvider]:
    with modify_settings(INSTALLED_APPS={"append": "tests.providers.throwaway"}):
        settings.SMS_PROVIDER = "throwaway"
        PROVIDER.outbox.clear()
        PROVIDER.states.clear()
        yield PROVIDER
    registry.unregister("throwaway")


def _post(**params: str) -> Any:
    return Client().post(URL, params, HTTP_X_THROWAWAY_KEY=KEY)


def _broadcast(django_capture_on_commit_callbacks: Any) -> tuple[list[Contact], list[OutboundMessage]]:
    from contacts.services import segment_add_contacts

    contacts = [Contact.objects.create(mobile=f"+1415555020{i}", first_name=f"P{i}", country="US") for i in range(3)]
    segment = Segment.objects.create(name="Everyone")
    segment_add_contacts(segment=segment, contact_ids=[c.pk for c in contacts])
    text = TextMessage.objects.create(name="Hello", body="Hi {{first_name|there}}", category="transactional")
    text.segments.add(segment)
    with django_capture_on_commit_callbacks(execute=True):
        run = broadcast_send(text_message=text, enqueue=lambda ids: outbound_process_batch(message_ids=ids))
    assert run.queued == 3
    return contacts, list(OutboundMessage.objects.filter(text_message=text).order_by("contact_id"))


def test_a_broadcast_a_reply_and_a_status_go_through_a_provider_added_in_one_folder(
    throwaway: ThrowawayProvider, settings: Any, marketer_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    contacts, rows = _broadcast(django_capture_on_commit_callbacks)

    # The broadcast: sent by the throwaway provider, from its sender, each message recording who sent it.
    assert sorted(r.to for r in throwaway.outbox) == sorted(str(c.mobile) for c in contacts)
    assert {r.sender.value for r in throwaway.outbox} == {NUMBER}
    assert {r.body for r in throwaway.outbox} == {"Hi P0", "Hi P1", "Hi P2"}
    assert [(r.status, r.provider, r.channel) for r in rows] == [(Status.SENT, "throwaway", "sms")] * 3
    assert {r.provider_sid for r in rows} == set(throwaway.states)

    # A reply, in the provider's own fields and reply format: HELP answers with its help text, STOP opts out.
    first = str(contacts[0].mobile)
    assert _post(kind="reply", ref="in-1", who=first, words="HELP").json() == {"say": throwaway.config.help_text}
    assert _post(kind="reply", ref="in-2", who=first, words="STOP").json() == {"say": ""}
    assert contact_is_dnc(contact=contacts[0])
    assert DoNotContact.objects.get(contact=contacts[0]).source == DoNotContact.Source.KEYWORD
    assert InboundMessage.objects.get(message_sid="in-2").in_reply_to == rows[0]
    assert Client().post(URL, {"kind": "reply", "ref": "in-3", "who": first, "words": "hi"}).status_code == 403

    # Status callbacks in its own state names; its opt-out error marks the contact, in its words.
    assert _post(kind="status", ref=rows[1].provider_sid or "", state="handset").status_code == 200
    assert _post(kind="status", ref=rows[2].provider_sid or "", state="lost", error="E-STOP").status_code == 200
    rows[1].refresh_from_db()
    rows[2].refresh_from_db()
    assert (rows[1].status, rows[2].status, rows[2].error_code) == (Status.DELIVERED, Status.UNDELIVERED, "E-STOP")
    entry = DoNotContact.objects.get(contact=contacts[2])
    assert (entry.source, entry.comment) == (
        DoNotContact.Source.PROVIDER,
        "Throwaway error E-STOP: The person asked this provider to stop their messages.",
    )
    assert "The person asked this provider to stop their messages." in marketer_client.get(
        "/text-messages/log/?status=undelivered"
    ).content.decode("utf-8")

    # Reconciliation asks the provider named on the message, whichever one sends now.
    settings.SMS_PROVIDER = "twilio"
    throwaway.states[rows[0].provider_sid or ""] = "handset"
    result = outbound_reconcile(after=0)
    # One asked about its status (the one still `sent`), which moves; the two final ones are asked only for the price
    # the provider has not given yet (issue 18's cost comes in on this same path).
    assert (result.stopped, result.checked, result.moved, result.price_asked) == ("", 1, 1, 2)
    rows[0].refresh_from_db()
    assert rows[0].status == Status.DELIVERED


def test_once_uninstalled_its_url_and_its_name_are_gone(settings: Any) -> None:
    with modify_settings(INSTALLED_APPS={"append": "tests.providers.throwaway"}):
        assert registry.get_plugin("throwaway") is not None
        assert _post(kind="status", ref="TW-none", state="handset").status_code == 200  # unknown id: ignored, 200
    registry.unregister("throwaway")
    assert registry.get_plugin("throwaway") is None
    assert _post(kind="status", ref="TW-none", state="handset").status_code == 404


def test_its_urls_resolve_without_walking_its_namespace_and_reverse_within_it(settings: Any) -> None:
    """A callback is the busiest URL: it resolves to the plugin's view one resolver down from the root (not two, as
    through the plugin's namespace), and the namespaced name is still what reverse() knows."""
    from django.urls import NoReverseMatch, resolve, reverse

    from . import views

    with modify_settings(INSTALLED_APPS={"append": "tests.providers.throwaway"}):
        match = resolve(URL)
        assert match.func is views.callback
        assert (match.namespaces, match.app_names) == ([], [])
        assert reverse("throwaway:callback") == URL
        with pytest.raises(NoReverseMatch):  # the copy that resolves has no name of its own
            reverse("callback")
        assert resolve("/sms/twilio/callback").namespaces == []
    registry.unregister("throwaway")
    assert reverse("twilio:callback") == "/sms/twilio/callback"
