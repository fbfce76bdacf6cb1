"""The worker command lines the project ships, read from its deployment files, for tests and benchmarks to run.

The ``Procfile`` is what ``make run`` starts (embedded defaults); ``docker-compose.yml`` is what ``docker compose up``
starts. A test of priority isolation or throughput that started workers its own way would prove nothing about
either, so they start exactly these lines, with this interpreter in place of the deployment's ``celery``.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from .procs import BASE_DIR

PROCFILE = BASE_DIR / "Procfile"
COMPOSE = BASE_DIR / "docker-compose.yml"


def _celery_argv(command: str) -> list[str] | None:
    argv = shlex.split(command)
    if len(argv) < 2 or Path(argv[0]).name != "celery" or "worker" not in argv:
        return None
    return [sys.executable, "-m", "celery", *argv[1:]]


def procfile_workers(path: Path = PROCFILE) -> dict[str, list[str]]:
    """``{process name: argv}`` of the Celery workers in the Procfile, in file order."""
    workers: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        name, sep, command = line.partition(":")
        if not sep or line.lstrip().startswith("#"):
            continue
        argv = _celery_argv(command.strip())
        if argv is not None:
            workers[name.strip()] = argv
    return workers


def compose_workers(path: Path = COMPOSE) -> dict[str, list[str]]:
    """``{service name: argv}`` of the Celery workers in docker-compose.yml, in file order."""
    import yaml

    services = yaml.safe_load(path.read_text())["services"]
    workers: dict[str, list[str]] = {}
    for name, service in services.items():
        command = service.get("command")
        if isinstance(command, list):
            command = shlex.join(str(part) for part in command)
        argv = _celery_argv(command) if isinstance(command, str) else None
        if argv is not None:
            workers[name] = argv
    return workers


def shipped_workers(deployment: str) -> dict[str, list[str]]:
    """``procfile`` or ``compose``."""
    if deployment == "procfile":
        return procfile_workers()
    if deployment == "compose":
        return compose_workers()
    raise ValueError(f"unknown deployment {deployment!r}")
