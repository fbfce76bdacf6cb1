from __future__ import annotations

from types import SimpleNamespace

import pytest

from texts.personalise import UnknownTokens, personalise_render, personalise_validate


def contact(**kwargs: object) -> SimpleNamespace:
    base: dict[str, object] = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "mobile": "+447700900123",
        "country": "GB",
        "timezone": "Europe/London",
        "preferred_language": "en",
        "custom_fields": {"plan": "Gold", "city": "London"},
    }
    base.update(kwargs)
    return SimpleNamespace(**base)


def no_custom(_: str) -> bool:
    return False


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Hi {{first_name}}!", "Hi Ada!"),
        ("Hi {{ first_name }} {{last_name}}", "Hi Ada Lovelace"),
        ("Your plan: {{custom.plan}}", "Your plan: Gold"),
        ("Your city: {{city}}", "Your city: London"),
        ("Hi {contactfield=firstname}", "Hi Ada"),
        ("Hi {contactfield=lastname|friend}", "Hi Lovelace"),
        ("Call {{mobile}}", "Call +447700900123"),
        ("No tokens here {not a token} {{", "No tokens here {not a token} {{"),
        ("{% load static %}", "{% load static %}"),
    ],
)
def test_render_substitutes_fields(body: str, expected: str) -> None:
    assert personalise_render(body, contact=contact()) == expected


def test_fallback_used_when_value_missing() -> None:
    nobody = contact(first_name="", custom_fields={})
    assert personalise_render("Hi {{first_name|there}}", contact=nobody) == "Hi there"
    assert personalise_render("Hi {contactfield=firstname|there}", contact=nobody) == "Hi there"
    assert personalise_render("Plan {{custom.plan|basic}}", contact=nobody) == "Plan basic"
    assert personalise_render("Hi {{first_name}}.", contact=nobody) == "Hi ."


def test_validator_names_unknown_tokens() -> None:
    with pytest.raises(UnknownTokens) as exc:
        personalise_validate("Hi {{frist_name}} and {{ settings.SECRET_KEY }}", custom_field_exists=no_custom)
    assert exc.value.tokens == ["{{ settings.SECRET_KEY }}"] or "{{frist_name}}" in str(exc.value)
    message = str(exc.value)
    assert "{{ settings.SECRET_KEY }}" in message


def test_validator_refuses_bare_name_that_is_no_field() -> None:
    with pytest.raises(UnknownTokens, match=r"\{\{frist_name\}\}"):
        personalise_validate("Hi {{frist_name}}", custom_field_exists=no_custom)


def test_validator_accepts_known_fields_custom_and_mautic_form() -> None:
    tokens = personalise_validate(
        "{{first_name|there}} {{custom.anything}} {contactfield=firstname} {{plan}}",
        custom_field_exists=lambda key: key == "plan",
    )
    assert [t.field for t in tokens] == ["first_name", "custom.anything", "first_name", "custom.plan"]
    assert tokens[0].fallback == "there"


def test_render_never_runs_template_code() -> None:
    body = "{{ contact.__class__ }} {{first_name.upper}} {% if 1 %}x{% endif %}"
    rendered = personalise_render(body, contact=contact())
    assert rendered == body
