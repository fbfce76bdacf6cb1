from __future__ import annotations

import importlib

from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from smsapp.celery import schedule_periodic

        from .receivers import on_inbound_received

        schedule_periodic("campaigns-process", "campaigns.process", 60, queue="sms_bulk")
        try:
            signals = importlib.import_module("texts.signals")
        except ImportError:  # the texts app without its signals: replies then move nobody until it has them
            return
        signals.inbound_received.connect(on_inbound_received, dispatch_uid="campaigns.on_inbound_received")
