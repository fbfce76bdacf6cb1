"""The campaign pages: list, create, builder, event panel (htmx and plain), publish refusals, members by hand."""

from __future__ import annotations

import pytest
from django.test import Client

from campaigns.models import Campaign, CampaignEvent, CampaignMember
from contacts.models import Contact, Segment

pytestmark = pytest.mark.django_db


def test_create_campaign_then_builder_shows_source(marketer_client: Client, segment: Segment) -> None:
    response = marketer_client.post(
        "/campaigns/new/", {"name": "Spring", "description": "", "segments": [segment.pk]}, follow=True
    )
    campaign = Campaign.objects.get(name="Spring")
    assert response.redirect_chain[-1][0] == f"/campaigns/{campaign.pk}/builder/"
    body = response.content.decode()
    assert "Newsletter" in body
    assert "Add at least one event" in body
    assert "Spring" in marketer_client.get("/campaigns/").content.decode()


def test_add_event_through_the_panel_and_see_it_on_the_canvas(marketer_client: Client, campaign: Campaign) -> None:
    url = f"/campaigns/{campaign.pk}/builder/events/new/"
    chooser = marketer_client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert "Send Text Message" in chooser
    assert "Replies to a text message" not in chooser  # no decision at the start
    form = marketer_client.get(url + "?kind=send_text_message", headers={"HX-Request": "true"}).content.decode()
    assert "New Text Message" in form
    refused = marketer_client.post(
        url + "?kind=send_text_message", {"trigger_mode": "immediate"}, headers={"HX-Request": "true"}
    )
    assert "Choose a text message" in refused.content.decode()
    assert not CampaignEvent.objects.exists()
    target = Segment.objects.create(name="Target")
    saved = marketer_client.post(
        url + "?kind=add_to_segment",
        {"segment": target.pk, "trigger_mode": "interval", "trigger_interval": 2, "trigger_unit": "hours"},
        headers={"HX-Request": "true"},
    )
    event = CampaignEvent.objects.get()
    assert saved.headers["HX-Redirect"].startswith(f"/campaigns/{campaign.pk}/builder/?saved=")
    assert saved.headers["HX-Redirect"].endswith(f"#event-{event.pk}")
    assert event.properties == {"segment_id": target.pk}
    assert (event.trigger_interval, event.trigger_unit) == (2, "hours")
    page = marketer_client.get(f"/campaigns/{campaign.pk}/builder/").content.decode()
    assert f'id="event-{event.pk}"' in page
    assert "After 2 hours" in page
    # A decision on the canvas shows both paths to add to.
    decision = marketer_client.post(
        url + f"?kind=replied_to_text&parent={event.pk}", {"pattern": "yes*", "wait_amount": 2, "wait_unit": "days"}
    )
    assert decision.status_code == 302
    page = marketer_client.get(f"/campaigns/{campaign.pk}/builder/").content.decode()
    assert "+ Yes path" in page
    assert "+ No path" in page


def test_window_needs_both_ends(marketer_client: Client, campaign: Campaign) -> None:
    response = marketer_client.post(
        f"/campaigns/{campaign.pk}/builder/events/new/?kind=add_dnc",
        {"trigger_mode": "immediate", "window_start": "09:00"},
    )
    assert "Give both the start and the end" in response.content.decode()
    assert not CampaignEvent.objects.exists()


def test_edit_and_remove_event(marketer_client: Client, campaign: Campaign) -> None:
    event = CampaignEvent.objects.create(campaign=campaign, event_type="action", kind="add_dnc")
    CampaignEvent.objects.create(campaign=campaign, parent=event, event_type="action", kind="remove_dnc")
    marketer_client.post(
        f"/campaigns/{campaign.pk}/builder/events/{event.pk}/", {"name": "Opt out", "trigger_mode": "immediate"}
    )
    event.refresh_from_db()
    assert event.name == "Opt out"
    marketer_client.post(f"/campaigns/{campaign.pk}/builder/events/{event.pk}/delete/")
    assert not CampaignEvent.objects.exists()


def test_publish_refuses_with_clear_messages(marketer_client: Client) -> None:
    campaign = Campaign.objects.create(name="Bare")
    response = marketer_client.post(f"/campaigns/{campaign.pk}/publish/", follow=True)
    assert "Choose at least one source segment" in response.content.decode()
    campaign.refresh_from_db()
    assert not campaign.is_published


def test_members_added_and_removed_by_hand(marketer_client: Client, campaign: Campaign) -> None:
    contact = Contact.objects.create(first_name="Hand", email="hand@example.com")
    response = marketer_client.post(f"/campaigns/{campaign.pk}/contacts/", {"contact": "nobody@example.com"})
    assert "No contact has that mobile number or email" in response.content.decode()
    marketer_client.post(f"/campaigns/{campaign.pk}/contacts/", {"contact": "hand@example.com"})
    assert CampaignMember.objects.get(campaign=campaign, contact=contact).manually_added
    marketer_client.post(f"/campaigns/{campaign.pk}/contacts/{contact.pk}/remove/")
    assert CampaignMember.objects.get(campaign=campaign, contact=contact).manually_removed
