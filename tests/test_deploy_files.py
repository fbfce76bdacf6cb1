"""The deployment files are valid: docker compose accepts docker-compose.yml (no engine needed to check it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_config_is_valid() -> None:
    command = _compose_command()
    if command is None:
        if os.environ.get("CI"):
            pytest.fail("CI installs docker-compose to check docker-compose.yml")
        pytest.skip("no docker compose here")
    env = {**os.environ, "SECRET_KEY": "check-only", "POSTGRES_PASSWORD": "check-only"}
    result = subprocess.run(
        [*command, "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for service in ("web:", "worker:", "beat:", "db:", "redis:"):
        assert service in result.stdout


def test_docker_compose_refuses_to_start_without_secrets() -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("no docker compose here")
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "POSTGRES_PASSWORD"}}
    result = subprocess.run(
        [*command, "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        check=False,
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def _gunicorn_options(argv: list[str]) -> list[str]:
    """The options after the app, without --bind and its value (the address differs by design)."""
    out, skip = [], False
    for arg in argv[argv.index("smsapp.wsgi:application") + 1 :]:
        if skip:
            skip = False
        elif arg == "--bind":
            skip = True
        elif arg != "--chdir" and not arg.startswith("/"):
            out.append(arg)
    return out


def test_the_webhook_benchmark_runs_the_shipped_gunicorn_line() -> None:
    import json
    import re

    from bench.webhooks import shipped_gunicorn

    benchmarked = _gunicorn_options(shipped_gunicorn(8123))
    assert benchmarked[:2] == ["--worker-class", "gthread"]
    argv = shipped_gunicorn(8123)
    assert argv[argv.index("--bind") + 1] == "127.0.0.1:8123"
    # The image's own CMD (docker run without compose) is the same server.
    cmd = next(line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD "))
    assert _gunicorn_options(json.loads(cmd[4:])) == benchmarked
    assert re.search(
        r"--workers \$\{WEB_WORKERS:-2\} --threads \$\{WEB_THREADS:-4\}", (ROOT / "docker-compose.yml").read_text()
    )


def test_the_webhook_benchmark_flushes_with_the_shipped_priority_worker_and_a_durable_redis() -> None:
    """The status buffer's flusher in bench/webhooks.py is docker-compose's priority worker line, and its Redis
    keeps what it is told as docker-compose's does (README: a status Redis lost is recovered by reconciliation)."""
    import shlex

    import yaml

    from bench.webhooks import shipped_worker

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert shipped_worker("priority")[3:] == shlex.split(compose["services"]["priority"]["command"])[1:]
    assert "sms_priority" in shipped_worker("priority")
    assert compose["services"]["redis"]["command"] == "redis-server --appendonly yes"


def test_the_wsgi_application_loads_the_urls_when_a_worker_boots() -> None:
    """A gunicorn worker imports the URLconf when it starts, not on its first request: a URLconf that cannot be
    imported stops the worker at boot (and a deploy's health check) instead of answering 500 to every request while
    retrying the import each time, and no webhook pays for the import."""
    code = (
        "import smsapp.wsgi; from django.urls import get_resolver; "
        "print('loaded' if 'url_patterns' in get_resolver().__dict__ else 'not loaded')"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "smsapp.settings", "SMSAPP_IGNORE_DOTENV": "1", "SECRET_KEY": "x"}
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "loaded"
