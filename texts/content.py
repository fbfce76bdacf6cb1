"""Text messages that send a provider's message template (a WhatsApp-approved Content Template, say) instead of a
body: checking the mapping of its variables when the message is saved, and rendering it for each contact.

A template's variables (``"1"``, ``"2"``…) are mapped to personalisation tokens or plain text with the same syntax as
a body (``{"1": "{{first_name|there}}"}``). The provider is asked only through ``providers.registry``: texts never
names it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from providers import registry
from providers.base import TEMPLATE_VARIABLE_MAX_CHARACTERS, MessageTemplate

from .personalise import MalformedToken, UnknownTokens, personalise_render, personalise_validate


class TemplateProblem(ValueError):
    """A template or a variable mapping that cannot be sent; the message says why, in a marketer's words."""


def content_template(sid: str) -> MessageTemplate:
    """The sending provider's template ``sid``; raises ``TemplateProblem`` when it has none or removed it."""
    template = registry.template(sid)
    if template is None:
        raise TemplateProblem(
            f"There is no message template {sid}: sync the templates on the provider's plugin page, or pick one "
            "from the list."
        )
    if template.removed:
        raise TemplateProblem(
            f"The template “{template.name}” ({sid}) was removed at the provider: pick another template."
        )
    return template


def content_validate(
    *, sid: str, variables: Any, custom_field_exists: Callable[[str], bool]
) -> tuple[MessageTemplate, dict[str, str]]:
    """The template and the variables as they will be stored. Raises ``TemplateProblem``: unknown or removed
    template, variables that are not an object of strings, a variable the template does not have, one left unmapped,
    a token that names no field, or text over the provider's 1,024 characters for a variable."""
    template = content_template(sid)
    if not isinstance(variables, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in variables.items()
    ):
        raise TemplateProblem(
            'Template variables must be a JSON object of strings, e.g. {"1": "{{first_name|there}}"}.'
        )
    unknown = sorted(set(variables) - set(template.variables))
    if unknown:
        names = ", ".join(unknown)
        known = ", ".join(template.variables) or "none"
        raise TemplateProblem(f"The template “{template.name}” has no variable {names} (its variables: {known}).")
    missing = [name for name in template.variables if not str(variables.get(name, "")).strip()]
    if missing:
        raise TemplateProblem(
            f"Map every variable of “{template.name}” to a contact field or text: {', '.join(missing)} "
            "has no value (WhatsApp refuses an empty one)."
        )
    for name, value in variables.items():
        try:
            personalise_validate(value, custom_field_exists=custom_field_exists)
        except (UnknownTokens, MalformedToken) as exc:
            raise TemplateProblem(f"Variable {name}: {exc}") from None
        if len(value) > TEMPLATE_VARIABLE_MAX_CHARACTERS:
            raise TemplateProblem(
                f"Variable {name} is {len(value):,} characters; a template variable holds at most "
                f"{TEMPLATE_VARIABLE_MAX_CHARACTERS:,}."
            )
    return template, {name: variables[name] for name in template.variables}


def content_render(variables: Mapping[str, str], *, contact: Any) -> dict[str, str]:
    """Each variable's value for this contact (tokens replaced; a value never expands a second time)."""
    return {name: personalise_render(value, contact=contact) for name, value in variables.items()}


def content_too_long(values: Mapping[str, str]) -> str:
    """The first variable whose rendered value is over the limit, or ""."""
    return next((n for n, v in values.items() if len(v) > TEMPLATE_VARIABLE_MAX_CHARACTERS), "")
