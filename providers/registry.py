"""The providers that registered themselves, and lookups by name.

Each provider folder (``providers/<name>/``) is a Django app whose ``AppConfig.ready`` calls ``register`` with a
``Plugin``: its name, its label, how to get the provider for the configuration in effect, and optionally its URLs
(its webhook and its settings page), its settings page for Settings > Plugins and its step on the dashboard. Nothing
outside the folder names the provider: ``texts`` finds the provider of a message by the name stored on it, the
callback URL is the provider's own, and ``SMS_PROVIDER`` names the one that sends (or a dotted path to a class taking
no arguments, like Django's email backends).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.urls import URLPattern, clear_url_caches, include, path
from django.utils.module_loading import import_string

from .base import ErrorKind, MessageTemplate, Provider, ProviderConfig


@dataclass(frozen=True)
class PluginPage:
    """A provider's settings page, listed in Settings (admins only)."""

    title: str  # "Plugins: <label>"
    description: str
    url_name: str  # "<name>:settings"


@dataclass(frozen=True)
class SetupStep:
    """The dashboard's first step for a new installation: connect the provider that sends."""

    label: str
    done: bool
    url: str


@dataclass(frozen=True)
class Plugin:
    name: str  # as SMS_PROVIDER and the outbound log write it
    label: str  # as a marketer reads it
    provider: Callable[[], Provider]  # the provider for the configuration in effect now
    urls: str = ""  # a module whose ``urlpatterns`` are the plugin's (its webhook first); included as ``name:``
    page: PluginPage | None = None
    setup: Callable[[], SetupStep] | None = None


_plugins: dict[str, Plugin] = {}
_urlpatterns: list[Any] = []
_urls_built = False


def register(plugin: Plugin) -> None:
    """Add (or replace) a plugin. Called from its ``AppConfig.ready``; idempotent."""
    _plugins[plugin.name] = plugin
    _urls_changed()


def unregister(name: str) -> None:
    """Remove a plugin (a test that installed one for a while)."""
    if _plugins.pop(name, None) is not None:
        _urls_changed()


def plugins() -> list[Plugin]:
    return list(_plugins.values())


def configured_name() -> str:
    """The name of the provider that sends (``SMS_PROVIDER``)."""
    return str(settings.SMS_PROVIDER)


def get_plugin(name: str = "") -> Plugin | None:
    return _plugins.get(name or configured_name())


def get_provider(name: str = "") -> Provider:
    """The provider called ``name`` ("": the one that sends), for the configuration in effect now."""
    name = name or configured_name()
    plugin = _plugins.get(name)
    if plugin is not None:
        return plugin.provider()
    try:
        provider: Provider = import_string(name)()
    except ImportError as exc:
        known = ", ".join(repr(n) for n in sorted(_plugins)) or "none"
        raise ImproperlyConfigured(
            f"SMS_PROVIDER={name!r} is neither a registered provider ({known}) nor an importable class."
        ) from exc
    return provider


def get_config(name: str = "") -> ProviderConfig:
    """The configuration of the provider called ``name`` ("": the one that sends): its senders, status callback URL
    and help text."""
    return get_provider(name).config


def _known(name: str) -> Provider | None:
    """The provider called ``name`` if there is one: a message may name a provider no longer installed."""
    try:
        return get_provider(name)
    except ImproperlyConfigured:
        return None


def explain(code: str, *, provider: str = "") -> str:
    """The provider's words for its error code ("" when it has none, or there is no such provider)."""
    if not code:
        return ""
    explain_code = getattr(_known(provider), "explain", None)
    return str(explain_code(code)) if explain_code is not None else ""


def error_kind(code: str, *, provider: str = "") -> ErrorKind | None:
    """What the provider's error code means for the recipient (``OPT_OUT``…), or None."""
    if not code:
        return None
    kind_of = getattr(_known(provider), "error_kind", None)
    return kind_of(code) if kind_of is not None else None


def templates(*, provider: str = "") -> list[MessageTemplate]:
    """The message templates the provider keeps (as last synced; none when it has no templates), by name."""
    source = _known(provider)
    listing = getattr(source, "templates", None)
    return list(listing()) if listing is not None else []


def template(sid: str, *, provider: str = "") -> MessageTemplate | None:
    """The provider's template ``sid`` (a removed one too: its ``removed`` says so); None when it never had it."""
    find = getattr(_known(provider), "template", None)
    return find(sid) if find is not None and sid else None


def describe_error(code: str, message: str = "", *, provider: str = "") -> str:
    """ "<Label> error <code>: <its explanation>": a record's comment on what the provider reported."""
    plugin = get_plugin(provider)
    label = plugin.label if plugin is not None else (provider or configured_name())
    return f"{label} error {code}: {explain(code, provider=provider) or message}".strip()


# URLs: the root URLconf includes ``providers.urls`` first (a callback is the busiest URL by far). The list is built
# when the URLconf is first loaded, after every app's ready(), and rebuilt in place when a plugin comes or goes.


def urlpatterns() -> list[Any]:
    global _urls_built
    if not _urls_built:
        _urls_built = True
        _build_urls()
    return _urlpatterns


def _build_urls() -> None:
    plugins = [(p.name, import_module(p.urls).urlpatterns) for p in _plugins.values() if p.urls]
    # Each plugin's URLs twice: first as they are, without a name, which is what resolves a request (one resolver
    # fewer to walk: a callback's resolving through its plugin's namespace cost about a tenth of the callback), then
    # under the plugin's namespace, which is what reverse("twilio:callback") and the templates read.
    direct = [
        URLPattern(url.pattern, url.callback, url.default_args, None)
        for _, urls in plugins
        for url in urls
        if isinstance(url, URLPattern)
    ]
    _urlpatterns[:] = [*direct, *(path("", include((urls, name), namespace=name)) for name, urls in plugins)]


def _urls_changed() -> None:
    if _urls_built:
        _build_urls()
        clear_url_caches()
