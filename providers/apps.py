from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    """The transport's vocabulary and registry; each provider is an app of its own (``providers/<name>/``)."""

    name = "providers"
    default_auto_field = "django.db.models.BigAutoField"
