"""Twilio Content Templates: the sync (command and plugin page button) through the official client against
fake_twilio's Content API, templates removed at Twilio, and every Twilio domain sent to TWILIO_API_BASE_URL."""

from __future__ import annotations

import io
import json
import urllib.request
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from providers import registry
from providers.base import Sender, SendRequest
from providers.twilio import fake_content
from providers.twilio.fake_twilio import FakeTwilioClient
from providers.twilio.models import ContentTemplate
from providers.twilio.provider import twilio_provider

pytestmark = pytest.mark.django_db

PAGE = "/settings/plugins/twilio/"
SYNC = "/settings/plugins/twilio/templates/sync"


def test_command_syncs_every_seeded_template_with_types_variables_and_approval(twilio_settings: Any) -> None:
    out = io.StringIO()
    call_command("sync_content_templates", stdout=out)

    assert "4 Content Templates at Twilio: 4 new, 0 updated, 0 removed." in out.getvalue()
    shipped = ContentTemplate.objects.get(sid=fake_content.ORDER_SHIPPED)
    assert shipped.friendly_name == "order_shipped"
    assert shipped.language == "en"
    assert shipped.type_names == ["twilio/text"]
    assert shipped.variables == {"1": "Ann", "2": "A-1001"}
    assert shipped.body == "Hi {{1}}, your order {{2}} has shipped."
    assert shipped.approval_status == "approved"
    assert shipped.approval_category == "UTILITY"
    assert shipped.synced_at is not None
    assert shipped.removed_at is None
    assert ContentTemplate.objects.get(sid=fake_content.APPOINTMENT).approval_status == "pending"
    assert ContentTemplate.objects.get(sid=fake_content.SPRING_SALE).media_urls == ["https://example.com/sale.jpg"]


def test_sync_reads_every_page(twilio_settings: Any, fake_twilio: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from providers.twilio import provider

    monkeypatch.setattr(provider, "CONTENT_PAGE_SIZE", 3)  # 4 seeded + 3 added: three pages of the real list
    for i in range(3):
        fake_twilio.content.add(friendly_name=f"extra_{i}", types={"twilio/text": {"body": f"Extra {i} {{{{1}}}}"}})
    call_command("sync_content_templates", stdout=io.StringIO())
    assert ContentTemplate.objects.count() == 7


def test_a_template_removed_at_twilio_is_marked_removed_and_comes_back_if_restored(
    twilio_settings: Any, fake_twilio: Any
) -> None:
    call_command("sync_content_templates", stdout=io.StringIO())
    removed = fake_twilio.content.get(fake_content.APPOINTMENT)
    assert fake_twilio.content.remove(fake_content.APPOINTMENT)

    out = io.StringIO()
    call_command("sync_content_templates", stdout=out)
    assert "3 Content Templates at Twilio: 0 new, 0 updated, 1 removed." in out.getvalue()
    row = ContentTemplate.objects.get(sid=fake_content.APPOINTMENT)
    assert row.removed_at is not None
    # What texts/ sees through the seam: gone from the list, and the SID says it was removed.
    assert fake_content.APPOINTMENT not in {t.sid for t in registry.templates()}
    seen = registry.template(fake_content.APPOINTMENT)
    assert seen is not None
    assert seen.removed

    fake_twilio.content.add(
        sid=removed["sid"],
        friendly_name=removed["friendly_name"],
        types=removed["types"],
        variables=removed["variables"],
    )
    call_command("sync_content_templates", stdout=io.StringIO())
    assert ContentTemplate.objects.get(sid=fake_content.APPOINTMENT).removed_at is None


def test_command_fails_with_twilios_reason_and_keeps_what_it_had(twilio_settings: Any, settings: Any) -> None:
    call_command("sync_content_templates", stdout=io.StringIO())
    settings.TWILIO_AUTH_TOKEN = "wrong-token"
    with pytest.raises(CommandError, match="Could not read the Content Templates from Twilio: Authenticate"):
        call_command("sync_content_templates", stdout=io.StringIO())
    assert ContentTemplate.objects.filter(removed_at__isnull=True).count() == 4


def test_plugin_page_button_syncs_and_lists_the_templates(admin_client: Client, twilio_settings: Any) -> None:
    before = admin_client.get(PAGE).content.decode()
    assert "No templates synced yet." in before
    assert "Sync templates" in before

    response = admin_client.post(SYNC, follow=True)
    page = response.content.decode()
    assert response.redirect_chain[-1][0].endswith("#content-templates")
    assert "Templates synced. 4 Content Templates at Twilio: 4 new" in page
    assert fake_content.ORDER_SHIPPED in page
    assert "order_shipped" in page
    assert "twilio/quick-reply" in page
    assert "pending" in page


def test_plugin_page_button_shows_twilios_error(admin_client: Client, twilio_settings: Any, fake_twilio: Any) -> None:
    fake_twilio.control(fail_500_rate=1.0)
    page = admin_client.post(SYNC, follow=True).content.decode()
    assert "Could not read the Content Templates from Twilio" in page
    assert ContentTemplate.objects.count() == 0


def test_sync_button_is_for_admins_only(marketer_client: Client, twilio_settings: Any) -> None:
    response = marketer_client.post(SYNC)
    assert response.status_code in (302, 403)
    assert ContentTemplate.objects.count() == 0


def test_control_endpoint_adds_a_template_that_the_next_sync_finds(twilio_settings: Any, fake_twilio: Any) -> None:
    remote = FakeTwilioClient(fake_twilio.base_url, account_sid=fake_twilio.account_sid, auth_token="")
    added = remote.add_content(
        friendly_name="welcome", types={"twilio/text": {"body": "Welcome {{1}}"}}, variables={"1": "friend"}
    )
    assert added["sid"].startswith("HX")
    assert len(added["sid"]) == 34
    call_command("sync_content_templates", stdout=io.StringIO())
    assert ContentTemplate.objects.get(sid=added["sid"]).variables == {"1": "friend"}


def test_control_endpoint_refuses_a_bad_template_with_words(fake_twilio: Any) -> None:
    request = urllib.request.Request(  # noqa: S310 (loopback)
        fake_twilio.base_url + "/_control/content",
        data=json.dumps({"friendly_name": "x", "types": {}}).encode(),
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)  # noqa: S310 (loopback)
    assert caught.value.code == 400
    assert "types must be an object" in caught.value.read().decode()


def test_every_twilio_domain_goes_to_the_base_url(twilio_settings: Any) -> None:
    client = twilio_provider().client
    base = twilio_settings.TWILIO_API_BASE_URL
    for domain in ("api", "content", "messaging", "lookups"):
        assert client.get_hostname(f"https://{domain}.twilio.com/v1/X?Page=1") == f"{base}/v1/X?Page=1"
    assert client.get_hostname("https://example.com/v1/X") == "https://example.com/v1/X"


# Sends by ContentSid, at fake_twilio, through the official client


def _send(**kwargs: Any) -> Any:
    request = SendRequest(to="+14155550123", body="", sender=Sender("number", "+15005550006"), **kwargs)
    return twilio_provider().send(request)


def test_send_with_a_content_sid_carries_json_variables_and_no_body(twilio_settings: Any, fake_twilio: Any) -> None:
    _send(content_sid=fake_content.ORDER_SHIPPED, content_variables={"1": "Bea", "2": "Z-9"})
    [message] = fake_twilio.messages()
    assert message["content_sid"] == fake_content.ORDER_SHIPPED
    assert message["content_variables"] == {"1": "Bea", "2": "Z-9"}
    assert "Body" not in message["fields"]
    assert message["body"] == ""


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"ContentSid": "HX" + "00" * 16, "ContentVariables": "{}"}, 21655),
        ({"ContentSid": fake_content.ORDER_SHIPPED, "ContentVariables": "not json"}, 21656),
        ({"ContentSid": fake_content.ORDER_SHIPPED, "ContentVariables": '{"1": 5}'}, 21656),
        ({"ContentSid": fake_content.ORDER_SHIPPED, "ContentVariables": '["Ann"]'}, 21656),
        ({"ContentVariables": '{"1": "Ann"}', "Body": "Hi"}, 21654),
        ({"ContentSid": fake_content.ORDER_SHIPPED, "Body": "Hi"}, 20001),
    ],
)
def test_fake_twilio_refuses_bad_content_sends_with_twilios_codes(
    fake_twilio: Any, form: dict[str, str], code: int
) -> None:
    status, body = fake_twilio.handle_create(
        fake_twilio.account_sid, {"To": ["+14155550123"], "From": ["+15005550006"], **{k: [v] for k, v in form.items()}}
    )
    assert (status, body["code"]) == (400, code)
    assert fake_twilio.messages() == []


def test_an_unknown_content_sid_is_a_permanent_provider_error(twilio_settings: Any) -> None:
    from providers.base import ErrorKind, ProviderError

    with pytest.raises(ProviderError) as caught:
        _send(content_sid="HX" + "00" * 16, content_variables={"1": "Ann"})
    assert caught.value.code == "21655"
    assert caught.value.kind == ErrorKind.PERMANENT
