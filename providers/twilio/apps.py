from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class TwilioConfig(AppConfig):
    name = "providers.twilio"
    label = "twilio"
    verbose_name = "Twilio"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .. import registry
        from .config import config_changed
        from .models import SenderNumber, TwilioSettings
        from .provider import twilio_provider
        from .setup import setup_step

        for model in (TwilioSettings, SenderNumber):
            post_save.connect(config_changed, sender=model, dispatch_uid=f"config-changed-save-{model.__name__}")
            post_delete.connect(config_changed, sender=model, dispatch_uid=f"config-changed-delete-{model.__name__}")
        registry.register(
            registry.Plugin(
                name="twilio",
                label="Twilio",
                provider=twilio_provider,
                urls="providers.twilio.urls",
                page=registry.PluginPage(
                    title="Plugins: Twilio",
                    description="Credentials, senders, callback URL and test connection for text messages.",
                    url_name="twilio:settings",
                ),
                setup=setup_step,
            )
        )
