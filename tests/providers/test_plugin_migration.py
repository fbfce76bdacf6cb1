"""providers 0002 / twilio 0001: the Twilio plugin's models move to their own app with their tables and rows as they
are (only Django's record of the owner changes), and messages sent before learn no provider they never had."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

BEFORE = [("providers", "0001_initial"), ("texts", "0006_outbound_schedule")]
AFTER = [("twilio", "0001_initial"), ("texts", "0007_outbound_provider_channel")]


def _migrate(targets: list[tuple[str, str]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return MigrationExecutor(connection)


def test_the_plugins_rows_stay_and_old_messages_get_the_defaults() -> None:
    old = _migrate(BEFORE).loader.project_state(BEFORE).apps
    try:
        row = old.get_model("providers", "TwilioSettings").objects.create(id=1, account_sid="AC" + "1" * 32)
        old.get_model("providers", "SenderNumber").objects.create(
            settings=row, phone_number="+14155550100", rate_per_second=Decimal("1")
        )
        message = old.get_model("texts", "OutboundMessage").objects.create(to_number="+14155550100", source="api")

        new = _migrate(AFTER).loader.project_state(AFTER).apps
        settings_row = new.get_model("twilio", "TwilioSettings").objects.get()
        assert settings_row.account_sid == "AC" + "1" * 32
        assert [n.phone_number for n in settings_row.numbers.all()] == ["+14155550100"]
        after = new.get_model("texts", "OutboundMessage").objects.get(pk=message.pk)
        assert (after.provider, after.channel) == ("", "sms")
    finally:
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
