"""Template filters for links whose address came from outside (a contact's MMS, a provider's webhook)."""

from __future__ import annotations

from urllib.parse import urlsplit

from django import template

register = template.Library()

WEB_SCHEMES = frozenset({"http", "https"})


@register.filter
def web_url(value: object) -> str:
    """``value`` when it is an http(s) URL with a host, else "": ``javascript:``, ``data:`` and the like are never
    rendered as a link, whoever sent them (autoescaping does not stop a ``javascript:`` href)."""
    text = str(value or "").strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        return ""
    return text if parts.scheme.lower() in WEB_SCHEMES and parts.netloc else ""
