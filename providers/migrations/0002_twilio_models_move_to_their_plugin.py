"""The Twilio plugin's models move to their own app (providers.twilio, label ``twilio``): Django forgets them here
without touching the tables, which twilio.0001 adopts under the same names."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("providers", "0001_initial")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.DeleteModel(name="SenderNumber"),
                migrations.DeleteModel(name="TwilioSettings"),
            ],
        ),
    ]
