from django.apps import AppConfig


class ContactsConfig(AppConfig):
    name = "contacts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from smsapp.core.celery import schedule_periodic

        from .models import Contact
        from .suppression import contact_saved

        # A contact that gets a number opted out before is Do Not Contact at once (suppression by address).
        post_save.connect(contact_saved, sender=Contact, dispatch_uid="contacts.suppression.contact_saved")

        # Every 5 minutes, like Mautic's recommended cron for mautic:segments:update; the task holds a lock.
        schedule_periodic("contacts.update_segments", "contacts.update_segments", 300, queue="default")
