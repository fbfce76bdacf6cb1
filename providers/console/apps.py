from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "providers.console"
    label = "console"
    verbose_name = "Console (development)"

    def ready(self) -> None:
        from .. import registry
        from .provider import ConsoleProvider

        registry.register(
            registry.Plugin(name="console", label="Console", provider=ConsoleProvider, urls="providers.console.urls")
        )
