from django.apps import AppConfig


class TextsConfig(AppConfig):
    name = "texts"
    default_auto_field = "django.db.models.BigAutoField"
