"""The Twilio plugin's models, which lived in the providers app: its tables stay as they are (no SQL runs), only
Django's record of which app owns them moves (providers.0002 forgets them)."""

from decimal import Decimal

import django.core.validators
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [("providers", "0002_twilio_models_move_to_their_plugin")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name="TwilioSettings",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("enabled", models.BooleanField(default=False, verbose_name="Text Message Enabled")),
                        ("account_sid", models.CharField(blank=True, max_length=34)),
                        ("auth_token_encrypted", models.TextField(blank=True)),
                        ("api_key_sid", models.CharField(blank=True, max_length=34)),
                        ("api_key_secret_encrypted", models.TextField(blank=True)),
                        (
                            "sender_type",
                            models.CharField(
                                choices=[
                                    ("numbers", "Phone number pool"),
                                    ("messaging_service", "Messaging Service"),
                                    ("alphanumeric", "Alphanumeric Sender ID"),
                                ],
                                default="numbers",
                                max_length=20,
                            ),
                        ),
                        ("messaging_service_sid", models.CharField(blank=True, max_length=34)),
                        ("alphanumeric_sender_id", models.CharField(blank=True, max_length=11)),
                        (
                            "sender_rate_per_second",
                            models.DecimalField(
                                decimal_places=2,
                                default=Decimal("10"),
                                max_digits=8,
                                validators=[django.core.validators.MinValueValidator(Decimal("0.01"))],
                            ),
                        ),
                        (
                            "direction",
                            models.CharField(
                                choices=[("outbound", "Outbound only"), ("both", "Inbound & Outbound")],
                                default="both",
                                max_length=10,
                            ),
                        ),
                        ("status_callbacks", models.BooleanField(default=True)),
                        (
                            "help_text",
                            models.CharField(
                                blank=True,
                                default="Reply STOP to unsubscribe. Msg & data rates may apply.",
                                help_text="The answer to a HELP or INFO reply.",
                                max_length=320,
                            ),
                        ),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                    ],
                    options={
                        "db_table": "providers_twiliosettings",
                        "verbose_name": "Twilio settings",
                        "verbose_name_plural": "Twilio settings",
                        "constraints": [
                            models.CheckConstraint(condition=models.Q(("id", 1)), name="twilio_settings_singleton")
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="SenderNumber",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("phone_number", models.CharField(max_length=16, unique=True)),
                        ("friendly_name", models.CharField(blank=True, max_length=64)),
                        (
                            "number_type",
                            models.CharField(
                                choices=[
                                    ("long_code", "Long code"),
                                    ("toll_free", "Toll-free"),
                                    ("short_code", "Short code"),
                                    ("other", "Other"),
                                ],
                                default="long_code",
                                max_length=12,
                            ),
                        ),
                        (
                            "rate_per_second",
                            models.DecimalField(
                                decimal_places=2,
                                max_digits=8,
                                validators=[django.core.validators.MinValueValidator(Decimal("0.01"))],
                            ),
                        ),
                        ("position", models.PositiveSmallIntegerField(default=0)),
                        (
                            "settings",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="numbers",
                                to="twilio.twiliosettings",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "providers_sendernumber",
                        "ordering": ["position", "id"],
                    },
                ),
            ],
        ),
    ]
