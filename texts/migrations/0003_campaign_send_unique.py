from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("texts", "0002_inbound_keywords"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="outboundmessage",
            constraint=models.UniqueConstraint(
                condition=models.Q(("source", "campaign"), models.Q(("source_ref", ""), _negated=True)),
                fields=("source_ref", "contact"),
                name="one_campaign_send_per_event_contact_entry",
            ),
        ),
    ]
