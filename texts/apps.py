from django.apps import AppConfig


class TextsConfig(AppConfig):
    name = "texts"
    verbose_name = "Text messages"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from smsapp.celery import schedule_periodic

        schedule_periodic("texts-outbound-sweep", "texts.outbound_sweep", 60.0, queue="sms_priority")
