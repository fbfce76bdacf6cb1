"""Send Text Message actions refer to their text message by a PROTECTed foreign key instead of an id in
``properties``: the database then refuses to delete a text message a campaign still sends."""

from typing import Any

import django.db.models.deletion
from django.db import migrations, models


def properties_to_fk(apps: Any, schema_editor: Any) -> None:
    CampaignEvent = apps.get_model("campaigns", "CampaignEvent")
    TextMessage = apps.get_model("texts", "TextMessage")
    existing = set(TextMessage.objects.values_list("pk", flat=True))
    for event in CampaignEvent.objects.filter(kind="send_text_message"):
        properties = dict(event.properties or {})
        text_id = properties.pop("text_message_id", None)
        try:
            text_id = int(text_id) if text_id not in (None, "") else None
        except (TypeError, ValueError):
            text_id = None
        # An id whose text message is gone stays unset: publishing then names the action that needs one.
        event.text_message_id = text_id if text_id in existing else None
        event.properties = properties
        event.save(update_fields=["text_message", "properties"])


def fk_to_properties(apps: Any, schema_editor: Any) -> None:
    CampaignEvent = apps.get_model("campaigns", "CampaignEvent")
    for event in CampaignEvent.objects.filter(text_message__isnull=False):
        event.properties = {**(event.properties or {}), "text_message_id": event.text_message_id}
        event.save(update_fields=["properties"])


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0001_initial"),
        ("texts", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="campaignevent",
            name="text_message",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="campaign_events",
                to="texts.textmessage",
            ),
        ),
        migrations.RunPython(properties_to_fk, fk_to_properties),
    ]
