from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "smsapp.core"
    label = "core"
    verbose_name = "Kernel"

    def ready(self) -> None:
        from .celery import schedule_periodic

        schedule_periodic("smsapp.heartbeat", "smsapp.heartbeat", 30.0)
