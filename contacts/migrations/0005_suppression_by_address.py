"""Opt-outs kept by address (issue 17): a Suppression per (channel, number), and Do Not Contact rows that outlive their
contact (SET_NULL). Today's active Do Not Contact entries of contacts with a number are copied as suppressions, with
their reason, source, comment and date, in one INSERT … SELECT."""

import django.db.models.deletion
from django.db import migrations, models

BACKFILL = """
INSERT INTO contacts_suppression (channel, address, reason, source, comment, created_at, lifted_by, lifted_comment)
SELECT d.channel, c.mobile, d.reason, d.source, d.comment, d.created_at, '', ''
FROM contacts_donotcontact d JOIN contacts_contact c ON c.id = d.contact_id
WHERE d.lifted_at IS NULL AND d.channel = 'sms' AND c.mobile IS NOT NULL AND c.mobile <> ''
"""


class Migration(migrations.Migration):
    dependencies = [
        ("contacts", "0004_drop_indexes_covered_by_composites"),
    ]

    operations = [
        migrations.AlterField(
            model_name="donotcontact",
            name="contact",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="dnc_entries",
                to="contacts.contact",
            ),
        ),
        migrations.CreateModel(
            name="Suppression",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "channel",
                    models.CharField(choices=[("sms", "SMS"), ("email", "Email")], default="sms", max_length=16),
                ),
                ("address", models.CharField(max_length=128)),
                (
                    "reason",
                    models.CharField(
                        choices=[("unsubscribed", "Unsubscribed"), ("bounced", "Bounced"), ("manual", "Manual")],
                        max_length=16,
                    ),
                ),
                (
                    "source",
                    models.CharField(
                        choices=[
                            ("keyword", "Keyword reply"),
                            ("provider", "Provider error"),
                            ("marketer", "Marketer"),
                            ("import", "Import"),
                            ("api", "API"),
                            ("campaign", "Campaign"),
                        ],
                        max_length=16,
                    ),
                ),
                ("comment", models.TextField(blank=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("lifted_at", models.DateTimeField(blank=True, null=True)),
                (
                    "lifted_by",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("keyword", "Keyword reply"),
                            ("provider", "Provider error"),
                            ("marketer", "Marketer"),
                            ("import", "Import"),
                            ("api", "API"),
                            ("campaign", "Campaign"),
                        ],
                        max_length=16,
                    ),
                ),
                ("lifted_comment", models.TextField(blank=True)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("lifted_at__isnull", True)),
                        fields=("channel", "address"),
                        name="one_active_suppression_per_address",
                    )
                ],
            },
        ),
        migrations.RunSQL(BACKFILL, reverse_sql=migrations.RunSQL.noop),
    ]
