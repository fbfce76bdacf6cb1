from __future__ import annotations

from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from smsapp.core.celery import schedule_periodic
        from texts.signals import inbound_received

        from .receivers import on_inbound_received

        # On `default` with the other housekeeping: a campaign tick is never stuck behind a broadcast's sends.
        schedule_periodic("campaigns-process", "campaigns.process", 60, queue="default")
        # A reply moves contacts waiting on a decision down its yes path at once (texts does not know campaigns).
        inbound_received.connect(on_inbound_received, dispatch_uid="campaigns.on_inbound_received")
