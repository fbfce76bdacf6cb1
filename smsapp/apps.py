from django.apps import AppConfig


class SmsappConfig(AppConfig):
    name = "smsapp"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .celery import schedule_periodic

        schedule_periodic("smsapp.heartbeat", "smsapp.heartbeat", 30.0)
