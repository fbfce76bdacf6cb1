from django.apps import AppConfig


class SmsappConfig(AppConfig):
    """The shell: settings, urls, dashboard, login, users and API tokens (the kernel is ``smsapp.core``)."""

    name = "smsapp"
    default_auto_field = "django.db.models.BigAutoField"
