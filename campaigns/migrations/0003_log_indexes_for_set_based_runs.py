"""Event-log indexes for set-based runs: every event each contact goes through writes one log row, so each index
costs millions of writes a run. The event and contact foreign keys lose their own indexes (the unique (event,
contact, entry) and campaign_log_by_contact lead with them); the due indexes hold only logs still to run, and the
engine claims an event's due logs in trigger order from (event, trigger_at) WHERE scheduled.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0002_campaignevent_text_message"),
        ("contacts", "0003_contact_search_trigram"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="campaigneventlog",
            name="campaign_log_due",
        ),
        migrations.RemoveIndex(
            model_name="campaigneventlog",
            name="campaign_log_by_event",
        ),
        migrations.AlterField(
            model_name="campaigneventlog",
            name="contact",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="campaign_event_logs",
                to="contacts.contact",
            ),
        ),
        migrations.AlterField(
            model_name="campaigneventlog",
            name="event",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="logs",
                to="campaigns.campaignevent",
            ),
        ),
        migrations.AddIndex(
            model_name="campaigneventlog",
            index=models.Index(
                condition=models.Q(("status__in", ["scheduled", "running", "waiting"])),
                fields=["status", "trigger_at", "id"],
                name="campaign_log_pending",
            ),
        ),
        migrations.AddIndex(
            model_name="campaigneventlog",
            index=models.Index(
                condition=models.Q(("status", "scheduled")), fields=["event", "trigger_at"], name="campaign_log_due"
            ),
        ),
    ]
