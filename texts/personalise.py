"""Personalisation tokens in a text message body: substitution only, never a template engine.

Accepted forms:

- ``{{first_name}}``, ``{{ last_name }}``: a contact field;
- ``{{custom.plan}}`` or ``{{plan}}``: a custom field (the bare name works when no contact field has that name);
- ``{{first_name|there}}``: with a fallback used when the contact has no value;
- ``{contactfield=firstname}`` and ``{contactfield=firstname|there}``: Mautic's form, with Mautic's field aliases.

User text is never handed to Django's template engine: ``{{ settings.SECRET_KEY }}`` is refused, ``{% load %}``
stays literal text, and the renderer only looks names up in a fixed table.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

# {{ name }} or {{ name|fallback }}; {contactfield=name} or {contactfield=name|fallback}
TOKEN_RE = re.compile(
    r"\{\{\s*(?P<name>[^{}|]*?)\s*(?:\|(?P<fallback>[^{}]*?))?\s*\}\}"
    r"|\{contactfield=(?P<m_name>[^{}|]*?)(?:\|(?P<m_fallback>[^{}]*))?\}"
)
NAME_RE = re.compile(r"^(custom\.)?[A-Za-z_][A-Za-z0-9_]*$")

# Contact attributes a marketer may use, and the names Mautic gives some of them.
CONTACT_FIELDS = ("first_name", "last_name", "email", "mobile", "country", "timezone", "preferred_language")
ALIASES = {
    "firstname": "first_name",
    "lastname": "last_name",
    "phone": "mobile",
    "mobile_number": "mobile",
    "language": "preferred_language",
}


@dataclass(frozen=True)
class Token:
    raw: str  # the token as written, for error messages
    field: str  # a CONTACT_FIELDS name, or "custom.<key>"
    fallback: str


class UnknownTokens(ValueError):
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        names = ", ".join(tokens)
        super().__init__(
            f"Unknown personalisation token{'s' if len(tokens) > 1 else ''}: {names}. "
            f"Use a contact field ({', '.join('{{' + f + '}}' for f in CONTACT_FIELDS[:2])}, …) or "
            "{{custom.<field>}} for a custom field."
        )


def _resolve(name: str) -> str | None:
    """The field a token names, or None when it cannot name one (syntax); custom keys are checked by the caller."""
    if not NAME_RE.match(name):
        return None
    if name.startswith("custom."):
        return name
    key = ALIASES.get(name.lower(), name.lower() if name.lower() in CONTACT_FIELDS else name)
    return key if key in CONTACT_FIELDS else f"custom.{name}"


class MalformedToken(ValueError):
    """Braces that make no token: ``{{first_name|{{last_name}}}}`` would reach the recipient as ``{{first_name|}}``."""

    def __init__(self, fragment: str) -> None:
        self.fragment = fragment
        super().__init__(
            f"“{fragment}” is not a complete personalisation token: write {{{{name}}}} or {{{{name|fallback}}}}, "
            "with no braces inside (a fallback is plain text and cannot hold another token)."
        )


# What is left of a body once its tokens are taken out must hold no token syntax: a stray "{{", "}}" or
# "{contactfield=" is a token the marketer meant to write and mistyped.
_LEFTOVER_RE = re.compile(r"\{\{|\}\}|\{contactfield=")


def _check_leftovers(body: str) -> None:
    # Blank the tokens out character for character, so positions in what is left are positions in the body.
    rest = TOKEN_RE.sub(lambda match: "\x00" * len(match.group(0)), body)
    found = _LEFTOVER_RE.search(rest)
    if found is None:
        return
    # Show the mistyped token as written: the run of text without spaces around the stray braces.
    start = max(body.rfind(" ", 0, found.start()), body.rfind("\n", 0, found.start())) + 1
    ends = [i for i in (body.find(" ", found.end()), body.find("\n", found.end())) if i != -1]
    raise MalformedToken(body[start : min(ends) if ends else len(body)][:80])


def parse_tokens(body: str) -> list[Token]:
    """Every token in ``body``; raises ``UnknownTokens`` for one whose name is not a field name at all, and
    ``MalformedToken`` for token syntax that makes no token (unbalanced or nested braces)."""
    _check_leftovers(body)
    tokens: list[Token] = []
    bad: list[str] = []
    for match in TOKEN_RE.finditer(body):
        name = (match.group("name") if match.group("name") is not None else match.group("m_name") or "").strip()
        fallback = match.group("fallback") if match.group("name") is not None else match.group("m_fallback")
        field = _resolve(name)
        if field is None:
            bad.append(match.group(0))
            continue
        tokens.append(Token(raw=match.group(0), field=field, fallback=(fallback or "").strip()))
    if bad:
        raise UnknownTokens(bad)
    return tokens


def personalise_validate(body: str, *, custom_field_exists: Callable[[str], bool]) -> list[Token]:
    """Check every token names a field; raises ``UnknownTokens`` naming the ones that do not.

    ``{{custom.x}}`` is always accepted (custom fields vary per contact; the marketer said "custom"). A bare name that
    is not a contact field must be a custom field some contact has, else it is most likely a typo.
    """
    tokens = parse_tokens(body)
    unknown = [
        t.raw
        for t in tokens
        if t.field.startswith("custom.")
        and not t.raw.replace(" ", "").startswith(("{{custom.", "{contactfield=custom."))
        and not custom_field_exists(t.field.removeprefix("custom."))
    ]
    if unknown:
        raise UnknownTokens(unknown)
    return tokens


def _value(contact: Any, field: str) -> str:
    if field.startswith("custom."):
        custom: Mapping[str, Any] = getattr(contact, "custom_fields", None) or {}
        value = custom.get(field.removeprefix("custom."))
    else:
        value = getattr(contact, field, None)
    return "" if value is None else str(value)


def personalise_render(body: str, *, contact: Any) -> str:
    """``body`` with each token replaced by the contact's value (or the fallback, or nothing)."""

    def replace(match: re.Match[str]) -> str:
        name = (match.group("name") if match.group("name") is not None else match.group("m_name") or "").strip()
        fallback = match.group("fallback") if match.group("name") is not None else match.group("m_fallback")
        field = _resolve(name)
        if field is None:
            return match.group(0)
        return _value(contact, field) or (fallback or "").strip()

    return TOKEN_RE.sub(replace, body)


def personalise_render_url(url: str, *, contact: Any) -> str:
    """A media URL with each token replaced by the contact's value, URL-encoded (``https://example.com/{{first_name}}
    .jpg`` -> ``…/Ann%20Lee.jpg``): a value cannot change the URL's host, path or query, only fill its place."""

    def replace(match: re.Match[str]) -> str:
        name = (match.group("name") if match.group("name") is not None else match.group("m_name") or "").strip()
        fallback = match.group("fallback") if match.group("name") is not None else match.group("m_fallback")
        field = _resolve(name)
        if field is None:
            return match.group(0)
        return quote(_value(contact, field) or (fallback or "").strip(), safe="")

    return TOKEN_RE.sub(replace, url)
