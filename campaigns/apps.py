from __future__ import annotations

from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from smsapp.core.celery import schedule_periodic
        from texts.signals import inbound_received, link_clicked, message_status_changed

        from .receivers import on_inbound_received, on_link_clicked
        from .waits import on_texts_left

        # On `default` with the other housekeeping: a campaign tick is never stuck behind a broadcast's sends.
        schedule_periodic("campaigns-process", "campaigns.process", 60, queue="default")
        # A reply moves contacts waiting on a decision down its yes path at once (texts does not know campaigns).
        inbound_received.connect(on_inbound_received, dispatch_uid="campaigns.on_inbound_received")
        # A click does the same for "clicks a link"; a text leaving starts the wait of the decision below it.
        link_clicked.connect(on_link_clicked, dispatch_uid="campaigns.on_link_clicked")
        message_status_changed.connect(on_texts_left, dispatch_uid="campaigns.on_texts_left")
