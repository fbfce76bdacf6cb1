"""The suite runs in several pytest-xdist processes (``make test``): each must have a Redis database and broker
folders of its own, or one process's real workers would take the tasks another's tests queued."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

from smsapp.testing.xdist import worker_environ


def test_outside_xdist_nothing_changes(tmp_path: Path) -> None:
    assert worker_environ({"REDIS_URL": "redis://127.0.0.1:6379/0", "SMSAPP_VAR_DIR": str(tmp_path)}) == {}


def test_each_xdist_process_gets_its_own_redis_database_and_folders(tmp_path: Path) -> None:
    base = {"REDIS_URL": "redis://:pw@127.0.0.1:6379", "SMSAPP_VAR_DIR": str(tmp_path)}
    first = worker_environ({**base, "PYTEST_XDIST_WORKER": "gw0"})
    second = worker_environ({**base, "PYTEST_XDIST_WORKER": "gw1"})
    assert first["REDIS_URL"] == "redis://:pw@127.0.0.1:6379/1"
    assert second["REDIS_URL"] == "redis://:pw@127.0.0.1:6379/2"
    assert first["SMSAPP_VAR_DIR"] != second["SMSAPP_VAR_DIR"]
    assert os.path.isdir(first["SMSAPP_VAR_DIR"])
    assert os.path.isdir(second["SMSAPP_VAR_DIR"])


def test_without_redis_only_the_folders_change(tmp_path: Path) -> None:
    assert set(worker_environ({"SMSAPP_VAR_DIR": str(tmp_path), "PYTEST_XDIST_WORKER": "gw3"})) == {"SMSAPP_VAR_DIR"}


def test_this_process_and_the_workers_it_starts_use_its_own(tmp_path: Path) -> None:
    """What the settings of this very run did: a child's environment (procs.child_env copies os.environ) agrees."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker:
        assert not str(settings.VAR_DIR).endswith("/gw0")
        return
    assert settings.VAR_DIR.name == worker
    assert os.environ["SMSAPP_VAR_DIR"] == str(settings.VAR_DIR)
    if settings.REDIS_URL:
        assert settings.REDIS_URL.endswith(f"/{1 + int(worker.removeprefix('gw'))}")
        assert os.environ["REDIS_URL"] == settings.REDIS_URL
