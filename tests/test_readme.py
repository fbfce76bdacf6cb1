"""The README is the contract: the commands it gives exist and are written as they run from a checkout."""

from __future__ import annotations

import re
from pathlib import Path

from django.core.management import get_commands

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_manage_py_command_in_the_readme_exists() -> None:
    named = set(re.findall(r"manage\.py ([a-z_]+)", README))
    listed = set(re.findall(r"`([a-z_]+) (?:FILE|USERNAME|NAME|ADDRESS|--)", README))
    assert {"send_broadcasts", "simulate_reply", "collectstatic", "axes_reset_username"} <= named
    missing = sorted((named | listed) - set(get_commands()))
    assert not missing, f"the README names commands that do not exist: {missing}"


def test_commands_are_given_as_they_run_outside_an_activated_venv() -> None:
    # `python manage.py send_broadcasts --dry-run` failed for a newcomer: there is no Django outside the .venv.
    bare = [line for line in README.splitlines() if re.search(r"(?<![/\w])python3? (manage\.py|-m )", line)]
    allowed = [line for line in bare if "docker compose exec" in line or "python3 -m venv" in line]
    assert bare == allowed, f"commands without .venv/bin/: {[line for line in bare if line not in allowed]}"


def test_ports_replies_and_deployment_are_documented() -> None:
    for needle in (
        "WEB_PORT",
        "FAKE_TWILIO_PORT",
        "/_control/inbound",
        "simulate_reply --from",
        "collectstatic --noinput",
        "SECURE_SSL_REDIRECT=false",
        "TWILIO_USE_LOCAL_FAKE",
        "axes_reset_username",
    ):
        assert needle in README, needle
