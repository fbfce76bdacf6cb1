from django.apps import AppConfig


class ContactsConfig(AppConfig):
    name = "contacts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from smsapp.core.celery import schedule_periodic

        # Every 5 minutes, like Mautic's recommended cron for mautic:segments:update; the task holds a lock.
        schedule_periodic("contacts.update_segments", "contacts.update_segments", 300, queue="default")
