"""Every registered provider's URLs (its webhook, its plugin page), each under its own namespace (its name)."""

from . import registry

urlpatterns = registry.urlpatterns()
