"""Marketing consent per channel and address (issue 17): the current decision and its log, both kept by address."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("contacts", "0005_suppression_by_address"),
    ]

    operations = [
        migrations.CreateModel(
            name="Consent",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "channel",
                    models.CharField(choices=[("sms", "SMS"), ("email", "Email")], default="sms", max_length=16),
                ),
                ("address", models.CharField(max_length=128)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("subscribed", "Subscribed"),
                            ("unsubscribed", "Unsubscribed"),
                            ("never", "Never asked"),
                        ],
                        max_length=16,
                    ),
                ),
                ("at", models.DateTimeField(help_text="When the contact gave or withdrew it")),
                (
                    "source",
                    models.CharField(
                        choices=[
                            ("import", "Import column"),
                            ("api", "API"),
                            ("web_form", "Web form"),
                            ("keyword", "Keyword reply"),
                            ("double_opt_in", "Double opt-in confirmation"),
                            ("marketer", "Marketer"),
                            ("campaign", "Campaign action"),
                        ],
                        max_length=16,
                    ),
                ),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("channel", "address"), name="one_consent_per_address")],
            },
        ),
        migrations.CreateModel(
            name="ConsentEvent",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "channel",
                    models.CharField(choices=[("sms", "SMS"), ("email", "Email")], default="sms", max_length=16),
                ),
                ("address", models.CharField(max_length=128)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("subscribed", "Subscribed"),
                            ("unsubscribed", "Unsubscribed"),
                            ("never", "Never asked"),
                        ],
                        max_length=16,
                    ),
                ),
                (
                    "source",
                    models.CharField(
                        choices=[
                            ("import", "Import column"),
                            ("api", "API"),
                            ("web_form", "Web form"),
                            ("keyword", "Keyword reply"),
                            ("double_opt_in", "Double opt-in confirmation"),
                            ("marketer", "Marketer"),
                            ("campaign", "Campaign action"),
                        ],
                        max_length=16,
                    ),
                ),
                ("consent_text", models.TextField(blank=True)),
                ("recorded_by", models.CharField(blank=True, max_length=150)),
                ("comment", models.TextField(blank=True)),
                ("occurred_at", models.DateTimeField()),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "contact",
                    models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="consent_events",
                        to="contacts.contact",
                    ),
                ),
            ],
            options={
                "ordering": ["-occurred_at", "-id"],
                "indexes": [
                    models.Index(fields=["contact", "-occurred_at"], name="consent_event_by_contact"),
                    models.Index(fields=["channel", "address"], name="consent_event_by_address"),
                ],
            },
        ),
    ]
