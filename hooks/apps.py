from __future__ import annotations

from django.apps import AppConfig


class HooksConfig(AppConfig):
    name = "hooks"
    verbose_name = "Outgoing webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from contacts.signals import dnc_changed
        from smsapp.core.celery import schedule_periodic
        from texts.signals import inbound_received, link_clicked, message_status_changed

        from . import receivers

        # Retries further away than a countdown should wait, and deliveries of a worker that died: housekeeping.
        schedule_periodic("hooks-sweep", "hooks.sweep", 30.0, queue="default")
        message_status_changed.connect(receivers.on_status, dispatch_uid="hooks.on_status")
        inbound_received.connect(receivers.on_reply, dispatch_uid="hooks.on_reply")
        link_clicked.connect(receivers.on_click, dispatch_uid="hooks.on_click")
        dnc_changed.connect(receivers.on_dnc, dispatch_uid="hooks.on_dnc")
