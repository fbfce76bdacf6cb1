"""Under pytest-xdist (``make test`` runs the suite in two processes) each process needs broker folders and a Redis
database of its own, and so do the real workers its tests start (they inherit ``os.environ``): a task queued by one
process's test must never be taken by another's worker. pytest-django already gives each process its own test
database (``test_<name>_gw0``, ...)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit


def worker_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables to change in this xdist process's environment (none outside xdist)."""
    worker = environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ...
    if not worker:
        return {}
    changes = {}
    if environ.get("SMSAPP_VAR_DIR"):
        var_dir = os.path.join(environ["SMSAPP_VAR_DIR"], worker)
        os.makedirs(var_dir, exist_ok=True)
        changes["SMSAPP_VAR_DIR"] = var_dir
    if environ.get("REDIS_URL"):
        url = urlsplit(environ["REDIS_URL"])
        # Database 0 stays the one a run without xdist uses; Redis has 16.
        changes["REDIS_URL"] = urlunsplit(url._replace(path=f"/{1 + int(worker.removeprefix('gw'))}"))
    return changes
