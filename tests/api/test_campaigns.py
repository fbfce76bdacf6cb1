"""API: campaigns (list, read, members: list, add, remove)."""

from __future__ import annotations

from typing import Any

import pytest

from campaigns.models import Campaign, CampaignMember
from contacts.models import Contact, Segment

from .conftest import ApiClient

pytestmark = pytest.mark.django_db

JSON = "application/json"


@pytest.fixture
def people() -> list[Contact]:
    return [Contact.objects.create(first_name=f"P{i}", mobile=f"+44791100{i:04d}") for i in range(4)]


def test_list_and_read_campaigns(api: ApiClient, people: list[Contact]) -> None:
    segment = Segment.objects.create(name="Seg")
    first = Campaign.objects.create(name="Spring")
    first.segments.add(segment)
    second = Campaign.objects.create(name="Summer", is_published=True)
    CampaignMember.objects.create(campaign=first, contact=people[0])
    CampaignMember.objects.create(campaign=first, contact=people[1], manually_removed=True)
    page = api.get("/api/v1/campaigns", {"limit": 1}).json()
    assert [(c["id"], c["is_published"]) for c in page["items"]] == [(second.pk, True)]
    rest = api.get("/api/v1/campaigns", {"cursor": page["next_cursor"]}).json()
    assert [(c["id"], c["segment_ids"], c["member_count"]) for c in rest["items"]] == [(first.pk, [segment.pk], 1)]
    assert rest["next_cursor"] is None
    read = api.get(f"/api/v1/campaigns/{first.pk}").json()
    assert (read["name"], read["member_count"]) == ("Spring", 1)
    assert api.get(f"/api/v1/campaigns/{second.pk + 1}").status_code == 404


def test_add_list_and_remove_campaign_contacts(api: ApiClient, people: list[Contact]) -> None:
    campaign = Campaign.objects.create(name="C")
    url = f"/api/v1/campaigns/{campaign.pk}/contacts"
    added = api.post(url, {"contact_ids": [p.pk for p in people[:3]]}, content_type=JSON)
    assert added.status_code == 200
    assert added.json() == {"changed": 3, "member_count": 3}
    members = api.get(url, {"limit": 2}).json()
    assert [m["id"] for m in members["items"]] == [people[2].pk, people[1].pk]
    rest = api.get(url, {"cursor": members["next_cursor"]}).json()
    assert [m["id"] for m in rest["items"]] == [people[0].pk]
    removed = api.delete(url, {"contact_ids": [people[1].pk]}, content_type=JSON)
    assert removed.json() == {"changed": 1, "member_count": 2}
    row = CampaignMember.objects.get(campaign=campaign, contact=people[1])
    assert (row.manually_removed, row.manually_added) == (True, False)
    readded = api.post(url, {"contact_ids": [people[1].pk]}, content_type=JSON)
    assert readded.json()["member_count"] == 3


def test_campaign_member_errors(api: ApiClient, people: list[Contact], client: Any) -> None:
    campaign = Campaign.objects.create(name="C")
    url = f"/api/v1/campaigns/{campaign.pk}/contacts"
    unknown = api.post(url, {"contact_ids": [people[0].pk, 77777]}, content_type=JSON)
    assert unknown.status_code == 400
    assert "77777" in unknown.json()["errors"]["contact_ids"][0]
    assert not CampaignMember.objects.exists()
    assert api.post(url, {"contact_ids": "all"}, content_type=JSON).status_code == 400
    too_many = api.post(url, {"contact_ids": list(range(1, 1002))}, content_type=JSON)
    assert too_many.status_code == 400
    gone = f"/api/v1/campaigns/{campaign.pk + 1}/contacts"
    assert api.post(gone, {"contact_ids": [people[0].pk]}, content_type=JSON).status_code == 404
    assert client.get("/api/v1/campaigns").status_code == 401
    assert client.post(url, {"contact_ids": [people[0].pk]}, content_type=JSON).status_code == 401
    assert not CampaignMember.objects.exists()
