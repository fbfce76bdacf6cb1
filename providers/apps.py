from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class ProvidersConfig(AppConfig):
    name = "providers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .config import config_changed
        from .models import SenderNumber, TwilioSettings

        for model in (TwilioSettings, SenderNumber):
            post_save.connect(config_changed, sender=model, dispatch_uid=f"config-changed-save-{model.__name__}")
            post_delete.connect(config_changed, sender=model, dispatch_uid=f"config-changed-delete-{model.__name__}")
