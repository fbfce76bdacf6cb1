from django.apps import AppConfig
from django.conf import settings


class TextsConfig(AppConfig):
    name = "texts"
    verbose_name = "Text messages"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from providers import webhooks
        from smsapp.core.celery import schedule_periodic

        # Registered in every process (web, worker, beat): the services hand work to them by name.
        from . import tasks  # noqa: F401
        from .webhooks import webhook_receive

        # The providers' webhook views hand their events to texts (providers never import texts).
        webhooks.connect(webhook_receive)

        schedule_periodic("texts-outbound-sweep", "texts.outbound_sweep", 60.0, queue="sms_priority")
        # Parked bulk messages get their senders' free capacity (texts.services.pacing). On the priority queue, whose
        # workers never have a backlog of bulk sends in front of it.
        schedule_periodic(
            "texts-outbound-pace",
            "texts.outbound_pace",
            float(settings.SMS_PACE_INTERVAL_SECONDS),
            queue="sms_priority",
        )
        # Statuses whose callback never came, fetched from the provider (texts.reconcile).
        schedule_periodic(
            "texts-outbound-reconcile",
            "texts.outbound_reconcile",
            float(settings.SMS_RECONCILE_INTERVAL_SECONDS),
            queue="default",
        )
        # Buffered status callbacks (texts.status_buffer): each first push arms a flush; this is the safety net for a
        # flush task that was lost and a batch whose flusher died. Only where there is a Redis to buffer in.
        if settings.REDIS_URL:
            schedule_periodic(
                "texts-statuses-flush",
                "texts.statuses_flush",
                float(settings.SMS_STATUS_FLUSH_INTERVAL_SECONDS),
                queue="sms_priority",
            )
        # Broadcasts without a crontab: the same job as `manage.py send_broadcasts`. The fan-out is housekeeping (one
        # INSERT … SELECT per batch), so it runs on `default`, never behind the bulk sends it creates.
        schedule_periodic(
            "texts-send-broadcasts",
            "texts.broadcasts_send",
            float(settings.BROADCASTS_INTERVAL_SECONDS),
            queue="default",
        )
