"""Drop five indexes that composite ones already cover, paid for by every row an import, a send or a campaign writes.

Timeline: ``contact_id`` (timeline_by_contact leads with it) and ``kind`` with its ``LIKE`` twin (nothing filters by kind across contacts).
Segment memberships: ``segment_id`` (the unique (segment, contact)) and ``contact_id`` (membership_by_contact).
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("contacts", "0003_contact_search_trigram"),
    ]

    operations = [
        migrations.AlterField(
            model_name="segmentmembership",
            name="contact",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="memberships",
                to="contacts.contact",
            ),
        ),
        migrations.AlterField(
            model_name="segmentmembership",
            name="segment",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="memberships",
                to="contacts.segment",
            ),
        ),
        migrations.AlterField(
            model_name="timelineevent",
            name="contact",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="timeline",
                to="contacts.contact",
            ),
        ),
        migrations.AlterField(
            model_name="timelineevent",
            name="kind",
            field=models.CharField(max_length=40),
        ),
    ]
