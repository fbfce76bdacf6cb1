"""campaigns 0002: a Send Text Message action's text message moves from ``properties`` to the PROTECTed foreign key."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

BEFORE = [("campaigns", "0001_initial"), ("texts", "0003_campaign_send_unique")]
AFTER = [("campaigns", "0002_campaignevent_text_message")]


def _migrate(targets: list[tuple[str, str]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return MigrationExecutor(connection)


def test_text_message_id_property_becomes_the_foreign_key() -> None:
    old = _migrate(BEFORE).loader.project_state(BEFORE).apps
    try:
        text = old.get_model("texts", "TextMessage").objects.create(
            name="Welcome", body="Hi", created_at=timezone.now()
        )
        campaign = old.get_model("campaigns", "Campaign").objects.create(name="C")
        Event = old.get_model("campaigns", "CampaignEvent")
        common = {"campaign": campaign, "event_type": "action", "kind": "send_text_message"}
        kept = Event.objects.create(**common, properties={"text_message_id": text.pk, "other": 1})
        gone = Event.objects.create(**common, properties={"text_message_id": 999_999})
        new = _migrate(AFTER).loader.project_state(AFTER).apps
        NewEvent = new.get_model("campaigns", "CampaignEvent")
        kept_after, gone_after = NewEvent.objects.get(pk=kept.pk), NewEvent.objects.get(pk=gone.pk)
        assert (kept_after.text_message_id, kept_after.properties) == (text.pk, {"other": 1})
        # A dangling id is dropped: publishing then names the action that needs a text message.
        assert (gone_after.text_message_id, gone_after.properties) == (None, {})
    finally:
        # Back to the latest migration of every app, whatever came after these (later tests need the whole schema).
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
