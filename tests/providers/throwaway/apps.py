from django.apps import AppConfig


class ThrowawayConfig(AppConfig):
    name = "tests.providers.throwaway"
    label = "throwaway"

    def ready(self) -> None:
        from providers import registry

        from .provider import PROVIDER

        registry.register(
            registry.Plugin(
                name="throwaway", label="Throwaway", provider=lambda: PROVIDER, urls="tests.providers.throwaway.urls"
            )
        )
